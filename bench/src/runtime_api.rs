//! Cold starts: a function binary run under a local Lambda Runtime API (the endpoints a real
//! Lambda sandbox offers the runtime: `next`, `response`, `error`), timed from exec to the
//! answer of its first invocation, with the process's peak RSS at that moment.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, oneshot};

use crate::Error;

pub struct ColdStart {
    pub startup: Duration,
    pub peak_rss_kib: u64,
}

struct Invocation {
    event: String,
    handed_out: AtomicBool,
    answered: Mutex<Option<oneshot::Sender<Result<String, String>>>>,
}

/// Runs `binary` once with `event` as its first invocation.
pub async fn cold_start(binary: &Path, event: &str, env: &[(String, String)]) -> Result<ColdStart, Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (answered, answer) = oneshot::channel();
    let invocation = Arc::new(Invocation {
        event: event.to_owned(),
        handed_out: AtomicBool::new(false),
        answered: Mutex::new(Some(answered)),
    });
    let server = tokio::spawn(serve(listener, invocation));

    let started = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let outcome = tokio::time::timeout(Duration::from_secs(20), answer).await;
    let startup = started.elapsed();
    let peak_rss_kib = child.id().map(peak_rss_kib).transpose()?.unwrap_or(0);
    child.kill().await?;
    server.abort();
    match outcome {
        Ok(Ok(Ok(response))) => {
            check_response(binary, &response)?;
            Ok(ColdStart {
                startup,
                peak_rss_kib,
            })
        }
        Ok(Ok(Err(error))) => Err(format!("{}: the invocation failed: {error}", binary.display()).into()),
        Ok(Err(_)) | Err(_) => Err(format!("{}: no answer within 20 s", binary.display()).into()),
    }
}

/// An HTTP function's answer must be a success: a cold start that fails is not a cold start.
fn check_response(binary: &Path, response: &str) -> Result<(), Error> {
    let value: serde_json::Value = serde_json::from_str(response).unwrap_or_default();
    match value.get("statusCode").and_then(serde_json::Value::as_u64) {
        Some(status) if !(200..300).contains(&status) => {
            Err(format!("{}: answered {status}: {response}", binary.display()).into())
        }
        _ => Ok(()),
    }
}

/// The high-water mark of the process's resident set (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> Result<u64, Error> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .ok_or("no VmHWM in /proc/<pid>/status")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .ok_or("VmHWM without a value")?
        .parse()?)
}

async fn serve(listener: TcpListener, invocation: Arc<Invocation>) {
    while let Ok((stream, _)) = listener.accept().await {
        let invocation = invocation.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let invocation = invocation.clone();
                async move { runtime_api(&invocation, request).await }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn runtime_api(
    invocation: &Invocation,
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, std::convert::Infallible> {
    let path = request.uri().path().to_owned();
    if path.ends_with("/runtime/invocation/next") {
        if invocation.handed_out.swap(true, Ordering::SeqCst) {
            // One invocation per process: the next poll waits until the process is killed.
            std::future::pending::<()>().await;
        }
        let deadline = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
            + 60_000;
        let mut response = hyper::Response::new(Full::new(Bytes::from(invocation.event.clone())));
        let headers = response.headers_mut();
        for (name, value) in [
            ("lambda-runtime-aws-request-id", "bench-request".to_owned()),
            ("lambda-runtime-deadline-ms", deadline.to_string()),
            (
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:bench".to_owned(),
            ),
            (
                "lambda-runtime-trace-id",
                "Root=1-00000000-000000000000000000000000".to_owned(),
            ),
        ] {
            headers.insert(name, value.parse().expect("a valid header value"));
        }
        return Ok(response);
    }
    let body = match request.into_body().collect().await {
        Ok(collected) => String::from_utf8_lossy(&collected.to_bytes()).into_owned(),
        Err(error) => format!("unreadable body: {error}"),
    };
    let outcome = if path.ends_with("/response") {
        Ok(body)
    } else {
        Err(format!("{path}: {body}"))
    };
    if let Some(answered) = invocation.answered.lock().await.take() {
        let _ = answered.send(outcome);
    }
    let mut response = hyper::Response::new(Full::new(Bytes::from_static(b"{\"status\":\"OK\"}")));
    *response.status_mut() = hyper::StatusCode::ACCEPTED;
    Ok(response)
}

/// An API Gateway HTTP API (payload 2.0) event for a GET of `path`.
pub fn http_event(path: &str, token: Option<&str>) -> String {
    let mut headers = serde_json::json!({"host": "bench.execute-api.us-east-1.amazonaws.com", "x-forwarded-proto": "https"});
    if let Some(token) = token {
        headers["authorization"] = format!("Token {token}").into();
    }
    serde_json::json!({
        "version": "2.0",
        "routeKey": format!("GET {path}"),
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "bench",
            "domainName": "bench.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "bench",
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench"},
            "requestId": "bench-request",
            "routeKey": format!("GET {path}"),
            "stage": "$default",
            "time": "28/Nov/2026:00:00:00 +0000",
            "timeEpoch": 0
        },
        "isBase64Encoded": false
    })
    .to_string()
}
