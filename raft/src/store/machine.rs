//! The state machine on sled: it hands committed commands to the node's
//! [`StateHost`], persists what they changed after every batch (the small
//! part of the state whole, stick-table entries one by one), and builds,
//! stores and installs snapshots of the whole `ClusterState`.
//!
//! Applied state is written without waiting for the disk: the log already
//! holds every applied entry durably, so a crash can only leave the
//! machine at an earlier applied id, whose state was written with it in
//! one atomic batch, and openraft applies the log from there again at
//! start-up (or as the commit index comes back). The log is purged only up
//! to a snapshot, and building or installing a snapshot flushes, so the
//! entries after what the disk holds are still in the log. This takes one
//! of the two fsyncs per Raft entry off every node. Two rare kinds of
//! batch are still flushed, because they are read from disk before Raft
//! starts: a membership change (is this node a voter?) and the first
//! command (does it hold replicated state?).

use super::{
    decode_snapshot, encode, remove_entries, stick_key, write_delta, MachineMeta, StoreError,
    APPLIED, FRESH, MEMBERSHIP, SNAPSHOT_DATA, SNAPSHOT_META, STATE,
};
use crate::types::{Changes, NodeInfo, Reply, StateHost, TypeConfig};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftSnapshotBuilder,
    SnapshotMeta, StorageError, StoredMembership,
};
use shoal_proto::command::NodeId;
use shoal_proto::state::ClusterState;
use sled::transaction::ConflictableTransactionError;
use std::io::Cursor;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

type StorageResult<T> = Result<T, StorageError<NodeId>>;
type Meta = SnapshotMeta<NodeId, NodeInfo>;

/// The Raft state machine. The live state lives in the host; this keeps
/// the last applied log id, membership and fresh flag, and the disk copy.
pub struct StateMachine {
    db: sled::Db,
    tree: sled::Tree,
    meta: MachineMeta,
    host: Arc<dyn StateHost>,
    /// `!meta.fresh`, readable by the cluster after Raft took the machine.
    seeded: Arc<AtomicBool>,
}

impl StateMachine {
    pub(super) fn new(
        db: sled::Db,
        tree: sled::Tree,
        meta: MachineMeta,
        host: Arc<dyn StateHost>,
    ) -> StateMachine {
        let seeded = Arc::new(AtomicBool::new(!meta.fresh));
        StateMachine {
            db,
            tree,
            meta,
            host,
            seeded,
        }
    }

    /// True once a command was applied or a snapshot installed: the node
    /// holds replicated state, not its own file. `cluster init` reads it
    /// to tell a cluster whose seed never committed from a seeded one.
    pub fn seeded(&self) -> Arc<AtomicBool> {
        self.seeded.clone()
    }

    /// Write the applied id, membership, fresh flag and (when `changes`
    /// are given) the state without entries and the changed stick entries
    /// in one atomic batch. Not flushed: the next flush of the log (or of
    /// a snapshot) carries it to disk; see the module's note.
    fn persist(&self, changes: Option<Changes>) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        if let Some(applied) = &self.meta.applied {
            batch.insert(APPLIED, encode("last applied log id", applied)?);
        }
        batch.insert(
            MEMBERSHIP,
            encode("last applied membership", &self.meta.membership)?,
        );
        batch.insert(FRESH, encode("fresh flag", &self.meta.fresh)?);
        if let Some(changes) = changes {
            batch.insert(STATE, encode("state", &changes.core)?);
            for (table, delta) in &changes.tables {
                write_delta(&self.tree, table, delta, &mut batch)?;
            }
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// Store a received snapshot as the current one and as the persisted
    /// state, with its applied id and membership, in one batch; flush.
    async fn persist_snapshot(
        &self,
        meta: &Meta,
        data: &[u8],
        state: &ClusterState,
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        match &meta.last_log_id {
            Some(id) => batch.insert(APPLIED, encode("last applied log id", id)?),
            None => batch.remove(APPLIED),
        }
        batch.insert(
            MEMBERSHIP,
            encode("last applied membership", &meta.last_membership)?,
        );
        batch.insert(FRESH, encode("fresh flag", &false)?);
        batch.insert(STATE, encode("state", &state.without_entries())?);
        remove_entries(&self.tree, None, &mut batch)?;
        for (name, table) in state.tables() {
            for (key, entry) in table.entries() {
                batch.insert(stick_key(name, key), encode("stick entry", entry)?);
            }
        }
        batch.insert(SNAPSHOT_META, encode("snapshot meta", meta)?);
        batch.insert(SNAPSHOT_DATA, data);
        self.tree.apply_batch(batch)?;
        self.db.flush_async().await?;
        Ok(())
    }

    /// The stored snapshot, read consistently (meta and data together).
    fn current_snapshot(&self) -> Result<Option<Snapshot<TypeConfig>>, StoreError> {
        let (meta, data) = self.tree.transaction(|t| {
            Ok::<_, ConflictableTransactionError<StoreError>>((
                t.get(SNAPSHOT_META)?,
                t.get(SNAPSHOT_DATA)?,
            ))
        })?;
        let (Some(meta), Some(data)) = (meta, data) else {
            return Ok(None);
        };
        Ok(Some(Snapshot {
            meta: super::decode("snapshot meta", &meta)?,
            snapshot: Box::new(Cursor::new(data.to_vec())),
        }))
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> StorageResult<(Option<LogId<NodeId>>, StoredMembership<NodeId, NodeInfo>)> {
        Ok((self.meta.applied, self.meta.membership.clone()))
    }

    /// Hands each command to the host in log order, then persists the
    /// batch's outcome once (the state only when a command was applied:
    /// blank and membership entries leave it as it was).
    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<Reply>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries = entries.into_iter();
        let mut replies = Vec::with_capacity(entries.size_hint().0);
        let mut last = None;
        let mut commands = false;
        // A new membership and the first command (the end of `fresh`) are
        // read from disk before Raft starts (is this node a voter, does it
        // hold replicated state): those rare batches are flushed.
        let mut flush = false;
        for entry in entries {
            last = Some(entry.log_id);
            let reply = match entry.payload {
                EntryPayload::Blank => Reply::default(),
                EntryPayload::Normal(command) => {
                    let refused = self.host.apply(&command, self.meta.fresh).err();
                    flush |= self.meta.fresh;
                    self.meta.fresh = false;
                    self.seeded.store(true, Ordering::Release);
                    commands = true;
                    Reply {
                        refused: refused.map(|r| r.to_string()),
                    }
                }
                EntryPayload::Membership(membership) => {
                    flush = true;
                    self.meta.membership = StoredMembership::new(Some(entry.log_id), membership);
                    Reply::default()
                }
            };
            replies.push(reply);
        }
        let Some(last) = last else {
            return Ok(replies);
        };
        self.meta.applied = Some(last);
        let changes = commands.then(|| self.host.take_changes());
        let write = async {
            self.persist(changes)?;
            if flush {
                self.db.flush_async().await?;
            }
            Ok::<_, StoreError>(())
        };
        write
            .await
            .map_err(|e| e.storage(ErrorSubject::Apply(last), ErrorVerb::Write))?;
        Ok(replies)
    }

    /// Captures the applied id, membership and state now, so that the
    /// build (which openraft runs in another task, beside later applies)
    /// sees one consistent point of the log.
    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        // While fresh, the host still holds the node's own file, not the
        // replicated state; at this point of the log that is the default.
        let state = match self.meta.fresh {
            true => ClusterState::default(),
            false => self.host.export(),
        };
        SnapshotBuilder {
            db: self.db.clone(),
            tree: self.tree.clone(),
            last_log_id: self.meta.applied,
            membership: self.meta.membership.clone(),
            state,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    /// Decodes the state (size-limited), persists it as the new state and
    /// current snapshot, and only then hands it to the host: a snapshot
    /// that is refused changes nothing.
    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StorageResult<()> {
        let data = snapshot.into_inner();
        let fail = |e: StoreError| {
            e.storage(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Write,
            )
        };
        let state = decode_snapshot(&data).map_err(fail)?;
        self.persist_snapshot(meta, &data, &state)
            .await
            .map_err(fail)?;
        self.meta = MachineMeta {
            applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            fresh: false,
        };
        self.host.install(state);
        self.seeded.store(true, Ordering::Release);
        // Operators (and the cluster tests) see that a node caught up from
        // a snapshot rather than from the log.
        tracing::info!(
            "installed a snapshot of the cluster state up to log index {}",
            meta.last_log_id.map_or(0, |id| id.index)
        );
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        self.current_snapshot()
            .map_err(|e| e.storage(ErrorSubject::Snapshot(None), ErrorVerb::Read))
    }
}

/// Builds a snapshot of the state as it was when openraft asked for the
/// builder, and stores it as the current snapshot.
pub struct SnapshotBuilder {
    db: sled::Db,
    tree: sled::Tree,
    last_log_id: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, NodeInfo>,
    state: ClusterState,
}

impl SnapshotBuilder {
    async fn build(&mut self) -> Result<Snapshot<TypeConfig>, StoreError> {
        let data = encode("snapshot data", &self.state)?;
        let snapshot_id = match &self.last_log_id {
            Some(id) => format!("{}-{}-{}", id.leader_id, id.index, self.db.generate_id()?),
            None => format!("none-{}", self.db.generate_id()?),
        };
        let meta = Meta {
            last_log_id: self.last_log_id,
            last_membership: self.membership.clone(),
            snapshot_id,
        };
        let meta_bytes = encode("snapshot meta", &meta)?;
        // Keep whichever snapshot reaches further: a snapshot installed
        // from the leader while this one was being built may be newer.
        let last_log_id = self.last_log_id;
        self.tree.transaction(|t| {
            let current = t.get(SNAPSHOT_META)?;
            if let Some(current) = current {
                let current: Meta = super::decode("snapshot meta", &current)
                    .map_err(ConflictableTransactionError::Abort)?;
                if current.last_log_id > last_log_id {
                    return Ok(());
                }
            }
            t.insert(SNAPSHOT_META, meta_bytes.as_slice())?;
            t.insert(SNAPSHOT_DATA, data.as_slice())?;
            Ok(())
        })?;
        self.db.flush_async().await?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<TypeConfig>> {
        let subject = ErrorSubject::Snapshot(None);
        self.build()
            .await
            .map_err(|e| e.storage(subject, ErrorVerb::Write))
    }
}
