//! The admin HTTP API. (Being written.)

use crate::runtime::Runtime;
use std::sync::Arc;

/// The running admin server; dropping this stops it.
#[derive(Default)]
pub struct Admin {}

/// Serve the admin API on `listener`. `token`: bearer token required for
/// everything but `/live`, `/ready` and `/metrics`; `None` means open on
/// loopback only (standalone mode).
pub async fn start(
    listener: tokio::net::TcpListener,
    runtime: Arc<Runtime>,
    token: Option<String>,
) -> std::io::Result<Admin> {
    let _ = (listener, runtime, token);
    Ok(Admin {})
}
