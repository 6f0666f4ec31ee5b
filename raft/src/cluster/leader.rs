//! Reaching the leader: requests that only the leader can carry out
//! (writes, membership changes) go to it, from this node or over QUIC,
//! with bounded retries while an election runs; and the handler that
//! answers other nodes' requests.

use super::{Cluster, ClusterError, CATCH_UP_TIMEOUT, MEMBERSHIP_TIMEOUT, WRITE_DEADLINE};
use crate::messages::{AppError, AppRequest, AppResponse};
use openraft::error::{ClientWriteError, RaftError};
use openraft::ChangeMembers;
use shoal_proto::command::NodeId;
use std::collections::BTreeSet;
use std::sync::Weak;
use std::time::Duration;
use tokio::time::Instant;

/// How long a node waits for a leader to appear before it reports that
/// quorum is lost: a little over one election.
const LEADERLESS_GRACE: Duration = Duration::from_millis(1500);

impl Cluster {
    /// Carry out `request` on the leader; retry while leadership moves,
    /// until the request's deadline.
    pub(crate) async fn leader_call(
        &self,
        request: AppRequest,
    ) -> Result<AppResponse, ClusterError> {
        if !self.is_member() {
            return Err(ClusterError::NotInitialized);
        }
        let budget = match request {
            AppRequest::Write(_) | AppRequest::Status | AppRequest::ReadIndex => WRITE_DEADLINE,
            AppRequest::Join { .. } => super::JOIN_WORK + Duration::from_secs(5),
            // The membership lock, then the change.
            AppRequest::Remove { .. } => MEMBERSHIP_TIMEOUT * 2 + WRITE_DEADLINE,
        };
        let deadline = Instant::now() + budget;
        let mut backoff = Duration::from_millis(25);
        let mut leaderless_since: Option<Instant> = None;
        loop {
            let metrics = self.raft.metrics().borrow().clone();
            let why = match metrics.current_leader {
                Some(leader) if leader == self.node => {
                    leaderless_since = None;
                    match self.execute(request.clone(), deadline).await {
                        AppResponse::Failed(AppError::NotLeader { .. }) => {
                            "the leadership moved".to_string()
                        }
                        answer => return Ok(answer),
                    }
                }
                Some(leader) => {
                    leaderless_since = None;
                    let Some(info) = metrics.membership_config.membership().get_node(&leader)
                    else {
                        return Err(ClusterError::Failed(format!(
                            "the leader, node {leader}, has no address in the membership"
                        )));
                    };
                    let left = deadline.saturating_duration_since(Instant::now());
                    let call = self.call(Some(leader), &info.cluster, request.clone(), left);
                    // A dead leader does not answer; stop waiting for it
                    // as soon as this node learns of another leader (or of
                    // an election), rather than at the deadline.
                    let mut watch = self.raft.metrics();
                    let moved = watch.wait_for(|m| m.current_leader != Some(leader));
                    let write = matches!(request, AppRequest::Write(_));
                    tokio::select! {
                        answer = call => match answer {
                            Ok(AppResponse::Failed(AppError::NotLeader { .. })) => {
                                format!("node {leader} is no longer the leader")
                            }
                            Ok(answer) => return Ok(answer),
                            // Never connected: the write was not sent.
                            Err(e) if e.is_unreachable() || !write => {
                                format!("cannot reach the leader, node {leader}: {e}")
                            }
                            Err(e) => return Err(in_doubt(leader, &e.to_string())),
                        },
                        _ = moved => {
                            // A write may have reached the old leader's log
                            // and be committed by the next one: sending it
                            // again could apply it after a later write.
                            if write {
                                return Err(in_doubt(
                                    leader,
                                    "it stopped leading while the write was in flight",
                                ));
                            }
                            format!("node {leader} stopped leading while asked")
                        }
                    }
                }
                None => {
                    let since = *leaderless_since.get_or_insert_with(Instant::now);
                    let grace_end = since + LEADERLESS_GRACE;
                    // Wait for the election to end rather than poll.
                    let mut watch = self.raft.metrics();
                    let elected = watch.wait_for(|m| m.current_leader.is_some());
                    if tokio::time::timeout_at(grace_end.min(deadline), elected)
                        .await
                        .is_err()
                    {
                        return Err(ClusterError::NoQuorum(
                            "no leader: a majority of the voters cannot be reached".into(),
                        ));
                    }
                    continue;
                }
            };
            if Instant::now() + backoff >= deadline {
                return Err(ClusterError::NoQuorum(why));
            }
            tracing::debug!("retrying {}: {why}", request_name(&request));
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(400));
        }
    }

    /// Carry out a request on this node, which believes it leads, before
    /// `deadline` (a write; membership steps have their own bounds).
    pub(crate) async fn execute(&self, request: AppRequest, deadline: Instant) -> AppResponse {
        match request {
            AppRequest::Write(command) => {
                // A leader cut off from the majority knows it once its
                // acknowledgements are stale: refuse before the write
                // enters the log, rather than at the deadline.
                let stale = self.raft.metrics().borrow().millis_since_quorum_ack;
                if let Some(ms) = stale.filter(|&ms| ms > super::status::QUORUM_FRESH_MS) {
                    return AppResponse::Failed(AppError::NoQuorum(format!(
                        "this node leads, but no majority of the voters answered it for {:.1} s",
                        ms as f64 / 1000.0
                    )));
                }
                let write = tokio::time::timeout_at(deadline, self.raft.client_write(command));
                let mut watch = self.raft.metrics();
                let cut_off = watch.wait_for(|m| {
                    m.millis_since_quorum_ack
                        .is_some_and(|ms| ms > super::status::QUORUM_FRESH_MS)
                });
                tokio::select! {
                    written = write => match written {
                        Ok(Ok(resp)) => AppResponse::Written {
                            index: resp.log_id.index,
                            reply: resp.data,
                        },
                        Ok(Err(e)) => AppResponse::Failed(write_error(e)),
                        Err(_) => AppResponse::Failed(AppError::NoQuorum(format!(
                            "not committed within {} s: a majority of the voters cannot be \
                             reached; the change may or may not take effect: check, then retry",
                            WRITE_DEADLINE.as_secs()
                        ))),
                    },
                    // The write is in this node's log: a majority that
                    // comes back may still commit it.
                    _ = cut_off => AppResponse::Failed(AppError::NoQuorum(
                        "this node leads, but the majority of the voters stopped answering \
                         while the write was in flight; the change may or may not take \
                         effect: check, then retry"
                            .into(),
                    )),
                }
            }
            AppRequest::Join { node, info } => {
                let Some(_one_at_a_time) = self.membership_turn().await else {
                    return busy();
                };
                self.add_member(node, info).await
            }
            AppRequest::Remove { node } => {
                let Some(_one_at_a_time) = self.membership_turn().await else {
                    return busy();
                };
                self.remove_member(node).await
            }
            AppRequest::Status => AppResponse::Status(self.peer_status()),
            AppRequest::ReadIndex => {
                match tokio::time::timeout_at(deadline, self.raft.ensure_linearizable()).await {
                    Ok(Ok(index)) => AppResponse::ReadIndex {
                        index: index.map_or(0, |id| id.index),
                    },
                    Ok(Err(RaftError::APIError(
                        openraft::error::CheckIsLeaderError::ForwardToLeader(f),
                    ))) => AppResponse::Failed(AppError::NotLeader {
                        leader: f.leader_id,
                    }),
                    Ok(Err(e)) => AppResponse::Failed(AppError::NoQuorum(format!(
                        "this node cannot confirm it leads: {e}"
                    ))),
                    Err(_) => AppResponse::Failed(AppError::NoQuorum(
                        "a majority of the voters did not confirm the leader in time".into(),
                    )),
                }
            }
        }
    }

    /// The membership lock, if the change before ends within
    /// [`MEMBERSHIP_TIMEOUT`] (a join catching up holds it longer: the
    /// next one is told to try again rather than wait out the caller).
    async fn membership_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        tokio::time::timeout(MEMBERSHIP_TIMEOUT, self.membership.lock())
            .await
            .ok()
    }

    /// Add `node` as a learner, wait for it to catch up, make it a voter.
    async fn add_member(&self, node: NodeId, info: crate::NodeInfo) -> AppResponse {
        if !self.seeded.load(std::sync::atomic::Ordering::Acquire) {
            return refused(format!(
                "the cluster has no configuration yet: finish `shoal cluster init` on node {} \
                 first",
                self.node
            ));
        }
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        if let Some(known) = membership.get_node(&node) {
            if known.cluster != info.cluster {
                return refused(format!(
                    "node {node} is already a member with cluster address {}; \
                     remove it first (shoal cluster remove {node})",
                    known.cluster
                ));
            }
            let voter = membership.voter_ids().any(|v| v == node);
            if known.incarnation != info.incarnation {
                if voter {
                    // A voter that lost its log would vote as if it had
                    // never seen the entries it acknowledged: Raft's
                    // safety rests on voters keeping their disks.
                    return refused(format!(
                        "node {node} is a voter but comes back with another data directory \
                         (wiped or replaced); remove it first (shoal cluster remove {node}), \
                         then join it again"
                    ));
                }
                // A learner lost nothing that counts: start it afresh.
                let change = ChangeMembers::RemoveNodes(BTreeSet::from([node]));
                match self
                    .change_membership(change, &format!("removing node {node}'s old learner"))
                    .await
                {
                    AppResponse::Done => {}
                    failed => return failed,
                }
            } else if voter {
                return AppResponse::Done;
            }
        }
        tracing::info!("adding node {node} ({info}) as a learner");
        match tokio::time::timeout(CATCH_UP_TIMEOUT, self.raft.add_learner(node, info, true)).await
        {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return AppResponse::Failed(write_error(e)),
            Err(_) => {
                // A learner left behind would be replicated to forever and
                // shown as a member; take it out again.
                let change = ChangeMembers::RemoveNodes(BTreeSet::from([node]));
                let removed = self
                    .change_membership(change, &format!("removing learner {node}"))
                    .await;
                return AppResponse::Failed(AppError::Failed(format!(
                    "node {node} did not catch up within {} s as a learner{}",
                    CATCH_UP_TIMEOUT.as_secs(),
                    match removed {
                        AppResponse::Done => "; it was removed again".to_string(),
                        other => format!("; removing it again failed too: {other:?}"),
                    }
                )));
            }
        }
        tracing::info!("node {node} caught up; making it a voter");
        let change = ChangeMembers::AddVoterIds(BTreeSet::from([node]));
        self.change_membership(change, &format!("making node {node} a voter"))
            .await
    }

    /// Take `node` out of the membership (voter or learner).
    async fn remove_member(&self, node: NodeId) -> AppResponse {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        if membership.get_node(&node).is_none() {
            return refused(format!("node {node} is not a member"));
        }
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let change = if voters.contains(&node) {
            if voters.len() == 1 {
                return refused(format!(
                    "node {node} is the only voter; a cluster cannot remove its last voter"
                ));
            }
            ChangeMembers::RemoveVoters(BTreeSet::from([node]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([node]))
        };
        tracing::info!("removing node {node} from the membership");
        // A leader removing itself may not lead once the change commits:
        // it forgets its own reports first (its checks may report once
        // more in between; the next removal or a restart of checks fixes
        // that). Any other node is forgotten once it is out, so it cannot
        // report again.
        if node == self.node {
            self.forget_reports(node).await;
        }
        let answer = self
            .change_membership(change, &format!("removing node {node}"))
            .await;
        if matches!(answer, AppResponse::Done) && node != self.node {
            self.forget_reports(node).await;
        }
        answer
    }

    /// Write `ForgetNode` for a node leaving the membership, so that its
    /// health reports stop counting (apply never reads the membership).
    /// A failure is logged: the removal itself stands.
    async fn forget_reports(&self, node: NodeId) {
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let write = self
            .raft
            .client_write(shoal_proto::command::Command::ForgetNode { node, at });
        match tokio::time::timeout(WRITE_DEADLINE, write).await {
            Ok(Ok(_)) => tracing::info!("node {node}'s health reports no longer count"),
            Ok(Err(e)) => tracing::warn!("cannot forget node {node}'s health reports: {e}"),
            Err(_) => tracing::warn!(
                "cannot forget node {node}'s health reports: not committed within {} s",
                WRITE_DEADLINE.as_secs()
            ),
        }
    }

    async fn change_membership(
        &self,
        change: ChangeMembers<NodeId, crate::NodeInfo>,
        what: &str,
    ) -> AppResponse {
        match tokio::time::timeout(
            MEMBERSHIP_TIMEOUT,
            self.raft.change_membership(change, false),
        )
        .await
        {
            Ok(Ok(_)) => AppResponse::Done,
            Ok(Err(e)) => AppResponse::Failed(write_error(e)),
            Err(_) => AppResponse::Failed(AppError::NoQuorum(format!(
                "{what}: not committed within {} s",
                MEMBERSHIP_TIMEOUT.as_secs()
            ))),
        }
    }
}

/// A write whose fate is unknown: sent to `leader`, no answer.
fn in_doubt(leader: NodeId, why: &str) -> ClusterError {
    ClusterError::NoQuorum(format!(
        "no answer from the leader, node {leader} ({why}); the change may or may not \
         have taken effect: check, then retry"
    ))
}

/// Another membership change held the lock for too long.
fn busy() -> AppResponse {
    AppResponse::Failed(AppError::Failed(format!(
        "another membership change has been running for {} s; try again later",
        CATCH_UP_TIMEOUT.as_secs()
    )))
}

fn refused(why: String) -> AppResponse {
    AppResponse::Failed(AppError::Refused(why))
}

fn request_name(request: &AppRequest) -> &'static str {
    match request {
        AppRequest::Write(_) => "a write",
        AppRequest::Join { .. } => "a join",
        AppRequest::Remove { .. } => "a removal",
        AppRequest::Status => "a status request",
        AppRequest::ReadIndex => "a read index",
    }
}

/// openraft's answer to a write or membership change, as an [`AppError`].
fn write_error(e: RaftError<NodeId, ClientWriteError<NodeId, crate::NodeInfo>>) -> AppError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => AppError::NotLeader {
            leader: f.leader_id,
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            AppError::Refused(e.to_string())
        }
        RaftError::Fatal(e) => AppError::Failed(format!("raft stopped: {e}")),
    }
}

/// Answers other nodes' requests: Raft's RPCs go to openraft, the
/// application's to the cluster.
pub(crate) struct Handler {
    pub cluster: Weak<Cluster>,
    pub raft: crate::Raft,
}

/// An RPC from a node that speaks for another one (its certificate names
/// `from`, the message names someone else) is refused: the answer says it
/// is not authorized, which openraft treats as a failed RPC.
// The error type is openraft's, returned as the trait requires.
#[allow(clippy::result_large_err)]
fn impostor<T>(from: NodeId, claimed: NodeId, what: &str) -> Result<T, RaftError<NodeId>> {
    tracing::warn!("refused a {what} from node {from} that speaks for node {claimed}");
    Err(RaftError::Fatal(openraft::error::Fatal::Stopped))
}

impl crate::transport::RpcHandler for Handler {
    async fn append(
        &self,
        from: NodeId,
        request: openraft::raft::AppendEntriesRequest<crate::TypeConfig>,
    ) -> Result<openraft::raft::AppendEntriesResponse<NodeId>, RaftError<NodeId>> {
        let leader = request.vote.leader_id().voted_for();
        if leader != Some(from) {
            return impostor(from, leader.unwrap_or_default(), "log append");
        }
        self.raft.append_entries(request).await
    }

    async fn vote(
        &self,
        from: NodeId,
        request: openraft::raft::VoteRequest<NodeId>,
    ) -> Result<openraft::raft::VoteResponse<NodeId>, RaftError<NodeId>> {
        let candidate = request.vote.leader_id().voted_for();
        if candidate != Some(from) {
            return impostor(from, candidate.unwrap_or_default(), "vote request");
        }
        if !self.cluster.upgrade().is_some_and(|c| c.may_vote()) {
            tracing::debug!("refused a vote to node {from}: not the member it was");
            return Err(RaftError::Fatal(openraft::error::Fatal::Stopped));
        }
        self.raft.vote(request).await
    }

    async fn snapshot(
        &self,
        from: NodeId,
        vote: openraft::Vote<NodeId>,
        snapshot: openraft::Snapshot<crate::TypeConfig>,
    ) -> Result<openraft::raft::SnapshotResponse<NodeId>, openraft::error::Fatal<NodeId>> {
        let leader = vote.leader_id().voted_for();
        if leader != Some(from) {
            tracing::warn!(
                "refused a snapshot from node {from} that speaks for node {}",
                leader.unwrap_or_default()
            );
            return Err(openraft::error::Fatal::Stopped);
        }
        self.raft.install_full_snapshot(vote, snapshot).await
    }

    async fn app(&self, from: NodeId, request: AppRequest) -> AppResponse {
        self.answer(from, request).await
    }
}

impl Handler {
    /// Answer `request` from node `from` (whose certificate the transport
    /// checked). Writes are carried out only by the leader; a join or a
    /// removal that reaches a follower is relayed to the leader, since a
    /// joining node knows only the address it was given.
    async fn answer(&self, from: NodeId, request: AppRequest) -> AppResponse {
        let Some(cluster) = self.cluster.upgrade() else {
            return AppResponse::Failed(AppError::Failed("the node is stopping".into()));
        };
        tracing::debug!("node {from} asks for {}", request_name(&request));
        // Authorization: a valid certificate proves only that the peer is
        // some node of the CA. Changes and status are for members; a join
        // comes from the joining node itself (or a member relaying it).
        let is_member = cluster.members().contains_key(&from);
        let allowed = match &request {
            AppRequest::Join { node, .. } => *node == from || is_member,
            _ => is_member,
        };
        if !allowed {
            tracing::warn!(
                "refused {} from node {from}, which is not a member",
                request_name(&request)
            );
            return AppResponse::Failed(AppError::Refused(format!(
                "node {from} is not a member of this cluster"
            )));
        }
        match request {
            AppRequest::Status => AppResponse::Status(cluster.peer_status()),
            AppRequest::Write(_) | AppRequest::ReadIndex => {
                let leader = cluster.raft.metrics().borrow().current_leader;
                if leader == Some(cluster.node) {
                    cluster
                        .execute(request, Instant::now() + WRITE_DEADLINE)
                        .await
                } else {
                    AppResponse::Failed(AppError::NotLeader { leader })
                }
            }
            AppRequest::Join { .. } | AppRequest::Remove { .. } => {
                match cluster.leader_call(request).await {
                    Ok(answer) => answer,
                    Err(e) => AppResponse::Failed(AppError::Failed(e.to_string())),
                }
            }
        }
    }
}
