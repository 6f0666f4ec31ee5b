//! Scenario 1: a change made through one node (its runtime socket, its
//! admin API) steers the traffic of every node.

use crate::support::*;

/// Connections `backend` accepted so far, this query's included.
async fn conns(backend: &Backend) -> usize {
    let r = get(backend.addr, "/conns").await;
    r.body.trim().parse().expect("a connection count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weight_through_one_socket_and_maint_through_another_api_steer_every_node() {
    let s1 = Backend::http("s1");
    let s2 = Backend::http("s2");
    let mut c = Cluster::start(3, &config(&[&s1, &s2], "")).await;
    let fronts: Vec<_> = (1..=3).map(|id| c.node_mut(id).front("web")).collect();

    // Both servers answer through node A before the change.
    let before = tally(fronts[0], 20).await;
    assert!(
        before.contains_key("s1") && before.contains_key("s2"),
        "round robin over s1 and s2 through node 1: {before:?}"
    );

    // `set weight` on node C's runtime socket; HAProxy answers nothing on success.
    let answer = socat(&c.node(3).socket(), "set weight app/s1 0");
    assert_eq!(answer.trim(), "", "set weight through node 3's socket");
    // Committed on a majority, applied on A in its turn: s1 leaves A's rotation.
    poll("node 1 stops sending to s1", || async {
        let t = tally(fronts[0], 10).await;
        (!t.contains_key("s1")).then_some(())
    })
    .await;
    let through_a = tally(fronts[0], 30).await;
    assert_eq!(
        through_a.get("s2"),
        Some(&30),
        "s1 (weight 0 set through node 3) got traffic through node 1: {through_a:?}"
    );
    let weight = socat(&c.node(1).socket(), "get weight app/s1");
    assert_eq!(weight.trim(), "0 (initial 1)", "node 1's runtime socket");

    // s1 back, then s2 to maint through node B's admin API.
    assert_eq!(socat(&c.node(3).socket(), "set weight app/s1 1").trim(), "");
    let r = admin(
        c.node(2).admin,
        "PUT",
        "/v1/backends/app/servers/s2/state",
        r#"{"state":"maint"}"#,
    )
    .await;
    assert_eq!(
        r.status, 200,
        "maint through node 2's admin API: {}",
        r.body
    );
    assert_eq!(r.json()["status"], "MAINT", "{}", r.body);
    for (i, &front) in fronts.iter().enumerate() {
        poll(&format!("node {} sends only to s1", i + 1), || async {
            let t = tally(front, 10).await;
            (t.get("s1") == Some(&10)).then_some(())
        })
        .await;
    }
    // s2's own count of accepted connections: no request reaches it
    // through any node (only this probe and the next one count).
    let s2_before = conns(&s2).await;
    for (i, &front) in fronts.iter().enumerate() {
        let t = tally(front, 30).await;
        assert_eq!(
            t.get("s1"),
            Some(&30),
            "s2 (maint through node 2) got traffic through node {}: {t:?}",
            i + 1
        );
    }
    assert_eq!(
        conns(&s2).await,
        s2_before + 1,
        "s2 accepted connections while in maint"
    );
    let all = c.ids();
    c.converged(&all).await;
}
