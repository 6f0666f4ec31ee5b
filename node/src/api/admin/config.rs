//! `/v1/config`: the running configuration in the haproxy.cfg dialect,
//! exactly as it was loaded (comments and layout included), so that
//! `shoal config show > FILE` gives back a file `shoal config apply`
//! and `shoal check` accept.

use super::openapi::Denied;
use super::reply::{body, Reply};
use super::Api;
use axum::extract::State;
use axum::http::StatusCode;
use std::sync::Arc;

/// The running configuration's text.
#[utoipa::path(get, path = "/v1/config", tag = "config",
    responses((status = 200, description = "The running configuration, as loaded",
        content_type = "text/plain", body = String), Denied))]
pub async fn show_config(State(api): State<Arc<Api>>) -> Reply {
    // Clone under the state lock, answer after it is released.
    let text = api.runtime.read(|state| state.config().text.clone());
    body(StatusCode::OK, "text/plain; charset=utf-8", text)
}
