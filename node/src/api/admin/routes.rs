//! The router and the OpenAPI document, built from the same `routes!`
//! list: a handler's `#[utoipa::path]` gives both its route and its
//! documentation, so the two cannot disagree. Add routes here only
//! through `routes!` (a plain `.route(...)` would go undocumented; the
//! admin API tests check every documented path's methods against what
//! the router serves).

use super::reply::{error, Reply};
use super::{auth, backup, certs, cluster, config, probes, servers, tables, Api};
use axum::http::StatusCode;
use axum::Router;
use std::sync::Arc;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Every route, unauthenticated, without state; and its document.
pub fn build() -> (Router<Arc<Api>>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(super::openapi::ApiDoc::openapi())
        .routes(routes!(probes::live))
        .routes(routes!(probes::ready))
        .routes(routes!(probes::metrics))
        .routes(routes!(probes::openapi))
        .routes(routes!(servers::list_backends))
        .routes(routes!(servers::get_backend))
        .routes(routes!(servers::list_servers))
        .routes(routes!(servers::get_server))
        .routes(routes!(servers::set_weight))
        .routes(routes!(servers::set_state))
        .routes(routes!(servers::set_health))
        .routes(routes!(servers::set_maxconn))
        .routes(routes!(servers::set_addr))
        .routes(routes!(servers::shutdown_sessions))
        .routes(routes!(tables::list_tables))
        .routes(routes!(tables::get_table, tables::clear_table))
        .routes(routes!(tables::stats))
        .routes(routes!(cluster::status))
        .routes(routes!(cluster::health))
        .routes(routes!(cluster::load))
        .routes(routes!(backup::backup))
        .routes(routes!(backup::restore))
        .routes(routes!(cluster::init))
        .routes(routes!(cluster::join))
        .routes(routes!(cluster::leave))
        .routes(routes!(cluster::remove))
        .routes(routes!(cluster::node_state))
        .routes(routes!(config::show_config, cluster::apply_config))
        .routes(routes!(certs::list, certs::add))
        .routes(routes!(certs::remove))
        .split_for_parts()
}

/// The whole service: routes, JSON 404 and 405 answers, and the token
/// check in front of all of them.
pub fn service(api: Arc<Api>, router: Router<Arc<Api>>) -> Router {
    router
        .fallback(not_found)
        // axum adds `Allow` to this answer.
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            api.clone(),
            auth::require_token,
        ))
        .with_state(api)
}

async fn not_found() -> Reply {
    error(StatusCode::NOT_FOUND, "no such resource")
}

async fn method_not_allowed() -> Reply {
    error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
}
