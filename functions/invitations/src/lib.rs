//! `/api/user-group-invitations/` (create, list, retrieve, update, delete, cancel,
//! submit_request) and `/api/user-permission-requests/` (list, retrieve, delete, approve,
//! reject, cancel_request).

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::{Map, Value, json};

use shared::auth::{self, AuthUser};
use shared::authz::{Access, RoleSet, ScopeRef};
use shared::error::{FIELD_REQUIRED, FieldErrors};
use shared::http::{self, ApiRequest};
use shared::ids::Id;
use shared::invitations::{self, Invitation, PermissionRequest, State};
use shared::page::{self, Order, PageRequest, Params};
use shared::roles::{ContentType, Role};
use shared::scopes::{self, Directory};
use shared::store::Fetched;
use shared::time::{self, Timestamp};
use shared::users::User;
use shared::validate;
use shared::{Context, Error, Result};

const INVITATION: &str = "GroupInvitation";
const REQUEST: &str = "PermissionRequest";

pub async fn handle(ctx: &Context, request: Request) -> Response<Body> {
    http::respond(request, async |request| route(ctx, request).await).await
}

async fn route(ctx: &Context, request: &ApiRequest) -> Result<Response<Body>> {
    let principal = auth::authenticate(&ctx.store, request.credentials()).await?;
    let user = principal.require_user()?;
    let segments = request.segments().ok_or_else(http::no_route)?;
    let method = &request.method;
    let readable = matches!(*method, Method::GET | Method::HEAD);
    match segments.as_slice() {
        ["api", "user-group-invitations"] if readable => list_invitations(ctx, request, user).await,
        ["api", "user-group-invitations"] if *method == Method::POST => {
            create_invitation(ctx, request, user).await
        }
        ["api", "user-group-invitations", uuid] if readable => {
            retrieve_invitation(ctx, request, user, uuid).await
        }
        ["api", "user-group-invitations", uuid] if matches!(*method, Method::PUT | Method::PATCH) => {
            update_invitation(ctx, request, user, uuid).await
        }
        ["api", "user-group-invitations", uuid] if *method == Method::DELETE => {
            delete_invitation(ctx, user, uuid).await
        }
        ["api", "user-group-invitations", uuid, "projects"] if readable => {
            invitation_projects(ctx, request, user, uuid).await
        }
        ["api", "user-group-invitations", uuid, "cancel"] if *method == Method::POST => {
            cancel_invitation(ctx, user, uuid).await
        }
        [
            "api",
            "user-group-invitations",
            uuid,
            "submit_request" | "request",
        ] if *method == Method::POST => submit_request(ctx, user, uuid).await,
        ["api", "user-permission-requests"] if readable => list_requests(ctx, request, user).await,
        ["api", "user-permission-requests", uuid] if readable => {
            retrieve_request(ctx, request, user, uuid).await
        }
        ["api", "user-permission-requests", uuid] if *method == Method::DELETE => {
            delete_request(ctx, user, uuid).await
        }
        [
            "api",
            "user-permission-requests",
            uuid,
            action @ ("approve" | "reject"),
        ] if *method == Method::POST => decide(ctx, request, user, uuid, *action == "approve").await,
        ["api", "user-permission-requests", uuid, "cancel_request"] if *method == Method::POST => {
            cancel_request(ctx, user, uuid).await
        }
        ["api", "user-group-invitations", _] => Err(http::method_not_allowed(
            request,
            &["GET", "PUT", "PATCH", "DELETE", "HEAD"],
        )),
        ["api", "user-permission-requests", _] => {
            Err(http::method_not_allowed(request, &["GET", "DELETE", "HEAD"]))
        }
        ["api", "user-group-invitations" | "user-permission-requests", ..] => {
            Err(http::method_not_allowed(request, &["GET", "POST", "HEAD"]))
        }
        _ => Err(http::no_route()),
    }
}

fn scope_ref_of(scope_type: ContentType, uuid: Id, customer: Id) -> ScopeRef {
    ScopeRef {
        content_type: scope_type,
        uuid,
        customer_uuid: customer,
    }
}

// --- invitations ----------------------------------------------------------------------------

fn role_field(
    object: &Map<String, Value>,
    field: &str,
    roles: &RoleSet,
    required: bool,
    errors: &mut FieldErrors,
) -> Option<Role> {
    match object.get(field) {
        None | Some(Value::Null) => {
            if required {
                errors.add(field, FIELD_REQUIRED);
            }
            None
        }
        Some(value) => {
            let text = value.as_str().unwrap_or_default();
            let role = Id::parse(text)
                .and_then(|uuid| roles.get(&uuid))
                .filter(|r| r.is_active)
                .cloned();
            if role.is_none() {
                errors.add(field, format!("Object with uuid={text} does not exist."));
            }
            role
        }
    }
}

async fn create_invitation(ctx: &Context, request: &ApiRequest, user: &AuthUser) -> Result<Response<Body>> {
    let now = time::now();
    let body = request.json()?;
    let empty = Map::new();
    let object = validate::object(body.as_ref(), &empty)?;
    let (invitation, scope, access) = offer(ctx, user, object, &now).await?;
    // The names the answer shows are read while the write goes, and answered only after it.
    let (written, value) = tokio::join!(
        invitations::create(&ctx.store, user, &invitation, &now),
        answer_with_scope(ctx, request, &invitation, scope, access.roles(), &now)
    );
    written?;
    let value = value?;
    Ok(http::created(value["url"].as_str().unwrap_or_default(), &value))
}

/// `PUT` / `PATCH /api/user-group-invitations/{uuid}/`: an active invitation's terms, checked
/// as a new offer would be (the fields not sent keep their values): whoever manages its scope
/// may edit it, to terms they may offer now.
async fn update_invitation(
    ctx: &Context,
    request: &ApiRequest,
    user: &AuthUser,
    uuid: &str,
) -> Result<Response<Body>> {
    let now = time::now();
    let (_, existing) = managed_invitation(ctx, user, uuid, &now).await?;
    if !existing.is_pending_at(&now) {
        return Err(Error::rejected("Only active invitations can be edited."));
    }
    let body = request.json()?;
    let empty = Map::new();
    let mut terms = terms_of(request, &existing);
    terms.extend(validate::object(body.as_ref(), &empty)?.clone());
    let (offered, scope, access) = offer(ctx, user, &terms, &now).await?;
    let invitation = Invitation {
        uuid: existing.uuid,
        created: existing.created,
        created_by: existing.created_by,
        created_by_username: existing.created_by_username,
        created_by_full_name: existing.created_by_full_name,
        edited_by: Some(user.uuid),
        expiry: existing.expiry,
        ..offered
    };
    let (written, value) = tokio::join!(
        invitations::update(&ctx.store, user, &invitation, &now),
        answer_with_scope(ctx, request, &invitation, scope, access.roles(), &now)
    );
    written?;
    Ok(http::json(StatusCode::OK, &value?))
}

/// `DELETE /api/user-group-invitations/{uuid}/`: a canceled invitation, by whoever manages its
/// scope.
async fn delete_invitation(ctx: &Context, user: &AuthUser, uuid: &str) -> Result<Response<Body>> {
    let now = time::now();
    let (_, invitation) = managed_invitation(ctx, user, uuid, &now).await?;
    if invitation.is_active {
        return Err(Error::rejected("Only canceled invitation can be deleted."));
    }
    invitations::delete(&ctx.store, user, &invitation, &now).await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

/// The invitation's terms as a create body, for an update to overlay.
fn terms_of(request: &ApiRequest, invitation: &Invitation) -> Map<String, Value> {
    let scope_url = request.url(&format!(
        "/api/{}s/{}/",
        invitation.scope_type.as_str(),
        invitation.scope_uuid
    ));
    let terms = json!({
        "scope": scope_url,
        "role": invitation.role_uuid,
        "project_role": invitation.project_role_uuid,
        "auto_approve": invitation.auto_approve,
        "auto_create_project": invitation.auto_create_project,
        "allow_multiple_requests": invitation.allow_multiple_requests,
        "project_name_template": invitation.project_name_template,
        "custom_text": invitation.custom_text,
    });
    // Unset options are left out, as a create body leaves them out.
    match terms {
        Value::Object(terms) => terms.into_iter().filter(|(_, value)| !value.is_null()).collect(),
        _ => Map::new(),
    }
}

/// The answer about an invitation whose scope the request has read.
async fn answer_with_scope(
    ctx: &Context,
    request: &ApiRequest,
    invitation: &Invitation,
    scope: scopes::Scope,
    roles: &RoleSet,
    now: &Timestamp,
) -> Result<Value> {
    let mut names = Directory::default();
    names.insert(scope);
    names
        .complete(
            &ctx.store,
            [(
                invitation.scope_type,
                invitation.scope_uuid,
                invitation.customer_uuid,
            )],
        )
        .await?;
    Ok(invitation_json(request, invitation, roles, &names, now))
}

/// Checks an offer's terms (a create body) as the caller is now: the scope they can see, the
/// role and options, and that they may grant what it offers. Answers a new active invitation
/// made by the caller, with the scope and the caller's standing read on the way.
async fn offer(
    ctx: &Context,
    user: &AuthUser,
    object: &Map<String, Value>,
    now: &Timestamp,
) -> Result<(Invitation, scopes::Scope, Access)> {
    let now = *now;
    let scope_url = object
        .get("scope")
        .map(|value| value.as_str().unwrap_or_default());
    let reference = scope_url.and_then(scopes::reference);
    // The caller's grants and the scope, in one read.
    let keys: Vec<(String, String)> = reference
        .iter()
        .map(|(kind, uuid)| (scopes::partition(*kind, uuid), "#META".to_owned()))
        .collect();
    let (access, mut fetched) = Access::load_with(&ctx.store, &ctx.roles, user, &now, &keys).await?;
    let mut errors = FieldErrors::default();
    let scope = match object.get("scope") {
        None | Some(Value::Null) => {
            errors.add("scope", FIELD_REQUIRED);
            None
        }
        Some(_) => {
            let url = scope_url.unwrap_or_default();
            let scope = match (reference, keys.first()) {
                (Some((kind, _)), Some((pk, sk))) => fetched
                    .take_item(pk, sk)
                    .map(|item| scopes::scope_from_item(kind, item))
                    .transpose()?
                    .filter(|s| access.can_see(&ScopeRef::from(s))),
                _ => None,
            };
            if scope.is_none() {
                errors.add("scope", format!("Can't restore object from url: {url}"));
            }
            scope
        }
    };
    let roles = access.roles();
    let role = role_field(object, "role", roles, true, &mut errors);
    let project_role = role_field(object, "project_role", roles, false, &mut errors);
    if project_role
        .as_ref()
        .is_some_and(|r| r.content_type != ContentType::Project)
    {
        errors.add(
            "project_role",
            "Only project roles can be granted on created projects.",
        );
    }
    let auto_approve = validate::boolean(object, "auto_approve", &mut errors).unwrap_or(false);
    let auto_create_project = validate::boolean(object, "auto_create_project", &mut errors).unwrap_or(false);
    let allow_multiple_requests =
        validate::boolean(object, "allow_multiple_requests", &mut errors).unwrap_or(false);
    let template = validate::string(object, "project_name_template", 255, false, true, &mut errors);
    if let Some(template) = &template
        && let Err(Error::Invalid(problems)) = invitations::check_template(template)
    {
        for (field, messages) in problems.iter() {
            messages.iter().for_each(|m| errors.add(field, m.clone()));
        }
    }
    let custom_text =
        validate::string(object, "custom_text", 4000, false, true, &mut errors).unwrap_or_default();
    let (Some(scope), Some(role)) = (scope, role) else {
        return Err(Error::Invalid(errors));
    };
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    let granted_type = if auto_create_project {
        ContentType::Project
    } else {
        scope.content_type()
    };
    if auto_create_project && scope.content_type() != ContentType::Customer {
        return Err(Error::field(
            "auto_create_project",
            "Projects can only be created through an organization invitation.",
        ));
    }
    let effective_role = project_role.as_ref().unwrap_or(&role);
    if auto_create_project && effective_role.content_type != ContentType::Project {
        return Err(Error::field(
            "project_role",
            "project_role is required when auto_create_project is enabled and the invitation role is not project-scoped.",
        ));
    }
    if !auto_create_project && role.content_type != granted_type {
        return Err(Error::non_field(
            "Role and scope should belong to the same content type.",
        ));
    }
    // Offering a role takes being allowed to grant it now: on the scope, or for an
    // auto-created project on a new project of the customer.
    let granted_scope = if auto_create_project {
        scope_ref_of(ContentType::Project, Id::new(), scope.customer_uuid())
    } else {
        ScopeRef::from(&scope)
    };
    access.may_offer(&granted_scope, effective_role)?;
    let invitation = Invitation {
        uuid: Id::new(),
        scope_type: scope.content_type(),
        scope_uuid: scope.uuid(),
        customer_uuid: scope.customer_uuid(),
        role_uuid: role.uuid,
        project_role_uuid: project_role.map(|r| r.uuid),
        auto_approve,
        auto_create_project,
        project_name_template: template,
        custom_text,
        allow_multiple_requests,
        created: time::storage(&now),
        created_by: user.uuid,
        created_by_username: user.username.clone(),
        created_by_full_name: user.full_name.clone(),
        is_active: true,
        edited_by: None,
        expiry: None,
    };
    Ok((invitation, scope, access))
}

async fn list_invitations(ctx: &Context, request: &ApiRequest, user: &AuthUser) -> Result<Response<Body>> {
    let page_request = PageRequest::from_params(&request.params)?;
    let ordering = request.params.ordering(&["created"])?;
    let now = time::now();
    let access = Access::load(&ctx.store, &ctx.roles, user, &now).await?;
    let params = &request.params;
    let roles = access.roles();
    const FILTERS: [&str; 6] = [
        "customer_uuid",
        "is_active",
        "role_uuid",
        "role_name",
        "scope_type",
        "scope",
    ];
    let keyed = Order::unfiltered(params, &FILTERS, &ordering, Order::Descending)
        .filter(|_| access.sees_everything());
    let page = match keyed {
        // Staff and support without filters: a page of the invitations' index partition.
        Some(order) => invitations::listing(&ctx.store, user, order, &page_request).await?,
        None => {
            let mut found = filtered_invitations(ctx, &access, params, &now).await?;
            found.sort_by(|a, b| b.created.cmp(&a.created));
            if ordering.first().is_some_and(|(_, descending)| !descending) {
                found.reverse();
            }
            page::paginate(found, &page_request)?
        }
    };
    let names = Directory::load(
        &ctx.store,
        page.items
            .iter()
            .map(|i| (i.scope_type, i.scope_uuid, i.customer_uuid)),
    )
    .await?;
    Ok(http::page(
        request,
        page.map(|i| invitation_json(request, &i, roles, &names, &now)),
    ))
}

/// The invitations the caller sees that pass the request's filters, in no order.
async fn filtered_invitations(
    ctx: &Context,
    access: &Access,
    params: &Params,
    now: &Timestamp,
) -> Result<Vec<Invitation>> {
    let mut found = if access.sees_everything() {
        invitations::all(&ctx.store).await?
    } else {
        let customer_roles = access.customers_with_customer_role();
        let customers = access.connected_customers();
        let per_customer = shared::store::concurrently(
            customers
                .iter()
                .map(|customer| invitations::of_customer(&ctx.store, customer))
                .collect(),
        )
        .await?;
        let mut found = Vec::new();
        for (customer, offers) in customers.iter().zip(per_customer) {
            for invitation in offers {
                let scope = scope_ref_of(
                    invitation.scope_type,
                    invitation.scope_uuid,
                    invitation.customer_uuid,
                );
                if customer_roles.contains(customer) || access.manages(&scope) {
                    found.push(invitation);
                }
            }
        }
        found
    };
    let roles = access.roles();
    found.retain(|i| {
        params
            .get("customer_uuid")
            .is_none_or(|c| Id::parse(c) == Some(i.customer_uuid))
            && params
                .boolean("is_active")
                .is_none_or(|a| i.is_pending_at(now) == a)
            && params
                .get("role_uuid")
                .is_none_or(|r| Id::parse(r) == Some(i.role_uuid))
            && params
                .get("role_name")
                .is_none_or(|n| roles.get(&i.role_uuid).is_some_and(|r| r.name == n))
            && params
                .get("scope_type")
                .is_none_or(|t| t == i.scope_type.as_str())
            && params.get("scope").is_none_or(|s| {
                Id::from_reference(s, i.scope_type.as_str()).or_else(|| last_path_id(s)) == Some(i.scope_uuid)
            })
    });
    Ok(found)
}

/// The uuid that ends an API URL, whatever its collection.
fn last_path_id(url: &str) -> Option<Id> {
    url.trim_end_matches('/').rsplit('/').next().and_then(Id::parse)
}

/// The invitation, as the caller's credentials read it with the token (or read now).
async fn find_invitation(ctx: &Context, user: &AuthUser, uuid: &str) -> Result<Invitation> {
    let uuid = Id::parse(uuid).ok_or_else(|| Error::not_found(INVITATION))?;
    invitations::get_for(&ctx.store, user, &uuid)
        .await?
        .ok_or_else(|| Error::not_found(INVITATION))
}

/// Any authenticated user may read an invitation by its uuid (it is what they are given).
async fn retrieve_invitation(
    ctx: &Context,
    request: &ApiRequest,
    user: &AuthUser,
    uuid: &str,
) -> Result<Response<Body>> {
    let now = time::now();
    let (invitation, roles) = tokio::try_join!(find_invitation(ctx, user, uuid), ctx.roles.get(&ctx.store))?;
    let names = Directory::load(
        &ctx.store,
        [(
            invitation.scope_type,
            invitation.scope_uuid,
            invitation.customer_uuid,
        )],
    )
    .await?;
    Ok(http::json(
        StatusCode::OK,
        &invitation_json(request, &invitation, &roles, &names, &now),
    ))
}

/// `GET …/{uuid}/projects/`: the projects of a customer invitation's customer, `{uuid, url}`
/// each (paginated); a project invitation has none to offer: 404 with an empty body (Waldur).
/// Like the invitation itself, open to any authenticated user.
async fn invitation_projects(
    ctx: &Context,
    request: &ApiRequest,
    user: &AuthUser,
    uuid: &str,
) -> Result<Response<Body>> {
    let page_request = PageRequest::from_params(&request.params)?;
    let invitation = find_invitation(ctx, user, uuid).await?;
    if invitation.scope_type != ContentType::Customer {
        return Ok(http::empty(StatusCode::NOT_FOUND));
    }
    let mut projects = scopes::projects_of(&ctx.store, &invitation.customer_uuid).await?;
    projects.sort_by(|a, b| a.created.cmp(&b.created));
    let page = page::paginate(projects, &page_request)?;
    Ok(http::page(
        request,
        page.map(|p| {
            json!({
                "uuid": p.uuid,
                "url": request.url(&format!("/api/projects/{}/", p.uuid)),
            })
        }),
    ))
}

/// The invitation with the caller's standing, in one read, if the caller manages its scope
/// (else 403).
async fn managed_invitation(
    ctx: &Context,
    user: &AuthUser,
    uuid: &str,
    now: &Timestamp,
) -> Result<(Access, Invitation)> {
    let uuid = Id::parse(uuid).ok_or_else(|| Error::not_found(INVITATION))?;
    let key = invitations::invitation_item_key(&uuid);
    let (access, mut fetched) =
        Access::load_with(&ctx.store, &ctx.roles, user, now, std::slice::from_ref(&key)).await?;
    let invitation = fetched
        .take_item(&key.0, &key.1)
        .map(invitations::invitation_from_item)
        .transpose()?
        .ok_or_else(|| Error::not_found(INVITATION))?;
    let scope = scope_ref_of(
        invitation.scope_type,
        invitation.scope_uuid,
        invitation.customer_uuid,
    );
    if !access.manages(&scope) {
        return Err(Error::PermissionDenied);
    }
    Ok((access, invitation))
}

async fn cancel_invitation(ctx: &Context, user: &AuthUser, uuid: &str) -> Result<Response<Body>> {
    let now = time::now();
    // The cancellation then reads the invitation's pending requests, to end them with it.
    let (_, invitation) = managed_invitation(ctx, user, uuid, &now).await?;
    if !invitation.is_pending_at(&now) {
        return Err(Error::rejected("Only pending invitation can be canceled."));
    }
    invitations::cancel(&ctx.store, user, &invitation, &now).await?;
    Ok(http::json(
        StatusCode::OK,
        &json!({"detail": "Invitation has been successfully canceled."}),
    ))
}

async fn submit_request(ctx: &Context, user: &AuthUser, uuid: &str) -> Result<Response<Body>> {
    let now = time::now();
    let (invitation, roles) = tokio::try_join!(find_invitation(ctx, user, uuid), ctx.roles.get(&ctx.store))?;
    // The requester (whose grants the request must not duplicate), the invitation's decider (who
    // decides an auto-approval as they are now) and the names of the answer, in one read.
    let [requester_key, creator_key] = invitations::submit_keys(&user.uuid, &invitation);
    let mut keys = Directory::keys([(
        invitation.scope_type,
        invitation.scope_uuid,
        invitation.customer_uuid,
    )]);
    keys.push(requester_key.clone());
    if creator_key != requester_key {
        keys.push(creator_key.clone());
    }
    let fetched = Fetched::new(ctx.store.batch_get_items(&keys).await?);
    let requester: User = fetched
        .peek(&requester_key.0, &requester_key.1)?
        .ok_or_else(|| Error::not_found("User"))?;
    let creator: Option<User> = fetched.peek(&creator_key.0, &creator_key.1)?;
    let mut names = Directory::default();
    names.add_items(fetched.into_items())?;
    let read = invitations::SubmitRead {
        requester: &requester,
        creator: creator.as_ref(),
        known: &names,
    };
    let submitted = invitations::submit(&ctx.store, &roles, user, &invitation, read, &now).await?;
    let request = &submitted.request;
    Ok(http::json(
        StatusCode::OK,
        &json!({
            "uuid": request.uuid,
            "scope_name": names.scope_name(invitation.scope_type, &invitation.scope_uuid),
            "scope_uuid": invitation.scope_uuid,
            "scope_type": invitation.scope_type.as_str(),
            "auto_approved": submitted.auto_approved,
            "project_uuid": request.project_uuid,
            "project_created": submitted.auto_approved.then_some(submitted.project_created),
        }),
    ))
}

fn invitation_json(
    request: &ApiRequest,
    i: &Invitation,
    roles: &RoleSet,
    names: &Directory,
    now: &Timestamp,
) -> Value {
    let role = roles.get(&i.role_uuid);
    json!({
        "scope_uuid": i.scope_uuid,
        "scope_name": names.scope_name(i.scope_type, &i.scope_uuid),
        "scope_description": names.scope_description(i.scope_type, &i.scope_uuid),
        "scope_type": i.scope_type.as_str(),
        "scope_image": null,
        "customer_uuid": i.customer_uuid,
        "customer_name": names.customer(&i.customer_uuid).map(|c| c.name.as_str()),
        "role_name": role.map(|r| r.name.as_str()),
        "role_description": role.map(|r| r.description.as_str()),
        "created_by_full_name": i.created_by_full_name,
        "created_by_username": i.created_by_username,
        "created_by_image": null,
        "url": request.url(&format!("/api/user-group-invitations/{}/", i.uuid)),
        "uuid": i.uuid,
        "role": i.role_uuid,
        "project_role": i.project_role_uuid,
        "created": time::wire_stored(&i.created),
        "expires": time::wire(&i.expires()),
        "is_active": i.is_pending_at(now),
        "auto_approve": i.auto_approve,
        "auto_create_project": i.auto_create_project,
        "project_name_template": i.project_name_template,
        "custom_text": i.custom_text,
        "allow_multiple_requests": i.allow_multiple_requests,
    })
}

// --- permission requests --------------------------------------------------------------------

/// Requests the caller sees: their own, and those of scopes they manage; all for staff and
/// support.
async fn visible_requests(ctx: &Context, access: &Access) -> Result<Vec<PermissionRequest>> {
    if access.sees_everything() {
        return invitations::all_requests(&ctx.store).await;
    }
    let customers = access.connected_customers();
    let (mut found, per_customer) = tokio::try_join!(
        invitations::requests_of_user(&ctx.store, &access.user.uuid),
        shared::store::concurrently(
            customers
                .iter()
                .map(|customer| invitations::requests_of_customer(&ctx.store, customer))
                .collect(),
        ),
    )?;
    for requests in per_customer {
        for request in requests {
            let scope = scope_ref_of(request.scope_type, request.scope_uuid, request.customer_uuid);
            if access.manages(&scope) && request.created_by != access.user.uuid {
                found.push(request);
            }
        }
    }
    Ok(found)
}

fn can_see_request(access: &Access, request: &PermissionRequest) -> bool {
    let scope = scope_ref_of(request.scope_type, request.scope_uuid, request.customer_uuid);
    access.sees_everything() || request.created_by == access.user.uuid || access.manages(&scope)
}

async fn list_requests(ctx: &Context, request: &ApiRequest, user: &AuthUser) -> Result<Response<Body>> {
    let page_request = PageRequest::from_params(&request.params)?;
    let ordering = request.params.ordering(&["created", "state"])?;
    let now = time::now();
    let access = Access::load(&ctx.store, &ctx.roles, user, &now).await?;
    let params = &request.params;
    const FILTERS: [&str; 5] = ["created_by", "customer_uuid", "invitation", "scope", "state"];
    let keyed = Order::unfiltered(params, &FILTERS, &ordering, Order::Descending)
        .filter(|_| access.sees_everything());
    let page = match keyed {
        // Staff and support without filters: a page of the requests' index partition.
        Some(order) => invitations::requests_listing(&ctx.store, user, order, &page_request).await?,
        None => {
            let mut found = filtered_requests(ctx, &access, params, &now).await?;
            found.sort_by(|a, b| b.created.cmp(&a.created));
            for (field, descending) in ordering.iter().rev() {
                found.sort_by(|a, b| {
                    let order = match field.as_str() {
                        "state" => a.state_at(&now).as_str().cmp(b.state_at(&now).as_str()),
                        _ => a.created.cmp(&b.created),
                    };
                    if *descending { order.reverse() } else { order }
                });
            }
            page::paginate(found, &page_request)?
        }
    };
    let names = Directory::load(&ctx.store, page.items.iter().map(request_scope)).await?;
    let roles = access.roles();
    Ok(http::page(
        request,
        page.map(|r| request_json(request, &r, roles, &names, &now)),
    ))
}

/// The requests the caller sees that pass the request's filters, in no order.
async fn filtered_requests(
    ctx: &Context,
    access: &Access,
    params: &Params,
    now: &Timestamp,
) -> Result<Vec<PermissionRequest>> {
    let states = params.get_all("state");
    Ok(visible_requests(ctx, access)
        .await?
        .into_iter()
        .filter(|r| {
            params
                .get("created_by")
                .is_none_or(|u| Id::parse(u) == Some(r.created_by))
                && params
                    .get("customer_uuid")
                    .is_none_or(|c| Id::parse(c) == Some(r.customer_uuid))
                && params
                    .get("invitation")
                    .is_none_or(|i| Id::parse(i).or_else(|| last_path_id(i)) == Some(r.invitation_uuid))
                && params
                    .get("scope")
                    .is_none_or(|s| Id::parse(s).or_else(|| last_path_id(s)) == Some(r.scope_uuid))
                && (states.is_empty() || states.contains(&r.state_at(now).as_str()))
        })
        .collect())
}

fn request_scope(request: &PermissionRequest) -> (ContentType, Id, Id) {
    (request.scope_type, request.scope_uuid, request.customer_uuid)
}

/// The request, then the caller's standing, the request's scope names and the items at
/// `extra(request)` in one read; a request the caller cannot see is not found.
async fn visible_request(
    ctx: &Context,
    user: &AuthUser,
    uuid: &str,
    now: &Timestamp,
    extra: impl Fn(&PermissionRequest) -> Vec<(String, String)>,
) -> Result<(Access, PermissionRequest, Fetched)> {
    let not_found = || Error::not_found(REQUEST);
    let uuid = Id::parse(uuid).ok_or_else(not_found)?;
    let found = invitations::get_request_for(&ctx.store, user, &uuid)
        .await?
        .ok_or_else(not_found)?;
    let mut keys = Directory::keys([request_scope(&found)]);
    keys.extend(extra(&found));
    let (access, fetched) = Access::load_with(&ctx.store, &ctx.roles, user, now, &keys).await?;
    if !can_see_request(&access, &found) {
        return Err(not_found());
    }
    Ok((access, found, fetched))
}

fn names_of(fetched: Fetched) -> Result<Directory> {
    let mut names = Directory::default();
    names.add_items(fetched.into_items())?;
    Ok(names)
}

/// `DELETE /api/user-permission-requests/{uuid}/`: staff only (others 403, or 404 when they
/// cannot see it).
async fn delete_request(ctx: &Context, user: &AuthUser, uuid: &str) -> Result<Response<Body>> {
    let now = time::now();
    let (_, found, _) = visible_request(ctx, user, uuid, &now, |_| Vec::new()).await?;
    if !user.is_staff {
        return Err(Error::PermissionDenied);
    }
    invitations::delete_request(&ctx.store, user, &found, &now).await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

async fn retrieve_request(
    ctx: &Context,
    request: &ApiRequest,
    user: &AuthUser,
    uuid: &str,
) -> Result<Response<Body>> {
    let now = time::now();
    let (access, found, fetched) = visible_request(ctx, user, uuid, &now, |_| Vec::new()).await?;
    let names = names_of(fetched)?;
    Ok(http::json(
        StatusCode::OK,
        &request_json(request, &found, access.roles(), &names, &now),
    ))
}

/// Approve or reject: invisible → 404; not pending → 409 (before the permission check, as in
/// Waldur); not a manager of the scope, or the requester themself → 403; then the comment.
async fn decide(
    ctx: &Context,
    request: &ApiRequest,
    user: &AuthUser,
    uuid: &str,
    approve: bool,
) -> Result<Response<Body>> {
    let now = time::now();
    // Approving reads the invitation and the requester too: they come with the first read.
    let (access, found, mut fetched) = visible_request(ctx, user, uuid, &now, |found| {
        if approve {
            invitations::approval_keys(found).to_vec()
        } else {
            Vec::new()
        }
    })
    .await?;
    if found.state_at(&now) != State::Pending {
        return Err(Error::Conflict(invitations::VALID_STATES_PENDING.into()));
    }
    let scope = scope_ref_of(found.scope_type, found.scope_uuid, found.customer_uuid);
    if !access.manages(&scope) || found.created_by == user.uuid {
        return Err(Error::PermissionDenied);
    }
    let body = request.json()?;
    let empty = Map::new();
    let object = validate::object(body.as_ref(), &empty)?;
    let mut errors = FieldErrors::default();
    let comment = validate::string(object, "comment", 2000, false, false, &mut errors);
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    if approve {
        let [(invitation_pk, invitation_sk), (user_pk, user_sk)] = invitations::approval_keys(&found);
        let invitation = fetched
            .take_item(&invitation_pk, &invitation_sk)
            .map(invitations::invitation_from_item)
            .transpose()?;
        let requester: Option<User> = fetched.take(&user_pk, &user_sk)?;
        let known = names_of(fetched)?;
        invitations::approve(
            &ctx.store,
            &access,
            &found,
            (invitation, requester, &known),
            comment,
            &now,
        )
        .await?;
    } else {
        invitations::reject(&ctx.store, user, &found, comment, &now).await?;
    }
    Ok(http::empty(StatusCode::OK))
}

async fn cancel_request(ctx: &Context, user: &AuthUser, uuid: &str) -> Result<Response<Body>> {
    let now = time::now();
    let (_, found, fetched) = visible_request(ctx, user, uuid, &now, |_| Vec::new()).await?;
    let names = names_of(fetched)?;
    if found.created_by != user.uuid && !user.is_staff {
        return Err(Error::Forbidden(
            "You can only cancel your own permission requests.".into(),
        ));
    }
    invitations::cancel_request(&ctx.store, user, &found, &now).await?;
    Ok(http::json(
        StatusCode::OK,
        &json!({
            "uuid": found.uuid,
            "scope_name": names.scope_name(found.scope_type, &found.scope_uuid),
            "scope_uuid": found.scope_uuid,
        }),
    ))
}

fn request_json(
    request: &ApiRequest,
    r: &PermissionRequest,
    roles: &RoleSet,
    names: &Directory,
    now: &Timestamp,
) -> Value {
    let role = roles.get(&r.role_uuid);
    json!({
        "url": request.url(&format!("/api/user-permission-requests/{}/", r.uuid)),
        "uuid": r.uuid,
        "invitation": request.url(&format!("/api/user-group-invitations/{}/", r.invitation_uuid)),
        "state": r.state_at(now).as_str(),
        "created": time::wire_stored(&r.created),
        "created_by_full_name": r.created_by_full_name,
        "created_by_username": r.created_by_username,
        "created_by_email": r.created_by_email,
        "reviewed_by_full_name": r.reviewed_by_full_name,
        "reviewed_by_username": r.reviewed_by_username,
        "reviewed_at": r.reviewed_at.as_deref().map(time::wire_stored),
        "review_comment": r.review_comment,
        "scope_uuid": r.scope_uuid,
        "scope_name": names.scope_name(r.scope_type, &r.scope_uuid),
        "scope_type": r.scope_type.as_str(),
        "customer_uuid": r.customer_uuid,
        "customer_name": names.customer(&r.customer_uuid).map(|c| c.name.as_str()),
        "role_name": role.map(|x| x.name.as_str()),
        "role_description": role.map(|x| x.description.as_str()),
        "project_name_template": r.project_name_template,
        "project_uuid": r.project_uuid,
    })
}
