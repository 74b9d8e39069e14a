//! The notifier's handler: the stream records Lambda's event source mapping hands over (INSERTs
//! of outbox items, by its filter) become the outbox items to deliver, in order; the first one
//! that failed is answered as the partial batch response, so that the mapping retries from it.

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use serde_dynamo::AttributeValue;
use shared::notify::{self, Links, Mailer, OutboxKey};
use shared::store::Store;

pub async fn handle(store: &Store, mailer: &Mailer, links: &Links, event: &Event) -> DynamoDbEventResponse {
    // The filter lets only outbox INSERTs through; anything else in a batch is not ours to send.
    let (records, items): (Vec<&EventRecord>, Vec<OutboxKey>) = event
        .records
        .iter()
        .filter_map(|record| outbox_key(record).map(|key| (record, key)))
        .unzip();
    let mut response = DynamoDbEventResponse::default();
    if let Some(failed) = notify::deliver_in_order(store, mailer, links, &items).await {
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = records[failed].change.sequence_number.clone();
        response.batch_item_failures.push(failure);
    }
    response
}

fn outbox_key(record: &EventRecord) -> Option<OutboxKey> {
    let key = |name: &str| match record.change.keys.get(name) {
        Some(AttributeValue::S(value)) => Some(value.as_str()),
        _ => None,
    };
    if record.event_name != "INSERT" {
        return None;
    }
    OutboxKey::of_new_item(key("PK")?, key("SK")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_event_is_an_outbox_insert() {
        let event: Event =
            serde_json::from_str(include_str!("../../../events/notifier-outbox.json")).unwrap();
        let keys: Vec<Option<OutboxKey>> = event.records.iter().map(outbox_key).collect();
        assert_eq!(keys.len(), 1);
        assert!(keys[0].as_ref().is_some_and(|k| k.pk == "OUTBOX#2026-12-01"));
        let mut modify = event.records[0].clone();
        modify.event_name = "MODIFY".into();
        assert_eq!(outbox_key(&modify), None, "only new outbox items are sent");
    }
}
