//! Scenario 7: `shoal node drain` takes a node out of service without
//! cutting what it is doing; `shoal node ready` brings it back.

use crate::support::*;
use std::time::Duration;

/// Connections `backend` accepted so far, this query's included.
async fn conns(backend: &Backend) -> usize {
    let r = get(backend.addr, "/conns").await;
    r.body.trim().parse().expect("a connection count")
}

/// `GET /ready` on an admin API (no token needed): its status.
async fn ready(admin: std::net::SocketAddr) -> u16 {
    try_http(admin, "GET", "/ready", &[], "", DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .status
}

/// Whether deploy/keepalived/shoal-ready.sh (the VIP's track script)
/// says the node with this admin API is ready.
fn track_script_passes(admin: std::net::SocketAddr) -> bool {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/keepalived/shoal-ready.sh");
    std::process::Command::new("sh")
        .arg(&script)
        .arg(admin.to_string())
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()))
        .success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drained_node_finishes_in_flight_requests_and_takes_no_new_ones() {
    let s1 = Backend::http("s1");
    let mut c = Cluster::start(3, &config(&[&s1], "")).await;
    let front2 = c.node_mut(2).front("web");
    let admin1 = c.node(1).admin.to_string();
    let admin2 = c.node(2).admin;
    assert_eq!(ready(admin2).await, 200, "node 2 is ready before the drain");
    assert!(
        track_script_passes(admin2),
        "keepalived's track script before the drain"
    );

    // A long request through node 2, under way at the backend.
    let base = conns(&s1).await;
    let long = tokio::spawn(async move {
        try_http(
            front2,
            "GET",
            "/delay/8000",
            &[],
            "",
            Duration::from_secs(60),
        )
        .await
    });
    let mut probes = 1;
    poll("the long request reached the backend", || {
        probes += 1;
        let n = probes;
        let s1 = &s1;
        async move { (conns(s1).await >= base + n).then_some(()) }
    })
    .await;

    let out = shoal(&["node", "drain", "2", "--admin", &admin1]).await;
    assert_eq!(out.ok().trim(), "node 2: drain");
    poll("node 2's /ready answers 503", || async {
        (ready(admin2).await == 503).then_some(())
    })
    .await;
    poll("node 2 refuses new connections", || async {
        tokio::net::TcpStream::connect(front2)
            .await
            .is_err()
            .then_some(())
    })
    .await;
    assert!(
        !long.is_finished(),
        "the long request must still be in flight while node 2 drains (the machine was too slow for this test)"
    );
    // The other nodes serve on.
    for id in [1, 3] {
        let r = get(c.node_mut(id).front("web"), "/").await;
        assert_eq!(r.status, 200, "through node {id} while node 2 drains");
        assert_eq!(ready(c.node(id).admin).await, 200, "node {id} /ready");
    }
    // keepalived's track script fails: the VIP would move away.
    assert!(
        !track_script_passes(admin2),
        "keepalived's track script on a drained node"
    );
    let status = c.status(3).await;
    assert_eq!(
        member(&status, 2).expect("node 2")["drained"],
        true,
        "{status}"
    );

    let r = long
        .await
        .expect("task")
        .expect("the in-flight request gets its answer");
    assert_eq!(
        (r.status, r.server().as_str()),
        (200, "s1"),
        "the long request"
    );

    let out = shoal(&["node", "ready", "2", "--admin", &admin1]).await;
    assert_eq!(out.ok().trim(), "node 2: ready");
    poll("node 2's /ready answers 200 again", || async {
        (ready(admin2).await == 200).then_some(())
    })
    .await;
    assert!(
        track_script_passes(admin2),
        "keepalived's track script after `node ready`"
    );
    // Its listener opens again (bound anew: port 0 picks a new port).
    let reopened = c.node_mut(2).front_nth("web", 2);
    let r = get(reopened, "/").await;
    assert_eq!(
        (r.status, r.server().as_str()),
        (200, "s1"),
        "through node 2 again"
    );
}

/// A node restarted while drained opens no frontend listener until it is
/// made ready: before, it listened from its start until its first
/// reconcile closed the listeners again, and a client sent there by DNS
/// in that moment was cut off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_while_drained_listens_only_once_ready() {
    let s1 = Backend::http("s1");
    let mut c = Cluster::start(3, &config(&[&s1], "")).await;
    let admin1 = c.node(1).admin.to_string();
    shoal(&["node", "drain", "2", "--admin", &admin1])
        .await
        .ok();
    poll("node 2's /ready answers 503", || async {
        (ready(c.node(2).admin).await == 503).then_some(())
    })
    .await;
    let old = tokio::task::block_in_place(|| c.stop(2));
    let node = tokio::task::block_in_place(|| c.restart(old));
    // The admin API notice comes after the first reconcile.
    node.proc.wait_line("admin API listening on ");
    let listening = node.proc.count("frontend 'web' listening on ");
    assert_eq!(
        listening, 0,
        "the drained node opened its frontend at start"
    );
    c.converged(&[1, 2, 3]).await;
    shoal(&["node", "ready", "2", "--admin", &admin1])
        .await
        .ok();
    let front = c.node_mut(2).front("web");
    assert_eq!(c.node_mut(2).proc.count("frontend 'web' listening on "), 1);
    let r = get(front, "/").await;
    assert_eq!(
        (r.status, r.server().as_str()),
        (200, "s1"),
        "through node 2 once ready"
    );
}

/// With `global grace`, a drained node answers 503 on `/ready` at once but
/// keeps accepting connections for the grace, so that clients behind a
/// VIP that has not moved yet (keepalived needs about 2 s) are not
/// refused; then its listeners close. Without it they closed at the
/// moment `/ready` turned 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_node_keeps_accepting_for_its_grace() {
    let grace = Duration::from_secs(4);
    let s1 = Backend::http("s1");
    let text = config(&[&s1], "").replacen("global\n", "global\n    grace 4s\n", 1);
    assert!(text.contains("grace 4s"), "{text}");
    let mut c = Cluster::start(2, &text).await;
    let front2 = c.node_mut(2).front("web");
    let (admin1, admin2) = (c.node(1).admin.to_string(), c.node(2).admin);
    assert_eq!(ready(admin2).await, 200, "node 2 is ready before the drain");

    let drained_at = std::time::Instant::now();
    let out = shoal(&["node", "drain", "2", "--admin", &admin1]).await;
    assert_eq!(out.ok().trim(), "node 2: drain");
    poll("node 2's /ready answers 503", || async {
        (ready(admin2).await == 503).then_some(())
    })
    .await;
    // Not ready, yet a new connection is accepted and served.
    let r = try_http(front2, "GET", "/", &[], "", DEADLINE).await;
    let served_at = drained_at.elapsed();
    assert!(
        served_at < grace,
        "the machine took {served_at:?} to see the drain: longer than the grace"
    );
    let r = r.unwrap_or_else(|e| panic!("node 2 refused during its grace: {e}"));
    assert_eq!((r.status, r.server().as_str()), (200, "s1"));
    assert!(
        !track_script_passes(admin2),
        "keepalived's track script fails during the grace"
    );
    // Then the listener closes, not before the grace is over.
    poll("node 2 refuses new connections", || async {
        tokio::net::TcpStream::connect(front2)
            .await
            .is_err()
            .then_some(())
    })
    .await;
    let refused_at = drained_at.elapsed();
    assert!(
        refused_at >= grace,
        "node 2 refused after {refused_at:?}, before its {grace:?} grace"
    );
    assert_eq!(ready(admin2).await, 503);
}
