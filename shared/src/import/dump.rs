//! A Django `dumpdata` of Waldur (`waldur dumpdata -a`: a JSON list of `{model, pk, fields}`)
//! read into a snapshot: users with their password hashes and API tokens, roles with their
//! permissions and descriptions, customers, projects, role grants (ended ones as history),
//! group invitations, permission requests and permission reviews. References are Django
//! primary keys; they become the referenced objects' uuids here.

use std::collections::{BTreeMap, HashMap};

use chrono::Duration;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::auth::Secret;
use crate::error::{Error, Result};
use crate::grants::{Grant, Member, MemberNames};
use crate::ids::Id;
use crate::invitations::{Invitation, PermissionRequest, State};
use crate::reviews::Review;
use crate::roles::{ContentType, LANGUAGES, Role};
use crate::scopes::{Customer, Project};
use crate::time::{self, Timestamp};
use crate::users::{self, ImportedToken, User};

use super::{ImportedUser, Kind, Skipped, Snapshot};

/// Waldur's `GROUP_INVITATION_LIFETIME`: a group invitation stops accepting requests a week
/// after it was made (the API shows it as `expires`; the dump does not hold it).
pub const WALDUR_INVITATION_LIFETIME: Duration = Duration::weeks(1);

#[derive(Deserialize)]
struct Row {
    model: String,
    pk: Value,
    #[serde(default)]
    fields: Map<String, Value>,
}

/// The Django models read; any other in the dump is named in a note.
const MODELS: [&str; 12] = [
    "contenttypes.contenttype",
    "core.user",
    "authtoken.token",
    "permissions.role",
    "permissions.rolepermission",
    "permissions.userrole",
    "structure.customer",
    "structure.project",
    "users.groupinvitation",
    "users.permissionrequest",
    "structure.customerpermissionreview",
    "structure.projectpermissionreview",
];

/// The scope type of a Django model (`app_label.model`).
fn content_type_of_model(app_label: &str, model: &str) -> Option<ContentType> {
    Some(match (app_label, model) {
        ("structure", "customer") => ContentType::Customer,
        ("structure", "project") => ContentType::Project,
        ("marketplace", "offering") => ContentType::Offering,
        ("marketplace", "resource") => ContentType::Resource,
        ("marketplace", "serviceprovider") => ContentType::ServiceProvider,
        ("proposal", "call") => ContentType::Call,
        ("proposal", "proposal") => ContentType::Proposal,
        _ => return None,
    })
}

/// Reads a dump; `now` is the `created` of the roles (Waldur keeps none) and the end of an
/// ended grant that does not say when it ended.
pub fn parse(text: &str, now: &Timestamp) -> Result<Snapshot> {
    let rows: Vec<Row> = serde_json::from_str(text)
        .map_err(|e| Error::Malformed(format!("not a Django dumpdata JSON list: {e}")))?;
    let mut by_model: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for row in &rows {
        by_model.entry(row.model.as_str()).or_default().push(row);
    }
    let rows_of = |model: &str| by_model.get(model).cloned().unwrap_or_default();
    let mut dump = Dump {
        snapshot: Snapshot {
            credentials: true,
            ..Snapshot::default()
        },
        content_types: HashMap::new(),
        users: HashMap::new(),
        roles: HashMap::new(),
        customers: HashMap::new(),
        projects: HashMap::new(),
        invitations: HashMap::new(),
    };
    for (model, rows) in &by_model {
        if !MODELS.contains(model) {
            dump.snapshot.notes.push(format!(
                "{model}: {} rows not imported (not part of access control)",
                rows.len()
            ));
        }
    }
    dump.content_types(&rows_of("contenttypes.contenttype"), &rows_of("permissions.role"));
    dump.users(&rows_of("core.user"), &rows_of("authtoken.token"))?;
    dump.roles(
        &rows_of("permissions.role"),
        &rows_of("permissions.rolepermission"),
        now,
    )?;
    dump.scopes(&rows_of("structure.customer"), &rows_of("structure.project"))?;
    dump.grants(&rows_of("permissions.userrole"), now)?;
    dump.invitations(&rows_of("users.groupinvitation"))?;
    dump.requests(&rows_of("users.permissionrequest"))?;
    dump.reviews(
        &rows_of("structure.customerpermissionreview"),
        ContentType::Customer,
        "customer",
    )?;
    dump.reviews(
        &rows_of("structure.projectpermissionreview"),
        ContentType::Project,
        "project",
    )?;
    Ok(dump.snapshot)
}

struct Dump {
    snapshot: Snapshot,
    /// Django content type id → scope type.
    content_types: HashMap<i64, ContentType>,
    /// Django primary keys → what they became.
    users: HashMap<i64, User>,
    roles: HashMap<i64, Role>,
    customers: HashMap<i64, Customer>,
    projects: HashMap<i64, Project>,
    invitations: HashMap<i64, Invitation>,
}

fn text(fields: &Map<String, Value>, name: &str) -> String {
    fields
        .get(name)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn flag(fields: &Map<String, Value>, name: &str) -> bool {
    fields.get(name).and_then(Value::as_bool).unwrap_or(false)
}

fn number(fields: &Map<String, Value>, name: &str) -> Option<i64> {
    fields.get(name).and_then(Value::as_i64)
}

fn bad(model: &str, pk: &Value, what: &str) -> Error {
    Error::Malformed(format!("{model} {pk}: {what}"))
}

fn uuid(row: &Row) -> Result<Id> {
    row.fields
        .get("uuid")
        .and_then(Value::as_str)
        .and_then(Id::parse)
        .ok_or_else(|| bad(&row.model, &row.pk, "no valid uuid"))
}

/// A Django timestamp in the storage form.
fn timestamp(row: &Row, name: &str) -> Result<Option<String>> {
    match row.fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_str()
            .and_then(time::parse_input)
            .map(|t| Some(time::storage(&t)))
            .ok_or_else(|| bad(&row.model, &row.pk, &format!("{name} is not a timestamp"))),
    }
}

fn required_timestamp(row: &Row, name: &str) -> Result<String> {
    timestamp(row, name)?.ok_or_else(|| bad(&row.model, &row.pk, &format!("no {name}")))
}

impl Dump {
    fn skip(&mut self, kind: Kind, what: String, why: impl Into<String>) {
        self.snapshot.skipped.push(Skipped {
            kind,
            what,
            why: why.into(),
        });
    }

    /// Content type ids come from the dump's `contenttypes.contenttype` rows when it has them;
    /// otherwise each id is the scope type its roles are named for (`CUSTOMER.OWNER`:
    /// customer), as Waldur names its roles.
    fn content_types(&mut self, rows: &[&Row], roles: &[&Row]) {
        for row in rows {
            if let (Some(id), Some(kind)) = (
                row.pk.as_i64(),
                content_type_of_model(&text(&row.fields, "app_label"), &text(&row.fields, "model")),
            ) {
                self.content_types.insert(id, kind);
            }
        }
        let mut votes: BTreeMap<i64, BTreeMap<ContentType, usize>> = BTreeMap::new();
        for role in roles {
            let prefix = text(&role.fields, "name")
                .split('.')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            if let (Some(id), Some(kind)) =
                (number(&role.fields, "content_type"), ContentType::parse(&prefix))
            {
                *votes.entry(id).or_default().entry(kind).or_default() += 1;
            }
        }
        for (id, kinds) in votes {
            if let Some((kind, _)) = kinds.into_iter().max_by_key(|(_, n)| *n) {
                self.content_types.entry(id).or_insert(kind);
            }
        }
    }

    /// A `content_type` field: an id, or a natural key `[app_label, model]`.
    fn content_type(&self, value: Option<&Value>) -> Option<ContentType> {
        match value? {
            Value::Number(id) => self.content_types.get(&id.as_i64()?).copied(),
            Value::Array(parts) => match parts.as_slice() {
                [Value::String(app), Value::String(model)] => content_type_of_model(app, model),
                _ => None,
            },
            _ => None,
        }
    }

    fn users(&mut self, rows: &[&Row], tokens: &[&Row]) -> Result<()> {
        let mut keys: HashMap<i64, ImportedToken> = HashMap::new();
        for token in tokens {
            let (Some(key), Some(user)) = (token.pk.as_str(), number(&token.fields, "user")) else {
                return Err(bad(&token.model, &token.pk, "no key or no user"));
            };
            keys.insert(
                user,
                ImportedToken {
                    key: Secret::new(key),
                    last_used: required_timestamp(token, "created")?,
                },
            );
        }
        let mut unusable = 0;
        for row in rows {
            let pk = row
                .pk
                .as_i64()
                .ok_or_else(|| bad(&row.model, &row.pk, "no integer pk"))?;
            let f = &row.fields;
            let password = text(f, "password");
            let password_hash = if users::is_checkable_hash(&password) {
                Some(password)
            } else {
                // Empty or `!…`: Django's unusable password (the user signs in otherwise).
                if !password.is_empty() && !password.starts_with('!') {
                    unusable += 1;
                }
                None
            };
            let user = User {
                uuid: uuid(row)?,
                pk: 0,
                username: text(f, "username"),
                email: text(f, "email"),
                first_name: text(f, "first_name"),
                last_name: text(f, "last_name"),
                native_name: text(f, "native_name"),
                preferred_language: text(f, "preferred_language"),
                is_staff: flag(f, "is_staff"),
                is_support: flag(f, "is_support"),
                is_active: flag(f, "is_active"),
                date_joined: required_timestamp(row, "date_joined")?,
                token_hash: None,
                password_hash,
                held: BTreeMap::new(),
                customer_grants: BTreeMap::new(),
                sessions_valid_after: None,
                token_lifetime: number(f, "token_lifetime"),
                deleting: false,
                email_change: None,
            };
            self.snapshot.users.push(ImportedUser {
                user: user.clone(),
                token: keys.remove(&pk),
            });
            self.users.insert(pk, user);
        }
        if unusable > 0 {
            self.snapshot.notes.push(format!(
                "{unusable} users have a password hash of a kind this product cannot check (only \
                 pbkdf2_sha256 and argon2 are): they come without a password"
            ));
        }
        for (user, _) in keys {
            self.snapshot.notes.push(format!(
                "an API token of user pk {user}, who is not in the dump, is not imported"
            ));
        }
        Ok(())
    }

    fn roles(&mut self, rows: &[&Row], permissions: &[&Row], now: &Timestamp) -> Result<()> {
        let mut of_role: BTreeMap<i64, Vec<(i64, String)>> = BTreeMap::new();
        for row in permissions {
            if let Some(role) = number(&row.fields, "role") {
                of_role.entry(role).or_default().push((
                    row.pk.as_i64().unwrap_or_default(),
                    text(&row.fields, "permission"),
                ));
            }
        }
        for row in rows {
            let pk = row
                .pk
                .as_i64()
                .ok_or_else(|| bad(&row.model, &row.pk, "no integer pk"))?;
            let f = &row.fields;
            let name = text(f, "name");
            let Some(content_type) = self.content_type(f.get("content_type")) else {
                let what = format!("role {name} ({})", uuid(row)?);
                self.skip(
                    Kind::Role,
                    what,
                    "its content type is not known (add contenttypes.contenttype to the dump)",
                );
                continue;
            };
            let mut permissions = of_role.remove(&pk).unwrap_or_default();
            permissions.sort();
            let role = Role {
                uuid: uuid(row)?,
                name,
                description: text(f, "description"),
                translations: LANGUAGES
                    .iter()
                    .filter_map(|lang| {
                        f.get(&format!("description_{lang}"))
                            .and_then(Value::as_str)
                            .map(|text| ((*lang).to_owned(), text.to_owned()))
                    })
                    .collect(),
                permissions: permissions.into_iter().map(|(_, p)| p).collect(),
                content_type,
                is_system_role: flag(f, "is_system_role"),
                is_active: flag(f, "is_active"),
                users_count: 0,
                created: time::storage(now),
                version: 0,
                customer_uuid: None,
                template_uuid: None,
                concealed_in: Vec::new(),
            };
            self.snapshot.roles.push(role.clone());
            self.roles.insert(pk, role);
        }
        Ok(())
    }

    fn scopes(&mut self, customers: &[&Row], projects: &[&Row]) -> Result<()> {
        for row in customers {
            let pk = row
                .pk
                .as_i64()
                .ok_or_else(|| bad(&row.model, &row.pk, "no integer pk"))?;
            let f = &row.fields;
            let customer = Customer {
                uuid: uuid(row)?,
                name: text(f, "name"),
                abbreviation: text(f, "abbreviation"),
                native_name: text(f, "native_name"),
                description: String::new(),
                email: text(f, "email"),
                contact_details: text(f, "contact_details"),
                phone_number: text(f, "phone_number"),
                homepage: text(f, "homepage"),
                notification_emails: text(f, "notification_emails"),
                created: required_timestamp(row, "created")?,
                member_count: 0,
                expiring_count: 0,
                users_count: 0,
                project_count: 0,
                pending_review_uuid: None,
                last_review_closed: None,
            };
            self.snapshot.customers.push(customer.clone());
            self.customers.insert(pk, customer);
        }
        for row in projects {
            let pk = row
                .pk
                .as_i64()
                .ok_or_else(|| bad(&row.model, &row.pk, "no integer pk"))?;
            let f = &row.fields;
            let what = format!("project {} ({})", text(f, "name"), uuid(row)?);
            if flag(f, "is_removed") {
                self.skip(Kind::Project, what, "removed in Waldur");
                continue;
            }
            let Some(customer) = number(f, "customer").and_then(|c| self.customers.get(&c)) else {
                self.skip(Kind::Project, what, "its customer is not in the dump");
                continue;
            };
            let project = Project {
                uuid: uuid(row)?,
                name: text(f, "name"),
                description: text(f, "description"),
                slug: Some(text(f, "slug"))
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| crate::scopes::slugify(&text(f, "name"))),
                customer_uuid: customer.uuid,
                created: required_timestamp(row, "created")?,
                member_count: 0,
                expiring_count: 0,
                pending_review_uuid: None,
                last_review_closed: None,
            };
            self.snapshot.projects.push(project.clone());
            self.projects.insert(pk, project);
        }
        Ok(())
    }

    /// The scope a `content_type` and `object_id` name: its type, uuid and customer; or why not.
    fn scope(&self, fields: &Map<String, Value>) -> Result<(ContentType, Id, Id), String> {
        let kind = self
            .content_type(fields.get("content_type"))
            .ok_or("its content type is not known (add contenttypes.contenttype to the dump)")?;
        let object = number(fields, "object_id").ok_or("it names no object")?;
        match kind {
            ContentType::Customer => self
                .customers
                .get(&object)
                .map(|c| (kind, c.uuid, c.uuid))
                .ok_or_else(|| "its customer is not in the dump".to_owned()),
            ContentType::Project => self
                .projects
                .get(&object)
                .map(|p| (kind, p.uuid, p.customer_uuid))
                .ok_or_else(|| "its project is not in the dump (or was removed)".to_owned()),
            other => Err(format!("roles on {} scopes are not served here", other.as_str())),
        }
    }

    fn user(&self, fields: &Map<String, Value>, name: &str) -> Option<&User> {
        number(fields, name).and_then(|pk| self.users.get(&pk))
    }

    fn grants(&mut self, rows: &[&Row], now: &Timestamp) -> Result<()> {
        for row in rows {
            let f = &row.fields;
            let grant_uuid = uuid(row)?;
            let ended = !flag(f, "is_active");
            let kind = if ended { Kind::EndedGrant } else { Kind::Grant };
            let what = format!("grant {grant_uuid}");
            let (scope_type, scope_uuid, customer_uuid) = match self.scope(f) {
                Ok(scope) => scope,
                Err(why) => {
                    self.skip(kind, what, why);
                    continue;
                }
            };
            let (Some(user), Some(role)) = (
                self.user(f, "user"),
                number(f, "role").and_then(|r| self.roles.get(&r)),
            ) else {
                self.skip(kind, what, "its user or role is not in the dump");
                continue;
            };
            let granter = self.user(f, "created_by");
            let expiration_time = timestamp(row, "expiration_time")?;
            let member = Member {
                grant: Grant {
                    uuid: grant_uuid,
                    user_uuid: user.uuid,
                    role_uuid: role.uuid,
                    scope_type,
                    scope_uuid,
                    customer_uuid,
                    created: required_timestamp(row, "created")?,
                    created_by: granter.map(|g| g.uuid),
                    expiration_time: expiration_time.clone(),
                },
                names: MemberNames {
                    user_username: user.username.clone(),
                    user_full_name: user.full_name(),
                    user_email: user.email.clone(),
                    user_native_name: user.native_name.clone(),
                    created_by_username: granter.map(|g| g.username.clone()),
                    created_by_full_name: granter.map(User::full_name),
                },
                // Waldur ends a grant by setting its expiration to the moment it ended.
                ended: ended.then(|| expiration_time.unwrap_or_else(|| time::storage(now))),
            };
            if ended {
                self.snapshot.ended.push(member);
            } else {
                self.snapshot.grants.push(member);
            }
        }
        Ok(())
    }

    fn invitations(&mut self, rows: &[&Row]) -> Result<()> {
        for row in rows {
            let pk = row
                .pk
                .as_i64()
                .ok_or_else(|| bad(&row.model, &row.pk, "no integer pk"))?;
            let f = &row.fields;
            let invitation_uuid = uuid(row)?;
            let what = format!("invitation {invitation_uuid}");
            let (scope_type, scope_uuid, customer_uuid) = match self.scope(f) {
                Ok(scope) => scope,
                Err(why) => {
                    self.skip(Kind::Invitation, what, why);
                    continue;
                }
            };
            let (Some(role), Some(creator)) = (
                number(f, "role").and_then(|r| self.roles.get(&r)),
                self.user(f, "created_by"),
            ) else {
                self.skip(Kind::Invitation, what, "its role or creator is not in the dump");
                continue;
            };
            let created = required_timestamp(row, "created")?;
            let expiry =
                time::parse_stored(&created).map(|t| time::storage(&(t + WALDUR_INVITATION_LIFETIME)));
            let invitation = Invitation {
                uuid: invitation_uuid,
                scope_type,
                scope_uuid,
                customer_uuid,
                role_uuid: role.uuid,
                project_role_uuid: number(f, "project_role")
                    .and_then(|r| self.roles.get(&r))
                    .map(|r| r.uuid),
                auto_approve: flag(f, "auto_approve"),
                auto_create_project: flag(f, "auto_create_project"),
                project_name_template: f
                    .get("project_name_template")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned),
                custom_text: text(f, "custom_text"),
                allow_multiple_requests: flag(f, "allow_multiple_requests"),
                created,
                created_by: creator.uuid,
                created_by_username: creator.username.clone(),
                created_by_full_name: creator.full_name(),
                is_active: flag(f, "is_active"),
                expiry,
                edited_by: None,
            };
            self.snapshot.invitations.push(invitation.clone());
            self.invitations.insert(pk, invitation);
        }
        Ok(())
    }

    fn requests(&mut self, rows: &[&Row]) -> Result<()> {
        for row in rows {
            let f = &row.fields;
            let request_uuid = uuid(row)?;
            let what = format!("request {request_uuid}");
            let state = match number(f, "state") {
                Some(1) => State::Draft,
                Some(2) => State::Pending,
                Some(3) => State::Approved,
                Some(4) => State::Rejected,
                Some(5) => State::Canceled,
                _ => return Err(bad(&row.model, &row.pk, "an unknown state")),
            };
            let (Some(invitation), Some(requester)) = (
                number(f, "invitation").and_then(|i| self.invitations.get(&i)),
                self.user(f, "created_by"),
            ) else {
                self.skip(
                    Kind::Request,
                    what,
                    "its invitation or requester is not in the dump",
                );
                continue;
            };
            let reviewer = self.user(f, "reviewed_by");
            let request = PermissionRequest {
                uuid: request_uuid,
                invitation_uuid: invitation.uuid,
                state,
                created: required_timestamp(row, "created")?,
                created_by: requester.uuid,
                created_by_username: requester.username.clone(),
                created_by_full_name: requester.full_name(),
                created_by_email: requester.email.clone(),
                reviewed_by: reviewer.map(|r| r.uuid),
                reviewed_by_username: reviewer.map(|r| r.username.clone()),
                reviewed_by_full_name: reviewer.map(User::full_name),
                reviewed_at: timestamp(row, "reviewed_at")?,
                review_comment: f.get("review_comment").and_then(Value::as_str).map(str::to_owned),
                scope_type: invitation.scope_type,
                scope_uuid: invitation.scope_uuid,
                customer_uuid: invitation.customer_uuid,
                role_uuid: invitation.role_uuid,
                project_uuid: None,
                project_name_template: invitation.project_name_template.clone(),
                invitation_expires: invitation.expiry.clone(),
            };
            self.snapshot.requests.push(request);
        }
        Ok(())
    }

    fn reviews(&mut self, rows: &[&Row], scope_type: ContentType, field: &str) -> Result<()> {
        for row in rows {
            let f = &row.fields;
            let review_uuid = uuid(row)?;
            let scope = number(f, field).and_then(|pk| match scope_type {
                ContentType::Customer => self.customers.get(&pk).map(|c| (c.uuid, c.uuid)),
                _ => self.projects.get(&pk).map(|p| (p.uuid, p.customer_uuid)),
            });
            let Some((scope_uuid, customer_uuid)) = scope else {
                self.skip(
                    Kind::Review,
                    format!("review {review_uuid}"),
                    format!("its {field} is not in the dump"),
                );
                continue;
            };
            let reviewer = self.user(f, "reviewer");
            self.snapshot.reviews.push(Review {
                uuid: review_uuid,
                scope_type,
                scope_uuid,
                customer_uuid,
                is_pending: flag(f, "is_pending"),
                created: required_timestamp(row, "created")?,
                closed: timestamp(row, "closed")?,
                reviewer_uuid: reviewer.map(|r| r.uuid),
                reviewer_full_name: reviewer.map(User::full_name),
                last_reminded: None,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export() -> String {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/waldur-export/dumpdata.json"
        );
        std::fs::read_to_string(path).expect("the Waldur export beside the repository")
    }

    #[test]
    fn the_recorded_dump_reads_whole() {
        let snapshot = parse(&export(), &time::now()).unwrap();
        assert_eq!(snapshot.roles.len(), 14);
        assert_eq!(snapshot.users.len(), 9);
        assert_eq!(snapshot.users.iter().filter(|u| u.token.is_some()).count(), 9);
        assert_eq!((snapshot.customers.len(), snapshot.projects.len()), (2, 3));
        assert_eq!((snapshot.grants.len(), snapshot.ended.len()), (8, 1));
        assert_eq!(
            (
                snapshot.invitations.len(),
                snapshot.requests.len(),
                snapshot.reviews.len()
            ),
            (3, 2, 2)
        );
        assert!(snapshot.skipped.is_empty(), "{:?}", snapshot.skipped);
        let auditor = snapshot
            .roles
            .iter()
            .find(|r| r.name == "PROJECT.AUDITOR")
            .unwrap();
        assert_eq!(auditor.content_type, ContentType::Project);
        assert_eq!(auditor.permissions, ["PROJECT.UPDATE"]);
        assert_eq!(auditor.translation("de"), Some("Projektprüfer"));
        let ivan = snapshot.ended.first().unwrap();
        assert_eq!(ivan.names.user_username, "ivan");
        assert_eq!(ivan.ended.as_deref(), Some("2026-12-01T22:51:13.774000Z"));
        let olivia = snapshot
            .users
            .iter()
            .find(|u| u.user.username == "olivia")
            .unwrap();
        assert_eq!(olivia.user.token_lifetime, None);
        assert!(
            olivia
                .user
                .password_hash
                .as_deref()
                .unwrap()
                .starts_with("pbkdf2_sha256$600000$")
        );
        let rejected = snapshot
            .requests
            .iter()
            .find(|r| r.state == State::Rejected)
            .unwrap();
        assert_eq!(rejected.review_comment.as_deref(), Some("not now"));
        assert_eq!(rejected.reviewed_by_username.as_deref(), Some("oscar"));
        let invitation = snapshot
            .invitations
            .iter()
            .find(|i| i.uuid == rejected.invitation_uuid)
            .unwrap();
        assert_eq!(invitation.expiry.as_deref(), Some("2026-12-08T22:51:30.705000Z"));
    }

    #[test]
    fn content_types_come_from_the_dump_when_it_has_them() {
        let dump = serde_json::json!([
            {"model": "contenttypes.contenttype", "pk": 7, "fields": {"app_label": "structure", "model": "project"}},
            {"model": "permissions.role", "pk": 1, "fields": {"uuid": "98e57408a1344b768156905e7d2f1523",
                "name": "Auditors", "content_type": 7, "is_active": true}},
            {"model": "permissions.role", "pk": 2, "fields": {"uuid": "18e57408a1344b768156905e7d2f1523",
                "name": "OFFERING.X", "content_type": ["marketplace", "offering"], "is_active": true}},
            {"model": "permissions.role", "pk": 3, "fields": {"uuid": "28e57408a1344b768156905e7d2f1523",
                "name": "Mystery", "content_type": 99, "is_active": true}},
            {"model": "marketplace.order", "pk": 1, "fields": {}}
        ]);
        let snapshot = parse(&dump.to_string(), &time::now()).unwrap();
        let kinds: Vec<_> = snapshot
            .roles
            .iter()
            .map(|r| (r.name.as_str(), r.content_type))
            .collect();
        assert_eq!(
            kinds,
            [
                ("Auditors", ContentType::Project),
                ("OFFERING.X", ContentType::Offering)
            ]
        );
        assert_eq!(snapshot.skipped.len(), 1, "the role of an unknown content type");
        assert!(
            snapshot
                .notes
                .iter()
                .any(|n| n.starts_with("marketplace.order: 1 rows"))
        );
        assert!(parse("{}", &time::now()).is_err());
    }
}
