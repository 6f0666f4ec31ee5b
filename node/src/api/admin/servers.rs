//! `/v1/backends/...`: reads come from one snapshot; every change is one
//! [`Command`] applied through the runtime, as the runtime socket's are.

use super::extract::{JsonBody, Params};
use super::openapi::{BodyErrors, Denied, Missing};
use super::reply::{json, Failure, Reply};
use super::views::{self, BackendView, ServerView};
use super::Api;
use crate::routing::{AdminState, BackendRt, OpState, ServerRt, Snapshot};
use crate::runtime::now_ms;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::Deserialize;
use shoal_proto::command::{Command, ServerRef};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// `{backend}` in a path.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct BackendPath {
    /// Backend name.
    backend: String,
}

/// `{backend}` and `{server}` in a path.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ServerPath {
    /// Backend name.
    backend: String,
    /// Server name within the backend.
    server: String,
}

/// A server named in the path that exists now; 404 otherwise. Extracted
/// before the body, so an unknown name is 404 even when the body is bad.
pub struct KnownServer(ServerRef);

impl FromRequestParts<Arc<Api>> for KnownServer {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, api: &Arc<Api>) -> Result<Self, Failure> {
        let Params(ServerPath { backend, server }) = Params::from_request_parts(parts, api).await?;
        find(&api.runtime.snapshot(), &backend, &server)?;
        Ok(KnownServer(ServerRef { backend, server }))
    }
}

/// Body of `PUT .../weight`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WeightBody {
    #[schema(maximum = 256)]
    weight: u32,
}

/// Body of `PUT .../state`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StateBody {
    state: AdminWord,
}

/// An admin state, as `set server ... state` spells it.
#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum AdminWord {
    Ready,
    Drain,
    Maint,
}

/// Body of `PUT .../health`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthBody {
    health: HealthWord,
}

/// A forced health, as `set server ... health` spells it.
#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum HealthWord {
    Up,
    Down,
    Stopping,
}

impl From<AdminWord> for AdminState {
    fn from(word: AdminWord) -> AdminState {
        match word {
            AdminWord::Ready => AdminState::Ready,
            AdminWord::Drain => AdminState::Drain,
            AdminWord::Maint => AdminState::Maint,
        }
    }
}

impl From<HealthWord> for OpState {
    fn from(word: HealthWord) -> OpState {
        match word {
            HealthWord::Up => OpState::Up,
            HealthWord::Down => OpState::Down,
            HealthWord::Stopping => OpState::Stopping,
        }
    }
}

/// Body of `PUT .../maxconn`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MaxconnBody {
    /// 0 means unlimited.
    maxconn: u32,
}

/// Body of `PUT .../addr`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddrBody {
    /// IPv4 or IPv6 address.
    #[schema(example = "10.0.0.7")]
    addr: String,
    /// New port; the current one is kept when absent.
    port: Option<u16>,
}

/// List backends.
#[utoipa::path(get, path = "/v1/backends", tag = "backends",
    responses((status = 200, description = "Every backend", body = Vec<BackendView>), Denied))]
pub async fn list_backends(State(api): State<Arc<Api>>) -> Reply {
    let snapshot = api.runtime.snapshot();
    let list: Vec<_> = snapshot
        .backends
        .iter()
        .map(|b| views::backend(&snapshot, b, false))
        .collect();
    json(StatusCode::OK, &list)
}

/// One backend with its servers.
#[utoipa::path(get, path = "/v1/backends/{backend}", tag = "backends", params(BackendPath),
    responses((status = 200, description = "The backend", body = BackendView), Denied, Missing))]
pub async fn get_backend(
    State(api): State<Arc<Api>>,
    Params(p): Params<BackendPath>,
) -> Result<Reply, Failure> {
    let snapshot = api.runtime.snapshot();
    let b = backend(&snapshot, &p.backend)?;
    Ok(json(StatusCode::OK, &views::backend(&snapshot, b, true)))
}

/// Servers of a backend.
#[utoipa::path(get, path = "/v1/backends/{backend}/servers", tag = "servers",
    params(BackendPath),
    responses((status = 200, description = "The servers", body = Vec<ServerView>), Denied, Missing))]
pub async fn list_servers(
    State(api): State<Arc<Api>>,
    Params(p): Params<BackendPath>,
) -> Result<Reply, Failure> {
    let snapshot = api.runtime.snapshot();
    let b = backend(&snapshot, &p.backend)?;
    let list: Vec<_> = b
        .servers
        .iter()
        .map(|s| views::server(&snapshot, b, s))
        .collect();
    Ok(json(StatusCode::OK, &list))
}

/// One server.
#[utoipa::path(get, path = "/v1/backends/{backend}/servers/{server}", tag = "servers",
    params(ServerPath),
    responses((status = 200, description = "The server", body = ServerView), Denied, Missing))]
pub async fn get_server(State(api): State<Arc<Api>>, KnownServer(s): KnownServer) -> Reply {
    server_now(&api, &s)
}

/// Set the weight (0..=256).
#[utoipa::path(put, path = "/v1/backends/{backend}/servers/{server}/weight", tag = "servers",
    params(ServerPath), request_body = WeightBody,
    responses((status = 200, description = "The server as it is now", body = ServerView),
        Denied, Missing, BodyErrors))]
pub async fn set_weight(
    State(api): State<Arc<Api>>,
    KnownServer(server): KnownServer,
    JsonBody(WeightBody { weight }): JsonBody<WeightBody>,
) -> Result<Reply, Failure> {
    change(&api, server, |server| Command::SetWeight { server, weight }).await
}

/// Set the admin state: ready, drain or maint.
#[utoipa::path(put, path = "/v1/backends/{backend}/servers/{server}/state", tag = "servers",
    params(ServerPath), request_body = StateBody,
    responses((status = 200, description = "The server as it is now", body = ServerView),
        Denied, Missing, BodyErrors))]
pub async fn set_state(
    State(api): State<Arc<Api>>,
    KnownServer(server): KnownServer,
    JsonBody(StateBody { state }): JsonBody<StateBody>,
) -> Result<Reply, Failure> {
    let (state, at) = (state.into(), now_ms());
    change(&api, server, |server| Command::SetAdminState {
        server,
        state,
        at,
    })
    .await
}

/// Force the health: up, down or stopping.
#[utoipa::path(put, path = "/v1/backends/{backend}/servers/{server}/health", tag = "servers",
    params(ServerPath), request_body = HealthBody,
    responses((status = 200, description = "The server as it is now", body = ServerView),
        Denied, Missing, BodyErrors))]
pub async fn set_health(
    State(api): State<Arc<Api>>,
    KnownServer(server): KnownServer,
    JsonBody(HealthBody { health }): JsonBody<HealthBody>,
) -> Result<Reply, Failure> {
    let (state, at) = (health.into(), now_ms());
    change(&api, server, |server| Command::SetHealth {
        server,
        state,
        at,
    })
    .await
}

/// Set maxconn (0 = unlimited).
#[utoipa::path(put, path = "/v1/backends/{backend}/servers/{server}/maxconn", tag = "servers",
    params(ServerPath), request_body = MaxconnBody,
    responses((status = 200, description = "The server as it is now", body = ServerView),
        Denied, Missing, BodyErrors))]
pub async fn set_maxconn(
    State(api): State<Arc<Api>>,
    KnownServer(server): KnownServer,
    JsonBody(MaxconnBody { maxconn }): JsonBody<MaxconnBody>,
) -> Result<Reply, Failure> {
    change(&api, server, |server| Command::SetMaxconn {
        server,
        maxconn,
    })
    .await
}

/// Set the address (and port).
#[utoipa::path(put, path = "/v1/backends/{backend}/servers/{server}/addr", tag = "servers",
    params(ServerPath), request_body = AddrBody,
    responses((status = 200, description = "The server as it is now", body = ServerView),
        Denied, Missing, BodyErrors))]
pub async fn set_addr(
    State(api): State<Arc<Api>>,
    KnownServer(server): KnownServer,
    JsonBody(AddrBody { addr, port }): JsonBody<AddrBody>,
) -> Result<Reply, Failure> {
    let Ok(ip) = addr.parse::<std::net::IpAddr>() else {
        return Err(Failure::bad(format!("Invalid address: '{addr}'.")));
    };
    change(&api, server, |server| Command::SetAddr { server, ip, port }).await
}

/// End every session on the server.
#[utoipa::path(post, path = "/v1/backends/{backend}/servers/{server}/shutdown-sessions",
    tag = "servers", params(ServerPath),
    responses((status = 200, description = "The server as it is now", body = ServerView),
        Denied, Missing))]
pub async fn shutdown_sessions(
    State(api): State<Arc<Api>>,
    KnownServer(server): KnownServer,
) -> Result<Reply, Failure> {
    change(&api, server, |server| Command::ShutdownSessions { server }).await
}

/// Submit one change to `server` (the state machine validates it, as for
/// every surface), answer with the server as it is afterwards.
async fn change(
    api: &Api,
    server: ServerRef,
    command: impl FnOnce(ServerRef) -> Command,
) -> Result<Reply, Failure> {
    api.runtime.change(&command(server.clone())).await?;
    Ok(server_now(api, &server))
}

/// A server's view from the current snapshot; 404 if it went away.
fn server_now(api: &Api, s: &ServerRef) -> Reply {
    let snapshot = api.runtime.snapshot();
    match find(&snapshot, &s.backend, &s.server) {
        Ok((b, srv)) => json(StatusCode::OK, &views::server(&snapshot, b, srv)),
        Err(failure) => axum::response::IntoResponse::into_response(failure),
    }
}

/// A backend, or 404.
fn backend<'a>(snapshot: &'a Snapshot, name: &str) -> Result<&'a BackendRt, Failure> {
    snapshot
        .backend(name)
        .map(|b| &**b)
        .ok_or_else(|| Failure::not_found("No such backend."))
}

/// A backend and one of its servers, or 404.
fn find<'a>(
    snapshot: &'a Snapshot,
    backend_name: &str,
    server: &str,
) -> Result<(&'a BackendRt, &'a ServerRt), Failure> {
    let b = backend(snapshot, backend_name)?;
    let s = b
        .servers
        .iter()
        .find(|s| &*s.name == server)
        .ok_or_else(|| Failure::not_found("No such server."))?;
    Ok((b, s))
}
