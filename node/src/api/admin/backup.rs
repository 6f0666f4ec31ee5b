//! `GET /v1/cluster/backup` and `POST /v1/cluster/restore`: the whole
//! replicated state to a file, and back. A backup is read after a read
//! barrier, so it holds every write acknowledged before it was asked for;
//! a restore is one `Restore` command through the log, so every node
//! becomes the backup's state at the same point of the log. A restore is
//! trial-built here first, as `config apply` is, and both directions
//! share one size limit ([`shoal_proto::backup::MAX_BYTES`]). Backups hold
//! no certificates (no private key leaves the cluster in a file), and a
//! restore keeps the certificates the cluster has.

use super::cluster::cluster;
use super::extract::read_body;
use super::openapi::Denied;
use super::reply::{body, json, Failure, Reply};
use super::Api;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use serde::Serialize;
use shoal_proto::backup::{Backup, BackupError, MAX_BYTES};
use std::sync::Arc;
use utoipa::ToSchema;

// A restore is one change: it must fit in what a forwarded change may
// carry between nodes, with room for the request around it.
const _: () = assert!(MAX_BYTES + 32 * 1024 <= shoal_raft::transport::wire::MAX_APP);

/// The whole replicated state as a backup file (`shoal cluster backup`).
#[utoipa::path(get, path = "/v1/cluster/backup", tag = "cluster",
    responses((status = 200, description = "The backup file",
            content_type = "application/octet-stream", body = Vec<u8>), Denied,
        (status = 409, description = "Standalone node"),
        (status = 503, description = "No leader that a majority confirms"),
        (status = 507, description = "The state is larger than a restore can carry")))]
pub async fn backup(State(api): State<Arc<Api>>) -> Result<Reply, Failure> {
    let cluster = cluster(&api)?;
    let index = cluster.read_barrier().await?;
    let state = api.runtime.export();
    let taken_at = crate::runtime::now_ms();
    let file = Backup::of(state, cluster.node(), index, taken_at);
    let bytes = tokio::task::spawn_blocking(move || file.to_bytes())
        .await
        .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| match e {
            BackupError::TooLarge(_) => {
                Failure::new(StatusCode::INSUFFICIENT_STORAGE, e.to_string())
            }
            e => Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        })?;
    Ok(body(StatusCode::OK, "application/octet-stream", bytes))
}

/// What a restore answers.
#[derive(Serialize, ToSchema)]
pub struct Restored {
    /// What was done.
    status: String,
    /// The state hash every node now has: the backup's, unless health
    /// reports of non-members were forgotten or the cluster has
    /// certificates (a backup holds none; restoring keeps the cluster's).
    state_hash: String,
}

/// Replace the cluster's whole replicated state with a backup's (the
/// body: a file `shoal cluster backup` wrote). Refused, with nothing
/// changed, when the file is damaged or its config does not load and
/// build here (names resolved, certificates loaded, as `config apply`).
/// The health reports of nodes that are not members here are forgotten
/// in the same command.
#[utoipa::path(post, path = "/v1/cluster/restore", tag = "cluster",
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, description = "Restored", body = Restored), Denied,
        (status = 400, description = "Not a backup, damaged, or its config does not load or build here"),
        (status = 409, description = "Standalone node, or not in a cluster yet"),
        (status = 413, description = "Larger than a change may be"),
        (status = 503, description = "Quorum lost")))]
pub async fn restore(State(api): State<Arc<Api>>, req: Request) -> Result<Reply, Failure> {
    let cluster = cluster(&api)?;
    // Not a member yet: the command would be applied to this node alone
    // and replaced by the cluster's state at `init` or `join`.
    if api.runtime.awaiting_cluster() {
        return Err(Failure::new(
            StatusCode::CONFLICT,
            "this node is not in a cluster yet: run `shoal cluster init` (or join it) first, then restore",
        ));
    }
    let bytes = read_body(req, MAX_BYTES).await?;
    let backup = tokio::task::spawn_blocking(move || Backup::from_bytes(&bytes))
        .await
        .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| Failure::bad(e.to_string()))?;
    // Health reports of nodes that are not members here (a backup of a
    // larger cluster, or of other node ids) would count in verdicts
    // forever: the restore forgets them, as a removal does.
    let members = cluster.members();
    let strangers: std::collections::BTreeSet<_> = backup
        .state
        .servers()
        .values()
        .flat_map(|s| s.reports.keys().copied())
        .filter(|node| !members.contains_key(node))
        .collect();
    let runtime = api.runtime.clone();
    let (node, applied, forget) = (backup.node, backup.applied, strangers.clone());
    let prepared =
        tokio::task::spawn_blocking(move || runtime.prepare_restore(backup.state, forget))
            .await
            .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
            .map_err(restore_refused)?;
    api.runtime.propose_config(prepared).await?;
    let mut status = format!("restored the backup node {node} took at index {applied}");
    if !strangers.is_empty() {
        let ids: Vec<String> = strangers.iter().map(ToString::to_string).collect();
        status += &format!(
            "; the health reports of nodes {} (not members here) were forgotten",
            ids.join(", ")
        );
    }
    let kept = api.runtime.read(|s| s.certificates().len());
    if kept > 0 {
        status += &format!("; the cluster's {kept} certificate(s) were kept (backups hold none)");
    }
    let hash = api.runtime.read(shoal_proto::state::ClusterState::hash);
    Ok(json(
        StatusCode::OK,
        &Restored {
            status,
            state_hash: format!("{hash:016x}"),
        },
    ))
}

/// A backup that does not load or build here: why, as a 400.
fn restore_refused(e: crate::runtime::LoadError) -> Failure {
    Failure::bad(format!("the backup cannot be restored here: {e}"))
}
