//! Choosing a server and connecting to it: balancer, `maxconn` slots, the
//! backend queue, retries and redispatch.
//!
//! HAProxy's rules, as implemented here:
//! - Primaries serve while any is usable; otherwise the backup tier serves.
//! - A server at `maxconn` is skipped; when every candidate is full the
//!   request waits in the backend queue ([`queue`]), served in arrival
//!   order, until a slot is handed to it or `timeout queue` (default:
//!   `timeout connect`) expires, which answers 503 (`sQ`).
//! - A persistent request (cookie or stick entry naming a server) waits for
//!   that server in the server's own queue; when that queue is at the
//!   server's `maxqueue` it loses persistence and is balanced instead.
//! - The queue is bounded even without `maxqueue`: by the process's
//!   effective global `maxconn` (see [`crate::limits`]). Each queued request
//!   holds an accepted connection, so that is the most that could ever wait;
//!   the bound only makes it explicit.
//! - A failed connect is retried up to `retries` times. After a refused
//!   connection (not after a timeout) Shoal waits a turn-around of
//!   min(1 s, `timeout connect`) before retrying the same server, so that a
//!   restarting server is not hammered and a huge `retries` cannot spin.
//! - With `option redispatch`, the last retry goes to another server; a
//!   request without persistence on a round-robin-like algorithm
//!   (`roundrobin`, `static-rr`, `random`) with more than one usable server
//!   is redispatched on every retry, at once, as HAProxy 2.6 does.

use crate::observe::{Observer, Outcome};
use crate::routing::{BackendRt, ServerRt};
use crate::tls::SniSource;
use queue::{Bound, Joined, Want};
use shoal_proto::config::Balance;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

pub mod queue;

pub use queue::Queue;

/// Used when neither `timeout connect` nor `timeout queue` is set. HAProxy
/// would wait forever; a bound keeps a stuck backend from piling up tasks.
const FALLBACK_TIMEOUT: Duration = Duration::from_secs(30);

/// Why no server connection could be had. All map to 503 except timeouts
/// while waiting for a response, which the HTTP layer reports as 504.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    #[error("no server is available to handle this request")]
    NoServer,
    #[error("queue timeout")]
    QueueTimeout,
    #[error("queue full")]
    QueueFull,
    #[error("connection to server failed")]
    ConnectFailed,
    #[error("connection to server timed out")]
    ConnectTimeout,
}

impl DispatchError {
    /// HAProxy's two-letter termination state for logs (`sC`, `SC`, `sQ`).
    pub fn termination_state(self) -> &'static str {
        match self {
            DispatchError::NoServer | DispatchError::QueueFull => "SC",
            DispatchError::QueueTimeout => "sQ",
            DispatchError::ConnectFailed => "SC",
            DispatchError::ConnectTimeout => "sC",
        }
    }
}

/// A session slot held on one server. Dropping it frees the slot and hands
/// it to the oldest queued request that can use it.
#[derive(Debug)]
pub struct Claim {
    backend: Arc<BackendRt>,
    server: usize,
    /// Time spent in the queue (HAProxy's `Tw`).
    queued: Duration,
    /// Chosen by persistence rather than by the balancer (HAProxy's
    /// `SF_DIRECT`): never redispatched early.
    direct: bool,
}

impl Claim {
    fn new(backend: Arc<BackendRt>, server: usize, direct: bool) -> Claim {
        Claim {
            backend,
            server,
            queued: Duration::ZERO,
            direct,
        }
    }
    /// The server this slot belongs to.
    pub fn server(&self) -> &ServerRt {
        &self.backend.servers[self.server]
    }
    /// Index of the server in its backend.
    pub fn server_index(&self) -> usize {
        self.server
    }
    /// The backend.
    pub fn backend(&self) -> &Arc<BackendRt> {
        &self.backend
    }
    /// Time this request waited in the queue for its slot (the access
    /// log's `Tw`); zero when a slot was free at once.
    pub fn queued(&self) -> Duration {
        self.queued
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.backend.servers[self.server].shared.counters.release();
        self.backend.queue.released();
    }
}

/// Take a slot on a server chosen by the balancer, queueing when all
/// candidates are full. `avoid` excludes one server (redispatch).
pub async fn claim(
    backend: &Arc<BackendRt>,
    key: Option<&[u8]>,
    avoid: Option<usize>,
) -> Result<Claim, DispatchError> {
    // Nobody waiting: no lock, no copy of the key.
    if backend.queue.is_empty() {
        if let Some(claim) = try_claim(backend, key, avoid)? {
            return Ok(claim);
        }
    }
    let want = Want::Any {
        key: key.map(Box::from),
        avoid,
    };
    let own = backend.maxqueue.unwrap_or(usize::MAX);
    wait(backend, want, own).await
}

/// Take a slot on one given server (persistence), queueing while it is
/// full. When the server's own queue is at its `maxqueue`, the request
/// loses persistence and is balanced, as in HAProxy.
pub async fn claim_server(backend: &Arc<BackendRt>, server: usize) -> Result<Claim, DispatchError> {
    let s = &backend.servers[server];
    if backend.queue.is_empty() && s.try_acquire() {
        return Ok(Claim::new(backend.clone(), server, true));
    }
    let own = match s.maxqueue {
        Some(q) if q > 0 => q as usize,
        _ => usize::MAX,
    };
    match wait(backend, Want::Server(server), own).await {
        Err(DispatchError::QueueFull) if own != usize::MAX => claim(backend, None, None).await,
        other => other,
    }
}

/// Join the backend queue (or take a slot if none is ahead) and wait at
/// most `timeout queue`.
async fn wait(backend: &Arc<BackendRt>, want: Want, own: usize) -> Result<Claim, DispatchError> {
    let bound = Bound {
        total: default_queue_bound(),
        own,
    };
    let deadline = tokio::time::Instant::now() + queue_timeout(backend);
    match backend.queue.join(backend, want, bound)? {
        Joined::Now(claim) => Ok(claim),
        Joined::Full => Err(DispatchError::QueueFull),
        Joined::Queued(ticket) => ticket.wait(deadline).await,
    }
}

/// How long a request may wait in the queue: `timeout queue`, else
/// `timeout connect`, else [`FALLBACK_TIMEOUT`].
fn queue_timeout(backend: &BackendRt) -> Duration {
    backend
        .timeouts
        .queue
        .or(backend.timeouts.connect)
        .unwrap_or(FALLBACK_TIMEOUT)
}

/// Most requests one backend may queue when no `maxqueue` says otherwise.
fn default_queue_bound() -> usize {
    crate::limits::maxconn().map_or(DEFAULT_QUEUE_BOUND, |m| m as usize)
}

/// Queue bound when the process limits are unknown (library use, tests).
const DEFAULT_QUEUE_BOUND: usize = 10_000;

/// One non-blocking attempt: `Ok(None)` means every candidate is full.
pub(crate) fn try_claim(
    backend: &Arc<BackendRt>,
    key: Option<&[u8]>,
    avoid: Option<usize>,
) -> Result<Option<Claim>, DispatchError> {
    let tier = if backend.primary.is_empty() {
        &backend.backup
    } else {
        &backend.primary
    };
    if tier.is_empty() {
        return Err(DispatchError::NoServer);
    }
    let servers = &backend.servers;
    // In a cluster, the peers' last reported sessions count too.
    let load = |id: usize| servers[id].cluster_load();
    for pass in [avoid, None] {
        let skip = |id: usize| Some(id) == pass || servers[id].is_full();
        // A lost race for the last slot just means picking again.
        for _ in 0..4 {
            let Some(id) = tier.pick(key, &load, &skip) else {
                break;
            };
            let server = &servers[id];
            if server.try_acquire() {
                return Ok(Some(Claim::new(backend.clone(), id, false)));
            }
        }
        if avoid.is_none() {
            break;
        }
    }
    Ok(None)
}

/// Connect to the claimed server, retrying and redispatching on failure.
/// A TLS server whose `sni` is evaluated per connection gets the value
/// of its expression against `sni`. Returns the stream, the claim it
/// belongs to (which may have moved) and that SNI value, if any.
pub async fn connect(
    mut claim: Claim,
    key: Option<&[u8]>,
    client_dst_port: u16,
    observer: &Observer,
    sni: SniSource<'_>,
) -> Result<(TcpStream, Claim, Option<Box<str>>), DispatchError> {
    let backend = claim.backend.clone();
    let timeout = backend.timeouts.connect.unwrap_or(FALLBACK_TIMEOUT);
    let retries = backend.retries;
    let mut failures = 0;
    // Servers that refused since the last pause: when moving on at once
    // has tried every usable one, the next retry waits like any other,
    // so a backend whose servers all refuse cannot spin a core.
    let mut refused_round: Vec<usize> = Vec::new();
    loop {
        let server = claim.server();
        let mut addr = server.addr;
        if addr.port() == 0 {
            addr = SocketAddr::new(addr.ip(), client_dst_port);
        }
        // The SNI, evaluated for this server (a redispatch may change
        // it); plain servers and a constant `sni` evaluate nothing.
        let name = match server.tls.as_ref().and_then(|t| t.per_connection_sni()) {
            None => Ok(None),
            Some(expr) => sni.eval(expr),
        };
        // A value that cannot be sent (none for this server's expression,
        // or no server name, such as a Host with its port) is the
        // request's doing, not the server's: no connection, no error
        // counted against the server or reported to `observe`, no retry.
        let usable = match &name {
            Ok(value) => value.as_deref().is_none_or(crate::tls::Upstream::sendable),
            Err(_) => false,
        };
        if !usable {
            return Err(DispatchError::ConnectFailed);
        }
        // A TLS server's handshake counts as part of the connect; so does
        // an HTTP/2 server's, whose open connection may serve instead
        // (then no connection is opened: `fresh` is false).
        let connected = async {
            let name = name
                .as_ref()
                .map_err(|_| io::Error::other("no SNI value for this server's expression"))?;
            let name = name.as_deref();
            if let Some(h2) = &server.h2 {
                // Boxed: its state would otherwise enlarge every client
                // connection's task, HTTP/2 or not, for as long as it lives.
                return Box::pin(h2.connect(addr, server.tls.as_ref(), name)).await;
            }
            let stream = TcpStream::connect(addr).await?;
            let _ = stream.set_nodelay(true);
            match &server.tls {
                Some(tls) => tls.connect(stream, name).await.map(|s| (s, true)),
                None => Ok((stream, true)),
            }
        };
        let error = match tokio::time::timeout(timeout, connected).await {
            Ok(Ok((stream, fresh))) => {
                if fresh {
                    server.shared.counters.connects.fetch_add(1, Relaxed);
                }
                observer.report(&backend.name, &server.name, Outcome::ConnectOk);
                let name = name.ok().flatten().map(Box::from);
                return Ok((stream, claim, name));
            }
            Ok(Err(_)) => DispatchError::ConnectFailed,
            Err(_) => DispatchError::ConnectTimeout,
        };
        server.shared.counters.conn_errors.fetch_add(1, Relaxed);
        observer.report(&backend.name, &server.name, Outcome::ConnectError);
        if failures >= retries {
            return Err(error);
        }
        failures += 1;
        let from = claim.server;
        // HAProxy's default `redispatch` interval (-1) sends the last
        // retry elsewhere; non-persistent round-robin traffic moves on at
        // every retry when another server can take it.
        let spread =
            !claim.direct && round_robin_like(&backend.balance) && usable_primaries(&backend) > 1;
        let redispatch = backend.redispatch && (failures == retries || spread);
        // A refused connection is retried after a pause (not a timeout,
        // which has waited already), unless it moves on at once to a
        // server this round has not tried.
        if error == DispatchError::ConnectFailed {
            let moves_on = redispatch && spread;
            if moves_on && !refused_round.contains(&from) {
                refused_round.push(from);
            }
            if !moves_on || refused_round.len() >= usable_primaries(&backend) {
                refused_round.clear();
                tokio::time::sleep(turn_around(&backend)).await;
            }
        }
        if redispatch {
            // Free the slot before waiting for another one, as HAProxy
            // does, so two retrying requests never hold each other's.
            drop(claim);
            claim = self::claim(&backend, key, Some(from)).await?;
            backend.servers[from]
                .shared
                .counters
                .redispatches
                .fetch_add(1, Relaxed);
        } else {
            claim.server().shared.counters.retries.fetch_add(1, Relaxed);
        }
    }
}

/// HAProxy's pause before retrying after a connection error:
/// min(1 s, `timeout connect`).
fn turn_around(backend: &BackendRt) -> Duration {
    let second = Duration::from_secs(1);
    match backend.timeouts.connect {
        Some(t) if !t.is_zero() => t.min(second),
        _ => second,
    }
}

/// HAProxy's `BE_LB_KIND_RR` algorithms, which redispatch freely because
/// they do not care which server serves.
fn round_robin_like(balance: &Balance) -> bool {
    matches!(
        balance,
        Balance::RoundRobin | Balance::StaticRr | Balance::Random { .. }
    )
}

/// Usable primary servers (HAProxy's `srv_act`).
fn usable_primaries(backend: &BackendRt) -> usize {
    backend
        .servers
        .iter()
        .filter(|s| !s.backup && s.usable())
        .count()
}
