//! The backend queue through real processes: requests waiting for a server
//! slot are served in arrival order, a newcomer never overtakes them, and
//! the access log's queue time (Tw) is the time actually waited.

mod support;

use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const DEFAULTS: &str = "defaults\n    mode http\n    timeout connect 1s\n    timeout client 10s\n    timeout server 10s\n";

/// Requests waiting in `backend`'s queue, from the admin API's metrics.
async fn queued(admin: std::net::SocketAddr, backend: &str) -> usize {
    let metrics = get(admin, "/metrics").await.body;
    let prefix = format!("shoal_backend_current_queue{{proxy=\"{backend}\"}}");
    metrics
        .lines()
        .find(|l| l.starts_with(&prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in\n{metrics}"))
}

async fn wait_queued(admin: std::net::SocketAddr, backend: &str, n: usize) {
    eventually(&format!("{n} request(s) queued in {backend}"), || async {
        queued(admin, backend).await == n
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_requests_are_served_in_arrival_order() {
    let s1 = Backend::http("s1");
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend app\n\
         backend app\n    timeout queue 20s\n    server s1 {} maxconn 1\n",
        s1.addr
    );
    let mut shoal = Shoal::start_with(&cfg, &["fe"], &["--admin", "127.0.0.1:0"]);
    let admin = shoal.admin_addr();
    let addr = shoal.addr("fe");
    // The first request holds the only slot; the others arrive one by one,
    // each after the previous one is seen waiting.
    let base = backend_conns(s1.addr).await;
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(async move {
        let r = get(addr, "/delay/500").await;
        (r.status, Instant::now())
    }));
    wait_new_backend_connection(s1.addr, base).await;
    for i in 1..6 {
        tasks.push(tokio::spawn(async move {
            let r = get(addr, "/delay/100").await;
            (r.status, Instant::now())
        }));
        wait_queued(admin, "app", i).await;
    }
    let mut done = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let (status, at) = t.await.expect("task");
        assert_eq!(status, 200, "request {i}");
        done.push((at, i));
    }
    done.sort();
    let order: Vec<usize> = done.iter().map(|&(_, i)| i).collect();
    assert_eq!(order, vec![0, 1, 2, 3, 4, 5], "served out of order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_does_not_overtake_a_queued_request() {
    // A keep-alive client pipelines requests: each one reaches the
    // dispatcher the instant the previous one frees the server's only
    // slot. A request already waiting in the queue must still go first;
    // letting the newcomers overtake starves it into a 503.
    let s1 = Backend::http("s1");
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend app\n\
         backend app\n    timeout queue 1500ms\n    server s1 {} maxconn 1\n",
        s1.addr
    );
    let mut shoal = Shoal::start_with(&cfg, &["fe"], &["--admin", "127.0.0.1:0"]);
    let admin = shoal.admin_addr();
    let addr = shoal.addr("fe");
    let base = backend_conns(s1.addr).await;
    let mut pipelined = TcpStream::connect(addr).await.expect("connect");
    let burst = "GET /delay/300 HTTP/1.1\r\nHost: t\r\n\r\n".repeat(6);
    pipelined
        .write_all(burst.as_bytes())
        .await
        .expect("write burst");
    wait_new_backend_connection(s1.addr, base).await;
    let started = Instant::now();
    let waiting = tokio::spawn(async move { get(addr, "/").await.status });
    wait_queued(admin, "app", 1).await;
    assert_eq!(waiting.await.expect("queued request"), 200);
    // It waited for one pipelined request (300 ms), not for all six.
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_millis(1200),
        "the queued request waited {waited:?}"
    );
    // The pipelined requests are all answered too, after it.
    let mut answers = String::new();
    let mut buf = [0u8; 4096];
    while answers.matches("HTTP/1.1 200").count() < 6 {
        let n = tokio::time::timeout(DEADLINE, pipelined.read(&mut buf))
            .await
            .expect("answers in time")
            .expect("read");
        assert!(n > 0, "closed early: {answers}");
        answers.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_log_shows_the_time_spent_queued() {
    let line = Backend::tcp("line");
    let cfg = format!(
        "defaults\n    mode tcp\n    log stdout format raw local0\n    option tcplog\n\
         \x20   timeout connect 1s\n    timeout client 10s\n    timeout server 10s\n\
         listen lines\n    log global\n    bind 127.0.0.1:0\n    timeout queue 10s\n\
         \x20   server line {} maxconn 1\n",
        line.addr
    );
    let mut shoal = Shoal::start_with(&cfg, &["lines"], &["--admin", "127.0.0.1:0"]);
    let admin = shoal.admin_addr();
    let addr = shoal.addr("lines");
    let mut first = TcpStream::connect(addr).await.expect("connect");
    first.write_all(b"hello\n").await.expect("write");
    let mut buf = [0u8; 64];
    let n = first.read(&mut buf).await.expect("echo");
    assert!(n > 0);
    let mut second = TcpStream::connect(addr).await.expect("connect");
    second.write_all(b"QUIT\n").await.expect("write");
    wait_queued(admin, "lines", 1).await;
    let queued_at = Instant::now();
    // Hold the slot a while longer, then free it.
    tokio::time::sleep(Duration::from_millis(400)).await;
    first.write_all(b"QUIT\n").await.expect("quit");
    let mut rest = Vec::new();
    first.read_to_end(&mut rest).await.expect("first ends");
    // Closing our side ends the first session and frees the slot.
    drop(first);
    second.read_to_end(&mut rest).await.expect("second ends");
    drop(second);
    let waited = queued_at.elapsed().as_millis() as i64;
    // Two lines for `lines/line`; the second one waited about 400 ms.
    let mut tw = Vec::new();
    eventually("two log lines", || {
        tw = shoal
            .proc
            .drain()
            .iter()
            .filter(|l| l.contains(" lines lines/line "))
            .map(|l| {
                let timers = l.split(' ').nth(4).unwrap_or("");
                timers
                    .split('/')
                    .next()
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or(-2)
            })
            .collect();
        let n = tw.len();
        async move { n >= 2 }
    })
    .await;
    tw.sort();
    assert!(tw[0] >= 0 && tw[0] < 100, "Tw of the first: {tw:?}");
    assert!(
        tw[1] >= 350 && tw[1] <= waited + 100,
        "Tw of the queued one: {tw:?} (waited {waited} ms)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_requests_wait_for_their_server_without_blocking_others() {
    // A request whose cookie names a full server waits in that server's
    // queue; a request any server may take is not held up behind it.
    let s1 = Backend::http("s1");
    let s2 = Backend::http("s2");
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend app\n\
         backend app\n    balance roundrobin\n    cookie SRV insert indirect nocache\n\
         \x20   timeout queue 10s\n\
         \x20   server s1 {} maxconn 1 cookie s1\n    server s2 {} maxconn 1 cookie s2\n",
        s1.addr, s2.addr
    );
    let mut shoal = Shoal::start_with(&cfg, &["fe"], &["--admin", "127.0.0.1:0"]);
    let admin = shoal.admin_addr();
    let addr = shoal.addr("fe");
    let base = backend_conns(s1.addr).await;
    let sent = Instant::now();
    let holder = tokio::spawn(async move {
        let r = get_with(addr, "/delay/800", &[("cookie", "SRV=s1")]).await;
        (r.status, r.server(), Instant::now())
    });
    wait_new_backend_connection(s1.addr, base).await;
    let pinned = tokio::spawn(async move {
        let r = get_with(addr, "/", &[("cookie", "SRV=s1")]).await;
        (r.status, r.server(), Instant::now())
    });
    wait_queued(admin, "app", 1).await;
    // s2 is free: a request without persistence goes there at once.
    let free = get(addr, "/").await;
    let free_done = Instant::now();
    assert_eq!((free.status, free.server().as_str()), (200, "s2"));
    let (h_status, h_server, h_done) = holder.await.expect("holder");
    assert!(
        free_done < h_done,
        "held up behind the persistent request until s1 freed up"
    );
    let (p_status, p_server, p_done) = pinned.await.expect("pinned");
    assert_eq!((h_status, h_server.as_str()), (200, "s1"));
    // The persistent request waited for s1 rather than going to s2: it
    // was served once the holder's 800 ms were over. (Not compared with
    // the holder's own answer: the slot frees when s1 has answered, and
    // the two clients may then see their answers in either order.)
    assert_eq!((p_status, p_server.as_str()), (200, "s1"));
    assert!(
        p_done.duration_since(sent) >= Duration::from_millis(800),
        "served {:?} after the holder was sent, before its slot was free",
        p_done.duration_since(sent)
    );
}
