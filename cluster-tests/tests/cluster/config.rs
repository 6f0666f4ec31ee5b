//! Scenario 2: a config applied through a follower runs on every node; an
//! invalid one is refused with its FILE:LINE and changes nothing.

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_applied_through_a_follower_runs_everywhere_and_a_bad_one_changes_nothing() {
    let s1 = Backend::http("s1");
    let s2 = Backend::http("s2");
    let mut c = Cluster::start(3, &config(&[&s1], "")).await;
    let all = c.ids();
    let leader = c.leader(&all).await;
    let follower = *all.iter().find(|&&id| id != leader).expect("a follower");
    let follower_admin = c.node(follower).admin.to_string();

    // A new frontend `extra` to a new backend `other` (s2 only).
    let extra = format!(
        "frontend extra\n    bind \"${{NODE_IP}}:0\"\n    default_backend other\n\
         backend other\n    server s2 {}\n",
        s2.addr
    );
    let new_text = config(&[&s1], &extra);
    let new = c.dir.file("new.cfg", &new_text);
    let new_arg = new.display().to_string();
    let out = shoal(&[
        "config",
        "apply",
        "-f",
        &new_arg,
        "--admin",
        &follower_admin,
    ])
    .await;
    assert_eq!(
        out.ok().trim(),
        format!("configuration {new_arg} applied"),
        "{out:?}"
    );
    for id in all.clone() {
        // Wait for its listening notice, then send a request through it.
        let front = c.node_mut(id).front("extra");
        let r = get(front, "/").await;
        assert_eq!(
            (r.status, r.server().as_str()),
            (200, "s2"),
            "through the new frontend of node {id}"
        );
        let r = get(c.node_mut(id).front("web"), "/").await;
        assert_eq!((r.status, r.server().as_str()), (200, "s1"), "node {id}");
    }
    let hash = c.converged(&all).await;

    // An invalid one: a typo on a line whose number we know.
    let bad_text = format!("{new_text}backend broken\n    sever s9 {}\n", s2.addr);
    let bad_line = bad_text.lines().count();
    let bad = c.dir.file("bad.cfg", &bad_text);
    let bad_arg = bad.display().to_string();
    let out = shoal(&[
        "config",
        "apply",
        "-f",
        &bad_arg,
        "--admin",
        &follower_admin,
    ])
    .await;
    assert_eq!(out.code, Some(1), "an invalid config is refused: {out:?}");
    let want = format!("shoal: config refused: {bad_arg}:{bad_line}: ");
    assert!(
        out.stderr.starts_with(&want) && out.stderr.contains("'sever'"),
        "the refusal names the file, the line and the keyword; want {want:?}...; got {out:?}"
    );
    assert!(out.stdout.is_empty(), "{out:?}");

    // Nothing changed, on any node: same state, same running text, the
    // old frontends still serve, no new listener.
    for &id in &all {
        let status = c.status(id).await;
        assert_eq!(
            own_hash(&status).as_deref(),
            Some(hash.as_str()),
            "state hash of node {id} after the refused config"
        );
        let admin_addr = c.node(id).admin.to_string();
        let shown = shoal(&["config", "show", "--admin", &admin_addr]).await;
        assert_eq!(shown.ok(), new_text, "running config of node {id}");
        let r = get(c.node_mut(id).front("extra"), "/").await;
        assert_eq!((r.status, r.server().as_str()), (200, "s2"), "node {id}");
    }
}

/// A `bind ... ssl` whose certificate one node lacks: that node cannot
/// build the new routing and keeps the old one, but it must never answer
/// plaintext on the TLS port (it used to: the listener fell back to
/// plain HTTP when no TLS acceptor was found for its address).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_port_without_its_certificate_never_speaks_plaintext() {
    let s1 = Backend::http("s1");
    let mut c = Cluster::start(2, &config(&[&s1], "")).await;
    // A certificate and key (the cluster CA issues one) in node 1's own
    // directory only: `"${SHOAL_DIR}"` differs per node.
    let certs = c.dir.path("site");
    shoal(&[
        "cluster",
        "cert",
        "--ca",
        &c.ca.display().to_string(),
        "--node-id",
        "9",
        "--out",
        &certs.display().to_string(),
    ])
    .await
    .ok();
    let pem = std::fs::read_to_string(certs.join("node.pem")).expect("cert")
        + &std::fs::read_to_string(certs.join("node-key.pem")).expect("key");
    std::fs::write(c.node(1).dir.join("site.pem"), pem).expect("write site.pem");
    // A second, TLS, bind on the existing frontend `web` (whose old
    // routing node 2 keeps): 127.0.0.1:0, distinct from "${NODE_IP}:0".
    let text = config(&[&s1], "").replace(
        "    bind \"${NODE_IP}:0\"\n",
        "    bind \"${NODE_IP}:0\"\n    bind 127.0.0.1:0 ssl crt \"${SHOAL_DIR}/site.pem\"\n",
    );
    assert!(text.contains("ssl crt"), "{text}");
    let file = c.dir.file("tls.cfg", &text);
    let admin1 = c.node(1).admin.to_string();
    shoal(&[
        "config",
        "apply",
        "-f",
        &file.display().to_string(),
        "--admin",
        &admin1,
    ])
    .await
    .ok();
    // Node 2 opens the port (the config parses there) but cannot load the
    // certificate: a plaintext request gets no HTTP answer there.
    let port = c.node_mut(2).front_nth("web", 2);
    assert_eq!(port.ip().to_string(), "127.0.0.1", "the TLS bind's port");
    let r = try_http(port, "GET", "/", &[], "", std::time::Duration::from_secs(5)).await;
    assert!(
        r.as_ref().map_or(true, |r| r.status != 200),
        "node 2 answered plaintext on its TLS port: {r:?}"
    );
    // Node 1 serves TLS there and refuses plaintext too.
    let port1 = c.node_mut(1).front_nth("web", 2);
    let r = try_http(
        port1,
        "GET",
        "/",
        &[],
        "",
        std::time::Duration::from_secs(5),
    )
    .await;
    assert!(r.as_ref().map_or(true, |r| r.status != 200), "{r:?}");
}

/// `GET /ready` on an admin API (no token needed): its status.
async fn ready(admin: std::net::SocketAddr) -> u16 {
    try_http(admin, "GET", "/ready", &[], "", DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .status
}

/// A config the cluster accepted (it built on the node that proposed it)
/// whose routing one node cannot build (a certificate it lacks): that
/// node answers 503 on `/ready`, so a VIP or DNS health check moves
/// clients to the others, and 200 again once a later build works there.
/// It used to stay 200 while routing by the previous config.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_cannot_build_the_routing_is_not_ready_until_a_build_works() {
    let s1 = Backend::http("s1");
    let c = Cluster::start(2, &config(&[&s1], "")).await;
    let (admin1, admin2) = (c.node(1).admin, c.node(2).admin);
    for admin in [admin1, admin2] {
        poll("both nodes ready", || async {
            (ready(admin).await == 200).then_some(())
        })
        .await;
    }
    // A certificate and key in node 1's directory only.
    let certs = c.dir.path("site");
    issue_cert(&c.ca, 9, &certs);
    let pem = std::fs::read_to_string(certs.join("node.pem")).expect("cert")
        + &std::fs::read_to_string(certs.join("node-key.pem")).expect("key");
    std::fs::write(c.node(1).dir.join("site.pem"), &pem).expect("write site.pem");
    let text = config(&[&s1], "").replace(
        "    bind \"${NODE_IP}:0\"\n",
        "    bind \"${NODE_IP}:0\"\n    bind 127.0.0.1:0 ssl crt \"${SHOAL_DIR}/site.pem\"\n",
    );
    let file = c.dir.file("tls.cfg", &text);
    shoal(&[
        "config",
        "apply",
        "-f",
        &file.display().to_string(),
        "--admin",
        &admin1.to_string(),
    ])
    .await
    .ok();
    poll("node 2 (no certificate) answers 503 on /ready", || async {
        (ready(admin2).await == 503).then_some(())
    })
    .await;
    assert_eq!(ready(admin1).await, 200, "node 1 built the config");

    // The certificate arrives on node 2; the next change rebuilds there.
    std::fs::write(c.node(2).dir.join("site.pem"), &pem).expect("write site.pem");
    let r = c.put_weight(1, "app", "s1", 2).await;
    assert_eq!(r.status, 200, "{}", r.body);
    poll("node 2 answers 200 on /ready again", || async {
        (ready(admin2).await == 200).then_some(())
    })
    .await;
}
