//! `/api/schema/`: the OpenAPI 3 document of the whole API (docs/openapi.yaml), as YAML or, with
//! `?format=json` or an `Accept` asking for JSON, as JSON. Public, like Waldur's.
//!
//! It is also the API's `$default` route: a request no route serves answers DRF-style, 405 with
//! `Allow` on a known path and 404 elsewhere, never API Gateway's own `{"message": ...}`.

use lambda_http::http::StatusCode;
use lambda_http::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use lambda_http::{Body, Request, Response};

use shared::http::{self, ApiRequest};
use shared::{Error, Result};

const YAML: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.yaml"));
const JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.json"));
/// "METHOD path" a line, from the document (which a test keeps equal to the template's routes).
const ROUTES: &str = include_str!(concat!(env!("OUT_DIR"), "/routes.txt"));

pub async fn handle(request: Request) -> Response<Body> {
    http::respond(request, async |request: &ApiRequest| match request.path() {
        "/api/schema/" => document(request),
        _ => Err(unrouted(request)),
    })
    .await
}

/// The answer to a request no route serves: 405 with the methods of the route the path names
/// (the most literal one, as API Gateway matches), or 404.
fn unrouted(request: &ApiRequest) -> Error {
    let matching: Vec<(&'static str, &'static str)> = ROUTES
        .lines()
        .filter_map(|line| line.split_once(' '))
        .filter(|(_, pattern)| path_matches(pattern, request.path()))
        .collect();
    let literal = |pattern: &str| pattern.split('/').filter(|s| !s.starts_with('{')).count();
    let best = matching.iter().map(|(_, pattern)| literal(pattern)).max();
    let mut allowed: Vec<&'static str> = matching
        .iter()
        .filter(|(_, pattern)| Some(literal(pattern)) == best)
        .map(|(method, _)| *method)
        .collect();
    allowed.sort_unstable();
    allowed.dedup();
    if allowed.is_empty() {
        http::no_route()
    } else {
        http::method_not_allowed(request, &allowed)
    }
}

/// Whether `path` is an instance of the route `pattern` (`{name}` stands for one segment).
fn path_matches(pattern: &str, path: &str) -> bool {
    let (pattern, path): (Vec<&str>, Vec<&str>) = (pattern.split('/').collect(), path.split('/').collect());
    pattern.len() == path.len()
        && pattern
            .iter()
            .zip(&path)
            .all(|(want, got)| (want.starts_with('{') && !got.is_empty()) || want == got)
}

fn document(request: &ApiRequest) -> Result<Response<Body>> {
    let (text, media_type) = if wants_json(request)? {
        (JSON, "application/vnd.oai.openapi+json")
    } else {
        (YAML, "application/vnd.oai.openapi")
    };
    let mut response = Response::new(Body::Text(text.to_owned()));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(media_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    Ok(response)
}

fn wants_json(request: &ApiRequest) -> Result<bool> {
    match request.params.get("format") {
        Some("json") => Ok(true),
        Some("yaml") => Ok(false),
        Some(_) => Err(Error::field("format", "Select a valid choice: json or yaml.")),
        None => Ok(request
            .header("accept")
            .is_some_and(|accept| accept.contains("json"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_patterns_match_whole_segments() {
        assert!(path_matches("/api/users/{uuid}/", "/api/users/abc/"));
        assert!(!path_matches("/api/users/{uuid}/", "/api/users//"));
        assert!(!path_matches("/api/users/{uuid}/", "/api/users/abc"));
        assert!(!path_matches("/api/users/", "/api/users/abc/"));
        assert!(ROUTES.lines().any(|line| line == "GET /api/schema/"));
    }
}
