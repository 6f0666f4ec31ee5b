//! The routing table: the immutable snapshot the request path reads, and
//! the node-local objects it shares between snapshots (counters, pools,
//! queues, check results).
//!
//! [`crate::runtime`] builds a new [`Snapshot`] after each change and swaps
//! it in; a request loads the current one once (an atomic pointer load) and
//! works on it to its end. Nothing here changes state: that is the
//! runtime's job, through `ClusterState::apply`.

mod counters;

pub use crate::dispatch::Queue;
pub use counters::{ProxyCounters, ServerCounters, StatusClass};
pub use shoal_proto::command::{AdminState, OpState};
pub use shoal_proto::state::ServerStatus;

use crate::acl::Router;
use crate::balance::Balancer;
use crate::pool::Pool;
use crate::stick::StickTable;
use shoal_proto::config::{Balance, Config, Mode, Timeouts};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, Semaphore};

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
    /// Failed checks so far (`chkfail`).
    pub failed_checks: u64,
    /// UP to DOWN transitions so far (`chkdown`).
    pub downs: u64,
}

/// Things a server keeps across snapshots (node-local, never replicated).
#[derive(Debug, Default)]
pub struct ServerShared {
    pub counters: ServerCounters,
    /// Idle keep-alive HTTP connections to this server.
    pub pool: Pool,
    /// Last health-check result; written by the checker, read by stats.
    pub check: Mutex<CheckReport>,
    /// Bumped by `shutdown sessions server` and `on-marked-down
    /// shutdown-sessions`; sessions started under an older generation end.
    pub kill_generation: AtomicU64,
    /// Woken when `kill_generation` changes.
    pub kill: Notify,
    /// This node's own checks (active or `observe`) have the server DOWN:
    /// the next snapshot avoids it here, whatever the cluster verdict.
    /// Written by the server's check task, read when a snapshot is built.
    pub locally_down: AtomicBool,
    /// What the other nodes of a cluster do with this server (written by
    /// [`crate::load`], read by the request path; idle when standalone).
    pub cluster: ClusterLoad,
}

/// A server's cluster-wide numbers, as of the last load report round.
/// Standalone (and in a cluster of one) they stay at their defaults: no
/// peer load, no cluster limit.
#[derive(Debug)]
pub struct ClusterLoad {
    /// Sessions the live peers last reported in flight on this server.
    peers: AtomicU32,
    /// This node's share of the server's `maxconn`;
    /// [`ClusterLoad::UNLIMITED`] when the cluster sets none.
    limit: AtomicU32,
}

impl Default for ClusterLoad {
    fn default() -> Self {
        ClusterLoad {
            peers: AtomicU32::new(0),
            limit: AtomicU32::new(Self::UNLIMITED),
        }
    }
}

impl ClusterLoad {
    /// No cluster limit: the server's own `maxconn` alone applies.
    pub const UNLIMITED: u32 = u32::MAX;

    /// Sessions the live peers last reported in flight here.
    pub fn peers(&self) -> u32 {
        self.peers.load(Ordering::Relaxed)
    }

    /// This node's local limit (`None`: only `maxconn` applies; `Some(0)`:
    /// the others use the whole `maxconn`, wait).
    pub fn limit(&self) -> Option<u32> {
        match self.limit.load(Ordering::Relaxed) {
            Self::UNLIMITED => None,
            limit => Some(limit),
        }
    }

    /// Set by the load task after each round; returns the previous limit.
    pub fn set(&self, peers: u32, limit: Option<u32>) -> Option<u32> {
        self.peers.store(peers, Ordering::Relaxed);
        let old = self
            .limit
            .swap(limit.unwrap_or(Self::UNLIMITED), Ordering::Relaxed);
        (old != Self::UNLIMITED).then_some(old)
    }
}

impl ServerShared {
    /// End every session currently open on this server.
    pub fn shutdown_sessions(&self) {
        self.kill_generation.fetch_add(1, Ordering::SeqCst);
        self.kill.notify_waiters();
    }

    /// The current kill generation, to pass to [`ServerShared::killed`].
    pub fn generation(&self) -> u64 {
        self.kill_generation.load(Ordering::SeqCst)
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

    /// Close idle pooled connections: the server moved or left service
    /// (connections made before must not carry another request).
    pub fn flush_connections(&self) {
        self.pool.flush();
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
    /// Effective `maxconn` (override, config, slowstart ramp).
    pub maxconn: Option<u32>,
    pub maxqueue: Option<u32>,
    pub config_weight: u32,
    /// Persistence cookie value (`cookie` on the server line, else its name).
    pub cookie: Box<str>,
    /// The replicated state of the server when this snapshot was built
    /// (its `reports` may lag: a reused backend keeps older ones).
    pub state: ServerStatus,
    pub shared: Arc<ServerShared>,
    /// This node's own checks had it DOWN when the snapshot was built: no
    /// traffic from here, though the cluster verdict may say UP.
    pub avoided: bool,
    /// `ssl`: connections to it are TLS.
    pub tls: Option<Arc<crate::tls::Upstream>>,
    /// `proto h2`, or `ssl alpn` offering `h2` in `mode http`: requests go
    /// to it as HTTP/2 streams.
    pub h2: Option<Arc<crate::tls::H2Upstream>>,
}

impl ServerRt {
    /// May take new, non-persistent traffic.
    pub fn usable(&self) -> bool {
        !self.avoided
            && self.state.admin == AdminState::Ready
            && self.state.op == OpState::Up
            && self.state.weight > 0
    }
    /// May take persistent traffic (a cookie or stick entry naming it):
    /// draining and stopping servers still do, as in HAProxy.
    /// A server this node cannot reach itself takes none either.
    pub fn reachable(&self) -> bool {
        !self.avoided && self.state.admin != AdminState::Maint && self.state.op != OpState::Down
    }
    /// The most sessions this node may have on the server now: its
    /// `maxconn`, or in a cluster this node's share of it (`None`: no
    /// limit).
    pub fn limit(&self) -> Option<u32> {
        let maxconn = self.maxconn.filter(|&m| m > 0)?;
        Some(match self.shared.cluster.limit() {
            Some(share) => share.min(maxconn),
            None => maxconn,
        })
    }

    /// True when the server has reached its limit (see [`ServerRt::limit`]).
    pub fn is_full(&self) -> bool {
        self.limit()
            .is_some_and(|max| self.shared.counters.current() >= max)
    }

    /// Take a session slot if the server is below its limit.
    pub fn try_acquire(&self) -> bool {
        match self.limit() {
            Some(0) => false,
            limit => self.shared.counters.try_acquire(limit),
        }
    }

    /// In-flight sessions across the cluster: this node's, exact, plus
    /// what the live peers last reported (what `leastconn` ranks by).
    pub fn cluster_load(&self) -> u32 {
        self.shared
            .counters
            .current()
            .saturating_add(self.shared.cluster.peers())
    }
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
    /// Built while a server was in its `slowstart` ramp: its weights
    /// depended on the time, so the next build never reuses it.
    pub ramping: bool,
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
    /// `http-request` rules.
    pub http_request: crate::http::rules::Rules,
    /// TLS `bind` lines, by the address they name (`HOST:PORT`, as the
    /// listener's key): certificates and settings loaded for this snapshot.
    pub tls: TlsBinds,
}

/// A frontend's TLS acceptors by `bind` address (see [`FrontendRt::tls`]).
pub type TlsBinds = Vec<(Box<str>, Arc<crate::tls::Acceptor>)>;

impl FrontendRt {
    /// The TLS acceptor of the `bind` line naming `addr`, if it has `ssl`.
    pub fn tls_for(&self, addr: &str) -> Option<&Arc<crate::tls::Acceptor>> {
        self.tls.iter().find(|(a, _)| &**a == addr).map(|(_, t)| t)
    }
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
    /// A server by `backend/server`.
    pub fn server(&self, backend: &str, server: &str) -> Option<&ServerRt> {
        let b = self.backend(backend)?;
        b.servers.iter().find(|s| &*s.name == server)
    }
}
