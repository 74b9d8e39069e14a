//! Delivering the outbox: each outbox item (written in the transaction of the change that
//! caused it, see `outbox`) is read, its recipients resolved to users with an e-mail address,
//! rendered in each one's `preferred_language` (English where no translation exists) and sent
//! by SMTP. Every address that was sent to is recorded on the item with a conditional write
//! before the next, and the item is marked `sent_at` at the end, so a retried or duplicated
//! stream record sends nothing twice.

mod recipients;
mod render;
mod smtp;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::store::{Expr, Store, TxError, s};
use crate::time::{self, Timestamp};

pub use recipients::{Recipient, Recipients};
pub use render::{Message, render};
pub use smtp::{Mailer, SmtpConfig};

/// An outbox item as stored (`outbox::add`), with what delivery has recorded on it.
#[derive(Debug, Clone, Deserialize)]
pub struct OutboxItem {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    pub kind: String,
    pub recipients: Value,
    pub payload: Value,
    #[serde(default)]
    pub sent_at: Option<String>,
    /// The addresses already sent to, one conditional write each.
    #[serde(default)]
    pub sent_to: Vec<String>,
}

/// What one delivery did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Addresses sent to by this delivery (not those of an earlier attempt).
    pub sent: Vec<String>,
    /// Recipients without an e-mail address.
    pub skipped: usize,
    /// The item had been delivered already (a duplicated or retried record).
    pub already_sent: bool,
}

/// Delivers the outbox item at `pk`/`sk`, read consistently so that a record delivered
/// meanwhile is seen as such. An SMTP failure is recorded on the item (`last_error`) and
/// returned; the addresses reached before it are not sent to again on the retry.
pub async fn deliver(
    store: &Store,
    mailer: &Mailer,
    links: &Links,
    pk: &str,
    sk: &str,
    now: &Timestamp,
) -> Result<Delivery> {
    let Some(item) = store.get::<OutboxItem>(pk, sk).await? else {
        return Err(Error::internal(format!("outbox item {pk}/{sk} not found")));
    };
    if item.sent_at.is_some() {
        return Ok(Delivery {
            already_sent: true,
            ..Delivery::default()
        });
    }
    let Recipients { people, skipped } = recipients::resolve(store, &item, now).await?;
    let context = render::context(store, &item, links, now).await?;
    let mut delivery = Delivery {
        skipped,
        ..Delivery::default()
    };
    for person in people.iter().filter(|p| !item.sent_to.contains(&p.email)) {
        let message = render(&item.kind, &person.language, &context, person)?;
        if let Err(err) = mailer.send(&person.email, &message).await {
            record_error(store, &item, &err).await?;
            return Err(err);
        }
        if !mark_sent_to(store, &item, &person.email).await? {
            // Another delivery of the same item got here first: it carries on from here.
            delivery.already_sent = true;
            return Ok(delivery);
        }
        delivery.sent.push(person.email.clone());
    }
    mark_sent(store, &item, people.len(), skipped, now).await?;
    Ok(delivery)
}

/// Where the links in the mails point (the web client's address, `HOMEPORT_URL`).
#[derive(Debug, Clone)]
pub struct Links {
    pub homeport: String,
}

impl Links {
    /// `HOMEPORT_URL`, by default the template's placeholder (this product has no web client).
    pub fn from_env() -> Self {
        Links {
            homeport: std::env::var("HOMEPORT_URL")
                .unwrap_or_else(|_| "https://homeport.example.com".to_owned())
                .trim_end_matches('/')
                .to_owned(),
        }
    }
}

async fn mark_sent_to(store: &Store, item: &OutboxItem, email: &str) -> Result<bool> {
    let mut tx = store.transaction();
    tx.update(
        &item.pk,
        &item.sk,
        Expr::new("SET sent_to = list_append(if_not_exists(sent_to, :empty), :one) REMOVE last_error")
            .value(":empty", aws_sdk_dynamodb::types::AttributeValue::L(vec![]))
            .value(":one", aws_sdk_dynamodb::types::AttributeValue::L(vec![s(email)])),
        Some(
            Expr::new(
                "attribute_exists(PK) AND attribute_not_exists(sent_at) AND NOT contains(sent_to, :email)",
            )
            .value(":email", s(email)),
        ),
    )?;
    match tx.commit().await {
        Ok(()) => Ok(true),
        Err(TxError::ConditionFailed(0)) => Ok(false),
        Err(err) => Err(err.into()),
    }
}

async fn mark_sent(
    store: &Store,
    item: &OutboxItem,
    recipients: usize,
    skipped: usize,
    now: &Timestamp,
) -> Result<()> {
    let mut tx = store.transaction();
    tx.update(
        &item.pk,
        &item.sk,
        Expr::new("SET sent_at = :now, recipient_count = :count, skipped_count = :skipped REMOVE last_error")
            .value(":now", s(time::storage(now)))
            .value(":count", crate::store::n(recipients as i64))
            .value(":skipped", crate::store::n(skipped as i64)),
        Some(Expr::new(
            "attribute_exists(PK) AND attribute_not_exists(sent_at)",
        )),
    )?;
    match tx.commit().await {
        Ok(()) | Err(TxError::ConditionFailed(0)) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

async fn record_error(store: &Store, item: &OutboxItem, err: &Error) -> Result<()> {
    let mut tx = store.transaction();
    tx.update(
        &item.pk,
        &item.sk,
        Expr::new("SET last_error = :error ADD attempts :one")
            .value(":error", s(err.to_string()))
            .value(":one", crate::store::n(1)),
        Some(Expr::new(
            "attribute_exists(PK) AND attribute_not_exists(sent_at)",
        )),
    )?;
    match tx.commit().await {
        Ok(()) | Err(TxError::ConditionFailed(0)) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// An outbox item named by its keys, in the order the changes wrote them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxKey {
    pub pk: String,
    pub sk: String,
}

impl OutboxKey {
    /// The outbox item a new item's keys name; `None` for any other item.
    pub fn of_new_item(pk: &str, sk: &str) -> Option<Self> {
        pk.starts_with("OUTBOX#").then(|| OutboxKey {
            pk: pk.to_owned(),
            sk: sk.to_owned(),
        })
    }
}

/// Delivers the items in order and stops at the first failure: its index is returned, and
/// it and the items after it are to come again (those before it are done).
pub async fn deliver_in_order(
    store: &Store,
    mailer: &Mailer,
    links: &Links,
    items: &[OutboxKey],
) -> Option<usize> {
    for (index, OutboxKey { pk, sk }) in items.iter().enumerate() {
        match deliver(store, mailer, links, pk, sk, &time::now()).await {
            Ok(delivery) => tracing::info!(
                pk,
                sk,
                sent = delivery.sent.len(),
                skipped = delivery.skipped,
                already_sent = delivery.already_sent,
                "notification delivered"
            ),
            Err(err) => {
                tracing::warn!(pk, sk, %err, "notification not delivered; it will be retried");
                return Some(index);
            }
        }
    }
    None
}
