//! Lock-free counters shared by the request path and the stats surfaces.
//!
//! Relaxed atomics are enough: each counter is independent and readers only
//! need eventually consistent totals (as HAProxy's stats).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

/// HTTP response class, as in HAProxy's `hrsp_1xx` .. `hrsp_other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    C1xx,
    C2xx,
    C3xx,
    C4xx,
    C5xx,
    Other,
}

impl StatusClass {
    /// Class of a status code.
    pub fn of(status: u16) -> StatusClass {
        match status {
            100..=199 => StatusClass::C1xx,
            200..=299 => StatusClass::C2xx,
            300..=399 => StatusClass::C3xx,
            400..=499 => StatusClass::C4xx,
            500..=599 => StatusClass::C5xx,
            _ => StatusClass::Other,
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

/// Counters of one server.
#[derive(Debug, Default)]
pub struct ServerCounters {
    /// Sessions (TCP connections / HTTP requests) in flight now.
    cur: AtomicU32,
    /// Highest `cur` seen.
    pub max: AtomicU32,
    /// Sessions ever sent here.
    pub total: AtomicU64,
    /// Bytes from client to server.
    pub bytes_in: AtomicU64,
    /// Bytes from server to client.
    pub bytes_out: AtomicU64,
    /// Failed connection attempts (`econ`).
    pub conn_errors: AtomicU64,
    /// Failed responses (`eresp`).
    pub resp_errors: AtomicU64,
    /// Retries (`wretr`).
    pub retries: AtomicU64,
    /// Redispatches away from this server (`wredis`).
    pub redispatches: AtomicU64,
    /// Server-side TCP connections ever opened.
    pub connects: AtomicU64,
    responses: [AtomicU64; 6],
}

impl ServerCounters {
    /// Sessions in flight now.
    pub fn current(&self) -> u32 {
        self.cur.load(Relaxed)
    }

    /// Take a session slot if the server is below `maxconn` (0/None = no limit).
    pub fn try_acquire(&self, maxconn: Option<u32>) -> bool {
        let limit = match maxconn {
            Some(m) if m > 0 => m,
            _ => u32::MAX,
        };
        let mut cur = self.cur.load(Relaxed);
        loop {
            if cur >= limit {
                return false;
            }
            match self
                .cur
                .compare_exchange_weak(cur, cur + 1, Relaxed, Relaxed)
            {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        self.total.fetch_add(1, Relaxed);
        self.max.fetch_max(cur + 1, Relaxed);
        true
    }

    /// Give a slot back.
    pub fn release(&self) {
        self.cur.fetch_sub(1, Relaxed);
    }

    /// Count one response.
    pub fn count_response(&self, status: u16) {
        self.responses[StatusClass::of(status).index()].fetch_add(1, Relaxed);
    }

    /// Responses seen in a class.
    pub fn responses(&self, class: StatusClass) -> u64 {
        self.responses[class.index()].load(Relaxed)
    }
}

/// Counters of one frontend or backend.
#[derive(Debug, Default)]
pub struct ProxyCounters {
    /// Connections (frontend) or sessions (backend) open now.
    pub cur: AtomicU32,
    pub max: AtomicU32,
    pub total: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// HTTP requests.
    pub requests: AtomicU64,
    /// Requests that could not be parsed or timed out (`ereq`).
    pub req_errors: AtomicU64,
    /// Requests that found no server (`503` before connect).
    pub no_server: AtomicU64,
    responses: [AtomicU64; 6],
}

impl ProxyCounters {
    /// One more open session.
    pub fn open(&self) {
        let now = self.cur.fetch_add(1, Relaxed) + 1;
        self.total.fetch_add(1, Relaxed);
        self.max.fetch_max(now, Relaxed);
    }
    /// One session fewer.
    pub fn close(&self) {
        self.cur.fetch_sub(1, Relaxed);
    }
    /// Count one response.
    pub fn count_response(&self, status: u16) {
        self.responses[StatusClass::of(status).index()].fetch_add(1, Relaxed);
    }
    /// Responses seen in a class.
    pub fn responses(&self, class: StatusClass) -> u64 {
        self.responses[class.index()].load(Relaxed)
    }
}
