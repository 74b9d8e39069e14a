//! The local runner: serves the routes of `template.yaml` by calling the same handler functions
//! the Lambda binaries run, in-process, and feeds the stream-triggered ones from the table's
//! stream (`streams`). It is the fast local mode; `make sam-local` runs the real bootstraps.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use lambda_http::http::Method;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_yaml::Value;
use shared::Context;
use tokio::net::TcpListener;

pub mod streams;

/// The largest body the runner passes on (API Gateway's own limit is 10 MB); the functions
/// refuse anything over 1 MiB themselves.
const MAX_FORWARDED_BODY: usize = 8 << 20;

/// One `HttpApi` event of one function in the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: String,
    pub path: String,
    pub function: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Parameter,
    Greedy,
}

#[derive(Debug)]
pub struct TemplateError(String);

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TemplateError {}

/// The route table of a template, matched as API Gateway matches: a literal segment beats a
/// `{parameter}`, which beats a greedy `{proxy+}`.
#[derive(Debug, Clone)]
pub struct Router {
    routes: Vec<Route>,
    /// The function of the `$default` route, which gets every request no route serves.
    fallback: Option<String>,
}

impl Router {
    pub fn from_template(text: &str) -> Result<Self, TemplateError> {
        let template: Value =
            serde_yaml::from_str(text).map_err(|e| TemplateError(format!("template.yaml: {e}")))?;
        let resources = template
            .get("Resources")
            .and_then(Value::as_mapping)
            .ok_or_else(|| TemplateError("template.yaml has no Resources".into()))?;
        let mut routes = Vec::new();
        let mut fallback = None;
        for (name, resource) in resources {
            if resource.get("Type").and_then(Value::as_str) != Some("AWS::Serverless::Function") {
                continue;
            }
            let name = name.as_str().unwrap_or("?");
            let function = binary_of(name, resource)?;
            let Some(events) = resource
                .get("Properties")
                .and_then(|p| p.get("Events"))
                .and_then(Value::as_mapping)
            else {
                continue;
            };
            for event in events.values() {
                if event.get("Type").and_then(Value::as_str) != Some("HttpApi") {
                    continue;
                }
                let property = |key: &str| {
                    event
                        .get("Properties")
                        .and_then(|p| p.get(key))
                        .and_then(Value::as_str)
                        .ok_or_else(|| TemplateError(format!("{name}: an HttpApi event has no {key}")))
                };
                if property("Path")? == "$default" {
                    fallback = Some(function.to_owned());
                    continue;
                }
                routes.push(Route::new(property("Method")?, property("Path")?, function)?);
            }
        }
        Ok(Router { routes, fallback })
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route serving this method and path, if any.
    pub fn find(&self, method: &str, path: &str) -> Option<&Route> {
        let segments: Vec<&str> = path.split('/').collect();
        self.routes
            .iter()
            .filter(|route| route.method.eq_ignore_ascii_case(method) || route.method == "ANY")
            .filter(|route| route.matches(&segments))
            .max_by_key(|route| route.specificity())
    }
}

/// The binary a function resource of the template runs (its cargo-lambda build's `Binary`).
fn binary_of<'a>(name: &str, resource: &'a Value) -> Result<&'a str, TemplateError> {
    resource
        .get("Metadata")
        .and_then(|m| m.get("BuildProperties"))
        .and_then(|p| p.get("Binary"))
        .and_then(Value::as_str)
        .ok_or_else(|| TemplateError(format!("{name}: no Metadata.BuildProperties.Binary")))
}

impl Route {
    fn new(method: &str, path: &str, function: &str) -> Result<Self, TemplateError> {
        if !path.starts_with('/') {
            return Err(TemplateError(format!("route path {path:?} must start with /")));
        }
        let segments = path
            .split('/')
            .map(|segment| match segment {
                s if s.starts_with('{') && s.ends_with("+}") => Segment::Greedy,
                s if s.starts_with('{') && s.ends_with('}') => Segment::Parameter,
                s => Segment::Literal(s.to_owned()),
            })
            .collect();
        Ok(Route {
            method: method.to_ascii_uppercase(),
            path: path.to_owned(),
            function: function.to_owned(),
            segments,
        })
    }

    fn matches(&self, segments: &[&str]) -> bool {
        for (i, pattern) in self.segments.iter().enumerate() {
            match (pattern, segments.get(i)) {
                (Segment::Greedy, Some(rest)) => return !rest.is_empty(),
                (Segment::Parameter, Some(value)) if !value.is_empty() => {}
                (Segment::Literal(literal), Some(value)) if literal == value => {}
                _ => return false,
            }
        }
        segments.len() == self.segments.len()
    }

    fn specificity(&self) -> Vec<u8> {
        self.segments
            .iter()
            .map(|segment| match segment {
                Segment::Literal(_) => 2,
                Segment::Parameter => 1,
                Segment::Greedy => 0,
            })
            .collect()
    }
}

/// Runs the function the template routes this request to, as API Gateway would; a path or
/// method the template does not route gets API Gateway's own 404.
pub async fn dispatch(ctx: &Context, router: &Router, request: Request) -> Response<Body> {
    let function = router
        .find(request.method().as_str(), request.uri().path())
        .map(|route| route.function.clone())
        // API Gateway answers a CORS preflight itself; everything else unrouted goes to `$default`.
        .or_else(|| {
            router
                .fallback
                .clone()
                .filter(|_| request.method() != Method::OPTIONS)
        });
    // Boxed: each handler's future is large, and a match over all of them inline would be the
    // size of the largest on the caller's stack.
    match function.as_deref() {
        Some("roles") => Box::pin(roles_function::handle(ctx, request)).await,
        Some("scopes") => Box::pin(scopes_function::handle(ctx, request)).await,
        Some("users") => Box::pin(users_function::handle(ctx, request)).await,
        Some("permissions") => Box::pin(permissions_function::handle(ctx, request)).await,
        Some("invitations") => Box::pin(invitations_function::handle(ctx, request)).await,
        Some("reviews") => Box::pin(reviews_function::handle(ctx, request)).await,
        Some("workspace-permissions") => Box::pin(workspace_permissions_function::handle(ctx, request)).await,
        Some("schema") => schema_function::handle(request).await,
        Some(other) => gateway_answer(
            500,
            &format!("function {other} is not linked into the local runner"),
        ),
        None if request.method() == Method::OPTIONS => gateway_answer(204, ""),
        None => gateway_answer(404, "Not Found"),
    }
}

/// Serves HTTP/1.1 on `listener` until the task is dropped, as API Gateway in front of the
/// functions: each request goes to the function its route names.
pub async fn serve(listener: TcpListener, ctx: Arc<Context>, router: Arc<Router>) -> std::io::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        let (router, ctx) = (router.clone(), ctx.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let (router, ctx) = (router.clone(), ctx.clone());
                async move { answer(&ctx, &router, request, peer).await }
            });
            if let Err(err) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%err, "connection closed");
            }
        });
    }
}

async fn answer(
    ctx: &Context,
    router: &Router,
    request: hyper::Request<Incoming>,
    peer: std::net::SocketAddr,
) -> Result<hyper::Response<Full<Bytes>>, std::convert::Infallible> {
    let started = Instant::now();
    let (mut parts, body) = request.into_parts();
    let (method, path) = (parts.method.clone(), parts.uri.path().to_owned());
    let bytes = match Limited::new(body, MAX_FORWARDED_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            let mut response = hyper::Response::new(Full::new(Bytes::from_static(
                b"{\"message\":\"Request Entity Too Large\"}",
            )));
            *response.status_mut() = hyper::StatusCode::PAYLOAD_TOO_LARGE;
            return Ok(response);
        }
    };
    let host = parts
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_owned();
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    parts.uri = format!("http://{host}{path_and_query}")
        .parse()
        .unwrap_or(parts.uri);
    parts.headers.insert(
        "x-forwarded-proto",
        hyper::header::HeaderValue::from_static("http"),
    );
    let body = match String::from_utf8(bytes.to_vec()) {
        Ok(text) if text.is_empty() => Body::Empty,
        Ok(text) => Body::Text(text),
        Err(binary) => Body::Binary(binary.into_bytes()),
    };
    // As API Gateway does, the function learns the caller's address from the request context.
    let mut context = lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext::default();
    context.http.source_ip = Some(peer.ip().to_string());
    let request = lambda_http::Request::from_parts(parts, body)
        .with_request_context(lambda_http::request::RequestContext::ApiGatewayV2(context));
    let response = dispatch(ctx, router, request).await;
    let (parts, body) = response.into_parts();
    tracing::info!(%method, %path, status = parts.status.as_u16(), elapsed_ms = started.elapsed().as_millis() as u64);
    let bytes = match body {
        Body::Empty => Bytes::new(),
        Body::Text(text) => Bytes::from(text),
        Body::Binary(binary) => Bytes::from(binary),
        _ => Bytes::new(),
    };
    Ok(hyper::Response::from_parts(parts, Full::new(bytes)))
}

fn gateway_answer(status: u16, message: &str) -> Response<Body> {
    let body = if message.is_empty() {
        Body::Empty
    } else {
        Body::Text(serde_json::json!({ "message": message }).to_string())
    };
    let mut response = Response::new(body);
    *response.status_mut() = lambda_http::http::StatusCode::from_u16(status)
        .unwrap_or(lambda_http::http::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        "content-type",
        lambda_http::http::HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
Resources:
  Table:
    Type: AWS::DynamoDB::Table
  Fn:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: things
    Properties:
      Environment:
        Variables:
          TABLE_NAME: !Ref Table
      Events:
        A: {Type: HttpApi, Properties: {Path: /api/things/, Method: GET}}
        B: {Type: HttpApi, Properties: {Path: "/api/things/{id}/", Method: GET}}
        C: {Type: HttpApi, Properties: {Path: /api/things/transfer/, Method: GET}}
        D: {Type: HttpApi, Properties: {Path: "/files/{proxy+}", Method: ANY}}
"#;

    #[test]
    fn routes_like_api_gateway() {
        let router = Router::from_template(TEMPLATE).unwrap();
        assert_eq!(router.routes().len(), 4);
        let path_of = |method: &str, path: &str| router.find(method, path).map(|r| r.path.as_str());
        assert_eq!(path_of("GET", "/api/things/"), Some("/api/things/"));
        assert_eq!(path_of("GET", "/api/things/42/"), Some("/api/things/{id}/"));
        assert_eq!(
            path_of("GET", "/api/things/transfer/"),
            Some("/api/things/transfer/")
        );
        assert_eq!(path_of("POST", "/api/things/"), None);
        assert_eq!(path_of("GET", "/api/things"), None);
        assert_eq!(path_of("GET", "/api/things//"), None);
        assert_eq!(path_of("DELETE", "/files/a/b"), Some("/files/{proxy+}"));
    }
}
