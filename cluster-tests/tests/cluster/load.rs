//! Drill 5: load shared across the nodes. Server `maxconn` holds for the
//! whole cluster, `leastconn` ranks servers by the sessions of every node,
//! and a node that stops reporting stops counting.

use crate::support::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::net::SocketAddr;
use std::time::Duration;

/// The most sessions above `maxconn` the backend may see at once with 3
/// nodes: N - 1, when the nodes grow their shares in the same report
/// round and each takes one of the last free slots (see
/// `shoal_node::load::next_limit`).
const OVERSHOOT: u64 = 2;

/// A frontend per node to backend `app`; `servers` are whole server lines.
fn load_config(balance: &str, servers: &str, extra: &str) -> String {
    format!(
        "global\n\
         \x20   stats socket \"${{SHOAL_DIR}}/admin.sock\" level admin\n\
         defaults\n\
         \x20   mode http\n\
         \x20   timeout connect 2s\n\
         \x20   timeout client 120s\n\
         \x20   timeout server 120s\n\
         \x20   timeout queue 120s\n\
         frontend web\n\
         \x20   bind \"${{NODE_IP}}:0\"\n\
         \x20   default_backend app\n\
         backend app\n\
         \x20   balance {balance}\n\
         {extra}\
         {servers}"
    )
}

/// Node `id`'s `GET /v1/cluster/load`: whether it counts `peer` as live,
/// and `server` of `app`'s sessions on the peers.
async fn load_view(c: &Cluster, id: u64, peer: u64, server: &str) -> (bool, u64) {
    let r = admin(c.node(id).admin, "GET", "/v1/cluster/load", "").await;
    assert_eq!(r.status, 200, "GET /v1/cluster/load: {}", r.body);
    let v = r.json();
    let live = v["peers"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["node"] == peer))
        .is_some_and(|p| p["live"] == true);
    let entry = v["servers"]
        .as_array()
        .and_then(|ss| {
            ss.iter()
                .find(|s| s["backend"] == "app" && s["server"] == server)
        })
        .unwrap_or_else(|| panic!("node {id}: no app/{server} in {v}"));
    (
        live,
        entry["peers_in_flight"].as_u64().expect("peers_in_flight"),
    )
}

/// Wait until every node counts every other node's reports.
fn wait_reports(c: &mut Cluster) {
    let ids = c.ids();
    for &me in &ids {
        for &peer in ids.iter().filter(|&&p| p != me) {
            c.node_mut(me)
                .proc
                .wait_line(&format!("node {me}: load reports from node {peer} arrive"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maxconn_holds_for_the_cluster_and_no_request_fails() {
    let s1 = Backend::http("s1");
    let servers = format!("    server s1 {} maxconn 10\n", s1.addr);
    let mut c = Cluster::start(3, &load_config("roundrobin", &servers, "")).await;
    wait_reports(&mut c);
    let fronts: Vec<SocketAddr> = (1..=3).map(|id| c.node_mut(id).front("web")).collect();

    // 60 concurrent clients, 20 through each node, 3 slow requests each.
    let mut clients = Vec::new();
    for i in 0..60 {
        let front = fronts[i % 3];
        clients.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            for _ in 0..3 {
                match try_http(
                    front,
                    "GET",
                    "/delay/300",
                    &[],
                    "",
                    Duration::from_secs(100),
                )
                .await
                {
                    Ok(r) if r.status == 200 && r.server() == "s1" => {}
                    Ok(r) => failures.push(format!("{front}: {} {}", r.status, r.body)),
                    Err(e) => failures.push(e),
                }
            }
            failures
        }));
    }
    let mut failures = Vec::new();
    for client in clients {
        failures.extend(client.await.expect("client task"));
    }
    assert!(failures.is_empty(), "requests failed: {failures:?}");
    let seen = peak(&s1).await;
    eprintln!("backend peak concurrency: {seen} (maxconn 10, bound +{OVERSHOOT})");
    assert!(
        seen <= 10 + OVERSHOOT,
        "s1 (maxconn 10) served {seen} requests at once through 3 nodes"
    );
    // The limit was reached, not merely never approached.
    assert!(
        seen >= 8,
        "s1 saw at most {seen} at once: the load never got there"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leastconn_counts_other_nodes_sessions_until_they_go_silent() {
    let s1 = Backend::http("s1");
    let s2 = Backend::http("s2");
    let servers = format!(
        "    server s1 {} cookie s1\n    server s2 {} cookie s2\n",
        s1.addr, s2.addr
    );
    let mut c = Cluster::start(
        3,
        &load_config(
            "leastconn",
            &servers,
            "    cookie SRV insert indirect nocache\n",
        ),
    )
    .await;
    wait_reports(&mut c);
    let fronts: Vec<SocketAddr> = (1..=3).map(|id| c.node_mut(id).front("web")).collect();

    // Six long requests on s2 through node 1 (the cookie pins them).
    let mut busy = Vec::new();
    for _ in 0..6 {
        let front = fronts[0];
        busy.push(tokio::spawn(async move {
            try_http(
                front,
                "GET",
                "/delay/60000",
                &[("cookie", "SRV=s2")],
                "",
                Duration::from_secs(90),
            )
            .await
        }));
    }
    // Once node 1's next report arrives, nodes 2 and 3 send new requests
    // to s1, the less loaded server cluster-wide (alone, each would
    // alternate: both servers are idle as far as it knows).
    for (i, &front) in fronts.iter().enumerate().skip(1) {
        poll(&format!("node {} prefers s1", i + 1), || async {
            let t = tally(front, 10).await;
            (t.get("s1") == Some(&10)).then_some(())
        })
        .await;
        let t = tally(front, 20).await;
        assert_eq!(
            t.get("s1"),
            Some(&20),
            "node {} sent requests to s2, busy with 6 sessions of node 1: {t:?}",
            i + 1
        );
    }

    // The admin API shows what node 2 counts: node 1 live, its 6 sessions.
    poll("node 2 shows node 1's sessions on s2", || async {
        (load_view(&c, 2, 1, "s2").await == (true, 6)).then_some(())
    })
    .await;

    // Node 1 freezes: its sessions stay open, its reports stop. Within
    // the timeout the others drop it from the sums and use s2 again.
    let pid = Pid::from_raw(c.node(1).proc.child.id() as i32);
    kill(pid, Signal::SIGSTOP).expect("SIGSTOP node 1");
    for id in [2, 3] {
        c.node_mut(id).proc.wait_line(&format!(
            "node {id}: no current load report from node 1 within"
        ));
    }
    let t = tally(fronts[2], 10).await;
    let shown = load_view(&c, 3, 1, "s2").await;
    kill(pid, Signal::SIGCONT).expect("SIGCONT node 1");
    assert_eq!(
        shown,
        (false, 0),
        "node 3's /v1/cluster/load after node 1 went silent (live, s2 peers' sessions)"
    );
    assert!(
        t.get("s2").is_some_and(|&n| n >= 4),
        "node 3 still avoids s2 after node 1 went silent: {t:?}"
    );
    for b in busy {
        b.abort();
    }
}
