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
mod local;
mod project;

pub use local::ResolveError;

use crate::routing::Snapshot;
use crate::stick::StickQueue;
use shoal_proto::command::{Command, Millis, NodeId};
use shoal_proto::state::{Applied, ClusterState, Effect, Refusal};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::watch;

/// Why a change asked through [`Runtime::change`] did not take effect.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ChangeError {
    /// Refused by validation on this node; nothing was proposed.
    #[error("{0}")]
    Refused(#[from] Refusal),
    /// Committed, but refused when applied (the state at that point of the
    /// log did not allow it, the same on every node): HAProxy's wording.
    #[error("{0}")]
    RefusedInLog(String),
    /// The cluster could not commit it (quorum lost, no leader, timeout).
    #[error("{0}")]
    Cluster(String),
    /// Committed, but this node had not applied it by the deadline (it is
    /// behind the log): it takes effect here once the node catches up.
    #[error("{0}")]
    CommittedNotApplied(String),
}

/// Where changes go when the node is part of a cluster: the proposal is
/// committed through Raft and comes back through the log (see
/// [`Runtime::apply_committed`]); the future ends once this node applied it.
pub trait Proposer: Send + Sync + 'static {
    /// Propose `command`; resolve when it is applied on this node.
    fn propose(
        &self,
        command: Command,
    ) -> Pin<Box<dyn Future<Output = Result<(), ChangeError>> + Send + '_>>;
    /// Whether changes go through the cluster now. A node started with the
    /// cluster flags that has not been initialized or joined yet serves
    /// its own file and changes it locally, like a standalone node; the
    /// first entry it applies from the log replaces that state.
    fn active(&self) -> bool {
        true
    }
}

/// Why a snapshot could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error("frontend {frontend}: {reason}")]
    Rules { frontend: String, reason: String },
    /// A `server ... ssl` whose `ca-file` does not load (`FILE:LINE: why`).
    #[error("{0}")]
    Tls(String),
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

/// Resolve the server names of `state`'s config and build its routing
/// table with a scratch copy of the node-local facts, changing nothing:
/// the trial of [`Runtime::prepare`] and [`Runtime::prepare_restore`].
/// The resolved addresses, for [`Runtime::commit`]. Blocking (DNS).
fn trial_build(
    state: &ClusterState,
    certs: &Arc<crate::tls::ClusterCerts>,
) -> Result<Vec<(local::HostKey, std::net::SocketAddr)>, LoadError> {
    let resolved = local::resolve_all(&state.config().model).map_err(BuildError::from)?;
    let mut scratch = local::Local::new(Arc::new(StickQueue::default()), certs.clone());
    scratch.remember(resolved.clone());
    build::build(&mut scratch, state, None, std::time::SystemTime::now())?;
    Ok(resolved)
}

/// Milliseconds since the Unix epoch: the `at` of commands made now.
pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A config checked by [`Runtime::prepare`], ready for [`Runtime::commit`].
pub struct Prepared {
    command: Command,
    /// Its server addresses, resolved while preparing.
    resolved: Vec<(local::HostKey, std::net::SocketAddr)>,
}

/// Most of this node's stick batches remembered while on their way; beyond
/// it the oldest (batches that failed and were proposed again) are
/// forgotten.
const OWN_BATCHES_KEPT: usize = 4096;

/// This node's stick batches proposed and not applied yet: the `at` of
/// each (unique: one batcher makes them, each a millisecond later at
/// least) and the `gen` of each of its writes.
#[derive(Debug, Default)]
struct OwnBatches {
    last_at: Millis,
    gens: std::collections::BTreeMap<Millis, Vec<u64>>,
}

/// The state, the routing snapshot and the projector that joins them.
pub struct Runtime {
    shared: Arc<project::Shared>,
    projector: Option<std::thread::JoinHandle<()>>,
    node: NodeId,
    /// This process's stick batches not yet applied from the log (a batch
    /// of this node that is not here was proposed by an incarnation that
    /// died, and its writes are not in the local tables).
    own_batches: Mutex<OwnBatches>,
    /// Set when the node runs in a cluster: changes go through Raft.
    proposer: OnceLock<Arc<dyn Proposer>>,
    /// Bumped whenever the node's listeners, checks or sockets may have
    /// to follow the state (a config loaded, a drain, a snapshot).
    reconfigured: watch::Sender<u64>,
    /// The cluster's certificates as the TLS binds serve them, rebuilt
    /// whenever the replicated store changes.
    certs: Arc<crate::tls::ClusterCerts>,
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
    /// A file that does not load here is refused with its `FILE:LINE`.
    pub fn start(file: &str, text: &str, node: NodeId) -> Result<Runtime, LoadError> {
        let mut state = ClusterState::default();
        state.execute(&Command::load_config(file, text, now_ms())?)?;
        Runtime::start_from(state, node)
    }

    /// Start from a state as it was persisted (a cluster node restarting
    /// from its data directory). Blocking (DNS), like [`Runtime::start`].
    /// A config that does not load with this node's environment is
    /// logged, and the node serves nothing until one that loads is applied.
    pub fn start_from(state: ClusterState, node: NodeId) -> Result<Runtime, LoadError> {
        if let Some(why) = &state.config().local_error {
            does_not_load(why, &state.config().model);
        }
        let queue = Arc::new(StickQueue::default());
        let certs = crate::tls::ClusterCerts::empty();
        certs.rebuild(|| state.certificates().clone());
        let mut local = local::Local::new(queue.clone(), certs.clone());
        local.remember(local::resolve_all(&state.config().model).map_err(BuildError::from)?);
        let snapshot = build::build(&mut local, &state, None, std::time::SystemTime::now())?;
        // A node restarting from its data directory serves the replicated
        // stickiness at once.
        load_tables(&snapshot, &local.tables, &state);
        let shared = Arc::new(project::Shared::new(state, local, snapshot, queue));
        let projector = project::spawn(shared.clone()).map_err(LoadError::Thread)?;
        Ok(Runtime {
            shared,
            projector: Some(projector),
            node,
            own_batches: Mutex::default(),
            proposer: OnceLock::new(),
            reconfigured: watch::channel(0).0,
            certs,
        })
    }

    /// A runtime for tests: `text` as `t.cfg` on node 0.
    #[cfg(test)]
    pub fn from_text(text: &str) -> Result<Runtime, LoadError> {
        Runtime::start("t.cfg", text, 0)
    }

    /// A runtime for tests from a config model (printed, then loaded).
    #[cfg(test)]
    pub fn from_config(config: &shoal_proto::config::Config) -> Result<Runtime, LoadError> {
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

    /// Make changes go through `proposer` (a cluster node). Set once, at start.
    pub fn set_proposer(&self, proposer: Arc<dyn Proposer>) {
        let _ = self.proposer.set(proposer);
    }

    /// Make one change and wait until the routing reflects it: what every
    /// surface (runtime socket, admin API, stats page, health checks,
    /// stick batches) calls. Standalone, the command is applied here at
    /// once; in a cluster it is validated here, proposed through Raft and
    /// answered once this node applied it, so the next read on this node
    /// shows it.
    pub async fn change(&self, command: &Command) -> Result<(), ChangeError> {
        match self.proposer.get().filter(|p| p.active()) {
            None => {
                self.submit(command)?;
            }
            Some(proposer) => {
                self.read(|s| s.validate(command))?;
                proposer.propose(command.clone()).await?;
            }
        }
        self.settled().await;
        Ok(())
    }

    /// Apply a command committed in the Raft log. `fresh`: nothing was
    /// applied from the log yet, so the state this node started with (its
    /// own file, before it joined) is dropped first, in the same step.
    ///
    /// A `LoadConfig` whose text does not load with this node's
    /// environment is applied all the same (servers and tables are the
    /// cluster's); the node keeps serving the model it had, and says why.
    pub fn apply_committed(&self, command: &Command, fresh: bool) -> Result<(), Refusal> {
        let (applied, unloadable) = {
            let mut cell = self.shared.lock_state();
            let served = cell.state.config().model.clone();
            if fresh {
                cell.state = ClusterState::default();
            }
            let applied = cell.state.execute(command);
            let mut unloadable = None;
            if let (
                Ok(_),
                Command::LoadConfig { .. } | Command::Restore { .. } | Command::RestoreState { .. },
            ) = (&applied, command)
            {
                // Only differs from what apply kept when `fresh` reset it.
                cell.state.keep_serving(&served);
                let config = cell.state.config();
                unloadable = config
                    .local_error
                    .clone()
                    .map(|e| (e, config.model.clone()));
            }
            if fresh || applied.as_ref().is_ok_and(|a| a.routing) {
                cell.wanted += 1;
                self.shared.wake.notify_one();
            }
            (applied, unloadable)
        };
        if fresh {
            self.reconfigured.send_modify(|v| *v += 1);
            self.rebuild_certs();
        }
        if let Some((why, serving)) = unloadable {
            does_not_load(&why, &serving);
        }
        let applied = applied?;
        self.perform(command, &applied);
        Ok(())
    }

    /// A copy of the whole replicated state.
    pub fn export(&self) -> ClusterState {
        self.read(Clone::clone)
    }

    /// Replace the whole state (a snapshot from the leader). When its
    /// config does not load with this node's environment, the node keeps
    /// serving the model it had.
    pub fn install(&self, mut state: ClusterState) {
        let unloadable = {
            let mut cell = self.shared.lock_state();
            state.keep_serving(&cell.state.config().model);
            // Said once: not again for the config already running here.
            let known = cell.state.config() == state.config()
                && cell.state.config().local_error == state.config().local_error;
            let unloadable = match &state.config().local_error {
                Some(why) if !known => Some((why.clone(), state.config().model.clone())),
                _ => None,
            };
            cell.state = state;
            cell.wanted += 1;
            self.shared.wake.notify_one();
            unloadable
        };
        if let Some((why, serving)) = unloadable {
            does_not_load(&why, &serving);
        }
        self.rebuild_certs();
        let snapshot = self.snapshot();
        self.follow_installed_tables(&snapshot);
        for s in snapshot.backends.iter().flat_map(|b| b.servers.iter()) {
            s.shared.flush_connections();
        }
        self.reconfigured.send_modify(|v| *v += 1);
    }

    /// The cluster's certificates as this node serves them.
    pub fn certs(&self) -> &Arc<crate::tls::ClusterCerts> {
        &self.certs
    }

    /// Make the TLS binds serve the replicated certificate store as it is
    /// now (from their next handshake).
    fn rebuild_certs(&self) {
        self.certs
            .rebuild(|| self.read(|s| s.certificates().clone()));
    }

    /// Changes when listeners, checks or sockets may have to follow the
    /// state: a config was loaded, a node drained, a snapshot installed.
    pub fn reconfigured(&self) -> watch::Receiver<u64> {
        self.reconfigured.subscribe()
    }

    /// Wait until the snapshot reflects every change submitted so far (a
    /// failed build is logged by the projector; see [`Runtime::built`]).
    pub async fn settled(&self) {
        let _ = self.built().await;
    }

    /// [`Runtime::settled`], saying whether the build for the changes so
    /// far worked. `Err`: routing stays on the last good table (the state is
    /// what was applied), and the message says why.
    pub async fn built(&self) -> Result<(), String> {
        let wanted = self.shared.lock_state().wanted;
        let mut published = self.shared.published.subscribe();
        let error = match published.wait_for(|built| built.version >= wanted).await {
            Ok(built) => built.error.clone(),
            Err(_) => Some("the projector stopped".into()),
        };
        error.map_or(Ok(()), Err)
    }

    /// Whether the last routing build worked. `false`: the state asks for
    /// a table this node could not build (a certificate or a name this
    /// node lacks), and routing runs on an older one until a later build
    /// works; `/ready` then answers 503.
    pub fn routing_current(&self) -> bool {
        self.shared.published.borrow().error.is_none()
    }

    /// [`Runtime::settled`] for tests outside an async context.
    #[cfg(test)]
    pub fn settled_blocking(&self) {
        let wanted = self.shared.lock_state().wanted;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.shared.published.borrow().version < wanted {
            assert!(std::time::Instant::now() < deadline, "snapshot not rebuilt");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Resolve and trial-build `text` as the next config without changing
    /// anything (the trial uses a scratch copy of the node-local facts), so
    /// that a reload is refused before it takes effect when a server name
    /// does not resolve or a rule does not compile. Blocking (DNS and
    /// parsing): call it off the async workers.
    pub fn prepare(&self, file: &str, text: &str) -> Result<Prepared, LoadError> {
        let command = Command::load_config(file, text, now_ms())?;
        let mut candidate = self.shared.lock_state().state.without_tables();
        candidate.execute(&command)?;
        let resolved = trial_build(&candidate, &self.certs)?;
        Ok(Prepared { command, resolved })
    }

    /// [`Runtime::prepare`] for a restore: `state` (a backup's) must load
    /// and build here as a config applied with `config apply` must, so
    /// that a backup whose certificates or server names this node lacks
    /// is refused before it is proposed. `forget`: the node ids whose
    /// health reports go in the same step (not members here).
    pub fn prepare_restore(
        &self,
        state: ClusterState,
        forget: std::collections::BTreeSet<NodeId>,
    ) -> Result<Prepared, LoadError> {
        let candidate = state.without_tables();
        // A config that does not load here is refused with its errors
        // first (its model would be empty, and build).
        let command = Command::restore(state, forget, now_ms())?;
        let resolved = trial_build(&candidate, &self.certs)?;
        Ok(Prepared { command, resolved })
    }

    /// Apply a prepared config: its resolved addresses become the node's,
    /// and its `LoadConfig` is submitted. Blocking (it parses the config
    /// under the state lock): call it off the async workers.
    pub fn commit(&self, prepared: Prepared) -> Result<Applied, Refusal> {
        self.shared.lock_local().remember(prepared.resolved);
        self.submit(&prepared.command)
    }

    /// [`Runtime::commit`] through [`Runtime::change`]: in a cluster the
    /// prepared config is proposed, and every node applies it from the log.
    pub async fn propose_config(&self, prepared: Prepared) -> Result<(), ChangeError> {
        self.shared.lock_local().remember(prepared.resolved);
        self.change(&prepared.command).await
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

    /// Build a new snapshot from the same state: a node-local input of the
    /// routing changed (a server's `locally_down`). Wait with
    /// [`Runtime::settled`] for it to take effect.
    pub fn rebuild(&self) {
        let mut cell = self.shared.lock_state();
        cell.wanted += 1;
        self.shared.wake.notify_one();
    }

    /// Whether changes go through a cluster (false for a standalone node,
    /// and for a cluster node not initialized or joined yet).
    pub fn clustered(&self) -> bool {
        self.proposer.get().is_some_and(|p| p.active())
    }

    /// A cluster node that has not been initialized or joined yet: it
    /// serves its own file, and a change made here now would be lost (or,
    /// racing the first entry from the log, make its state differ).
    pub fn awaiting_cluster(&self) -> bool {
        self.proposer.get().is_some_and(|p| !p.active())
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
                Effect::StickStored { rejected } => {
                    if let Command::StickBatch { node, at, writes } = command {
                        // Only this process's own writes are in its local
                        // tables already: a batch of this node that a
                        // killed incarnation proposed, and that committed
                        // after what its data directory holds, comes back
                        // from the log on restart and is copied in like
                        // another node's.
                        let gens = (*node == self.node)
                            .then(|| self.own_batches().gens.remove(at))
                            .flatten();
                        self.absorb(&snapshot, gens.as_deref(), writes, rejected);
                    }
                }
                // Pooled connections may lead to servers that moved; the
                // node itself makes listeners, checks and sockets follow
                // the new config (see `node::Node::reload`).
                Effect::ConfigLoaded => {
                    for s in snapshot.backends.iter().flat_map(|b| b.servers.iter()) {
                        s.shared.flush_connections();
                    }
                    self.reconfigured.send_modify(|v| *v += 1);
                }
                // A backup replaced everything: the local tables become
                // its tables (entries only this node had go), as after a
                // snapshot install.
                Effect::Restored => {
                    for t in snapshot.tables.values() {
                        t.clear(None);
                    }
                    self.follow_installed_tables(&snapshot);
                    for s in snapshot.backends.iter().flat_map(|b| b.servers.iter()) {
                        s.shared.flush_connections();
                    }
                    self.reconfigured.send_modify(|v| *v += 1);
                }
                Effect::NodeDrained { .. } => self.reconfigured.send_modify(|v| *v += 1),
                Effect::CertificatesChanged => {
                    self.rebuild_certs();
                    let names = self.read(|s| s.certificates().keys().cloned().collect::<Vec<_>>());
                    tracing::info!(
                        "cluster certificates changed: TLS binds now serve {} ({})",
                        names.len(),
                        names.join(", ")
                    );
                }
                Effect::Verdict { server, up, detail } => {
                    crate::health::log_verdict(self.clustered(), server, *up, detail);
                }
            }
        }
    }
}

/// Say, at error level, that the replicated config does not load with
/// this node's environment, and what the node serves meanwhile.
fn does_not_load(why: &str, serving: &shoal_proto::config::Config) {
    if serving.proxies.is_empty() {
        tracing::error!(
            "the replicated configuration does not load on this node: {why}; \
             it serves nothing until a configuration that loads here is applied"
        );
    } else {
        tracing::error!(
            "the replicated configuration does not load on this node: {why}; \
             it keeps serving its previous configuration"
        );
    }
}

/// HAProxy's server id of `server` in the backend that declares `table`
/// (its 1-based position; 0 when it has none).
fn server_id(snapshot: &Snapshot, table: &str, server: &str) -> usize {
    snapshot
        .backend(table)
        .and_then(|b| b.server_by_name(server))
        .map_or(0, |i| i + 1)
}

/// Load every replicated entry of `state` into the node-local tables
/// `tables` (start-up, a snapshot installed), oldest first, each with the
/// lifetime it has left. Tables whose definition differs are left alone
/// (the next build replaces them, empty, as a reload does).
fn load_tables(
    snapshot: &Snapshot,
    tables: &std::collections::HashMap<String, Arc<crate::stick::StickTable>>,
    state: &ClusterState,
) {
    let now = now_ms();
    for (name, replicated) in state.tables() {
        let Some(local) = tables.get(name).filter(|t| t.config == replicated.def) else {
            continue;
        };
        let mut entries: Vec<_> = replicated.entries().iter().collect();
        entries.sort_by_key(|(_, e)| (e.at, e.seq));
        for (key, e) in entries {
            let age = std::time::Duration::from_millis(now.saturating_sub(e.at));
            local.load(key, &e.server, server_id(snapshot, name, &e.server), age);
        }
    }
}

impl Runtime {
    /// After a snapshot was installed: load its stick entries into the
    /// local tables. A table whose definition changed is replaced here by
    /// an empty one of the new definition (the next build keeps it), so
    /// that it starts with the snapshot's entries.
    fn follow_installed_tables(&self, snapshot: &Snapshot) {
        let state = self.read(ClusterState::clone);
        let mut local = self.shared.lock_local();
        for table in local.tables.values() {
            table.settle_all();
        }
        let queue = local.stick.clone();
        for (name, replicated) in state.tables() {
            if local
                .tables
                .get(name)
                .is_none_or(|t| t.config != replicated.def)
            {
                let table =
                    crate::stick::StickTable::new(name, replicated.def.clone(), queue.clone());
                local.tables.insert(name.clone(), Arc::new(table));
            }
        }
        load_tables(snapshot, &local.tables, &state);
    }

    /// Make the local tables follow a committed stick batch: each written
    /// key takes the server the log now gives it (see
    /// [`crate::stick::StickTable::follow`]). `gens`: the batch is this
    /// process's own, and these are its writes' places in its write order.
    fn absorb(
        &self,
        snapshot: &Snapshot,
        gens: Option<&[u64]>,
        writes: &[shoal_proto::command::StickWrite],
        rejected: &[usize],
    ) {
        let mut rejected = rejected.iter().copied().peekable();
        for (i, w) in writes.iter().enumerate() {
            let lost = rejected.next_if_eq(&i).is_some();
            let Some(table) = snapshot.tables.get(w.table.as_str()) else {
                continue;
            };
            let winner = lost
                .then(|| {
                    self.read(|s| {
                        s.tables()
                            .get(&w.table)
                            .and_then(|t| t.get(&w.key))
                            .map(|e| e.server.clone())
                    })
                })
                .flatten();
            let server = if lost {
                winner.as_deref()
            } else {
                Some(w.server.as_str())
            };
            let replicated = server.map(|s| (s, server_id(snapshot, &w.table, s)));
            table.follow(&w.key, replicated, gens.and_then(|g| g.get(i).copied()));
        }
    }

    fn own_batches(&self) -> std::sync::MutexGuard<'_, OwnBatches> {
        self.own_batches.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forget the batch of this node stamped `at` (it failed to commit and
    /// its writes go out again in another batch, with the same `gen`s; if
    /// it did commit after all, it is copied in as another node's would
    /// be, and keys still waiting for a newer write ignore it).
    pub fn forget_own_stick_batch(&self, at: Millis) {
        self.own_batches().gens.remove(&at);
    }

    /// The `StickBatch` of this node's queued `writes`, remembered until
    /// it comes back from the log; also returns the writes' `gen`s.
    pub fn own_stick_batch(&self, writes: Vec<crate::stick::Queued>) -> (Command, Vec<u64>) {
        let (writes, gens): (Vec<_>, Vec<_>) = writes.into_iter().map(|q| (q.write, q.gen)).unzip();
        let mut own = self.own_batches();
        let at = now_ms().max(own.last_at + 1);
        own.last_at = at;
        own.gens.insert(at, gens.clone());
        while own.gens.len() > OWN_BATCHES_KEPT {
            own.gens.pop_first();
        }
        let batch = Command::StickBatch {
            node: self.node,
            at,
            writes,
        };
        (batch, gens)
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
