//! HTTP/2 towards clients (`alpn h2` on a TLS `bind` of an HTTP frontend).
//!
//! hyper's HTTP/2 server takes the client's streams; each request is
//! rewritten into HTTP/1.1 (origin-form target, `Host` from `:authority`,
//! `cookie` fields joined) and sent to the HTTP/1.1 engine over a
//! [`bridge`](super::bridge) socket pair, so that routing, ACLs,
//! persistence, balancing, retries, logs and counters are the engine's,
//! exactly as for HTTP/1.1 clients. The engine's answer goes back on the
//! stream; hyper drops the hop-by-hop fields HTTP/2 forbids.
//!
//! A client connection keeps its idle engine connections for its next
//! streams (at most one per concurrent stream, [`MAX_STREAMS`]); the list
//! is locked only to take or give one back, never across I/O. An h2
//! connection with no request waiting for its answer for `timeout client`
//! (or `timeout http-keep-alive` when set) since the last answer is sent
//! GOAWAY, and response bodies still streaming finish; so does graceful
//! shutdown.

use super::bridge::{self, Engine};
use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, COOKIE, HOST};
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

/// Concurrent streams per connection: HAProxy's default
/// `tune.h2.max-concurrent-streams`.
const MAX_STREAMS: u32 = 100;

/// Idle bound of an h2 connection when the frontend sets no timeout.
const DEFAULT_IDLE: Duration = Duration::from_secs(30);

type Body = Either<Incoming, Full<Bytes>>;

/// One client connection's way to the engine.
struct Gateway {
    engine: Engine,
    /// Engine connections between requests.
    idle: Mutex<Vec<SendRequest<Incoming>>>,
    /// Requests waiting for their answer now.
    active: AtomicUsize,
    /// When the last answer (or the connection) began, in ms after `epoch`.
    last: AtomicU64,
    epoch: Instant,
}

impl Gateway {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Counts a request as waiting for its answer while it lives.
struct Waiting<'a>(&'a Gateway);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.last.store(self.0.now_ms(), Relaxed);
        self.0.active.fetch_sub(1, Relaxed);
    }
}

/// Serve HTTP/2 on an established TLS session until the client goes, the
/// connection idles out, or shutdown.
pub async fn serve<S>(tls: S, engine: Engine)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let t = engine.frontend.timeouts;
    let idle = t.http_keep_alive.or(t.client).unwrap_or(DEFAULT_IDLE);
    let mut shutdown = engine.shutdown.clone();
    let gw = Arc::new(Gateway {
        engine,
        idle: Mutex::new(Vec::new()),
        active: AtomicUsize::new(0),
        last: AtomicU64::new(0),
        epoch: Instant::now(),
    });
    let service = {
        let gw = gw.clone();
        hyper::service::service_fn(move |req| {
            let gw = gw.clone();
            async move { Ok::<_, Infallible>(gw.forward(req).await) }
        })
    };
    let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS)
        .serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    loop {
        // Idle since the last answer; while a request waits, look again
        // one period later.
        let busy = gw.active.load(Relaxed) > 0;
        let since = Duration::from_millis(gw.last.load(Relaxed));
        let deadline = if busy {
            Instant::now() + idle
        } else {
            gw.epoch + since + idle
        };
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = shutdown.wait_for(|stop| *stop) => break,
            () = tokio::time::sleep_until(deadline) => {
                let quiet = gw.active.load(Relaxed) == 0
                    && Duration::from_millis(gw.last.load(Relaxed)) == since;
                if quiet && !busy {
                    break;
                }
            }
        }
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

impl Gateway {
    /// One stream: to HTTP/1.1, through the engine, and back.
    async fn forward(&self, mut req: Request<Incoming>) -> Response<Body> {
        self.active.fetch_add(1, Relaxed);
        let _waiting = Waiting(self);
        if req.method() == Method::CONNECT {
            // Tunnels over HTTP/2 streams are not implemented.
            return answer(StatusCode::METHOD_NOT_ALLOWED);
        }
        if to_http1(&mut req).is_err() {
            return answer(StatusCode::BAD_REQUEST);
        }
        let Some(mut sender) = self.sender().await else {
            return answer(StatusCode::SERVICE_UNAVAILABLE);
        };
        match sender.send_request(req).await {
            Ok(mut resp) => {
                self.give_back(sender);
                *resp.version_mut() = Version::HTTP_2;
                resp.map(Either::Left)
            }
            // The engine answers every request it reads; this is the
            // bridge failing (the engine closed, out of descriptors).
            Err(e) => {
                tracing::debug!(frontend = %self.engine.frontend.name, "h2 stream to the engine failed: {e}");
                answer(StatusCode::BAD_GATEWAY)
            }
        }
    }

    /// An idle engine connection, or a new one.
    async fn sender(&self) -> Option<SendRequest<Incoming>> {
        if let Ok(mut idle) = self.idle.lock() {
            idle.retain(|s| !s.is_closed());
            if let Some(i) = idle.iter().position(SendRequest::is_ready) {
                return Some(idle.swap_remove(i));
            }
        }
        let (theirs, ours) = match bridge::pair() {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(frontend = %self.engine.frontend.name, "cannot open an h2 stream to the engine: {e}");
                return None;
            }
        };
        self.engine.spawn(theirs);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(ours))
            .await
            .ok()?;
        tokio::spawn(conn);
        Some(sender)
    }

    /// Keep an engine connection for a later stream; it becomes ready once
    /// the response body it carries is through.
    fn give_back(&self, sender: SendRequest<Incoming>) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < MAX_STREAMS as usize {
                idle.push(sender);
            }
        }
    }
}

/// Rewrites an HTTP/2 request head as HTTP/1.1 (RFC 9113, 8.3.1 and 8.2.3).
fn to_http1(req: &mut Request<Incoming>) -> Result<(), hyper::http::Error> {
    let authority = req.uri().authority().cloned();
    let target = req
        .uri()
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .parse::<Uri>()?;
    *req.uri_mut() = target;
    *req.version_mut() = Version::HTTP_11;
    let headers = req.headers_mut();
    if let Some(authority) = authority {
        headers.insert(HOST, HeaderValue::from_str(authority.as_str())?);
    }
    // HTTP/2 may split `cookie` into several fields; HTTP/1.1 wants one.
    if headers.get_all(COOKIE).iter().nth(1).is_some() {
        let mut joined = Vec::new();
        for v in headers.get_all(COOKIE) {
            if !joined.is_empty() {
                joined.extend_from_slice(b"; ");
            }
            joined.extend_from_slice(v.as_bytes());
        }
        headers.insert(COOKIE, HeaderValue::from_bytes(&joined)?);
    }
    Ok(())
}

/// A short answer of the gateway's own.
fn answer(status: StatusCode) -> Response<Body> {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::new())));
    *resp.status_mut() = status;
    resp
}
