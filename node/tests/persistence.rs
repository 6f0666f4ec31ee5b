//! Session persistence through real processes: cookie insert, rewrite and
//! prefix, redispatch when the cookie's server is DOWN, stick tables.

mod support;

use support::*;

const DEFAULTS: &str =
    "defaults\n    mode http\n    timeout connect 1s\n    timeout client 10s\n    timeout server 10s\n";

fn set_cookies(r: &Resp) -> Vec<String> {
    r.headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap_or("").to_string())
        .collect()
}

fn three() -> Vec<Backend> {
    vec![
        Backend::http("s1"),
        Backend::http("s2"),
        Backend::http("s3"),
    ]
}

fn servers_cfg(b: &[Backend], opts: &str) -> String {
    b.iter()
        .map(|s| format!("    server {} {} {opts}\n", s.name, s.addr))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_insert_indirect_nocache() {
    let b = three();
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend app\n\
         backend app\n    balance roundrobin\n    cookie SERVERID insert indirect nocache httponly\n{}",
        servers_cfg(&b, "check inter 100ms")
    );
    let shoal = Shoal::start(&cfg, &["fe"]);
    let addr = shoal.addr("fe");
    let first = get(addr, "/").await;
    let server = first.server();
    assert_eq!(
        set_cookies(&first),
        vec![format!("SERVERID={server}; path=/; HttpOnly")]
    );
    assert_eq!(
        first
            .headers
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("private")
    );

    let cookie = format!("SERVERID={server}; app=1");
    for _ in 0..100 {
        let r = get_with(addr, "/echo-headers", &[("cookie", &cookie)]).await;
        assert_eq!(r.server(), server, "cookie persistence");
        // indirect: no new cookie for a client that has the right one, and
        // the server never sees the persistence cookie.
        assert!(set_cookies(&r).is_empty(), "{:?}", set_cookies(&r));
        assert!(
            !r.body.contains("SERVERID"),
            "server saw the cookie: {}",
            r.body
        );
        assert!(r.body.contains("app=1"), "other cookies pass: {}", r.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_of_a_down_server_is_redispatched() {
    let mut b = three();
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend app\n\
         backend app\n    balance roundrobin\n    option redispatch\n    cookie SERVERID insert indirect\n{}",
        servers_cfg(&b, "check inter 100ms fall 2")
    );
    let mut shoal = Shoal::start(&cfg, &["fe"]);
    let addr = shoal.addr("fe");
    let r = get_with(addr, "/", &[("cookie", "SERVERID=s2")]).await;
    assert_eq!(r.server(), "s2");
    b[1].stop();
    shoal.proc.wait_line("Server app/s2 is DOWN");
    let r = get_with(addr, "/", &[("cookie", "SERVERID=s2")]).await;
    assert_eq!(r.status, 200);
    let now = r.server();
    assert_ne!(now, "s2");
    assert_eq!(
        set_cookies(&r),
        vec![format!("SERVERID={now}; path=/")],
        "a new cookie names the new server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_rewrite_and_prefix() {
    let b = three();
    for (mode, set, client_sees, server_sees) in [
        ("rewrite", "SERVERID=appvalue", "SERVERID={s}; Path=/", None),
        (
            "prefix",
            "JSESSIONID=abc",
            "JSESSIONID={s}~abc; Path=/",
            Some("JSESSIONID=abc"),
        ),
    ] {
        let name = set.split('=').next().unwrap_or_default();
        let cfg = format!(
            "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend app\n\
             backend app\n    balance roundrobin\n    cookie {name} {mode}\n{}",
            servers_cfg(&b, "")
        );
        let shoal = Shoal::start(&cfg, &["fe"]);
        let addr = shoal.addr("fe");
        let r = get(addr, &format!("/set-cookie/{set}")).await;
        let s = r.server();
        assert_eq!(
            set_cookies(&r),
            vec![client_sees.replace("{s}", &s)],
            "{mode}"
        );
        let value = set_cookies(&r)[0]
            .split(';')
            .next()
            .unwrap_or_default()
            .to_string();
        for _ in 0..20 {
            let r = get_with(addr, "/echo-headers", &[("cookie", &value)]).await;
            assert_eq!(r.server(), s, "{mode} persistence");
            if let Some(seen) = server_sees {
                assert!(
                    r.body.contains(&format!("cookie: {seen}")),
                    "{mode}: server saw {}",
                    r.body
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stick_on_src_sticks_and_expires() {
    let b = three();
    let cfg = format!(
        "global\n    stats socket ipv4@127.0.0.1:0 level admin\n{DEFAULTS}\
         frontend fe\n    bind 127.0.0.1:0\n    default_backend app\n\
         backend app\n    balance roundrobin\n    stick-table type ip size 100 expire 1s\n    stick on src\n{}",
        servers_cfg(&b, "")
    );
    let mut shoal = Shoal::start(&cfg, &["fe"]);
    let socket: std::net::SocketAddr = shoal.stats_sockets(1)[0].parse().expect("socket");
    let addr = shoal.addr("fe");
    let first = get(addr, "/").await.server();
    for _ in 0..50 {
        assert_eq!(
            get(addr, "/").await.server(),
            first,
            "stuck to the first server"
        );
    }
    assert!(cli_tcp(socket, "show table app\n")
        .await
        .contains("key=127.0.0.1"));
    // After `expire` without traffic the entry is gone (the runtime API
    // stops listing it) and round robin moves on to the next server.
    eventually("entry expired", || async {
        !cli_tcp(socket, "show table app\n").await.contains("key=")
    })
    .await;
    assert_ne!(get(addr, "/").await.server(), first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stick_on_cookie_value() {
    let b = three();
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend app\n\
         backend app\n    balance roundrobin\n    stick-table type string len 32 size 2 expire 1m\n    stick on req.cook(sid)\n{}",
        servers_cfg(&b, "")
    );
    let shoal = Shoal::start(&cfg, &["fe"]);
    let addr = shoal.addr("fe");
    let mut owner = std::collections::HashMap::new();
    for sid in ["a", "b"] {
        let c = format!("sid={sid}");
        owner.insert(sid, get_with(addr, "/", &[("cookie", &c)]).await.server());
    }
    for _ in 0..10 {
        for sid in ["a", "b"] {
            let c = format!("sid={sid}");
            assert_eq!(
                get_with(addr, "/", &[("cookie", &c)]).await.server(),
                owner[sid]
            );
        }
    }
    assert_ne!(
        owner["a"], owner["b"],
        "round robin spread the first requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_stick_on_src() {
    let a = Backend::tcp("a");
    let b = Backend::tcp("b");
    let cfg = format!(
        "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 10s\n    timeout server 10s\n\
         listen lines\n    bind 127.0.0.1:0\n    balance roundrobin\n    stick-table type ip size 10\n    stick on src\n\
         \x20   server a {}\n    server b {}\n",
        a.addr, b.addr
    );
    let shoal = Shoal::start(&cfg, &["lines"]);
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut names = std::collections::HashSet::new();
    for _ in 0..10 {
        let s = tokio::net::TcpStream::connect(shoal.addr("lines"))
            .await
            .expect("connect");
        let mut r = BufReader::new(s);
        r.get_mut().write_all(b"hi\n").await.expect("write");
        let mut l = String::new();
        r.read_line(&mut l).await.expect("read");
        names.insert(l.split(' ').next().unwrap_or("").to_string());
    }
    assert_eq!(names.len(), 1, "{names:?}");
}

/// One request from a chosen loopback source address.
async fn get_from(src: std::net::IpAddr, addr: std::net::SocketAddr) -> String {
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.bind(std::net::SocketAddr::new(src, 0))
        .expect("bind source");
    let stream = sock.connect(addr).await.expect("connect");
    use hyper_util::rt::TokioIo;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = hyper::Request::get("/")
        .header("host", "x")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    let resp = sender.send_request(req).await.expect("response");
    resp.headers()
        .get("x-server")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_consistent_hash_keeps_clients_when_a_server_leaves() {
    let mut b = vec![
        Backend::http("s1"),
        Backend::http("s2"),
        Backend::http("s3"),
        Backend::http("s4"),
    ];
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend app\n\
         backend app\n    balance source\n    hash-type consistent\n{}",
        servers_cfg(&b, "check inter 100ms fall 2")
    );
    let mut shoal = Shoal::start(&cfg, &["fe"]);
    let addr = shoal.addr("fe");
    let clients: Vec<std::net::IpAddr> = (2..82u8)
        .map(|i| std::net::IpAddr::from([127, 0, 0, i]))
        .collect();
    let mut before = Vec::new();
    for &c in &clients {
        before.push(get_from(c, addr).await);
    }
    let used: std::collections::HashSet<_> = before.iter().collect();
    assert_eq!(
        used.len(),
        4,
        "80 clients spread over all servers: {before:?}"
    );
    b[2].stop();
    shoal.proc.wait_line("Server app/s3 is DOWN");
    for (i, &c) in clients.iter().enumerate() {
        let now = get_from(c, addr).await;
        if before[i] == "s3" {
            assert_ne!(now, "s3");
        } else {
            assert_eq!(
                now, before[i],
                "client {c} moved although its server stayed"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_maxidle_and_maxlife() {
    let b = three();
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend app\n\
         backend app\n    balance roundrobin\n    cookie SERVERID insert indirect maxidle 30s maxlife 1h\n{}",
        servers_cfg(&b, "")
    );
    let shoal = Shoal::start(&cfg, &["fe"]);
    let addr = shoal.addr("fe");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let r = get(addr, "/").await;
    let set = set_cookies(&r);
    assert_eq!(set.len(), 1);
    assert!(
        set[0].starts_with(&format!("SERVERID={}|", r.server())),
        "{set:?}"
    );
    // A fresh cookie sticks, and is refreshed (maxidle) keeping its first date.
    let fresh = format!("SERVERID=s3|{}|{}", now - 5, now - 100);
    for _ in 0..10 {
        let r = get_with(addr, "/", &[("cookie", &fresh)]).await;
        assert_eq!(r.server(), "s3");
        let set = set_cookies(&r);
        assert!(
            set[0].starts_with("SERVERID=s3|") && set[0].contains(&format!("|{};", now - 100)),
            "{set:?}"
        );
    }
    // Idle too long, or too old: ignored, so round robin decides again.
    for stale in [
        format!("SERVERID=s3|{}|{}", now - 60, now - 100),
        format!("SERVERID=s3|{}|{}", now - 5, now - 7200),
    ] {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..6 {
            seen.insert(get_with(addr, "/", &[("cookie", &stale)]).await.server());
        }
        assert_eq!(seen.len(), 3, "{stale} was ignored: {seen:?}");
    }
}
