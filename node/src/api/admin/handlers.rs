//! The `/v1` resources. Reads come from one snapshot; every change is a
//! [`Command`] submitted through `Runtime::submit`.

use super::reply::{json, Failure, Reply};
use super::routes::Op;
use super::views;
use crate::runtime::{now_ms, AdminState, BackendRt, OpState, Runtime, ServerRt, Snapshot};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::CONTENT_LENGTH;
use hyper::{Request, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use shoal_proto::command::{Command, ServerRef};

/// Largest request body accepted (JSON bodies here are a few bytes).
pub const MAX_BODY: usize = 64 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WeightBody {
    weight: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateBody {
    state: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthBody {
    health: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MaxconnBody {
    maxconn: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddrBody {
    addr: String,
    port: Option<u16>,
}

/// Serve one `/v1` route; `params` are the decoded path parameters.
pub async fn v1(
    op: Op,
    params: Vec<String>,
    req: Request<Incoming>,
    runtime: &Runtime,
) -> Result<Reply, Failure> {
    let snapshot = runtime.snapshot();
    let param = |i: usize| params.get(i).map(String::as_str).unwrap_or_default();
    match op {
        Op::ListBackends => {
            let list: Vec<_> = snapshot
                .backends
                .iter()
                .map(|b| views::backend(&snapshot, b, false))
                .collect();
            Ok(json(StatusCode::OK, &list))
        }
        Op::GetBackend => {
            let b = snapshot
                .backend(param(0))
                .ok_or_else(|| Failure::not_found("No such backend."))?;
            Ok(json(StatusCode::OK, &views::backend(&snapshot, b, true)))
        }
        Op::ListServers => {
            let b = snapshot
                .backend(param(0))
                .ok_or_else(|| Failure::not_found("No such backend."))?;
            let list: Vec<_> = b
                .servers
                .iter()
                .map(|s| views::server(&snapshot, b, s))
                .collect();
            Ok(json(StatusCode::OK, &list))
        }
        Op::GetServer => server_reply(&snapshot, param(0), param(1)),
        Op::SetWeight
        | Op::SetState
        | Op::SetHealth
        | Op::SetMaxconn
        | Op::SetAddr
        | Op::ShutdownSessions => {
            let server = ServerRef {
                backend: param(0).to_string(),
                server: param(1).to_string(),
            };
            // Unknown names are 404 before a bad body is 400.
            find(&snapshot, &server.backend, &server.server)?;
            drop(snapshot);
            change(op, server, req, runtime).await
        }
        Op::ListTables => {
            let mut list: Vec<_> = snapshot
                .tables
                .values()
                .map(|t| views::table(t, false))
                .collect();
            list.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(json(StatusCode::OK, &list))
        }
        Op::GetTable => {
            let t = snapshot
                .tables
                .get(param(0))
                .ok_or_else(|| Failure::not_found("No such table."))?;
            Ok(json(StatusCode::OK, &views::table(t, true)))
        }
        Op::ClearTable => {
            let key = req
                .uri()
                .query()
                .and_then(|q| crate::stats_page::form::value(q, "key"));
            let table = param(0).to_string();
            runtime.submit(&Command::ClearTable {
                table: table.clone(),
                key,
            })?;
            runtime.settled().await;
            let t = runtime.snapshot().tables.get(table.as_str()).cloned();
            let t = t.ok_or_else(|| Failure::not_found("No such table."))?;
            Ok(json(StatusCode::OK, &views::table(&t, false)))
        }
        Op::Stats => Ok(json(StatusCode::OK, &super::stats_json(&snapshot))),
        Op::Live | Op::Ready | Op::Metrics | Op::OpenApi => {
            Err(Failure::not_found("not a /v1 resource"))
        }
    }
}

/// A backend and one of its servers, or 404.
fn find<'a>(
    snapshot: &'a Snapshot,
    backend: &str,
    server: &str,
) -> Result<(&'a BackendRt, &'a ServerRt), Failure> {
    let b = snapshot
        .backend(backend)
        .ok_or_else(|| Failure::not_found("No such backend."))?;
    let s = b
        .servers
        .iter()
        .find(|s| &*s.name == server)
        .ok_or_else(|| Failure::not_found("No such server."))?;
    Ok((b, s))
}

/// A server's view, or 404.
fn server_reply(snapshot: &Snapshot, backend: &str, server: &str) -> Result<Reply, Failure> {
    let (b, s) = find(snapshot, backend, server)?;
    Ok(json(StatusCode::OK, &views::server(snapshot, b, s)))
}

/// Turn a write into a command, apply it, answer with the server as it is now.
async fn change(
    op: Op,
    server: ServerRef,
    req: Request<Incoming>,
    runtime: &Runtime,
) -> Result<Reply, Failure> {
    let (backend, name) = (server.backend.clone(), server.server.clone());
    let command = match op {
        Op::SetWeight => {
            let WeightBody { weight } = read_json(req).await?;
            if weight > 256 {
                return Err(Failure::bad("weight must be between 0 and 256"));
            }
            Command::SetWeight { server, weight }
        }
        Op::SetState => {
            let StateBody { state } = read_json(req).await?;
            let state = match state.as_str() {
                "ready" => AdminState::Ready,
                "drain" => AdminState::Drain,
                "maint" => AdminState::Maint,
                _ => return Err(Failure::bad("state must be ready, drain or maint")),
            };
            Command::SetAdminState {
                server,
                state,
                at: now_ms(),
            }
        }
        Op::SetHealth => {
            let HealthBody { health } = read_json(req).await?;
            let state = match health.as_str() {
                "up" => OpState::Up,
                "down" => OpState::Down,
                "stopping" => OpState::Stopping,
                _ => return Err(Failure::bad("health must be up, down or stopping")),
            };
            Command::SetHealth {
                server,
                state,
                at: now_ms(),
            }
        }
        Op::SetMaxconn => {
            let MaxconnBody { maxconn } = read_json(req).await?;
            Command::SetMaxconn { server, maxconn }
        }
        Op::SetAddr => {
            let AddrBody { addr, port } = read_json(req).await?;
            let Ok(ip) = addr.parse::<std::net::IpAddr>() else {
                return Err(Failure::bad(format!("Invalid address: '{addr}'.")));
            };
            Command::SetAddr { server, ip, port }
        }
        _ => Command::ShutdownSessions { server },
    };
    runtime.submit(&command)?;
    runtime.settled().await;
    server_reply(&runtime.snapshot(), &backend, &name)
}

/// Read a JSON body of at most [`MAX_BODY`] bytes.
async fn read_json<T: DeserializeOwned>(req: Request<Incoming>) -> Result<T, Failure> {
    let bytes = read_body(req, MAX_BODY).await?;
    serde_json::from_slice(&bytes).map_err(|e| Failure::bad(format!("invalid JSON body: {e}")))
}

/// Read a whole body, refusing (413) one larger than `limit`.
pub async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, Failure> {
    let too_large = || {
        Failure(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body larger than {limit} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(body) => Ok(body.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(Failure::bad(format!("cannot read body: {e}"))),
    }
}
