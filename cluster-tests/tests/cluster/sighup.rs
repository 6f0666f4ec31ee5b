//! Cluster-mode SIGHUP: a node re-reads its own `-f` file and proposes it
//! like `shoal config apply`. Each node has its own copy of the file. An
//! unchanged file adds nothing to the log; a changed one runs on every
//! node; an invalid one is refused with its FILE:LINE and changes nothing;
//! the same new file on every node, SIGHUP to all at once (what a
//! config-management tool does), converges without an error.

use crate::support::*;
use nix::sys::signal::Signal;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where the log stands, as `shoal cluster status --json` says on every
/// node once all of them applied the same index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Log {
    applied: u64,
    /// The highest term any node reports.
    term: u64,
}

/// Wait until every node in `ids` reports the same applied index.
async fn settled(c: &Cluster, ids: &[u64]) -> Log {
    poll(
        &format!("nodes {ids:?} applied the same log index"),
        || async {
            let mut applied = Vec::new();
            let mut term = 0;
            for &id in ids {
                let s = c.cli_status(id).await;
                applied.push(own_applied(&s)?);
                term = term.max(s["term"].as_u64()?);
            }
            applied.windows(2).all(|w| w[0] == w[1]).then(|| Log {
                applied: applied[0],
                term,
            })
        },
    )
    .await
}

/// How many entries the log gained from `before` to `after`, less the one
/// empty entry each newly elected leader appends (an election the busy
/// machine may cause; it changes no state). Panics if the log shrank.
fn entries_added(before: Log, after: Log) -> u64 {
    let added = after
        .applied
        .checked_sub(before.applied)
        .unwrap_or_else(|| panic!("the applied index went back: {before:?} -> {after:?}"));
    added.saturating_sub(after.term - before.term)
}

/// Send SIGHUP to node `id` and return the next `[NOTICE] configuration`
/// line it prints (`applied to the cluster` or `unchanged`).
fn hup_and_wait(c: &mut Cluster, id: u64) -> String {
    let needle = "[NOTICE] configuration ";
    let proc = &mut c.node_mut(id).proc;
    let seen = proc.count(needle);
    proc.signal(Signal::SIGHUP);
    proc.wait_nth(needle, seen + 1)
}

/// Lines node `id` printed from line `from` on that report a failure.
fn failures(c: &mut Cluster, id: u64, from: usize) -> Vec<String> {
    c.node_mut(id).proc.drain()[from..]
        .iter()
        .filter(|l| l.contains("ERROR") || l.contains("refused") || l.contains("not applied"))
        .cloned()
        .collect()
}

/// Every node's hash equals `hash`.
async fn same_hash_everywhere(c: &Cluster, ids: &[u64], hash: &str, when: &str) {
    for &id in ids {
        let status = c.cli_status(id).await;
        assert_eq!(
            own_hash(&status).as_deref(),
            Some(hash),
            "state hash of node {id} {when}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_proposes_the_nodes_own_file_and_fails_closed() {
    let s1 = Backend::http("s1");
    let s2 = Backend::http("s2");
    let text = config(&[&s1], "");

    // Three nodes, each started with -f on its own copy of one file.
    let mut c = Cluster::prepare(&text, None).await;
    let files: BTreeMap<u64, PathBuf> = (1..=3)
        .map(|id| (id, c.dir.file(&format!("node{id}.cfg"), &text)))
        .collect();
    c.spawn_with(1, None, &files[&1]);
    c.init(1).await;
    let via = c.node(1).cluster;
    for id in [2, 3] {
        c.spawn_with(id, Some(via), &files[&id]);
    }
    for id in [2, 3] {
        c.node_mut(id)
            .proc
            .wait_line(&format!("node {id} joined the cluster through {via}"));
    }
    let all = [1, 2, 3];
    c.wait_voters(1, &all).await;
    let hash = c.converged(&all).await;
    let webs: Vec<_> = all.iter().map(|&id| c.node_mut(id).front("web")).collect();

    // (a) Node 2's file is unchanged: SIGHUP is a no-op, no log entry.
    let before = settled(&c, &all).await;
    let mark = c.node_mut(2).proc.drain().len();
    let said = hup_and_wait(&mut c, 2);
    assert!(
        said.ends_with("[NOTICE] configuration unchanged"),
        "node 2 with its file unchanged: {said:?}"
    );
    // The notice comes after any proposal would have committed and been
    // applied on node 2, so the log already holds whatever it added.
    let after = settled(&c, &all).await;
    assert_eq!(
        entries_added(before, after),
        0,
        "SIGHUP with an unchanged file added to the log: {before:?} -> {after:?}"
    );
    same_hash_everywhere(&c, &all, &hash, "after SIGHUP with an unchanged file").await;
    assert_eq!(
        failures(&mut c, 2, mark),
        Vec::<String>::new(),
        "node 2 logged a failure for an unchanged file"
    );

    // (b) Node 3's file gains a frontend and a new weight for s1.
    let extra = format!(
        "frontend extra\n    bind \"${{NODE_IP}}:0\"\n    default_backend other\n\
         backend other\n    server s2 {}\n",
        s2.addr
    );
    let s1_line = format!("    server s1 {}\n", s1.addr);
    let new_text =
        config(&[&s1], &extra).replace(&s1_line, &format!("    server s1 {} weight 7\n", s1.addr));
    assert_ne!(
        new_text,
        config(&[&s1], &extra),
        "the weight is in the file"
    );
    std::fs::write(&files[&3], &new_text).expect("rewrite node 3's file");
    let said = hup_and_wait(&mut c, 3);
    assert!(
        said.ends_with("[NOTICE] configuration applied to the cluster"),
        "node 3 with a new file: {said:?}"
    );
    for &id in &all {
        // Its listening notice, then a request through it.
        let front = c.node_mut(id).front("extra");
        let r = get(front, "/").await;
        assert_eq!(
            (r.status, r.server().as_str()),
            (200, "s2"),
            "through the new frontend of node {id}"
        );
    }
    poll("node 1's show stat gives app/s1 weight 7", || async {
        (stat_field(&c.node(1).socket(), "app", "s1", "weight") == "7").then_some(())
    })
    .await;
    assert_eq!(
        c.server(1, "app", "s1").await["weight"],
        7,
        "node 1's admin API"
    );
    let hash = c.converged(&all).await;

    // (c) An invalid file on node 1: refused with FILE:LINE, nothing changes.
    let bad_text = format!("{new_text}backend broken\n    sever s9 {}\n", s2.addr);
    let bad_line = bad_text.lines().count();
    std::fs::write(&files[&1], &bad_text).expect("rewrite node 1's file");
    let before = settled(&c, &all).await;
    let applied_notices = c.node_mut(1).proc.count("[NOTICE] configuration ");
    c.node(1).proc.signal(Signal::SIGHUP);
    let refusal = c.node_mut(1).proc.wait_line("reload refused");
    let want = format!("{}:{bad_line}: ", files[&1].display());
    assert!(
        refusal.contains(&want) && refusal.contains("'sever'"),
        "node 1's refusal names the file, the line and the keyword; want {want:?}...; got {refusal:?}"
    );
    println!("sighup: node 1 said: {refusal}");
    assert!(c.node_mut(1).proc.running(), "node 1 keeps running");
    let after = settled(&c, &all).await;
    assert_eq!(
        entries_added(before, after),
        0,
        "an invalid file reached the log: {before:?} -> {after:?}"
    );
    assert_eq!(
        c.node_mut(1).proc.count("[NOTICE] configuration "),
        applied_notices,
        "node 1 claims to have applied an invalid file"
    );
    same_hash_everywhere(&c, &all, &hash, "after the refused file").await;
    for &id in &all {
        let admin_addr = c.node(id).admin.to_string();
        let shown = shoal(&["config", "show", "--admin", &admin_addr]).await;
        assert_eq!(shown.ok(), new_text, "running config of node {id}");
        let r = get(webs[(id - 1) as usize], "/").await;
        assert_eq!((r.status, r.server().as_str()), (200, "s1"), "node {id}");
        let r = get(c.node_mut(id).front("extra"), "/").await;
        assert_eq!((r.status, r.server().as_str()), (200, "s2"), "node {id}");
    }

    // (d) The same new file on every node, SIGHUP to all three at once.
    let final_extra =
        format!("{extra}frontend third\n    bind \"${{NODE_IP}}:0\"\n    default_backend app\n");
    let final_text = config(&[&s1], &final_extra)
        .replace(&s1_line, &format!("    server s1 {} weight 3\n", s1.addr));
    let before = settled(&c, &all).await;
    let mut marks = BTreeMap::new();
    let mut notices = BTreeMap::new();
    for &id in &all {
        std::fs::write(&files[&id], &final_text).expect("write the new file");
        marks.insert(id, c.node_mut(id).proc.drain().len());
        notices.insert(id, c.node_mut(id).proc.count("[NOTICE] configuration "));
    }
    for &id in &all {
        c.node(id).proc.signal(Signal::SIGHUP);
    }
    let mut said = BTreeMap::new();
    for &id in &all {
        let line = c
            .node_mut(id)
            .proc
            .wait_nth("[NOTICE] configuration ", notices[&id] + 1);
        said.insert(id, line);
    }
    assert!(
        said.values()
            .any(|l| l.ends_with("[NOTICE] configuration applied to the cluster")),
        "some node applied the new file: {said:?}"
    );
    let hash = c.converged(&all).await;
    let after = settled(&c, &all).await;
    // At least the first proposal's entry, at most one per node.
    let added = entries_added(before, after);
    assert!(
        after.applied > before.applied && added <= 3,
        "one to three config entries (one per node at most) for three SIGHUPs: \
         {added} ({before:?} -> {after:?}; {said:?})"
    );
    for &id in &all {
        let admin_addr = c.node(id).admin.to_string();
        let shown = shoal(&["config", "show", "--admin", &admin_addr]).await;
        assert_eq!(shown.ok(), final_text, "running config of node {id}");
        let r = get(c.node_mut(id).front("third"), "/").await;
        assert_eq!((r.status, r.server().as_str()), (200, "s1"), "node {id}");
        assert_eq!(
            c.server(id, "app", "s1").await["weight"],
            3,
            "node {id} (state {hash})"
        );
        assert_eq!(
            failures(&mut c, id, marks[&id]),
            Vec::<String>::new(),
            "node {id} logged a failure while the nodes converged"
        );
    }
    println!(
        "sighup: three SIGHUPs at once made {added} entries; the nodes said {:?}",
        said.values().collect::<Vec<_>>()
    );
}
