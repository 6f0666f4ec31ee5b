//! One running node: load the config, open listeners, start checks, and
//! react to SIGHUP (reload) and SIGTERM/SIGINT (graceful stop).

use crate::health::{self, Checks};
use crate::listener::{self, AcceptCtx, Handle, Tracker};
use crate::runtime::Runtime;
use anyhow::{bail, Context as _};
use shoal_proto::config::{self, Config, Parsed};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// Options of `shoal run` beyond the config file.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub config: PathBuf,
    /// Append access-log lines to this file.
    pub access_log: Option<PathBuf>,
    /// Longest wait for in-flight connections on SIGTERM.
    pub grace: Duration,
    /// Address of the admin HTTP API (`--admin`), if any.
    pub admin: Option<SocketAddr>,
    /// Bearer token for the admin API (`SHOAL_ADMIN_TOKEN` or `--admin-token-file`).
    pub admin_token: Option<String>,
}

/// Read and parse a config file; errors come back as `FILE:LINE: message` lines.
pub fn load(path: &Path) -> Result<Parsed, Vec<String>> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![format!("{name}:0: cannot read file: {e}")])?;
    config::parse(&text, &name).map_err(|errors| errors.iter().map(ToString::to_string).collect())
}

/// A listener key: the frontend and the address its `bind` line names.
type Key = (String, String);

struct Node {
    opts: RunOptions,
    runtime: Arc<Runtime>,
    tracker: Arc<Tracker>,
    shutdown: watch::Sender<bool>,
    listeners: HashMap<Key, Handle>,
    checks: Checks,
    /// Open `stats socket`s and the config lines they came from.
    sockets: (
        crate::api::socket::Sockets,
        Vec<shoal_proto::config::StatsSocket>,
    ),
}

/// Run a node until SIGTERM/SIGINT.
pub async fn run(opts: RunOptions) -> anyhow::Result<()> {
    let parsed = match load(&opts.config) {
        Ok(p) => p,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            bail!("configuration has {} error(s)", errors.len());
        }
    };
    for w in &parsed.warnings {
        eprintln!("[WARNING] {w}");
    }
    crate::log::init(&parsed.config, opts.access_log.as_deref()).context("opening access log")?;
    let runtime = Arc::new(Runtime::new(parsed.config.clone())?);
    let (shutdown, _) = watch::channel(false);
    let mut node = Node {
        opts,
        runtime: runtime.clone(),
        tracker: Arc::new(Tracker::default()),
        shutdown,
        listeners: HashMap::new(),
        checks: Checks::default(),
        sockets: Default::default(),
    };
    // Signals before listeners: a SIGTERM sent as soon as the listening
    // notice shows must stop the node gracefully, not kill it.
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    // Checks first: the passive-health registry must be in place before
    // the first request can arrive.
    node.checks = health::start_with(&runtime, &parsed.config, &runtime.observer);
    let failures = node.sync_listeners(&parsed.config).await;
    if let Some(first) = failures.into_iter().next() {
        bail!(first);
    }
    let sockets = crate::api::socket::start(runtime.clone(), &parsed.config)
        .await
        .context("opening stats socket")?;
    node.sockets = (sockets, parsed.config.global.stats_sockets.clone());
    let admin = match node.opts.admin {
        Some(addr) => {
            if node.opts.admin_token.is_none() && !addr.ip().is_loopback() {
                bail!("the admin API on a non-loopback address needs a token (SHOAL_ADMIN_TOKEN or --admin-token-file)");
            }
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("admin API on {addr}"))?;
            println!("[NOTICE] admin API listening on {}", listener.local_addr()?);
            Some(
                crate::api::admin::start(listener, runtime.clone(), node.opts.admin_token.clone())
                    .await?,
            )
        }
        None => None,
    };

    loop {
        tokio::select! {
            _ = hup.recv() => node.reload().await,
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    // Tell load balancers in front of us to stop sending first.
    if let Some(admin) = &admin {
        admin.set_ready(false);
    }
    node.stop().await;
    Ok(())
}

impl Node {
    /// Open listeners the config names that are not open yet, close the
    /// ones it no longer names. Returns the bind failures.
    async fn sync_listeners(&mut self, config: &Config) -> Vec<String> {
        let mut wanted: HashMap<Key, SocketAddr> = HashMap::new();
        let mut failures = Vec::new();
        for proxy in config.proxies.iter().filter(|p| p.kind.is_frontend()) {
            for bind in &proxy.binds {
                let label = format!("{}:{}", bind.host, bind.port);
                match listener::bind_addr(bind) {
                    Ok(addr) => {
                        wanted.insert((proxy.name.clone(), label), addr);
                    }
                    Err(e) => failures.push(format!(
                        "frontend '{}': cannot bind {label}: {e}",
                        proxy.name
                    )),
                }
            }
        }
        let gone: Vec<Key> = self
            .listeners
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            if let Some(handle) = self.listeners.remove(&key) {
                tracing::info!("frontend '{}' stops listening on {}", key.0, handle.local);
                handle.close().await;
            }
        }
        let ctx = AcceptCtx {
            runtime: self.runtime.clone(),
            tracker: self.tracker.clone(),
            shutdown: self.shutdown.subscribe(),
        };
        let mut keys: Vec<_> = wanted
            .into_iter()
            .filter(|(k, _)| !self.listeners.contains_key(k))
            .collect();
        keys.sort();
        for (key, addr) in keys {
            let opened =
                listener::open(addr).and_then(|l| listener::spawn(l, key.0.clone(), ctx.clone()));
            match opened {
                Ok(handle) => {
                    // Tests and scripts read this line to learn ports bound as :0.
                    println!(
                        "[NOTICE] frontend '{}' listening on {}",
                        key.0, handle.local
                    );
                    self.listeners.insert(key, handle);
                }
                Err(e) => failures.push(format!("frontend '{}': cannot bind {addr}: {e}", key.0)),
            }
        }
        failures
    }

    /// SIGHUP: re-read the file; on any error keep running the old config.
    async fn reload(&mut self) {
        let parsed = match load(&self.opts.config) {
            Ok(p) => p,
            Err(errors) => {
                for e in &errors {
                    tracing::error!("reload refused: {e}");
                }
                return;
            }
        };
        for w in &parsed.warnings {
            tracing::warn!("{w}");
        }
        let runtime = self.runtime.clone();
        let config = parsed.config.clone();
        // Building may resolve host names: keep that off the async workers.
        let built = tokio::task::spawn_blocking(move || runtime.reload(config)).await;
        match built {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!("reload refused: {e}");
                return;
            }
            Err(e) => {
                tracing::error!("reload failed: {e}");
                return;
            }
        }
        for failure in self.sync_listeners(&parsed.config).await {
            tracing::error!("{failure}");
        }
        self.checks = health::start_with(&self.runtime, &parsed.config, &self.runtime.observer);
        // Re-open the runtime sockets only when their lines changed, so
        // that a reload does not cut an operator's interactive session.
        if parsed.config.global.stats_sockets != self.sockets.1 {
            self.sockets = Default::default();
            match crate::api::socket::start(self.runtime.clone(), &parsed.config).await {
                Ok(sockets) => self.sockets = (sockets, parsed.config.global.stats_sockets.clone()),
                Err(e) => tracing::error!("stats socket: {e}"),
            }
        }
        println!("[NOTICE] configuration reloaded");
    }

    /// Stop accepting, let in-flight work finish, give up after the grace period.
    async fn stop(mut self) {
        for (_, handle) in self.listeners.drain() {
            handle.close().await;
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
