//! Session login by e-mail and password (the workspace family's `/api/v1/auth/`): a random
//! session id in an HttpOnly cookie, stored only as a hash, with an expiry; and a brake on
//! password guessing per e-mail address.

use chrono::Duration;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::{self, Event};
use crate::auth::{self, AuthUser, Principal};
use crate::error::{Error, Result};
use crate::ids::Id;
use crate::store::{Expr, Store, TxError, n, s};
use crate::time::{self, Timestamp};
use crate::users::{self, User};

pub const COOKIE: &str = "sessionid";
/// How long a session lasts.
pub const TIMEOUT: Duration = Duration::hours(8);
/// Failed logins tolerated per e-mail address within `FAILURE_WINDOW`.
pub const MAX_FAILURES: i64 = 10;
pub const FAILURE_WINDOW: Duration = Duration::minutes(15);
const BAD_CREDENTIALS: &str = "Invalid credentials.";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    entity: String,
    user_uuid: Id,
    username: String,
    #[serde(default)]
    full_name: String,
    is_staff: bool,
    is_support: bool,
    expires: String,
    /// TTL attribute (epoch seconds); reads compare `expires`, as TTL deletion lags.
    expires_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FailureWindow {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    #[serde(default)]
    failures: i64,
    window_start: String,
}

fn session_key(id: &str) -> String {
    format!("SESSION#{}", auth::token_hash(id))
}

fn failures_key(email: &str) -> String {
    format!("LOGINFAIL#{}", email.to_lowercase())
}

/// The `sessionid` value of a `Cookie` header.
pub fn cookie_value(header: &str) -> Option<&str> {
    header.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == COOKIE).then_some(value.trim())
    })
}

/// The user of a live session; an unknown or expired one is a 401.
pub async fn authenticate(store: &Store, session_id: &str, now: &Timestamp) -> Result<Principal> {
    let session: Option<SessionItem> = store.get(&session_key(session_id), "#META").await?;
    match session {
        Some(session) if session.expires > time::storage(now) => Ok(Principal::User(AuthUser {
            uuid: session.user_uuid,
            username: session.username,
            full_name: session.full_name,
            is_staff: session.is_staff,
            is_support: session.is_support,
        })),
        _ => Err(Error::NotAuthenticated("Invalid or expired session.".into())),
    }
}

/// Who is calling on the workspace family: a token if one is sent, else the session cookie.
pub async fn principal(
    store: &Store,
    authorization: Option<&str>,
    cookie: Option<&str>,
    now: &Timestamp,
) -> Result<Principal> {
    if authorization.is_some() {
        return auth::authenticate(store, authorization).await;
    }
    match cookie.and_then(cookie_value) {
        Some(id) => authenticate(store, id, now).await,
        None => Ok(Principal::Anonymous),
    }
}

/// Checks an e-mail and password and opens a session: returns the user and the session id.
/// The same answer for an unknown address and a wrong password; after `MAX_FAILURES` within
/// `FAILURE_WINDOW`, 429 before the password is even checked.
pub async fn login(store: &Store, email: &str, password: &str, now: &Timestamp) -> Result<(User, String)> {
    let window: Option<FailureWindow> = store.get(&failures_key(email), "#META").await?;
    let window_open = window
        .as_ref()
        .and_then(|w| time::parse_stored(&w.window_start))
        .is_some_and(|start| start > *now - FAILURE_WINDOW);
    if window_open && window.as_ref().is_some_and(|w| w.failures >= MAX_FAILURES) {
        return Err(Error::Throttled(
            "Too many failed logins. Try again later.".into(),
        ));
    }
    let user = users::find_by_email(store, email).await?;
    let hash = user.as_ref().and_then(|u| u.password_hash.as_deref());
    let matches = users::password_matches(hash, password);
    let Some(user) = user.filter(|u| matches && u.is_active) else {
        record_failure(store, email, window_open, now).await?;
        return Err(Error::non_field(BAD_CREDENTIALS));
    };
    let id = auth::new_token()? + &auth::new_token()?;
    let expires = *now + TIMEOUT;
    let item = SessionItem {
        pk: session_key(&id),
        sk: "#META".into(),
        entity: "session".into(),
        user_uuid: user.uuid,
        username: user.username.clone(),
        full_name: user.full_name(),
        is_staff: user.is_staff,
        is_support: user.is_support,
        expires: time::storage(&expires),
        expires_at: expires.timestamp(),
    };
    let mut tx = store.transaction();
    tx.put(&item, Some(Expr::new("attribute_not_exists(PK)")))?;
    let event = Event {
        event_type: "session_opened",
        subject: format!("USER#{}", user.uuid),
        message: format!("User {} has signed in.", user.username),
        details: json!({}),
    };
    let actor = AuthUser {
        uuid: user.uuid,
        username: user.username.clone(),
        full_name: user.full_name(),
        is_staff: user.is_staff,
        is_support: user.is_support,
    };
    audit::record(&mut tx, Some(&actor), &event, now)?;
    tx.commit().await?;
    Ok((user, id))
}

/// Counts a failed login; a window older than `FAILURE_WINDOW` starts again at one.
async fn record_failure(store: &Store, email: &str, window_open: bool, now: &Timestamp) -> Result<()> {
    let expires_at = (*now + FAILURE_WINDOW).timestamp();
    let update = if window_open {
        Expr::new("ADD failures :one SET expires_at = :ttl")
            .value(":one", n(1))
            .value(":ttl", n(expires_at))
    } else {
        Expr::new("SET failures = :one, window_start = :now, expires_at = :ttl")
            .value(":one", n(1))
            .value(":now", s(time::storage(now)))
            .value(":ttl", n(expires_at))
    };
    let mut tx = store.transaction();
    tx.update(&failures_key(email), "#META", update, None)?;
    match tx.commit().await {
        Ok(()) | Err(TxError::ConditionFailed(_)) => Ok(()),
        Err(err) => Err(err.into()),
    }
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
