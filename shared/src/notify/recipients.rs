//! Who hears of an outbox item: its `recipients` names users or the holders of roles in a
//! scope, resolved here to the active users' addresses and languages at the time of sending.

use std::collections::BTreeSet;

use serde_json::Value;

use super::OutboxItem;
use crate::error::{Error, Result};
use crate::grants::{self, Member};
use crate::ids::Id;
use crate::roles::{self, ContentType};
use crate::store::Store;
use crate::time::Timestamp;
use crate::users::{self, User};

const OWNER: &str = "CUSTOMER.OWNER";
const MANAGER: &str = "PROJECT.MANAGER";

/// One person a message goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub email: String,
    pub name: String,
    /// The user's `preferred_language`; empty: English.
    pub language: String,
}

/// The people an item goes to (each address once), and how many had no (usable) address.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recipients {
    pub people: Vec<Recipient>,
    pub skipped: usize,
}

/// A scope named in `recipients`: `{"scope_type": "customer"|"project", "scope_uuid": …}`.
pub fn scope_of(value: &Value) -> Result<(ContentType, Id)> {
    let scope_type = value
        .get("scope_type")
        .and_then(Value::as_str)
        .and_then(ContentType::parse)
        .ok_or_else(|| Error::internal(format!("outbox recipients without a scope type: {value}")))?;
    let scope_uuid = value
        .get("scope_uuid")
        .and_then(Value::as_str)
        .and_then(Id::parse)
        .ok_or_else(|| Error::internal(format!("outbox recipients without a scope uuid: {value}")))?;
    Ok((scope_type, scope_uuid))
}

/// The active holders of `role` in a scope, now.
async fn holders(
    store: &Store,
    scope_type: ContentType,
    scope: &Id,
    role_names: &[(Id, String)],
    role: &str,
    now: &Timestamp,
) -> Result<(Option<Id>, Vec<Id>)> {
    let Some((found, members)) = grants::scope_with_members(store, scope_type, scope, None).await? else {
        return Ok((None, Vec::new()));
    };
    let wanted: Vec<&Id> = role_names
        .iter()
        .filter(|(_, n)| n == role)
        .map(|(u, _)| u)
        .collect();
    let users = members
        .iter()
        .filter(|m: &&Member| m.is_active_at(now) && wanted.contains(&&m.grant.role_uuid))
        .map(|m| m.grant.user_uuid)
        .collect();
    Ok((Some(found.customer_uuid()), users))
}

/// The owners of the scope's customer, and (`with_managers`, for a project) the project's managers.
async fn owners_and_managers(
    store: &Store,
    value: &Value,
    with_managers: bool,
    now: &Timestamp,
) -> Result<Vec<Id>> {
    let (scope_type, scope) = scope_of(value)?;
    let role_names: Vec<(Id, String)> = roles::list(store)
        .await?
        .into_iter()
        .map(|r| (r.uuid, r.name))
        .collect();
    let mut users = Vec::new();
    let customer = if scope_type == ContentType::Project {
        let (customer, managers) = holders(store, scope_type, &scope, &role_names, MANAGER, now).await?;
        if with_managers {
            users.extend(managers);
        }
        customer
    } else {
        Some(scope)
    };
    if let Some(customer) = customer {
        let (_, owners) = holders(store, ContentType::Customer, &customer, &role_names, OWNER, now).await?;
        users.extend(owners);
    }
    Ok(users)
}

/// Resolves an item's `recipients`:
/// - `{"user": uuid}` (with `"email"` as written, used if the user has none now): that user;
/// - `{"email": address}`: that address (a new address being confirmed), in the language of the
///   payload's `user_uuid`;
/// - `{"approvers_of": scope}`: who may decide a request in the scope — the customer's owners
///   and, for a project, its managers;
/// - `{"owners_of": scope}`: the owners of the scope's customer;
/// - `{"holder_and_managers_of": scope, "user": uuid}`: a grant's holder and the scope's
///   owners and managers.
pub async fn resolve(store: &Store, item: &OutboxItem, now: &Timestamp) -> Result<Recipients> {
    let spec = &item.recipients;
    let user_field = |value: &Value, field: &str| -> Option<Id> {
        value.get(field).and_then(Value::as_str).and_then(Id::parse)
    };
    let mut uuids = Vec::new();
    let mut fallback_email = None;
    if let Some(scope) = spec.get("approvers_of") {
        uuids = owners_and_managers(store, scope, true, now).await?;
    } else if let Some(scope) = spec.get("owners_of") {
        uuids = owners_and_managers(store, scope, false, now).await?;
    } else if let Some(scope) = spec.get("holder_and_managers_of") {
        uuids.extend(user_field(spec, "user"));
        uuids.extend(owners_and_managers(store, scope, true, now).await?);
    } else if let Some(user) = user_field(spec, "user") {
        uuids.push(user);
        fallback_email = spec.get("email").and_then(Value::as_str).map(str::to_owned);
    } else if let Some(address) = spec.get("email").and_then(Value::as_str) {
        let language = match user_field(&item.payload, "user_uuid") {
            Some(uuid) => users::get(store, &uuid)
                .await?
                .map(|u| u.preferred_language)
                .unwrap_or_default(),
            None => String::new(),
        };
        let people = vec![Recipient {
            email: address.to_owned(),
            name: address.to_owned(),
            language,
        }];
        return Ok(Recipients { people, skipped: 0 });
    } else {
        return Err(Error::internal(format!(
            "outbox recipients not understood: {spec}"
        )));
    }
    let mut seen_users = BTreeSet::new();
    uuids.retain(|u| seen_users.insert(*u));
    let keys: Vec<_> = uuids.iter().map(User::key).collect();
    let found: Vec<User> = store.batch_get(&keys).await?;
    let mut recipients = Recipients::default();
    let mut seen = BTreeSet::new();
    for uuid in &uuids {
        let Some(user) = found.iter().find(|u| u.uuid == *uuid && u.is_active) else {
            continue;
        };
        let email = match (user.email.trim(), &fallback_email) {
            ("", Some(fallback)) => fallback.trim().to_owned(),
            (email, _) => email.to_owned(),
        };
        if email.parse::<lettre::Address>().is_err() {
            recipients.skipped += 1;
            continue;
        }
        if seen.insert(email.to_lowercase()) {
            let name = match user.full_name() {
                name if name.is_empty() => user.username.clone(),
                name => name,
            };
            recipients.people.push(Recipient {
                email,
                name,
                language: user.preferred_language.clone(),
            });
        }
    }
    Ok(recipients)
}
