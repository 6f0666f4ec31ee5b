//! Scenario 4: a node restarts from its data directory, a new node
//! catches up by snapshot after the log was compacted, a dead node is
//! removed and the rest go on.

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_restarted_from_its_data_dir_comes_back_with_its_state() {
    let s1 = Backend::http("s1");
    let mut c = Cluster::start(3, &config(&[&s1], "")).await;
    let r = c.put_weight(1, "app", "s1", 7).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let all = c.ids();
    c.converged(&all).await;

    let old = c.kill(3);
    // A change while node 3 is down: it must catch up on it.
    poll("a write commits on nodes 1 and 2", || async {
        (c.put_weight(1, "app", "s1", 3).await.status == 200).then_some(())
    })
    .await;
    // Same command as at first, minus -f: the data directory has it all.
    let node = c.restart(old);
    node.proc.wait_line("node 3 starts from its data in ");
    let hash = c.converged(&all).await;
    assert_eq!(
        c.server(3, "app", "s1").await["weight"],
        3,
        "node 3 (state {hash}) caught up on the write made while it was down"
    );
    let front = c.node_mut(3).front("web");
    let r = get(front, "/").await;
    assert_eq!(
        (r.status, r.server().as_str()),
        (200, "s1"),
        "through node 3"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_node_catches_up_by_snapshot_after_compaction() {
    let s1 = Backend::http("s1");
    let mut c = Cluster::start_with(3, &config(&[&s1], ""), Some(50)).await;
    // Snapshots every 50 entries, keeping at most 100 entries behind the
    // last one: after 250 changes the start of the log is gone, so a new
    // node can only catch up from a snapshot.
    let changes = 250;
    for i in 0..changes {
        let r = c.put_weight(1, "app", "s1", 1 + i % 200).await;
        assert_eq!(r.status, 200, "change {i}: {}", r.body);
    }
    let last = 1 + (changes - 1) % 200;
    let via = c.node(1).cluster;
    c.spawn(4, Some(via))
        .proc
        .wait_line(&format!("node 4 joined the cluster through {via}"));
    let all = [1, 2, 3, 4];
    c.wait_voters(1, &all).await;
    let hash = c.converged(&all).await;
    let node4 = c.node_mut(4);
    node4.proc.wait_line("installed a snapshot");
    let front = node4.front("web");
    assert_eq!(
        c.server(4, "app", "s1").await["weight"],
        last,
        "node 4 (state {hash}) has the last change"
    );
    let r = get(front, "/").await;
    assert_eq!(
        (r.status, r.server().as_str()),
        (200, "s1"),
        "through node 4"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_node_removed_and_the_rest_still_commit() {
    let s1 = Backend::http("s1");
    let mut c = Cluster::start(3, &config(&[&s1], "")).await;
    c.kill(3);
    let admin1 = c.node(1).admin.to_string();
    // If node 3 led, the others elect a leader first: retry until one takes it.
    let removed = poll("shoal cluster remove 3 succeeds", || async {
        let out = shoal(&["cluster", "remove", "3", "--admin", &admin1]).await;
        (out.code == Some(0)).then_some(out)
    })
    .await;
    assert_eq!(removed.stdout.trim(), "node 3 removed from the cluster");
    for id in [1, 2] {
        c.wait_voters(id, &[1, 2]).await;
        let listed = member_ids(&c.status(id).await);
        assert!(
            !listed.contains(&3),
            "node {id} still lists node 3: {listed:?}"
        );
    }
    let admin2 = c.node(2).admin.to_string();
    let out = shoal(&["server", "weight", "app/s1", "4", "--admin", &admin2]).await;
    assert_eq!(out.ok().trim(), "app/s1: weight 4");
    c.converged(&[1, 2]).await;
    assert_eq!(c.server(1, "app", "s1").await["weight"], 4, "node 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voter_back_without_its_data_does_not_vote_until_removed_and_joined_again() {
    let s1 = Backend::http("s1");
    let mut c = Cluster::start(3, &config(&[&s1], "")).await;
    let old = c.kill(3);
    std::fs::remove_dir_all(&old.data_dir).expect("wipe node 3's data directory");
    poll("a write commits on nodes 1 and 2", || async {
        (c.put_weight(1, "app", "s1", 5).await.status == 200).then_some(())
    })
    .await;

    // Node 3 again on its addresses, with its file and no --join (as a
    // unit file without --join would start it). The leader still counts
    // it as a voter and sends it the log, which it takes ...
    let node = Node::start(
        &c.dir.0,
        &Start {
            id: 3,
            certs: &old.certs,
            config: Some(&c.cfg),
            join: None,
            cluster_addr: Some(old.cluster),
            admin: Some(old.admin),
            snapshot_every: None,
        },
    );
    drop(old);
    c.nodes.insert(3, node);
    poll("node 3 takes the log", || async {
        (c.server(3, "app", "s1").await["weight"] == 5).then_some(())
    })
    .await;

    // ... but having lost what it acknowledged, it must not vote: with the
    // leader gone, the last original voter cannot be elected.
    let leader = c.leader(&[1, 2]).await;
    let other = if leader == 1 { 2 } else { 1 };
    let dead_leader = c.kill(leader);
    // Node 3 was asked for its vote, and refused it ...
    c.node_mut(3)
        .proc
        .wait_line("the cluster knows node 3 by another data directory");
    // ... so node `other` stays without a leader: writes fail.
    let other_admin = c.node(other).admin.to_string();
    let out = shoal(&["server", "weight", "app/s1", "6", "--admin", &other_admin]).await;
    assert_eq!(
        out.code,
        Some(1),
        "node {other} must not win an election with node 3's vote: {out:?}"
    );
    assert!(out.stderr.contains("quorum"), "{out:?}");
    assert!(
        c.status(other).await["leader"].is_null(),
        "node {other} knows no leader"
    );

    // The operator's way back: the old leader returns, node 3 is removed
    // and joins again (as the directory it has now).
    c.restart(dead_leader);
    let admin1 = c.node(1).admin.to_string();
    let out = poll("shoal cluster remove 3 succeeds", || async {
        let out = shoal(&["cluster", "remove", "3", "--admin", &admin1]).await;
        (out.code == Some(0)).then_some(out)
    })
    .await;
    assert_eq!(out.stdout.trim(), "node 3 removed from the cluster");
    let via = c.node(1).cluster.to_string();
    let admin3 = c.node(3).admin.to_string();
    let out = shoal(&["cluster", "join", "--via", &via, "--admin", &admin3]).await;
    assert_eq!(out.code, Some(0), "node 3 joins again: {out:?}");
    c.wait_voters(1, &[1, 2, 3]).await;
    let hash = c.converged(&[1, 2, 3]).await;
    assert_eq!(
        c.server(3, "app", "s1").await["weight"],
        5,
        "node 3 (state {hash}) has the cluster's state"
    );
    // And it votes again: without node 1, nodes 2 and 3 elect a leader.
    c.kill(1);
    let admin2 = c.node(2).admin.to_string();
    poll("nodes 2 and 3 commit without node 1", || async {
        let out = shoal(&["server", "weight", "app/s1", "7", "--admin", &admin2]).await;
        (out.code == Some(0)).then_some(())
    })
    .await;
}
