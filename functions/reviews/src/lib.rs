//! `/api/customer-permissions-reviews/` and `/api/project-permissions-reviews/`: list, retrieve,
//! close, the grants a review covers (`permissions/`) and revoking them from it (`revoke/`).
//! Reviews are opened by the scheduler, never through the API.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::{Map, Value, json};

use shared::auth::{self, AuthUser};
use shared::authz::{self, Access, RoleSet, ScopeRef};
use shared::error::FieldErrors;
use shared::grants::{self, NewGrant};
use shared::http::{self, ApiRequest};
use shared::ids::Id;
use shared::page::{self, Order, PageRequest, Params};
use shared::reviews::{self, Entry, Review};
use shared::roles::ContentType;
use shared::scopes::{self, Directory};
use shared::store::Fetched;
use shared::time;
use shared::users::User;
use shared::validate;
use shared::{Context, Error, Result};

pub async fn handle(ctx: &Context, request: Request) -> Response<Body> {
    http::respond(request, async |request| route(ctx, request).await).await
}

fn kind(collection: &str) -> Option<ContentType> {
    match collection {
        "customer-permissions-reviews" => Some(ContentType::Customer),
        "project-permissions-reviews" => Some(ContentType::Project),
        _ => None,
    }
}

fn model(kind: ContentType) -> &'static str {
    if kind == ContentType::Customer {
        "CustomerPermissionReview"
    } else {
        "ProjectPermissionReview"
    }
}

async fn route(ctx: &Context, request: &ApiRequest) -> Result<Response<Body>> {
    let principal = auth::authenticate(&ctx.store, request.credentials()).await?;
    let user = principal.require_user()?;
    let segments = request.segments().ok_or_else(http::no_route)?;
    let readable = matches!(request.method, Method::GET | Method::HEAD);
    match segments.as_slice() {
        ["api", collection] if readable && kind(collection).is_some() => {
            list(
                ctx,
                request,
                user,
                kind(collection).unwrap_or(ContentType::Customer),
            )
            .await
        }
        ["api", collection, uuid] if readable && kind(collection).is_some() => {
            let kind = kind(collection).unwrap_or(ContentType::Customer);
            let (_, review, names) = visible_review(ctx, user, kind, uuid).await?;
            Ok(http::json(StatusCode::OK, &review_json(request, &review, &names)))
        }
        ["api", collection, uuid, "permissions"] if readable && kind(collection).is_some() => {
            permissions(
                ctx,
                request,
                user,
                kind(collection).unwrap_or(ContentType::Customer),
                uuid,
            )
            .await
        }
        ["api", collection, uuid, "revoke"]
            if request.method == Method::POST && kind(collection).is_some() =>
        {
            revoke(
                ctx,
                request,
                user,
                kind(collection).unwrap_or(ContentType::Customer),
                uuid,
            )
            .await
        }
        ["api", collection, uuid, "close"]
            if request.method == Method::POST && kind(collection).is_some() =>
        {
            close(ctx, user, kind(collection).unwrap_or(ContentType::Customer), uuid).await
        }
        ["api", collection, ..] if kind(collection).is_some() => {
            Err(http::method_not_allowed(request, &["GET", "HEAD"]))
        }
        _ => Err(http::no_route()),
    }
}

fn scope_triple(review: &Review) -> (ContentType, Id, Id) {
    (review.scope_type, review.scope_uuid, review.customer_uuid)
}

fn scope_of(review: &Review) -> ScopeRef {
    ScopeRef {
        content_type: review.scope_type,
        uuid: review.scope_uuid,
        customer_uuid: review.customer_uuid,
    }
}

/// The review (read with the token), then the caller's standing and the review's scope names
/// in one read; a review the caller cannot see is not found.
async fn visible_review(
    ctx: &Context,
    user: &AuthUser,
    kind: ContentType,
    uuid: &str,
) -> Result<(Access, Review, Directory)> {
    let uuid = Id::parse(uuid).ok_or_else(|| Error::not_found(model(kind)))?;
    let review = reviews::get_for(&ctx.store, user, &uuid).await?;
    authorize(ctx, user, kind, review).await
}

/// As `visible_review`, with the review's entries, which share its partition (one Query).
async fn visible_review_with_entries(
    ctx: &Context,
    user: &AuthUser,
    kind: ContentType,
    uuid: &str,
) -> Result<(Access, Review, Vec<Entry>)> {
    let uuid = Id::parse(uuid).ok_or_else(|| Error::not_found(model(kind)))?;
    let (review, entries) = reviews::with_entries(&ctx.store, &uuid)
        .await?
        .ok_or_else(|| Error::not_found(model(kind)))?;
    let (access, review, _) = authorize(ctx, user, kind, Some(review)).await?;
    Ok((access, review, entries))
}

async fn authorize(
    ctx: &Context,
    user: &AuthUser,
    kind: ContentType,
    review: Option<Review>,
) -> Result<(Access, Review, Directory)> {
    let not_found = || Error::not_found(model(kind));
    let review = review.filter(|r| r.scope_type == kind).ok_or_else(not_found)?;
    let (access, fetched) = Access::load_with(
        &ctx.store,
        &ctx.roles,
        user,
        &time::now(),
        &Directory::keys([scope_triple(&review)]),
    )
    .await?;
    if !access.can_see_reviews_of(&scope_of(&review)) {
        return Err(not_found());
    }
    let mut names = Directory::default();
    names.add_items(fetched.into_items())?;
    Ok((access, review, names))
}

async fn list(
    ctx: &Context,
    request: &ApiRequest,
    user: &AuthUser,
    kind: ContentType,
) -> Result<Response<Body>> {
    let page_request = PageRequest::from_params(&request.params)?;
    let ordering = request.params.ordering(&["created", "closed"])?;
    let access = Access::load(&ctx.store, &ctx.roles, user, &time::now()).await?;
    let params = &request.params;
    const FILTERS: [&str; 5] = [
        "customer_uuid",
        "project_uuid",
        "reviewer_uuid",
        "is_pending",
        "closed",
    ];
    let keyed =
        Order::unfiltered(params, &FILTERS, &ordering, Order::Ascending).filter(|_| access.sees_everything());
    let (page, mut names) = match keyed {
        // Staff and support without filters: a page of the reviews' index partition.
        Some(order) => (
            reviews::listing(&ctx.store, user, kind, order, &page_request).await?,
            Directory::default(),
        ),
        None => {
            let (mut found, names) = filtered_reviews(ctx, &access, params, kind).await?;
            for (field, descending) in ordering.iter().rev() {
                found.sort_by(|a, b| {
                    let order = if field == "closed" {
                        a.closed.cmp(&b.closed)
                    } else {
                        a.created.cmp(&b.created)
                    };
                    if *descending { order.reverse() } else { order }
                });
            }
            (page::paginate(found, &page_request)?, names)
        }
    };
    names
        .complete(&ctx.store, page.items.iter().map(scope_triple))
        .await?;
    Ok(http::page(
        request,
        page.map(|r| review_json(request, &r, &names)),
    ))
}

/// The reviews of `kind` the caller sees that pass the request's filters, in index order, with
/// the scopes read on the way.
async fn filtered_reviews(
    ctx: &Context,
    access: &Access,
    params: &Params,
    kind: ContentType,
) -> Result<(Vec<Review>, Directory)> {
    let mut names = Directory::default();
    let mut found = if access.sees_everything() {
        reviews::all(&ctx.store, kind).await?
    } else {
        let (scopes, read) = authz::visible_scopes(&ctx.store, access, kind == ContentType::Project).await?;
        names = read;
        let reviewed = scopes
            .iter()
            .filter(|scope| scope.content_type == kind && access.can_see_reviews_of(scope));
        shared::store::concurrently(
            reviewed
                .map(|scope| reviews::of_scope(&ctx.store, kind, &scope.uuid))
                .collect(),
        )
        .await?
        .into_iter()
        .flatten()
        .collect()
    };
    let closed = params.get("closed").and_then(time::parse_input);
    found.retain(|r| {
        params
            .get("customer_uuid")
            .is_none_or(|c| Id::parse(c) == Some(r.customer_uuid))
            && params
                .get("project_uuid")
                .is_none_or(|p| Id::parse(p) == Some(r.scope_uuid))
            && params
                .get("reviewer_uuid")
                .is_none_or(|u| Id::parse(u) == r.reviewer_uuid)
            && params.boolean("is_pending").is_none_or(|p| r.is_pending == p)
            && closed.is_none_or(|c| r.closed.as_deref().and_then(time::parse_stored) == Some(c))
    });
    Ok((found, names))
}

/// Deciding a review (closing it, revoking from it) is for the customer's owners (whoever may
/// update the customer) and staff; Waldur lets anyone who sees the review close it, we are
/// stricter on purpose.
fn require_reviewer(access: &Access, review: &Review) -> Result<()> {
    let customer = ScopeRef {
        content_type: ContentType::Customer,
        uuid: review.customer_uuid,
        customer_uuid: review.customer_uuid,
    };
    if access.has_permission("CUSTOMER.UPDATE", &customer) {
        Ok(())
    } else {
        Err(Error::PermissionDenied)
    }
}

async fn close(ctx: &Context, user: &AuthUser, kind: ContentType, uuid: &str) -> Result<Response<Body>> {
    let (access, review, _) = visible_review(ctx, user, kind, uuid).await?;
    require_reviewer(&access, &review)?;
    if !review.is_pending {
        return Err(Error::rejected("Review is already closed."));
    }
    reviews::close(&ctx.store, user, &review, &time::now()).await?;
    Ok(http::empty(StatusCode::OK))
}

/// The grants the review covers, as they stood when it opened, with the decisions taken.
async fn permissions(
    ctx: &Context,
    request: &ApiRequest,
    user: &AuthUser,
    kind: ContentType,
    uuid: &str,
) -> Result<Response<Body>> {
    let page_request = PageRequest::from_params(&request.params)?;
    let (access, _, mut entries) = visible_review_with_entries(ctx, user, kind, uuid).await?;
    entries.sort_by(|a, b| a.member.grant.created.cmp(&b.member.grant.created));
    let roles = access.roles();
    let page = page::paginate(entries, &page_request)?;
    Ok(http::page(request, page.map(|e| entry_json(&e, roles))))
}

/// Revokes a grant the review covers: `{user, role, scope}` (role by uuid or name, scope by
/// uuid or API URL). The decision is kept on the review.
async fn revoke(
    ctx: &Context,
    request: &ApiRequest,
    user: &AuthUser,
    kind: ContentType,
    uuid: &str,
) -> Result<Response<Body>> {
    let (access, review, entries) = visible_review_with_entries(ctx, user, kind, uuid).await?;
    require_reviewer(&access, &review)?;
    if !review.is_pending {
        return Err(Error::rejected("Review is already closed."));
    }
    let body = request.json()?;
    let empty = Map::new();
    let object = validate::object(body.as_ref(), &empty)?;
    let mut errors = FieldErrors::default();
    let mut reference = |field: &str| {
        let text = validate::string(object, field, 500, true, false, &mut errors);
        text.map(|t| {
            (
                t.clone(),
                Id::parse(&t).or_else(|| t.trim_end_matches('/').rsplit('/').next().and_then(Id::parse)),
            )
        })
    };
    let (target, role, scope) = (reference("user"), reference("role"), reference("scope"));
    let (Some((_, Some(target))), Some((role_text, _)), Some((_, Some(scope)))) = (target, role, scope)
    else {
        if errors.is_empty() {
            errors.add("non_field_errors", "user and scope must be uuids or API URLs.");
        }
        return Err(Error::Invalid(errors));
    };
    let roles = access.roles();
    let role = roles
        .find(&role_text)
        .cloned()
        .ok_or_else(|| Error::field("role", "Role is not found."))?;
    let entry = entries
        .into_iter()
        .find(|e| {
            e.member.grant.user_uuid == target
                && e.member.grant.role_uuid == role.uuid
                && e.member.grant.scope_uuid == scope
        })
        .ok_or_else(|| Error::non_field("This grant is not part of the review."))?;
    let now = time::now();
    let grant = &entry.member.grant;
    // The live scope, the user and their grant, in one read.
    let scope_key = (
        scopes::partition(grant.scope_type, &grant.scope_uuid),
        "#META".to_owned(),
    );
    let user_key = User::key(&grant.user_uuid);
    let grant_key = grants::user_side_key(grant);
    let mut fetched = Fetched::new(
        ctx.store
            .batch_get_items(&[scope_key.clone(), user_key.clone(), grant_key.clone()])
            .await?,
    );
    let live_scope = fetched
        .take_item(&scope_key.0, &scope_key.1)
        .map(|item| scopes::scope_from_item(grant.scope_type, item))
        .transpose()?;
    let target_user: Option<User> = fetched.take(&user_key.0, &user_key.1)?;
    let live = fetched
        .take_item(&grant_key.0, &grant_key.1)
        .map(grants::user_side_from_item)
        .transpose()?
        .filter(|g| g.uuid == grant.uuid);
    // A project moved to another customer since the review opened is no longer the
    // reviewers' to decide on.
    if live_scope
        .as_ref()
        .is_some_and(|s| s.customer_uuid() != review.customer_uuid)
    {
        return Err(Error::rejected("This grant is no longer in this organization."));
    }
    let decided = match (live_scope, target_user) {
        (Some(live_scope), Some(target_user)) => {
            let new = NewGrant {
                scope: &live_scope,
                user: &target_user,
                role: &role,
                expiration_time: None,
                granted_by: Some(user),
            };
            reviews::revoke_entry(
                &ctx.store,
                user,
                &review,
                &entry,
                live.as_ref().map(|g| (g, &new)),
                &now,
            )
            .await?
        }
        _ => reviews::revoke_entry(&ctx.store, user, &review, &entry, None, &now).await?,
    };
    Ok(http::json(StatusCode::OK, &entry_json(&decided, roles)))
}

fn entry_json(entry: &Entry, roles: &RoleSet) -> Value {
    let grant = &entry.member.grant;
    let names = &entry.member.names;
    json!({
        "grant_uuid": grant.uuid,
        "user_uuid": grant.user_uuid,
        "user_username": names.user_username,
        "user_full_name": names.user_full_name,
        "user_email": names.user_email,
        "role_uuid": grant.role_uuid,
        "role_name": roles.get(&grant.role_uuid).map(|r| r.name.as_str()),
        "scope_type": grant.scope_type.as_str(),
        "scope_uuid": grant.scope_uuid,
        "created": time::wire_stored(&grant.created),
        "expiration_time": grant.expiration_time.as_deref().map(time::wire_stored),
        "revoked": entry.revoked_at.is_some(),
        "revoked_by_username": entry.revoked_by_username,
        "revoked_at": entry.revoked_at.as_deref().map(time::wire_stored),
    })
}

/// Waldur's review item; `reviewer_*` and `closed` are null while pending (the official client
/// requires the keys).
fn review_json(request: &ApiRequest, review: &Review, names: &Directory) -> Value {
    let collection = if review.scope_type == ContentType::Customer {
        "customer-permissions-reviews"
    } else {
        "project-permissions-reviews"
    };
    let mut value = json!({
        "url": request.url(&format!("/api/{collection}/{}/", review.uuid)),
        "uuid": review.uuid,
        "reviewer_full_name": review.reviewer_full_name,
        "reviewer_uuid": review.reviewer_uuid,
        "is_pending": review.is_pending,
        "created": time::wire_stored(&review.created),
        "closed": review.closed.as_deref().map(time::wire_stored),
        "customer_uuid": review.customer_uuid,
        "customer_name": names.customer(&review.customer_uuid).map(|c| c.name.as_str()),
    });
    if review.scope_type == ContentType::Project
        && let Some(object) = value.as_object_mut()
    {
        object.insert("project_uuid".into(), json!(review.scope_uuid));
        object.insert(
            "project_name".into(),
            json!(names.project(&review.scope_uuid).map(|p| p.name.as_str())),
        );
    }
    value
}
