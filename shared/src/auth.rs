//! Who is calling. `Authorization: Token <key>` is looked up by the keyed hash of the key (see
//! `secrets`); the token item carries a snapshot of the user's flags and token lifetime, so
//! authenticating costs one read. The tokens this service issues begin with their user's uuid,
//! so that read also brings the user item (one BatchGetItem), and with it the caller's grants:
//! a member's request needs no second read to know what the caller holds. Keys that name nobody
//! (Waldur's, imported) are found by their keyed hash alone. A token unused for longer than its lifetime has expired; use
//! is recorded at most once a minute, by a conditional write that runs alongside the request
//! (`store::alongside`), never before it.

use std::fmt;
use std::sync::Arc;

use chrono::Duration;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Error, NOT_AUTHENTICATED, Result};
use crate::ids::Id;
use crate::secrets::Sealed;
use crate::store::{self, Expr, Fetched, Item, Store, TxError, s};
use crate::time::{self, Timestamp};
use crate::users::User;

/// Use of a token is written down at most this often.
const REFRESH_INTERVAL: Duration = Duration::seconds(60);

/// A secret that never shows in `Debug` output (logs).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// The staff user acting as another user (`X-Impersonated-User-Uuid`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Impersonator {
    pub uuid: Id,
    pub username: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuthUser {
    pub uuid: Id,
    pub username: String,
    pub full_name: String,
    pub is_staff: bool,
    pub is_support: bool,
    /// The token the request was authenticated with (none for sessions and impersonation).
    pub token: Option<Secret>,
    pub impersonator: Option<Impersonator>,
    /// The caller's user item, when it was read with the credentials (a token naming its user,
    /// a session, impersonation): `Access::load_with` then takes the caller's grants, and the item
    /// itself where a route asks for it, from here instead of reading it again.
    pub own: Option<Arc<User>>,
    /// The item the request's path names, read with the token (`Credentials::target`).
    pub target: Option<Arc<Prefetched>>,
}

/// A key read with the credentials and what is stored there (`None`: nothing).
type PrefetchedItem = ((String, String), Option<Item>);

/// Items read together with the credentials before anyone was authenticated: kept for the
/// authenticated caller's route, which decides on them as on any read. Each is taken once: a
/// second read of a key (after the request's own change, say) goes to the table.
#[derive(Debug)]
pub struct Prefetched {
    /// Each key read, with what is stored there (`None`: nothing), until it is taken.
    items: std::sync::Mutex<Vec<PrefetchedItem>>,
}

impl PartialEq for Prefetched {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl AuthUser {
    /// What the credentials' read found at `key`, once: `None` when it did not read `key` (or
    /// it was taken), else the item if there is one.
    pub fn take_prefetched(&self, key: &(String, String)) -> Option<Option<Item>> {
        let mut items = self.target.as_deref()?.items.lock().ok()?;
        let position = items.iter().position(|(read, _)| read == key)?;
        Some(items.swap_remove(position).1)
    }

    /// The counter items of `tally` the credentials' read found, once: `None` when it did not
    /// read them all.
    pub fn take_prefetched_tally(&self, tally: crate::store::Tally) -> Option<Vec<Item>> {
        let keys = tally.keys();
        let items = self.target.as_deref()?.items.lock().ok()?;
        if !keys.iter().all(|key| items.iter().any(|(read, _)| read == key)) {
            return None;
        }
        drop(items);
        Some(
            keys.iter()
                .filter_map(|key| self.take_prefetched(key).flatten())
                .collect(),
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Principal {
    Anonymous,
    User(AuthUser),
}

impl Principal {
    pub fn user(&self) -> Option<&AuthUser> {
        match self {
            Principal::User(user) => Some(user),
            Principal::Anonymous => None,
        }
    }

    /// The authenticated user, or 401.
    pub fn require_user(&self) -> Result<&AuthUser> {
        self.user()
            .ok_or_else(|| Error::NotAuthenticated(NOT_AUTHENTICATED.into()))
    }

    /// A staff user, or 401 (anonymous) / 403 (anyone else).
    pub fn require_staff(&self) -> Result<&AuthUser> {
        let user = self.require_user()?;
        if user.is_staff {
            Ok(user)
        } else {
            Err(Error::PermissionDenied)
        }
    }

    pub fn is_staff_or_support(&self) -> bool {
        self.user().is_some_and(|u| u.is_staff || u.is_support)
    }
}

/// The token item (`TOKEN#<keyed hash>` / `#META`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenItem {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    pub entity: String,
    pub user_uuid: Id,
    pub username: String,
    #[serde(default)]
    pub full_name: String,
    pub is_staff: bool,
    pub is_support: bool,
    pub is_active: bool,
    /// When the token was issued.
    pub created: String,
    /// When the token was last used, to the minute (the sliding lifetime counts from here).
    #[serde(default)]
    pub last_used: String,
    /// The user's `token_lifetime` in seconds (`None`: never expires), kept in step with it.
    #[serde(default)]
    pub token_lifetime: Option<i64>,
    /// The token itself, sealed with the key `key_id` (see `secrets`); empty in items made
    /// before tokens were sealed, which open to nothing (their user gets a new token).
    #[serde(default)]
    pub key_id: String,
    #[serde(default)]
    pub sealed: String,
}

impl TokenItem {
    pub fn key(hash: &str) -> (String, String) {
        (format!("TOKEN#{hash}"), "#META".to_owned())
    }

    pub fn sealed(&self) -> Sealed {
        Sealed {
            key_id: self.key_id.clone(),
            ciphertext: self.sealed.clone(),
        }
    }

    /// Unused for longer than its lifetime.
    pub fn has_expired_at(&self, now: &Timestamp) -> bool {
        let last_used = time::parse_stored(&self.last_used)
            .or_else(|| time::parse_stored(&self.created))
            .unwrap_or_default();
        self.token_lifetime
            .is_some_and(|lifetime| last_used + Duration::seconds(lifetime) < *now)
    }
}

/// 40 hex digits (160 random bits), the shape of Waldur's API keys.
pub fn new_secret() -> Result<String> {
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).map_err(|e| Error::internal(format!("no randomness: {e}")))?;
    Ok(hex::encode(bytes))
}

/// A new API key for `user`: the user's uuid (32 hex digits), then 160 random bits. Still opaque
/// to clients (the official client sends whatever key it was given); the prefix only tells the
/// service which user item to read with the token item.
pub fn new_token(user: &Id) -> Result<String> {
    Ok(format!("{user}{}", new_secret()?))
}

/// The user a key of `new_token` names; `None` for keys of another shape (Waldur's).
fn named_user(key: &str) -> Option<Id> {
    let (user, secret) = (key.get(..32)?, key.get(32..)?);
    (secret.len() == 40 && secret.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| Id::parse(user))
        .flatten()
}

/// A plain SHA-256, for secrets that are never shown again (session ids): a dump of the table
/// does not reveal them, and nothing needs to recover them.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// What a request presents: its `Authorization` header and, for staff, whom it acts as.
#[derive(Debug, Clone, Copy, Default)]
pub struct Credentials<'a> {
    pub authorization: Option<&'a str>,
    pub impersonate: Option<&'a str>,
    /// The items the request's path names (its target, or a list's tally), read in the same
    /// request as the token, so that a route reading them waits for one round trip, not two.
    pub target: &'a [(String, String)],
}

/// Reads the `Authorization` header the way DRF's TokenAuthentication does: another scheme (or
/// none) means anonymous; a malformed, unknown or expired token is a 401 with Waldur's texts.
/// A staff token with `X-Impersonated-User-Uuid` of an existing user acts as that user (one
/// read: the user item comes with the token).
pub async fn authenticate(store: &Store, credentials: Credentials<'_>) -> Result<Principal> {
    let Some(header) = credentials.authorization else {
        return Ok(Principal::Anonymous);
    };
    let mut words = header.split_whitespace();
    match words.next() {
        Some(scheme) if scheme.eq_ignore_ascii_case("token") => {}
        _ => return Ok(Principal::Anonymous),
    }
    let key = match (words.next(), words.next()) {
        (None, _) => {
            return Err(Error::NotAuthenticated(
                "Invalid token. No credentials provided.".into(),
            ));
        }
        (Some(_), Some(_)) => {
            return Err(Error::NotAuthenticated(
                "Invalid token. Token string should not contain spaces.".into(),
            ));
        }
        (Some(key), None) => key,
    };
    let now = time::now();
    let token_keys: Vec<(String, String)> = store
        .token_keys()
        .lookup_hashes(key)
        .iter()
        .map(|hash| TokenItem::key(hash))
        .collect();
    let impersonated = credentials.impersonate.and_then(Id::parse);
    let named = named_user(key);
    let mut keys = token_keys.clone();
    keys.extend(impersonated.as_ref().map(User::key));
    keys.extend(
        named
            .filter(|user| Some(*user) != impersonated)
            .as_ref()
            .map(User::key),
    );
    for target in credentials.target {
        if !keys.contains(target) {
            keys.push(target.clone());
        }
    }
    let fetched = Fetched::new(match keys.as_slice() {
        [(pk, sk)] => store.get_item(pk, sk).await?.into_iter().collect(),
        _ => store.batch_get_items(&keys).await?,
    });
    let token: TokenItem = token_keys
        .iter()
        .find_map(|(pk, sk)| fetched.peek(pk, sk).transpose())
        .transpose()?
        .ok_or_else(|| Error::NotAuthenticated("Invalid token.".into()))?;
    // The item was found by a keyed hash of the key; its sealed copy must be that very key.
    let stored = store.token_keys().open(&token.sealed())?;
    if !bool::from(stored.as_bytes().ct_eq(key.as_bytes())) {
        return Err(Error::NotAuthenticated("Invalid token.".into()));
    }
    if !token.is_active {
        return Err(Error::NotAuthenticated("User inactive or deleted.".into()));
    }
    if token.has_expired_at(&now) {
        return Err(Error::NotAuthenticated("Token has expired.".into()));
    }
    record_use(store, &token, key, &now);
    let target = (!credentials.target.is_empty()).then(|| {
        let items = credentials
            .target
            .iter()
            .map(|key| (key.clone(), fetched.peek_item(&key.0, &key.1).cloned()))
            .collect();
        Arc::new(Prefetched {
            items: std::sync::Mutex::new(items),
        })
    });
    if token.is_staff
        && let Some(uuid) = impersonated
    {
        let (pk, sk) = User::key(&uuid);
        if let Some(user) = fetched.peek::<User>(&pk, &sk)? {
            return Ok(Principal::User(AuthUser {
                token: None,
                impersonator: Some(Impersonator {
                    uuid: token.user_uuid,
                    username: token.username,
                }),
                target,
                ..user.principal()
            }));
        }
    }
    // The user item, when the key named the token's own user, comes with the principal.
    let own = match named {
        Some(user) if user == token.user_uuid => {
            let (pk, sk) = User::key(&user);
            fetched.peek::<User>(&pk, &sk)?.map(Arc::new)
        }
        _ => None,
    };
    Ok(Principal::User(AuthUser {
        uuid: token.user_uuid,
        username: token.username,
        full_name: token.full_name,
        is_staff: token.is_staff,
        is_support: token.is_support,
        token: Some(Secret(key.to_owned())),
        impersonator: None,
        own,
        target,
    }))
}

/// Writes down that the token was used, once a minute at most, alongside the request; a token
/// sealed with a key that is no longer the current one is re-keyed at the same time.
fn record_use(store: &Store, token: &TokenItem, key: &str, now: &Timestamp) {
    let rekey = !store.token_keys().is_current(&token.key_id);
    let stale = time::parse_stored(&token.last_used).is_none_or(|used| used + REFRESH_INTERVAL < *now);
    if !(rekey || (stale && token.token_lifetime.is_some())) {
        return;
    }
    let (store, token, key, now) = (store.clone(), token.clone(), key.to_owned(), *now);
    store::alongside(async move {
        let result = if rekey {
            rekey_token(&store, &token, &key, &now).await
        } else {
            touch(&store, &token, &now).await
        };
        if let Err(error) = result {
            tracing::warn!(%error, "recording a token's use failed");
        }
    });
}

/// `last_used = now`, conditioned on the value read (so concurrent requests write it once).
async fn touch(store: &Store, token: &TokenItem, now: &Timestamp) -> Result<()> {
    let mut tx = store.transaction();
    let unchanged = if token.last_used.is_empty() {
        Expr::new("attribute_not_exists(last_used)")
    } else {
        Expr::new("last_used = :old").value(":old", s(token.last_used.as_str()))
    };
    tx.update(
        &token.pk,
        &token.sk,
        Expr::new("SET last_used = :now").value(":now", s(time::storage(now))),
        Some(unchanged),
    )?;
    match tx.commit().await {
        Ok(()) | Err(TxError::ConditionFailed(_)) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// Moves the token to the current key: the item under its new hash, sealed anew, and the user's
/// pointer to it, in one transaction.
async fn rekey_token(store: &Store, token: &TokenItem, key: &str, now: &Timestamp) -> Result<()> {
    let keys = store.token_keys();
    let hash = keys.hash(key);
    let sealed = keys.seal(key)?;
    let (pk, sk) = TokenItem::key(&hash);
    let moved = TokenItem {
        pk,
        sk,
        last_used: time::storage(now),
        key_id: sealed.key_id,
        sealed: sealed.ciphertext,
        ..token.clone()
    };
    let old_hash = token.pk.trim_start_matches("TOKEN#");
    let mut tx = store.transaction();
    tx.put(&moved, Some(Expr::new("attribute_not_exists(PK)")))?;
    tx.delete(&token.pk, &token.sk, Some(Expr::new("attribute_exists(PK)")))?;
    let (user_pk, user_sk) = User::key(&token.user_uuid);
    tx.update(
        &user_pk,
        &user_sk,
        Expr::new("SET token_hash = :new").value(":new", s(hash.as_str())),
        Some(Expr::new("token_hash = :old").value(":old", s(old_hash))),
    )?;
    match tx.commit().await {
        Ok(()) | Err(TxError::ConditionFailed(_)) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(is_staff: bool, is_support: bool) -> AuthUser {
        AuthUser {
            uuid: Id::new(),
            username: "u".into(),
            full_name: String::new(),
            is_staff,
            is_support,
            token: Some(Secret("k".into())),
            impersonator: None,
            own: None,
            target: None,
        }
    }

    #[test]
    fn tokens_are_random_hex_and_secrets_stay_out_of_logs() {
        let user = Id::new();
        let a = new_token(&user).unwrap();
        let b = new_token(&user).unwrap();
        assert_eq!(a.len(), 72);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(named_user(&a), Some(user));
        // Waldur's 40-hex keys, and keys of any other shape, name nobody.
        assert_eq!(named_user(&new_secret().unwrap()), None);
        assert_eq!(named_user(&a[..71]), None);
        assert_eq!(named_user(&format!("{a}0")), None);
        assert_eq!(token_hash("abc").len(), 64);
        let debug = format!("{:?}", Secret(a.clone()));
        assert!(!debug.contains(&a));
    }

    #[test]
    fn roles_of_principals() {
        let staff = Principal::User(caller(true, false));
        assert!(staff.require_staff().is_ok());
        assert_eq!(
            Principal::Anonymous.require_staff().unwrap_err(),
            Error::NotAuthenticated(NOT_AUTHENTICATED.into())
        );
        let plain = Principal::User(caller(false, true));
        assert_eq!(plain.require_staff().unwrap_err(), Error::PermissionDenied);
        assert!(plain.is_staff_or_support());
    }

    #[test]
    fn a_token_expires_when_unused_for_its_lifetime() {
        let now = time::now();
        let item = |last_used: Timestamp, lifetime: Option<i64>| TokenItem {
            pk: String::new(),
            sk: String::new(),
            entity: "token".into(),
            user_uuid: Id::new(),
            username: "u".into(),
            full_name: String::new(),
            is_staff: false,
            is_support: false,
            is_active: true,
            created: time::storage(&(now - Duration::days(30))),
            last_used: time::storage(&last_used),
            token_lifetime: lifetime,
            key_id: String::new(),
            sealed: String::new(),
        };
        assert!(item(now - Duration::seconds(3601), Some(3600)).has_expired_at(&now));
        assert!(!item(now - Duration::seconds(3599), Some(3600)).has_expired_at(&now));
        assert!(!item(now - Duration::days(365), None).has_expired_at(&now));
    }
}
