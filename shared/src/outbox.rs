//! Notifications to be sent, written in the transaction of the change that causes them; a mail
//! transport (not part of this service) reads a day's partition and delivers them.

use serde::Serialize;
use serde_json::Value;

use crate::error::Result;
use crate::ids::Id;
use crate::store::Transaction;
use crate::time::{self, Timestamp};

#[derive(Serialize)]
struct OutboxItem<'a> {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    entity: &'static str,
    uuid: Id,
    kind: &'a str,
    /// Who should hear of it, e.g. `{"user": <uuid>}` or `{"approvers_of": <scope>}`.
    recipients: &'a Value,
    payload: &'a Value,
    created: String,
}

pub fn add(
    tx: &mut Transaction<'_>,
    kind: &str,
    recipients: &Value,
    payload: &Value,
    now: &Timestamp,
) -> Result<usize> {
    let uuid = Id::new();
    let created = time::storage(now);
    let item = OutboxItem {
        pk: format!("OUTBOX#{}", now.format("%Y-%m-%d")),
        sk: format!("{created}#{uuid}"),
        entity: "outbox",
        uuid,
        kind,
        recipients,
        payload,
        created,
    };
    tx.put(&item, None)
}
