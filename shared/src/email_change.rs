//! Changing a user's e-mail address by confirmation (Waldur's `ChangeEmailRequest`): the user
//! (or staff) asks for a new address, a code is mailed to it through the outbox, and whoever
//! holds the code confirms it. One request per user: a new one replaces the old.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::{self, Event};
use crate::auth::AuthUser;
use crate::error::{Error, Result};
use crate::ids::Id;
use crate::outbox;
use crate::store::{Expr, Store, TxError, s};
use crate::time::{self, Timestamp};
use crate::users::{self, User, UserInput};

/// Waldur's `EMAIL_CHANGE_MAX_AGE`.
const MAX_AGE: chrono::Duration = chrono::Duration::days(1);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChangeRequest {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    entity: String,
    pub code: Id,
    pub user_uuid: Id,
    pub email: String,
    pub created: String,
    /// TTL: DynamoDB removes the request some time after it can no longer be confirmed.
    expires_at: i64,
}

impl ChangeRequest {
    pub fn key(code: &Id) -> (String, String) {
        (format!("EMAILCHANGE#{code}"), "#META".into())
    }

    fn has_expired_at(&self, now: &Timestamp) -> bool {
        time::parse_stored(&self.created).is_none_or(|created| created + MAX_AGE < *now)
    }
}

/// `POST /api/users/{uuid}/change_email/`: records the request (replacing the user's earlier
/// one) and queues the mail with the code to the new address, in one transaction.
pub async fn request(
    store: &Store,
    actor: &AuthUser,
    user: &User,
    email: &str,
    now: &Timestamp,
) -> Result<()> {
    if let Some(owner) = users::find_by_email(store, email).await?
        && owner.uuid != user.uuid
    {
        return Err(Error::field("email", "User with this email already exists."));
    }
    let code = Id::new();
    let (pk, sk) = ChangeRequest::key(&code);
    let request = ChangeRequest {
        pk,
        sk,
        entity: "email_change".into(),
        code,
        user_uuid: user.uuid,
        email: email.to_owned(),
        created: time::storage(now),
        expires_at: (*now + MAX_AGE * 2).timestamp(),
    };
    let mut tx = store.transaction();
    if let Some(previous) = &user.email_change {
        let (pk, sk) = ChangeRequest::key(previous);
        tx.delete(&pk, &sk, None)?;
    }
    tx.put(&request, Some(Expr::new("attribute_not_exists(PK)")))?;
    let (user_pk, user_sk) = User::key(&user.uuid);
    let unchanged = match &user.email_change {
        Some(previous) => Expr::new("email_change = :previous").value(":previous", s(previous.to_string())),
        None => Expr::new("attribute_exists(PK) AND attribute_not_exists(email_change)"),
    };
    tx.update(
        &user_pk,
        &user_sk,
        Expr::new("SET email_change = :code").value(":code", s(code.to_string())),
        Some(unchanged),
    )?;
    outbox::add(
        &mut tx,
        "email_change_requested",
        &json!({ "email": email }),
        &json!({ "user_uuid": user.uuid, "username": user.username, "code": code }),
        now,
    )?;
    let event = Event {
        event_type: "user_email_change_requested",
        subject: format!("USER#{}", user.uuid),
        message: format!("User {} has asked to change their e-mail address.", user.username),
        details: json!({ "email": email }),
    };
    audit::record(&mut tx, Some(actor), &event, now)?;
    tx.commit().await.map_err(changed_meanwhile)
}

/// `POST /api/users/{uuid}/cancel_change_email/`: whether there was a request to cancel.
pub async fn cancel(store: &Store, actor: &AuthUser, user: &User, now: &Timestamp) -> Result<bool> {
    let Some(code) = &user.email_change else {
        return Ok(false);
    };
    let (pk, sk) = ChangeRequest::key(code);
    // The pointer outlives a confirmed request; only a request still there is cancelled.
    if store.get::<ChangeRequest>(&pk, &sk).await?.is_none() {
        return Ok(false);
    }
    let mut tx = store.transaction();
    tx.delete(&pk, &sk, Some(Expr::new("attribute_exists(PK)")))?;
    let (user_pk, user_sk) = User::key(&user.uuid);
    tx.update(
        &user_pk,
        &user_sk,
        Expr::new("REMOVE email_change"),
        Some(Expr::new("email_change = :code").value(":code", s(code.to_string()))),
    )?;
    let event = Event {
        event_type: "user_email_change_canceled",
        subject: format!("USER#{}", user.uuid),
        message: format!("The e-mail change of {} has been canceled.", user.username),
        details: json!({}),
    };
    audit::record(&mut tx, Some(actor), &event, now)?;
    match tx.commit().await {
        Ok(()) => Ok(true),
        // Confirmed or replaced between the read and the write: nothing left to cancel.
        Err(TxError::ConditionFailed(0)) => Ok(false),
        Err(err) => Err(changed_meanwhile(err)),
    }
}

/// `POST /api/users/confirm_email/ {"code"}` (no authentication: the code is the proof): the
/// user's address becomes the requested one, as an update of the user that also consumes the
/// request, so a code confirms once.
pub async fn confirm(store: &Store, code: &str, now: &Timestamp) -> Result<()> {
    let code = Id::parse(code).ok_or_else(|| Error::rejected("The confirmation code is required."))?;
    let (pk, sk) = ChangeRequest::key(&code);
    let request: ChangeRequest = store
        .get(&pk, &sk)
        .await?
        .ok_or_else(|| Error::NotFound("Not found.".into()))?;
    if request.has_expired_at(now) {
        return Err(Error::rejected("Request has expired."));
    }
    let user = users::get(store, &request.user_uuid)
        .await?
        .filter(|user| !user.deleting)
        .ok_or_else(|| Error::NotFound("Not found.".into()))?;
    let input = UserInput {
        email: Some(request.email.clone()),
        ..UserInput::default()
    };
    users::update_with(store, &user.principal(), &user, &input, now, |tx| {
        tx.delete(&pk, &sk, Some(Expr::new("attribute_exists(PK)")))
            .map(|_| ())
    })
    .await
    .map(|_| ())
}

fn changed_meanwhile(err: TxError) -> Error {
    match err {
        TxError::ConditionFailed(_) => {
            Error::Conflict("The user was changed by another request. Retry.".into())
        }
        err => err.into(),
    }
}
