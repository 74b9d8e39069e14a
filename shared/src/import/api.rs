//! A live Waldur read through its REST API with a staff token: every listing paged through by
//! its `Link: rel="next"` headers, then read into a snapshot. The API shows no secrets, so the
//! users come without passwords and tokens. Grants are the members of each customer and
//! project (`list_users`, which show the grants' uuids); `/api/user-permissions/` adds the
//! ended ones, which it lists without a uuid, so theirs is derived from what identifies them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt, stream};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::grants::{Grant, Member, MemberNames};
use crate::ids::Id;
use crate::invitations::{Invitation, PermissionRequest, State};
use crate::reviews::Review;
use crate::roles::{ContentType, LANGUAGES, Role};
use crate::scopes::{Customer, Project};
use crate::time::{self, Timestamp};
use crate::users::{self, User};

use super::{ImportedUser, Kind, Progress, Skipped, Snapshot};

/// Pages of the large listings are asked for this big.
const PAGE: &str = "page_size=100";
/// How long one page may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Listings read at once (the members of many scopes).
const CONCURRENT_REQUESTS: usize = 8;

/// Everything read from the API, as its JSON rows.
#[derive(Debug, Clone, Default)]
pub struct Listings {
    pub roles: Vec<Value>,
    pub customers: Vec<Value>,
    pub projects: Vec<Value>,
    pub users: Vec<Value>,
    /// `/api/user-permissions/`: every grant, ended ones too, without their uuids.
    pub permissions: Vec<Value>,
    /// `list_users` of each customer and project.
    pub members: Vec<(ContentType, Id, Vec<Value>)>,
    pub invitations: Vec<Value>,
    pub requests: Vec<Value>,
    pub customer_reviews: Vec<Value>,
    /// `None` when the server has no project reviews.
    pub project_reviews: Option<Vec<Value>>,
}

/// Reads a Waldur at `base` (`https://waldur.example.org`, with or without `/api`) with a
/// staff token, and returns its snapshot.
pub async fn fetch(base: &str, token: &str, progress: &dyn Progress, now: &Timestamp) -> Result<Snapshot> {
    let waldur = Waldur::new(base, token)?;
    let mut listings = Listings::default();
    for (name, path, slot) in [
        ("roles", "/api/roles/", &mut listings.roles),
        ("customers", "/api/customers/", &mut listings.customers),
        ("projects", "/api/projects/", &mut listings.projects),
        ("users", "/api/users/", &mut listings.users),
        (
            "user-permissions",
            "/api/user-permissions/",
            &mut listings.permissions,
        ),
    ] {
        progress.stage(&format!("reading {name}"), 0);
        *slot = waldur.list(&format!("{path}?{PAGE}"), progress).await?;
    }
    let mut scopes = Vec::new();
    for (kind, rows) in [
        (ContentType::Customer, &listings.customers),
        (ContentType::Project, &listings.projects),
    ] {
        for row in rows {
            scopes.push((kind, uuid_of(row, "uuid")?));
        }
    }
    progress.stage("reading members", scopes.len() as u64);
    let waldur_ref = &waldur;
    listings.members = stream::iter(scopes)
        .map(|(kind, uuid)| async move {
            let path = format!("/api/{}s/{uuid}/list_users/", kind.as_str());
            let rows = waldur_ref.list(&path, &super::Quiet).await?;
            progress.advance(1);
            Ok::<_, Error>((kind, uuid, rows))
        })
        .buffered(CONCURRENT_REQUESTS)
        .try_collect()
        .await?;
    for (name, path, slot) in [
        (
            "invitations",
            "/api/user-group-invitations/",
            &mut listings.invitations,
        ),
        (
            "requests",
            "/api/user-permission-requests/",
            &mut listings.requests,
        ),
        (
            "reviews",
            "/api/customer-permissions-reviews/",
            &mut listings.customer_reviews,
        ),
    ] {
        progress.stage(&format!("reading {name}"), 0);
        *slot = waldur.list(path, progress).await?;
    }
    progress.stage("reading project reviews", 0);
    listings.project_reviews = waldur
        .list_if_served("/api/project-permissions-reviews/", progress)
        .await?;
    parse(&listings, now)
}

/// The HTTP(S) client of one Waldur.
struct Waldur {
    /// `scheme://authority` (and any path prefix before `/api`).
    base: String,
    authority: String,
    token: String,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

/// What one request answered.
struct Page {
    status: u16,
    next: Option<String>,
    body: Bytes,
}

impl Waldur {
    fn new(base: &str, token: &str) -> Result<Self> {
        let base = base.trim().trim_end_matches('/');
        let base = base.strip_suffix("/api").unwrap_or(base).to_owned();
        let uri: hyper::Uri = base
            .parse()
            .map_err(|e| Error::rejected(format!("{base} is not a URL: {e}")))?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(Error::rejected(format!("{base} is not an http(s) URL")));
        };
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| Error::internal(format!("the system's TLS roots: {e}")))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Waldur {
            authority: format!("{scheme}://{authority}"),
            base,
            token: token.trim().to_owned(),
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    async fn get(&self, url: &str) -> Result<Page> {
        let request = hyper::Request::get(url)
            .header("accept", "application/json")
            .header("authorization", format!("Token {}", self.token))
            .body(Empty::new())
            .map_err(Error::internal)?;
        let unavailable =
            |e: &dyn std::fmt::Display| Error::Unavailable(format!("Waldur at {}: {e}", self.base));
        let response = tokio::time::timeout(REQUEST_TIMEOUT, self.client.request(request))
            .await
            .map_err(|e| unavailable(&e))?
            .map_err(|e| unavailable(&e))?;
        let status = response.status().as_u16();
        let next = response
            .headers()
            .get_all("link")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find_map(next_link);
        let body = tokio::time::timeout(REQUEST_TIMEOUT, response.into_body().collect())
            .await
            .map_err(|e| unavailable(&e))?
            .map_err(|e| unavailable(&e))?
            .to_bytes();
        Ok(Page { status, next, body })
    }

    /// Every row of a listing, following `rel="next"`. The links are followed on this base's
    /// scheme and host (a Waldur behind a proxy may name its inner address in them).
    async fn list(&self, path: &str, progress: &dyn Progress) -> Result<Vec<Value>> {
        self.list_if_served(path, progress)
            .await?
            .ok_or_else(|| Error::rejected(format!("Waldur at {} has no {path} (404)", self.base)))
    }

    /// As `list`, `None` when the server answers 404 (a listing its version does not have).
    async fn list_if_served(&self, path: &str, progress: &dyn Progress) -> Result<Option<Vec<Value>>> {
        let mut rows = Vec::new();
        let mut url = format!("{}{path}", self.base);
        loop {
            let page = self.get(&url).await?;
            match page.status {
                200 => {}
                404 if rows.is_empty() => return Ok(None),
                401 | 403 => {
                    return Err(Error::rejected(format!(
                        "Waldur at {} refused the token for {path} ({}): a staff user's token is needed",
                        self.base, page.status
                    )));
                }
                status => {
                    return Err(Error::rejected(format!(
                        "Waldur at {} answered {status} for {url}",
                        self.base
                    )));
                }
            }
            let body: Value = serde_json::from_slice(&page.body)
                .map_err(|e| Error::rejected(format!("{url} did not answer JSON: {e}")))?;
            let Value::Array(page_rows) = body else {
                return Err(Error::rejected(format!("{url} did not answer a list")));
            };
            rows.extend(page_rows);
            progress.advance(1);
            match page.next {
                Some(next) => url = format!("{}{}", self.authority, path_and_query(&next)),
                None => return Ok(Some(rows)),
            }
        }
    }
}

/// The `rel="next"` URL of a `Link` header, if it has one.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|link| {
        let (target, params) = link.split_once(';')?;
        params.split(';').any(|p| p.trim() == r#"rel="next""#).then(|| {
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
    })
}

/// The path and query of an absolute or relative URL.
fn path_and_query(url: &str) -> &str {
    match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |at| &rest[at..]),
        None => url,
    }
}

fn field<'a>(row: &'a Value, name: &str) -> Option<&'a Value> {
    row.get(name).filter(|v| !v.is_null())
}

fn text(row: &Value, name: &str) -> String {
    field(row, name)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn flag(row: &Value, name: &str) -> bool {
    field(row, name).and_then(Value::as_bool).unwrap_or(false)
}

fn uuid_of(row: &Value, name: &str) -> Result<Id> {
    field(row, name)
        .and_then(Value::as_str)
        .and_then(Id::parse)
        .ok_or_else(|| Error::rejected(format!("a row without a valid {name}: {row}")))
}

fn timestamp(row: &Value, name: &str) -> Result<Option<String>> {
    match field(row, name) {
        None => Ok(None),
        Some(value) => value
            .as_str()
            .and_then(time::parse_input)
            .map(|t| Some(time::storage(&t)))
            .ok_or_else(|| Error::rejected(format!("{name} is not a timestamp: {row}"))),
    }
}

fn required_timestamp(row: &Value, name: &str) -> Result<String> {
    timestamp(row, name)?.ok_or_else(|| Error::rejected(format!("a row without {name}: {row}")))
}

fn skipped(kind: Kind, what: String, why: impl Into<String>) -> Skipped {
    Skipped {
        kind,
        what,
        why: why.into(),
    }
}

/// Reads the listings into a snapshot; `now` is the `created` of the roles (Waldur shows none)
/// and the end of an ended grant that does not say when it ended.
pub fn parse(listings: &Listings, now: &Timestamp) -> Result<Snapshot> {
    let mut snapshot = Snapshot::default();
    for row in &listings.roles {
        let name = text(row, "name");
        let Some(content_type) = ContentType::parse(&text(row, "content_type")) else {
            let what = format!("role {name} ({})", uuid_of(row, "uuid")?);
            snapshot
                .skipped
                .push(skipped(Kind::Role, what, "its content type is not served here"));
            continue;
        };
        let mut permissions: Vec<String> = field(row, "permissions")
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        permissions.sort();
        snapshot.roles.push(Role {
            uuid: uuid_of(row, "uuid")?,
            name,
            description: text(row, "description"),
            translations: LANGUAGES
                .iter()
                .filter_map(|lang| {
                    field(row, &format!("description_{lang}"))
                        .and_then(Value::as_str)
                        .map(|text| ((*lang).to_owned(), text.to_owned()))
                })
                .collect(),
            permissions,
            content_type,
            is_system_role: flag(row, "is_system_role"),
            is_active: flag(row, "is_active"),
            users_count: 0,
            created: time::storage(now),
            version: 0,
            customer_uuid: None,
            template_uuid: None,
            concealed_in: Vec::new(),
        });
    }
    for row in &listings.customers {
        snapshot.customers.push(Customer {
            uuid: uuid_of(row, "uuid")?,
            name: text(row, "name"),
            abbreviation: text(row, "abbreviation"),
            native_name: text(row, "native_name"),
            description: String::new(),
            email: text(row, "email"),
            contact_details: text(row, "contact_details"),
            phone_number: text(row, "phone_number"),
            homepage: text(row, "homepage"),
            notification_emails: text(row, "notification_emails"),
            created: required_timestamp(row, "created")?,
            member_count: 0,
            expiring_count: 0,
            users_count: 0,
            project_count: 0,
            pending_review_uuid: None,
            last_review_closed: None,
        });
    }
    for row in &listings.projects {
        snapshot.projects.push(Project {
            uuid: uuid_of(row, "uuid")?,
            name: text(row, "name"),
            description: text(row, "description"),
            slug: Some(text(row, "slug"))
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| crate::scopes::slugify(&text(row, "name"))),
            customer_uuid: uuid_of(row, "customer_uuid")?,
            created: required_timestamp(row, "created")?,
            member_count: 0,
            expiring_count: 0,
            pending_review_uuid: None,
            last_review_closed: None,
        });
    }
    for row in &listings.users {
        snapshot.users.push(ImportedUser {
            user: User {
                uuid: uuid_of(row, "uuid")?,
                pk: 0,
                username: text(row, "username"),
                email: text(row, "email"),
                first_name: text(row, "first_name"),
                last_name: text(row, "last_name"),
                native_name: text(row, "native_name"),
                preferred_language: text(row, "preferred_language"),
                is_staff: flag(row, "is_staff"),
                is_support: flag(row, "is_support"),
                is_active: flag(row, "is_active"),
                date_joined: required_timestamp(row, "date_joined")?,
                token_hash: None,
                password_hash: None,
                held: BTreeMap::new(),
                customer_grants: BTreeMap::new(),
                sessions_valid_after: None,
                // Not shown to other users, staff included: new users' default.
                token_lifetime: users::default_token_lifetime(),
                deleting: false,
                email_change: None,
            },
            token: None,
        });
    }
    let people: HashMap<Id, &User> = snapshot.users.iter().map(|u| (u.user.uuid, &u.user)).collect();
    let by_username: HashMap<&str, &User> = snapshot
        .users
        .iter()
        .map(|u| (u.user.username.as_str(), &u.user))
        .collect();
    let customer_of: HashMap<Id, Id> = snapshot
        .customers
        .iter()
        .map(|c| (c.uuid, c.uuid))
        .chain(snapshot.projects.iter().map(|p| (p.uuid, p.customer_uuid)))
        .collect();
    let names = |user: &Id, granter: Option<&Id>| {
        let user = people.get(user);
        let granter = granter.and_then(|g| people.get(g));
        MemberNames {
            user_username: user.map(|u| u.username.clone()).unwrap_or_default(),
            user_full_name: user.map(|u| u.full_name()).unwrap_or_default(),
            user_email: user.map(|u| u.email.clone()).unwrap_or_default(),
            user_native_name: user.map(|u| u.native_name.clone()).unwrap_or_default(),
            created_by_username: granter.map(|g| g.username.clone()),
            created_by_full_name: granter.map(|g| g.full_name()),
        }
    };

    // Live grants, and what identifies each, to tell the ended ones in user-permissions.
    let mut live = HashSet::new();
    for (scope_type, scope_uuid, rows) in &listings.members {
        for row in rows {
            let grant = Grant {
                uuid: uuid_of(row, "uuid")?,
                user_uuid: uuid_of(row, "user_uuid")?,
                role_uuid: uuid_of(row, "role_uuid")?,
                scope_type: *scope_type,
                scope_uuid: *scope_uuid,
                customer_uuid: customer_of.get(scope_uuid).copied().unwrap_or(*scope_uuid),
                created: required_timestamp(row, "created")?,
                created_by: field(row, "created_by_uuid")
                    .and_then(Value::as_str)
                    .and_then(Id::parse),
                expiration_time: timestamp(row, "expiration_time")?,
            };
            live.insert((
                grant.user_uuid,
                grant.scope_uuid,
                grant.role_uuid,
                grant.created.clone(),
            ));
            snapshot.grants.push(Member {
                names: names(&grant.user_uuid, grant.created_by.as_ref()),
                grant,
                ended: None,
            });
        }
    }
    for row in &listings.permissions {
        let user = uuid_of(row, "user_uuid")?;
        let scope_uuid = uuid_of(row, "scope_uuid")?;
        let role = uuid_of(row, "role_uuid")?;
        let created = required_timestamp(row, "created")?;
        if live.contains(&(user, scope_uuid, role, created.clone())) {
            continue;
        }
        let scope_name = text(row, "scope_type");
        let what = format!("{} on {scope_name} {scope_uuid}", text(row, "role_name"));
        let scope_type = match ContentType::parse(&scope_name) {
            Some(kind @ (ContentType::Customer | ContentType::Project)) => kind,
            _ => {
                let why = format!("roles on {scope_name} scopes are not served here");
                snapshot
                    .skipped
                    .push(skipped(Kind::EndedGrant, format!("grant {what}"), why));
                continue;
            }
        };
        let granter = field(row, "created_by_username")
            .and_then(Value::as_str)
            .and_then(|name| by_username.get(name))
            .map(|g| g.uuid);
        let expiration_time = timestamp(row, "expiration_time")?;
        let grant = Grant {
            uuid: Id::derived(&format!(
                "waldur-grant:{user}:{scope_name}:{scope_uuid}:{role}:{created}"
            )),
            user_uuid: user,
            role_uuid: role,
            scope_type,
            scope_uuid,
            customer_uuid: customer_of.get(&scope_uuid).copied().unwrap_or(scope_uuid),
            created,
            created_by: granter,
            expiration_time: expiration_time.clone(),
        };
        snapshot.ended.push(Member {
            names: names(&user, granter.as_ref()),
            grant,
            // Waldur ends a grant by setting its expiration to the moment it ended.
            ended: Some(expiration_time.unwrap_or_else(|| time::storage(now))),
        });
    }

    let roles: HashMap<Id, &Role> = snapshot.roles.iter().map(|r| (r.uuid, r)).collect();
    for row in &listings.invitations {
        let invitation_uuid = uuid_of(row, "uuid")?;
        let what = format!("invitation {invitation_uuid}");
        let creator = by_username.get(text(row, "created_by_username").as_str());
        let scope_type = ContentType::parse(&text(row, "scope_type"));
        let (Some(creator), Some(scope_type)) = (creator, scope_type) else {
            let why = "its creator is not among the users, or its scope type is not served here";
            snapshot.skipped.push(skipped(Kind::Invitation, what, why));
            continue;
        };
        let role = field(row, "role")
            .and_then(Value::as_str)
            .and_then(|r| Id::from_reference(r, "roles"))
            .ok_or_else(|| Error::rejected(format!("an invitation without a role: {row}")))?;
        let project_role = field(row, "project_role")
            .and_then(Value::as_str)
            .and_then(|r| Id::from_reference(r, "roles"));
        let created = required_timestamp(row, "created")?;
        let expiry = match timestamp(row, "expires")? {
            Some(expires) => Some(expires),
            None => time::parse_stored(&created)
                .map(|t| time::storage(&(t + super::dump::WALDUR_INVITATION_LIFETIME))),
        };
        snapshot.invitations.push(Invitation {
            uuid: invitation_uuid,
            scope_type,
            scope_uuid: uuid_of(row, "scope_uuid")?,
            customer_uuid: uuid_of(row, "customer_uuid")?,
            role_uuid: roles.get(&role).map_or(role, |r| r.uuid),
            project_role_uuid: project_role,
            auto_approve: flag(row, "auto_approve"),
            auto_create_project: flag(row, "auto_create_project"),
            project_name_template: field(row, "project_name_template")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
            custom_text: text(row, "custom_text"),
            allow_multiple_requests: flag(row, "allow_multiple_requests"),
            created,
            created_by: creator.uuid,
            created_by_username: creator.username.clone(),
            created_by_full_name: creator.full_name(),
            is_active: flag(row, "is_active"),
            expiry,
            edited_by: None,
        });
    }
    let invitations: HashMap<Id, &Invitation> = snapshot.invitations.iter().map(|i| (i.uuid, i)).collect();
    for row in &listings.requests {
        let request_uuid = uuid_of(row, "uuid")?;
        let what = format!("request {request_uuid}");
        let state = match text(row, "state").as_str() {
            "draft" => State::Draft,
            "pending" => State::Pending,
            "approved" => State::Approved,
            "rejected" => State::Rejected,
            "canceled" => State::Canceled,
            other => {
                return Err(Error::rejected(format!(
                    "request {request_uuid}: state {other:?}"
                )));
            }
        };
        let invitation = field(row, "invitation")
            .and_then(Value::as_str)
            .and_then(|i| Id::from_reference(i, "user-group-invitations"))
            .and_then(|i| invitations.get(&i));
        let requester = by_username.get(text(row, "created_by_username").as_str());
        let (Some(invitation), Some(requester)) = (invitation, requester) else {
            let why = "its invitation or requester is not among those read";
            snapshot.skipped.push(skipped(Kind::Request, what, why));
            continue;
        };
        let reviewer = field(row, "reviewed_by_username")
            .and_then(Value::as_str)
            .and_then(|name| by_username.get(name));
        snapshot.requests.push(PermissionRequest {
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
            reviewed_by_full_name: reviewer.map(|r| r.full_name()),
            reviewed_at: timestamp(row, "reviewed_at")?,
            review_comment: field(row, "review_comment")
                .and_then(Value::as_str)
                .map(str::to_owned),
            scope_type: invitation.scope_type,
            scope_uuid: invitation.scope_uuid,
            customer_uuid: invitation.customer_uuid,
            role_uuid: invitation.role_uuid,
            project_uuid: None,
            project_name_template: invitation.project_name_template.clone(),
            invitation_expires: invitation.expiry.clone(),
        });
    }
    let mut reviews: Vec<(ContentType, &Value)> = listings
        .customer_reviews
        .iter()
        .map(|row| (ContentType::Customer, row))
        .collect();
    match &listings.project_reviews {
        Some(rows) => reviews.extend(rows.iter().map(|row| (ContentType::Project, row))),
        None => snapshot
            .notes
            .push("project permission reviews: the source does not serve them (404)".to_owned()),
    }
    for (scope_type, row) in reviews {
        let scope_field = if scope_type == ContentType::Customer {
            "customer_uuid"
        } else {
            "project_uuid"
        };
        let scope_uuid = uuid_of(row, scope_field)?;
        let reviewer = field(row, "reviewer_uuid")
            .and_then(Value::as_str)
            .and_then(Id::parse);
        snapshot.reviews.push(Review {
            uuid: uuid_of(row, "uuid")?,
            scope_type,
            scope_uuid,
            customer_uuid: customer_of.get(&scope_uuid).copied().unwrap_or(scope_uuid),
            is_pending: flag(row, "is_pending"),
            created: required_timestamp(row, "created")?,
            closed: timestamp(row, "closed")?,
            reviewer_uuid: reviewer,
            reviewer_full_name: field(row, "reviewer_full_name")
                .and_then(Value::as_str)
                .map(str::to_owned),
            last_reminded: None,
        });
    }
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Vec<Value> {
        serde_json::from_str(text).unwrap()
    }

    fn recorded(name: &str) -> String {
        let path = format!(
            "{}/../../shared/waldur-export/api/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(path).expect("the recorded API answers beside the repository")
    }

    #[test]
    fn links_are_followed_on_the_base() {
        let headers = recorded("users-page-2.headers");
        let link = headers
            .lines()
            .find_map(|line| line.strip_prefix("Link: "))
            .unwrap();
        let next = next_link(link).unwrap();
        assert_eq!(next, "http://127.0.0.1:8201/api/users/?page=3&page_size=2");
        assert_eq!(path_and_query(&next), "/api/users/?page=3&page_size=2");
        let last_page = r#"<http://h/api/users/?page_size=2>; rel="first", <http://h/api/users/?page=4&page_size=2>; rel="prev""#;
        assert_eq!(next_link(last_page), None);
    }

    #[test]
    fn ended_grants_are_those_no_scope_lists() {
        let mut listings = Listings {
            users: rows(&recorded("users.json")),
            customers: rows(&recorded("customers.json")),
            projects: rows(&recorded("projects.json")),
            roles: rows(&recorded("roles.json")),
            permissions: rows(&recorded("user-permissions.json")),
            ..Listings::default()
        };
        let genome = Id::parse("e23262341461459eabe79830d09a18e0").unwrap();
        listings.members.push((
            ContentType::Project,
            genome,
            rows(&recorded("project-genome-lab-list_users.json")),
        ));
        let snapshot = parse(&listings, &time::now()).unwrap();
        assert_eq!(snapshot.grants.len(), 2);
        // Ivan's revoked grant, and those of the scopes whose members were not given here.
        let ivan = snapshot
            .ended
            .iter()
            .find(|m| m.names.user_username == "ivan")
            .unwrap();
        assert_eq!(ivan.ended.as_deref(), Some("2026-12-01T22:51:13.774999Z"));
        assert_eq!(ivan.names.created_by_username.as_deref(), Some("stella"));
        let again = parse(&listings, &time::now()).unwrap();
        assert_eq!(
            again.ended.iter().map(|m| m.grant.uuid).collect::<Vec<_>>(),
            snapshot.ended.iter().map(|m| m.grant.uuid).collect::<Vec<_>>(),
            "the uuid of an ended grant is the same every time"
        );
        assert!(
            snapshot
                .users
                .iter()
                .all(|u| u.token.is_none() && u.user.password_hash.is_none())
        );
    }
}
