//! Failure drills 2 and 4 for stickiness.
//!
//! Drill 2: sticky sessions survive the loss of the node that
//! made them. A cookie session and `stick on src` sessions (clients from
//! several loopback source addresses) made through node A keep their
//! servers through node B after A is killed with -9, including entries
//! written moments before the kill.
//!
//! What may be lost by design: stick writes not yet in a committed batch
//! when the node dies (at most one batch window, 5 ms, plus the batch in
//! flight). The test writes a last group of entries and kills A without
//! waiting: those may be missing on B, but any that is present names the
//! server A chose, and the missing ones are the newest writes only.
//!
//! Drill 4: the leader is cut off while stick entries flow through every
//! node. No entry the majority committed is lost; the isolated node keeps
//! serving with its own entries; after healing every node has the same
//! state, and the isolated node's entries that never committed are
//! proposed again (its batcher keeps a batch that failed to commit) and
//! reach every node.

use crate::support::*;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

/// Client source address number `i` (127.0.1.i: not a node's address).
fn source(i: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 1, i))
}

const EXTRA: &str = "\
frontend cookies
    bind \"${NODE_IP}:0\"
    default_backend ck
backend ck
    cookie SRV insert indirect nocache
";

/// The cluster config of both drills: `app` (frontend `web`) sticks on
/// the client's source address; `ck` (frontend `cookies`) inserts a
/// persistence cookie.
fn sticky_config(backends: &[Backend]) -> String {
    let refs: Vec<&Backend> = backends.iter().collect();
    let mut extra = String::from(EXTRA);
    for b in backends {
        extra.push_str(&format!("    server {0} {1} cookie {0}\n", b.name, b.addr));
    }
    config(&refs, &extra).replace(
        "backend app\n    balance roundrobin\n",
        "backend app\n    balance roundrobin\n    stick-table type ip size 10k expire 10m\n    stick on src\n",
    )
}

/// Three nodes running [`sticky_config`] over three demo backends (kept
/// alive with the cluster).
async fn sticky_cluster() -> (Cluster, [Backend; 3]) {
    let backends = [
        Backend::http("s1"),
        Backend::http("s2"),
        Backend::http("s3"),
    ];
    let cluster = Cluster::start(3, &sticky_config(&backends)).await;
    (cluster, backends)
}

/// Sticks clients `sources` through `front`: source address -> server.
async fn stick_clients(
    front: SocketAddr,
    sources: std::ops::RangeInclusive<u8>,
) -> BTreeMap<String, String> {
    let mut chosen = BTreeMap::new();
    for i in sources {
        let (server, _) = ok_from(source(i), front, None).await;
        chosen.insert(source(i).to_string(), server);
    }
    chosen
}

/// Whether `node`'s table holds every entry of `want`.
fn holds(node: &Node, want: &BTreeMap<String, String>) -> bool {
    let seen = stick_table(node, "app");
    want.iter().all(|(k, s)| seen.get(k) == Some(s))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_made_through_a_killed_node_keep_their_servers() {
    let (mut c, _backends) = sticky_cluster().await;
    let all = c.ids();
    let leader = c.leader(&all).await;
    // A: a follower (its loss needs no election); B and C survive.
    let a = *all.iter().find(|&&id| id != leader).expect("a follower");
    let survivors: Vec<u64> = all.iter().copied().filter(|&id| id != a).collect();
    let (web_a, cookies_a) = {
        let node = c.node_mut(a);
        (node.front("web"), node.front("cookies"))
    };

    // A cookie session through A.
    let (cookie_server, set_cookie) = ok_from(source(1), cookies_a, None).await;
    let cookie = set_cookie
        .split(';')
        .next()
        .expect("a persistence cookie")
        .to_string();
    assert!(cookie.starts_with("SRV="), "set-cookie: {set_cookie:?}");

    // Round robin spreads these sources over the three servers; each
    // sticks to its first server.
    let mut chosen: BTreeMap<String, String> = BTreeMap::new();
    for i in 1..=30 {
        let (server, _) = ok_from(source(i), web_a, None).await;
        chosen.insert(source(i).to_string(), server);
    }
    let servers: std::collections::BTreeSet<&String> = chosen.values().collect();
    assert_eq!(
        servers.len(),
        3,
        "round robin used every server: {chosen:?}"
    );
    let b = survivors[0];
    poll("B holds A's first 30 entries", || async {
        let seen = stick_table(c.node(b), "app");
        chosen
            .iter()
            .all(|(k, s)| seen.get(k) == Some(s))
            .then_some(())
    })
    .await;

    // 20 more, then kill A as soon as B holds them: they were written
    // moments before the kill.
    let mut recent: BTreeMap<String, String> = BTreeMap::new();
    let first_recent = Instant::now();
    for i in 31..=50 {
        let (server, _) = ok_from(source(i), web_a, None).await;
        recent.insert(source(i).to_string(), server);
    }
    let written = Instant::now();
    poll_within("B holds A's 20 recent entries", DEADLINE, || async {
        let seen = stick_table(c.node(b), "app");
        recent
            .iter()
            .all(|(k, s)| seen.get(k) == Some(s))
            .then_some(())
    })
    .await;
    // And a last group, killed without waiting: may be lost by design.
    let mut last: Vec<(String, String)> = Vec::new();
    for i in 51..=60 {
        let (server, _) = ok_from(source(i), web_a, None).await;
        last.push((source(i).to_string(), server));
    }
    let killed = Instant::now();
    c.kill(a);
    println!(
        "drill 2: 20 entries written {:?}..{:?} before the kill were on B when A died",
        killed - first_recent,
        killed - written
    );

    for &id in &survivors {
        let front = c.node_mut(id).front("web");
        let cookies = c.node_mut(id).front("cookies");
        let (server, _) = ok_from(source(1), cookies, Some(&cookie)).await;
        assert_eq!(
            server, cookie_server,
            "the cookie session through node {id}"
        );
        for (key, want) in chosen.iter().chain(&recent) {
            let src: IpAddr = key.parse().expect("an address");
            let (server, _) = ok_from(src, front, None).await;
            assert_eq!(&server, want, "client {key} through node {id}");
        }
    }
    // The last group: committed ones are complete and keep their server;
    // only the newest writes may be missing.
    let seen = stick_table(c.node(b), "app");
    let kept = last
        .iter()
        .take_while(|(k, _)| seen.contains_key(k))
        .count();
    let lost = last.len() - kept;
    for (key, want) in &last {
        if let Some(server) = seen.get(key) {
            assert_eq!(server, want, "client {key}: a kept entry names A's choice");
        }
    }
    assert!(
        last[kept..].iter().all(|(k, _)| !seen.contains_key(k)),
        "only a suffix of the newest writes may be lost: {seen:?}"
    );
    println!(
        "drill 2: of the {} entries written with no wait before the kill, {lost} were lost",
        last.len()
    );
    c.converged(&survivors).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_leader_loses_no_committed_entry_and_converges() {
    let (mut c, _backends) = sticky_cluster().await;
    let all = c.ids();
    let leader = c.leader(&all).await;
    let majority: Vec<u64> = all.iter().copied().filter(|&id| id != leader).collect();
    let mut fronts = BTreeMap::new();
    for &id in &all {
        fronts.insert(id, c.node_mut(id).front("web"));
    }

    // Entries through every node, replicated everywhere.
    let mut before = BTreeMap::new();
    for (n, &id) in all.iter().enumerate() {
        let first = 1 + 10 * n as u8;
        before.extend(stick_clients(fronts[&id], first..=first + 9).await);
    }
    for &id in &all {
        poll("every node holds the first entries", || async {
            holds(c.node(id), &before).then_some(())
        })
        .await;
    }

    let cut = Cut::isolate(c.node(leader).cluster);
    // The majority elects a leader and commits its own entries ...
    let mut committed = stick_clients(fronts[&majority[0]], 101..=110).await;
    committed.extend(stick_clients(fronts[&majority[1]], 111..=120).await);
    for &id in &majority {
        poll(
            "both majority nodes hold the majority's entries",
            || async { holds(c.node(id), &committed).then_some(()) },
        )
        .await;
    }
    // ... while the isolated leader keeps serving, with its own entries.
    let isolated = stick_clients(fronts[&leader], 201..=210).await;
    assert!(
        holds(c.node(leader), &isolated),
        "the isolated node's own table has its entries"
    );
    for (key, want) in &isolated {
        let src: IpAddr = key.parse().expect("an address");
        let (server, _) = ok_from(src, fronts[&leader], None).await;
        assert_eq!(
            &server, want,
            "client {key} sticks through the isolated node"
        );
    }
    let status = c.status(leader).await;
    assert_eq!(status["quorum"], false, "the isolated node knows: {status}");

    cut.heal();
    // The isolated node's entries were kept for retry and commit now.
    for &id in &all {
        poll("every node holds every entry after healing", || async {
            (holds(c.node(id), &before)
                && holds(c.node(id), &committed)
                && holds(c.node(id), &isolated))
            .then_some(())
        })
        .await;
    }
    let hash = c.converged(&all).await;
    // And every client still reaches its server through every node.
    for &id in &all {
        for (key, want) in before.iter().chain(&committed).chain(&isolated) {
            let src: IpAddr = key.parse().expect("an address");
            let (server, _) = ok_from(src, fronts[&id], None).await;
            assert_eq!(
                &server, want,
                "client {key} through node {id} (state {hash})"
            );
        }
    }
    println!(
        "drill 4: node {leader} cut off and healed; {} + {} + {} entries kept",
        before.len(),
        committed.len(),
        isolated.len()
    );
}

/// `set table` on one node's runtime socket writes an entry that every
/// node serves: a client with that key goes, through another node, to
/// the server the operator named (not where round robin would send it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_set_on_one_node_is_served_through_another() {
    let (mut c, _backends) = sticky_cluster().await;
    let all = c.ids();
    let (a, b) = (all[0], all[1]);
    let web_b = c.node_mut(b).front("web");
    // Both clients to the same server: round robin alone would not.
    let set: BTreeMap<String, String> = [(250, "s3"), (251, "s3")]
        .into_iter()
        .map(|(i, s)| (source(i).to_string(), s.to_string()))
        .collect();
    for key in set.keys() {
        let answer = socat(
            &c.node(a).socket(),
            &format!("set table app key {key} data.server_id 3"),
        );
        assert_eq!(answer, "\n", "set table {key} on node {a}");
    }
    poll("node B holds the entries set on node A", || async {
        holds(c.node(b), &set).then_some(())
    })
    .await;
    for key in set.keys() {
        let src: IpAddr = key.parse().expect("an address");
        let (server, _) = ok_from(src, web_b, None).await;
        assert_eq!(server, "s3", "client {key} through node {b}");
    }
}
