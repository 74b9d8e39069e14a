//! A proxy between the store's client and DynamoDB Local that injects the faults a real
//! deployment meets: the store unreachable (connections refused), throttling answers, and a
//! write that DynamoDB applied but whose answer was lost.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Everything passes.
    None,
    /// Connections are accepted and closed at once: the store is unreachable.
    Unreachable,
    /// Every request is answered with DynamoDB's `ThrottlingException`.
    Throttle,
    /// The next `n` requests are throttled, then everything passes.
    ThrottleFirst(usize),
    /// Requests reach DynamoDB, but the answers to writes are lost (the connection drops).
    LoseWriteAnswers,
}

pub struct FaultProxy {
    pub endpoint: String,
    fault: Arc<Mutex<Fault>>,
    requests: Arc<AtomicUsize>,
}

impl FaultProxy {
    /// A proxy in front of `upstream` (`http://host:port`), passing everything at first.
    pub async fn start(upstream: &str) -> Self {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .parse()
            .expect("upstream host:port");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let fault = Arc::new(Mutex::new(Fault::None));
        let requests = Arc::new(AtomicUsize::new(0));
        let (shared_fault, shared_requests) = (fault.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (fault, requests) = (shared_fault.clone(), shared_requests.clone());
                if *fault.lock().unwrap() == Fault::Unreachable {
                    drop(stream);
                    continue;
                }
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let (fault, requests) = (fault.clone(), requests.clone());
                        async move { forward(upstream, &fault, &requests, request).await }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FaultProxy {
            endpoint,
            fault,
            requests,
        }
    }

    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }

    /// Requests that reached the proxy (throttled ones included).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// A failed forward: hyper drops the connection, as a broken network would.
type ProxyError = std::io::Error;

fn broken(error: impl std::fmt::Display) -> ProxyError {
    std::io::Error::other(error.to_string())
}

async fn forward(
    upstream: SocketAddr,
    fault: &Mutex<Fault>,
    requests: &AtomicUsize,
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, ProxyError> {
    requests.fetch_add(1, Ordering::SeqCst);
    let throttle = {
        let mut fault = fault.lock().unwrap();
        match *fault {
            // A connection opened before the store went away breaks too.
            Fault::Unreachable => return Err(broken("unreachable")),
            Fault::Throttle => true,
            Fault::ThrottleFirst(n) if n > 0 => {
                *fault = Fault::ThrottleFirst(n - 1);
                true
            }
            _ => false,
        }
    };
    if throttle {
        let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}"#;
        return hyper::Response::builder()
            .status(400)
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amzn-requestid", "fault-proxy")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .map_err(broken);
    }
    let is_write = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|target| crate::is_write(target.rsplit('.').next().unwrap_or(target)));
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map_err(broken)?.to_bytes();
    let stream = TcpStream::connect(upstream).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(broken)?;
    tokio::spawn(connection);
    let response = sender
        .send_request(hyper::Request::from_parts(parts, Full::new(body)))
        .await
        .map_err(broken)?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(broken)?.to_bytes();
    if is_write && *fault.lock().unwrap() == Fault::LoseWriteAnswers {
        // DynamoDB has applied the write; the caller never hears of it.
        return Err(broken("answer lost"));
    }
    Ok(hyper::Response::from_parts(parts, Full::new(body)))
}
