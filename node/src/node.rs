//! One running node: load the config, open listeners, start checks, and
//! react to SIGHUP (reload) and SIGTERM/SIGINT (graceful stop).
//!
//! Standalone (no cluster flags), the file is the truth. A reload is a
//! transaction: the new file is parsed, its server names resolved and its
//! routing table trial-built, its new listeners and changed stats sockets
//! opened — and only when all of that worked is it applied, as one
//! `LoadConfig` command. On any failure nothing changes (state,
//! listeners, sockets) and the log says why.
//!
//! In a cluster the replicated state is the truth: the node starts from
//! its data directory (or, the first time, from its file), and SIGHUP
//! proposes the file like `shoal config apply`. Whatever a committed
//! command changes (a config from another node, a drain, a snapshot), the
//! node follows in [`Node::reconcile`]: listeners, checks and sockets.

use crate::health::{self, Checks};
use crate::listener::{self, AcceptCtx, Handle, Tracker};
use crate::observe::Observer;
use crate::runtime::Runtime;
use anyhow::{bail, Context as _};
use shoal_proto::config::{self, Config, Parsed, StatsSocket};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// Options of `shoal run` beyond the config file.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The config file (`-f`); a cluster node restarting from its data
    /// directory may go without.
    pub config: Option<PathBuf>,
    /// Cluster membership, when the cluster flags are given.
    pub cluster: Option<ClusterOptions>,
    /// Append access-log lines to this file.
    pub access_log: Option<PathBuf>,
    /// Longest wait for in-flight connections on SIGTERM.
    pub grace: Duration,
    /// Address of the admin HTTP API (`--admin`), if any.
    pub admin: Option<SocketAddr>,
    /// Bearer token for the admin API (`SHOAL_ADMIN_TOKEN` or `--admin-token-file`).
    pub admin_token: Option<String>,
}

/// `shoal run --node-id N --data-dir DIR --cluster-addr ADDR --certs DIR [--join ...]`.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub node: shoal_proto::command::NodeId,
    pub data_dir: PathBuf,
    pub cluster_addr: SocketAddr,
    pub certs: PathBuf,
    /// Members' cluster addresses to join through, when the node has no data.
    pub join: Vec<String>,
    /// Build a Raft snapshot every this many log entries.
    pub snapshot_every: u64,
}

/// A config file as read: its text and what it says.
pub struct Loaded {
    pub file: String,
    pub text: String,
    pub parsed: Parsed,
}

/// Read and parse a config file; errors come back as `FILE:LINE: message` lines.
pub fn load(path: &Path) -> Result<Loaded, Vec<String>> {
    use std::io::Read as _;
    let file = path.display().to_string();
    let cannot = |e: std::io::Error| vec![format!("{file}:0: cannot read file: {e}")];
    // Read at most one byte past the size cap, so an endless input (such
    // as /dev/zero) is refused without filling memory.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(config::MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes))
        .map_err(cannot)?;
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        // Not UTF-8 (or cut at the cap): the line-by-line reader names the
        // offending line, or the size cap.
        Err(_) => {
            return Err(config::parse_file(path).err().map_or_else(
                || vec![format!("{file}:0: cannot read file: not UTF-8")],
                |errors| errors.iter().map(ToString::to_string).collect(),
            ))
        }
    };
    let parsed = config::parse(&text, &file)
        .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    // Certificates are files of their own: a bad one names its bind line.
    let tls_errors = crate::tls::check(&parsed.config);
    if !tls_errors.is_empty() {
        return Err(tls_errors);
    }
    Ok(Loaded { file, text, parsed })
}

/// A listener key: the frontend and the address its `bind` line names.
type Key = (String, String);

/// Listening sockets opened for a config that is not applied yet.
/// (whether its `bind` asks for TLS, so that a listener never serves
/// plaintext on a TLS port when the routing for it could not be built).
type Opened = Vec<(Key, bool, TcpListener)>;

struct Node {
    opts: RunOptions,
    runtime: Arc<Runtime>,
    tracker: Arc<Tracker>,
    shutdown: watch::Sender<bool>,
    listeners: HashMap<Key, Handle>,
    checks: Checks,
    /// Open `stats socket`s and the config lines they came from.
    sockets: (crate::api::socket::Sockets, Vec<StatsSocket>),
    /// Passive health: the request path reports, the checks act.
    observer: Observer,
    /// The config the listeners, checks and sockets follow.
    running: Arc<Config>,
    /// This node's cluster membership, if it runs in one.
    cluster: Option<Arc<shoal_raft::cluster::Cluster>>,
    /// The peers' load reports, for the admin API (cluster nodes only).
    load: Option<Arc<crate::load::Board>>,
    /// Housekeeping: stick-table batches, idle pooled connections.
    background: [tokio::task::JoinHandle<()>; 2],
    /// While this node is drained but its listeners still accept during
    /// `global grace`: when they close.
    drain_closes_at: Option<tokio::time::Instant>,
}

/// Run a node until SIGTERM/SIGINT. `store`: the opened data directory of
/// a cluster node (with `opts.cluster`).
pub async fn run(
    opts: RunOptions,
    mut store: Option<shoal_raft::store::Opened>,
) -> anyhow::Result<()> {
    // Take the signals before anything is printed: scripts and tests send
    // them as soon as they read a listening notice, and SIGHUP's default
    // action would end the process.
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let node_id = opts.cluster.as_ref().map_or(0, |c| c.node);
    let persisted = store.as_mut().and_then(|s| s.take_state());
    let access_log = opts.access_log.clone();
    let runtime = match persisted {
        Some(state) => {
            if let Some(c) = &opts.cluster {
                println!(
                    "[NOTICE] node {} starts from its data in {}",
                    c.node,
                    c.data_dir.display()
                );
            }
            log_init(&state.config().model, access_log.as_deref())?;
            tokio::task::spawn_blocking(move || Runtime::start_from(state, node_id))
                .await
                .context("starting the runtime")??
        }
        None => {
            let Some(path) = &opts.config else {
                bail!("a node without data needs its config file (-f FILE)");
            };
            let loaded = match load(path) {
                Ok(l) => l,
                Err(errors) => {
                    for e in &errors {
                        eprintln!("{e}");
                    }
                    bail!("configuration has {} error(s)", errors.len());
                }
            };
            for w in &loaded.parsed.warnings {
                eprintln!("[WARNING] {w}");
            }
            log_init(&loaded.parsed.config, access_log.as_deref())?;
            let (file, text) = (loaded.file, loaded.text);
            // Resolving server names may block: keep it off the async workers.
            tokio::task::spawn_blocking(move || Runtime::start(&file, &text, node_id))
                .await
                .context("starting the runtime")??
        }
    };
    let runtime = Arc::new(runtime);
    let admin_listener = match opts.admin {
        Some(addr) => {
            if opts.admin_token.is_none() && !addr.ip().is_loopback() {
                bail!("the admin API on a non-loopback address needs a token (SHOAL_ADMIN_TOKEN or --admin-token-file)");
            }
            if opts.admin_token.is_none() && opts.cluster.is_some() {
                bail!("a cluster node's admin API needs a token (SHOAL_ADMIN_TOKEN or --admin-token-file)");
            }
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("admin API on {addr}"))?;
            Some(listener)
        }
        None => None,
    };
    // Raft before any surface: from the first change on (a health report,
    // a stick expiry, an operator's command), changes of a member go
    // through the log, never straight into its state.
    let (cluster, load) = match (opts.cluster.clone(), store) {
        (Some(c), Some(store)) => {
            let admin = match &admin_listener {
                Some(l) => l.local_addr()?.to_string(),
                None => bail!("a cluster node needs --admin"),
            };
            let (cluster, load) = start_cluster(&c, store, &runtime, admin).await?;
            (Some(cluster), Some(load))
        }
        _ => (None, None),
    };
    let config = runtime.read(|s| s.config().model.clone());
    let (shutdown, _) = watch::channel(false);
    let mut node = Node {
        opts,
        runtime: runtime.clone(),
        tracker: Arc::new(Tracker::default()),
        shutdown,
        listeners: HashMap::new(),
        checks: Checks::default(),
        sockets: Default::default(),
        observer: Observer::default(),
        background: [
            tokio::spawn(crate::persist::run_batcher(runtime.clone())),
            tokio::spawn(crate::http::sweeper::run(runtime.clone())),
        ],
        running: config.clone(),
        cluster,
        load,
        drain_closes_at: None,
    };
    // Checks first: the passive-health registry must be in place before
    // the first request can arrive.
    node.checks = health::start(&runtime, &config, &node.observer);
    // A node restarting drained (its replicated state says so) opens no
    // listener: not even for the moment before `reconcile` would close it,
    // when a client behind a VIP or DNS could connect and be cut off.
    if !runtime.read(|s| s.is_drained(node_id)) {
        let opened = node
            .open_listeners(&config)
            .map_err(|mut e| anyhow::anyhow!(e.remove(0)))?;
        node.activate(opened);
    }
    let sockets = crate::api::socket::start(runtime.clone(), &config)
        .await
        .context("opening stats socket")?;
    node.sockets = (sockets, config.global.stats_sockets.clone());
    let admin_addr = admin_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;
    let admin = match admin_listener {
        Some(listener) => Some(
            crate::api::admin::start(
                listener,
                runtime.clone(),
                node.opts.admin_token.clone(),
                node.cluster.clone(),
                node.load.clone(),
            )
            .await?,
        ),
        None => None,
    };
    // A drained node (its state says so on restart) serves nothing.
    let mut reconfigured = runtime.reconfigured();
    node.reconcile(admin.as_ref()).await;
    // Announced once `/ready` tells the truth (reconcile set it).
    if let Some(addr) = admin_addr {
        println!("[NOTICE] admin API listening on {addr}");
    }
    // Cluster SIGHUPs are proposed by one worker, one after the other, so
    // that the last file read is the last proposed; signals that arrive
    // while it works fold into one more round.
    let hup_worker = Arc::new(tokio::sync::Notify::new());
    if node.cluster.is_some() {
        let (wake, path, runtime) = (
            hup_worker.clone(),
            node.opts.config.clone(),
            runtime.clone(),
        );
        tokio::spawn(async move {
            loop {
                wake.notified().await;
                propose_file(path.clone(), runtime.clone()).await;
            }
        });
    }

    loop {
        tokio::select! {
            _ = hup.recv() => {
                if node.cluster.is_some() {
                    // The proposal may wait seconds for a quorum; the
                    // signals and the reconciling go on meanwhile.
                    hup_worker.notify_one();
                    continue;
                }
                match node.reload().await {
                    Ok(Ok(())) => println!("[NOTICE] configuration reloaded"),
                    Ok(Err(routing)) => tracing::error!(
                        "configuration reloaded, but its routing table could not be built \
                         (the previous one stays until the next change): {routing}"
                    ),
                    Err(why) => {
                        for line in why {
                            tracing::error!("reload refused, the running configuration is unchanged: {line}");
                        }
                    }
                }
            }
            changed = reconfigured.changed() => {
                if changed.is_ok() {
                    node.reconcile(admin.as_ref()).await;
                }
            }
            // A drain's grace is over: close the listeners.
            () = sleep_until(node.drain_closes_at) => node.reconcile(admin.as_ref()).await,
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    // Tell load balancers in front of us to stop sending first, and keep
    // accepting for `global grace` while they move clients away (a second
    // SIGTERM or SIGINT cuts it short).
    if let Some(admin) = &admin {
        admin.set_ready(false);
    }
    let grace = node.running.global.grace.unwrap_or_default();
    if !grace.is_zero() && !node.listeners.is_empty() {
        println!(
            "[NOTICE] stopping: /ready answers 503; listeners close in {} ms (global grace)",
            grace.as_millis()
        );
        tokio::select! {
            () = tokio::time::sleep(grace) => {}
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    let cluster = node.cluster.clone();
    node.stop().await;
    if let Some(cluster) = cluster {
        cluster.shutdown().await;
    }
    Ok(())
}

/// Wait until `at`, or forever when there is nothing to wait for.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Check the `user`/`group` lines and open the logs `config` asks for.
fn log_init(config: &Config, access_log: Option<&Path>) -> anyhow::Result<()> {
    crate::identity::check(&config.global).map_err(anyhow::Error::msg)?;
    crate::log::init(config, access_log).context("opening access log")
}

/// Start Raft and the QUIC endpoint, make changes go through them, and
/// join the cluster named by `--join` when the node has no data yet.
async fn start_cluster(
    c: &ClusterOptions,
    store: shoal_raft::store::Opened,
    runtime: &Arc<Runtime>,
    admin: String,
) -> anyhow::Result<(Arc<shoal_raft::cluster::Cluster>, Arc<crate::load::Board>)> {
    use shoal_raft::cluster::{Cluster, Settings};
    // A voter restarting stays one; anything else (a new node, a join
    // that did not finish, a wiped directory) joins with --join.
    let voter = store.is_voter(c.node);
    let settings = Settings {
        node: c.node,
        data_dir: c.data_dir.clone(),
        bind: c.cluster_addr,
        certs: c.certs.clone(),
        admin,
        snapshot_every: c.snapshot_every,
    };
    let host = Arc::new(crate::cluster::Host(runtime.clone()));
    let cluster = Cluster::start(settings, store, host)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "[NOTICE] node {} cluster endpoint listening on {}",
        c.node,
        cluster.local_addr()
    );
    runtime.set_proposer(Arc::new(crate::cluster::RaftProposer(cluster.clone())));
    // Cluster-wide load: leastconn and maxconn across the nodes.
    let board = Arc::new(crate::load::Board::default());
    tokio::spawn(crate::load::run(
        runtime.clone(),
        cluster.clone(),
        board.clone(),
    ));
    if !voter && !c.join.is_empty() {
        tokio::spawn(join_at_start(cluster.clone(), c.join.clone()));
    }
    Ok((cluster, board))
}

/// `--join`: try each address in turn until one adds this node; the node
/// serves its own file meanwhile.
async fn join_at_start(cluster: Arc<shoal_raft::cluster::Cluster>, via: Vec<String>) {
    let mut pause = Duration::from_millis(200);
    loop {
        for addr in &via {
            match cluster.join(addr).await {
                Ok(()) => {
                    println!(
                        "[NOTICE] node {} joined the cluster through {addr}",
                        cluster.node()
                    );
                    return;
                }
                Err(e) => tracing::warn!("joining through {addr}: {e}"),
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// Cluster SIGHUP: re-read the file and propose it like `shoal config
/// apply` (a file equal to the running config changes nothing).
async fn propose_file(path: Option<PathBuf>, runtime: Arc<Runtime>) {
    let Some(path) = path else {
        tracing::warn!("SIGHUP: this node was started without -f; nothing to re-read");
        return;
    };
    let reading = runtime.clone();
    let prepared = tokio::task::spawn_blocking(move || {
        let loaded = load(&path)?;
        if reading.read(|s| s.config().text == loaded.text) {
            return Ok(None);
        }
        reading
            .prepare(&loaded.file, &loaded.text)
            .map(Some)
            .map_err(|e| vec![e.to_string()])
    })
    .await
    .map_err(|e| vec![e.to_string()])
    .and_then(|r| r);
    match prepared {
        Ok(None) => println!("[NOTICE] configuration unchanged"),
        Ok(Some(prepared)) => match runtime.propose_config(prepared).await {
            Ok(()) => println!("[NOTICE] configuration applied to the cluster"),
            Err(e) => tracing::error!("SIGHUP: the configuration was not applied: {e}"),
        },
        Err(why) => {
            for line in why {
                tracing::error!("reload refused, the running configuration is unchanged: {line}");
            }
        }
    }
}

impl Node {
    /// Open the listening sockets `config` names that are not open yet.
    /// All or nothing: on a failure the ones just opened are closed again.
    fn open_listeners(&self, config: &Config) -> Result<Opened, Vec<String>> {
        let mut opened = Vec::new();
        let mut failures = Vec::new();
        for (key, bind) in wanted(config) {
            if self.listeners.contains_key(&key) || opened.iter().any(|(k, _, _)| *k == key) {
                continue;
            }
            match open_one(&key, bind) {
                Ok(l) => opened.push((key, bind.tls.is_some(), l)),
                Err(e) => failures.push(e),
            }
        }
        if failures.is_empty() {
            Ok(opened)
        } else {
            Err(failures)
        }
    }

    /// Follow the applied state: listeners, checks and sockets for its
    /// config (none while this node is drained, once `global grace` is
    /// over), and `/ready` (503 while drained or while the config does not
    /// load here). A listener that cannot be opened here is logged; the
    /// others open.
    async fn reconcile(&mut self, admin: Option<&crate::api::admin::Admin>) {
        if let Err(e) = self.runtime.built().await {
            tracing::error!("the routing table for the applied state could not be built: {e}");
        }
        let node = self.runtime.node();
        let (config, drained, loads) = self.runtime.read(|s| {
            let config = s.config();
            let loads = config.local_error.is_none();
            (config.model.clone(), s.is_drained(node), loads)
        });
        if !Arc::ptr_eq(&config, &self.running) {
            if config.global.stats_sockets != self.sockets.1 {
                if let Err(e) = self.swap_sockets(&config).await {
                    tracing::error!("stats socket: {e}");
                }
            }
            self.checks = health::start(&self.runtime, &config, &self.observer);
            self.running = config.clone();
        }
        // Not ready before any listener closes: balancers in front move
        // away first.
        if let (Some(admin), true) = (admin, drained || !loads) {
            admin.set_ready(false);
        }
        if !drained {
            self.drain_closes_at = None;
        }
        let none = Config::default();
        let target = if drained && self.drain_grace_over(&config) {
            &none
        } else {
            &*config
        };
        let mut opened = Vec::new();
        for (key, bind) in wanted(target) {
            if self.listeners.contains_key(&key) || opened.iter().any(|(k, _, _)| *k == key) {
                continue;
            }
            match open_one(&key, bind) {
                Ok(l) => opened.push((key, bind.tls.is_some(), l)),
                Err(e) => tracing::error!("{e}"),
            }
        }
        self.activate(opened);
        self.close_gone(target).await;
        // Not ready while the running config does not load here either, so
        // that a VIP or DNS health check moves clients to the other nodes.
        if let Some(admin) = admin {
            admin.set_ready(!drained && loads);
        }
    }

    /// Whether a drained node's listeners close now: at once without
    /// `global grace`, else once the grace that began when this node first
    /// saw itself drained is over (meanwhile `/ready` already answers 503,
    /// so a VIP or DNS health check moves clients away before connections
    /// are refused, as HAProxy's `grace` does for a soft stop). The main
    /// loop wakes `reconcile` when it ends.
    fn drain_grace_over(&mut self, config: &Config) -> bool {
        let grace = config.global.grace.unwrap_or_default();
        if grace.is_zero() || self.listeners.is_empty() {
            self.drain_closes_at = None;
            return true;
        }
        let now = tokio::time::Instant::now();
        let closes_at = *self.drain_closes_at.get_or_insert_with(|| {
            println!(
                "[NOTICE] drained: /ready answers 503; listeners close in {} ms (global grace)",
                grace.as_millis()
            );
            now + grace
        });
        if now >= closes_at {
            self.drain_closes_at = None;
            return true;
        }
        false
    }

    /// Start accepting on newly opened listeners.
    fn activate(&mut self, opened: Opened) {
        let ctx = AcceptCtx {
            runtime: self.runtime.clone(),
            observer: self.observer.clone(),
            tracker: self.tracker.clone(),
            shutdown: self.shutdown.subscribe(),
        };
        for (key, tls, l) in opened {
            match listener::spawn(l, key.0.clone(), key.1.clone().into(), tls, ctx.clone()) {
                Ok(handle) => {
                    // Tests and scripts read this line to learn ports bound as :0.
                    println!(
                        "[NOTICE] frontend '{}' listening on {}",
                        key.0, handle.local
                    );
                    self.listeners.insert(key, handle);
                }
                Err(e) => tracing::error!("frontend '{}': {e}", key.0),
            }
        }
    }

    /// Close the listeners `config` no longer names.
    async fn close_gone(&mut self, config: &Config) {
        let keep: Vec<Key> = wanted(config).map(|(k, _)| k).collect();
        let gone: Vec<Key> = self
            .listeners
            .keys()
            .filter(|k| !keep.contains(k))
            .cloned()
            .collect();
        for key in gone {
            if let Some(handle) = self.listeners.remove(&key) {
                tracing::info!("frontend '{}' stops listening on {}", key.0, handle.local);
                handle.close().await;
            }
        }
    }

    /// SIGHUP: re-read the file and apply it as one transaction. `Err`
    /// says why it was refused; then nothing changed. `Ok(Err)`: applied,
    /// but the routing table for it failed to build (which the trial build
    /// makes unlikely), and why.
    async fn reload(&mut self) -> Result<Result<(), String>, Vec<String>> {
        // Read, parse, resolve names and trial-build the routing table, off
        // the async workers: a bad line, an unresolvable server or a bad
        // rule stops here.
        let runtime = self.runtime.clone();
        let Some(path) = self.opts.config.clone() else {
            return Err(vec!["no config file to re-read".into()]);
        };
        let (loaded, prepared) = tokio::task::spawn_blocking(move || {
            let loaded = load(&path)?;
            let prepared = runtime
                .prepare(&loaded.file, &loaded.text)
                .map_err(|e| vec![e.to_string()])?;
            Ok::<_, Vec<String>>((loaded, prepared))
        })
        .await
        .map_err(|e| vec![e.to_string()])??;
        for w in &loaded.parsed.warnings {
            tracing::warn!("{w}");
        }
        let config = &loaded.parsed.config;
        let opened = self.open_listeners(config)?;
        // Re-open the runtime sockets only when their lines changed, so
        // that a reload does not cut an operator's interactive session.
        let sockets_changed = config.global.stats_sockets != self.sockets.1;
        if sockets_changed {
            if let Err(e) = self.swap_sockets(config).await {
                return Err(vec![format!("stats socket: {e}")]);
            }
        }
        let runtime = self.runtime.clone();
        let committed = tokio::task::spawn_blocking(move || runtime.commit(prepared))
            .await
            .map_err(|e| e.to_string())
            .and_then(|applied| applied.map_err(|e| e.to_string()));
        if let Err(e) = committed {
            if sockets_changed {
                let old = self.runtime.snapshot().config.clone();
                if let Err(again) = self.swap_sockets(&old).await {
                    tracing::error!("stats socket: cannot reopen: {again}");
                }
            }
            return Err(vec![e]);
        }
        let built = self.runtime.built().await;
        self.activate(opened);
        self.close_gone(config).await;
        self.checks = health::start(&self.runtime, config, &self.observer);
        self.running = self.runtime.read(|s| s.config().model.clone());
        Ok(built)
    }

    /// Replace the stats sockets by those `config` names; on failure the
    /// old ones are opened again.
    async fn swap_sockets(&mut self, config: &Config) -> std::io::Result<()> {
        // The old sockets go first: a unix path may be in both.
        self.sockets.0 = Default::default();
        match crate::api::socket::start(self.runtime.clone(), config).await {
            Ok(sockets) => {
                self.sockets = (sockets, config.global.stats_sockets.clone());
                Ok(())
            }
            Err(e) => {
                // Not applied yet: the snapshot still has the old config.
                let old = self.runtime.snapshot().config.clone();
                match crate::api::socket::start(self.runtime.clone(), &old).await {
                    Ok(sockets) => self.sockets.0 = sockets,
                    Err(again) => tracing::error!("stats socket: cannot reopen: {again}"),
                }
                Err(e)
            }
        }
    }

    /// Stop accepting, let in-flight work finish, give up after the grace period.
    async fn stop(mut self) {
        for (_, handle) in self.listeners.drain() {
            handle.close().await;
        }
        for task in &self.background {
            task.abort();
        }
        let _ = self.shutdown.send(true);
        let active = self.tracker.active();
        if active > 0 {
            tracing::info!(
                "waiting up to {:?} for {active} connection(s)",
                self.opts.grace
            );
        }
        if tokio::time::timeout(self.opts.grace, self.tracker.wait_idle())
            .await
            .is_err()
        {
            tracing::warn!(
                "grace period over; closing {} connection(s)",
                self.tracker.active()
            );
        }
    }
}

/// Open the listening socket of one `bind` line.
fn open_one(key: &Key, bind: &shoal_proto::config::Bind) -> Result<TcpListener, String> {
    listener::bind_addr(bind)
        .map_err(|e| e.to_string())
        .and_then(|addr| listener::open(addr).map_err(|e| format!("{addr}: {e}")))
        .map_err(|e| format!("frontend '{}': cannot bind {}: {e}", key.0, key.1))
}

/// Every listener a config asks for, keyed by frontend and `bind` address.
fn wanted(config: &Config) -> impl Iterator<Item = (Key, &shoal_proto::config::Bind)> {
    config
        .proxies
        .iter()
        .filter(|p| p.kind.is_frontend())
        .flat_map(|p| {
            p.binds
                .iter()
                .map(|b| ((p.name.clone(), format!("{}:{}", b.host, b.port)), b))
        })
}
