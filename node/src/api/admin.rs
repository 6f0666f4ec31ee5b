//! The admin HTTP API: JSON resources under `/v1`, Prometheus `/metrics`,
//! `/live`, `/ready` and an OpenAPI document at `/openapi.json`.
//!
//! Every write becomes a [`shoal_proto::command::Command`] applied through
//! `Runtime::apply`, the same path the runtime socket takes. Everything
//! except the probes, `/metrics` and `/openapi.json` needs
//! `Authorization: Bearer TOKEN` when a token is configured.

mod handlers;
mod openapi;
mod reply;
mod routes;
mod views;

use crate::runtime::{Runtime, Snapshot};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, AUTHORIZATION, WWW_AUTHENTICATE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use reply::{Failure, Reply};
use routes::{Match, Op};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::task::{JoinHandle, JoinSet};

/// Bound on concurrent admin connections; more wait in the accept backlog.
const MAX_CONNECTIONS: usize = 256;
/// A client must send its request head within this time.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The running admin server; dropping this stops it and its connections.
pub struct Admin {
    task: JoinHandle<()>,
    ready: Arc<AtomicBool>,
}

impl Admin {
    /// Set the `/ready` latch. [`start`] sets it (the node starts the API
    /// once its snapshot is loaded and listeners are open); clear it when
    /// the node begins a graceful stop, so balancers in front move away.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        // Aborting the accept task drops its JoinSet, which aborts every connection.
        self.task.abort();
    }
}

/// Shared by every admin connection.
struct Ctx {
    runtime: Arc<Runtime>,
    token: Option<String>,
    ready: Arc<AtomicBool>,
}

/// Serve the admin API on `listener`. `token`: bearer token required for
/// everything but `/live`, `/ready`, `/metrics` and `/openapi.json`; `None`
/// means open (the node allows that on loopback only).
pub async fn start(
    listener: tokio::net::TcpListener,
    runtime: Arc<Runtime>,
    token: Option<String>,
) -> std::io::Result<Admin> {
    let ready = Arc::new(AtomicBool::new(true));
    let ctx = Arc::new(Ctx {
        runtime,
        token: token.filter(|t| !t.is_empty()),
        ready: ready.clone(),
    });
    let task = tokio::spawn(accept_loop(listener, ctx));
    Ok(Admin { task, ready })
}

async fn accept_loop(listener: tokio::net::TcpListener, ctx: Arc<Ctx>) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        if connections.len() >= MAX_CONNECTIONS {
            connections.join_next().await;
            continue;
        }
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                tracing::warn!("admin API accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let ctx = ctx.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| {
                let ctx = ctx.clone();
                async move { Ok::<_, Infallible>(handle(req, &ctx).await) }
            });
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// One request: authenticate, route, answer.
async fn handle(req: Request<Incoming>, ctx: &Ctx) -> Reply {
    let path = req.uri().path().to_string();
    if !routes::is_public(&path) && !authorized(&req, ctx.token.as_deref()) {
        let mut resp = reply::error(StatusCode::UNAUTHORIZED, "missing or invalid bearer token");
        resp.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return resp;
    }
    let (route, params) = match routes::find(req.method(), &path) {
        Match::Found(route, params) => (route, params),
        Match::NotFound => return reply::error(StatusCode::NOT_FOUND, "no such resource"),
        Match::WrongMethod(allowed) => {
            let mut resp = reply::error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            let list: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
            if let Ok(v) = HeaderValue::from_str(&list.join(", ")) {
                resp.headers_mut().insert(ALLOW, v);
            }
            return resp;
        }
    };
    match route.op {
        Op::Live => reply::json(StatusCode::OK, &serde_json::json!({ "status": "live" })),
        Op::Ready if ctx.ready.load(Ordering::SeqCst) => {
            reply::json(StatusCode::OK, &serde_json::json!({ "status": "ready" }))
        }
        Op::Ready => reply::json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({ "status": "not ready" }),
        ),
        Op::Metrics => {
            let text = crate::metrics::render(&ctx.runtime.snapshot());
            reply::body(StatusCode::OK, crate::metrics::CONTENT_TYPE, text)
        }
        Op::OpenApi => reply::json(StatusCode::OK, &openapi::document()),
        op => handlers::v1(op, params, req, &ctx.runtime)
            .await
            .unwrap_or_else(|f: Failure| f.reply()),
    }
}

/// True when no token is configured, or the request carries it as
/// `Authorization: Bearer TOKEN` (compared in constant time).
fn authorized(req: &Request<Incoming>, token: Option<&str>) -> bool {
    let Some(token) = token else {
        return true;
    };
    let Some(value) = req.headers().get(AUTHORIZATION) else {
        return false;
    };
    let Some((scheme, given)) = value.as_bytes().split_first_chunk::<7>() else {
        return false;
    };
    // `ct_eq` on slices of different lengths answers at once: the token's
    // length is not secret, its bytes are.
    scheme.eq_ignore_ascii_case(b"Bearer ")
        && bool::from(given.trim_ascii().ct_eq(token.as_bytes()))
}

/// All stats rows as JSON objects keyed by HAProxy's `show stat` field names.
/// Empty cells are `null`.
fn stats_json(snapshot: &Snapshot) -> Vec<serde_json::Map<String, serde_json::Value>> {
    use crate::stats::Value as V;
    use serde_json::Value as J;
    crate::stats::collect(snapshot)
        .iter()
        .map(|row| {
            row.fields()
                .into_iter()
                .map(|(name, value)| {
                    let value = match value {
                        V::Empty => J::Null,
                        V::U64(n) => J::from(n),
                        V::S64(n) => J::from(n),
                        V::Str(s) => J::from(s),
                    };
                    (name.to_string(), value)
                })
                .collect()
        })
        .collect()
}
