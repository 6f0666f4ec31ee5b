//! What nodes ask each other besides Raft's own RPCs: a follower forwards
//! writes and membership requests to the leader, and `cluster status` asks
//! every member how far it is.
//!
//! Compatibility rule: these travel between nodes of possibly different
//! versions during a rolling upgrade. Add variants and fields only at the
//! end; never reorder or reuse them.

use crate::types::{NodeInfo, Reply};
use serde::{Deserialize, Serialize};
use shoal_proto::command::{Command, NodeId};

/// An application request from one node to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppRequest {
    /// Propose a command (only the leader accepts it).
    Write(Command),
    /// Add `node` as a learner, wait until it caught up, then make it a
    /// voter (only the leader accepts it). `info` carries the joining
    /// node's data-directory incarnation.
    Join { node: NodeId, info: NodeInfo },
    /// Take `node` out of the membership (only the leader accepts it).
    Remove { node: NodeId },
    /// How far the asked node is.
    Status,
    /// The leader confirms it still leads (a heartbeat round to a
    /// majority) and answers the index a linearizable read must wait for.
    ReadIndex,
}

/// The answer to an [`AppRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppResponse {
    /// The command is committed at `index`; `reply` says whether it took
    /// effect when applied.
    Written { index: u64, reply: Reply },
    /// The membership request is done.
    Done,
    /// The asked node's view.
    Status(PeerStatus),
    /// Reads that apply up to `index` see every write committed before.
    ReadIndex { index: u64 },
    /// The request failed.
    Failed(AppError),
}

/// A node's own view of the cluster, as `cluster status` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    pub node: NodeId,
    pub term: u64,
    pub leader: Option<NodeId>,
    /// Highest log index known committed.
    pub committed: Option<u64>,
    /// Highest log index applied to its state.
    pub applied: Option<u64>,
    /// The hash of its replicated state (`ClusterState::hash`).
    pub state_hash: u64,
}

/// Why an application request failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    /// The asked node is not the leader; `leader` is who it believes is.
    #[error("not the leader (leader: {})", leader.map_or("unknown".to_string(), |l| l.to_string()))]
    NotLeader { leader: Option<NodeId> },
    /// No leader can commit: the majority of voters is unreachable.
    #[error("quorum lost: {0}")]
    NoQuorum(String),
    /// The request was refused (a membership change that is not allowed).
    #[error("{0}")]
    Refused(String),
    /// Anything else, with the reason.
    #[error("{0}")]
    Failed(String),
}
