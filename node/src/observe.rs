//! Passive health (`observe layer4|layer7`, `error-limit`, `on-error`):
//! the data plane reports what real traffic saw, and after `error-limit`
//! errors in a row the server's check task applies the `on-error` action.
//! See [`Observer`] for the call sites. A leaf module: the data plane
//! reports here without depending on the health checker or the runtime.

use arc_swap::ArcSwap;
use shoal_proto::config::Observe;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// What the data plane saw on one exchange with a server (HAProxy's
/// `HANA_STATUS_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The TCP connection to the server was established.
    ConnectOk,
    /// Connecting failed (refused, timed out, unreachable).
    ConnectError,
    /// A response head with this status arrived. Layer7 counts 5xx other
    /// than 501 and 505 as errors, anything else as success.
    Status(u16),
    /// The response was not valid HTTP.
    InvalidResponse,
    /// Reading the response failed.
    ReadError,
    /// The response did not come within `timeout server`.
    ReadTimeout,
    /// The server closed before answering.
    Closed,
}

impl Outcome {
    /// `Some(true)` success, `Some(false)` error, `None` ignored, under
    /// `mode` (HAProxy's `analyze_statuses` table).
    fn verdict(self, mode: Observe) -> Option<bool> {
        match (self, mode) {
            (Outcome::ConnectOk, Observe::Layer4) => Some(true),
            (Outcome::ConnectOk, Observe::Layer7) => None,
            (Outcome::ConnectError, _) => Some(false),
            (_, Observe::Layer4) => None,
            (Outcome::Status(code), Observe::Layer7) => {
                Some(!((500..600).contains(&code) && code != 501 && code != 505))
            }
            (_, Observe::Layer7) => Some(false),
        }
    }

    /// HAProxy's words for it, used in the `Health analyze` info.
    fn describe(self) -> &'static str {
        match self {
            Outcome::ConnectOk => "L4 successful connection",
            Outcome::ConnectError => "L4 unsuccessful connection",
            Outcome::Status(code) if (500..600).contains(&code) => "Wrong http response",
            Outcome::Status(_) => "Correct http response",
            Outcome::InvalidResponse => "Invalid http response",
            Outcome::ReadError => "Read error (http)",
            Outcome::ReadTimeout => "Read timeout (http)",
            Outcome::Closed => "Close from server (http)",
        }
    }
}

/// Cheap, cloneable handle through which the data plane reports outcomes.
/// The check tasks of the current config are registered in it; a reload
/// replaces the registration, so one handle serves for the node's life.
///
/// # Call sites (data plane)
///
/// Create one `Observer` when the node starts, pass the same one to
/// [`crate::health::start`] at start and on every reload, hand clones
/// to the request path, and report each attempt on a server:
///
/// ```ignore
/// // after each connect attempt (TCP and HTTP mode):
/// observer.report(&backend.name, &server.name, Outcome::ConnectOk); // or ConnectError
/// // HTTP mode, once the response head is parsed, or reading it failed:
/// observer.report(&backend.name, &server.name, Outcome::Status(code));
/// // ... or InvalidResponse, ReadTimeout, ReadError, Closed
/// ```
///
/// `report` is cheap (one atomic pointer load, an early return when no
/// server is observed, else two hash lookups and an atomic add), never
/// blocks and never fails.
#[derive(Clone, Default)]
pub struct Observer {
    registry: Arc<ArcSwap<Registry>>,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer").finish_non_exhaustive()
    }
}

/// Observed servers: backend name -> server name -> state.
pub(crate) type Registry = HashMap<Box<str>, HashMap<Box<str>, Arc<Passive>>>;

impl Observer {
    /// Report one outcome for `backend/server`. A no-op for servers
    /// without `observe` (or without `check`).
    pub fn report(&self, backend: &str, server: &str, outcome: Outcome) {
        let registry = self.registry.load();
        if registry.is_empty() {
            return;
        }
        if let Some(passive) = registry.get(backend).and_then(|b| b.get(server)) {
            passive.record(outcome);
        }
    }

    pub(crate) fn install(&self, registry: Registry) {
        self.registry.store(Arc::new(registry));
    }
}

/// One observed server: its error count and the way to its check task.
#[derive(Debug)]
pub struct Passive {
    mode: Observe,
    limit: u32,
    errors: AtomicU32,
    /// To the server's check task: the `Health analyze` info text.
    events: mpsc::Sender<String>,
}

impl Passive {
    /// State for one server, and the receiving end for its check task.
    pub fn new(mode: Observe, limit: u32) -> (Arc<Passive>, mpsc::Receiver<String>) {
        let (events, rx) = mpsc::channel(4);
        let passive = Passive {
            mode,
            limit: limit.max(1),
            errors: AtomicU32::new(0),
            events,
        };
        (Arc::new(passive), rx)
    }

    fn record(&self, outcome: Outcome) {
        match outcome.verdict(self.mode) {
            None => {}
            Some(true) => self.clear(),
            Some(false) => {
                let n = self.errors.fetch_add(1, Ordering::Relaxed) + 1;
                if n >= self.limit {
                    self.errors.store(0, Ordering::Relaxed);
                    let info = format!(
                        "Detected {n} consecutive errors, last one was: {}",
                        outcome.describe()
                    );
                    // Full means the task has actions queued already; one
                    // more would add nothing.
                    let _ = self.events.try_send(info);
                }
            }
        }
    }

    /// A success (real traffic or a passed check) ends the error run.
    pub fn clear(&self) {
        self.errors.store(0, Ordering::Relaxed);
    }
}
