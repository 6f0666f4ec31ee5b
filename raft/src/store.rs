//! The node's Raft storage: the log and the state machine, in one sled
//! database under the data directory (`DIR/raft.sled`).
//!
//! # Layout
//!
//! Three sled trees; every value is encoded with [`shoal_proto::codec`]
//! (bincode 2), and every decode is size-limited.
//!
//! | tree       | key                   | value                                         |
//! |------------|-----------------------|-----------------------------------------------|
//! | `log`      | index, u64 big-endian | one `Entry<TypeConfig>` (so keys sort by index) |
//! | `log_meta` | `vote`                | the last saved `Vote`                         |
//! |            | `last_purged`         | the `LogId` of the last purged entry          |
//! |            | `committed`           | the last committed `LogId` openraft reported  |
//! | `machine`  | `applied`             | the `LogId` of the last applied entry         |
//! |            | `fresh`               | `bool`: no command applied nor snapshot installed yet (absent: true) |
//! |            | `snapshot_meta`       | the current snapshot's `SnapshotMeta`         |
//! |            | `snapshot_data`       | its data: the encoded `ClusterState`          |
//!
//! # Durability
//!
//! Nothing is reported done before it is on disk: a vote is flushed before
//! `save_vote` returns; appended entries are flushed before the
//! `LogFlushed` callback is called; truncate and purge are flushed before
//! they return; an installed or built snapshot is flushed before it is
//! reported.
//!
//! The state machine's durable form is the current snapshot plus the log
//! after it. Applying a batch writes only its last log id (`applied`),
//! without a flush: the state itself is not written per batch (at tens of
//! thousands of stick entries a second, writing each changed entry to sled
//! cost a loaded node more CPU than everything else it did). Opening the
//! store rebuilds the state: the snapshot's, then every log entry after it
//! up to the furthest of `applied` and `committed` applied again, in
//! order ([`ClusterState::execute`], what every node does with them). Those
//! entries are committed and on disk before either id is written, and the
//! log keeps every entry after the snapshot on disk (openraft asks to
//! purge as soon as it hands a leader's snapshot to the state machine:
//! reads stop returning the purged entries at once, but they stay stored
//! until the snapshot is: [`SnapshotMark`]), so they are all there. A node killed before its last ids reached the disk
//! rebuilds an earlier point, and openraft applies the rest of the log
//! again as the commit index comes back. Two rare kinds of batch are
//! flushed, because Raft's start depends on them: a membership change (is
//! this node a voter?) and the first command (`fresh` ends). Keys that
//! belong together are always written atomically (a sled batch or
//! transaction), so a crash leaves either the old or the new values,
//! never a mix. `committed` is written without a flush too: openraft may
//! lose it (the next flush of the log carries it anyway).
//!
//! Start-up then costs the snapshot's decode plus about `--snapshot-every`
//! entries applied again (more when entries commit while a snapshot is
//! being built).
//!
//! Data directories of earlier builds also kept the state without its
//! stick entries (`state`), the last membership (`membership`) and one key
//! per stick entry: those are rebuilt the same way and removed on open.
//!
//! A snapshot (its data is the whole `ClusterState`) larger than
//! [`SNAPSHOT_CAP`] is refused: it came from a peer, which is untrusted.

pub mod incarnation;
mod log;
mod machine;
mod memory;
#[cfg(test)]
mod tests;

pub use self::log::LogStore;
pub use self::machine::{SnapshotBuilder, StateMachine};
pub use self::memory::MemoryHost;

use crate::types::{NodeInfo, StateHost, TypeConfig};
use openraft::{
    ErrorSubject, ErrorVerb, LogId, SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use shoal_proto::codec::{self, CodecError};
use shoal_proto::command::NodeId;
use shoal_proto::state::ClusterState;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest snapshot accepted or decoded: the codec's own limit (256 MiB).
/// A `ClusterState` is a config text plus per-server state plus stick
/// tables; even a million stick entries stay well below this, and a larger
/// value from a peer is far more likely an attack or a bug.
pub const SNAPSHOT_CAP: usize = codec::MAX_DECODE;

/// The database's name inside the node's data directory.
pub const DB_NAME: &str = "raft.sled";

// Tree names.
const LOG: &str = "log";
const LOG_META: &str = "log_meta";
const MACHINE: &str = "machine";

// Keys of `log_meta`.
const VOTE: &[u8] = b"vote";
const LAST_PURGED: &[u8] = b"last_purged";
const COMMITTED: &[u8] = b"committed";

// Keys of `machine`.
const APPLIED: &[u8] = b"applied";
const FRESH: &[u8] = b"fresh";
const SNAPSHOT_META: &[u8] = b"snapshot_meta";
const SNAPSHOT_DATA: &[u8] = b"snapshot_data";
/// Keys of `machine` that earlier builds wrote and this one rebuilds from
/// the snapshot and the log: the state without entries, the membership,
/// and (under the prefix [`LEGACY_STICK`]) one key per stick entry.
const LEGACY_KEYS: [&[u8]; 2] = [b"state", b"membership"];
const LEGACY_STICK: u8 = 0x01;

/// What can go wrong in the Raft store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened (a missing or unwritable data
    /// directory, another process holding it, a damaged file).
    #[error("cannot open the Raft store {}: {source}", .path.display())]
    Open { path: PathBuf, source: sled::Error },
    /// sled failed to read or write.
    #[error("Raft store: {0}")]
    Sled(#[from] sled::Error),
    /// A stored or received value does not decode.
    #[error("Raft store: {what} does not decode: {source}")]
    Decode {
        what: &'static str,
        source: CodecError,
    },
    /// A value does not encode (a bug, or a value beyond the codec's limit).
    #[error("Raft store: cannot encode {what}: {source}")]
    Encode {
        what: &'static str,
        source: CodecError,
    },
    /// Work on a blocking thread did not finish (the node is stopping).
    #[error("Raft store: {0} was interrupted (the node is stopping)")]
    Interrupted(&'static str),
    /// The log lacks an entry the state must be rebuilt from.
    #[error("Raft store: log entry {index} is missing (the state is rebuilt from the snapshot up to {upto})")]
    MissingEntry { index: u64, upto: u64 },
    /// A snapshot larger than [`SNAPSHOT_CAP`].
    #[error("snapshot of {size} bytes is larger than the {cap}-byte limit")]
    SnapshotTooLarge { size: usize, cap: usize },
}

impl StoreError {
    /// The openraft error for this failure, blaming `subject` and `verb`.
    pub fn storage(self, subject: ErrorSubject<NodeId>, verb: ErrorVerb) -> StorageError<NodeId> {
        StorageIOError::new(subject, verb, &self).into()
    }
}

impl From<sled::transaction::TransactionError<StoreError>> for StoreError {
    fn from(e: sled::transaction::TransactionError<StoreError>) -> StoreError {
        match e {
            sled::transaction::TransactionError::Abort(e) => e,
            sled::transaction::TransactionError::Storage(e) => StoreError::Sled(e),
        }
    }
}

/// Encode `value`, naming `what` in the error.
fn encode<T: serde::Serialize + ?Sized>(
    what: &'static str,
    value: &T,
) -> Result<Vec<u8>, StoreError> {
    codec::encode(value).map_err(|source| StoreError::Encode { what, source })
}

/// Decode `bytes`, naming `what` in the error.
fn decode<T: serde::de::DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    codec::decode(bytes).map_err(|source| StoreError::Decode { what, source })
}

/// Read and decode `key` of `tree`, if present.
fn read<T: serde::de::DeserializeOwned>(
    tree: &sled::Tree,
    key: &[u8],
    what: &'static str,
) -> Result<Option<T>, StoreError> {
    tree.get(key)?.map(|v| decode(what, &v)).transpose()
}

/// Decode a snapshot's data into the state it carries, refusing anything
/// over [`SNAPSHOT_CAP`] before decoding a byte.
pub fn decode_snapshot(data: &[u8]) -> Result<ClusterState, StoreError> {
    if data.len() > SNAPSHOT_CAP {
        return Err(StoreError::SnapshotTooLarge {
            size: data.len(),
            cap: SNAPSHOT_CAP,
        });
    }
    decode("snapshot data", data)
}

/// How far the snapshot on disk reaches, as the state machine tells the
/// log store: stored entries are removed only up to it. openraft purges
/// the log the moment it hands a snapshot from the leader to the state
/// machine, while the state machine may still be decoding and storing
/// it; a node killed in between would otherwise have neither the old
/// entries nor the new snapshot to rebuild its state from (see
/// `LogStore::purge_upto`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SnapshotMark {
    /// The last log id of the snapshot on disk.
    pub(crate) upto: Option<LogId<NodeId>>,
}

/// The sending side of the [`SnapshotMark`], held by the state machine and
/// its snapshot builders.
pub(crate) type MarkSender = Arc<tokio::sync::watch::Sender<SnapshotMark>>;

/// The state machine's metadata as last persisted.
#[derive(Debug, Clone, Default)]
struct MachineMeta {
    applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, NodeInfo>,
    fresh: bool,
}

/// An opened store, before Raft starts: the node reads what it needs to
/// start its runtime, then hands the store to Raft with
/// [`Opened::into_parts`].
pub struct Opened {
    db: sled::Db,
    log: sled::Tree,
    log_meta: sled::Tree,
    machine: sled::Tree,
    meta: MachineMeta,
    /// The replicated state as rebuilt at `meta.applied` (`None` while
    /// fresh).
    state: Option<ClusterState>,
    /// The last log id of the snapshot on disk.
    snapshot: Option<LogId<NodeId>>,
    has_data: bool,
    incarnation: u64,
}

/// Open, or create, the Raft store under the node's data directory `dir`
/// (the database is `dir/raft.sled`; `dir` is created if missing), and
/// rebuild the replicated state (see the module's note). Fails if another
/// process has it open, or if what it holds does not decode.
pub fn open(dir: &Path) -> Result<Opened, StoreError> {
    let path = dir.join(DB_NAME);
    let db = sled::Config::new()
        .path(&path)
        .open()
        .map_err(|source| StoreError::Open { path, source })?;
    let log = db.open_tree(LOG)?;
    let log_meta = db.open_tree(LOG_META)?;
    let machine = db.open_tree(MACHINE)?;
    let (meta, state, snapshot) = rebuild(&log, &log_meta, &machine)?;
    undo_purge_past(&log_meta, meta.applied, snapshot)?;
    remove_legacy_keys(&machine)?;
    let has_data = log_meta.contains_key(VOTE)?
        || log_meta.contains_key(LAST_PURGED)?
        || !log.is_empty()
        || meta.applied.is_some()
        || meta.membership.log_id().is_some();
    let incarnation = incarnation::load_or_create(&db)?;
    Ok(Opened {
        db,
        log,
        log_meta,
        machine,
        meta,
        state,
        snapshot,
        has_data,
        incarnation,
    })
}

/// The state machine as of the furthest applied or committed entry on
/// disk: the current snapshot, then the log entries after it applied
/// again in order. The state is `None` while the machine is fresh. Also
/// returns the snapshot's last log id.
#[allow(clippy::type_complexity)]
fn rebuild(
    log: &sled::Tree,
    log_meta: &sled::Tree,
    machine: &sled::Tree,
) -> Result<(MachineMeta, Option<ClusterState>, Option<LogId<NodeId>>), StoreError> {
    use openraft::{Entry, EntryPayload};
    let fresh_on_disk: bool = read(machine, FRESH, "fresh flag")?.unwrap_or(true);
    let snapshot_meta: Option<SnapshotMeta<NodeId, NodeInfo>> =
        read(machine, SNAPSHOT_META, "snapshot meta")?;
    let snapshot = snapshot_meta.as_ref().and_then(|m| m.last_log_id);
    let (mut applied, mut membership, mut state) = match snapshot_meta {
        Some(meta) => {
            let data = machine.get(SNAPSHOT_DATA)?.unwrap_or_default();
            (
                meta.last_log_id,
                meta.last_membership,
                decode_snapshot(&data)?,
            )
        }
        None => (None, StoredMembership::default(), ClusterState::default()),
    };
    // A snapshot built while fresh holds the default state; any other
    // snapshot is replicated state, whatever the flag says.
    let mut fresh = fresh_on_disk && state == ClusterState::default();
    let upto: Option<LogId<NodeId>> = read(machine, APPLIED, "last applied log id")?.max(read(
        log_meta,
        COMMITTED,
        "committed log id",
    )?);
    if let Some(upto) = upto.filter(|u| Some(u.index) > applied.map(|a| a.index)) {
        // After the snapshot every index must follow (the log keeps the
        // entries after the stored snapshot, even those openraft already
        // purged); without one the log starts at its first index, 0 or 1
        // as openraft starts it.
        let first = match applied {
            Some(a) => a.index + 1,
            None => match log.first()? {
                Some((k, _)) if k.as_ref() == log::key(1) => 1,
                _ => 0,
            },
        };
        let missing = |index| StoreError::MissingEntry {
            index,
            upto: upto.index,
        };
        let mut next = first;
        for item in log.range(log::key(first)..=log::key(upto.index)) {
            let (_, value) = item?;
            let entry: Entry<TypeConfig> = decode("log entry", &value)?;
            if entry.log_id.index != next {
                return Err(missing(next));
            }
            match &entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(command) => {
                    // A refused command changes nothing, as when it was
                    // first applied.
                    let _ = state.execute(command);
                    fresh = false;
                }
                EntryPayload::Membership(m) => {
                    membership = StoredMembership::new(Some(entry.log_id), m.clone());
                }
            }
            applied = Some(entry.log_id);
            next = entry.log_id.index + 1;
        }
        if applied != Some(upto) {
            return Err(missing(next));
        }
    }
    let meta = MachineMeta {
        applied,
        membership,
        fresh,
    };
    Ok((meta, (!fresh).then_some(state), snapshot))
}

/// A log purged past what the rebuilt state reflects is the trace of a
/// node stopped while it stored a snapshot from the leader (openraft
/// purges as soon as it hands the snapshot over; see
/// `LogStore::purge_upto`). The entries after the stored snapshot are
/// still on disk: make them readable again, so that openraft, which
/// never has its log purged past its state, applies from them (or
/// replaces them, if they conflict with the leader's).
fn undo_purge_past(
    log_meta: &sled::Tree,
    applied: Option<LogId<NodeId>>,
    snapshot: Option<LogId<NodeId>>,
) -> Result<(), StoreError> {
    let purged: Option<LogId<NodeId>> = read(log_meta, LAST_PURGED, "last purged log id")?;
    if purged.map(|p| p.index) <= applied.map(|a| a.index) {
        return Ok(());
    }
    match snapshot {
        Some(id) => log_meta.insert(LAST_PURGED, encode("last purged log id", &id)?)?,
        None => log_meta.remove(LAST_PURGED)?,
    };
    log_meta.flush()?;
    Ok(())
}

/// Remove what earlier builds kept beside the snapshot (see the module's
/// note): [`rebuild`] no longer reads it, and it would only go stale.
fn remove_legacy_keys(machine: &sled::Tree) -> Result<(), StoreError> {
    let mut batch = sled::Batch::default();
    let mut any = false;
    for key in LEGACY_KEYS {
        if machine.contains_key(key)? {
            batch.remove(key);
            any = true;
        }
    }
    for k in machine.scan_prefix([LEGACY_STICK]).keys() {
        batch.remove(k?);
        any = true;
    }
    if any {
        machine.apply_batch(batch)?;
    }
    Ok(())
}

impl Opened {
    /// The replicated state as rebuilt on open; `None` on a fresh data
    /// directory, or while no command has been applied and no snapshot
    /// installed (the node then starts from its own file).
    pub fn state(&self) -> Option<&ClusterState> {
        self.state.as_ref()
    }

    /// [`Opened::state`], taken out (the node starts its runtime from it).
    pub fn take_state(&mut self) -> Option<ClusterState> {
        self.state.take()
    }

    /// The index of the last log entry the rebuilt state reflects.
    pub fn applied_index(&self) -> Option<u64> {
        self.meta.applied.map(|id| id.index)
    }

    /// The node has been part of a cluster: a vote, a log entry or an
    /// applied membership is stored. A restarted node then just starts;
    /// it neither initializes a cluster nor joins one.
    pub fn has_data(&self) -> bool {
        self.has_data
    }

    /// Whether the membership this directory last applied has `node` as a
    /// voter with this directory's incarnation: a member restarting, which
    /// neither initializes nor joins.
    pub fn is_voter(&self, node: NodeId) -> bool {
        let membership = self.meta.membership.membership();
        membership.voter_ids().any(|v| v == node)
            && membership
                .get_node(&node)
                .is_some_and(|n| n.incarnation == self.incarnation)
    }

    /// This data directory's incarnation (see [`incarnation`]).
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The log store and the state machine for `openraft::Raft::new`. The
    /// state machine drives `host`; it does not install the persisted
    /// state in it (the node did that before Raft starts).
    pub fn into_parts(self, host: Arc<dyn StateHost>) -> (LogStore, StateMachine) {
        let (mark, marked) = tokio::sync::watch::channel(SnapshotMark {
            upto: self.snapshot,
        });
        let log = LogStore::new(self.db.clone(), self.log, self.log_meta, marked);
        let machine = StateMachine::new(self.db, self.machine, self.meta, host, Arc::new(mark));
        (log, machine)
    }
}
