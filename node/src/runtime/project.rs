//! The projector: one thread that turns the replicated state into routing
//! snapshots.
//!
//! [`super::Runtime::submit`] bumps `wanted` and wakes the thread. The
//! thread takes what it needs from the state under the lock (an `Arc` of
//! the config and a copy of the server states), releases it, resolves any
//! host it has not seen (DNS without a lock held), builds the snapshot
//! reusing what did not change, swaps it in and publishes the version it
//! built. Changes that arrive while it builds are folded into the next
//! build, so a burst costs one or a few builds however long it is.

use super::build;
use super::local::{self, Local};
use crate::routing::Snapshot;
use crate::stick::StickQueue;
use arc_swap::ArcSwap;
use shoal_proto::state::ClusterState;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use tokio::sync::watch;

/// What the projector last built.
#[derive(Debug, Clone, Default)]
pub(super) struct Built {
    /// The `wanted` value it reflects.
    pub version: u64,
    /// Why that build failed (the previous table stayed), if it did.
    pub error: Option<String>,
}

/// The state and the version of it the routing must reach.
pub(super) struct StateCell {
    pub state: ClusterState,
    /// Bumped by every change that needs a new snapshot.
    pub wanted: u64,
}

/// What the runtime and its projector thread share.
pub(super) struct Shared {
    pub current: ArcSwap<Snapshot>,
    state: Mutex<StateCell>,
    /// Signalled (with `state`) when `wanted` moves or on stop.
    pub wake: Condvar,
    local: Mutex<Local>,
    /// The `wanted` value the current snapshot reflects, and whether the
    /// build for it failed.
    pub published: watch::Sender<Built>,
    pub stick: Arc<StickQueue>,
    stopping: AtomicBool,
    /// Snapshots built by the thread so far (tests check coalescing).
    #[cfg(test)]
    pub builds: std::sync::atomic::AtomicU64,
}

impl Shared {
    pub fn new(
        state: ClusterState,
        local: Local,
        snapshot: Snapshot,
        stick: Arc<StickQueue>,
    ) -> Shared {
        Shared {
            current: ArcSwap::from_pointee(snapshot),
            state: Mutex::new(StateCell { state, wanted: 0 }),
            wake: Condvar::new(),
            local: Mutex::new(local),
            published: watch::channel(Built::default()).0,
            stick,
            stopping: AtomicBool::new(false),
            #[cfg(test)]
            builds: std::sync::atomic::AtomicU64::new(0),
        }
    }

    // Every lock here guards data that stays consistent whatever a
    // panicking holder did (they only replace whole values), so a
    // poisoned lock is safe to reuse.
    pub fn lock_state(&self) -> MutexGuard<'_, StateCell> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn lock_local(&self) -> MutexGuard<'_, Local> {
        self.local.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Some server of the current snapshot is in its slowstart ramp.
    pub fn ramping(&self) -> bool {
        self.lock_local().ramping
    }

    /// Ask the thread to end.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _cell = self.lock_state();
        self.wake.notify_all();
    }

    /// Build and swap in the snapshot for the current state.
    fn project(&self, previous: &mut u64) {
        let (state, version) = {
            let mut cell = self.lock_state();
            while cell.wanted == *previous && !self.stopping.load(Ordering::SeqCst) {
                cell = self.wake.wait(cell).unwrap_or_else(|e| e.into_inner());
            }
            // Only config and servers feed the routing table: copy those.
            (cell.state.without_tables(), cell.wanted)
        };
        if self.stopping.load(Ordering::SeqCst) {
            return;
        }
        let missing = self.lock_local().missing(&state.config().model);
        let resolved = local::resolve_each(missing);
        let result = {
            let mut local = self.lock_local();
            match resolved {
                Ok(addrs) => {
                    local.remember(addrs);
                    let previous = self.current.load();
                    build::build(
                        &mut local,
                        &state,
                        Some(&previous),
                        std::time::SystemTime::now(),
                    )
                }
                Err(e) => Err(e.into()),
            }
        };
        #[cfg(test)]
        self.builds.fetch_add(1, Ordering::Relaxed);
        let error = match result {
            Ok(snapshot) => {
                self.current.store(Arc::new(snapshot));
                None
            }
            // Keep routing with the last good table; the state is still
            // what was applied, and the next change retries.
            Err(e) => {
                tracing::error!("routing table kept as it was: {e}");
                Some(e.to_string())
            }
        };
        *previous = version;
        self.published.send_replace(Built { version, error });
    }
}

/// Start the projector thread.
pub(super) fn spawn(shared: Arc<Shared>) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("shoal-projector".into())
        .spawn(move || {
            let mut built = 0;
            while !shared.stopping.load(Ordering::SeqCst) {
                let step = std::panic::AssertUnwindSafe(|| shared.project(&mut built));
                if std::panic::catch_unwind(step).is_err() {
                    // A bug while building: routing keeps the last good
                    // table, waiters hear of it, and the next change
                    // tries again (this one is not retried in a loop).
                    let version = shared.lock_state().wanted;
                    built = version;
                    let error = Some("building the routing table panicked".to_string());
                    shared.published.send_replace(Built { version, error });
                }
            }
        })
}
