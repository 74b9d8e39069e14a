//! Moving a project to another customer (`POST /api/projects/{uuid}/move_project/`, staff):
//! everything that names the project's customer follows it in one transaction, so no reader
//! ever sees the project in one organisation and its grants, counts or requests in the other.

use serde_json::json;

use crate::audit::{self, Event};
use crate::auth::AuthUser;
use crate::error::{Error, Result};
use crate::grants::{self, Member, NewGrant};
use crate::ids::Id;
use crate::roles::ContentType;
use crate::scopes::{self, Customer, Project, Scope};
use crate::store::{Expr, MAX_ACTIONS, Store, TxError, n, s};
use crate::time::Timestamp;
use crate::{invitations, reviews, users};

pub const TOO_BIG: &str =
    "The project has too many grants, invitations and requests to be moved in one step.";

/// Moves `project` to `to`. Without `preserve_permissions` its grants are revoked first (each
/// in its own audited transaction, as `delete_user` would), then the project moves. The move
/// itself is one transaction: the project item (conditioned on its customer as read), each
/// live grant's three records and history row, the holders' counts in both customers, both
/// customers' `project_count` and `users_count`, the project's invitations, requests and
/// reviews, and the audit event.
pub async fn move_project(
    store: &Store,
    actor: &AuthUser,
    project: &Project,
    to: &Customer,
    preserve_permissions: bool,
    roles: &crate::authz::RoleSet,
    now: &Timestamp,
) -> Result<Project> {
    let from = project.customer_uuid;
    if from == to.uuid {
        return Err(Error::field(
            "customer",
            "The project already belongs to this organization.",
        ));
    }
    let not_found = || Error::not_found("Project");
    if !preserve_permissions {
        revoke_all(store, actor, project, roles, now).await?;
    }
    let (scope, members) = grants::scope_with_history(store, ContentType::Project, &project.uuid)
        .await?
        .ok_or_else(not_found)?;
    let Scope::Project(project) = scope else {
        return Err(not_found());
    };
    let mut holder_ids: Vec<Id> = members
        .iter()
        .filter(|m| m.ended.is_none())
        .map(|m| m.grant.user_uuid)
        .collect();
    holder_ids.sort();
    holder_ids.dedup();
    let on_project =
        |scope_type: ContentType, scope: &Id| scope_type == ContentType::Project && *scope == project.uuid;
    let (holders, offers, requests, project_reviews) = tokio::try_join!(
        users::by_ids(store, &holder_ids),
        invitations::of_customer(store, &from),
        invitations::requests_of_customer(store, &from),
        reviews::of_scope(store, ContentType::Project, &project.uuid),
    )?;

    let mut tx = store.transaction();
    tx.update(
        &scopes::partition(ContentType::Project, &project.uuid),
        "#META",
        Expr::new("SET customer_uuid = :to, GSI1PK = :projects")
            .value(":to", s(to.uuid.to_string()))
            .value(":projects", s(format!("CUSTOMER#{}#PROJECTS", to.uuid))),
        Some(Expr::new("customer_uuid = :from").value(":from", s(from.to_string()))),
    )?;
    let (leaving, joining) = grants::add_project_move(&mut tx, &members, &holders, &from, &to.uuid)?;
    for (customer, projects, users) in [(from, -1, -leaving), (to.uuid, 1, joining)] {
        tx.update(
            &scopes::partition(ContentType::Customer, &customer),
            "#META",
            Expr::new("ADD project_count :projects, users_count :users")
                .value(":projects", n(projects))
                .value(":users", n(users)),
            Some(Expr::new("attribute_exists(PK)")),
        )?;
    }
    let follow = |index: &str| {
        Expr::new("SET customer_uuid = :to, GSI1PK = :index")
            .value(":to", s(to.uuid.to_string()))
            .value(":index", s(format!("CUSTOMER#{}#{index}", to.uuid)))
    };
    for offer in offers.iter().filter(|i| on_project(i.scope_type, &i.scope_uuid)) {
        let pk = invitations::invitation_key(&offer.uuid);
        tx.update(
            &pk,
            "#META",
            follow("INVITATIONS"),
            Some(Expr::new("attribute_exists(PK)")),
        )?;
    }
    for request in requests
        .iter()
        .filter(|r| on_project(r.scope_type, &r.scope_uuid))
    {
        let pk = invitations::request_key(&request.uuid);
        tx.update(
            &pk,
            "#META",
            follow("REQUESTS"),
            Some(Expr::new("attribute_exists(PK)")),
        )?;
    }
    for review in &project_reviews {
        tx.update(
            &reviews::review_key(&review.uuid),
            "#META",
            Expr::new("SET customer_uuid = :to").value(":to", s(to.uuid.to_string())),
            Some(Expr::new("attribute_exists(PK)")),
        )?;
    }
    let event = Event {
        event_type: "project_moved",
        subject: scopes::partition(ContentType::Project, &project.uuid),
        message: format!("Project {} has been moved to {}.", project.name, to.name),
        details: json!({"from_customer_uuid": from, "to_customer_uuid": to.uuid, "grants": members.iter().filter(|m| m.ended.is_none()).count()}),
    };
    audit::record(&mut tx, Some(actor), &event, now)?;
    if tx.len() > MAX_ACTIONS {
        return Err(Error::non_field(TOO_BIG));
    }
    match tx.commit().await {
        Ok(()) => Ok(Project {
            customer_uuid: to.uuid,
            ..project
        }),
        Err(TxError::ConditionFailed(_)) => Err(Error::Conflict(
            "The project or its members were changed by another request. Retry.".into(),
        )),
        Err(err) => Err(err.into()),
    }
}

/// Revokes every live grant of the project, as the actor.
async fn revoke_all(
    store: &Store,
    actor: &AuthUser,
    project: &Project,
    roles: &crate::authz::RoleSet,
    now: &Timestamp,
) -> Result<()> {
    let Some((scope, members)) =
        grants::scope_with_members(store, ContentType::Project, &project.uuid, None).await?
    else {
        return Err(Error::not_found("Project"));
    };
    let ids: Vec<Id> = members.iter().map(|m: &Member| m.grant.user_uuid).collect();
    let holders = users::by_ids(store, &ids).await?;
    for member in &members {
        let (Some(user), Some(role)) = (
            holders.iter().find(|u| u.uuid == member.grant.user_uuid),
            roles.get(&member.grant.role_uuid),
        ) else {
            continue;
        };
        let new = NewGrant {
            scope: &scope,
            user,
            role,
            expiration_time: None,
            granted_by: Some(actor),
        };
        grants::revoke(store, member, &new, now).await?;
    }
    Ok(())
}
