//! `/v1/cluster`, `/v1/nodes/{id}/state` and `PUT /v1/config`: the
//! cluster's membership and status, node drain, and config apply. On a
//! standalone node they answer 409: its file is the truth.

use super::extract::{read_body, JsonBody, Params};
use super::openapi::{BodyErrors, Denied};
use super::reply::{json, Failure, Reply};
use super::{Api, MAX_BODY};
use axum::extract::{RawQuery, Request, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use shoal_proto::command::{Command, NodeId};
use shoal_raft::cluster::{Cluster, ClusterError};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// One member, as `GET /v1/cluster` lists it.
#[derive(Serialize, ToSchema)]
pub struct MemberView {
    id: NodeId,
    /// Its QUIC address.
    cluster: String,
    /// Its admin API address.
    admin: String,
    /// `voter` or `learner`.
    role: String,
    /// It answered within a second.
    reachable: bool,
    /// Drained by an operator (`shoal node drain`).
    drained: bool,
    committed: Option<u64>,
    applied: Option<u64>,
    /// Committed entries it has not applied yet.
    lag: Option<u64>,
    /// Hash of its replicated state: equal on nodes that applied the same log.
    state_hash: Option<String>,
}

/// `GET /v1/cluster`.
#[derive(Serialize, ToSchema)]
pub struct ClusterView {
    /// The node that answered.
    node: NodeId,
    leader: Option<NodeId>,
    term: u64,
    /// A leader that reaches a majority of the voters is known.
    quorum: bool,
    committed: Option<u64>,
    members: Vec<MemberView>,
    /// The cluster's TLS certificates and their expiry.
    certificates: Vec<super::certs::CertificateView>,
}

/// Body of `POST /v1/cluster/join`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinBody {
    /// A member's cluster (QUIC) address, `IP:PORT`.
    via: String,
}

/// `{id}` in a path.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct NodePath {
    /// Node id.
    id: NodeId,
}

/// Body of `PUT /v1/nodes/{id}/state`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeStateBody {
    state: NodeWord,
}

/// A proxy node's admin state.
#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum NodeWord {
    Ready,
    Drain,
}

/// What a cluster operation answers on success.
#[derive(Serialize, ToSchema)]
pub struct Done {
    /// What was done.
    status: String,
}

fn done(status: impl Into<String>) -> Reply {
    json(
        StatusCode::OK,
        &Done {
            status: status.into(),
        },
    )
}

/// The cluster, or 409 on a standalone node.
pub(super) fn cluster(api: &Api) -> Result<&Arc<Cluster>, Failure> {
    api.cluster.as_ref().ok_or_else(|| {
        Failure::new(
            StatusCode::CONFLICT,
            "this node runs standalone (started without --node-id): its file is the truth",
        )
    })
}

/// How a failed cluster operation is answered.
impl From<ClusterError> for Failure {
    fn from(e: ClusterError) -> Failure {
        let status = match e {
            ClusterError::NoQuorum(_) => StatusCode::SERVICE_UNAVAILABLE,
            ClusterError::AlreadyInitialized
            | ClusterError::NotInitialized
            | ClusterError::Refused(_) => StatusCode::CONFLICT,
            ClusterError::Timeout(_) | ClusterError::NotApplied(_) => StatusCode::GATEWAY_TIMEOUT,
            ClusterError::Failed(_) => StatusCode::BAD_GATEWAY,
        };
        Failure::new(status, e.to_string())
    }
}

/// The members, the leader, the term and how far each node is.
#[utoipa::path(get, path = "/v1/cluster", tag = "cluster",
    responses((status = 200, description = "Cluster status", body = ClusterView), Denied,
        (status = 409, description = "Standalone node")))]
pub async fn status(State(api): State<Arc<Api>>) -> Result<Reply, Failure> {
    let cluster = cluster(&api)?;
    let s = cluster.status().await;
    let drained = |id| api.runtime.read(|state| state.is_drained(id));
    let view = ClusterView {
        node: s.node,
        leader: s.leader,
        term: s.term,
        quorum: s.quorum,
        committed: s.committed,
        members: s
            .members
            .into_iter()
            .map(|m| MemberView {
                id: m.id,
                drained: drained(m.id),
                cluster: m.cluster,
                admin: m.admin,
                role: m.role.to_string(),
                reachable: m.reachable,
                committed: m.committed,
                applied: m.applied,
                lag: m.lag,
                state_hash: m.state_hash,
            })
            .collect(),
        certificates: super::certs::views(&api),
    };
    Ok(json(StatusCode::OK, &view))
}

/// Make this node a cluster of one, seeded with its running config.
#[utoipa::path(post, path = "/v1/cluster/init", tag = "cluster",
    responses((status = 200, description = "Initialized", body = Done), Denied,
        (status = 409, description = "Standalone node, or already in a cluster")))]
pub async fn init(State(api): State<Arc<Api>>) -> Result<Reply, Failure> {
    let cluster = cluster(&api)?;
    let seed = api.runtime.read(|s| Command::LoadConfig {
        file: s.config().file.clone(),
        text: s.config().text.clone(),
        at: crate::runtime::now_ms(),
        // Computed when this node loaded the text; parsing it again here
        // would give the same.
        layout: s.config().layout.clone(),
    });
    cluster.init(seed).await?;
    Ok(done(format!("node {} is a cluster of one", cluster.node())))
}

/// Join the cluster of the member at `via` (its cluster address).
#[utoipa::path(post, path = "/v1/cluster/join", tag = "cluster", request_body = JoinBody,
    responses((status = 200, description = "Joined", body = Done), Denied, BodyErrors,
        (status = 502, description = "The member could not be reached or refused")))]
pub async fn join(
    State(api): State<Arc<Api>>,
    JsonBody(JoinBody { via }): JsonBody<JoinBody>,
) -> Result<Reply, Failure> {
    let cluster = cluster(&api)?;
    cluster.join(&via).await?;
    Ok(done(format!(
        "node {} joined through {via}",
        cluster.node()
    )))
}

/// `GET /v1/cluster/health`.
#[derive(Serialize, ToSchema)]
pub struct HealthView {
    /// The node that answered (0: standalone).
    node: NodeId,
    /// Every checked server: the cluster verdict, its rule, each
    /// reporting node's last word, and whether this node avoids it.
    servers: Vec<crate::health::ServerHealth>,
}

/// Every node's view of every checked server's health. Also answers on a
/// standalone node (one reporter, node 0).
#[utoipa::path(get, path = "/v1/cluster/health", tag = "cluster",
    responses((status = 200, description = "Health per server and node", body = HealthView),
        Denied))]
pub async fn health(State(api): State<Arc<Api>>) -> Reply {
    let view = HealthView {
        node: api.runtime.node(),
        servers: crate::health::cluster_health(&api.runtime),
    };
    json(StatusCode::OK, &view)
}

/// One server in `GET /v1/cluster/load`.
#[derive(Serialize, ToSchema)]
pub struct ServerLoadView {
    backend: String,
    server: String,
    /// Its `maxconn` (`None`: no limit).
    maxconn: Option<u32>,
    /// Sessions this node has in flight on it.
    in_flight: u32,
    /// Sessions the live peers last reported in flight on it.
    peers_in_flight: u32,
    /// Both: what `leastconn` ranks by.
    cluster_in_flight: u32,
    /// This node's share of `maxconn` (`None`: only `maxconn` applies,
    /// as standalone or with no live peer).
    limit: Option<u32>,
}

/// `GET /v1/cluster/load`.
#[derive(Serialize, ToSchema)]
pub struct LoadView {
    /// The node that answered (0: standalone).
    node: NodeId,
    /// The peers whose reports this node has heard, and whether they count.
    peers: Vec<crate::load::PeerView>,
    servers: Vec<ServerLoadView>,
}

/// Cluster-wide load as this node sees it: each server's sessions here
/// and on the live peers, and this node's share of its `maxconn`. Also
/// answers on a standalone node (no peers).
#[utoipa::path(get, path = "/v1/cluster/load", tag = "cluster",
    responses((status = 200, description = "Load per server", body = LoadView), Denied))]
pub async fn load(State(api): State<Arc<Api>>) -> Reply {
    let snapshot = api.runtime.snapshot();
    let servers = snapshot
        .backends
        .iter()
        .flat_map(|b| {
            b.servers.iter().map(|s| {
                let in_flight = s.shared.counters.current();
                let peers_in_flight = s.shared.cluster.peers();
                ServerLoadView {
                    backend: b.name.to_string(),
                    server: s.name.to_string(),
                    maxconn: s.maxconn.filter(|&m| m > 0),
                    in_flight,
                    peers_in_flight,
                    cluster_in_flight: in_flight.saturating_add(peers_in_flight),
                    limit: s.shared.cluster.limit(),
                }
            })
        })
        .collect();
    let view = LoadView {
        node: api.runtime.node(),
        peers: api.load.as_ref().map(|b| b.peers()).unwrap_or_default(),
        servers,
    };
    json(StatusCode::OK, &view)
}

/// Leave the cluster gracefully (this node is removed from the membership).
#[utoipa::path(post, path = "/v1/cluster/leave", tag = "cluster",
    responses((status = 200, description = "Left", body = Done), Denied,
        (status = 503, description = "Quorum lost")))]
pub async fn leave(State(api): State<Arc<Api>>) -> Result<Reply, Failure> {
    let cluster = cluster(&api)?;
    cluster.remove(cluster.node()).await?;
    Ok(done(format!("node {} left the cluster", cluster.node())))
}

/// Remove a (dead) node from the membership.
#[utoipa::path(delete, path = "/v1/cluster/members/{id}", tag = "cluster", params(NodePath),
    responses((status = 200, description = "Removed", body = Done), Denied,
        (status = 503, description = "Quorum lost")))]
pub async fn remove(
    State(api): State<Arc<Api>>,
    Params(NodePath { id }): Params<NodePath>,
) -> Result<Reply, Failure> {
    let cluster = cluster(&api)?;
    cluster.remove(id).await?;
    Ok(done(format!("node {id} removed")))
}

/// Drain a proxy node (no new connections, `/ready` 503) or make it ready.
#[utoipa::path(put, path = "/v1/nodes/{id}/state", tag = "cluster", params(NodePath),
    request_body = NodeStateBody,
    responses((status = 200, description = "Done", body = Done), Denied, BodyErrors,
        (status = 404, description = "No such member"), (status = 503, description = "Quorum lost")))]
pub async fn node_state(
    State(api): State<Arc<Api>>,
    Params(NodePath { id }): Params<NodePath>,
    JsonBody(NodeStateBody { state }): JsonBody<NodeStateBody>,
) -> Result<Reply, Failure> {
    let cluster = cluster(&api)?;
    if !cluster.members().contains_key(&id) {
        return Err(Failure::not_found(format!("node {id} is not a member")));
    }
    let drained = matches!(state, NodeWord::Drain);
    api.runtime
        .change(&Command::SetNodeDrained { node: id, drained })
        .await?;
    Ok(done(format!(
        "node {id} {}",
        if drained { "drained" } else { "ready" }
    )))
}

/// `?file=NAME` of `PUT /v1/config`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConfigQuery {
    /// The file name error messages use.
    #[allow(dead_code)]
    file: Option<String>,
}

/// Validate a config (the body, haproxy.cfg text) and apply it to the
/// whole cluster. An invalid one is refused with `FILE:LINE: message`
/// lines and never enters the log.
#[utoipa::path(put, path = "/v1/config", tag = "config", params(ConfigQuery),
    request_body(content = String, content_type = "text/plain"),
    responses((status = 200, description = "Applied on this node", body = Done), Denied,
        BodyErrors, (status = 409, description = "Standalone node"),
        (status = 503, description = "Quorum lost")))]
pub async fn apply_config(
    State(api): State<Arc<Api>>,
    RawQuery(query): RawQuery,
    req: Request,
) -> Result<Reply, Failure> {
    cluster(&api)?;
    let file = query
        .and_then(|q| crate::stats_page::form::value(&q, "file"))
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| "api.cfg".into());
    let bytes = read_body(req, MAX_BODY).await?;
    let text = String::from_utf8(bytes.to_vec())
        .map_err(|_| Failure::bad(format!("{file}:0: the config is not UTF-8")))?;
    let runtime = api.runtime.clone();
    let prepared = tokio::task::spawn_blocking(move || runtime.prepare(&file, &text))
        .await
        .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(config_refused)?;
    api.runtime.propose_config(prepared).await?;
    Ok(done("configuration applied"))
}

/// A config that failed validation: every `FILE:LINE: message`, one a line.
fn config_refused(e: crate::runtime::LoadError) -> Failure {
    use shoal_proto::state::Refusal;
    match e {
        crate::runtime::LoadError::Refused(Refusal::Config(diags)) => Failure::bad(
            diags
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        other => Failure::bad(other.to_string()),
    }
}
