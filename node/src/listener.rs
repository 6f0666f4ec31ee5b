//! Listening sockets and accept loops.
//!
//! Each `bind` line of a frontend becomes one listener, keyed by frontend
//! name and configured address. A reload opens new keys, closes vanished
//! ones and leaves the rest untouched, so established connections and the
//! listening sockets that stay never notice a reload.
//!
//! `maxconn` (global and frontend) is enforced by taking a permit before
//! `accept()`: at the limit Shoal stops accepting and new clients wait in
//! the kernel backlog, as with HAProxy. The process-wide cap comes from
//! [`crate::limits`], which sized it to the descriptor limit at start.
//!
//! When `accept()` fails for lack of descriptors the loop pauses until a
//! connection closes (at most 100 ms) instead of spinning, and accept
//! errors are logged at most once a second per listener.

use crate::runtime::Runtime;
use shoal_proto::config::{Bind, Mode};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

/// Pending connections the kernel may hold for a listener.
const BACKLOG: i32 = 1024;

/// Counts live client connections so shutdown can wait for them.
#[derive(Debug, Default)]
pub struct Tracker {
    active: AtomicUsize,
    idle: Notify,
}

impl Tracker {
    /// Connections open now.
    pub fn active(&self) -> usize {
        self.active.load(SeqCst)
    }
    /// Wait until no connection is open.
    pub async fn wait_idle(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.active() == 0 {
                return;
            }
            idle.await;
        }
    }
    fn enter(self: &Arc<Self>) -> TrackGuard {
        self.active.fetch_add(1, SeqCst);
        ACTIVE.fetch_add(1, Relaxed);
        TrackGuard(self.clone())
    }
}

/// Client connections open in the whole process (HAProxy's `%ac`).
static ACTIVE: AtomicU32 = AtomicU32::new(0);

/// Client connections open in the whole process now.
pub fn active_connections() -> u32 {
    ACTIVE.load(Relaxed)
}

struct TrackGuard(Arc<Tracker>);
impl Drop for TrackGuard {
    fn drop(&mut self) {
        ACTIVE.fetch_sub(1, Relaxed);
        // A descriptor came free: resume accept loops that ran out.
        if PAUSED.load(SeqCst) > 0 {
            CLOSED.notify_waiters();
        }
        if self.0.active.fetch_sub(1, SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// The socket address a `bind` line names. `*` and an empty host mean all
/// IPv4 addresses; `::` listens on IPv6 and, by Linux default, IPv4 too.
pub fn bind_addr(bind: &Bind) -> Result<SocketAddr, String> {
    let ip = match bind.host.as_str() {
        "" | "*" | "0.0.0.0" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        "::" => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        host => match host.trim_start_matches('[').trim_end_matches(']').parse() {
            Ok(ip) => ip,
            Err(_) => {
                use std::net::ToSocketAddrs;
                return (host, bind.port)
                    .to_socket_addrs()
                    .map_err(|e| e.to_string())?
                    .next()
                    .ok_or_else(|| format!("cannot resolve '{host}'"));
            }
        },
    };
    Ok(SocketAddr::new(ip, bind.port))
}

/// Open a listening socket with SO_REUSEADDR (so a restart can rebind at once).
pub fn open(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// A running accept loop; dropping `stop` (or sending on it) ends it.
pub struct Handle {
    pub local: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Handle {
    /// Stop accepting and close the listening socket. Connections already
    /// accepted continue.
    pub async fn close(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Shared things an accept loop needs.
#[derive(Clone)]
pub struct AcceptCtx {
    pub runtime: Arc<Runtime>,
    /// Passive health (`observe`): the request path reports outcomes here.
    pub observer: crate::observe::Observer,
    pub tracker: Arc<Tracker>,
    /// Flips to true on graceful shutdown; HTTP connections then close when idle.
    pub shutdown: watch::Receiver<bool>,
}

/// Start accepting on `listener` for the frontend called `frontend`, on
/// behalf of its `bind` line naming `addr` (which says whether TLS is on).
pub fn spawn(
    listener: TcpListener,
    frontend: String,
    addr: Box<str>,
    wants_tls: bool,
    ctx: AcceptCtx,
) -> std::io::Result<Handle> {
    let local = listener.local_addr()?;
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut errors = ErrorLog::default();
        loop {
            let permits = tokio::select! {
                _ = stopped.changed() => return,
                p = acquire(&ctx, &frontend) => p,
            };
            let accepted = tokio::select! {
                _ = stopped.changed() => return,
                a = listener.accept() => a,
            };
            match accepted {
                Ok((stream, peer)) => {
                    dispatch(
                        stream, peer, local, &frontend, &addr, wants_tls, &ctx, permits,
                    );
                }
                Err(e) => {
                    drop(permits);
                    let out_of_fds = out_of_descriptors(&e);
                    errors.report(|suppressed| {
                        let more = match suppressed {
                            0 => String::new(),
                            n => format!(" ({n} more since the last report)"),
                        };
                        if out_of_fds {
                            // HAProxy: "reached process FD limit ... Please
                            // check 'ulimit-n' and restart."
                            tracing::warn!(
                                "frontend '{frontend}' cannot accept on {local}: {e}; \
                                 pausing accepts (check 'ulimit -n' and maxconn){more}"
                            );
                        } else {
                            tracing::warn!("frontend '{frontend}' accept on {local}: {e}{more}");
                        }
                    });
                    tokio::select! {
                        _ = stopped.changed() => return,
                        () = pause(out_of_fds) => {}
                    }
                }
            }
        }
    });
    Ok(Handle { local, stop, task })
}

/// Out of descriptors or kernel memory: retrying at once cannot succeed.
fn out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// After an accept error: when out of descriptors, wait until a connection
/// closes (at most 100 ms, as HAProxy re-enables a limited listener);
/// other errors (a client that reset before we accepted) pause briefly.
async fn pause(out_of_fds: bool) {
    if !out_of_fds {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        return;
    }
    let closed = CLOSED.notified();
    PAUSED.fetch_add(1, SeqCst);
    let _ = tokio::time::timeout(std::time::Duration::from_millis(100), closed).await;
    PAUSED.fetch_sub(1, SeqCst);
}

/// Accept loops paused for lack of descriptors; while any is, closing a
/// connection wakes them.
static PAUSED: AtomicUsize = AtomicUsize::new(0);
static CLOSED: Notify = Notify::const_new();

/// Logs accept errors at most once a second per listener, with a count of
/// the ones not logged (a full descriptor table fails every accept).
#[derive(Default)]
struct ErrorLog {
    last: Option<std::time::Instant>,
    suppressed: u64,
}

impl ErrorLog {
    fn report(&mut self, log: impl FnOnce(u64)) {
        let now = std::time::Instant::now();
        match self.last {
            Some(at) if now.duration_since(at) < std::time::Duration::from_secs(1) => {
                self.suppressed += 1;
            }
            _ => {
                log(self.suppressed);
                self.suppressed = 0;
                self.last = Some(now);
            }
        }
    }
}

/// Permits held by one connection: process-wide, global and frontend
/// `maxconn` (a fixed array, so accepting allocates nothing for them).
type Permits = [Option<OwnedSemaphorePermit>; 3];

/// Take the process-wide, global and frontend `maxconn` permits (those
/// that exist).
async fn acquire(ctx: &AcceptCtx, frontend: &str) -> Permits {
    let snapshot = ctx.runtime.snapshot();
    let limits: [Option<&Arc<Semaphore>>; 3] = [
        // The process-wide cap that keeps connections within the fd limit.
        crate::limits::connection_slots(),
        snapshot.global_limit.as_ref(),
        snapshot
            .frontend(frontend)
            .and_then(|f| f.conn_limit.as_ref()),
    ];
    let mut permits: Permits = Default::default();
    for (slot, sem) in permits.iter_mut().zip(limits) {
        if let Some(sem) = sem {
            *slot = sem.clone().acquire_owned().await.ok();
        }
    }
    permits
}

#[allow(clippy::too_many_arguments)]
fn dispatch(
    stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    frontend: &str,
    addr: &str,
    wants_tls: bool,
    ctx: &AcceptCtx,
    permits: Permits,
) {
    let snapshot = ctx.runtime.snapshot();
    let Some(fe) = snapshot.frontend(frontend).cloned() else {
        return;
    };
    let tls = fe.tls_for(addr).cloned();
    // A `bind ... ssl` whose routing could not be built here (a missing
    // certificate): refuse the connection rather than speak plaintext.
    if wants_tls && tls.is_none() {
        tracing::debug!("frontend '{frontend}': {addr} wants TLS but has no certificate loaded here; connection closed");
        return;
    }
    let _ = stream.set_nodelay(true);
    let guard = ctx.tracker.enter();
    let runtime = ctx.runtime.clone();
    let observer = ctx.observer.clone();
    let shutdown = ctx.shutdown.clone();
    fe.counters.open();
    tokio::spawn(async move {
        let counters = fe.counters.clone();
        match (tls, fe.mode) {
            (Some(tls), _) => {
                // The handshake runs here, in the connection's own task.
                drop(snapshot);
                let engine = crate::tls::Engine {
                    peer,
                    local,
                    frontend: fe,
                    runtime,
                    observer,
                    shutdown,
                    session: Default::default(),
                };
                crate::tls::serve(tls, stream, engine).await;
            }
            (None, Mode::Http) => {
                crate::http::serve(stream, peer, local, fe, runtime, observer, shutdown, None)
                    .await;
            }
            (None, Mode::Tcp) => {
                crate::tcp::serve(stream, peer, local, fe, snapshot, observer, None).await;
            }
        }
        counters.close();
        drop(permits);
        drop(guard);
    });
}
