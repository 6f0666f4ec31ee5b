//! Server pool behaviour: backups, maxconn queueing, retries and
//! redispatch, and keep-alive reuse toward servers.

mod support;

use support::*;

const DEFAULTS: &str = "defaults\n    mode http\n    timeout connect 1s\n    timeout client 10s\n    timeout server 10s\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_serves_only_when_primaries_are_down() {
    let mut p1 = Backend::http("p1");
    let mut p2 = Backend::http("p2");
    let bk1 = Backend::http("bk1");
    let bk2 = Backend::http("bk2");
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend app\n\
         backend app\n    balance roundrobin\n    option redispatch\n    retries 2\n\
         \x20   server p1 {} check inter 100ms fall 2 rise 2\n\
         \x20   server p2 {} check inter 100ms fall 2 rise 2\n\
         \x20   server bk1 {} check inter 100ms backup\n\
         \x20   server bk2 {} check inter 100ms backup\n",
        p1.addr, p2.addr, bk1.addr, bk2.addr
    );
    let shoal = Shoal::start(&cfg, &["fe"]);
    let addr = shoal.addr("fe");
    let counts = tally(addr, "/", 200).await;
    assert_eq!(counts.len(), 2, "only primaries serve: {counts:?}");
    assert!(counts.contains_key("p1") && counts.contains_key("p2"));

    p1.stop();
    p2.stop();
    // Health checks mark both primaries DOWN; then only the first backup serves.
    eventually("backup takes over", || async {
        get(addr, "/").await.server() == "bk1"
    })
    .await;
    let counts = tally(addr, "/", 200).await;
    assert_eq!(
        counts.get("bk1"),
        Some(&200),
        "first backup only (no allbackups): {counts:?}"
    );

    // A primary comes back: traffic returns to it.
    p1.restart("http");
    eventually("primary back", || async {
        get(addr, "/").await.server() == "p1"
    })
    .await;
    let counts = tally(addr, "/", 100).await;
    assert_eq!(counts.get("p1"), Some(&100), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allbackups_spreads_over_all_backups() {
    let bk1 = Backend::http("bk1");
    let bk2 = Backend::http("bk2");
    let dead = dead_addr();
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend app\n\
         backend app\n    option allbackups\n\
         \x20   server p1 {dead} disabled\n\
         \x20   server bk1 {} backup\n    server bk2 {} backup\n",
        bk1.addr, bk2.addr
    );
    let shoal = Shoal::start(&cfg, &["fe"]);
    let counts = tally(shoal.addr("fe"), "/", 100).await;
    assert_eq!(
        (counts.get("bk1"), counts.get("bk2")),
        (Some(&50), Some(&50)),
        "{counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_and_redispatch_hide_a_dead_server() {
    let s1 = Backend::http("s1");
    let s2 = Backend::http("s2");
    let dead = dead_addr();
    // No health check: only retries + redispatch keep clients from seeing errors.
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend app\n\
         backend app\n    balance roundrobin\n    retries 3\n    option redispatch\n\
         \x20   server s1 {}\n    server dead {dead}\n    server s2 {}\n",
        s1.addr, s2.addr
    );
    let shoal = Shoal::start(&cfg, &["fe"]);
    let mut failed = 0;
    let mut client = Client::connect(shoal.addr("fe")).await;
    for _ in 0..1000 {
        let r = client.get("/").await;
        if r.status != 200 {
            failed += 1;
        }
    }
    assert_eq!(failed, 0, "client requests failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redispatch_a_dead_server_answers_503() {
    let dead = dead_addr();
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend app\n\
         backend app\n    retries 1\n    server dead {dead}\n"
    );
    let shoal = Shoal::start(&cfg, &["fe"]);
    let r = get(shoal.addr("fe"), "/").await;
    assert_eq!(r.status, 503);
    assert!(r.body.contains("503 Service Unavailable"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maxconn_queues_then_503_on_queue_timeout() {
    let s1 = Backend::http("s1");
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend app\n\
         backend app\n    timeout queue 300ms\n    server s1 {} maxconn 1\n",
        s1.addr
    );
    let shoal = Shoal::start(&cfg, &["fe"]);
    let addr = shoal.addr("fe");
    // Each request takes 1 s and only one may run: the others wait in the
    // queue and give up after 300 ms with a 503.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        tasks.push(tokio::spawn(async move {
            get(addr, "/delay/1000").await.status
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("task"));
    }
    statuses.sort();
    assert_eq!(statuses, vec![200, 503, 503, 503]);

    // With a queue timeout longer than the work, queued requests all succeed,
    // one at a time.
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend app\n\
         backend app\n    timeout queue 10s\n    server s1 {} maxconn 1\n",
        s1.addr
    );
    let shoal = Shoal::start(&cfg, &["fe"]);
    let addr = shoal.addr("fe");
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        tasks.push(tokio::spawn(
            async move { get(addr, "/delay/200").await.status },
        ));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task"), 200);
    }
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(800),
        "requests were serialised by maxconn 1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maxqueue_full_answers_503_at_once() {
    let s1 = Backend::http("s1");
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend app\n\
         backend app\n    timeout queue 10s\n    server s1 {} maxconn 1 maxqueue 1\n",
        s1.addr
    );
    let shoal = Shoal::start(&cfg, &["fe"]);
    let addr = shoal.addr("fe");
    // Three at once: one holds the only slot, one waits in the queue (size
    // 1), and whichever comes third is answered 503 at once.
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..3 {
        tasks.push(tokio::spawn(async move {
            let r = get(addr, "/delay/1000").await;
            (r.status, std::time::Instant::now())
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("task"));
    }
    results.sort_by_key(|r| r.0);
    let statuses: Vec<u16> = results.iter().map(|r| r.0).collect();
    assert_eq!(statuses, vec![200, 200, 503]);
    assert!(
        results[2].1 - started < std::time::Duration::from_millis(900),
        "the 503 came without waiting"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_connections_are_reused_across_clients() {
    let s1 = Backend::http("s1");
    // `always`: even a client's first request may ride an idle connection
    // (the default, `safe`, gives first requests a connection of their own).
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend app\n\
         backend app\n    http-reuse always\n    server s1 {}\n",
        s1.addr
    );
    let shoal = Shoal::start(&cfg, &["fe"]);
    let addr = shoal.addr("fe");
    // 200 requests from 200 separate client connections, one after another.
    for _ in 0..200 {
        assert_eq!(get(addr, "/").await.status, 200);
    }
    let conns: usize = get(addr, "/conns")
        .await
        .body
        .trim()
        .parse()
        .expect("conns count");
    assert!(
        conns <= 3,
        "server saw {conns} connections for 201 requests"
    );
}
