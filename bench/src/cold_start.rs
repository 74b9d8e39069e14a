//! Cold starts under AWS's own Runtime Interface Emulator (RIE, the `aws-lambda-rie` that ships
//! inside the aws-sam-cli wheel and that `sam local` runs in its containers): the emulator starts
//! the function binary as its bootstrap at the first invocation, so the time from sending that
//! invocation to its answer is exec + init + the invocation, as a Lambda cold start. The
//! bootstrap's peak RSS is read once it has answered.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::Error;
use crate::client::{Call, Connection};

pub struct ColdStart {
    pub startup: Duration,
    pub peak_rss_kib: u64,
}

/// The RIE of the SAM CLI that `scripts/setup.sh` installs into `.tools/venv`.
pub fn emulator() -> Result<PathBuf, Error> {
    let lib = Path::new(".tools/venv/lib");
    for entry in std::fs::read_dir(lib).map_err(|e| format!("{}: {e}", lib.display()))? {
        let candidate = entry?
            .path()
            .join("site-packages/samcli/local/rapid/aws-lambda-rie-x86_64");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err("no aws-lambda-rie-x86_64 in .tools/venv (run scripts/setup.sh all)".into())
}

fn free_port() -> Result<u16, Error> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub async fn cold_start(
    emulator: &Path,
    binary: &Path,
    event: &str,
    env: &[(String, String)],
) -> Result<ColdStart, Error> {
    let (invoke_port, runtime_port) = (free_port()?, free_port()?);
    let invoke: std::net::SocketAddr = ([127, 0, 0, 1], invoke_port).into();
    let mut rie = tokio::process::Command::new(emulator)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .arg("--runtime-interface-emulator-address")
        .arg(invoke.to_string())
        .arg("--runtime-api-address")
        .arg(format!("127.0.0.1:{runtime_port}"))
        .arg(binary)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    // The emulator itself is up before the clock starts: its own start is not the function's.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut connection = loop {
        match Connection::open(invoke).await {
            Ok(connection) => break connection,
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(5)).await,
            Err(error) => return Err(format!("the emulator did not listen: {error}").into()),
        }
    };
    let call = Call {
        method: "POST",
        path: "/2015-03-31/functions/function/invocations".into(),
        token: None,
        body: Some(event.to_owned()),
    };
    let started = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(20), connection.fetch(&call)).await;
    let startup = started.elapsed();
    let bootstrap = rie.id().map(first_child).transpose()?.flatten();
    let peak_rss_kib = bootstrap.map(peak_rss_kib).transpose()?.unwrap_or(0);
    rie.kill().await?;
    let (status, body) = answer.map_err(|_| format!("{}: no answer within 20 s", binary.display()))??;
    check_response(binary, status, &body)?;
    Ok(ColdStart {
        startup,
        peak_rss_kib,
    })
}

/// The invocation answered, and the function's own answer is not an error.
fn check_response(binary: &Path, status: u16, body: &str) -> Result<(), Error> {
    let value: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let function_status = value.get("statusCode").and_then(serde_json::Value::as_u64);
    if status != 200 || function_status.is_some_and(|s| !(200..300).contains(&s)) {
        return Err(format!("{}: answered {status}: {body}", binary.display()).into());
    }
    Ok(())
}

/// The bootstrap the emulator started (the emulator is a Go program: any of its threads may be
/// the parent, so every thread's children are looked at).
fn first_child(pid: u32) -> Result<Option<u32>, Error> {
    for thread in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let children = std::fs::read_to_string(thread?.path().join("children"))?;
        if let Some(child) = children.split_whitespace().next() {
            return Ok(Some(child.parse()?));
        }
    }
    Ok(None)
}

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

/// An API Gateway HTTP API (payload 2.0) GET of `path`, as the functions receive it.
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
