//! A node whose environment lacks a variable the cluster's config uses:
//! it applies the config like the others (same state, same hash), keeps
//! serving what it served, says why in its log, and answers 503 on
//! `/ready` until a config that loads there is applied. The same after a
//! restart from its data directory.

#![forbid(unsafe_code)]

#[path = "support/mod.rs"]
mod support;

use std::net::SocketAddr;
use support::*;

/// The variable nodes 1 and 2 set and node 3 does not.
const VAR: &str = "EXTRA_IP";

/// What a node logs when the running config does not load there.
const DOES_NOT_LOAD: &str = "the replicated configuration does not load on this node";

/// `GET /ready` on an admin API (no token needed): its status.
async fn ready(admin: SocketAddr) -> u16 {
    try_http(admin, "GET", "/ready", &[], "", DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .status
}

/// Wait until `/ready` of node `id` answers `status`.
async fn wait_ready(c: &Cluster, id: u64, status: u16) {
    let admin = c.node(id).admin;
    poll(&format!("node {id}'s /ready answers {status}"), || async {
        (ready(admin).await == status).then_some(())
    })
    .await;
}

/// `shoal config apply` of `text` through node `id`; asserts it is applied.
async fn apply(c: &Cluster, id: u64, name: &str, text: &str) -> String {
    let file = c.dir.file(name, text).display().to_string();
    let admin = c.node(id).admin.to_string();
    let out = shoal(&["config", "apply", "-f", &file, "--admin", &admin]).await;
    assert_eq!(
        out.ok().trim(),
        format!("configuration {file} applied"),
        "{out:?}"
    );
    file
}

/// Three nodes: 1 and 2 set `VAR` to their own address, 3 does not.
async fn start(config: &str) -> Cluster {
    let mut c = Cluster::prepare(config, None).await;
    let ip = |id| node_ip(id).to_string();
    c.spawn_with_env(1, None, &[(VAR, &ip(1))]);
    c.init(1).await;
    let via = c.node(1).cluster;
    c.spawn_with_env(2, Some(via), &[(VAR, &ip(2))]);
    c.spawn(3, Some(via));
    for id in [2, 3] {
        c.node_mut(id)
            .proc
            .wait_line(&format!("node {id} joined the cluster through {via}"));
    }
    c.wait_voters(1, &[1, 2, 3]).await;
    c.converged(&[1, 2, 3]).await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_cannot_load_the_config_keeps_serving_and_is_not_ready() {
    let s1 = Backend::http("s1");
    let s2 = Backend::http("s2");
    let mut c = start(&config(&[&s1], "")).await;
    let all = [1, 2, 3];
    for id in all {
        wait_ready(&c, id, 200).await;
    }

    // A new frontend whose address only nodes 1 and 2 can fill in, to a
    // new backend.
    let extra = format!(
        "frontend extra\n    bind \"${{{VAR}}}:0\"\n    default_backend other\n\
         backend other\n    server s2 {}\n",
        s2.addr
    );
    let text = config(&[&s1], &extra);
    let line = text
        .lines()
        .position(|l| l.contains(VAR))
        .expect("the bind line")
        + 1;
    let file = apply(&c, 1, "extra.cfg", &text).await;
    for id in [1, 2] {
        let r = get(c.node_mut(id).front("extra"), "/").await;
        assert_eq!(
            (r.status, r.server().as_str()),
            (200, "s2"),
            "through the new frontend of node {id}"
        );
    }

    // Node 3 says why, and what it does meanwhile.
    let said = c.node_mut(3).proc.wait_line(DOES_NOT_LOAD);
    let why = format!("{file}:{line}: environment variable '{VAR}' is not set");
    assert!(
        said.contains(&why) && said.contains("it keeps serving its previous configuration"),
        "want {why:?} in {said:?}"
    );
    assert!(said.contains("ERROR"), "logged at error level: {said:?}");
    wait_ready(&c, 3, 503).await;
    let hash = c.converged(&all).await;
    // It still serves its old frontend, and opened none for the new one.
    let r = get(c.node_mut(3).front("web"), "/").await;
    assert_eq!(
        (r.status, r.server().as_str()),
        (200, "s1"),
        "through node 3"
    );
    assert_eq!(c.node_mut(3).proc.count("frontend 'extra' listening"), 0);
    // The others stay ready; node 3 runs the new config as replicated
    // state (what `shoal config show` prints), not as routing.
    for id in [1, 2] {
        assert_eq!(ready(c.node(id).admin).await, 200, "node {id} /ready");
    }
    let admin3 = c.node(3).admin.to_string();
    let shown = shoal(&["config", "show", "--admin", &admin3]).await;
    assert_eq!(shown.ok(), text, "the running config of node 3");
    assert_eq!(c.node_mut(3).proc.count(DOES_NOT_LOAD), 1, "said once");

    // Restart node 3 from its data directory: its state decodes although
    // its config does not load there.
    let old = c.kill(3);
    c.restart(old);
    c.node_mut(3)
        .proc
        .wait_line("node 3 starts from its data in");
    let said = c.node_mut(3).proc.wait_line(DOES_NOT_LOAD);
    assert!(said.contains(&why), "want {why:?} in {said:?}");
    wait_ready(&c, 3, 503).await;
    assert_eq!(c.converged(&all).await, hash, "nothing changed meanwhile");
    c.wait_voters(1, &all).await;
    let log = c.node_mut(3).proc.log();
    assert!(!log.contains("panicked"), "node 3 printed:\n{log}");

    // A config that loads everywhere: node 3 runs it and is ready again.
    let fixed = extra.replace(&format!("${{{VAR}}}"), "${NODE_IP}");
    apply(&c, 1, "fixed.cfg", &config(&[&s1], &fixed)).await;
    wait_ready(&c, 3, 200).await;
    for id in all {
        let r = get(c.node_mut(id).front("extra"), "/").await;
        assert_eq!(
            (r.status, r.server().as_str()),
            (200, "s2"),
            "through the new frontend of node {id}"
        );
        let r = get(c.node_mut(id).front("web"), "/").await;
        assert_eq!((r.status, r.server().as_str()), (200, "s1"), "node {id}");
    }
    c.converged(&all).await;
    let log = c.node_mut(3).proc.log();
    assert!(!log.contains("panicked"), "node 3 printed:\n{log}");
}
