//! HAProxy's runtime API on `stats socket`, through a real `shoal`, real
//! backends, `socat` and a real HAProxy 2.6 run side by side on the same
//! configuration for the formats and the traffic share.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use support::*;

/// Sockets of a Shoal started by [`start`]: unix paths and a TCP address.
struct Cli {
    admin: String,
    oper: String,
    user: String,
    tcp: SocketAddr,
    /// Keeps the socket directory alive.
    _dir: TempDir,
}

impl Cli {
    fn admin(&self, line: &str) -> String {
        cli(&self.admin, line)
    }
}

/// Shoal with four stats sockets (admin, operator, user, TCP admin) and
/// `body` after `global`.
fn start(body: &str, fronts: &[&str]) -> (Shoal, Cli) {
    let dir = TempDir::new("sock");
    let path = |name: &str| dir.0.join(name).display().to_string();
    let (admin, oper, user) = (path("admin.sock"), path("oper.sock"), path("user.sock"));
    let cfg = format!(
        "global\n    maxconn 1000\n    stats socket {admin} mode 600 level admin\n\
         \x20   stats socket {oper} level operator\n    stats socket {user} mode 666 level user\n\
         \x20   stats socket ipv4@127.0.0.1:0 level admin\n    stats timeout 2s\n{body}"
    );
    let mut shoal = Shoal::start(&cfg, fronts);
    let at = shoal.stats_sockets(4);
    assert_eq!(at[..3], [admin.clone(), oper.clone(), user.clone()]);
    let tcp = at[3].parse().expect("TCP stats socket address");
    let cli = Cli {
        admin,
        oper,
        user,
        tcp,
        _dir: dir,
    };
    (shoal, cli)
}

const DEFAULTS: &str = "defaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n";

fn two_servers(s1: &Backend, s2: &Backend, extra: &str) -> String {
    format!(
        "{DEFAULTS}frontend fe\n    bind {}\n    default_backend app\n\
         backend app\n    balance roundrobin\n{extra}    server s1 {}\n    server s2 {}\n",
        any_port(),
        s1.addr,
        s2.addr
    )
}

fn share(counts: &HashMap<String, usize>, name: &str, total: usize) -> f64 {
    *counts.get(name).unwrap_or(&0) as f64 / total as f64
}

/// The CSV rows of `show stat`, cells split (header first, `# ` removed).
fn table(csv: &str) -> Vec<Vec<String>> {
    csv.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.trim_start_matches("# ")
                .split(',')
                .map(str::to_string)
                .collect()
        })
        .collect()
}

fn cell<'a>(rows: &'a [Vec<String>], px: &str, sv: &str, column: &str) -> &'a str {
    let col = rows[0]
        .iter()
        .position(|c| c == column)
        .expect("column exists");
    let row = rows
        .iter()
        .find(|r| r[0] == px && r[1] == sv)
        .unwrap_or_else(|| panic!("no row {px}/{sv}"));
    &row[col]
}

/// One config for HAProxy and Shoal; only listen addresses and the socket differ.
fn compare_config(sock: &str, fe: &str, li: &str, tl: &str, b: &[Backend]) -> String {
    format!(
        "global\n    maxconn 1000\n    stats socket {sock} mode 600 level admin\n    stats timeout 30s\n\
         {DEFAULTS}frontend fe\n    bind {fe}\n    default_backend app\n\
         backend app\n    balance roundrobin\n    cookie SRV insert indirect nocache\n\
         \x20   server s1 {} weight 5 cookie c1\n    server s2 {} weight 3 cookie c2\n\
         \x20   server s3 {} weight 2 cookie c3\n    server b1 {} backup cookie c4\n\
         listen li\n    bind {li}\n    balance leastconn\n    server a {} maxconn 20 maxqueue 5\n\
         listen tl\n    mode tcp\n    bind {tl}\n    balance source\n    server t {}\n\
         backend spare\n    balance static-rr\n    server x {} disabled\n",
        b[0].addr, b[1].addr, b[2].addr, b[3].addr, b[0].addr, b[1].addr, b[2].addr
    )
}

struct Pair {
    shoal: Shoal,
    shoal_sock: String,
    _haproxy: Haproxy,
    haproxy_sock: String,
    /// Where HAProxy's frontend `fe` listens.
    haproxy_fe: SocketAddr,
    _backends: Vec<Backend>,
    _dir: TempDir,
}

/// A loopback address of its own (127.0.X.Y) for this test process, so
/// that no stray connection (another test's checks of a "dead" 127.0.0.1
/// port, say) reaches the frontends whose counters are compared.
fn own_ip() -> std::net::IpAddr {
    let pid = std::process::id();
    let (x, y) = (((pid >> 8) % 250) as u8 + 2, (pid % 250) as u8 + 2);
    std::net::IpAddr::from([127, 0, x, y])
}

/// `ADDR:0` on this process's own loopback address.
fn any_port() -> String {
    SocketAddr::new(own_ip(), 0).to_string()
}

/// The same config under HAProxy 2.6 and Shoal.
fn pair() -> Pair {
    let backends: Vec<Backend> = ["s1", "s2", "s3", "b1"]
        .iter()
        .map(|n| Backend::http(n))
        .collect();
    let dir = TempDir::new("pair");
    let hsock = dir.0.join("haproxy.sock");
    let ssock = dir.0.join("shoal.sock");
    let ip = own_ip();
    let listeners = [(); 3].map(|()| Inherited::on(ip));
    let [fe, li, tl] = listeners.each_ref().map(Inherited::bind);
    let hcfg = compare_config(&hsock.display().to_string(), &fe, &li, &tl, &backends);
    // Only the socket is probed: a probe connection would show in the counters.
    let haproxy = Haproxy::start(&hcfg, &hsock);
    let any = &SocketAddr::new(ip, 0).to_string();
    let scfg = compare_config(&ssock.display().to_string(), any, any, any, &backends);
    let mut shoal = Shoal::start(&scfg, &["fe", "li", "tl"]);
    shoal.stats_sockets(1);
    Pair {
        shoal,
        shoal_sock: ssock.display().to_string(),
        _haproxy: haproxy,
        haproxy_sock: hsock.display().to_string(),
        haproxy_fe: listeners[0].addr,
        _backends: backends,
        _dir: dir,
    }
}

impl Pair {
    fn both(&self, line: &str) -> (String, String) {
        (cli(&self.haproxy_sock, line), cli(&self.shoal_sock, line))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formats_match_haproxy() {
    let p = pair();
    let (h, s) = p.both("show stat");
    let (hrows, srows) = (table(&h), table(&s));
    // The header, column for column (all of it, not only the first 80).
    assert_eq!(srows[0], hrows[0], "show stat header");
    assert_eq!(s.lines().next(), h.lines().next());
    assert!(hrows[0].len() > 80);
    // Same rows in the same order, and the same cells, except the seconds
    // since start (lastchg), which depend on when each process started.
    let names = |rows: &[Vec<String>]| -> Vec<String> {
        rows.iter().map(|r| format!("{}/{}", r[0], r[1])).collect()
    };
    assert_eq!(names(&srows), names(&hrows));
    let lastchg = hrows[0].iter().position(|c| c == "lastchg");
    let downtime = hrows[0].iter().position(|c| c == "downtime");
    for (hr, sr) in hrows.iter().zip(&srows).skip(1) {
        for (i, column) in hrows[0].iter().enumerate() {
            if Some(i) == lastchg {
                continue;
            }
            // Seconds counted from each process's start: a second boundary
            // may fall between the two reads.
            if Some(i) == downtime {
                let secs = |r: &Vec<String>| r.get(i).and_then(|v| v.parse::<i64>().ok());
                match (secs(sr), secs(hr)) {
                    (Some(a), Some(b)) => assert!(
                        (a - b).abs() <= 1,
                        "{}/{} downtime {a} vs {b}",
                        hr[0],
                        hr[1]
                    ),
                    (a, b) => assert_eq!(a, b, "{}/{} downtime", hr[0], hr[1]),
                }
                continue;
            }
            assert_eq!(
                sr.get(i),
                hr.get(i),
                "{}/{} column {i} {column}\nhaproxy: {}\nshoal:   {}",
                hr[0],
                hr[1],
                hr.join(","),
                sr.join(",")
            );
        }
    }

    // `show servers state`: version, header, and every column but the
    // seconds since the last change.
    let (h, s) = p.both("show servers state");
    let (hl, sl): (Vec<&str>, Vec<&str>) = (h.lines().collect(), s.lines().collect());
    assert_eq!(sl[..2], hl[..2], "show servers state header");
    assert_eq!(sl.len(), hl.len());
    for (hline, sline) in hl.iter().zip(&sl).skip(2) {
        let mut hw: Vec<&str> = hline.split(' ').collect();
        let mut sw: Vec<&str> = sline.split(' ').collect();
        if hw.len() > 9 && sw.len() > 9 {
            hw[9] = "T";
            sw[9] = "T";
        }
        assert_eq!(sw, hw);
    }

    // Answers and error messages, word for word.
    for line in [
        "show backend",
        "get weight app/s1",
        "get weight app/nope",
        "get weight nope/s1",
        "get weight app",
        "set weight app/s1 300",
        "set weight app/s1",
        "set weight app/s1 -5%",
        "set weight spare/x 5",
        "set server app/s1 state foo",
        "set server app/s1 health bad",
        "set server app/s1",
        "set server app/s1 agent up",
        "set server app/s1 addr",
        "set server app/s1 addr bogus",
        "enable agent app/s1",
        "set maxconn server app/s1",
        "shutdown sessions server app",
        "show servers state nope",
        "show table nope",
        "clear table",
        "set timeout foo 5",
        "show cli level",
        "show stat nope 1 1",
    ] {
        let (h, s) = p.both(line);
        assert_eq!(s, h, "answer to {line:?}");
    }

    // The same changes leave both in the same state.
    for line in [
        "set weight app/s2 50%",
        "set server app/s3 state drain",
        "disable server app/s1",
        "set server li/a health stopping",
        "set maxconn server li/a 7",
        "set server app/b1 weight 0",
    ] {
        let (h, s) = p.both(line);
        assert_eq!(s, h, "answer to {line:?}");
    }
    let (h, s) = p.both("get weight app/s2");
    assert_eq!(
        (s.as_str(), h.as_str()),
        ("1 (initial 3)\n\n", "1 (initial 3)\n\n")
    );
    let (h, s) = p.both("show stat");
    let (hrows, srows) = (table(&h), table(&s));
    for column in ["status", "weight", "act", "bck", "slim", "uweight"] {
        for (hr, sr) in hrows.iter().zip(&srows).skip(1) {
            let c = hrows[0].iter().position(|x| x == column).expect("column");
            assert_eq!(sr[c], hr[c], "{}/{} {column}", hr[0], hr[1]);
        }
    }
    let (h, s) = p.both("show servers state");
    let strip = |t: &str| -> Vec<String> {
        t.lines()
            .skip(2)
            .map(|l| {
                let mut w: Vec<&str> = l.split(' ').collect();
                if w.len() > 9 {
                    w[9] = "T";
                }
                w.join(" ")
            })
            .collect()
    };
    assert_eq!(strip(&s), strip(&h));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_roundrobin_share_matches_haproxy() {
    let p = pair();
    let n = 1000;
    let from_haproxy = tally(p.haproxy_fe, "/", n).await;
    let from_shoal = tally(p.shoal.addr("fe"), "/", n).await;
    for name in ["s1", "s2", "s3"] {
        let (h, s) = (share(&from_haproxy, name, n), share(&from_shoal, name, n));
        assert!(
            (h - s).abs() <= 0.02,
            "{name}: haproxy {h:.3}, shoal {s:.3}\nhaproxy {from_haproxy:?}\nshoal {from_shoal:?}"
        );
    }
    assert_eq!(from_shoal.get("b1"), None, "the backup stays idle");
    // Both count the same sessions per server.
    let (h, s) = p.both("show stat");
    let (hrows, srows) = (table(&h), table(&s));
    for sv in ["s1", "s2", "s3"] {
        for column in ["stot", "lbtot", "hrsp_2xx"] {
            let (hv, sv_) = (
                cell(&hrows, "app", sv, column),
                cell(&srows, "app", sv, column),
            );
            let (hv, sv_): (f64, f64) = (hv.parse().expect("number"), sv_.parse().expect("number"));
            assert!(
                (hv - sv_).abs() <= 0.02 * n as f64,
                "{sv} {column}: haproxy {hv}, shoal {sv_}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socat_commands_and_levels() {
    let (b1, b2) = (Backend::http("s1"), Backend::http("s2"));
    let (_shoal, c) = start(&two_servers(&b1, &b2, ""), &["fe"]);
    // `echo "show stat" | socat stdio unix-connect:SOCK`, as in the seed guide.
    let stat = socat(&format!("unix-connect:{}", c.admin), "show stat\n");
    let first = stat.lines().next().unwrap_or_default();
    assert!(first.starts_with("# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,"));
    assert!(stat.contains("\napp,s1,") && stat.contains("\napp,BACKEND,"));
    assert!(stat.ends_with("\n\n"));
    let info = c.admin("show info");
    for field in [
        "Name: ",
        "Version: ",
        "Pid: ",
        "Uptime_sec: ",
        "Maxconn: 1000",
        "CurrConns: ",
        "CumConns: ",
    ] {
        assert!(info.contains(field), "show info lacks {field}: {info}");
    }
    assert!(info.lines().count() >= 20);
    assert_eq!(c.admin("show backend"), "# name\napp\n\n");
    assert_eq!(c.admin("get weight app/s1"), "1 (initial 1)\n\n");
    assert!(c
        .admin("help")
        .starts_with("The following commands are valid at this level:\n"));
    assert!(c
        .admin("frobnicate")
        .starts_with("Unknown command. Please enter one of the following commands only:\n"));
    // Several commands on one line, separated by `;`.
    assert_eq!(
        c.admin("get weight app/s1;get weight app/s2"),
        "1 (initial 1)\n\n1 (initial 1)\n\n"
    );
    // Errors for unknown backends and servers.
    assert_eq!(c.admin("set weight nope/s1 5"), "No such backend.\n\n");
    assert_eq!(c.admin("set weight app/nope 5"), "No such server.\n\n");
    assert_eq!(
        c.admin("disable server app"),
        "Require 'backend/server'.\n\n"
    );
    // Levels: user and operator sockets may look, not change.
    for sock in [&c.user, &c.oper] {
        assert_eq!(cli(sock, "set weight app/s1 5"), "Permission denied\n\n");
        assert_eq!(cli(sock, "disable server app/s1"), "Permission denied\n\n");
        assert_eq!(cli(sock, "get weight app/s1"), "1 (initial 1)\n\n");
        assert!(cli(sock, "show stat").contains("\napp,s1,"));
    }
    assert_eq!(cli(&c.user, "show cli level"), "user\n\n");
    assert_eq!(cli(&c.oper, "show cli level"), "operator\n\n");
    // Addresses are shown from operator level up.
    let addr = format!(",{},", b1.addr);
    assert!(!cli(&c.user, "show stat").contains(&addr));
    assert!(cli(&c.oper, "show stat").contains(&addr));
    assert_eq!(c.admin("get weight app/s1"), "1 (initial 1)\n\n");
    // The TCP socket speaks the same language.
    assert_eq!(
        cli_tcp(c.tcp, "get weight app/s2\n").await,
        "1 (initial 1)\n\n"
    );
    assert_eq!(
        socat(&format!("tcp:{}", c.tcp), "show backend\n"),
        "# name\napp\n\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weight_and_maintenance_change_traffic() {
    let (b1, b2) = (Backend::http("s1"), Backend::http("s2"));
    let (shoal, c) = start(&two_servers(&b1, &b2, ""), &["fe"]);
    let fe = shoal.addr("fe");
    let even = tally(fe, "/", 200).await;
    assert_eq!((even["s1"], even["s2"]), (100, 100));
    assert_eq!(c.admin("set weight app/s1 3"), "\n");
    let counts = tally(fe, "/", 400).await;
    assert!(
        (share(&counts, "s1", 400) - 0.75).abs() <= 0.02,
        "{counts:?}"
    );
    assert_eq!(c.admin("get weight app/s1"), "3 (initial 1)\n\n");
    // Percent of the initial weight.
    assert_eq!(c.admin("set weight app/s1 100%"), "\n");
    assert_eq!(c.admin("set server app/s2 weight 300%"), "\n");
    let counts = tally(fe, "/", 400).await;
    assert!(
        (share(&counts, "s2", 400) - 0.75).abs() <= 0.02,
        "{counts:?}"
    );
    // `disable server` takes it out; `enable server` brings it back.
    assert_eq!(c.admin("disable server app/s2"), "\n");
    let counts = tally(fe, "/", 100).await;
    assert_eq!(counts.get("s2"), None, "{counts:?}");
    let stat = table(&c.admin("show stat"));
    assert_eq!(cell(&stat, "app", "s2", "status"), "MAINT");
    assert_eq!(c.admin("enable server app/s2"), "\n");
    let counts = tally(fe, "/", 100).await;
    assert!(counts.get("s2").copied().unwrap_or(0) > 50, "{counts:?}");
    // `set server ... health down` avoids it until `health up`.
    assert_eq!(c.admin("set server app/s1 health down"), "\n");
    let counts = tally(fe, "/", 50).await;
    assert_eq!(counts.get("s1"), None, "{counts:?}");
    let stat = table(&c.admin("show stat"));
    assert_eq!(cell(&stat, "app", "s1", "status"), "DOWN");
    assert_eq!(c.admin("set server app/s1 health up"), "\n");
    let stat = table(&c.admin("show stat"));
    assert_eq!(cell(&stat, "app", "s1", "status"), "no check");
    assert!(tally(fe, "/", 50).await.contains_key("s1"));
    // `set weight 0` keeps it UP but idle.
    assert_eq!(c.admin("set weight app/s1 0"), "\n");
    assert_eq!(tally(fe, "/", 50).await.get("s1"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_keeps_persistent_clients_maint_does_not() {
    let (b1, b2) = (Backend::http("s1"), Backend::http("s2"));
    let extra = "    cookie SRV insert indirect nocache\n";
    let (shoal, c) = start(&two_servers(&b1, &b2, extra), &["fe"]);
    let fe = shoal.addr("fe");
    assert_eq!(c.admin("set server app/s2 state drain"), "\n");
    let stat = table(&c.admin("show stat"));
    assert_eq!(cell(&stat, "app", "s2", "status"), "DRAIN");
    // New clients all go to s1 ...
    let counts = tally(fe, "/", 60).await;
    assert_eq!(counts.get("s2"), None, "{counts:?}");
    // ... while a client persisted to s2 keeps reaching it, on a keep-alive
    // connection too.
    let mut client = Client::connect(fe).await;
    for _ in 0..5 {
        let r = client.request("/", &[("cookie", "SRV=s2")]).await;
        assert_eq!(r.server(), "s2");
    }
    // Maintenance ends persistence as well.
    assert_eq!(c.admin("set server app/s2 state maint"), "\n");
    let r = client.request("/", &[("cookie", "SRV=s2")]).await;
    assert_eq!(r.server(), "s1");
    let state = c.admin("show servers state app");
    let s2: Vec<&str> = state
        .lines()
        .find(|l| l.split(' ').nth(3) == Some("s2"))
        .expect("s2 line")
        .split(' ')
        .collect();
    assert_eq!((s2[5], s2[6]), ("0", "1"), "stopped, forced maintenance");
    assert_eq!(c.admin("set server app/s2 state ready"), "\n");
    let r = client.request("/", &[("cookie", "SRV=s2")]).await;
    assert_eq!(r.server(), "s2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_addr_moves_traffic() {
    let (b1, b2, b3) = (
        Backend::http("s1"),
        Backend::http("s2"),
        Backend::http("s3"),
    );
    let (shoal, c) = start(&two_servers(&b1, &b2, ""), &["fe"]);
    let line = format!(
        "set server app/s2 addr {} port {}",
        b3.addr.ip(),
        b3.addr.port()
    );
    assert_eq!(
        c.admin(&line),
        format!(
            "no need to change the addr, port changed from '{}' to '{}' by 'stats socket command'\n\n",
            b2.addr.port(),
            b3.addr.port()
        )
    );
    let counts = tally(shoal.addr("fe"), "/", 40).await;
    assert_eq!(
        (counts.get("s2"), counts.get("s3")),
        (None, Some(&20)),
        "{counts:?}"
    );
    let stat = table(&c.admin("show stat"));
    assert_eq!(cell(&stat, "app", "s2", "addr"), b3.addr.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stick_tables_show_and_clear() {
    let b1 = Backend::http("s1");
    let body = format!(
        "{DEFAULTS}frontend fe\n    bind {}\n    default_backend app\n\
         backend app\n    stick-table type ip size 200 expire 10m\n    stick on src\n\
         \x20   server s1 {}\n",
        any_port(),
        b1.addr
    );
    let (shoal, c) = start(&body, &["fe"]);
    assert_eq!(
        c.admin("show table"),
        "# table: app, type: ip, size:200, used:0\n\n"
    );
    assert_eq!(get(shoal.addr("fe"), "/").await.status, 200);
    let dump = c.admin("show table app");
    let lines: Vec<&str> = dump.lines().collect();
    assert_eq!(lines[0], "# table: app, type: ip, size:200, used:1");
    assert!(
        lines[1].starts_with("0x")
            && lines[1].contains(": key=127.0.0.1 use=0 exp=")
            && lines[1].ends_with(" server_id=1 server_key=s1"),
        "{dump}"
    );
    let exp: u64 = lines[1]
        .split("exp=")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|v| v.parse().ok())
        .expect("exp");
    assert!(exp > 500_000 && exp <= 600_000, "{exp}");
    assert_eq!(
        cli(&c.user, "show table app"),
        "# table: app, type: ip, size:200, used:1\n# contents not dumped due to insufficient privileges\n\n"
    );
    assert_eq!(cli(&c.user, "clear table app"), "Permission denied\n\n");
    assert_eq!(c.admin("show table app key 127.0.0.1").lines().count(), 3);
    // The operator level may clear tables.
    assert_eq!(cli(&c.oper, "clear table app key 127.0.0.1"), "\n");
    assert_eq!(
        c.admin("show table app"),
        "# table: app, type: ip, size:200, used:0\n\n"
    );
    assert_eq!(c.admin("show table nope"), "No such table\n\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maxconn_and_shutdown_sessions() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let t1 = Backend::tcp("t1");
    let body = format!(
        "defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 60s\n    timeout server 60s\n\
         frontend fe\n    bind {}\n    default_backend app\nbackend app\n    server t1 {}\n",
        any_port(),
        t1.addr
    );
    let (shoal, c) = start(&body, &["fe"]);
    assert_eq!(c.admin("set maxconn server app/t1 5"), "\n");
    let stat = table(&c.admin("show stat"));
    assert_eq!(cell(&stat, "app", "t1", "slim"), "5");
    assert_eq!(c.admin("set maxconn server app/t1 0"), "\n");
    let stream = tokio::net::TcpStream::connect(shoal.addr("fe"))
        .await
        .expect("connect");
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"hello\n").await.expect("write");
    let echo = tokio::time::timeout(DEADLINE, lines.next_line()).await;
    assert_eq!(
        echo.ok().and_then(|l| l.ok()).flatten().as_deref(),
        Some("t1 hello")
    );
    let stat = table(&c.admin("show stat"));
    assert_eq!(cell(&stat, "app", "t1", "scur"), "1");
    assert_eq!(c.admin("shutdown sessions server app/t1"), "\n");
    let end = tokio::time::timeout(DEADLINE, lines.next_line()).await;
    assert!(
        matches!(end, Ok(Ok(None)) | Ok(Err(_))),
        "session still open: {end:?}"
    );
}

/// A TCP CLI client in prompt mode.
struct Prompt {
    stream: tokio::net::TcpStream,
}

impl Prompt {
    async fn open(addr: SocketAddr) -> Prompt {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let mut p = Prompt { stream };
        assert_eq!(p.say("prompt").await, "\n");
        p
    }
    /// Send a line; the answer up to the next prompt.
    async fn say(&mut self, line: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        self.stream
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write");
        let mut out = Vec::new();
        let mut byte = [0u8; 1];
        while !out.ends_with(b"> ") {
            let n = tokio::time::timeout(DEADLINE, self.stream.read(&mut byte))
                .await
                .expect("answer in time")
                .expect("read");
            assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&out));
            out.push(byte[0]);
        }
        out.truncate(out.len() - 2);
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_mode_timeout_and_bad_input() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (b1, b2) = (Backend::http("s1"), Backend::http("s2"));
    let (_shoal, c) = start(&two_servers(&b1, &b2, ""), &["fe"]);
    let mut p = Prompt::open(c.tcp).await;
    assert_eq!(p.say("get weight app/s1").await, "1 (initial 1)\n\n");
    assert_eq!(p.say("set weight app/s1 4").await, "\n");
    assert_eq!(p.say("get weight app/s1").await, "4 (initial 1)\n\n");
    assert!(p.say("show stat").await.contains("\napp,s1,"));
    // `quit` closes the connection.
    p.stream.write_all(b"quit\n").await.expect("write");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(DEADLINE, p.stream.read_to_end(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(0))), "{closed:?} {rest:?}");

    // An idle interactive session ends after `stats timeout` (2 s here).
    let mut p = Prompt::open(c.tcp).await;
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(DEADLINE, p.stream.read_to_end(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(0))), "idle session was not closed");
    assert!(started.elapsed() >= Duration::from_millis(1500));

    // An endless line is refused; the node keeps answering.
    let huge = "x".repeat(200 * 1024);
    let mut s = tokio::net::TcpStream::connect(c.tcp)
        .await
        .expect("connect");
    let _ = s.write_all(huge.as_bytes()).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, s.read_to_end(&mut out)).await;
    assert!(String::from_utf8_lossy(&out).starts_with("Command line too long."));
    let garbage = cli_tcp(c.tcp, "\u{0}\u{1}\u{ff};;\\\\;set weight\n").await;
    assert!(garbage.contains("Unknown command"), "{garbage}");
    assert_eq!(c.admin("get weight app/s2"), "1 (initial 1)\n\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_file_lifecycle() {
    use std::os::unix::fs::PermissionsExt;
    let b1 = Backend::http("s1");
    let dir = TempDir::new("life");
    let path: PathBuf = dir.0.join("admin.sock");
    // A stale socket file from a previous run.
    drop(std::os::unix::net::UnixListener::bind(&path).expect("stale socket"));
    assert!(path.exists());
    let cfg = format!(
        "global\n    stats socket {} mode 640 level admin\n{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend app\nbackend app\n    server s1 {}\n",
        path.display(),
        b1.addr
    );
    let mut shoal = Shoal::start(&cfg, &["fe"]);
    assert_eq!(shoal.stats_sockets(1), [path.display().to_string()]);
    let mode = std::fs::metadata(&path)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
    assert_eq!(
        cli(&path.display().to_string(), "show backend"),
        "# name\napp\n\n"
    );
    shoal.proc.signal("TERM");
    assert_eq!(shoal.proc.wait_exit(DEADLINE), Some(0));
    assert!(!path.exists(), "socket file left behind");
}

/// Health-check columns after both proxies checked the same servers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_columns_match_haproxy() {
    let live = Backend::http("live");
    let dead = dead_addr();
    let dir = TempDir::new("checks");
    let config = |sock: &str, bind: &str| {
        format!(
            "global\n    maxconn 1000\n    stats socket {sock} level admin\n\
             {DEFAULTS}    timeout check 1s\nfrontend fe\n    bind {bind}\n    default_backend tcpchk\n\
             backend tcpchk\n    server up1 {live} check inter 100ms\n    server down1 {dead} check inter 100ms rise 3 fall 2\n\
             backend httpchk\n    option httpchk GET /\n    server up2 {live} check inter 100ms\n    server down2 {dead} check inter 100ms\n",
            live = live.addr
        )
    };
    let hsock = dir.0.join("h.sock").display().to_string();
    let ssock = dir.0.join("s.sock").display().to_string();
    let listener = Inherited::new();
    let _haproxy = Haproxy::start(
        &config(&hsock, &listener.bind()),
        std::path::Path::new(&hsock),
    );
    let mut shoal = Shoal::start(&config(&ssock, "127.0.0.1:0"), &["fe"]);
    shoal.stats_sockets(1);
    let settled = |sock: &str| {
        let rows = table(&cli(sock, "show stat"));
        [("tcpchk", "up1"), ("httpchk", "up2")]
            .iter()
            .all(|(b, s)| cell(&rows, b, s, "status") == "UP")
            && [("tcpchk", "down1"), ("httpchk", "down2")]
                .iter()
                .all(|(b, s)| cell(&rows, b, s, "status") == "DOWN")
    };
    eventually("haproxy checked every server", || async { settled(&hsock) }).await;
    eventually("shoal checked every server", || async { settled(&ssock) }).await;
    // HAProxy clears a server's check cells while its check runs (the
    // `* ` mark in check_status): read its table between checks.
    let servers = [
        ("tcpchk", "up1"),
        ("tcpchk", "down1"),
        ("httpchk", "up2"),
        ("httpchk", "down2"),
    ];
    let mut hrows = table(&cli(&hsock, "show stat"));
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while servers
        .iter()
        .any(|(b, s)| cell(&hrows, b, s, "check_status").starts_with("* "))
        && std::time::Instant::now() < end
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
        hrows = table(&cli(&hsock, "show stat"));
    }
    let srows = table(&cli(&ssock, "show stat"));
    for (b, s) in [
        ("tcpchk", "up1"),
        ("tcpchk", "down1"),
        ("httpchk", "up2"),
        ("httpchk", "down2"),
    ] {
        for column in [
            "status",
            "weight",
            "act",
            "check_status",
            "check_code",
            "last_chk",
            "check_desc",
            "check_rise",
            "check_fall",
            "check_health",
        ] {
            // HAProxy prefixes `* ` while a check is running at this
            // instant; that is timing, not format.
            let unmark = |v: &str| v.strip_prefix("* ").unwrap_or(v).to_string();
            assert_eq!(
                unmark(cell(&srows, b, s, column)),
                unmark(cell(&hrows, b, s, column)),
                "{b}/{s} {column}"
            );
        }
    }
    for (b, status) in [("tcpchk", "UP"), ("httpchk", "UP")] {
        assert_eq!(cell(&srows, b, "BACKEND", "status"), status);
    }

    // `disable health` / `enable health`, on both.
    for sock in [&hsock, &ssock] {
        assert_eq!(cli(sock, "disable health tcpchk/up1"), "\n");
    }
    let (hrows, srows) = (
        table(&cli(&hsock, "show stat")),
        table(&cli(&ssock, "show stat")),
    );
    assert_eq!(cell(&srows, "tcpchk", "up1", "status"), "no check");
    for column in ["status", "check_status", "check_rise", "check_health"] {
        assert_eq!(
            cell(&srows, "tcpchk", "up1", column),
            cell(&hrows, "tcpchk", "up1", column),
            "disabled check: {column}"
        );
    }
    let state_of = |sock: &str| -> Vec<String> {
        cli(sock, "show servers state tcpchk")
            .lines()
            .skip(2)
            .filter(|l| !l.is_empty())
            .map(|l| {
                let w: Vec<&str> = l.split(' ').collect();
                // srv_check_state without bit 0 (CHK_ST_INPROGRESS): whether
                // a check happens to be running at this instant is timing.
                let check_state = w[13]
                    .parse::<u32>()
                    .map_or(w[13].to_string(), |v| (v & !1).to_string());
                format!("{} {} {}", w[3], w[5], check_state)
            })
            .collect()
    };
    assert_eq!(state_of(&ssock), state_of(&hsock));
    for sock in [&hsock, &ssock] {
        assert_eq!(cli(sock, "enable health tcpchk/up1"), "\n");
    }
    assert_eq!(state_of(&ssock), state_of(&hsock));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lastchg_restarts_when_an_operator_changes_a_server() {
    let s1 = Backend::http("s1");
    let s2 = Backend::http("s2");
    let dir = TempDir::new("lastchg");
    let sock = dir.0.join("s.sock").display().to_string();
    let cfg = format!(
        "global\n    stats socket {sock} level admin\n{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend app\n\
         backend app\n    server s1 {}\n    server s2 {}\n",
        s1.addr, s2.addr
    );
    let mut shoal = Shoal::start(&cfg, &["fe"]);
    shoal.stats_sockets(1);
    let lastchg = |server: &str| -> u64 {
        cell(&table(&cli(&sock, "show stat")), "app", server, "lastchg")
            .parse()
            .unwrap_or(0)
    };
    // Let the servers' unchanged state age by a couple of seconds.
    eventually("servers aged", || async { lastchg("s2") >= 2 }).await;
    assert_eq!(cli(&sock, "disable server app/s1"), "\n");
    let (changed, unchanged) = (lastchg("s1"), lastchg("s2"));
    assert!(
        changed < unchanged,
        "s1 lastchg {changed} should restart below s2's {unchanged}"
    );
}
