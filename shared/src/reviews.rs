//! Permission reviews of customers and projects: a periodic "are these still the right people?"
//! that the scheduler opens and an owner (or staff) closes. A scope has at most one pending
//! review, kept as `pending_review_uuid` on the scope item, so opening is idempotent.

use chrono::Duration;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::{self, Event};
use crate::auth::AuthUser;
use crate::error::{Error, Result};
use crate::grants::{self, Grant, Member, NewGrant};
use crate::ids::Id;
use crate::outbox;
use crate::page::{Order, Page, PageRequest};
use crate::roles::ContentType;
use crate::scopes::{self, Scope};
use crate::store::{Expr, Store, Tally, Transaction, TxError, b, decode, s};
use crate::time::{self, Timestamp};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Review {
    pub uuid: Id,
    pub scope_type: ContentType,
    pub scope_uuid: Id,
    pub customer_uuid: Id,
    pub is_pending: bool,
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewer_uuid: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewer_full_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reminded: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct ReviewItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    #[serde(rename = "GSI1PK")]
    of_scope: String,
    #[serde(rename = "GSI1SK")]
    of_scope_sort: String,
    #[serde(rename = "GSI2PK")]
    all: String,
    #[serde(rename = "GSI2SK")]
    all_sort: String,
    #[serde(rename = "GSI3PK", default, skip_serializing_if = "Option::is_none")]
    pending: Option<String>,
    #[serde(rename = "GSI3SK", default, skip_serializing_if = "Option::is_none")]
    pending_sort: Option<String>,
    entity: String,
    #[serde(flatten)]
    review: Review,
}

impl ReviewItem {
    /// The review's item; a pending one is also listed among `PENDING_REVIEWS`.
    fn new(review: &Review) -> Self {
        let sort = format!("{}#{}", review.created, review.uuid);
        let pending = review.is_pending;
        ReviewItem {
            pk: review_key(&review.uuid),
            sk: "#META".into(),
            of_scope: format!("{}#{}#REVIEWS", type_name(review.scope_type), review.scope_uuid),
            of_scope_sort: sort.clone(),
            all: format!("{}_REVIEWS", type_name(review.scope_type)),
            all_sort: sort.clone(),
            pending: pending.then(|| "PENDING_REVIEWS".into()),
            pending_sort: pending.then_some(sort),
            entity: "permission_review".into(),
            review: review.clone(),
        }
    }
}

/// A grant as it stood when the review opened, and what the reviewer decided about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(flatten)]
    pub member: Member,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_by: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_by_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct EntryItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    entity: String,
    #[serde(flatten)]
    entry: Entry,
}

fn entry_sort(grant: &Id) -> String {
    format!("ENTRY#{grant}")
}

/// The active grants a review of `scope` covers: the scope's own and, for a customer, its
/// projects'.
async fn grants_under(store: &Store, scope: &Scope, now: &Timestamp) -> Result<Vec<Member>> {
    let mut partitions = vec![(scope.content_type(), scope.uuid())];
    if let Scope::Customer(customer) = scope {
        for project in scopes::projects_of(store, &customer.uuid).await? {
            partitions.push((ContentType::Project, project.uuid));
        }
    }
    let reads = crate::store::concurrently(
        partitions
            .iter()
            .map(|(scope_type, uuid)| grants::scope_with_members(store, *scope_type, uuid, None))
            .collect(),
    )
    .await?;
    Ok(reads
        .into_iter()
        .flatten()
        .flat_map(|(_, rows)| rows)
        .filter(|m| m.grant.is_active_at(now))
        .collect())
}

/// Revokes, from within a pending review, a grant it covers: the live grant (if it still
/// exists) goes, and the decision is recorded on the review's entry, in one transaction.
pub async fn revoke_entry(
    store: &Store,
    reviewer: &AuthUser,
    review: &Review,
    entry: &Entry,
    live: Option<(&Grant, &NewGrant<'_>)>,
    now: &Timestamp,
) -> Result<Entry> {
    let at = time::storage(now);
    let mut tx = store.transaction();
    tx.check(
        &review_key(&review.uuid),
        "#META",
        Expr::new("is_pending = :yes").value(":yes", b(true)),
    )?;
    tx.update(
        &review_key(&review.uuid),
        &entry_sort(&entry.member.grant.uuid),
        Expr::new("SET revoked_by = :by, revoked_by_username = :name, revoked_at = :at")
            .value(":by", s(reviewer.uuid.to_string()))
            .value(":name", s(reviewer.username.as_str()))
            .value(":at", s(at.as_str())),
        Some(Expr::new(
            "attribute_exists(PK) AND attribute_not_exists(revoked_at)",
        )),
    )?;
    let live_index = match live {
        Some((grant, new)) => {
            // The live grant, with the names of the row the review keeps, goes to the history.
            let ending = grants::Member {
                grant: grant.clone(),
                ..entry.member.clone()
            };
            Some(grants::add_revoke(&mut tx, &ending, new, now)?.first)
        }
        None => None,
    };
    match tx.commit().await {
        Ok(()) => Ok(Entry {
            revoked_by: Some(reviewer.uuid),
            revoked_by_username: Some(reviewer.username.clone()),
            revoked_at: Some(at),
            ..entry.clone()
        }),
        Err(TxError::ConditionFailed(0)) => Err(Error::rejected("Review is already closed.")),
        Err(TxError::ConditionFailed(1)) => Err(Error::rejected(
            "This grant has been revoked in this review already.",
        )),
        Err(TxError::ConditionFailed(i)) if Some(i) == live_index => {
            Err(Error::Conflict("The grant changed meanwhile. Retry.".into()))
        }
        Err(err) => Err(err.into()),
    }
}

pub(crate) fn review_key(uuid: &Id) -> String {
    format!("REVIEW#{uuid}")
}

fn type_name(scope_type: ContentType) -> String {
    scope_type.as_str().to_ascii_uppercase()
}

/// The review and its entries: one Query of its partition, where the review item comes first.
pub async fn with_entries(store: &Store, uuid: &Id) -> Result<Option<(Review, Vec<Entry>)>> {
    let mut review = None;
    let mut entries = Vec::new();
    for item in store.partition_items(&review_key(uuid)).await? {
        let is_review = item
            .get("SK")
            .and_then(|sk| sk.as_s().ok())
            .is_some_and(|sk| sk == "#META");
        if is_review {
            review = Some(decode::<ReviewItem>(item)?.review);
        } else {
            entries.push(decode::<EntryItem>(item)?.entry);
        }
    }
    Ok(review.map(|review| (review, entries)))
}

pub async fn get(store: &Store, uuid: &Id) -> Result<Option<Review>> {
    Ok(store
        .get::<ReviewItem>(&review_key(uuid), "#META")
        .await?
        .map(|i| i.review))
}

/// As `get`, taking the review from what `caller`'s credentials read with the token, if they
/// read it.
pub async fn get_for(store: &Store, caller: &AuthUser, uuid: &Id) -> Result<Option<Review>> {
    match caller.take_prefetched(&item_key(uuid)) {
        Some(item) => Ok(item.map(decode::<ReviewItem>).transpose()?.map(|i| i.review)),
        None => get(store, uuid).await,
    }
}

/// A page of all reviews of one scope type in `order` of creation, beside their tally (which
/// the caller's credentials may have read already).
pub async fn listing(
    store: &Store,
    caller: &AuthUser,
    scope_type: ContentType,
    order: Order,
    request: &PageRequest,
) -> Result<Page<Review>> {
    let tally = tally_of(scope_type);
    let prefetched = caller.take_prefetched_tally(tally);
    let page: Page<ReviewItem> = store.tallied_page(tally, order, request, prefetched).await?;
    Ok(page.map(|item| item.review))
}

/// All reviews of one scope type (staff and support).
pub async fn all(store: &Store, scope_type: ContentType) -> Result<Vec<Review>> {
    let items: Vec<ReviewItem> = store
        .query_index("GSI2", &format!("{}_REVIEWS", type_name(scope_type)))
        .await?;
    Ok(items.into_iter().map(|i| i.review).collect())
}

pub async fn of_scope(store: &Store, scope_type: ContentType, scope: &Id) -> Result<Vec<Review>> {
    let items: Vec<ReviewItem> = store
        .query_index("GSI1", &format!("{}#{scope}#REVIEWS", type_name(scope_type)))
        .await?;
    Ok(items.into_iter().map(|i| i.review).collect())
}

/// Pending reviews of every scope, oldest first (the reminder pass).
pub async fn pending(store: &Store) -> Result<Vec<Review>> {
    let items: Vec<ReviewItem> = store.query_index("GSI3", "PENDING_REVIEWS").await?;
    Ok(items.into_iter().map(|i| i.review).collect())
}

/// Opens a review of a scope that has none pending and none closed since `not_closed_since`.
/// Both conditions are checked on the scope item in the same transaction, so two schedulers
/// running at once open one review. `Ok(None)` when the scope does not qualify.
///
/// The grants under review are written first, under the new review's key, so that they are
/// there when the review appears; should the review then not open, they are unreachable and
/// harmless.
pub async fn open(
    store: &Store,
    scope: &Scope,
    not_closed_since: &Timestamp,
    now: &Timestamp,
) -> Result<Option<Review>> {
    let review = Review {
        uuid: Id::new(),
        scope_type: scope.content_type(),
        scope_uuid: scope.uuid(),
        customer_uuid: scope.customer_uuid(),
        is_pending: true,
        created: time::storage(now),
        closed: None,
        reviewer_uuid: None,
        reviewer_full_name: None,
        last_reminded: None,
    };
    let entries: Vec<EntryItem> = grants_under(store, scope, now)
        .await?
        .into_iter()
        .map(|member| EntryItem {
            pk: review_key(&review.uuid),
            sk: entry_sort(&member.grant.uuid),
            entity: "review_entry".into(),
            entry: Entry {
                member,
                revoked_by: None,
                revoked_by_username: None,
                revoked_at: None,
            },
        })
        .collect();
    store.batch_put(&entries).await?;
    let mut tx = store.transaction();
    tx.put(
        &ReviewItem::new(&review),
        Some(Expr::new("attribute_not_exists(PK)")),
    )?;
    tx.update(
        &scope.partition(),
        "#META",
        Expr::new("SET pending_review_uuid = :review").value(":review", s(review.uuid.to_string())),
        Some(
            Expr::new(
                "attribute_exists(PK) AND attribute_not_exists(pending_review_uuid) \
                 AND (attribute_not_exists(last_review_closed) OR last_review_closed < :since)",
            )
            .value(":since", s(time::storage(not_closed_since))),
        ),
    )?;
    tx.tally(tally_of(scope.content_type()), 1);
    let event = Event {
        event_type: "permission_review_created",
        subject: scope.partition(),
        message: format!("A permission review of {} has been opened.", scope.name()),
        details: json!({"review_uuid": review.uuid}),
    };
    audit::record(&mut tx, None, &event, now)?;
    outbox::add(
        &mut tx,
        "permission_review_created",
        &json!({"owners_of": {"scope_type": scope.content_type().as_str(), "scope_uuid": scope.uuid()}}),
        &json!({"review_uuid": review.uuid, "created": review.created}),
        now,
    )?;
    match tx.commit().await {
        Ok(()) => Ok(Some(review)),
        Err(TxError::ConditionFailed(1)) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// The tally of a scope type's reviews.
pub fn tally_of(scope_type: ContentType) -> Tally {
    if scope_type == ContentType::Customer {
        Tally::CustomerReviews
    } else {
        Tally::ProjectReviews
    }
}

/// Where the actions of a scope's imported reviews sit in their transaction.
#[derive(Debug, Clone)]
pub struct ImportedReviewActions {
    pub reviews: Vec<usize>,
    /// The update of the scope's `pending_review_uuid` and `last_review_closed`, if they change.
    pub scope: Option<usize>,
}

/// Adds reviews of one scope moved over from Waldur to a transaction, as they were there
/// (pending or closed, by whom), with an audit event each, and the scope's pointers as the
/// scheduler keeps them: `pending_review_uuid` names the pending one, `last_review_closed` the
/// latest close. The scope update is conditioned on the pointers `scope` had when read, so a
/// review opened or closed meanwhile is not overwritten. Imported reviews have no entries
/// (Waldur keeps no snapshot of the grants a review covers).
pub fn add_imported(
    tx: &mut Transaction<'_>,
    scope: &Scope,
    reviews: &[Review],
    now: &Timestamp,
) -> Result<ImportedReviewActions> {
    let mut indexes = Vec::with_capacity(reviews.len());
    for review in reviews {
        indexes.push(tx.put(
            &ReviewItem::new(review),
            Some(Expr::new("attribute_not_exists(PK)")),
        )?);
        let event = Event {
            event_type: "permission_review_imported",
            subject: scope.partition(),
            message: format!("Permission review {} has been imported from Waldur.", review.uuid),
            details: json!({"review_uuid": review.uuid, "is_pending": review.is_pending}),
        };
        audit::record(tx, None, &event, now)?;
    }
    let (read_pending, read_closed) = match scope {
        Scope::Customer(c) => (c.pending_review_uuid, c.last_review_closed.clone()),
        Scope::Project(p) => (p.pending_review_uuid, p.last_review_closed.clone()),
    };
    let pending = reviews.iter().find(|r| r.is_pending).map(|r| r.uuid);
    let closed = reviews
        .iter()
        .filter_map(|r| r.closed.clone())
        .max()
        .filter(|closed| read_closed.as_ref().is_none_or(|read| closed > read));
    let update = match (pending, &closed) {
        (None, None) => {
            return Ok(ImportedReviewActions {
                reviews: indexes,
                scope: None,
            });
        }
        (Some(pending), None) => {
            Expr::new("SET pending_review_uuid = :pending").value(":pending", s(pending.to_string()))
        }
        (None, Some(closed)) => {
            Expr::new("SET last_review_closed = :closed").value(":closed", s(closed.as_str()))
        }
        (Some(pending), Some(closed)) => {
            Expr::new("SET pending_review_uuid = :pending, last_review_closed = :closed")
                .value(":pending", s(pending.to_string()))
                .value(":closed", s(closed.as_str()))
        }
    };
    let mut condition = Expr::new("attribute_exists(PK)");
    condition = condition.and(match read_pending {
        Some(read) => {
            Expr::new("pending_review_uuid = :read_pending").value(":read_pending", s(read.to_string()))
        }
        None => Expr::new("attribute_not_exists(pending_review_uuid)"),
    });
    condition = condition.and(match &read_closed {
        Some(read) => Expr::new("last_review_closed = :read_closed").value(":read_closed", s(read.as_str())),
        None => Expr::new("attribute_not_exists(last_review_closed)"),
    });
    let index = tx.update(&scope.partition(), "#META", update, Some(condition))?;
    Ok(ImportedReviewActions {
        reviews: indexes,
        scope: Some(index),
    })
}

/// The key of a review's item, for reading it with other items.
pub fn item_key(uuid: &Id) -> (String, String) {
    (review_key(uuid), "#META".to_owned())
}

/// The stored form of a review (bulk loads of benchmarks).
pub fn as_item(review: &Review) -> Result<crate::store::Item> {
    crate::store::encode(&ReviewItem::new(review))
}

/// Decodes a review read with other items.
pub fn from_item(item: crate::store::Item) -> Result<Review> {
    Ok(decode::<ReviewItem>(item)?.review)
}

/// Closes a pending review: the review and its scope's pointer change together.
pub async fn close(store: &Store, reviewer: &AuthUser, review: &Review, now: &Timestamp) -> Result<Review> {
    let closed = time::storage(now);
    let mut tx = store.transaction();
    tx.update(
        &review_key(&review.uuid),
        "#META",
        Expr::new(
            "SET is_pending = :no, closed = :closed, reviewer_uuid = :reviewer, reviewer_full_name = :name \
             REMOVE GSI3PK, GSI3SK",
        )
        .value(":no", b(false))
        .value(":closed", s(closed.as_str()))
        .value(":reviewer", s(reviewer.uuid.to_string()))
        .value(":name", s(reviewer.full_name.as_str())),
        Some(Expr::new("is_pending = :yes").value(":yes", b(true))),
    )?;
    tx.update(
        &scopes::partition(review.scope_type, &review.scope_uuid),
        "#META",
        Expr::new("SET last_review_closed = :closed REMOVE pending_review_uuid")
            .value(":closed", s(closed.as_str())),
        Some(Expr::new("attribute_exists(PK)")),
    )?;
    let event = Event {
        event_type: "permission_review_closed",
        subject: scopes::partition(review.scope_type, &review.scope_uuid),
        message: format!(
            "Permission review {} has been closed by {}.",
            review.uuid, reviewer.username
        ),
        details: json!({"review_uuid": review.uuid}),
    };
    audit::record(&mut tx, Some(reviewer), &event, now)?;
    match tx.commit().await {
        Ok(()) => Ok(Review {
            is_pending: false,
            closed: Some(closed),
            reviewer_uuid: Some(reviewer.uuid),
            reviewer_full_name: Some(reviewer.full_name.clone()),
            ..review.clone()
        }),
        Err(TxError::ConditionFailed(0)) => Err(Error::rejected("Review is already closed.")),
        Err(err) => Err(err.into()),
    }
}

/// Reminds the scope's owners of a review pending since before `due`, at most once per
/// interval: the condition on `last_reminded` makes a second run in the same interval a no-op.
pub async fn remind(store: &Store, review: &Review, due: &Timestamp, now: &Timestamp) -> Result<bool> {
    let mut tx = store.transaction();
    tx.update(
        &review_key(&review.uuid),
        "#META",
        Expr::new("SET last_reminded = :now").value(":now", s(time::storage(now))),
        Some(
            Expr::new("is_pending = :yes AND (attribute_not_exists(last_reminded) OR last_reminded < :due)")
                .value(":yes", b(true))
                .value(":due", s(time::storage(due))),
        ),
    )?;
    let event = Event {
        event_type: "permission_review_reminder",
        subject: scopes::partition(review.scope_type, &review.scope_uuid),
        message: format!("Permission review {} is still pending.", review.uuid),
        details: json!({"review_uuid": review.uuid}),
    };
    audit::record(&mut tx, None, &event, now)?;
    outbox::add(
        &mut tx,
        "permission_review_reminder",
        &json!({"owners_of": {"scope_type": review.scope_type.as_str(), "scope_uuid": review.scope_uuid}}),
        &json!({"review_uuid": review.uuid, "created": review.created}),
        now,
    )?;
    match tx.commit().await {
        Ok(()) => Ok(true),
        Err(TxError::ConditionFailed(0)) => Ok(false),
        Err(err) => Err(err.into()),
    }
}

/// How often reviews happen and reminders go out.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub review_period: Duration,
    pub reminder_interval: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            review_period: Duration::days(90),
            reminder_interval: Duration::days(7),
        }
    }
}
