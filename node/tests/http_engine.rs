//! Shoal's HTTP/1.1 engine through real sockets: connection reuse and its
//! safety, pools that follow address changes and reloads, the keep-alive
//! and request timeouts, head limits, error pages and their log lines,
//! hop-by-hop headers, blame between client and server faults, and the
//! cost of idle and abusive connections.

mod http_support;
mod support;

use http_support::*;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};
use support::{cli, eventually, Backend, Shoal, TempDir};

const DEFAULTS: &str =
    "defaults\n    mode http\n    timeout connect 1s\n    timeout client 10s\n    timeout server 10s\n";

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
const POISON: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON";

/// A frontend `fe` and a backend `app` with one server, `extra` lines in
/// the backend.
fn one_server(server: SocketAddr, extra: &str) -> String {
    format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend app\n\
         backend app\n{extra}    server s1 {server}\n"
    )
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn surplus_bytes_never_answer_another_request() {
    let mut srv = RawServer::start(&[
        // More bytes than the Content-Length, in the same packet...
        ("/now", Script::Send([OK, POISON].concat())),
        // ...or a moment after the answer, while the connection is idle.
        ("/later", Script::SurplusLater(POISON.to_vec())),
    ])
    .await;
    // `always` lets any request ride an idle connection: the worst case.
    let shoal = Shoal::start(&one_server(srv.addr, "    http-reuse always\n"), &["fe"]);
    let fe = shoal.addr("fe");

    assert_eq!(ask(fe, &get("/now")).await.text(), "ok");
    let next = ask(fe, &get("/after-now")).await;
    assert!(next.text().starts_with("GET /after-now"), "{next:?}");

    let mut first = Conn::open(fe).await;
    first.send(get("/later").as_bytes()).await;
    assert_eq!(first.response().await.expect("answer").text(), "ok");
    srv.release.notify_one();
    let proxy_side = srv.surplus_sent.recv().await.expect("surplus sent");
    // Only once the surplus has reached the proxy's idle socket.
    wait_unread(proxy_side, srv.addr).await;
    // Another client, then the same one: neither gets the surplus.
    let other = ask(fe, &get("/other")).await;
    assert!(other.text().starts_with("GET /other"), "{other:?}");
    first.send(get("/again").as_bytes()).await;
    let again = first.response().await.expect("answer");
    assert!(again.text().starts_with("GET /again"), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_reuse_modes_follow_haproxy() {
    let mut servers = Vec::new();
    for _ in 0..4 {
        servers.push(RawServer::start(&[]).await);
    }
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n\
         \x20   acl never path_beg /never\n    acl safe path_beg /safe\n    acl aggr path_beg /aggressive\n\
         \x20   use_backend never if never\n    use_backend safe if safe\n    use_backend aggressive if aggr\n\
         \x20   default_backend always\n\
         backend never\n    http-reuse never\n    server s {}\n\
         backend safe\n    server s {}\n\
         backend aggressive\n    http-reuse aggressive\n    server s {}\n\
         backend always\n    http-reuse always\n    server s {}\n",
        servers[0].addr, servers[1].addr, servers[2].addr, servers[3].addr
    );
    let shoal = Shoal::start(&cfg, &["fe"]);
    let fe = shoal.addr("fe");
    // Which server connection (numbered by the server) answered.
    async fn via(c: &mut Conn, path: &str) -> String {
        c.send(get(path).as_bytes()).await;
        c.response()
            .await
            .expect("answer")
            .header("x-conn")
            .expect("x-conn")
    }
    for mode in ["never", "safe"] {
        let mut a = Conn::open(fe).await;
        let a1 = via(&mut a, &format!("/{mode}/1")).await;
        assert_eq!(
            via(&mut a, &format!("/{mode}/2")).await,
            a1,
            "{mode}: a client keeps its connection"
        );
        let mut b = Conn::open(fe).await;
        let b1 = via(&mut b, &format!("/{mode}/3")).await;
        assert_ne!(
            b1, a1,
            "{mode}: a first request gets a connection of its own"
        );
        assert_eq!(via(&mut b, &format!("/{mode}/4")).await, b1, "{mode}");
    }
    // aggressive: a first request rides only a connection reused before.
    let mut a = Conn::open(fe).await;
    let a1 = via(&mut a, "/aggressive/1").await;
    let mut b = Conn::open(fe).await;
    let b1 = via(&mut b, "/aggressive/2").await;
    assert_ne!(b1, a1, "a connection used once is not proven");
    assert_eq!(via(&mut b, "/aggressive/3").await, b1);
    let mut c = Conn::open(fe).await;
    assert_eq!(
        via(&mut c, "/aggressive/4").await,
        b1,
        "reused once: proven"
    );
    // always: sequential clients share one connection.
    let mut seen = std::collections::HashSet::new();
    for i in 0..5 {
        let mut c = Conn::open(fe).await;
        seen.insert(via(&mut c, &format!("/always/{i}")).await);
    }
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(servers[3].conns.load(SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_connections_follow_address_changes_and_reloads() {
    let (a, b, c) = (Backend::http("a"), Backend::http("b"), Backend::http("c"));
    let dir = TempDir::new("sock");
    let sock = dir.0.join("admin.sock").display().to_string();
    // `app` is moved by `set server addr`, `moved` by a reload.
    let cfg = |moved: SocketAddr| {
        format!(
            "global\n    stats socket {sock} level admin\n{DEFAULTS}\
             frontend fe\n    bind 127.0.0.1:0\n    acl moved path_beg /moved\n\
             \x20   use_backend moved if moved\n    default_backend app\n\
             backend app\n    http-reuse always\n    server s1 {}\n\
             backend moved\n    http-reuse always\n    server s2 {moved}\n",
            a.addr
        )
    };
    let mut shoal = Shoal::start(&cfg(a.addr), &["fe"]);
    shoal.stats_sockets(1);
    let fe = shoal.addr("fe");
    let mut kept = support::Client::connect(fe).await;
    assert_eq!(kept.get("/").await.server(), "a");
    assert_eq!(support::get(fe, "/").await.server(), "a");
    let line = format!(
        "set server app/s1 addr {} port {}",
        b.addr.ip(),
        b.addr.port()
    );
    assert!(cli(&sock, &line).contains("port changed"));
    // Idle connections to the old address are not reused, by anyone.
    assert_eq!(support::get(fe, "/").await.server(), "b");
    assert_eq!(kept.get("/").await.server(), "b");
    // A reload that moves a server does the same.
    assert_eq!(kept.get("/moved").await.server(), "a");
    assert_eq!(support::get(fe, "/moved").await.server(), "a");
    shoal.reload(&cfg(c.addr), &[]);
    assert_eq!(support::get(fe, "/moved").await.server(), "c");
    assert_eq!(kept.get("/moved").await.server(), "c");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_pooled_connections_are_closed_after_five_seconds() {
    let srv = RawServer::start(&[]).await;
    let shoal = Shoal::start(&one_server(srv.addr, ""), &["fe"]);
    let fe = shoal.addr("fe");
    let started = Instant::now();
    assert_eq!(ask(fe, &get("/")).await.status(), 200);
    eventually("the idle server connection is closed", || async {
        srv.closed.load(SeqCst) == 1
    })
    .await;
    let idle = started.elapsed();
    assert!(idle >= Duration::from_millis(4500), "closed after {idle:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_and_request_timeouts_follow_haproxy() {
    let srv = RawServer::start(&[]).await;
    let cfg = format!(
        "{DEFAULTS}frontend ka\n    bind 127.0.0.1:0\n    timeout http-keep-alive 300ms\n\
         \x20   timeout http-request 5s\n    default_backend app\n\
         frontend req\n    bind 127.0.0.1:0\n    timeout http-request 400ms\n    default_backend app\n\
         backend app\n    server s1 {}\n",
        srv.addr
    );
    let shoal = Shoal::start(&cfg, &["ka", "req"]);
    // Between requests, `timeout http-keep-alive` closes silently.
    let mut c = Conn::open(shoal.addr("ka")).await;
    c.send(get("/").as_bytes()).await;
    assert_eq!(c.response().await.expect("answer").status(), 200);
    let idle = Instant::now();
    assert_eq!(c.until_closed().await, b"", "closed without a word");
    let waited = idle.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "closed after {waited:?} (http-request is 5 s)"
    );
    // Without it, `timeout http-request` applies; a connection that sends
    // nothing at all gets HAProxy's 408, as does an unfinished head.
    let mut c = Conn::open(shoal.addr("req")).await;
    let answer = c.until_closed().await;
    assert!(
        answer.starts_with(b"HTTP/1.1 408 Request Time-out\r\n"),
        "{answer:?}"
    );
    let mut c = Conn::open(shoal.addr("req")).await;
    c.send(get("/").as_bytes()).await;
    assert_eq!(c.response().await.expect("answer").status(), 200);
    c.send(b"GET / HTTP/1.1\r\n").await;
    let answer = c.until_closed().await;
    assert!(answer.starts_with(b"HTTP/1.1 408 "), "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_are_refused_like_haproxy() {
    let srv = RawServer::start(&[]).await;
    let shoal = Shoal::start(&one_server(srv.addr, ""), &["fe"]);
    let fe = shoal.addr("fe");
    let page = b"HTTP/1.1 400 Bad request\r\nContent-length: 90\r\nCache-Control: no-cache\r\nConnection: close\r\nContent-Type: text/html\r\n\r\n<html><body><h1>400 Bad request</h1>\nYour browser sent an invalid request.\n</body></html>\n";
    // 180 KB of headers.
    let mut big = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
    for i in 0..1800 {
        big.push_str(&format!("X-Filler-{i}: {}\r\n", "v".repeat(80)));
    }
    big.push_str("\r\n");
    let mut c = Conn::open(fe).await;
    // The proxy may close before taking everything: ignore write errors.
    let _ = tokio::io::AsyncWriteExt::write_all(&mut c.stream, big.as_bytes()).await;
    assert_eq!(c.until_closed().await, page);
    // tune.http.maxhdr (101 lines, the request line included).
    let lines = |n: usize| {
        let mut r = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
        for i in 0..n - 1 {
            r.push_str(&format!("X-{i}: v\r\n"));
        }
        r + "\r\n"
    };
    assert_eq!(ask(fe, &lines(100)).await.status(), 200);
    assert_eq!(ask(fe, &lines(101)).await.raw, page);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_huge_heads_cost_at_most_a_buffer_each() {
    let srv = RawServer::start(&[]).await;
    let shoal = Shoal::start(&one_server(srv.addr, ""), &["fe"]);
    let fe = shoal.addr("fe");
    let pid = shoal.proc.child.id();
    assert_eq!(ask(fe, &get("/")).await.status(), 200);
    let (base, _) = rss_kb_and_fds(pid);
    // 200 clients each send 400 KB of a header that never ends.
    let mut tasks = Vec::new();
    for _ in 0..200 {
        tasks.push(tokio::spawn(async move {
            let mut s = tokio::net::TcpStream::connect(fe).await.expect("connect");
            let _ = tokio::io::AsyncWriteExt::write_all(&mut s, b"GET / HTTP/1.1\r\nX-Big: ").await;
            let chunk = vec![b'a'; 16 * 1024];
            for _ in 0..25 {
                if tokio::io::AsyncWriteExt::write_all(&mut s, &chunk)
                    .await
                    .is_err()
                {
                    break;
                }
            }
            s
        }));
    }
    let mut held = Vec::new();
    for t in tasks {
        held.push(t.await.expect("client"));
    }
    // Measured once the proxy has taken everything it was sent.
    wait_drained(fe).await;
    let (peak, _) = rss_kb_and_fds(pid);
    let grown_mb = peak.saturating_sub(base) / 1024;
    assert!(
        grown_mb < 30,
        "RSS grew by {grown_mb} MB for 200 unfinished heads"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_clients_cost_one_descriptor_and_no_buffer() {
    let srv = RawServer::start(&[]).await;
    let shoal = Shoal::start(&one_server(srv.addr, "    http-reuse always\n"), &["fe"]);
    let fe = shoal.addr("fe");
    let pid = shoal.proc.child.id();
    assert_eq!(ask(fe, &get("/")).await.status(), 200);
    let (base_rss, base_fds) = rss_kb_and_fds(pid);
    const N: usize = 1000;
    let mut clients = Vec::with_capacity(N);
    for _ in 0..N {
        let mut c = Conn::open(fe).await;
        c.send(get("/").as_bytes()).await;
        assert_eq!(c.response().await.expect("answer").status(), 200);
        clients.push(c);
    }
    let (rss, fds) = rss_kb_and_fds(pid);
    assert!(
        fds <= base_fds + N + 16,
        "{} descriptors for {N} idle clients",
        fds - base_fds
    );
    let per_client = (rss.saturating_sub(base_rss) * 1024) / N as u64;
    assert!(per_client < 8 * 1024, "{per_client} bytes per idle client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_is_logged_with_its_termination_state() {
    let srv = RawServer::start(&[
        ("/close", Script::Close),
        ("/hang", Script::Hang),
        (
            "/bad",
            Script::Send(b"HTTP/1.1 200 OK\r\nBad Header Line\r\n\r\n".to_vec()),
        ),
    ])
    .await;
    let dead = support::dead_addr();
    let cfg = format!(
        "defaults\n    mode http\n    timeout connect 1s\n    timeout client 10s\n    timeout server 500ms\n\
         \x20   log stdout format raw local0\n    option httplog\n\
         frontend fe\n    bind 127.0.0.1:0\n    log global\n    timeout http-request 300ms\n\
         \x20   acl gone path_beg /gone\n    use_backend gone if gone\n    default_backend app\n\
         backend app\n    server s1 {}\nbackend gone\n    retries 0\n    server x {dead}\n",
        srv.addr
    );
    let mut shoal = Shoal::start(&cfg, &["fe"]);
    let fe = shoal.addr("fe");
    let page_400 = ask(fe, "GARBAGE\x01 / HTTP/1.1\r\n\r\n").await;
    assert_eq!(page_400.status(), 400);
    assert!(page_400
        .text()
        .contains("Your browser sent an invalid request."));
    let line = shoal.proc.wait_line(" 400 0 - - PR-- ");
    assert!(
        line.contains(" fe fe/<NOSRV> -1/-1/-1/-1/") && line.ends_with("\"<BADREQ>\""),
        "{line}"
    );
    assert!(Conn::open(fe)
        .await
        .until_closed()
        .await
        .starts_with(b"HTTP/1.1 408 "));
    let line = shoal.proc.wait_line(" cR-- ");
    assert!(
        line.contains(" 408 0 ") && line.ends_with("\"<BADREQ>\""),
        "{line}"
    );
    let cases = [
        ("/gone", 503, "gone/x", "SC"),
        ("/close", 502, "app/s1", "SH"),
        ("/hang", 504, "app/s1", "sH"),
        ("/bad", 502, "app/s1", "PH"),
    ];
    for (path, status, server, termination) in cases {
        let answer = ask(fe, &get(path)).await;
        assert_eq!(answer.status(), status, "{path}");
        let line = shoal.proc.wait_line(&format!("\"GET {path} HTTP/1.1\""));
        assert!(
            line.contains(&format!(" {server} "))
                && line.contains(&format!(" {status} "))
                && line.contains(&format!(" {termination}-- ")),
            "{path}: {line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_stop_at_the_proxy() {
    let hop_response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: X-Secret\r\nX-Secret: 1\r\n\
        Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nUpgrade: h2c\r\nX-Keep: yes\r\n\r\nok";
    let srv = RawServer::start(&[("/hop", Script::Send(hop_response.to_vec()))]).await;
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    option forwardfor\n    default_backend app\n\
         backend app\n    server s1 {}\n",
        srv.addr
    );
    let shoal = Shoal::start(&cfg, &["fe"]);
    let fe = shoal.addr("fe");
    let seen = ask(
        fe,
        "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Foo\r\nX-Foo: 1\r\n\
         Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: gzip, trailers\r\n\
         Upgrade: h2c\r\nX-Forwarded-For: 10.1.1.1\r\nX-Case: MiXeD\r\n\r\n",
    )
    .await
    .text();
    // Order and case kept, hop-by-hop lines gone, our XFF line appended.
    assert_eq!(
        seen,
        "GET /echo HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.1.1.1\r\nX-Case: MiXeD\r\n\
         TE: trailers\r\nX-Forwarded-For: 127.0.0.1\r\n\r\n"
    );
    let answer = ask(fe, &get("/hop")).await;
    assert_eq!(answer.text(), "ok");
    for hop in [
        "connection",
        "x-secret",
        "keep-alive",
        "proxy-connection",
        "upgrade",
    ] {
        assert_eq!(answer.header(hop), None, "{hop} in {}", answer.head);
    }
    assert_eq!(answer.header("x-keep").as_deref(), Some("yes"));
}

/// `show stat` cell for `app/s1`.
fn stat(sock: &str, column: &str) -> String {
    let csv = cli(sock, "show stat");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines
        .next()
        .expect("header")
        .trim_start_matches("# ")
        .split(',')
        .collect();
    let col = header.iter().position(|c| *c == column).expect("column");
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|r| r[0] == "app" && r[1] == "s1")
        .map(|r| r[col].to_string())
        .expect("row app/s1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_faults_never_count_against_the_server() {
    let srv = RawServer::start(&[]).await;
    let chk = Backend::tcp("chk");
    let dir = TempDir::new("sock");
    let sock = dir.0.join("admin.sock").display().to_string();
    let cfg = format!(
        "global\n    stats socket {sock} level admin\n{DEFAULTS}\
         frontend fe\n    bind 127.0.0.1:0\n    default_backend app\n\
         backend app\n    server s1 {} check port {} inter 10s observe layer7 error-limit 3 on-error mark-down\n",
        srv.addr,
        chk.addr.port()
    );
    let mut shoal = Shoal::start(&cfg, &["fe"]);
    shoal.stats_sockets(1);
    let fe = shoal.addr("fe");
    let head = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    for bad in ["zz\r\nabc\r\n0\r\n\r\n", "3\r\nabcdef\r\n0\r\n\r\n"] {
        // With the head, or after it was forwarded: a 400 either way.
        assert_eq!(ask(fe, &format!("{head}{bad}")).await.status(), 400);
        for _ in 0..3 {
            let mut c = Conn::open(fe).await;
            let before = srv.heads.lock().expect("heads").len();
            c.send(head.as_bytes()).await;
            // The head reached the server before the bad chunk is sent.
            eventually("the head was forwarded", || async {
                srv.heads.lock().expect("heads").len() > before
            })
            .await;
            c.send(bad.as_bytes()).await;
            assert_eq!(c.response().await.expect("answer").status(), 400);
        }
    }
    // A client leaving in the middle of its body.
    let mut c = Conn::open(fe).await;
    c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        .await;
    drop(c);
    assert_eq!(ask(fe, &get("/")).await.status(), 200);
    assert_eq!(stat(&sock, "eresp"), "0");
    assert!(
        stat(&sock, "status").starts_with("UP"),
        "{}",
        stat(&sock, "status")
    );
    assert!(!shoal.proc.drain().iter().any(|l| l.contains("is DOWN")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_faults_get_502_and_count_against_the_server() {
    let srv = RawServer::start(&[
        // A bad chunk size in the same packet as the head.
        (
            "/badchunk",
            Script::Send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n".to_vec()),
        ),
        // Both lengths: Transfer-Encoding wins (HAProxy forwards it chunked).
        (
            "/clte",
            Script::Send(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".to_vec(),
            ),
        ),
        (
            "/unasked101",
            Script::Send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n".to_vec()),
        ),
        ("/badhead", Script::Send(b"HTTP/1.1 200 OK\r\nBad Header Line\r\n\r\nok".to_vec())),
    ])
    .await;
    let dir = TempDir::new("sock");
    let sock = dir.0.join("admin.sock").display().to_string();
    let cfg = format!(
        "global\n    stats socket {sock} level admin\n{}",
        one_server(srv.addr, "")
    );
    let mut shoal = Shoal::start(&cfg, &["fe"]);
    shoal.stats_sockets(1);
    let fe = shoal.addr("fe");
    for path in ["/badchunk", "/unasked101", "/badhead"] {
        let answer = ask(fe, &get(path)).await;
        assert_eq!(answer.status(), 502, "{path}: {answer:?}");
        assert!(answer.text().contains("502 Bad Gateway"), "{path}");
    }
    let clte = ask(fe, &get("/clte")).await;
    assert_eq!((clte.status(), clte.text().as_str()), (200, "hello"));
    assert_eq!(clte.header("content-length"), None);
    assert_eq!(stat(&sock, "eresp"), "3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_framing_is_as_strict_as_haproxy() {
    let srv = RawServer::start(&[]).await;
    let shoal = Shoal::start(&one_server(srv.addr, ""), &["fe"]);
    let fe = shoal.addr("fe");
    let post = "POST / HTTP/1.1\r\nHost: a\r\n";
    let body = "3\r\nabc\r\n0\r\n\r\n";
    // Statuses measured on HAProxy 2.6 (haproxy_compare.rs checks them live).
    let cases: Vec<(String, u16)> = vec![
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".into(), 400),
        ("GET http://b/ HTTP/1.1\r\nHost: a\r\n\r\n".into(), 400),
        (
            format!("{post}Transfer-Encoding: identity, chunked\r\n\r\n{body}"),
            422,
        ),
        (
            format!("{post}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n{body}"),
            400,
        ),
        (
            format!("{post}Transfer-Encoding: chunked, gzip\r\n\r\n{body}"),
            400,
        ),
        (
            format!("{post}Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"),
            400,
        ),
        (
            format!("{post}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n{body}"),
            200,
        ),
    ];
    for (request, want) in cases {
        assert_eq!(ask(fe, &request).await.status(), want, "{request:?}");
    }
    // Both lengths: the server sees chunked only, and the client connection
    // closes after the answer.
    let mut c = Conn::open(fe).await;
    c.send(
        format!("{post}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n{body}").as_bytes(),
    )
    .await;
    let answer = c.response().await.expect("answer");
    assert!(
        !answer
            .text()
            .to_ascii_lowercase()
            .contains("content-length"),
        "{}",
        answer.text()
    );
    assert_eq!(answer.header("connection").as_deref(), Some("close"));
    assert_eq!(c.until_closed().await, b"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_sessions_cuts_a_streaming_body() {
    let s1 = Backend::http("s1");
    let dir = TempDir::new("sock");
    let sock = dir.0.join("admin.sock").display().to_string();
    let cfg = format!(
        "global\n    stats socket {sock} level admin\n{}",
        one_server(s1.addr, "")
    );
    let mut shoal = Shoal::start(&cfg, &["fe"]);
    shoal.stats_sockets(1);
    let mut c = Conn::open(shoal.addr("fe")).await;
    c.send(get("/stall/15000").as_bytes()).await;
    // The body has started ("start"), then the server goes quiet.
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("start") {
        let mut chunk = [0u8; 1024];
        let n = tokio::time::timeout(
            DEADLINE,
            tokio::io::AsyncReadExt::read(&mut c.stream, &mut chunk),
        )
        .await
        .expect("data in time")
        .expect("read");
        assert!(n > 0, "closed early");
        got.extend_from_slice(&chunk[..n]);
    }
    let started = Instant::now();
    assert_eq!(cli(&sock, "shutdown sessions server app/s1"), "\n");
    let rest = c.until_closed().await;
    assert!(!String::from_utf8_lossy(&rest).contains("end"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_is_relayed() {
    let web = Backend::http("web");
    let shoal = Shoal::start(&one_server(web.addr, ""), &["fe"]);
    let mut c = Conn::open(shoal.addr("fe")).await;
    c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .await;
    // The body is sent only once the server said to go on.
    let interim = c.response().await.expect("interim answer");
    assert_eq!(interim.status(), 100, "{}", interim.head);
    c.send(b"hello").await;
    let answer = c.response().await.expect("final answer");
    assert_eq!((answer.status(), answer.text().as_str()), (200, "web"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_pipelining_and_close_delimited_answers() {
    let srv = RawServer::start(&[(
        "/until-close",
        Script::SendClose(b"HTTP/1.1 200 OK\r\nX-Kind: eof\r\n\r\nall of this".to_vec()),
    )])
    .await;
    let shoal = Shoal::start(&one_server(srv.addr, ""), &["fe"]);
    let fe = shoal.addr("fe");
    // A 3 MB upload with a length, echoed back (3 MB down), while it is
    // still being sent.
    let body: Vec<u8> = (0..3 * 1024 * 1024)
        .map(|i| b'a' + (i % 26) as u8)
        .collect();
    let head = format!(
        "POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let stream = tokio::net::TcpStream::connect(fe).await.expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    let data = [head.as_bytes(), &body].concat();
    let upload = tokio::spawn(async move {
        tokio::io::AsyncWriteExt::write_all(&mut wr, &data)
            .await
            .expect("upload");
        wr
    });
    let expected = head.len() + body.len();
    let mut got = Vec::new();
    loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            if got.len() >= i + 4 + expected {
                break;
            }
        }
        let mut chunk = vec![0u8; 65536];
        let n = tokio::time::timeout(DEADLINE, tokio::io::AsyncReadExt::read(&mut rd, &mut chunk))
            .await
            .expect("data in time")
            .expect("read");
        assert!(n > 0, "closed after {} bytes", got.len());
        got.extend_from_slice(&chunk[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert!(got.ends_with(&body), "echoed body intact");
    drop(upload.await.expect("writer"));
    let mut c = Conn::open(fe).await;
    // A chunked upload in many small chunks.
    let mut chunked =
        String::from("POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    for i in 0..500 {
        chunked.push_str(&format!(
            "{:x}\r\n{}\r\n",
            10 + i % 7,
            "z".repeat(10 + i % 7)
        ));
    }
    chunked.push_str("0\r\n\r\n");
    c.send(chunked.as_bytes()).await;
    let answer = c.response().await.expect("answer");
    assert_eq!(answer.status(), 200);
    assert!(
        answer.text().ends_with("0\r\n\r\n"),
        "the server got the whole chunked body"
    );
    // Two pipelined requests in one write, answered in order.
    c.send(format!("{}{}", get("/p1"), get("/p2")).as_bytes())
        .await;
    let p1 = c.response().await.expect("p1").text();
    let p2 = c.response().await.expect("p2").text();
    assert!(
        p1.starts_with("GET /p1 ") && p2.starts_with("GET /p2 "),
        "{p1} {p2}"
    );
    // HTTP/1.0 with keep-alive stays open; a close-delimited answer closes.
    c.send(b"GET /ten HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await;
    let ten = c.response().await.expect("1.0 answer");
    assert_eq!(ten.header("connection").as_deref(), Some("keep-alive"));
    c.send(get("/until-close").as_bytes()).await;
    let eof = c.response().await.expect("answer");
    assert_eq!(eof.text(), "all of this");
    assert_eq!(eof.header("connection").as_deref(), Some("close"));
    assert_eq!(c.until_closed().await, b"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_idempotent_requests_are_sent_again_when_a_reused_connection_dies() {
    let srv = RawServer::start(&[("/flaky", Script::CloseOnReuse)]).await;
    let shoal = Shoal::start(&one_server(srv.addr, "    http-reuse always\n"), &["fe"]);
    let fe = shoal.addr("fe");
    let sent = |method: &str| {
        let heads = srv.heads.lock().expect("heads");
        heads
            .iter()
            .filter(|h| h.starts_with(&format!("{method} /flaky ")))
            .count()
    };
    // One client connection per sequence: Shoal reads its next request
    // only after the previous answer is done and the server connection is
    // back for reuse (separate client connections would race with that).
    let mut c = Conn::open(fe).await;
    c.send(get("/flaky").as_bytes()).await;
    assert_eq!(c.response().await.expect("GET").status(), 200);
    // The idle connection is taken, and the server drops it unanswered:
    // an idempotent request (body included) goes again on a new connection.
    c.send(b"PUT /flaky HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\ndata")
        .await;
    let answer = c.response().await.expect("PUT");
    assert_eq!(answer.status(), 200, "{answer:?}");
    assert!(answer.text().ends_with("\r\n\r\ndata"), "{}", answer.text());
    assert_eq!((srv.conns.load(SeqCst), sent("PUT")), (2, 2));
    // A POST is not idempotent (RFC 9110 9.2.2): never sent twice.
    c.send(b"POST /flaky HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\ndata")
        .await;
    let answer = c.response().await.expect("POST");
    assert_eq!(answer.status(), 502, "{answer:?}");
    assert_eq!((srv.conns.load(SeqCst), sent("POST")), (2, 1));
    // A GET is sent again as well: the first one opens a connection (the
    // server closed the last one), the second reuses it and is replayed.
    let mut c = Conn::open(fe).await;
    for _ in 0..2 {
        c.send(get("/flaky").as_bytes()).await;
        assert_eq!(c.response().await.expect("GET").status(), 200);
    }
    assert_eq!((srv.conns.load(SeqCst), sent("GET")), (4, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_reset_is_a_read_error_for_passive_health() {
    let srv = RawServer::start(&[("/reset", Script::Reset)]).await;
    let chk = Backend::tcp("chk");
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend app\n\
         backend app\n    server s1 {} check port {} inter 10s observe layer7 error-limit 1 on-error mark-down\n",
        srv.addr,
        chk.addr.port()
    );
    let mut shoal = Shoal::start(&cfg, &["fe"]);
    assert_eq!(ask(shoal.addr("fe"), &get("/reset")).await.status(), 502);
    let line = shoal.proc.wait_line("Server app/s1 is DOWN");
    assert!(line.contains("last one was: Read error (http)"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_closes_idle_server_connections() {
    let srv = RawServer::start(&[]).await;
    let dir = TempDir::new("sock");
    let sock = dir.0.join("admin.sock").display().to_string();
    let cfg = format!(
        "global\n    stats socket {sock} level admin\n{}",
        one_server(srv.addr, "    http-reuse always\n")
    );
    let mut shoal = Shoal::start(&cfg, &["fe"]);
    shoal.stats_sockets(1);
    let fe = shoal.addr("fe");
    let conn = |a: Answer| a.header("x-conn").expect("x-conn");
    let first = conn(ask(fe, &get("/")).await);
    assert_eq!(conn(ask(fe, &get("/")).await), first, "reused while idle");
    assert_eq!(cli(&sock, "set server app/s1 state maint"), "\n");
    assert_eq!(cli(&sock, "set server app/s1 state ready"), "\n");
    assert_ne!(
        conn(ask(fe, &get("/")).await),
        first,
        "closed by maintenance"
    );
    eventually("the server saw its idle connection close", || async {
        srv.closed.load(SeqCst) >= 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_answer_reaches_a_client_still_uploading() {
    let srv = RawServer::start(&[]).await;
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend app\n\
         backend app\n    server s1 {} disabled\n",
        srv.addr
    );
    let shoal = Shoal::start(&cfg, &["fe"]);
    // 8 MB announced; the 503 comes before the body does.
    let stream = tokio::net::TcpStream::connect(shoal.addr("fe"))
        .await
        .expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    let upload = tokio::spawn(async move {
        let head = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 8388608\r\n\r\n";
        let _ = tokio::io::AsyncWriteExt::write_all(&mut wr, head.as_bytes()).await;
        let chunk = vec![b'u'; 64 * 1024];
        for _ in 0..128 {
            if tokio::io::AsyncWriteExt::write_all(&mut wr, &chunk)
                .await
                .is_err()
            {
                break;
            }
        }
        wr
    });
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        DEADLINE,
        tokio::io::AsyncReadExt::read_to_end(&mut rd, &mut answer),
    )
    .await
    .expect("closed in time");
    assert!(
        answer.starts_with(b"HTTP/1.1 503 Service Unavailable\r\n"),
        "{read:?}: {}",
        String::from_utf8_lossy(&answer)
    );
    assert!(String::from_utf8_lossy(&answer).contains("connection: close"));
    drop(upload.await);
}

/// Defaults with logging and a short `timeout server`.
fn logged(server: SocketAddr, timeouts: &str) -> String {
    format!(
        "defaults\n    mode http\n    timeout connect 1s\n{timeouts}\
         \x20   log stdout format raw local0\n    option httplog\n\
         frontend fe\n    bind 127.0.0.1:0\n    log global\n    default_backend app\n\
         backend app\n    server s1 {server}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_echoing_an_upload_as_it_comes_gets_all_of_it() {
    let srv = RawServer::start(&[("/echo", Script::Echo)]).await;
    let timeouts = "    timeout client 10s\n    timeout server 2s\n";
    let mut shoal = Shoal::start(&logged(srv.addr, timeouts), &["fe"]);
    // The answer starts with the first 10 KB; the rest of the upload must
    // keep flowing to the server while the echo flows back.
    let (head, body) = upload_while_reading(shoal.addr("fe"), "/echo", 200_000).await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert_eq!(body.len(), 200_000, "echoed bytes");
    assert!(body == pattern(200_000), "echo intact");
    let line = shoal.proc.wait_line("\"POST /echo HTTP/1.1\"");
    assert!(line.contains(" 200 ") && line.contains(" ---- "), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_answer_lets_the_upload_finish_and_the_connection_live() {
    let early = b"HTTP/1.1 413 Too Big\r\nContent-Length: 2\r\n\r\nno".to_vec();
    let srv = RawServer::start(&[("/drain", Script::EarlyThenDrain(early))]).await;
    let timeouts = "    timeout client 10s\n    timeout server 10s\n";
    let mut shoal = Shoal::start(&logged(srv.addr, timeouts), &["fe"]);
    let mut c = Conn::open(shoal.addr("fe")).await;
    let len = 1 << 20;
    c.send(format!("POST /drain HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n").as_bytes())
        .await;
    // The answer comes before the body; the body still goes to the server.
    let answer = c.response().await.expect("early answer");
    assert_eq!((answer.status(), answer.text().as_str()), (413, "no"));
    assert_eq!(
        answer.header("connection"),
        None,
        "kept alive, as by HAProxy"
    );
    c.send(&pattern(len)).await;
    c.send(get("/next").as_bytes()).await;
    let next = c.response().await.expect("next answer");
    assert!(next.text().starts_with("GET /next "), "{next:?}");
    let line = shoal.proc.wait_line("\"POST /drain HTTP/1.1\"");
    assert!(line.contains(" 413 ") && line.contains(" ---- "), "{line}");
    assert_eq!(srv.conns.load(SeqCst), 1, "one server connection for both");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_early_answer_the_side_that_stalls_the_upload_is_blamed() {
    let early = b"HTTP/1.1 413 Too Big\r\nContent-Length: 2\r\n\r\nno".to_vec();
    let srv = RawServer::start(&[
        ("/stop", Script::EarlyThenStop(early.clone())),
        ("/drain", Script::EarlyThenDrain(early)),
    ])
    .await;
    let timeouts = "    timeout client 600ms\n    timeout server 600ms\n";
    let mut shoal = Shoal::start(&logged(srv.addr, timeouts), &["fe"]);
    let fe = shoal.addr("fe");
    // The server stops reading: the upload is cut after `timeout server`.
    let stream = tokio::net::TcpStream::connect(fe).await.expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    let uploader = tokio::spawn(async move {
        let head = "POST /stop HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n";
        let _ = tokio::io::AsyncWriteExt::write_all(&mut wr, head.as_bytes()).await;
        let chunk = vec![b'u'; 64 * 1024];
        while tokio::io::AsyncWriteExt::write_all(&mut wr, &chunk)
            .await
            .is_ok()
        {}
    });
    let mut got = Vec::new();
    tokio::time::timeout(
        DEADLINE,
        tokio::io::AsyncReadExt::read_to_end(&mut rd, &mut got),
    )
    .await
    .expect("closed in time")
    .ok();
    assert!(got.starts_with(b"HTTP/1.1 413 ") && got.ends_with(b"\r\n\r\nno"));
    uploader.abort();
    let line = shoal.proc.wait_line("\"POST /stop HTTP/1.1\"");
    assert!(line.contains(" 413 ") && line.contains(" sD-- "), "{line}");
    // The client stops sending: the upload is cut after `timeout client`.
    let mut c = Conn::open(fe).await;
    c.send(b"POST /drain HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        .await;
    let answer = c.response().await.expect("early answer");
    assert_eq!(answer.status(), 413);
    let waited = Instant::now();
    assert_eq!(c.until_closed().await, b"");
    assert!(
        waited.elapsed() >= Duration::from_millis(400),
        "{:?}",
        waited.elapsed()
    );
    let line = shoal.proc.wait_line("\"POST /drain HTTP/1.1\"");
    assert!(line.contains(" 413 ") && line.contains(" cD-- "), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_early_answer_a_closing_server_or_a_bad_chunk_ends_the_exchange() {
    let early = b"HTTP/1.1 413 Too Big\r\nContent-Length: 2\r\n\r\nno".to_vec();
    let srv = RawServer::start(&[
        ("/close", Script::EarlyThenClose(early.clone())),
        ("/drain", Script::EarlyThenDrain(early)),
    ])
    .await;
    let timeouts = "    timeout client 10s\n    timeout server 10s\n";
    let mut shoal = Shoal::start(&logged(srv.addr, timeouts), &["fe"]);
    let fe = shoal.addr("fe");
    // The server closes instead of reading the rest: `SD`, as HAProxy.
    let stream = tokio::net::TcpStream::connect(fe).await.expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    let uploader = tokio::spawn(async move {
        let head = "POST /close HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n";
        let _ = tokio::io::AsyncWriteExt::write_all(&mut wr, head.as_bytes()).await;
        let chunk = vec![b'u'; 64 * 1024];
        while tokio::io::AsyncWriteExt::write_all(&mut wr, &chunk)
            .await
            .is_ok()
        {}
    });
    let mut got = Vec::new();
    tokio::time::timeout(
        DEADLINE,
        tokio::io::AsyncReadExt::read_to_end(&mut rd, &mut got),
    )
    .await
    .expect("closed in time")
    .ok();
    assert!(got.starts_with(b"HTTP/1.1 413 "), "{got:?}");
    uploader.abort();
    let line = shoal.proc.wait_line("\"POST /close HTTP/1.1\"");
    assert!(line.contains(" 413 ") && line.contains(" SD-- "), "{line}");
    // An invalid chunk after the answer started: `PD`, as HAProxy.
    let mut c = Conn::open(fe).await;
    c.send(b"POST /drain HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        .await;
    let answer = c.response().await.expect("early answer");
    assert_eq!(answer.status(), 413);
    c.send(b"zz\r\n").await;
    assert_eq!(c.until_closed().await, b"");
    let line = shoal.proc.wait_line("\"POST /drain HTTP/1.1\"");
    assert!(line.contains(" 413 ") && line.contains(" PD-- "), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_smuggled_request_in_a_streamed_body_never_reaches_the_server() {
    let srv = RawServer::start(&[]).await;
    let shoal = Shoal::start(&one_server(srv.addr, ""), &["fe"]);
    let mut c = Conn::open(shoal.addr("fe")).await;
    c.send(b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await;
    eventually("the head was forwarded", || async {
        !srv.heads.lock().expect("heads").is_empty()
    })
    .await;
    // A bare LF in a chunk extension: another parser ends the size line
    // there and finds a second request after the body.
    c.send(b"1;a\nX\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    let answer = c.response().await.expect("answer");
    assert_eq!(answer.status(), 400, "{answer:?}");
    assert_eq!(c.until_closed().await, b"");
    let heads = srv.heads.lock().expect("heads").clone();
    assert!(!heads.iter().any(|h| h.contains("/smuggled")), "{heads:?}");
}
