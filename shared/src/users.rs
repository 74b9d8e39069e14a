//! Users and their API tokens (the part the foundation needs: the bootstrap of a staff user).

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::{self, Event};
use crate::auth::{self, AuthUser, TokenItem};
use crate::error::{Error, Result};
use crate::ids::Id;
use crate::store::{Expr, Store, TxError, s};
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
    pub is_staff: bool,
    pub is_support: bool,
    pub is_active: bool,
    pub date_joined: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_hash: Option<String>,
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

    fn token_item(&self, hash: &str, now: &Timestamp) -> TokenItem {
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
            created: time::storage(now),
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
}

pub async fn get(store: &Store, uuid: &Id) -> Result<Option<User>> {
    let (pk, sk) = User::key(uuid);
    Ok(store.get::<UserItem>(&pk, &sk).await?.map(|item| item.user))
}

pub async fn find_by_username(store: &Store, username: &str) -> Result<Option<User>> {
    let marker: Option<UniqueMarker> = store.get(&format!("USERNAME#{username}"), "#META").await?;
    match marker {
        Some(marker) => get(store, &marker.user_uuid).await,
        None => Ok(None),
    }
}

/// Next value of a named counter (`COUNTER` / `<name>`), for integer ids.
pub async fn next_number(store: &Store, counter: &str) -> Result<i64> {
    let output = store
        .client()
        .update_item()
        .table_name(store.table())
        .key("PK", s("COUNTER"))
        .key("SK", s(counter))
        .update_expression("ADD #value :one")
        .expression_attribute_names("#value", "value")
        .expression_attribute_values(":one", crate::store::n(1))
        .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
        .send()
        .await
        .map_err(crate::store::sdk_error)?;
    output
        .attributes
        .as_ref()
        .and_then(|a| a.get("value"))
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
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
        is_staff: new.is_staff,
        is_support: new.is_support,
        is_active: true,
        date_joined: time::storage(now),
        token_hash: None,
    };
    let not_exists = || Some(Expr::new("attribute_not_exists(PK)"));
    let mut tx = store.transaction();
    tx.put(&UserItem::new(user.clone()), not_exists())?;
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

/// Replaces the user's API token (one per user, as in Waldur) and returns the new key; the key
/// itself is never stored.
pub async fn issue_token(
    store: &Store,
    actor: Option<&AuthUser>,
    user: &User,
    now: &Timestamp,
) -> Result<String> {
    let token = auth::new_token()?;
    let hash = auth::token_hash(&token);
    let (pk, sk) = User::key(&user.uuid);
    let mut tx = store.transaction();
    if let Some(old) = &user.token_hash {
        let (old_pk, old_sk) = TokenItem::key(old);
        tx.delete(&old_pk, &old_sk, None)?;
    }
    tx.put(
        &user.token_item(&hash, now),
        Some(Expr::new("attribute_not_exists(PK)")),
    )?;
    let unchanged = match &user.token_hash {
        Some(old) => Expr::new("token_hash = :old").value(":old", s(old.as_str())),
        None => Expr::new("attribute_exists(PK) AND attribute_not_exists(token_hash)"),
    };
    tx.update(
        &pk,
        &sk,
        Expr::new("SET token_hash = :new").value(":new", s(hash.as_str())),
        Some(unchanged),
    )?;
    let event = Event {
        event_type: "token_issued",
        subject: format!("USER#{}", user.uuid),
        message: format!("A new API token has been issued for {}.", user.username),
        details: json!({}),
    };
    audit::record(&mut tx, actor, &event, now)?;
    match tx.commit().await {
        Ok(()) => Ok(token),
        Err(TxError::ConditionFailed(_)) => Err(Error::Conflict(
            "The user's token was changed by another request. Retry.".into(),
        )),
        Err(err) => Err(err.into()),
    }
}

/// Whether `token` is the current token of `user`.
pub fn token_belongs_to(user: &User, token: &str) -> bool {
    user.token_hash.as_deref() == Some(auth::token_hash(token).as_str())
}
