//! HTTP/2 towards servers (`server ... proto h2`, `ssl alpn h2`) through
//! real sockets: a real `shoal`, real `shoal-demo-backend --h2` servers
//! (h2c, prior knowledge), TLS origins served by a second `shoal`, and
//! the real HAProxy 2.6 beside Shoal for statuses, bodies and checks.

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;
use tokio::net::TcpStream;

const DEFAULTS: &str =
    "defaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n";

/// A `shoal-demo-backend http --h2` (HTTP/2 only, prior knowledge): the
/// support `Backend`, started in that mode.
struct H2Backend(Backend);

/// The demo backend's arguments for h2c.
const H2_MODE: &str = "http --h2";

impl std::ops::Deref for H2Backend {
    type Target = Backend;
    fn deref(&self) -> &Backend {
        &self.0
    }
}

impl std::ops::DerefMut for H2Backend {
    fn deref_mut(&mut self) -> &mut Backend {
        &mut self.0
    }
}

impl H2Backend {
    fn start(name: &str) -> H2Backend {
        H2Backend(Backend::start(H2_MODE, name, "127.0.0.1:0"))
    }
    /// Start again on the same address (after `stop`).
    fn restart(&mut self) {
        self.0.restart(H2_MODE);
    }
    /// Connections accepted so far, this query's own included.
    async fn conns(&self) -> usize {
        h2_get(self.addr, "/conns")
            .await
            .body
            .trim()
            .parse()
            .expect("connection count")
    }
}

/// One HTTP/2 (prior knowledge) GET on a fresh connection.
async fn h2_get(addr: SocketAddr, path: &str) -> Resp {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let req = hyper::Request::get(format!("http://{addr}{path}"))
        .body(Full::new(Bytes::new()))
        .expect("request");
    read_resp(sender.send_request(req).await.expect("response")).await
}

/// One HTTP/1.1 request with a body on a fresh connection.
async fn post(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Resp {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut req = hyper::Request::post(path).header("host", "app.test");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body))).expect("request");
    let resp = tokio::time::timeout(DEADLINE, sender.send_request(req))
        .await
        .expect("answer in time")
        .expect("response");
    read_resp(resp).await
}

fn header<'a>(resp: &'a Resp, name: &str) -> &'a str {
    resp.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_requests_reach_an_h2c_server_as_streams() {
    let be = H2Backend::start("h2s");
    let cfg = format!(
        "{DEFAULTS}    log stdout format raw local0\n    option httplog\n\
         frontend fe\n    bind 127.0.0.1:0\n    log global\n    option forwardfor\n\
         \x20   http-request set-header X-Added yes\n    default_backend be\n\
         backend be\n    timeout server 2s\n    cookie SRV insert\n    server s1 {} proto h2\n",
        be.addr
    );
    let mut shoal = Shoal::start(&cfg, &["fe"]);
    let fe = shoal.addr("fe");

    // The request's headers and body arrive over HTTP/2; rewriting,
    // forwardfor and the response cookie are the engine's as usual.
    let body: Vec<u8> = (0..200_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let resp = post(fe, "/echo?logme", &[("x-custom", "1")], body.clone()).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(header(&resp, "x-backend-proto"), "HTTP/2.0");
    assert!(
        header(&resp, "set-cookie").starts_with("SRV=s1"),
        "{resp:?}"
    );
    let (head, echoed) = resp.body.split_once("\n\n").expect("echo head");
    assert!(
        head.starts_with("HTTP/2.0 POST http://app.test/echo?logme"),
        "{head}"
    );
    for line in [
        "x-custom: 1",
        "x-added: yes",
        "x-forwarded-for: 127.0.0.1",
        "host: app.test",
    ] {
        assert!(head.lines().any(|l| l == line), "{line} in {head}");
    }
    assert_eq!(echoed.as_bytes(), &body[..]);
    let log = shoal.proc.wait_line("/echo?logme");
    assert!(log.contains(" fe be/s1 ") && log.contains(" 200 "), "{log}");

    // As many header lines as the engine takes (`tune.http.maxhdr`),
    // plus the two the frontend adds, cross to the server.
    let mut many = String::from("GET /echo HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n");
    for i in 0..98 {
        many.push_str(&format!("X-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let answer = raw(fe, many.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("\nx-97: v\n") && answer.contains("\nx-added: yes\n"),
        "{answer}"
    );

    // A chunked request body, and an HTTP/1.0 client.
    let chunked = raw(
        fe,
        b"POST /echo HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    .await;
    assert!(chunked.starts_with("HTTP/1.1 200"), "{chunked}");
    assert!(
        chunked.contains("\r\n\r\nHTTP/2.0 POST http://a.test/echo\n"),
        "{chunked}"
    );
    assert!(chunked.ends_with("\n\nhello world"), "{chunked}");
    let old = raw(fe, b"GET /echo HTTP/1.0\r\nHost: a.test\r\n\r\n").await;
    assert!(
        old.starts_with("HTTP/1.0 200") || old.starts_with("HTTP/1.1 200"),
        "{old}"
    );
    assert!(old.contains("HTTP/2.0 GET http://a.test/echo\n"), "{old}");

    // The response streams: the first chunk comes before the server's
    // second, a second later.
    let tcp = TcpStream::connect(fe).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = hyper::Request::get("/stall/1000")
        .header("host", "app.test")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let resp = sender.send_request(req).await.expect("response");
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let first = body.frame().await.expect("a frame").expect("data");
    let at_first = Instant::now();
    assert_eq!(first.into_data().expect("data"), "start\n");
    let rest = body.collect().await.expect("rest").to_bytes();
    assert_eq!(rest, "end\n");
    assert!(
        at_first.elapsed() >= Duration::from_millis(500),
        "the first chunk waited for the last"
    );

    // `timeout server` still bounds the server's silence: 504, sH.
    let resp = get(fe, "/delay/4000").await;
    assert_eq!(resp.status, 504, "{resp:?}");
    let log = shoal.proc.wait_line("/delay/4000");
    assert!(log.contains(" 504 ") && log.contains(" sH"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_one_connection_and_a_dead_server_is_reconnected() {
    let mut be = H2Backend::start("h2s");
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend be\n\
         backend be\n    server s1 {} proto h2\n",
        be.addr
    );
    let shoal = Shoal::start(&cfg, &["fe"]);
    let fe = shoal.addr("fe");
    let before = be.conns().await;
    // 20 clients at once, each on its own connection to Shoal.
    let tasks: Vec<_> = (0..20)
        .map(|_| tokio::spawn(async move { get(fe, "/delay/300").await }))
        .collect();
    for t in tasks {
        let resp = t.await.expect("task");
        assert_eq!(
            (resp.status, header(&resp, "x-backend-proto")),
            (200, "HTTP/2.0")
        );
    }
    let peak: usize = h2_get(be.addr, "/peak").await.body.parse().expect("peak");
    assert!(peak >= 2, "requests ran at once on the server: {peak}");
    // Our own two probes aside, one connection carried all 20.
    let opened = be.conns().await - before - 2;
    assert_eq!(opened, 1, "connections opened for 20 requests");

    // The server dies: requests are answered 503 (the connection is
    // refused), then it comes back and is reached on a new connection.
    // (A request racing Shoal's notice that the connection closed may get
    // 502 instead, as the connection it was sent on broke.)
    be.stop();
    let resp = get(fe, "/").await;
    assert!(matches!(resp.status, 502 | 503), "{resp:?}");
    eventually("503 once the server is gone", || async {
        get(fe, "/").await.status == 503
    })
    .await;
    be.restart();
    eventually("the restarted server is reached again", || async {
        get(fe, "/").await.status == 200
    })
    .await;
}

/// A self-signed certificate for `alpha.test`, chain and key in one file.
fn certificate(dir: &TempDir) -> std::path::PathBuf {
    let ck = rcgen::generate_simple_self_signed(vec!["alpha.test".to_string()]).expect("cert");
    dir.file(
        "alpha.pem",
        &format!("{}{}", ck.cert.pem(), ck.key_pair.serialize_pem()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_clients_over_tls_reach_an_h2c_server() {
    let dir = TempDir::new("h2up");
    let crt = certificate(&dir);
    let be = H2Backend::start("h2s");
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0 ssl crt {} alpn h2\n    default_backend be\n\
         backend be\n    server s1 {} proto h2\n",
        crt.display(),
        be.addr
    );
    let shoal = Shoal::start(&cfg, &["fe"]);
    let fe = shoal.addr("fe");
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates({
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(&crt).expect("read cert");
        for cert in rustls_pemfile_certs(&pem) {
            roots.add(cert).expect("root");
        }
        roots
    })
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(fe).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("alpha.test").expect("name");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let mut tasks = Vec::new();
    for i in 0..5 {
        let mut sender = sender.clone();
        tasks.push(tokio::spawn(async move {
            let req = hyper::Request::post(format!("https://alpha.test/echo?n={i}"))
                .body(Full::new(Bytes::from(format!("payload {i}"))))
                .expect("request");
            let resp = sender.send_request(req).await.expect("response");
            assert_eq!(resp.version(), hyper::Version::HTTP_2);
            (i, read_resp(resp).await)
        }));
    }
    for t in tasks {
        let (i, resp) = t.await.expect("task");
        assert_eq!(resp.status, 200, "{resp:?}");
        let (head, body) = resp.body.split_once("\n\n").expect("echo");
        // Clear text to the server: `:scheme` http.
        assert!(
            head.starts_with(&format!("HTTP/2.0 POST http://alpha.test/echo?n={i}")),
            "{head}"
        );
        assert_eq!(body, format!("payload {i}"));
    }
}

/// The certificates of a PEM file.
fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .expect("pem")
}

/// A TLS origin: a second Shoal terminating TLS in `mode tcp` (offering
/// `alpn`) in front of `server`, so the bytes the edge sends over TLS
/// reach the demo backend unchanged.
fn tls_origin(dir: &TempDir, alpn: &str, server: SocketAddr) -> Shoal {
    let crt = certificate(dir);
    let cfg = format!(
        "defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n\
         frontend origin\n    bind 127.0.0.1:0 ssl crt {} alpn {alpn}\n    default_backend be\n\
         backend be\n    server s {server}\n",
        crt.display()
    );
    Shoal::start(&cfg, &["origin"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_over_tls_to_servers_forced_or_chosen_by_alpn() {
    let dir = TempDir::new("h2up");
    let h2 = H2Backend::start("h2s");
    let h1 = Backend::http("h1s");
    let h2_origin = tls_origin(&dir, "h2", h2.addr);
    let h1_origin = tls_origin(&dir, "http/1.1", h1.addr);
    let (o2, o1) = (h2_origin.addr("origin"), h1_origin.addr("origin"));
    let cases = [
        (
            "forced",
            format!("{o2} ssl verify none alpn h2 proto h2"),
            "HTTP/2.0",
        ),
        (
            "chosen",
            format!("{o2} ssl verify none alpn h2,http/1.1"),
            "HTTP/2.0",
        ),
        (
            "fallback",
            format!("{o1} ssl verify none alpn h2,http/1.1"),
            "HTTP/1.1",
        ),
        (
            "pinned",
            format!("{o2} ssl verify none alpn h2,http/1.1 proto h1"),
            "",
        ),
    ];
    let mut cfg = format!("{DEFAULTS}    retries 0\nfrontend edge\n    bind 127.0.0.1:0\n");
    for (name, _, _) in &cases {
        cfg.push_str(&format!(
            "    use_backend {name} if {{ hdr(x-case) {name} }}\n"
        ));
    }
    for (name, server, _) in &cases {
        cfg.push_str(&format!("backend {name}\n    server o {server}\n"));
    }
    let edge = Shoal::start(&cfg, &["edge"]);
    let e = edge.addr("edge");
    for (name, _, version) in &cases {
        let resp = post(e, "/echo", &[("x-case", name)], b"over tls".to_vec()).await;
        if version.is_empty() {
            // `proto h1` speaks HTTP/1.1 to an HTTP/2-only server: its
            // answer is not HTTP, a 502 as from HAProxy.
            assert_eq!(resp.status, 502, "{name}: {resp:?}");
            continue;
        }
        assert_eq!(resp.status, 200, "{name}: {resp:?}");
        assert!(
            resp.body.starts_with(&format!("{version} POST ")),
            "{name}: {}",
            resp.body
        );
        assert!(resp.body.ends_with("\n\nover tls"), "{name}: {}", resp.body);
        if *version == "HTTP/2.0" {
            assert!(
                resp.body.starts_with("HTTP/2.0 POST https://app.test/echo"),
                "{name}: {}",
                resp.body
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_bodies_and_checks_match_haproxy() {
    let mut be = H2Backend::start("h2s");
    let listener = Inherited::new();
    let dir = TempDir::new("h2up-haproxy");
    let sock = dir.0.join("haproxy.sock");
    let body = |bind: &str, global: &str| {
        format!(
            "global\n{global}{DEFAULTS}    retries 1\n\
             frontend fe\n    bind {bind}\n    default_backend be\n\
             backend be\n    option httpchk GET /health\n    http-check expect string healthy\n\
             \x20   server s1 {a} proto h2 check inter 200ms\n\
             \x20   server s2 {a} check inter 200ms\n",
            a = be.addr
        )
    };
    let _haproxy = Haproxy::start(
        &body(
            &listener.bind(),
            &format!("    stats socket {} level admin\n", sock.display()),
        ),
        &sock,
    );
    let mut shoal = Shoal::start(
        &body("127.0.0.1:0", "    stats socket 127.0.0.1:0 level admin\n"),
        &["fe"],
    );
    let stats = shoal.stats_sockets(1)[0].clone();
    let (h, s) = (listener.addr, shoal.addr("fe"));
    // Checks: the `proto h2` server is checked over HTTP/2 and is UP; the
    // other speaks HTTP/1.1 to an HTTP/2-only server and is DOWN.
    let states = |out: String| {
        out.lines()
            .filter(|l| l.starts_with("be,s"))
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                format!("{} {} {}", f[1], f[17], f[36])
            })
            .collect::<Vec<_>>()
    };
    let want = vec!["s1 UP L7OK".to_string(), "s2 DOWN L7RSP".to_string()];
    let hsock = format!("unix-connect:{}", sock.display());
    let ssock = format!("tcp:{stats}");
    eventually("HAProxy's checks settle", || async {
        states(socat(&hsock, "show stat\n")) == want
    })
    .await;
    eventually("Shoal's checks settle as HAProxy's", || async {
        states(socat(&ssock, "show stat\n")) == want
    })
    .await;
    // The same answers through both.
    for path in ["/", "/status/404", "/status/503"] {
        let (a, b) = (get(h, path).await, get(s, path).await);
        assert_eq!((a.status, &a.body), (b.status, &b.body), "{path}");
        assert_eq!(header(&b, "x-backend-proto"), "HTTP/2.0", "{path}");
    }
    // The server's counters agree: one answer per class, three sessions.
    let counters = |out: String| {
        let mut lines = out.lines();
        let names: Vec<String> = lines
            .next()
            .unwrap_or("")
            .trim_start_matches("# ")
            .split(',')
            .map(str::to_string)
            .collect();
        let row: Vec<String> = lines
            .find(|l| l.starts_with("be,s1,"))
            .unwrap_or("")
            .split(',')
            .map(str::to_string)
            .collect();
        ["stot", "hrsp_2xx", "hrsp_4xx", "hrsp_5xx"]
            .map(|n| {
                let i = names.iter().position(|x| x == n).expect("column");
                format!("{n}={}", row.get(i).map_or("", String::as_str))
            })
            .join(" ")
    };
    let (hc, sc) = (
        counters(socat(&hsock, "show stat\n")),
        counters(socat(&ssock, "show stat\n")),
    );
    assert_eq!(sc, "stot=3 hrsp_2xx=1 hrsp_4xx=1 hrsp_5xx=1");
    assert_eq!(hc, sc);
    // An upgrade cannot cross HTTP/2 (no extended CONNECT): 400.
    let ws = [("upgrade", "websocket"), ("connection", "upgrade")];
    let (a, b) = (get_with(h, "/ws", &ws).await, get_with(s, "/ws", &ws).await);
    assert_eq!(a.status, 400, "{a:?}");
    assert_eq!((a.status, &a.body), (b.status, &b.body));
    // The server dies: both answer 503 with HAProxy's page.
    be.stop();
    let (a, b) = (get(h, "/").await, get(s, "/").await);
    assert_eq!(a.status, 503, "{a:?}");
    assert_eq!((a.status, &a.body), (b.status, &b.body));
}

#[test]
fn misplaced_protocols_are_refused_with_the_line() {
    let dir = TempDir::new("h2up-check");
    let cases = [
        (
            "defaults\n    mode tcp\nbackend be\n    server a 127.0.0.1:80 proto h2\n",
            4,
            "MUX protocol 'h2' is not usable for server 'a': backend 'be' is in mode tcp",
        ),
        (
            "backend be\n    mode http\n    server a 127.0.0.1:80 proto fcgi\n",
            3,
            "server option 'proto fcgi' is not implemented",
        ),
        (
            "backend be\n    mode http\n    server a 127.0.0.1:80 proto h2 check check-proto h1\n",
            3,
            "server option 'check-proto' is not implemented",
        ),
    ];
    for (i, (cfg, line, says)) in cases.iter().enumerate() {
        let path = dir.file(&format!("c{i}.cfg"), cfg);
        let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
            .args(["check", "-f"])
            .arg(&path)
            .output()
            .expect("shoal");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        let at = format!("{}:{line}: ", path.display());
        assert!(
            err.lines().any(|l| l.starts_with(&at) && l.contains(says)),
            "{cfg}: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_switches_a_server_to_http2_and_back() {
    let be = H2Backend::start("h2s");
    let cfg = |opts: &str| {
        format!(
            "{DEFAULTS}    retries 0\nfrontend fe\n    bind 127.0.0.1:0\n    default_backend be\n\
             backend be\n    server s1 {} {opts}\n",
            be.addr
        )
    };
    let mut shoal = Shoal::start(&cfg(""), &["fe"]);
    let fe = shoal.addr("fe");
    // HTTP/1.1 to an HTTP/2-only server: not an answer.
    assert_eq!(get(fe, "/").await.status, 502);
    shoal.reload(&cfg("proto h2"), &[]);
    let resp = get(fe, "/").await;
    assert_eq!(
        (resp.status, header(&resp, "x-backend-proto")),
        (200, "HTTP/2.0")
    );
    shoal.reload(&cfg(""), &[]);
    assert_eq!(get(fe, "/").await.status, 502);
}
