//! The access-log facts of one HTTP request, gathered as it goes and
//! written as an `httplog` line (see [`crate::log`]) when it ends.

use super::conn::Timing;
use crate::log::Record;
use crate::routing::{BackendRt, FrontendRt};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

/// What the access log says about one request; filled in as it goes.
pub(super) struct Outcome {
    pub frontend: Arc<FrontendRt>,
    pub backend: Option<Arc<BackendRt>>,
    /// Index of the server in `backend`.
    pub server: Option<usize>,
    pub peer: SocketAddr,
    pub timing: Timing,
    /// `METHOD URI VERSION`, only built when logging is on.
    pub request_line: Option<String>,
    pub t_queue: i64,
    pub t_connect: i64,
    pub t_response: i64,
    /// `None`: no answer was sent (logged as -1).
    pub status: Option<u16>,
    /// Bytes sent to the client, headers included.
    pub bytes: u64,
    pub termination: &'static str,
    /// Answered by the stats page (logged as server `<STATS>`).
    pub stats: bool,
}

impl Outcome {
    /// The log facts of a request that has not been routed yet.
    pub fn new(
        frontend: Arc<FrontendRt>,
        peer: SocketAddr,
        timing: Timing,
        request_line: Option<String>,
    ) -> Outcome {
        Outcome {
            frontend,
            backend: None,
            server: None,
            peer,
            timing,
            request_line,
            t_queue: -1,
            t_connect: -1,
            t_response: -1,
            status: None,
            bytes: 0,
            termination: "--",
            stats: false,
        }
    }

    /// Write the `httplog` line, if logging is on.
    pub fn emit(&self) {
        let Some(request_line) = &self.request_line else {
            return;
        };
        let fe = &self.frontend;
        let (backend, server) = match &self.backend {
            Some(b) => (
                &*b.name,
                self.server.map_or("<NOSRV>", |i| &*b.servers[i].name),
            ),
            None if self.stats => (&*fe.name, "<STATS>"),
            None => (&*fe.name, "<NOSRV>"),
        };
        let ms = |d: Duration| d.as_millis() as i64;
        let record = Record {
            client: self.peer,
            accepted: self.timing.start_at,
            frontend: &fe.name,
            backend,
            server,
            t_request: ms(self.timing.head_done - self.timing.start),
            t_queue: self.t_queue,
            t_connect: self.t_connect,
            t_response: self.t_response,
            t_total: ms(self.timing.start.elapsed()),
            // 0: no answer was sent (logged as -1).
            status: self.status.unwrap_or(0),
            bytes: self.bytes,
            termination: self.termination,
            active_conns: crate::listener::active_connections(),
            frontend_conns: fe.counters.cur.load(Relaxed),
            backend_conns: self
                .backend
                .as_ref()
                .map_or(0, |b| b.counters.cur.load(Relaxed)),
            server_conns: match (&self.backend, self.server) {
                (Some(b), Some(i)) => b.servers[i].shared.counters.current(),
                _ => 0,
            },
            retries: 0,
            server_queue: 0,
            backend_queue: self
                .backend
                .as_ref()
                .map_or(0, |b| b.queue.waiting.load(Relaxed)),
            request_line,
        };
        crate::log::emit(record.http_line());
    }
}
