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
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend app\n\
         backend app\n    balance roundrobin\n    stick-table type ip size 100 expire 1s\n    stick on src\n{}",
        servers_cfg(&b, "")
    );
    let shoal = Shoal::start(&cfg, &["fe"]);
    let addr = shoal.addr("fe");
    let first = get(addr, "/").await.server();
    for _ in 0..50 {
        assert_eq!(
            get(addr, "/").await.server(),
            first,
            "stuck to the first server"
        );
    }
    // After `expire` without traffic the entry is gone and round robin
    // moves on to the next server. Each request refreshes the entry, so
    // each probe first lets more than `expire` pass in silence.
    eventually("entry expired", || async {
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        get(addr, "/").await.server() != first
    })
    .await;
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
