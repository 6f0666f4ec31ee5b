//! The cluster's certificates as every TLS bind serves them: a set built
//! from the replicated store after each change and swapped in whole, so
//! a handshake reads it with one atomic load and never waits on a lock.

use super::certs::{load_stored, Loaded};
use super::sni::Names;
use arc_swap::ArcSwap;
use shoal_proto::state::Certificate;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The cluster's certificates, shared by every `bind ... ssl` of a node.
#[derive(Debug, Default)]
pub struct ClusterCerts {
    current: ArcSwap<Names>,
    /// Serialises rebuilds, so the last one stored saw the latest store.
    rebuilding: Mutex<()>,
}

impl ClusterCerts {
    /// An empty set (a standalone node, `shoal check`).
    pub fn empty() -> Arc<ClusterCerts> {
        Arc::default()
    }

    /// The set now: what the next handshake uses.
    pub fn current(&self) -> arc_swap::Guard<Arc<Names>> {
        self.current.load()
    }

    /// Rebuild the set from `read` (which reads the replicated store, under
    /// the state lock, briefly) and swap it in. A certificate this node
    /// cannot load is left out and logged by name (never its key).
    pub fn rebuild(&self, read: impl FnOnce() -> BTreeMap<String, Certificate>) {
        let _one_at_a_time = self
            .rebuilding
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let stored = read();
        let provider = rustls::crypto::ring::default_provider();
        // By name: when two claim one name, the first name in order wins.
        let mut loaded: Vec<Loaded> = Vec::with_capacity(stored.len());
        for (name, cert) in &stored {
            match load_stored(cert, &provider) {
                Ok(l) => loaded.push(l),
                Err(why) => tracing::error!(
                    "cluster certificate '{name}' is not served by this node: {why}"
                ),
            }
        }
        self.current.store(Arc::new(Names::new(loaded)));
    }
}
