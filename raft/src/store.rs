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
//! |            | `membership`          | the last applied `StoredMembership`           |
//! |            | `fresh`               | `bool`: no command applied nor snapshot installed yet (absent: true) |
//! |            | `state`               | the encoded `ClusterState` as of `applied`, without stick-table entries (absent while fresh) |
//! |            | 0x01, table name length (u32 BE), table name, key | one stick-table entry (`StickEntry`) as of `applied` |
//! |            | `snapshot_meta`       | the current snapshot's `SnapshotMeta`         |
//! |            | `snapshot_data`       | its data: the encoded `ClusterState`          |
//!
//! # Durability
//!
//! Nothing is reported done before it is on disk: a vote is flushed before
//! `save_vote` returns; appended entries are flushed before the
//! `LogFlushed` callback is called; truncate and purge are flushed before
//! they return; an installed or built snapshot is flushed before it is
//! reported. Each applied batch (applied id, membership, fresh flag and
//! state) is written as one atomic sled batch *without* a flush: its log
//! entries are on disk already, so a crash leaves the applied state at an
//! earlier point, whole, and openraft applies the log from there again
//! (see `machine`'s module note; sled also flushes by itself every
//! 500 ms). Stick-table entries are
//! stored one key each, in the same tree and the same batch: an applied
//! batch writes only the entries its commands changed (the small rest of
//! the state is rewritten whole), so persisting costs what the batch
//! changed, not the size of the tables. Start-up rebuilds the state from
//! `state` and the entries. Keys that belong together
//! are always written atomically (a sled batch or transaction), so a crash
//! leaves either the old or the new values, never a mix. `committed` is
//! written without a flush too: openraft may lose it (the next flush of
//! the log carries it anyway).
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

use crate::types::{NodeInfo, StateHost};
use openraft::{ErrorSubject, ErrorVerb, LogId, StorageError, StorageIOError, StoredMembership};
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
const MEMBERSHIP: &[u8] = b"membership";
const FRESH: &[u8] = b"fresh";
const STATE: &[u8] = b"state";
const SNAPSHOT_META: &[u8] = b"snapshot_meta";
const SNAPSHOT_DATA: &[u8] = b"snapshot_data";
/// The first byte of every stick-entry key of `machine` (the other keys
/// are ASCII words).
const STICK: u8 = 0x01;

/// The `machine` key of every entry of `table` (followed by the entry's key).
fn stick_prefix(table: &str) -> Vec<u8> {
    let len = u32::try_from(table.len()).unwrap_or(u32::MAX);
    let mut prefix = Vec::with_capacity(5 + table.len());
    prefix.push(STICK);
    prefix.extend_from_slice(&len.to_be_bytes());
    prefix.extend_from_slice(table.as_bytes());
    prefix
}

/// The `machine` key of one stick entry.
fn stick_key(table: &str, key: &str) -> Vec<u8> {
    let mut k = stick_prefix(table);
    k.extend_from_slice(key.as_bytes());
    k
}

/// The table name and entry key of a stick-entry key of `machine`.
fn parse_stick_key(k: &[u8]) -> Option<(&str, &str)> {
    let rest = k.strip_prefix(&[STICK])?;
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let table = std::str::from_utf8(rest.get(4..4 + len)?).ok()?;
    let key = std::str::from_utf8(rest.get(4 + len..)?).ok()?;
    Some((table, key))
}

/// Add to `batch` the removal of every stored stick entry (of `table`, or
/// of all tables).
fn remove_entries(
    tree: &sled::Tree,
    table: Option<&str>,
    batch: &mut sled::Batch,
) -> Result<(), StoreError> {
    let prefix = table.map_or_else(|| vec![STICK], stick_prefix);
    for k in tree.scan_prefix(prefix).keys() {
        batch.remove(k?);
    }
    Ok(())
}

/// Add to `batch` the writes of one table's delta.
fn write_delta(
    tree: &sled::Tree,
    table: &str,
    delta: &shoal_proto::state::TableDelta,
    batch: &mut sled::Batch,
) -> Result<(), StoreError> {
    if delta.reset {
        remove_entries(tree, Some(table), batch)?;
    }
    for (key, entry) in &delta.put {
        batch.insert(stick_key(table, key), encode("stick entry", entry)?);
    }
    for key in &delta.removed {
        batch.remove(stick_key(table, key));
    }
    Ok(())
}

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
    /// A stored stick-table entry whose key does not name a table and key.
    #[error("Raft store: a stored stick-table entry has a malformed key")]
    BadStickKey,
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

/// The state machine's metadata as last persisted.
#[derive(Debug, Clone, Default)]
struct MachineMeta {
    applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, NodeInfo>,
    fresh: bool,
}

impl MachineMeta {
    fn load(machine: &sled::Tree) -> Result<MachineMeta, StoreError> {
        Ok(MachineMeta {
            applied: read(machine, APPLIED, "last applied log id")?,
            membership: read(machine, MEMBERSHIP, "last applied membership")?.unwrap_or_default(),
            fresh: read(machine, FRESH, "fresh flag")?.unwrap_or(true),
        })
    }
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
    has_data: bool,
    incarnation: u64,
}

/// Open, or create, the Raft store under the node's data directory `dir`
/// (the database is `dir/raft.sled`; `dir` is created if missing). Fails if
/// another process has it open.
pub fn open(dir: &Path) -> Result<Opened, StoreError> {
    let path = dir.join(DB_NAME);
    let db = sled::Config::new()
        .path(&path)
        .open()
        .map_err(|source| StoreError::Open { path, source })?;
    let log = db.open_tree(LOG)?;
    let log_meta = db.open_tree(LOG_META)?;
    let machine = db.open_tree(MACHINE)?;
    let meta = MachineMeta::load(&machine)?;
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
        has_data,
        incarnation,
    })
}

impl Opened {
    /// The replicated state as last persisted by the state machine; `None`
    /// on a fresh data directory, or while no command has been applied
    /// and no snapshot installed (the node then starts from its own file).
    pub fn persisted_state(&self) -> Result<Option<ClusterState>, StoreError> {
        let Some(bytes) = self.machine.get(STATE)? else {
            return Ok(None);
        };
        let mut state = decode_snapshot(&bytes)?;
        // A `state` written whole, entries and all (before entries had
        // keys of their own): write the tables whole on the next batch.
        if state.tables().values().any(|t| !t.entries().is_empty()) {
            state.mark_tables_changed();
        }
        for item in self.machine.scan_prefix([STICK]) {
            let (k, v) = item?;
            let Some((table, key)) = parse_stick_key(&k) else {
                return Err(StoreError::BadStickKey);
            };
            let entry = decode("stick entry", &v)?;
            state.restore_entry(table, key.to_string(), entry);
        }
        Ok(Some(state))
    }

    /// [`Opened::persisted_state`] with the committed log entries after
    /// it applied again, as the node itself does when it starts (the state
    /// machine's writes are not flushed on their own, so a node killed
    /// may have applied a little more than its state on disk says: up to
    /// the last commit it had written down). With the index of the last
    /// entry it reflects. For reading a stopped node's directory (a
    /// backup from `--data-dir`).
    pub fn recovered_state(&self) -> Result<(Option<ClusterState>, Option<u64>), StoreError> {
        use openraft::{Entry, EntryPayload};
        let mut state = self.persisted_state()?;
        let mut applied = self.applied_index();
        let committed: Option<LogId<NodeId>> = read(&self.log_meta, COMMITTED, "committed log id")?;
        let Some(committed) = committed.filter(|c| Some(c.index) > applied) else {
            return Ok((state, applied));
        };
        let from = applied.map_or(0, |i| i + 1);
        for item in self.log.range(log::key(from)..=log::key(committed.index)) {
            let (_, value) = item?;
            let entry: Entry<crate::types::TypeConfig> = decode("log entry", &value)?;
            if let EntryPayload::Normal(command) = &entry.payload {
                // A refused command changes nothing, as when it was applied.
                let _ = state
                    .get_or_insert_with(ClusterState::default)
                    .execute(command);
            }
            applied = Some(entry.log_id.index);
        }
        Ok((state, applied))
    }

    /// The index of the last log entry the persisted state applied.
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
        let log = LogStore::new(self.db.clone(), self.log, self.log_meta);
        let machine = StateMachine::new(self.db, self.machine, self.meta, host);
        (log, machine)
    }
}
