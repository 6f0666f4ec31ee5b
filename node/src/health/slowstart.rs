//! `slowstart`: while a server that came back ramps up, rebuild the routing
//! snapshot periodically so its effective weight (computed by the snapshot
//! builder from the time it came back) grows step by step.
//!
//! HAProxy recomputes the weight at every check; this ticks every 1/20th
//! of the shortest `slowstart` (at least every 100 ms), and a tick costs
//! one uncontended lock when nothing ramps.

use crate::runtime::Runtime;
use shoal_proto::config::Config;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Shortest tick: rebuilding more often gains nothing visible.
const MIN_TICK: Duration = Duration::from_millis(100);

/// Start the ticker when some server of `config` has a `slowstart`.
pub fn start(runtime: &Arc<Runtime>, config: &Config) -> Option<JoinHandle<()>> {
    let shortest = config
        .proxies
        .iter()
        .filter(|p| p.kind.is_backend())
        .flat_map(|p| p.servers.iter())
        .filter_map(|s| s.slowstart)
        .filter(|d| !d.is_zero())
        .min()?;
    let tick = (shortest / 20).max(MIN_TICK);
    let runtime = runtime.clone();
    Some(tokio::spawn(async move {
        let mut timer = tokio::time::interval(tick);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            timer.tick().await;
            runtime.refresh();
        }
    }))
}
