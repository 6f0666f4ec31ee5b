//! One cluster node: its command line, its addresses, its frontends.

use super::process::addr_at_end;
use super::{bin, Backend, Proc, TOKEN};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The usual test config: frontend `web` on `"${NODE_IP}:0"` to backend
/// `app` (round robin over `backends`, as s1, s2...), a runtime socket in
/// `"${SHOAL_DIR}"`, and `extra` sections at the end.
pub fn config(backends: &[&Backend], extra: &str) -> String {
    let mut text = String::from(
        "global\n\
         \x20   stats socket \"${SHOAL_DIR}/admin.sock\" level admin\n\
         defaults\n\
         \x20   mode http\n\
         \x20   timeout connect 2s\n\
         \x20   timeout client 30s\n\
         \x20   timeout server 30s\n\
         frontend web\n\
         \x20   bind \"${NODE_IP}:0\"\n\
         \x20   default_backend app\n\
         backend app\n\
         \x20   balance roundrobin\n",
    );
    for b in backends {
        text.push_str(&format!("    server {} {}\n", b.name, b.addr));
    }
    text.push_str(extra);
    text
}

/// Two frontends over the same backends with `retries 3` and `option
/// redispatch`: `web` -> `app` (`stick on src`) and `cookies` -> `ck`
/// (cookie persistence); each server line ends with `server_opts` (health
/// checks), and `extra` sections follow. The chaos run and the
/// zero-downtime test drive these.
pub fn sticky_pair_config(backends: &[&Backend], server_opts: &str, extra: &str) -> String {
    let servers = |cookie: bool| {
        backends
            .iter()
            .map(|b| {
                let ck = if cookie {
                    format!(" cookie {}", b.name)
                } else {
                    String::new()
                };
                format!("    server {0} {1} {server_opts}{ck}\n", b.name, b.addr)
            })
            .collect::<String>()
    };
    format!(
        "global\n\
         \x20   stats socket \"${{SHOAL_DIR}}/admin.sock\" level admin\n\
         defaults\n\
         \x20   mode http\n\
         \x20   timeout connect 2s\n\
         \x20   timeout client 30s\n\
         \x20   timeout server 30s\n\
         \x20   retries 3\n\
         \x20   option redispatch\n\
         frontend web\n\
         \x20   bind \"${{NODE_IP}}:0\"\n\
         \x20   default_backend app\n\
         frontend cookies\n\
         \x20   bind \"${{NODE_IP}}:0\"\n\
         \x20   default_backend ck\n\
         backend app\n\
         \x20   balance roundrobin\n\
         \x20   stick-table type ip size 100k expire 30m\n\
         \x20   stick on src\n\
         {app}\
         backend ck\n\
         \x20   balance roundrobin\n\
         \x20   cookie SRV insert indirect nocache\n\
         {ck}{extra}",
        app = servers(false),
        ck = servers(true),
    )
}

/// One cluster member: a `shoal run` process with the cluster flags.
pub struct Node {
    pub id: u64,
    /// Its own loopback address, 127.0.0.(10+id): `NODE_IP`.
    pub ip: IpAddr,
    pub proc: Proc,
    /// `SHOAL_DIR`: its runtime socket lives here.
    pub dir: PathBuf,
    pub data_dir: PathBuf,
    pub certs: PathBuf,
    /// Its admin API, as bound.
    pub admin: SocketAddr,
    /// Its QUIC endpoint, as bound (what the membership records).
    pub cluster: SocketAddr,
}

/// How to start a node.
pub struct Start<'a> {
    pub id: u64,
    pub certs: &'a Path,
    /// `-f FILE`; `None` to start from the data directory alone.
    pub config: Option<&'a Path>,
    pub join: Option<SocketAddr>,
    /// Default: NODE_IP:0.
    pub cluster_addr: Option<SocketAddr>,
    /// Default: NODE_IP:0.
    pub admin: Option<SocketAddr>,
    pub snapshot_every: Option<u64>,
}

/// The loopback address of node `id`.
pub fn node_ip(id: u64) -> IpAddr {
    let last = u8::try_from(10 + id).expect("node id below 246");
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// The `shoal run` command line for a cluster node under `base`
/// (`base/nodeN` is its `SHOAL_DIR`, `base/nodeN/data` its data directory).
pub fn run_command(base: &Path, s: &Start) -> Command {
    run_command_of(&bin("shoal"), base, s)
}

/// [`run_command`] with another `shoal` binary (an upgrade).
pub fn run_command_of(program: &Path, base: &Path, s: &Start) -> Command {
    let ip = node_ip(s.id);
    let dir = base.join(format!("node{}", s.id));
    std::fs::create_dir_all(&dir).expect("node dir");
    let mut cmd = Command::new(program);
    cmd.arg("run");
    if let Some(cfg) = s.config {
        cmd.arg("-f").arg(cfg);
    }
    let cluster = s.cluster_addr.unwrap_or(SocketAddr::new(ip, 0));
    let admin = s.admin.unwrap_or(SocketAddr::new(ip, 0));
    cmd.args(["--node-id", &s.id.to_string()])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--certs")
        .arg(s.certs)
        .args(["--cluster-addr", &cluster.to_string()])
        .args(["--admin", &admin.to_string()]);
    if let Some(join) = s.join {
        cmd.args(["--join", &join.to_string()]);
    }
    if let Some(n) = s.snapshot_every {
        cmd.args(["--snapshot-every", &n.to_string()]);
    }
    cmd.env("SHOAL_ADMIN_TOKEN", TOKEN)
        .env("NODE_IP", ip.to_string())
        .env("SHOAL_DIR", &dir)
        .env("SHOAL_LOG", "info,openraft=warn")
        .env("NO_COLOR", "1");
    cmd
}

impl Node {
    /// Start a node and wait until its admin API and cluster endpoint listen.
    pub fn start(base: &Path, s: &Start) -> Node {
        Node::start_with_env(base, s, &[])
    }

    /// [`Node::start`] with more environment variables: a node whose
    /// environment differs from the others'.
    pub fn start_with_env(base: &Path, s: &Start, env: &[(&str, &str)]) -> Node {
        Node::start_program(&bin("shoal"), base, s, env)
    }

    /// [`Node::start_with_env`] running `program` (another build of shoal).
    pub fn start_program(program: &Path, base: &Path, s: &Start, env: &[(&str, &str)]) -> Node {
        let mut cmd = run_command_of(program, base, s);
        cmd.envs(env.iter().copied());
        let proc = Proc::spawn(&format!("node {}", s.id), cmd);
        let dir = base.join(format!("node{}", s.id));
        let mut node = Node {
            id: s.id,
            ip: node_ip(s.id),
            proc,
            data_dir: dir.join("data"),
            dir,
            certs: s.certs.to_path_buf(),
            admin: SocketAddr::new(node_ip(s.id), 0),
            cluster: SocketAddr::new(node_ip(s.id), 0),
        };
        node.cluster = addr_at_end(
            &node
                .proc
                .wait_line(&format!("node {} cluster endpoint listening on ", s.id)),
        );
        node.admin = addr_at_end(&node.proc.wait_line("admin API listening on "));
        node
    }

    /// The address of frontend `name` as last opened (a drained node
    /// reopens its listeners on new ports); waits for the first opening.
    pub fn front(&mut self, name: &str) -> SocketAddr {
        let needle = format!("frontend '{name}' listening on ");
        self.proc.wait_line(&needle);
        let last = self.proc.drain().iter().rfind(|l| l.contains(&needle));
        addr_at_end(last.expect("a listening notice"))
    }

    /// The address of the `n`th opening (from 1) of frontend `name`.
    pub fn front_nth(&mut self, name: &str, n: usize) -> SocketAddr {
        addr_at_end(
            &self
                .proc
                .wait_nth(&format!("frontend '{name}' listening on "), n),
        )
    }

    /// Its runtime socket (`stats socket "${SHOAL_DIR}/admin.sock"`).
    pub fn socket(&self) -> PathBuf {
        self.dir.join("admin.sock")
    }
}
