//! Choosing a server and connecting to it: balancer, `maxconn` slots, the
//! backend queue, retries and redispatch.
//!
//! HAProxy's rules, as implemented here:
//! - Primaries serve while any is usable; otherwise the backup tier serves.
//! - A server at `maxconn` is skipped; when every candidate is full the
//!   request waits in the backend queue until a slot frees or `timeout queue`
//!   (default: `timeout connect`) expires, which answers 503.
//! - A failed connect is retried on the same server up to `retries` times;
//!   with `option redispatch` the last retry goes to another server.
//!   Unlike HAProxy there is no 1 s turn-around pause between retries: a
//!   refused connect is retried at once (choice noted in README).

use crate::health::{Observer, Outcome};
use crate::runtime::{BackendRt, ServerRt};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

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

/// A session slot held on one server. Dropping it frees the slot and wakes
/// one queued request.
#[derive(Debug)]
pub struct Claim {
    backend: Arc<BackendRt>,
    server: usize,
    /// Time spent queued.
    pub queued: Duration,
}

impl Claim {
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
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.backend.servers[self.server].shared.counters.release();
        if self.backend.queue.waiting.load(Relaxed) > 0 {
            self.backend.queue.notify.notify_one();
        }
    }
}

/// Take a slot on a server chosen by the balancer, queueing when all
/// candidates are full. `avoid` excludes one server (redispatch).
pub async fn claim(
    backend: &Arc<BackendRt>,
    key: Option<&[u8]>,
    avoid: Option<usize>,
) -> Result<Claim, DispatchError> {
    claim_with(backend, || try_claim(backend, key, avoid)).await
}

/// Take a slot on one given server (persistence), queueing while it is full.
pub async fn claim_server(backend: &Arc<BackendRt>, server: usize) -> Result<Claim, DispatchError> {
    claim_with(backend, || {
        let s = &backend.servers[server];
        Ok(s.shared.counters.try_acquire(s.maxconn).then(|| Claim {
            backend: backend.clone(),
            server,
            queued: Duration::ZERO,
        }))
    })
    .await
}

/// Run `attempt` until it yields a claim, waiting in the backend queue
/// between attempts for at most `timeout queue`.
async fn claim_with(
    backend: &Arc<BackendRt>,
    attempt: impl Fn() -> Result<Option<Claim>, DispatchError>,
) -> Result<Claim, DispatchError> {
    if let Some(claim) = attempt()? {
        return Ok(claim);
    }
    let queue = &backend.queue;
    if let Some(max) = backend.maxqueue {
        if queue.waiting.load(Relaxed) >= max {
            return Err(DispatchError::QueueFull);
        }
    }
    let timeout = backend
        .timeouts
        .queue
        .or(backend.timeouts.connect)
        .unwrap_or(FALLBACK_TIMEOUT);
    let started = tokio::time::Instant::now();
    let deadline = started + timeout;
    queue.waiting.fetch_add(1, Relaxed);
    let _waiting = WaitingGuard(backend);
    loop {
        let notified = queue.notify.notified();
        tokio::pin!(notified);
        // Register before looking again so a slot freed in between wakes us.
        notified.as_mut().enable();
        if let Some(mut claim) = attempt()? {
            claim.queued = started.elapsed();
            return Ok(claim);
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return Err(DispatchError::QueueTimeout);
        }
    }
}

struct WaitingGuard<'a>(&'a BackendRt);
impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.queue.waiting.fetch_sub(1, Relaxed);
    }
}

/// One non-blocking attempt: `Ok(None)` means every candidate is full.
fn try_claim(
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
    let load = |id: usize| servers[id].shared.counters.current();
    for pass in [avoid, None] {
        let skip = |id: usize| Some(id) == pass || servers[id].is_full();
        // A lost race for the last slot just means picking again.
        for _ in 0..4 {
            let Some(id) = tier.pick(key, &load, &skip) else {
                break;
            };
            let server = &servers[id];
            if server.shared.counters.try_acquire(server.maxconn) {
                return Ok(Some(Claim {
                    backend: backend.clone(),
                    server: id,
                    queued: Duration::ZERO,
                }));
            }
        }
        if avoid.is_none() {
            break;
        }
    }
    Ok(None)
}

/// Connect to the claimed server, retrying and redispatching on failure.
/// Returns the stream and the claim it belongs to (which may have moved).
pub async fn connect(
    mut claim: Claim,
    key: Option<&[u8]>,
    client_dst_port: u16,
    observer: &Observer,
) -> Result<(TcpStream, Claim), DispatchError> {
    let backend = claim.backend.clone();
    let timeout = backend.timeouts.connect.unwrap_or(FALLBACK_TIMEOUT);
    let retries = backend.retries;
    let mut attempt = 0;
    loop {
        let server = claim.server();
        let mut addr = server.addr;
        if addr.port() == 0 {
            addr = SocketAddr::new(addr.ip(), client_dst_port);
        }
        let error = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                server.shared.counters.connects.fetch_add(1, Relaxed);
                observer.report(&backend.name, &server.name, Outcome::ConnectOk);
                return Ok((stream, claim));
            }
            Ok(Err(_)) => DispatchError::ConnectFailed,
            Err(_) => DispatchError::ConnectTimeout,
        };
        server.shared.counters.conn_errors.fetch_add(1, Relaxed);
        observer.report(&backend.name, &server.name, Outcome::ConnectError);
        if attempt >= retries {
            return Err(error);
        }
        attempt += 1;
        server.shared.counters.retries.fetch_add(1, Relaxed);
        // HAProxy's default `redispatch` interval (-1): the last retry goes
        // to another server.
        if backend.redispatch && attempt == retries {
            let from = claim.server;
            let next = self::claim(&backend, key, Some(from)).await?;
            backend.servers[from]
                .shared
                .counters
                .redispatches
                .fetch_add(1, Relaxed);
            claim = next;
        }
    }
}
