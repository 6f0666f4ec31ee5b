//! HTTP and TCP proxying behaviour through real sockets: ACL routing,
//! X-Forwarded-For, WebSocket upgrade, error statuses, timeouts, TCP mode,
//! SIGHUP reload and SIGTERM.

mod support;

use std::time::Duration;
use support::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const DEFAULTS: &str = "defaults\n    mode http\n    timeout connect 1s\n    timeout client 10s\n    timeout server 10s\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_routes_by_path_and_host() {
    let web = Backend::http("web");
    let api = Backend::http("api");
    let img = Backend::http("img");
    let admin = Backend::http("admin");
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n\
         \x20   acl is_api path_beg /api\n\
         \x20   acl is_img path_end .png .jpg\n\
         \x20   acl is_img path_reg ^/static/.*\\.gif$\n\
         \x20   acl host_admin hdr(host) -i admin.example.com\n\
         \x20   acl is_post method POST\n\
         \x20   use_backend admin if host_admin !is_api\n\
         \x20   use_backend api if is_api || is_post\n\
         \x20   use_backend img if is_img\n\
         \x20   default_backend web\n\
         backend web\n    server web {}\nbackend api\n    server api {}\n\
         backend img\n    server img {}\nbackend admin\n    server admin {}\n",
        web.addr, api.addr, img.addr, admin.addr
    );
    let shoal = Shoal::start(&cfg, &["fe"]);
    let addr = shoal.addr("fe");
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        ("/", &[], "web"),
        ("/api/users", &[], "api"),
        ("/a/b.png", &[], "img"),
        ("/static/x.gif", &[], "img"),
        ("/static/x.gifs", &[], "web"),
        ("/", &[("host", "ADMIN.example.com")], "admin"),
        ("/api/x", &[("host", "admin.example.com")], "api"),
    ];
    for (path, headers, want) in cases {
        let mut c = Client::connect(addr).await;
        let mut hs: Vec<(&str, &str)> = headers.to_vec();
        if hs.iter().all(|(k, _)| *k != "host") {
            hs.push(("host", "www.example.com"));
        }
        let r = c.request(path, &hs).await;
        assert_eq!(r.server(), *want, "{path} {headers:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwardfor_and_error_statuses() {
    let web = Backend::http("web");
    let dead = dead_addr();
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    option forwardfor\n\
         \x20   acl dead path_beg /dead\n    acl slow path_beg /delay\n\
         \x20   use_backend gone if dead\n    use_backend slow if slow\n    default_backend web\n\
         backend web\n    server web {}\n\
         backend gone\n    retries 0\n    server x {dead}\n\
         backend slow\n    timeout server 200ms\n    server web {}\n",
        web.addr, web.addr
    );
    let shoal = Shoal::start(&cfg, &["fe"]);
    let addr = shoal.addr("fe");
    let r = get(addr, "/echo-headers").await;
    assert!(
        r.body.to_lowercase().contains("x-forwarded-for: 127.0.0.1"),
        "{}",
        r.body
    );
    let r = get(addr, "/dead").await;
    assert_eq!(r.status, 503);
    let r = get(addr, "/delay/2000").await;
    assert_eq!(r.status, 504);
    assert!(r.body.contains("504 Gateway Time-out"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_client_gets_408() {
    let web = Backend::http("web");
    let cfg = format!(
        "{DEFAULTS}    timeout http-request 300ms\nfrontend fe\n    bind 127.0.0.1:0\n    default_backend web\n\
         backend web\n    server web {}\n",
        web.addr
    );
    let shoal = Shoal::start(&cfg, &["fe"]);
    let buf = raw(shoal.addr("fe"), b"GET / HTTP/1.1\r\nHost: x\r\n").await;
    assert!(buf.starts_with("HTTP/1.1 408"), "{buf}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_request_gets_400() {
    let web = Backend::http("web");
    let cfg = format!("{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend web\nbackend web\n    server web {}\n", web.addr);
    let shoal = Shoal::start(&cfg, &["fe"]);
    let buf = raw(shoal.addr("fe"), b"GARBAGE\x01 / HTTP/1.1\r\n\r\n").await;
    assert!(buf.starts_with("HTTP/1.1 400"), "{buf}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_tunnels_bytes() {
    let web = Backend::http("web");
    let cfg = format!("{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend web\nbackend web\n    server web {}\n", web.addr);
    let shoal = Shoal::start(&cfg, &["fe"]);
    let mut s = TcpStream::connect(shoal.addr("fe")).await.expect("connect");
    s.write_all(
        b"GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .await
    .expect("write");
    let mut reader = BufReader::new(s);
    let mut status = String::new();
    reader.read_line(&mut status).await.expect("status line");
    assert!(status.starts_with("HTTP/1.1 101"), "{status}");
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.expect("header");
        if line == "\r\n" {
            break;
        }
    }
    reader
        .get_mut()
        .write_all(b"hello through the tunnel")
        .await
        .expect("write");
    let mut echoed = vec![0u8; 24];
    tokio::time::timeout(DEADLINE, reader.read_exact(&mut echoed))
        .await
        .expect("echo in time")
        .expect("read");
    assert_eq!(&echoed, b"hello through the tunnel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_mode_proxies_a_line_protocol() {
    let a = Backend::tcp("a");
    let b = Backend::tcp("b");
    let cfg = format!(
        "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 10s\n    timeout server 10s\n\
         listen lines\n    bind 127.0.0.1:0\n    balance roundrobin\n    server a {}\n    server b {}\n",
        a.addr, b.addr
    );
    let shoal = Shoal::start(&cfg, &["lines"]);
    let mut names = Vec::new();
    for _ in 0..4 {
        let s = TcpStream::connect(shoal.addr("lines"))
            .await
            .expect("connect");
        let mut reader = BufReader::new(s);
        reader
            .get_mut()
            .write_all(b"PING\nsecond line\n")
            .await
            .expect("write");
        let mut l1 = String::new();
        let mut l2 = String::new();
        reader.read_line(&mut l1).await.expect("reply 1");
        reader.read_line(&mut l2).await.expect("reply 2");
        let name = l1.split(' ').next().unwrap_or("").to_string();
        assert_eq!(l1, format!("{name} PING\n"));
        assert_eq!(l2, format!("{name} second line\n"));
        // Half-close: the server still answers after our write side shuts.
        reader.get_mut().write_all(b"last\n").await.expect("write");
        reader.get_mut().shutdown().await.expect("shutdown write");
        let mut rest = String::new();
        reader.read_to_string(&mut rest).await.expect("read to end");
        assert_eq!(rest, format!("{name} last\n"));
        names.push(name);
    }
    assert_eq!(names, vec!["a", "b", "a", "b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_mode_client_timeout_closes_idle_connections() {
    let a = Backend::tcp("a");
    let cfg = format!(
        "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 300ms\n    timeout server 300ms\n\
         listen lines\n    bind 127.0.0.1:0\n    server a {}\n",
        a.addr
    );
    let shoal = Shoal::start(&cfg, &["lines"]);
    let mut s = TcpStream::connect(shoal.addr("lines"))
        .await
        .expect("connect");
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    tokio::time::timeout(DEADLINE, s.read_to_end(&mut buf))
        .await
        .expect("closed in time")
        .expect("read");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "closed too early"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_acl_routes_by_destination_port() {
    let a = Backend::tcp("a");
    let b = Backend::tcp("b");
    // Two listeners on ports the kernel picks; once their ports are known,
    // a reload (which keeps both listeners) routes one of them to `b`.
    let cfg = |port: u16| {
        format!(
            "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 10s\n    timeout server 10s\n\
             frontend fe\n    bind 127.0.0.1:0\n    bind 127.0.0.2:0\n\
             \x20   acl via_two dst_port {port}\n    use_backend b if via_two\n    default_backend a\n\
             backend a\n    server a {}\nbackend b\n    server b {}\n",
            a.addr, b.addr
        )
    };
    let mut shoal = Shoal::start(&cfg(1), &["fe"]);
    let line = shoal.proc.wait_line("'fe' listening on 127.0.0.2:");
    let two: std::net::SocketAddr = line
        .rsplit(' ')
        .next()
        .and_then(|a| a.parse().ok())
        .expect("second listener");
    let one = shoal.fronts["fe"]
        .iter()
        .copied()
        .find(|x| x.ip() == std::net::Ipv4Addr::LOCALHOST)
        .expect("first listener");
    shoal.reload(&cfg(two.port()), &[]);
    for (target, want) in [(two, "b"), (one, "a")] {
        let s = TcpStream::connect(target).await.expect("connect");
        let mut r = BufReader::new(s);
        r.get_mut().write_all(b"hi\n").await.expect("write");
        let mut l = String::new();
        r.read_line(&mut l).await.expect("read");
        assert_eq!(l, format!("{want} hi\n"), "via {target}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reload_keeps_open_connections() {
    let a = Backend::http("a");
    let b = Backend::http("b");
    let tcp = Backend::tcp("t");
    let cfg1 = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend app\n\
         listen lines\n    mode tcp\n    bind 127.0.0.1:0\n    server t {}\n\
         backend app\n    server a {}\n",
        tcp.addr, a.addr
    );
    let mut shoal = Shoal::start(&cfg1, &["fe", "lines"]);
    let fe = shoal.addr("fe");
    let mut kept = Client::connect(fe).await;
    assert_eq!(kept.get("/").await.server(), "a");
    let tcp_conn = TcpStream::connect(shoal.addr("lines"))
        .await
        .expect("tcp connect");
    let mut tcp_conn = BufReader::new(tcp_conn);

    // New config: backend app now points at b, and a new frontend appears.
    let cfg2 = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend app\n\
         listen lines\n    mode tcp\n    bind 127.0.0.1:0\n    server t {}\n\
         frontend extra\n    bind 127.0.0.1:0\n    default_backend app\n\
         backend app\n    server b {}\n",
        tcp.addr, b.addr
    );
    shoal.reload(&cfg2, &["extra"]);
    // The kept-alive client connection survives and sees the new routing.
    assert_eq!(kept.get("/").await.server(), "b");
    // The established TCP session still works.
    tcp_conn
        .get_mut()
        .write_all(b"still here\n")
        .await
        .expect("write");
    let mut l = String::new();
    tcp_conn.read_line(&mut l).await.expect("read");
    assert_eq!(l, "t still here\n");
    // The untouched listener still accepts; the new one works too.
    assert_eq!(get(fe, "/").await.server(), "b");
    assert_eq!(get(shoal.addr("extra"), "/").await.server(), "b");

    // A broken config is refused and the node keeps serving.
    std::fs::write(
        &shoal.cfg,
        "frontend broken\n    bind 127.0.0.1:0\n    use_backend nowhere\n",
    )
    .expect("write");
    shoal.proc.signal("HUP");
    shoal.proc.wait_line("reload refused");
    assert_eq!(get(fe, "/").await.server(), "b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_requests_then_exits() {
    let a = Backend::http("a");
    let cfg = format!("{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend app\nbackend app\n    server a {}\n", a.addr);
    let mut shoal = Shoal::start(&cfg, &["fe"]);
    let fe = shoal.addr("fe");
    let base = backend_conns(a.addr).await;
    let in_flight = tokio::spawn(async move { get(fe, "/delay/1000").await.status });
    // Wait until the slow request reached the backend before signalling.
    wait_new_backend_connection(a.addr, base).await;
    shoal.proc.signal("TERM");
    assert_eq!(
        in_flight.await.expect("task"),
        200,
        "in-flight request completed"
    );
    let code = shoal.proc.wait_exit(DEADLINE);
    assert_eq!(code, Some(0));
    assert!(TcpStream::connect(fe).await.is_err(), "listener closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_server_response_is_502() {
    // A line-protocol server answers an HTTP request with a non-HTTP line.
    let liar = Backend::tcp("liar");
    let cfg = format!("{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend app\nbackend app\n    server liar {}\n", liar.addr);
    let shoal = Shoal::start(&cfg, &["fe"]);
    let r = get(shoal.addr("fe"), "/").await;
    assert_eq!(r.status, 502);
    assert!(r.body.contains("502 Bad Gateway"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_lines_follow_httplog_and_tcplog() {
    let web = Backend::http("web");
    let line = Backend::tcp("line");
    let cfg = format!(
        "{DEFAULTS}    log stdout format raw local0\n    option httplog\n\
         frontend fe\n    bind 127.0.0.1:0\n    log global\n    default_backend app\n\
         backend app\n    server web {}\n\
         listen lines\n    mode tcp\n    option tcplog\n    log global\n    bind 127.0.0.1:0\n    server line {}\n",
        web.addr, line.addr
    );
    let dir = TempDir::new("log");
    let log_path = dir.0.join("access.log");
    let log_arg = log_path.to_string_lossy().into_owned();
    let mut shoal = Shoal::start_with(&cfg, &["fe", "lines"], &["--access-log", &log_arg]);
    assert_eq!(get(shoal.addr("fe"), "/hello?x=1").await.status, 200);
    let mut s = TcpStream::connect(shoal.addr("lines"))
        .await
        .expect("connect");
    s.write_all(b"QUIT\n").await.expect("write");
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await.expect("read");
    drop(s);
    // The stdout target carries the same lines as the file.
    let http_line = shoal.proc.wait_line("\"GET /hello?x=1 HTTP/1.1\"");
    let re = regex::Regex::new(
        r#"^127\.0\.0\.1:\d+ \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d\.\d{3}\] fe app/web \d+/\d+/\d+/\d+/\d+ 200 \d+ - - ---- \d+/\d+/\d+/\d+/\d+ \d+/\d+ "GET /hello\?x=1 HTTP/1\.1"$"#,
    )
    .expect("regex");
    assert!(re.is_match(&http_line), "httplog line: {http_line}");
    // %ac/%fc: the client connection is still open when the line is written.
    let conns = http_line
        .split(" ---- ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap_or("");
    let ac: u32 = conns
        .split('/')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(ac >= 1, "active connections in {http_line}");
    let tcp_line = shoal.proc.wait_line(" lines lines/line ");
    let re = regex::Regex::new(r"^127\.0\.0\.1:\d+ \[[^\]]+\] lines lines/line \d+/\d+/\d+ \d+ -- \d+/\d+/\d+/\d+/\d+ \d+/\d+$")
        .expect("regex");
    assert!(re.is_match(&tcp_line), "tcplog line: {tcp_line}");
    eventually("file has both lines", || {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        async move { text.lines().count() >= 2 }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frontend_maxconn_holds_extra_clients_in_the_backlog() {
    let web = Backend::http("web");
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    maxconn 1\n    default_backend app\nbackend app\n    server web {}\n",
        web.addr
    );
    let shoal = Shoal::start(&cfg, &["fe"]);
    let addr = shoal.addr("fe");
    let mut first = Client::connect(addr).await;
    assert_eq!(first.get("/").await.status, 200);
    // The second client connects, and the kernel holds it in the listen
    // backlog: Shoal does not accept it while the first keeps its slot.
    let second = tokio::spawn(async move { get(addr, "/").await.status });
    eventually("the second client waits in the backlog", || async {
        accept_backlog(addr) == 1
    })
    .await;
    assert!(
        !second.is_finished(),
        "second client was served despite maxconn 1"
    );
    drop(first);
    assert_eq!(second.await.expect("second"), 200);
}

/// The value of one Prometheus series (`name{labels}`), if present.
fn series(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_bytes_in_and_out_are_counted_with_headers() {
    let web = Backend::http("web");
    let cfg = format!("{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend app\nbackend app\n    server web {}\n", web.addr);
    let mut shoal = Shoal::start_with(&cfg, &["fe"], &["--admin", "127.0.0.1:0"]);
    let admin = shoal.admin_addr();
    let body = "x".repeat(1000);
    let r = send(shoal.addr("fe"), "POST", "/", &[], &body).await;
    assert_eq!(r.status, 200);
    let metrics = get(admin, "/metrics").await.body;
    let fe_in =
        series(&metrics, "shoal_frontend_bytes_in_total{proxy=\"fe\"}").expect("frontend bin");
    let srv_in = series(
        &metrics,
        "shoal_server_bytes_in_total{proxy=\"app\",server=\"web\"}",
    )
    .expect("server bin");
    let fe_out =
        series(&metrics, "shoal_frontend_bytes_out_total{proxy=\"fe\"}").expect("frontend bout");
    // Request line and headers come on top of the 1000-byte body.
    assert!(
        fe_in > 1000.0 && srv_in > 1000.0,
        "bin: frontend {fe_in}, server {srv_in}\n{metrics}"
    );
    assert!(fe_out >= 3.0, "bout {fe_out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reopens_changed_stats_sockets() {
    let web = Backend::http("web");
    let dir = TempDir::new("sock");
    let first = dir.0.join("first.sock");
    let second = dir.0.join("second.sock");
    let cfg = |sock: &std::path::Path| {
        format!(
            "global\n    stats socket {} level admin\n{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend app\nbackend app\n    server web {}\n",
            sock.display(),
            web.addr
        )
    };
    let mut shoal = Shoal::start(&cfg(&first), &["fe"]);
    let ask = |path: std::path::PathBuf| async move {
        let mut s = tokio::net::UnixStream::connect(&path).await.ok()?;
        s.write_all(b"show info\n").await.ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).await.ok()?;
        Some(out)
    };
    eventually("first socket answers", || {
        let p = first.clone();
        async move { ask(p).await.is_some_and(|o| o.contains("Name: ")) }
    })
    .await;
    shoal.reload(&cfg(&second), &[]);
    eventually("second socket answers", || {
        let p = second.clone();
        async move { ask(p).await.is_some_and(|o| o.contains("Name: ")) }
    })
    .await;
    assert!(!first.exists(), "the old socket file is removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_server_cuts_a_stalled_response_body() {
    let web = Backend::http("web");
    let cfg = format!(
        "defaults\n    mode http\n    timeout connect 1s\n    timeout client 10s\n    timeout server 300ms\n\
         frontend fe\n    bind 127.0.0.1:0\n    default_backend app\nbackend app\n    server web {}\n",
        web.addr
    );
    let shoal = Shoal::start(&cfg, &["fe"]);
    let addr = shoal.addr("fe");
    // A short silence inside the body is fine...
    let whole = raw(
        addr,
        b"GET /stall/100 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(whole.contains("start") && whole.contains("end"), "{whole}");
    // ...a longer one than `timeout server` cuts the response after `start`.
    let started = std::time::Instant::now();
    let cut = raw(
        addr,
        b"GET /stall/5000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(cut.contains("start") && !cut.contains("end"), "{cut}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "cut by the timeout, not by the server: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_client_answers_408_to_a_stalled_upload() {
    let web = Backend::http("web");
    let cfg = format!(
        "defaults\n    mode http\n    timeout connect 1s\n    timeout client 300ms\n    timeout server 10s\n\
         frontend fe\n    bind 127.0.0.1:0\n    default_backend app\nbackend app\n    server web {}\n",
        web.addr
    );
    let shoal = Shoal::start(&cfg, &["fe"]);
    // Headers promise 100 bytes; only 10 come, then silence.
    let answer = raw(
        shoal.addr("fe"),
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // A complete upload still works.
    let r = send(shoal.addr("fe"), "POST", "/", &[], &"y".repeat(5000)).await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_tunnel_timeout_is_an_inactivity_timeout() {
    let web = Backend::http("web");
    let cfg = format!(
        "defaults\n    mode http\n    timeout connect 1s\n    timeout client 10s\n    timeout server 10s\n    timeout tunnel 500ms\n\
         frontend fe\n    bind 127.0.0.1:0\n    default_backend app\nbackend app\n    server web {}\n",
        web.addr
    );
    let shoal = Shoal::start(&cfg, &["fe"]);
    let mut s = TcpStream::connect(shoal.addr("fe")).await.expect("connect");
    s.write_all(
        b"GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .await
    .expect("write");
    let mut reader = BufReader::new(s);
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.expect("head");
        if line == "\r\n" {
            break;
        }
    }
    // Active for three times the tunnel timeout: the tunnel stays open.
    let started = std::time::Instant::now();
    let mut quiet = started;
    while started.elapsed() < Duration::from_millis(1500) {
        reader.get_mut().write_all(b"ping").await.expect("write");
        let mut echo = [0u8; 4];
        tokio::time::timeout(DEADLINE, reader.read_exact(&mut echo))
            .await
            .expect("echo in time")
            .expect("echo");
        assert_eq!(&echo, b"ping");
        quiet = std::time::Instant::now();
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // Then silent since `quiet`: closed after about the tunnel timeout.
    let mut rest = Vec::new();
    tokio::time::timeout(DEADLINE, reader.read_to_end(&mut rest))
        .await
        .expect("closed in time")
        .expect("read");
    assert!(
        quiet.elapsed() >= Duration::from_millis(400),
        "closed after {:?}",
        quiet.elapsed()
    );
}
