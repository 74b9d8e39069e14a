use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use lambda_http::Body;
use local_api::{Router, dispatch};
use shared::Context;
use tokio::net::TcpListener;

/// The largest body the runner passes on (API Gateway's own limit is 10 MB); the functions
/// refuse anything over 1 MiB themselves.
const MAX_FORWARDED_BODY: usize = 8 << 20;

struct Options {
    addr: SocketAddr,
    template: String,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        addr: ([127, 0, 0, 1], 3000).into(),
        template: "template.yaml".into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--addr" => options.addr = value.parse().map_err(|e| format!("--addr {value}: {e}"))?,
            "--template" => options.template = value,
            other => {
                return Err(format!(
                    "unknown option {other}; use --addr HOST:PORT --template FILE"
                ));
            }
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let options = options()?;
    let router = Arc::new(Router::from_template(&std::fs::read_to_string(
        &options.template,
    )?)?);
    let ctx = Arc::new(Context::from_env().await?);
    let listener = TcpListener::bind(options.addr).await?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let (router, ctx) = (router.clone(), ctx.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let (router, ctx) = (router.clone(), ctx.clone());
                async move { serve(&ctx, &router, request).await }
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

async fn serve(
    ctx: &Context,
    router: &Router,
    request: hyper::Request<Incoming>,
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
    let response = dispatch(ctx, router, lambda_http::Request::from_parts(parts, body)).await;
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
