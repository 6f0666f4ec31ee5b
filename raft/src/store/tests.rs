//! The store against real sled files in temporary directories: what is
//! written survives a reopen (and a crash), snapshots carry the state from
//! one store to another, and bad snapshots change nothing.

use super::*;
use crate::types::TypeConfig;
use openraft::storage::{RaftLogReader, RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{blank_ent, log_id, membership_ent};
use openraft::{Entry, EntryPayload, LogState, RaftSnapshotBuilder, Snapshot, SnapshotMeta, Vote};
use shoal_proto::command::{Command, ServerRef};
use std::collections::BTreeSet;
use std::io::Cursor;

const CONFIG: &str = "\
defaults
    mode http
    timeout connect 1s
backend app
    balance roundrobin
    server s1 127.0.0.1:8001 weight 10
    server s2 127.0.0.1:8002
";

/// Another file: what a node might start with before it joins.
const OWN_FILE: &str = "\
defaults
    mode tcp
backend other
    server o1 127.0.0.1:9001
";

fn load(text: &str) -> Command {
    Command::load_config("t.cfg", text, 1).expect("a config that loads")
}

fn weight(server: &str, weight: u32) -> Command {
    Command::SetWeight {
        server: ServerRef::new("app", server),
        weight,
    }
}

fn normal(term: u64, index: u64, command: Command) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(term, 1, index),
        payload: EntryPayload::Normal(command),
    }
}

fn members(ids: &[u64]) -> Vec<BTreeSet<u64>> {
    vec![ids.iter().copied().collect()]
}

/// A state as applying `commands` to the default state gives it.
fn state_after(commands: &[Command]) -> ClusterState {
    let mut state = ClusterState::default();
    for c in commands {
        let _ = state.execute(c);
    }
    state
}

struct Node {
    log: LogStore,
    machine: StateMachine,
    host: Arc<MemoryHost>,
}

impl Node {
    /// Append `entries` to the log, record them committed and apply them,
    /// as Raft does with what it commits.
    async fn commit(
        &mut self,
        entries: Vec<Entry<TypeConfig>>,
    ) -> Result<Vec<crate::types::Reply>, StorageError<NodeId>> {
        let last = entries.last().map(|e| e.log_id);
        self.log.blocking_append(entries.clone()).await?;
        self.log.save_committed(last).await?;
        self.machine.apply(entries).await
    }
}

/// Open the store in `dir` with a host that starts from `start`.
fn node(dir: &Path, start: ClusterState) -> Node {
    let host = Arc::new(MemoryHost::new(start));
    let (log, machine) = open(dir).expect("open store").into_parts(host.clone());
    Node { log, machine, host }
}

/// Retry `attempt` until it succeeds, for at most ten seconds.
fn eventually<T, E: std::fmt::Display>(what: &str, mut attempt: impl FnMut() -> Result<T, E>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match attempt() {
            Ok(value) => return value,
            Err(e) if std::time::Instant::now() > deadline => panic!("{what}: {e}"),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
        }
    }
}

/// Open the store again in this process. sled lets go of its lock file
/// from a background thread shortly after the last handle drops, so the
/// reopen waits for that (a restarted node is a new process and does not).
fn reopen(dir: &Path) -> Opened {
    eventually("reopen store", || open(dir))
}

/// Reopen as a restarted node does: its host starts from the rebuilt state.
fn restart(dir: &Path) -> (Node, bool) {
    let mut opened = reopen(dir);
    let has_data = opened.has_data();
    let state = opened.take_state().unwrap_or_default();
    let host = Arc::new(MemoryHost::new(state));
    let (log, machine) = opened.into_parts(host.clone());
    (Node { log, machine, host }, has_data)
}

fn temp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

#[tokio::test]
async fn fresh_store_is_empty() {
    let temp = temp();
    // The data directory need not exist yet.
    let dir = temp.path().join("data").join("node1");
    let opened = open(&dir).expect("open");
    assert!(!opened.has_data());
    assert!(opened.state().is_none());
    let host = Arc::new(MemoryHost::default());
    let (mut log, mut machine) = opened.into_parts(host);
    assert_eq!(log.read_vote().await.expect("vote"), None);
    assert_eq!(
        log.get_log_state().await.expect("state"),
        LogState::default()
    );
    let (applied, membership) = machine.applied_state().await.expect("applied");
    assert_eq!(applied, None);
    assert_eq!(membership, StoredMembership::default());
    assert!(machine
        .get_current_snapshot()
        .await
        .expect("snapshot")
        .is_none());
    assert!(dir.join(DB_NAME).is_dir());
}

#[tokio::test]
async fn second_open_of_one_dir_is_refused() {
    let dir = temp();
    let _first = open(dir.path()).expect("open");
    let err = open(dir.path()).err().expect("a second open must fail");
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
    assert!(err.to_string().contains("raft.sled"), "{err}");
}

#[tokio::test]
async fn entries_and_vote_survive_reopen() {
    let dir = temp();
    let entries = vec![
        blank_ent::<TypeConfig>(1, 1, 1),
        membership_ent::<TypeConfig>(1, 1, 2, members(&[1, 2, 3])),
        normal(1, 3, load(CONFIG)),
        normal(1, 4, weight("s1", 5)),
    ];
    let vote = Vote::new_committed(1, 1);
    {
        let mut n = node(dir.path(), ClusterState::default());
        n.log.save_vote(&vote).await.expect("save vote");
        n.log
            .blocking_append(entries.clone())
            .await
            .expect("append");
        n.log
            .save_committed(Some(log_id(1, 1, 3)))
            .await
            .expect("save committed");
    }
    let (mut n, has_data) = restart(dir.path());
    assert!(has_data, "a vote and entries are stored");
    assert_eq!(n.log.read_vote().await.expect("vote"), Some(vote));
    assert_eq!(
        n.log.try_get_log_entries(0..).await.expect("entries"),
        entries
    );
    assert_eq!(
        n.log.try_get_log_entries(2..4).await.expect("entries"),
        entries[1..3]
    );
    let state = n.log.get_log_state().await.expect("log state");
    assert_eq!(state.last_log_id, Some(log_id(1, 1, 4)));
    assert_eq!(state.last_purged_log_id, None);
    assert_eq!(
        n.log.read_committed().await.expect("committed"),
        Some(log_id(1, 1, 3))
    );
}

#[tokio::test]
async fn vote_alone_marks_the_node_as_member() {
    let dir = temp();
    {
        let mut n = node(dir.path(), ClusterState::default());
        n.log.save_vote(&Vote::new(3, 2)).await.expect("save vote");
    }
    let (_, has_data) = restart(dir.path());
    assert!(has_data);
}

#[tokio::test]
async fn applied_batch_survives_reopen() {
    let dir = temp();
    let own = state_after(&[load(OWN_FILE)]);
    let commands = [load(CONFIG), weight("s1", 7), weight("nope", 1)];
    let expected = state_after(&commands);
    {
        // The node starts from its own file; the first command replaces it.
        let mut n = node(dir.path(), own);
        let replies = n
            .commit(vec![
                blank_ent::<TypeConfig>(1, 1, 1),
                membership_ent::<TypeConfig>(1, 1, 2, members(&[1, 2])),
                normal(1, 3, commands[0].clone()),
                normal(1, 4, commands[1].clone()),
                normal(1, 5, commands[2].clone()),
            ])
            .await
            .expect("apply");
        let refused: Vec<_> = replies.iter().map(|r| r.refused.as_deref()).collect();
        assert_eq!(refused, [None, None, None, None, Some("No such server.")]);
        assert_eq!(n.host.state().hash(), expected.hash());
    }
    let opened = reopen(dir.path());
    assert!(opened.has_data());
    let persisted = opened.state().expect("state rebuilt");
    assert_eq!(persisted.hash(), expected.hash());
    drop(opened);

    let (mut n, _) = restart(dir.path());
    let (applied, membership) = n.machine.applied_state().await.expect("applied");
    assert_eq!(applied, Some(log_id(1, 1, 5)));
    assert_eq!(membership.log_id(), &Some(log_id(1, 1, 2)));
    assert_eq!(
        membership.membership().get_joint_config(),
        &members(&[1, 2])
    );
    // Not fresh any more: the next command applies to the persisted
    // state (a fresh apply would start from the default and refuse it).
    let replies = n
        .commit(vec![normal(1, 6, weight("s2", 3))])
        .await
        .expect("apply");
    assert_eq!(replies[0].refused, None);
    assert_eq!(
        n.host
            .state()
            .server(&ServerRef::new("app", "s2"))
            .map(|s| s.weight),
        Some(3)
    );
}

#[tokio::test]
async fn membership_only_batch_keeps_the_node_fresh() {
    let dir = temp();
    {
        let mut n = node(dir.path(), state_after(&[load(OWN_FILE)]));
        n.commit(vec![membership_ent::<TypeConfig>(1, 1, 1, members(&[1]))])
            .await
            .expect("apply");
        // The host's own state is not the replicated state: not persisted.
        let (applied, _) = n.machine.applied_state().await.expect("applied");
        assert_eq!(applied, Some(log_id(1, 1, 1)));
    }
    let opened = reopen(dir.path());
    assert!(opened.has_data());
    assert!(opened.state().is_none());
    let host = Arc::new(MemoryHost::new(state_after(&[load(OWN_FILE)])));
    let (_, mut machine) = opened.into_parts(host.clone());
    machine
        .apply([normal(1, 2, load(CONFIG))])
        .await
        .expect("apply");
    assert_eq!(host.state().hash(), state_after(&[load(CONFIG)]).hash());
}

async fn build(machine: &mut StateMachine) -> Snapshot<TypeConfig> {
    machine
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("build snapshot")
}

#[tokio::test]
async fn snapshot_carries_the_state_to_another_store() {
    let (dir_a, dir_b) = (temp(), temp());
    let mut a = node(dir_a.path(), ClusterState::default());
    a.commit(vec![
        membership_ent::<TypeConfig>(1, 1, 1, members(&[1, 2, 3])),
        normal(1, 2, load(CONFIG)),
        normal(1, 3, weight("s2", 42)),
    ])
    .await
    .expect("apply");
    let built = build(&mut a.machine).await;
    assert_eq!(built.meta.last_log_id, Some(log_id(1, 1, 3)));
    assert_eq!(built.meta.last_membership.log_id(), &Some(log_id(1, 1, 1)));
    let current = a
        .machine
        .get_current_snapshot()
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(current.meta, built.meta);
    assert_eq!(current.snapshot.get_ref(), built.snapshot.get_ref());

    // B started from its own file; the snapshot replaces it.
    {
        let mut b = node(dir_b.path(), state_after(&[load(OWN_FILE)]));
        let mut received = b.machine.begin_receiving_snapshot().await.expect("begin");
        *received = Cursor::new(current.snapshot.into_inner());
        b.machine
            .install_snapshot(&current.meta, received)
            .await
            .expect("install");
        assert_eq!(b.host.state().hash(), a.host.state().hash());
        let (applied, membership) = b.machine.applied_state().await.expect("applied");
        assert_eq!(applied, built.meta.last_log_id);
        assert_eq!(membership, built.meta.last_membership);
        let got = b
            .machine
            .get_current_snapshot()
            .await
            .expect("read")
            .expect("stored");
        assert_eq!(got.meta, built.meta);
    }
    let (mut b, has_data) = restart(dir_b.path());
    assert!(has_data);
    assert_eq!(b.host.state().hash(), a.host.state().hash());
    let (applied, _) = b.machine.applied_state().await.expect("applied");
    assert_eq!(applied, built.meta.last_log_id);
    let got = b
        .machine
        .get_current_snapshot()
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(got.meta, built.meta);
    // Installed means not fresh: the next command builds on the snapshot.
    let replies = b
        .commit(vec![normal(1, 4, weight("s1", 1))])
        .await
        .expect("apply");
    assert_eq!(replies[0].refused, None);
}

#[tokio::test]
async fn snapshot_taken_while_fresh_holds_the_default_state() {
    let dir = temp();
    let mut n = node(dir.path(), state_after(&[load(OWN_FILE)]));
    n.commit(vec![membership_ent::<TypeConfig>(1, 1, 1, members(&[1]))])
        .await
        .expect("apply");
    let built = build(&mut n.machine).await;
    let state = decode_snapshot(built.snapshot.get_ref()).expect("decodes");
    assert_eq!(state, ClusterState::default());
}

#[tokio::test]
async fn slow_build_keeps_a_newer_installed_snapshot() {
    let (dir_a, dir_b) = (temp(), temp());
    let mut leader = populated(dir_a.path()).await;
    let newer = build(&mut leader.machine).await;
    let mut n = node(dir_b.path(), ClusterState::default());
    n.commit(vec![normal(1, 1, load(CONFIG))])
        .await
        .expect("apply");
    // openraft runs a build beside the state machine: a snapshot from the
    // leader can be installed between taking the builder and building.
    let mut builder = n.machine.get_snapshot_builder().await;
    n.machine
        .install_snapshot(&newer.meta, newer.snapshot.clone())
        .await
        .expect("install");
    let stale = builder.build_snapshot().await.expect("build");
    assert_eq!(stale.meta.last_log_id, Some(log_id(1, 1, 1)));
    let current = n
        .machine
        .get_current_snapshot()
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(current.meta, newer.meta);
}

/// What a store shows from the outside, to compare before and after.
async fn observe(n: &mut Node) -> (u64, Option<LogId<NodeId>>, Option<Vec<u8>>) {
    let (applied, _) = n.machine.applied_state().await.expect("applied");
    let snapshot = n
        .machine
        .get_current_snapshot()
        .await
        .expect("read")
        .map(|s| s.snapshot.into_inner());
    (n.host.state().hash(), applied, snapshot)
}

/// A store with some state, a stored snapshot and a later command.
async fn populated(dir: &Path) -> Node {
    let mut n = node(dir, ClusterState::default());
    n.commit(vec![
        membership_ent::<TypeConfig>(1, 1, 1, members(&[1])),
        normal(1, 2, load(CONFIG)),
    ])
    .await
    .expect("apply");
    build(&mut n.machine).await;
    n.commit(vec![normal(1, 3, weight("s1", 9))])
        .await
        .expect("apply");
    n
}

/// Install `data` as a snapshot far ahead of `n`; it must be refused.
async fn refuse(n: &mut Node, data: Vec<u8>) -> StorageError<NodeId> {
    let meta = SnapshotMeta {
        last_log_id: Some(log_id(5, 2, 100)),
        last_membership: StoredMembership::new(
            Some(log_id(5, 2, 90)),
            openraft::Membership::new(members(&[2]), None),
        ),
        snapshot_id: "evil".into(),
    };
    n.machine
        .install_snapshot(&meta, Box::new(Cursor::new(data)))
        .await
        .expect_err("the snapshot must be refused")
}

#[tokio::test]
async fn oversized_snapshot_is_refused_and_changes_nothing() {
    let dir = temp();
    let mut n = populated(dir.path()).await;
    let before = observe(&mut n).await;
    // Zeroed pages are mapped lazily: this costs no real memory.
    let err = refuse(&mut n, vec![0; SNAPSHOT_CAP + 1]).await;
    let text = err.to_string();
    assert!(text.contains("larger than"), "{text}");
    // Blamed on writing the received snapshot, which it names.
    assert!(text.contains("Write Snapshot(Some("), "{text}");
    assert_eq!(observe(&mut n).await, before);
    drop(n);
    let (mut n, _) = restart(dir.path());
    assert_eq!(observe(&mut n).await, before);
}

#[tokio::test]
async fn corrupt_snapshot_is_refused_and_changes_nothing() {
    let dir = temp();
    let mut n = populated(dir.path()).await;
    let before = observe(&mut n).await;
    let good = before.2.clone().expect("a snapshot is stored");
    let mut trailing = good.clone();
    trailing.push(0);
    let mut huge_length = vec![0xfd];
    huge_length.extend_from_slice(&u64::MAX.to_le_bytes());
    for bad in [
        good[..good.len() / 2].to_vec(),
        trailing,
        vec![0xff; 64],
        huge_length,
        Vec::new(),
    ] {
        let err = refuse(&mut n, bad.clone()).await;
        assert!(err.to_string().contains("does not decode"), "{err}");
        assert_eq!(observe(&mut n).await, before, "after {bad:?}");
    }
    drop(n);
    let (mut n, _) = restart(dir.path());
    assert_eq!(observe(&mut n).await, before);
}

#[tokio::test]
async fn purge_and_truncate_survive_reopen() {
    let dir = temp();
    {
        let mut n = node(dir.path(), ClusterState::default());
        let entries = (1..=10).map(|i| blank_ent::<TypeConfig>(1, 1, i));
        n.commit(entries.collect()).await.expect("commit");
        // The log is purged only up to a stored snapshot.
        build(&mut n.machine).await;
        n.log.purge(log_id(1, 1, 3)).await.expect("purge");
        n.log.truncate(log_id(1, 1, 8)).await.expect("truncate");
    }
    let (mut n, has_data) = restart(dir.path());
    assert!(has_data);
    let state = n.log.get_log_state().await.expect("log state");
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 3)));
    assert_eq!(state.last_log_id, Some(log_id(1, 1, 7)));
    let indexes: Vec<u64> = n
        .log
        .try_get_log_entries(0..100)
        .await
        .expect("entries")
        .iter()
        .map(|e| e.log_id.index)
        .collect();
    assert_eq!(indexes, [4, 5, 6, 7]);

    // Purging past the last entry leaves no entry; the purged id is last.
    n.log.purge(log_id(1, 1, 10)).await.expect("purge");
    drop(n);
    let (mut n, has_data) = restart(dir.path());
    assert!(has_data, "a purged log still means the node was a member");
    let state = n.log.get_log_state().await.expect("log state");
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 10)));
    assert_eq!(state.last_log_id, Some(log_id(1, 1, 10)));
    assert!(n
        .log
        .try_get_log_entries(..)
        .await
        .expect("read")
        .is_empty());
}

#[tokio::test]
#[allow(clippy::reversed_empty_ranges)] // a reversed range is one of the cases
async fn odd_ranges_read_nothing() {
    let dir = temp();
    let mut n = node(dir.path(), ClusterState::default());
    let entries = (1..=3).map(|i| blank_ent::<TypeConfig>(1, 1, i));
    n.log.blocking_append(entries).await.expect("append");
    for got in [
        n.log.try_get_log_entries(3..3).await,
        n.log.try_get_log_entries(3..1).await,
        n.log.try_get_log_entries(7..).await,
        n.log
            .try_get_log_entries((
                std::ops::Bound::Excluded(u64::MAX),
                std::ops::Bound::Unbounded,
            ))
            .await,
    ] {
        assert!(got.expect("read").is_empty());
    }
    assert_eq!(
        n.log.try_get_log_entries(..=2).await.expect("read").len(),
        2
    );
}

/// Replication reads what fits one AppendEntries: a follower far behind
/// costs the leader one budget of reads per call, not its whole backlog.
#[tokio::test]
async fn replication_reads_at_most_one_budget_of_entries() {
    let dir = temp();
    let mut n = node(dir.path(), ClusterState::default());
    // About 100 KiB each: ten fit in the 1 MiB budget.
    let big = |i: u64| normal(1, i, stick_batch(i, 0..6_000, "s1"));
    let size = codec::encode(&big(1)).expect("encode").len();
    assert!((90_000..110_000).contains(&size), "{size} bytes");
    n.log
        .blocking_append((1..=40).map(big))
        .await
        .expect("append");
    let got = n.log.limited_get_log_entries(1, 41).await.expect("read");
    let fit = crate::types::APPEND_BUDGET / size;
    assert_eq!(got.len(), fit);
    assert_eq!(got[0].log_id.index, 1);
    assert_eq!(got.last().map(|e| e.log_id.index), Some(fit as u64));
    // Less than the budget left: the rest of the range.
    let tail = n.log.limited_get_log_entries(38, 41).await.expect("read");
    assert_eq!(tail.len(), 3);
    // An entry larger than the budget goes alone.
    let huge = normal(1, 41, stick_batch(41, 0..80_000, "s1"));
    assert!(codec::encode(&huge).expect("encode").len() > crate::types::APPEND_BUDGET);
    n.log.blocking_append([huge]).await.expect("append");
    let alone = n.log.limited_get_log_entries(41, 42).await.expect("read");
    assert_eq!(alone.len(), 1);
    assert!(n
        .log
        .limited_get_log_entries(5, 5)
        .await
        .expect("read")
        .is_empty());
}

#[tokio::test]
async fn corrupt_entry_is_an_error_not_a_panic() {
    let dir = temp();
    {
        let mut n = node(dir.path(), ClusterState::default());
        n.log
            .blocking_append([blank_ent::<TypeConfig>(1, 1, 1)])
            .await
            .expect("append");
    }
    {
        let db = eventually("open raw", || sled::open(dir.path().join(DB_NAME)));
        let log = db.open_tree(LOG).expect("tree");
        log.insert(2u64.to_be_bytes(), &[0xff, 0xff, 0xff][..])
            .expect("insert");
        db.flush().expect("flush");
    }
    let (mut n, _) = restart(dir.path());
    let err = n
        .log
        .try_get_log_entries(..)
        .await
        .expect_err("garbage must not decode");
    assert!(
        err.to_string().contains("log entry does not decode"),
        "{err}"
    );
    assert!(n.log.get_log_state().await.is_err());
}

/// Set in the child processes that [`flushed_writes_survive_a_crash`]
/// starts: `STEP:DIR`.
const CRASH: &str = "SHOAL_STORE_CRASH";

/// What the children write before they die.
fn crash_entries() -> Vec<Entry<TypeConfig>> {
    vec![
        membership_ent::<TypeConfig>(1, 1, 1, members(&[1])),
        normal(1, 2, load(CONFIG)),
        normal(1, 3, weight("s1", 77)),
    ]
}

fn crash_meta() -> SnapshotMeta<NodeId, NodeInfo> {
    SnapshotMeta {
        last_log_id: Some(log_id(2, 2, 9)),
        last_membership: StoredMembership::new(
            Some(log_id(2, 2, 8)),
            openraft::Membership::new(members(&[1, 2]), None),
        ),
        snapshot_id: "from-leader".into(),
    }
}

/// Each write the store reports durable survives the process dying right
/// after it (abort: no destructor runs, so sled does not flush on drop).
/// The test runs itself again as a child per step; each child does that
/// one write, then aborts, and the parent reopens what it left.
#[test]
fn flushed_writes_survive_a_crash() {
    if let Some(step) = std::env::var_os(CRASH) {
        let step = step.to_string_lossy().into_owned();
        let (step, dir) = step.split_once(':').expect("STEP:DIR");
        crash_child(step, Path::new(dir));
    }
    let name = concat!(module_path!(), "::flushed_writes_survive_a_crash");
    let name = name.split_once("::").map_or(name, |(_, rest)| rest);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for step in ["vote", "append", "apply", "install"] {
        let dir = temp();
        let child = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", name, "--test-threads=1", "--nocapture"])
            .env(CRASH, format!("{step}:{}", dir.path().display()))
            .output()
            .expect("run child");
        let output =
            String::from_utf8_lossy(&child.stdout) + String::from_utf8_lossy(&child.stderr);
        assert!(
            !child.status.success(),
            "{step}: the child must die by abort: {}\n{output}",
            child.status
        );
        assert!(
            dir.path().join("written").exists(),
            "{step}: the child did not get to its write:\n{output}"
        );
        runtime.block_on(async {
            let (mut n, has_data) = restart(dir.path());
            assert!(has_data, "{step}");
            let (applied, membership) = n.machine.applied_state().await.expect("applied");
            match step {
                "vote" => {
                    assert_eq!(
                        n.log.read_vote().await.expect("vote"),
                        Some(Vote::new(1, 1))
                    )
                }
                "append" => assert_eq!(
                    n.log.try_get_log_entries(..).await.expect("entries"),
                    crash_entries()
                ),
                "apply" => {
                    // The state is rebuilt from the log on open: whatever
                    // applied id reached the disk, the state is exactly
                    // that point's (this batch held a membership change,
                    // so it was flushed: all of it).
                    let commands = [load(CONFIG), weight("s1", 77)];
                    let done = applied.map_or(0, |id| id.index.saturating_sub(1) as usize);
                    assert_eq!(
                        n.host.state().hash(),
                        state_after(&commands[..done]).hash(),
                        "the state on disk is the state at its applied id {applied:?}"
                    );
                    // Whatever the disk lacks, openraft applies again.
                    let from = applied.map_or(1, |id| id.index + 1);
                    let rest = n.log.try_get_log_entries(from..).await.expect("log");
                    n.machine.apply(rest).await.expect("re-apply");
                    let (applied, _) = n.machine.applied_state().await.expect("applied");
                    assert_eq!(applied, Some(log_id(1, 1, 3)));
                    assert_eq!(n.host.state().hash(), state_after(&commands).hash());
                }
                _ => {
                    assert_eq!(
                        (applied, membership),
                        (crash_meta().last_log_id, crash_meta().last_membership)
                    );
                    assert_eq!(n.host.state().hash(), state_after(&[load(CONFIG)]).hash());
                    let current = n.machine.get_current_snapshot().await.expect("read");
                    assert_eq!(current.map(|s| s.meta), Some(crash_meta()));
                }
            }
        });
    }
}

fn crash_child(step: &str, dir: &Path) -> ! {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut n = node(dir, ClusterState::default());
        match step {
            "vote" => n.log.save_vote(&Vote::new(1, 1)).await.expect("vote"),
            "append" => n
                .log
                .blocking_append(crash_entries())
                .await
                .expect("append"),
            "apply" => {
                n.log
                    .blocking_append(crash_entries())
                    .await
                    .expect("append");
                n.machine.apply(crash_entries()).await.expect("apply");
            }
            _ => {
                let data = codec::encode(&state_after(&[load(CONFIG)])).expect("encode");
                n.machine
                    .install_snapshot(&crash_meta(), Box::new(Cursor::new(data)))
                    .await
                    .expect("install");
            }
        }
        std::fs::write(dir.join("written"), b"").expect("marker");
        std::process::abort();
    })
}

const STICKY: &str = "\
defaults
    mode http
backend app
    stick-table type string len 64 size 20000 expire 10s
    stick on req.hdr(X-Key)
    server s1 127.0.0.1:8001
    server s2 127.0.0.1:8002
";

/// The first two entries of a log with a stick table: its config, then
/// one batch sticking `keys` to `server` at `at`.
fn sticky_log(at: u64, keys: std::ops::Range<u32>, server: &str) -> Vec<Entry<TypeConfig>> {
    vec![
        normal(1, 1, load(STICKY)),
        normal(1, 2, stick_batch(at, keys, server)),
    ]
}

fn stick_batch(at: u64, keys: std::ops::Range<u32>, server: &str) -> Command {
    Command::StickBatch {
        node: 1,
        at,
        writes: keys
            .map(|k| shoal_proto::command::StickWrite {
                table: "app".into(),
                key: format!("key-{k}"),
                server: server.into(),
                prev: None,
            })
            .collect(),
    }
}

/// Every key stored in `tree`, in order.
fn keys_of(tree: &sled::Tree) -> Vec<Vec<u8>> {
    tree.iter()
        .keys()
        .map(|k| k.expect("key").to_vec())
        .collect()
}

#[tokio::test]
async fn stick_entries_are_rebuilt_from_the_log_on_open() {
    let dir = temp();
    {
        let mut n = node(dir.path(), ClusterState::default());
        n.commit(sticky_log(1_000, 0..10_000, "s1"))
            .await
            .expect("apply");
        // Later batches: new keys, a conflict (ignored), an expiry, a clear.
        n.commit(vec![
            normal(1, 3, stick_batch(5_000, 10_000..10_100, "s2")),
            normal(1, 4, stick_batch(5_001, 0..5, "s2")),
        ])
        .await
        .expect("apply");
        n.commit(vec![
            normal(1, 5, stick_batch(12_000, 0..0, "s1")),
            normal(
                1,
                6,
                Command::ClearTable {
                    table: "app".into(),
                    key: Some("key-10005".into()),
                },
            ),
        ])
        .await
        .expect("apply");
        let state = n.host.state();
        let entries = state.tables()["app"].entries();
        assert_eq!(entries.len(), 99, "the first 10,000 expired at 11 s");
        assert_eq!(entries["key-10000"].server, "s2");
    }
    let opened = reopen(dir.path());
    // A batch writes no state: only how far it applied. The state is the
    // log applied again.
    assert_eq!(keys_of(&opened.machine), [APPLIED, FRESH]);
    drop(opened);
    let (n, _) = restart(dir.path());
    let mut expected = state_after(&[
        load(STICKY),
        stick_batch(1_000, 0..10_000, "s1"),
        stick_batch(5_000, 10_000..10_100, "s2"),
        stick_batch(5_001, 0..5, "s2"),
        stick_batch(12_000, 0..0, "s1"),
    ]);
    expected
        .execute(&Command::ClearTable {
            table: "app".into(),
            key: Some("key-10005".into()),
        })
        .expect("clear");
    assert_eq!(n.host.state(), expected);
    assert_eq!(n.host.state().hash(), expected.hash());
}

#[tokio::test]
async fn an_installed_snapshot_replaces_the_stored_entries() {
    let (dir_a, dir_b) = (temp(), temp());
    let mut a = node(dir_a.path(), ClusterState::default());
    a.commit(sticky_log(1_000, 0..50, "s2"))
        .await
        .expect("apply");
    let snapshot = build(&mut a.machine).await;
    {
        // B holds other entries (its own history) before the snapshot.
        let mut b = node(dir_b.path(), ClusterState::default());
        b.commit(sticky_log(900, 100..200, "s1"))
            .await
            .expect("apply");
        let mut received = b.machine.begin_receiving_snapshot().await.expect("begin");
        *received = Cursor::new(snapshot.snapshot.into_inner());
        b.machine
            .install_snapshot(&snapshot.meta, received)
            .await
            .expect("install");
    }
    let (b, _) = restart(dir_b.path());
    assert_eq!(b.host.state(), a.host.state());
    assert_eq!(b.host.state().tables()["app"].entries().len(), 50);
}

/// A stopped node's state is rebuilt up to the furthest of its applied and
/// committed ids (a node killed before its last applied id reached the
/// disk has the committed entries after it in its log), as it starts and
/// as a backup with `--data-dir` reads it; openraft then has nothing to
/// apply again.
#[tokio::test]
async fn a_stopped_nodes_state_includes_its_committed_log() {
    let dir = temp();
    {
        let mut n = node(dir.path(), ClusterState::default());
        n.log
            .blocking_append(crash_entries())
            .await
            .expect("append");
        n.log
            .save_committed(Some(log_id(1, 1, 3)))
            .await
            .expect("committed");
        let first_two: Vec<_> = crash_entries().into_iter().take(2).collect();
        n.machine.apply(first_two).await.expect("apply");
    }
    let opened = reopen(dir.path());
    assert_eq!(opened.applied_index(), Some(3), "applied 2, committed 3");
    let expected = state_after(&[load(CONFIG), weight("s1", 77)]);
    assert_eq!(opened.state().expect("a state").hash(), expected.hash());
    drop(opened);
    let (mut n, _) = restart(dir.path());
    let (applied, _) = n.machine.applied_state().await.expect("applied");
    let committed = n.log.read_committed().await.expect("committed");
    assert!(applied >= committed, "{applied:?} < {committed:?}");
}

/// openraft purges the log as soon as it hands a leader's snapshot to the
/// state machine, before it is stored. Reads stop returning the purged
/// entries at once, but those after the stored snapshot stay on disk
/// until it is stored: a node killed in between rebuilds its state from
/// them (before, it had neither them nor the snapshot, and its store did
/// not open).
#[tokio::test]
async fn a_purge_keeps_the_entries_after_the_stored_snapshot_until_it_is_stored() {
    let (dir_a, dir_b) = (temp(), temp());
    let mut leader = node(dir_a.path(), ClusterState::default());
    let commands = [load(CONFIG), weight("s1", 5), weight("s2", 6)];
    let entries: Vec<_> = (0..3)
        .map(|i| normal(1, i + 1, commands[i as usize].clone()))
        .collect();
    leader.commit(entries.clone()).await.expect("commit");
    let snapshot = build(&mut leader.machine).await;
    {
        let mut n = node(dir_b.path(), ClusterState::default());
        n.commit(entries[..1].to_vec()).await.expect("commit");
        n.log.purge(log_id(1, 1, 3)).await.expect("purge");
        // Purged for openraft...
        assert!(n
            .log
            .try_get_log_entries(..)
            .await
            .expect("read")
            .is_empty());
        assert!(n
            .log
            .limited_get_log_entries(0, 4)
            .await
            .expect("read")
            .is_empty());
        let state = n.log.get_log_state().await.expect("log state");
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 3)));
        assert_eq!(state.last_log_id, Some(log_id(1, 1, 3)));
        // ...and killed before the snapshot is stored.
    }
    let (mut n, _) = restart(dir_b.path());
    assert_eq!(n.host.state(), state_after(&commands[..1]));
    // Its log is readable again from its state on (openraft never has
    // the log purged past the state machine).
    let state = n.log.get_log_state().await.expect("log state");
    assert_eq!(state.last_purged_log_id, None);
    assert_eq!(state.last_log_id, Some(log_id(1, 1, 1)));
    assert_eq!(
        n.log.try_get_log_entries(..).await.expect("read"),
        entries[..1]
    );
    // The snapshot arrives again; once stored, the purge removes the rest.
    n.machine
        .install_snapshot(&snapshot.meta, snapshot.snapshot.clone())
        .await
        .expect("install");
    n.log.purge(log_id(1, 1, 3)).await.expect("purge");
    drop(n);
    let (n, _) = restart(dir_b.path());
    assert_eq!(n.host.state(), state_after(&commands));
}

/// After a snapshot and a purge the log starts mid-way; a restart
/// rebuilds the snapshot's state and the entries after it, and the
/// membership of an entry after the snapshot.
#[tokio::test]
async fn a_restart_rebuilds_from_the_snapshot_and_the_log_after_it() {
    let dir = temp();
    let expected;
    {
        let mut n = node(dir.path(), ClusterState::default());
        n.commit(vec![
            membership_ent::<TypeConfig>(1, 1, 1, members(&[1])),
            normal(1, 2, load(STICKY)),
            normal(1, 3, stick_batch(1_000, 0..100, "s1")),
        ])
        .await
        .expect("commit");
        build(&mut n.machine).await;
        n.log.purge(log_id(1, 1, 2)).await.expect("purge");
        n.commit(vec![
            normal(1, 4, stick_batch(2_000, 50..150, "s2")),
            membership_ent::<TypeConfig>(1, 1, 5, members(&[1, 2])),
            normal(1, 6, weight("s1", 3)),
        ])
        .await
        .expect("commit");
        expected = n.host.state();
    }
    let opened = reopen(dir.path());
    assert_eq!(opened.applied_index(), Some(6));
    drop(opened);
    let (mut n, _) = restart(dir.path());
    assert_eq!(n.host.state(), expected);
    let (_, membership) = n.machine.applied_state().await.expect("applied");
    assert_eq!(membership.log_id(), &Some(log_id(1, 1, 5)));
}

/// A snapshot built while the node was fresh (the default state), then
/// commands: a restart applies them to the default state, not to the
/// node's own file; with no command after it the node is still fresh.
#[tokio::test]
async fn a_snapshot_built_while_fresh_then_commands_rebuild_the_cluster_state() {
    let (dir_a, dir_b) = (temp(), temp());
    for (dir, commands) in [(&dir_a, true), (&dir_b, false)] {
        {
            let mut n = node(dir.path(), state_after(&[load(OWN_FILE)]));
            n.commit(vec![membership_ent::<TypeConfig>(1, 1, 1, members(&[1]))])
                .await
                .expect("commit");
            build(&mut n.machine).await;
            if commands {
                n.commit(vec![normal(1, 2, load(CONFIG))])
                    .await
                    .expect("commit");
            }
        }
        let opened = reopen(dir.path());
        match commands {
            true => assert_eq!(opened.state(), Some(&state_after(&[load(CONFIG)]))),
            false => assert_eq!(opened.state(), None, "still fresh"),
        }
    }
}

/// openraft's first entry (the initial membership) has index 0.
#[tokio::test]
async fn a_log_that_starts_at_index_0_is_rebuilt() {
    let dir = temp();
    {
        let mut n = node(dir.path(), ClusterState::default());
        n.commit(vec![
            membership_ent::<TypeConfig>(0, 0, 0, members(&[1])),
            normal(1, 1, load(CONFIG)),
        ])
        .await
        .expect("commit");
    }
    let opened = reopen(dir.path());
    assert_eq!(opened.applied_index(), Some(1));
    assert_eq!(opened.state(), Some(&state_after(&[load(CONFIG)])));
}

/// A log that lacks an entry the state must be rebuilt from is an error
/// that names it, not a state silently short of it.
#[tokio::test]
async fn a_missing_log_entry_fails_the_open() {
    let dir = temp();
    {
        let mut n = node(dir.path(), ClusterState::default());
        n.commit(crash_entries()).await.expect("commit");
        // Lose entry 2 (no store does this; a damaged disk might).
        n.log.truncate(log_id(1, 1, 2)).await.expect("truncate");
        n.log
            .blocking_append([normal(1, 3, weight("s1", 77))])
            .await
            .expect("append");
    }
    let err = eventually("open fails", || match open(dir.path()) {
        Ok(_) => Err("opened".to_string()),
        Err(StoreError::Open { .. }) => Err("locked".to_string()),
        Err(e) => Ok(e),
    });
    assert!(
        matches!(err, StoreError::MissingEntry { index: 2, upto: 3 }),
        "{err}"
    );
}

/// A data directory written by an earlier build (the state without
/// entries, the membership and one key per stick entry beside the log)
/// opens to the same state, rebuilt from the log, and loses those keys.
#[tokio::test]
async fn an_earlier_layout_is_rebuilt_from_the_log_and_cleaned() {
    let dir = temp();
    {
        let mut n = node(dir.path(), ClusterState::default());
        n.commit(sticky_log(1_000, 0..20, "s2"))
            .await
            .expect("commit");
        let tree = n.machine.tree();
        tree.insert(b"state", b"old".as_slice()).expect("insert");
        tree.insert(b"membership", b"old".as_slice())
            .expect("insert");
        tree.insert(b"\x01\x00\x00\x00\x03appkey-1", b"old".as_slice())
            .expect("insert");
    }
    let (n, _) = restart(dir.path());
    let expected = state_after(&[load(STICKY), stick_batch(1_000, 0..20, "s2")]);
    assert_eq!(n.host.state(), expected);
    assert_eq!(keys_of(n.machine.tree()), [APPLIED, FRESH]);
}
