//! Customers and projects, the role grants on them (`add_user`, `update_user`, `delete_user`,
//! `list_users`), the other detail actions (`project_actions`), and the revoke and restore of a
//! grant by its row.

mod grant_rows;
mod project_actions;

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::{Map, Value, json};

use shared::auth::{self, AuthUser};
use shared::authz::{Access, Membership, RoleSet, ScopeRef};
use shared::error::{FIELD_REQUIRED, FieldErrors};
use shared::grants::{self, Member, NewGrant};
use shared::http::{self, ApiRequest};
use shared::ids::Id;
use shared::page::{self, Page, PageRequest, PageSelector, Params};
use shared::roles::{self, ContentType, Role};
use shared::scopes::{self, Customer, Project, Scope, ScopeInput};
use shared::time::{self, Timestamp};
use shared::users::{self, User};
use shared::{Context, Error, Result};

const COLLECTION: &[&str] = &["GET", "POST", "HEAD"];
const DETAIL: &[&str] = &["GET", "PUT", "PATCH", "DELETE", "HEAD"];
const MEMBER_ORDERING: [&str; 7] = [
    "created",
    "email",
    "expiration_time",
    "full_name",
    "native_name",
    "role",
    "username",
];
const DATETIME_FORMAT: &str = "Datetime has wrong format. Use one of these formats instead: \
                               YYYY-MM-DD, YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].";

pub async fn handle(ctx: &Context, request: Request) -> Response<Body> {
    http::respond(request, async |request| route(ctx, request).await).await
}

async fn route(ctx: &Context, request: &ApiRequest) -> Result<Response<Body>> {
    let method = &request.method;
    if let Some(["api", "user-permissions", pk, action @ ("revoke" | "restore")]) =
        request.segments().as_deref()
        && *method == Method::POST
    {
        // The row is read beside the credentials (nothing of it is used before they are checked).
        let row = async {
            match Id::parse(pk) {
                Some(uuid) => grants::member_by_uuid(&ctx.store, &uuid).await,
                None => Ok(None),
            }
        };
        let (principal, row) = tokio::try_join!(auth::authenticate(&ctx.store, request.credentials()), row)?;
        let action = if *action == "revoke" {
            Membership::Delete
        } else {
            Membership::Create
        };
        return grant_rows::revoke_or_restore(ctx, request, principal.require_user()?, pk, row, action).await;
    }
    let principal = auth::authenticate(&ctx.store, request.credentials()).await?;
    let user = principal.require_user()?;
    let segments = request.segments().ok_or_else(http::no_route)?;
    let kind = |name: &str| match name {
        "customers" => Some(ContentType::Customer),
        "projects" => Some(ContentType::Project),
        _ => None,
    };
    match segments.as_slice() {
        ["api", "user-permissions", _, "revoke" | "restore"] => {
            Err(http::method_not_allowed(request, &["POST"]))
        }
        ["api", collection] if kind(collection).is_some() => {
            let kind = kind(collection).unwrap_or(ContentType::Customer);
            match *method {
                Method::GET | Method::HEAD => list_scopes(ctx, request, user, kind).await,
                Method::POST => create_scope(ctx, request, user, kind).await,
                _ => Err(http::method_not_allowed(request, COLLECTION)),
            }
        }
        ["api", collection, uuid] if kind(collection).is_some() => {
            let kind = kind(collection).unwrap_or(ContentType::Customer);
            match *method {
                Method::GET | Method::HEAD => retrieve_scope(ctx, request, user, kind, uuid).await,
                Method::PUT | Method::PATCH => update_scope(ctx, request, user, kind, uuid).await,
                Method::DELETE => delete_scope(ctx, user, kind, uuid).await,
                _ => Err(http::method_not_allowed(request, DETAIL)),
            }
        }
        ["api", collection, uuid, action] if kind(collection).is_some() => {
            let kind = kind(collection).unwrap_or(ContentType::Customer);
            match (*action, method) {
                ("list_users", &Method::GET | &Method::HEAD) => {
                    list_users(ctx, request, user, kind, uuid).await
                }
                ("add_user", &Method::POST) => {
                    change_membership(ctx, request, user, kind, uuid, Membership::Create).await
                }
                ("update_user", &Method::POST) => {
                    change_membership(ctx, request, user, kind, uuid, Membership::Update).await
                }
                ("delete_user", &Method::POST) => {
                    change_membership(ctx, request, user, kind, uuid, Membership::Delete).await
                }
                ("users", &Method::GET | &Method::HEAD) if kind == ContentType::Customer => {
                    customer_users(ctx, request, user, uuid).await
                }
                ("contact", &Method::POST) if kind == ContentType::Customer => {
                    project_actions::contact(ctx, request, user, uuid).await
                }
                ("other_users", &Method::GET | &Method::HEAD) if kind == ContentType::Project => {
                    project_actions::other_users(ctx, request, user, uuid).await
                }
                ("set_slug", &Method::POST) if kind == ContentType::Project => {
                    project_actions::set_slug(ctx, request, user, uuid).await
                }
                ("sync_user_roles", &Method::POST) if kind == ContentType::Project => {
                    project_actions::sync_user_roles(ctx, user, uuid).await
                }
                ("recover", &Method::POST) if kind == ContentType::Project => {
                    project_actions::recover(ctx, user, uuid).await
                }
                ("move_project", &Method::POST) if kind == ContentType::Project => {
                    project_actions::move_project(ctx, request, user, uuid).await
                }
                ("other_users", _) => Err(http::method_not_allowed(request, &["GET", "HEAD"])),
                ("contact" | "set_slug" | "sync_user_roles" | "recover" | "move_project", _) => {
                    Err(http::method_not_allowed(request, &["POST"]))
                }
                ("list_users" | "users", _) => Err(http::method_not_allowed(request, &["GET", "HEAD"])),
                ("add_user" | "update_user" | "delete_user", _) => {
                    Err(http::method_not_allowed(request, &["POST"]))
                }
                _ => Err(http::no_route()),
            }
        }
        _ => Err(http::no_route()),
    }
}

fn model(kind: ContentType) -> &'static str {
    if kind == ContentType::Customer {
        "Customer"
    } else {
        "Project"
    }
}

/// The caller's standing and the scope, read in one request; an unknown, malformed or invisible
/// scope is the same 404.
async fn visible_scope(
    ctx: &Context,
    user: &AuthUser,
    kind: ContentType,
    uuid: &str,
) -> Result<(Access, Scope)> {
    let uuid = Id::parse(uuid).ok_or_else(|| Error::not_found(model(kind)))?;
    let key = (scopes::partition(kind, &uuid), "#META".to_owned());
    let (access, mut fetched) = Access::load_with(
        &ctx.store,
        &ctx.roles,
        user,
        &time::now(),
        std::slice::from_ref(&key),
    )
    .await?;
    let scope = fetched
        .take_item(&key.0, &key.1)
        .map(|item| scopes::scope_from_item(kind, item))
        .transpose()?;
    match scope {
        Some(scope) if access.can_see(&ScopeRef::from(&scope)) => Ok((access, scope)),
        _ => Err(Error::not_found(model(kind))),
    }
}

// --- customers and projects ---------------------------------------------------------------

async fn list_scopes(
    ctx: &Context,
    request: &ApiRequest,
    user: &AuthUser,
    kind: ContentType,
) -> Result<Response<Body>> {
    let page_request = PageRequest::from_params(&request.params)?;
    let access = Access::load(&ctx.store, &ctx.roles, user, &time::now()).await?;
    let name = request.params.get("name").map(str::to_lowercase);
    let named = |text: &str| {
        name.as_ref()
            .is_none_or(|n| text.to_lowercase().contains(n.as_str()))
    };
    let customer_filter = request.params.get("customer").and_then(Id::parse);
    if kind == ContentType::Customer {
        if name.is_none() && access.sees_everything() {
            let page = scopes::customers_listing(&ctx.store, user, &page_request).await?;
            return Ok(http::page(request, page.map(|c| customer_json(request, &c))));
        }
        let mut customers = if access.sees_everything() {
            scopes::all_customers(&ctx.store).await?
        } else {
            scopes::customers_by_id(&ctx.store, &access.connected_customers()).await?
        };
        customers.retain(|c| named(&c.name));
        customers.sort_by(|a, b| a.name.cmp(&b.name).then(a.created.cmp(&b.created)));
        let page = page::paginate(customers, &page_request)?.map(|c| customer_json(request, &c));
        return Ok(http::page(request, page));
    }
    if name.is_none() {
        if let Some(customer) = one_customers_projects(&access, customer_filter) {
            let (customer, page) =
                scopes::projects_of_customer_listing(&ctx.store, &customer, &page_request).await?;
            let page = page.map(|p| project_json(request, &p, customer.as_ref()));
            return Ok(http::page(request, page));
        }
        if access.sees_everything() {
            let page = scopes::projects_listing(&ctx.store, user, &page_request).await?;
            return projects_page(ctx, request, page).await;
        }
    }
    let mut projects = if access.sees_everything() {
        scopes::all_projects(&ctx.store).await?
    } else {
        let customers = access.customers_with_customer_role();
        let direct = access.direct_projects();
        let (mut projects, of_customers) = tokio::try_join!(
            scopes::projects_by_id(&ctx.store, &direct),
            shared::store::concurrently(
                customers
                    .iter()
                    .map(|customer| scopes::projects_of(&ctx.store, customer))
                    .collect()
            ),
        )?;
        projects.extend(of_customers.into_iter().flatten());
        projects.sort_by_key(|p| p.uuid);
        projects.dedup_by_key(|p| p.uuid);
        projects
    };
    projects.retain(|p| named(&p.name) && customer_filter.is_none_or(|c| p.customer_uuid == c));
    projects.sort_by(|a, b| a.name.cmp(&b.name).then(a.created.cmp(&b.created)));
    projects_page(ctx, request, page::paginate(projects, &page_request)?).await
}

/// The customer whose projects are exactly the projects list's rows, where there is one: the
/// `customer` filter's, if the caller sees all its projects (staff, support, or a role in the
/// customer), or else the one customer the caller holds roles in, at customer level. That list
/// is a page of one index partition.
fn one_customers_projects(access: &Access, customer_filter: Option<Id>) -> Option<Id> {
    let sees_all_of =
        |customer: &Id| access.sees_everything() || access.customers_with_customer_role().contains(customer);
    match customer_filter {
        Some(customer) => sees_all_of(&customer).then_some(customer),
        None if access.sees_everything() => None,
        None => match (
            access.customers_with_customer_role().as_slice(),
            access.connected_customers().as_slice(),
        ) {
            ([only], [connected]) if only == connected => Some(*only),
            _ => None,
        },
    }
}

/// Renders a page of projects with the customers they name (one BatchGetItem).
async fn projects_page(
    ctx: &Context,
    request: &ApiRequest,
    page: page::Page<Project>,
) -> Result<Response<Body>> {
    let mut customer_ids: Vec<Id> = page.items.iter().map(|p| p.customer_uuid).collect();
    customer_ids.sort();
    customer_ids.dedup();
    let customers = scopes::customers_by_id(&ctx.store, &customer_ids).await?;
    let page = page.map(|p| {
        let customer = customers.iter().find(|c| c.uuid == p.customer_uuid);
        project_json(request, &p, customer)
    });
    Ok(http::page(request, page))
}

async fn create_scope(
    ctx: &Context,
    request: &ApiRequest,
    user: &AuthUser,
    kind: ContentType,
) -> Result<Response<Body>> {
    let now = time::now();
    let body = request.json()?;
    if kind == ContentType::Customer {
        if !user.is_staff {
            return Err(Error::PermissionDenied);
        }
        let input = ScopeInput::parse(body.as_ref(), true, true)?;
        let customer = scopes::create_customer(&ctx.store, user, input, &now).await?;
        let value = customer_json(request, &customer);
        return Ok(http::created(value["url"].as_str().unwrap_or_default(), &value));
    }
    let reference = body.as_ref().and_then(|b| b.get("customer"));
    // The caller's grants and the customer the body names, in one read (the token's, when it
    // brought them).
    let named: Vec<(String, String)> = reference
        .and_then(Value::as_str)
        .and_then(|text| Id::from_reference(text, "customers"))
        .map(|uuid| {
            (
                scopes::partition(ContentType::Customer, &uuid),
                "#META".to_owned(),
            )
        })
        .into_iter()
        .collect();
    let (access, mut fetched) = Access::load_with(&ctx.store, &ctx.roles, user, &now, &named).await?;
    let input = ScopeInput::parse(body.as_ref(), true, false);
    let customer = match reference {
        None | Some(Value::Null) => Err(Error::field("customer", FIELD_REQUIRED)),
        Some(_) => {
            let found = match named.first().and_then(|(pk, sk)| fetched.take_item(pk, sk)) {
                Some(item) => match scopes::scope_from_item(ContentType::Customer, item)? {
                    Scope::Customer(customer) => Some(customer),
                    Scope::Project(_) => None,
                },
                None => None,
            };
            found
                .filter(|c| access.can_see(&ScopeRef::from(&Scope::Customer(c.clone()))))
                .ok_or_else(|| Error::field("customer", "Invalid hyperlink - Object does not exist."))
        }
    };
    let (input, customer) = merge_errors(input, customer)?;
    let customer_ref = ScopeRef::from(&Scope::Customer(customer.clone()));
    if !access.has_permission("PROJECT.CREATE", &customer_ref) {
        return Err(Error::PermissionDenied);
    }
    let project = scopes::create_project(&ctx.store, user, &customer, input, &now).await?;
    let value = project_json(request, &project, Some(&customer));
    Ok(http::created(value["url"].as_str().unwrap_or_default(), &value))
}

/// Both results, or all of their field errors together.
fn merge_errors<A, B>(a: Result<A>, b: Result<B>) -> Result<(A, B)> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(Error::Invalid(mut first)), Err(Error::Invalid(second))) => {
            for (field, messages) in second.iter() {
                for message in messages {
                    first.add(field, message.clone());
                }
            }
            Err(Error::Invalid(first))
        }
        (Err(err), _) | (_, Err(err)) => Err(err),
    }
}

async fn retrieve_scope(
    ctx: &Context,
    request: &ApiRequest,
    user: &AuthUser,
    kind: ContentType,
    uuid: &str,
) -> Result<Response<Body>> {
    let (_, scope) = visible_scope(ctx, user, kind, uuid).await?;
    Ok(http::json(
        StatusCode::OK,
        &scope_json(ctx, request, &scope).await?,
    ))
}

async fn scope_json(ctx: &Context, request: &ApiRequest, scope: &Scope) -> Result<Value> {
    Ok(match scope {
        Scope::Customer(customer) => customer_json(request, customer),
        Scope::Project(project) => {
            let customer = scopes::get_customer(&ctx.store, &project.customer_uuid).await?;
            project_json(request, project, customer.as_ref())
        }
    })
}

async fn update_scope(
    ctx: &Context,
    request: &ApiRequest,
    user: &AuthUser,
    kind: ContentType,
    uuid: &str,
) -> Result<Response<Body>> {
    let (access, scope) = visible_scope(ctx, user, kind, uuid).await?;
    let permission = if kind == ContentType::Customer {
        "CUSTOMER.UPDATE"
    } else {
        "PROJECT.UPDATE"
    };
    if !access.has_permission(permission, &ScopeRef::from(&scope)) {
        return Err(Error::PermissionDenied);
    }
    let input = ScopeInput::parse(
        request.json()?.as_ref(),
        request.method == Method::PUT,
        kind == ContentType::Customer,
    )?;
    let now = time::now();
    let answer = match &scope {
        Scope::Customer(c) => customer_json(
            request,
            &scopes::update_customer(&ctx.store, user, c, input, &now).await?,
        ),
        Scope::Project(p) => {
            // A project keeps its customer here (a move is its own action): the customer's names
            // for the answer are read while the write goes, and answered only after it.
            let (updated, customer) = tokio::join!(
                scopes::update_project(&ctx.store, user, p, input, &now),
                scopes::get_customer(&ctx.store, &p.customer_uuid)
            );
            project_json(request, &updated?, customer?.as_ref())
        }
    };
    Ok(http::json(StatusCode::OK, &answer))
}

async fn delete_scope(
    ctx: &Context,
    user: &AuthUser,
    kind: ContentType,
    uuid: &str,
) -> Result<Response<Body>> {
    let (access, scope) = visible_scope(ctx, user, kind, uuid).await?;
    let now = time::now();
    match &scope {
        Scope::Customer(customer) => {
            if !user.is_staff {
                return Err(Error::PermissionDenied);
            }
            scopes::delete_customer(&ctx.store, user, customer, &now).await?;
        }
        Scope::Project(project) => {
            if !access.has_permission("PROJECT.DELETE", &ScopeRef::from(&scope)) {
                return Err(Error::PermissionDenied);
            }
            scopes::delete_project(&ctx.store, user, project, &now).await?;
        }
    }
    Ok(http::empty(StatusCode::NO_CONTENT))
}

fn customer_json(request: &ApiRequest, customer: &Customer) -> Value {
    json!({
        "url": request.url(&format!("/api/customers/{}/", customer.uuid)),
        "uuid": customer.uuid,
        "created": time::wire_stored(&customer.created),
        "name": customer.name,
        "native_name": customer.native_name,
        "abbreviation": customer.abbreviation,
        "display_name": if customer.abbreviation.is_empty() { &customer.name } else { &customer.abbreviation },
        "description": customer.description,
        "email": customer.email,
        "contact_details": customer.contact_details,
        "phone_number": customer.phone_number,
        "homepage": customer.homepage,
        "notification_emails": customer.notification_emails,
        "projects_count": customer.project_count,
        "users_count": customer.users_count,
    })
}

fn project_json(request: &ApiRequest, project: &Project, customer: Option<&Customer>) -> Value {
    json!({
        "url": request.url(&format!("/api/projects/{}/", project.uuid)),
        "uuid": project.uuid,
        "name": project.name,
        "slug": project.slug,
        "customer": request.url(&format!("/api/customers/{}/", project.customer_uuid)),
        "customer_uuid": project.customer_uuid,
        "customer_name": customer.map(|c| c.name.as_str()),
        "customer_native_name": customer.map(|c| c.native_name.as_str()),
        "customer_abbreviation": customer.map(|c| c.abbreviation.as_str()),
        "description": project.description,
        "created": time::wire_stored(&project.created),
    })
}

// --- role grants --------------------------------------------------------------------------

/// A validated `add_user` / `update_user` / `delete_user` body.
struct MembershipBody {
    user: User,
    role: Role,
    expiration_time: Option<Timestamp>,
}

/// Checks the body the way Waldur does: every field problem at once, before any permission
/// check (so a caller without rights who sends a bad role learns about the role first).
async fn membership_body(
    ctx: &Context,
    caller: &AuthUser,
    body: Option<&Value>,
    roles: &RoleSet,
    now: &Timestamp,
) -> Result<MembershipBody> {
    let empty = Map::new();
    let object = match body {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(object)) => object,
        Some(_) => return Err(Error::non_field("Invalid data. Expected a dictionary.")),
    };
    let mut errors = FieldErrors::default();
    let role = match object.get("role") {
        None | Some(Value::Null) => {
            errors.add("role", FIELD_REQUIRED);
            None
        }
        Some(value) => {
            let found = value.as_str().and_then(|text| roles.find(text.trim())).cloned();
            if found.is_none() {
                errors.add("role", "Role is not found.");
            }
            found
        }
    };
    let user = match object.get("user") {
        None | Some(Value::Null) => {
            errors.add("user", FIELD_REQUIRED);
            None
        }
        Some(value) => match value.as_str().and_then(|text| Id::from_reference(text, "users")) {
            None => {
                errors.add("user", "Must be a valid UUID.");
                None
            }
            Some(uuid) => {
                let found = users::get_for(&ctx.store, caller, &uuid).await?;
                if found.is_none() {
                    errors.add("user", "User is not found.");
                }
                found
            }
        },
    };
    let expiration_time = match object.get("expiration_time") {
        None | Some(Value::Null) => None,
        Some(value) => match value.as_str().and_then(time::parse_input) {
            None => {
                errors.add("expiration_time", DATETIME_FORMAT);
                None
            }
            Some(expires) if expires <= *now => {
                errors.add(
                    "expiration_time",
                    "Expiration time should be greater than current time.",
                );
                None
            }
            Some(expires) => Some(expires),
        },
    };
    match (user, role) {
        (Some(user), Some(role)) if errors.is_empty() => Ok(MembershipBody {
            user,
            role,
            expiration_time,
        }),
        _ => Err(Error::Invalid(errors)),
    }
}

async fn change_membership(
    ctx: &Context,
    request: &ApiRequest,
    user: &AuthUser,
    kind: ContentType,
    uuid: &str,
    action: Membership,
) -> Result<Response<Body>> {
    let (access, scope) = visible_scope(ctx, user, kind, uuid).await?;
    let now = time::now();
    let body = membership_body(ctx, user, request.json()?.as_ref(), access.roles(), &now).await?;
    let scope_ref = ScopeRef::from(&scope);
    access.may_manage(action, &scope_ref, &body.user.uuid, &body.role)?;
    let new = NewGrant {
        scope: &scope,
        user: &body.user,
        role: &body.role,
        expiration_time: body.expiration_time,
        granted_by: Some(user),
    };
    let expiration = |grant: &grants::Grant| json!({ "expiration_time": grant.expiration_time.as_deref().map(time::wire_stored) });
    match action {
        Membership::Create => {
            let grant = grants::grant(&ctx.store, &new, &now).await?;
            Ok(http::json(StatusCode::CREATED, &expiration(&grant)))
        }
        Membership::Update => {
            // The user item read with the body names the grant (its `held` map is written with
            // every grant); the update is conditioned on it being that grant still.
            let existing = held_grant(&body.user, &scope, &body.role)
                .filter(|g| g.is_active_at(&now))
                .ok_or_else(|| Error::non_field("User does not have this role in this scope."))?;
            let grant = grants::set_expiration(&ctx.store, &existing, &new, &now).await?;
            Ok(http::json(StatusCode::OK, &expiration(&grant)))
        }
        Membership::Delete => {
            // The user item read with the body names the grant; its member row (with who
            // granted it) goes to the history.
            if let Some(held) = held_grant(&body.user, &scope, &body.role)
                && let Some(existing) = grants::member_of(&ctx.store, &held).await?
            {
                grants::revoke(&ctx.store, &existing, &new, &now).await?;
            }
            Ok(http::empty(StatusCode::OK))
        }
    }
}

/// The grant of `role` on `scope` that `user`'s `held` map records.
fn held_grant(user: &User, scope: &Scope, role: &Role) -> Option<grants::Grant> {
    grants::held_by(user).into_iter().find(|g| {
        g.scope_type == scope.content_type() && g.scope_uuid == scope.uuid() && g.role_uuid == role.uuid
    })
}

/// `GET /api/customers/{uuid}/users/` (§3.11): every active user with an active role on the
/// customer or its projects, with their customer role and their projects of this customer.
/// Staff, support, and the customer's owners and support; other members 403 with an empty body.
async fn customer_users(
    ctx: &Context,
    request: &ApiRequest,
    user: &AuthUser,
    uuid: &str,
) -> Result<Response<Body>> {
    let page_request = PageRequest::from_params(&request.params)?;
    let ordering = request.params.ordering(&["concatenated_name"])?;
    let (access, scope) = visible_scope(ctx, user, ContentType::Customer, uuid).await?;
    let now = time::now();
    let roles = access.roles();
    let scope_ref = ScopeRef::from(&scope);
    let held_on_customer = |names: &[&str]| {
        access.grants().iter().any(|g| {
            g.scope_type == ContentType::Customer
                && g.scope_uuid == scope_ref.uuid
                && roles
                    .get(&g.role_uuid)
                    .is_some_and(|r| names.contains(&r.name.as_str()))
        })
    };
    if !(access.sees_everything() || held_on_customer(&["CUSTOMER.OWNER", "CUSTOMER.SUPPORT"])) {
        return Ok(http::empty(StatusCode::FORBIDDEN));
    }
    let (own, projects) = grants::members_of_customer(&ctx.store, &scope.uuid()).await?;
    let active = |m: &&Member| m.grant.is_active_at(&now);
    let mut ids: Vec<Id> = own
        .iter()
        .chain(projects.iter().flat_map(|(_, members)| members))
        .filter(active)
        .map(|m| m.grant.user_uuid)
        .collect();
    ids.sort();
    ids.dedup();
    let params = &request.params;
    let wanted = |key: &str| {
        params
            .get_all(key)
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let (project_roles, organization_roles) = (wanted("project_role"), wanted("organization_role"));
    let role_name = |m: &Member| {
        roles
            .get(&m.grant.role_uuid)
            .map(|r| r.name.clone())
            .unwrap_or_default()
    };
    let contains = |value: &str, key: &str| {
        params
            .get(key)
            .is_none_or(|needle| value.to_lowercase().contains(&needle.trim().to_lowercase()))
    };
    let mut rows: Vec<(String, Value)> = Vec::new();
    for member_user in users::by_ids(&ctx.store, &ids).await? {
        if !member_user.is_active {
            continue;
        }
        let mine = |m: &&Member| m.grant.user_uuid == member_user.uuid && m.grant.is_active_at(&now);
        let customer_role = own
            .iter()
            .filter(mine)
            .min_by(|a, b| a.grant.created.cmp(&b.grant.created));
        let project_rows: Vec<(&Project, &Member)> = projects
            .iter()
            .flat_map(|(project, members)| members.iter().filter(mine).map(move |m| (project, m)))
            .collect();
        let by_project_role = project_rows
            .iter()
            .any(|(_, m)| project_roles.contains(&role_name(m)));
        let by_organization_role = own
            .iter()
            .filter(mine)
            .any(|m| organization_roles.contains(&role_name(m)));
        let role_filtered = !project_roles.is_empty() || !organization_roles.is_empty();
        if role_filtered && !(by_project_role || by_organization_role) {
            continue;
        }
        if !(params.get("username").is_none_or(|u| member_user.username == u)
            && contains(&member_user.full_name(), "full_name")
            && contains(&member_user.email, "email")
            && contains(&member_user.native_name, "native_name")
            && params.get("user_keyword").is_none_or(|k| {
                [
                    member_user.full_name(),
                    member_user.username.clone(),
                    member_user.email.clone(),
                ]
                .iter()
                .any(|v| v.to_lowercase().contains(&k.to_lowercase()))
            }))
        {
            continue;
        }
        let sort = format!(
            "{}{}{}",
            member_user.first_name, member_user.last_name, member_user.username
        )
        .to_lowercase();
        let row = json!({
            "url": request.url(&format!("/api/users/{}/", member_user.uuid)),
            "uuid": member_user.uuid,
            "username": member_user.username,
            "full_name": member_user.full_name(),
            "email": member_user.email,
            "role": customer_role.map(|m| roles::legacy_name(&role_name(m)).to_owned()),
            "role_name": customer_role.map(role_name),
            "expiration_time": customer_role
                .and_then(|m| m.grant.expiration_time.as_deref())
                .map(time::wire_stored),
            "projects": project_rows
                .iter()
                .map(|(project, m)| json!({
                    "url": request.url(&format!("/api/projects/{}/", project.uuid)),
                    "uuid": project.uuid,
                    "name": project.name,
                    "role": roles::legacy_name(&role_name(m)),
                    "role_name": role_name(m),
                    "expiration_time": m.grant.expiration_time.as_deref().map(time::wire_stored),
                }))
                .collect::<Vec<_>>(),
            "image": null,
        });
        rows.push((sort, row));
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    if ordering.first().is_some_and(|(_, descending)| *descending) {
        rows.reverse();
    }
    let page = page::paginate(rows, &page_request)?;
    Ok(http::page(request, page.map(|(_, row)| row)))
}

/// The member filters of `list_users`.
struct MemberQuery {
    user: Option<Id>,
    roles: Vec<String>,
    username: Option<String>,
    full_name: Option<String>,
    native_name: Option<String>,
    search: Option<String>,
    ordering: Vec<(String, bool)>,
}

impl MemberQuery {
    fn from_params(params: &Params) -> Result<Self> {
        let text = |key: &str| {
            params
                .get(key)
                .map(|v| v.trim().to_lowercase())
                .filter(|v| !v.is_empty())
        };
        Ok(MemberQuery {
            // Waldur ignores a `user` that is not a uuid.
            user: params.get("user").and_then(Id::parse),
            roles: params.get_all("role").into_iter().map(str::to_owned).collect(),
            username: text("username"),
            full_name: text("full_name"),
            native_name: text("native_name"),
            search: text("search_string"),
            ordering: params.ordering(&MEMBER_ORDERING)?,
        })
    }

    fn is_plain(&self) -> bool {
        self.user.is_none()
            && self.roles.is_empty()
            && self.username.is_none()
            && self.full_name.is_none()
            && self.native_name.is_none()
            && self.search.is_none()
            && self.ordering.is_empty()
    }

    fn matches(&self, member: &Member, roles: &RoleSet) -> bool {
        let names = &member.names;
        let contains = |text: &str, needle: &Option<String>| {
            needle
                .as_ref()
                .is_none_or(|n| text.to_lowercase().contains(n.as_str()))
        };
        let role = roles.get(&member.grant.role_uuid);
        self.user.is_none_or(|u| member.grant.user_uuid == u)
            && (self.roles.is_empty()
                || self
                    .roles
                    .iter()
                    .any(|wanted| roles.find(wanted).is_some_and(|r| Some(r) == role)))
            && contains(&names.user_username, &self.username)
            && contains(&names.user_full_name, &self.full_name)
            && contains(&names.user_native_name, &self.native_name)
            && self.search.as_ref().is_none_or(|s| {
                [&names.user_full_name, &names.user_email, &names.user_username]
                    .iter()
                    .any(|field| field.to_lowercase().contains(s.as_str()))
            })
    }
}

/// Members of a scope. Without filters, a page costs one Query of the scope's partition (the
/// scope item, with the member counter, comes first); with filters all members are read.
async fn list_users(
    ctx: &Context,
    request: &ApiRequest,
    user: &AuthUser,
    kind: ContentType,
    uuid: &str,
) -> Result<Response<Body>> {
    let page_request = PageRequest::from_params(&request.params)?;
    let query = MemberQuery::from_params(&request.params)?;
    let scope_uuid = Id::parse(uuid).ok_or_else(|| Error::not_found(model(kind)))?;
    let now = time::now();
    let plain_page = match page_request.selector {
        PageSelector::Number(number) if query.is_plain() => Some(number),
        _ => None,
    };
    // A page number too large to multiply reads everything and then answers "Invalid page.".
    let limit = plain_page.and_then(|number| number.checked_mul(page_request.size));
    let (access, found) = tokio::try_join!(
        Access::load(&ctx.store, &ctx.roles, user, &now),
        grants::scope_with_members(&ctx.store, kind, &scope_uuid, limit)
    )?;
    let (scope, mut members) = match found {
        Some((scope, members)) if access.can_see(&ScopeRef::from(&scope)) => (scope, members),
        _ => return Err(Error::not_found(model(kind))),
    };
    // A grant past its expiration stays a row until the sweep, and the counter counts it: while
    // the scope has grants that can expire, the exact count and page need every row.
    let plain_page = plain_page.filter(|_| scope.expiring_count() == 0);
    if plain_page.is_none() && limit.is_some() {
        members = grants::scope_with_members(&ctx.store, kind, &scope_uuid, None)
            .await?
            .map(|(_, members)| members)
            .unwrap_or_default();
    }
    let roles = access.roles();
    let mut members: Vec<Member> = members
        .into_iter()
        .filter(|m| m.grant.is_active_at(&now))
        .collect();
    let page = match plain_page {
        Some(number) => {
            let total = usize::try_from(scope.member_count()).unwrap_or(0);
            let pages = total.div_ceil(page_request.size).max(1);
            if number > pages {
                return Err(Error::NotFound("Invalid page.".into()));
            }
            let items = members
                .into_iter()
                .skip((number - 1) * page_request.size)
                .take(page_request.size)
                .collect();
            Page {
                items,
                number,
                pages,
                total,
            }
        }
        None => {
            members.retain(|m| query.matches(m, roles));
            grants::sort_members(&mut members, &query.ordering, |uuid| {
                roles.get(uuid).map(|r| r.name.clone()).unwrap_or_default()
            });
            page::paginate(members, &page_request)?
        }
    };
    Ok(http::page(request, page.map(|m| member_json(&m, roles))))
}

fn member_json(member: &Member, roles: &RoleSet) -> Value {
    let grant = &member.grant;
    let role = roles.get(&grant.role_uuid);
    let mut value = json!({
        "uuid": grant.uuid,
        "created": time::wire_stored(&grant.created),
        "expiration_time": grant.expiration_time.as_deref().map(time::wire_stored),
        "role_name": role.map(|r| r.name.as_str()),
        "role_uuid": grant.role_uuid,
        "user_email": member.names.user_email,
        "user_full_name": member.names.user_full_name,
        "user_username": member.names.user_username,
        "user_uuid": grant.user_uuid,
        "user_image": null,
    });
    // Waldur leaves these out, rather than null, when nobody granted the role.
    if let (Some(object), Some(by)) = (value.as_object_mut(), grant.created_by) {
        object.insert(
            "created_by_full_name".into(),
            json!(member.names.created_by_full_name),
        );
        object.insert("created_by_uuid".into(), json!(by));
    }
    value
}
