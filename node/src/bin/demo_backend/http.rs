//! HTTP mode.
//!
//! Every request gets `200 OK` with header `x-server: NAME` and body NAME (or
//! `--body-size` bytes), over keep-alive HTTP/1.1, or over HTTP/2 with prior
//! knowledge (h2c) with `--h2`, where every answer also carries
//! `x-backend-proto: HTTP/2.0`. Special paths:
//!
//! | request                   | answer                                              |
//! |---------------------------|-----------------------------------------------------|
//! | `/health`                 | 200, body `healthy`                                 |
//! | `/conns`                  | body = TCP connections accepted so far (decimal)    |
//! | `/delay/MS`               | sleeps MS milliseconds, then answers as usual       |
//! | `/peak`                   | body = most `/delay/MS` requests in progress at once |
//! | `/status/NNN`             | answers with status NNN (400 if NNN is invalid)     |
//! | `/echo-headers`           | body = request headers, `name: value` one per line  |
//! | `/echo`                   | body = `VERSION METHOD URI`, the headers as above, an empty line, the request body |
//! | `/set-cookie/NAME=VALUE`  | as usual, plus `Set-Cookie: NAME=VALUE; Path=/`     |
//! | `/stall/MS`               | chunked body: `start`, then MS ms of silence, `end` |
//! | any `Upgrade:` request    | `101 Switching Protocols`, then echoes every byte (HTTP/1.1 only) |

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Either, Full};
use hyper::body::{Body as _, Incoming};
use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE, UPGRADE};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::future::Future as _;
use tokio::net::TcpListener;

use crate::Shared;

/// Longest `/delay/MS` honoured, so a typo cannot park a connection forever.
const MAX_DELAY_MS: u64 = 600_000;

/// Immutable per-process HTTP state: the pre-built answers.
#[derive(Debug)]
pub struct State {
    shared: Arc<Shared>,
    /// Value of the `x-server` header.
    server: HeaderValue,
    /// Default response body.
    body: Bytes,
    /// Serve HTTP/2 with prior knowledge instead of HTTP/1.1.
    h2: bool,
}

impl State {
    /// Pre-builds the default body: NAME, or `body_size` bytes of NAME
    /// repeated.
    pub fn new(shared: Arc<Shared>, body_size: Option<usize>, h2: bool) -> Self {
        let name = shared.name.as_bytes();
        let body = match body_size {
            None => Bytes::copy_from_slice(name),
            Some(size) if name.is_empty() => Bytes::from(vec![b'x'; size]),
            Some(size) => Bytes::from(name.iter().copied().cycle().take(size).collect::<Vec<u8>>()),
        };
        let server =
            HeaderValue::from_str(&shared.name).unwrap_or(HeaderValue::from_static("invalid-name"));
        Self {
            shared,
            server,
            body,
            h2,
        }
    }

    /// A response with `x-server` and a plain-text body.
    fn reply(&self, status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
        let mut resp = Response::new(Full::new(body));
        *resp.status_mut() = status;
        let headers = resp.headers_mut();
        headers.insert("x-server", self.server.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        if self.h2 {
            headers.insert("x-backend-proto", HeaderValue::from_static("HTTP/2.0"));
        }
        resp
    }
}

/// Serves HTTP/1.1 (with keep-alive and upgrades), or HTTP/2 with prior
/// knowledge, on every accepted connection.
pub async fn serve(listener: TcpListener, state: Arc<State>) {
    let shared = state.shared.clone();
    crate::accept_loop(listener, shared, move |stream| {
        let state = state.clone();
        async move {
            let h2 = state.h2;
            let service = service_fn(move |req| handle(req, state.clone()));
            // Client resets and malformed requests end only this connection.
            if h2 {
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            } else {
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            }
        }
    })
    .await;
}

/// Answers one request.
async fn handle(
    mut req: Request<Incoming>,
    state: Arc<State>,
) -> Result<Response<Reply>, Infallible> {
    if path_is(&req, "/echo") {
        return Ok(echo(req, &state).await.map(Either::Left));
    }
    if let Some(proto) = req.headers().get(UPGRADE).cloned() {
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(upgraded) = upgrade.await {
                let (mut rd, mut wr) = tokio::io::split(TokioIo::new(upgraded));
                let _ = tokio::io::copy(&mut rd, &mut wr).await;
            }
        });
        let mut resp = state.reply(StatusCode::SWITCHING_PROTOCOLS, Bytes::new());
        resp.headers_mut().insert(UPGRADE, proto);
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("upgrade"));
        return Ok(resp.map(Either::Left));
    }

    let path = req.uri().path();
    if let Some(ms) = path
        .strip_prefix("/stall/")
        .and_then(|ms| ms.parse::<u64>().ok())
    {
        let resp = state.reply(StatusCode::OK, Bytes::new());
        let stall = Duration::from_millis(ms.min(MAX_DELAY_MS));
        return Ok(resp.map(|_| Either::Right(Stall::new(stall))));
    }
    let resp = if path == "/health" {
        state.reply(StatusCode::OK, Bytes::from_static(b"healthy"))
    } else if path == "/conns" {
        state.reply(
            StatusCode::OK,
            Bytes::from(state.shared.conn_count().to_string()),
        )
    } else if path == "/peak" {
        let peak = state.shared.peak.load(Ordering::SeqCst);
        state.reply(StatusCode::OK, Bytes::from(peak.to_string()))
    } else if path == "/echo-headers" {
        let mut text = String::new();
        for (name, value) in req.headers() {
            text.push_str(name.as_str());
            text.push_str(": ");
            text.push_str(&String::from_utf8_lossy(value.as_bytes()));
            text.push('\n');
        }
        state.reply(StatusCode::OK, Bytes::from(text))
    } else if let Some(cookie) = path.strip_prefix("/set-cookie/") {
        let mut resp = state.reply(StatusCode::OK, state.body.clone());
        if let Ok(v) = HeaderValue::from_str(&format!("{cookie}; Path=/")) {
            resp.headers_mut().append(hyper::header::SET_COOKIE, v);
        }
        resp
    } else if let Some(code) = path.strip_prefix("/status/") {
        match code
            .parse::<u16>()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
        {
            // 1xx cannot be sent as a final response.
            Some(status) if !status.is_informational() => state.reply(status, state.body.clone()),
            _ => state.reply(StatusCode::BAD_REQUEST, Bytes::from_static(b"bad status\n")),
        }
    } else if let Some(ms) = path.strip_prefix("/delay/") {
        match ms.parse::<u64>() {
            Ok(ms) => {
                let _busy = Delaying::new(&state.shared);
                tokio::time::sleep(Duration::from_millis(ms.min(MAX_DELAY_MS))).await;
                state.reply(StatusCode::OK, state.body.clone())
            }
            Err(_) => state.reply(StatusCode::BAD_REQUEST, Bytes::from_static(b"bad delay\n")),
        }
    } else {
        state.reply(StatusCode::OK, state.body.clone())
    };

    // Read (and drop) any request body so the connection stays reusable.
    let mut body = req.into_body();
    if !body.is_end_stream() {
        while let Some(frame) = body.frame().await {
            if frame.is_err() {
                break;
            }
        }
    }
    Ok(resp.map(Either::Left))
}

fn path_is(req: &Request<Incoming>, path: &str) -> bool {
    req.uri().path() == path
}

/// `/echo`: what arrived, as text: `VERSION METHOD URI`, the header lines,
/// an empty line, then the request body.
async fn echo(req: Request<Incoming>, state: &State) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let mut text = format!("{:?} {} {}\n", parts.version, parts.method, parts.uri);
    for (name, value) in &parts.headers {
        text.push_str(name.as_str());
        text.push_str(": ");
        text.push_str(&String::from_utf8_lossy(value.as_bytes()));
        text.push('\n');
    }
    text.push('\n');
    let mut out = text.into_bytes();
    match body.collect().await {
        Ok(body) => out.extend_from_slice(&body.to_bytes()),
        Err(_) => return state.reply(StatusCode::BAD_REQUEST, Bytes::from_static(b"bad body\n")),
    }
    state.reply(StatusCode::OK, Bytes::from(out))
}

/// One `/delay/MS` request in progress, counted towards `/peak` (a client
/// that gives up drops it too).
struct Delaying<'a>(&'a crate::Shared);

impl<'a> Delaying<'a> {
    fn new(shared: &'a crate::Shared) -> Self {
        let now = shared.delaying.fetch_add(1, Ordering::SeqCst) + 1;
        shared.peak.fetch_max(now, Ordering::SeqCst);
        Delaying(shared)
    }
}

impl Drop for Delaying<'_> {
    fn drop(&mut self) {
        self.0.delaying.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Response bodies: a prepared buffer, or the slow `/stall` stream.
type Reply = Either<Full<Bytes>, Stall>;

/// A body that sends `start\n`, stays silent for a while, then sends `end\n`:
/// a server that stalls in the middle of a response.
#[derive(Debug)]
pub struct Stall {
    step: u8,
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl Stall {
    fn new(stall: Duration) -> Self {
        Stall {
            step: 0,
            sleep: Box::pin(tokio::time::sleep(stall)),
        }
    }
}

impl hyper::body::Body for Stall {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        use std::task::Poll;
        match self.step {
            0 => {
                self.step = 1;
                Poll::Ready(Some(Ok(hyper::body::Frame::data(Bytes::from_static(
                    b"start\n",
                )))))
            }
            1 => match self.sleep.as_mut().poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(()) => {
                    self.step = 2;
                    Poll::Ready(Some(Ok(hyper::body::Frame::data(Bytes::from_static(
                        b"end\n",
                    )))))
                }
            },
            _ => Poll::Ready(None),
        }
    }
}
