//! Scenario 5: one node cut off the network (iptables drops its QUIC
//! traffic). The majority keeps committing; the isolated node keeps
//! serving traffic and refuses writes saying quorum is lost; once healed
//! it converges.

use crate::support::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_follower_serves_refuses_writes_and_converges_after_healing() {
    isolate(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_leader_serves_refuses_writes_and_converges_after_healing() {
    isolate(true).await;
}

/// Cut the leader or a follower off, and check what each side does.
async fn isolate(the_leader: bool) {
    let s1 = Backend::http("s1");
    let s2 = Backend::http("s2");
    let mut c = Cluster::start(3, &config(&[&s1, &s2], "")).await;
    let all = c.ids();
    let leader = c.leader(&all).await;
    let cut_id = if the_leader {
        leader
    } else {
        *all.iter()
            .rev()
            .find(|&&id| id != leader)
            .expect("a follower")
    };
    let majority: Vec<u64> = all.iter().copied().filter(|&id| id != cut_id).collect();
    let cut_front = c.node_mut(cut_id).front("web");
    let cut_admin = c.node(cut_id).admin.to_string();
    let majority_admin = c.node(majority[0]).admin.to_string();

    let cut = Cut::isolate(c.node(cut_id).cluster);

    // A write through the isolated node, at once: a follower cut off a
    // moment ago still forwards it to the leader it knew, then gives up.
    let refused = {
        let cut_admin = cut_admin.clone();
        tokio::spawn(async move {
            shoal(&["server", "weight", "app/s2", "3", "--admin", &cut_admin]).await
        })
    };

    // Meanwhile the majority commits (once it has elected a leader of its
    // own, when the leader was cut off) ...
    let out = poll("a write through the majority commits", || async {
        let out = shoal(&[
            "server",
            "weight",
            "app/s1",
            "5",
            "--admin",
            &majority_admin,
        ])
        .await;
        (out.code == Some(0) || !the_leader).then_some(out)
    })
    .await;
    assert_eq!(out.ok().trim(), "app/s1: weight 5");
    // ... and again, through the other majority node.
    let other_admin = c.node(majority[1]).admin.to_string();
    let out = shoal(&["server", "weight", "app/s2", "6", "--admin", &other_admin]).await;
    assert_eq!(out.ok().trim(), "app/s2: weight 6");

    // The isolated node refused its write well within the write deadline
    // (5 s), saying why: a follower once it no longer hears its leader, a
    // leader once the majority's acknowledgements are 1.5 s old. (The
    // bound allows time for starting the CLI process on a busy machine.)
    let out = refused.await.expect("the isolated write's task");
    assert_eq!(
        out.code,
        Some(1),
        "a write through the isolated node: {out:?}"
    );
    assert!(
        out.stderr.contains("quorum"),
        "the refusal says quorum is lost: {out:?}"
    );
    assert!(
        out.took < Duration::from_secs(4),
        "the isolated node took {:?} to refuse a write",
        out.took
    );
    println!(
        "isolated node {cut_id} refused a write in {:?}: {}",
        out.took,
        out.stderr.trim()
    );

    // It keeps serving on its last state, which lacks the majority's writes,
    for _ in 0..10 {
        let r = get(cut_front, "/").await;
        assert_eq!(r.status, 200, "through the isolated node");
    }
    let status = c.status(cut_id).await;
    assert_eq!(status["quorum"], false, "the isolated node knows: {status}");
    assert_eq!(
        c.server(cut_id, "app", "s1").await["weight"],
        1,
        "the isolated node cannot have the majority's write"
    );
    // while the majority has a leader with quorum.
    let leader_now = c.leader(&majority).await;

    // Heal soon after the refused write: QUIC would still be
    // retransmitting it, if it had not been taken back.
    cut.heal();
    let hash = c.converged(&all).await;
    for &id in &all {
        assert_eq!(
            c.server(id, "app", "s1").await["weight"],
            5,
            "node {id} (state {hash}) has the majority's first write"
        );
        // The write refused through the isolated node must not take
        // effect later (say, when the network heals), least of all over
        // a write acknowledged since.
        assert_eq!(
            c.server(id, "app", "s2").await["weight"],
            6,
            "node {id} (state {hash}): app/s2 must keep the acknowledged weight 6, \
             not the 3 refused through the isolated node"
        );
    }
    // And it takes writes again (after the election it may cause).
    poll("a write through the healed node succeeds", || async {
        let out = shoal(&["server", "weight", "app/s2", "2", "--admin", &cut_admin]).await;
        (out.code == Some(0)).then_some(())
    })
    .await;
    c.converged(&all).await;
    println!("partition: node {cut_id} cut; node {leader_now} led the majority");
}
