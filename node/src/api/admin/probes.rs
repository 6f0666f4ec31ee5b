//! Routes served without a token: `/live`, `/ready`, `/metrics` and
//! `/openapi.json`.

use super::reply::{body, json, Reply};
use super::Api;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use utoipa::ToSchema;

/// The answer of `/live` and `/ready`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProbeStatus {
    /// `live`, `ready` or `not ready`.
    #[schema(example = "ready")]
    pub status: &'static str,
}

/// Liveness: 200 while the process runs.
#[utoipa::path(get, path = "/live", tag = "probes", security(()),
    responses((status = 200, description = "The process runs", body = ProbeStatus)))]
pub async fn live() -> Reply {
    json(StatusCode::OK, &ProbeStatus { status: "live" })
}

/// Readiness: 200 once the node serves traffic; 503 while it stops, while
/// it is drained, while the cluster's running config does not load with
/// its environment, and while its last routing build failed (a
/// certificate or server name this node lacks): the node then serves an
/// older config, or none. The node sets the latch as it follows the state
/// (`Node::reconcile`); the build is the projector's latest, so a later
/// change that builds makes the node ready again at once.
#[utoipa::path(get, path = "/ready", tag = "probes", security(()),
    responses(
        (status = 200, description = "Serving", body = ProbeStatus),
        (status = 503, description = "Not serving yet, stopping, drained, or the running config does not load or build on this node", body = ProbeStatus),
    ))]
pub async fn ready(State(api): State<Arc<Api>>) -> Reply {
    if api.ready.load(Ordering::SeqCst) && api.runtime.routing_current() {
        json(StatusCode::OK, &ProbeStatus { status: "ready" })
    } else {
        let status = ProbeStatus {
            status: "not ready",
        };
        json(StatusCode::SERVICE_UNAVAILABLE, &status)
    }
}

/// Prometheus metrics (text format 0.0.4).
#[utoipa::path(get, path = "/metrics", tag = "probes", security(()),
    responses((status = 200, description = "Metrics",
        content_type = "text/plain; version=0.0.4", body = String)))]
pub async fn metrics(State(api): State<Arc<Api>>) -> Reply {
    let mut text = crate::metrics::render(&api.runtime.snapshot());
    if let Some(cluster) = &api.cluster {
        crate::metrics::cluster(&mut text, &cluster.metrics());
    }
    let expiries: Vec<(String, i64)> = api.runtime.read(|s| {
        s.certificates()
            .iter()
            .map(|(name, c)| (name.clone(), c.not_after))
            .collect()
    });
    crate::metrics::certificates(&mut text, &expiries);
    body(StatusCode::OK, crate::metrics::CONTENT_TYPE, text)
}

/// This OpenAPI document.
#[utoipa::path(get, path = "/openapi.json", tag = "probes", security(()),
    responses((status = 200, description = "This document", content_type = "application/json",
        body = Object)))]
pub async fn openapi(State(api): State<Arc<Api>>) -> Reply {
    body(StatusCode::OK, "application/json", api.openapi.clone())
}
