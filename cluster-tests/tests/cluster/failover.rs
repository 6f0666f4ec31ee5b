//! Scenario 3: kill -9 the leader while clients write through the other
//! nodes. A new leader is elected and no acknowledged write is lost.

use crate::support::*;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One weight change as a client saw it.
#[derive(Debug, Clone)]
struct Write {
    server: String,
    weight: u32,
    started: Instant,
    done: Instant,
    /// Acknowledged: 200 from the admin API.
    acked: bool,
}

/// Change the weights of `servers` (in turn) through the admin API at
/// `admin` until `stop` is set and the latest write to every server was
/// acknowledged, so that each server's last write is a known one.
async fn writer(
    admin: SocketAddr,
    servers: [&'static str; 3],
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicUsize>,
) -> Vec<Write> {
    let mut writes: Vec<Write> = Vec::new();
    let mut stopped_at = None;
    for i in 0usize.. {
        let server = servers[i % servers.len()];
        let weight = 1 + (i % 250) as u32;
        let path = format!("/v1/backends/w/servers/{server}/weight");
        let started = Instant::now();
        // Longer than the node's own write deadline, so that the node
        // answers (and stops retrying) before this client gives up.
        let answer = try_admin(
            admin,
            "PUT",
            &path,
            &format!("{{\"weight\":{weight}}}"),
            Duration::from_secs(20),
        )
        .await;
        let ok = matches!(&answer, Ok(r) if r.status == 200);
        writes.push(Write {
            server: server.to_string(),
            weight,
            started,
            done: Instant::now(),
            acked: ok,
        });
        if ok {
            acked.fetch_add(1, Ordering::SeqCst);
        }
        if stop.load(Ordering::SeqCst) {
            let stopped = *stopped_at.get_or_insert_with(Instant::now);
            let last_round_acked =
                writes.len() >= servers.len() && writes.iter().rev().take(3).all(|w| w.acked);
            if last_round_acked {
                break;
            }
            assert!(
                stopped.elapsed() < DEADLINE,
                "writes through {admin} still fail {DEADLINE:?} after the failover: {answer:?}"
            );
        }
    }
    writes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_while_writes_flow_loses_no_acknowledged_write() {
    let s1 = Backend::http("s1");
    // Backend `w`: the servers whose weights the clients change.
    let mut extra = String::from("backend w\n");
    for name in ["a1", "a2", "a3", "b1", "b2", "b3"] {
        extra.push_str(&format!("    server {name} {}\n", s1.addr));
    }
    let mut c = Cluster::start(3, &config(&[&s1], &extra)).await;
    let all = c.ids();
    let leader = c.leader(&all).await;
    let term_before = c.status(leader).await["term"].as_u64().expect("term");
    let survivors: Vec<u64> = all.iter().copied().filter(|&id| id != leader).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let counters = [Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0))];
    let writers = [
        tokio::spawn(writer(
            c.node(survivors[0]).admin,
            ["a1", "a2", "a3"],
            stop.clone(),
            counters[0].clone(),
        )),
        tokio::spawn(writer(
            c.node(survivors[1]).admin,
            ["b1", "b2", "b3"],
            stop.clone(),
            counters[1].clone(),
        )),
    ];
    let acked = || {
        counters
            .iter()
            .map(|n| n.load(Ordering::SeqCst))
            .collect::<Vec<_>>()
    };
    poll("both clients have 5 acknowledged writes", || async {
        acked().iter().all(|&n| n >= 5).then_some(())
    })
    .await;

    let at_kill = acked();
    let killed_at = Instant::now();
    c.kill(leader);
    poll(
        "both clients have 10 more acknowledged writes after the kill",
        || async {
            acked()
                .iter()
                .zip(&at_kill)
                .all(|(&now, &then)| now >= then + 10)
                .then_some(())
        },
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    let mut writes = Vec::new();
    for w in writers {
        writes.push(w.await.expect("writer task"));
    }

    let new_leader = c.leader(&survivors).await;
    let term_after = c.status(new_leader).await["term"].as_u64().expect("term");
    assert!(
        term_after > term_before,
        "a new term after the leader died ({term_before} -> {term_after})"
    );
    let failover = writes
        .iter()
        .flatten()
        .filter(|w| w.acked && w.started >= killed_at)
        .map(|w| w.done - killed_at)
        .min()
        .expect("a write acknowledged after the kill");
    let failed = writes.iter().flatten().filter(|w| !w.acked).count();
    let total: usize = writes.iter().map(Vec::len).sum();
    println!(
        "failover: node {leader} killed; node {new_leader} leads (term {term_before} -> {term_after}); \
         first write acknowledged {failover:?} after the kill; {failed} of {total} writes failed"
    );

    // Every survivor holds the same state, and in it every server's last
    // write, which was acknowledged.
    let hash = c.converged(&survivors).await;
    for client in &writes {
        for server in ["a1", "a2", "a3", "b1", "b2", "b3"] {
            let Some(last) = client.iter().rfind(|w| w.server == server) else {
                continue;
            };
            assert!(last.acked, "the writer stops after acknowledged writes");
            for &id in &survivors {
                let view = c.server(id, "w", server).await;
                assert_eq!(
                    view["weight"].as_u64(),
                    Some(u64::from(last.weight)),
                    "node {id} (state {hash}) lost the acknowledged write {last:?}"
                );
            }
        }
    }
}
