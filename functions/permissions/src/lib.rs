//! Permission listings: `/api/customer-permissions/`, `/api/project-permissions/` (seed 001) and
//! `/api/user-permissions/`, each with retrieve by `pk`; and `/api/permissions/check/`, which
//! answers whether a user holds a permission on a scope, and why.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};

use shared::auth::{self, AuthUser};
use shared::authz::{self, Access, RoleSet, ScopeRef};
use shared::error::{FIELD_REQUIRED, FieldErrors};
use shared::grants::{self, Member};
use shared::http::{self, ApiRequest};
use shared::ids::Id;
use shared::page::{self, Order, PageRequest, Params};
use shared::roles::{self, ContentType};
use shared::scopes::{self, Directory};
use shared::store::Fetched;
use shared::time;
use shared::users::User;
use shared::{Context, Error, Result};

/// The three listings: which grants each shows and how a row looks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Listing {
    Customer,
    Project,
    User,
}

impl Listing {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "customer-permissions" => Some(Listing::Customer),
            "project-permissions" => Some(Listing::Project),
            "user-permissions" => Some(Listing::User),
            _ => None,
        }
    }

    fn includes(self, scope_type: ContentType) -> bool {
        match self {
            Listing::Customer => scope_type == ContentType::Customer,
            Listing::Project => scope_type == ContentType::Project,
            Listing::User => true,
        }
    }

    fn ordering_fields(self) -> &'static [&'static str] {
        match self {
            Listing::User => &[
                "username",
                "full_name",
                "native_name",
                "email",
                "expiration_time",
                "created",
                "role",
            ],
            _ => &[
                "user__username",
                "user__full_name",
                "user__native_name",
                "created",
                "expiration_time",
            ],
        }
    }
}

pub async fn handle(ctx: &Context, request: Request) -> Response<Body> {
    http::respond(request, async |request| route(ctx, request).await).await
}

async fn route(ctx: &Context, request: &ApiRequest) -> Result<Response<Body>> {
    let segments = request.segments().ok_or_else(http::no_route)?;
    let readable = matches!(request.method, Method::GET | Method::HEAD);
    if let (["api", name, pk], true) = (segments.as_slice(), readable)
        && let Some(listing) = Listing::parse(name)
    {
        // The row is read beside the credentials (nothing of it is answered before they are
        // checked): one round trip, then the caller's standing with the row's scope.
        let row = async {
            match Id::parse(pk) {
                Some(uuid) => grants::member_by_uuid(&ctx.store, &uuid).await,
                None => Ok(None),
            }
        };
        let (principal, row) = tokio::try_join!(auth::authenticate(&ctx.store, request.credentials()), row)?;
        return retrieve(ctx, request, principal.require_user()?, listing, row).await;
    }
    let principal = auth::authenticate(&ctx.store, request.credentials()).await?;
    let user = principal.require_user()?;
    match segments.as_slice() {
        ["api", "permissions", "check"] if readable => check(ctx, request, user).await,
        ["api", name] if readable && Listing::parse(name).is_some() => {
            list(ctx, request, user, Listing::parse(name).unwrap_or(Listing::User)).await
        }
        ["api", "permissions", "check"] | ["api", _] | ["api", _, _] => {
            Err(http::method_not_allowed(request, &["GET", "HEAD"]))
        }
        _ => Err(http::no_route()),
    }
}

/// Grants in the scopes the caller sees (all of them for staff and support): the active ones,
/// and for `/api/user-permissions/` the history too (revoked and expired grants); and the scopes
/// read on the way.
async fn visible_members(
    ctx: &Context,
    access: &Access,
    listing: Listing,
) -> Result<(Vec<Member>, Directory)> {
    let now = time::now();
    let mut members = Vec::new();
    let mut names = Directory::default();
    let history = listing == Listing::User;
    if access.sees_everything() {
        // Each scope type's grants (and history) are an index partition of their own: read
        // them all at once.
        let mut reads = Vec::new();
        for scope_type in [ContentType::Customer, ContentType::Project] {
            if listing.includes(scope_type) {
                reads.push(grants::rows_of_type(&ctx.store, scope_type, false));
                if history {
                    reads.push(grants::rows_of_type(&ctx.store, scope_type, true));
                }
            }
        }
        members.extend(shared::store::concurrently(reads).await?.into_iter().flatten());
    } else {
        let (scopes, read) =
            authz::visible_scopes(&ctx.store, access, listing.includes(ContentType::Project)).await?;
        names = read;
        let listed = scopes
            .into_iter()
            .filter(|scope| listing.includes(scope.content_type));
        let reads = shared::store::concurrently(
            listed
                .map(|scope| async move {
                    if history {
                        grants::scope_with_history(&ctx.store, scope.content_type, &scope.uuid).await
                    } else {
                        grants::scope_with_members(&ctx.store, scope.content_type, &scope.uuid, None).await
                    }
                })
                .collect(),
        )
        .await?;
        for (scope, rows) in reads.into_iter().flatten() {
            names.insert(scope);
            members.extend(rows);
        }
        if history {
            // Who is not staff or support sees the rows of active users only (Waldur).
            let mut ids: Vec<Id> = members.iter().map(|m| m.grant.user_uuid).collect();
            ids.sort();
            ids.dedup();
            let active: Vec<Id> = shared::users::by_ids(&ctx.store, &ids)
                .await?
                .into_iter()
                .filter(|u| u.is_active)
                .map(|u| u.uuid)
                .collect();
            members.retain(|m| active.contains(&m.grant.user_uuid));
        }
    }
    if !history {
        members.retain(|m| m.is_active_at(&now));
    }
    Ok((members, names))
}

fn matches(member: &Member, params: &Params, listing: Listing, roles: &RoleSet) -> bool {
    let grant = &member.grant;
    let names = &member.names;
    let contains = |text: &str, key: &str| {
        params
            .get(key)
            .is_none_or(|wanted| text.to_lowercase().contains(&wanted.trim().to_lowercase()))
    };
    let id_filter = |key: &str, collection: &str, value: &Id| {
        params
            .get(key)
            .is_none_or(|wanted| Id::from_reference(wanted, collection) == Some(*value))
    };
    let scope_filter = match listing {
        Listing::Customer => {
            id_filter("customer", "customers", &grant.scope_uuid)
                && id_filter("customer_url", "customers", &grant.scope_uuid)
        }
        Listing::Project => {
            id_filter("project", "projects", &grant.scope_uuid)
                && id_filter("project_url", "projects", &grant.scope_uuid)
                && id_filter("customer", "customers", &grant.customer_uuid)
        }
        Listing::User => {
            id_filter("scope_uuid", "scopes", &grant.scope_uuid)
                && params
                    .get("scope_type")
                    .is_none_or(|t| t == grant.scope_type.as_str())
                && params
                    .get("role_name")
                    .is_none_or(|r| roles.get(&grant.role_uuid).is_some_and(|role| role.name == r))
        }
    };
    scope_filter
        && id_filter("user", "users", &grant.user_uuid)
        && id_filter("user_url", "users", &grant.user_uuid)
        && contains(&names.user_username, "username")
        && contains(&names.user_full_name, "full_name")
        && contains(&names.user_native_name, "native_name")
}

async fn list(
    ctx: &Context,
    request: &ApiRequest,
    user: &AuthUser,
    listing: Listing,
) -> Result<Response<Body>> {
    let page_request = PageRequest::from_params(&request.params)?;
    let ordering = request.params.ordering(listing.ordering_fields())?;
    let access = Access::load(&ctx.store, &ctx.roles, user, &time::now()).await?;
    let roles = access.roles();
    if let Some(page) = staff_page(ctx, request, user, &access, listing, &ordering, &page_request).await? {
        let mut names = Directory::default();
        names
            .complete(&ctx.store, page.items.iter().map(member_scope))
            .await?;
        return Ok(http::page(
            request,
            page.map(|m| row(request, listing, &m, roles, &names)),
        ));
    }
    let (members, mut names) = visible_members(ctx, &access, listing).await?;
    let now = time::now();
    let active = request.params.boolean("is_active");
    let mut members: Vec<Member> = members
        .into_iter()
        .filter(|m| matches(m, &request.params, listing, roles))
        .filter(|m| active.is_none_or(|wanted| m.is_active_at(&now) == wanted))
        .collect();
    // The seed listings show the newest grants first; /api/user-permissions/ the oldest (§3.9).
    if listing == Listing::User {
        members.sort_by(|a, b| a.grant.created.cmp(&b.grant.created));
    } else {
        members.sort_by(|a, b| b.grant.created.cmp(&a.grant.created));
    }
    grants::sort_members(&mut members, &ordering, |uuid| {
        roles.get(uuid).map(|r| r.name.clone()).unwrap_or_default()
    });
    let page = page::paginate(members, &page_request)?;
    names
        .complete(&ctx.store, page.items.iter().map(member_scope))
        .await?;
    Ok(http::page(
        request,
        page.map(|m| row(request, listing, &m, roles, &names)),
    ))
}

/// The filters of the listings (`matches`), and `is_active`.
const FILTERS: [&str; 13] = [
    "customer",
    "customer_url",
    "project",
    "project_url",
    "scope_uuid",
    "scope_type",
    "role_name",
    "user",
    "user_url",
    "username",
    "full_name",
    "native_name",
    "is_active",
];

/// Staff's and support's page of a listing without filters or `o=`, read on its own: the
/// member rows' index partitions merged in creation order, counted by their tallies. `None`
/// where the listing must be read whole: a filter or an ordering, or (for the live grants) a
/// grant past its expiration that the sweeper has not ended yet, which the page must not show.
async fn staff_page(
    ctx: &Context,
    request: &ApiRequest,
    user: &AuthUser,
    access: &Access,
    listing: Listing,
    ordering: &[(String, bool)],
    page_request: &PageRequest,
) -> Result<Option<page::Page<Member>>> {
    let filtered = FILTERS.iter().any(|key| request.params.get(key).is_some());
    if filtered || !ordering.is_empty() || !access.sees_everything() {
        return Ok(None);
    }
    let scope_types: Vec<ContentType> = [ContentType::Customer, ContentType::Project]
        .into_iter()
        .filter(|t| listing.includes(*t))
        .collect();
    // The seed listings show the newest grants first; /api/user-permissions/ the oldest, with
    // the history (§3.9).
    let (history, order) = match listing {
        Listing::User => (true, Order::Ascending),
        _ => (false, Order::Descending),
    };
    let page = grants::rows_listing(&ctx.store, user, &scope_types, history, order, page_request);
    if history {
        return Ok(Some(page.await?));
    }
    let now = time::now();
    let (page, unswept) = tokio::try_join!(page, grants::any_unswept_expiry(&ctx.store, &now))?;
    Ok((!unswept).then_some(page))
}

/// A row by its uuid (`found`: as read, if it exists).
async fn retrieve(
    ctx: &Context,
    request: &ApiRequest,
    user: &AuthUser,
    listing: Listing,
    found: Option<Member>,
) -> Result<Response<Body>> {
    let not_found = || Error::not_found("UserRole");
    let now = time::now();
    // /api/user-permissions/ rows include the history; the seed listings live grants only.
    let member = found
        .filter(|m| {
            (listing == Listing::User || m.is_active_at(&now)) && listing.includes(m.grant.scope_type)
        })
        .ok_or_else(not_found)?;
    // The row names its scope: those items come in the same read as the caller's grants.
    let (access, fetched) = Access::load_with(
        &ctx.store,
        &ctx.roles,
        user,
        &now,
        &Directory::keys([member_scope(&member)]),
    )
    .await?;
    let scope = ScopeRef {
        content_type: member.grant.scope_type,
        uuid: member.grant.scope_uuid,
        customer_uuid: member.grant.customer_uuid,
    };
    if !(access.can_see(&scope) || member.grant.user_uuid == user.uuid) {
        return Err(not_found());
    }
    let mut names = Directory::default();
    names.add_items(fetched.into_items())?;
    Ok(http::json(
        StatusCode::OK,
        &row(request, listing, &member, access.roles(), &names),
    ))
}

fn member_scope(member: &Member) -> (ContentType, Id, Id) {
    (
        member.grant.scope_type,
        member.grant.scope_uuid,
        member.grant.customer_uuid,
    )
}

fn row(request: &ApiRequest, listing: Listing, member: &Member, roles: &RoleSet, names: &Directory) -> Value {
    let grant = &member.grant;
    let role = roles.get(&grant.role_uuid);
    let customer = names.customer(&grant.customer_uuid);
    let url = |path: String| request.url(&path);
    let created_by = grant.created_by.map(|by| url(format!("/api/users/{by}/")));
    match listing {
        Listing::Customer | Listing::Project => {
            let collection = if listing == Listing::Customer {
                "customer-permissions"
            } else {
                "project-permissions"
            };
            let mut value = json!({
                "url": url(format!("/api/{collection}/{}/", grant.uuid)),
                "pk": grant.uuid,
                "role": role.map(|r| roles::legacy_name(&r.name)),
                "role_name": role.map(|r| r.name.as_str()),
                "created": time::wire_stored(&grant.created),
                "expiration_time": grant.expiration_time.as_deref().map(time::wire_stored),
                "created_by": created_by,
                "customer": url(format!("/api/customers/{}/", grant.customer_uuid)),
                "customer_uuid": grant.customer_uuid,
                "customer_name": customer.map(|c| c.name.as_str()),
                "customer_native_name": customer.map(|c| c.native_name.as_str()),
                "customer_abbreviation": customer.map(|c| c.abbreviation.as_str()),
                "user": url(format!("/api/users/{}/", grant.user_uuid)),
                "user_uuid": grant.user_uuid,
                "user_username": member.names.user_username,
                "user_full_name": member.names.user_full_name,
                "user_native_name": member.names.user_native_name,
                "user_email": member.names.user_email,
            });
            if listing == Listing::Project
                && let Some(object) = value.as_object_mut()
            {
                let project = names.project(&grant.scope_uuid);
                object.insert(
                    "project".into(),
                    json!(url(format!("/api/projects/{}/", grant.scope_uuid))),
                );
                object.insert("project_uuid".into(), json!(grant.scope_uuid));
                object.insert("project_name".into(), json!(project.map(|p| p.name.as_str())));
            }
            value
        }
        Listing::User => member.permission_row(roles, names, &time::now()),
    }
}

// --- permission check ---------------------------------------------------------------------

/// `GET /api/permissions/check/?user=&permission=&scope_type=&scope=`: whether the user holds
/// the permission on the scope, and which grants give it. For staff, support, or the user.
async fn check(ctx: &Context, request: &ApiRequest, caller: &AuthUser) -> Result<Response<Body>> {
    let params = &request.params;
    let mut errors = FieldErrors::default();
    let mut required = |key: &str| {
        let value = params.get(key).map(str::trim).filter(|v| !v.is_empty());
        if value.is_none() {
            errors.add(key, FIELD_REQUIRED);
        }
        value
    };
    let (user, permission, scope_type, scope) = (
        required("user"),
        required("permission"),
        required("scope_type"),
        required("scope"),
    );
    let user = user.and_then(|u| {
        let parsed = Id::parse(u);
        if parsed.is_none() {
            errors.add("user", "Must be a valid UUID.");
        }
        parsed
    });
    let scope_type = scope_type.and_then(|t| {
        let parsed =
            ContentType::parse(t).filter(|c| matches!(c, ContentType::Customer | ContentType::Project));
        if parsed.is_none() {
            errors.add("scope_type", "Select a valid choice: customer or project.");
        }
        parsed
    });
    let scope = scope.and_then(|s| {
        let parsed = Id::parse(s);
        if parsed.is_none() {
            errors.add("scope", "Must be a valid UUID.");
        }
        parsed
    });
    let (Some(user), Some(permission), Some(scope_type), Some(scope)) = (user, permission, scope_type, scope)
    else {
        return Err(Error::Invalid(errors));
    };
    if !(caller.is_staff || caller.is_support || caller.uuid == user) {
        return Err(Error::PermissionDenied);
    }
    let now = time::now();
    // The user item carries the user's grants, so the user and the scope are all the check reads.
    let user_key = User::key(&user);
    let scope_key = (scopes::partition(scope_type, &scope), "#META".to_owned());
    let keys = [user_key.clone(), scope_key.clone()];
    let (items, roles) = tokio::try_join!(ctx.store.batch_get_items(&keys), ctx.roles.get(&ctx.store))?;
    let mut fetched = Fetched::new(items);
    let target: User = fetched
        .take(&user_key.0, &user_key.1)?
        .ok_or_else(|| Error::field("user", "User is not found."))?;
    let scope = fetched
        .take_item(&scope_key.0, &scope_key.1)
        .map(|item| scopes::scope_from_item(scope_type, item))
        .transpose()?
        .ok_or_else(|| Error::field("scope", "Object does not exist."))?;
    let is_staff = target.is_staff;
    let access = Access::of_user(&target, roles, &now);
    let scope_ref = ScopeRef::from(&scope);
    // A plain caller asks about themself: a scope they cannot see answers as one that does not
    // exist, so the check does not tell which uuids name something.
    if !(caller.is_staff || caller.is_support || access.can_see(&scope_ref)) {
        return Err(Error::field("scope", "Object does not exist."));
    }
    let granted_by: Vec<Value> = access
        .granted_by(permission, &scope_ref)
        .into_iter()
        .map(|g| json!({"role": g.role, "scope_type": g.scope_type.as_str(), "scope_uuid": g.scope_uuid}))
        .collect();
    Ok(http::json(
        StatusCode::OK,
        &json!({
            "allowed": access.has_permission(permission, &scope_ref),
            "is_staff": is_staff,
            "granted_by": granted_by,
        }),
    ))
}
