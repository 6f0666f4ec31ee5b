//! TLS termination through real sockets: certificates made at test time
//! (a CA and leaves for two names), a real `shoal` and real backends,
//! handshakes from a rustls client and from curl; SNI selection, ALPN h2
//! with HTTP/2 requests answered by HTTP/1.1 backends, refused settings
//! with their FILE:LINE, `ssl_fc` and the redirect to https.

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rcgen::KeyPair;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use support::*;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

const DEFAULTS: &str =
    "defaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n";

/// A CA and two leaf certificates, as PEM files in a temp dir.
struct Certs {
    dir: TempDir,
    /// CA certificate (PEM file).
    ca: PathBuf,
    /// `alpha.test` and `*.wild.test`: chain and key in one file.
    alpha: PathBuf,
    alpha_der: Vec<u8>,
    /// `beta.test` (CN only, no SAN): certificate, key in `beta.pem.key`.
    beta: PathBuf,
    beta_der: Vec<u8>,
}

impl Certs {
    fn new() -> Certs {
        let dir = TempDir::new("tls");
        let ca = TestCa::new("Shoal test CA");
        let leaf = |sans: Vec<String>, cn: &str| ca.leaf(sans, cn);
        let (alpha, alpha_key) = leaf(
            vec!["alpha.test".into(), "*.wild.test".into()],
            "alpha.test",
        );
        let (beta, beta_key) = leaf(Vec::new(), "beta.test");
        let ca_path = dir.file("ca.pem", &ca.pem());
        let alpha_path = dir.file(
            "alpha.pem",
            &format!("{}{}{}", alpha.pem(), ca.pem(), alpha_key.serialize_pem()),
        );
        let beta_path = dir.file("beta.pem", &beta.pem());
        dir.file("beta.pem.key", &beta_key.serialize_pem());
        Certs {
            ca: ca_path,
            alpha: alpha_path,
            alpha_der: alpha.der().to_vec(),
            beta: beta_path,
            beta_der: beta.der().to_vec(),
            dir,
        }
    }
}

/// Accepts any certificate: the tests compare the one served instead.
#[derive(Debug)]
struct AnyCert;

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, &algs)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, &algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A TLS connection to `addr` sending `sni` (none when `None`) and
/// offering `alpn`.
async fn connect(
    addr: SocketAddr,
    sni: Option<&str>,
    alpn: &[&[u8]],
) -> Result<TlsStream<TcpStream>, std::io::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.enable_sni = sni.is_some();
    let name = ServerName::try_from(sni.unwrap_or("unused.test").to_string()).expect("name");
    let tcp = TcpStream::connect(addr).await?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

/// The leaf certificate `addr` serves for `sni`.
async fn served_cert(addr: SocketAddr, sni: Option<&str>) -> Vec<u8> {
    let tls = connect(addr, sni, &[]).await.expect("handshake");
    let (_, conn) = tls.get_ref();
    conn.peer_certificates().expect("certificates")[0].to_vec()
}

/// One HTTP/1.1 request over a TLS connection.
async fn get_h1(tls: TlsStream<TcpStream>, path: &str, host: &str) -> Resp {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("h1 handshake");
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .expect("request");
    let resp = sender.send_request(req).await.expect("response");
    read(resp).await
}

async fn read(resp: hyper::Response<hyper::body::Incoming>) -> Resp {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl is installed (test.sh installs it)");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_chosen_by_sni_and_the_first_is_the_default() {
    let certs = Certs::new();
    let web = Backend::http("web");
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0 ssl crt {} crt {}\n    default_backend be\n\
         backend be\n    server web {}\n",
        certs.alpha.display(),
        certs.beta.display(),
        web.addr
    );
    let shoal = Shoal::start(&cfg, &["fe"]);
    let addr = shoal.addr("fe");
    let cases: &[(Option<&str>, &[u8], &str)] = &[
        (Some("alpha.test"), &certs.alpha_der, "exact SAN"),
        (Some("beta.test"), &certs.beta_der, "subject CN"),
        (Some("BETA.test"), &certs.beta_der, "any case"),
        (Some("x.wild.test"), &certs.alpha_der, "wildcard SAN"),
        (
            Some("a.b.wild.test"),
            &certs.alpha_der,
            "default (a wildcard covers one label)",
        ),
        (
            Some("other.test"),
            &certs.alpha_der,
            "default (unknown name)",
        ),
        (None, &certs.alpha_der, "default (no SNI)"),
    ];
    for (sni, want, what) in cases {
        assert!(served_cert(addr, *sni).await == *want, "{what}: {sni:?}");
    }
    // The decrypted stream reaches the backend, as plain HTTP would.
    let tls = connect(addr, Some("beta.test"), &[])
        .await
        .expect("handshake");
    let resp = get_h1(tls, "/", "beta.test").await;
    assert_eq!((resp.status, resp.server().as_str()), (200, "web"));
    // A real client verifying the chain against the CA, by name.
    let port = addr.port();
    for name in ["alpha.test", "beta.test"] {
        let (out, err) = curl(&[
            "--cacert",
            &certs.ca.display().to_string(),
            "--resolve",
            &format!("{name}:{port}:127.0.0.1"),
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{ssl_verify_result}",
            &format!("https://{name}:{port}/"),
        ]);
        assert_eq!(out, "200 0", "curl {name}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_of_certificates_loads_in_name_order_and_strict_sni_refuses_unknown_names() {
    let certs = Certs::new();
    let web = Backend::http("web");
    // `a-beta.pem` sorts first, so beta is the default here.
    let dir = certs.dir.0.join("dir");
    std::fs::create_dir(&dir).expect("dir");
    std::fs::copy(&certs.beta, dir.join("a-beta.pem")).expect("copy");
    std::fs::copy(certs.dir.0.join("beta.pem.key"), dir.join("a-beta.pem.key")).expect("copy");
    std::fs::copy(&certs.alpha, dir.join("b-alpha.pem")).expect("copy");
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0 ssl crt {dir}\n    default_backend be\n\
         frontend strict\n    bind 127.0.0.1:0 ssl crt {dir} strict-sni\n    default_backend be\n\
         backend be\n    server web {}\n",
        web.addr,
        dir = dir.display(),
    );
    let shoal = Shoal::start(&cfg, &["fe", "strict"]);
    let first = shoal.addr("fe");
    assert!(served_cert(first, None).await == certs.beta_der, "default");
    assert!(served_cert(first, Some("alpha.test")).await == certs.alpha_der);
    let strict = shoal.addr("strict");
    assert!(served_cert(strict, Some("alpha.test")).await == certs.alpha_der);
    assert!(
        connect(strict, Some("other.test"), &[]).await.is_err(),
        "strict-sni, unknown name"
    );
    assert!(
        connect(strict, None, &[]).await.is_err(),
        "strict-sni, no SNI"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_h2_serves_http2_requests_from_http1_backends() {
    let certs = Certs::new();
    let (s1, s2) = (Backend::http("s1"), Backend::http("s2"));
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0 ssl crt {} alpn h2,http/1.1\n    option forwardfor\n    default_backend be\n\
         backend be\n    balance roundrobin\n    server s1 {}\n    server s2 {}\n",
        certs.alpha.display(),
        s1.addr,
        s2.addr
    );
    let shoal = Shoal::start(&cfg, &["fe"]);
    let addr = shoal.addr("fe");
    let tls = connect(addr, Some("alpha.test"), &[b"h2", b"http/1.1"])
        .await
        .expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(tls),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    // Concurrent streams on one connection, spread over both servers.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let mut sender = sender.clone();
        tasks.push(tokio::spawn(async move {
            let req = hyper::Request::get(format!("https://alpha.test/delay/{}", 50 + i))
                .body(Full::new(Bytes::new()))
                .expect("request");
            let resp = sender.send_request(req).await.expect("response");
            assert_eq!(resp.version(), hyper::Version::HTTP_2);
            read(resp).await
        }));
    }
    let mut servers = Vec::new();
    for t in tasks {
        let resp = t.await.expect("task");
        assert_eq!(resp.status, 200, "{resp:?}");
        servers.push(resp.server());
    }
    assert!(
        servers.contains(&"s1".to_string()) && servers.contains(&"s2".to_string()),
        "{servers:?}"
    );
    // What the backend saw: HTTP/1.1 with Host from :authority, one Cookie
    // line, the client's address in X-Forwarded-For.
    let mut sender2 = sender.clone();
    let req = hyper::Request::get("https://alpha.test/echo-headers")
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let echo = read(sender2.send_request(req).await.expect("response")).await;
    let lower = echo.body.to_ascii_lowercase();
    assert!(lower.contains("host: alpha.test"), "{}", echo.body);
    assert!(lower.contains("cookie: a=1; b=2"), "{}", echo.body);
    assert!(
        lower.contains("x-forwarded-for: 127.0.0.1"),
        "{}",
        echo.body
    );
    // A request body crosses too.
    let req = hyper::Request::post("https://alpha.test/")
        .body(Full::new(Bytes::from(vec![b'x'; 100_000])))
        .expect("request");
    let resp = read(sender2.send_request(req).await.expect("response")).await;
    assert_eq!(resp.status, 200);
    // curl negotiates h2 by ALPN and verifies the chain.
    let port = addr.port();
    let (out, err) = curl(&[
        "--http2",
        "--cacert",
        &certs.ca.display().to_string(),
        "--resolve",
        &format!("alpha.test:{port}:127.0.0.1"),
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code}",
        &format!("https://alpha.test:{port}/"),
    ]);
    assert_eq!(out, "2 200", "{err}");
    // Offering only http/1.1 gets HTTP/1.1.
    let tls = connect(addr, Some("alpha.test"), &[b"http/1.1"])
        .await
        .expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(get_h1(tls, "/", "alpha.test").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_alpn_h2_clients_speak_http1() {
    let certs = Certs::new();
    let web = Backend::http("web");
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0 ssl crt {}\n    default_backend be\nbackend be\n    server web {}\n",
        certs.alpha.display(),
        web.addr
    );
    let shoal = Shoal::start(&cfg, &["fe"]);
    let tls = connect(shoal.addr("fe"), Some("alpha.test"), &[b"h2", b"http/1.1"])
        .await
        .expect("handshake");
    // HAProxy 2.6 offers no ALPN unless told to.
    assert_eq!(tls.get_ref().1.alpn_protocol(), None);
    assert_eq!(get_h1(tls, "/", "alpha.test").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_mode_terminates_tls_too() {
    let certs = Certs::new();
    let echo = Backend::tcp("echo");
    let cfg = format!(
        "defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n\
         frontend fe\n    bind 127.0.0.1:0 ssl crt {}\n    default_backend be\nbackend be\n    server echo {}\n",
        certs.alpha.display(),
        echo.addr
    );
    let shoal = Shoal::start(&cfg, &["fe"]);
    let mut tls = connect(shoal.addr("fe"), Some("alpha.test"), &[])
        .await
        .expect("handshake");
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    tls.write_all(b"hello\n").await.expect("write");
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(tls);
    tokio::time::timeout(DEADLINE, reader.read_line(&mut line))
        .await
        .expect("echo in time")
        .expect("read");
    assert!(line.contains("hello"), "{line:?}");
}

/// `shoal check` and `shoal run` name the bind line of a certificate that
/// does not load, and why.
#[test]
fn certificate_errors_name_the_bind_line_and_the_file() {
    let certs = Certs::new();
    let mismatched = certs.dir.file(
        "mismatched.pem",
        &format!(
            "{}{}",
            std::fs::read_to_string(&certs.beta).expect("beta"),
            KeyPair::generate().expect("key").serialize_pem()
        ),
    );
    let no_key = certs.dir.file(
        "nokey.pem",
        &std::fs::read_to_string(&certs.ca).expect("ca"),
    );
    let garbage = certs.dir.file("garbage.pem", "not a certificate\n");
    for (path, says) in [
        (mismatched, "the private key does not fit the certificate"),
        (no_key, "no private key in this file, nor in"),
        (garbage, "no certificate in this file"),
    ] {
        let cfg = certs.dir.file(
            "bad.cfg",
            &format!(
                "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    bind 127.0.0.1:0 ssl crt {} crt {}\n    default_backend be\nbackend be\n    server s 127.0.0.1:1\n",
                certs.alpha.display(),
                path.display()
            ),
        );
        for cmd in ["check", "run"] {
            let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
                .args([cmd, "-f"])
                .arg(&cfg)
                .output()
                .expect("shoal");
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{cmd}: {err}");
            let want = format!(
                "{}:8: cannot load certificate '{}': {says}",
                cfg.display(),
                path.display()
            );
            assert!(err.contains(&want), "{cmd}: want {want:?} in:\n{err}");
        }
    }
    // Settings rustls cannot honour are refused at parse time, with the line.
    let cfg = certs.dir.file(
        "old.cfg",
        &format!(
            "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0 ssl crt {} ssl-min-ver TLSv1.1 ciphers HIGH:!aNULL\n    default_backend be\nbackend be\n    server s 127.0.0.1:1\n",
            certs.alpha.display()
        ),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["check", "-f"])
        .arg(&cfg)
        .output()
        .expect("shoal");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let at = format!("{}:7: ", cfg.display());
    assert!(
        err.contains(&format!(
            "{at}'ssl-min-ver TLSv1.1': Shoal's TLS library (rustls) does not offer TLSv1.1"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("{at}'ciphers': 'HIGH' is not a suite")),
        "{err}"
    );
}

/// The usual pair: plain HTTP redirected to https, the TLS side telling
/// the backend with `X-Forwarded-Proto`; `ssl_fc_sni` routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_is_redirected_and_tls_requests_carry_x_forwarded_proto() {
    let certs = Certs::new();
    let (web, beta) = (Backend::http("web"), Backend::http("beta"));
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    bind 127.0.0.2:0 ssl crt {} crt {} alpn h2,http/1.1\n\
         \x20   acl sni_beta ssl_fc_sni -i beta.test\n\
         \x20   http-request redirect scheme https unless {{ ssl_fc }}\n\
         \x20   http-request set-header X-Forwarded-Proto https if {{ ssl_fc }}\n\
         \x20   use_backend beta if sni_beta\n    default_backend be\n\
         backend be\n    server web {}\nbackend beta\n    server beta {}\n",
        certs.alpha.display(),
        certs.beta.display(),
        web.addr,
        beta.addr
    );
    let mut shoal = Shoal::start(&cfg, &["fe"]);
    let plain = shoal.addr("fe");
    let line = shoal
        .proc
        .wait_line("frontend 'fe' listening on 127.0.0.2:");
    let secure: SocketAddr = line
        .rsplit(' ')
        .next()
        .and_then(|a| a.parse().ok())
        .expect("addr");
    // Plain: HAProxy's 302, on a connection that stays open.
    let mut client = Client::connect(plain).await;
    for path in ["/a/b?x=1", "/again"] {
        let resp = client.request(path, &[("host", "alpha.test:8443")]).await;
        assert_eq!(resp.status, 302, "{resp:?}");
        let location = resp.headers.get("location").and_then(|v| v.to_str().ok());
        assert_eq!(
            location,
            Some(format!("https://alpha.test:8443{path}").as_str())
        );
        assert_eq!(
            resp.headers.get("cache-control").map(|v| v.as_bytes()),
            Some(&b"no-cache"[..])
        );
        assert!(resp.body.is_empty());
    }
    // TLS, HTTP/1.1: a client's own X-Forwarded-Proto is replaced.
    let tls = connect(secure, Some("alpha.test"), &[b"http/1.1"])
        .await
        .expect("handshake");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("h1");
    tokio::spawn(conn);
    let req = hyper::Request::get("/echo-headers")
        .header("host", "alpha.test")
        .header("x-forwarded-proto", "http")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let echo = read(sender.send_request(req).await.expect("response")).await;
    assert_eq!(echo.status, 200, "{echo:?}");
    let xfp: Vec<&str> = echo
        .body
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("x-forwarded-proto:"))
        .collect();
    assert_eq!(xfp, ["x-forwarded-proto: https"], "{}", echo.body);
    // TLS, HTTP/2: the same rules, and routing by SNI.
    for (sni, server) in [("alpha.test", "web"), ("beta.test", "beta")] {
        let tls = connect(secure, Some(sni), &[b"h2"])
            .await
            .expect("handshake");
        let (mut sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            TokioIo::new(tls),
        )
        .await
        .expect("h2");
        tokio::spawn(conn);
        let req = hyper::Request::get(format!("https://{sni}/echo-headers"))
            .body(Full::new(Bytes::new()))
            .expect("request");
        let echo = read(sender.send_request(req).await.expect("response")).await;
        assert_eq!(
            (echo.status, echo.server().as_str()),
            (200, server),
            "{echo:?}"
        );
        assert!(
            echo.body
                .to_ascii_lowercase()
                .contains("x-forwarded-proto: https"),
            "{}",
            echo.body
        );
    }
}

/// The redirect answer is HAProxy 2.6's, byte for byte but the connection
/// line, for each code and request form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_scheme_answers_as_haproxy_does() {
    let dir = TempDir::new("redirect-compare");
    let socket = dir.0.join("haproxy.sock");
    let codes = [302, 301, 303, 307, 308];
    let inherited: Vec<Inherited> = codes.iter().map(|_| Inherited::new()).collect();
    let mut shoal_cfg = DEFAULTS.to_string();
    let mut haproxy_cfg = format!("global\n    stats socket {}\n{DEFAULTS}", socket.display());
    for (code, fd) in codes.iter().zip(&inherited) {
        let rule = format!(
            "    http-request redirect scheme https code {code} if !{{ ssl_fc }}\n    default_backend be\n"
        );
        shoal_cfg.push_str(&format!("frontend f{code}\n    bind 127.0.0.1:0\n{rule}"));
        haproxy_cfg.push_str(&format!("frontend f{code}\n    bind {}\n{rule}", fd.bind()));
    }
    let tail = "backend be\n    server s 127.0.0.1:1\n";
    shoal_cfg.push_str(tail);
    haproxy_cfg.push_str(tail);
    let _haproxy = Haproxy::start(&haproxy_cfg, &socket);
    let names: Vec<String> = codes.iter().map(|c| format!("f{c}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let shoal = Shoal::start(&shoal_cfg, &names);
    let requests: [&[u8]; 3] = [
        b"GET /a/b?x=1 HTTP/1.1\r\nHost: example.com:8080\r\nConnection: close\r\n\r\n",
        b"GET http://abs.example/p?q HTTP/1.1\r\nHost: abs.example\r\nConnection: close\r\n\r\n",
        b"GET /p HTTP/1.0\r\n\r\n",
    ];
    // Header names and values, in order, without `connection`.
    let head = |text: &str| -> Vec<String> {
        text.split("\r\n\r\n")
            .next()
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
            .map(str::to_string)
            .collect()
    };
    for (code, fd) in codes.iter().zip(&inherited) {
        for req in requests {
            let want = head(&raw(fd.addr, req).await);
            let got = head(&raw(shoal.addr(&format!("f{code}")), req).await);
            assert!(
                want[0].starts_with(&format!("HTTP/1.1 {code} ")),
                "{want:?}"
            );
            assert_eq!(got, want, "code {code}, {}", String::from_utf8_lossy(req));
        }
    }
}

/// A reload reads the certificates again even when the config text is
/// the same (a renewed certificate), keeps the listener, and a reload
/// whose certificate does not load is refused with the old one serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_rereads_certificates_and_refuses_a_broken_one() {
    let certs = Certs::new();
    let web = Backend::http("web");
    let live = certs.dir.0.join("live.pem");
    std::fs::copy(&certs.alpha, &live).expect("copy");
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0 ssl crt {}\n    default_backend be\nbackend be\n    server web {}\n",
        live.display(),
        web.addr
    );
    let mut shoal = Shoal::start(&cfg, &["fe"]);
    let addr = shoal.addr("fe");
    assert!(served_cert(addr, Some("alpha.test")).await == certs.alpha_der);
    // Renewed in place: beta's chain and key now live in the same file.
    let beta = format!(
        "{}{}",
        std::fs::read_to_string(&certs.beta).expect("beta"),
        std::fs::read_to_string(certs.dir.0.join("beta.pem.key")).expect("key")
    );
    std::fs::write(&live, beta).expect("renew");
    shoal.reload(&cfg, &[]);
    eventually("the renewed certificate is served", || async {
        served_cert(addr, Some("alpha.test")).await == certs.beta_der
    })
    .await;
    // Broken: the reload is refused, naming the line; beta still serves.
    std::fs::write(&live, "garbage\n").expect("break");
    std::fs::write(&shoal.cfg, &cfg).expect("config");
    shoal.proc.signal("HUP");
    let line = shoal.proc.wait_line("reload refused");
    assert!(
        line.contains(&format!(
            "shoal.cfg:7: cannot load certificate '{}'",
            live.display()
        )),
        "{line}"
    );
    assert!(served_cert(addr, Some("alpha.test")).await == certs.beta_der);
}

/// A client that offers only these suites, versions and groups.
async fn connect_with(
    addr: SocketAddr,
    suites: &[rustls::SupportedCipherSuite],
    versions: &[&'static rustls::SupportedProtocolVersion],
    groups: Option<&[&'static dyn rustls::crypto::SupportedKxGroup]>,
) -> Result<TlsStream<TcpStream>, std::io::Error> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = suites.to_vec();
    if let Some(groups) = groups {
        provider.kx_groups = groups.to_vec();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert))
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("alpha.test").expect("name"), tcp)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_suites_and_groups_are_the_ones_configured() {
    use rustls::crypto::ring::{cipher_suite as cs, kx_group};
    let certs = Certs::new();
    let web = Backend::http("web");
    let cfg = format!(
        "{DEFAULTS}frontend tls12\n    bind 127.0.0.1:0 ssl crt {alpha} ssl-max-ver TLSv1.2 ciphers ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES256-GCM-SHA384\n    default_backend be\n\
         frontend tls13\n    bind 127.0.0.1:0 ssl crt {alpha} ssl-min-ver TLSv1.3 ciphersuites TLS_CHACHA20_POLY1305_SHA256 curves P-384\n    default_backend be\n\
         backend be\n    server web {}\n",
        web.addr,
        alpha = certs.alpha.display(),
    );
    let shoal = Shoal::start(&cfg, &["tls12", "tls13"]);
    let (v12, v13) = (shoal.addr("tls12"), shoal.addr("tls13"));
    let all: Vec<_> = rustls::crypto::ring::default_provider().cipher_suites;
    let both = [&rustls::version::TLS13, &rustls::version::TLS12];
    // TLS 1.2 only; the server's first listed suite wins over the
    // client's preference (rustls clients put AES-256-GCM first).
    let tls = connect_with(v12, &all, &both, None)
        .await
        .expect("handshake");
    let conn = tls.get_ref().1;
    assert_eq!(
        conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert_eq!(
        conn.negotiated_cipher_suite().map(|s| s.suite()),
        Some(cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256.suite())
    );
    let unlisted = [cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256];
    assert!(
        connect_with(v12, &unlisted, &[&rustls::version::TLS12], None)
            .await
            .is_err()
    );
    assert!(connect_with(v12, &all, &[&rustls::version::TLS13], None)
        .await
        .is_err());
    // TLS 1.3 only, one suite, one group.
    let tls = connect_with(v13, &all, &both, None)
        .await
        .expect("handshake");
    let conn = tls.get_ref().1;
    assert_eq!(
        conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(
        conn.negotiated_cipher_suite().map(|s| s.suite()),
        Some(cs::TLS13_CHACHA20_POLY1305_SHA256.suite())
    );
    assert_eq!(
        conn.negotiated_key_exchange_group().map(|g| g.name()),
        Some(kx_group::SECP384R1.name())
    );
    assert!(connect_with(v13, &all, &[&rustls::version::TLS12], None)
        .await
        .is_err());
    let x25519: &[&'static dyn rustls::crypto::SupportedKxGroup] = &[kx_group::X25519];
    assert!(connect_with(v13, &all, &both, Some(x25519)).await.is_err());
    // And the connection that was allowed carries requests.
    assert_eq!(get_h1(tls, "/", "alpha.test").await.status, 200);
}

/// A client that connects and never says hello is dropped after
/// `timeout client`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_dropped_after_timeout_client() {
    use tokio::io::AsyncReadExt;
    let certs = Certs::new();
    let cfg = format!(
        "defaults\n    mode http\n    timeout connect 1s\n    timeout client 300ms\n    timeout server 1s\n\
         frontend fe\n    bind 127.0.0.1:0 ssl crt {}\n    default_backend be\nbackend be\n    server s 127.0.0.1:1\n",
        certs.alpha.display()
    );
    let shoal = Shoal::start(&cfg, &["fe"]);
    let mut tcp = TcpStream::connect(shoal.addr("fe")).await.expect("connect");
    let start = std::time::Instant::now();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(DEADLINE, tcp.read(&mut buf))
        .await
        .expect("closed within the deadline")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without a byte");
    assert!(
        start.elapsed() >= std::time::Duration::from_millis(250),
        "{:?}",
        start.elapsed()
    );
}

/// A WebSocket upgrade through TLS becomes a tunnel, as over plain HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_work_through_tls() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let certs = Certs::new();
    let web = Backend::http("web");
    let cfg = format!(
        "{DEFAULTS}    timeout tunnel 10s\nfrontend fe\n    bind 127.0.0.1:0 ssl crt {}\n    default_backend be\nbackend be\n    server web {}\n",
        certs.alpha.display(),
        web.addr
    );
    let shoal = Shoal::start(&cfg, &["fe"]);
    let mut tls = connect(shoal.addr("fe"), Some("alpha.test"), &[])
        .await
        .expect("handshake");
    tls.write_all(b"GET /ws HTTP/1.1\r\nHost: alpha.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        .await
        .expect("write");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(DEADLINE, tls.read(&mut byte))
            .await
            .expect("in time")
            .expect("read");
        assert_eq!(n, 1, "closed early: {}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    tls.write_all(b"ping over tls").await.expect("write");
    let mut echo = [0u8; 13];
    tokio::time::timeout(DEADLINE, tls.read_exact(&mut echo))
        .await
        .expect("echo in time")
        .expect("read");
    assert_eq!(&echo, b"ping over tls");
}

/// `server ... ssl`: a Shoal that speaks TLS to another Shoal terminating
/// it, verifying the chain against `ca-file` and the name against `sni`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_are_reached_over_tls_and_verified() {
    let certs = Certs::new();
    let stranger = Certs::new();
    let web = Backend::http("web");
    let origin_cfg = format!(
        "{DEFAULTS}frontend origin\n    bind 127.0.0.1:0 ssl crt {}\n\
         \x20   http-request set-header X-Origin-Sni alpha if {{ ssl_fc_sni alpha.test }}\n\
         \x20   default_backend be\nbackend be\n    server web {}\n",
        certs.alpha.display(),
        web.addr
    );
    let origin = Shoal::start(&origin_cfg, &["origin"]);
    let o = origin.addr("origin");
    let ca = certs.ca.display();
    let cases = [
        ("sni", format!("ssl ca-file {ca} sni str(alpha.test)"), 200),
        ("chain", format!("ssl ca-file {ca}"), 200),
        ("none", "ssl verify none".to_string(), 200),
        (
            "badname",
            format!("ssl ca-file {ca} sni str(other.test)"),
            503,
        ),
        (
            "badca",
            format!("ssl ca-file {}", stranger.ca.display()),
            503,
        ),
    ];
    let mut edge_cfg = format!("{DEFAULTS}    retries 0\nfrontend edge\n    bind 127.0.0.1:0\n");
    for (name, _, _) in &cases {
        edge_cfg.push_str(&format!(
            "    use_backend {name} if {{ hdr(x-case) {name} }}\n"
        ));
    }
    for (name, opts, _) in &cases {
        edge_cfg.push_str(&format!("backend {name}\n    server o {o} {opts}\n"));
    }
    let edge = Shoal::start(&edge_cfg, &["edge"]);
    let e = edge.addr("edge");
    for (name, _, status) in &cases {
        let resp = get_with(e, "/echo-headers", &[("x-case", name)]).await;
        assert_eq!(resp.status, *status, "{name}: {resp:?}");
        if *status == 200 {
            assert_eq!(resp.server(), "web", "{name}");
            let sni_seen = resp
                .body
                .to_ascii_lowercase()
                .contains("x-origin-sni: alpha");
            assert_eq!(sni_seen, *name == "sni", "{name}: {}", resp.body);
        }
    }
    // Kept-alive TLS server connections carry several requests.
    let mut client = Client::connect(e).await;
    for _ in 0..5 {
        let resp = client.request("/", &[("x-case", "sni")]).await;
        assert_eq!((resp.status, resp.server().as_str()), (200, "web"));
    }
    // A ca-file that does not load refuses the config, naming the line.
    let bad = edge_cfg.replace(
        &format!("ssl ca-file {ca} sni"),
        "ssl ca-file /nonexistent/ca.pem sni",
    );
    let path = certs.dir.file("bad-edge.cfg", &bad);
    let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["check", "-f"])
        .arg(&path)
        .output()
        .expect("shoal");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let line = bad
        .lines()
        .position(|l| l.contains("/nonexistent/"))
        .expect("line")
        + 1;
    assert!(
        err.contains(&format!(
            "{}:{line}: cannot load ca-file '/nonexistent/ca.pem'",
            path.display()
        )),
        "{err}"
    );
}

/// An HTTP/2 connection that starts no stream for `timeout client` is
/// closed (GOAWAY), after the requests it carried were answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_is_closed_after_timeout_client() {
    let certs = Certs::new();
    let web = Backend::http("web");
    let cfg = format!(
        "defaults\n    mode http\n    timeout connect 1s\n    timeout client 400ms\n    timeout server 5s\n\
         frontend fe\n    bind 127.0.0.1:0 ssl crt {} alpn h2\n    default_backend be\nbackend be\n    server web {}\n",
        certs.alpha.display(),
        web.addr
    );
    let shoal = Shoal::start(&cfg, &["fe"]);
    let tls = connect(shoal.addr("fe"), Some("alpha.test"), &[b"h2"])
        .await
        .expect("handshake");
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(tls),
    )
    .await
    .expect("h2");
    let closed = tokio::spawn(conn);
    // A request longer than the idle bound is answered in full.
    let req = hyper::Request::get("https://alpha.test/delay/600")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let started = std::time::Instant::now();
    let resp = read(sender.send_request(req).await.expect("response")).await;
    assert_eq!(resp.status, 200);
    tokio::time::timeout(DEADLINE, closed)
        .await
        .expect("the server closed the idle connection")
        .expect("task")
        .expect("a clean close");
    // Idle is counted from the answer (at about 600 ms), not from the request.
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
}
