//! The node's side of the state machine: it owns the [`ClusterState`],
//! puts every change through [`ClusterState::validate`] and
//! [`ClusterState::apply`], and keeps the routing [`Snapshot`] the request
//! path reads in step with it.
//!
//! - Change path: [`Runtime::submit`] validates and applies a
//!   [`Command`] under a short lock, carries out its [`Effect`]s (end
//!   sessions, flush pooled connections, clear a local table) and asks the
//!   projector for a new snapshot. Callers that answer an operator await
//!   [`Runtime::settled`] first, so the answer reflects the change.
//! - Projection: a dedicated thread ([`project`]) builds the next snapshot
//!   from the state plus node-local facts (resolved addresses, counters,
//!   pools, stick tables), off the async workers and never holding a lock
//!   across DNS. Bursts coalesce (100 weight changes in a row cost one or a
//!   few builds), and backends and frontends whose inputs did not change
//!   are reused whole, compiled routers, Maglev tables and round-robin
//!   positions included.
//! - Request path: [`Runtime::snapshot`] is one atomic pointer load; a
//!   request works on that immutable snapshot to its end.

mod build;
mod counters;
mod local;
mod project;

pub use crate::dispatch::Queue;
pub use counters::{ProxyCounters, ServerCounters, StatusClass};
pub use local::{resolve, ResolveError};
pub use shoal_proto::command::{AdminState, Millis, NodeId, OpState};
pub use shoal_proto::state::ServerStatus;

use crate::acl::Router;
use crate::balance::Balancer;
use crate::pool::Pool;
use crate::stick::{StickQueue, StickTable};
use shoal_proto::command::Command;
use shoal_proto::config::{Balance, Config, Mode, Timeouts};
use shoal_proto::state::{Applied, ClusterState, Effect, Refusal};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// The replicated state of the server when this snapshot was built.
    pub state: ServerStatus,
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
    /// A server by `backend/server`.
    pub fn server(&self, backend: &str, server: &str) -> Option<&ServerRt> {
        let b = self.backend(backend)?;
        b.servers.iter().find(|s| &*s.name == server)
    }
}

/// Why a snapshot could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error("frontend {frontend}: {reason}")]
    Rules { frontend: String, reason: String },
}

/// Why a node could not start or a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}")]
    Refused(#[from] Refusal),
    #[error("{0}")]
    Build(#[from] BuildError),
    #[error("cannot start the projector thread: {0}")]
    Thread(std::io::Error),
}

/// Milliseconds since the Unix epoch: the `at` of commands made now.
pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The state, the routing snapshot and the projector that joins them.
pub struct Runtime {
    shared: Arc<project::Shared>,
    projector: Option<std::thread::JoinHandle<()>>,
    node: NodeId,
    /// Passive health (`observe`): the request path reports outcomes here.
    pub observer: crate::health::Observer,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Load `text` (the contents of `file`) as the first config of node
    /// `node`, build the first snapshot (resolving server names here, at
    /// start, as HAProxy does) and start the projector.
    pub fn start(file: &str, text: &str, node: NodeId) -> Result<Runtime, LoadError> {
        let mut state = ClusterState::default();
        state.execute(&Command::LoadConfig {
            file: file.to_string(),
            text: text.to_string(),
            at: now_ms(),
        })?;
        let queue = Arc::new(StickQueue::default());
        let mut local = local::Local::new(queue.clone());
        local.remember(local::resolve_all(&state.config().model).map_err(BuildError::from)?);
        let snapshot = build::build(&mut local, &state, None, std::time::SystemTime::now())?;
        let shared = Arc::new(project::Shared::new(state, local, snapshot, queue));
        let projector = project::spawn(shared.clone()).map_err(LoadError::Thread)?;
        Ok(Runtime {
            shared,
            projector: Some(projector),
            node,
            observer: crate::health::Observer::default(),
        })
    }

    /// A runtime for tests: `text` as `t.cfg` on node 0.
    pub fn from_text(text: &str) -> Result<Runtime, LoadError> {
        Runtime::start("t.cfg", text, 0)
    }

    /// A runtime for tests from a config model (printed, then loaded).
    #[cfg(test)]
    pub fn from_config(config: &Config) -> Result<Runtime, LoadError> {
        Runtime::from_text(&shoal_proto::config::print(config))
    }

    /// This node's id (0 for a standalone node).
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The current snapshot; hold it for the duration of one request.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.shared.current.load_full()
    }

    /// Read the replicated state (briefly: the lock is shared with
    /// [`Runtime::submit`]).
    pub fn read<R>(&self, f: impl FnOnce(&ClusterState) -> R) -> R {
        f(&self.shared.lock_state().state)
    }

    /// Validate and apply one command, carry out its effects and schedule
    /// the snapshot rebuild: the single entry of the change path for every
    /// surface (runtime socket, admin API, stats page, health checks,
    /// reload, stick batches).
    pub fn submit(&self, command: &Command) -> Result<Applied, Refusal> {
        let applied = {
            let mut cell = self.shared.lock_state();
            let applied = cell.state.execute(command)?;
            if applied.routing {
                cell.wanted += 1;
                self.shared.wake.notify_one();
            }
            applied
        };
        self.perform(command, &applied);
        Ok(applied)
    }

    /// Wait until the snapshot reflects every change submitted so far.
    pub async fn settled(&self) {
        let wanted = self.shared.lock_state().wanted;
        let mut published = self.shared.published.subscribe();
        let _ = published.wait_for(|built| *built >= wanted).await;
    }

    /// [`Runtime::settled`] for code outside an async context.
    pub fn settled_blocking(&self) {
        let wanted = self.shared.lock_state().wanted;
        self.shared.wait_published(wanted);
    }

    /// Resolve and trial-build `text` as the next config without changing
    /// anything, so that a reload is refused before it takes effect when a
    /// server name does not resolve or a rule does not compile. Blocking
    /// (DNS): call it off the async workers.
    pub fn prepare(&self, file: &str, text: &str) -> Result<(), LoadError> {
        let command = Command::LoadConfig {
            file: file.to_string(),
            text: text.to_string(),
            at: now_ms(),
        };
        let mut candidate = self.shared.lock_state().state.without_tables();
        candidate.execute(&command)?;
        let resolved = local::resolve_all(&candidate.config().model).map_err(BuildError::from)?;
        let mut local = self.shared.lock_local();
        local.remember(resolved);
        build::build(&mut local, &candidate, None, std::time::SystemTime::now())?;
        Ok(())
    }

    /// Rebuild while some server ramps up after `slowstart` (its effective
    /// weight depends on the time); cheap when none does. Called
    /// periodically by the slowstart ticker.
    /// Returns whether some server ramps.
    pub fn refresh(&self) -> bool {
        let ramping = self.shared.ramping();
        if ramping {
            let mut cell = self.shared.lock_state();
            cell.wanted += 1;
            self.shared.wake.notify_one();
        }
        ramping
    }

    /// The queue of stick-table writes waiting for the next batch.
    pub fn stick_queue(&self) -> &Arc<StickQueue> {
        &self.shared.stick
    }

    /// What a command asks of this node besides the new state.
    fn perform(&self, command: &Command, applied: &Applied) {
        if applied.effects.is_empty() {
            return;
        }
        let snapshot = self.snapshot();
        let server = |s: &shoal_proto::command::ServerRef| {
            snapshot
                .server(&s.backend, &s.server)
                .map(|s| s.shared.clone())
        };
        for effect in &applied.effects {
            match effect {
                Effect::ShutdownSessions(s) => {
                    if let Some(shared) = server(s) {
                        shared.shutdown_sessions();
                    }
                }
                Effect::FlushConnections(s) => {
                    if let Some(shared) = server(s) {
                        shared.flush_connections();
                    }
                }
                Effect::TableCleared { table, key } => {
                    if let Some(t) = snapshot.tables.get(table.as_str()) {
                        t.clear(key.as_deref());
                    }
                }
                Effect::StickStored => {
                    if let Command::StickBatch { node, writes, .. } = command {
                        // Our own writes are in the local tables already.
                        if *node != self.node {
                            absorb(&snapshot, writes);
                        }
                    }
                }
                // Pooled connections may lead to servers that moved; the
                // node itself makes listeners, checks and sockets follow
                // the new config (see `node::Node::reload`).
                Effect::ConfigLoaded => {
                    for s in snapshot.backends.iter().flat_map(|b| b.servers.iter()) {
                        s.shared.flush_connections();
                    }
                }
            }
        }
    }
}

/// Copy another node's batch into the local tables of `snapshot`.
fn absorb(snapshot: &Snapshot, writes: &[shoal_proto::command::StickWrite]) {
    for w in writes {
        let Some(table) = snapshot.tables.get(w.table.as_str()) else {
            continue;
        };
        // HAProxy's server id: the position in the table's own backend.
        let id = snapshot
            .backend(&w.table)
            .and_then(|b| b.server_by_name(&w.server))
            .map_or(0, |i| i + 1);
        table.write(&w.key, &w.server, id);
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shared.stop();
        if let Some(t) = self.projector.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests;
