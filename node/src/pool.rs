//! Idle keep-alive connections to one server, shared by all clients.
//!
//! Shoal reuses server connections across clients (HAProxy's
//! `http-reuse always`), which is what makes keep-alive pay off behind a
//! proxy. A connection goes back to the pool only after its response body
//! has been read to the end; one that the server closed meanwhile is found
//! out by `ready()`, or by `try_send_request` handing the request back.

use crate::http::Upload;
use hyper::client::conn::http1::SendRequest;
use std::sync::Mutex;

/// Idle connections kept per server at most; more are closed.
const MAX_IDLE: usize = 512;

/// A sender for requests to one server.
pub type Sender = SendRequest<Upload>;

/// A per-server stack of idle connections (most recently used first, so
/// the warmest connection is reused and cold ones age out).
#[derive(Default)]
pub struct Pool {
    idle: Mutex<Vec<Sender>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pool({} idle)", self.idle_count())
    }
}

impl Pool {
    /// An idle connection that is not known to be closed.
    pub fn take(&self) -> Option<Sender> {
        let mut idle = self.lock();
        while let Some(sender) = idle.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    /// Return a connection after a complete exchange.
    pub fn put(&self, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.lock();
        if idle.len() < MAX_IDLE {
            idle.push(sender);
        }
    }

    /// Close every idle connection (the server moved or left service).
    pub fn flush(&self) {
        self.lock().clear();
    }

    /// How many idle connections are pooled now.
    pub fn idle_count(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Sender>> {
        // The vector is valid whatever a panicking holder did.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}
