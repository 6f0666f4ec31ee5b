//! `set table <table> key <key> [data.<type> <value>]*` on the runtime
//! socket, beside the real HAProxy 2.6 with the same config: the same
//! answers (errors included) for what both accept or refuse, the same
//! routing for a key set by hand, Shoal's stricter answers where HAProxy
//! would store an entry that names no server, and many commands streamed
//! on one connection.

mod support;

use std::time::Duration;
use support::{cli, get_with, socat, Backend, Haproxy, Inherited, Shoal, TempDir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A config for both proxies: `servers` (string keys, `stick on` a
/// header), `ipt` (`type ip`) and `intt` (`type integer`), each table
/// used by a `stick on` rule so that HAProxy stores `server_id` in it.
fn config(sock: &str, bind: &str, s1: &str, s2: &str) -> String {
    format!(
        "global\n    stats socket {sock} level admin\n\
         defaults\n    mode http\n    timeout connect 5s\n    timeout client 10s\n    timeout server 10s\n\
         frontend fe\n    bind {bind}\n    default_backend servers\n\
         backend servers\n    stick-table type string len 32 size 100k expire 10m\n    stick on req.hdr(X-Key)\n\
         \x20   server s1 {s1}\n    server s2 {s2}\n\
         backend ipt\n    stick-table type ip size 100\n    stick on src\n    server s1 {s1}\n\
         backend intt\n    stick-table type integer size 100\n    stick on req.hdr(X-N)\n    server s1 {s1}\n"
    )
}

struct Pair {
    shoal: Shoal,
    shoal_sock: String,
    _haproxy: Haproxy,
    haproxy_sock: String,
    haproxy_fe: std::net::SocketAddr,
    _listener: Inherited,
    _backends: [Backend; 2],
    _dir: TempDir,
}

fn pair() -> Pair {
    let backends = [Backend::http("s1"), Backend::http("s2")];
    let [s1, s2] = backends.each_ref().map(|b| b.addr.to_string());
    let dir = TempDir::new("set-table");
    let hsock = dir.0.join("h.sock").display().to_string();
    let ssock = dir.0.join("s.sock").display().to_string();
    let listener = Inherited::new();
    let haproxy = Haproxy::start(
        &config(&hsock, &listener.bind(), &s1, &s2),
        std::path::Path::new(&hsock),
    );
    let mut shoal = Shoal::start(&config(&ssock, "127.0.0.1:0", &s1, &s2), &["fe"]);
    shoal.stats_sockets(1);
    Pair {
        shoal,
        shoal_sock: ssock,
        _haproxy: haproxy,
        haproxy_sock: hsock,
        haproxy_fe: listener.addr,
        _listener: listener,
        _backends: backends,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_and_routing_match_haproxy() {
    let p = pair();
    // Answers both proxies give word for word, errors included, in
    // HAProxy's order of checks (table, key, key type, level, data).
    for line in [
        "set table",
        "set table nope key a",
        "set table servers foo",
        "set table servers key",
        "set table servers data.server_id 1",
        "set table servers key a data.server_id 1",
        "set table servers key b data.server_id 2 data.server_id 1",
        "set table servers key c data.gpc0 1",
        "set table servers key c data.conn_rate 1",
        "set table servers key c data.nosuch 1",
        "set table servers key c data. 1",
        "set table servers key c server_id 1",
        "set table servers key c data.server_id 1 extra",
        "set table servers key c data.server_id",
        "set table servers key c data.server_id x",
        "set table servers key c data.server_id +1",
        "set table servers key c data.server_id 1x",
        "set table servers key c data.server_key s1",
        "set table intt key abc data.server_id 1",
        "set table intt key -3 data.server_id 1",
        "set table intt key 12 data.server_id 1",
        "set table ipt key 10.0.0.1 data.server_id 1",
        "user; set table servers key c data.server_id 1",
        "user; set table intt key abc",
        "user; set table nope key a",
        "operator; set table servers key d data.server_id 2",
        "help set table",
    ] {
        let (h, s) = (cli(&p.haproxy_sock, line), cli(&p.shoal_sock, line));
        assert_eq!(s, h, "answer to {line:?}");
    }
    // In `prompt` mode, each command of a `;` line is answered and
    // prompted for, as HAProxy does.
    let streamed = "prompt\nset table servers key p1 data.server_id 1;set table servers key p2 data.server_id 1;set table nope key x\nshow table servers key zz\nquit\n";
    let target = |sock: &str| format!("unix-connect:{sock}");
    assert_eq!(
        socat(&target(&p.shoal_sock), streamed),
        socat(&target(&p.haproxy_sock), streamed)
    );
    // Keys set by hand route the same way through both proxies.
    for (key, server) in [("a", "s1"), ("b", "s1"), ("d", "s2")] {
        for fe in [p.haproxy_fe, p.shoal.addr("fe")] {
            let resp = get_with(fe, "/", &[("X-Key", key)]).await;
            assert_eq!(resp.server(), server, "key {key} through {fe}");
        }
    }
    let shown = cli(&p.shoal_sock, "show table servers key d");
    assert!(
        shown.contains("key=d use=0 ") && shown.contains("server_id=2 server_key=s2"),
        "{shown}"
    );
    // A key set again moves; the next request follows it.
    assert_eq!(
        cli(&p.shoal_sock, "set table servers key a data.server_id 2"),
        "\n"
    );
    let resp = get_with(p.shoal.addr("fe"), "/", &[("X-Key", "a")]).await;
    assert_eq!(resp.server(), "s2");
}

/// Where HAProxy would store an entry naming no server (or half a
/// command's data), Shoal refuses the whole command and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_what_it_cannot_store_and_changes_nothing() {
    let p = pair();
    let sock = &p.shoal_sock;
    let usage = "Required arguments: <table> key <key> [data.<store_data_type> <value>]*\n\n";
    assert_eq!(cli(sock, "set table servers"), usage);
    for (line, answer) in [
        (
            "set table servers key e data.server_id 3",
            "No such server: backend 'servers' has no server with id 3.\n\n",
        ),
        (
            "set table servers key e data.server_id 0",
            "No such server: backend 'servers' has no server with id 0.\n\n",
        ),
        (
            "set table servers key e data.server_id -1",
            "No such server: backend 'servers' has no server with id -1.\n\n",
        ),
        (
            "set table servers key e",
            "Shoal keeps only entries that name a server: add data.server_id <id>.\n\n",
        ),
        (
            "set table servers key e data.server_id 1 data.gpc0 1",
            "Data type not stored in this table\n\n",
        ),
        (
            "set table ipt key 10.0.0.999 data.server_id 1",
            "Invalid key\n\n",
        ),
    ] {
        assert_eq!(cli(sock, line), answer, "answer to {line:?}");
    }
    assert_eq!(cli(sock, "show table servers key e"), "\n");
    assert!(cli(sock, "show table ipt").contains("used:0"));
    // A bare key refreshes an entry that exists (its expiry restarts).
    assert_eq!(cli(sock, "set table servers key e data.server_id 2"), "\n");
    assert_eq!(cli(sock, "set table servers key e"), "\n");
    let shown = cli(sock, "show table servers key e");
    assert!(shown.contains("server_id=2 server_key=s2"), "{shown}");
    let resp = get_with(p.shoal.addr("fe"), "/", &[("X-Key", "e")]).await;
    assert_eq!(resp.server(), "s2");
}

/// Thousands of `set table` commands on one connection: `;`-separated on
/// long lines, in `prompt` mode, each answered, every entry stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_many_commands_on_one_connection() {
    let backends = [Backend::http("s1"), Backend::http("s2")];
    let [s1, s2] = backends.each_ref().map(|b| b.addr.to_string());
    let dir = TempDir::new("set-table-stream");
    let sock = dir.0.join("s.sock").display().to_string();
    let mut shoal = Shoal::start(&config(&sock, "127.0.0.1:0", &s1, &s2), &["fe"]);
    shoal.stats_sockets(1);
    const LINES: usize = 50;
    const PER_LINE: usize = 100;
    let mut input = String::from("prompt\n");
    for l in 0..LINES {
        let cmds: Vec<String> = (0..PER_LINE)
            .map(|i| {
                let n = l * PER_LINE + i;
                format!("set table servers key k{n} data.server_id {}", 1 + n % 2)
            })
            .collect();
        input.push_str(&cmds.join(";"));
        input.push('\n');
    }
    input.push_str("show table servers\nquit\n");
    let mut stream = tokio::net::UnixStream::connect(&sock)
        .await
        .expect("connect");
    let (mut rd, mut wr) = stream.split();
    let write = async {
        wr.write_all(input.as_bytes()).await.expect("write");
    };
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), rd.read_to_end(&mut out));
    let ((), read) = tokio::join!(write, read);
    read.expect("the socket closes after quit").expect("read");
    let out = String::from_utf8_lossy(&out);
    // `prompt`, then each command's empty answer and a prompt.
    let per_line = "\n> ".repeat(PER_LINE);
    let expected_head = format!("\n> {}", per_line.repeat(LINES));
    assert!(
        out.starts_with(&expected_head),
        "{:?}",
        &out[..200.min(out.len())]
    );
    let n = LINES * PER_LINE;
    assert!(
        out.contains(&format!("used:{n}\n")),
        "{}",
        &out[expected_head.len()..]
    );
    assert!(out.contains("key=k4999 use=0 "));
    let resp = get_with(shoal.addr("fe"), "/", &[("X-Key", "k4999")]).await;
    assert_eq!(resp.server(), "s2");
}
