//! Fixtures for integration tests: real `shoal` and `shoal-demo-backend`
//! processes on loopback ports chosen by the kernel, and a small HTTP client.
//! Nothing here sleeps in place of a condition: waits poll with a deadline.
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Generous bound for anything a test waits on (CI machines are busy).
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "shoal-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
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

/// A child process killed on drop, whose stdout lines arrive on a channel.
pub struct Proc {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Proc {
    fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn process");
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
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Wait for an output line containing `needle`; returns it.
    pub fn wait_line(&mut self, needle: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let end = Instant::now() + DEADLINE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line containing {needle:?} within {DEADLINE:?}; saw:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Collect all output of a process that has exited: wait until both
    /// pipes are closed (children that inherited them may keep them open,
    /// hence the deadline).
    pub fn drain_to_end(&mut self) -> &[String] {
        let end = Instant::now() + DEADLINE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => return &self.seen,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("output still open; saw:\n{}", self.seen.join("\n"))
                }
            }
        }
    }

    /// Collect whatever output arrived so far.
    pub fn drain(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }

    pub fn signal(&self, sig: &str) {
        use nix::sys::signal::{kill, Signal};
        let signal: Signal = format!("SIG{sig}").parse().expect("signal name");
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        kill(pid, signal).expect("send signal");
    }

    /// Wait for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `shoal-demo-backend`.
pub struct Backend {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub name: String,
}

impl Backend {
    pub fn http(name: &str) -> Backend {
        Backend::start("http", name, "127.0.0.1:0")
    }
    pub fn tcp(name: &str) -> Backend {
        Backend::start("tcp", name, "127.0.0.1:0")
    }
    /// Start again on the same address (after `stop`).
    pub fn restart(&mut self, mode: &str) {
        *self = Backend::start(mode, &self.name.clone(), &self.addr.to_string());
    }
    pub fn start(mode: &str, name: &str, listen: &str) -> Backend {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_shoal-demo-backend"));
        // `mode` may carry options after it (`http --h2`).
        cmd.args(mode.split_whitespace());
        cmd.args(["--listen", listen, "--name", name, "--threads", "1"]);
        let mut proc = Proc::spawn(cmd);
        let line = proc.wait_line("listening ");
        let addr = line
            .trim()
            .rsplit(' ')
            .next()
            .and_then(|a| a.parse().ok())
            .expect("backend address");
        Backend {
            proc,
            addr,
            name: name.to_string(),
        }
    }
    /// Kill the process: its port now refuses connections.
    pub fn stop(&mut self) {
        let _ = self.proc.child.kill();
        let _ = self.proc.child.wait();
    }
}

/// Connections waiting in the accept queue of the listener on `addr`
/// (the `Recv-Q` that `ss` shows for a listening socket).
pub fn accept_backlog(addr: SocketAddr) -> usize {
    let out = Command::new("ss")
        .args(["-ltnH", &format!("src = {addr}")])
        .output()
        .expect("ss (iproute2) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .nth(1)
        .and_then(|q| q.parse().ok())
        .unwrap_or_else(|| panic!("no listener on {addr} in: {text}"))
}

/// An address that refuses connections for as long as this value lives:
/// a loopback socket bound to a port the kernel picked, never listening
/// (a connect gets a reset), which no other process can take meanwhile.
pub struct DeadAddr {
    addr: SocketAddr,
    _socket: socket2::Socket,
}

impl std::ops::Deref for DeadAddr {
    type Target = SocketAddr;
    fn deref(&self) -> &SocketAddr {
        &self.addr
    }
}

impl std::fmt::Display for DeadAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.addr.fmt(f)
    }
}

/// A server address that is meant to be dead; keep it for the whole test.
pub fn dead_addr() -> DeadAddr {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    socket.bind(&any.into()).expect("bind");
    let addr = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .expect("bound address");
    DeadAddr {
        addr,
        _socket: socket,
    }
}

/// A running `shoal run` process.
pub struct Shoal {
    pub proc: Proc,
    pub dir: TempDir,
    pub cfg: PathBuf,
    /// Frontend name -> bound addresses, from its `[NOTICE] ... listening on` lines.
    pub fronts: HashMap<String, Vec<SocketAddr>>,
}

impl Shoal {
    /// Start with a config; `expect_fronts` names every frontend whose
    /// listening line must appear before this returns.
    pub fn start(config: &str, expect_fronts: &[&str]) -> Shoal {
        Shoal::start_with(config, expect_fronts, &[])
    }

    pub fn start_with(config: &str, expect_fronts: &[&str], extra: &[&str]) -> Shoal {
        let dir = TempDir::new("shoal");
        let cfg = dir.file("shoal.cfg", config);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_shoal"));
        cmd.arg("run")
            .arg("-f")
            .arg(&cfg)
            .args(extra)
            .env("SHOAL_LOG", "info");
        let proc = Proc::spawn(cmd);
        let mut shoal = Shoal {
            proc,
            dir,
            cfg,
            fronts: HashMap::new(),
        };
        for f in expect_fronts {
            shoal.wait_front(f);
        }
        shoal
    }

    fn wait_front(&mut self, name: &str) -> SocketAddr {
        let line = self
            .proc
            .wait_line(&format!("frontend '{name}' listening on "));
        let addr: SocketAddr = line
            .rsplit(' ')
            .next()
            .and_then(|a| a.parse().ok())
            .expect("listen address");
        let list = self.fronts.entry(name.to_string()).or_default();
        if !list.contains(&addr) {
            list.push(addr);
        }
        addr
    }

    /// The (first) address of a frontend.
    pub fn addr(&self, frontend: &str) -> SocketAddr {
        self.fronts
            .get(frontend)
            .and_then(|v| v.first())
            .copied()
            .expect("frontend address")
    }

    /// Rewrite the config and send SIGHUP; waits for the reload notice.
    pub fn reload(&mut self, config: &str, new_fronts: &[&str]) {
        std::fs::write(&self.cfg, config).expect("rewrite config");
        let before = self
            .proc
            .drain()
            .iter()
            .filter(|l| l.contains("configuration reloaded"))
            .count();
        self.proc.signal("HUP");
        let end = Instant::now() + DEADLINE;
        loop {
            let now = self
                .proc
                .drain()
                .iter()
                .filter(|l| l.contains("configuration reloaded"))
                .count();
            if now > before {
                break;
            }
            assert!(
                Instant::now() < end,
                "no reload notice; saw:\n{}",
                self.proc.seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        for f in new_fronts {
            self.wait_front(f);
        }
    }
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
}

/// A keep-alive HTTP/1.1 client connection.
pub struct Client {
    sender: SendRequest<Empty<Bytes>>,
    addr: SocketAddr,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect to shoal");
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Client { sender, addr }
    }

    pub async fn get(&mut self, path: &str) -> Resp {
        self.request(path, &[]).await
    }

    pub async fn request(&mut self, path: &str, headers: &[(&str, &str)]) -> Resp {
        let mut req = Request::get(path);
        // One Host line: two different ones are refused (400), as by HAProxy.
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            req = req.header("host", "test.local");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Empty::new()).expect("request");
        self.sender.ready().await.expect("connection ready");
        let resp = tokio::time::timeout(DEADLINE, self.sender.send_request(req))
            .await
            .expect("response within deadline")
            .expect("response");
        read_resp(resp).await
    }
}

/// One request on a fresh connection.
pub async fn get(addr: SocketAddr, path: &str) -> Resp {
    Client::connect(addr).await.get(path).await
}

/// One request with headers on a fresh connection.
pub async fn get_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Resp {
    Client::connect(addr).await.request(path, headers).await
}

/// Poll `check` until it returns true or the deadline passes.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("condition not met within {DEADLINE:?}: {what}");
}

/// Count answers per server over `n` sequential keep-alive requests.
pub async fn tally(addr: SocketAddr, path: &str, n: usize) -> HashMap<String, usize> {
    let mut client = Client::connect(addr).await;
    let mut counts = HashMap::new();
    for _ in 0..n {
        let r = client.get(path).await;
        assert_eq!(r.status, 200, "unexpected status, body: {}", r.body);
        *counts.entry(r.server()).or_insert(0) += 1;
    }
    counts
}

// ---- Admin API, stats page and browser helpers ----

impl Shoal {
    /// Like [`Shoal::start_with`], with extra environment variables.
    pub fn start_with_env(
        config: &str,
        expect_fronts: &[&str],
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Shoal {
        let dir = TempDir::new("shoal");
        let cfg = dir.file("shoal.cfg", config);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_shoal"));
        cmd.arg("run")
            .arg("-f")
            .arg(&cfg)
            .args(extra)
            .env("SHOAL_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut shoal = Shoal {
            proc: Proc::spawn(cmd),
            dir,
            cfg,
            fronts: HashMap::new(),
        };
        for f in expect_fronts {
            shoal.wait_front(f);
        }
        shoal
    }

    /// The admin API address, from its `[NOTICE] admin API listening on` line.
    pub fn admin_addr(&mut self) -> SocketAddr {
        self.proc
            .wait_line("admin API listening on ")
            .rsplit(' ')
            .next()
            .and_then(|a| a.parse().ok())
            .expect("admin address")
    }
}

/// One request with any method, headers and body, on a fresh connection.
/// `Host` is the address itself (ChromeDriver refuses other hosts).
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Resp {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(http_body_util::Full::new(Bytes::from(body.to_string())))
        .expect("request");
    let resp = tokio::time::timeout(DEADLINE, sender.send_request(req))
        .await
        .expect("response within deadline")
        .expect("response");
    read_resp(resp).await
}

/// Spawn any command as a [`Proc`] (killed on drop, output on a channel).
pub fn spawn_proc(cmd: Command) -> Proc {
    Proc::spawn(cmd)
}

// ---- Runtime API (stats socket) and real-HAProxy helpers ----

impl Shoal {
    /// Where the stats sockets listen (unix paths or TCP addresses), from
    /// their `[NOTICE] stats socket listening on` lines; waits for `n`.
    pub fn stats_sockets(&mut self, n: usize) -> Vec<String> {
        let needle = "stats socket listening on ";
        let end = Instant::now() + DEADLINE;
        loop {
            let found: Vec<String> = self
                .proc
                .drain()
                .iter()
                .filter_map(|l| l.split_once(needle).map(|(_, at)| at.trim().to_string()))
                .collect();
            if found.len() >= n {
                return found;
            }
            assert!(
                Instant::now() < end,
                "{n} stats sockets did not open; saw:\n{}",
                self.proc.seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `echo INPUT | socat stdio TARGET` (TARGET: `unix-connect:PATH` or
/// `tcp:ADDR`); returns what socat printed.
pub fn socat(target: &str, input: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("socat")
        .args(["-t", "10", "stdio", target])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("socat is installed");
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).expect("write to socat");
    }
    let end = Instant::now() + DEADLINE;
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            panic!("socat {target} did not finish: {input:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("socat output");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One command line on a unix stats socket, through socat.
pub fn cli(path: &str, line: &str) -> String {
    socat(&format!("unix-connect:{path}"), &format!("{line}\n"))
}

/// Write `input` to a TCP stats socket and read until it closes.
pub async fn cli_tcp(addr: SocketAddr, input: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(addr)
        .await
        .expect("connect stats socket");
    stream
        .write_all(input.as_bytes())
        .await
        .expect("write command");
    let mut out = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut out))
        .await
        .expect("stats socket closes")
        .expect("read answer");
    String::from_utf8_lossy(&out).into_owned()
}

/// A listening socket bound to a port the kernel picked, for HAProxy to
/// inherit (`bind fd@N`): HAProxy cannot announce a port 0 it bound, and
/// taking a free port to hand over would race with other tests.
pub struct Inherited {
    pub addr: SocketAddr,
    listener: std::net::TcpListener,
}

impl Inherited {
    /// A fresh listener on 127.0.0.1:0, open across `exec`.
    pub fn new() -> Inherited {
        Inherited::on([127, 0, 0, 1].into())
    }

    /// A fresh listener on `ip`, port 0, open across `exec`.
    pub fn on(ip: std::net::IpAddr) -> Inherited {
        let listener = std::net::TcpListener::bind((ip, 0)).expect("bind");
        let addr = listener.local_addr().expect("addr");
        // Children started meanwhile inherit it too; only HAProxy accepts.
        socket2::SockRef::from(&listener)
            .set_cloexec(false)
            .expect("clear close-on-exec");
        Inherited { addr, listener }
    }

    /// What HAProxy's `bind` line says to use it: `fd@N`.
    pub fn bind(&self) -> String {
        use std::os::fd::AsRawFd;
        format!("fd@{}", self.listener.as_raw_fd())
    }
}

/// A running `/usr/sbin/haproxy -f CFG -db`, killed on drop.
pub struct Haproxy {
    pub proc: Proc,
    pub dir: TempDir,
}

impl Haproxy {
    /// Start HAProxy; returns once its stats socket `socket` accepts
    /// connections (its listeners come inherited, see [`Inherited`]).
    pub fn start(config: &str, socket: &std::path::Path) -> Haproxy {
        let dir = TempDir::new("haproxy");
        let cfg = dir.file("haproxy.cfg", config);
        let mut cmd = Command::new("/usr/sbin/haproxy");
        cmd.arg("-f").arg(&cfg).arg("-db");
        let mut haproxy = Haproxy {
            proc: Proc::spawn(cmd),
            dir,
        };
        let end = Instant::now() + DEADLINE;
        let ready = || std::os::unix::net::UnixStream::connect(socket).is_ok();
        while !ready() {
            if let Ok(Some(status)) = haproxy.proc.child.try_wait() {
                panic!(
                    "haproxy exited ({status}):\n{}",
                    haproxy.proc.drain().join("\n")
                );
            }
            assert!(Instant::now() < end, "haproxy did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        haproxy
    }
}

/// Read a whole response into a [`Resp`].
pub async fn read_resp(resp: hyper::Response<hyper::body::Incoming>) -> Resp {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Write raw bytes on a fresh connection and read until the peer closes
/// (bounded by [`DEADLINE`]); for malformed or stalled requests.
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(DEADLINE, s.read_to_end(&mut out))
        .await
        .expect("closed in time")
        .expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

/// Connections a demo backend has accepted so far, this query's included.
pub async fn backend_conns(backend: SocketAddr) -> usize {
    get(backend, "/conns")
        .await
        .body
        .trim()
        .parse()
        .expect("connection count")
}

/// Wait until a demo backend accepts one connection beyond `base` (a value
/// of [`backend_conns`] taken before) other than our own probes: a request
/// through the proxy has reached it.
pub async fn wait_new_backend_connection(backend: SocketAddr, base: usize) {
    let probes = AtomicUsize::new(0);
    eventually("a new connection reached the backend", || async {
        let k = probes.fetch_add(1, Ordering::SeqCst) + 1;
        backend_conns(backend).await > base + k
    })
    .await;
}

/// A certificate authority made at test time, and the leaves it signs.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl TestCa {
    /// A new CA whose common name is `cn`.
    pub fn new(cn: &str) -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.self_signed(&key).expect("CA");
        TestCa { cert, key }
    }

    /// The CA's certificate, PEM.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A leaf for `sans` with common name `cn`, and its key.
    pub fn leaf(&self, sans: Vec<String>, cn: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let mut p = rcgen::CertificateParams::new(sans).expect("leaf params");
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let cert = p.signed_by(&key, &self.cert, &self.key).expect("leaf");
        (cert, key)
    }
}
