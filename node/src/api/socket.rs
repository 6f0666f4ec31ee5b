//! HAProxy's runtime API on `stats socket` lines. (Being written.)

use crate::runtime::Runtime;
use shoal_proto::config::Config;
use std::sync::Arc;

/// The running stats sockets; dropping this closes them.
#[derive(Default)]
pub struct Sockets {}

/// Open every `stats socket` of `config` and serve HAProxy's command language.
pub async fn start(runtime: Arc<Runtime>, config: &Config) -> std::io::Result<Sockets> {
    let _ = (runtime, config);
    Ok(Sockets {})
}
