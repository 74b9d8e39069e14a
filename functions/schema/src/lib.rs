//! `/api/schema/`: the OpenAPI 3 document of the whole API (docs/openapi.yaml), as YAML or, with
//! `?format=json` or an `Accept` asking for JSON, as JSON. Public, like Waldur's.

use lambda_http::http::StatusCode;
use lambda_http::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use lambda_http::{Body, Request, Response};

use shared::http::{self, ApiRequest};
use shared::{Error, Result};

const YAML: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.yaml"));
const JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.json"));

pub async fn handle(request: Request) -> Response<Body> {
    http::respond(request, async |request: &ApiRequest| document(request)).await
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
