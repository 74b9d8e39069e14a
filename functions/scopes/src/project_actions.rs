//! The detail actions of a project beyond its grants — `other_users/`, `set_slug/`,
//! `sync_user_roles/`, `recover/`, `move_project/` — and `POST /api/customers/{uuid}/contact/`.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use serde_json::{Map, json};

use shared::auth::AuthUser;
use shared::authz::ScopeRef;
use shared::grants;
use shared::http::{self, ApiRequest};
use shared::ids::Id;
use shared::page::{self, PageRequest};
use shared::project_move;
use shared::roles::ContentType;
use shared::scopes::{self, Scope, ScopeInput};
use shared::time;
use shared::users;
use shared::{Context, Error, Result};

use crate::{project_json, visible_scope};

/// `GET /api/projects/{uuid}/other_users/`: the users who hold a role in the customer's other
/// projects that the caller is connected to (all of them for staff and support), who could be
/// added to this one; Waldur's BasicUser rows, by name.
pub async fn other_users(
    ctx: &Context,
    request: &ApiRequest,
    user: &AuthUser,
    uuid: &str,
) -> Result<Response<Body>> {
    let page_request = PageRequest::from_params(&request.params)?;
    let (access, scope) = visible_scope(ctx, user, ContentType::Project, uuid).await?;
    let others: Vec<Id> = scopes::projects_of(&ctx.store, &scope.customer_uuid())
        .await?
        .into_iter()
        .filter(|p| p.uuid != scope.uuid())
        .filter(|p| {
            let project = ScopeRef {
                content_type: ContentType::Project,
                uuid: p.uuid,
                customer_uuid: p.customer_uuid,
            };
            access.sees_everything() || access.can_see(&project)
        })
        .map(|p| p.uuid)
        .collect();
    let now = time::now();
    let mut ids = Vec::new();
    for project in others {
        if let Some((_, members)) =
            grants::scope_with_members(&ctx.store, ContentType::Project, &project, None).await?
        {
            ids.extend(
                members
                    .into_iter()
                    .filter(|m| m.is_active_at(&now))
                    .map(|m| m.grant.user_uuid),
            );
        }
    }
    ids.sort();
    ids.dedup();
    let mut found: Vec<users::User> = users::by_ids(&ctx.store, &ids)
        .await?
        .into_iter()
        .filter(|u| u.is_active)
        .collect();
    found.sort_by_key(|u| (u.full_name().to_lowercase(), u.username.clone()));
    let page = page::paginate(found, &page_request)?;
    Ok(http::page(
        request,
        page.map(|u| {
            json!({
                "url": request.url(&format!("/api/users/{}/", u.uuid)),
                "uuid": u.uuid,
                "username": u.username,
                "full_name": u.full_name(),
                "native_name": u.native_name,
                "email": u.email,
                "image": null,
            })
        }),
    ))
}

/// The project the caller may see, if they are staff (403 otherwise).
async fn staff_project(ctx: &Context, user: &AuthUser, uuid: &str) -> Result<Scope> {
    let (_, scope) = visible_scope(ctx, user, ContentType::Project, uuid).await?;
    if !user.is_staff {
        return Err(Error::PermissionDenied);
    }
    Ok(scope)
}

/// `POST /api/projects/{uuid}/set_slug/ {"slug"}` (staff).
pub async fn set_slug(
    ctx: &Context,
    request: &ApiRequest,
    user: &AuthUser,
    uuid: &str,
) -> Result<Response<Body>> {
    let Scope::Project(project) = staff_project(ctx, user, uuid).await? else {
        return Err(Error::not_found("Project"));
    };
    let input = ScopeInput::parse_slug(request.json()?.as_ref())?;
    scopes::update_project(&ctx.store, user, &project, input, &time::now()).await?;
    Ok(http::json(
        StatusCode::OK,
        &json!({"status": "Slug has been updated."}),
    ))
}

/// `POST /api/projects/{uuid}/sync_user_roles/` (staff). Waldur pushes the project's roles to
/// its SLURM and remote-marketplace sites; this service has none to push to, so there is
/// nothing to do once the project and the caller are checked.
pub async fn sync_user_roles(ctx: &Context, user: &AuthUser, uuid: &str) -> Result<Response<Body>> {
    staff_project(ctx, user, uuid).await?;
    Ok(http::empty(StatusCode::OK))
}

/// `POST /api/projects/{uuid}/recover/`: Waldur recovers a soft-deleted project. Here a deleted
/// project is gone for good (it can only be deleted once nobody holds a role in it), so every
/// project that can be named is one that is not deleted, and gets Waldur's answer for that.
pub async fn recover(ctx: &Context, user: &AuthUser, uuid: &str) -> Result<Response<Body>> {
    let (access, scope) = visible_scope(ctx, user, ContentType::Project, uuid).await?;
    let customer = ScopeRef {
        content_type: ContentType::Customer,
        uuid: scope.customer_uuid(),
        customer_uuid: scope.customer_uuid(),
    };
    if !access.has_permission("PROJECT.CREATE", &customer) {
        return Err(Error::PermissionDenied);
    }
    Err(Error::rejected("Project is not deleted and cannot be recovered."))
}

/// `POST /api/projects/{uuid}/move_project/ {"customer": url, "preserve_permissions": bool}`
/// (staff): see `project_move::move_project`.
pub async fn move_project(
    ctx: &Context,
    request: &ApiRequest,
    user: &AuthUser,
    uuid: &str,
) -> Result<Response<Body>> {
    let (access, scope) = visible_scope(ctx, user, ContentType::Project, uuid).await?;
    let Scope::Project(project) = scope else {
        return Err(Error::not_found("Project"));
    };
    if !user.is_staff {
        return Err(Error::PermissionDenied);
    }
    let body = request.json()?;
    let empty = Map::new();
    let object = shared::validate::object(body.as_ref(), &empty)?;
    let mut errors = shared::error::FieldErrors::default();
    let preserve = shared::validate::boolean(object, "preserve_permissions", &mut errors);
    if preserve.is_none() && !object.contains_key("preserve_permissions") {
        errors.add("preserve_permissions", shared::error::FIELD_REQUIRED);
    }
    let customer = scopes::customer_field(
        &ctx.store,
        object,
        "customer",
        |_| "Invalid hyperlink - Object does not exist.".to_owned(),
        &mut errors,
    )
    .await?;
    let (Some(customer), Some(preserve)) = (customer, preserve) else {
        return Err(Error::Invalid(errors));
    };
    errors.into_result(())?;
    let now = time::now();
    let moved = project_move::move_project(
        &ctx.store,
        user,
        &project,
        &customer,
        preserve,
        access.roles(),
        &now,
    )
    .await?;
    Ok(http::json(
        StatusCode::OK,
        &project_json(request, &moved, Some(&customer)),
    ))
}

/// `POST /api/customers/{uuid}/contact/`: the organisation's contact details, for whoever may
/// update it; answers them as they now are.
pub async fn contact(
    ctx: &Context,
    request: &ApiRequest,
    user: &AuthUser,
    uuid: &str,
) -> Result<Response<Body>> {
    let (access, scope) = visible_scope(ctx, user, ContentType::Customer, uuid).await?;
    let Scope::Customer(customer) = &scope else {
        return Err(Error::not_found("Customer"));
    };
    if !access.has_permission("CUSTOMER.UPDATE", &ScopeRef::from(&scope)) {
        return Err(Error::PermissionDenied);
    }
    let input = ScopeInput::parse_contact(request.json()?.as_ref())?;
    let updated = scopes::update_customer(&ctx.store, user, customer, input, &time::now()).await?;
    Ok(http::json(
        StatusCode::OK,
        &json!({
            "contact_details": updated.contact_details,
            "email": updated.email,
            "phone_number": updated.phone_number,
            "homepage": updated.homepage,
            "notification_emails": updated.notification_emails,
        }),
    ))
}
