//! A [`StateHost`] that only keeps the state: for tests and tools that
//! drive a state machine without a running node.

use crate::types::StateHost;
use shoal_proto::command::Command;
use shoal_proto::state::{ClusterState, Refusal};
use std::sync::{Mutex, MutexGuard};

/// Keeps a `ClusterState` in memory and applies commands to it with
/// `ClusterState::execute`; it carries out no effects.
#[derive(Debug, Default)]
pub struct MemoryHost {
    state: Mutex<ClusterState>,
}

impl MemoryHost {
    /// A host that starts from `state` (a node's own file, say).
    pub fn new(state: ClusterState) -> MemoryHost {
        MemoryHost {
            state: Mutex::new(state),
        }
    }

    /// A copy of the state.
    pub fn state(&self) -> ClusterState {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, ClusterState> {
        // A test that panicked while holding the lock must not hide the
        // state from the assertions that follow.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl StateHost for MemoryHost {
    fn apply(&self, command: &Command, fresh: bool) -> Result<(), Refusal> {
        let mut state = self.lock();
        if fresh {
            *state = ClusterState::default();
        }
        state.execute(command).map(|_| ())
    }

    fn export(&self) -> ClusterState {
        self.state()
    }

    fn install(&self, state: ClusterState) {
        *self.lock() = state;
    }
}
