//! `/api/users/` (with Waldur's `field=` selection, including `customer_permissions` and
//! `project_permissions`), `/api/users/me/`, `/api/users/{uuid}/refresh_token/`,
//! `change_password/`, `token/`, `remove_password/`, `change_email/`, `cancel_change_email/`,
//! `/api/users/confirm_email/`, `DELETE /api/users/{uuid}/`, and the password login and logout
//! `POST /api-auth/password/`, `POST /api-auth/logout/`.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::{Map, Value, json};

use shared::auth::{self, AuthUser};
use shared::authz::{self, Access, RoleSet, ScopeRef};
use shared::error::{FIELD_REQUIRED, FieldErrors};
use shared::grants::{self, Grant};
use shared::http::{self, ApiRequest};
use shared::ids::Id;
use shared::page::{self, PageRequest};
use shared::roles::{self, ContentType};
use shared::scopes::Directory;
use shared::time::{self, Timestamp};
use shared::users::{self, User, UserInput};
use shared::{Context, Error, Result};

/// The fields of a user on the wire, in order.
const FIELDS: &[&str] = &[
    "url",
    "uuid",
    "username",
    "full_name",
    "first_name",
    "last_name",
    "native_name",
    "preferred_language",
    "email",
    "is_staff",
    "is_support",
    "is_active",
    "date_joined",
    "customer_permissions",
    "project_permissions",
    "permissions",
    "token",
    "token_lifetime",
];
/// Shown only in the answer about the caller themself (Waldur's rule), never in a list.
const OWN_FIELDS: &[&str] = &["token", "token_lifetime"];
/// Shown only to staff and support, as in Waldur.
const PRIVILEGED_FIELDS: &[&str] = &["is_staff", "is_support", "is_active"];

pub async fn handle(ctx: &Context, request: Request) -> Response<Body> {
    http::respond(request, async |request| route(ctx, request).await).await
}

async fn route(ctx: &Context, request: &ApiRequest) -> Result<Response<Body>> {
    let segments = request.segments().ok_or_else(http::no_route)?;
    if segments == ["api-auth", "password"] {
        return match request.method {
            Method::POST => {
                // A bad token sent along with a login is refused like everywhere else (DRF).
                auth::authenticate(&ctx.store, request.credentials()).await?;
                password_login(ctx, request).await
            }
            _ => Err(http::method_not_allowed(request, &["POST"])),
        };
    }
    if segments == ["api", "users", "confirm_email"] {
        // The code mailed to the new address is the proof; no login needed (Waldur's rule).
        return match request.method {
            Method::POST => confirm_email(ctx, request).await,
            _ => Err(http::method_not_allowed(request, &["POST"])),
        };
    }
    let principal = auth::authenticate(&ctx.store, request.credentials()).await?;
    let caller = principal.require_user()?;
    let method = &request.method;
    match segments.as_slice() {
        ["api-auth", "logout"] => match *method {
            Method::POST => {
                users::logout(&ctx.store, caller, &time::now()).await?;
                Ok(http::empty(StatusCode::NO_CONTENT))
            }
            _ => Err(http::method_not_allowed(request, &["POST"])),
        },
        ["api", "users"] => match *method {
            Method::GET | Method::HEAD => list(ctx, request, caller).await,
            Method::POST => create(ctx, request, caller).await,
            _ => Err(http::method_not_allowed(request, &["GET", "POST", "HEAD"])),
        },
        ["api", "users", "me"] => match *method {
            Method::GET | Method::HEAD => {
                let mut response = retrieve(ctx, request, caller, &caller.uuid.to_string()).await?;
                // The official client counts `me` by HEAD, as a list of one.
                response
                    .headers_mut()
                    .insert("x-result-count", lambda_http::http::HeaderValue::from_static("1"));
                Ok(response)
            }
            _ => Err(http::method_not_allowed(request, &["GET", "HEAD"])),
        },
        ["api", "users", uuid] => match *method {
            Method::GET | Method::HEAD => retrieve(ctx, request, caller, uuid).await,
            Method::PUT | Method::PATCH => update(ctx, request, caller, uuid).await,
            Method::DELETE => delete(ctx, caller, uuid).await,
            _ => Err(http::method_not_allowed(
                request,
                &["GET", "PUT", "PATCH", "DELETE", "HEAD"],
            )),
        },
        ["api", "users", uuid, action] => match (*action, method) {
            ("token", &Method::GET | &Method::HEAD) => token(ctx, caller, uuid).await,
            ("token", _) => Err(http::method_not_allowed(request, &["GET", "HEAD"])),
            ("change_password", &Method::POST) => change_password(ctx, request, caller, uuid).await,
            ("refresh_token", &Method::POST) => refresh_token(ctx, caller, uuid).await,
            ("remove_password", &Method::POST) => remove_password(ctx, caller, uuid).await,
            ("change_email", &Method::POST) => change_email(ctx, request, caller, uuid).await,
            ("cancel_change_email", &Method::POST) => cancel_change_email(ctx, caller, uuid).await,
            (
                "change_password"
                | "refresh_token"
                | "remove_password"
                | "change_email"
                | "cancel_change_email",
                _,
            ) => Err(http::method_not_allowed(request, &["POST"])),
            _ => Err(http::no_route()),
        },
        _ => Err(http::no_route()),
    }
}

async fn password_login(ctx: &Context, request: &ApiRequest) -> Result<Response<Body>> {
    let body = request.json()?;
    let mut errors = FieldErrors::default();
    let mut field = |name: &str| match body.as_ref().and_then(|b| b.get(name)).and_then(Value::as_str) {
        Some(value) if !value.is_empty() => Some(value.to_owned()),
        _ => {
            errors.add(name, FIELD_REQUIRED);
            None
        }
    };
    let (username, password) = (field("username"), field("password"));
    let (Some(username), Some(password)) = (username, password) else {
        return Err(Error::Invalid(errors));
    };
    let token = users::login(
        &ctx.store,
        username.trim(),
        &password,
        request.source_ip(),
        &time::now(),
    )
    .await?;
    Ok(http::json(StatusCode::OK, &json!({ "token": token })))
}

/// Users the caller may see: everyone for staff and support; otherwise themself and whoever
/// holds a role in a customer or project the caller sees.
async fn visible_users(ctx: &Context, access: &Access) -> Result<Vec<User>> {
    if access.sees_everything() {
        return users::all(&ctx.store).await;
    }
    let mut ids = vec![access.user.uuid];
    let scopes = authz::visible_scopes(&ctx.store, access, true).await?.0;
    let members = shared::store::concurrently(
        scopes
            .iter()
            .map(|scope| grants::scope_with_members(&ctx.store, scope.content_type, &scope.uuid, None))
            .collect(),
    )
    .await?;
    for (_, rows) in members.into_iter().flatten() {
        ids.extend(rows.into_iter().map(|m| m.grant.user_uuid));
    }
    ids.sort();
    ids.dedup();
    Ok(users::by_ids(&ctx.store, &ids)
        .await?
        .into_iter()
        .filter(|u| u.is_active)
        .collect())
}

async fn list(ctx: &Context, request: &ApiRequest, caller: &AuthUser) -> Result<Response<Body>> {
    let page_request = PageRequest::from_params(&request.params)?;
    let now = time::now();
    let access = Access::load(&ctx.store, &ctx.roles, caller, &now).await?;
    let params = &request.params;
    let contains = |value: &str, key: &str| {
        params
            .get(key)
            .is_none_or(|wanted| value.to_lowercase().contains(&wanted.to_lowercase()))
    };
    let filtered = ["username", "full_name", "email", "is_active"]
        .iter()
        .any(|key| params.get(key).is_some());
    if !filtered && access.sees_everything() {
        // Staff and support see everyone: the page is read on its own, by username, beside the
        // users' tally, then the names its rows show.
        let page = users::listing(&ctx.store, caller, &page_request).await?;
        let view = View::new(request, &access, access.roles());
        let names = view.names(ctx, &page.items, &now).await?;
        return Ok(render_page(request, &view, page, &names, &now));
    }
    let mut users: Vec<User> = visible_users(ctx, &access)
        .await?
        .into_iter()
        .filter(|u| params.get("username").is_none_or(|name| u.username == name))
        .filter(|u| contains(&u.full_name(), "full_name") && contains(&u.email, "email"))
        .filter(|u| {
            params
                .boolean("is_active")
                .is_none_or(|active| u.is_active == active)
        })
        .collect();
    users.sort_by(|a, b| a.username.cmp(&b.username));
    let page = page::paginate(users, &page_request)?;
    let view = View::new(request, &access, access.roles());
    let names = view.names(ctx, &page.items, &now).await?;
    Ok(render_page(request, &view, page, &names, &now))
}

fn render_page(
    request: &ApiRequest,
    view: &View<'_>,
    page: page::Page<User>,
    names: &Lookups,
    now: &Timestamp,
) -> Response<Body> {
    let page = page::Page {
        items: page
            .items
            .iter()
            .map(|user| view.render(user, names, now))
            .collect(),
        number: page.number,
        pages: page.pages,
        total: page.total,
    };
    http::page(request, page)
}

/// The caller's standing and the user `uuid`, read together; a user the caller cannot see is
/// not found.
async fn visible_user(
    ctx: &Context,
    caller: &AuthUser,
    uuid: &str,
    now: &Timestamp,
) -> Result<(Access, User)> {
    let not_found = || Error::not_found("User");
    let uuid = Id::parse(uuid).ok_or_else(not_found)?;
    let key = User::key(&uuid);
    let (access, mut fetched) =
        Access::load_with(&ctx.store, &ctx.roles, caller, now, std::slice::from_ref(&key)).await?;
    let user: User = fetched
        .take(&key.0, &key.1)?
        .filter(|u: &User| !u.deleting || access.user.is_staff)
        .ok_or_else(not_found)?;
    if access.sees_everything() || uuid == access.user.uuid {
        return Ok((access, user));
    }
    if visible_users(ctx, &access).await?.iter().any(|u| u.uuid == uuid) {
        Ok((access, user))
    } else {
        Err(not_found())
    }
}

/// A user the caller may change: themself, or anyone for staff (others 403, or 404 when they
/// cannot see the user).
async fn own_or_staff(
    ctx: &Context,
    caller: &AuthUser,
    uuid: &str,
    now: &Timestamp,
) -> Result<(Access, User)> {
    let (access, user) = visible_user(ctx, caller, uuid, now).await?;
    if !caller.is_staff && user.uuid != caller.uuid {
        return Err(Error::PermissionDenied);
    }
    Ok((access, user))
}

async fn retrieve(
    ctx: &Context,
    request: &ApiRequest,
    caller: &AuthUser,
    uuid: &str,
) -> Result<Response<Body>> {
    let now = time::now();
    let (access, user) = visible_user(ctx, caller, uuid, &now).await?;
    let view = View::new(request, &access, access.roles())
        .about(ctx, caller, &user, &now)
        .await?;
    Ok(http::json(
        StatusCode::OK,
        &view.render_one(ctx, &user, &now).await?,
    ))
}

/// `DELETE /api/users/{uuid}/`: staff only (a plain user, even on themself, 403; a user one
/// cannot see, 404). See `users::delete` for how the user's grants go.
async fn delete(ctx: &Context, caller: &AuthUser, uuid: &str) -> Result<Response<Body>> {
    let now = time::now();
    let user = staff_on(ctx, caller, uuid, &now).await?;
    users::delete(&ctx.store, caller, &user, &now).await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

/// `POST /api/users/{uuid}/change_password/ {"new_password"}`, for staff and the user themself,
/// with Waldur's rules for a new password. Every session of the user ends.
async fn change_password(
    ctx: &Context,
    request: &ApiRequest,
    caller: &AuthUser,
    uuid: &str,
) -> Result<Response<Body>> {
    let now = time::now();
    let (_, user) = own_or_staff(ctx, caller, uuid, &now).await?;
    let body = request.json()?;
    let empty = Map::new();
    let object = shared::validate::object(body.as_ref(), &empty)?;
    let mut errors = FieldErrors::default();
    let password = shared::validate::string(object, "new_password", 128, true, false, &mut errors);
    if let Some(password) = &password {
        for problem in users::password_problems(password) {
            errors.add("new_password", problem);
        }
    }
    let Some(password) = password.filter(|_| errors.is_empty()) else {
        return Err(Error::Invalid(errors));
    };
    users::set_password(&ctx.store, Some(caller), &user, &password, &now).await?;
    Ok(http::json(
        StatusCode::OK,
        &json!({"detail": "Password has been successfully updated."}),
    ))
}

async fn create(ctx: &Context, request: &ApiRequest, caller: &AuthUser) -> Result<Response<Body>> {
    if !caller.is_staff {
        return Err(Error::PermissionDenied);
    }
    let input = UserInput::parse(request.json()?.as_ref(), true, true)?;
    let now = time::now();
    let user = users::create(&ctx.store, Some(caller), input.into_new_user(), &now).await?;
    let access = Access::load(&ctx.store, &ctx.roles, caller, &now).await?;
    let view = View::new(request, &access, access.roles());
    let value = view.render_one(ctx, &user, &now).await?;
    // From the uuid, not the `url` field: `?field=` may have left that out.
    let location = request.url(&format!("/api/users/{}/", user.uuid));
    Ok(http::created(&location, &value))
}

/// Staff may change anyone, flags included; a user may change their own names, email and
/// password; anyone else gets 403 (or 404 when they cannot see the user).
async fn update(
    ctx: &Context,
    request: &ApiRequest,
    caller: &AuthUser,
    uuid: &str,
) -> Result<Response<Body>> {
    let now = time::now();
    let (access, user) = own_or_staff(ctx, caller, uuid, &now).await?;
    let input = UserInput::parse(
        request.json()?.as_ref(),
        request.method == Method::PUT,
        caller.is_staff,
    )?;
    let updated = users::update(&ctx.store, caller, &user, &input, &now).await?;
    let view = View::new(request, &access, access.roles())
        .about(ctx, caller, &updated, &now)
        .await?;
    Ok(http::json(
        StatusCode::OK,
        &view.render_one(ctx, &updated, &now).await?,
    ))
}

/// A new API token for the user (staff, or the user themself); the old one stops working.
async fn refresh_token(ctx: &Context, caller: &AuthUser, uuid: &str) -> Result<Response<Body>> {
    let not_found = || Error::not_found("User");
    let uuid = Id::parse(uuid).ok_or_else(not_found)?;
    if !caller.is_staff && uuid != caller.uuid {
        // DRF's order: a user one cannot see is not found; one that is seen is not theirs to rotate.
        visible_user(ctx, caller, &uuid.to_string(), &time::now()).await?;
        return Err(Error::PermissionDenied);
    }
    let user = users::get(&ctx.store, &uuid).await?.ok_or_else(not_found)?;
    let now = time::now();
    let token = users::issue_token(&ctx.store, Some(caller), &user, &now).await?;
    Ok(http::json(StatusCode::OK, &auth_token(&user, &token, &now)))
}

/// Waldur's UserAuthToken, as the official client parses it.
fn auth_token(user: &User, token: &str, created: &Timestamp) -> Value {
    json!({
        "created": time::wire(created),
        "token": token,
        "user_first_name": user.first_name,
        "user_last_name": user.last_name,
        "user_username": user.username,
        "user_is_active": user.is_active,
        "user_token_lifetime": user.token_lifetime,
    })
}

/// A user whom only staff may act on (Waldur's `is_staff` actions): others get 403, or 404
/// when they cannot see the user.
async fn staff_on(ctx: &Context, caller: &AuthUser, uuid: &str, now: &Timestamp) -> Result<User> {
    let (_, user) = visible_user(ctx, caller, uuid, now).await?;
    if !caller.is_staff {
        return Err(Error::PermissionDenied);
    }
    Ok(user)
}

/// `GET /api/users/{uuid}/token/` (staff): the user's current token, while it is valid.
async fn token(ctx: &Context, caller: &AuthUser, uuid: &str) -> Result<Response<Body>> {
    let now = time::now();
    let user = staff_on(ctx, caller, uuid, &now).await?;
    let (token, item) = users::current_token(&ctx.store, &user, &now)
        .await?
        .ok_or_else(|| Error::NotFound("The user has no valid token.".into()))?;
    let created = time::parse_stored(&item.created).unwrap_or(now);
    Ok(http::json(StatusCode::OK, &auth_token(&user, &token, &created)))
}

/// `POST /api/users/{uuid}/remove_password/` (staff).
async fn remove_password(ctx: &Context, caller: &AuthUser, uuid: &str) -> Result<Response<Body>> {
    let now = time::now();
    let user = staff_on(ctx, caller, uuid, &now).await?;
    users::remove_password(&ctx.store, caller, &user, &now).await?;
    Ok(http::json(StatusCode::OK, &json!({"status": "password removed"})))
}

/// `POST /api/users/{uuid}/change_email/ {"email"}` (staff, or the user themself): mails a
/// confirmation code to the new address; the address changes when the code is confirmed.
async fn change_email(
    ctx: &Context,
    request: &ApiRequest,
    caller: &AuthUser,
    uuid: &str,
) -> Result<Response<Body>> {
    let now = time::now();
    let (_, user) = own_or_staff(ctx, caller, uuid, &now).await?;
    let input = UserInput::parse(request.json()?.as_ref(), false, false)?;
    let Some(email) = input.email.filter(|email| !email.is_empty()) else {
        return Err(Error::field("email", FIELD_REQUIRED));
    };
    shared::email_change::request(&ctx.store, caller, &user, &email, &now).await?;
    Ok(http::json(
        StatusCode::OK,
        &json!({"detail": "The change email request has been successfully created."}),
    ))
}

/// `POST /api/users/{uuid}/cancel_change_email/` (staff, or the user themself).
async fn cancel_change_email(ctx: &Context, caller: &AuthUser, uuid: &str) -> Result<Response<Body>> {
    let now = time::now();
    let (_, user) = own_or_staff(ctx, caller, uuid, &now).await?;
    let detail = if shared::email_change::cancel(&ctx.store, caller, &user, &now).await? {
        "The change email request has been successfully deleted."
    } else {
        "The change email request has not been found."
    };
    Ok(http::json(StatusCode::OK, &json!({ "detail": detail })))
}

/// `POST /api/users/confirm_email/ {"code"}`.
async fn confirm_email(ctx: &Context, request: &ApiRequest) -> Result<Response<Body>> {
    let body = request.json()?;
    let code = body
        .as_ref()
        .and_then(|b| b.get("code"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    shared::email_change::confirm(&ctx.store, code, &time::now()).await?;
    Ok(http::json(
        StatusCode::OK,
        &json!({"detail": "Email has been successfully updated."}),
    ))
}

/// What a page of users is rendered with, read once for the page.
#[derive(Default)]
struct Lookups {
    names: Directory,
    members: Vec<grants::Member>,
}

struct View<'a> {
    request: &'a ApiRequest,
    fields: Vec<&'static str>,
    roles: &'a RoleSet,
    /// Who reads: permission rows show only grants on scopes the reader can see.
    reader: &'a Access,
    /// When the answer is about the caller themself: their token (if valid) and its lifetime.
    own: Option<(Id, Option<String>, Option<i64>)>,
}

impl<'a> View<'a> {
    fn new(request: &'a ApiRequest, access: &'a Access, roles: &'a RoleSet) -> Self {
        let mut fields = request
            .params
            .field_selection(FIELDS)
            .unwrap_or_else(|| FIELDS.to_vec());
        if !access.sees_everything() {
            fields.retain(|f| !PRIVILEGED_FIELDS.contains(f));
        }
        View {
            request,
            fields,
            roles,
            reader: access,
            own: None,
        }
    }

    /// Shows `token` and `token_lifetime` if `user` is the caller: the token the request came
    /// with, or (a session, impersonation) the user's current one.
    async fn about(mut self, ctx: &Context, caller: &AuthUser, user: &User, now: &Timestamp) -> Result<Self> {
        if user.uuid != caller.uuid {
            return Ok(self);
        }
        let token = match &caller.token {
            Some(token) => Some(token.expose().to_owned()),
            None => users::current_token(&ctx.store, user, now)
                .await?
                .map(|(token, _)| token),
        };
        self.own = Some((user.uuid, token, user.token_lifetime));
        Ok(self)
    }

    fn wants_permissions(&self) -> bool {
        self.fields.iter().any(|f| f.ends_with("permissions"))
    }

    /// What the permission rows of `users` show: the customers and projects they name and, for
    /// `permissions`, the grants' member rows (who granted), all in one BatchGetItem for a
    /// whole page; nothing when the fields leave the rows out.
    async fn names(&self, ctx: &Context, users: &[User], now: &Timestamp) -> Result<Lookups> {
        if !self.wants_permissions() {
            return Ok(Lookups::default());
        }
        let shown: Vec<Grant> = users
            .iter()
            .flat_map(|user| self.shown_grants(user, now))
            .collect();
        let mut keys = Directory::keys(
            shown
                .iter()
                .map(|g| (g.scope_type, g.scope_uuid, g.customer_uuid)),
        );
        if self.fields.contains(&"permissions") {
            keys.extend(grants::member_keys(&shown));
        }
        let mut items = ctx.store.batch_get_items(&keys).await?;
        let members = grants::take_members(&mut items)?;
        let mut names = Directory::default();
        names.add_items(items)?;
        Ok(Lookups { names, members })
    }

    async fn render_one(&self, ctx: &Context, user: &User, now: &Timestamp) -> Result<Value> {
        let lookups = self.names(ctx, std::slice::from_ref(user), now).await?;
        Ok(self.render(user, &lookups, now))
    }

    fn render(&self, user: &User, lookups: &Lookups, now: &Timestamp) -> Value {
        let names = &lookups.names;
        let (customer_rows, project_rows) = if self.wants_permissions() {
            self.permission_rows(user, names, now)
        } else {
            (Vec::new(), Vec::new())
        };
        let mut object = Map::new();
        for field in &self.fields {
            let value = match *field {
                "url" => json!(self.request.url(&format!("/api/users/{}/", user.uuid))),
                "uuid" => json!(user.uuid),
                "username" => json!(user.username),
                "full_name" => json!(user.full_name()),
                "first_name" => json!(user.first_name),
                "last_name" => json!(user.last_name),
                "native_name" => json!(user.native_name),
                "preferred_language" => json!(user.preferred_language),
                "email" => json!(user.email),
                "is_staff" => json!(user.is_staff),
                "is_support" => json!(user.is_support),
                "is_active" => json!(user.is_active),
                "date_joined" => json!(time::parse_stored(&user.date_joined).map(|t| time::wire(&t))),
                "customer_permissions" => json!(customer_rows),
                "project_permissions" => json!(project_rows),
                "permissions" => {
                    let mut rows: Vec<&grants::Member> = lookups
                        .members
                        .iter()
                        .filter(|m| m.grant.user_uuid == user.uuid)
                        .collect();
                    rows.sort_by(|a, b| a.grant.created.cmp(&b.grant.created));
                    json!(
                        rows.iter()
                            .map(|m| m.permission_row(self.roles, names, now))
                            .collect::<Vec<_>>()
                    )
                }
                own if OWN_FIELDS.contains(&own) => match &self.own {
                    Some((uuid, token, lifetime)) if *uuid == user.uuid => {
                        if own == "token" {
                            json!(token)
                        } else {
                            json!(lifetime)
                        }
                    }
                    _ => continue,
                },
                _ => continue,
            };
            object.insert((*field).to_owned(), value);
        }
        Value::Object(object)
    }

    /// The rows of seed 001: the user's active customer and project roles with scope names.
    fn permission_rows(&self, user: &User, names: &Directory, now: &Timestamp) -> (Vec<Value>, Vec<Value>) {
        let grants = self.shown_grants(user, now);
        let role_name = |grant: &Grant| {
            self.roles
                .get(&grant.role_uuid)
                .map(|r| roles::legacy_name(&r.name).to_owned())
                .unwrap_or_default()
        };
        let mut customer_rows = Vec::new();
        let mut project_rows = Vec::new();
        for grant in &grants {
            let customer = names.customer(&grant.customer_uuid);
            match grant.scope_type {
                ContentType::Customer => customer_rows.push(json!({
                    "customer_abbreviation": customer.map(|c| c.abbreviation.as_str()),
                    "customer_name": customer.map(|c| c.name.as_str()),
                    "customer_native_name": customer.map(|c| c.native_name.as_str()),
                    "customer_uuid": grant.customer_uuid,
                    "pk": grant.uuid,
                    "role": role_name(grant),
                    "url": self.request.url(&format!("/api/customer-permissions/{}/", grant.uuid)),
                })),
                _ => project_rows.push(json!({
                    "customer_name": customer.map(|c| c.name.as_str()),
                    "pk": grant.uuid,
                    "project_name": names.project(&grant.scope_uuid).map(|p| p.name.as_str()),
                    "project_uuid": grant.scope_uuid,
                    "role": role_name(grant),
                    "url": self.request.url(&format!("/api/project-permissions/{}/", grant.uuid)),
                })),
            }
        }
        (customer_rows, project_rows)
    }
}

impl View<'_> {
    /// The user's active grants on scopes the reader can see: a co-member of one project does
    /// not learn of the user's roles in organisations hidden from them.
    fn shown_grants(&self, user: &User, now: &Timestamp) -> Vec<Grant> {
        grants::held_by(user)
            .into_iter()
            .filter(|g| g.is_active_at(now))
            .filter(|g| {
                self.reader.can_see(&ScopeRef {
                    content_type: g.scope_type,
                    uuid: g.scope_uuid,
                    customer_uuid: g.customer_uuid,
                })
            })
            .collect()
    }
}
