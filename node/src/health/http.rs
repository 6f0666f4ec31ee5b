//! `option httpchk` checks: one plain HTTP/1.x exchange per check on a
//! fresh connection, the request written as HAProxy writes it and the
//! response judged by the backend's `http-check expect` rules. A server
//! with `proto h2` is checked over HTTP/2 (h2c), as HAProxy 2.6 does: the
//! same request, as the one stream of a fresh connection.

use super::expect::{self, Rule};
use super::response::{self, Parsed, BODY_CAP, HEAD_CAP};
use super::status::{CheckResult, Status};
use super::tcp;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
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
    /// `proto h2`: the check speaks HTTP/2 with prior knowledge.
    h2: bool,
}

impl HttpCheck {
    /// Build from `option httpchk`, `http-check send` and `http-check expect`.
    /// `h2`: the server has `proto h2`.
    pub fn new(proxy: &Proxy, h2: bool) -> HttpCheck {
        let request = request(proxy);
        let head = request.starts_with(b"HEAD ");
        HttpCheck {
            request,
            head,
            rules: expect::compile(&proxy.http_check_expect),
            h2,
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
        let exchange = async {
            match self.h2 {
                true => self.exchange_h2(stream, addr).await,
                false => self.exchange(&mut stream).await,
            }
        };
        match tokio::time::timeout_at(deadline, exchange).await {
            Ok(result) => result,
            Err(_) => CheckResult::new(Status::L7Tout),
        }
    }

    /// The check request as one HTTP/2 stream; the answer's status and
    /// the first [`BODY_CAP`] bytes of its body are judged.
    async fn exchange_h2(&self, stream: TcpStream, addr: SocketAddr) -> CheckResult {
        let Some(req) = h2_request(&self.request, addr) else {
            return CheckResult::new(Status::L7Rsp).info("check request not valid for HTTP/2");
        };
        let io = hyper_util::rt::TokioIo::new(stream);
        let exec = hyper_util::rt::TokioExecutor::new();
        let (mut sender, conn) = match hyper::client::conn::http2::handshake(exec, io).await {
            Ok(x) => x,
            Err(e) => return CheckResult::new(Status::L7Rsp).info(e.to_string()),
        };
        tokio::spawn(conn);
        let resp = match sender.send_request(req).await {
            Ok(resp) => resp,
            // An HTTP/1.x answer to the preface, a reset, a GOAWAY.
            Err(_) => return CheckResult::new(Status::L7Rsp).info("invalid HTTP/2 response"),
        };
        let status = resp.status();
        let mut body = resp.into_body();
        let mut kept = Vec::new();
        while kept.len() < BODY_CAP && !self.head {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        let room = BODY_CAP - kept.len();
                        kept.extend_from_slice(&data[..data.len().min(room)]);
                    }
                }
                Some(Err(_)) => {
                    return CheckResult::new(Status::L7Rsp).info("truncated response");
                }
                None => break,
            }
        }
        let resp = response::Response {
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("").to_string(),
            body: kept,
        };
        expect::evaluate(&self.rules, &resp)
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

/// The HTTP/1.x check request as an HTTP/2 request: method, target,
/// headers (`:authority` from `Host`, else the server's address) and body;
/// `Connection` and the other fields HTTP/2 forbids are dropped by hyper.
fn h2_request(bytes: &[u8], addr: SocketAddr) -> Option<hyper::Request<Full<Bytes>>> {
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut fields);
    let httparse::Status::Complete(len) = parsed.parse(bytes).ok()? else {
        return None;
    };
    let host = parsed
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("host"))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .map_or_else(|| addr.to_string(), str::to_string);
    let path = parsed.path?;
    let uri = if path.starts_with('/') {
        format!("http://{host}{path}")
    } else {
        path.to_string()
    };
    let mut req = hyper::Request::builder()
        .method(parsed.method?)
        .uri(uri)
        .version(hyper::Version::HTTP_2);
    for h in parsed.headers.iter() {
        req = req.header(h.name, h.value);
    }
    req.body(Full::new(Bytes::copy_from_slice(&bytes[len..])))
        .ok()
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
