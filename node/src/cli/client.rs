//! One request to a node's admin API over hyper's HTTP/1 client: resolve,
//! connect, send, read the bounded answer, all within one deadline.

use super::Target;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Largest answer read (a running config can be big; nothing else is).
pub const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// Why a client command failed; its `Display` is the text after `shoal: `.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("the token from {from} is not a valid HTTP header value")]
    BadToken { from: String },
    #[error("cannot resolve {addr}: {reason}")]
    Resolve { addr: String, reason: String },
    #[error("cannot reach the admin API at {addr}: {reason}")]
    Unreachable { addr: String, reason: String },
    #[error("no answer from the admin API at {addr} within {}", secs(*.after))]
    NoAnswer { addr: String, after: Duration },
    /// The API answered with an error status: `401 Unauthorized: missing
    /// or invalid bearer token`.
    #[error("{}", status_text(*.status, .message))]
    Refused { status: StatusCode, message: String },
    /// The node refused a config: its diagnostics, one per line, each
    /// `FILE:LINE: message`.
    #[error("config refused: {0}")]
    ConfigRefused(String),
    #[error("unexpected answer from the admin API at {addr}: {what}")]
    BadAnswer { addr: String, what: String },
    #[error("cannot write the output: {0}")]
    Output(String),
    #[error("cannot start the runtime: {0}")]
    Runtime(String),
    /// `shoal cluster ca|cert` could not write the certificates.
    #[error("{0}")]
    Certificates(String),
    /// A backup file could not be written, read or made.
    #[error("{0}")]
    Backup(String),
}

/// `401 Unauthorized: message`, or the status alone without a message.
fn status_text(status: StatusCode, message: &str) -> String {
    let head = match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    };
    if message.is_empty() {
        head
    } else {
        format!("{head}: {message}")
    }
}

/// `10s`, `1.5s`.
fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// An I/O error as a short lowercase reason: `connection refused`, not
/// `Connection refused (os error 111)`.
pub fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error ") {
        Some(at) => &text[..at],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => format!("{:?}", e.kind()),
    }
}

/// What a request carries.
pub enum Payload {
    Empty,
    Json(serde_json::Value),
    Text(String),
    /// A file as it is (`application/octet-stream`).
    Binary(Vec<u8>),
}

/// A whole answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
    /// The admin address it came from, for error messages.
    pub addr: String,
}

impl Answer {
    /// Success statuses pass; any other becomes [`CliError::Refused`] with
    /// the API's `{"error": ...}` message.
    pub fn ok(self) -> Result<Answer, CliError> {
        if self.status.is_success() {
            return Ok(self);
        }
        Err(CliError::Refused {
            status: self.status,
            message: error_message(&self.body),
        })
    }

    /// The body as JSON.
    pub fn json(&self) -> Result<serde_json::Value, CliError> {
        serde_json::from_slice(&self.body).map_err(|e| self.bad(format!("not JSON ({e})")))
    }

    /// The body as text.
    pub fn text(&self) -> Result<&str, CliError> {
        std::str::from_utf8(&self.body).map_err(|_| self.bad("the body is not UTF-8".into()))
    }

    /// A [`CliError::BadAnswer`] about this answer.
    pub fn bad(&self, what: String) -> CliError {
        CliError::BadAnswer {
            addr: self.addr.clone(),
            what,
        }
    }
}

/// The `error` of an `{"error": ...}` body; else the body's text (a proxy
/// in front may answer in its own words), bounded; else nothing.
pub fn error_message(body: &[u8]) -> String {
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(body) {
        if let Some(serde_json::Value::String(message)) = map.get("error") {
            return message.trim_end().to_string();
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

/// A client for one admin API.
pub struct AdminClient {
    addr: String,
    token: Option<HeaderValue>,
    timeout: Duration,
}

impl AdminClient {
    /// A client for `target`; `timeout` applies unless `--timeout` is given.
    /// Reads the token now, so a bad token file fails before any request.
    pub fn new(target: &Target, timeout: Duration) -> Result<AdminClient, CliError> {
        let (token, from) = match &target.token_file {
            Some(path) => (read_token(path)?, path.display().to_string()),
            None => (
                std::env::var("SHOAL_ADMIN_TOKEN").unwrap_or_default(),
                "SHOAL_ADMIN_TOKEN".to_string(),
            ),
        };
        let token = if token.is_empty() {
            None
        } else {
            let value = HeaderValue::try_from(format!("Bearer {token}"))
                .map_err(|_| CliError::BadToken { from })?;
            Some(value)
        };
        Ok(AdminClient {
            addr: target.admin.clone(),
            token,
            timeout: target.timeout.unwrap_or(timeout),
        })
    }

    /// The admin address, as given.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Send one request and read its whole answer, whatever its status.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        payload: Payload,
    ) -> Result<Answer, CliError> {
        let deadline = Instant::now() + self.timeout;
        let stream = tokio::time::timeout_at(deadline, self.connect())
            .await
            .map_err(|_| self.unreachable(format!("timed out after {}", secs(self.timeout))))??;
        let request = self.request(method, path, payload)?;
        tokio::time::timeout_at(deadline, self.exchange(stream, request))
            .await
            .map_err(|_| CliError::NoAnswer {
                addr: self.addr.clone(),
                after: self.timeout,
            })?
    }

    /// Connect to the first address of `--admin` that accepts.
    async fn connect(&self) -> Result<TcpStream, CliError> {
        let addrs: Vec<SocketAddr> = match self.addr.parse::<SocketAddr>() {
            Ok(addr) => vec![addr],
            Err(_) => tokio::net::lookup_host(&self.addr)
                .await
                .map_err(|e| CliError::Resolve {
                    addr: self.addr.clone(),
                    reason: io_reason(&e),
                })?
                .collect(),
        };
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    // One small request: send it at once.
                    let _ = stream.set_nodelay(true);
                    return Ok(stream);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(e) => self.unreachable(io_reason(&e)),
            None => CliError::Resolve {
                addr: self.addr.clone(),
                reason: "no address".into(),
            },
        })
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        payload: Payload,
    ) -> Result<Request<Full<Bytes>>, CliError> {
        let mut builder = Request::builder().method(method).uri(path);
        if let Ok(host) = HeaderValue::try_from(self.addr.as_str()) {
            builder = builder.header(HOST, host);
        }
        if let Some(token) = &self.token {
            builder = builder.header(AUTHORIZATION, token.clone());
        }
        let body = match payload {
            Payload::Empty => Bytes::new(),
            Payload::Json(value) => {
                builder = builder.header(CONTENT_TYPE, "application/json");
                Bytes::from(value.to_string())
            }
            Payload::Text(text) => {
                builder = builder.header(CONTENT_TYPE, "text/plain; charset=utf-8");
                Bytes::from(text)
            }
            Payload::Binary(bytes) => {
                builder = builder.header(CONTENT_TYPE, "application/octet-stream");
                Bytes::from(bytes)
            }
        };
        builder
            .body(Full::new(body))
            // Only a path that is not a valid URI could fail; commands
            // percent-encode every name they put in one.
            .map_err(|e| CliError::Runtime(format!("cannot build the request: {e}")))
    }

    async fn exchange(
        &self,
        stream: TcpStream,
        request: Request<Full<Bytes>>,
    ) -> Result<Answer, CliError> {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.unreachable(chain(&e)))?;
        // The connection is driven beside the request; it ends when the
        // sender is dropped.
        tokio::spawn(connection);
        // Connected: from here on the node (or what listens there) is
        // at fault, not the path to it.
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| self.bad_answer(chain(&e)))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| self.bad_answer(format!("cannot read the body: {}", chain(&*e))))?
            .to_bytes();
        Ok(Answer {
            status,
            body,
            addr: self.addr.clone(),
        })
    }

    fn bad_answer(&self, what: String) -> CliError {
        CliError::BadAnswer {
            addr: self.addr.clone(),
            what,
        }
    }

    fn unreachable(&self, reason: String) -> CliError {
        CliError::Unreachable {
            addr: self.addr.clone(),
            reason,
        }
    }
}

/// An error and its causes, `: `-separated, I/O causes as [`io_reason`]
/// words: `connection closed before message completed`, `error reading
/// a body from connection: unexpected end of file`.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let part = match c.downcast_ref::<std::io::Error>() {
            Some(io) => io_reason(io),
            None => c.to_string(),
        };
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
}

/// The token in `path`, trimmed as `shoal run --admin-token-file` trims it.
fn read_token(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .map(|t| t.trim().to_string())
        .map_err(|e| read_error(path, &e))
}

/// A [`CliError::Read`] for `path`.
pub fn read_error(path: &Path, e: &std::io::Error) -> CliError {
    CliError::Read {
        path: path.display().to_string(),
        reason: io_reason(e),
    }
}
