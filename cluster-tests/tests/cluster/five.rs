//! Five nodes: a write through the last node to join is seen by all;
//! with two of five killed, writes still commit.

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_write_through_the_last_and_survive_two_deaths() {
    let s1 = Backend::http("s1");
    let mut c = Cluster::start(5, &config(&[&s1], "")).await;
    let all = c.ids();
    assert_eq!(all, [1, 2, 3, 4, 5]);
    let admin5 = c.node(5).admin.to_string();
    let out = shoal(&["server", "weight", "app/s1", "9", "--admin", &admin5]).await;
    assert_eq!(out.ok().trim(), "app/s1: weight 9");
    let hash = c.converged(&all).await;
    for &id in &all {
        assert_eq!(
            c.server(id, "app", "s1").await["weight"],
            9,
            "node {id} (state {hash})"
        );
    }

    // Kill the leader and one more.
    let leader = c.leader(&all).await;
    let other = *all.iter().find(|&&id| id != leader).expect("another node");
    c.kill(leader);
    c.kill(other);
    let survivors = c.ids();
    let via = c.node(survivors[2]).admin.to_string();
    poll("a write commits with 3 of 5 nodes", || async {
        let out = shoal(&["server", "weight", "app/s1", "11", "--admin", &via]).await;
        (out.code == Some(0)).then_some(())
    })
    .await;
    let new_leader = c.leader(&survivors).await;
    let hash = c.converged(&survivors).await;
    for &id in &survivors {
        assert_eq!(
            c.server(id, "app", "s1").await["weight"],
            11,
            "node {id} (state {hash})"
        );
        let r = get(c.node_mut(id).front("web"), "/").await;
        assert_eq!(r.status, 200, "through node {id}");
    }
    println!("five nodes: killed {leader} (leader) and {other}; node {new_leader} leads");
}
