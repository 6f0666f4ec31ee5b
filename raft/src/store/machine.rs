//! The state machine on sled: it hands committed commands to the node's
//! [`StateHost`], records how far it applied after every batch, and
//! builds, stores and installs snapshots of the whole `ClusterState`.
//!
//! The state itself is written only in snapshots: the store rebuilds it on
//! open from the current snapshot and the log after it (see the store's
//! module note). Each batch writes its last log id without waiting for the
//! disk; two rare kinds of batch are flushed, because they are read before
//! Raft starts: a membership change (is this node a voter?) and the first
//! command (does it hold replicated state?).

use super::{
    decode_snapshot, encode, MachineMeta, MarkSender, StoreError, APPLIED, FRESH, SNAPSHOT_DATA,
    SNAPSHOT_META,
};
use crate::types::{NodeInfo, Reply, StateHost, TypeConfig};
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
    /// Tells the log store how far the snapshot on disk reaches.
    mark: MarkSender,
}

/// Record that the snapshot on disk now reaches `upto` (the later of
/// what it reached and `upto`: a slow build may store an older one).
fn mark_stored(mark: &MarkSender, upto: Option<LogId<NodeId>>) {
    mark.send_modify(|m| m.upto = m.upto.max(upto));
}

impl StateMachine {
    pub(super) fn new(
        db: sled::Db,
        tree: sled::Tree,
        meta: MachineMeta,
        host: Arc<dyn StateHost>,
        mark: MarkSender,
    ) -> StateMachine {
        let seeded = Arc::new(AtomicBool::new(!meta.fresh));
        StateMachine {
            db,
            tree,
            meta,
            host,
            seeded,
            mark,
        }
    }

    /// The machine's tree (tests look at what is stored).
    #[cfg(test)]
    pub(super) fn tree(&self) -> &sled::Tree {
        &self.tree
    }

    /// True once a command was applied or a snapshot installed: the node
    /// holds replicated state, not its own file. `cluster init` reads it
    /// to tell a cluster whose seed never committed from a seeded one.
    pub fn seeded(&self) -> Arc<AtomicBool> {
        self.seeded.clone()
    }

    /// Write the applied id and the fresh flag in one batch. Not flushed:
    /// the next flush of the log (or of a snapshot) carries it to disk;
    /// see the module's note.
    fn persist(&self) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        if let Some(applied) = &self.meta.applied {
            batch.insert(APPLIED, encode("last applied log id", applied)?);
        }
        batch.insert(FRESH, encode("fresh flag", &self.meta.fresh)?);
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// Store a received snapshot as the current one, with its applied id,
    /// in one batch; flush. The state is rebuilt from it on open.
    async fn persist_snapshot(&self, meta: &Meta, data: &[u8]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        match &meta.last_log_id {
            Some(id) => batch.insert(APPLIED, encode("last applied log id", id)?),
            None => batch.remove(APPLIED),
        }
        batch.insert(FRESH, encode("fresh flag", &false)?);
        batch.insert(SNAPSHOT_META, encode("snapshot meta", meta)?);
        batch.insert(SNAPSHOT_DATA, data);
        self.tree.apply_batch(batch)?;
        self.db.flush_async().await?;
        mark_stored(&self.mark, meta.last_log_id);
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

    /// Hands each command to the host in log order, then records the
    /// batch's last log id once.
    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<Reply>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries = entries.into_iter();
        let mut replies = Vec::with_capacity(entries.size_hint().0);
        let mut last = None;
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
        let write = async {
            self.persist()?;
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
            mark: self.mark.clone(),
            last_log_id: self.meta.applied,
            membership: self.meta.membership.clone(),
            state,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    /// Decodes the state (size-limited), stores it as the current snapshot
    /// (with its applied id), and only then hands it to the host: a
    /// snapshot that is refused changes nothing.
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
        self.persist_snapshot(meta, &data).await.map_err(fail)?;
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
    mark: MarkSender,
    last_log_id: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, NodeInfo>,
    state: ClusterState,
}

impl SnapshotBuilder {
    /// Encode the captured state and store it as the current snapshot,
    /// on a blocking thread: at a million stick entries encoding and
    /// writing take seconds, which on the node's async thread held up
    /// Raft and, with `nbthread 1`, traffic.
    async fn build(&mut self) -> Result<Snapshot<TypeConfig>, StoreError> {
        let started = std::time::Instant::now();
        let state = std::mem::take(&mut self.state);
        let (db, tree) = (self.db.clone(), self.tree.clone());
        let (last_log_id, membership) = (self.last_log_id, self.membership.clone());
        let stored = tokio::task::spawn_blocking(move || {
            store_snapshot(&db, &tree, &state, last_log_id, membership)
        })
        .await;
        let (meta, data) = match stored {
            Ok(stored) => stored?,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => return Err(StoreError::Interrupted("building a snapshot")),
        };
        let encoded = started.elapsed();
        self.db.flush_async().await?;
        mark_stored(&self.mark, last_log_id);
        // Operators see what a snapshot costs (a large stick table makes
        // it seconds of CPU and disk).
        tracing::info!(
            "built a snapshot of the cluster state up to log index {}: {} bytes, encoded and written in {:.2} s, on disk after {:.2} s",
            last_log_id.map_or(0, |id| id.index),
            data.len(),
            encoded.as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

/// Encode `state` as the snapshot up to `last_log_id` and store it as the
/// current one, unless the stored one reaches further (a snapshot
/// installed from the leader while this one was being built may be
/// newer). Not flushed. Returns its meta and data.
fn store_snapshot(
    db: &sled::Db,
    tree: &sled::Tree,
    state: &ClusterState,
    last_log_id: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, NodeInfo>,
) -> Result<(Meta, Vec<u8>), StoreError> {
    let data = encode("snapshot data", state)?;
    let snapshot_id = match &last_log_id {
        Some(id) => format!("{}-{}-{}", id.leader_id, id.index, db.generate_id()?),
        None => format!("none-{}", db.generate_id()?),
    };
    let meta = Meta {
        last_log_id,
        last_membership: membership,
        snapshot_id,
    };
    let meta_bytes = encode("snapshot meta", &meta)?;
    tree.transaction(|t| {
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
    Ok((meta, data))
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<TypeConfig>> {
        let subject = ErrorSubject::Snapshot(None);
        self.build()
            .await
            .map_err(|e| e.storage(subject, ErrorVerb::Write))
    }
}
