//! The Raft log on sled: entries by index, the vote, the last purged and
//! the last committed log ids. openraft serialises every write to it.

use super::{decode, encode, read, SnapshotMark, StoreError, COMMITTED, LAST_PURGED, VOTE};
use crate::types::{TypeConfig, APPEND_BUDGET};
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{Entry, ErrorSubject, ErrorVerb, LogId, OptionalSend, StorageError, Vote};
use shoal_proto::command::NodeId;
use sled::transaction::ConflictableTransactionError;
use sled::Transactional;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

/// The Raft log. Cloning it is cheap and shares the database: the clone
/// serves as openraft's log reader for replication tasks.
#[derive(Clone)]
pub struct LogStore {
    db: sled::Db,
    /// Entries, keyed by index (big-endian, so keys sort by index).
    log: sled::Tree,
    /// Vote, last purged and committed log ids.
    meta: sled::Tree,
    /// How far the snapshot on disk reaches (see [`SnapshotMark`]).
    snapshot: tokio::sync::watch::Receiver<SnapshotMark>,
}

/// The key of the entry at `index`.
pub(super) fn key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

type StorageResult<T> = Result<T, StorageError<NodeId>>;

impl LogStore {
    pub(super) fn new(
        db: sled::Db,
        log: sled::Tree,
        meta: sled::Tree,
        snapshot: tokio::sync::watch::Receiver<SnapshotMark>,
    ) -> LogStore {
        LogStore {
            db,
            log,
            meta,
            snapshot,
        }
    }

    /// The first index reads may return: the one after the last purged.
    fn visible_from(&self) -> Result<u64, StoreError> {
        Ok(self.last_purged()?.map_or(0, |p| p.index + 1))
    }

    /// Wait until everything written so far is on disk.
    async fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_async().await?;
        Ok(())
    }

    fn last_purged(&self) -> Result<Option<LogId<NodeId>>, StoreError> {
        read(&self.meta, LAST_PURGED, "last purged log id")
    }

    fn last_entry_id(&self) -> Result<Option<LogId<NodeId>>, StoreError> {
        match self.log.last()? {
            Some((_, value)) => Ok(Some(
                decode::<Entry<TypeConfig>>("log entry", &value)?.log_id,
            )),
            None => Ok(None),
        }
    }

    fn entries<RB: RangeBounds<u64>>(
        &self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StoreError> {
        if is_empty_range(&range) {
            return Ok(Vec::new());
        }
        // Purged entries may still be stored (see `purge_upto`): never
        // read them.
        let from = self.visible_from()?;
        let start = match range.start_bound() {
            Bound::Included(&i) => i.max(from),
            Bound::Excluded(&i) => (i + 1).max(from),
            Bound::Unbounded => from,
        };
        let range = (Bound::Included(start), range.end_bound().cloned());
        if is_empty_range(&range) {
            return Ok(Vec::new());
        }
        let end = range.1.map(key);
        self.log
            .range((Bound::Included(key(start)), end))
            .map(|item| {
                let (_, value) = item?;
                decode("log entry", &value)
            })
            .collect()
    }

    /// The entries of `range` in order, as many as fit in `budget` bytes
    /// as stored (at least one: a larger entry goes alone).
    fn entries_within(
        &self,
        range: std::ops::Range<u64>,
        budget: usize,
    ) -> Result<Vec<Entry<TypeConfig>>, StoreError> {
        let mut entries = Vec::new();
        let mut bytes = 0;
        let start = range.start.max(self.visible_from()?);
        if start >= range.end {
            return Ok(entries);
        }
        for item in self.log.range(key(start)..key(range.end)) {
            let (_, value) = item?;
            bytes += value.len();
            if bytes > budget && !entries.is_empty() {
                break;
            }
            entries.push(decode("log entry", &value)?);
        }
        Ok(entries)
    }

    fn append_entries(
        &self,
        entries: impl IntoIterator<Item = Entry<TypeConfig>>,
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for entry in entries {
            batch.insert(&key(entry.log_id.index), encode("log entry", &entry)?);
        }
        self.log.apply_batch(batch)?;
        Ok(())
    }

    /// Remove the entries from `index` on.
    fn truncate_from(&self, index: u64) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for item in self.log.range(key(index)..) {
            let (k, _) = item?;
            batch.remove(k);
        }
        self.log.apply_batch(batch)?;
        Ok(())
    }

    /// Record `upto` as the last purged id (reads stop returning the
    /// entries up to it at once) and remove the stored entries up to it,
    /// but not past the snapshot on disk, in one transaction. openraft
    /// purges as soon as it hands a leader's snapshot to the state
    /// machine, before that snapshot is stored: a node killed then must
    /// still have the entries after its stored snapshot to rebuild its
    /// state. What stays is removed by a later purge.
    fn purge_upto(&self, upto: LogId<NodeId>) -> Result<(), StoreError> {
        let purged = encode("last purged log id", &upto)?;
        let stored = self.snapshot.borrow().upto.map(|s| s.index);
        let Some(remove) = stored.map(|s| s.min(upto.index)) else {
            self.meta.insert(LAST_PURGED, purged)?;
            return Ok(());
        };
        let keys = self
            .log
            .range(..=key(remove))
            .keys()
            .collect::<Result<Vec<_>, _>>()?;
        (&self.log, &self.meta).transaction(|(log, meta)| {
            meta.insert(LAST_PURGED, purged.as_slice())?;
            for k in &keys {
                log.remove(k)?;
            }
            Ok::<_, ConflictableTransactionError<StoreError>>(())
        })?;
        Ok(())
    }
}

/// True when `range` holds no index (sled wants start <= end).
fn is_empty_range<RB: RangeBounds<u64>>(range: &RB) -> bool {
    let start = match range.start_bound() {
        Bound::Included(&i) => i,
        Bound::Excluded(&i) => match i.checked_add(1) {
            Some(i) => i,
            None => return true,
        },
        Bound::Unbounded => 0,
    };
    match range.end_bound() {
        Bound::Included(&end) => start > end,
        Bound::Excluded(&end) => start >= end,
        Bound::Unbounded => false,
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        self.entries(range)
            .map_err(|e| e.storage(ErrorSubject::Logs, ErrorVerb::Read))
    }

    /// What replication sends: the entries from `start` that fit in
    /// [`APPEND_BUDGET`] bytes (at least one entry).
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        // The request around the entries (vote, previous and committed
        // ids, lengths) takes a few dozen bytes of the budget.
        self.entries_within(start..end, APPEND_BUDGET - 4096)
            .map_err(|e| e.storage(ErrorSubject::Logs, ErrorVerb::Read))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let read = || -> Result<_, StoreError> {
            let last_purged_log_id = self.last_purged()?;
            // With every entry purged, the last log id is the last purged.
            let last_log_id = self.last_entry_id()?.max(last_purged_log_id);
            Ok(LogState {
                last_purged_log_id,
                last_log_id,
            })
        };
        read().map_err(|e| e.storage(ErrorSubject::Logs, ErrorVerb::Read))
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StorageResult<()> {
        let write = async {
            self.meta.insert(VOTE, encode("vote", vote)?)?;
            self.flush().await
        };
        write
            .await
            .map_err(|e| e.storage(ErrorSubject::Vote, ErrorVerb::Write))
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<NodeId>>> {
        read(&self.meta, VOTE, "vote").map_err(|e| e.storage(ErrorSubject::Vote, ErrorVerb::Read))
    }

    /// Stored without a flush: openraft tolerates losing it, and the next
    /// flushed write (a vote, an append, a purge) carries it to disk.
    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StorageResult<()> {
        let write = || -> Result<(), StoreError> {
            match committed {
                Some(id) => self
                    .meta
                    .insert(COMMITTED, encode("committed log id", &id)?)?,
                None => self.meta.remove(COMMITTED)?,
            };
            Ok(())
        };
        write().map_err(|e| e.storage(ErrorSubject::Store, ErrorVerb::Write))
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<NodeId>>> {
        read(&self.meta, COMMITTED, "committed log id")
            .map_err(|e| e.storage(ErrorSubject::Store, ErrorVerb::Read))
    }

    /// Writes the entries (readable at once), waits until sled has flushed
    /// them to disk, and only then reports them persisted to openraft.
    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        self.append_entries(entries)
            .map_err(|e| e.storage(ErrorSubject::Logs, ErrorVerb::Write))?;
        match self.flush().await {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(e.storage(ErrorSubject::Logs, ErrorVerb::Write))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        let write = async {
            self.truncate_from(log_id.index)?;
            self.flush().await
        };
        write
            .await
            .map_err(|e| e.storage(ErrorSubject::Log(log_id), ErrorVerb::Delete))
    }

    /// See [`LogStore::purge_upto`].
    async fn purge(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        let write = async {
            self.purge_upto(log_id)?;
            self.flush().await
        };
        write
            .await
            .map_err(|e| e.storage(ErrorSubject::Log(log_id), ErrorVerb::Delete))
    }
}
