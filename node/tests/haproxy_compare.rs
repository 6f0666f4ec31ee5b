//! Shoal's HTTP data plane beside the real HAProxy 2.6, same config, same
//! requests: error pages (status and bytes), request framing verdicts,
//! header handling, head-size limits, and access-log lines.
//!
//! HAProxy gets its listening socket from the test (`bind fd@N` on a
//! socket bound to port 0), so no port is guessed.

mod http_support;
mod support;

use http_support::*;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::Command;
use support::{spawn_proc, Proc, Shoal, TempDir};

/// HAProxy and Shoal running the same config.
struct Pair {
    haproxy: Proc,
    shoal: Shoal,
    /// Where each proxy's frontend `fe` listens.
    h: SocketAddr,
    s: SocketAddr,
    _socket: std::net::TcpListener,
    _dir: TempDir,
}

/// `body` is a config whose frontend `fe` says `bind @BIND@`.
fn pair(body: &str) -> Pair {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let h = socket.local_addr().expect("addr");
    // Inherited by the HAProxy child (and harmlessly by others started
    // meanwhile; only HAProxy accepts on it).
    socket2::SockRef::from(&socket)
        .set_cloexec(false)
        .expect("clear close-on-exec");
    let dir = TempDir::new("compare");
    let hcfg = dir.file(
        "haproxy.cfg",
        &body.replace("@BIND@", &format!("fd@{}", socket.as_raw_fd())),
    );
    let mut cmd = Command::new("/usr/sbin/haproxy");
    cmd.arg("-f").arg(&hcfg).arg("-db");
    let haproxy = spawn_proc(cmd);
    let shoal = Shoal::start(&body.replace("@BIND@", "127.0.0.1:0"), &["fe"]);
    let s = shoal.addr("fe");
    Pair {
        haproxy,
        shoal,
        h,
        s,
        _socket: socket,
        _dir: dir,
    }
}

fn config(server: SocketAddr) -> String {
    format!(
        "global\n    nbthread 1\n\
         defaults\n    mode http\n    timeout connect 1s\n    timeout client 10s\n    timeout server 500ms\n\
         \x20   log stdout format raw local0\n    option httplog\n\
         frontend fe\n    bind @BIND@\n    log global\n    timeout http-request 400ms\n    option forwardfor\n\
         \x20   acl nosrv path_beg /nosrv\n    use_backend nosrv if nosrv\n    default_backend app\n\
         backend app\n    server s1 {server}\n\
         backend nosrv\n    server s2 {server} disabled\n"
    )
}

async fn scripted() -> RawServer {
    RawServer::start(&[
        (
            "/badchunk",
            Script::Send(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
                    .to_vec(),
            ),
        ),
        (
            "/unasked101",
            Script::Send(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                    .to_vec(),
            ),
        ),
        ("/hang", Script::Hang),
        ("/close", Script::Close),
    ])
    .await
}

/// Send `request` on a fresh connection and read the whole answer: up to
/// the close, or one response if the connection stays open.
async fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut c = Conn::open(addr).await;
    // A proxy may refuse before taking everything: ignore write errors.
    let _ = tokio::io::AsyncWriteExt::write_all(&mut c.stream, request).await;
    match c.response().await {
        Some(a) => a.raw,
        None => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_pages_and_framing_verdicts_match_haproxy() {
    let srv = scripted().await;
    let p = pair(&config(srv.addr));
    let post = "POST / HTTP/1.1\r\nHost: a\r\n";
    let chunks = "3\r\nabc\r\n0\r\n\r\n";
    let mut many = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..100 {
        many.push_str(&format!("X-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let big = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "b".repeat(20_000)
    );
    // Answers with no date or server-specific bytes: compared byte for byte.
    let cases: Vec<(&str, String)> = vec![
        ("malformed", "GARBAGE\x01 / HTTP/1.1\r\n\r\n".into()),
        (
            "two hosts",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".into(),
        ),
        (
            "authority differs",
            "GET http://b/ HTTP/1.1\r\nHost: a\r\n\r\n".into(),
        ),
        (
            "identity, chunked",
            format!("{post}Transfer-Encoding: identity, chunked\r\n\r\n{chunks}"),
        ),
        (
            "gzip, chunked",
            format!("{post}Transfer-Encoding: gzip, chunked\r\n\r\n{chunks}"),
        ),
        (
            "chunked twice",
            format!(
                "{post}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n{chunks}"
            ),
        ),
        (
            "chunked, chunked",
            format!("{post}Transfer-Encoding: chunked, chunked\r\n\r\n{chunks}"),
        ),
        (
            "not ending in chunked",
            format!("{post}Transfer-Encoding: chunked, gzip\r\n\r\n{chunks}"),
        ),
        (
            "lengths differ",
            format!("{post}Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"),
        ),
        ("bad length", format!("{post}Content-Length: +3\r\n\r\nabc")),
        (
            "bad chunk size",
            format!("{post}Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"),
        ),
        (
            "chunk too long",
            format!("{post}Transfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n"),
        ),
        ("101 header lines", many),
        ("20 KB header", big),
        ("no server", "GET /nosrv HTTP/1.1\r\nHost: a\r\n\r\n".into()),
        (
            "bad chunk from the server",
            "GET /badchunk HTTP/1.1\r\nHost: a\r\n\r\n".into(),
        ),
        (
            "101 not asked for",
            "GET /unasked101 HTTP/1.1\r\nHost: a\r\n\r\n".into(),
        ),
        (
            "server closes",
            "GET /close HTTP/1.1\r\nHost: a\r\n\r\n".into(),
        ),
        (
            "server too slow",
            "GET /hang HTTP/1.1\r\nHost: a\r\n\r\n".into(),
        ),
    ];
    for (what, request) in &cases {
        let h = exchange(p.h, request.as_bytes()).await;
        let s = exchange(p.s, request.as_bytes()).await;
        assert!(!h.is_empty(), "{what}: HAProxy answered nothing");
        assert_eq!(
            String::from_utf8_lossy(&s),
            String::from_utf8_lossy(&h),
            "{what}"
        );
    }
    // A connection that sends nothing: 408 after `timeout http-request`.
    let h = Conn::open(p.h).await.until_closed().await;
    let s = Conn::open(p.s).await.until_closed().await;
    assert!(h.starts_with(b"HTTP/1.1 408 "), "{h:?}");
    assert_eq!(s, h);
    // Both lengths: accepted, forwarded chunked, connection closed after.
    let request = format!("{post}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n{chunks}");
    for addr in [p.h, p.s] {
        let mut c = Conn::open(addr).await;
        c.send(request.as_bytes()).await;
        let answer = c.response().await.expect("answer");
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.header("connection").as_deref(), Some("close"));
        let seen = answer.text().to_ascii_lowercase();
        assert!(
            seen.contains("transfer-encoding: chunked") && !seen.contains("content-length"),
            "{seen}"
        );
    }
}

/// The header lines of an echoed request head, lowercased.
fn lines(head: &str) -> Vec<String> {
    head.lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_handling_compared_with_haproxy() {
    let srv = scripted().await;
    let p = pair(&config(srv.addr));
    let request = "GET /echo HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Foo\r\nX-Foo: 1\r\n\
                   Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: gzip, trailers\r\n\
                   Upgrade: h2c\r\nX-Forwarded-For: 10.1.1.1\r\n\r\n";
    let h = lines(&ask(p.h, request).await.text());
    let s = lines(&ask(p.s, request).await.text());
    // Both append their own X-Forwarded-For line last and keep the client's.
    assert_eq!(
        h.last().map(String::as_str),
        Some("x-forwarded-for: 127.0.0.1")
    );
    assert_eq!(s.last(), h.last());
    for both in ["host: a", "x-forwarded-for: 10.1.1.1", "te: trailers"] {
        assert!(h.iter().any(|l| l == both), "HAProxy lacks {both}: {h:?}");
        assert!(s.iter().any(|l| l == both), "Shoal lacks {both}: {s:?}");
    }
    // A deliberate difference: HAProxy 2.6 forwards these hop-by-hop
    // headers; Shoal removes them as RFC 9110 7.6.1 asks.
    for hop in ["x-foo:", "keep-alive:", "proxy-connection:", "upgrade:"] {
        assert!(h.iter().any(|l| l.starts_with(hop)), "HAProxy: {hop} {h:?}");
        assert!(!s.iter().any(|l| l.starts_with(hop)), "Shoal: {hop} {s:?}");
    }
    // Head size limit: the same largest head passes, one byte more fails.
    let head = |total: usize| {
        let start = "GET / HTTP/1.1\r\nHost: a\r\n";
        let pad = total - start.len() - "X-Pad: \r\n\r\n".len();
        format!("{start}X-Pad: {}\r\n\r\n", "p".repeat(pad))
    };
    for (size, status) in [(15273, 200), (15274, 400)] {
        let h = ask(p.h, &head(size)).await.status();
        let s = ask(p.s, &head(size)).await.status();
        assert_eq!((h, s), (status, status), "{size}-byte head");
    }
}

/// An httplog line without what legitimately differs: the client port,
/// the date, the timer values (only "-1", "not reached", is kept) and
/// the byte count (HAProxy counts its internal representation, a few
/// bytes off the wire).
fn normalize(line: &str) -> String {
    let f: Vec<&str> = line.split(' ').collect();
    // ip:port [date] fe be/srv TR/Tw/Tc/Tr/Ta status bytes rest...
    let ip = f[0].rsplit_once(':').map_or(f[0], |(ip, _)| ip);
    let timers: Vec<&str> = f[4]
        .split('/')
        .map(|t| if t == "-1" { "-1" } else { "t" })
        .collect();
    format!(
        "{ip} {} {} {} {} {}",
        f[2],
        f[3],
        timers.join("/"),
        f[5],
        f[7..].join(" ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_lines_match_haproxy() {
    let srv = scripted().await;
    let mut p = pair(&config(srv.addr));
    let cases = [
        ("GET /nosrv HTTP/1.1\r\nHost: a\r\n\r\n", " 503 "),
        (
            "GET /badchunk HTTP/1.1\r\nHost: a\r\n\r\n",
            "\"GET /badchunk",
        ),
        ("GET /close HTTP/1.1\r\nHost: a\r\n\r\n", "\"GET /close"),
        ("GET /hang HTTP/1.1\r\nHost: a\r\n\r\n", "\"GET /hang"),
        ("GARBAGE\x01 / HTTP/1.1\r\n\r\n", " PR-- "),
        ("GET /ok HTTP/1.1\r\nHost: a\r\n\r\n", "\"GET /ok"),
    ];
    for (request, needle) in cases {
        exchange(p.h, request.as_bytes()).await;
        exchange(p.s, request.as_bytes()).await;
        let h = normalize(&p.haproxy.wait_line(needle));
        let s = normalize(&p.shoal.proc.wait_line(needle));
        assert_eq!(s, h, "{request:?}");
    }
}

/// Read `n` answers from one connection (fewer if it closes first).
async fn answers(addr: SocketAddr, request: &[u8], n: usize) -> Vec<Answer> {
    let mut c = Conn::open(addr).await;
    let _ = tokio::io::AsyncWriteExt::write_all(&mut c.stream, request).await;
    let mut got = Vec::new();
    while got.len() < n {
        match c.response().await {
            Some(a) => got.push(a),
            None => break,
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_framing_compared_with_haproxy() {
    let srv = RawServer::start(&[(
        "/lfchunk",
        Script::Send(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;a\nX\r\n0\r\n\r\n".to_vec(),
        ),
    )])
    .await;
    let p = pair(&config(srv.addr));
    let post = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    // Both refuse, with the same bytes.
    for (what, body) in [
        ("empty size line", "3\r\nabc\r\n\r\n\r\n"),
        (
            "trailer without a colon",
            "3\r\nabc\r\n0\r\nbad trailer\r\n\r\n",
        ),
        ("size of 2^52", "10000000000000\r\n"),
        ("no size, only an extension", ";a=b\r\nabc\r\n0\r\n\r\n"),
    ] {
        let request = format!("{post}{body}");
        let h = exchange(p.h, request.as_bytes()).await;
        let s = exchange(p.s, request.as_bytes()).await;
        assert!(h.starts_with(b"HTTP/1.1 400 "), "{what}: HAProxy {h:?}");
        assert_eq!(
            String::from_utf8_lossy(&s),
            String::from_utf8_lossy(&h),
            "{what}"
        );
    }
    // Both accept valid extensions, padding and trailers.
    let valid = format!(
        "{post}3 ;a=b; c = \"x;\\\" y\"\r\nabc\r\n000000000000000000001\r\nd\r\n0\r\nX-T: 1\r\nX-U:\r\n\r\n"
    );
    for addr in [p.h, p.s] {
        let answer = ask(addr, &valid).await;
        assert_eq!(answer.status(), 200, "{addr}: {answer:?}");
    }
    // Deliberately stricter than HAProxy, which ends a chunk line at a bare
    // LF and skips any byte up to the line end in an extension: Shoal
    // forwards chunk lines as received, so it refuses what another parser
    // could frame differently. (A trailer name with a space is left out:
    // HAProxy 2.6 refuses it or not depending on how the bytes arrive.)
    for (what, body) in [
        ("bare LF in an extension", "1;a\nX\r\n0\r\n\r\n"),
        ("bare LF ending a size line", "3\nabc\r\n0\r\n\r\n"),
        ("bare LF after chunk data", "3\r\nabc\n0\r\n\r\n"),
        ("bare LF in trailers", "0\r\nX-T: 1\n\r\n"),
        (
            "control byte in an extension",
            "3;a\x01b\r\nabc\r\n0\r\n\r\n",
        ),
        ("extension without a name", "3;=x\r\nabc\r\n0\r\n\r\n"),
        ("unclosed quoted extension", "3;a=\"x\r\nabc\r\n0\r\n\r\n"),
    ] {
        let request = format!("{post}{body}");
        let h = ask(p.h, &request).await;
        assert_eq!(h.status(), 200, "{what}: HAProxy {h:?}");
        assert_eq!(ask(p.s, &request).await.status(), 400, "{what}: Shoal");
    }
    // The smuggling attempt: HAProxy splits it into two requests, both
    // routed and logged; Shoal refuses it whole, and its server never sees
    // the second request.
    let smuggle = format!("{post}1;a\nX\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n");
    let h = answers(p.h, smuggle.as_bytes(), 2).await;
    let statuses: Vec<u16> = h.iter().map(Answer::status).collect();
    assert_eq!(statuses, [200, 200], "HAProxy");
    assert!(h[1].text().starts_with("GET /smuggled "), "{:?}", h[1]);
    let seen = |srv: &RawServer| {
        let heads = srv.heads.lock().expect("heads");
        heads.iter().filter(|h| h.contains("/smuggled")).count()
    };
    assert_eq!(seen(&srv), 1);
    let s = answers(p.s, smuggle.as_bytes(), 2).await;
    let statuses: Vec<u16> = s.iter().map(Answer::status).collect();
    assert_eq!(statuses, [400], "Shoal answers once, then closes");
    assert_eq!(seen(&srv), 1, "the smuggled request reached the server");
    // A response chunk line ended by a bare LF: HAProxy forwards it, Shoal
    // answers 502 before forwarding anything.
    let h = ask(p.h, "GET /lfchunk HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!((h.status(), h.text().as_str()), (200, "X"));
    let s = ask(p.s, "GET /lfchunk HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(s.status(), 502, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_flow_beside_the_answer_as_in_haproxy() {
    let early = b"HTTP/1.1 413 Too Big\r\nContent-Length: 2\r\n\r\nno".to_vec();
    let srv = RawServer::start(&[
        ("/echo", Script::Echo),
        ("/drain", Script::EarlyThenDrain(early)),
    ])
    .await;
    let mut p = pair(&config(srv.addr));
    // A streaming echo: the answer starts with the first 10 KB, and the
    // rest of the upload must keep flowing while the echo comes back.
    for addr in [p.h, p.s] {
        let (head, body) = upload_while_reading(addr, "/echo", 200_000).await;
        assert!(head.starts_with("HTTP/1.1 200 "), "{addr}: {head}");
        assert_eq!(body.len(), 200_000, "{addr}: echoed bytes");
        assert!(body == pattern(200_000), "{addr}: echo intact");
    }
    let h = normalize(&p.haproxy.wait_line("\"POST /echo"));
    let s = normalize(&p.shoal.proc.wait_line("\"POST /echo"));
    assert_eq!(s, h);
    // An early answer: the body still goes to the server, which reads it
    // all, and the connection serves the next request.
    let len = 300_000;
    for addr in [p.h, p.s] {
        let mut c = Conn::open(addr).await;
        let head = format!("POST /drain HTTP/1.1\r\nHost: a\r\nContent-Length: {len}\r\n\r\n");
        c.send(head.as_bytes()).await;
        let answer = c.response().await.expect("early answer");
        assert_eq!((answer.status(), answer.text().as_str()), (413, "no"));
        assert_eq!(answer.header("connection"), None, "{addr}");
        c.send(&pattern(len)).await;
        c.send(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n").await;
        let next = c.response().await.expect("next answer");
        assert!(next.text().starts_with("GET /next "), "{addr}: {next:?}");
    }
    let h = normalize(&p.haproxy.wait_line("\"POST /drain"));
    let s = normalize(&p.shoal.proc.wait_line("\"POST /drain"));
    assert_eq!(s, h);
}
