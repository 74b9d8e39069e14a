//! `/api/roles/`: list, retrieve, create, update, partial update, update_descriptions, delete,
//! enable, disable and clone_to_customer. Reading is public (an organisation's private roles
//! only to its members); writes are for staff.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::{Map, Value, json};

use shared::auth::{self, Principal};
use shared::authz::Access;
use shared::error::FieldErrors;
use shared::http::{self, ApiRequest};
use shared::page::{self, PageRequest};
use shared::roles::{self, InputMode, LANGUAGES, Role, RoleInput, RoleQuery};
use shared::{Context, Error, Result, scopes, time, validate};

const COLLECTION_METHODS: &[&str] = &["GET", "POST", "HEAD"];
const DETAIL_METHODS: &[&str] = &["GET", "PUT", "PATCH", "DELETE", "HEAD"];

/// The fields of a role on the wire, in Waldur's order.
const FIELDS: &[&str] = &[
    "uuid",
    "name",
    "description",
    "description_en",
    "description_et",
    "description_lt",
    "description_lv",
    "description_ru",
    "description_it",
    "description_de",
    "description_da",
    "description_sv",
    "description_es",
    "description_fr",
    "description_nb",
    "description_ar",
    "description_cs",
    "permissions",
    "is_system_role",
    "is_active",
    "users_count",
    "content_type",
];

pub async fn handle(ctx: &Context, request: Request) -> Response<Body> {
    http::respond(request, async |request| route(ctx, request).await).await
}

async fn route(ctx: &Context, request: &ApiRequest) -> Result<Response<Body>> {
    let segments = request.segments().ok_or_else(http::no_route)?;
    let method = &request.method;
    if segments == ["api", "roles"] && matches!(*method, Method::GET | Method::HEAD) {
        // Anyone may list the roles: they are read beside the credentials, one round trip.
        let (principal, all) = tokio::try_join!(
            auth::authenticate(&ctx.store, request.credentials()),
            roles::list(&ctx.store)
        )?;
        return list(ctx, request, &principal, all).await;
    }
    let principal = auth::authenticate(&ctx.store, request.credentials()).await?;
    match segments.as_slice() {
        ["api", "roles"] => match *method {
            Method::POST => create(ctx, request, &principal).await,
            _ => Err(http::method_not_allowed(request, COLLECTION_METHODS)),
        },
        ["api", "roles", uuid] => match *method {
            Method::GET | Method::HEAD => retrieve(ctx, request, &principal, uuid).await,
            Method::PUT => update(ctx, request, &principal, uuid, InputMode::Replace).await,
            Method::PATCH => update(ctx, request, &principal, uuid, InputMode::Partial).await,
            Method::DELETE => destroy(ctx, &principal, uuid).await,
            _ => Err(http::method_not_allowed(request, DETAIL_METHODS)),
        },
        ["api", "roles", uuid, "update_descriptions"] => match *method {
            Method::PUT => update_descriptions(ctx, request, &principal, uuid).await,
            _ => Err(http::method_not_allowed(request, &["PUT"])),
        },
        ["api", "roles", uuid, action @ ("enable" | "disable")] => match *method {
            Method::POST => set_active(ctx, &principal, uuid, *action == "enable").await,
            _ => Err(http::method_not_allowed(request, &["POST"])),
        },
        ["api", "roles", uuid, "clone_to_customer"] => match *method {
            Method::POST => clone_to_customer(ctx, request, &principal, uuid).await,
            _ => Err(http::method_not_allowed(request, &["POST"])),
        },
        _ => Err(http::no_route()),
    }
}

async fn list(
    ctx: &Context,
    request: &ApiRequest,
    principal: &Principal,
    all: Vec<Role>,
) -> Result<Response<Body>> {
    let query = RoleQuery::from_params(&request.params)?;
    let page_request = PageRequest::from_params(&request.params)?;
    let roles = visible(ctx, principal, query.apply(all)).await?;
    let view = View::for_reader(request, principal);
    let page = page::paginate(roles, &page_request)?.map(|role| view.render(&role));
    Ok(http::page(request, page))
}

async fn retrieve(
    ctx: &Context,
    request: &ApiRequest,
    principal: &Principal,
    uuid: &str,
) -> Result<Response<Body>> {
    let role = roles::get_for(&ctx.store, principal.user(), uuid).await?;
    let role = visible(ctx, principal, vec![role])
        .await?
        .pop()
        .ok_or_else(|| Error::not_found("Role"))?;
    Ok(http::json(
        StatusCode::OK,
        &View::for_reader(request, principal).render(&role),
    ))
}

/// An organisation's private roles (clones) are seen by staff, support and the members of
/// that organisation; the caller's grants are read only when there are such roles to judge.
async fn visible(ctx: &Context, principal: &Principal, roles: Vec<Role>) -> Result<Vec<Role>> {
    if roles.iter().all(|role| role.customer_uuid.is_none()) || principal.is_staff_or_support() {
        return Ok(roles);
    }
    let customers = match principal.user() {
        Some(user) => Access::load(&ctx.store, &ctx.roles, user, &time::now())
            .await?
            .connected_customers(),
        None => Vec::new(),
    };
    Ok(roles
        .into_iter()
        .filter(|role| role.customer_uuid.is_none_or(|own| customers.contains(&own)))
        .collect())
}

/// `POST /api/roles/{uuid}/clone_to_customer/ {"customer": uuid, "description"?,
/// "conceal_template"?}` (staff). Answers the clone with 200, as the official client expects
/// (Waldur sends 201).
async fn clone_to_customer(
    ctx: &Context,
    request: &ApiRequest,
    principal: &Principal,
    uuid: &str,
) -> Result<Response<Body>> {
    let actor = principal.require_staff()?;
    let template = roles::get(&ctx.store, uuid).await?;
    let body = request.json()?;
    let empty = Map::new();
    let object = validate::object(body.as_ref(), &empty)?;
    let mut errors = FieldErrors::default();
    let description = validate::string(object, "description", 2000, false, true, &mut errors);
    let conceal = validate::boolean(object, "conceal_template", &mut errors).unwrap_or(true);
    let customer = scopes::customer_field(
        &ctx.store,
        object,
        "customer",
        |text| format!("Object with uuid={text} does not exist."),
        &mut errors,
    )
    .await?;
    let Some(customer) = customer.filter(|_| errors.is_empty()) else {
        return Err(Error::Invalid(errors));
    };
    let role = roles::clone_to_customer(
        &ctx.store,
        actor,
        &template,
        &customer,
        description,
        conceal,
        &time::now(),
    )
    .await?;
    ctx.roles.invalidate();
    Ok(http::json(
        StatusCode::OK,
        &View::for_writer(request).render(&role),
    ))
}

async fn create(ctx: &Context, request: &ApiRequest, principal: &Principal) -> Result<Response<Body>> {
    let actor = principal.require_staff()?;
    let input = RoleInput::parse(request.json()?.as_ref(), InputMode::Create)?;
    let role = roles::create(&ctx.store, actor, input, &time::now()).await?;
    ctx.roles.invalidate();
    let location = request.url(&format!("/api/roles/{}/", role.uuid));
    Ok(http::created(&location, &View::for_writer(request).render(&role)))
}

async fn update(
    ctx: &Context,
    request: &ApiRequest,
    principal: &Principal,
    uuid: &str,
    mode: InputMode,
) -> Result<Response<Body>> {
    let actor = principal.require_staff()?;
    let input = request
        .json()
        .and_then(|body| RoleInput::parse(body.as_ref(), mode));
    let role = roles::update(&ctx.store, actor, uuid, input, &time::now()).await?;
    ctx.roles.invalidate();
    Ok(http::json(
        StatusCode::OK,
        &View::for_writer(request).render(&role),
    ))
}

async fn update_descriptions(
    ctx: &Context,
    request: &ApiRequest,
    principal: &Principal,
    uuid: &str,
) -> Result<Response<Body>> {
    let actor = principal.require_staff()?;
    let input = request
        .json()
        .and_then(|body| RoleInput::parse(body.as_ref(), InputMode::Descriptions));
    let role = roles::update(&ctx.store, actor, uuid, input, &time::now()).await?;
    ctx.roles.invalidate();
    let view = View {
        fields: Some(descriptions_fields()),
        ..View::for_writer(request)
    };
    Ok(http::json(StatusCode::OK, &view.render(&role)))
}

async fn destroy(ctx: &Context, principal: &Principal, uuid: &str) -> Result<Response<Body>> {
    let actor = principal.require_staff()?;
    roles::delete(&ctx.store, actor, uuid, &time::now()).await?;
    ctx.roles.invalidate();
    Ok(http::empty(StatusCode::NO_CONTENT))
}

async fn set_active(
    ctx: &Context,
    principal: &Principal,
    uuid: &str,
    active: bool,
) -> Result<Response<Body>> {
    let actor = principal.require_staff()?;
    let role = roles::set_active(&ctx.store, actor, uuid, active, &time::now()).await?;
    ctx.roles.invalidate();
    let verb = if active { "enabled" } else { "disabled" };
    let detail = format!("The role {} has been {verb}", role.name);
    Ok(http::json(StatusCode::OK, &json!({ "detail": detail })))
}

fn descriptions_fields() -> Vec<&'static str> {
    FIELDS
        .iter()
        .copied()
        .filter(|f| f.starts_with("description"))
        .collect()
}

/// How a role is shown to this caller: which fields, whether `users_count` (staff and support
/// only), and in which language `description` is.
struct View {
    fields: Option<Vec<&'static str>>,
    show_users_count: bool,
    language: Option<String>,
}

impl View {
    fn for_reader(request: &ApiRequest, principal: &Principal) -> Self {
        View {
            fields: request.params.field_selection(FIELDS),
            show_users_count: principal.is_staff_or_support(),
            language: request.language(),
        }
    }

    fn for_writer(request: &ApiRequest) -> Self {
        View {
            fields: None,
            show_users_count: true,
            language: request.language(),
        }
    }

    fn render(&self, role: &Role) -> Value {
        let mut object = Map::new();
        for field in FIELDS {
            if self.fields.as_ref().is_some_and(|chosen| !chosen.contains(field))
                || (*field == "users_count" && !self.show_users_count)
            {
                continue;
            }
            let value = match *field {
                "uuid" => json!(role.uuid),
                "name" => json!(role.name),
                "description" => json!(role.description_in(self.language.as_deref())),
                "permissions" => json!(role.permissions),
                "is_system_role" => json!(role.is_system_role),
                "is_active" => json!(role.is_active),
                "users_count" => json!(role.users_count),
                "content_type" => json!(role.content_type.as_str()),
                description => {
                    let language = &description["description_".len()..];
                    debug_assert!(LANGUAGES.contains(&language));
                    json!(role.translation(language))
                }
            };
            object.insert((*field).to_owned(), value);
        }
        Value::Object(object)
    }
}
