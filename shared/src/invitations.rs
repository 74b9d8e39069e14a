//! Group invitations (a reusable "join" offer of a role on a scope) and the permission requests
//! users submit through them. Every transition is one conditional transaction: approving a
//! request changes its state and makes the grant together, so two concurrent approvals give one
//! grant and one 409.

use chrono::Duration;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::{self, Event};
use std::sync::Arc;

use crate::auth::AuthUser;
use crate::authz::{Access, Membership, RoleSet, ScopeRef};
use crate::error::{Error, Result};
use crate::grants::{self, NewGrant};
use crate::ids::Id;
use crate::outbox;
use crate::page::{Order, Page, PageRequest};
use crate::roles::{ContentType, Role};
use crate::scopes::{self, Directory, Scope};
use crate::store::{Expr, Store, Tally, Transaction, TxError, s};
use crate::time::{self, Timestamp};
use crate::users::User;

/// Invitations stop accepting requests four weeks after they were made.
pub const LIFETIME: Duration = Duration::weeks(4);
pub const VALID_STATES_PENDING: &str = "Valid states for operation: pending.";
pub const REQUEST_EXISTS: &str = "Permission request already exists for this scope.";
const TEMPLATE_PLACEHOLDERS: [&str; 3] = ["email", "full_name", "username"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invitation {
    pub uuid: Id,
    pub scope_type: ContentType,
    pub scope_uuid: Id,
    pub customer_uuid: Id,
    pub role_uuid: Id,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_role_uuid: Option<Id>,
    #[serde(default)]
    pub auto_approve: bool,
    #[serde(default)]
    pub auto_create_project: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_name_template: Option<String>,
    #[serde(default)]
    pub custom_text: String,
    #[serde(default)]
    pub allow_multiple_requests: bool,
    pub created: String,
    pub created_by: Id,
    #[serde(default)]
    pub created_by_username: String,
    #[serde(default)]
    pub created_by_full_name: String,
    pub is_active: bool,
    /// Who last changed the terms, if anyone did after the creator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_by: Option<Id>,
    /// When it stops accepting requests, where that is not `created + LIFETIME` (invitations
    /// imported from Waldur keep the expiry Waldur gave them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<String>,
}

impl Invitation {
    /// Whose authority an auto-approval is judged by, as they are at the submit: whoever set
    /// the terms last (an editor who may offer them, else the creator). So an edit cannot lend
    /// the creator's rights to terms, or to a requester, the editor could not grant.
    pub fn decider(&self) -> Id {
        self.edited_by.unwrap_or(self.created_by)
    }

    pub fn expires(&self) -> Timestamp {
        self.expiry
            .as_deref()
            .and_then(time::parse_stored)
            .unwrap_or_else(|| time::parse_stored(&self.created).unwrap_or_default() + LIFETIME)
    }

    /// Active and not expired: an expired invitation is inactive.
    pub fn is_pending_at(&self, now: &Timestamp) -> bool {
        self.is_active && *now < self.expires()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Draft,
    Pending,
    Approved,
    Rejected,
    Canceled,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Draft => "draft",
            State::Pending => "pending",
            State::Approved => "approved",
            State::Rejected => "rejected",
            State::Canceled => "canceled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PermissionRequest {
    pub uuid: Id,
    pub invitation_uuid: Id,
    pub state: State,
    pub created: String,
    pub created_by: Id,
    pub created_by_username: String,
    #[serde(default)]
    pub created_by_full_name: String,
    #[serde(default)]
    pub created_by_email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewed_by: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewed_by_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewed_by_full_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_comment: Option<String>,
    pub scope_type: ContentType,
    pub scope_uuid: Id,
    pub customer_uuid: Id,
    pub role_uuid: Id,
    /// The project an approval created or reused (auto_create_project invitations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_uuid: Option<Id>,
    /// The invitation's template, copied (invitations do not change) so that a request row
    /// needs no read of its invitation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_name_template: Option<String>,
    /// When the invitation stops accepting requests, copied like the template: a request
    /// still pending then has ended with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invitation_expires: Option<String>,
}

impl PermissionRequest {
    /// A new pending request of `requester` through `invitation`, carrying the invitation's
    /// template and expiry.
    pub fn pending(invitation: &Invitation, requester: &User, now: &Timestamp) -> Self {
        PermissionRequest {
            uuid: Id::new(),
            invitation_uuid: invitation.uuid,
            state: State::Pending,
            created: time::storage(now),
            created_by: requester.uuid,
            created_by_username: requester.username.clone(),
            created_by_full_name: requester.full_name(),
            created_by_email: requester.email.clone(),
            reviewed_by: None,
            reviewed_by_username: None,
            reviewed_by_full_name: None,
            reviewed_at: None,
            review_comment: None,
            scope_type: invitation.scope_type,
            scope_uuid: invitation.scope_uuid,
            customer_uuid: invitation.customer_uuid,
            role_uuid: invitation.role_uuid,
            project_uuid: None,
            project_name_template: invitation.project_name_template.clone(),
            invitation_expires: Some(time::storage(&invitation.expires())),
        }
    }

    /// The state as of `now`: a pending request whose invitation has expired is canceled, as
    /// cancelling the invitation would have made it (the stored state catches up lazily).
    pub fn state_at(&self, now: &Timestamp) -> State {
        let expired = self
            .invitation_expires
            .as_deref()
            .and_then(time::parse_stored)
            .is_some_and(|expires| *now >= expires);
        match self.state {
            State::Pending if expired => State::Canceled,
            state => state,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct InvitationItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    #[serde(rename = "GSI1PK")]
    of_customer: String,
    #[serde(rename = "GSI1SK")]
    of_customer_sort: String,
    #[serde(rename = "GSI2PK")]
    all: String,
    #[serde(rename = "GSI2SK")]
    all_sort: String,
    entity: String,
    #[serde(flatten)]
    invitation: Invitation,
}

#[derive(Serialize, Deserialize)]
struct RequestItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    #[serde(rename = "GSI1PK")]
    of_customer: String,
    #[serde(rename = "GSI1SK")]
    of_customer_sort: String,
    #[serde(rename = "GSI2PK")]
    of_user: String,
    #[serde(rename = "GSI2SK")]
    of_user_sort: String,
    #[serde(rename = "GSI3PK")]
    all: String,
    #[serde(rename = "GSI3SK")]
    all_sort: String,
    entity: String,
    #[serde(flatten)]
    request: PermissionRequest,
}

impl RequestItem {
    fn new(request: &PermissionRequest) -> Self {
        let sort = format!("{}#{}", request.created, request.uuid);
        RequestItem {
            pk: request_key(&request.uuid),
            sk: "#META".into(),
            of_customer: format!("CUSTOMER#{}#REQUESTS", request.customer_uuid),
            of_customer_sort: sort.clone(),
            of_user: format!("USER#{}#REQUESTS", request.created_by),
            of_user_sort: sort.clone(),
            all: "REQUESTS".into(),
            all_sort: sort,
            entity: "permission_request".into(),
            request: request.clone(),
        }
    }
}

/// At most one open request per (scope, user), whichever invitation it came through (unless the
/// invitation allows several).
#[derive(Serialize, Deserialize)]
struct OpenRequestMarker {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    entity: String,
    request_uuid: Id,
}

pub(crate) fn invitation_key(uuid: &Id) -> String {
    format!("INVITATION#{uuid}")
}

pub(crate) fn request_key(uuid: &Id) -> String {
    format!("REQUEST#{uuid}")
}

/// The key of the marker that keeps one open request per (scope, user).
fn open_request_key(scope_type: ContentType, scope: &Id, user: &Id) -> (String, String) {
    (
        format!("OPENREQUEST#{}#{scope}", scope_type.as_str()),
        format!("USER#{user}"),
    )
}

/// Checks a project name template: only `{username}`, `{email}` and `{full_name}`.
pub fn check_template(template: &str) -> Result<()> {
    let mut unknown = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let name = &rest[open + 1..open + close];
        if !TEMPLATE_PLACEHOLDERS.contains(&name) {
            unknown.push(name.to_owned());
        }
        rest = &rest[open + close + 1..];
    }
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(Error::field(
            "project_name_template",
            format!(
                "Invalid placeholders in template: {}. Allowed placeholders are: email, full_name, username",
                unknown.join(", ")
            ),
        ))
    }
}

/// The project name for a requester; the username when the template is empty.
pub fn project_name(template: Option<&str>, user: &User) -> String {
    let full_name = if user.full_name().is_empty() {
        user.username.clone()
    } else {
        user.full_name()
    };
    let name = template
        .unwrap_or_default()
        .replace("{username}", &user.username)
        .replace("{email}", &user.email)
        .replace("{full_name}", &full_name);
    if name.trim().is_empty() {
        user.username.clone()
    } else {
        name.trim().to_owned()
    }
}

impl InvitationItem {
    fn new(invitation: &Invitation) -> Self {
        let sort = format!("{}#{}", invitation.created, invitation.uuid);
        InvitationItem {
            pk: invitation_key(&invitation.uuid),
            sk: "#META".into(),
            of_customer: format!("CUSTOMER#{}#INVITATIONS", invitation.customer_uuid),
            of_customer_sort: sort.clone(),
            all: "INVITATIONS".into(),
            all_sort: sort,
            entity: "group_invitation".into(),
            invitation: invitation.clone(),
        }
    }
}

pub async fn create(store: &Store, actor: &AuthUser, invitation: &Invitation, now: &Timestamp) -> Result<()> {
    let mut tx = store.transaction();
    tx.put(
        &InvitationItem::new(invitation),
        Some(Expr::new("attribute_not_exists(PK)")),
    )?;
    tx.tally(Tally::Invitations, 1);
    let event = Event {
        event_type: "group_invitation_created",
        subject: invitation_key(&invitation.uuid),
        message: format!("Group invitation {} has been created.", invitation.uuid),
        details: json!({"scope_type": invitation.scope_type.as_str(), "scope_uuid": invitation.scope_uuid}),
    };
    audit::record(&mut tx, Some(actor), &event, now)?;
    tx.commit().await.map_err(Error::from)
}

/// Adds an invitation moved over from Waldur to a transaction, as it was there (uuid, scope,
/// role, creator, `created`, active or canceled, expiry), with its audit event; the put is
/// conditioned on the invitation not existing.
pub fn add_imported_invitation(
    tx: &mut Transaction<'_>,
    invitation: &Invitation,
    now: &Timestamp,
) -> Result<usize> {
    let index = tx.put(
        &InvitationItem::new(invitation),
        Some(Expr::new("attribute_not_exists(PK)")),
    )?;
    let event = Event {
        event_type: "group_invitation_imported",
        subject: invitation_key(&invitation.uuid),
        message: format!(
            "Group invitation {} has been imported from Waldur.",
            invitation.uuid
        ),
        details: json!({
            "scope_type": invitation.scope_type.as_str(),
            "scope_uuid": invitation.scope_uuid,
            "is_active": invitation.is_active,
        }),
    };
    audit::record(tx, None, &event, now)?;
    Ok(index)
}

/// Where the puts of an imported request sit in its transaction.
#[derive(Debug, Clone, Copy)]
pub struct ImportedRequestActions {
    pub request: usize,
    /// The open-request marker of a pending request.
    pub marker: Option<usize>,
}

/// Adds a permission request moved over from Waldur to a transaction, in the state Waldur had
/// it (with its decision and comment), with its audit event; a pending one takes the marker
/// of its (scope, user), as a submitted request does (unless its invitation allows several).
/// Both puts are conditioned on their item not existing.
pub fn add_imported_request(
    tx: &mut Transaction<'_>,
    request: &PermissionRequest,
    allow_multiple_requests: bool,
    now: &Timestamp,
) -> Result<ImportedRequestActions> {
    let not_exists = || Some(Expr::new("attribute_not_exists(PK)"));
    let index = tx.put(&RequestItem::new(request), not_exists())?;
    let marker = if request.state == State::Pending && !allow_multiple_requests {
        let (pk, sk) = open_request_key(request.scope_type, &request.scope_uuid, &request.created_by);
        Some(tx.put(
            &OpenRequestMarker {
                pk,
                sk,
                entity: "open_request".into(),
                request_uuid: request.uuid,
            },
            not_exists(),
        )?)
    } else {
        None
    };
    let event = Event {
        event_type: "permission_request_imported",
        subject: request_key(&request.uuid),
        message: format!(
            "Permission request {} has been imported from Waldur.",
            request.uuid
        ),
        details: json!({"invitation_uuid": request.invitation_uuid, "state": request.state.as_str()}),
    };
    audit::record(tx, None, &event, now)?;
    Ok(ImportedRequestActions {
        request: index,
        marker,
    })
}

/// The key of a request's item, for reading it with other items.
pub fn request_item_key(uuid: &Id) -> (String, String) {
    (request_key(uuid), "#META".to_owned())
}

/// The stored form of a request, as a read of its item returns it (bulk loads of benchmarks).
pub fn request_as_item(request: &PermissionRequest) -> Result<crate::store::Item> {
    crate::store::encode(&RequestItem::new(request))
}

/// Decodes a request read with other items.
pub fn request_from_item(item: crate::store::Item) -> Result<PermissionRequest> {
    Ok(crate::store::decode::<RequestItem>(item)?.request)
}

/// The key of the marker of the open request of `user` for a scope, for reading it with other
/// items.
pub fn open_request_item_key(scope_type: ContentType, scope: &Id, user: &Id) -> (String, String) {
    open_request_key(scope_type, scope, user)
}

/// The request an open-request marker (read with other items) names.
pub fn open_request_owner(item: crate::store::Item) -> Result<Id> {
    Ok(crate::store::decode::<OpenRequestMarker>(item)?.request_uuid)
}

/// Replaces an active invitation's terms (`PUT`/`PATCH`), conditioned on its being active
/// still. Requests already submitted keep the terms they were made under (each carries its
/// scope, role and template).
pub async fn update(store: &Store, actor: &AuthUser, invitation: &Invitation, now: &Timestamp) -> Result<()> {
    let mut tx = store.transaction();
    tx.put(
        &InvitationItem::new(invitation),
        Some(Expr::new("is_active = :yes").value(":yes", crate::store::b(true))),
    )?;
    let event = Event {
        event_type: "group_invitation_updated",
        subject: invitation_key(&invitation.uuid),
        message: format!("Group invitation {} has been updated.", invitation.uuid),
        details: json!({"scope_type": invitation.scope_type.as_str(), "scope_uuid": invitation.scope_uuid, "role_uuid": invitation.role_uuid}),
    };
    audit::record(&mut tx, Some(actor), &event, now)?;
    match tx.commit().await {
        Ok(()) => Ok(()),
        Err(TxError::ConditionFailed(0)) => Err(Error::rejected("Only active invitations can be edited.")),
        Err(err) => Err(err.into()),
    }
}

/// Deletes a canceled invitation (`DELETE`); its requests stay, with their history.
pub async fn delete(store: &Store, actor: &AuthUser, invitation: &Invitation, now: &Timestamp) -> Result<()> {
    let mut tx = store.transaction();
    tx.delete(
        &invitation_key(&invitation.uuid),
        "#META",
        Some(Expr::new("is_active = :no").value(":no", crate::store::b(false))),
    )?;
    tx.tally(Tally::Invitations, -1);
    let event = Event {
        event_type: "group_invitation_deleted",
        subject: invitation_key(&invitation.uuid),
        message: format!("Group invitation {} has been deleted.", invitation.uuid),
        details: json!({}),
    };
    audit::record(&mut tx, Some(actor), &event, now)?;
    match tx.commit().await {
        Ok(()) => Ok(()),
        Err(TxError::ConditionFailed(0)) => Err(Error::rejected("Only canceled invitation can be deleted.")),
        Err(err) => Err(err.into()),
    }
}

/// The key of an invitation's item, for reading it with other items.
pub fn invitation_item_key(uuid: &Id) -> (String, String) {
    (invitation_key(uuid), "#META".to_owned())
}

/// The stored form of an invitation (bulk loads of benchmarks).
pub fn invitation_as_item(invitation: &Invitation) -> Result<crate::store::Item> {
    crate::store::encode(&InvitationItem::new(invitation))
}

/// Decodes an invitation read with other items.
pub fn invitation_from_item(item: crate::store::Item) -> Result<Invitation> {
    Ok(crate::store::decode::<InvitationItem>(item)?.invitation)
}

pub async fn get(store: &Store, uuid: &Id) -> Result<Option<Invitation>> {
    Ok(store
        .get::<InvitationItem>(&invitation_key(uuid), "#META")
        .await?
        .map(|i| i.invitation))
}

/// As `get`, taking the invitation from what `caller`'s credentials read with the token, if
/// they read it.
pub async fn get_for(store: &Store, caller: &AuthUser, uuid: &Id) -> Result<Option<Invitation>> {
    match caller.take_prefetched(&invitation_item_key(uuid)) {
        Some(item) => item.map(invitation_from_item).transpose(),
        None => get(store, uuid).await,
    }
}

/// A page of all invitations in `order` of creation, beside their tally (which the caller's
/// credentials may have read already).
pub async fn listing(
    store: &Store,
    caller: &AuthUser,
    order: Order,
    request: &PageRequest,
) -> Result<Page<Invitation>> {
    let prefetched = caller.take_prefetched_tally(Tally::Invitations);
    let page: Page<InvitationItem> = store
        .tallied_page(Tally::Invitations, order, request, prefetched)
        .await?;
    Ok(page.map(|item| item.invitation))
}

pub async fn all(store: &Store) -> Result<Vec<Invitation>> {
    let items: Vec<InvitationItem> = store.query_index("GSI2", "INVITATIONS").await?;
    Ok(items.into_iter().map(|i| i.invitation).collect())
}

pub async fn of_customer(store: &Store, customer: &Id) -> Result<Vec<Invitation>> {
    let items: Vec<InvitationItem> = store
        .query_index("GSI1", &format!("CUSTOMER#{customer}#INVITATIONS"))
        .await?;
    Ok(items.into_iter().map(|i| i.invitation).collect())
}

/// Requests ended per transaction of a cancellation (two actions each, beside the invitation's
/// update and the audit event, within the 100 actions of a transaction).
const REQUESTS_PER_CANCEL: usize = 45;
/// How often a cancellation re-reads the requests after one of them changed under it.
const CANCEL_ATTEMPTS: usize = 5;

/// Cancels an invitation and ends its pending requests (state canceled). Waldur leaves them
/// approvable; here an offer withdrawn is withdrawn. The first transaction deactivates the
/// invitation with the first requests; from then on no request of it can be submitted or
/// approved (both transactions check that the invitation is active), and the rest are ended in
/// further transactions, each with its audit event.
pub async fn cancel(store: &Store, actor: &AuthUser, invitation: &Invitation, now: &Timestamp) -> Result<()> {
    let mut invitation_active = true;
    let mut attempts = 0;
    loop {
        let pending: Vec<PermissionRequest> = requests_of_customer(store, &invitation.customer_uuid)
            .await?
            .into_iter()
            .filter(|r| r.invitation_uuid == invitation.uuid && r.state == State::Pending)
            .collect();
        if !invitation_active && pending.is_empty() {
            return Ok(());
        }
        let batch = &pending[..pending.len().min(REQUESTS_PER_CANCEL)];
        let mut tx = store.transaction();
        if invitation_active {
            tx.update(
                &invitation_key(&invitation.uuid),
                "#META",
                Expr::new("SET is_active = :no").value(":no", crate::store::b(false)),
                Some(Expr::new("is_active = :yes").value(":yes", crate::store::b(true))),
            )?;
        }
        for request in batch {
            tx.update(
                &request_key(&request.uuid),
                "#META",
                set_canceled(),
                Some(still_pending()),
            )?;
            delete_marker(&mut tx, request)?;
        }
        let ended: Vec<Id> = batch.iter().map(|r| r.uuid).collect();
        let event = if invitation_active {
            Event {
                event_type: "group_invitation_canceled",
                subject: invitation_key(&invitation.uuid),
                message: format!("Group invitation {} has been canceled.", invitation.uuid),
                details: json!({"requests_canceled": ended}),
            }
        } else {
            Event {
                event_type: "permission_requests_canceled",
                subject: invitation_key(&invitation.uuid),
                message: format!(
                    "Pending requests of canceled invitation {} have been canceled.",
                    invitation.uuid
                ),
                details: json!({"requests_canceled": ended}),
            }
        };
        audit::record(&mut tx, Some(actor), &event, now)?;
        match tx.commit().await {
            Ok(()) => {
                invitation_active = false;
                if pending.len() <= batch.len() {
                    return Ok(());
                }
            }
            Err(TxError::ConditionFailed(0)) if invitation_active => {
                return Err(Error::rejected("Only pending invitation can be canceled."));
            }
            // A request was decided or canceled meanwhile: read them again.
            Err(TxError::ConditionFailed(_)) if attempts < CANCEL_ATTEMPTS => attempts += 1,
            Err(err) => return Err(err.into()),
        }
    }
}

pub async fn get_request(store: &Store, uuid: &Id) -> Result<Option<PermissionRequest>> {
    Ok(store
        .get::<RequestItem>(&request_key(uuid), "#META")
        .await?
        .map(|i| i.request))
}

/// As `get_request`, taking the request from what `caller`'s credentials read with the token,
/// if they read it.
pub async fn get_request_for(
    store: &Store,
    caller: &AuthUser,
    uuid: &Id,
) -> Result<Option<PermissionRequest>> {
    match caller.take_prefetched(&request_item_key(uuid)) {
        Some(item) => Ok(item
            .map(crate::store::decode::<RequestItem>)
            .transpose()?
            .map(|i| i.request)),
        None => get_request(store, uuid).await,
    }
}

/// A page of all permission requests in `order` of creation, beside their tally.
pub async fn requests_listing(
    store: &Store,
    caller: &AuthUser,
    order: Order,
    request: &PageRequest,
) -> Result<Page<PermissionRequest>> {
    let prefetched = caller.take_prefetched_tally(Tally::Requests);
    let page: Page<RequestItem> = store
        .tallied_page(Tally::Requests, order, request, prefetched)
        .await?;
    Ok(page.map(|item| item.request))
}

pub async fn all_requests(store: &Store) -> Result<Vec<PermissionRequest>> {
    let items: Vec<RequestItem> = store.query_index("GSI3", "REQUESTS").await?;
    Ok(items.into_iter().map(|i| i.request).collect())
}

pub async fn requests_of_customer(store: &Store, customer: &Id) -> Result<Vec<PermissionRequest>> {
    let items: Vec<RequestItem> = store
        .query_index("GSI1", &format!("CUSTOMER#{customer}#REQUESTS"))
        .await?;
    Ok(items.into_iter().map(|i| i.request).collect())
}

pub async fn requests_of_user(store: &Store, user: &Id) -> Result<Vec<PermissionRequest>> {
    let items: Vec<RequestItem> = store
        .query_index("GSI2", &format!("USER#{user}#REQUESTS"))
        .await?;
    Ok(items.into_iter().map(|i| i.request).collect())
}

/// What an approval grants: the role on the invitation's scope, or (auto_create_project) the
/// project role on the requester's project, made when missing.
struct Approval {
    scope: Scope,
    role: Role,
    requester: User,
    /// The customer to create the planned project in, when it does not exist yet.
    new_project: Option<scopes::Customer>,
}

/// What an approval grants. `known` holds the invitation's scope and customer, read by the
/// caller with its other reads.
async fn plan_approval(
    store: &Store,
    roles: &RoleSet,
    invitation: &Invitation,
    requester: User,
    known: &Directory,
    now: &Timestamp,
) -> Result<Approval> {
    let missing = |what: &str| Error::Conflict(format!("The invitation's {what} no longer exists."));
    let role = roles
        .get(&invitation.role_uuid)
        .cloned()
        .ok_or_else(|| missing("role"))?;
    if !invitation.auto_create_project {
        let scope = known
            .scope(invitation.scope_type, &invitation.scope_uuid)
            .ok_or_else(|| missing("scope"))?;
        return Ok(Approval {
            scope,
            role,
            requester,
            new_project: None,
        });
    }
    let role = match invitation.project_role_uuid {
        Some(uuid) => roles.get(&uuid).cloned().ok_or_else(|| missing("project role"))?,
        None => role,
    };
    let customer = known
        .customer(&invitation.customer_uuid)
        .cloned()
        .ok_or_else(|| missing("customer"))?;
    let name = project_name(invitation.project_name_template.as_deref(), &requester);
    let existing = scopes::projects_of(store, &customer.uuid)
        .await?
        .into_iter()
        .find(|p| p.name == name);
    match existing {
        Some(project) => Ok(Approval {
            scope: Scope::Project(project),
            role,
            requester,
            new_project: None,
        }),
        None => {
            let planned = scopes::Project {
                member_count: 1,
                ..scopes::Project::new(&customer.uuid, &name, "", now)
            };
            Ok(Approval {
                scope: Scope::Project(planned),
                role,
                requester,
                new_project: Some(customer),
            })
        }
    }
}

/// The request after a successful submission, and whether it was approved at once.
pub struct Submitted {
    pub request: PermissionRequest,
    pub auto_approved: bool,
    pub project_created: bool,
}

/// What a submission reads besides the invitation: the requester's and the invitation creator's
/// user items, and the invitation's scope and customer.
pub struct SubmitRead<'a> {
    pub requester: &'a User,
    pub creator: Option<&'a User>,
    pub known: &'a Directory,
}

/// The keys of the user items a submission reads (requester, invitation creator), for reading
/// them with the scope in one request.
pub fn submit_keys(requester: &Id, invitation: &Invitation) -> [(String, String); 2] {
    [User::key(requester), User::key(&invitation.decider())]
}

/// Submits a request through an invitation (state pending). With `auto_approve` it is approved
/// in the same transaction, by the invitation's decider (its creator, or its last editor) as
/// they are now: only if the decider is still active, is not the requester, and may grant the role to the requester by the rule of
/// `add_user` at this moment. Otherwise the request stays pending for someone who may decide it.
pub async fn submit(
    store: &Store,
    roles: &Arc<RoleSet>,
    requester: &AuthUser,
    invitation: &Invitation,
    read: SubmitRead<'_>,
    now: &Timestamp,
) -> Result<Submitted> {
    if !invitation.is_pending_at(now) {
        return Err(Error::rejected("Only pending invitation can be requested."));
    }
    let user = read.requester;
    let mut request = PermissionRequest::pending(invitation, user, now);
    let decider = match read.creator {
        Some(creator) if invitation.auto_approve && creator.is_active && creator.uuid != user.uuid => {
            Some(Access::of_user(creator, roles.clone(), now))
        }
        _ => None,
    };
    let approval = match &decider {
        Some(decider) => {
            let plan = plan_approval(store, roles, invitation, user.clone(), read.known, now).await?;
            decider
                .may_manage(
                    Membership::Create,
                    &ScopeRef::from(&plan.scope),
                    &user.uuid,
                    &plan.role,
                )
                .is_ok()
                .then_some((plan, &decider.user))
        }
        None => None,
    };
    if let Some((approval, decider)) = &approval {
        mark_reviewed(&mut request, decider, None, now);
        request.state = State::Approved;
        request.project_uuid = project_of(approval);
    }
    let mut tx = store.transaction();
    tx.put(
        &RequestItem::new(&request),
        Some(Expr::new("attribute_not_exists(PK)")),
    )?;
    tx.tally(Tally::Requests, 1);
    let invitation_active = still_active(&mut tx, invitation)?;
    let marker = if invitation.allow_multiple_requests {
        None
    } else {
        let (pk, sk) = open_request_key(invitation.scope_type, &invitation.scope_uuid, &requester.uuid);
        Some(tx.put(
            &OpenRequestMarker {
                pk,
                sk,
                entity: "open_request".into(),
                request_uuid: request.uuid,
            },
            Some(Expr::new("attribute_not_exists(PK)")),
        )?)
    };
    let event = Event {
        event_type: "permission_request_submitted",
        subject: request_key(&request.uuid),
        message: format!(
            "User {} has requested a role through invitation {}.",
            requester.username, invitation.uuid
        ),
        details: json!({"invitation_uuid": invitation.uuid, "scope_uuid": invitation.scope_uuid}),
    };
    audit::record(&mut tx, Some(requester), &event, now)?;
    outbox::add(
        &mut tx,
        "permission_request_submitted",
        &json!({"approvers_of": {"scope_type": invitation.scope_type.as_str(), "scope_uuid": invitation.scope_uuid}}),
        &json!({
            "request_uuid": request.uuid,
            "requester": requester.username,
            "requester_full_name": requester.full_name,
            "scope_type": invitation.scope_type.as_str(),
            "scope_uuid": invitation.scope_uuid,
        }),
        now,
    )?;
    let grant = match &approval {
        Some((approval, decider)) => Some(add_approval(&mut tx, approval, decider, now)?),
        None => None,
    };
    match tx.commit().await {
        Ok(()) => Ok(Submitted {
            request,
            auto_approved: approval.is_some(),
            project_created: approval.as_ref().is_some_and(|(a, _)| a.new_project.is_some()),
        }),
        Err(TxError::ConditionFailed(i)) if Some(i) == marker => Err(Error::rejected(REQUEST_EXISTS)),
        Err(TxError::ConditionFailed(i)) if i == invitation_active => {
            Err(Error::rejected("Only pending invitation can be requested."))
        }
        Err(TxError::ConditionFailed(i)) if grant.as_ref().is_some_and(|g| i == g.user_side) => {
            Err(Error::rejected("User already has this role in the scope."))
        }
        Err(err) => match (&grant, &approval) {
            (Some(grant), Some((approval, decider))) => {
                Err(grant_failure(store, grant, approval, decider, err).await)
            }
            _ => Err(err.into()),
        },
    }
}

/// Conditions the transaction on the invitation still being active (not canceled meanwhile).
fn still_active(tx: &mut Transaction<'_>, invitation: &Invitation) -> Result<usize> {
    tx.check(
        &invitation_key(&invitation.uuid),
        "#META",
        Expr::new("is_active = :yes").value(":yes", crate::store::b(true)),
    )
}

/// What a failed approval transaction means, from the grant's side: the role disabled or
/// deleted, the scope gone, the requester's item full; any other failure as it is.
async fn grant_failure(
    store: &Store,
    grant: &grants::GrantActions,
    approval: &Approval,
    reviewer: &AuthUser,
    err: TxError,
) -> Error {
    match err {
        TxError::ConditionFailed(i) => {
            let new = new_grant(approval, reviewer);
            match grant.refusal(store, &new, i).await {
                Some(error) => error,
                None => TxError::ConditionFailed(i).into(),
            }
        }
        TxError::TooLarge(i) if i == grant.user => Error::non_field(grants::TOO_MANY_ROLES),
        err => err.into(),
    }
}

fn project_of(approval: &Approval) -> Option<Id> {
    match &approval.scope {
        Scope::Project(project)
            if approval.new_project.is_some() || approval.role.content_type == ContentType::Project =>
        {
            Some(project.uuid)
        }
        _ => None,
    }
}

fn mark_reviewed(
    request: &mut PermissionRequest,
    reviewer: &AuthUser,
    comment: Option<String>,
    now: &Timestamp,
) {
    request.reviewed_by = Some(reviewer.uuid);
    request.reviewed_by_username = Some(reviewer.username.clone());
    request.reviewed_by_full_name = Some(reviewer.full_name.clone());
    request.reviewed_at = Some(time::storage(now));
    request.review_comment = comment;
}

/// Adds the grant of an approval (and the project it needs, if new) to a transaction.
fn add_approval(
    tx: &mut Transaction<'_>,
    approval: &Approval,
    reviewer: &AuthUser,
    now: &Timestamp,
) -> Result<grants::GrantActions> {
    if let (Some(customer), Scope::Project(project)) = (&approval.new_project, &approval.scope) {
        // The grant on the new project may bring the requester into the customer, whose item
        // the project's creation already updates.
        let joining = grants::CustomerCount::of(&approval.requester, &customer.uuid, 1).users_delta();
        scopes::add_project(tx, Some(reviewer), customer, project, joining, now)?;
    }
    grants::add_grant(
        tx,
        &new_grant(approval, reviewer),
        approval.new_project.is_some(),
        now,
    )
}

fn new_grant<'a>(approval: &'a Approval, reviewer: &'a AuthUser) -> NewGrant<'a> {
    NewGrant {
        scope: &approval.scope,
        user: &approval.requester,
        role: &approval.role,
        expiration_time: None,
        granted_by: Some(reviewer),
    }
}

/// The keys of what approving `request` reads besides its scope and customer: the invitation
/// and the requester, for reading them with the caller's grants.
pub fn approval_keys(request: &PermissionRequest) -> [(String, String); 2] {
    [
        invitation_item_key(&request.invitation_uuid),
        User::key(&request.created_by),
    ]
}

/// Approves a pending request: the state change and the grant in one transaction, conditioned
/// on the invitation still being active. The approver, as they are now (`reviewer`, read with
/// this request), must be allowed to grant the role to the requester by the rule of `add_user`.
/// A requester who meanwhile holds the role already is approved without a second grant. `read`
/// holds what `approval_keys` names and the request's scope and customer.
pub async fn approve(
    store: &Store,
    reviewer: &Access,
    request: &PermissionRequest,
    read: (Option<Invitation>, Option<User>, &Directory),
    comment: Option<String>,
    now: &Timestamp,
) -> Result<PermissionRequest> {
    let (invitation, requester, known) = read;
    let invitation = invitation.ok_or_else(|| Error::Conflict("The invitation no longer exists.".into()))?;
    if !invitation.is_pending_at(now) || request.state_at(now) != State::Pending {
        return Err(Error::Conflict(VALID_STATES_PENDING.into()));
    }
    let requester = requester.ok_or_else(|| Error::not_found("User"))?;
    let approval = plan_approval(store, reviewer.roles(), &invitation, requester, known, now).await?;
    reviewer.may_manage(
        Membership::Create,
        &ScopeRef::from(&approval.scope),
        &approval.requester.uuid,
        &approval.role,
    )?;
    let decider = &reviewer.user;
    let mut reviewed = request.clone();
    mark_reviewed(&mut reviewed, decider, comment, now);
    reviewed.state = State::Approved;
    reviewed.project_uuid = project_of(&approval);
    for with_grant in [true, false] {
        let mut tx = store.transaction();
        tx.update(
            &request_key(&request.uuid),
            "#META",
            review_update(&reviewed),
            Some(still_pending()),
        )?;
        let invitation_active = still_active(&mut tx, &invitation)?;
        let grant = if with_grant {
            Some(add_approval(&mut tx, &approval, decider, now)?)
        } else {
            None
        };
        record_decision(&mut tx, decider, &reviewed, now)?;
        match (tx.commit().await, &grant) {
            (Ok(()), _) => return Ok(reviewed),
            (Err(TxError::ConditionFailed(i)), _) if i == 0 || i == invitation_active => {
                return Err(Error::Conflict(VALID_STATES_PENDING.into()));
            }
            (Err(TxError::ConditionFailed(i)), Some(grant)) if i == grant.user_side => continue,
            (Err(err), Some(grant)) => return Err(grant_failure(store, grant, &approval, decider, err).await),
            (Err(err), None) => return Err(err.into()),
        }
    }
    Err(Error::Conflict(VALID_STATES_PENDING.into()))
}

fn review_update(reviewed: &PermissionRequest) -> Expr {
    let mut expr = Expr::new(
        "SET #state = :state, reviewed_by = :by, reviewed_by_username = :by_username, \
         reviewed_by_full_name = :by_full_name, reviewed_at = :at, review_comment = :comment, \
         project_uuid = :project",
    )
    .name("#state", "state")
    .value(":state", s(reviewed.state.as_str()))
    .value(
        ":by",
        s(reviewed.reviewed_by.map(|u| u.to_string()).unwrap_or_default()),
    )
    .value(
        ":by_username",
        s(reviewed.reviewed_by_username.clone().unwrap_or_default()),
    )
    .value(
        ":by_full_name",
        s(reviewed.reviewed_by_full_name.clone().unwrap_or_default()),
    )
    .value(":at", s(reviewed.reviewed_at.clone().unwrap_or_default()));
    expr = match &reviewed.review_comment {
        Some(comment) => expr.value(":comment", s(comment.as_str())),
        None => expr.value(":comment", aws_sdk_dynamodb::types::AttributeValue::Null(true)),
    };
    match reviewed.project_uuid {
        Some(project) => expr.value(":project", s(project.to_string())),
        None => expr.value(":project", aws_sdk_dynamodb::types::AttributeValue::Null(true)),
    }
}

fn record_decision(
    tx: &mut Transaction<'_>,
    reviewer: &AuthUser,
    request: &PermissionRequest,
    now: &Timestamp,
) -> Result<()> {
    let event = Event {
        event_type: if request.state == State::Approved {
            "permission_request_approved"
        } else {
            "permission_request_rejected"
        },
        subject: request_key(&request.uuid),
        message: format!(
            "Permission request {} has been {}.",
            request.uuid,
            request.state.as_str()
        ),
        details: json!({"requester": request.created_by, "comment": request.review_comment}),
    };
    audit::record(tx, Some(reviewer), &event, now)?;
    outbox::add(
        tx,
        "permission_request_decided",
        &json!({"user": request.created_by, "email": request.created_by_email}),
        &json!({
            "request_uuid": request.uuid,
            "state": request.state.as_str(),
            "comment": request.review_comment,
            "scope_type": request.scope_type.as_str(),
            "scope_uuid": request.scope_uuid,
        }),
        now,
    )?;
    Ok(())
}

/// Rejects a pending request; the requester may ask again.
pub async fn reject(
    store: &Store,
    reviewer: &AuthUser,
    request: &PermissionRequest,
    comment: Option<String>,
    now: &Timestamp,
) -> Result<PermissionRequest> {
    let mut reviewed = request.clone();
    mark_reviewed(&mut reviewed, reviewer, comment, now);
    reviewed.state = State::Rejected;
    let mut tx = store.transaction();
    tx.update(
        &request_key(&request.uuid),
        "#META",
        review_update(&reviewed),
        Some(still_pending()),
    )?;
    delete_marker(&mut tx, request)?;
    record_decision(&mut tx, reviewer, &reviewed, now)?;
    match tx.commit().await {
        Ok(()) => Ok(reviewed),
        Err(TxError::ConditionFailed(0)) => Err(Error::Conflict(VALID_STATES_PENDING.into())),
        Err(err) => Err(err.into()),
    }
}

/// Cancels a pending or draft request; the requester may ask again.
pub async fn cancel_request(
    store: &Store,
    actor: &AuthUser,
    request: &PermissionRequest,
    now: &Timestamp,
) -> Result<()> {
    let mut tx = store.transaction();
    tx.update(
        &request_key(&request.uuid),
        "#META",
        set_canceled(),
        Some(
            Expr::new("#state IN (:pending, :draft)")
                .name("#state", "state")
                .value(":pending", s("pending"))
                .value(":draft", s("draft")),
        ),
    )?;
    delete_marker(&mut tx, request)?;
    let event = Event {
        event_type: "permission_request_canceled",
        subject: request_key(&request.uuid),
        message: format!("Permission request {} has been canceled.", request.uuid),
        details: json!({}),
    };
    audit::record(&mut tx, Some(actor), &event, now)?;
    match tx.commit().await {
        Ok(()) => Ok(()),
        Err(TxError::ConditionFailed(0)) => {
            Err(Error::rejected("Only pending or draft requests can be canceled."))
        }
        Err(err) => Err(err.into()),
    }
}

/// Deletes a request (`DELETE`, staff): the item goes, and with it the (scope, user) slot it
/// held if it was still open, conditioned on the state it was read in.
pub async fn delete_request(
    store: &Store,
    actor: &AuthUser,
    request: &PermissionRequest,
    now: &Timestamp,
) -> Result<()> {
    let mut tx = store.transaction();
    tx.delete(
        &request_key(&request.uuid),
        "#META",
        Some(
            Expr::new("#state = :state")
                .name("#state", "state")
                .value(":state", s(request.state.as_str())),
        ),
    )?;
    delete_marker(&mut tx, request)?;
    tx.tally(Tally::Requests, -1);
    let event = Event {
        event_type: "permission_request_deleted",
        subject: request_key(&request.uuid),
        message: format!("Permission request {} has been deleted.", request.uuid),
        details: json!({"state": request.state.as_str()}),
    };
    audit::record(&mut tx, Some(actor), &event, now)?;
    match tx.commit().await {
        Ok(()) => Ok(()),
        Err(TxError::ConditionFailed(0)) => Err(Error::Conflict(
            "The request was changed by another request. Retry.".into(),
        )),
        Err(err) => Err(err.into()),
    }
}

/// The request is still pending (the condition of every decision on it).
fn still_pending() -> Expr {
    Expr::new("#state = :pending")
        .name("#state", "state")
        .value(":pending", s("pending"))
}

fn set_canceled() -> Expr {
    Expr::new("SET #state = :canceled")
        .name("#state", "state")
        .value(":canceled", s("canceled"))
}

/// Frees the (scope, user) slot, but only if it is this request's.
fn delete_marker(tx: &mut Transaction<'_>, request: &PermissionRequest) -> Result<usize> {
    let (pk, sk) = open_request_key(request.scope_type, &request.scope_uuid, &request.created_by);
    tx.delete(
        &pk,
        &sk,
        Some(
            Expr::new("attribute_not_exists(PK) OR request_uuid = :request")
                .value(":request", s(request.uuid.to_string())),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_allow_three_placeholders() {
        assert!(check_template("{username}-{email}-{full_name}").is_ok());
        assert!(check_template("plain").is_ok());
        let err = check_template("{username} {org}").unwrap_err();
        assert_eq!(
            err,
            Error::field(
                "project_name_template",
                "Invalid placeholders in template: org. Allowed placeholders are: email, full_name, username"
            )
        );
        let user = User {
            uuid: Id::new(),
            pk: 1,
            username: "bob".into(),
            email: "bob@example.com".into(),
            first_name: String::new(),
            last_name: String::new(),
            native_name: String::new(),
            preferred_language: String::new(),
            is_staff: false,
            is_support: false,
            is_active: true,
            date_joined: String::new(),
            token_hash: None,
            password_hash: None,
            held: Default::default(),
            customer_grants: Default::default(),
            sessions_valid_after: None,
            token_lifetime: None,
            deleting: false,
            email_change: None,
        };
        assert_eq!(
            project_name(Some("{full_name}'s lab ({email})"), &user),
            "bob's lab (bob@example.com)"
        );
        assert_eq!(project_name(None, &user), "bob");
    }
}
