//! A whole cluster, and reading its status (`GET /v1/cluster`).

use super::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The member `id` in a status answer.
pub fn member(status: &Value, id: u64) -> Option<&Value> {
    status["members"]
        .as_array()?
        .iter()
        .find(|m| m["id"].as_u64() == Some(id))
}

/// The ids a status answer lists.
pub fn member_ids(status: &Value) -> Vec<u64> {
    status["members"]
        .as_array()
        .map(|ms| ms.iter().filter_map(|m| m["id"].as_u64()).collect())
        .unwrap_or_default()
}

/// The voters a status answer lists.
pub fn voters(status: &Value) -> Vec<u64> {
    status["members"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .filter(|m| m["role"] == "voter")
                .filter_map(|m| m["id"].as_u64())
                .collect()
        })
        .unwrap_or_default()
}

/// What the answering node says its own state hash is.
pub fn own_hash(status: &Value) -> Option<String> {
    let me = status["node"].as_u64()?;
    member(status, me)?["state_hash"]
        .as_str()
        .map(str::to_string)
}

/// What the answering node says it applied (its own log index).
pub fn own_applied(status: &Value) -> Option<u64> {
    let me = status["node"].as_u64()?;
    member(status, me)?["applied"].as_u64()
}

/// A cluster of `shoal` nodes on 127.0.0.11, .12, ... sharing one config
/// file and one CA, in one scratch directory. Every process dies with it.
pub struct Cluster {
    pub nodes: BTreeMap<u64, Node>,
    /// What killed nodes printed, shown when a test fails.
    dead: Vec<(u64, String)>,
    pub cfg: PathBuf,
    pub ca: PathBuf,
    pub snapshot_every: Option<u64>,
    pub dir: TempDir,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

impl Cluster {
    /// The scratch directory, the CA and the config; no node yet.
    pub async fn prepare(config: &str, snapshot_every: Option<u64>) -> Cluster {
        let serial = serial().await;
        let dir = TempDir::new("cluster");
        let cfg = dir.file("shoal.cfg", config);
        let ca = dir.path("ca");
        shoal(&["cluster", "ca", "--out", &ca.display().to_string()])
            .await
            .ok();
        Cluster {
            nodes: BTreeMap::new(),
            dead: Vec::new(),
            cfg,
            ca,
            snapshot_every,
            dir,
            _serial: serial,
        }
    }

    /// `n` nodes: node 1 initializes the cluster, the others start with
    /// `--join` node 1; returns once all are voters with the same state.
    pub async fn start(n: u64, config: &str) -> Cluster {
        Cluster::start_with(n, config, None).await
    }

    pub async fn start_with(n: u64, config: &str, snapshot_every: Option<u64>) -> Cluster {
        let mut cluster = Cluster::prepare(config, snapshot_every).await;
        cluster.spawn(1, None);
        cluster.init(1).await;
        let via = cluster.node(1).cluster;
        for id in 2..=n {
            cluster.spawn(id, Some(via));
        }
        for id in 2..=n {
            cluster
                .node_mut(id)
                .proc
                .wait_line(&format!("node {id} joined the cluster through {via}"));
        }
        let all: Vec<u64> = (1..=n).collect();
        cluster.wait_voters(1, &all).await;
        cluster.converged(&all).await;
        cluster
    }

    /// Node `id`'s certificate directory, issued by the cluster CA on first use.
    pub fn certs(&self, id: u64) -> PathBuf {
        let out = self.dir.path(&format!("certs{id}"));
        if !out.join("node.pem").exists() {
            issue_cert(&self.ca, id, &out);
        }
        out
    }

    /// Start node `id` with the config file (and `--join via`).
    pub fn spawn(&mut self, id: u64, join: Option<SocketAddr>) -> &mut Node {
        let cfg = self.cfg.clone();
        self.spawn_with(id, join, &cfg)
    }

    /// Start node `id` with its own config file `cfg` (and `--join via`).
    pub fn spawn_with(&mut self, id: u64, join: Option<SocketAddr>, cfg: &Path) -> &mut Node {
        let certs = self.certs(id);
        let node = Node::start(
            &self.dir.0,
            &Start {
                id,
                certs: &certs,
                config: Some(cfg),
                join,
                cluster_addr: None,
                admin: None,
                snapshot_every: self.snapshot_every,
            },
        );
        self.nodes.insert(id, node);
        self.node_mut(id)
    }

    /// [`Cluster::spawn`] with more environment variables for this node.
    pub fn spawn_with_env(
        &mut self,
        id: u64,
        join: Option<SocketAddr>,
        env: &[(&str, &str)],
    ) -> &mut Node {
        let certs = self.certs(id);
        let node = Node::start_with_env(
            &self.dir.0,
            &Start {
                id,
                certs: &certs,
                config: Some(&self.cfg),
                join,
                cluster_addr: None,
                admin: None,
                snapshot_every: self.snapshot_every,
            },
            env,
        );
        self.nodes.insert(id, node);
        self.node_mut(id)
    }

    /// Start a node again from its data directory, without `-f`, on the
    /// addresses the membership records for it.
    pub fn restart(&mut self, old: Node) -> &mut Node {
        self.restart_program(old, &bin("shoal"))
    }

    /// [`Cluster::restart`] with another `shoal` binary (a rolling upgrade).
    pub fn restart_program(&mut self, old: Node, program: &Path) -> &mut Node {
        let id = old.id;
        let node = Node::start_program(
            program,
            &self.dir.0,
            &Start {
                id,
                certs: &old.certs,
                config: None,
                join: None,
                cluster_addr: Some(old.cluster),
                admin: Some(old.admin),
                snapshot_every: self.snapshot_every,
            },
            &[],
        );
        drop(old);
        self.nodes.insert(id, node);
        self.node_mut(id)
    }

    /// `shoal cluster init` on node `id`.
    pub async fn init(&self, id: u64) {
        let admin = self.node(id).admin.to_string();
        shoal(&["cluster", "init", "--admin", &admin]).await.ok();
    }

    pub fn node(&self, id: u64) -> &Node {
        self.nodes
            .get(&id)
            .unwrap_or_else(|| panic!("node {id} is not running"))
    }

    pub fn node_mut(&mut self, id: u64) -> &mut Node {
        self.nodes
            .get_mut(&id)
            .unwrap_or_else(|| panic!("node {id} is not running"))
    }

    /// The running nodes' ids.
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    /// `kill -9` node `id`; returns it (dead) for its addresses and data.
    pub fn kill(&mut self, id: u64) -> Node {
        let mut node = self
            .nodes
            .remove(&id)
            .unwrap_or_else(|| panic!("node {id} is not running"));
        node.proc.kill9();
        let log = node.proc.log();
        self.dead.push((id, log));
        node
    }

    /// Stop node `id` as an operator does (SIGTERM: it stops accepting,
    /// finishes what is in flight, exits); returns it for a restart.
    pub fn stop(&mut self, id: u64) -> Node {
        let mut node = self
            .nodes
            .remove(&id)
            .unwrap_or_else(|| panic!("node {id} is not running"));
        node.proc.signal(nix::sys::signal::Signal::SIGTERM);
        let status = node.proc.wait_exit(Duration::from_secs(60));
        let log = node.proc.log();
        assert!(
            status.is_some_and(|s| s.success()),
            "node {id} did not exit cleanly on SIGTERM ({status:?}):\n{log}"
        );
        self.dead.push((id, log));
        node
    }

    /// `GET /v1/cluster` on node `id`; `None` when it does not answer 200.
    pub async fn try_status(&self, id: u64) -> Option<Value> {
        let r = try_admin(
            self.node(id).admin,
            "GET",
            "/v1/cluster",
            "",
            Duration::from_secs(10),
        )
        .await
        .ok()?;
        (r.status == 200).then(|| r.json())
    }

    /// `shoal cluster status --json` through node `id`: what a script reads.
    pub async fn cli_status(&self, id: u64) -> Value {
        let admin = self.node(id).admin.to_string();
        let out = shoal(&["cluster", "status", "--json", "--admin", &admin]).await;
        serde_json::from_str(out.ok())
            .unwrap_or_else(|e| panic!("cluster status --json of node {id} ({e}): {out:?}"))
    }

    pub async fn status(&self, id: u64) -> Value {
        let r = admin(self.node(id).admin, "GET", "/v1/cluster", "").await;
        assert_eq!(r.status, 200, "status of node {id}: {}", r.body);
        r.json()
    }

    /// Wait until node `via` lists exactly `ids` as voters.
    pub async fn wait_voters(&self, via: u64, ids: &[u64]) {
        poll(&format!("node {via} lists voters {ids:?}"), || async {
            let s = self.try_status(via).await?;
            let mut v = voters(&s);
            v.sort_unstable();
            (v == ids && member_ids(&s).len() == ids.len()).then_some(())
        })
        .await;
    }

    /// Wait until the nodes `ids` each report the same state hash of
    /// their own, and return it.
    pub async fn converged(&self, ids: &[u64]) -> String {
        poll(
            &format!("nodes {ids:?} reach the same state hash"),
            || async {
                let mut hashes = Vec::new();
                for &id in ids {
                    hashes.push(own_hash(&self.try_status(id).await?)?);
                }
                hashes
                    .windows(2)
                    .all(|w| w[0] == w[1])
                    .then(|| hashes[0].clone())
            },
        )
        .await
    }

    /// Wait until the nodes `ids` agree on one leader among them, with
    /// quorum; returns it.
    pub async fn leader(&self, ids: &[u64]) -> u64 {
        poll(&format!("nodes {ids:?} agree on a leader"), || async {
            let mut leaders = Vec::new();
            for &id in ids {
                let s = self.try_status(id).await?;
                if s["quorum"] != true {
                    return None;
                }
                leaders.push(s["leader"].as_u64()?);
            }
            let first = leaders[0];
            (leaders.iter().all(|&l| l == first) && ids.contains(&first)).then_some(first)
        })
        .await
    }

    /// Server `backend/server` as node `id` shows it (`GET /v1/backends/B/servers/S`).
    pub async fn server(&self, id: u64, backend: &str, server: &str) -> Value {
        let path = format!("/v1/backends/{backend}/servers/{server}");
        let r = admin(self.node(id).admin, "GET", &path, "").await;
        assert_eq!(r.status, 200, "{path} on node {id}: {}", r.body);
        r.json()
    }

    /// Set a weight through node `id`'s admin API; the answer's status.
    pub async fn put_weight(&self, id: u64, backend: &str, server: &str, weight: u32) -> Resp {
        let path = format!("/v1/backends/{backend}/servers/{server}/weight");
        admin(
            self.node(id).admin,
            "PUT",
            &path,
            &format!("{{\"weight\":{weight}}}"),
        )
        .await
    }
}

impl Drop for Cluster {
    /// A failed test shows what every node printed (the test harness
    /// prints a failed test's output only).
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for (id, log) in &self.dead {
            eprintln!("==== node {id} (killed) printed:\n{log}");
        }
        for (id, node) in &mut self.nodes {
            let log = node.proc.log();
            eprintln!("==== node {id} printed:\n{log}");
        }
    }
}

/// `shoal cluster cert` for node `id` (blocking: used while spawning).
pub fn issue_cert(ca: &Path, id: u64, out: &Path) {
    let done = Command::new(bin("shoal"))
        .args(["cluster", "cert", "--ca"])
        .arg(ca)
        .args(["--node-id", &id.to_string(), "--out"])
        .arg(out)
        .output()
        .expect("run shoal cluster cert");
    assert!(done.status.success(), "shoal cluster cert: {done:?}");
}
