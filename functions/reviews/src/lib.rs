//! `/api/customer-permissions-reviews/` and `/api/project-permissions-reviews/`: list, retrieve
//! and close. Reviews are opened by the scheduler, never through the API.

use std::collections::HashMap;

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};

use shared::auth::{self, AuthUser};
use shared::authz::{self, Access, ScopeRef};
use shared::http::{self, ApiRequest};
use shared::ids::Id;
use shared::page::{self, PageRequest};
use shared::reviews::{self, Review};
use shared::roles::ContentType;
use shared::scopes;
use shared::time;
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
    let principal = auth::authenticate(&ctx.store, request.authorization()).await?;
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
            let (_, review) = visible_review(ctx, user, kind, uuid).await?;
            let names = Names::load(ctx, std::slice::from_ref(&review)).await?;
            Ok(http::json(StatusCode::OK, &review_json(request, &review, &names)))
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

fn scope_of(review: &Review) -> ScopeRef {
    ScopeRef {
        content_type: review.scope_type,
        uuid: review.scope_uuid,
        customer_uuid: review.customer_uuid,
    }
}

async fn visible_review(
    ctx: &Context,
    user: &AuthUser,
    kind: ContentType,
    uuid: &str,
) -> Result<(Access, Review)> {
    let not_found = || Error::not_found(model(kind));
    let uuid = Id::parse(uuid).ok_or_else(not_found)?;
    let now = time::now();
    let (access, review) = tokio::try_join!(
        Access::load(&ctx.store, &ctx.roles, user, &now),
        reviews::get(&ctx.store, &uuid)
    )?;
    let review = review
        .filter(|r| r.scope_type == kind && access.can_see(&scope_of(r)))
        .ok_or_else(not_found)?;
    Ok((access, review))
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
    let mut found = if access.sees_everything() {
        reviews::all(&ctx.store, kind).await?
    } else {
        let mut found = Vec::new();
        for scope in authz::visible_scopes(&ctx.store, &access).await? {
            if scope.content_type == kind {
                found.extend(reviews::of_scope(&ctx.store, kind, &scope.uuid).await?);
            }
        }
        found
    };
    let params = &request.params;
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
    let page = page::paginate(found, &page_request)?;
    let names = Names::load(ctx, &page.items).await?;
    Ok(http::page(
        request,
        page.map(|r| review_json(request, &r, &names)),
    ))
}

/// Closing is for the customer's owners (whoever may update the customer) and staff; Waldur
/// lets anyone who sees the review close it, we are stricter on purpose.
async fn close(ctx: &Context, user: &AuthUser, kind: ContentType, uuid: &str) -> Result<Response<Body>> {
    let (access, review) = visible_review(ctx, user, kind, uuid).await?;
    let customer = ScopeRef {
        content_type: ContentType::Customer,
        uuid: review.customer_uuid,
        customer_uuid: review.customer_uuid,
    };
    if !access.has_permission("CUSTOMER.UPDATE", &customer) {
        return Err(Error::PermissionDenied);
    }
    if !review.is_pending {
        return Err(Error::rejected("Review is already closed."));
    }
    reviews::close(&ctx.store, user, &review, &time::now()).await?;
    Ok(http::empty(StatusCode::OK))
}

struct Names {
    customers: HashMap<Id, String>,
    projects: HashMap<Id, String>,
}

impl Names {
    async fn load(ctx: &Context, found: &[Review]) -> Result<Self> {
        let customer_ids: Vec<Id> = found.iter().map(|r| r.customer_uuid).collect();
        let project_ids: Vec<Id> = found
            .iter()
            .filter(|r| r.scope_type == ContentType::Project)
            .map(|r| r.scope_uuid)
            .collect();
        let (customers, projects) = tokio::try_join!(
            scopes::customers_by_id(&ctx.store, &customer_ids),
            scopes::projects_by_id(&ctx.store, &project_ids)
        )?;
        Ok(Names {
            customers: customers.into_iter().map(|c| (c.uuid, c.name)).collect(),
            projects: projects.into_iter().map(|p| (p.uuid, p.name)).collect(),
        })
    }
}

/// Waldur's review item; `reviewer_*` and `closed` are null while pending (the official client
/// requires the keys).
fn review_json(request: &ApiRequest, review: &Review, names: &Names) -> Value {
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
        "customer_name": names.customers.get(&review.customer_uuid),
    });
    if review.scope_type == ContentType::Project
        && let Some(object) = value.as_object_mut()
    {
        object.insert("project_uuid".into(), json!(review.scope_uuid));
        object.insert(
            "project_name".into(),
            json!(names.projects.get(&review.scope_uuid)),
        );
    }
    value
}
