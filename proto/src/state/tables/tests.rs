use super::*;
use crate::command::{Command, StickWrite};
use crate::state::ClusterState;
use crate::state::Effect;
use proptest::prelude::*;
use std::collections::BTreeMap;

const CONFIG: &str = "\
defaults
    mode http
frontend fe
    bind 127.0.0.1:0
    default_backend app
backend app
    stick-table type string len 32 size 4 expire 10s
    stick on req.hdr(X-Key)
    server s1 127.0.0.1:8001
    server s2 127.0.0.1:8002
    server s3 127.0.0.1:8003
";

fn loaded() -> ClusterState {
    let mut s = ClusterState::default();
    let load = Command::load_config("t.cfg", CONFIG, 1).expect("loads");
    s.execute(&load).expect("valid");
    s
}

fn write(key: &str, server: &str, prev: Option<&str>) -> StickWrite {
    StickWrite {
        table: "app".into(),
        key: key.into(),
        server: server.into(),
        prev: prev.map(str::to_string),
    }
}

fn batch(node: u64, at: Millis, writes: Vec<StickWrite>) -> Command {
    Command::StickBatch { node, at, writes }
}

/// Apply a batch; the indices of its rejected writes.
fn apply(s: &mut ClusterState, command: &Command) -> Vec<usize> {
    let applied = s.execute(command).expect("a batch is always valid");
    match applied.effects.as_slice() {
        [Effect::StickStored { rejected }] => rejected.clone(),
        other => panic!("unexpected effects {other:?}"),
    }
}

fn server_of(s: &ClusterState, key: &str) -> Option<String> {
    s.tables()["app"].get(key).map(|e| e.server.clone())
}

#[test]
fn the_first_write_in_log_order_wins_a_conflict() {
    let mut s = loaded();
    // Nodes 1 and 2 both saw a new key and balanced it differently.
    assert!(apply(&mut s, &batch(1, 100, vec![write("k", "s1", None)])).is_empty());
    assert_eq!(
        apply(&mut s, &batch(2, 101, vec![write("k", "s2", None)])),
        [0]
    );
    assert_eq!(server_of(&s, "k").as_deref(), Some("s1"));
    // The loser, now following s1, refreshes it: accepted.
    assert!(apply(&mut s, &batch(2, 102, vec![write("k", "s1", Some("s1"))])).is_empty());
    assert_eq!(s.tables()["app"].get("k").map(|e| e.at), Some(102));
}

#[test]
fn a_re_stick_that_names_the_current_server_overwrites() {
    let mut s = loaded();
    apply(&mut s, &batch(1, 100, vec![write("k", "s1", None)]));
    // s1 went DOWN: node 2 balanced the key to s3, knowing it was on s1.
    assert!(apply(&mut s, &batch(2, 200, vec![write("k", "s3", Some("s1"))])).is_empty());
    assert_eq!(server_of(&s, "k").as_deref(), Some("s3"));
    // Node 1 re-stuck it to s2 at the same time, also from s1: too late.
    assert_eq!(
        apply(&mut s, &batch(1, 201, vec![write("k", "s2", Some("s1"))])),
        [0]
    );
    assert_eq!(server_of(&s, "k").as_deref(), Some("s3"));
}

#[test]
fn an_expired_entry_is_absent_to_the_conflict_rule() {
    let mut s = loaded();
    apply(&mut s, &batch(1, 100, vec![write("k", "s1", None)]));
    // expire 10s: at 10.1 s the entry is gone, so a new key wins.
    assert!(apply(&mut s, &batch(2, 10_100, vec![write("k", "s2", None)])).is_empty());
    assert_eq!(server_of(&s, "k").as_deref(), Some("s2"));
}

// --- properties -------------------------------------------------------------

fn any_write() -> impl Strategy<Value = StickWrite> {
    let server = || prop_oneof![Just("s1"), Just("s2"), Just("s3")];
    (0u8..7, server(), proptest::option::of(server()))
        .prop_map(|(k, server, prev)| write(&format!("k{k}"), server, prev))
}

/// `writes` merged as the batcher merges them: one write per key, in
/// order of first appearance, with the first `prev` and the last server.
fn one_write_per_key(writes: Vec<StickWrite>) -> Vec<StickWrite> {
    let mut merged: Vec<StickWrite> = Vec::new();
    for w in writes {
        match merged
            .iter_mut()
            .find(|m| m.table == w.table && m.key == w.key)
        {
            Some(kept) => kept.server = w.server,
            None => merged.push(w),
        }
    }
    merged
}

/// Batches from three nodes, with times that move forward (sometimes far
/// enough to expire entries).
fn any_log() -> impl Strategy<Value = Vec<Command>> {
    proptest::collection::vec(
        (
            1u64..4,
            0u64..4_000,
            proptest::collection::vec(any_write(), 0..6),
        ),
        1..40,
    )
    .prop_map(|batches| {
        let mut at = 1_000;
        batches
            .into_iter()
            .map(|(node, step, writes)| {
                at += step;
                batch(node, at, writes)
            })
            .collect()
    })
}

/// The key -> server map of the table.
fn stuck(s: &ClusterState) -> BTreeMap<String, String> {
    s.tables()["app"]
        .entries()
        .iter()
        .map(|(k, e)| (k.clone(), e.server.clone()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Every node applies the same log to the same tables, winners,
    /// expiry and eviction included, and rejects the same writes.
    #[test]
    fn every_node_settles_conflicts_the_same(log in any_log()) {
        let (mut a, mut b) = (loaded(), loaded());
        for c in &log {
            prop_assert_eq!(apply(&mut a, c), apply(&mut b, c));
        }
        prop_assert_eq!(a.hash(), b.hash());
        prop_assert!(a.tables()["app"].entries().len() <= 4, "size honoured");
    }

    /// A write is accepted exactly when the entry was absent, said `prev`
    /// or said the written server; the entry then says the written server.
    #[test]
    fn the_conflict_rule_holds_for_every_write(log in any_log()) {
        let mut s = loaded();
        for c in &log {
            let Command::StickBatch { at, writes, .. } = c else { unreachable!() };
            // What each write meets: the table after expiry as of `at`
            // and after the batch's earlier writes.
            let mut model = s.clone();
            model.execute(&batch(0, *at, vec![])).expect("expiry");
            let mut expect_rejected = Vec::new();
            for (i, w) in writes.iter().enumerate() {
                let current = server_of(&model, &w.key);
                let accepted = match &current {
                    None => true,
                    Some(cur) => *cur == w.server || Some(cur) == w.prev.as_ref(),
                };
                if accepted {
                    model.execute(&batch(0, *at, vec![write(&w.key, &w.server, current.as_deref())]))
                        .expect("write");
                    prop_assert_eq!(server_of(&model, &w.key), Some(w.server.clone()));
                } else {
                    expect_rejected.push(i);
                }
            }
            prop_assert_eq!(apply(&mut s, c), expect_rejected);
        }
    }

    /// A batch proposed again (a retry after a commit that was not
    /// acknowledged) sticks every key to the same server as once. The
    /// batcher sends one write per key (`persist::coalesce`: the first
    /// write's `prev`, the last write's server); so does this batch. (With
    /// several writes of one key, a second pass could accept a write the
    /// first pass refused.)
    #[test]
    fn a_batch_applied_twice_sticks_as_once(log in any_log(), extra in proptest::collection::vec(any_write(), 0..6)) {
        let mut once = loaded();
        for c in &log {
            apply(&mut once, c);
        }
        let mut twice = once.clone();
        let last = batch(1, 100_000, one_write_per_key(extra));
        apply(&mut once, &last);
        apply(&mut twice, &last);
        apply(&mut twice, &last);
        // A full table may evict other keys the second time (the repeated
        // writes are the newest entries again), or keep a written key that
        // the first pass evicted within its own batch: no key may name
        // another server, whatever each kept.
        let (once, twice) = (stuck(&once), stuck(&twice));
        for (key, server) in &once {
            if let Some(other) = twice.get(key) {
                prop_assert_eq!(server, other, "key {}", key);
            }
        }
    }

    /// A snapshot (the state encoded, then decoded: the age index is
    /// rebuilt from the entries) taken at any point of the log is the
    /// same state and continues the same.
    #[test]
    fn a_snapshot_rebuilds_the_state(log in any_log(), cuts in proptest::collection::vec(any::<bool>(), 40)) {
        let mut s = loaded();
        let snapshot = |s: &ClusterState| -> ClusterState {
            crate::codec::decode(&crate::codec::encode(s).expect("encode")).expect("decode")
        };
        for (i, c) in log.iter().enumerate() {
            apply(&mut s, c);
            if cuts[i % cuts.len()] {
                let rebuilt = snapshot(&s);
                prop_assert_eq!(&rebuilt, &s);
                prop_assert_eq!(rebuilt.hash(), s.hash());
            }
        }
        let mut rebuilt = snapshot(&s);
        prop_assert!(rebuilt.tables().values().all(TableState::consistent));
        let next = batch(2, 200_000, vec![write("k1", "s2", None)]);
        apply(&mut rebuilt, &next);
        apply(&mut s, &next);
        prop_assert_eq!(rebuilt.hash(), s.hash());
    }
}
