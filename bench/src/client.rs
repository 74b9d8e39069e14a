//! A minimal HTTP/1.1 client with one kept-alive connection, so that a measurement pays for the
//! request and not for connecting.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::Error;

pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

/// One request of a workload.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: &'static str,
    pub path: String,
    pub token: Option<String>,
    pub body: Option<String>,
}

impl Connection {
    pub async fn open(addr: std::net::SocketAddr) -> Result<Self, Error> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Connection {
            sender,
            host: addr.to_string(),
        })
    }

    /// Sends the call and reads the whole answer; returns its status.
    pub async fn send(&mut self, call: &Call) -> Result<u16, Error> {
        Ok(self.fetch(call).await?.0)
    }

    /// Sends the call; returns the answer's status and body.
    pub async fn fetch(&mut self, call: &Call) -> Result<(u16, String), Error> {
        let mut request = hyper::Request::builder()
            .method(call.method)
            .uri(&call.path)
            .header("host", &self.host);
        if let Some(token) = &call.token {
            request = request.header("authorization", format!("Token {token}"));
        }
        let body = match &call.body {
            Some(body) => {
                request = request.header("content-type", "application/json");
                Full::new(Bytes::from(body.clone()))
            }
            None => Full::new(Bytes::new()),
        };
        self.sender.ready().await?;
        let response = self.sender.send_request(request.body(body)?).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}
