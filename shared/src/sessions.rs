//! Session login by e-mail and password (the workspace family's `/api/v1/auth/`): a random
//! session id in an HttpOnly cookie, stored only as a hash, with an expiry; and a brake on
//! password guessing per e-mail address.
//!
//! A session id starts with its user's uuid (32 hex digits) before 160 random bits, so that
//! the session item and the user item are read together in one request: the caller's flags
//! (staff, support, active) are always the user's as they are now, never a copy from the
//! login, and a session ends when the user is deactivated or deleted or the password changes.

use chrono::Duration;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::{self, Event};
use crate::auth::{self, AuthUser, Principal};
use crate::brake::Brake;
use crate::error::{Error, Result};
use crate::ids::Id;
use crate::store::{Expr, Fetched, Store};
use crate::time::{self, Timestamp};
use crate::users::{self, User};

pub const COOKIE: &str = "sessionid";
/// How long a session lasts.
pub const TIMEOUT: Duration = Duration::hours(8);
/// Failed logins tolerated per e-mail address within `FAILURE_WINDOW`.
pub const MAX_FAILURES: i64 = 10;
pub const FAILURE_WINDOW: Duration = Duration::minutes(15);
/// Every attempt for an address is counted before its password is checked (see `brake`).
const LOGIN_BRAKE: Brake = Brake {
    prefix: "LOGINFAIL",
    max: MAX_FAILURES,
    window: FAILURE_WINDOW,
    refusal: || Error::Throttled("Too many failed logins. Try again later.".into()),
};
const BAD_CREDENTIALS: &str = "Invalid credentials.";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    entity: String,
    user_uuid: Id,
    /// When the session was opened (older sessions than this field lack it).
    #[serde(default)]
    created: String,
    expires: String,
    /// TTL attribute (epoch seconds); reads compare `expires`, as TTL deletion lags.
    expires_at: i64,
}

fn session_key(id: &str) -> String {
    format!("SESSION#{}", auth::token_hash(id))
}

/// The `sessionid` value of a `Cookie` header.
pub fn cookie_value(header: &str) -> Option<&str> {
    header.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == COOKIE).then_some(value.trim())
    })
}

const USER_PREFIX: usize = 32;

/// The user of a live session, as the user item says now: one BatchGetItem of the session and
/// the user it names. An unknown or expired session, one whose user is inactive or gone, and one
/// opened before the password last changed are a 401.
pub async fn authenticate(store: &Store, session_id: &str, now: &Timestamp) -> Result<Principal> {
    let invalid = || Error::NotAuthenticated("Invalid or expired session.".into());
    let user_uuid = session_id
        .get(..USER_PREFIX)
        .and_then(Id::parse)
        .ok_or_else(invalid)?;
    let session_key = (session_key(session_id), "#META".to_owned());
    let user_key = User::key(&user_uuid);
    let fetched = Fetched::new(
        store
            .batch_get_items(&[session_key.clone(), user_key.clone()])
            .await?,
    );
    let session: SessionItem = fetched
        .peek(&session_key.0, &session_key.1)?
        .ok_or_else(invalid)?;
    let user: User = fetched.peek(&user_key.0, &user_key.1)?.ok_or_else(invalid)?;
    let ended_by_password = user
        .sessions_valid_after
        .as_deref()
        .is_some_and(|after| session.created.as_str() < after);
    if session.user_uuid != user.uuid
        || session.expires <= time::storage(now)
        || !user.is_active
        || ended_by_password
    {
        return Err(invalid());
    }
    Ok(Principal::User(user.principal()))
}

/// Who is calling on the workspace family: a token if one is sent, else the session cookie.
pub async fn principal(
    store: &Store,
    credentials: auth::Credentials<'_>,
    cookie: Option<&str>,
    now: &Timestamp,
) -> Result<Principal> {
    if credentials.authorization.is_some() {
        return auth::authenticate(store, credentials).await;
    }
    match cookie.and_then(cookie_value) {
        Some(id) => authenticate(store, id, now).await,
        None => Ok(Principal::Anonymous),
    }
}

/// Checks an e-mail and password and opens a session: returns the user and the session id.
/// The same answer for an unknown address and a wrong password; after `MAX_FAILURES` within
/// `FAILURE_WINDOW`, 429 before the password is even checked. A password hash imported from
/// Waldur is replaced by Argon2id in the session's transaction.
pub async fn login(store: &Store, email: &str, password: &str, now: &Timestamp) -> Result<(User, String)> {
    LOGIN_BRAKE.charge(store, email, now).await?;
    let user = users::find_by_email(store, email).await?;
    let hash = user.as_ref().and_then(|u| u.password_hash.as_deref());
    let matches = users::password_matches(hash, password);
    let Some(user) = user.filter(|u| matches && u.is_active) else {
        return Err(Error::non_field(BAD_CREDENTIALS));
    };
    let upgrade = users::PasswordUpgrade::due(&user, password)?;
    let id = format!("{}{}", user.uuid, auth::new_secret()?);
    let expires = *now + TIMEOUT;
    let item = SessionItem {
        pk: session_key(&id),
        sk: "#META".into(),
        entity: "session".into(),
        user_uuid: user.uuid,
        created: time::storage(now),
        expires: time::storage(&expires),
        expires_at: expires.timestamp(),
    };
    let mut tx = store.transaction();
    tx.put(&item, Some(Expr::new("attribute_not_exists(PK)")))?;
    if let Some(upgrade) = &upgrade {
        upgrade.add(&mut tx, &user.uuid)?;
    }
    LOGIN_BRAKE.refund(&mut tx, email)?;
    let event = Event {
        event_type: "session_opened",
        subject: format!("USER#{}", user.uuid),
        message: format!("User {} has signed in.", user.username),
        details: json!({}),
    };
    audit::record(&mut tx, Some(&user.principal()), &event, now)?;
    tx.commit().await?;
    Ok((user, id))
}

/// Ends a session; ending one that is gone is not an error.
/// Ends the session, with its audit event (the session's own user signs out).
pub async fn logout(store: &Store, user: &AuthUser, session_id: &str, now: &Timestamp) -> Result<()> {
    let mut tx = store.transaction();
    tx.delete(&session_key(session_id), "#META", None)?;
    let event = Event {
        event_type: "session_closed",
        subject: format!("USER#{}", user.uuid),
        message: format!("User {} has signed out.", user.username),
        details: json!({}),
    };
    audit::record(&mut tx, Some(user), &event, now)?;
    tx.commit().await.map_err(Error::from)
}

/// The `Set-Cookie` value for a session; `Secure` whenever the API is reached over HTTPS.
pub fn set_cookie(id: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{COOKIE}={id}; Max-Age={}; Path=/; HttpOnly; SameSite=Lax{secure}",
        TIMEOUT.num_seconds()
    )
}

pub fn clear_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_session_cookie() {
        assert_eq!(cookie_value("a=1; sessionid=abc; b=2"), Some("abc"));
        assert_eq!(cookie_value("sessionidx=abc"), None);
        assert_eq!(cookie_value(""), None);
        let cookie = set_cookie("abc", true);
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.ends_with("; Secure")
        );
        assert!(!set_cookie("abc", false).contains("Secure"));
    }
}
