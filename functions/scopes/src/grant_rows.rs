//! `POST /api/user-permissions/{uuid}/revoke/` and `…/restore/` `{"reason"?}`: acting on the
//! grant a `/api/user-permissions/` row names, with the authorization of `delete_user` and
//! `add_user` judged for the caller as they are now.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};

use shared::auth::AuthUser;
use shared::authz::{Access, Membership, ScopeRef};
use shared::error::FieldErrors;
use shared::grants::{self, Member, NewGrant};
use shared::http::{self, ApiRequest};
use shared::ids::Id;
use shared::scopes;
use shared::time;
use shared::users::User;
use shared::{Context, Error, Result};

/// Revokes (`Membership::Delete`) or restores (`Membership::Create`) the grant of `row` (the row
/// the path's uuid names, read beside the credentials; `None`: there is none). A restored grant
/// is a new grant of the row's role to its user on its scope, keeping the expiration time if
/// that is still ahead; the revoked row stays in the history.
pub async fn revoke_or_restore(
    ctx: &Context,
    request: &ApiRequest,
    user: &AuthUser,
    pk: &str,
    row: Option<Member>,
    action: Membership,
) -> Result<Response<Body>> {
    let not_found = || Error::not_found("UserRole");
    Id::parse(pk).ok_or_else(not_found)?;
    let now = time::now();
    let body = request.json()?;
    let empty = serde_json::Map::new();
    let mut errors = FieldErrors::default();
    let object = shared::validate::object(body.as_ref(), &empty)?;
    shared::validate::string(object, "reason", 255, false, true, &mut errors);
    errors.into_result(())?;
    let member = row.ok_or_else(not_found)?;
    let grant = &member.grant;
    let scope_key = (
        scopes::partition(grant.scope_type, &grant.scope_uuid),
        "#META".to_owned(),
    );
    let user_key = User::key(&grant.user_uuid);
    let (access, mut fetched) = Access::load_with(
        &ctx.store,
        &ctx.roles,
        user,
        &now,
        &[scope_key.clone(), user_key.clone()],
    )
    .await?;
    let scope_ref = ScopeRef {
        content_type: grant.scope_type,
        uuid: grant.scope_uuid,
        customer_uuid: grant.customer_uuid,
    };
    // Whoever may see the row may ask; a row one cannot see is not found.
    let scope = fetched
        .take_item(&scope_key.0, &scope_key.1)
        .map(|item| scopes::scope_from_item(grant.scope_type, item))
        .transpose()?
        .filter(|_| access.can_see(&scope_ref) || grant.user_uuid == user.uuid)
        .ok_or_else(not_found)?;
    let holder: User = fetched
        .take(&user_key.0, &user_key.1)?
        .filter(|u: &User| !u.deleting)
        .ok_or_else(|| Error::rejected("The user of this role no longer exists."))?;
    let role = access
        .roles()
        .get(&grant.role_uuid)
        .cloned()
        .ok_or_else(|| Error::rejected("The role of this grant no longer exists."))?;
    access.may_manage(action, &scope_ref, &holder.uuid, &role)?;
    let live = member.ended.is_none() && member.is_active_at(&now);
    let new = NewGrant {
        scope: &scope,
        user: &holder,
        role: &role,
        expiration_time: grant
            .expiration_time
            .as_deref()
            .and_then(time::parse_stored)
            .filter(|expires| *expires > now),
        granted_by: Some(user),
    };
    match action {
        Membership::Delete if !live => return Err(Error::rejected("Role is already revoked.")),
        Membership::Delete => grants::revoke(&ctx.store, &member, &new, &now).await?,
        _ if live => return Err(Error::rejected("Role is already active.")),
        _ => {
            let held = grants::held_by(&holder).into_iter().any(|g| {
                (g.scope_type, g.scope_uuid, g.role_uuid)
                    == (grant.scope_type, grant.scope_uuid, grant.role_uuid)
                    && g.is_active_at(&now)
            });
            if held {
                return Err(Error::rejected("An active grant for this role already exists."));
            }
            grants::grant(&ctx.store, &new, &now).await?;
        }
    }
    Ok(http::empty(StatusCode::OK))
}
