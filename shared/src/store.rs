//! The single-table store: one DynamoDB client per process, typed items through serde_dynamo,
//! and one transaction builder that reports which condition failed.
//!
//! The key schema is described in `docs/data-model.md`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, KeysAndAttributes, Projection, ProjectionType, Put, PutRequest,
    ScalarAttributeType, StreamSpecification, StreamViewType, TransactWriteItem, Update, WriteRequest,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::page::{Order, Page, PageRequest, PageSelector};
use crate::secrets::TokenKeys;

pub type Item = HashMap<String, AttributeValue>;

/// The overloaded secondary indexes of the table, each with `<name>PK` / `<name>SK` keys.
pub const GSI_NAMES: [&str; 3] = ["GSI1", "GSI2", "GSI3"];

const UNAVAILABLE: &str = "The data store is unavailable. Try again later.";
const MAX_TRANSACTION_ATTEMPTS: u32 = 6;
/// The answer to a transaction whose condition failed where no more specific text applies.
pub const CHANGED_MEANWHILE: &str = "The data changed meanwhile; nothing was changed. Retry.";
const TOO_LARGE: &str = "This change would make a stored item larger than 400 KB.";

#[derive(Clone)]
pub struct Store {
    client: Client,
    table: Arc<str>,
    token_keys: Arc<TokenKeys>,
}

impl Store {
    /// A store whose tokens are sealed with a key of this process only (tests, benchmarks);
    /// the deployed functions use `from_env`, whose keys come from their configuration.
    pub fn new(client: Client, table: impl Into<Arc<str>>) -> Self {
        Store {
            client,
            table: table.into(),
            token_keys: Arc::new(TokenKeys::ephemeral()),
        }
    }

    pub fn with_token_keys(self, token_keys: TokenKeys) -> Self {
        Store {
            token_keys: Arc::new(token_keys),
            ..self
        }
    }

    /// The keys that seal API tokens and find them (never stored in the table).
    pub fn token_keys(&self) -> &TokenKeys {
        &self.token_keys
    }

    /// The store of a Lambda container or a tool: region, credentials and endpoint come from the
    /// standard AWS configuration (`AWS_ENDPOINT_URL_DYNAMODB` points it at DynamoDB Local), the
    /// table name from `TABLE_NAME`.
    pub async fn from_env() -> Result<Self> {
        let table = std::env::var("TABLE_NAME").map_err(|_| Error::internal("TABLE_NAME is not set"))?;
        let config = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(timeouts())
            .retry_config(retries())
            .load()
            .await;
        Ok(Store::new(Client::new(&config), table).with_token_keys(TokenKeys::from_env()?))
    }

    /// Opens the connection to DynamoDB (TCP, TLS, credentials) with one cheap read, so that a
    /// container's first request does not pay for it: Lambda runs this during init. A failure
    /// here is left for the requests to meet and report.
    pub async fn warm(&self) {
        if let Err(error) = self.get::<serde_json::Value>("#WARM", "#WARM").await {
            tracing::warn!(%error, "warming the DynamoDB connection failed");
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub async fn get<T: DeserializeOwned>(&self, pk: &str, sk: &str) -> Result<Option<T>> {
        self.get_item(pk, sk).await?.map(decode).transpose()
    }

    /// As `get`, undecoded.
    pub async fn get_item(&self, pk: &str, sk: &str) -> Result<Option<Item>> {
        let output = self
            .client
            .get_item()
            .table_name(self.table())
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(output.item)
    }

    /// Every item of a partition whose sort key starts with `sk_prefix`, following
    /// `LastEvaluatedKey` to the end. For small, bounded partitions only.
    pub async fn query_prefix<T: DeserializeOwned>(&self, pk: &str, sk_prefix: &str) -> Result<Vec<T>> {
        let query = self
            .client
            .query()
            .table_name(self.table())
            .key_condition_expression("PK = :pk AND begins_with(SK, :prefix)")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":prefix", s(sk_prefix))
            .consistent_read(true);
        all_pages(query).await
    }

    /// Every item of a partition (for small, bounded partitions).
    pub async fn query_partition<T: DeserializeOwned>(&self, pk: &str) -> Result<Vec<T>> {
        self.partition_items(pk).await?.into_iter().map(decode).collect()
    }

    /// As `query_partition`, undecoded: for partitions that hold items of several kinds.
    pub async fn partition_items(&self, pk: &str) -> Result<Vec<Item>> {
        let query = self
            .client
            .query()
            .table_name(self.table())
            .key_condition_expression("PK = :pk")
            .expression_attribute_values(":pk", s(pk))
            .consistent_read(true);
        all_page_items(query).await
    }

    /// A Query of one whole partition of a secondary index.
    fn index_query(&self, index: &str, pk: &str) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(self.table())
            .index_name(index)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", format!("{index}PK"))
            .expression_attribute_values(":pk", s(pk))
    }

    /// Every item of one partition of a secondary index, in index order (eventually consistent).
    pub async fn query_index<T: DeserializeOwned>(&self, index: &str, pk: &str) -> Result<Vec<T>> {
        all_pages(self.index_query(index, pk)).await
    }

    /// How many items one partition of a secondary index holds: a Query that returns counts,
    /// not items.
    pub async fn count_index(&self, index: &str, pk: &str) -> Result<usize> {
        let mut count = 0;
        let mut start = None;
        loop {
            let output = self
                .index_query(index, pk)
                .select(aws_sdk_dynamodb::types::Select::Count)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(sdk_error)?;
            count += usize::try_from(output.count).unwrap_or(0);
            match output.last_evaluated_key.filter(|key| !key.is_empty()) {
                Some(key) => start = Some(key),
                None => return Ok(count),
            }
        }
    }

    /// Page `number` (of `size`) of an index partition in `order` of its sort key. The items
    /// before the page are read as keys only (the table's and the index's key attributes, to
    /// start the page's Query after them), so a deep page reads the keys it skips, never their
    /// items; page 1 is one Query of `size` items.
    pub async fn index_page_at<T: DeserializeOwned>(
        &self,
        index: &str,
        pk: &str,
        order: Order,
        number: usize,
        size: usize,
    ) -> Result<Vec<T>> {
        let skip = number.saturating_sub(1).saturating_mul(size);
        let start = match self.index_keys(index, pk, order, skip, None).await? {
            (keys, Some(last)) if keys.len() == skip => Some(last),
            // The partition ended before the page.
            (keys, _) if keys.len() < skip || skip > 0 => return Ok(Vec::new()),
            _ => None,
        };
        self.index_items(index, pk, order, size, start)
            .await?
            .into_iter()
            .map(decode)
            .collect()
    }

    /// The first `count` keys (the table's and the index's key attributes) of an index
    /// partition in `order`, from `start`, and the key to go on from, if any.
    async fn index_keys(
        &self,
        index: &str,
        pk: &str,
        order: Order,
        count: usize,
        start: Option<Item>,
    ) -> Result<(Vec<Item>, Option<Item>)> {
        self.index_run(index, pk, order, count, start, true).await
    }

    /// The first `count` items of an index partition in `order`, from `start`.
    async fn index_items(
        &self,
        index: &str,
        pk: &str,
        order: Order,
        count: usize,
        start: Option<Item>,
    ) -> Result<Vec<Item>> {
        Ok(self.index_run(index, pk, order, count, start, false).await?.0)
    }

    /// Queries that read the first `count` items (or only their keys) of an index partition
    /// in `order` from `start`, and stop there; the key to go on from, if any.
    async fn index_run(
        &self,
        index: &str,
        pk: &str,
        order: Order,
        count: usize,
        mut start: Option<Item>,
        keys_only: bool,
    ) -> Result<(Vec<Item>, Option<Item>)> {
        let mut items = Vec::new();
        while items.len() < count {
            let mut query = self
                .index_query(index, pk)
                .scan_index_forward(order == Order::Ascending)
                .limit(i32::try_from(count - items.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take());
            if keys_only {
                query = query
                    .projection_expression("PK, SK, #pk, #sk")
                    .expression_attribute_names("#sk", format!("{index}SK"));
            }
            let output = query.send().await.map_err(sdk_error)?;
            items.extend(output.items.unwrap_or_default());
            match output.last_evaluated_key.filter(|key| !key.is_empty()) {
                Some(key) => start = Some(key),
                None => break,
            }
        }
        Ok((items, start))
    }

    /// Page `number` (of `size`) of several partitions of one index taken as one list, merged
    /// in `order` of their sort key. Page 1 is one Query of `size` items per partition, all at
    /// once; a deeper page k reads k × size keys of each (concurrently), picks the page's keys
    /// from their merge and reads those items (one BatchGetItem).
    pub async fn merged_page_at<T: DeserializeOwned>(
        &self,
        index: &str,
        partitions: &[&str],
        order: Order,
        number: usize,
        size: usize,
    ) -> Result<Vec<T>> {
        let sort_key = format!("{index}SK");
        let by_sort_key = |a: &Item, b: &Item| {
            let key = |item: &Item| item.get(&sort_key).and_then(|v| v.as_s().ok()).cloned();
            let ordering = key(a).cmp(&key(b));
            if order == Order::Ascending {
                ordering
            } else {
                ordering.reverse()
            }
        };
        let skip = number.saturating_sub(1).saturating_mul(size);
        let mut page = if skip == 0 {
            let reads = partitions
                .iter()
                .map(|pk| self.index_items(index, pk, order, size, None))
                .collect();
            let mut items: Vec<Item> = concurrently(reads).await?.into_iter().flatten().collect();
            items.sort_by(by_sort_key);
            items.truncate(size);
            items
        } else {
            let reads = partitions
                .iter()
                .map(|pk| self.index_keys(index, pk, order, skip + size, None))
                .collect();
            let mut keys: Vec<Item> = concurrently(reads)
                .await?
                .into_iter()
                .flat_map(|(keys, _)| keys)
                .collect();
            keys.sort_by(by_sort_key);
            let wanted: Vec<(String, String)> = keys
                .iter()
                .skip(skip)
                .take(size)
                .filter_map(|key| {
                    let text = |name: &str| key.get(name).and_then(|v| v.as_s().ok()).cloned();
                    Some((text("PK")?, text("SK")?))
                })
                .collect();
            self.batch_get_items(&wanted).await?
        };
        page.sort_by(by_sort_key);
        page.into_iter().map(decode).collect()
    }

    /// A page of a list kept in index order whose length is known without reading it (a
    /// counter): the page's Query and the count go out together, so the list costs one round
    /// trip whatever its length (`page=last` needs the count first: two).
    pub async fn numbered_page<T: DeserializeOwned>(
        &self,
        (index, pk, order): (&str, &str, Order),
        request: &PageRequest,
        total: impl Future<Output = Result<usize>>,
    ) -> Result<Page<T>> {
        let counted = async { Ok((total.await?, ())) };
        Ok(self
            .numbered_page_with((index, pk, order), request, counted)
            .await?
            .0)
    }

    /// As `numbered_page`, where the read that brings the count brings more (e.g. the item that
    /// carries the counter), which comes back beside the page.
    pub async fn numbered_page_with<T: DeserializeOwned, X>(
        &self,
        (index, pk, order): (&str, &str, Order),
        request: &PageRequest,
        counted: impl Future<Output = Result<(usize, X)>>,
    ) -> Result<(Page<T>, X)> {
        let (items, (total, extra), number) = match request.selector {
            PageSelector::Number(number) => {
                let (items, counted) = tokio::try_join!(
                    self.index_page_at(index, pk, order, number, request.size),
                    counted
                )?;
                (items, counted, number)
            }
            PageSelector::Last => {
                let counted = counted.await?;
                let number = counted.0.div_ceil(request.size).max(1);
                let items = self.index_page_at(index, pk, order, number, request.size).await?;
                (items, counted, number)
            }
        };
        Ok((Page::numbered(items, number, request.size, total)?, extra))
    }

    /// A page of a tallied list (`Tally`), read in `order` of its index partition, beside its
    /// tally (`prefetched` where the request's first read brought it).
    pub async fn tallied_page<T: DeserializeOwned>(
        &self,
        tally: Tally,
        order: Order,
        request: &PageRequest,
        prefetched: Option<Vec<Item>>,
    ) -> Result<Page<T>> {
        let (index, pk) = tally.index_partition();
        let total = self.tally(tally, prefetched);
        self.numbered_page((index, pk, order), request, total).await
    }

    /// The length of a counted list: the sum of its counter items (`prefetched`: those the
    /// request's first read found, where it read them), or, where none was ever written (a
    /// table from before the tallies, until `admin bootstrap --recount`), a counting Query.
    pub async fn tally(&self, tally: Tally, prefetched: Option<Vec<Item>>) -> Result<usize> {
        let items = match prefetched {
            Some(items) => items,
            None => self.batch_get_items(&tally.keys()).await?,
        };
        if items.is_empty() {
            let (index, pk) = tally.index_partition();
            return self.count_index(index, pk).await;
        }
        let mut total: i64 = 0;
        for item in items {
            total += decode::<TallyItem>(item)?.count;
        }
        Ok(usize::try_from(total).unwrap_or(0))
    }

    /// Sets a counted list's counter items to what its index holds now (a counting Query),
    /// where their sum differs: the count in the first, 0 in the others. For a table written
    /// before the tallies existed, and after an import; writes racing with it would be
    /// miscounted.
    pub async fn recount_tally(&self, tally: Tally) -> Result<usize> {
        let (index, pk) = tally.index_partition();
        let keys = tally.keys();
        let (count, shards) = tokio::try_join!(self.count_index(index, pk), self.batch_get_items(&keys))?;
        let mut recorded: i64 = 0;
        for shard in &shards {
            recorded += decode::<TallyItem>(shard.clone())?.count;
        }
        if !shards.is_empty() && usize::try_from(recorded).ok() == Some(count) {
            return Ok(count);
        }
        let items: Vec<TallyItem> = (0..TALLY_SHARDS)
            .map(|shard| tally.item(shard, if shard == 0 { count } else { 0 }))
            .collect();
        self.batch_put(&items).await?;
        Ok(count)
    }

    /// One page of an index partition, from `start`; the key to continue from, if any.
    pub async fn index_page<T: DeserializeOwned>(
        &self,
        index: &str,
        pk: &str,
        sk_below: Option<&str>,
        limit: i32,
        start: Option<Item>,
    ) -> Result<(Vec<T>, Option<Item>)> {
        let mut query = self
            .client
            .query()
            .table_name(self.table())
            .index_name(index)
            .expression_attribute_names("#pk", format!("{index}PK"))
            .expression_attribute_values(":pk", s(pk))
            .limit(limit)
            .set_exclusive_start_key(start);
        query = match sk_below {
            Some(below) => query
                .key_condition_expression("#pk = :pk AND #sk < :below")
                .expression_attribute_names("#sk", format!("{index}SK"))
                .expression_attribute_values(":below", s(below)),
            None => query.key_condition_expression("#pk = :pk"),
        };
        let output = query.send().await.map_err(sdk_error)?;
        let items = output
            .items
            .unwrap_or_default()
            .into_iter()
            .map(decode)
            .collect::<Result<_>>()?;
        Ok((items, output.last_evaluated_key.filter(|k| !k.is_empty())))
    }

    /// The items with these keys that exist, in no particular order: BatchGetItem in chunks of
    /// 100, retrying what DynamoDB leaves unprocessed.
    pub async fn batch_get<T: DeserializeOwned>(&self, keys: &[(String, String)]) -> Result<Vec<T>> {
        self.batch_get_items(keys)
            .await?
            .into_iter()
            .map(decode)
            .collect()
    }

    /// As `batch_get`, undecoded: for reads that fetch items of several kinds at once. The
    /// chunks of 100 keys are read concurrently.
    pub async fn batch_get_items(&self, keys: &[(String, String)]) -> Result<Vec<Item>> {
        let mut unique: Vec<&(String, String)> = keys.iter().collect();
        unique.sort();
        unique.dedup();
        let chunks: Vec<_> = unique
            .chunks(100)
            .map(|chunk| self.batch_get_chunk(chunk.iter().map(|(pk, sk)| key(pk, sk)).collect()))
            .collect();
        Ok(concurrently(chunks).await?.into_iter().flatten().collect())
    }

    /// One BatchGetItem of at most 100 keys, retrying what DynamoDB leaves unprocessed.
    async fn batch_get_chunk(&self, mut pending: Vec<Item>) -> Result<Vec<Item>> {
        let mut found = Vec::with_capacity(pending.len());
        let mut attempt = 0;
        while !pending.is_empty() {
            attempt += 1;
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut pending)))
                .consistent_read(true)
                .build()
                .map_err(Error::internal)?;
            let output = self
                .client
                .batch_get_item()
                .request_items(self.table(), request)
                .send()
                .await
                .map_err(sdk_error)?;
            if let Some(mut responses) = output.responses {
                found.extend(responses.remove(self.table()).unwrap_or_default());
            }
            if let Some(mut unprocessed) = output.unprocessed_keys
                && let Some(rest) = unprocessed.remove(self.table())
            {
                pending = rest.keys;
            }
            if !pending.is_empty() {
                if attempt >= MAX_TRANSACTION_ATTEMPTS {
                    return Err(Error::Unavailable(UNAVAILABLE.into()));
                }
                tokio::time::sleep(backoff(attempt)).await;
            }
        }
        Ok(found)
    }

    /// Puts items with BatchWriteItem (25 at a time, retrying what DynamoDB leaves
    /// unprocessed). Unconditional: for idempotent writes of derived items only.
    pub async fn batch_put<T: Serialize>(&self, items: &[T]) -> Result<()> {
        self.batch_put_items(items.iter().map(encode).collect::<Result<_>>()?)
            .await
    }

    /// As `batch_put`, of items already encoded.
    pub async fn batch_put_items(&self, items: Vec<Item>) -> Result<()> {
        for chunk in items.chunks(25) {
            let mut pending = Vec::with_capacity(chunk.len());
            for item in chunk {
                let put = PutRequest::builder()
                    .set_item(Some(item.clone()))
                    .build()
                    .map_err(Error::internal)?;
                pending.push(WriteRequest::builder().put_request(put).build());
            }
            let mut attempt = 0;
            while !pending.is_empty() {
                attempt += 1;
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(self.table(), std::mem::take(&mut pending))
                    .send()
                    .await
                    .map_err(sdk_error)?;
                if let Some(mut unprocessed) = output.unprocessed_items
                    && let Some(rest) = unprocessed.remove(self.table())
                {
                    pending = rest;
                }
                if !pending.is_empty() {
                    if attempt >= MAX_TRANSACTION_ATTEMPTS {
                        return Err(Error::Unavailable(UNAVAILABLE.into()));
                    }
                    tokio::time::sleep(backoff(attempt)).await;
                }
            }
        }
        Ok(())
    }

    pub fn transaction(&self) -> Transaction<'_> {
        Transaction {
            store: self,
            actions: Vec::new(),
            tallies: std::collections::BTreeMap::new(),
        }
    }

    /// Creates the table with its indexes and its stream (the notifier's event source, as in
    /// template.yaml) if it does not exist yet; a table made before it had a stream gets one.
    pub async fn create_table(&self) -> Result<()> {
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(Error::internal)
        };
        let key_element = |name: &str, key_type: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(key_type)
                .build()
                .map_err(Error::internal)
        };
        let mut request = self
            .client
            .create_table()
            .table_name(self.table())
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute("PK")?)
            .attribute_definitions(attribute("SK")?)
            .key_schema(key_element("PK", KeyType::Hash)?)
            .key_schema(key_element("SK", KeyType::Range)?)
            .stream_specification(stream_specification()?);
        for index in GSI_NAMES {
            let (pk, sk) = (format!("{index}PK"), format!("{index}SK"));
            request = request
                .attribute_definitions(attribute(&pk)?)
                .attribute_definitions(attribute(&sk)?)
                .global_secondary_indexes(
                    GlobalSecondaryIndex::builder()
                        .index_name(index)
                        .key_schema(key_element(&pk, KeyType::Hash)?)
                        .key_schema(key_element(&sk, KeyType::Range)?)
                        .projection(Projection::builder().projection_type(ProjectionType::All).build())
                        .build()
                        .map_err(Error::internal)?,
                );
        }
        match request.send().await {
            // A new table's lists are empty: their tallies start at 0, so that a missing tally
            // means a table from before the tallies (`Store::tally`).
            Ok(_) => {
                let zeros: Vec<TallyItem> = Tally::ALL.iter().map(|tally| tally.item(0, 0)).collect();
                self.batch_put(&zeros).await
            }
            Err(err) if err.code() == Some("ResourceInUseException") => self.ensure_stream().await,
            Err(err) => Err(sdk_error(err)),
        }
    }

    async fn ensure_stream(&self) -> Result<()> {
        let described = self
            .client
            .describe_table()
            .table_name(self.table())
            .send()
            .await
            .map_err(sdk_error)?;
        let stream = described.table().and_then(|table| table.stream_specification());
        if stream.is_some_and(|s| s.stream_enabled() && s.stream_view_type() == Some(&STREAM_VIEW)) {
            return Ok(());
        }
        if stream.is_some_and(|s| s.stream_enabled()) {
            // A stream's view cannot change: the old one is switched off first.
            self.client
                .update_table()
                .table_name(self.table())
                .stream_specification(
                    StreamSpecification::builder()
                        .stream_enabled(false)
                        .build()
                        .map_err(Error::internal)?,
                )
                .send()
                .await
                .map_err(sdk_error)?;
        }
        self.client
            .update_table()
            .table_name(self.table())
            .stream_specification(stream_specification()?)
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }
}

/// The table's stream carries the keys of each change (`StreamViewType: KEYS_ONLY` in
/// template.yaml): the notifier, its one reader, reads the outbox item itself.
const STREAM_VIEW: StreamViewType = StreamViewType::KeysOnly;

fn stream_specification() -> Result<StreamSpecification> {
    StreamSpecification::builder()
        .stream_enabled(true)
        .stream_view_type(STREAM_VIEW)
        .build()
        .map_err(Error::internal)
}

/// Runs a Query to its last page.
async fn all_pages<T: DeserializeOwned>(query: QueryFluentBuilder) -> Result<Vec<T>> {
    all_page_items(query).await?.into_iter().map(decode).collect()
}

async fn all_page_items(query: QueryFluentBuilder) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let output = query
            .clone()
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(sdk_error)?;
        items.extend(output.items.unwrap_or_default());
        match output.last_evaluated_key {
            Some(last) if !last.is_empty() => start = Some(last),
            _ => return Ok(items),
        }
    }
}

/// Throttling and transient errors are retried with exponential backoff, three attempts in all.
pub fn retries() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(3)
}

/// Bounded waits: a store that does not answer costs a request at most a few seconds, and the
/// caller gets a 503 rather than a Lambda timeout.
pub fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(6))
        .build()
}

tokio::task_local! {
    /// Writes started during a request that may run alongside it (see `alongside`).
    static ALONGSIDE: std::cell::RefCell<Vec<tokio::task::JoinHandle<()>>>;
}

/// Runs a request, then waits for the writes it started with `alongside`: they run in parallel
/// with the request's own work and are done before its answer leaves.
pub async fn with_alongside<T>(request: impl Future<Output = T>) -> T {
    ALONGSIDE
        .scope(std::cell::RefCell::new(Vec::new()), async {
            let answer = request.await;
            let started = ALONGSIDE.with(|started| started.take());
            for write in started {
                let _ = write.await;
            }
            answer
        })
        .await
}

/// Starts a write that the request's answer does not depend on (e.g. recording a token's use),
/// so that it adds no sequential round trip. Outside `with_alongside` it runs on its own.
pub fn alongside(write: impl Future<Output = ()> + Send + 'static) {
    let handle = tokio::spawn(write);
    let _ = ALONGSIDE.try_with(|started| started.borrow_mut().push(handle));
}

/// How many independent reads of one request are in flight at once (one Query per scope of a
/// member's listings): enough to hide DynamoDB's latency, few enough not to throttle a partition.
pub const READ_CONCURRENCY: usize = 16;

/// Runs independent reads `READ_CONCURRENCY` at a time, keeping their order: a list that needs
/// one Query per scope waits for about `n / READ_CONCURRENCY` round trips, not `n`. The reads
/// come gathered in a `Vec`, so that the caller's future holds no iterator (and no closure)
/// across an await, which keeps handlers' futures `Send`.
pub async fn concurrently<T, F>(reads: Vec<F>) -> Result<Vec<T>>
where
    F: Future<Output = Result<T>>,
{
    use futures::stream::{self, StreamExt, TryStreamExt};
    stream::iter(reads).buffered(READ_CONCURRENCY).try_collect().await
}

/// A condition or update expression with its placeholders.
#[derive(Debug, Clone, Default)]
pub struct Expr {
    text: String,
    names: Vec<(String, String)>,
    values: Vec<(String, AttributeValue)>,
}

impl Expr {
    pub fn new(text: impl Into<String>) -> Self {
        Expr {
            text: text.into(),
            ..Expr::default()
        }
    }

    pub fn name(mut self, placeholder: &str, attribute: &str) -> Self {
        self.names.push((placeholder.to_owned(), attribute.to_owned()));
        self
    }

    pub fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        self.values.push((placeholder.to_owned(), value));
        self
    }

    /// The update expression with one more `SET` action (placeholders are the caller's).
    pub fn and_set(self, action: &str) -> Self {
        self.and_action("SET ", action)
    }

    /// The update expression with one more `REMOVE` of `path`.
    pub fn and_remove(self, path: &str) -> Self {
        self.and_action("REMOVE ", path)
    }

    /// Adds an action to its clause (a clause keyword may stand once in an update expression).
    fn and_action(mut self, clause: &str, action: &str) -> Self {
        self.text = if self.text.contains(clause) {
            self.text.replacen(clause, &format!("{clause}{action}, "), 1)
        } else {
            format!("{} {clause}{action}", self.text)
        };
        self
    }

    /// Both conditions (their placeholders must not clash).
    pub fn and(mut self, other: Expr) -> Self {
        self.text = format!("({}) AND ({})", self.text, other.text);
        self.names.extend(other.names);
        self.values.extend(other.values);
        self
    }

    fn names_map(exprs: &[&Expr]) -> Option<HashMap<String, String>> {
        let map: HashMap<_, _> = exprs.iter().flat_map(|e| e.names.iter().cloned()).collect();
        (!map.is_empty()).then_some(map)
    }

    fn values_map(exprs: &[&Expr]) -> Option<Item> {
        let map: Item = exprs.iter().flat_map(|e| e.values.iter().cloned()).collect();
        (!map.is_empty()).then_some(map)
    }
}

/// The partition of the counters of whole lists (`X-Result-Count` without reading the list).
pub const TALLY_PARTITION: &str = "COUNTS";

/// How many counter items each tally is spread over.
pub const TALLY_SHARDS: usize = 16;

/// A list whose length counter items keep (`COUNTS` / `<the list>#<shard>`, summed), moved by
/// `ADD` in the transaction of every change that puts an item into its index partition or
/// takes one out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tally {
    Users,
    Customers,
    Projects,
    Invitations,
    Requests,
    CustomerReviews,
    ProjectReviews,
    /// The live grants on customers, and below on projects; then the ended ones (history).
    CustomerGrants,
    ProjectGrants,
    CustomerPastGrants,
    ProjectPastGrants,
}

impl Tally {
    pub const ALL: [Tally; 11] = [
        Tally::Users,
        Tally::Customers,
        Tally::Projects,
        Tally::Invitations,
        Tally::Requests,
        Tally::CustomerReviews,
        Tally::ProjectReviews,
        Tally::CustomerGrants,
        Tally::ProjectGrants,
        Tally::CustomerPastGrants,
        Tally::ProjectPastGrants,
    ];

    /// The key of one of its counter items.
    pub fn shard_key(self, shard: usize) -> (String, String) {
        (TALLY_PARTITION.to_owned(), format!("{}#{shard}", self.sort_key()))
    }

    /// Counter item `shard`, holding `count`.
    fn item(self, shard: usize, count: usize) -> TallyItem {
        let (pk, sk) = self.shard_key(shard);
        TallyItem {
            pk,
            sk,
            entity: "tally".into(),
            count: i64::try_from(count).unwrap_or(i64::MAX),
        }
    }

    /// The keys of all its counter items, whose counts add up to the list's length.
    pub fn keys(self) -> Vec<(String, String)> {
        (0..TALLY_SHARDS).map(|shard| self.shard_key(shard)).collect()
    }

    pub fn sort_key(self) -> &'static str {
        match self {
            Tally::Users => "USERS",
            Tally::Customers => "CUSTOMERS",
            Tally::Projects => "PROJECTS",
            Tally::Invitations => "INVITATIONS",
            Tally::Requests => "REQUESTS",
            Tally::CustomerReviews => "CUSTOMER_REVIEWS",
            Tally::ProjectReviews => "PROJECT_REVIEWS",
            Tally::CustomerGrants => "GRANTS#customer",
            Tally::ProjectGrants => "GRANTS#project",
            Tally::CustomerPastGrants => "PAST_GRANTS#customer",
            Tally::ProjectPastGrants => "PAST_GRANTS#project",
        }
    }

    /// The index partition that lists what it counts (its partition key is the tally's sort
    /// key).
    pub fn index_partition(self) -> (&'static str, &'static str) {
        let index = match self {
            Tally::Users | Tally::Customers => "GSI1",
            Tally::Projects | Tally::Invitations | Tally::CustomerReviews | Tally::ProjectReviews => "GSI2",
            Tally::Requests
            | Tally::CustomerGrants
            | Tally::ProjectGrants
            | Tally::CustomerPastGrants
            | Tally::ProjectPastGrants => "GSI3",
        };
        (index, self.sort_key())
    }
}

#[derive(Serialize, serde::Deserialize)]
struct TallyItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    entity: String,
    count: i64,
}

/// Counter changes of several objects written in one transaction, merged so that each counter
/// item is updated once (a transaction may touch an item only once): per item one `ADD` of every
/// attribute's total, conditioned on the item existing. Zero totals write nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters(std::collections::BTreeMap<(String, String), std::collections::BTreeMap<String, i64>>);

impl Counters {
    pub fn add(&mut self, pk: &str, sk: &str, attribute: &str, delta: i64) {
        if delta == 0 {
            return;
        }
        let item = self.0.entry((pk.to_owned(), sk.to_owned())).or_default();
        *item.entry(attribute.to_owned()).or_default() += delta;
    }

    pub fn merge(&mut self, other: &Counters) {
        for ((pk, sk), attributes) in &other.0 {
            for (attribute, delta) in attributes {
                self.add(pk, sk, attribute, *delta);
            }
        }
    }

    /// The items whose counters change.
    pub fn keys(&self) -> impl Iterator<Item = &(String, String)> {
        self.0
            .iter()
            .filter(|(_, attributes)| attributes.values().any(|delta| *delta != 0))
            .map(|(key, _)| key)
    }

    /// How many updates `write` adds.
    pub fn len(&self) -> usize {
        self.keys().count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds the updates to `tx`; returns each one's index with its item's key.
    pub fn write(&self, tx: &mut Transaction<'_>) -> Result<Vec<(usize, (String, String))>> {
        let mut written = Vec::new();
        for ((pk, sk), attributes) in &self.0 {
            let changed: Vec<(&String, &i64)> = attributes.iter().filter(|(_, d)| **d != 0).collect();
            if changed.is_empty() {
                continue;
            }
            let actions: Vec<String> = (0..changed.len()).map(|i| format!("#c{i} :c{i}")).collect();
            let mut update = Expr::new(format!("ADD {}", actions.join(", ")));
            for (i, (attribute, delta)) in changed.into_iter().enumerate() {
                update = update
                    .name(&format!("#c{i}"), attribute)
                    .value(&format!(":c{i}"), n(*delta));
            }
            let index = tx.update(pk, sk, update, Some(Expr::new("attribute_exists(PK)")))?;
            written.push((index, (pk.clone(), sk.clone())));
        }
        Ok(written)
    }
}

/// Why a transaction did not commit.
#[derive(Debug)]
pub enum TxError {
    /// The condition of the action at this index (in the order it was added) was false.
    ConditionFailed(usize),
    /// The action at this index would make its item larger than DynamoDB's 400 KB.
    TooLarge(usize),
    Store(Error),
}

impl From<TxError> for Error {
    fn from(err: TxError) -> Self {
        match err {
            // A condition the caller did not map is still a lost race, never a server error:
            // nothing of the transaction was written, so the client may retry.
            TxError::ConditionFailed(_) => Error::Conflict(CHANGED_MEANWHILE.into()),
            TxError::TooLarge(_) => Error::non_field(TOO_LARGE),
            TxError::Store(err) => err,
        }
    }
}

/// The most actions DynamoDB takes in one `TransactWriteItems`.
pub const MAX_ACTIONS: usize = 100;

/// One `TransactWriteItems`: all actions commit, or none.
pub struct Transaction<'a> {
    store: &'a Store,
    actions: Vec<TransactWriteItem>,
    /// The tallies the transaction moves, merged: written at commit, one action each (after
    /// every other, so that no index of `TxError::ConditionFailed` moves).
    tallies: std::collections::BTreeMap<Tally, i64>,
}

impl Transaction<'_> {
    /// Adds a put and returns its index for matching `TxError::ConditionFailed`.
    pub fn put<T: Serialize>(&mut self, item: &T, condition: Option<Expr>) -> Result<usize> {
        let item = encode(item)?;
        let mut put = Put::builder().table_name(self.store.table()).set_item(Some(item));
        if let Some(condition) = condition {
            put = put
                .condition_expression(&condition.text)
                .set_expression_attribute_names(Expr::names_map(&[&condition]))
                .set_expression_attribute_values(Expr::values_map(&[&condition]));
        }
        self.push(
            TransactWriteItem::builder()
                .put(put.build().map_err(Error::internal)?)
                .build(),
        )
    }

    pub fn update(&mut self, pk: &str, sk: &str, update: Expr, condition: Option<Expr>) -> Result<usize> {
        let exprs: Vec<&Expr> = std::iter::once(&update).chain(condition.as_ref()).collect();
        let action = Update::builder()
            .table_name(self.store.table())
            .set_key(Some(key(pk, sk)))
            .update_expression(&update.text)
            .set_condition_expression(condition.as_ref().map(|c| c.text.clone()))
            .set_expression_attribute_names(Expr::names_map(&exprs))
            .set_expression_attribute_values(Expr::values_map(&exprs))
            .build()
            .map_err(Error::internal)?;
        self.push(TransactWriteItem::builder().update(action).build())
    }

    /// Moves a list's tally by `delta`, at commit (merged with the transaction's other moves of
    /// it: an item is touched once). The `ADD` goes to one of the tally's shards, chosen at
    /// random, so that concurrent transactions rarely meet on one item; it is unconditioned, so
    /// a new table's first change makes the shard.
    pub fn tally(&mut self, tally: Tally, delta: i64) {
        *self.tallies.entry(tally).or_default() += delta;
    }

    fn add_tallies(&mut self) -> Result<()> {
        for (tally, delta) in std::mem::take(&mut self.tallies) {
            if delta == 0 {
                continue;
            }
            let shard = usize::from(uuid::Uuid::new_v4().as_bytes()[0]) % TALLY_SHARDS;
            let (pk, sk) = tally.shard_key(shard);
            self.update(
                &pk,
                &sk,
                Expr::new("ADD #count :delta")
                    .and_set("entity = :entity")
                    .name("#count", "count")
                    .value(":entity", s("tally"))
                    .value(":delta", n(delta)),
                None,
            )?;
        }
        Ok(())
    }

    pub fn delete(&mut self, pk: &str, sk: &str, condition: Option<Expr>) -> Result<usize> {
        let exprs: Vec<&Expr> = condition.iter().collect();
        let action = Delete::builder()
            .table_name(self.store.table())
            .set_key(Some(key(pk, sk)))
            .set_condition_expression(condition.as_ref().map(|c| c.text.clone()))
            .set_expression_attribute_names(Expr::names_map(&exprs))
            .set_expression_attribute_values(Expr::values_map(&exprs))
            .build()
            .map_err(Error::internal)?;
        self.push(TransactWriteItem::builder().delete(action).build())
    }

    pub fn check(&mut self, pk: &str, sk: &str, condition: Expr) -> Result<usize> {
        let action = ConditionCheck::builder()
            .table_name(self.store.table())
            .set_key(Some(key(pk, sk)))
            .condition_expression(&condition.text)
            .set_expression_attribute_names(Expr::names_map(&[&condition]))
            .set_expression_attribute_values(Expr::values_map(&[&condition]))
            .build()
            .map_err(Error::internal)?;
        self.push(TransactWriteItem::builder().condition_check(action).build())
    }

    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// How many actions the transaction holds (DynamoDB takes at most 100).
    pub fn len(&self) -> usize {
        self.actions.len()
    }

    fn push(&mut self, action: TransactWriteItem) -> Result<usize> {
        self.actions.push(action);
        Ok(self.actions.len() - 1)
    }

    /// Commits, retrying with jittered backoff while DynamoDB cancels the transaction for a
    /// conflict with another one in flight (the counters make those common under load).
    pub async fn commit(mut self) -> Result<(), TxError> {
        self.add_tallies().map_err(TxError::Store)?;
        // One token for every attempt of this transaction: an attempt that committed but whose
        // answer was lost (a timeout, a broken connection) is answered as committed when it is
        // sent again, never as the failure of its own conditions.
        let idempotency = uuid::Uuid::new_v4().to_string();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self
                .store
                .client
                .transact_write_items()
                .set_transact_items(Some(self.actions.clone()))
                .client_request_token(idempotency.as_str())
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(()),
                Err(err) => err,
            };
            let reasons: Vec<(Option<String>, Option<String>)> = err
                .as_service_error()
                .and_then(|e| match e {
                    TransactWriteItemsError::TransactionCanceledException(canceled) => Some(canceled),
                    _ => None,
                })
                .map(|e| {
                    e.cancellation_reasons()
                        .iter()
                        .map(|r| (r.code().map(str::to_owned), r.message().map(str::to_owned)))
                        .collect()
                })
                .unwrap_or_default();
            if let Some(index) = reasons
                .iter()
                .position(|(code, _)| code.as_deref() == Some("ConditionalCheckFailed"))
            {
                return Err(TxError::ConditionFailed(index));
            }
            if let Some(index) = reasons.iter().position(|(code, message)| {
                code.as_deref() == Some("ValidationError")
                    && message.as_deref().is_some_and(|m| m.contains("Item size"))
            }) {
                return Err(TxError::TooLarge(index));
            }
            let reasons: Vec<Option<String>> = reasons.into_iter().map(|(code, _)| code).collect();
            let retryable = reasons.iter().any(|code| {
                matches!(
                    code.as_deref(),
                    Some("TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded")
                )
            }) || err.code() == Some("TransactionInProgressException");
            if !retryable {
                return Err(TxError::Store(sdk_error(err)));
            }
            if attempt >= MAX_TRANSACTION_ATTEMPTS {
                return Err(TxError::Store(Error::Unavailable(UNAVAILABLE.into())));
            }
            tokio::time::sleep(backoff(attempt)).await;
        }
    }
}

fn backoff(attempt: u32) -> Duration {
    let ceiling_ms = 10u64 << attempt.min(6);
    let jitter = getrandom::u64().unwrap_or(0) % ceiling_ms.max(1);
    Duration::from_millis(ceiling_ms / 2 + jitter / 2)
}

/// Maps any SDK failure: unreachable, timed out or throttled → 503; the rest → 500.
pub fn sdk_error<E, R>(err: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let unavailable = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => true,
        SdkError::ServiceError(service) => matches!(
            service.err().code(),
            Some(
                "ThrottlingException"
                    | "ProvisionedThroughputExceededException"
                    | "RequestLimitExceeded"
                    | "InternalServerError"
                    | "ServiceUnavailable"
            )
        ),
        SdkError::ResponseError(_) => true,
        _ => false,
    };
    if unavailable {
        tracing::warn!(error = %DisplayErrorContext(&err), "store unavailable");
        Error::Unavailable(UNAVAILABLE.into())
    } else {
        Error::Internal(format!("store error: {}", DisplayErrorContext(&err)))
    }
}

/// Items read together in one request, taken out by key.
#[derive(Debug, Default)]
pub struct Fetched(Vec<Item>);

impl Fetched {
    pub fn new(items: Vec<Item>) -> Self {
        Fetched(items)
    }

    /// The items not taken.
    pub fn into_items(self) -> Vec<Item> {
        self.0
    }

    /// The item at `(pk, sk)`, decoded and left in place, if it was read and exists.
    pub fn peek<T: DeserializeOwned>(&self, pk: &str, sk: &str) -> Result<Option<T>> {
        self.position(pk, sk)
            .map(|index| decode(self.0[index].clone()))
            .transpose()
    }

    /// The item at `(pk, sk)`, decoded, if it was read and exists.
    pub fn take<T: DeserializeOwned>(&mut self, pk: &str, sk: &str) -> Result<Option<T>> {
        self.take_item(pk, sk).map(decode).transpose()
    }

    /// The item at `(pk, sk)`, undecoded and left in place, if it was read and exists.
    pub fn peek_item(&self, pk: &str, sk: &str) -> Option<&Item> {
        self.position(pk, sk).map(|index| &self.0[index])
    }

    /// The item at `(pk, sk)`, undecoded, if it was read and exists.
    pub fn take_item(&mut self, pk: &str, sk: &str) -> Option<Item> {
        self.position(pk, sk).map(|index| self.0.swap_remove(index))
    }

    fn position(&self, pk: &str, sk: &str) -> Option<usize> {
        let is_key = |item: &Item, name: &str, wanted: &str| {
            item.get(name)
                .and_then(|v| v.as_s().ok())
                .is_some_and(|v| v == wanted)
        };
        self.0
            .iter()
            .position(|item| is_key(item, "PK", pk) && is_key(item, "SK", sk))
    }
}

pub fn key(pk: &str, sk: &str) -> Item {
    HashMap::from([("PK".to_owned(), s(pk)), ("SK".to_owned(), s(sk))])
}

pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub fn b(value: bool) -> AttributeValue {
    AttributeValue::Bool(value)
}

pub fn encode<T: Serialize>(value: &T) -> Result<Item> {
    serde_dynamo::to_item(value).map_err(|e| Error::internal(format!("encoding an item: {e}")))
}

pub fn encode_value<T: Serialize>(value: &T) -> Result<AttributeValue> {
    serde_dynamo::to_attribute_value(value).map_err(|e| Error::internal(format!("encoding a value: {e}")))
}

pub fn decode<T: DeserializeOwned>(item: Item) -> Result<T> {
    serde_dynamo::from_item(item).map_err(|e| Error::internal(format!("decoding an item: {e}")))
}
