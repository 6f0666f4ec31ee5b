//! The one runtime structure: every server's admin state, operational state,
//! weight and counters, and the routing snapshot the request path reads.
//!
//! The request path calls [`Runtime::snapshot`] and works on that immutable
//! [`Snapshot`] for the whole request. Every change (reload, weight, state)
//! goes through [`Runtime`], which rebuilds a complete snapshot and swaps it
//! in (pingora-style `ArcSwap`). Counters, connection pools and queues are
//! shared `Arc`s carried from one snapshot to the next, keyed by
//! `backend/server`, so they survive changes. Nothing else owns server state:
//! a later issue feeds [`Runtime::set_server`] from the replicated cluster
//! state.

mod build;
mod counters;

pub use counters::{ProxyCounters, ServerCounters, StatusClass};

use crate::acl::Router;
use crate::balance::Balancer;
use crate::persist::StickTable;
use crate::pool::Pool;
use arc_swap::ArcSwap;
use shoal_proto::command::Command;
use shoal_proto::config::{Balance, Config, Mode, Timeouts};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, Semaphore};

pub use shoal_proto::command::{AdminState, OpState};

/// The part of a server's state that is not in the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerState {
    pub admin: AdminState,
    pub op: OpState,
    /// Current weight (0..=256); starts at the configured weight.
    pub weight: u32,
    /// Health checks run (`enable|disable health`).
    pub check_enabled: bool,
    /// `set maxconn server` override of the configured `maxconn`.
    pub maxconn: Option<u32>,
    /// `set server addr` override of the configured address.
    pub addr: Option<SocketAddr>,
}

/// The last health-check result of a server, as stats and logs show it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// HAProxy's check status code: `L4OK`, `L4TOUT`, `L4CON`, `L7OK`,
    /// `L7STS`, `L7RSP`, `L7TOUT`, `PROCOK`, `PROCERR`, `PROCTOUT`, `HANA`, `INI`, ...
    /// (empty: no check ran).
    pub status: &'static str,
    /// HTTP status of an HTTP check, or exit code of an external check.
    pub code: Option<i32>,
    /// How long the check took.
    pub duration_ms: u64,
    /// Short human reason ("Layer7 wrong status", "Connection refused").
    pub reason: String,
    /// Checks in a row that went against the current state (rise/fall progress).
    pub streak: u32,
    /// Seconds since the epoch of the last UP/DOWN transition (0: none yet).
    pub last_change_unix: u64,
    /// Failed checks so far (`chkfail`).
    pub failed_checks: u64,
    /// UP to DOWN transitions so far (`chkdown`).
    pub downs: u64,
}

/// Things a server keeps across snapshots.
#[derive(Debug, Default)]
pub struct ServerShared {
    pub counters: ServerCounters,
    /// Idle keep-alive HTTP connections to this server.
    pub pool: Pool,
    /// Last health-check result; written by the checker, read by stats.
    pub check: Mutex<CheckReport>,
    /// Bumped by `shutdown sessions server` and `on-marked-down
    /// shutdown-sessions`; sessions started under an older generation end.
    pub kill_generation: std::sync::atomic::AtomicU64,
    /// Woken when `kill_generation` changes.
    pub kill: Notify,
}

impl ServerShared {
    /// End every session currently open on this server.
    pub fn shutdown_sessions(&self) {
        self.kill_generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.kill.notify_waiters();
    }
    /// The current kill generation, to pass to [`ServerShared::killed`].
    pub fn generation(&self) -> u64 {
        self.kill_generation
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Resolves once `shutdown_sessions` has been called after `generation`
    /// was read; sessions select on it to end when told.
    pub async fn killed(&self, generation: u64) {
        loop {
            let notified = self.kill.notified();
            tokio::pin!(notified);
            // Register first so a call in between is not missed.
            notified.as_mut().enable();
            if self.generation() != generation {
                return;
            }
            notified.await;
        }
    }

    /// A copy of the last check result.
    pub fn check_report(&self) -> CheckReport {
        self.check.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// One server as the request path sees it.
#[derive(Debug)]
pub struct ServerRt {
    pub name: Box<str>,
    /// Resolved address; port 0 when the config gives none (HAProxy then
    /// connects to the port the client connected to).
    pub addr: SocketAddr,
    pub backup: bool,
    pub maxconn: Option<u32>,
    pub maxqueue: Option<u32>,
    pub config_weight: u32,
    /// Persistence cookie value (`cookie` on the server line, else its name).
    pub cookie: Box<str>,
    pub state: ServerState,
    pub shared: Arc<ServerShared>,
}

impl ServerRt {
    /// May take new, non-persistent traffic.
    pub fn usable(&self) -> bool {
        self.state.admin == AdminState::Ready
            && self.state.op == OpState::Up
            && self.state.weight > 0
    }
    /// May take persistent traffic (a cookie or stick entry naming it):
    /// draining and stopping servers still do, as in HAProxy.
    pub fn reachable(&self) -> bool {
        self.state.admin != AdminState::Maint && self.state.op != OpState::Down
    }
    /// True when the server has reached its `maxconn`.
    pub fn is_full(&self) -> bool {
        match self.maxconn {
            Some(max) if max > 0 => self.shared.counters.current() >= max,
            _ => false,
        }
    }
}

/// Requests waiting for a free server slot in one backend.
#[derive(Debug, Default)]
pub struct Queue {
    /// How many requests wait now.
    pub waiting: AtomicUsize,
    /// Woken when a server of the backend frees a slot.
    pub notify: Notify,
}

/// Backend settings and servers, ready for the request path.
#[derive(Debug)]
pub struct BackendRt {
    pub name: Box<str>,
    pub mode: Mode,
    pub servers: Vec<ServerRt>,
    /// Balancer over usable primary servers.
    pub primary: Balancer,
    /// Balancer over the backup servers that may serve (first one, or all with `option allbackups`).
    pub backup: Balancer,
    pub balance: Balance,
    /// Effective timeouts (own, else `global` fallback).
    pub timeouts: Timeouts,
    pub retries: u32,
    pub redispatch: bool,
    pub forwardfor: bool,
    pub httpclose: bool,
    /// `http-reuse`: which idle server connections a request may ride.
    pub http_reuse: shoal_proto::config::HttpReuse,
    /// Upper bound on queued requests (sum of servers' `maxqueue` when all set).
    pub maxqueue: Option<usize>,
    pub counters: Arc<ProxyCounters>,
    pub queue: Arc<Queue>,
    /// `cookie NAME ...` persistence.
    pub cookie: Option<shoal_proto::config::CookieConfig>,
    /// `option persist`: a cookie naming a DOWN server still sends there.
    pub persist: bool,
    /// `stick ...` rules, compiled, in order.
    pub stick: Vec<StickRt>,
}

impl BackendRt {
    /// The index of the server whose persistence cookie value is `value`.
    pub fn server_by_cookie(&self, value: &str) -> Option<usize> {
        self.servers.iter().position(|s| &*s.cookie == value)
    }
    /// The index of the server called `name`.
    pub fn server_by_name(&self, name: &str) -> Option<usize> {
        self.servers.iter().position(|s| &*s.name == name)
    }
}

/// One `stick on|match|store-request` rule, ready to run.
#[derive(Debug)]
pub struct StickRt {
    pub action: shoal_proto::config::StickAction,
    pub pattern: shoal_proto::config::StickPattern,
    pub table: Arc<StickTable>,
    pub cond: Option<crate::acl::CompiledCond>,
}

/// Frontend settings, ready for the request path.
#[derive(Debug)]
pub struct FrontendRt {
    pub name: Box<str>,
    pub mode: Mode,
    /// `use_backend` rules and `default_backend`, resolved to backend indices.
    pub router: Router<usize>,
    pub timeouts: Timeouts,
    pub forwardfor: bool,
    pub httpclose: bool,
    /// Emit an access-log line per request / connection.
    pub log: Option<crate::log::LogFormat>,
    pub counters: Arc<ProxyCounters>,
    /// Frontend `maxconn`, shared by all its listeners.
    pub conn_limit: Option<Arc<Semaphore>>,
    /// The stats page, when `stats enable` is set on this HTTP frontend.
    pub stats: Option<StatsRt>,
    /// `tune.bufsize`: read buffer and largest head, per connection.
    pub bufsize: usize,
    /// `tune.http.maxhdr`: most lines in a head, start line included.
    pub maxhdr: usize,
}

/// A frontend's stats page settings, compiled.
#[derive(Debug)]
pub struct StatsRt {
    /// URI prefix that serves the page (`stats uri`, default `/haproxy?stats`).
    pub uri: String,
    pub config: shoal_proto::config::StatsPage,
    /// `stats admin if COND`: requests for which admin controls are allowed.
    pub admin: Option<crate::acl::CompiledCond>,
}

/// An immutable view of the whole routing state.
#[derive(Debug)]
pub struct Snapshot {
    pub config: Arc<Config>,
    pub frontends: Vec<Arc<FrontendRt>>,
    pub backends: Vec<Arc<BackendRt>>,
    pub frontend_by_name: HashMap<Box<str>, usize>,
    pub backend_by_name: HashMap<Box<str>, usize>,
    /// Global `maxconn`.
    pub global_limit: Option<Arc<Semaphore>>,
    /// Stick tables, by the name of the proxy that declares them.
    pub tables: HashMap<Box<str>, Arc<StickTable>>,
}

impl Snapshot {
    /// A frontend by name.
    pub fn frontend(&self, name: &str) -> Option<&Arc<FrontendRt>> {
        self.frontend_by_name.get(name).map(|&i| &self.frontends[i])
    }
    /// A backend by name.
    pub fn backend(&self, name: &str) -> Option<&Arc<BackendRt>> {
        self.backend_by_name.get(name).map(|&i| &self.backends[i])
    }
}

/// Why a snapshot could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("server {backend}/{server}: cannot resolve '{host}': {reason}")]
    Resolve {
        backend: String,
        server: String,
        host: String,
        reason: String,
    },
    #[error("frontend {frontend}: {reason}")]
    Rules { frontend: String, reason: String },
}

/// Why a state change was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChangeError {
    #[error("No such backend.")]
    NoSuchBackend,
    #[error("No such server.")]
    NoSuchServer,
    #[error("No such table.")]
    NoSuchTable,
    #[error("Invalid address: '{0}'.")]
    BadAddr(String),
}

/// Everything that outlives a single snapshot. Guarded by one mutex that
/// is held only while a snapshot is built (never across I/O).
#[derive(Default)]
struct Persistent {
    config: Arc<Config>,
    states: HashMap<String, ServerState>,
    servers: HashMap<String, Arc<ServerShared>>,
    proxies: HashMap<String, Arc<ProxyCounters>>,
    queues: HashMap<String, Arc<Queue>>,
    limits: HashMap<String, (u32, Arc<Semaphore>)>,
    /// Resolved server addresses by `host:port` as written, so that state
    /// changes never wait on DNS; a reload re-resolves.
    addrs: HashMap<(String, Option<u16>), SocketAddr>,
    tables: HashMap<String, Arc<StickTable>>,
    /// When each server last came back into service (from DOWN or
    /// maintenance): `slowstart` ramps its weight from there. Servers up
    /// since boot have no entry, as HAProxy never slow-starts at boot.
    up_since: HashMap<String, std::time::Instant>,
    /// The last built snapshot has a server still ramping up, so
    /// [`Runtime::refresh`] has work to do.
    ramping: bool,
}

/// Owner of the routing snapshot and of all server state.
pub struct Runtime {
    current: ArcSwap<Snapshot>,
    persistent: Mutex<Persistent>,
    /// Passive health (`observe`): the request path reports outcomes here.
    pub observer: crate::health::Observer,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

impl Runtime {
    /// Build the first snapshot from a parsed config.
    pub fn new(config: Config) -> Result<Runtime, BuildError> {
        let mut persistent = Persistent::default();
        let snapshot = build::build(&mut persistent, Arc::new(config))?;
        Ok(Runtime {
            current: ArcSwap::from_pointee(snapshot),
            persistent: Mutex::new(persistent),
            observer: crate::health::Observer::default(),
        })
    }

    /// The current snapshot; hold it for the duration of one request.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Replace the config (SIGHUP reload). Servers that still exist keep
    /// their admin/operational state, counters and pools; a server whose
    /// configured weight changed takes the new weight.
    pub fn reload(&self, config: Config) -> Result<(), BuildError> {
        let mut p = self.lock();
        p.addrs.clear();
        let previous = p.config.clone();
        for proxy in previous.proxies.iter() {
            for server in &proxy.servers {
                let key = server_key(&proxy.name, &server.name);
                let new_weight = config
                    .proxies
                    .iter()
                    .find(|x| x.name == proxy.name && x.kind.is_backend())
                    .and_then(|x| x.servers.iter().find(|s| s.name == server.name))
                    .map(|s| s.weight_or_default());
                match new_weight {
                    None => {
                        p.states.remove(&key);
                    }
                    Some(w) if w != server.weight_or_default() => {
                        if let Some(st) = p.states.get_mut(&key) {
                            st.weight = w;
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        let snapshot = build::build(&mut p, Arc::new(config))?;
        self.current.store(Arc::new(snapshot));
        // A reload starts afresh, as a new HAProxy process would: idle
        // server connections (perhaps to moved servers) are closed.
        for shared in p.servers.values() {
            shared.pool.flush();
        }
        Ok(())
    }

    /// Apply one change and swap in a new snapshot: the single place server
    /// state changes (runtime socket, admin API, health checks all come here).
    pub fn apply(&self, command: &Command) -> Result<(), ChangeError> {
        let change: Box<dyn FnOnce(&mut ServerState)> = match command {
            Command::SetWeight { weight, .. } => {
                let w = (*weight).min(256);
                Box::new(move |s| s.weight = w)
            }
            Command::SetAdminState { state, .. } => {
                let st = *state;
                Box::new(move |s| s.admin = st)
            }
            Command::SetOpState { state, .. } => {
                let st = *state;
                Box::new(move |s| s.op = st)
            }
            Command::SetCheckEnabled { enabled, .. } => {
                let on = *enabled;
                Box::new(move |s| s.check_enabled = on)
            }
            Command::SetMaxconn { maxconn, .. } => {
                let m = *maxconn;
                Box::new(move |s| s.maxconn = Some(m))
            }
            Command::SetAddr { server, addr, port } => {
                let ip: std::net::IpAddr = addr
                    .parse()
                    .map_err(|_| ChangeError::BadAddr(addr.clone()))?;
                // Without `port`, keep the port the server uses now.
                let current = self
                    .snapshot()
                    .backend(&server.backend)
                    .and_then(|b| {
                        b.servers
                            .iter()
                            .find(|s| &*s.name == server.server.as_str())
                    })
                    .map(|s| s.addr.port())
                    .unwrap_or(0);
                let port = port.unwrap_or(current);
                Box::new(move |s| s.addr = Some(SocketAddr::new(ip, port)))
            }
            Command::ClearTable { table, key } => {
                let snapshot = self.snapshot();
                let t = snapshot
                    .tables
                    .get(table.as_str())
                    .ok_or(ChangeError::NoSuchTable)?;
                t.clear(key.as_deref());
                return Ok(());
            }
        };
        let server = command.server().ok_or(ChangeError::NoSuchServer)?;
        let snapshot = self.snapshot();
        let before = snapshot
            .backend(&server.backend)
            .and_then(|b| {
                b.servers
                    .iter()
                    .find(|s| &*s.name == server.server.as_str())
            })
            .map(|s| ((s.state.admin, s.state.op), s.shared.clone()));
        drop(snapshot);
        let after = self.set_server(&server.backend, &server.server, change)?;
        // `lastchg` counts from the last change of admin or operational
        // state, whoever made it (operator or health check).
        if let Some((was, shared)) = before {
            if was != (after.admin, after.op) {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                shared
                    .check
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .last_change_unix = now;
            }
        }
        Ok(())
    }

    /// Change one server's state and swap in a new snapshot.
    pub fn set_server(
        &self,
        backend: &str,
        server: &str,
        change: impl FnOnce(&mut ServerState),
    ) -> Result<ServerState, ChangeError> {
        let mut p = self.lock();
        let proxy = p
            .config
            .proxies
            .iter()
            .find(|x| x.name == backend && x.kind.is_backend())
            .ok_or(ChangeError::NoSuchBackend)?;
        if !proxy.servers.iter().any(|s| s.name == server) {
            return Err(ChangeError::NoSuchServer);
        }
        let key = server_key(backend, server);
        let state = p.states.get_mut(&key).ok_or(ChangeError::NoSuchServer)?;
        let was_serving = serving(state);
        let before = *state;
        change(state);
        state.weight = state.weight.min(256);
        let result = *state;
        // Idle connections to an old address, or to a server entering
        // maintenance, must not carry another request.
        let entering_maint = result.admin == AdminState::Maint && before.admin != AdminState::Maint;
        if result.addr != before.addr || entering_maint {
            if let Some(shared) = p.servers.get(&key) {
                shared.pool.flush();
            }
        }
        if !was_serving && serving(&result) {
            p.up_since.insert(key, std::time::Instant::now());
        }
        let config = p.config.clone();
        // The config is unchanged and its addresses are cached, so this
        // rebuild does no DNS and cannot fail on resolution.
        match build::build(&mut p, config) {
            Ok(snapshot) => self.current.store(Arc::new(snapshot)),
            Err(e) => tracing::warn!("state change kept the previous routing table: {e}"),
        }
        Ok(result)
    }

    /// Rebuild the snapshot while some server ramps up after `slowstart`
    /// (its effective weight depends on the time); returns whether one
    /// still does. Cheap when none does. Called periodically by the
    /// health module's slowstart ticker.
    pub fn refresh(&self) -> bool {
        let mut p = self.lock();
        if !p.ramping {
            return false;
        }
        let config = p.config.clone();
        match build::build(&mut p, config) {
            Ok(snapshot) => self.current.store(Arc::new(snapshot)),
            Err(e) => tracing::warn!("slowstart step kept the previous routing table: {e}"),
        }
        p.ramping
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Persistent> {
        // A panic while building cannot leave the maps inconsistent (they are
        // only inserted into), so a poisoned lock is safe to reuse.
        self.persistent.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// In service for `slowstart` purposes: not DOWN, not in maintenance.
fn serving(state: &ServerState) -> bool {
    state.op != OpState::Down && state.admin != AdminState::Maint
}

/// `backend/server`, the name HAProxy's runtime API uses.
pub fn server_key(backend: &str, server: &str) -> String {
    format!("{backend}/{server}")
}
