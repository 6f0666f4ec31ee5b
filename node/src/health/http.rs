//! `option httpchk` checks: one plain HTTP/1.x exchange per check on a
//! fresh connection, the request written as HAProxy writes it and the
//! response judged by the backend's `http-check expect` rules.

use super::expect::{self, Rule};
use super::response::{self, Parsed, BODY_CAP, HEAD_CAP};
use super::status::{CheckResult, Status};
use super::tcp;
use shoal_proto::config::Proxy;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// A backend's HTTP check, ready to run.
#[derive(Debug)]
pub struct HttpCheck {
    request: Vec<u8>,
    /// `HEAD` requests get no body back.
    head: bool,
    rules: Vec<Rule>,
}

impl HttpCheck {
    /// Build from `option httpchk`, `http-check send` and `http-check expect`.
    pub fn new(proxy: &Proxy) -> HttpCheck {
        let request = request(proxy);
        let head = request.starts_with(b"HEAD ");
        HttpCheck {
            request,
            head,
            rules: expect::compile(&proxy.http_check_expect),
        }
    }

    /// Connect (bounded by `connect`), send, read the answer until
    /// `deadline` (when given; otherwise `connect` bounds the whole check).
    pub async fn run(
        &self,
        addr: SocketAddr,
        connect: std::time::Duration,
        read: Option<std::time::Duration>,
    ) -> CheckResult {
        let started = Instant::now();
        let mut stream = match tcp::connect(addr, connect).await {
            Ok(s) => s,
            Err(result) => return result,
        };
        let deadline = match read {
            Some(t) => Instant::now() + t,
            None => started + connect,
        };
        match tokio::time::timeout_at(deadline, self.exchange(&mut stream)).await {
            Ok(result) => result,
            Err(_) => CheckResult::new(Status::L7Tout),
        }
    }

    async fn exchange(&self, stream: &mut TcpStream) -> CheckResult {
        if let Err(e) = stream.write_all(&self.request).await {
            return CheckResult::new(Status::L7Rsp).info(tcp::strerror(&e));
        }
        // Head, body and chunk framing; past this the body is cut anyway.
        let limit = HEAD_CAP + 2 * BODY_CAP;
        let mut buf = Vec::with_capacity(4096);
        let mut chunk = [0u8; 8192];
        loop {
            let (n, failure) = match stream.read(&mut chunk).await {
                Ok(n) => (n, None),
                Err(e) => (0, Some(e)),
            };
            buf.extend_from_slice(&chunk[..n]);
            let eof = n == 0 || buf.len() >= limit;
            match response::parse(&buf, eof, self.head) {
                Parsed::More => continue,
                Parsed::Done(resp) => return expect::evaluate(&self.rules, &resp),
                Parsed::Invalid(why) => {
                    // A reset right after connecting reads as a broken
                    // response; say what the system said.
                    let info = failure.map_or_else(|| why.to_string(), |e| tcp::strerror(&e));
                    return CheckResult::new(Status::L7Rsp).info(info);
                }
            }
        }
    }
}

/// The request bytes. `http-check send` overrides the method, URI and
/// version of `option httpchk` (HAProxy's defaults: `OPTIONS / HTTP/1.0`).
/// A version like `HTTP/1.1\r\nHost: x` carries extra header lines, as in
/// HAProxy 1.x configs. `Connection: close` is added unless given.
pub fn request(proxy: &Proxy) -> Vec<u8> {
    let chk = proxy.options.httpchk.clone().unwrap_or_default();
    let send = proxy.http_check_send.clone().unwrap_or_default();
    let method = send.method.unwrap_or(chk.method);
    let uri = send.uri.unwrap_or(chk.uri);
    let version = send.version.unwrap_or(chk.version);
    let mut lines: Vec<String> = version
        .split('\n')
        .map(|l| l.trim_end_matches('\r').to_string())
        .filter(|l| !l.is_empty())
        .collect();
    let version = if lines.is_empty() {
        "HTTP/1.0".to_string()
    } else {
        lines.remove(0)
    };
    let mut out = format!("{method} {uri} {version}\r\n");
    for line in &lines {
        out.push_str(line);
        out.push_str("\r\n");
    }
    for (name, value) in &send.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    let has = |wanted: &str| {
        lines
            .iter()
            .filter_map(|l| l.split_once(':'))
            .map(|(n, _)| n.trim())
            .chain(send.headers.iter().map(|(n, _)| n.as_str()))
            .any(|n| n.eq_ignore_ascii_case(wanted))
    };
    if !has("connection") {
        out.push_str("Connection: close\r\n");
    }
    let body = send.body.unwrap_or_default();
    if !body.is_empty() && !has("content-length") {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    out.push_str(&body);
    out.into_bytes()
}
