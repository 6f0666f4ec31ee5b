//! `server ... ssl sni EXPR` through real sockets: a real `shoal` edge
//! speaking TLS to a real TLS origin (a second `shoal` terminating TLS
//! with certificates for a.example and b.example, in front of a demo
//! backend), which tells the SNI it received in a request header
//! (`X-Origin-Sni`) and counts the connections it accepted (`stot` on its
//! stats socket). The real HAProxy 2.6 stands beside the edge for the
//! basic `sni req.hdr(host)` case.

mod support;

use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const DEFAULTS: &str =
    "defaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n";

/// A CA and leaves for a.example and b.example (chain and key in one
/// file each), made at test time.
struct Certs {
    dir: TempDir,
    ca: PathBuf,
    a: PathBuf,
    b: PathBuf,
}

impl Certs {
    fn new() -> Certs {
        let dir = TempDir::new("sni");
        let ca = TestCa::new("Shoal SNI test CA");
        let leaf = |name: &str| {
            let (cert, key) = ca.leaf(vec![name.to_string()], name);
            dir.file(
                &format!("{name}.pem"),
                &format!("{}{}{}", cert.pem(), ca.pem(), key.serialize_pem()),
            )
        };
        let (a, b) = (leaf("a.example"), leaf("b.example"));
        let ca = dir.file("ca.pem", &ca.pem());
        Certs { dir, ca, a, b }
    }
}

/// The TLS origin: a.example's certificate is its default (served for
/// any other name or none); each request gets `X-Origin-Sni` (the SNI the
/// origin received, `none` without one) and its `/echo-headers` answer
/// shows it.
struct Origin {
    shoal: Shoal,
    stats: String,
    addr: SocketAddr,
    _web: Backend,
}

impl Origin {
    fn start(certs: &Certs) -> Origin {
        let web = Backend::http("web");
        let mut tags = String::new();
        for name in ["a.example", "b.example", "c.example"] {
            tags.push_str(&format!(
                "    http-request set-header X-Origin-Sni {name} if {{ ssl_fc_sni {name} }}\n"
            ));
        }
        let cfg = format!(
            "global\n    stats socket 127.0.0.1:0 level admin\n{DEFAULTS}\
             frontend origin\n    bind 127.0.0.1:0 ssl crt {} crt {} alpn h2,http/1.1\n{tags}\
             \x20   http-request set-header X-Origin-Sni none unless {{ ssl_fc_sni -m found }}\n\
             \x20   default_backend be\nbackend be\n    server web {}\n",
            certs.a.display(),
            certs.b.display(),
            web.addr
        );
        let mut shoal = Shoal::start(&cfg, &["origin"]);
        let stats = shoal.stats_sockets(1)[0].clone();
        let addr = shoal.addr("origin");
        Origin {
            shoal,
            stats,
            addr,
            _web: web,
        }
    }

    /// TLS connections the origin has accepted (`stot` of its frontend).
    fn accepted(&self) -> u64 {
        stat_cell(&self.stats, "origin,FRONTEND,", "stot")
            .parse()
            .expect("stot")
    }
}

/// The SNI the origin saw for an answer relayed from it.
fn origin_sni(resp: &Resp) -> String {
    resp.body
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("x-origin-sni")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_default()
}

/// An edge config: frontend `edge` to backend `be`, whose one server is
/// the origin with `opts`.
fn edge_config(origin: SocketAddr, opts: &str) -> String {
    format!(
        "{DEFAULTS}    retries 0\nfrontend edge\n    bind 127.0.0.1:0\n    default_backend be\n\
         backend be\n    server o {origin} {opts}\n"
    )
}

/// Requests on one client connection carry their own Host as SNI; a
/// server connection is reused only by a request whose SNI is the one it
/// was opened with; the certificate is checked against that SNI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_sends_its_host_as_sni_and_reuses_only_matching_connections() {
    let certs = Certs::new();
    let origin = Origin::start(&certs);
    let ca = certs.ca.display();
    let edge = Shoal::start(
        &edge_config(
            origin.addr,
            &format!("ssl ca-file {ca} sni req.hdr(host),lower,field(1,:)"),
        ),
        &["edge"],
    );
    let e = edge.addr("edge");
    let mut client = Client::connect(e).await;
    let before = origin.accepted();
    // (Host, SNI the origin must see, connections it has accepted since).
    let steps = [
        ("a.example", "a.example", 1),
        ("b.example", "b.example", 2),
        ("A.Example:443", "a.example", 2),
        ("b.example", "b.example", 2),
        ("a.example", "a.example", 2),
    ];
    for (host, sni, accepted) in steps {
        let resp = client.request("/echo-headers", &[("host", host)]).await;
        assert_eq!(resp.status, 200, "{host}: {resp:?}");
        assert_eq!(origin_sni(&resp), sni, "{host}: {}", resp.body);
        assert_eq!(origin.accepted() - before, accepted, "{host}");
    }
    // The origin serves a.example's certificate for c.example: the name
    // check fails, 503 as in HAProxy, and no connection is reused for it.
    let resp = client
        .request("/echo-headers", &[("host", "c.example")])
        .await;
    assert_eq!(resp.status, 503, "{resp:?}");
    // Without Host (HTTP/1.0) no SNI is sent and only the chain is checked.
    let raw_answer = raw(e, b"GET /echo-headers HTTP/1.0\r\n\r\n").await;
    assert!(raw_answer.starts_with("HTTP/1.1 200"), "{raw_answer}");
    assert!(
        raw_answer
            .to_ascii_lowercase()
            .contains("x-origin-sni: none"),
        "{raw_answer}"
    );
}

/// A Host that gives no server name (its port kept) is the client's
/// doing: 503 at once, no connection to the server, and nothing counted
/// against it (`econ` stays 0; `observe layer4` would otherwise take it
/// down for a client's header).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_is_no_server_name_is_not_held_against_the_server() {
    let certs = Certs::new();
    let origin = Origin::start(&certs);
    let cfg = format!(
        "global\n    stats socket 127.0.0.1:0 level admin\n{}",
        edge_config(origin.addr, "ssl verify none sni req.hdr(host)")
    );
    let mut edge = Shoal::start(&cfg, &["edge"]);
    let stats = edge.stats_sockets(1)[0].clone();
    let e = edge.addr("edge");
    let before = origin.accepted();
    let resp = get_with(e, "/echo-headers", &[("host", "a.example:8443")]).await;
    assert_eq!(resp.status, 503, "{resp:?}");
    let econ = stat_cell(&stats, "be,o,", "econ");
    assert_eq!(econ, "0", "a client's Host counted as a connection error");
    assert_eq!(origin.accepted(), before, "a connection was opened for it");
    let resp = get_with(e, "/echo-headers", &[("host", "a.example")]).await;
    assert_eq!(resp.status, 200, "{resp:?}");
}

/// One cell of `show stat` on the stats socket at `addr`: the row that
/// starts with `row`, the column named `column`.
fn stat_cell(addr: &str, row: &str, column: &str) -> String {
    let csv = socat(&format!("tcp:{addr}"), "show stat\n");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines
        .next()
        .expect("header")
        .trim_start_matches("# ")
        .split(',')
        .collect();
    let col = header.iter().position(|c| *c == column).expect("column");
    let line = lines
        .find(|l| l.starts_with(row))
        .unwrap_or_else(|| panic!("no row {row}: {csv}"));
    line.split(',').nth(col).expect("cell").to_string()
}

/// `http-reuse never`: the connection a client keeps for itself is
/// reused only while its requests give the same SNI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_connection_is_reused_only_for_its_sni() {
    let certs = Certs::new();
    let origin = Origin::start(&certs);
    let ca = certs.ca.display();
    let cfg = edge_config(origin.addr, &format!("ssl ca-file {ca} sni req.hdr(host)"))
        .replace("backend be\n", "backend be\n    http-reuse never\n");
    let edge = Shoal::start(&cfg, &["edge"]);
    let mut client = Client::connect(edge.addr("edge")).await;
    let before = origin.accepted();
    for (host, accepted) in [
        ("a.example", 1),
        ("a.example", 1),
        ("b.example", 2),
        ("b.example", 2),
    ] {
        let resp = client.request("/echo-headers", &[("host", host)]).await;
        assert_eq!(resp.status, 200, "{host}: {resp:?}");
        assert_eq!(origin_sni(&resp), host, "{host}: {}", resp.body);
        assert_eq!(origin.accepted() - before, accepted, "{host}");
    }
}

/// `sni req.hdr(host)` beside HAProxy 2.6 with the same config, under
/// `verify required` and `verify none`: the same statuses and the same
/// SNI reaching the origin. Without `field`, a Host with a port is no
/// valid server name: Shoal makes no connection (503); HAProxy sends it
/// and the origin refuses the handshake (503).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_as_sni_matches_haproxy() {
    let certs = Certs::new();
    let origin = Origin::start(&certs);
    let ca = certs.ca.display();
    for opts in [
        format!("ssl ca-file {ca} sni req.hdr(host)"),
        "ssl verify none sni req.hdr(host)".to_string(),
    ] {
        let listener = Inherited::new();
        let dir = TempDir::new("sni-haproxy");
        let sock = dir.0.join("haproxy.sock");
        let cfg = edge_config(origin.addr, &opts);
        let _haproxy = Haproxy::start(
            &format!(
                "global\n    stats socket {} level admin\n{}",
                sock.display(),
                cfg.replace("127.0.0.1:0", &listener.bind())
            ),
            &sock,
        );
        let edge = Shoal::start(&cfg, &["edge"]);
        let (h, s) = (listener.addr, edge.addr("edge"));
        for host in ["a.example", "b.example", "c.example", "a.example:8443"] {
            let theirs = get_with(h, "/echo-headers", &[("host", host)]).await;
            let ours = get_with(s, "/echo-headers", &[("host", host)]).await;
            assert_eq!(ours.status, theirs.status, "{opts} / {host}: {ours:?}");
            assert_eq!(
                origin_sni(&ours),
                origin_sni(&theirs),
                "{opts} / {host}: the origin saw another SNI"
            );
        }
    }
    drop(origin.shoal);
}

/// A TLS client of the edge sending `sni`, trusting the test CA; one
/// HTTP/1.1 request, the whole answer back.
async fn tls_request(addr: SocketAddr, ca: &std::path::Path, sni: &str, path: &str) -> String {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).expect("ca") {
        roots.add(cert.expect("ca cert")).expect("root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from(sni.to_string()).expect("name");
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("handshake");
    let req = format!("GET {path} HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n");
    tls.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, tls.read_to_end(&mut out))
        .await
        .expect("answer in time");
    String::from_utf8_lossy(&out).into_owned()
}

/// `sni ssl_fc_sni` passes the client's SNI on, in TCP mode (the bytes
/// go through as they are) and in HTTP mode, verified against it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clients_sni_passes_through_in_tcp_and_http_mode() {
    let certs = Certs::new();
    let origin = Origin::start(&certs);
    let (ca, a, b) = (certs.ca.display(), certs.a.display(), certs.b.display());
    let o = origin.addr;
    let cfg = format!(
        "{DEFAULTS}    retries 0\n\
         frontend tcp_edge\n    mode tcp\n    bind 127.0.0.1:0 ssl crt {a} crt {b}\n    default_backend tcp_be\n\
         frontend http_edge\n    bind 127.0.0.1:0 ssl crt {a} crt {b}\n    default_backend http_be\n\
         backend tcp_be\n    mode tcp\n    server o {o} ssl ca-file {ca} sni ssl_fc_sni\n\
         backend http_be\n    server o {o} ssl ca-file {ca} sni ssl_fc_sni\n"
    );
    let edge = Shoal::start(&cfg, &["tcp_edge", "http_edge"]);
    for front in ["tcp_edge", "http_edge"] {
        for sni in ["a.example", "b.example"] {
            let answer = tls_request(edge.addr(front), &certs.ca, sni, "/echo-headers").await;
            assert!(
                answer.starts_with("HTTP/1.1 200"),
                "{front} {sni}: {answer}"
            );
            assert!(
                answer
                    .to_ascii_lowercase()
                    .contains(&format!("x-origin-sni: {sni}")),
                "{front} {sni}: {answer}"
            );
        }
    }
}

/// `proto h2` (here chosen by ALPN): one HTTP/2 connection per SNI; a
/// stream rides only the connection opened with its own SNI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_connections_are_kept_per_sni() {
    let certs = Certs::new();
    let origin = Origin::start(&certs);
    let ca = certs.ca.display();
    let edge = Shoal::start(
        &edge_config(
            origin.addr,
            &format!("ssl ca-file {ca} alpn h2 sni req.hdr(host)"),
        ),
        &["edge"],
    );
    let e = edge.addr("edge");
    let before = origin.accepted();
    // Each request on a client connection of its own: over HTTP/1.1
    // (`http-reuse safe`) each would open a server connection.
    for host in ["a.example", "b.example", "a.example", "b.example"] {
        let resp = get_with(e, "/echo-headers", &[("host", host)]).await;
        assert_eq!(resp.status, 200, "{host}: {resp:?}");
        assert_eq!(origin_sni(&resp), host, "{host}: {}", resp.body);
    }
    assert_eq!(
        origin.accepted() - before,
        2,
        "one HTTP/2 connection per SNI"
    );
}

/// What cannot be evaluated is refused with the line, by `shoal check`.
#[test]
fn sni_expressions_that_cannot_work_are_refused_with_the_line() {
    let certs = Certs::new();
    let cfg = "defaults\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n\
               backend t\n    mode tcp\n    server a 127.0.0.1:1 ssl verify none sni req.hdr(host)\n\
               backend h\n    mode http\n    server b 127.0.0.1:1 ssl verify none sni req.hdr(host),bogus\n";
    let path = certs.dir.file("bad.cfg", cfg);
    let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["check", "-f"])
        .arg(&path)
        .output()
        .expect("shoal");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let p = path.display();
    assert!(
        err.contains(&format!("{p}:7: server 'a': 'sni req.hdr(host)' reads the HTTP request, which needs 'mode http', but backend 't' is in mode tcp")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{p}:10: server option 'sni': error detected while parsing sni expression: unknown converter 'bogus'")),
        "{err}"
    );
}

/// A TCP relay to `origin` that reads each connection's TLS ClientHello
/// without taking it off the socket (peek), and never passes on a
/// connection whose SNI is `hold`: a server whose handshake for that one
/// name never finishes.
struct SniHold {
    addr: SocketAddr,
    held: Arc<std::sync::atomic::AtomicUsize>,
}

impl SniHold {
    async fn start(origin: SocketAddr, hold: &'static str) -> SniHold {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let held = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = held.clone();
        tokio::spawn(async move {
            let mut kept = Vec::new();
            while let Ok((mut client, _)) = listener.accept().await {
                if client_sni(&client).await.as_deref() == Some(hold) {
                    count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    kept.push(client);
                    continue;
                }
                tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(origin).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        SniHold { addr, held }
    }
}

/// The SNI of the ClientHello waiting on `tcp`, read with `peek`.
async fn client_sni(tcp: &TcpStream) -> Option<String> {
    let mut buf = vec![0; 16 * 1024];
    let end = tokio::time::Instant::now() + DEADLINE;
    while tokio::time::Instant::now() < end {
        let n = tcp.peek(&mut buf).await.ok()?;
        let mut acceptor = rustls::server::Acceptor::default();
        acceptor.read_tls(&mut &buf[..n]).ok()?;
        match acceptor.accept() {
            Ok(Some(accepted)) => return accepted.client_hello().server_name().map(String::from),
            Ok(None) => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
            Err(_) => return None,
        }
    }
    None
}

/// HTTP/2 towards servers with `sni req.hdr(host)`: a request whose
/// name's handshake never finishes waits alone (503 at `timeout
/// connect`); requests for another name keep using their connection
/// meanwhile (they used to wait behind the stuck connect).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_sni_holds_up_no_other_name_over_http2() {
    let certs = Certs::new();
    let origin = Origin::start(&certs);
    let hold = SniHold::start(origin.addr, "b.example").await;
    let ca = certs.ca.display();
    let cfg = edge_config(
        hold.addr,
        &format!("ssl ca-file {ca} alpn h2 sni req.hdr(host)"),
    )
    .replace("timeout connect 2s", "timeout connect 6s");
    let edge = Shoal::start(&cfg, &["edge"]);
    let e = edge.addr("edge");
    let resp = get_with(e, "/echo-headers", &[("host", "a.example")]).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    let stuck = tokio::spawn(get_with(e, "/echo-headers", &[("host", "b.example")]));
    let held = hold.held.clone();
    eventually("the edge's handshake for b.example is held", || {
        let held = held.clone();
        async move { held.load(std::sync::atomic::Ordering::SeqCst) == 1 }
    })
    .await;
    let started = std::time::Instant::now();
    let resp = get_with(e, "/echo-headers", &[("host", "a.example")]).await;
    let took = started.elapsed();
    assert_eq!(resp.status, 200, "{resp:?}");
    assert!(
        took < std::time::Duration::from_secs(3),
        "a.example waited {took:?} behind b.example's connect (timeout connect 6s)"
    );
    let resp = stuck.await.expect("the stuck request");
    assert_eq!(resp.status, 503, "{resp:?}");
}
