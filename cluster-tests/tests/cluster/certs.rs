//! Scenario 6: a peer with another node's certificate, or with one from
//! another CA, is refused; the membership is unchanged.

use crate::support::*;
use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_started_with_another_nodes_certificate_fails_at_start() {
    let s1 = Backend::http("s1");
    let c = Cluster::start(1, &config(&[&s1], "")).await;
    let certs5 = c.certs(5);
    let cmd = run_command(
        &c.dir.0,
        &Start {
            id: 2,
            certs: &certs5,
            config: Some(&c.cfg),
            join: Some(c.node(1).cluster),
            cluster_addr: None,
            admin: None,
            snapshot_every: None,
        },
    );
    let mut node2 = Proc::spawn("node 2 with node 5's certificate", cmd);
    let status = node2
        .wait_exit(DEADLINE)
        .unwrap_or_else(|| panic!("node 2 did not stop:\n{}", node2.log()));
    assert_eq!(status.code(), Some(1), "{}", node2.log());
    let log = node2.log();
    let want = format!(
        "{}: this certificate is not node 2's",
        certs5.join("node.pem").display()
    );
    assert!(
        log.contains(&want) && log.contains("node-2.shoal"),
        "the error names the file and the node; want {want:?} in:\n{log}"
    );
    let status = c.status(1).await;
    assert_eq!(member_ids(&status), vec![1], "membership after the refusal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_with_a_certificate_from_another_ca_cannot_join() {
    let s1 = Backend::http("s1");
    let mut c = Cluster::start(1, &config(&[&s1], "")).await;
    let hash = c.converged(&[1]).await;
    // Another CA, and node 2's certificate from it.
    let other_ca = c.dir.path("other-ca");
    let made = Command::new(bin("shoal"))
        .args(["cluster", "ca", "--out"])
        .arg(&other_ca)
        .output()
        .expect("shoal cluster ca");
    assert!(made.status.success(), "{made:?}");
    let certs = c.dir.path("other-certs2");
    issue_cert(&other_ca, 2, &certs);
    let via = c.node(1).cluster;
    let mut intruder = Node::start(
        &c.dir.0,
        &Start {
            id: 2,
            certs: &certs,
            config: Some(&c.cfg),
            join: Some(via),
            cluster_addr: None,
            admin: None,
            snapshot_every: None,
        },
    );
    // It tries (at least twice), the member refuses, and says so.
    let tried = intruder.proc.wait_nth(&format!("joining through {via}"), 2);
    let refused = c.node_mut(1).proc.wait_line("cluster peer refused");
    assert!(
        refused.contains(&intruder.ip.to_string()),
        "the refusal names the peer: {refused}"
    );
    println!("refused: {refused}\njoiner: {tried}");
    assert_eq!(
        intruder.proc.count("joined the cluster"),
        0,
        "{}",
        intruder.proc.log()
    );
    let status = c.status(1).await;
    assert_eq!(member_ids(&status), vec![1], "membership after the refusal");
    assert_eq!(own_hash(&status).as_deref(), Some(hash.as_str()));
}
