//! The table's stream as Lambda's event source mapping reads it, for the functions the template
//! triggers by a `DynamoDB` event: poll every shard from the event's starting position, keep the
//! records its `FilterCriteria` match, hand them over in batches of its `BatchSize`, and when
//! the function answers a failed record (partial batch response), hand that record and the
//! ones after it over again, with backoff, up to `MaximumRetryAttempts`; then they are dropped,
//! as they would go to the dead-letter queue, and logged.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::time::{Duration, Instant};

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::DynamoDbEventResponse;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use serde_json::Value as Json;
use serde_yaml::Value;

use crate::{TemplateError, binary_of};

/// How often an idle shard is read (Lambda reads each shard four times a second).
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How often the stream is asked for new shards.
const SHARD_REFRESH: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One `DynamoDB` event of one function in the template.
#[derive(Debug, Clone)]
pub struct StreamSource {
    pub function: String,
    batch_size: usize,
    max_retries: u32,
    starting_position: ShardIteratorType,
    /// Event patterns; a record passes if it matches any (none: every record passes).
    filters: Vec<Json>,
}

impl StreamSource {
    /// Every `DynamoDB` event source in the template.
    pub fn from_template(text: &str) -> Result<Vec<Self>, TemplateError> {
        let template: Value =
            serde_yaml::from_str(text).map_err(|e| TemplateError(format!("template.yaml: {e}")))?;
        let mut sources = Vec::new();
        for (name, resource) in template
            .get("Resources")
            .and_then(Value::as_mapping)
            .into_iter()
            .flatten()
        {
            let name = name.as_str().unwrap_or("?");
            let events = resource
                .get("Properties")
                .and_then(|p| p.get("Events"))
                .and_then(Value::as_mapping);
            for event in events.into_iter().flat_map(|events| events.values()) {
                if event.get("Type").and_then(Value::as_str) != Some("DynamoDB") {
                    continue;
                }
                let binary = binary_of(name, resource)?;
                let properties = event.get("Properties").cloned().unwrap_or_default();
                sources.push(StreamSource::new(name, binary, &properties)?);
            }
        }
        Ok(sources)
    }

    fn new(name: &str, function: &str, properties: &Value) -> Result<Self, TemplateError> {
        let number = |key: &str, default: u64| properties.get(key).and_then(Value::as_u64).unwrap_or(default);
        let starting_position = match properties.get("StartingPosition").and_then(Value::as_str) {
            Some("TRIM_HORIZON") => ShardIteratorType::TrimHorizon,
            Some("LATEST") => ShardIteratorType::Latest,
            other => {
                return Err(TemplateError(format!(
                    "{name}: StartingPosition {other:?} is not TRIM_HORIZON or LATEST"
                )));
            }
        };
        let mut filters = Vec::new();
        for filter in properties
            .get("FilterCriteria")
            .and_then(|c| c.get("Filters"))
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            let pattern = filter
                .get("Pattern")
                .and_then(Value::as_str)
                .ok_or_else(|| TemplateError(format!("{name}: a filter has no Pattern")))?;
            let pattern: Json = serde_json::from_str(pattern)
                .map_err(|e| TemplateError(format!("{name}: filter pattern {pattern}: {e}")))?;
            check_pattern(&pattern).map_err(|e| TemplateError(format!("{name}: {e}")))?;
            filters.push(pattern);
        }
        Ok(StreamSource {
            function: function.to_owned(),
            batch_size: number("BatchSize", 100) as usize,
            max_retries: number("MaximumRetryAttempts", 10) as u32,
            starting_position,
            filters,
        })
    }

    /// Whether the filter lets the record (as its JSON in the event) through.
    pub fn passes(&self, record: &Json) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|pattern| matches(pattern, record))
    }
}

/// The part of Lambda's filter syntax the runner implements: nested objects, lists of values
/// (one must equal the field), and `{"prefix": "…"}`. Anything else is refused at start-up
/// rather than matched wrongly.
fn check_pattern(pattern: &Json) -> Result<(), String> {
    match pattern {
        Json::Object(fields) => fields.values().try_for_each(check_pattern),
        Json::Array(choices) => choices.iter().try_for_each(|choice| match choice {
            Json::Object(rule) if rule.len() == 1 && rule.get("prefix").is_some_and(Json::is_string) => {
                Ok(())
            }
            Json::Object(rule) => Err(format!(
                "filter rule {rule:?} is not supported by the local runner"
            )),
            Json::Array(_) => Err("a filter list holds a list".into()),
            _ => Ok(()),
        }),
        other => Err(format!("filter pattern {other} must be an object or a list")),
    }
}

fn matches(pattern: &Json, value: &Json) -> bool {
    match pattern {
        Json::Object(fields) => fields
            .iter()
            .all(|(key, sub)| value.get(key).is_some_and(|field| matches(sub, field))),
        Json::Array(choices) => choices.iter().any(|choice| match choice {
            Json::Object(rule) => match (rule.get("prefix").and_then(Json::as_str), value.as_str()) {
                (Some(prefix), Some(text)) => text.starts_with(prefix),
                _ => false,
            },
            literal => literal == value,
        }),
        _ => false,
    }
}

/// The Lambda event record of a stream record.
fn event_record(record: Record, region: &str, stream_arn: &str) -> EventRecord {
    let mut event = EventRecord::default();
    event.aws_region = region.to_owned();
    event.event_id = record.event_id.unwrap_or_default();
    event.event_name = record
        .event_name
        .map(|name| name.as_str().to_owned())
        .unwrap_or_default();
    event.event_source = Some("aws:dynamodb".to_owned());
    event.event_version = record.event_version;
    event.event_source_arn = Some(stream_arn.to_owned());
    if let Some(change) = record.dynamodb {
        event.change.keys = change.keys.unwrap_or_default().into();
        event.change.new_image = change.new_image.unwrap_or_default().into();
        event.change.old_image = change.old_image.unwrap_or_default().into();
        event.change.sequence_number = change.sequence_number;
        event.change.size_bytes = change.size_bytes.unwrap_or_default();
    }
    event
}

struct Shard {
    iterator: Option<String>,
    pending: VecDeque<EventRecord>,
    attempts: u32,
    retry_at: Instant,
}

/// Feeds `source`'s function from the stream of `table` until the task is dropped. `invoke`
/// is the function's handler.
pub async fn run<F, Fut>(
    source: StreamSource,
    dynamodb: aws_sdk_dynamodb::Client,
    streams: aws_sdk_dynamodbstreams::Client,
    table: String,
    invoke: F,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    F: Fn(Event) -> Fut,
    Fut: Future<Output = DynamoDbEventResponse>,
{
    let described = dynamodb.describe_table().table_name(&table).send().await?;
    let stream_arn = described
        .table()
        .and_then(|t| t.latest_stream_arn())
        .ok_or_else(|| format!("table {table} has no stream: run `admin create-table`, which adds it"))?
        .to_owned();
    let region = streams
        .config()
        .region()
        .map(|r| r.to_string())
        .unwrap_or_default();
    tracing::info!(function = %source.function, %stream_arn, "reading the table's stream");
    let mut shards: HashMap<String, Shard> = HashMap::new();
    let mut finished: std::collections::HashSet<String> = Default::default();
    let mut refreshed: Option<Instant> = None;
    loop {
        if refreshed.is_none_or(|at| at.elapsed() >= SHARD_REFRESH) {
            refreshed = Some(Instant::now());
            let mut start = None;
            loop {
                let page = streams
                    .describe_stream()
                    .stream_arn(&stream_arn)
                    .set_exclusive_start_shard_id(start)
                    .send()
                    .await?;
                let description = page.stream_description();
                for shard in description.map(|d| d.shards()).unwrap_or_default() {
                    let Some(id) = shard.shard_id() else { continue };
                    if shards.contains_key(id) || finished.contains(id) {
                        continue;
                    }
                    // As Lambda does, a child shard is read only once its parent is done (the
                    // order of the item's changes), and from its beginning; the first shards
                    // from the event's starting position.
                    if shard.parent_shard_id().is_some_and(|p| shards.contains_key(p)) {
                        continue;
                    }
                    let position = if shard.parent_shard_id().is_some_and(|p| finished.contains(p)) {
                        ShardIteratorType::TrimHorizon
                    } else {
                        source.starting_position.clone()
                    };
                    let iterator = streams
                        .get_shard_iterator()
                        .stream_arn(&stream_arn)
                        .shard_id(id)
                        .shard_iterator_type(position)
                        .send()
                        .await?
                        .shard_iterator;
                    shards.insert(
                        id.to_owned(),
                        Shard {
                            iterator,
                            pending: VecDeque::new(),
                            attempts: 0,
                            retry_at: Instant::now(),
                        },
                    );
                }
                start = description
                    .and_then(|d| d.last_evaluated_shard_id())
                    .map(str::to_owned);
                if start.is_none() {
                    break;
                }
            }
        }
        let mut busy = false;
        for shard in shards.values_mut() {
            if let Some(iterator) = shard.iterator.take() {
                let page = streams.get_records().shard_iterator(iterator).send().await?;
                shard.iterator = page.next_shard_iterator.clone();
                for record in page.records.unwrap_or_default() {
                    let record = event_record(record, &region, &stream_arn);
                    if source.passes(&serde_json::to_value(&record)?) {
                        shard.pending.push_back(record);
                    }
                }
            }
            if shard.pending.is_empty() || shard.retry_at > Instant::now() {
                continue;
            }
            busy = true;
            let take = shard.pending.len().min(source.batch_size);
            let mut event = Event::default();
            event.records = shard.pending.iter().take(take).cloned().collect();
            let answer = invoke(event).await;
            let failed = answer
                .batch_item_failures
                .first()
                .and_then(|failure| failure.item_identifier.as_deref())
                .and_then(|id| {
                    shard
                        .pending
                        .iter()
                        .take(take)
                        .position(|r| r.change.sequence_number.as_deref() == Some(id))
                });
            match failed {
                None => {
                    shard.pending.drain(..take);
                    shard.attempts = 0;
                }
                Some(index) => {
                    shard.pending.drain(..index);
                    shard.attempts += 1;
                    if shard.attempts > source.max_retries {
                        let dropped: Vec<_> = shard.pending.drain(..take - index).collect();
                        tracing::error!(
                            function = %source.function,
                            records = dropped.len(),
                            "records failed after every retry; in AWS they go to the dead-letter queue"
                        );
                        shard.attempts = 0;
                    } else {
                        let backoff = (FIRST_BACKOFF * 2u32.pow(shard.attempts - 1)).min(MAX_BACKOFF);
                        tracing::warn!(function = %source.function, attempt = shard.attempts, ?backoff, "retrying a batch");
                        shard.retry_at = Instant::now() + backoff;
                    }
                }
            }
        }
        shards.retain(|id, shard| {
            let done = shard.iterator.is_none() && shard.pending.is_empty();
            if done {
                finished.insert(id.clone());
                // Its children may start now.
                refreshed = None;
            }
            !done
        });
        if !busy {
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(pattern: &str) -> Result<StreamSource, TemplateError> {
        let template = format!(
            r#"
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: mailer
    Properties:
      Events:
        Stream:
          Type: DynamoDB
          Properties:
            StartingPosition: TRIM_HORIZON
            BatchSize: 7
            FilterCriteria:
              Filters:
                - Pattern: '{pattern}'
"#
        );
        StreamSource::from_template(&template).map(|mut sources| sources.remove(0))
    }

    #[test]
    fn filters_as_the_template_says() {
        let source = source(
            r#"{"eventName": ["INSERT"], "dynamodb": {"Keys": {"PK": {"S": [{"prefix": "OUTBOX#"}]}}}}"#,
        )
        .unwrap();
        assert_eq!((source.function.as_str(), source.batch_size), ("mailer", 7));
        let record = |event: &str, pk: &str| serde_json::json!({"eventName": event, "dynamodb": {"Keys": {"PK": {"S": pk}}}});
        let cases = [
            (record("INSERT", "OUTBOX#1"), true),
            (record("MODIFY", "OUTBOX#1"), false),
            (record("INSERT", "USER#1"), false),
            (serde_json::json!({"eventName": "INSERT"}), false),
        ];
        for (record, passes) in cases {
            assert_eq!(source.passes(&record), passes, "{record}");
        }
    }

    #[test]
    fn a_stream_record_becomes_the_record_lambda_would_send() {
        use aws_sdk_dynamodbstreams::types::{AttributeValue, OperationType, StreamRecord};
        let change = StreamRecord::builder()
            .keys("PK", AttributeValue::S("OUTBOX#2026".into()))
            .keys("SK", AttributeValue::S("n1".into()))
            .sequence_number("100")
            .build();
        let record = Record::builder()
            .event_name(OperationType::Insert)
            .event_id("e1")
            .dynamodb(change)
            .build();
        let json = serde_json::to_value(event_record(record, "us-east-1", "arn:stream")).unwrap();
        assert_eq!(json["eventName"], "INSERT");
        assert_eq!(
            json["dynamodb"]["Keys"]["PK"],
            serde_json::json!({"S": "OUTBOX#2026"})
        );
        assert_eq!(json["dynamodb"]["SequenceNumber"], "100");
        assert_eq!(json["eventSourceARN"], "arn:stream");
    }

    #[test]
    fn refuses_a_filter_it_cannot_match() {
        let refused = source(r#"{"eventName": [{"anything-but": "REMOVE"}]}"#).unwrap_err();
        assert!(refused.0.contains("not supported"), "{refused}");
    }

    #[test]
    fn the_template_feeds_the_notifier_outbox_inserts_only() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml")).unwrap();
        let sources = StreamSource::from_template(&text).unwrap();
        assert_eq!(sources.len(), 1);
        assert_eq!(sources[0].function, "notifier");
        let outbox = serde_json::json!({"eventName": "INSERT", "dynamodb": {"Keys": {"PK": {"S": "OUTBOX#2026"}, "SK": {"S": "x"}}}});
        assert!(sources[0].passes(&outbox));
        let grant = serde_json::json!({"eventName": "INSERT", "dynamodb": {"Keys": {"PK": {"S": "USER#1"}, "SK": {"S": "x"}}}});
        assert!(!sources[0].passes(&grant));
    }
}
