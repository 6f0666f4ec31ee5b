//! The node's side of a cluster: its runtime as the Raft state machine's
//! live state ([`Host`]), and Raft as the way its changes are made
//! ([`RaftProposer`]).
//!
//! Every surface calls `Runtime::change`; in a cluster that validates the
//! command against this node's state, proposes it through
//! [`Cluster::write`] (forwarded to the leader when this node follows) and
//! answers once this node applied it. Committed commands come back
//! through the log on every node and reach [`Runtime::apply_committed`]
//! in log order.

use crate::runtime::{ChangeError, Proposer, Runtime};
use shoal_proto::command::Command;
use shoal_proto::state::{ClusterState, Refusal};
use shoal_raft::cluster::Cluster;
use shoal_raft::StateHost;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The runtime, driven by the Raft state machine.
pub struct Host(pub Arc<Runtime>);

impl StateHost for Host {
    fn apply(&self, command: &Command, fresh: bool) -> Result<(), Refusal> {
        self.0.apply_committed(command, fresh)
    }

    fn export(&self) -> ClusterState {
        self.0.export()
    }

    fn install(&self, state: ClusterState) {
        self.0.install(state);
    }

    fn state_hash(&self) -> u64 {
        self.0.read(ClusterState::hash)
    }
}

/// Changes made through the cluster.
pub struct RaftProposer(pub Arc<Cluster>);

impl Proposer for RaftProposer {
    fn propose(
        &self,
        command: Command,
    ) -> Pin<Box<dyn Future<Output = Result<(), ChangeError>> + Send + '_>> {
        Box::pin(async move {
            let reply = self.0.write(command).await.map_err(|e| match e {
                shoal_raft::cluster::ClusterError::NotApplied(why) => {
                    ChangeError::CommittedNotApplied(why)
                }
                e => ChangeError::Cluster(e.to_string()),
            })?;
            match reply.refused {
                None => Ok(()),
                Some(why) => Err(ChangeError::RefusedInLog(why)),
            }
        })
    }

    fn active(&self) -> bool {
        // Once the node holds replicated state, nothing is applied locally
        // any more, even while a join has not yet shown it the membership
        // that names it: its state must stay the cluster's.
        self.0.is_member() || self.0.holds_replicated_state()
    }
}
