//! The client commands (`shoal server|config|cluster|node ...`): the real
//! `shoal` binary as the client against a real standalone `shoal run`
//! with its admin API on a kernel-chosen port, checked through the
//! runtime socket (`show stat`) and the admin API itself.

mod support;

use serde_json::Value;
use std::io::Read;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

const TOKEN: &str = "cli-t0ken";

/// What a client run left behind.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Run {
    /// Exit 1 with exactly one line on stderr, `shoal: ...`; returns it.
    fn failed(&self) -> &str {
        assert_eq!(self.code, 1, "{self:?}");
        assert_eq!(self.stdout, "", "{self:?}");
        assert!(
            self.stderr.starts_with("shoal: ")
                && self.stderr.ends_with('\n')
                && self.stderr.lines().count() == 1,
            "not one `shoal:` line: {self:?}"
        );
        self.stderr.trim_end()
    }

    /// Exit 0 with nothing on stderr; returns stdout.
    fn ok(&self) -> &str {
        assert_eq!((self.code, self.stderr.as_str()), (0, ""), "{self:?}");
        &self.stdout
    }
}

/// Run `shoal ARGS` with SHOAL_ADMIN_TOKEN set to `token` (or unset),
/// bounded by [`DEADLINE`].
fn shoal(args: &[&str], token: Option<&str>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shoal"));
    cmd.args(args)
        .env_remove("SHOAL_ADMIN_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(t) = token {
        cmd.env("SHOAL_ADMIN_TOKEN", t);
    }
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn shoal");
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut p) = pipe {
                p.read_to_string(&mut text).expect("read output");
            }
            text
        })
    };
    let out = read(child.stdout.take().map(|p| Box::new(p) as _));
    let err = read(child.stderr.take().map(|p| Box::new(p) as _));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("shoal {args:?} did not finish within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        code: status.code().unwrap_or(-1),
        took: start.elapsed(),
        stdout: out.join().expect("stdout"),
        stderr: err.join().expect("stderr"),
    }
}

/// A standalone node with two servers, a stats socket, and its admin API
/// behind [`TOKEN`].
struct Node {
    shoal: Shoal,
    admin: String,
    sock: String,
    _dir: TempDir,
    _backends: (Backend, Backend),
}

impl Node {
    fn start() -> Node {
        let (s1, s2) = (Backend::http("s1"), Backend::http("s2"));
        let dir = TempDir::new("cli");
        let sock = dir.0.join("admin.sock").display().to_string();
        let mut shoal = Shoal::start_with_env(
            &config(&sock, &s1, &s2, ""),
            &["fe"],
            &["--admin", "127.0.0.1:0"],
            &[("SHOAL_ADMIN_TOKEN", TOKEN)],
        );
        shoal.stats_sockets(1);
        let admin = shoal.admin_addr().to_string();
        Node {
            shoal,
            admin,
            sock,
            _dir: dir,
            _backends: (s1, s2),
        }
    }

    /// `shoal ARGS --admin ADDR` with the right token.
    fn run(&self, args: &[&str]) -> Run {
        let mut all = args.to_vec();
        all.extend(["--admin", &self.admin]);
        shoal(&all, Some(TOKEN))
    }

    /// One cell of `show stat` on the runtime socket.
    fn stat(&self, backend: &str, server: &str, column: &str) -> String {
        let csv = cli(&self.sock, "show stat");
        let rows: Vec<Vec<&str>> = csv
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.trim_start_matches("# ").split(',').collect())
            .collect();
        let col = rows[0]
            .iter()
            .position(|c| *c == column)
            .expect("column exists");
        let row = rows
            .iter()
            .find(|r| r[0] == backend && r[1] == server)
            .unwrap_or_else(|| panic!("no row {backend}/{server} in:\n{csv}"));
        row[col].to_string()
    }

    /// `GET path` on the admin API, as JSON.
    fn api(&self, path: &str) -> Value {
        let addr: SocketAddr = self.admin.parse().expect("admin address");
        let bearer = format!("Bearer {TOKEN}");
        let r = block(send(addr, "GET", path, &[("authorization", &bearer)], ""));
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        serde_json::from_str(&r.body).expect("JSON")
    }
}

fn config(sock: &str, s1: &Backend, s2: &Backend, comment: &str) -> String {
    format!(
        "# {comment}\nglobal\n    stats socket {sock} mode 600 level admin\n\
         defaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n\
         frontend fe\n    bind 127.0.0.1:0\n    default_backend app\n\
         backend app\n    balance roundrobin\n    server s1 {}\n    server s2 {}\n",
        s1.addr, s2.addr
    )
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

#[test]
fn server_weight_and_state_change_show_stat_and_the_api() {
    let node = Node::start();
    assert_eq!(
        node.run(&["server", "weight", "app/s1", "50"]).ok(),
        "app/s1: weight 50\n"
    );
    assert_eq!(node.stat("app", "s1", "weight"), "50");
    assert_eq!(node.api("/v1/backends/app/servers/s1")["weight"], 50);

    // The token from a file works as well as from the environment.
    let token_file = node.shoal.dir.file("token", &format!("{TOKEN}\n"));
    let token_file = token_file.display().to_string();
    let drained = shoal(
        &[
            "server",
            "state",
            "app/s2",
            "drain",
            "--admin",
            &node.admin,
            "--token-file",
            &token_file,
        ],
        None,
    );
    assert_eq!(drained.ok(), "app/s2: state drain, status DRAIN\n");
    assert_eq!(node.stat("app", "s2", "status"), "DRAIN");
    assert_eq!(
        node.api("/v1/backends/app/servers/s2")["admin_state"],
        "drain"
    );

    assert_eq!(
        node.run(&["server", "state", "app/s2", "maint"]).ok(),
        "app/s2: state maint, status MAINT\n"
    );
    assert_eq!(node.stat("app", "s2", "status"), "MAINT");
    node.run(&["server", "state", "app/s2", "ready"]).ok();
    assert_eq!(node.stat("app", "s2", "status"), "no check");

    // The API's refusal, in its words; nothing changes.
    let refused = node.run(&["server", "weight", "app/s1", "300"]);
    assert_eq!(
        refused.failed(),
        "shoal: 400 Bad Request: Absolute weight can only be between 0 and 256 inclusive."
    );
    assert_eq!(node.stat("app", "s1", "weight"), "50");

    // --json: the API's server view.
    let json = node.run(&["server", "weight", "app/s1", "20", "--json"]);
    let view: Value = serde_json::from_str(json.ok()).expect("--json prints JSON");
    assert_eq!(
        (&view["backend"], &view["name"], &view["weight"]),
        (&Value::from("app"), &Value::from("s1"), &Value::from(20))
    );
    assert_eq!(node.stat("app", "s1", "weight"), "20");
}

#[test]
fn bad_server_names_get_the_api_error() {
    let node = Node::start();
    assert_eq!(
        node.run(&["server", "weight", "app/nope", "5"]).failed(),
        "shoal: 404 Not Found: No such server."
    );
    assert_eq!(
        node.run(&["server", "state", "nope/s1", "drain"]).failed(),
        "shoal: 404 Not Found: No such backend."
    );
    // Names are escaped, not spliced into the path.
    assert_eq!(
        node.run(&["server", "weight", "app/s1?x=1#", "5"]).failed(),
        "shoal: 404 Not Found: No such server."
    );
    assert_eq!(node.stat("app", "s1", "weight"), "1");
    // Not BACKEND/SERVER: a usage error, before any request.
    let usage = node.run(&["server", "weight", "app", "5"]);
    assert_eq!(usage.code, 2, "{usage:?}");
    assert!(usage.stderr.contains("BACKEND/SERVER"), "{usage:?}");
}

#[test]
fn config_show_prints_the_running_text() {
    let mut node = Node::start();
    let text = std::fs::read_to_string(&node.shoal.cfg).expect("config");
    assert_eq!(node.run(&["config", "show"]).ok(), text);

    // After a reload it is the new text, comments and all.
    let (s1, s2) = (&node._backends.0, &node._backends.1);
    let next = config(&node.sock, s1, s2, "second edition");
    node.shoal.reload(&next, &[]);
    assert_eq!(node.run(&["config", "show"]).ok(), next);

    // The route is in the API's OpenAPI document, as text/plain.
    let addr: SocketAddr = node.admin.parse().expect("admin address");
    let doc: Value = serde_json::from_str(&block(send(addr, "GET", "/openapi.json", &[], "")).body)
        .expect("OpenAPI JSON");
    let ok = &doc["paths"]["/v1/config"]["get"]["responses"]["200"]["content"];
    assert!(ok["text/plain"].is_object(), "{ok}");
}

#[test]
fn wrong_or_missing_token_is_one_line() {
    let node = Node::start();
    let admin = node.admin.as_str();
    for token in [Some("wrong"), None] {
        let r = shoal(&["config", "show", "--admin", admin], token);
        assert_eq!(
            r.failed(),
            "shoal: 401 Unauthorized: missing or invalid bearer token",
            "token {token:?}"
        );
    }
    // A token file that cannot be read wins over the environment.
    let missing = node.shoal.dir.0.join("no-such-token");
    let r = shoal(
        &[
            "server",
            "weight",
            "app/s1",
            "5",
            "--admin",
            admin,
            "--token-file",
            &missing.display().to_string(),
        ],
        Some(TOKEN),
    );
    assert_eq!(
        r.failed(),
        format!(
            "shoal: cannot read {}: no such file or directory",
            missing.display()
        )
    );
    assert_eq!(node.stat("app", "s1", "weight"), "1");
}

#[test]
fn unreachable_admin_fails_at_once() {
    let dead = dead_addr();
    let r = shoal(&["config", "show", "--admin", &dead.to_string()], None);
    assert_eq!(
        r.failed(),
        format!("shoal: cannot reach the admin API at {dead}: connection refused")
    );
    // A refused connection is not waited on: well within the timeout.
    assert!(r.took < Duration::from_secs(5), "{r:?}");
}

#[test]
fn silent_admin_times_out() {
    // Connections complete in the kernel's queue, but nothing answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let r = shoal(
        &[
            "server",
            "weight",
            "app/s1",
            "5",
            "--admin",
            &addr,
            "--timeout",
            "1",
        ],
        None,
    );
    assert_eq!(
        r.failed(),
        format!("shoal: no answer from the admin API at {addr} within 1s")
    );
    assert!(r.took >= Duration::from_secs(1), "{r:?}");
    assert!(r.took < Duration::from_secs(10), "{r:?}");
}

#[test]
fn host_names_resolve() {
    let node = Node::start();
    let port = node.admin.rsplit(':').next().expect("port");
    let text = std::fs::read_to_string(&node.shoal.cfg).expect("config");
    let r = shoal(
        &["config", "show", "--admin", &format!("localhost:{port}")],
        Some(TOKEN),
    );
    assert_eq!(r.ok(), text);
}

/// The cluster-only commands on a standalone node: whatever the node
/// answers, one clean line and exit 1.
#[test]
fn cluster_commands_on_a_standalone_node_fail_with_one_line() {
    let node = Node::start();
    let cases: &[&[&str]] = &[
        &["cluster", "init"],
        &["cluster", "join", "--via", "127.0.0.1:7001"],
        &["cluster", "leave"],
        &["cluster", "remove", "2"],
        &["cluster", "status"],
        &["cluster", "status", "--json"],
        &["node", "drain", "1"],
        &["node", "ready", "1"],
    ];
    for args in cases {
        let run = node.run(args);
        let line = run.failed();
        assert!(
            line.starts_with("shoal: 409 Conflict: this node runs standalone"),
            "{args:?}: {line}"
        );
    }
}

#[test]
fn config_apply_of_an_unreadable_file_fails_before_sending() {
    let node = Node::start();
    let missing = node.shoal.dir.0.join("missing.cfg");
    let r = node.run(&["config", "apply", "-f", &missing.display().to_string()]);
    assert_eq!(
        r.failed(),
        format!(
            "shoal: cannot read {}: no such file or directory",
            missing.display()
        )
    );
}

/// `config apply` on a standalone node: one line, nothing changes.
#[test]
fn config_apply_on_a_standalone_node_is_refused_and_changes_nothing() {
    // Standalone, the file is the truth: `config apply` is for clusters
    // (cluster-tests checks its FILE:LINE refusals there).
    let node = Node::start();
    let running = std::fs::read_to_string(&node.shoal.cfg).expect("config");
    let other = node.shoal.dir.file(
        "other.cfg",
        "defaults\n    mode http\nfrontend fe\n    bind 127.0.0.1:0\n",
    );
    let r = node.run(&["config", "apply", "-f", &other.display().to_string()]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    assert!(
        r.stderr
            .starts_with("shoal: 409 Conflict: this node runs standalone"),
        "{r:?}"
    );
    assert_eq!(node.run(&["config", "show"]).ok(), running);
}

/// Something that is not the admin API listens there and hangs up, or
/// answers garbage: one line naming the address, exit 1.
#[test]
fn a_peer_that_hangs_up_or_talks_nonsense_is_one_line() {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let answers: [&[u8]; 3] = [
        b"",
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
        b"SSH-2.0-OpenSSH_9.6\r\n",
    ];
    let peer = std::thread::spawn(move || {
        for answer in answers {
            let (mut conn, _) = listener.accept().expect("accept");
            // Read the whole request head first: closing with unread
            // bytes would send a reset instead of the answer.
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = conn.write_all(answer);
        }
    });
    for want in [
        "connection closed before message completed",
        "cannot read the body",
        "invalid HTTP version",
    ] {
        let r = shoal(&["config", "show", "--admin", &addr], None);
        let line = r.failed();
        let head = format!("shoal: unexpected answer from the admin API at {addr}: ");
        assert!(line.starts_with(&head) && line.contains(want), "{r:?}");
    }
    peer.join().expect("peer");
}

/// The admin API is plain HTTP: `cert add` never sends a private key to an
/// admin address that is not on this machine unless told to.
#[test]
fn cert_add_sends_no_key_to_another_machine() {
    let dir = TempDir::new("cert-add");
    let pem = dir.0.join("site.pem");
    std::fs::write(&pem, "not read before the address is checked").expect("write");
    // TEST-NET-1: nothing answers there; a connection attempt would fail
    // with another message, or wait for the timeout.
    let r = shoal(
        &[
            "cert",
            "add",
            pem.to_str().expect("utf-8"),
            "--admin",
            "192.0.2.1:9090",
        ],
        None,
    );
    let line = r.failed();
    assert!(
        line.contains("192.0.2.1:9090 is not this machine") && line.contains("--key-over-network"),
        "{line}"
    );
    assert!(r.took < Duration::from_secs(5), "{r:?}");
}
