//! One node's membership of a Shoal cluster: the openraft instance, its
//! QUIC endpoint, and the operations the node's surfaces need.
//!
//! - Writes: [`Cluster::write`] proposes a command on the leader (this
//!   node, or the leader reached over QUIC, with bounded retries while an
//!   election runs), then waits until this node applied it, so that the
//!   next read here shows it. Without a leader, or without a quorum, it
//!   fails within [`WRITE_DEADLINE`] saying that quorum is lost.
//! - Membership: [`Cluster::init`] makes a cluster of one;
//!   [`Cluster::join`] asks a member (known by its cluster address only)
//!   to add this node: the leader adds it as a learner, waits until it
//!   caught up, then makes it a voter; [`Cluster::remove`] takes a node
//!   out. Each step has a timeout and says which step failed.
//! - Status: [`Cluster::status`] asks every member how far it is.
//!
//! Reads never come here: the node serves them from its own applied
//! state, so a node without quorum keeps serving its last state.

mod leader;
mod status;

pub use status::{ClusterStatus, Member, Metrics};

use crate::messages::{AppError, AppRequest, AppResponse};
use crate::types::{NodeInfo, Raft, Reply, StateHost};
use shoal_proto::command::{Command, NodeId};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Longest a write may take before it is reported as failed.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(5);
/// Longest a joining node may take to catch up as a learner.
pub const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a membership change may take to commit (and the longest a
/// membership request waits for the one before it).
pub const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest the leader works on a join: the membership lock, removing an
/// old learner of the same id, catching up, promotion. Whoever relays or
/// asks waits longer, so that the leader's answer is what ends a join.
pub const JOIN_WORK: Duration =
    Duration::from_secs(CATCH_UP_TIMEOUT.as_secs() + 3 * MEMBERSHIP_TIMEOUT.as_secs());

/// What `shoal run` says about this node's place in a cluster.
#[derive(Debug, Clone)]
pub struct Settings {
    pub node: NodeId,
    /// The data directory (`--data-dir`).
    pub data_dir: PathBuf,
    /// Where the QUIC endpoint listens (`--cluster-addr`; port 0 picks one).
    pub bind: SocketAddr,
    /// The certificate directory (`--certs`).
    pub certs: PathBuf,
    /// The admin API address peers and `cluster status` report.
    pub admin: String,
    /// Build a snapshot (and compact the log) every this many entries.
    pub snapshot_every: u64,
}

/// Why a cluster operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClusterError {
    /// No leader, or the leader cannot reach a majority.
    #[error("quorum lost: {0}")]
    NoQuorum(String),
    /// `cluster init` on a node that is already part of a cluster.
    #[error("this node is already part of a cluster")]
    AlreadyInitialized,
    /// A cluster operation on a node that has not joined one.
    #[error("this node is not part of a cluster yet (shoal cluster init, or join)")]
    NotInitialized,
    /// The request is not allowed (a membership change that would break
    /// the cluster, a node id in use with another address...).
    #[error("{0}")]
    Refused(String),
    /// A step did not finish in time.
    #[error("{0}")]
    Timeout(String),
    /// A write was committed, but this node had not applied it by the
    /// deadline (it is behind): it takes effect once the node catches up.
    #[error("{0}")]
    NotApplied(String),
    /// Anything else: the reason.
    #[error("{0}")]
    Failed(String),
}

impl From<AppError> for ClusterError {
    fn from(e: AppError) -> ClusterError {
        match e {
            AppError::NotLeader { .. } => ClusterError::NoQuorum(e.to_string()),
            AppError::NoQuorum(why) => ClusterError::NoQuorum(why),
            AppError::Refused(why) => ClusterError::Refused(why),
            AppError::Failed(why) => ClusterError::Failed(why),
        }
    }
}

/// A running cluster member.
pub struct Cluster {
    node: NodeId,
    info: NodeInfo,
    raft: Raft,
    /// The node's live state (for its hash in status answers).
    host: Arc<dyn StateHost>,
    transport: crate::transport::Transport,
    local_addr: SocketAddr,
    /// The task answering peers; ends when the endpoint closes.
    server: tokio::task::JoinHandle<()>,
    /// Held by the leader while it changes the membership: openraft takes
    /// one change at a time, and joins arrive together.
    membership: tokio::sync::Mutex<()>,
    /// The node holds replicated state (a command applied or a snapshot
    /// installed), kept by the state machine. A cluster whose first
    /// command (`cluster init`'s seed) has not committed takes no other
    /// write and no join.
    seeded: Arc<AtomicBool>,
    /// A node that another incarnation of it is a voter: logged once.
    impostor_logged: AtomicBool,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.node)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// The openraft settings: a snapshot every `snapshot_every` entries, and
/// elections in under two seconds on a LAN. openraft 0.9 gives each
/// AppendEntries the heartbeat interval as its deadline, and a follower
/// answers only once the entries are fsynced: at 50 ms, appends of stick
/// batches timed out on a loaded disk, each retry carried more, and
/// replication stalled for seconds, then elections followed. At 100 ms an
/// append has 75 ms (the transport's share). A follower notices a dead
/// leader after its election timeout (400 to 800 ms), and the other
/// voters grant their votes once the old leader's lease (the maximum
/// timeout) ran out: failover takes 0.8 to 1.6 s, with four heartbeats
/// missed before a live leader is doubted.
fn raft_config(snapshot_every: u64) -> Result<Arc<openraft::Config>, ClusterError> {
    let config = openraft::Config {
        cluster_name: "shoal".into(),
        heartbeat_interval: 100,
        election_timeout_min: 400,
        election_timeout_max: 800,
        install_snapshot_timeout: 10_000,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(snapshot_every),
        max_in_snapshot_log_to_keep: 100,
        ..Default::default()
    };
    config
        .validate()
        .map(Arc::new)
        .map_err(|e| ClusterError::Failed(format!("raft settings: {e}")))
}

impl Cluster {
    /// Start this member: load its certificates, bind its QUIC endpoint,
    /// start Raft on the opened stores. `host` is the node's live state.
    pub async fn start(
        settings: Settings,
        opened: crate::store::Opened,
        host: Arc<dyn StateHost>,
    ) -> Result<Arc<Cluster>, ClusterError> {
        if settings.bind.ip().is_unspecified() {
            // Peers dial the address a member advertises; 0.0.0.0 names
            // no machine.
            return Err(ClusterError::Failed(format!(
                "--cluster-addr {}: give the address other nodes reach this node at, \
                 not an unspecified one",
                settings.bind
            )));
        }
        let tls = crate::tls::load(&settings.certs, settings.node)
            .map_err(|e| ClusterError::Failed(e.to_string()))?;
        let incarnation = opened.incarnation();
        let (log, machine) = opened.into_parts(host.clone());
        let seeded = machine.seeded();
        let transport = crate::transport::Transport::bind(settings.bind, &tls, Default::default())
            .map_err(|e| ClusterError::Failed(format!("cluster address {}: {e}", settings.bind)))?;
        let local_addr = transport.local_addr();
        let config = raft_config(settings.snapshot_every)?;
        let raft = Raft::new(settings.node, config, transport.network(), log, machine)
            .await
            .map_err(|e| ClusterError::Failed(format!("starting raft: {e}")))?;
        let info = NodeInfo {
            cluster: local_addr.to_string(),
            admin: settings.admin.clone(),
            incarnation,
        };
        let cluster = Arc::new_cyclic(|weak: &std::sync::Weak<Cluster>| {
            let handler = Arc::new(leader::Handler {
                cluster: weak.clone(),
                raft: raft.clone(),
            });
            let serving = transport.clone();
            let server = tokio::spawn(async move { serving.serve(handler).await });
            Cluster {
                node: settings.node,
                info,
                raft,
                host,
                transport,
                local_addr,
                server,
                membership: tokio::sync::Mutex::new(()),
                seeded,
                impostor_logged: AtomicBool::new(false),
            }
        });
        tokio::spawn(Cluster::follow_election_right(
            Arc::downgrade(&cluster),
            cluster.raft.clone(),
        ));
        Ok(cluster)
    }

    /// This node's id.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The node applied a command from the log or installed a snapshot:
    /// its state is the cluster's, never to be changed locally again.
    pub fn holds_replicated_state(&self) -> bool {
        self.seeded.load(Ordering::Acquire)
    }

    /// What the membership records of this node when it joins.
    pub fn info(&self) -> &NodeInfo {
        &self.info
    }

    /// The address the QUIC endpoint is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The QUIC endpoint (the node's load reports ride it).
    pub fn transport(&self) -> &crate::transport::Transport {
        &self.transport
    }

    /// The openraft handle (metrics, tests).
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// Whether this node is part of a cluster (it has a membership).
    pub fn is_member(&self) -> bool {
        let m = self.raft.metrics().borrow().clone();
        m.membership_config
            .membership()
            .get_node(&self.node)
            .is_some()
    }

    /// `shoal cluster init`: become a cluster of one, whose first command
    /// is `seed` (the node's own config). Run again after a seed that did
    /// not commit (a timeout, a stop), it proposes the seed again.
    pub async fn init(&self, seed: Command) -> Result<(), ClusterError> {
        let members = std::collections::BTreeMap::from([(self.node, self.info.clone())]);
        match self.raft.initialize(members).await {
            Ok(()) => {}
            Err(openraft::error::RaftError::APIError(
                openraft::error::InitializeError::NotAllowed(_),
            )) if self.seeded.load(Ordering::Acquire)
                || self.voters() != std::collections::BTreeSet::from([self.node]) =>
            {
                return Err(ClusterError::AlreadyInitialized)
            }
            // Initialized, never seeded: finish the first init.
            Err(openraft::error::RaftError::APIError(
                openraft::error::InitializeError::NotAllowed(_),
            )) => tracing::info!("this cluster was initialized without its seed; seeding it now"),
            Err(e) => return Err(ClusterError::Failed(format!("initialize: {e}"))),
        }
        // A cluster of one elects itself at once; wait for it, so that
        // the seed is the first command of the log.
        self.raft
            .wait(Some(MEMBERSHIP_TIMEOUT))
            .metrics(
                |m| m.current_leader == Some(self.node),
                "this node leads its new cluster",
            )
            .await
            .map_err(|e| ClusterError::Timeout(format!("no leader after initialize: {e}")))?;
        let reply = self.write_now(seed).await?;
        match reply.refused {
            None => Ok(()),
            Some(why) => Err(ClusterError::Refused(why)),
        }
    }

    /// `shoal cluster join --via ADDR`: ask the member at `via` to add
    /// this node. Harmless when this node is a member already.
    pub async fn join(&self, via: &str) -> Result<(), ClusterError> {
        if self.is_voter() {
            return Ok(());
        }
        let request = AppRequest::Join {
            node: self.node,
            info: self.info.clone(),
        };
        let timeout = JOIN_WORK + Duration::from_secs(10);
        match self.call(None, via, request, timeout).await {
            Ok(AppResponse::Done) => Ok(()),
            Ok(AppResponse::Failed(e)) => Err(e.into()),
            Ok(other) => Err(ClusterError::Failed(format!("unexpected answer {other:?}"))),
            Err(e) => Err(ClusterError::Failed(format!("cannot reach {via}: {e}"))),
        }
    }

    /// This node is a voter, as the data directory it runs on: the
    /// membership records it with this directory's incarnation.
    pub fn is_voter(&self) -> bool {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        membership.voter_ids().any(|v| v == self.node)
            && membership
                .get_node(&self.node)
                .is_some_and(|n| n.incarnation == self.info.incarnation)
    }

    /// `shoal cluster remove N` (and `leave`, with this node's id): take a
    /// node out of the membership.
    pub async fn remove(&self, node: NodeId) -> Result<(), ClusterError> {
        match self.leader_call(AppRequest::Remove { node }).await? {
            AppResponse::Done => Ok(()),
            AppResponse::Failed(e) => Err(e.into()),
            other => Err(ClusterError::Failed(format!("unexpected answer {other:?}"))),
        }
    }

    /// Propose `command` and wait until this node applied it. `Reply`
    /// says whether it took effect.
    pub async fn write(&self, command: Command) -> Result<Reply, ClusterError> {
        if self.is_member() && !self.seeded.load(Ordering::Acquire) {
            // The first command of a cluster is its config: until it is
            // applied here, any other would be applied to an empty state.
            return Err(ClusterError::Refused(
                "this node has no replicated configuration yet (a `shoal cluster init` that \
                 did not finish: run it again; or a node still catching up: retry)"
                    .into(),
            ));
        }
        self.write_now(command).await
    }

    /// [`Cluster::write`], without waiting for a `cluster init` to seed.
    async fn write_now(&self, command: Command) -> Result<Reply, ClusterError> {
        let deadline = tokio::time::Instant::now() + WRITE_DEADLINE;
        let (index, reply) = match self.leader_call(AppRequest::Write(command)).await? {
            AppResponse::Written { index, reply } => (index, reply),
            AppResponse::Failed(e) => return Err(e.into()),
            other => return Err(ClusterError::Failed(format!("unexpected answer {other:?}"))),
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        self.raft
            .wait(Some(left.max(Duration::from_millis(500))))
            .applied_index_at_least(Some(index), "write applied here")
            .await
            .map_err(|_| {
                ClusterError::NotApplied(format!(
                    "committed at index {index}, but not applied on this node in time"
                ))
            })?;
        Ok(reply)
    }

    /// Wait until this node's state holds every write committed before
    /// the call (a read index from the leader, then applying up to it):
    /// what a read must do to see all acknowledged writes. Fails without
    /// a leader that a majority confirms.
    pub async fn read_barrier(&self) -> Result<u64, ClusterError> {
        let index = match self.leader_call(AppRequest::ReadIndex).await? {
            AppResponse::ReadIndex { index } => index,
            AppResponse::Failed(e) => return Err(e.into()),
            other => return Err(ClusterError::Failed(format!("unexpected answer {other:?}"))),
        };
        self.raft
            .wait(Some(WRITE_DEADLINE))
            .applied_index_at_least(Some(index), "read index applied here")
            .await
            .map_err(|_| {
                ClusterError::Timeout(format!(
                    "the leader's read index {index} was not applied on this node in time"
                ))
            })?;
        Ok(index)
    }

    /// Every member (voters and learners) and what the membership records.
    pub fn members(&self) -> std::collections::BTreeMap<NodeId, NodeInfo> {
        let m = self.raft.metrics().borrow().clone();
        m.membership_config
            .membership()
            .nodes()
            .map(|(id, info)| (*id, info.clone()))
            .collect()
    }

    /// The voters of the current membership.
    pub fn voters(&self) -> std::collections::BTreeSet<NodeId> {
        let m = self.raft.metrics().borrow().clone();
        m.membership_config.membership().voter_ids().collect()
    }

    /// Send an application request to `target` (`None`: whichever member
    /// listens at `addr`, for a join, where only the address is known).
    pub(crate) async fn call(
        &self,
        target: Option<NodeId>,
        addr: &str,
        request: AppRequest,
        timeout: Duration,
    ) -> Result<AppResponse, crate::transport::TransportError> {
        self.transport
            .call_within(target, addr, &request, timeout)
            .await
    }

    /// Whether this node may vote, or stand for election: only as the
    /// member the membership recorded. Another incarnation (the data
    /// directory was wiped or replaced) lost entries it had acknowledged,
    /// and would grant votes to candidates missing them. It still takes
    /// the log (and serves); an operator removes it and joins it again.
    pub(crate) fn may_vote(&self) -> bool {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let recorded = m
            .membership_config
            .membership()
            .get_node(&self.node)
            .map(|n| n.incarnation);
        if recorded.is_some_and(|i| i != self.info.incarnation)
            && !self.impostor_logged.swap(true, Ordering::AcqRel)
        {
            tracing::error!(
                "the cluster knows node {node} by another data directory: this one was wiped \
                 or replaced, so this node neither votes nor stands for election. Remove it \
                 (shoal cluster remove {node}) and join it again (shoal cluster join, or \
                 --join)",
                node = self.node
            );
        }
        recorded == Some(self.info.incarnation)
    }

    /// Keep openraft's elections on exactly while [`Cluster::may_vote`]:
    /// checked whenever the metrics (and so the membership) change.
    async fn follow_election_right(cluster: std::sync::Weak<Cluster>, raft: Raft) {
        let mut metrics = raft.metrics();
        let mut allowed = None;
        loop {
            let Some(c) = cluster.upgrade() else { return };
            let now = c.may_vote();
            drop(c);
            if allowed != Some(now) {
                raft.runtime_config().elect(now);
                allowed = Some(now);
            }
            if metrics.changed().await.is_err() {
                return;
            }
        }
    }

    /// Stop Raft, then the endpoint.
    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
        self.transport.shutdown().await;
        self.server.abort();
    }
}
