//! A connection upgraded after `101 Switching Protocols` (WebSocket) or a
//! successful CONNECT: both sides are copied by the TCP-mode loop, whose
//! inactivity timeouts are `timeout tunnel` (else client/server).

use super::outcome::Outcome;
use crate::dispatch::Claim;
use crate::pool::ServerConn;
use crate::routing::BackendRt;
use shoal_proto::config::Timeouts;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tokio::net::TcpStream;

/// Everything a tunnel needs once the client's socket is handed over.
pub(super) struct Tunnel {
    pub server: ServerConn,
    pub claim: Claim,
    pub backend: Arc<BackendRt>,
    /// Client-side timeouts from the frontend, server-side from the backend.
    pub timeouts: Timeouts,
    /// The server's kill generation when the request started.
    pub kill_generation: u64,
    /// The upgrade request's log line, written when the tunnel ends.
    pub outcome: Outcome,
}

impl Tunnel {
    /// Copy both ways until both sides close, a timeout, or `shutdown
    /// sessions server`; then count and log.
    pub async fn run(mut self, client: TcpStream) {
        let shared = self.claim.server().shared.clone();
        let (up, down, termination) = tokio::select! {
            r = crate::tcp::tunnel(client, self.server.stream, &self.timeouts) => r,
            () = shared.killed(self.kill_generation) => (0, 0, "KD"),
        };
        let head = self.outcome.bytes;
        shared.counters.bytes_in.fetch_add(up, Relaxed);
        shared.counters.bytes_out.fetch_add(head + down, Relaxed);
        for counters in [&self.backend.counters, &self.outcome.frontend.counters] {
            counters.bytes_in.fetch_add(up, Relaxed);
            counters.bytes_out.fetch_add(head + down, Relaxed);
        }
        self.outcome.bytes += down;
        self.outcome.termination = termination;
        drop(self.claim);
        self.backend.counters.close();
        self.outcome.emit();
    }
}
