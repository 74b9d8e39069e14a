//! Workspaces and their permissions (the Syntho-style `/api/v1/` family): integer ids, one
//! permission per (workspace, user), roles OWNER / EDITOR / READER, and exactly one owner at all
//! times. The owner is recorded on the workspace item, and every change that touches ownership
//! is conditioned on it, so concurrent transfers leave exactly one owner.

use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::{self, Event};
use crate::auth::AuthUser;
use crate::error::{Error, Result};
use crate::ids::Id;
use crate::store::{Expr, Store, Transaction, TxError, b, n, s};
use crate::time::{self, Timestamp};
use crate::users::{self, User};

pub const TRANSFER_LOST: &str = "The ownership changed meanwhile; nothing was transferred.";
/// A transfer touches three items per workspace; a transaction holds at most 100 actions.
pub const MAX_TRANSFER: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Role {
    Owner,
    Editor,
    Reader,
}

impl Role {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "OWNER" => Some(Role::Owner),
            "EDITOR" => Some(Role::Editor),
            "READER" => Some(Role::Reader),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "OWNER",
            Role::Editor => "EDITOR",
            Role::Reader => "READER",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workspace {
    pub id: i64,
    pub name: String,
    pub owner_user_pk: i64,
    pub created: String,
    /// How many permissions have been added: a delete is conditioned on it, so that a share
    /// committed after the delete read the permissions makes the delete fail, not orphan it.
    #[serde(default)]
    pub shares: i64,
    /// Who owned the workspace before its last transfer: a request of theirs that read the
    /// workspace after it lost a race to that transfer is told so (409), not refused (403).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_owner_user_pk: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Permission {
    pub pk: i64,
    pub workspace: i64,
    pub user: i64,
    pub user_uuid: Id,
    pub role: Role,
    pub data_access: bool,
}

#[derive(Serialize, Deserialize)]
struct WorkspaceItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    #[serde(rename = "GSI1PK")]
    all: String,
    #[serde(rename = "GSI1SK")]
    all_sort: String,
    entity: String,
    #[serde(flatten)]
    workspace: Workspace,
}

#[derive(Serialize, Deserialize)]
struct PermissionItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    #[serde(rename = "GSI1PK")]
    of_user: String,
    #[serde(rename = "GSI1SK")]
    of_user_sort: String,
    #[serde(rename = "GSI2PK")]
    by_pk: String,
    #[serde(rename = "GSI2SK")]
    by_pk_sort: String,
    entity: String,
    #[serde(flatten)]
    permission: Permission,
}

fn workspace_key(id: i64) -> String {
    format!("WORKSPACE#{id}")
}

fn permission_sort(user: i64) -> String {
    format!("PERMISSION#{user}")
}

fn padded(id: i64) -> String {
    format!("{id:012}")
}

impl PermissionItem {
    fn new(permission: &Permission) -> Self {
        PermissionItem {
            pk: workspace_key(permission.workspace),
            sk: permission_sort(permission.user),
            of_user: format!("USER#{}#WORKSPACES", permission.user_uuid),
            of_user_sort: padded(permission.workspace),
            by_pk: format!("WSPERM#{}", permission.pk),
            by_pk_sort: "#META".into(),
            entity: "workspace_permission".into(),
            permission: permission.clone(),
        }
    }
}

fn record(
    tx: &mut Transaction<'_>,
    actor: &AuthUser,
    event_type: &str,
    workspace: i64,
    message: String,
    now: &Timestamp,
) -> Result<usize> {
    let event = Event {
        event_type,
        subject: workspace_key(workspace),
        message,
        details: json!({"workspace": workspace}),
    };
    audit::record(tx, Some(actor), &event, now)
}

/// Creates a workspace with the creator as its owner (with data access).
pub async fn create(
    store: &Store,
    actor: &AuthUser,
    owner: &User,
    name: &str,
    now: &Timestamp,
) -> Result<(Workspace, Permission)> {
    let workspace = Workspace {
        id: users::next_number(store, "WORKSPACE").await?,
        name: name.to_owned(),
        owner_user_pk: owner.pk,
        created: time::storage(now),
        shares: 0,
        previous_owner_user_pk: None,
    };
    let permission = Permission {
        pk: users::next_number(store, "WORKSPACE_PERMISSION").await?,
        workspace: workspace.id,
        user: owner.pk,
        user_uuid: owner.uuid,
        role: Role::Owner,
        data_access: true,
    };
    let item = WorkspaceItem {
        pk: workspace_key(workspace.id),
        sk: "#META".into(),
        all: "WORKSPACES".into(),
        all_sort: padded(workspace.id),
        entity: "workspace".into(),
        workspace: workspace.clone(),
    };
    let mut tx = store.transaction();
    tx.put(&item, Some(Expr::new("attribute_not_exists(PK)")))?;
    tx.put(
        &PermissionItem::new(&permission),
        Some(Expr::new("attribute_not_exists(PK)")),
    )?;
    record(
        &mut tx,
        actor,
        "workspace_created",
        workspace.id,
        format!("Workspace {name} has been created."),
        now,
    )?;
    tx.commit().await?;
    Ok((workspace, permission))
}

/// The items of a workspace's partition.
#[derive(Deserialize)]
#[serde(tag = "entity")]
enum PartitionItem {
    #[serde(rename = "workspace")]
    Workspace(Workspace),
    #[serde(rename = "workspace_permission")]
    Permission(Permission),
}

/// A workspace and its permissions (one Query of its partition).
pub async fn get(store: &Store, id: i64) -> Result<Option<(Workspace, Vec<Permission>)>> {
    let mut workspace = None;
    let mut permissions = Vec::new();
    for item in store.query_partition::<PartitionItem>(&workspace_key(id)).await? {
        match item {
            PartitionItem::Workspace(found) => workspace = Some(found),
            PartitionItem::Permission(permission) => permissions.push(permission),
        }
    }
    Ok(workspace.map(|w| (w, permissions)))
}

/// Several workspaces with their permissions, in the order of `ids`; missing ones are left out.
/// One Query per workspace, `CONCURRENT_READS` at a time.
pub async fn get_many(store: &Store, ids: &[i64]) -> Result<Vec<(Workspace, Vec<Permission>)>> {
    const CONCURRENT_READS: usize = 16;
    let found: Vec<Option<(Workspace, Vec<Permission>)>> =
        futures::stream::iter(ids.iter().copied().map(|id| get(store, id)))
            .buffered(CONCURRENT_READS)
            .try_collect()
            .await?;
    Ok(found.into_iter().flatten().collect())
}

pub async fn all(store: &Store) -> Result<Vec<Workspace>> {
    let items: Vec<WorkspaceItem> = store.query_index("GSI1", "WORKSPACES").await?;
    Ok(items.into_iter().map(|i| i.workspace).collect())
}

/// The permissions a user holds, one per workspace.
pub async fn permissions_of(store: &Store, user: &Id) -> Result<Vec<Permission>> {
    let items: Vec<PermissionItem> = store
        .query_index("GSI1", &format!("USER#{user}#WORKSPACES"))
        .await?;
    Ok(items.into_iter().map(|i| i.permission).collect())
}

pub async fn permission_by_pk(store: &Store, pk: i64) -> Result<Option<Permission>> {
    let items: Vec<PermissionItem> = store.query_index("GSI2", &format!("WSPERM#{pk}")).await?;
    Ok(items.into_iter().next().map(|i| i.permission))
}

/// Commits a change conditioned on the workspace's current state; a lost race is a 409.
async fn commit_or_conflict(tx: Transaction<'_>) -> Result<()> {
    match tx.commit().await {
        Ok(()) => Ok(()),
        Err(TxError::ConditionFailed(_)) => {
            Err(Error::Conflict("The workspace changed meanwhile. Retry.".into()))
        }
        Err(err) => Err(err.into()),
    }
}

/// The workspace still has this owner (the condition every owner's decision carries).
fn owned_by(owner: i64) -> Expr {
    Expr::new("owner_user_pk = :owner").value(":owner", n(owner))
}

/// Deletes a workspace and its permissions, if it is still the owner's.
pub async fn delete(
    store: &Store,
    actor: &AuthUser,
    workspace: &Workspace,
    permissions: &[Permission],
    now: &Timestamp,
) -> Result<()> {
    if permissions.len() > 97 {
        return Err(Error::Conflict(
            "Remove some permissions of this workspace first.".into(),
        ));
    }
    // Workspaces made before the counter existed lack it until their first share.
    let unshared_since_read = if workspace.shares == 0 {
        Expr::new("attribute_not_exists(shares) OR shares = :shares")
    } else {
        Expr::new("shares = :shares")
    }
    .value(":shares", n(workspace.shares));
    let mut tx = store.transaction();
    tx.delete(
        &workspace_key(workspace.id),
        "#META",
        Some(owned_by(workspace.owner_user_pk).and(unshared_since_read)),
    )?;
    for permission in permissions {
        tx.delete(
            &workspace_key(workspace.id),
            &permission_sort(permission.user),
            None,
        )?;
    }
    record(
        &mut tx,
        actor,
        "workspace_deleted",
        workspace.id,
        format!("Workspace {} has been deleted.", workspace.name),
        now,
    )?;
    commit_or_conflict(tx).await
}

const ONE_OWNER: &str = "A workspace has exactly one owner; transfer the ownership instead.";

/// Shares a workspace with a user (never as a second owner).
pub async fn share(
    store: &Store,
    actor: &AuthUser,
    workspace: &Workspace,
    user: &User,
    role: Role,
    data_access: bool,
    now: &Timestamp,
) -> Result<Permission> {
    if role == Role::Owner {
        return Err(Error::field("role", ONE_OWNER));
    }
    let permission = Permission {
        pk: users::next_number(store, "WORKSPACE_PERMISSION").await?,
        workspace: workspace.id,
        user: user.pk,
        user_uuid: user.uuid,
        role,
        data_access,
    };
    let mut tx = store.transaction();
    tx.update(
        &workspace_key(workspace.id),
        "#META",
        Expr::new("ADD shares :one").value(":one", n(1)),
        Some(owned_by(workspace.owner_user_pk)),
    )?;
    tx.put(
        &PermissionItem::new(&permission),
        Some(Expr::new("attribute_not_exists(PK)")),
    )?;
    let message = format!(
        "Workspace {} has been shared with {}.",
        workspace.name, user.username
    );
    record(
        &mut tx,
        actor,
        "workspace_permission_created",
        workspace.id,
        message,
        now,
    )?;
    match tx.commit().await {
        Ok(()) => Ok(permission),
        Err(TxError::ConditionFailed(0)) => {
            Err(Error::Conflict("The workspace changed meanwhile. Retry.".into()))
        }
        Err(TxError::ConditionFailed(_)) => Err(Error::non_field(
            "The user already has a permission on this workspace.",
        )),
        Err(err) => Err(err.into()),
    }
}

/// Changes a non-owner's role or data access. The owner's role changes only by a transfer, and
/// the owner always has data access.
pub async fn update(
    store: &Store,
    actor: &AuthUser,
    workspace: &Workspace,
    permission: &Permission,
    role: Option<Role>,
    data_access: Option<bool>,
    now: &Timestamp,
) -> Result<Permission> {
    let updated = Permission {
        role: role.unwrap_or(permission.role),
        data_access: data_access.unwrap_or(permission.data_access),
        ..permission.clone()
    };
    if permission.role == Role::Owner && (updated.role != Role::Owner || !updated.data_access) {
        return Err(Error::non_field(
            "The owner keeps the OWNER role and data access; transfer the ownership to change them.",
        ));
    }
    if permission.role != Role::Owner && updated.role == Role::Owner {
        return Err(Error::field("role", ONE_OWNER));
    }
    let mut tx = store.transaction();
    tx.check(
        &workspace_key(workspace.id),
        "#META",
        owned_by(workspace.owner_user_pk),
    )?;
    tx.update(
        &workspace_key(workspace.id),
        &permission_sort(permission.user),
        Expr::new("SET #role = :role, data_access = :data")
            .name("#role", "role")
            .value(":role", s(updated.role.as_str()))
            .value(":data", b(updated.data_access)),
        Some(
            Expr::new("#role = :old")
                .name("#role", "role")
                .value(":old", s(permission.role.as_str())),
        ),
    )?;
    record(
        &mut tx,
        actor,
        "workspace_permission_updated",
        workspace.id,
        format!("Permission {} has been updated.", permission.pk),
        now,
    )?;
    commit_or_conflict(tx).await?;
    Ok(updated)
}

/// Removes a non-owner's permission.
pub async fn unshare(
    store: &Store,
    actor: &AuthUser,
    workspace: &Workspace,
    permission: &Permission,
    now: &Timestamp,
) -> Result<()> {
    if permission.role == Role::Owner {
        return Err(Error::non_field(
            "The owner's permission cannot be deleted; transfer the ownership first.",
        ));
    }
    let mut tx = store.transaction();
    tx.check(
        &workspace_key(workspace.id),
        "#META",
        owned_by(workspace.owner_user_pk),
    )?;
    tx.delete(
        &workspace_key(workspace.id),
        &permission_sort(permission.user),
        Some(
            Expr::new("#role <> :owner")
                .name("#role", "role")
                .value(":owner", s("OWNER")),
        ),
    )?;
    record(
        &mut tx,
        actor,
        "workspace_permission_deleted",
        workspace.id,
        format!("Permission {} has been deleted.", permission.pk),
        now,
    )?;
    commit_or_conflict(tx).await
}

/// Transfers the ownership of every listed workspace to `new_owner`, all or nothing: the
/// previous owner keeps `role` with `data_access`. Each workspace's change is conditioned on
/// its owner being the one read, so of concurrent transfers one wins and the rest change
/// nothing (409).
pub async fn transfer(
    store: &Store,
    actor: &AuthUser,
    workspaces: &[(Workspace, Vec<Permission>)],
    new_owner: &User,
    role: Role,
    data_access: bool,
    now: &Timestamp,
) -> Result<Vec<Permission>> {
    if role == Role::Owner {
        return Err(Error::field(
            "role",
            "The previous owner cannot stay an owner; choose EDITOR or READER.",
        ));
    }
    if workspaces.len() > MAX_TRANSFER {
        return Err(Error::field(
            "workspaces",
            format!("Transfer at most {MAX_TRANSFER} workspaces at once."),
        ));
    }
    let mut result = Vec::new();
    let mut tx = store.transaction();
    for (workspace, permissions) in workspaces {
        let key = workspace_key(workspace.id);
        if workspace.owner_user_pk == new_owner.pk {
            result.extend(permissions.iter().cloned());
            continue;
        }
        tx.update(
            &key,
            "#META",
            Expr::new("SET owner_user_pk = :new, previous_owner_user_pk = :previous")
                .value(":new", n(new_owner.pk))
                .value(":previous", n(workspace.owner_user_pk)),
            Some(owned_by(workspace.owner_user_pk)),
        )?;
        let previous = permissions.iter().find(|p| p.user == workspace.owner_user_pk);
        if let Some(previous) = previous {
            tx.update(
                &key,
                &permission_sort(previous.user),
                Expr::new("SET #role = :role, data_access = :data")
                    .name("#role", "role")
                    .value(":role", s(role.as_str()))
                    .value(":data", b(data_access)),
                Some(
                    Expr::new("#role = :owner")
                        .name("#role", "role")
                        .value(":owner", s("OWNER")),
                ),
            )?;
            result.push(Permission {
                role,
                data_access,
                ..previous.clone()
            });
        }
        let incoming = match permissions.iter().find(|p| p.user == new_owner.pk) {
            Some(existing) => {
                tx.update(
                    &key,
                    &permission_sort(existing.user),
                    Expr::new("SET #role = :owner, data_access = :yes")
                        .name("#role", "role")
                        .value(":owner", s("OWNER"))
                        .value(":yes", b(true)),
                    Some(
                        Expr::new("#role = :old")
                            .name("#role", "role")
                            .value(":old", s(existing.role.as_str())),
                    ),
                )?;
                Permission {
                    role: Role::Owner,
                    data_access: true,
                    ..existing.clone()
                }
            }
            None => {
                let permission = Permission {
                    pk: users::next_number(store, "WORKSPACE_PERMISSION").await?,
                    workspace: workspace.id,
                    user: new_owner.pk,
                    user_uuid: new_owner.uuid,
                    role: Role::Owner,
                    data_access: true,
                };
                tx.put(
                    &PermissionItem::new(&permission),
                    Some(Expr::new("attribute_not_exists(PK)")),
                )?;
                permission
            }
        };
        result.push(incoming);
        result.extend(
            permissions
                .iter()
                .filter(|p| p.user != workspace.owner_user_pk && p.user != new_owner.pk)
                .cloned(),
        );
        let message = format!(
            "Workspace {} has been transferred to {}.",
            workspace.name, new_owner.username
        );
        record(
            &mut tx,
            actor,
            "workspace_transferred",
            workspace.id,
            message,
            now,
        )?;
    }
    if tx.is_empty() {
        return Ok(result);
    }
    match tx.commit().await {
        Ok(()) => Ok(result),
        Err(TxError::ConditionFailed(_)) => Err(Error::Conflict(TRANSFER_LOST.into())),
        Err(err) => Err(err.into()),
    }
}
