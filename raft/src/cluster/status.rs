//! `shoal cluster status` and the cluster's metrics: this node's view,
//! completed by asking every member how far it is.

use super::Cluster;
use crate::messages::{AppRequest, AppResponse, PeerStatus};
use serde::Serialize;
use shoal_proto::command::NodeId;
use std::time::Duration;

/// How long `cluster status` waits for a member before it reports it
/// unreachable.
const STATUS_TIMEOUT: Duration = Duration::from_secs(1);

/// A leader that heard from a majority this recently still has quorum.
pub(super) const QUORUM_FRESH_MS: u64 = 1500;

/// This node's Raft figures, cheap to read (no network): for `/metrics`.
#[derive(Debug, Clone, Serialize)]
pub struct Metrics {
    pub node: NodeId,
    pub term: u64,
    pub leader: Option<NodeId>,
    /// Highest log index this node knows committed.
    pub committed: Option<u64>,
    /// Highest log index applied to its state.
    pub applied: Option<u64>,
    /// Whether a leader that reaches a majority is known.
    pub quorum: bool,
}

/// One member as `cluster status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Member {
    pub id: NodeId,
    pub cluster: String,
    pub admin: String,
    /// `voter` or `learner`.
    pub role: &'static str,
    /// It answered within a second.
    pub reachable: bool,
    /// Drained by an operator (filled in by the node from its state).
    pub drained: bool,
    pub committed: Option<u64>,
    pub applied: Option<u64>,
    /// Entries committed on the cluster that it has not applied yet.
    pub lag: Option<u64>,
    /// Its state hash (hex), equal on members that applied the same log.
    pub state_hash: Option<String>,
}

/// The whole picture: what `GET /v1/cluster` answers.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    /// The node that answered.
    pub node: NodeId,
    pub leader: Option<NodeId>,
    pub term: u64,
    pub quorum: bool,
    /// Highest index known committed in the cluster.
    pub committed: Option<u64>,
    pub members: Vec<Member>,
}

impl Cluster {
    /// This node's figures.
    pub fn metrics(&self) -> Metrics {
        let m = self.raft.metrics().borrow().clone();
        let leader_here = m.current_leader == Some(self.node);
        let quorum = match m.current_leader {
            None => false,
            Some(_) if leader_here => m
                .millis_since_quorum_ack
                .is_some_and(|ms| ms < QUORUM_FRESH_MS),
            Some(_) => true,
        };
        Metrics {
            node: self.node,
            term: m.current_term,
            leader: m.current_leader,
            committed: self.committed(&m),
            applied: m.last_applied.map(|l| l.index),
            quorum,
        }
    }

    /// The commit index: on the leader, the highest index a majority of
    /// voters stores; elsewhere what this node applied (a follower learns
    /// the commit index with the next entries, so that is what it knows).
    fn committed(&self, m: &openraft::RaftMetrics<NodeId, crate::NodeInfo>) -> Option<u64> {
        let Some(replication) = &m.replication else {
            return m.last_applied.map(|l| l.index);
        };
        let membership = m.membership_config.membership();
        let mut matched: Vec<u64> = membership
            .voter_ids()
            .map(|v| {
                if v == self.node {
                    m.last_log_index.unwrap_or(0)
                } else {
                    replication
                        .get(&v)
                        .and_then(|l| l.as_ref())
                        .map_or(0, |l| l.index)
                }
            })
            .collect();
        if matched.is_empty() {
            return None;
        }
        matched.sort_unstable_by(|a, b| b.cmp(a));
        // The majority-th highest match.
        matched.get(matched.len() / 2).copied()
    }

    /// What this node tells others about itself.
    pub(crate) fn peer_status(&self) -> PeerStatus {
        let m = self.metrics();
        PeerStatus {
            node: self.node,
            term: m.term,
            leader: m.leader,
            committed: m.committed,
            applied: m.applied,
            state_hash: self.host.state_hash(),
        }
    }

    /// Ask every member (at once, each within a second) and put the
    /// answers together.
    pub async fn status(&self) -> ClusterStatus {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership().clone();
        let voters: std::collections::BTreeSet<NodeId> = membership.voter_ids().collect();
        let asks = membership.nodes().map(|(id, info)| {
            let (id, info) = (*id, info.clone());
            async move {
                let answer = if id == self.node {
                    Some(self.peer_status())
                } else {
                    match self
                        .call(Some(id), &info.cluster, AppRequest::Status, STATUS_TIMEOUT)
                        .await
                    {
                        Ok(AppResponse::Status(s)) => Some(s),
                        _ => None,
                    }
                };
                (id, info, answer)
            }
        });
        // Together: each call has its own timeout, so the whole takes
        // about one timeout, not one per member.
        let answers = futures::future::join_all(asks).await;
        let mine = self.metrics();
        let committed = answers
            .iter()
            .filter_map(|(_, _, a)| a.as_ref().and_then(|a| a.committed))
            .max()
            .or(mine.committed);
        let members = answers
            .into_iter()
            .map(|(id, info, answer)| Member {
                id,
                cluster: info.cluster,
                admin: info.admin,
                role: if voters.contains(&id) {
                    "voter"
                } else {
                    "learner"
                },
                reachable: answer.is_some(),
                drained: false,
                committed: answer.as_ref().and_then(|a| a.committed),
                applied: answer.as_ref().and_then(|a| a.applied),
                lag: answer
                    .as_ref()
                    .and_then(|a| committed.map(|c| c.saturating_sub(a.applied.unwrap_or(0)))),
                state_hash: answer.map(|a| format!("{:016x}", a.state_hash)),
            })
            .collect();
        ClusterStatus {
            node: self.node,
            leader: mine.leader,
            term: mine.term,
            quorum: mine.quorum,
            committed,
            members,
        }
    }
}
