//! Role grants: a user holds a role on a scope (customer or project), maybe until an expiration
//! time. Each grant is two items written together, the user-side record (authoritative; its key
//! makes (user, scope, role) unique) and the scope-side member row (the member listing in creation
//! order), and an entry in the user item's `held` map, which answers authorization in the same
//! read as the user. See docs/data-model.md.

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt, stream};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::{self, Event};
use crate::auth::AuthUser;
use crate::error::{Error, Result};
use crate::ids::Id;
use crate::page::{Order, Page, PageRequest, PageSelector};
use crate::roles::{self, ContentType, Role};
use crate::scopes::{self, Scope};
use crate::store::{
    Counters, Expr, Item, Store, Tally, Transaction, TxError, decode, encode_value, n, s, sdk_error,
};
use crate::time::{self, Timestamp};
use crate::users::User;

pub const DUPLICATE: &str = "User has already the same role in this scope.";
pub const WRONG_SCOPE: &str = "Role is not valid for this scope.";
pub const INACTIVE_ROLE: &str = "Role is not active.";
/// The user's grants changed between the read and the change (another grant or revocation).
pub const USER_CHANGED: &str = "The user's roles changed meanwhile. Retry.";
/// How often a grant or revocation is made again after the user's grants changed under it.
const USER_ATTEMPTS: usize = 4;
/// The sort-key prefix of a scope's history rows (ended grants), after every member row.
const PAST_PREFIX: &str = "PAST#";
/// The user item's `held` map is full (DynamoDB's 400 KB item limit: some 2,000 grants).
pub const TOO_MANY_ROLES: &str = "User holds too many roles to be granted another one.";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    pub uuid: Id,
    pub user_uuid: Id,
    pub role_uuid: Id,
    pub scope_type: ContentType,
    pub scope_uuid: Id,
    pub customer_uuid: Id,
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_time: Option<String>,
}

impl Grant {
    /// Expired grants count for nothing, even before the sweeper has revoked them.
    pub fn is_active_at(&self, now: &Timestamp) -> bool {
        self.expiration_time
            .as_deref()
            .and_then(time::parse_stored)
            .is_none_or(|expires| expires > *now)
    }

    fn user_key(&self) -> (String, String) {
        user_key(
            &self.user_uuid,
            self.scope_type,
            &self.scope_uuid,
            &self.role_uuid,
        )
    }

    fn member_key(&self) -> (String, String) {
        (
            scopes::partition(self.scope_type, &self.scope_uuid),
            format!("MEMBER#{}#{}", self.created, self.uuid),
        )
    }
}

fn user_key(user: &Id, scope_type: ContentType, scope: &Id, role: &Id) -> (String, String) {
    (
        format!("USER#{user}"),
        format!("GRANT#{}", held_key(scope_type, scope, role)),
    )
}

/// A grant as the user item's `held` map records it, under `<scope type>#<scope>#<role>`: what
/// authorization and the user's permission rows need, in as few bytes as the 400 KB item limit
/// asks for (about 190 bytes a grant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldRole {
    #[serde(rename = "g")]
    pub grant: Id,
    #[serde(rename = "c")]
    pub customer: Id,
    #[serde(rename = "t")]
    pub created: String,
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub expiration_time: Option<String>,
}

fn held_key(scope_type: ContentType, scope: &Id, role: &Id) -> String {
    format!("{}#{scope}#{role}", scope_type.as_str())
}

impl HeldRole {
    fn of(grant: &Grant) -> Self {
        HeldRole {
            grant: grant.uuid,
            customer: grant.customer_uuid,
            created: grant.created.clone(),
            expiration_time: grant.expiration_time.clone(),
        }
    }
}

/// The grants a user item's `held` map records (without `created_by`, which it does not keep),
/// expired ones included (callers filter with `is_active_at`).
pub fn held_by(user: &User) -> Vec<Grant> {
    held_grants(&user.uuid, &user.held)
}

pub fn held_grants(user: &Id, held: &BTreeMap<String, HeldRole>) -> Vec<Grant> {
    held.iter()
        .filter_map(|(key, role)| {
            let mut parts = key.split('#');
            let scope_type = ContentType::parse(parts.next()?)?;
            let scope_uuid = Id::parse(parts.next()?)?;
            let role_uuid = Id::parse(parts.next()?)?;
            Some(Grant {
                uuid: role.grant,
                user_uuid: *user,
                role_uuid,
                scope_type,
                scope_uuid,
                customer_uuid: role.customer,
                created: role.created.clone(),
                created_by: None,
                expiration_time: role.expiration_time.clone(),
            })
        })
        .collect()
}

/// Records `grant` in its user's `held` map, in the transaction that makes or changes it.
fn hold(tx: &mut Transaction<'_>, grant: &Grant) -> Result<usize> {
    let (pk, sk) = User::key(&grant.user_uuid);
    tx.update(
        &pk,
        &sk,
        Expr::new("SET held.#role = :held")
            .name(
                "#role",
                &held_key(grant.scope_type, &grant.scope_uuid, &grant.role_uuid),
            )
            .value(":held", encode_value(&HeldRole::of(grant))?),
        Some(Expr::new("attribute_exists(held)")),
    )
}

/// How a change moves a user's count of grants in one customer (`User::customer_grants`), as
/// read with the user; the change is conditioned on that count, so that the customer's
/// `users_count` moves exactly when the user's first grant there comes or the last goes, however
/// many changes race (a stale count fails its condition, and the change is made again).
#[derive(Debug, Clone, Copy)]
pub struct CustomerCount {
    customer: Id,
    before: i64,
    after: i64,
}

impl CustomerCount {
    pub fn of(user: &User, customer: &Id, delta: i64) -> Self {
        let before = user
            .customer_grants
            .get(&customer.to_string())
            .copied()
            .unwrap_or(0);
        CustomerCount {
            customer: *customer,
            before,
            after: (before + delta).max(0),
        }
    }

    /// +1 when the user joins the customer, -1 when they leave it, else 0.
    pub fn users_delta(&self) -> i64 {
        match (self.before, self.after) {
            (0, after) if after > 0 => 1,
            (before, 0) if before > 0 => -1,
            _ => 0,
        }
    }

    /// The user item's update (with `held`) and its condition, sharing placeholders.
    fn user_change(&self, held: Expr) -> (Expr, Expr) {
        let path = "customer_grants.#cust";
        let update = if self.after == 0 {
            held.and_remove(path)
        } else {
            held.and_set(&format!("{path} = :cust_after"))
                .value(":cust_after", n(self.after))
        }
        .name("#cust", &self.customer.to_string());
        let condition = if self.before == 0 {
            Expr::new(format!("attribute_not_exists({path}) OR {path} = :cust_before"))
        } else {
            Expr::new(format!("{path} = :cust_before"))
        }
        .value(":cust_before", n(self.before));
        (update, condition)
    }
}

/// Who a member row shows, copied from the user and the granter when the grant is made.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemberNames {
    pub user_username: String,
    #[serde(default)]
    pub user_full_name: String,
    #[serde(default)]
    pub user_email: String,
    #[serde(default)]
    pub user_native_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by_full_name: Option<String>,
}

/// One row of a scope's member listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    #[serde(flatten)]
    pub grant: Grant,
    #[serde(flatten)]
    pub names: MemberNames,
    /// When the grant was revoked (or replaced after it expired): a row of the history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
}

impl Member {
    /// Whether the row is a live grant now (not ended, not past its expiration).
    pub fn is_active_at(&self, now: &Timestamp) -> bool {
        self.ended.is_none() && self.grant.is_active_at(now)
    }
}

#[derive(Serialize, Deserialize)]
struct UserSideItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    #[serde(rename = "GSI1PK", default, skip_serializing_if = "Option::is_none")]
    expiry: Option<String>,
    #[serde(rename = "GSI1SK", default, skip_serializing_if = "Option::is_none")]
    expiry_sort: Option<String>,
    entity: String,
    #[serde(flatten)]
    grant: Grant,
}

impl UserSideItem {
    fn new(grant: &Grant) -> Self {
        let (pk, sk) = grant.user_key();
        let (expiry, expiry_sort) = expiry_keys(grant);
        UserSideItem {
            pk,
            sk,
            expiry,
            expiry_sort,
            entity: "grant".into(),
            grant: grant.clone(),
        }
    }
}

fn expiry_keys(grant: &Grant) -> (Option<String>, Option<String>) {
    match &grant.expiration_time {
        Some(expires) => (
            Some("GRANT_EXPIRY".into()),
            Some(format!("{expires}#{}", grant.uuid)),
        ),
        None => (None, None),
    }
}

#[derive(Serialize, Deserialize)]
struct MemberItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    #[serde(rename = "GSI2PK")]
    by_grant: String,
    #[serde(rename = "GSI2SK")]
    by_grant_sort: String,
    #[serde(rename = "GSI3PK")]
    by_type: String,
    #[serde(rename = "GSI3SK")]
    by_type_sort: String,
    entity: String,
    #[serde(flatten)]
    member: Member,
}

impl MemberItem {
    /// The history row of an ended grant: in its scope's partition after the live rows, found by
    /// the grant's uuid, and listed by scope type (`PAST_GRANTS#<type>`).
    fn past(member: &Member) -> Self {
        let grant = &member.grant;
        let (pk, sk) = history_key(grant);
        MemberItem {
            pk,
            sk,
            by_grant: format!("GRANT#{}", grant.uuid),
            by_grant_sort: "#PAST".into(),
            by_type: format!("PAST_GRANTS#{}", grant.scope_type.as_str()),
            by_type_sort: format!("{}#{}", grant.created, grant.uuid),
            entity: "past_grant".into(),
            member: member.clone(),
        }
    }

    fn key(&self) -> (String, String) {
        (self.pk.clone(), self.sk.clone())
    }

    fn new(member: &Member) -> Self {
        let grant = &member.grant;
        let (pk, sk) = grant.member_key();
        MemberItem {
            pk,
            sk,
            by_grant: format!("GRANT#{}", grant.uuid),
            by_grant_sort: "#META".into(),
            by_type: format!("GRANTS#{}", grant.scope_type.as_str()),
            by_type_sort: format!("{}#{}", grant.created, grant.uuid),
            entity: "member".into(),
            member: member.clone(),
        }
    }
}

impl Member {
    /// The row of `/api/user-permissions/` and of a user's `permissions` (Waldur's
    /// PermissionSerializer): customer keys only on project rows, creator keys only when known.
    pub fn permission_row(
        &self,
        roles: &crate::authz::RoleSet,
        names: &crate::scopes::Directory,
        now: &Timestamp,
    ) -> serde_json::Value {
        let grant = &self.grant;
        let role = roles.get(&grant.role_uuid);
        let mut value = json!({
            "uuid": grant.uuid,
            "user_uuid": grant.user_uuid,
            "user_name": self.names.user_full_name,
            "user_username": self.names.user_username,
            "created": time::wire_stored(&grant.created),
            "expiration_time": grant.expiration_time.as_deref().map(time::wire_stored),
            "role_name": role.map(|r| r.name.as_str()),
            "role_description": role.map(|r| r.description.as_str()),
            "role_uuid": grant.role_uuid,
            "scope_type": grant.scope_type.as_str(),
            "scope_uuid": grant.scope_uuid,
            "scope_name": names.scope_name(grant.scope_type, &grant.scope_uuid),
            "is_active": self.is_active_at(now),
        });
        if let Some(object) = value.as_object_mut() {
            if grant.scope_type != ContentType::Customer {
                let customer = names.customer(&grant.customer_uuid);
                object.insert("customer_uuid".into(), json!(grant.customer_uuid));
                object.insert("customer_name".into(), json!(customer.map(|c| c.name.as_str())));
            }
            if grant.created_by.is_some() {
                object.insert(
                    "created_by_full_name".into(),
                    json!(self.names.created_by_full_name),
                );
                object.insert(
                    "created_by_username".into(),
                    json!(self.names.created_by_username),
                );
            }
        }
        value
    }
}

/// The keys of these grants' member rows, which carry what the `held` map leaves out (who
/// granted, the names shown), for reading them with other items.
pub fn member_keys(grants: &[Grant]) -> Vec<(String, String)> {
    grants.iter().map(Grant::member_key).collect()
}

/// Takes the member rows out of items read together with others.
pub fn take_members(items: &mut Vec<Item>) -> Result<Vec<Member>> {
    let is_member = |item: &Item| {
        item.get("SK")
            .and_then(|v| v.as_s().ok())
            .is_some_and(|sk| sk.starts_with("MEMBER#"))
    };
    let (members, rest): (Vec<Item>, Vec<Item>) = std::mem::take(items).into_iter().partition(is_member);
    *items = rest;
    members
        .into_iter()
        .map(|item| Ok(decode::<MemberItem>(item)?.member))
        .collect()
}

/// The key of a grant's user-side record, for reading it with other items.
pub fn user_side_key(grant: &Grant) -> (String, String) {
    grant.user_key()
}

/// Decodes a user-side record read with other items.
pub fn user_side_from_item(item: Item) -> Result<Grant> {
    Ok(decode::<UserSideItem>(item)?.grant)
}

/// The scope and its members in creation order: one Query of the scope's partition, which
/// starts with the scope item. `limit` bounds the members read (for the first pages);
/// `None` reads them all. `None` is returned when the scope does not exist.
pub async fn scope_with_members(
    store: &Store,
    scope_type: ContentType,
    scope_uuid: &Id,
    limit: Option<usize>,
) -> Result<Option<(Scope, Vec<Member>)>> {
    read_scope(store, scope_type, scope_uuid, limit, false).await
}

/// The scope with its members and the history of its ended grants (`Member::ended` set), in
/// one Query of its partition (the history rows come after the live ones).
pub async fn scope_with_history(
    store: &Store,
    scope_type: ContentType,
    scope_uuid: &Id,
) -> Result<Option<(Scope, Vec<Member>)>> {
    read_scope(store, scope_type, scope_uuid, None, true).await
}

async fn read_scope(
    store: &Store,
    scope_type: ContentType,
    scope_uuid: &Id,
    limit: Option<usize>,
    history: bool,
) -> Result<Option<(Scope, Vec<Member>)>> {
    let pk = scopes::partition(scope_type, scope_uuid);
    let mut scope = None;
    let mut members = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let wanted =
            limit.map(|l| i32::try_from(l - members.len().min(l)).map_or(i32::MAX, |n| n.saturating_add(1)));
        // Without the history the Query stops before its rows (`PAST#…` sorts after every
        // `MEMBER#…`), so a scope's ended grants never cost a page of its members anything.
        let query = store
            .client()
            .query()
            .table_name(store.table())
            .expression_attribute_values(":pk", s(pk.as_str()));
        let query = if history {
            query.key_condition_expression("PK = :pk")
        } else {
            query
                .key_condition_expression("PK = :pk AND SK < :past")
                .expression_attribute_values(":past", s(PAST_PREFIX))
        };
        let output = query
            .consistent_read(true)
            .set_limit(wanted)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(sdk_error)?;
        for item in output.items.unwrap_or_default() {
            let sk = item
                .get("SK")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default();
            if sk == "#META" {
                scope = Some(scopes::scope_from_item(scope_type, item)?);
            } else if sk.starts_with("MEMBER#") || (history && sk.starts_with(PAST_PREFIX)) {
                members.push(decode::<MemberItem>(item)?.member);
            }
        }
        let done = limit.is_some_and(|l| members.len() >= l);
        match output.last_evaluated_key {
            Some(last) if !last.is_empty() && !done => start = Some(last),
            _ => break,
        }
    }
    Ok(scope.map(|scope| (scope, members)))
}

/// What a grant needs: the scope, the user, the role, and who grants it.
pub struct NewGrant<'a> {
    pub scope: &'a Scope,
    pub user: &'a User,
    pub role: &'a Role,
    pub expiration_time: Option<Timestamp>,
    pub granted_by: Option<&'a AuthUser>,
}

/// The actions of one grant inside a transaction, and where each sits in it.
pub struct GrantActions {
    pub grant: Grant,
    member: Member,
    pub user_side: usize,
    /// The update of the user item's `held` map.
    pub user: usize,
    pub scope: Option<usize>,
    pub role: usize,
    /// How the grant moves the user's count in its customer (a new project's customer counts
    /// the user itself, see `scopes::add_project`).
    pub counted: CustomerCount,
}

/// Adds a grant to a transaction: both grant items, the scope's and the role's counters (the
/// role's condition also checks it still exists, is active and fits the scope type), and the
/// audit event. A scope created in the same transaction (`scope_is_new`) carries its own
/// member count, since one transaction cannot write an item twice.
pub fn add_grant(
    tx: &mut Transaction<'_>,
    new: &NewGrant<'_>,
    scope_is_new: bool,
    now: &Timestamp,
) -> Result<GrantActions> {
    if new.role.content_type != new.scope.content_type() {
        return Err(Error::non_field(WRONG_SCOPE));
    }
    if !new.role.is_active {
        return Err(Error::non_field(INACTIVE_ROLE));
    }
    if !new.role.is_available_in(&new.scope.customer_uuid()) {
        return Err(Error::non_field(roles::NOT_AVAILABLE));
    }
    let grant = Grant {
        uuid: Id::new(),
        user_uuid: new.user.uuid,
        role_uuid: new.role.uuid,
        scope_type: new.scope.content_type(),
        scope_uuid: new.scope.uuid(),
        customer_uuid: new.scope.customer_uuid(),
        created: time::storage(now),
        created_by: new.granted_by.map(|g| g.uuid),
        expiration_time: new.expiration_time.as_ref().map(time::storage),
    };
    let member = Member {
        grant: grant.clone(),
        names: MemberNames {
            user_username: new.user.username.clone(),
            user_full_name: new.user.full_name(),
            user_email: new.user.email.clone(),
            user_native_name: new.user.native_name.clone(),
            created_by_username: new.granted_by.map(|g| g.username.clone()),
            created_by_full_name: new.granted_by.map(|g| g.full_name.clone()),
        },
        ended: None,
    };
    let user_side = tx.put(
        &UserSideItem::new(&grant),
        Some(Expr::new("attribute_not_exists(PK)")),
    )?;
    tx.put(
        &MemberItem::new(&member),
        Some(Expr::new("attribute_not_exists(PK)")),
    )?;
    tx.tally(rows_tally(grant.scope_type, false), 1);
    let counted = CustomerCount::of(new.user, &grant.customer_uuid, 1);
    let (update, condition) = counted.user_change(
        Expr::new("SET held.#role = :held")
            .name(
                "#role",
                &held_key(grant.scope_type, &grant.scope_uuid, &grant.role_uuid),
            )
            .value(":held", encode_value(&HeldRole::of(&grant))?),
    );
    let (user_pk, user_sk) = User::key(&grant.user_uuid);
    let user = tx.update(
        &user_pk,
        &user_sk,
        update,
        Some(Expr::new("attribute_exists(held) AND attribute_not_exists(deleting)").and(condition)),
    )?;
    let scope = if scope_is_new {
        None
    } else {
        let count = if grant.expiration_time.is_some() {
            "ADD member_count :one, expiring_count :one"
        } else {
            "ADD member_count :one"
        };
        Some(count_scope(tx, new.scope, count, n(1), counted)?)
    };
    let role = count_role(tx, new.role, 1, Some(&grant.customer_uuid))?;
    record(tx, new.granted_by, "role_granted", new, &grant, now)?;
    Ok(GrantActions {
        grant,
        member,
        user_side,
        user,
        scope,
        role,
        counted,
    })
}

/// Updates a scope's member counters (`counters`, an `ADD` with `:one`) and the customer's
/// `users_count` by `counted`: in the same action when the scope is the customer (a transaction
/// touches an item once), else in one more. Returns the scope's action.
fn count_scope(
    tx: &mut Transaction<'_>,
    scope: &Scope,
    counters: &str,
    one: aws_sdk_dynamodb::types::AttributeValue,
    counted: CustomerCount,
) -> Result<usize> {
    let users = n(counted.users_delta());
    let exists = || Some(Expr::new("attribute_exists(PK)"));
    if scope.content_type() == ContentType::Customer {
        return tx.update(
            &scope.partition(),
            "#META",
            Expr::new(format!("{counters}, users_count :users"))
                .value(":one", one)
                .value(":users", users),
            exists(),
        );
    }
    let index = tx.update(
        &scope.partition(),
        "#META",
        Expr::new(counters).value(":one", one),
        exists(),
    )?;
    if counted.users_delta() != 0 {
        tx.update(
            &scopes::partition(ContentType::Customer, &counted.customer),
            "#META",
            Expr::new("ADD users_count :users").value(":users", users),
            exists(),
        )?;
    }
    Ok(index)
}

impl GrantActions {
    /// What a failed condition at `index` means for this grant, if it is one of its own.
    pub async fn refusal(&self, store: &Store, new: &NewGrant<'_>, index: usize) -> Option<Error> {
        if Some(index) == self.scope {
            Some(Error::not_found(new.scope.model()))
        } else if index == self.user {
            Some(match crate::users::get(store, &new.user.uuid).await {
                Ok(Some(_)) => Error::Conflict(USER_CHANGED.into()),
                Ok(None) => Error::field("user", "User is not found."),
                Err(err) => err,
            })
        } else if index == self.role {
            Some(role_refusal(store, new).await)
        } else {
            None
        }
    }
}

/// Imports grants of one role on one scope in bulk, for moving a deployment over from Waldur
/// (and for the scale benchmarks): both items of each grant go in batches of 25, then the scope's
/// and the role's counters are raised once; each user's `held` map gets its entry (16 updates in
/// flight). Unlike a grant through the API this is not one transaction and leaves no audit
/// events, so use it only on a scope nobody is using yet.
pub async fn import(
    store: &Store,
    scope: &Scope,
    role: &Role,
    users: &[User],
    now: &Timestamp,
) -> Result<usize> {
    if role.content_type != scope.content_type() {
        return Err(Error::non_field(WRONG_SCOPE));
    }
    let mut user_sides = Vec::with_capacity(users.len());
    let mut members = Vec::with_capacity(users.len());
    let mut grants = Vec::with_capacity(users.len());
    for user in users {
        let grant = Grant {
            uuid: Id::new(),
            user_uuid: user.uuid,
            role_uuid: role.uuid,
            scope_type: scope.content_type(),
            scope_uuid: scope.uuid(),
            customer_uuid: scope.customer_uuid(),
            created: time::storage(now),
            created_by: None,
            expiration_time: None,
        };
        user_sides.push(UserSideItem::new(&grant));
        grants.push(grant.clone());
        members.push(MemberItem::new(&Member {
            grant,
            names: MemberNames {
                user_username: user.username.clone(),
                user_full_name: user.full_name(),
                user_email: user.email.clone(),
                user_native_name: user.native_name.clone(),
                created_by_username: None,
                created_by_full_name: None,
            },
            ended: None,
        }));
    }
    store.batch_put(&user_sides).await?;
    store.batch_put(&members).await?;
    stream::iter(&grants)
        .map(|grant| async move {
            let mut tx = store.transaction();
            let (pk, sk) = User::key(&grant.user_uuid);
            tx.update(
                &pk,
                &sk,
                Expr::new(
                    "SET held.#role = :held, \
                     customer_grants.#cust = if_not_exists(customer_grants.#cust, :zero) + :one",
                )
                .name(
                    "#role",
                    &held_key(grant.scope_type, &grant.scope_uuid, &grant.role_uuid),
                )
                .name("#cust", &grant.customer_uuid.to_string())
                .value(":held", encode_value(&HeldRole::of(grant))?)
                .value(":zero", n(0))
                .value(":one", n(1)),
                Some(Expr::new("attribute_exists(held)")),
            )?;
            match tx.commit().await {
                // A user who is not in the table (the benchmarks' synthetic members) has no map
                // to record the grant in; import trusts its input, as above.
                Ok(()) | Err(TxError::ConditionFailed(_)) => Ok(()),
                Err(err) => Err(Error::from(err)),
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    let count = n(users.len() as i64);
    // The users of the import that had no role in the customer before it join its users_count.
    let joined = users
        .iter()
        .filter(|u| CustomerCount::of(u, &scope.customer_uuid(), 1).users_delta() == 1)
        .count() as i64;
    let mut tx = store.transaction();
    tx.tally(rows_tally(scope.content_type(), false), users.len() as i64);
    let exists = || Some(Expr::new("attribute_exists(PK)"));
    if scope.content_type() == ContentType::Customer {
        tx.update(
            &scope.partition(),
            "#META",
            Expr::new("ADD member_count :count, users_count :users")
                .value(":count", count.clone())
                .value(":users", n(joined)),
            exists(),
        )?;
    } else {
        tx.update(
            &scope.partition(),
            "#META",
            Expr::new("ADD member_count :count").value(":count", count.clone()),
            exists(),
        )?;
        if joined > 0 {
            tx.update(
                &scopes::partition(ContentType::Customer, &scope.customer_uuid()),
                "#META",
                Expr::new("ADD users_count :users").value(":users", n(joined)),
                exists(),
            )?;
        }
    }
    tx.update(
        "ROLES",
        &format!("ROLE#{}", role.uuid),
        Expr::new("ADD users_count :count").value(":count", count),
        Some(Expr::new("attribute_exists(PK)")),
    )?;
    tx.commit().await?;
    Ok(users.len())
}

/// Where the actions of a user's imported grants sit in their transaction.
#[derive(Debug, Clone)]
pub struct ImportedGrantActions {
    /// Each grant's user-side put, conditioned on the (user, scope, role) being free.
    pub grants: Vec<usize>,
    /// The user item's update, conditioned on the user's counts per customer as read.
    pub user: usize,
}

/// Adds grants of one user moved over from Waldur to a transaction, as Waldur had them (uuid,
/// `created`, `created_by`, `expiration_time`): both items of each grant (conditioned on not
/// existing), an audit event each, and one update of the user's `held` map and
/// `customer_grants`, conditioned on the counts read with `user` as `add_grant` is. The
/// counters the grants move are `import_counts`, for the caller to write merged with those of
/// the rest of the transaction.
pub fn add_imported(
    tx: &mut Transaction<'_>,
    user: &User,
    members: &[Member],
    now: &Timestamp,
) -> Result<ImportedGrantActions> {
    if members.is_empty() {
        return Err(Error::internal("no grants to import"));
    }
    let not_exists = || Some(Expr::new("attribute_not_exists(PK)"));
    let mut grants = Vec::with_capacity(members.len());
    for member in members {
        let grant = &member.grant;
        grants.push(tx.put(&UserSideItem::new(grant), not_exists())?);
        tx.put(&MemberItem::new(member), not_exists())?;
        imported_event(tx, member, "role_imported", now)?;
    }
    let mut update = Expr::new("SET held.#held0 = :held0");
    for (i, member) in members.iter().enumerate() {
        let grant = &member.grant;
        if i > 0 {
            update = update.and_set(&format!("held.#held{i} = :held{i}"));
        }
        update = update
            .name(
                &format!("#held{i}"),
                &held_key(grant.scope_type, &grant.scope_uuid, &grant.role_uuid),
            )
            .value(&format!(":held{i}"), encode_value(&HeldRole::of(grant))?);
    }
    let mut condition = Expr::new("attribute_exists(held) AND attribute_not_exists(deleting)");
    for (i, count) in customer_counts(user, members).iter().enumerate() {
        let path = format!("customer_grants.#cust{i}");
        update = update
            .and_set(&format!("{path} = :cust_after{i}"))
            .name(&format!("#cust{i}"), &count.customer.to_string())
            .value(&format!(":cust_after{i}"), n(count.after));
        let unchanged = if count.before == 0 {
            Expr::new(format!(
                "attribute_not_exists({path}) OR {path} = :cust_before{i}"
            ))
        } else {
            Expr::new(format!("{path} = :cust_before{i}"))
        };
        condition = condition.and(unchanged.value(&format!(":cust_before{i}"), n(count.before)));
    }
    let (pk, sk) = User::key(&user.uuid);
    let user = tx.update(&pk, &sk, update, Some(condition))?;
    Ok(ImportedGrantActions { grants, user })
}

/// How imported grants move the user's count in each of their customers.
fn customer_counts(user: &User, members: &[Member]) -> Vec<CustomerCount> {
    let mut per_customer: BTreeMap<Id, i64> = BTreeMap::new();
    for member in members {
        *per_customer.entry(member.grant.customer_uuid).or_default() += 1;
    }
    per_customer
        .iter()
        .map(|(customer, k)| CustomerCount::of(user, customer, *k))
        .collect()
}

/// The counters that `add_imported` grants of `user` move: each scope's `member_count` and
/// `expiring_count`, the `users_count` of the customers the user thereby joins, and each role's
/// `users_count`.
pub fn import_counts(user: &User, members: &[Member]) -> Counters {
    let mut counters = Counters::default();
    for member in members {
        let grant = &member.grant;
        let scope = scopes::partition(grant.scope_type, &grant.scope_uuid);
        counters.add(&scope, "#META", "member_count", 1);
        counters.add(
            &scope,
            "#META",
            "expiring_count",
            i64::from(grant.expiration_time.is_some()),
        );
        counters.add("ROLES", &format!("ROLE#{}", grant.role_uuid), "users_count", 1);
    }
    for count in customer_counts(user, members) {
        counters.add(
            &scopes::partition(ContentType::Customer, &count.customer),
            "#META",
            "users_count",
            count.users_delta(),
        );
    }
    counters
}

/// Adds the history row of a grant that had ended in Waldur (revoked, or expired and removed),
/// with its audit event: the row `/api/user-permissions/` lists with `is_active: false`, in its
/// scope's partition after the live rows, conditioned on not existing. `member.ended` says when.
pub fn add_imported_history(tx: &mut Transaction<'_>, member: &Member, now: &Timestamp) -> Result<usize> {
    let index = tx.put(
        &MemberItem::past(member),
        Some(Expr::new("attribute_not_exists(PK)")),
    )?;
    imported_event(tx, member, "ended_role_imported", now)?;
    Ok(index)
}

fn imported_event(
    tx: &mut Transaction<'_>,
    member: &Member,
    event_type: &str,
    now: &Timestamp,
) -> Result<usize> {
    let grant = &member.grant;
    let event = Event {
        event_type,
        subject: scopes::partition(grant.scope_type, &grant.scope_uuid),
        message: format!(
            "Role grant {} of {} has been imported from Waldur.",
            grant.uuid, member.names.user_username
        ),
        details: json!({
            "grant_uuid": grant.uuid,
            "affected_user": grant.user_uuid,
            "role_uuid": grant.role_uuid,
            "scope_type": grant.scope_type.as_str(),
            "scope_uuid": grant.scope_uuid,
            "customer_uuid": grant.customer_uuid,
            "created": grant.created,
            "created_by": grant.created_by,
            "expiration_time": grant.expiration_time,
            "ended": member.ended,
        }),
    };
    audit::record(tx, None, &event, now)
}

/// The key of the history row of an ended grant, for reading it with other items.
pub fn history_key(grant: &Grant) -> (String, String) {
    (
        scopes::partition(grant.scope_type, &grant.scope_uuid),
        format!("{PAST_PREFIX}{}#{}", grant.created, grant.uuid),
    )
}

/// Grants a role in a transaction of its own. An expired grant of the same (user, scope, role)
/// is replaced; an active one is a duplicate.
pub async fn grant(store: &Store, new: &NewGrant<'_>, now: &Timestamp) -> Result<Grant> {
    let mut fresh: Option<User> = None;
    for _ in 0..USER_ATTEMPTS {
        let user = fresh.as_ref().unwrap_or(new.user);
        let new = NewGrant { user, ..*new };
        let mut tx = store.transaction();
        let actions = add_grant(&mut tx, &new, false, now)?;
        match tx.commit().await {
            Ok(()) => return Ok(actions.grant),
            Err(TxError::ConditionFailed(i)) if i == actions.user_side => {
                return replace_expired(store, &new, actions.member, now).await;
            }
            Err(TxError::TooLarge(i)) if i == actions.user => return Err(Error::non_field(TOO_MANY_ROLES)),
            // The user's grants changed since they were read: again, with the user as now.
            Err(TxError::ConditionFailed(i)) if i == actions.user => {
                fresh = Some(
                    crate::users::get(store, &new.user.uuid)
                        .await?
                        .filter(|user| !user.deleting)
                        .ok_or_else(|| Error::field("user", "User is not found."))?,
                );
            }
            Err(TxError::ConditionFailed(i)) => {
                return Err(match actions.refusal(store, &new, i).await {
                    Some(error) => error,
                    None => TxError::ConditionFailed(i).into(),
                });
            }
            Err(err) => return Err(err.into()),
        }
    }
    Err(Error::Conflict(USER_CHANGED.into()))
}

/// The user-side record of `user`'s grant of `role` on `scope`.
async fn find(store: &Store, user: &Id, scope: &Scope, role: &Id) -> Result<Option<Grant>> {
    let (pk, sk) = user_key(user, scope.content_type(), &scope.uuid(), role);
    Ok(store.get::<UserSideItem>(&pk, &sk).await?.map(|i| i.grant))
}

/// The grant exists already: a duplicate if it is still active, else it is replaced in place
/// (the counters already count it).
async fn replace_expired(
    store: &Store,
    new: &NewGrant<'_>,
    member: Member,
    now: &Timestamp,
) -> Result<Grant> {
    let existing = find(store, &new.user.uuid, new.scope, &new.role.uuid).await?;
    let Some(existing) = existing.filter(|g| !g.is_active_at(now)) else {
        return Err(Error::non_field(DUPLICATE));
    };
    let grant = member.grant.clone();
    let ended = member_of(store, &existing).await?;
    let mut tx = store.transaction();
    match &ended {
        Some(ended) => end_member(&mut tx, ended, now)?,
        None => {
            let (old_pk, old_sk) = existing.member_key();
            tx.delete(&old_pk, &old_sk, None)?;
        }
    }
    tx.put(
        &UserSideItem::new(&grant),
        Some(
            Expr::new("#uuid = :old")
                .name("#uuid", "uuid")
                .value(":old", s(existing.uuid.to_string())),
        ),
    )?;
    tx.put(
        &MemberItem::new(&member),
        Some(Expr::new("attribute_not_exists(PK)")),
    )?;
    tx.tally(rows_tally(grant.scope_type, false), 1);
    hold(&mut tx, &grant)?;
    // The old grant had an expiration (it has passed); the new one may have none.
    let expiring = i64::from(grant.expiration_time.is_some()) - 1;
    let scope_index = count_expiring(&mut tx, new.scope, expiring)?;
    let role_index = tx.check(
        "ROLES",
        &format!("ROLE#{}", new.role.uuid),
        grantable(new.role, &grant.customer_uuid),
    )?;
    record(&mut tx, new.granted_by, "role_granted", new, &grant, now)?;
    match tx.commit().await {
        Ok(()) => Ok(grant),
        Err(TxError::ConditionFailed(i)) if i == role_index => Err(role_refusal(store, new).await),
        Err(TxError::ConditionFailed(i)) if i == scope_index => Err(Error::not_found(new.scope.model())),
        Err(TxError::ConditionFailed(_)) => Err(Error::non_field(DUPLICATE)),
        Err(err) => Err(err.into()),
    }
}

/// Adds `delta` to the scope's count of grants with an expiration time (or only checks that the
/// scope exists, when the count stays), and returns the action's index.
fn count_expiring(tx: &mut Transaction<'_>, scope: &Scope, delta: i64) -> Result<usize> {
    let exists = Expr::new("attribute_exists(PK)");
    if delta == 0 {
        tx.check(&scope.partition(), "#META", exists)
    } else {
        tx.update(
            &scope.partition(),
            "#META",
            Expr::new("ADD expiring_count :delta").value(":delta", n(delta)),
            Some(exists),
        )
    }
}

/// The role still exists, is active, and fits the scope type.
/// The role's condition in a grant on a scope of `customer`: it exists, fits the scope type,
/// is active, and is available in that customer (not another's private role, not concealed).
fn grantable(role: &Role, customer: &Id) -> Expr {
    Expr::new(
        "attribute_exists(PK) AND content_type = :type AND is_active = :yes \
         AND (attribute_not_exists(customer_uuid) OR customer_uuid = :in_customer) \
         AND NOT contains(concealed_in, :in_customer)",
    )
    .value(":type", s(role.content_type.as_str()))
    .value(":yes", crate::store::b(true))
    .value(":in_customer", s(customer.to_string()))
}

async fn role_refusal(store: &Store, new: &NewGrant<'_>) -> Error {
    match roles::find(store, &new.role.uuid).await {
        Ok(None) => Error::field("role", "Role is not found."),
        Ok(Some(role)) if !role.is_active => Error::non_field(INACTIVE_ROLE),
        Ok(Some(role)) if !role.is_available_in(&new.scope.customer_uuid()) => {
            Error::non_field(roles::NOT_AVAILABLE)
        }
        Ok(Some(_)) => Error::non_field(WRONG_SCOPE),
        Err(err) => err,
    }
}

/// Moves the role's `users_count`; a grant (`granted_in`: the scope's customer) also checks
/// the role is grantable there.
fn count_role(tx: &mut Transaction<'_>, role: &Role, delta: i64, granted_in: Option<&Id>) -> Result<usize> {
    let condition = match granted_in {
        Some(customer) => grantable(role, customer),
        None => Expr::new("attribute_exists(PK)"),
    };
    tx.update(
        "ROLES",
        &format!("ROLE#{}", role.uuid),
        Expr::new("ADD users_count :delta").value(":delta", n(delta)),
        Some(condition),
    )
}

fn record(
    tx: &mut Transaction<'_>,
    actor: Option<&AuthUser>,
    event_type: &str,
    new: &NewGrant<'_>,
    grant: &Grant,
    now: &Timestamp,
) -> Result<usize> {
    let verb = match event_type {
        "role_granted" => "has gained role of",
        "role_revoked" => "has lost role of",
        _ => "has an updated role of",
    };
    let name = if new.user.full_name().is_empty() {
        new.user.username.clone()
    } else {
        new.user.full_name()
    };
    let event = Event {
        event_type,
        subject: new.scope.partition(),
        message: format!("User {name} {verb} {} in {}.", new.role.name, new.scope.name()),
        details: json!({
            "grant_uuid": grant.uuid,
            "affected_user": grant.user_uuid,
            "role_name": new.role.name,
            "scope_type": grant.scope_type.as_str(),
            "scope_uuid": grant.scope_uuid,
            "customer_uuid": grant.customer_uuid,
            "expiration_time": grant.expiration_time,
        }),
    };
    audit::record(tx, actor, &event, now)
}

/// Sets or clears the expiration of an existing grant.
pub async fn set_expiration(
    store: &Store,
    existing: &Grant,
    new: &NewGrant<'_>,
    now: &Timestamp,
) -> Result<Grant> {
    let updated = Grant {
        expiration_time: new.expiration_time.as_ref().map(time::storage),
        ..existing.clone()
    };
    let same_grant = || {
        Expr::new("#uuid = :uuid")
            .name("#uuid", "uuid")
            .value(":uuid", s(existing.uuid.to_string()))
    };
    let mut tx = store.transaction();
    let (pk, sk) = existing.user_key();
    let update = match expiry_keys(&updated) {
        (Some(expiry), Some(sort)) => Expr::new("SET expiration_time = :e, GSI1PK = :x, GSI1SK = :xs")
            .value(":e", s(updated.expiration_time.clone().unwrap_or_default()))
            .value(":x", s(expiry))
            .value(":xs", s(sort)),
        _ => Expr::new("REMOVE expiration_time, GSI1PK, GSI1SK"),
    };
    tx.update(&pk, &sk, update, Some(same_grant()))?;
    let (member_pk, member_sk) = existing.member_key();
    let member_update = match &updated.expiration_time {
        Some(expires) => Expr::new("SET expiration_time = :e").value(":e", s(expires.as_str())),
        None => Expr::new("REMOVE expiration_time"),
    };
    tx.update(&member_pk, &member_sk, member_update, Some(same_grant()))?;
    hold(&mut tx, &updated)?;
    let expiring =
        i64::from(updated.expiration_time.is_some()) - i64::from(existing.expiration_time.is_some());
    count_expiring(&mut tx, new.scope, expiring)?;
    record(&mut tx, new.granted_by, "role_updated", new, &updated, now)?;
    match tx.commit().await {
        Ok(()) => Ok(updated),
        Err(TxError::ConditionFailed(_)) => {
            Err(Error::Conflict("The grant changed meanwhile. Retry.".into()))
        }
        Err(err) => Err(err.into()),
    }
}

/// Adds a revocation to a transaction: both items go (the first action, conditioned on this
/// being the same grant), both counters drop, and the event records it.
pub fn add_revoke(
    tx: &mut Transaction<'_>,
    ending: &Member,
    new: &NewGrant<'_>,
    now: &Timestamp,
) -> Result<RevokeActions> {
    let existing = &ending.grant;
    let (pk, sk) = existing.user_key();
    let first = tx.delete(
        &pk,
        &sk,
        Some(
            Expr::new("#uuid = :uuid")
                .name("#uuid", "uuid")
                .value(":uuid", s(existing.uuid.to_string())),
        ),
    )?;
    end_member(tx, ending, now)?;
    let (user_pk, user_sk) = User::key(&existing.user_uuid);
    let counted = CustomerCount::of(new.user, &existing.customer_uuid, -1);
    let (update, condition) = counted.user_change(Expr::new("REMOVE held.#role").name(
        "#role",
        &held_key(existing.scope_type, &existing.scope_uuid, &existing.role_uuid),
    ));
    let user = tx.update(
        &user_pk,
        &user_sk,
        update,
        Some(Expr::new("attribute_exists(PK)").and(condition)),
    )?;
    let count = if existing.expiration_time.is_some() {
        "ADD member_count :one, expiring_count :one"
    } else {
        "ADD member_count :one"
    };
    count_scope(tx, new.scope, count, n(-1), counted)?;
    count_role(tx, new.role, -1, None)?;
    record(tx, new.granted_by, "role_revoked", new, existing, now)?;
    Ok(RevokeActions { first, user })
}

/// Moves a member row to the scope's history (`MemberItem::past`): the live row goes, the
/// ended one comes, in the transaction that ends the grant.
fn end_member(tx: &mut Transaction<'_>, member: &Member, now: &Timestamp) -> Result<()> {
    let (pk, sk) = member.grant.member_key();
    tx.delete(&pk, &sk, None)?;
    let ended = Member {
        ended: Some(time::storage(now)),
        ..member.clone()
    };
    tx.put(&MemberItem::past(&ended), None)?;
    tx.tally(rows_tally(member.grant.scope_type, false), -1);
    tx.tally(rows_tally(member.grant.scope_type, true), 1);
    Ok(())
}

/// The tally of one scope type's member rows: the live grants, or with `ended` the history.
pub fn rows_tally(scope_type: ContentType, ended: bool) -> Tally {
    match (scope_type, ended) {
        (ContentType::Customer, false) => Tally::CustomerGrants,
        (ContentType::Customer, true) => Tally::CustomerPastGrants,
        (_, false) => Tally::ProjectGrants,
        (_, true) => Tally::ProjectPastGrants,
    }
}

/// Moves the grants of a project to another customer inside a transaction: every live grant's
/// user-side record, member row and `held` entry, every history row, and each holder's counts
/// in both customers (conditioned on the counts read, as every grant is). `holders` are the
/// users of the live grants, as read. Answers how many users leave `from` and join `to`, for
/// the customers' `users_count`.
pub fn add_project_move(
    tx: &mut Transaction<'_>,
    members: &[Member],
    holders: &[User],
    from: &Id,
    to: &Id,
) -> Result<(i64, i64)> {
    let moved = |pk: &str, sk: &str, tx: &mut Transaction<'_>| {
        tx.update(
            pk,
            sk,
            Expr::new("SET customer_uuid = :to").value(":to", s(to.to_string())),
            Some(Expr::new("attribute_exists(PK)")),
        )
    };
    let (mut leaving, mut joining) = (0, 0);
    for member in members.iter().filter(|m| m.ended.is_some()) {
        let (pk, sk) = MemberItem::past(member).key();
        moved(&pk, &sk, tx)?;
    }
    for holder in holders {
        let grants: Vec<&Grant> = members
            .iter()
            .filter(|m| m.ended.is_none() && m.grant.user_uuid == holder.uuid)
            .map(|m| &m.grant)
            .collect();
        if grants.is_empty() {
            continue;
        }
        let mut update = Expr::new("SET customer_grants.#to = :to_after");
        for (i, grant) in grants.iter().enumerate() {
            let (pk, sk) = grant.user_key();
            moved(&pk, &sk, tx)?;
            let (pk, sk) = grant.member_key();
            moved(&pk, &sk, tx)?;
            let held = HeldRole {
                customer: *to,
                ..HeldRole::of(grant)
            };
            update = update
                .and_set(&format!("held.#g{i} = :g{i}"))
                .name(
                    &format!("#g{i}"),
                    &held_key(grant.scope_type, &grant.scope_uuid, &grant.role_uuid),
                )
                .value(&format!(":g{i}"), encode_value(&held)?);
        }
        let count = |customer: &Id| {
            holder
                .customer_grants
                .get(&customer.to_string())
                .copied()
                .unwrap_or(0)
        };
        let moving = i64::try_from(grants.len()).map_err(Error::internal)?;
        let (before_from, before_to) = (count(from), count(to));
        let after_from = (before_from - moving).max(0);
        update = update
            .value(":to_after", n(before_to + moving))
            .name("#to", &to.to_string())
            .name("#from", &from.to_string());
        update = if after_from == 0 {
            update.and_remove("customer_grants.#from")
        } else {
            update
                .and_set("customer_grants.#from = :from_after")
                .value(":from_after", n(after_from))
        };
        let to_condition = if before_to == 0 {
            "(attribute_not_exists(customer_grants.#to) OR customer_grants.#to = :to_before)"
        } else {
            "customer_grants.#to = :to_before"
        };
        let condition = Expr::new(format!("customer_grants.#from = :from_before AND {to_condition}"))
            .value(":from_before", n(before_from))
            .value(":to_before", n(before_to));
        let (pk, sk) = User::key(&holder.uuid);
        tx.update(&pk, &sk, update, Some(condition))?;
        leaving += i64::from(after_from == 0);
        joining += i64::from(before_to == 0);
    }
    Ok((leaving, joining))
}

/// The member row of a live grant, by its key (from the user's `held` map or user-side record).
pub async fn member_of(store: &Store, grant: &Grant) -> Result<Option<Member>> {
    let (pk, sk) = grant.member_key();
    Ok(store.get::<MemberItem>(&pk, &sk).await?.map(|item| item.member))
}

/// Where a revocation's actions sit in its transaction.
pub struct RevokeActions {
    /// The removal of the user-side record, conditioned on being this grant.
    pub first: usize,
    /// The user item's update, conditioned on the user's count in the customer.
    pub user: usize,
}

/// Revokes a grant in a transaction of its own; revoking one already gone is a no-op.
pub async fn revoke(store: &Store, existing: &Member, new: &NewGrant<'_>, now: &Timestamp) -> Result<()> {
    let mut fresh: Option<User> = None;
    for _ in 0..USER_ATTEMPTS {
        let user = fresh.as_ref().unwrap_or(new.user);
        let new = NewGrant { user, ..*new };
        let mut tx = store.transaction();
        let actions = add_revoke(&mut tx, existing, &new, now)?;
        match tx.commit().await {
            Ok(()) => return Ok(()),
            Err(TxError::ConditionFailed(i)) if i == actions.first => return Ok(()),
            Err(TxError::ConditionFailed(i)) if i == actions.user => {
                match crate::users::get(store, &new.user.uuid).await? {
                    Some(user) => fresh = Some(user),
                    None => return Ok(()),
                }
            }
            Err(err) => return Err(err.into()),
        }
    }
    Err(Error::Conflict(USER_CHANGED.into()))
}

/// Grants revoked per transaction when a user is deleted: four actions each (both items, the
/// history row and the audit event) beside one counter update per scope and per role and the
/// user's `held`.
const REVOKED_PER_BATCH: usize = 12;

/// Revokes one batch of the grants a user's `held` map records, for deleting the user: both
/// items of each grant, its audit event, the scopes' and roles' counters (one update per scope
/// and per role, as a transaction touches an item once) and the entries of `held`, all in one
/// transaction. Returns how many grants it revoked (0: none left).
pub async fn revoke_batch_of_user(
    store: &Store,
    actor: Option<&AuthUser>,
    user: &User,
    now: &Timestamp,
) -> Result<usize> {
    let batch: Vec<Grant> = held_by(user).into_iter().take(REVOKED_PER_BATCH).collect();
    if batch.is_empty() {
        return Ok(0);
    }
    // The batch's member rows, for the history (one BatchGetItem).
    let mut rows = store.batch_get_items(&member_keys(&batch)).await?;
    let rows = take_members(&mut rows)?;
    let mut tx = store.transaction();
    let mut per_scope: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let mut per_role: BTreeMap<Id, i64> = BTreeMap::new();
    let mut removed = Vec::new();
    for grant in &batch {
        let (pk, sk) = grant.user_key();
        tx.delete(
            &pk,
            &sk,
            Some(
                Expr::new("#uuid = :uuid")
                    .name("#uuid", "uuid")
                    .value(":uuid", s(grant.uuid.to_string())),
            ),
        )?;
        let (member_pk, member_sk) = grant.member_key();
        match rows.iter().find(|row| row.grant.uuid == grant.uuid) {
            Some(row) => end_member(&mut tx, row, now)?,
            None => {
                tx.delete(&member_pk, &member_sk, None)?;
            }
        }
        let counts = per_scope.entry(member_pk).or_default();
        counts.0 -= 1;
        counts.1 -= i64::from(grant.expiration_time.is_some());
        *per_role.entry(grant.role_uuid).or_default() -= 1;
        removed.push(held_key(grant.scope_type, &grant.scope_uuid, &grant.role_uuid));
        let event = Event {
            event_type: "role_revoked",
            subject: grant.member_key().0,
            message: format!("User {} has lost a role: the user is deleted.", user.username),
            details: json!({
                "grant_uuid": grant.uuid,
                "affected_user": grant.user_uuid,
                "role_uuid": grant.role_uuid,
                "scope_type": grant.scope_type.as_str(),
                "scope_uuid": grant.scope_uuid,
                "customer_uuid": grant.customer_uuid,
            }),
        };
        audit::record(&mut tx, actor, &event, now)?;
    }
    // Per customer: how many of the user's grants there the batch revokes, and whether the
    // user thereby leaves the customer's `users_count`.
    let mut per_customer: BTreeMap<Id, i64> = BTreeMap::new();
    for grant in &batch {
        *per_customer.entry(grant.customer_uuid).or_default() += 1;
    }
    let counts: Vec<CustomerCount> = per_customer
        .iter()
        .map(|(customer, k)| CustomerCount::of(user, customer, -k))
        .collect();
    let mut leaving: BTreeMap<String, i64> = counts
        .iter()
        .filter(|c| c.users_delta() != 0)
        .map(|c| {
            (
                scopes::partition(ContentType::Customer, &c.customer),
                c.users_delta(),
            )
        })
        .collect();
    for (partition, (members, expiring)) in per_scope {
        let users = leaving.remove(&partition).unwrap_or(0);
        tx.update(
            &partition,
            "#META",
            Expr::new("ADD member_count :members, expiring_count :expiring, users_count :users")
                .value(":members", n(members))
                .value(":expiring", n(expiring))
                .value(":users", n(users)),
            Some(Expr::new("attribute_exists(PK)")),
        )?;
    }
    // Customers whose item no grant of the batch touched as a scope.
    for (partition, users) in leaving {
        tx.update(
            &partition,
            "#META",
            Expr::new("ADD users_count :users").value(":users", n(users)),
            Some(Expr::new("attribute_exists(PK)")),
        )?;
    }
    for (role, delta) in per_role {
        tx.update(
            "ROLES",
            &format!("ROLE#{role}"),
            Expr::new("ADD users_count :delta").value(":delta", n(delta)),
            Some(Expr::new("attribute_exists(PK)")),
        )?;
    }
    let placeholders: Vec<String> = (0..removed.len()).map(|i| format!("#held{i}")).collect();
    let mut update = Expr::new(format!(
        "REMOVE {}",
        placeholders
            .iter()
            .map(|p| format!("held.{p}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    for (placeholder, key) in placeholders.iter().zip(&removed) {
        update = update.name(placeholder, key);
    }
    let mut condition = Expr::new("attribute_exists(PK)");
    for (i, count) in counts.iter().enumerate() {
        let path = format!("customer_grants.#cust{i}");
        update = if count.after == 0 {
            update.and_remove(&path)
        } else {
            update
                .and_set(&format!("{path} = :cust_after{i}"))
                .value(&format!(":cust_after{i}"), n(count.after))
        }
        .name(&format!("#cust{i}"), &count.customer.to_string());
        condition = condition.and(
            Expr::new(format!("{path} = :cust_before{i}"))
                .value(&format!(":cust_before{i}"), n(count.before)),
        );
    }
    let (user_pk, user_sk) = User::key(&user.uuid);
    tx.update(&user_pk, &user_sk, update, Some(condition))?;
    tx.commit().await?;
    Ok(batch.len())
}

/// Rewrites the user's names on the member rows of all their grants (display copies, found
/// through the user item's `held` map), in transactions of at most 100 updates.
pub async fn refresh_member_names(store: &Store, user: &User) -> Result<()> {
    let grants = held_by(user);
    for chunk in grants.chunks(100) {
        let mut tx = store.transaction();
        for grant in chunk {
            let (pk, sk) = grant.member_key();
            tx.update(
                &pk,
                &sk,
                Expr::new(
                    "SET user_username = :username, user_full_name = :full, user_email = :email, \
                     user_native_name = :native",
                )
                .value(":username", s(user.username.as_str()))
                .value(":full", s(user.full_name()))
                .value(":email", s(user.email.as_str()))
                .value(":native", s(user.native_name.as_str())),
                Some(Expr::new("attribute_exists(PK)")),
            )?;
        }
        match tx.commit().await {
            // A grant revoked meanwhile has no row to refresh; the next change will catch up.
            Ok(()) | Err(TxError::ConditionFailed(_)) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

/// The member rows of a customer and of each of its projects (one Query for the projects, then
/// one per scope, `CONCURRENT_SCOPES` at a time): the customer's member overview.
pub async fn members_of_customer(
    store: &Store,
    customer: &Id,
) -> Result<(Vec<Member>, Vec<(scopes::Project, Vec<Member>)>)> {
    const CONCURRENT_SCOPES: usize = 16;
    let projects = scopes::projects_of(store, customer).await?;
    let own = async {
        Ok::<_, Error>(
            scope_with_members(store, ContentType::Customer, customer, None)
                .await?
                .map(|(_, members)| members)
                .unwrap_or_default(),
        )
    };
    let of_projects = stream::iter(projects)
        .map(|project| async move {
            let members = scope_with_members(store, ContentType::Project, &project.uuid, None)
                .await?
                .map(|(_, members)| members)
                .unwrap_or_default();
            Ok::<_, Error>((project, members))
        })
        .buffered(CONCURRENT_SCOPES)
        .try_collect::<Vec<_>>();
    let (own, of_projects) = tokio::try_join!(own, of_projects)?;
    Ok((own, of_projects))
}

/// The rows of every scope of one type (staff and support listings), in creation order: its
/// active grants, or with `ended` its history rows.
pub async fn rows_of_type(store: &Store, scope_type: ContentType, ended: bool) -> Result<Vec<Member>> {
    let partition = if ended { "PAST_GRANTS" } else { "GRANTS" };
    let items: Vec<MemberItem> = store
        .query_index("GSI3", &format!("{partition}#{}", scope_type.as_str()))
        .await?;
    Ok(items.into_iter().map(|item| item.member).collect())
}

/// The member row of a grant, live or ended, by the grant's uuid.
pub async fn member_by_uuid(store: &Store, grant: &Id) -> Result<Option<Member>> {
    let items: Vec<MemberItem> = store.query_index("GSI2", &format!("GRANT#{grant}")).await?;
    Ok(items.into_iter().next().map(|item| item.member))
}

/// Orders members by Waldur's `o=` fields (`username`, `full_name`, `native_name`, `email`,
/// `expiration_time`, `role`, `created`; a `user__` prefix is allowed). Later fields break ties
/// of earlier ones.
pub fn sort_members(members: &mut [Member], ordering: &[(String, bool)], role_name: impl Fn(&Id) -> String) {
    for (field, descending) in ordering.iter().rev() {
        members.sort_by(|a, b| {
            let key = |m: &Member| -> String {
                match field.trim_start_matches("user__") {
                    "username" => m.names.user_username.to_lowercase(),
                    "full_name" => m.names.user_full_name.to_lowercase(),
                    "native_name" => m.names.user_native_name.to_lowercase(),
                    "email" => m.names.user_email.to_lowercase(),
                    "expiration_time" => m.grant.expiration_time.clone().unwrap_or_default(),
                    "role" => role_name(&m.grant.role_uuid),
                    _ => m.grant.created.clone(),
                }
            };
            let order = key(a).cmp(&key(b));
            if *descending { order.reverse() } else { order }
        });
    }
}

/// Whether some grant's expiration time has passed and the sweeper has not ended it yet: its
/// member row still reads as live (one Query of one key).
pub async fn any_unswept_expiry(store: &Store, now: &Timestamp) -> Result<bool> {
    let below = time::storage(now);
    let (items, _) = store
        .index_page::<UserSideItem>("GSI1", "GRANT_EXPIRY", Some(&below), 1, None)
        .await?;
    Ok(!items.is_empty())
}

/// A page of the member rows of `scope_types` (with `history`, their ended rows too), as staff
/// list them: merged in `order` of creation and counted by their tallies (which the caller's
/// credentials may have read already).
pub async fn rows_listing(
    store: &Store,
    caller: &AuthUser,
    scope_types: &[ContentType],
    history: bool,
    order: Order,
    request: &PageRequest,
) -> Result<Page<Member>> {
    let tallies: Vec<Tally> = scope_types
        .iter()
        .flat_map(|t| std::iter::once(rows_tally(*t, false)).chain(history.then(|| rows_tally(*t, true))))
        .collect();
    let partitions: Vec<&str> = tallies.iter().map(|t| t.index_partition().1).collect();
    let counts: Vec<_> = tallies
        .iter()
        .map(|tally| store.tally(*tally, caller.take_prefetched_tally(*tally)))
        .collect();
    let total = async { Ok::<usize, Error>(futures::future::try_join_all(counts).await?.into_iter().sum()) };
    let read =
        |number: usize| store.merged_page_at::<MemberItem>("GSI3", &partitions, order, number, request.size);
    let (items, total, number) = match request.selector {
        PageSelector::Number(number) => {
            let (items, total) = tokio::try_join!(read(number), total)?;
            (items, total, number)
        }
        PageSelector::Last => {
            let total = total.await?;
            let number = total.div_ceil(request.size).max(1);
            (read(number).await?, total, number)
        }
    };
    Ok(Page::numbered(items, number, request.size, total)?.map(|item| item.member))
}

/// One page of grants whose expiration time is before `now` (the sweeper's scan; the expiry
/// warnings ask for a time a week ahead).
pub async fn expired_page(
    store: &Store,
    now: &Timestamp,
    start: Option<Item>,
) -> Result<(Vec<Grant>, Option<Item>)> {
    let below = time::storage(now);
    let (items, next) = store
        .index_page::<UserSideItem>("GSI1", "GRANT_EXPIRY", Some(&below), 100, start)
        .await?;
    Ok((items.into_iter().map(|i| i.grant).collect(), next))
}

/// Revokes an expired grant on behalf of nobody (the sweeper); the audit event says why.
pub async fn expire(store: &Store, grant: &Grant, now: &Timestamp) -> Result<bool> {
    let (scope, user, role, member) = tokio::try_join!(
        scopes::get_scope(store, grant.scope_type, &grant.scope_uuid),
        crate::users::get(store, &grant.user_uuid),
        roles::find(store, &grant.role_uuid),
        member_of(store, grant)
    )?;
    let (Some(scope), Some(user), Some(role), Some(member)) = (scope, user, role, member) else {
        return Ok(false);
    };
    let new = NewGrant {
        scope: &scope,
        user: &user,
        role: &role,
        expiration_time: None,
        granted_by: None,
    };
    revoke(store, &member, &new, now).await?;
    Ok(true)
}

/// Warns of a grant about to expire, once per expiration time: marks the grant's user-side item
/// (`expiry_warned`, conditioned on the expiration time read and on no warning for it) and writes
/// the outbox item to the holder and the scope's managers, in one transaction.
pub async fn warn_expiring(store: &Store, grant: &Grant, now: &Timestamp) -> Result<bool> {
    let Some(expiration) = grant.expiration_time.as_deref() else {
        return Ok(false);
    };
    if !grant.is_active_at(now) {
        return Ok(false);
    }
    let (user, role) = tokio::try_join!(
        crate::users::get(store, &grant.user_uuid),
        roles::find(store, &grant.role_uuid)
    )?;
    let (Some(user), Some(role)) = (user, role) else {
        return Ok(false);
    };
    let (pk, sk) = user_side_key(grant);
    let mut tx = store.transaction();
    tx.update(
        &pk,
        &sk,
        Expr::new("SET expiry_warned = :expiration").value(":expiration", s(expiration)),
        Some(
            Expr::new(
                "expiration_time = :expiration AND (attribute_not_exists(expiry_warned) OR expiry_warned <> :expiration)",
            )
            .value(":expiration", s(expiration)),
        ),
    )?;
    let scope = json!({"scope_type": grant.scope_type.as_str(), "scope_uuid": grant.scope_uuid});
    crate::outbox::add(
        &mut tx,
        "grant_expiring",
        &json!({"holder_and_managers_of": scope, "user": grant.user_uuid}),
        &json!({
            "grant_uuid": grant.uuid,
            "username": user.username,
            "role_name": role.name,
            "expiration_time": expiration,
        }),
        now,
    )?;
    match tx.commit().await {
        Ok(()) => Ok(true),
        Err(TxError::ConditionFailed(0)) => Ok(false),
        Err(err) => Err(err.into()),
    }
}
