//! The HTTP edge shared by every function: reading an API Gateway request, and the single place
//! where domain results and errors become responses (status, DRF-style body, headers).

use lambda_http::http::header::{ALLOW, CONTENT_TYPE, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE};
use lambda_http::http::{HeaderMap, HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, Response};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_json::{Value, json};

use crate::error::{Error, PERMISSION_DENIED, Result};
use crate::page::{Page, Params};

/// Bodies above this size are refused with 413 before they are parsed.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// What Python's `urlencode` leaves unescaped.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A JSON document in which no object names a key twice. Parsers disagree on which of two
/// equal keys counts (the first or the last), so a body that a proxy in front of the service
/// reads one way must not be read another way here: such a body is refused.
struct StrictJson(Value);

impl<'de> serde::Deserialize<'de> for StrictJson {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictJson)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(value.into())
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(value.into())
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(value.into())
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictJson(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("duplicate key \"{key}\"")));
            }
            let StrictJson(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

pub struct ApiRequest {
    pub method: Method,
    path: String,
    pub params: Params,
    headers: HeaderMap,
    body: Vec<u8>,
    origin: String,
    source_ip: String,
    /// The items the path names, read with the token (`Credentials::target`).
    target: Vec<(String, String)>,
}

impl ApiRequest {
    pub fn new(request: Request) -> Self {
        let (parts, body) = request.into_parts();
        let origin = match (parts.uri.scheme_str(), parts.uri.authority()) {
            (Some(scheme), Some(authority)) => format!("{scheme}://{authority}"),
            _ => {
                let host = header_str(&parts.headers, "host").unwrap_or("localhost");
                let scheme = header_str(&parts.headers, "x-forwarded-proto").unwrap_or("http");
                format!("{scheme}://{host}")
            }
        };
        // API Gateway's `requestContext.http.sourceIp` (the local runner sets the peer's).
        #[allow(irrefutable_let_patterns)]
        let source_ip = match parts.extensions.get::<lambda_http::request::RequestContext>() {
            Some(context) => {
                if let lambda_http::request::RequestContext::ApiGatewayV2(context) = context {
                    context.http.source_ip.clone().unwrap_or_default()
                } else {
                    String::new()
                }
            }
            None => String::new(),
        };
        ApiRequest {
            method: parts.method,
            path: parts.uri.path().to_owned(),
            params: parse_query(parts.uri.query().unwrap_or("")),
            headers: parts.headers,
            body: match body {
                Body::Empty => Vec::new(),
                Body::Text(text) => text.into_bytes(),
                Body::Binary(bytes) => bytes,
                _ => Vec::new(),
            },
            target: Vec::new(),
            origin,
            source_ip,
        }
        .with_target()
    }

    /// Names the items a request's route reads first, for the token's read to bring them: the
    /// item of `/api/<collection>/<uuid>/…` (customers, projects, users, roles, invitations,
    /// requests, reviews), the item a change's body names (the user of `add_user`, `update_user`
    /// and `delete_user`, the customer of a new project, the scope of a new or replaced
    /// invitation), and the tally of the lists
    /// whose staff pages are counted by one (users, customers, projects, invitations, requests,
    /// reviews, permissions).
    fn with_target(mut self) -> Self {
        use crate::ids::Id;
        use crate::roles::ContentType;
        use crate::store::Tally;
        let segments = self.segments();
        let reading = matches!(self.method, Method::GET | Method::HEAD);
        let mut target = match segments.as_deref() {
            Some(["api", list]) if reading => match *list {
                "users" => Tally::Users.keys(),
                "customers" => Tally::Customers.keys(),
                "projects" => Tally::Projects.keys(),
                "user-group-invitations" => Tally::Invitations.keys(),
                "user-permission-requests" => Tally::Requests.keys(),
                "customer-permissions-reviews" => Tally::CustomerReviews.keys(),
                "project-permissions-reviews" => Tally::ProjectReviews.keys(),
                "customer-permissions" => Tally::CustomerGrants.keys(),
                "project-permissions" => Tally::ProjectGrants.keys(),
                "user-permissions" => [
                    Tally::CustomerGrants,
                    Tally::ProjectGrants,
                    Tally::CustomerPastGrants,
                    Tally::ProjectPastGrants,
                ]
                .into_iter()
                .flat_map(Tally::keys)
                .collect(),
                _ => Vec::new(),
            },
            Some(["api", collection, id, ..]) => Id::parse(id)
                .and_then(|id| match *collection {
                    "customers" => Some((
                        crate::scopes::partition(ContentType::Customer, &id),
                        "#META".to_owned(),
                    )),
                    "projects" => Some((
                        crate::scopes::partition(ContentType::Project, &id),
                        "#META".to_owned(),
                    )),
                    "users" => Some(crate::users::User::key(&id)),
                    "roles" => Some(crate::roles::item_key(&id)),
                    "user-group-invitations" => Some(crate::invitations::invitation_item_key(&id)),
                    "user-permission-requests" => Some(crate::invitations::request_item_key(&id)),
                    "customer-permissions-reviews" | "project-permissions-reviews" => {
                        Some(crate::reviews::item_key(&id))
                    }
                    _ => None,
                })
                .into_iter()
                .collect(),
            _ => Vec::new(),
        };
        let named_in_body = match (segments.as_deref(), &self.method) {
            (
                Some(
                    [
                        "api",
                        "customers" | "projects",
                        _,
                        "add_user" | "update_user" | "delete_user",
                    ],
                ),
                &Method::POST,
            ) => self
                .body_text("user")
                .and_then(|text| Id::from_reference(&text, "users"))
                .map(|user| crate::users::User::key(&user)),
            (Some(["api", "projects"]), &Method::POST) => self
                .body_text("customer")
                .and_then(|text| Id::from_reference(&text, "customers"))
                .map(|uuid| {
                    (
                        crate::scopes::partition(ContentType::Customer, &uuid),
                        "#META".to_owned(),
                    )
                }),
            (Some(["api", "user-group-invitations"]), &Method::POST)
            | (Some(["api", "user-group-invitations", _]), &Method::PUT | &Method::PATCH) => self
                .body_text("scope")
                .and_then(|text| crate::scopes::reference(&text))
                .map(|(kind, uuid)| (crate::scopes::partition(kind, &uuid), "#META".to_owned())),
            _ => None,
        };
        target.extend(named_in_body);
        self.target = target;
        self
    }

    /// The text of a field of the JSON body, if the body is an object with one.
    fn body_text(&self, field: &str) -> Option<String> {
        let body: Value = serde_json::from_slice(&self.body).ok()?;
        Some(body.get(field)?.as_str()?.to_owned())
    }

    /// The caller's address as API Gateway saw it (empty when unknown).
    pub fn source_ip(&self) -> &str {
        &self.source_ip
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// The path's segments. Every route ends with `/`; a path without it matches nothing.
    pub fn segments(&self) -> Option<Vec<&str>> {
        let inner = self.path.strip_prefix('/')?.strip_suffix('/')?;
        Some(inner.split('/').collect())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        header_str(&self.headers, name)
    }

    pub fn authorization(&self) -> Option<&str> {
        self.header("authorization")
    }

    /// The credentials of the request: its token, whom a staff caller acts as, and the item
    /// its path names.
    pub fn credentials(&self) -> crate::auth::Credentials<'_> {
        crate::auth::Credentials {
            authorization: self.authorization(),
            impersonate: self.header("x-impersonated-user-uuid"),
            target: &self.target,
        }
    }

    /// The primary language of `Accept-Language` with the highest preference, lower-cased.
    pub fn language(&self) -> Option<String> {
        let header = self.header("accept-language")?;
        header
            .split(',')
            .filter_map(|part| {
                let mut pieces = part.split(';');
                let tag = pieces.next()?.trim();
                let weight = pieces
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .and_then(|q| q.parse::<f32>().ok())
                    .unwrap_or(1.0);
                let primary = tag.split('-').next()?.to_ascii_lowercase();
                (!primary.is_empty() && primary != "*").then_some((primary, weight))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(primary, _)| primary)
    }

    /// The JSON body, `None` when there is none. Too large → 413; another media type → 415;
    /// not JSON → 400.
    pub fn json(&self) -> Result<Option<Value>> {
        if self.body.len() > MAX_BODY_BYTES {
            return Err(Error::PayloadTooLarge);
        }
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        if let Some(content_type) = self.header("content-type") {
            let media = content_type
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if media != "application/json" && !media.ends_with("+json") {
                return Err(Error::UnsupportedMediaType(content_type.to_owned()));
            }
        }
        serde_json::from_slice::<StrictJson>(&self.body)
            .map(|parsed| Some(parsed.0))
            .map_err(|e| Error::Malformed(format!("JSON parse error - {e}")))
    }

    /// Whether the API was reached over HTTPS (API Gateway), not plain HTTP (the local runner).
    pub fn is_secure(&self) -> bool {
        self.origin.starts_with("https://")
    }

    /// An absolute URL on this API, e.g. for `url` fields and `Location`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    /// The current URL with `page` replaced (or removed), query keys sorted as Django does when
    /// it rebuilds pagination links.
    fn page_url(&self, page: Option<usize>) -> String {
        let mut pairs: Vec<(String, String)> = self
            .params
            .pairs()
            .iter()
            .filter(|(k, _)| k != "page")
            .cloned()
            .collect();
        if let Some(page) = page {
            pairs.push(("page".into(), page.to_string()));
        }
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let query: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", encode_query(k), encode_query(v)))
            .collect();
        let base = self.url(&self.path);
        if query.is_empty() {
            base
        } else {
            format!("{base}?{}", query.join("&"))
        }
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn encode_query(text: &str) -> String {
    utf8_percent_encode(text, QUERY_VALUE)
        .to_string()
        .replace("%20", "+")
}

fn parse_query(query: &str) -> Params {
    let decode = |text: &str| {
        percent_decode_str(&text.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    Params::new(
        query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((key, value)) => (decode(key), decode(value)),
                None => (decode(pair), String::new()),
            })
            .collect(),
    )
}

fn response(status: StatusCode, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
}

pub fn json(status: StatusCode, value: &Value) -> Response<Body> {
    let mut response = response(status, Body::Text(value.to_string()));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// 201 with the new object and its `Location`.
pub fn created(location: &str, value: &Value) -> Response<Body> {
    let mut response = json(StatusCode::CREATED, value);
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, location);
    }
    response
}

/// A status with no body (Waldur's answer to approve, close, delete_user, ...).
pub fn empty(status: StatusCode) -> Response<Body> {
    response(status, Body::Empty)
}

/// A page of a list: a bare JSON array, `X-Result-Count` and a `Link` header with
/// first/prev/next/last, exactly as Waldur's `LinkHeaderPagination`.
pub fn page(request: &ApiRequest, page: Page<Value>) -> Response<Body> {
    let mut links = vec![format!("<{}>; rel=\"first\"", request.page_url(None))];
    if page.number > 1 {
        let previous = (page.number - 1 > 1).then_some(page.number - 1);
        links.push(format!("<{}>; rel=\"prev\"", request.page_url(previous)));
    }
    if page.number < page.pages {
        links.push(format!(
            "<{}>; rel=\"next\"",
            request.page_url(Some(page.number + 1))
        ));
    }
    let last = (page.pages > 1).then_some(page.pages);
    links.push(format!("<{}>; rel=\"last\"", request.page_url(last)));
    let mut response = json(StatusCode::OK, &Value::Array(page.items));
    let headers = response.headers_mut();
    headers.insert("x-result-count", HeaderValue::from(page.total));
    if let Ok(link) = HeaderValue::from_str(&links.join(", ")) {
        headers.insert("link", link);
    }
    response
}

/// The only mapping of domain errors to HTTP.
pub fn error_response(error: &Error) -> Response<Body> {
    let detail = |status: StatusCode, text: &str| json(status, &json!({ "detail": text }));
    match error {
        Error::NotAuthenticated(text) => {
            let mut response = detail(StatusCode::UNAUTHORIZED, text);
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
            response
        }
        Error::PermissionDenied => detail(StatusCode::FORBIDDEN, PERMISSION_DENIED),
        Error::Forbidden(text) => detail(StatusCode::FORBIDDEN, text),
        Error::NotFound(text) => detail(StatusCode::NOT_FOUND, text),
        Error::Invalid(errors) => {
            let body: serde_json::Map<String, Value> = errors
                .iter()
                .map(|(field, messages)| (field.to_owned(), json!(messages)))
                .collect();
            json(StatusCode::BAD_REQUEST, &Value::Object(body))
        }
        Error::Rejected(messages) => json(StatusCode::BAD_REQUEST, &json!(messages)),
        Error::Malformed(text) => detail(StatusCode::BAD_REQUEST, text),
        Error::Conflict(text) => detail(StatusCode::CONFLICT, text),
        Error::MethodNotAllowed { method, allowed } => {
            let mut response = detail(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!("Method \"{method}\" not allowed."),
            );
            if let Ok(allow) = HeaderValue::from_str(&allowed.join(", ")) {
                response.headers_mut().insert(ALLOW, allow);
            }
            response
        }
        Error::PayloadTooLarge => detail(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("Request body exceeds the limit of {MAX_BODY_BYTES} bytes."),
        ),
        Error::UnsupportedMediaType(media) => detail(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!("Unsupported media type \"{media}\" in request."),
        ),
        Error::Throttled(text) => detail(StatusCode::TOO_MANY_REQUESTS, text),
        Error::Unavailable(text) => {
            let mut response = detail(StatusCode::SERVICE_UNAVAILABLE, text);
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
        Error::Mail(text) => {
            tracing::error!(%text, "mail server error");
            detail(StatusCode::BAD_GATEWAY, "The mail server could not be reached.")
        }
        Error::Internal(context) => {
            tracing::error!(%context, "internal error");
            detail(StatusCode::INTERNAL_SERVER_ERROR, "A server error occurred.")
        }
    }
}

/// Answers a request with a function's router: errors mapped, and a HEAD answered with the
/// headers of the GET and no body.
pub async fn respond(
    request: Request,
    route: impl AsyncFnOnce(&ApiRequest) -> Result<Response<Body>>,
) -> Response<Body> {
    let request = ApiRequest::new(request);
    // On the heap: a route's future holds every handler's state, too big for a debug build's
    // stack once a function serves many routes.
    let mut response = crate::store::with_alongside(Box::pin(route(&request)))
        .await
        .unwrap_or_else(|error| error_response(&error));
    if request.method == Method::HEAD {
        *response.body_mut() = Body::Empty;
    }
    response
}

/// 405 for a known path and an unknown method.
pub fn method_not_allowed(request: &ApiRequest, allowed: &[&'static str]) -> Error {
    Error::MethodNotAllowed {
        method: request.method.to_string(),
        allowed: allowed.to_vec(),
    }
}

/// 404 for a path no route of this function serves.
pub fn no_route() -> Error {
    Error::NotFound("Not found.".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str) -> ApiRequest {
        ApiRequest::new(
            lambda_http::http::Request::builder()
                .uri(uri)
                .header("host", "127.0.0.1:8200")
                .body(Body::Empty)
                .unwrap(),
        )
    }

    fn link(uri: &str, number: usize, pages: usize) -> String {
        let page = Page {
            items: vec![],
            number,
            pages,
            total: 0,
        };
        let response = super::page(&request(uri), page);
        response.headers()["link"].to_str().unwrap().to_owned()
    }

    #[test]
    fn links_match_waldur() {
        assert_eq!(
            link("/api/roles/", 1, 2),
            "<http://127.0.0.1:8200/api/roles/>; rel=\"first\", <http://127.0.0.1:8200/api/roles/?page=2>; rel=\"next\", <http://127.0.0.1:8200/api/roles/?page=2>; rel=\"last\""
        );
        assert_eq!(
            link("/api/roles/?page_size=3&page=2", 2, 4),
            "<http://127.0.0.1:8200/api/roles/?page_size=3>; rel=\"first\", <http://127.0.0.1:8200/api/roles/?page_size=3>; rel=\"prev\", <http://127.0.0.1:8200/api/roles/?page=3&page_size=3>; rel=\"next\", <http://127.0.0.1:8200/api/roles/?page=4&page_size=3>; rel=\"last\""
        );
        assert_eq!(
            link("/api/x/?role=A%20B&o=name", 1, 1),
            "<http://127.0.0.1:8200/api/x/?o=name&role=A+B>; rel=\"first\", <http://127.0.0.1:8200/api/x/?o=name&role=A+B>; rel=\"last\""
        );
    }

    #[test]
    fn query_is_decoded() {
        let req = request("/api/roles/?name=a+b&x=%2C&o=name&o=-users_count");
        assert_eq!(req.params.get("name"), Some("a b"));
        assert_eq!(req.params.get("x"), Some(","));
        assert_eq!(req.params.get_all("o"), vec!["name", "-users_count"]);
        assert_eq!(req.segments(), Some(vec!["api", "roles"]));
        assert_eq!(request("/api/roles").segments(), None);
    }

    #[test]
    fn language_preference() {
        let req = ApiRequest::new(
            lambda_http::http::Request::builder()
                .uri("/")
                .header("accept-language", "en;q=0.5, de-CH, fr;q=0.9")
                .body(Body::Empty)
                .unwrap(),
        );
        assert_eq!(req.language().as_deref(), Some("de"));
    }
}
