//! One background task closes pooled server connections that stayed idle
//! past [`crate::pool::IDLE_TIMEOUT`], so that an idle pool costs no task
//! per connection and still does not keep sockets forever.

use crate::runtime::Runtime;
use std::sync::Arc;
use std::time::Duration;

/// How often idle pools are swept.
const EVERY: Duration = Duration::from_secs(1);

/// Sweep the pools of `runtime`'s servers every second; runs until the
/// task is dropped.
pub async fn run(runtime: Arc<Runtime>) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let snapshot = runtime.snapshot();
        for server in snapshot.backends.iter().flat_map(|b| b.servers.iter()) {
            server.shared.pool.purge();
        }
    }
}
