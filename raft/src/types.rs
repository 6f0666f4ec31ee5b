//! The openraft type configuration and the few types every part of the
//! crate shares: what a log entry carries, what applying one answers, what
//! the membership knows of a node, and the hook through which committed
//! commands reach the node's live state.

use serde::{Deserialize, Serialize};
use shoal_proto::command::{Command, NodeId};
use shoal_proto::state::{ClusterState, Refusal};
use std::io::Cursor;

/// What the membership records of a node: where its peers reach it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Its QUIC endpoint (`--cluster-addr`).
    pub cluster: String,
    /// Its admin HTTP API (`--admin`), for `shoal cluster status`.
    pub admin: String,
    /// Its data directory's incarnation when it joined: a node that comes
    /// back with another one lost its data and is not that member.
    pub incarnation: u64,
}

impl std::fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cluster {} admin {}", self.cluster, self.admin)
    }
}

/// The answer to one applied log entry: `Some(reason)` when the command was
/// refused at apply time (the state at that point in the log did not allow
/// it; every node refuses it the same way), `None` when it took effect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub refused: Option<String>,
}

openraft::declare_raft_types!(
    /// Shoal's openraft types: log entries carry [`Command`]s.
    pub TypeConfig:
        D = Command,
        R = Reply,
        NodeId = NodeId,
        Node = NodeInfo,
        SnapshotData = Cursor<Vec<u8>>,
);

/// The shorthand openraft handle.
pub type Raft = openraft::Raft<TypeConfig>;

/// The node's live replicated state, as the state machine drives it. The
/// node's runtime implements it: the state machine persists what it is
/// told and calls these in log order; the host keeps the state in memory,
/// carries out each command's effects and rebuilds its routing table.
pub trait StateHost: Send + Sync + 'static {
    /// Apply one committed command (validate, then apply: a refusal at this
    /// point is deterministic, the same on every node, and changes nothing).
    /// `fresh`: nothing has been applied from the log or a snapshot yet, so
    /// the host first drops whatever state it started with (a node's own
    /// `-f` file before it joined) and applies to `ClusterState::default()`,
    /// in one step, as every other node did.
    fn apply(&self, command: &Command, fresh: bool) -> Result<(), Refusal>;
    /// A copy of the whole live state (to snapshot).
    fn export(&self) -> ClusterState;
    /// Replace the whole live state (a snapshot installed from the leader).
    fn install(&self, state: ClusterState);
    /// The hash of the live state, to compare nodes.
    fn state_hash(&self) -> u64 {
        self.export().hash()
    }
}

/// Most bytes of log entries in one AppendEntries (more than one entry is
/// split into several calls to fit). openraft 0.9 gives an append the
/// heartbeat interval to be answered, and the follower answers after
/// writing and fsyncing what it got: a follower behind by many stick
/// batches was sent all of them (up to 300 entries of up to 8,192 writes)
/// in one call that could never be answered in time, and every retry
/// sent the same, so replication stopped. The log store reads no more
/// than this for one call ([`crate::store::LogStore`]), so that a follower
/// far behind costs the leader one budget's worth of reads and encoding
/// per call, not its whole backlog.
pub(crate) const APPEND_BUDGET: usize = 1 << 20;
