//! A small HTTP/1.1 client: requests through frontends and to admin APIs.

use super::{DEADLINE, TOKEN};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;

/// A response, fully read.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

impl Resp {
    /// The `x-server` header the demo backend sets (which server answered).
    pub fn server(&self) -> String {
        self.headers
            .get("x-server")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 request on a fresh connection; `Err` says why it got no
/// answer (refused, reset, timed out).
pub async fn try_http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
    timeout: Duration,
) -> Result<Resp, String> {
    let exchange = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake {addr}: {e}"))?;
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", addr.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| e.to_string())?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("{method} {path} on {addr}: {e}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body of {path} from {addr}: {e}"))?
            .to_bytes();
        Ok(Resp {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("{method} {path} on {addr}: no answer within {timeout:?}"))?
}

/// GET through a frontend (fresh connection); panics without an answer.
pub async fn get(addr: SocketAddr, path: &str) -> Resp {
    try_http(addr, "GET", path, &[], "", DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A request to an admin API with the token.
pub async fn try_admin(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    timeout: Duration,
) -> Result<Resp, String> {
    let auth = format!("Bearer {TOKEN}");
    try_http(
        addr,
        method,
        path,
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        body,
        timeout,
    )
    .await
}

/// A request to an admin API that must answer (any status).
pub async fn admin(addr: SocketAddr, method: &str, path: &str, body: &str) -> Resp {
    try_admin(addr, method, path, body, DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Count answers per server over `n` sequential keep-alive requests
/// through `addr`; every answer must be a 200.
pub async fn tally(addr: SocketAddr, n: usize) -> HashMap<String, usize> {
    let stream = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut counts = HashMap::new();
    for _ in 0..n {
        let req = Request::get("/")
            .header("host", "test.local")
            .body(Full::new(Bytes::new()))
            .expect("request");
        sender.ready().await.expect("connection ready");
        let resp = tokio::time::timeout(DEADLINE, sender.send_request(req))
            .await
            .expect("answer within the deadline")
            .expect("answer");
        let server = resp
            .headers()
            .get("x-server")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        assert_eq!(resp.status(), 200, "through {addr}");
        resp.into_body().collect().await.expect("body");
        *counts.entry(server).or_insert(0) += 1;
    }
    counts
}
