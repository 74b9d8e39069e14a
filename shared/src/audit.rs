//! Audit events: who did what, when. An event is always added to the transaction of the change
//! it records, so there is never a change without its event or an event without its change.

use serde::Serialize;
use serde_json::Value;

use crate::auth::AuthUser;
use crate::error::Result;
use crate::ids::Id;
use crate::store::Transaction;
use crate::time::{self, Timestamp};

#[derive(Serialize)]
struct AuditItem<'a> {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    #[serde(rename = "GSI1PK")]
    by_day: String,
    #[serde(rename = "GSI1SK")]
    by_day_sort: String,
    entity: &'static str,
    uuid: Id,
    event_type: &'a str,
    created: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    actor_uuid: Option<Id>,
    #[serde(skip_serializing_if = "Option::is_none")]
    actor_username: Option<&'a str>,
    /// The staff user who acted as `actor` (`X-Impersonated-User-Uuid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    impersonator_uuid: Option<Id>,
    #[serde(skip_serializing_if = "Option::is_none")]
    impersonator_username: Option<&'a str>,
    subject: &'a str,
    message: &'a str,
    details: &'a Value,
}

/// What an event is about, e.g. `ROLE#<uuid>`; it names the partition the event is kept in.
pub struct Event<'a> {
    pub event_type: &'a str,
    pub subject: String,
    pub message: String,
    pub details: Value,
}

pub fn record(
    tx: &mut Transaction<'_>,
    actor: Option<&AuthUser>,
    event: &Event<'_>,
    now: &Timestamp,
) -> Result<usize> {
    let uuid = Id::new();
    let created = time::storage(now);
    let item = AuditItem {
        pk: format!("AUDIT#{}", event.subject),
        sk: format!("EVENT#{created}#{uuid}"),
        by_day: format!("AUDIT#{}", now.format("%Y-%m-%d")),
        by_day_sort: format!("{created}#{uuid}"),
        entity: "audit_event",
        uuid,
        event_type: event.event_type,
        created: created.clone(),
        actor_uuid: actor.map(|a| a.uuid),
        actor_username: actor.map(|a| a.username.as_str()),
        impersonator_uuid: actor.and_then(|a| a.impersonator.as_ref()).map(|i| i.uuid),
        impersonator_username: actor
            .and_then(|a| a.impersonator.as_ref())
            .map(|i| i.username.as_str()),
        subject: &event.subject,
        message: &event.message,
        details: &event.details,
    };
    tx.put(&item, None)
}
