//! One background task per process closes pooled server connections that
//! stayed idle past [`crate::pool::IDLE_TIMEOUT`], so that an idle pool
//! costs no task per connection and still does not keep sockets forever.

use crate::runtime::Runtime;
use std::sync::{Arc, Once, Weak};
use std::time::Duration;

/// How often idle pools are swept.
const EVERY: Duration = Duration::from_secs(1);

static STARTED: Once = Once::new();

/// Start the sweeper (once per process) for `runtime`'s servers.
pub fn start(runtime: &Arc<Runtime>) {
    STARTED.call_once(|| {
        let runtime: Weak<Runtime> = Arc::downgrade(runtime);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(runtime) = runtime.upgrade() else {
                    return;
                };
                let snapshot = runtime.snapshot();
                for server in snapshot.backends.iter().flat_map(|b| b.servers.iter()) {
                    server.shared.pool.purge();
                }
            }
        });
    });
}
