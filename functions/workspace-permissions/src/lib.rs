//! The Syntho-style family: session login (`/api/v1/auth/`), workspaces (`/api/v1/workspaces/`)
//! and their permissions (`/api/v1/workspace_permissions/`, including `transfer/`). Both the
//! `sessionid` cookie and `Authorization: Token` authenticate.

use lambda_http::http::header::SET_COOKIE;
use lambda_http::http::{HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::{Map, Value, json};

use shared::auth::{AuthUser, Principal};
use shared::error::{FIELD_REQUIRED, FieldErrors};
use shared::http::{self, ApiRequest};
use shared::page::{self, Page, PageRequest};
use shared::sessions;
use shared::time;
use shared::users::{self, User};
use shared::validate;
use shared::workspaces::{self, Permission, Role, Workspace};
use shared::{Context, Error, Result};

const NOT_FOUND_WORKSPACE: &str = "Workspace";
const NOT_FOUND_PERMISSION: &str = "WorkspacePermission";

pub async fn handle(ctx: &Context, request: Request) -> Response<Body> {
    http::respond(request, async |request| route(ctx, request).await).await
}

async fn route(ctx: &Context, request: &ApiRequest) -> Result<Response<Body>> {
    let segments = request.segments().ok_or_else(http::no_route)?;
    let method = &request.method;
    let now = time::now();
    // A permission the path names by its integer id is looked up beside the credentials
    // (nothing of it is used before they are checked).
    let named_permission = async {
        match (segments.as_slice(), method.clone()) {
            (
                ["api", "v1", "workspace_permissions", pk],
                Method::GET | Method::HEAD | Method::PATCH | Method::DELETE,
            ) if *pk != "transfer" => match parse_id(pk, NOT_FOUND_PERMISSION) {
                Ok(pk) => workspaces::permission_by_pk(&ctx.store, pk).await,
                Err(_) => Ok(None),
            },
            _ => Ok(None),
        }
    };
    let (principal, named_permission) = tokio::join!(
        sessions::principal(&ctx.store, request.credentials(), request.header("cookie"), &now),
        named_permission
    );
    match segments.as_slice() {
        ["api", "v1", "auth"] => match *method {
            Method::GET | Method::HEAD => Ok(http::json(
                StatusCode::OK,
                &json!({
                    "username_password_enabled": true,
                    "oidc_providers": [],
                    "session_timeout": sessions::TIMEOUT.num_seconds(),
                }),
            )),
            Method::POST => login(ctx, request, principal).await,
            Method::DELETE => logout(ctx, request, principal?).await,
            _ => Err(http::method_not_allowed(
                request,
                &["GET", "POST", "DELETE", "HEAD"],
            )),
        },
        rest => {
            let principal = principal?;
            let user = principal.require_user()?;
            match (rest, method.clone()) {
                (["api", "v1", "workspaces"], Method::GET | Method::HEAD) => {
                    list_workspaces(ctx, request, user).await
                }
                (["api", "v1", "workspaces"], Method::POST) => create_workspace(ctx, request, user).await,
                (["api", "v1", "workspaces", id], Method::GET | Method::HEAD) => {
                    let (workspace, permissions) = visible(ctx, user, id, NOT_FOUND_WORKSPACE).await?;
                    Ok(http::json(
                        StatusCode::OK,
                        &workspace_json(&workspace, &permissions),
                    ))
                }
                (["api", "v1", "workspaces", id], Method::DELETE) => delete_workspace(ctx, user, id).await,
                (["api", "v1", "workspace_permissions"], Method::GET | Method::HEAD) => {
                    list_permissions(ctx, request, user).await
                }
                (["api", "v1", "workspace_permissions"], Method::POST) => {
                    create_permission(ctx, request, user).await
                }
                (["api", "v1", "workspace_permissions", "transfer"], Method::PATCH) => {
                    transfer(ctx, request, user).await
                }
                (["api", "v1", "workspace_permissions", pk], Method::GET | Method::HEAD) => {
                    let (_, permission) = visible_permission(ctx, user, pk, named_permission?).await?;
                    Ok(http::json(StatusCode::OK, &permission_json(&permission)))
                }
                (["api", "v1", "workspace_permissions", pk], Method::PATCH) => {
                    update_permission(ctx, request, user, pk, named_permission?).await
                }
                (["api", "v1", "workspace_permissions", pk], Method::DELETE) => {
                    delete_permission(ctx, user, pk, named_permission?).await
                }
                (["api", "v1", "workspaces" | "workspace_permissions", ..], _) => Err(
                    http::method_not_allowed(request, &["GET", "POST", "PATCH", "DELETE", "HEAD"]),
                ),
                _ => Err(http::no_route()),
            }
        }
    }
}

// --- session login ---------------------------------------------------------------------------

/// `POST /api/v1/auth/ {email, password}`: 201 with the session cookie. A stale session cookie
/// sent along is refused (401), as Syntho does.
async fn login(ctx: &Context, request: &ApiRequest, principal: Result<Principal>) -> Result<Response<Body>> {
    // Credentials sent along with a login must still be valid: a bad token is a 401 here too.
    principal?;
    let body = request.json()?;
    let empty = Map::new();
    let object = validate::object(body.as_ref(), &empty)?;
    let mut errors = FieldErrors::default();
    let email = validate::string(object, "email", 255, true, false, &mut errors);
    if email.as_deref().is_some_and(|e| !validate::is_email(e)) {
        errors.add("email", "Enter a valid email address.");
    }
    let password = match object.get("password") {
        Some(Value::String(p)) if (8..=64).contains(&p.chars().count()) => Some(p.clone()),
        Some(Value::String(_)) => {
            errors.add("password", "Ensure this field has between 8 and 64 characters.");
            None
        }
        Some(_) => {
            errors.add("password", "Not a valid string.");
            None
        }
        None => {
            errors.add("password", FIELD_REQUIRED);
            None
        }
    };
    let (Some(email), Some(password)) = (email, password) else {
        return Err(Error::Invalid(errors));
    };
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    let (user, session) = sessions::login(&ctx.store, &email, &password, &time::now()).await?;
    let mut response = http::json(
        StatusCode::CREATED,
        &json!({"new_password_required": false, "pk": user.pk}),
    );
    if let Ok(cookie) = HeaderValue::from_str(&sessions::set_cookie(&session, request.is_secure())) {
        response.headers_mut().insert(SET_COOKIE, cookie);
    }
    Ok(response)
}

async fn logout(ctx: &Context, request: &ApiRequest, principal: Principal) -> Result<Response<Body>> {
    let user = principal.require_user()?;
    if let Some(session) = request.header("cookie").and_then(sessions::cookie_value) {
        sessions::logout(&ctx.store, user, session, &time::now()).await?;
    }
    let mut response = http::json(StatusCode::OK, &json!({"status": "OK"}));
    if let Ok(cookie) = HeaderValue::from_str(&sessions::clear_cookie(request.is_secure())) {
        response.headers_mut().insert(SET_COOKIE, cookie);
    }
    Ok(response)
}

// --- workspaces ------------------------------------------------------------------------------

async fn caller(ctx: &Context, user: &AuthUser) -> Result<User> {
    users::get(&ctx.store, &user.uuid)
        .await?
        .ok_or_else(|| Error::NotAuthenticated("User inactive or deleted.".into()))
}

fn parse_id(text: &str, model: &str) -> Result<i64> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| Error::not_found(model))
}

/// The workspace, if the caller holds a permission on it (or is an admin); else 404.
async fn visible(
    ctx: &Context,
    user: &AuthUser,
    id: &str,
    model: &str,
) -> Result<(Workspace, Vec<Permission>)> {
    let id = parse_id(id, model)?;
    let found = workspaces::get(&ctx.store, id).await?;
    found
        .filter(|(_, permissions)| user.is_staff || permissions.iter().any(|p| p.user_uuid == user.uuid))
        .ok_or_else(|| Error::not_found(model))
}

/// Only the owner (or an admin) shares, changes, removes or transfers.
fn require_owner(user: &AuthUser, permissions: &[Permission]) -> Result<()> {
    let owns = permissions
        .iter()
        .any(|p| p.role == Role::Owner && p.user_uuid == user.uuid);
    if owns || user.is_staff {
        Ok(())
    } else {
        Err(Error::PermissionDenied)
    }
}

fn workspace_json(workspace: &Workspace, permissions: &[Permission]) -> Value {
    json!({
        "id": workspace.id,
        "name": workspace.name,
        "owner": workspace.owner_user_pk,
        "created": time::wire_stored(&workspace.created),
        "permissions": permissions.iter().map(permission_json).collect::<Vec<_>>(),
    })
}

fn permission_json(permission: &Permission) -> Value {
    json!({
        "pk": permission.pk,
        "workspace": permission.workspace,
        "user": permission.user,
        "role": permission.role.as_str(),
        "data_access": permission.data_access,
    })
}

/// The workspaces the caller holds a permission on (all, for an admin), with their permissions.
/// The ids of the workspaces a user sees (staff: all), ascending.
async fn visible_workspace_ids(ctx: &Context, user: &AuthUser) -> Result<Vec<i64>> {
    let mut ids: Vec<i64> = if user.is_staff {
        workspaces::all(&ctx.store)
            .await?
            .into_iter()
            .map(|w| w.id)
            .collect()
    } else {
        workspaces::permissions_of(&ctx.store, &user.uuid)
            .await?
            .into_iter()
            .map(|p| p.workspace)
            .collect()
    };
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

async fn list_workspaces(ctx: &Context, request: &ApiRequest, user: &AuthUser) -> Result<Response<Body>> {
    let page_request = PageRequest::from_params(&request.params)?;
    // Only the page's workspaces are read.
    let page = page::paginate(visible_workspace_ids(ctx, user).await?, &page_request)?;
    let items = workspaces::get_many(&ctx.store, &page.items)
        .await?
        .iter()
        .map(|(w, p)| workspace_json(w, p))
        .collect();
    Ok(http::page(
        request,
        Page {
            items,
            number: page.number,
            pages: page.pages,
            total: page.total,
        },
    ))
}

async fn create_workspace(ctx: &Context, request: &ApiRequest, user: &AuthUser) -> Result<Response<Body>> {
    let body = request.json()?;
    let empty = Map::new();
    let object = validate::object(body.as_ref(), &empty)?;
    let mut errors = FieldErrors::default();
    let name = validate::string(object, "name", 255, true, false, &mut errors);
    let Some(name) = name else {
        return Err(Error::Invalid(errors));
    };
    let owner = caller(ctx, user).await?;
    let (workspace, permission) = workspaces::create(&ctx.store, user, &owner, &name, &time::now()).await?;
    let value = workspace_json(&workspace, &[permission]);
    Ok(http::created(
        &request.url(&format!("/api/v1/workspaces/{}/", workspace.id)),
        &value,
    ))
}

async fn delete_workspace(ctx: &Context, user: &AuthUser, id: &str) -> Result<Response<Body>> {
    let (workspace, permissions) = visible(ctx, user, id, NOT_FOUND_WORKSPACE).await?;
    require_owner(user, &permissions)?;
    workspaces::delete(&ctx.store, user, &workspace, &permissions, &time::now()).await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

// --- workspace permissions -------------------------------------------------------------------

async fn list_permissions(ctx: &Context, request: &ApiRequest, user: &AuthUser) -> Result<Response<Body>> {
    let page_request = PageRequest::from_params(&request.params)?;
    let workspace_filter = request
        .params
        .get("workspace")
        .and_then(|w| w.parse::<i64>().ok());
    let mut ids = visible_workspace_ids(ctx, user).await?;
    ids.retain(|id| workspace_filter.is_none_or(|wanted| *id == wanted));
    let permissions: Vec<Permission> = workspaces::get_many(&ctx.store, &ids)
        .await?
        .into_iter()
        .flat_map(|(_, permissions)| permissions)
        .collect();
    let page = page::paginate(permissions, &page_request)?;
    Ok(http::page(request, page.map(|p| permission_json(&p))))
}

/// The permission `pk` (`named`: what the lookup by `pk` beside the credentials found) with
/// its workspace as now, if `user` may see it.
async fn visible_permission(
    ctx: &Context,
    user: &AuthUser,
    pk: &str,
    named: Option<Permission>,
) -> Result<((Workspace, Vec<Permission>), Permission)> {
    let pk = parse_id(pk, NOT_FOUND_PERMISSION)?;
    let permission = named.ok_or_else(|| Error::not_found(NOT_FOUND_PERMISSION))?;
    let workspace = visible(ctx, user, &permission.workspace.to_string(), NOT_FOUND_PERMISSION).await?;
    let current = workspace
        .1
        .iter()
        .find(|p| p.pk == pk)
        .cloned()
        .ok_or_else(|| Error::not_found(NOT_FOUND_PERMISSION))?;
    Ok((workspace, current))
}

fn integer(
    object: &Map<String, Value>,
    field: &str,
    required: bool,
    errors: &mut FieldErrors,
) -> Option<i64> {
    match object.get(field) {
        None if required => {
            errors.add(field, FIELD_REQUIRED);
            None
        }
        None => None,
        Some(value) => {
            let number = value.as_i64().filter(|n| *n > 0);
            if number.is_none() {
                errors.add(field, "A valid integer is required.");
            }
            number
        }
    }
}

fn role_field(object: &Map<String, Value>, required: bool, errors: &mut FieldErrors) -> Option<Role> {
    match object.get("role") {
        None if required => {
            errors.add("role", FIELD_REQUIRED);
            None
        }
        None => None,
        Some(value) => {
            let role = value.as_str().and_then(Role::parse);
            if role.is_none() {
                errors.add(
                    "role",
                    format!(
                        "\"{}\" is not a valid choice.",
                        value.as_str().unwrap_or_default()
                    ),
                );
            }
            role
        }
    }
}

async fn create_permission(ctx: &Context, request: &ApiRequest, user: &AuthUser) -> Result<Response<Body>> {
    let body = request.json()?;
    let empty = Map::new();
    let object = validate::object(body.as_ref(), &empty)?;
    let mut errors = FieldErrors::default();
    let workspace = integer(object, "workspace", true, &mut errors);
    let target = integer(object, "user", true, &mut errors);
    let role = role_field(object, true, &mut errors);
    let data_access = validate::boolean(object, "data_access", &mut errors).unwrap_or(false);
    let (Some(workspace), Some(target), Some(role)) = (workspace, target, role) else {
        return Err(Error::Invalid(errors));
    };
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    let (workspace, permissions) = visible(ctx, user, &workspace.to_string(), NOT_FOUND_WORKSPACE)
        .await
        .map_err(|_| {
            Error::field(
                "workspace",
                format!("Invalid pk \"{workspace}\" - object does not exist."),
            )
        })?;
    require_owner(user, &permissions)?;
    let target = users::find_by_pk(&ctx.store, target).await?.ok_or_else(|| {
        Error::field(
            "user",
            format!("Invalid pk \"{target}\" - object does not exist."),
        )
    })?;
    let permission = workspaces::share(
        &ctx.store,
        user,
        &workspace,
        &target,
        role,
        data_access,
        &time::now(),
    )
    .await?;
    let location = request.url(&format!("/api/v1/workspace_permissions/{}/", permission.pk));
    Ok(http::created(&location, &permission_json(&permission)))
}

async fn update_permission(
    ctx: &Context,
    request: &ApiRequest,
    user: &AuthUser,
    pk: &str,
    named: Option<Permission>,
) -> Result<Response<Body>> {
    let ((workspace, permissions), current) = visible_permission(ctx, user, pk, named).await?;
    require_owner(user, &permissions)?;
    let body = request.json()?;
    let empty = Map::new();
    let object = validate::object(body.as_ref(), &empty)?;
    let mut errors = FieldErrors::default();
    let role = role_field(object, false, &mut errors);
    let data_access = validate::boolean(object, "data_access", &mut errors);
    for (field, value) in [("workspace", current.workspace), ("user", current.user)] {
        if let Some(given) = integer(object, field, false, &mut errors)
            && given != value
        {
            errors.add(
                field,
                "It cannot be changed; delete the permission and share again.",
            );
        }
    }
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    let updated = workspaces::update(
        &ctx.store,
        user,
        &workspace,
        &current,
        role,
        data_access,
        &time::now(),
    )
    .await?;
    Ok(http::json(StatusCode::OK, &permission_json(&updated)))
}

async fn delete_permission(
    ctx: &Context,
    user: &AuthUser,
    pk: &str,
    named: Option<Permission>,
) -> Result<Response<Body>> {
    let ((workspace, permissions), current) = visible_permission(ctx, user, pk, named).await?;
    require_owner(user, &permissions)?;
    workspaces::unshare(&ctx.store, user, &workspace, &current, &time::now()).await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

/// `PATCH transfer/ {role, workspaces, new_owner, data_access}`: all listed workspaces change
/// owner together, or none does (a workspace the caller does not own → 403).
async fn transfer(ctx: &Context, request: &ApiRequest, user: &AuthUser) -> Result<Response<Body>> {
    let body = request.json()?;
    let empty = Map::new();
    let object = validate::object(body.as_ref(), &empty)?;
    let mut errors = FieldErrors::default();
    let role = role_field(object, true, &mut errors);
    let data_access = validate::boolean(object, "data_access", &mut errors).unwrap_or(false);
    let new_owner = validate::string(object, "new_owner", 255, true, false, &mut errors);
    let ids: Option<Vec<i64>> = match object.get("workspaces") {
        Some(Value::Array(items)) if !items.is_empty() => {
            let ids: Option<Vec<i64>> = items.iter().map(|v| v.as_i64()).collect();
            if ids.is_none() {
                errors.add("workspaces", "A list of workspace ids is required.");
            }
            ids
        }
        Some(_) => {
            errors.add("workspaces", "A non-empty list of workspace ids is required.");
            None
        }
        None => {
            errors.add("workspaces", FIELD_REQUIRED);
            None
        }
    };
    let (Some(role), Some(new_owner), Some(mut ids)) = (role, new_owner, ids) else {
        return Err(Error::Invalid(errors));
    };
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    ids.sort_unstable();
    ids.dedup();
    // Authorization first: who owns no listed workspace learns nothing about the address.
    let mut listed = Vec::with_capacity(ids.len());
    for id in ids {
        let (workspace, permissions) = visible(ctx, user, &id.to_string(), NOT_FOUND_WORKSPACE).await?;
        let was_owner = permissions
            .iter()
            .any(|p| p.user_uuid == user.uuid && Some(p.user) == workspace.previous_owner_user_pk);
        match require_owner(user, &permissions) {
            // The caller owned it until a transfer that won the race against this one.
            Err(Error::PermissionDenied) if was_owner => {
                return Err(Error::Conflict(workspaces::TRANSFER_LOST.into()));
            }
            result => result?,
        }
        listed.push((workspace, permissions));
    }
    let new_owner = users::find_by_email(&ctx.store, &new_owner)
        .await?
        .filter(|u| u.is_active)
        .ok_or_else(|| Error::field("new_owner", "No user with this email address."))?;
    let result = workspaces::transfer(
        &ctx.store,
        user,
        &listed,
        &new_owner,
        role,
        data_access,
        &time::now(),
    )
    .await?;
    Ok(http::json(
        StatusCode::OK,
        &Value::Array(result.iter().map(permission_json).collect()),
    ))
}
