//! Roles: named permission sets bound to a scope type. Reading is public; every change is a
//! staff action, one transaction with its audit event.

pub mod catalogue;
mod input;
mod query;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;

pub use catalogue::{ContentType, LANGUAGES, PERMISSIONS, SYSTEM_ROLES};
pub use input::{InputMode, RoleInput};
pub use query::{ORDERING_FIELDS, RoleQuery};

use crate::audit::{self, Event};
use crate::auth::AuthUser;
use crate::error::{Error, Result};
use crate::ids::Id;
use crate::store::{Expr, Store, Transaction, TxError, b, encode_value, n, s};
use crate::time::{self, Timestamp};

const ROLES_PARTITION: &str = "ROLES";
const MODEL: &str = "Role";
const NAME_TAKEN: &str = "Name should be unique.";
const CONCURRENT_CHANGE: &str = "The role was changed by another request. Retry.";
/// Optimistic writes are retried this often when another writer got there first.
const MAX_WRITE_ATTEMPTS: usize = 3;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Role {
    pub uuid: Id,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// `description_<language>` values that are set; the others are null on the wire.
    #[serde(default)]
    pub translations: BTreeMap<String, String>,
    #[serde(default)]
    pub permissions: Vec<String>,
    pub content_type: ContentType,
    #[serde(default)]
    pub is_system_role: bool,
    pub is_active: bool,
    /// Active grants of this role, kept by the grant transactions.
    #[serde(default)]
    pub users_count: i64,
    pub created: String,
    #[serde(default)]
    pub version: i64,
    /// The customer an organisation-private role (a clone) belongs to: it is granted only on
    /// that customer and its projects, and only its members see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_uuid: Option<Id>,
    /// The role a clone was made from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_uuid: Option<Id>,
    /// Customers where this role is concealed (superseded by their clone of it): not granted
    /// there any more.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub concealed_in: Vec<Id>,
}

/// A grant of a role outside the customer it is private to, or where it is concealed.
pub const NOT_AVAILABLE: &str = "Role is not available in this organization.";

impl Role {
    /// Whether the role may be granted on the customer `customer` or its projects.
    pub fn is_available_in(&self, customer: &Id) -> bool {
        self.customer_uuid.is_none_or(|own| own == *customer) && !self.concealed_in.contains(customer)
    }

    pub fn translation(&self, language: &str) -> Option<&str> {
        self.translations.get(language).map(String::as_str)
    }

    /// The description in the caller's language when one is set, else the default one.
    pub fn description_in(&self, language: Option<&str>) -> &str {
        language
            .and_then(|lang| self.translation(lang))
            .filter(|text| !text.is_empty())
            .unwrap_or(&self.description)
    }
}

/// Waldur's legacy short names of the system roles (`owner`, `admin`, …), used by the
/// permission rows of seed 001; other roles keep their name.
pub fn legacy_name(name: &str) -> &str {
    match name {
        "CUSTOMER.OWNER" => "owner",
        "CUSTOMER.MANAGER" => "service_manager",
        "CUSTOMER.SUPPORT" => "support",
        "PROJECT.ADMIN" => "admin",
        "PROJECT.MANAGER" => "manager",
        "PROJECT.MEMBER" => "member",
        other => other,
    }
}

pub fn item_key(uuid: &Id) -> (String, String) {
    role_key(uuid)
}

fn role_key(uuid: &Id) -> (String, String) {
    (ROLES_PARTITION.to_owned(), format!("ROLE#{uuid}"))
}

fn name_marker_key(name: &str) -> (String, String) {
    (format!("ROLENAME#{name}"), "#META".to_owned())
}

#[derive(Serialize, Deserialize)]
struct RoleItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    entity: String,
    #[serde(flatten)]
    role: Role,
}

#[derive(Serialize, Deserialize)]
struct NameMarker {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    entity: String,
    role_uuid: Id,
}

/// All roles, ordered by name (one Query: the roles partition is small).
pub async fn list(store: &Store) -> Result<Vec<Role>> {
    let mut roles: Vec<Role> = store
        .query_prefix::<RoleItem>(ROLES_PARTITION, "ROLE#")
        .await?
        .into_iter()
        .map(|item| item.role)
        .collect();
    roles.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(roles)
}

pub async fn find(store: &Store, uuid: &Id) -> Result<Option<Role>> {
    let (pk, sk) = role_key(uuid);
    Ok(store.get::<RoleItem>(&pk, &sk).await?.map(|item| item.role))
}

/// The role, or Waldur's 404 for an unknown or malformed uuid.
pub async fn get(store: &Store, uuid: &str) -> Result<Role> {
    get_for(store, None, uuid).await
}

/// As `get`, taking the role from what `caller`'s credentials read with the token, if they
/// read it.
pub async fn get_for(store: &Store, caller: Option<&AuthUser>, uuid: &str) -> Result<Role> {
    let uuid = Id::parse(uuid).ok_or_else(|| Error::not_found(MODEL))?;
    let key = role_key(&uuid);
    let found = match caller.and_then(|caller| caller.take_prefetched(&key)) {
        Some(item) => item
            .map(crate::store::decode::<RoleItem>)
            .transpose()?
            .map(|item| item.role),
        None => find(store, &uuid).await?,
    };
    found.ok_or_else(|| Error::not_found(MODEL))
}

pub async fn create(store: &Store, actor: &AuthUser, input: RoleInput, now: &Timestamp) -> Result<Role> {
    let role = input.apply_to_new(Id::new(), now)?;
    let mut tx = store.transaction();
    tx.put(&role_item(&role), Some(Expr::new("attribute_not_exists(PK)")))?;
    let marker = put_name_marker(&mut tx, &role)?;
    record(
        &mut tx,
        actor,
        "role_created",
        &role,
        format!("Role {} has been created.", role.name),
        now,
    )?;
    match tx.commit().await {
        Ok(()) => Ok(role),
        Err(TxError::ConditionFailed(i)) if i == marker => Err(Error::field("name", NAME_TAKEN)),
        Err(err) => Err(err.into()),
    }
}

/// How many names a clone tries (`NAME`, `NAME-2`, …) before giving up on a taken one.
const CLONE_NAME_ATTEMPTS: usize = 5;

/// `POST /api/roles/{uuid}/clone_to_customer/` (staff): an organisation-private copy of
/// `template` for `customer`, named `{SCOPE}.{customer slug}.{rest of the name}`, with the
/// template's permissions and descriptions (or `description`). With `conceal`, the template is
/// concealed for the customer in the same transaction, so the clone supersedes it there. A
/// marker item makes one clone per (template, customer).
pub async fn clone_to_customer(
    store: &Store,
    actor: &AuthUser,
    template: &Role,
    customer: &crate::scopes::Customer,
    description: Option<String>,
    conceal: bool,
    now: &Timestamp,
) -> Result<Role> {
    if template.template_uuid.is_some() {
        return Err(Error::rejected(
            "A clone cannot be cloned. Clone the original role instead.",
        ));
    }
    if template.customer_uuid.is_some() {
        return Err(Error::rejected(
            "Only a role available to every organization can be cloned.",
        ));
    }
    let (scope, rest) = template
        .name
        .split_once('.')
        .unwrap_or((template.content_type.as_str(), template.name.as_str()));
    let base = format!(
        "{}.{}.{rest}",
        scope.to_ascii_uppercase(),
        crate::scopes::slugify(&customer.name)
    );
    for attempt in 1..=CLONE_NAME_ATTEMPTS {
        let name = if attempt == 1 {
            base.clone()
        } else {
            format!("{base}-{attempt}")
        };
        let role = Role {
            uuid: Id::new(),
            name,
            description: description
                .clone()
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| template.description.clone()),
            translations: if description.as_deref().is_some_and(|d| !d.is_empty()) {
                BTreeMap::new()
            } else {
                template.translations.clone()
            },
            permissions: template.permissions.clone(),
            content_type: template.content_type,
            is_system_role: false,
            is_active: true,
            users_count: 0,
            created: time::storage(now),
            version: 0,
            customer_uuid: Some(customer.uuid),
            template_uuid: Some(template.uuid),
            concealed_in: Vec::new(),
        };
        let mut tx = store.transaction();
        tx.put(&role_item(&role), Some(Expr::new("attribute_not_exists(PK)")))?;
        let marker = put_name_marker(&mut tx, &role)?;
        let clone_marker = tx.put(
            &NameMarker {
                pk: format!("ROLECLONE#{}#{}", template.uuid, customer.uuid),
                sk: "#META".into(),
                entity: "role_clone".into(),
                role_uuid: role.uuid,
            },
            Some(Expr::new("attribute_not_exists(PK)")),
        )?;
        let (pk, sk) = role_key(&template.uuid);
        let template_update = if conceal {
            Expr::new("SET concealed_in = list_append(if_not_exists(concealed_in, :none), :customer)")
                .value(":none", aws_sdk_dynamodb::types::AttributeValue::L(Vec::new()))
                .value(
                    ":customer",
                    aws_sdk_dynamodb::types::AttributeValue::L(vec![crate::store::s(
                        customer.uuid.to_string(),
                    )]),
                )
        } else {
            Expr::new("SET version = version")
        };
        tx.update(&pk, &sk, template_update, Some(Expr::new("attribute_exists(PK)")))?;
        record(
            &mut tx,
            actor,
            "role_cloned",
            &role,
            format!(
                "Role {} has been cloned into {} as {}.",
                template.name, customer.name, role.name
            ),
            now,
        )?;
        match tx.commit().await {
            Ok(()) => return Ok(role),
            Err(TxError::ConditionFailed(i)) if i == marker => continue,
            Err(TxError::ConditionFailed(i)) if i == clone_marker => {
                return Err(Error::rejected(
                    "This template has already been cloned into this organization.",
                ));
            }
            Err(TxError::ConditionFailed(_)) => return Err(Error::not_found(MODEL)),
            Err(err) => return Err(err.into()),
        }
    }
    Err(Error::field("name", NAME_TAKEN))
}

/// PUT, PATCH and update_descriptions: applies the changes to the current role. The body is
/// judged only once the role is known to exist (404 before 400, as in Waldur). Concurrent
/// writers are serialised by the role's `version`; a lost race is retried on the fresh role.
pub async fn update(
    store: &Store,
    actor: &AuthUser,
    uuid: &str,
    input: Result<RoleInput>,
    now: &Timestamp,
) -> Result<Role> {
    let mut current = get(store, uuid).await?;
    let input = input?;
    for _ in 0..MAX_WRITE_ATTEMPTS {
        let updated = input.apply_to(&current)?;
        if current.is_system_role && updated.name != current.name {
            return Err(Error::non_field("Changing name for system role is not possible."));
        }
        if current.users_count > 0 && updated.content_type != current.content_type {
            return Err(Error::field(
                "content_type",
                "The content type of a role that is granted cannot be changed.",
            ));
        }
        match write_changes(store, actor, &current, &updated, now).await {
            Err(TxError::ConditionFailed(0)) => current = get(store, uuid).await?,
            result => return result.map_err(Error::from),
        }
    }
    Err(Error::Conflict(CONCURRENT_CHANGE.into()))
}

async fn write_changes(
    store: &Store,
    actor: &AuthUser,
    current: &Role,
    updated: &Role,
    now: &Timestamp,
) -> Result<Role, TxError> {
    let (pk, sk) = role_key(&current.uuid);
    let mut tx = store.transaction();
    let mut condition = Expr::new("version = :version").value(":version", n(current.version));
    if updated.content_type != current.content_type {
        condition =
            Expr::new("version = :version AND (attribute_not_exists(users_count) OR users_count = :zero)")
                .value(":version", n(current.version))
                .value(":zero", n(0));
    }
    let set = Expr::new(
        "SET #name = :name, description = :description, translations = :translations, \
         #permissions = :permissions, content_type = :content_type, is_active = :is_active, \
         version = :next",
    )
    .name("#name", "name")
    .name("#permissions", "permissions")
    .value(":name", s(updated.name.as_str()))
    .value(":description", s(updated.description.as_str()))
    .value(
        ":translations",
        encode_value(&updated.translations).map_err(TxError::Store)?,
    )
    .value(
        ":permissions",
        encode_value(&updated.permissions).map_err(TxError::Store)?,
    )
    .value(":content_type", s(updated.content_type.as_str()))
    .value(":is_active", b(updated.is_active))
    .value(":next", n(current.version + 1));
    tx.update(&pk, &sk, set, Some(condition))
        .map_err(TxError::Store)?;
    let mut new_marker = None;
    if updated.name != current.name {
        let (old_pk, old_sk) = name_marker_key(&current.name);
        tx.delete(&old_pk, &old_sk, None).map_err(TxError::Store)?;
        new_marker = Some(put_name_marker(&mut tx, updated).map_err(TxError::Store)?);
    }
    let message = format!("Role {} has been updated.", updated.name);
    record(&mut tx, actor, "role_updated", updated, message, now).map_err(TxError::Store)?;
    match tx.commit().await {
        Ok(()) => Ok(Role {
            version: current.version + 1,
            ..updated.clone()
        }),
        Err(TxError::ConditionFailed(i)) if Some(i) == new_marker => {
            Err(TxError::Store(Error::field("name", NAME_TAKEN)))
        }
        Err(err) => Err(err),
    }
}

/// Deletes a custom role nobody holds. The condition on `users_count` makes a delete and a
/// concurrent grant of the role exclusive: one of them fails.
pub async fn delete(store: &Store, actor: &AuthUser, uuid: &str, now: &Timestamp) -> Result<()> {
    for _ in 0..MAX_WRITE_ATTEMPTS {
        let role = get(store, uuid).await?;
        if role.is_system_role {
            return Err(Error::rejected("Destroying of system role is not available."));
        }
        if role.users_count > 0 {
            return Err(Error::rejected("Role is still used."));
        }
        let (pk, sk) = role_key(&role.uuid);
        let (marker_pk, marker_sk) = name_marker_key(&role.name);
        let mut tx = store.transaction();
        tx.delete(
            &pk,
            &sk,
            Some(
                Expr::new(
                    "version = :version AND (attribute_not_exists(users_count) OR users_count = :zero)",
                )
                .value(":version", n(role.version))
                .value(":zero", n(0)),
            ),
        )?;
        tx.delete(&marker_pk, &marker_sk, None)?;
        record(
            &mut tx,
            actor,
            "role_deleted",
            &role,
            format!("Role {} has been deleted.", role.name),
            now,
        )?;
        match tx.commit().await {
            Ok(()) => return Ok(()),
            Err(TxError::ConditionFailed(0)) => continue,
            Err(err) => return Err(err.into()),
        }
    }
    Err(Error::Conflict(CONCURRENT_CHANGE.into()))
}

/// Enables or disables a role; idempotent. Existing grants are unaffected either way.
pub async fn set_active(
    store: &Store,
    actor: &AuthUser,
    uuid: &str,
    active: bool,
    now: &Timestamp,
) -> Result<Role> {
    let role = get(store, uuid).await?;
    let (pk, sk) = role_key(&role.uuid);
    let mut tx = store.transaction();
    tx.update(
        &pk,
        &sk,
        Expr::new("SET is_active = :active, version = version + :one")
            .value(":active", b(active))
            .value(":one", n(1)),
        Some(Expr::new("attribute_exists(PK)")),
    )?;
    let (event_type, verb) = if active {
        ("role_enabled", "enabled")
    } else {
        ("role_disabled", "disabled")
    };
    record(
        &mut tx,
        actor,
        event_type,
        &role,
        format!("Role {} has been {verb}.", role.name),
        now,
    )?;
    match tx.commit().await {
        Ok(()) => Ok(Role {
            is_active: active,
            version: role.version + 1,
            ..role
        }),
        Err(TxError::ConditionFailed(_)) => Err(Error::not_found(MODEL)),
        Err(err) => Err(err.into()),
    }
}

/// Creates the system roles that are missing; roles already there (possibly edited by staff)
/// are left alone. Returns how many were created.
pub async fn seed_system_roles(store: &Store, now: &Timestamp) -> Result<usize> {
    let mut created = 0;
    for system in SYSTEM_ROLES {
        let uuid = Id::parse(system.uuid).ok_or_else(|| Error::internal("bad system role uuid"))?;
        if find(store, &uuid).await?.is_some() {
            continue;
        }
        let role = Role {
            uuid,
            name: system.name.to_owned(),
            description: system.description.to_owned(),
            translations: system
                .description_en
                .map(|text| BTreeMap::from([("en".to_owned(), text.to_owned())]))
                .unwrap_or_default(),
            permissions: system.permissions.iter().map(|p| (*p).to_owned()).collect(),
            content_type: system.content_type,
            is_system_role: true,
            is_active: true,
            users_count: 0,
            created: time::storage(now),
            version: 0,
            customer_uuid: None,
            template_uuid: None,
            concealed_in: Vec::new(),
        };
        let mut tx = store.transaction();
        tx.put(&role_item(&role), Some(Expr::new("attribute_not_exists(PK)")))?;
        put_name_marker(&mut tx, &role)?;
        let event = Event {
            event_type: "role_created",
            subject: format!("ROLE#{}", role.uuid),
            message: format!("System role {} has been created.", role.name),
            details: json!({"name": role.name}),
        };
        audit::record(&mut tx, None, &event, now)?;
        match tx.commit().await {
            Ok(()) => created += 1,
            Err(TxError::ConditionFailed(_)) => {
                tracing::warn!(
                    role = system.name,
                    "system role or its name already exists; skipped"
                );
            }
            Err(err) => return Err(err.into()),
        }
    }
    Ok(created)
}

/// Where the puts of an imported role sit in its transaction.
#[derive(Debug, Clone, Copy)]
pub struct ImportedRoleActions {
    pub role: usize,
    pub name: usize,
}

/// Adds a role moved over from Waldur to a transaction, as it was there (uuid, name,
/// descriptions, permissions, active or not): the role, its name marker, and the audit event,
/// both puts conditioned on their item not existing. Its `users_count` is raised by the grants
/// imported after it.
pub fn add_imported(tx: &mut Transaction<'_>, role: &Role, now: &Timestamp) -> Result<ImportedRoleActions> {
    let role_index = tx.put(&role_item(role), Some(Expr::new("attribute_not_exists(PK)")))?;
    let name = put_name_marker(tx, role)?;
    let event = Event {
        event_type: "role_imported",
        subject: format!("ROLE#{}", role.uuid),
        message: format!("Role {} has been imported from Waldur.", role.name),
        details: json!({
            "name": role.name,
            "content_type": role.content_type.as_str(),
            "permissions": role.permissions,
            "is_active": role.is_active,
        }),
    };
    audit::record(tx, None, &event, now)?;
    Ok(ImportedRoleActions {
        role: role_index,
        name,
    })
}

fn role_item(role: &Role) -> RoleItem {
    let (pk, sk) = role_key(&role.uuid);
    RoleItem {
        pk,
        sk,
        entity: "role".into(),
        role: role.clone(),
    }
}

fn put_name_marker(tx: &mut Transaction<'_>, role: &Role) -> Result<usize> {
    let (pk, sk) = name_marker_key(&role.name);
    let marker = NameMarker {
        pk,
        sk,
        entity: "role_name".into(),
        role_uuid: role.uuid,
    };
    tx.put(&marker, Some(Expr::new("attribute_not_exists(PK)")))
}

fn record(
    tx: &mut Transaction<'_>,
    actor: &AuthUser,
    event_type: &str,
    role: &Role,
    message: String,
    now: &Timestamp,
) -> Result<usize> {
    let event = Event {
        event_type,
        subject: format!("ROLE#{}", role.uuid),
        message,
        details: json!({
            "name": role.name,
            "content_type": role.content_type.as_str(),
            "permissions": role.permissions,
            "is_active": role.is_active,
        }),
    };
    audit::record(tx, Some(actor), &event, now)
}
