//! Seven voters: built with both ways of joining (`--join` at start and
//! `shoal cluster join --via`), a write through the last node reaches all
//! seven; with three killed (the leader among them) the four left elect a
//! leader and commit; with a fourth killed, writes are refused for lack
//! of quorum.

use crate::support::*;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seven_voters_survive_three_deaths_and_refuse_writes_after_four() {
    let started = Instant::now();
    let s1 = Backend::http("s1");
    let mut c = Cluster::prepare(&config(&[&s1], ""), None).await;
    c.spawn(1, None);
    c.init(1).await;
    let via1 = c.node(1).cluster;
    // Nodes 2-4 join node 1 by themselves (`--join` at start) ...
    for id in 2..=4 {
        c.spawn(id, Some(via1));
    }
    // ... nodes 5-7 start alone and are told to join through another
    // member (`shoal cluster join --via`), each through a different one.
    for id in 5..=7 {
        c.spawn(id, None);
    }
    for id in 2..=4 {
        c.node_mut(id)
            .proc
            .wait_line(&format!("node {id} joined the cluster through {via1}"));
    }
    for id in 5..=7 {
        let via = c.node(id - 3).cluster.to_string();
        let admin = c.node(id).admin.to_string();
        let out = shoal(&["cluster", "join", "--via", &via, "--admin", &admin]).await;
        assert_eq!(
            out.ok().trim(),
            format!("the node at {admin} joined the cluster via {via}"),
            "node {id}"
        );
    }
    let all: Vec<u64> = (1..=7).collect();
    c.wait_voters(1, &all).await;
    poll(
        "shoal cluster status --json through node 7 lists 7 voters",
        || async {
            let status = c.cli_status(7).await;
            let mut v = voters(&status);
            v.sort_unstable();
            (v == all).then_some(())
        },
    )
    .await;
    let formed = started.elapsed();

    // A weight change through node 7 reaches all seven.
    let admin7 = c.node(7).admin.to_string();
    let out = shoal(&["server", "weight", "app/s1", "9", "--admin", &admin7]).await;
    assert_eq!(out.ok().trim(), "app/s1: weight 9");
    for &id in &all {
        poll(&format!("node {id} has weight 9"), || async {
            (c.server(id, "app", "s1").await["weight"] == 9).then_some(())
        })
        .await;
    }
    c.converged(&all).await;

    // kill -9 the leader and two more.
    let leader = c.leader(&all).await;
    let others: Vec<u64> = all.iter().copied().filter(|&id| id != leader).collect();
    let killed = [leader, others[0], others[1]];
    let killed_at = Instant::now();
    for id in killed {
        c.kill(id);
    }
    let survivors = c.ids();
    assert_eq!(survivors.len(), 4);
    // The first write through a survivor commits once a new leader is
    // elected (earlier tries are refused: no leader yet).
    let admin = c.node(survivors[0]).admin.to_string();
    poll("a write commits with 4 of 7 nodes", || async {
        let out = shoal(&["server", "weight", "app/s1", "19", "--admin", &admin]).await;
        (out.code == Some(0)).then_some(())
    })
    .await;
    let first_write = killed_at.elapsed();
    let new_leader = c.leader(&survivors).await;
    assert!(
        !killed.contains(&new_leader),
        "node {new_leader} leads, but it was killed"
    );
    // A write through each survivor commits and reaches the other three.
    for (i, &id) in survivors.iter().enumerate() {
        let weight = (20 + i).to_string();
        let admin = c.node(id).admin.to_string();
        let out = shoal(&["server", "weight", "app/s1", &weight, "--admin", &admin]).await;
        assert_eq!(
            out.ok().trim(),
            format!("app/s1: weight {weight}"),
            "a write through node {id}, with 4 of 7 alive"
        );
    }
    let last = 20 + survivors.len() - 1;
    let hash = c.converged(&survivors).await;
    for &id in &survivors {
        assert_eq!(
            c.server(id, "app", "s1").await["weight"],
            last,
            "node {id} (state {hash})"
        );
    }

    // A fourth (a follower): 3 of 7 are no majority. The leader keeps its
    // title for a while but commits nothing; writes through it and through
    // a follower are both refused, saying why.
    let follower = *survivors
        .iter()
        .find(|&&id| id != new_leader)
        .expect("a follower");
    c.kill(follower);
    let left = c.ids();
    let follower_left = *left
        .iter()
        .find(|&&id| id != new_leader)
        .expect("a follower left");
    let mut tries = Vec::new();
    for id in [new_leader, follower_left] {
        let admin = c.node(id).admin.to_string();
        tries.push(tokio::spawn(async move {
            let out = shoal(&["server", "weight", "app/s1", "2", "--admin", &admin]).await;
            (id, out)
        }));
    }
    for t in tries {
        let (id, out) = t.await.expect("the write's task");
        assert_eq!(out.code, Some(1), "a write through node {id}: {out:?}");
        assert!(
            out.stderr.contains("quorum"),
            "the refusal through node {id} says quorum is lost: {out:?}"
        );
        // The leader refuses once no majority has answered it for 1.5 s
        // (through the follower too, which forwards to it), well within
        // the 5 s write deadline; the bound allows time for starting the
        // CLI process on a busy machine.
        assert!(
            out.took < Duration::from_secs(4),
            "node {id} took {:?} to refuse a write",
            out.took
        );
        println!(
            "seven: node {id} refused a write in {:?}: {}",
            out.took,
            out.stderr.trim()
        );
    }
    // The data plane serves on.
    for &id in &left {
        let r = get(c.node_mut(id).front("web"), "/").await;
        assert_eq!(r.status, 200, "through node {id} without quorum");
        assert_eq!(
            c.server(id, "app", "s1").await["weight"],
            last,
            "node {id} keeps its last state"
        );
    }
    println!(
        "seven: formed in {formed:?}; killed {killed:?} (node {leader} led); node {new_leader} \
         leads, the first write committed {first_write:?} after the kill; then killed {follower}; whole test {:?}",
        started.elapsed()
    );
}
