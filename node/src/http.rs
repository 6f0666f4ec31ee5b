//! HTTP mode on hyper 1: keep-alive toward clients, pooled keep-alive
//! connections toward servers, ACL routing per request, `X-Forwarded-For`,
//! Upgrade tunnels (WebSocket), and HAProxy-style error responses.

mod body;
pub mod cookie;
mod counting;
mod errors;
mod samples;
mod upload;

pub use body::ProxyBody;
pub use samples::{hash_key, query_param, HttpSamples};
pub use upload::Upload;

use crate::dispatch::{self, Claim, DispatchError};
use crate::health::Outcome;
use crate::persist::{self, Sticky};
use crate::pool::Sender;
use crate::runtime::{BackendRt, FrontendRt, Runtime};
use body::{Finish, LogCtx};
use counting::{Counting, Direction};
use hyper::body::Incoming;
use hyper::header::{
    HeaderName, HeaderValue, CACHE_CONTROL, CONNECTION, COOKIE, SET_COOKIE, UPGRADE,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use shoal_proto::config::{CookieConfig, CookieMode};
use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

/// Used for `timeout http-request` when neither it nor `timeout client` is set.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Per-client-connection facts shared by its requests.
struct ConnCtx {
    runtime: Arc<Runtime>,
    frontend: Box<str>,
    peer: SocketAddr,
    local: SocketAddr,
    /// The client's address as an `X-Forwarded-For` value, built once.
    xff: HeaderValue,
    requests: AtomicU64,
}

/// Serve one accepted HTTP-mode client connection until it closes, the
/// request timeout fires, or `shutdown` asks for a graceful close.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    frontend: Arc<FrontendRt>,
    runtime: Arc<Runtime>,
    mut shutdown: watch::Receiver<bool>,
) {
    // hyper closes silently on a header timeout; HAProxy answers 408. A
    // duplicate of the socket lets us write that answer afterwards.
    let spare = socket2::SockRef::from(&stream).try_clone().ok();
    let timeout = frontend
        .timeouts
        .http_request
        .or(frontend.timeouts.client)
        .unwrap_or(DEFAULT_REQUEST_TIMEOUT);
    let ctx = Arc::new(ConnCtx {
        runtime,
        frontend: frontend.name.clone(),
        peer,
        local,
        xff: HeaderValue::from_str(&peer.ip().to_string())
            .unwrap_or(HeaderValue::from_static("unknown")),
        requests: AtomicU64::new(0),
    });
    let svc_ctx = ctx.clone();
    let service = service_fn(move |req| {
        let ctx = svc_ctx.clone();
        async move { Ok::<_, Infallible>(handle(req, &ctx).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .keep_alive(!frontend.httpclose);
    let counters = frontend.counters.clone();
    let add = Arc::new(move |n: u64| {
        counters.bytes_in.fetch_add(n, Relaxed);
    });
    let stream = Counting::new(stream, Direction::Read, add);
    let conn = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = async { let _ = shutdown.wait_for(|stop| *stop).await; } => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        if e.is_timeout() && ctx.requests.load(Relaxed) == 0 {
            frontend.counters.req_errors.fetch_add(1, Relaxed);
            if let Some(sock) = spare {
                let mut sock = std::net::TcpStream::from(sock);
                let _ = sock.write_all(&errors::raw_408());
            }
        } else if e.is_parse() {
            frontend.counters.req_errors.fetch_add(1, Relaxed);
        }
    }
}

/// One request, from routing to the response head; the body streams on.
async fn handle(req: Request<Incoming>, ctx: &ConnCtx) -> Response<ProxyBody> {
    ctx.requests.fetch_add(1, Relaxed);
    let snapshot = ctx.runtime.snapshot();
    let Some(frontend) = snapshot.frontend(&ctx.frontend).cloned() else {
        return errors::response(503);
    };
    frontend.counters.requests.fetch_add(1, Relaxed);
    if let Some(stats) = &frontend.stats {
        if req
            .uri()
            .path_and_query()
            .is_some_and(|p| p.as_str().starts_with(stats.uri.as_str()))
        {
            drop(snapshot);
            return crate::stats_page::serve(req, &ctx.runtime, &frontend, ctx.peer).await;
        }
    }
    let route = frontend.router.route(&HttpSamples {
        req: &req,
        src: ctx.peer.ip(),
        dst_port: ctx.local.port(),
    });
    let Some(index) = route else {
        frontend.counters.count_response(503);
        return errors::response(503);
    };
    let backend = snapshot.backends[index].clone();
    drop(snapshot);
    backend.counters.open();
    backend.counters.requests.fetch_add(1, Relaxed);
    let start = Instant::now();
    let response = match forward(req, ctx, &frontend, &backend, start).await {
        Ok(resp) => return resp,
        Err(status) => status,
    };
    backend.counters.close();
    frontend.counters.count_response(response);
    backend.counters.count_response(response);
    errors::response(response)
}

/// Dispatch, connect and send; `Err(status)` asks for an error response.
async fn forward(
    mut req: Request<Incoming>,
    ctx: &ConnCtx,
    frontend: &Arc<FrontendRt>,
    backend: &Arc<BackendRt>,
    start: Instant,
) -> Result<Response<ProxyBody>, u16> {
    let mut key_buf = [0u8; 16];
    let key = hash_key(&backend.balance, &req, ctx.peer.ip(), &mut key_buf);
    let persistent = backend.cookie.is_some() || !backend.stick.is_empty();
    let sticky = if persistent {
        let samples = HttpSamples {
            req: &req,
            src: ctx.peer.ip(),
            dst_port: ctx.local.port(),
        };
        persist::lookup(backend, &samples)
    } else {
        Sticky::default()
    };
    let claimed = match sticky.server {
        Some(server) => dispatch::claim_server(backend, server).await,
        None => dispatch::claim(backend, key, None).await,
    };
    let claim = claimed.map_err(|e| {
        if matches!(
            e,
            DispatchError::NoServer | DispatchError::QueueFull | DispatchError::QueueTimeout
        ) {
            backend.counters.no_server.fetch_add(1, Relaxed);
        }
        503u16
    })?;
    let t_queue = start.elapsed();
    let upgrade = req.headers().contains_key(UPGRADE);
    let pooled = if upgrade {
        None
    } else {
        claim.server().shared.pool.take()
    };
    let (mut sender, mut claim, mut reused) = match pooled {
        Some(sender) => (sender, claim, true),
        None => {
            let (s, c) = connect(claim, key, ctx.local.port(), &ctx.runtime.observer)
                .await
                .map_err(|_| 503u16)?;
            (s, c, false)
        }
    };
    let t_connect = start.elapsed();
    if !backend.stick.is_empty() {
        let samples = HttpSamples {
            req: &req,
            src: ctx.peer.ip(),
            dst_port: ctx.local.port(),
        };
        persist::store(backend, &samples, claim.server_index());
    }
    if let Some(cfg) = &backend.cookie {
        cookie_for_server(req.headers_mut(), cfg);
    }

    prepare_request(
        &mut req,
        ctx,
        frontend.forwardfor || backend.forwardfor,
        upgrade,
    );
    let request_line = (frontend.log.is_some() && crate::log::enabled())
        .then(|| format!("{} {} {:?}", req.method(), req.uri(), req.version()));
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let client_timeout = frontend.timeouts.client;
    let mut outgoing = req.map(|body| Upload::new(body, client_timeout));
    let server_timeout = backend.timeouts.server;
    let mut retried = 0u32;
    let generation = claim.server().shared.generation();
    let mut resp = loop {
        if reused && sender.ready().await.is_err() {
            // The pooled connection died while idle: take a fresh one.
            let (s, c) = connect(claim, None, ctx.local.port(), &ctx.runtime.observer)
                .await
                .map_err(|_| 503u16)?;
            (sender, claim, reused) = (s, c, false);
        }
        let observer = &ctx.runtime.observer;
        let server = claim.server();
        let sent = sender.try_send_request(outgoing);
        let timed = async {
            match server_timeout {
                Some(t) => tokio::time::timeout(t, sent).await.ok(),
                None => Some(sent.await),
            }
        };
        let result = tokio::select! {
            r = timed => r,
            // `shutdown sessions server` while waiting for the response head.
            () = server.shared.killed(generation) => return Err(503),
        };
        let Some(result) = result else {
            observer.report(&backend.name, &server.name, Outcome::ReadTimeout);
            return Err(504);
        };
        match result {
            Ok(resp) => {
                observer.report(
                    &backend.name,
                    &server.name,
                    Outcome::Status(resp.status().as_u16()),
                );
                break resp;
            }
            Err(mut e) => match e.take_message() {
                // Not sent at all: the idle connection was closed under us.
                Some(back) if reused => {
                    outgoing = back;
                    retried += 1;
                    let (s, c) = connect(claim, None, ctx.local.port(), &ctx.runtime.observer)
                        .await
                        .map_err(|_| 503u16)?;
                    (sender, claim, reused) = (s, c, false);
                }
                _ if upload::is_client_timeout(e.error()) => {
                    frontend.counters.req_errors.fetch_add(1, Relaxed);
                    return Err(408);
                }
                _ => {
                    let server = claim.server();
                    server.shared.counters.resp_errors.fetch_add(1, Relaxed);
                    let outcome = if e.error().is_parse() {
                        Outcome::InvalidResponse
                    } else {
                        Outcome::Closed
                    };
                    ctx.runtime
                        .observer
                        .report(&backend.name, &server.name, outcome);
                    return Err(502);
                }
            },
        }
    };
    let t_response = start.elapsed();
    backend.counters.record_latency(t_response);
    let status = resp.status().as_u16();
    claim.server().shared.counters.count_response(status);
    backend.counters.count_response(status);
    frontend.counters.count_response(status);

    if status == 101 {
        if let Some(client_side) = client_upgrade {
            let server_side = hyper::upgrade::on(&mut resp);
            let tunnel_timeouts = crate::tcp::merge(&frontend.timeouts, &backend.timeouts);
            let backend = backend.clone();
            tokio::spawn(async move {
                tunnel(client_side, server_side, tunnel_timeouts).await;
                drop(claim);
                backend.counters.close();
            });
            return Ok(resp.map(|_| ProxyBody::empty()));
        }
    }

    let close = frontend.httpclose || backend.httpclose;
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    if let Some(cfg) = &backend.cookie {
        let client_has_it = sticky.cookie_server == Some(claim.server_index());
        cookie_for_client(
            &mut parts.headers,
            cfg,
            &claim.server().cookie,
            client_has_it,
            sticky.cookie_first,
        );
    }
    if close {
        parts
            .headers
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    let log = request_line.map(|request_line| LogCtx {
        peer: ctx.peer,
        accepted: SystemTime::now() - start.elapsed(),
        start,
        t_queue: t_queue.as_millis() as i64,
        t_connect: t_connect.as_millis() as i64,
        t_response: t_response.as_millis() as i64,
        status,
        retries: retried,
        request_line,
    });
    let finish = Finish {
        sender: (!close).then_some(sender),
        claim,
        frontend: frontend.clone(),
        bytes: 0,
        log,
        generation,
        idle: backend.timeouts.server,
        timer: None,
    };
    Ok(Response::from_parts(
        parts,
        ProxyBody::upstream(body, finish),
    ))
}

/// Connect to the claimed server (with retries and redispatch) and run the
/// HTTP/1.1 handshake.
async fn connect(
    claim: Claim,
    key: Option<&[u8]>,
    dst_port: u16,
    observer: &crate::health::Observer,
) -> Result<(Sender, Claim), DispatchError> {
    let (stream, claim) = dispatch::connect(claim, key, dst_port, observer).await?;
    // Bytes written to the server are its `bin` and its backend's.
    let (server, backend) = (
        claim.server().shared.clone(),
        claim.backend().counters.clone(),
    );
    let add = Arc::new(move |n: u64| {
        server.counters.bytes_in.fetch_add(n, Relaxed);
        backend.bytes_in.fetch_add(n, Relaxed);
    });
    let stream = Counting::new(stream, Direction::Write, add);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| DispatchError::ConnectFailed)?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    Ok((sender, claim))
}

/// Hide or unprefix the persistence cookie before the server sees it.
fn cookie_for_server(headers: &mut hyper::HeaderMap, cfg: &CookieConfig) {
    let rewritten: Vec<Option<String>> = headers
        .get_all(COOKIE)
        .iter()
        .map(|v| cookie::for_server(v.to_str().unwrap_or(""), cfg))
        .collect();
    // Most requests carry no persistence cookie: leave their headers alone.
    if rewritten.iter().all(Option::is_none) {
        return;
    }
    let originals: Vec<HeaderValue> = headers.get_all(COOKIE).iter().cloned().collect();
    headers.remove(COOKIE);
    for (original, new) in originals.into_iter().zip(rewritten) {
        let value = match new {
            None => Some(original),
            Some(text) if text.is_empty() => None,
            Some(text) => HeaderValue::from_str(&text).ok(),
        };
        if let Some(v) = value {
            headers.append(COOKIE, v);
        }
    }
}

/// Insert, rewrite or prefix the persistence cookie in a response.
fn cookie_for_client(
    headers: &mut hyper::HeaderMap,
    cfg: &CookieConfig,
    server_cookie: &str,
    client_has_it: bool,
    first: Option<u64>,
) {
    match cfg.mode {
        CookieMode::Insert => {
            let server_sets_it = cfg.preserve
                && headers
                    .get_all(SET_COOKIE)
                    .iter()
                    .any(|v| cookie::sets(v.to_str().unwrap_or(""), &cfg.name));
            // With `maxidle` the cookie is re-sent to refresh its idle date.
            let refresh = cfg.maxidle.is_some();
            if (cfg.indirect && client_has_it && !refresh) || server_sets_it {
                return;
            }
            let first = if client_has_it { first } else { None };
            let value = cookie::inserted(cfg, server_cookie, persist::unix_now(), first);
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.append(SET_COOKIE, v);
            }
            if cfg.nocache {
                headers.insert(CACHE_CONTROL, HeaderValue::from_static("private"));
            }
        }
        CookieMode::Rewrite | CookieMode::Prefix => {
            let values: Vec<String> = headers
                .get_all(SET_COOKIE)
                .iter()
                .map(|v| {
                    let text = v.to_str().unwrap_or("");
                    cookie::rewrite_response(text, cfg, server_cookie)
                        .unwrap_or_else(|| text.to_string())
                })
                .collect();
            if values.is_empty() {
                return;
            }
            headers.remove(SET_COOKIE);
            for value in values {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    headers.append(SET_COOKIE, v);
                }
            }
            if cfg.nocache {
                headers.insert(CACHE_CONTROL, HeaderValue::from_static("private"));
            }
        }
    }
}

/// Headers that describe one hop and must not be forwarded.
fn strip_hop_by_hop(headers: &mut hyper::HeaderMap) {
    headers.remove(CONNECTION);
    headers.remove(&KEEP_ALIVE);
    headers.remove(&PROXY_CONNECTION);
}

fn prepare_request(req: &mut Request<Incoming>, ctx: &ConnCtx, forwardfor: bool, upgrade: bool) {
    let headers = req.headers_mut();
    if !upgrade {
        strip_hop_by_hop(headers);
    }
    if forwardfor {
        // HAProxy appends its own header line rather than editing an existing one.
        headers.append(X_FORWARDED_FOR.clone(), ctx.xff.clone());
    }
}

/// Copy bytes both ways over an upgraded (e.g. WebSocket) connection.
async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    server: hyper::upgrade::OnUpgrade,
    timeouts: shoal_proto::config::Timeouts,
) {
    let (Ok(client), Ok(server)) = tokio::join!(client, server) else {
        return;
    };
    // Same loop and timeouts as TCP mode: `timeout tunnel` (else client /
    // server) bounds inactivity, not the tunnel's whole life.
    let (cr, cw) = tokio::io::split(TokioIo::new(client));
    let (sr, sw) = tokio::io::split(TokioIo::new(server));
    let _ = crate::tcp::copy_both_ways(cr, cw, sr, sw, &timeouts).await;
}
