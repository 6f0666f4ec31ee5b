//! Fixtures for the cluster tests: real `shoal` nodes and
//! `shoal-demo-backend` servers on loopback, with ports chosen by the
//! kernel and read back from what each process prints; the `shoal` CLI;
//! a small HTTP client; and network cuts with iptables. Nothing here
//! sleeps in place of a condition: every wait polls against a deadline.
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead as _, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Generous bound for anything a test waits on: elections, joins and
/// catching up on a busy 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The admin API token of every node (a cluster node always needs one).
pub const TOKEN: &str = "cluster-tests-token";

/// One cluster at a time per test binary: the machine has 2 cores, and
/// several clusters electing at once would measure the machine, not Shoal.
/// (An async lock: it is held across awaits, and a failed test does not
/// poison it.)
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Hold this while a cluster runs.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// [`serial`] for a test without a runtime.
pub fn serial_blocking() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.blocking_lock()
}

/// A binary of this build: the test binary lives in target/<profile>/deps,
/// the binaries one level up.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("path of the test binary");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build -p shoal-node --bins` \
         (`cargo test --workspace` builds it too)",
        path.display()
    );
    path
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "shoal-ct-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn file(&self, name: &str, content: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, content).expect("write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed on drop, whose stdout and stderr lines arrive on
/// a channel (both: the notices go to stdout, the logs to stderr).
pub struct Proc {
    pub name: String,
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start {cmd:?}: {e}"));
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx2.send(line);
            }
        });
        Proc {
            name: name.to_string(),
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Everything printed so far, one line each.
    pub fn log(&mut self) -> String {
        self.drain();
        self.seen.join("\n")
    }

    /// Collect whatever output arrived so far.
    pub fn drain(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }

    /// How many lines so far contain `needle`.
    pub fn count(&mut self, needle: &str) -> usize {
        self.drain().iter().filter(|l| l.contains(needle)).count()
    }

    /// Wait for the first line containing `needle`; returns it.
    pub fn wait_line(&mut self, needle: &str) -> String {
        self.wait_nth(needle, 1)
    }

    /// Wait for the `n`th line (from 1) containing `needle`; returns it.
    pub fn wait_nth(&mut self, needle: &str, n: usize) -> String {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(l) = self.seen.iter().filter(|l| l.contains(needle)).nth(n - 1) {
                return l.clone();
            }
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "{}: no line #{n} containing {needle:?} within {DEADLINE:?}; it printed:\n{}",
                    self.name,
                    self.seen.join("\n")
                ),
                Err(mpsc::RecvTimeoutError::Disconnected) => panic!(
                    "{}: exited ({:?}) before printing line #{n} containing {needle:?}; it printed:\n{}",
                    self.name,
                    self.child.try_wait().ok().flatten(),
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Wait until the process exits; `None` if it is still running after `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `kill -9`: no chance to flush or say goodbye.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The address at the end of a notice line (`... listening on ADDR`).
fn addr_at_end(line: &str) -> SocketAddr {
    line.trim()
        .rsplit(' ')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address at the end of {line:?}"))
}

/// A running `shoal-demo-backend http`.
pub struct Backend {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub name: String,
}

impl Backend {
    pub fn http(name: &str) -> Backend {
        let mut cmd = Command::new(bin("shoal-demo-backend"));
        cmd.args([
            "http",
            "--listen",
            "127.0.0.1:0",
            "--name",
            name,
            "--threads",
            "1",
        ]);
        let mut proc = Proc::spawn(&format!("backend {name}"), cmd);
        let addr = addr_at_end(&proc.wait_line("listening "));
        Backend {
            proc,
            addr,
            name: name.to_string(),
        }
    }
}

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
    let ip = node_ip(s.id);
    let dir = base.join(format!("node{}", s.id));
    std::fs::create_dir_all(&dir).expect("node dir");
    let mut cmd = Command::new(bin("shoal"));
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
        let proc = Proc::spawn(&format!("node {}", s.id), run_command(base, s));
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

/// What a `shoal` client command did.
#[derive(Debug)]
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl Out {
    /// Assert exit 0; returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "command failed: {self:?}");
        &self.stdout
    }
}

/// Run `shoal ARGS` with the token; bounded by a deadline.
pub async fn shoal(args: &[&str]) -> Out {
    let started = Instant::now();
    let child = tokio::process::Command::new(bin("shoal"))
        .args(args)
        .env("SHOAL_ADMIN_TOKEN", TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start shoal");
    // Longer than the CLI's own 60 s for a join or a config apply.
    let out = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("shoal {args:?} did not finish"))
        .expect("shoal output");
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: started.elapsed(),
    }
}

/// `echo LINE | socat stdio unix-connect:PATH`: one runtime-API command.
pub fn socat(socket: &Path, line: &str) -> String {
    use std::io::Write as _;
    let mut child = Command::new("socat")
        .args(["-t", "10", "stdio"])
        .arg(format!("unix-connect:{}", socket.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("socat is installed (./test.sh installs it)");
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .expect("write to socat");
    }
    let end = Instant::now() + DEADLINE;
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            panic!("socat {} did not finish: {line:?}", socket.display());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("socat output");
    assert!(out.status.success(), "socat failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A response, fully read.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

impl Resp {
    /// The `x-server` header the demo backend sets (which server answered).
    pub fn server(&self) -> String {
        self.headers
            .get("x-server")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 request on a fresh connection; `Err` says why it got no
/// answer (refused, reset, timed out).
pub async fn try_http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
    timeout: Duration,
) -> Result<Resp, String> {
    let exchange = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake {addr}: {e}"))?;
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", addr.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| e.to_string())?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("{method} {path} on {addr}: {e}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body of {path} from {addr}: {e}"))?
            .to_bytes();
        Ok(Resp {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("{method} {path} on {addr}: no answer within {timeout:?}"))?
}

/// GET through a frontend (fresh connection); panics without an answer.
pub async fn get(addr: SocketAddr, path: &str) -> Resp {
    try_http(addr, "GET", path, &[], "", DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A request to an admin API with the token.
pub async fn try_admin(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    timeout: Duration,
) -> Result<Resp, String> {
    let auth = format!("Bearer {TOKEN}");
    try_http(
        addr,
        method,
        path,
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        body,
        timeout,
    )
    .await
}

/// A request to an admin API that must answer (any status).
pub async fn admin(addr: SocketAddr, method: &str, path: &str, body: &str) -> Resp {
    try_admin(addr, method, path, body, DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Count answers per server over `n` sequential keep-alive requests
/// through `addr`; every answer must be a 200.
pub async fn tally(addr: SocketAddr, n: usize) -> HashMap<String, usize> {
    let stream = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut counts = HashMap::new();
    for _ in 0..n {
        let req = Request::get("/")
            .header("host", "test.local")
            .body(Full::new(Bytes::new()))
            .expect("request");
        sender.ready().await.expect("connection ready");
        let resp = tokio::time::timeout(DEADLINE, sender.send_request(req))
            .await
            .expect("answer within the deadline")
            .expect("answer");
        let server = resp
            .headers()
            .get("x-server")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        assert_eq!(resp.status(), 200, "through {addr}");
        resp.into_body().collect().await.expect("body");
        *counts.entry(server).or_insert(0) += 1;
    }
    counts
}

/// Poll `check` every 100 ms until it gives `Some`, or panic after
/// [`DEADLINE`] saying what did not happen.
pub async fn poll<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    poll_within(what, DEADLINE, &mut check).await
}

/// [`poll`] with its own deadline.
pub async fn poll_within<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < end, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Poll until `check` is true.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    poll(what, || {
        let fut = check();
        async move { fut.await.then_some(()) }
    })
    .await
}

// ---- Cluster status (GET /v1/cluster) ----

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

// ---- Network cuts ----

/// Fail (never skip) when the cuts cannot be made.
fn require_iptables() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test cuts the network with iptables and must run as root (CI does)"
    );
    let found = Command::new("iptables")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "iptables is missing: apt-get install -y iptables (./test.sh installs it)"
    );
}

/// UDP to and from one QUIC endpoint dropped while this lives: the node
/// at `endpoint` neither hears nor reaches its peers. Only that exact
/// address and port is cut, so other clusters on the machine are not
/// touched; the rules are removed on drop, even when a test fails.
pub struct Cut {
    rules: Vec<Vec<String>>,
}

impl Cut {
    pub fn isolate(endpoint: SocketAddr) -> Cut {
        require_iptables();
        let (ip, port) = (endpoint.ip().to_string(), endpoint.port().to_string());
        let rules: Vec<Vec<String>> =
            [["-d", &ip, "--dport", &port], ["-s", &ip, "--sport", &port]]
                .iter()
                .map(|r| {
                    let mut rule: Vec<String> = vec!["INPUT".into(), "-p".into(), "udp".into()];
                    rule.extend(r.iter().map(|s| s.to_string()));
                    rule.extend(["-j".into(), "DROP".into()]);
                    rule
                })
                .collect();
        let mut cut = Cut { rules: Vec::new() };
        for rule in rules {
            iptables("-I", &rule);
            cut.rules.push(rule);
        }
        cut
    }

    /// Remove the rules: the node can talk again.
    pub fn heal(mut self) {
        self.remove();
    }

    fn remove(&mut self) {
        for rule in self.rules.drain(..) {
            iptables("-D", &rule);
        }
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        self.remove();
    }
}

fn iptables(op: &str, rule: &[String]) {
    let out = Command::new("iptables")
        .arg("-w")
        .arg(op)
        .args(rule)
        .output()
        .expect("run iptables");
    assert!(
        out.status.success(),
        "iptables {op} {}: {}",
        rule.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---- A whole cluster ----

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
        let certs = self.certs(id);
        let node = Node::start(
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
        );
        self.nodes.insert(id, node);
        self.node_mut(id)
    }

    /// Start a node again from its data directory, without `-f`, on the
    /// addresses the membership records for it.
    pub fn restart(&mut self, old: Node) -> &mut Node {
        let id = old.id;
        let node = Node::start(
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
