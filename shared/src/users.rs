//! Users and their API tokens (the part the foundation needs: the bootstrap of a staff user).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::{self, Event};
use crate::auth::{self, AuthUser, TokenItem};
use crate::brake::Brake;
use crate::error::{Error, Result};
use crate::grants::HeldRole;
use crate::ids::Id;
use crate::page::{Order, Page, PageRequest};
use crate::secrets::Sealed;
use crate::store::{Expr, Store, Tally, Transaction, TxError, s};
use crate::time::{self, Timestamp};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub uuid: Id,
    /// The integer primary key of the workspace-permission family.
    pub pk: i64,
    pub username: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    #[serde(default)]
    pub native_name: String,
    /// The language the user reads notifications in (`de`, …); empty: English.
    #[serde(default)]
    pub preferred_language: String,
    pub is_staff: bool,
    pub is_support: bool,
    pub is_active: bool,
    pub date_joined: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_hash: Option<String>,
    /// Argon2id PHC string; never leaves the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// The user's grants, for authorization in the same read as the user (see `grants`).
    #[serde(default)]
    pub held: BTreeMap<String, HeldRole>,
    /// How many of those grants are in each customer (on it or its projects), by customer uuid:
    /// a user joins a customer's `users_count` with the first and leaves it with the last.
    #[serde(default)]
    pub customer_grants: BTreeMap<String, i64>,
    /// Sessions opened before this moment are over (set when the password changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions_valid_after: Option<String>,
    /// Seconds a token may go unused before it expires; `None`: never.
    #[serde(default)]
    pub token_lifetime: Option<i64>,
    /// Set when a deletion has begun: the user is closed and their grants are being revoked.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleting: bool,
    /// The code of the user's latest e-mail change request (`email_change`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_change: Option<Id>,
}

impl User {
    pub fn key(uuid: &Id) -> (String, String) {
        (format!("USER#{uuid}"), "#META".to_owned())
    }

    pub fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
            .trim()
            .to_owned()
    }

    /// The user as a caller, with the flags the item holds now.
    pub fn principal(&self) -> AuthUser {
        AuthUser {
            uuid: self.uuid,
            username: self.username.clone(),
            full_name: self.full_name(),
            is_staff: self.is_staff,
            is_support: self.is_support,
            token: None,
            impersonator: None,
            own: Some(std::sync::Arc::new(self.clone())),
            target: None,
        }
    }

    /// The token item of a key last used at `used` (issued then, or last seen in Waldur).
    fn token_item(&self, hash: &str, sealed: Sealed, used: &str) -> TokenItem {
        let (pk, sk) = TokenItem::key(hash);
        TokenItem {
            pk,
            sk,
            entity: "token".into(),
            user_uuid: self.uuid,
            username: self.username.clone(),
            full_name: self.full_name(),
            is_staff: self.is_staff,
            is_support: self.is_support,
            is_active: self.is_active,
            created: used.to_owned(),
            last_used: used.to_owned(),
            token_lifetime: self.token_lifetime,
            key_id: sealed.key_id,
            sealed: sealed.ciphertext,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct UserItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    #[serde(rename = "GSI1PK")]
    by_username: String,
    #[serde(rename = "GSI1SK")]
    by_username_sort: String,
    #[serde(rename = "GSI2PK")]
    by_number: String,
    #[serde(rename = "GSI2SK")]
    by_number_sort: String,
    entity: String,
    #[serde(flatten)]
    user: User,
}

/// The stored form of `user`, as a read of its item returns it.
pub fn as_item(user: &User) -> Result<crate::store::Item> {
    crate::store::encode(&UserItem::new(user.clone()))
}

impl UserItem {
    fn new(user: User) -> Self {
        let (pk, sk) = User::key(&user.uuid);
        UserItem {
            pk,
            sk,
            by_username: "USERS".into(),
            by_username_sort: user.username.clone(),
            by_number: format!("USERPK#{}", user.pk),
            by_number_sort: "#META".into(),
            entity: "user".into(),
            user,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct UniqueMarker {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    entity: String,
    user_uuid: Id,
}

#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub is_staff: bool,
    pub is_support: bool,
    pub password: Option<String>,
    pub token_lifetime: Option<i64>,
}

/// The token lifetime of new users: `TOKEN_LIFETIME` seconds (`null` for never), 3600 by
/// default as in Waldur.
pub fn default_token_lifetime() -> Option<i64> {
    match std::env::var("TOKEN_LIFETIME") {
        Ok(value) if value.trim() == "null" => None,
        Ok(value) => value.trim().parse().ok().or(Some(DEFAULT_TOKEN_LIFETIME)),
        Err(_) => Some(DEFAULT_TOKEN_LIFETIME),
    }
}

pub const DEFAULT_TOKEN_LIFETIME: i64 = 3600;
/// The shortest lifetime a token may have.
pub const MIN_TOKEN_LIFETIME: i64 = 60;

pub async fn get(store: &Store, uuid: &Id) -> Result<Option<User>> {
    let (pk, sk) = User::key(uuid);
    Ok(store.get::<UserItem>(&pk, &sk).await?.map(|item| item.user))
}

/// As `get`, taking the user from what `caller`'s credentials read with the token, if they
/// read it (the user a role change's body names).
pub async fn get_for(store: &Store, caller: &AuthUser, uuid: &Id) -> Result<Option<User>> {
    match caller.take_prefetched(&User::key(uuid)) {
        Some(item) => Ok(item
            .map(crate::store::decode::<UserItem>)
            .transpose()?
            .map(|item| item.user)),
        None => get(store, uuid).await,
    }
}

pub async fn find_by_username(store: &Store, username: &str) -> Result<Option<User>> {
    let marker: Option<UniqueMarker> = store.get(&format!("USERNAME#{username}"), "#META").await?;
    match marker {
        Some(marker) => get(store, &marker.user_uuid).await,
        None => Ok(None),
    }
}

pub async fn find_by_email(store: &Store, email: &str) -> Result<Option<User>> {
    let marker: Option<UniqueMarker> = store
        .get(&format!("EMAIL#{}", email.trim().to_lowercase()), "#META")
        .await?;
    match marker {
        Some(marker) => get(store, &marker.user_uuid).await,
        None => Ok(None),
    }
}

/// The user with this integer primary key (workspace family).
pub async fn find_by_pk(store: &Store, pk: i64) -> Result<Option<User>> {
    let items: Vec<UserItem> = store.query_index("GSI2", &format!("USERPK#{pk}")).await?;
    Ok(items.into_iter().next().map(|item| item.user))
}

/// Next value of a named counter (`COUNTER` / `<name>`), for integer ids.
pub async fn next_number(store: &Store, counter: &str) -> Result<i64> {
    reserve_numbers(store, counter, 1).await
}

/// Reserves `count` consecutive values of a named counter in one request and returns the first
/// (for integer ids of many new objects at once: a failed write only skips its number).
pub async fn reserve_numbers(store: &Store, counter: &str, count: i64) -> Result<i64> {
    let output = store
        .client()
        .update_item()
        .table_name(store.table())
        .key("PK", s("COUNTER"))
        .key("SK", s(counter))
        .update_expression("ADD #value :count")
        .expression_attribute_names("#value", "value")
        .expression_attribute_values(":count", crate::store::n(count))
        .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
        .send()
        .await
        .map_err(crate::store::sdk_error)?;
    output
        .attributes
        .as_ref()
        .and_then(|a| a.get("value"))
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .map(|last| last - count + 1)
        .ok_or_else(|| Error::internal("counter returned no value"))
}

pub async fn create(store: &Store, actor: Option<&AuthUser>, new: NewUser, now: &Timestamp) -> Result<User> {
    let username = new.username.trim().to_owned();
    if username.is_empty() {
        return Err(Error::field("username", "This field may not be blank."));
    }
    let user = User {
        uuid: Id::new(),
        pk: next_number(store, "USER").await?,
        username: username.clone(),
        email: new.email.trim().to_owned(),
        first_name: new.first_name,
        last_name: new.last_name,
        native_name: String::new(),
        preferred_language: String::new(),
        is_staff: new.is_staff,
        is_support: new.is_support,
        is_active: true,
        date_joined: time::storage(now),
        token_hash: None,
        password_hash: new.password.as_deref().map(hash_password).transpose()?,
        held: BTreeMap::new(),
        customer_grants: BTreeMap::new(),
        sessions_valid_after: None,
        token_lifetime: new.token_lifetime,
        deleting: false,
        email_change: None,
    };
    let not_exists = || Some(Expr::new("attribute_not_exists(PK)"));
    let mut tx = store.transaction();
    tx.put(&UserItem::new(user.clone()), not_exists())?;
    tx.tally(Tally::Users, 1);
    let username_marker = tx.put(
        &UniqueMarker {
            pk: format!("USERNAME#{username}"),
            sk: "#META".into(),
            entity: "username".into(),
            user_uuid: user.uuid,
        },
        not_exists(),
    )?;
    let email_marker = if user.email.is_empty() {
        None
    } else {
        Some(tx.put(
            &UniqueMarker {
                pk: format!("EMAIL#{}", user.email.to_lowercase()),
                sk: "#META".into(),
                entity: "email".into(),
                user_uuid: user.uuid,
            },
            not_exists(),
        )?)
    };
    let event = Event {
        event_type: "user_created",
        subject: format!("USER#{}", user.uuid),
        message: format!("User {username} has been created."),
        details: json!({"username": username, "is_staff": user.is_staff}),
    };
    audit::record(&mut tx, actor, &event, now)?;
    match tx.commit().await {
        Ok(()) => Ok(user),
        Err(TxError::ConditionFailed(i)) if i == username_marker => Err(Error::field(
            "username",
            "A user with that username already exists.",
        )),
        Err(TxError::ConditionFailed(i)) if Some(i) == email_marker => {
            Err(Error::field("email", "User with this email already exists."))
        }
        Err(err) => Err(err.into()),
    }
}

/// An API token brought over from Waldur: its key, and when Waldur last saw it used (its
/// `created`, which Waldur moves forward on every authenticated request).
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedToken {
    pub key: auth::Secret,
    pub last_used: String,
}

/// Where the actions of an imported user sit in its transaction.
#[derive(Debug, Clone, Copy)]
pub struct ImportedUserActions {
    pub user: usize,
    pub username: usize,
    pub email: Option<usize>,
    pub token: Option<usize>,
}

/// Adds a user moved over from Waldur to a transaction, as it was there (uuid, flags, password
/// hash, token): the user item, the username and email markers, the token (sealed, under its
/// keyed hash, with Waldur's last use, so the lifetime rule goes on as there), and the audit
/// event. Every put is conditioned on its item not existing yet.
pub fn add_imported(
    tx: &mut Transaction<'_>,
    store: &Store,
    user: &User,
    token: Option<&ImportedToken>,
    now: &Timestamp,
) -> Result<ImportedUserActions> {
    let not_exists = || Some(Expr::new("attribute_not_exists(PK)"));
    let keys = store.token_keys();
    let sealed_token = token
        .map(|token| {
            let key = token.key.expose();
            let hash = keys.hash(key);
            Ok::<_, Error>((user.token_item(&hash, keys.seal(key)?, &token.last_used), hash))
        })
        .transpose()?;
    let user = User {
        token_hash: sealed_token.as_ref().map(|(_, hash)| hash.clone()),
        ..user.clone()
    };
    let user_index = tx.put(&UserItem::new(user.clone()), not_exists())?;
    let (pk, sk) = username_key(&user.username);
    let username = tx.put(
        &UniqueMarker {
            pk,
            sk,
            entity: "username".into(),
            user_uuid: user.uuid,
        },
        not_exists(),
    )?;
    let email = if user.email.is_empty() {
        None
    } else {
        let (pk, sk) = email_key(&user.email);
        Some(tx.put(
            &UniqueMarker {
                pk,
                sk,
                entity: "email".into(),
                user_uuid: user.uuid,
            },
            not_exists(),
        )?)
    };
    let token = match &sealed_token {
        Some((item, _)) => Some(tx.put(item, not_exists())?),
        None => None,
    };
    let event = Event {
        event_type: "user_imported",
        subject: format!("USER#{}", user.uuid),
        message: format!("User {} has been imported from Waldur.", user.username),
        details: json!({
            "username": user.username,
            "is_staff": user.is_staff,
            "is_active": user.is_active,
            "password": user.password_hash.is_some(),
            "token": token.is_some(),
        }),
    };
    audit::record(tx, None, &event, now)?;
    Ok(ImportedUserActions {
        user: user_index,
        username,
        email,
        token,
    })
}

/// The key of the marker that keeps `username` unique, for reading it with other items.
pub fn username_key(username: &str) -> (String, String) {
    (format!("USERNAME#{username}"), "#META".to_owned())
}

/// The key of the marker that keeps an e-mail address unique (case-insensitively).
pub fn email_key(email: &str) -> (String, String) {
    (
        format!("EMAIL#{}", email.trim().to_lowercase()),
        "#META".to_owned(),
    )
}

/// The user a username or e-mail marker (read with other items) belongs to.
pub fn marker_owner(item: crate::store::Item) -> Result<Id> {
    Ok(crate::store::decode::<UniqueMarker>(item)?.user_uuid)
}

/// Gives the user the staff flag, keeping the token's snapshot of the flags in step.
pub async fn make_staff(
    store: &Store,
    actor: Option<&AuthUser>,
    user: &User,
    now: &Timestamp,
) -> Result<User> {
    let (pk, sk) = User::key(&user.uuid);
    let mut tx = store.transaction();
    tx.update(
        &pk,
        &sk,
        Expr::new("SET is_staff = :yes").value(":yes", crate::store::b(true)),
        Some(Expr::new("attribute_exists(PK)")),
    )?;
    if let Some(hash) = &user.token_hash {
        let (token_pk, token_sk) = TokenItem::key(hash);
        tx.update(
            &token_pk,
            &token_sk,
            Expr::new("SET is_staff = :yes").value(":yes", crate::store::b(true)),
            Some(Expr::new("attribute_exists(PK)")),
        )?;
    }
    let event = Event {
        event_type: "user_made_staff",
        subject: format!("USER#{}", user.uuid),
        message: format!("User {} has been made staff.", user.username),
        details: json!({}),
    };
    audit::record(&mut tx, actor, &event, now)?;
    tx.commit().await?;
    Ok(User {
        is_staff: true,
        ..user.clone()
    })
}

/// Replaces the user's API token (one per user, as in Waldur) and returns the new key.
pub async fn issue_token(
    store: &Store,
    actor: Option<&AuthUser>,
    user: &User,
    now: &Timestamp,
) -> Result<String> {
    let mut tx = store.transaction();
    let token = add_token(&mut tx, store, actor, user, None, now)?;
    commit_token_change(tx, token).await
}

/// Adds a new token for `user` to a transaction: the sealed token under its keyed hash, the
/// user's pointer to it (conditioned on the token it replaces, and with the rehash of an
/// imported password when the login brings one), the old item's removal, and the audit event.
/// Returns the new key.
fn add_token(
    tx: &mut Transaction<'_>,
    store: &Store,
    actor: Option<&AuthUser>,
    user: &User,
    upgrade: Option<&PasswordUpgrade>,
    now: &Timestamp,
) -> Result<String> {
    let token = auth::new_token(&user.uuid)?;
    let keys = store.token_keys();
    let hash = keys.hash(&token);
    let (pk, sk) = User::key(&user.uuid);
    if let Some(old) = &user.token_hash {
        let (old_pk, old_sk) = TokenItem::key(old);
        tx.delete(&old_pk, &old_sk, None)?;
    }
    tx.put(
        &user.token_item(&hash, keys.seal(&token)?, &time::storage(now)),
        Some(Expr::new("attribute_not_exists(PK)")),
    )?;
    let update = Expr::new("SET token_hash = :new").value(":new", s(hash.as_str()));
    let (update, condition) = match upgrade {
        Some(upgrade) => upgrade.join(update, token_unchanged(user)),
        None => (update, token_unchanged(user)),
    };
    tx.update(&pk, &sk, update, Some(condition))?;
    let event = Event {
        event_type: "token_issued",
        subject: format!("USER#{}", user.uuid),
        message: format!("A new API token has been issued for {}.", user.username),
        details: json!({}),
    };
    audit::record(tx, actor, &event, now)?;
    Ok(token)
}

/// The user item still points at the token it was read with.
fn token_unchanged(user: &User) -> Expr {
    match &user.token_hash {
        Some(old) => Expr::new("token_hash = :old").value(":old", s(old.as_str())),
        None => Expr::new("attribute_exists(PK) AND attribute_not_exists(token_hash)"),
    }
}

async fn commit_token_change<T>(tx: Transaction<'_>, value: T) -> Result<T> {
    match tx.commit().await {
        Ok(()) => Ok(value),
        Err(TxError::ConditionFailed(_)) => Err(Error::Conflict(
            "The user's token was changed by another request. Retry.".into(),
        )),
        Err(err) => Err(err.into()),
    }
}

/// The user's token while it is valid (not expired, and sealed with a key of the ring), with
/// its item.
pub async fn current_token(
    store: &Store,
    user: &User,
    now: &Timestamp,
) -> Result<Option<(String, TokenItem)>> {
    let Some(hash) = &user.token_hash else {
        return Ok(None);
    };
    let (pk, sk) = TokenItem::key(hash);
    match store.get::<TokenItem>(&pk, &sk).await? {
        // A token sealed with a key no longer in the ring cannot be answered: a new one is due.
        Some(item) if !item.has_expired_at(now) => Ok(store
            .token_keys()
            .open(&item.sealed())
            .ok()
            .map(|token| (token, item))),
        _ => Ok(None),
    }
}

/// Ends the user's token (`POST /api-auth/logout/`): the item goes, and the user's pointer.
pub async fn logout(store: &Store, actor: &AuthUser, now: &Timestamp) -> Result<()> {
    let user = get(store, &actor.uuid)
        .await?
        .ok_or_else(|| Error::not_found("User"))?;
    let mut tx = store.transaction();
    if let Some(hash) = &user.token_hash {
        let (pk, sk) = TokenItem::key(hash);
        tx.delete(&pk, &sk, None)?;
    }
    let (pk, sk) = User::key(&user.uuid);
    tx.update(
        &pk,
        &sk,
        Expr::new("REMOVE token_hash"),
        Some(token_unchanged(&user)),
    )?;
    let event = Event {
        event_type: "auth_logged_out",
        subject: format!("USER#{}", user.uuid),
        message: format!("User {} has logged out.", user.username),
        details: json!({}),
    };
    audit::record(&mut tx, Some(actor), &event, now)?;
    commit_token_change(tx, ()).await
}

/// What Waldur's rules find wrong with a new password (none: it is good).
pub fn password_problems(password: &str) -> Vec<&'static str> {
    let mut problems = Vec::new();
    if password.chars().count() < 7 {
        problems.push("Ensure this field has at least 7 characters.");
    }
    if !password.chars().any(|c| c.is_ascii_digit()) {
        problems.push("Ensure this field has at least one digit.");
    }
    if !password.chars().any(|c| c.is_ascii_alphabetic()) {
        problems.push("Ensure this field has at least one latin letter.");
    }
    problems
}

/// Argon2id with the crate's default (OWASP) parameters and a random salt.
pub fn hash_password(password: &str) -> Result<String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| Error::internal(format!("no randomness: {e}")))?;
    let salt = SaltString::encode_b64(&salt).map_err(Error::internal)?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(Error::internal)
}

/// A hash of nothing anybody knows, verified against when the user does not exist, so that an
/// unknown username and a wrong password take the same time.
const DECOY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$5pJ0u0mXQSp0JrBKXrQXf1F1y3ZX0m9t3b2cPzYQ3nQ";

/// Whether `password` is the one `hash` was made of: this product's Argon2id hashes, and the
/// Django hashes of users imported from Waldur (`pbkdf2_sha256$…`, `argon2$…`) until their
/// first login replaces them (`PasswordUpgrade`). No hash costs a check of the decoy.
pub fn password_matches(hash: Option<&str>, password: &str) -> bool {
    match hash {
        Some(hash) if hash.starts_with(DJANGO_PBKDF2) => django_pbkdf2_matches(hash, password),
        Some(hash) => argon2_matches(phc(hash), password),
        None => {
            argon2_matches(DECOY_HASH, password);
            false
        }
    }
}

fn argon2_matches(phc: &str, password: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    argon2::Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Django's PBKDF2-HMAC-SHA256 hashes, Waldur's default: `pbkdf2_sha256$<iterations>$<salt>$<hash>`,
/// the hash being the 32-byte derived key in base64 (Django's `PBKDF2PasswordHasher`).
const DJANGO_PBKDF2: &str = "pbkdf2_sha256$";
/// Django's `Argon2PasswordHasher`: `argon2` followed by a PHC string (`argon2$argon2id$v=19$…`).
const DJANGO_ARGON2: &str = "argon2$";

/// The PHC string of an Argon2 hash, this product's or Django's.
fn phc(hash: &str) -> &str {
    if hash.starts_with(DJANGO_ARGON2) {
        &hash["argon2".len()..]
    } else {
        hash
    }
}
/// More iterations than any Django release uses: such a hash is refused rather than computed.
const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;

fn django_pbkdf2_matches(encoded: &str, password: &str) -> bool {
    use base64::Engine;
    use subtle::ConstantTimeEq;
    let mut parts = encoded.splitn(4, '$');
    let (Some(_), Some(iterations), Some(salt), Some(expected)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Some(iterations) = iterations
        .parse::<u32>()
        .ok()
        .filter(|i| (1..=MAX_PBKDF2_ITERATIONS).contains(i))
    else {
        return false;
    };
    let Ok(expected) = base64::engine::general_purpose::STANDARD.decode(expected) else {
        return false;
    };
    if expected.len() != 32 {
        return false;
    }
    let mut derived = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), salt.as_bytes(), iterations, &mut derived);
    derived.ct_eq(expected.as_slice()).into()
}

/// Whether a stored hash can be checked at login: this product's, or a Django one it reads.
pub fn is_checkable_hash(hash: &str) -> bool {
    hash.starts_with(DJANGO_PBKDF2) || argon2::password_hash::PasswordHash::new(phc(hash)).is_ok()
}

/// The replacement of a password hash imported from Waldur by this product's Argon2id, made at
/// the user's first successful login (the one moment the password is known), in the login's
/// own transaction and conditioned on the hash it replaces.
pub struct PasswordUpgrade {
    old: String,
    new: String,
}

impl PasswordUpgrade {
    /// The upgrade due for `user`, who has just given `password`: none when the stored hash is
    /// this product's own.
    pub fn due(user: &User, password: &str) -> Result<Option<Self>> {
        match user.password_hash.as_deref() {
            Some(old) if !old.starts_with("$argon2id$") => Ok(Some(PasswordUpgrade {
                old: old.to_owned(),
                new: hash_password(password)?,
            })),
            _ => Ok(None),
        }
    }

    /// Adds the replacement to `tx` as an update of the user item of its own.
    pub fn add(&self, tx: &mut Transaction<'_>, user: &Id) -> Result<usize> {
        let (pk, sk) = User::key(user);
        tx.update(
            &pk,
            &sk,
            Expr::new("SET password_hash = :upgraded").value(":upgraded", s(self.new.as_str())),
            Some(self.unchanged()),
        )
    }

    /// Joins the replacement to another update of the user item (a transaction touches an item
    /// once), with the condition that the hash is still the one replaced.
    fn join(&self, update: Expr, condition: Expr) -> (Expr, Expr) {
        (
            update
                .and_set("password_hash = :upgraded")
                .value(":upgraded", s(self.new.as_str())),
            condition.and(self.unchanged()),
        )
    }

    fn unchanged(&self) -> Expr {
        Expr::new("password_hash = :imported").value(":imported", s(self.old.as_str()))
    }
}

pub async fn set_password(
    store: &Store,
    actor: Option<&AuthUser>,
    user: &User,
    password: &str,
    now: &Timestamp,
) -> Result<()> {
    let hash = hash_password(password)?;
    let (pk, sk) = User::key(&user.uuid);
    let mut tx = store.transaction();
    tx.update(
        &pk,
        &sk,
        Expr::new("SET password_hash = :hash, sessions_valid_after = :now")
            .value(":hash", s(hash.as_str()))
            .value(":now", s(time::storage(now))),
        Some(Expr::new("attribute_exists(PK)")),
    )?;
    let event = Event {
        event_type: "password_changed",
        subject: format!("USER#{}", user.uuid),
        message: format!("The password of {} has been changed.", user.username),
        details: json!({}),
    };
    audit::record(&mut tx, actor, &event, now)?;
    tx.commit().await.map_err(Error::from)
}

/// `POST /api/users/{uuid}/remove_password/` (staff): the user can no longer log in with a
/// password (their token still works), and every session ends.
pub async fn remove_password(store: &Store, actor: &AuthUser, user: &User, now: &Timestamp) -> Result<()> {
    let (pk, sk) = User::key(&user.uuid);
    let mut tx = store.transaction();
    tx.update(
        &pk,
        &sk,
        Expr::new("REMOVE password_hash SET sessions_valid_after = :now")
            .value(":now", s(time::storage(now))),
        Some(Expr::new("attribute_exists(PK)")),
    )?;
    let event = Event {
        event_type: "password_removed",
        subject: format!("USER#{}", user.uuid),
        message: format!("Password has been removed for user {}.", user.username),
        details: json!({}),
    };
    audit::record(&mut tx, Some(actor), &event, now)?;
    tx.commit().await.map_err(Error::from)
}

const BAD_CREDENTIALS: &str = "Invalid username/password.";

/// Waldur's lockout: per username and source address, the fifth attempt within ten minutes of
/// four is refused before its password is checked.
const LOCKOUT: Brake = Brake {
    prefix: "LOCKOUT",
    max: 4,
    window: chrono::Duration::minutes(10),
    refusal: || Error::NotAuthenticated("Username is locked out. Try in 10 minutes.".into()),
};

/// Checks a username and password and answers the user's token: the current one while it is
/// valid (so every client logged in as the user keeps working), else a new one. Every attempt
/// counts against the lockout of (username, source) before the password is checked, and the
/// same 401 answers an unknown user and a wrong password. A password hash imported from Waldur
/// is replaced by Argon2id in the login's transaction (`PasswordUpgrade`).
pub async fn login(
    store: &Store,
    username: &str,
    password: &str,
    source: &str,
    now: &Timestamp,
) -> Result<String> {
    let subject = format!("{username}#{source}");
    LOCKOUT.charge(store, &subject, now).await?;
    let user = find_by_username(store, username).await?;
    let hash = user.as_ref().and_then(|u| u.password_hash.as_deref());
    let matches = password_matches(hash, password);
    let Some(user) = user.filter(|u| matches && u.is_active) else {
        return Err(Error::NotAuthenticated(BAD_CREDENTIALS.into()));
    };
    let actor = user.principal();
    let upgrade = PasswordUpgrade::due(&user, password)?;
    let mut tx = store.transaction();
    LOCKOUT.refund(&mut tx, &subject)?;
    let token = match current_token(store, &user, now).await? {
        Some((token, item)) => {
            if let Some(upgrade) = &upgrade {
                upgrade.add(&mut tx, &user.uuid)?;
            }
            tx.update(
                &item.pk,
                &item.sk,
                Expr::new("SET last_used = :now").value(":now", s(time::storage(now))),
                Some(Expr::new("attribute_exists(PK)")),
            )?;
            let event = Event {
                event_type: "auth_logged_in_with_username",
                subject: format!("USER#{}", user.uuid),
                message: format!("User {} has logged in.", user.username),
                details: json!({}),
            };
            audit::record(&mut tx, Some(&actor), &event, now)?;
            token
        }
        None => add_token(&mut tx, store, Some(&actor), &user, upgrade.as_ref(), now)?,
    };
    commit_token_change(tx, token).await
}

pub async fn all(store: &Store) -> Result<Vec<User>> {
    let items: Vec<UserItem> = store.query_index("GSI1", "USERS").await?;
    Ok(items.into_iter().map(|item| item.user).collect())
}

/// A page of all users by username, with the count: one Query that stops after the page,
/// beside the users' tally (which the caller's credentials may have read already).
pub async fn listing(store: &Store, caller: &AuthUser, request: &PageRequest) -> Result<Page<User>> {
    let prefetched = caller.take_prefetched_tally(Tally::Users);
    let page: Page<UserItem> = store
        .tallied_page(Tally::Users, Order::Ascending, request, prefetched)
        .await?;
    Ok(page.map(|item| item.user))
}

pub async fn by_ids(store: &Store, uuids: &[Id]) -> Result<Vec<User>> {
    let keys: Vec<(String, String)> = uuids.iter().map(User::key).collect();
    let items: Vec<UserItem> = store.batch_get(&keys).await?;
    Ok(items.into_iter().map(|item| item.user).collect())
}

/// Validated changes to a user; `None` keeps a field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserInput {
    pub username: Option<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub native_name: Option<String>,
    pub preferred_language: Option<String>,
    pub is_staff: Option<bool>,
    pub is_support: Option<bool>,
    pub is_active: Option<bool>,
    pub password: Option<String>,
    /// `Some(None)`: the token never expires.
    pub token_lifetime: Option<Option<i64>>,
}

impl UserInput {
    /// Checks a body. Flags are read only when `flags_allowed` (staff), as DRF ignores
    /// read-only fields; `username` is required when `creating`.
    pub fn parse(body: Option<&serde_json::Value>, creating: bool, flags_allowed: bool) -> Result<Self> {
        use serde_json::Value;
        let empty = serde_json::Map::new();
        let object = crate::validate::object(body, &empty)?;
        let mut errors = crate::error::FieldErrors::default();
        let mut text = |field: &str, max: usize, required: bool| {
            crate::validate::string(object, field, max, required, true, &mut errors)
        };
        let mut input = UserInput {
            username: text("username", 150, creating),
            email: text("email", 254, false),
            first_name: text("first_name", 150, false),
            last_name: text("last_name", 150, false),
            native_name: text("native_name", 160, false),
            preferred_language: text("preferred_language", 10, false),
            password: text("password", 128, false),
            ..UserInput::default()
        };
        if let Some(username) = &input.username
            && (username.is_empty()
                || !username
                    .chars()
                    .all(|c| c.is_alphanumeric() || "@.+-_".contains(c)))
        {
            errors.add(
                "username",
                "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.",
            );
        }
        if let Some(email) = &input.email
            && !email.is_empty()
            && !email
                .split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        {
            errors.add("email", "Enter a valid email address.");
        }
        if let Some(password) = &input.password
            && password.chars().count() < 8
        {
            errors.add("password", "Ensure this field has at least 8 characters.");
        }
        match object.get("token_lifetime") {
            None => {}
            Some(Value::Null) => input.token_lifetime = Some(None),
            Some(value) => match value.as_i64() {
                Some(seconds) if seconds >= MIN_TOKEN_LIFETIME => input.token_lifetime = Some(Some(seconds)),
                Some(_) => errors.add(
                    "token_lifetime",
                    format!("Ensure this value is greater than or equal to {MIN_TOKEN_LIFETIME}."),
                ),
                None => errors.add("token_lifetime", "A valid integer is required."),
            },
        }
        if flags_allowed {
            for (field, slot) in [
                ("is_staff", &mut input.is_staff),
                ("is_support", &mut input.is_support),
                ("is_active", &mut input.is_active),
            ] {
                match object.get(field) {
                    None => {}
                    Some(Value::Bool(flag)) => *slot = Some(*flag),
                    Some(_) => errors.add(field, "Must be a valid boolean."),
                }
            }
        }
        errors.into_result(input)
    }

    pub fn into_new_user(self) -> NewUser {
        NewUser {
            username: self.username.unwrap_or_default(),
            email: self.email.unwrap_or_default(),
            first_name: self.first_name.unwrap_or_default(),
            last_name: self.last_name.unwrap_or_default(),
            is_staff: self.is_staff.unwrap_or(false),
            is_support: self.is_support.unwrap_or(false),
            password: self.password,
            token_lifetime: self.token_lifetime.unwrap_or_else(default_token_lifetime),
        }
    }
}

/// Applies changes to a user in one transaction: the user item (conditioned on its current
/// username, so concurrent renames cannot interleave), the username and email markers, the
/// token's snapshot of the flags, and the audit event. The member rows' copies of the names
/// are refreshed afterwards; they are display copies, the user item is the record.
pub async fn update(
    store: &Store,
    actor: &AuthUser,
    user: &User,
    input: &UserInput,
    now: &Timestamp,
) -> Result<User> {
    update_with(store, actor, user, input, now, |_| Ok(())).await
}

/// `update`, with more actions of the caller's in its transaction (added after the user's
/// update, the markers and the token's snapshot, so the update stays action 0).
pub async fn update_with(
    store: &Store,
    actor: &AuthUser,
    user: &User,
    input: &UserInput,
    now: &Timestamp,
    also: impl FnOnce(&mut Transaction<'_>) -> Result<()>,
) -> Result<User> {
    let mut updated = user.clone();
    let pick = |new: &Option<String>, old: &String| new.clone().unwrap_or_else(|| old.clone());
    updated.username = pick(&input.username, &user.username);
    updated.email = pick(&input.email, &user.email);
    updated.first_name = pick(&input.first_name, &user.first_name);
    updated.last_name = pick(&input.last_name, &user.last_name);
    updated.native_name = pick(&input.native_name, &user.native_name);
    updated.preferred_language = pick(&input.preferred_language, &user.preferred_language);
    updated.is_staff = input.is_staff.unwrap_or(user.is_staff);
    updated.is_support = input.is_support.unwrap_or(user.is_support);
    updated.is_active = input.is_active.unwrap_or(user.is_active);
    updated.token_lifetime = input.token_lifetime.unwrap_or(user.token_lifetime);

    let password_hash = input.password.as_deref().map(hash_password).transpose()?;
    let (pk, sk) = User::key(&user.uuid);
    let not_exists = || Some(Expr::new("attribute_not_exists(PK)"));
    let mut tx = store.transaction();
    // A new password ends every session opened with the old one.
    let set_password = if password_hash.is_some() {
        ", password_hash = :password, sessions_valid_after = :now"
    } else {
        ""
    };
    let mut set = Expr::new(format!(
        "SET username = :username, GSI1SK = :username, email = :email, first_name = :first, \
             last_name = :last, native_name = :native, preferred_language = :language, is_staff = :staff, is_support = :support, \
             is_active = :active, token_lifetime = :lifetime{set_password}"
    ))
    .value(":username", s(updated.username.as_str()))
    .value(":email", s(updated.email.as_str()))
    .value(":first", s(updated.first_name.as_str()))
    .value(":last", s(updated.last_name.as_str()))
    .value(":native", s(updated.native_name.as_str()))
    .value(":language", s(updated.preferred_language.as_str()))
    .value(":staff", crate::store::b(updated.is_staff))
    .value(":support", crate::store::b(updated.is_support))
    .value(":active", crate::store::b(updated.is_active))
    .value(":lifetime", lifetime_value(updated.token_lifetime));
    if let Some(hash) = &password_hash {
        set = set
            .value(":password", s(hash.as_str()))
            .value(":now", s(time::storage(now)));
    }
    tx.update(
        &pk,
        &sk,
        set,
        Some(Expr::new("username = :old").value(":old", s(user.username.as_str()))),
    )?;
    let mut username_marker = None;
    if updated.username != user.username {
        tx.delete(&format!("USERNAME#{}", user.username), "#META", None)?;
        username_marker = Some(tx.put(
            &UniqueMarker {
                pk: format!("USERNAME#{}", updated.username),
                sk: "#META".into(),
                entity: "username".into(),
                user_uuid: user.uuid,
            },
            not_exists(),
        )?);
    }
    let mut email_marker = None;
    if updated.email.to_lowercase() != user.email.to_lowercase() {
        if !user.email.is_empty() {
            tx.delete(&format!("EMAIL#{}", user.email.to_lowercase()), "#META", None)?;
        }
        if !updated.email.is_empty() {
            email_marker = Some(tx.put(
                &UniqueMarker {
                    pk: format!("EMAIL#{}", updated.email.to_lowercase()),
                    sk: "#META".into(),
                    entity: "email".into(),
                    user_uuid: user.uuid,
                },
                not_exists(),
            )?);
        }
    }
    if let Some(hash) = &user.token_hash {
        let (token_pk, token_sk) = TokenItem::key(hash);
        tx.update(
            &token_pk,
            &token_sk,
            // A new lifetime counts from now, not from a last use recorded under the old one.
            Expr::new(
                "SET username = :username, full_name = :full, is_staff = :staff, is_support = :support, \
                 is_active = :active, token_lifetime = :lifetime, last_used = :now",
            )
            .value(":username", s(updated.username.as_str()))
            .value(":full", s(updated.full_name()))
            .value(":staff", crate::store::b(updated.is_staff))
            .value(":support", crate::store::b(updated.is_support))
            .value(":active", crate::store::b(updated.is_active))
            .value(":lifetime", lifetime_value(updated.token_lifetime))
            .value(":now", s(time::storage(now))),
            Some(Expr::new("attribute_exists(PK)")),
        )?;
    }
    let event = Event {
        event_type: "user_updated",
        subject: format!("USER#{}", user.uuid),
        message: format!("User {} has been updated.", updated.username),
        details: json!({
            "username": updated.username,
            "is_staff": updated.is_staff,
            "is_support": updated.is_support,
            "is_active": updated.is_active,
        }),
    };
    audit::record(&mut tx, Some(actor), &event, now)?;
    also(&mut tx)?;
    match tx.commit().await {
        Ok(()) => {}
        Err(TxError::ConditionFailed(0)) => {
            return Err(Error::Conflict(
                "The user was changed by another request. Retry.".into(),
            ));
        }
        Err(TxError::ConditionFailed(i)) if Some(i) == username_marker => {
            return Err(Error::field(
                "username",
                "A user with that username already exists.",
            ));
        }
        Err(TxError::ConditionFailed(i)) if Some(i) == email_marker => {
            return Err(Error::field("email", "User with this email already exists."));
        }
        Err(err) => return Err(err.into()),
    }
    if (
        &updated.username,
        &updated.email,
        updated.full_name(),
        &updated.native_name,
    ) != (&user.username, &user.email, user.full_name(), &user.native_name)
    {
        crate::grants::refresh_member_names(store, &updated).await?;
    }
    Ok(updated)
}

/// Deletes a user, as staff. First the user is closed in one transaction: inactive, out of the
/// user list (into `USERS_BEING_DELETED`), token and name markers gone, so from that moment no token, session or grant of
/// theirs is honoured. Then their grants are revoked in batches (each one transaction with its
/// audit events and exact counters), and last the user item goes. Every step is conditioned on
/// the state it found, so a deletion interrupted anywhere is finished by the next DELETE.
pub async fn delete(store: &Store, actor: &AuthUser, user: &User, now: &Timestamp) -> Result<()> {
    let (pk, sk) = User::key(&user.uuid);
    let unchanged = || Expr::new("username = :name").value(":name", s(user.username.as_str()));
    // What closing the user removes: the token, the name markers and its place in the user list.
    let close = |tx: &mut Transaction<'_>| -> Result<()> {
        tx.tally(Tally::Users, -1);
        if let Some(hash) = &user.token_hash {
            let (token_pk, token_sk) = TokenItem::key(hash);
            tx.delete(&token_pk, &token_sk, None)?;
        }
        tx.delete(&format!("USERNAME#{}", user.username), "#META", None)?;
        if !user.email.is_empty() {
            tx.delete(&format!("EMAIL#{}", user.email.to_lowercase()), "#META", None)?;
        }
        Ok(())
    };
    let deleted = Event {
        event_type: "user_deleted",
        subject: format!("USER#{}", user.uuid),
        message: format!("User {} has been deleted.", user.username),
        details: json!({"username": user.username}),
    };
    if !user.deleting && user.held.is_empty() {
        // Nothing to revoke: all of it in one transaction, conditioned on that staying so.
        let mut tx = store.transaction();
        tx.delete(
            &pk,
            &sk,
            Some(
                unchanged().and(
                    Expr::new("attribute_not_exists(held) OR size(held) = :none")
                        .value(":none", crate::store::n(0)),
                ),
            ),
        )?;
        close(&mut tx)?;
        audit::record(&mut tx, Some(actor), &deleted, now)?;
        return match tx.commit().await {
            Ok(()) => Ok(()),
            Err(TxError::ConditionFailed(_)) => Err(Error::Conflict(
                "The user was changed by another request. Retry.".into(),
            )),
            Err(err) => Err(err.into()),
        };
    }
    if !user.deleting {
        let mut tx = store.transaction();
        tx.update(
            &pk,
            &sk,
            // Out of the user list, into the list of deletions under way.
            Expr::new("SET is_active = :no, deleting = :yes, GSI1PK = :deleting REMOVE token_hash")
                .value(":no", crate::store::b(false))
                .value(":yes", crate::store::b(true))
                .value(":deleting", s("USERS_BEING_DELETED")),
            Some(unchanged()),
        )?;
        close(&mut tx)?;
        let event = Event {
            event_type: "user_deletion_started",
            subject: format!("USER#{}", user.uuid),
            message: format!("User {} is being deleted.", user.username),
            details: json!({"grants": user.held.len()}),
        };
        audit::record(&mut tx, Some(actor), &event, now)?;
        match tx.commit().await {
            Ok(()) => {}
            Err(TxError::ConditionFailed(_)) => {
                return Err(Error::Conflict(
                    "The user was changed by another request. Retry.".into(),
                ));
            }
            Err(err) => return Err(err.into()),
        }
    }
    loop {
        let current = get(store, &user.uuid)
            .await?
            .ok_or_else(|| Error::not_found("User"))?;
        if crate::grants::revoke_batch_of_user(store, Some(actor), &current, now).await? == 0 {
            break;
        }
    }
    let mut tx = store.transaction();
    tx.delete(
        &pk,
        &sk,
        Some(
            Expr::new("deleting = :yes AND size(held) = :none")
                .value(":yes", crate::store::b(true))
                .value(":none", crate::store::n(0)),
        ),
    )?;
    audit::record(&mut tx, Some(actor), &deleted, now)?;
    match tx.commit().await {
        Ok(()) => Ok(()),
        Err(TxError::ConditionFailed(_)) => Err(Error::Conflict(
            "The user gained a role while being deleted. Retry the deletion.".into(),
        )),
        Err(err) => Err(err.into()),
    }
}

/// Recounts every user's `customer_grants` from their `held` map and every customer's
/// `users_count` from those, for tables made before the counts existed (`admin bootstrap
/// --recount`, run by `make dev`). Not for a table in use: it writes what it counted.
pub async fn recount(store: &Store) -> Result<usize> {
    let mut users_of: BTreeMap<Id, i64> = BTreeMap::new();
    let users = all(store).await?;
    for user in &users {
        let mut counts: BTreeMap<String, i64> = BTreeMap::new();
        for held in user.held.values() {
            *counts.entry(held.customer.to_string()).or_default() += 1;
        }
        for customer in counts.keys().filter_map(|c| Id::parse(c)) {
            *users_of.entry(customer).or_default() += 1;
        }
        let (pk, sk) = User::key(&user.uuid);
        let mut tx = store.transaction();
        tx.update(
            &pk,
            &sk,
            Expr::new("SET customer_grants = :counts").value(":counts", crate::store::encode_value(&counts)?),
            Some(Expr::new("attribute_exists(PK)")),
        )?;
        tx.commit().await?;
    }
    let mut start = None;
    loop {
        let (customers, next) = crate::scopes::customers_page(store, start).await?;
        for customer in customers {
            let count = users_of.get(&customer.uuid).copied().unwrap_or(0);
            let mut tx = store.transaction();
            tx.update(
                &crate::scopes::partition(crate::roles::ContentType::Customer, &customer.uuid),
                "#META",
                Expr::new("SET users_count = :count").value(":count", crate::store::n(count)),
                Some(Expr::new("attribute_exists(PK)")),
            )?;
            tx.commit().await?;
        }
        match next {
            Some(next) => start = Some(next),
            None => return Ok(users.len()),
        }
    }
}

fn lifetime_value(lifetime: Option<i64>) -> aws_sdk_dynamodb::types::AttributeValue {
    match lifetime {
        Some(seconds) => crate::store::n(seconds),
        None => aws_sdk_dynamodb::types::AttributeValue::Null(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(password_matches(Some(&hash), "correct horse"));
        assert!(!password_matches(Some(&hash), "wrong horse"));
        assert!(!password_matches(None, "correct horse"));
        assert!(
            argon2::password_hash::PasswordHash::new(DECOY_HASH).is_ok(),
            "the decoy must cost a real verification"
        );
    }

    #[test]
    fn django_hashes_of_imported_users_are_checked_as_django_does() {
        // Django's PBKDF2PasswordHasher with 1,000 iterations (hashlib.pbkdf2_hmac).
        let django = "pbkdf2_sha256$1000$saltsaltsalt$F7o7+5VTVzFAO998X6s3AHrDsJVdMiIlgndIMe19NvY=";
        assert!(is_checkable_hash(django));
        assert!(password_matches(Some(django), "correct horse"));
        assert!(!password_matches(Some(django), "correct horsE"));
        for broken in [
            "pbkdf2_sha256$1000$saltsaltsalt$F7o7+5VTVzFAO998X6s3AHrDsJVdMiIlgndIMe19NvZ=",
            "pbkdf2_sha256$0$saltsaltsalt$F7o7+5VTVzFAO998X6s3AHrDsJVdMiIlgndIMe19NvY=",
            "pbkdf2_sha256$1000$saltsaltsalt",
            "pbkdf2_sha256$many$saltsaltsalt$F7o7+5VTVzFAO998X6s3AHrDsJVdMiIlgndIMe19NvY=",
        ] {
            assert!(!password_matches(Some(broken), "correct horse"), "{broken}");
        }
        // Django's Argon2PasswordHasher: "argon2" before a PHC string.
        let argon = format!("argon2{}", hash_password("correct horse").unwrap());
        assert!(is_checkable_hash(&argon));
        assert!(password_matches(Some(&argon), "correct horse"));
        assert!(!is_checkable_hash("bcrypt_sha256$$2b$12$abc") && !is_checkable_hash("!unusable"));
    }

    #[test]
    fn an_imported_hash_is_upgraded_at_the_first_login_only() {
        let mut user = User {
            uuid: Id::new(),
            pk: 1,
            username: "u".into(),
            email: String::new(),
            first_name: String::new(),
            last_name: String::new(),
            native_name: String::new(),
            preferred_language: String::new(),
            is_staff: false,
            is_support: false,
            is_active: true,
            date_joined: String::new(),
            token_hash: None,
            password_hash: Some(
                "pbkdf2_sha256$1000$saltsaltsalt$F7o7+5VTVzFAO998X6s3AHrDsJVdMiIlgndIMe19NvY=".into(),
            ),
            held: BTreeMap::new(),
            customer_grants: BTreeMap::new(),
            sessions_valid_after: None,
            token_lifetime: None,
            deleting: false,
            email_change: None,
        };
        let upgrade = PasswordUpgrade::due(&user, "correct horse")
            .unwrap()
            .expect("due");
        assert!(
            upgrade.new.starts_with("$argon2id$") && password_matches(Some(&upgrade.new), "correct horse")
        );
        user.password_hash = Some(upgrade.new);
        assert!(PasswordUpgrade::due(&user, "correct horse").unwrap().is_none());
    }

    #[test]
    fn user_input_rules() {
        let body = json!({"username": "a b", "email": "x", "password": "short"});
        let Err(Error::Invalid(errors)) = UserInput::parse(Some(&body), true, false) else {
            panic!()
        };
        assert_eq!(errors.messages("username").len(), 1);
        assert_eq!(errors.messages("email"), ["Enter a valid email address."]);
        assert_eq!(
            errors.messages("password"),
            ["Ensure this field has at least 8 characters."]
        );
        let ignored = UserInput::parse(Some(&json!({"is_staff": true})), false, false).unwrap();
        assert_eq!(ignored.is_staff, None, "flags are read-only for non-staff");
        let staff = UserInput::parse(Some(&json!({"is_staff": true})), false, true).unwrap();
        assert_eq!(staff.is_staff, Some(true));
    }
}
