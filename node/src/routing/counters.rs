//! Lock-free counters shared by the request path and the stats surfaces.
//!
//! Relaxed atomics are enough: each counter is independent and readers only
//! need eventually consistent totals (as HAProxy's stats).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

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
    /// Seconds since the epoch of the last session (`lastsess`); 0: never.
    last_session: AtomicU64,
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
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.last_session.store(now, Relaxed);
        true
    }

    /// Seconds since the epoch of the last session taken; 0 when none.
    pub fn last_session_unix(&self) -> u64 {
        self.last_session.load(Relaxed)
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
    /// Request latency (backends), read by `/metrics`.
    pub latency: LatencyHistogram,
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
    /// Count one request's latency in the histogram (two relaxed atomic adds).
    pub fn record_latency(&self, took: Duration) {
        self.latency.record(took);
    }
}

/// Upper bounds of the latency buckets, in microseconds (Prometheus'
/// default buckets from 1 ms to 10 s); one more bucket holds the rest.
pub const LATENCY_BOUNDS_US: [u64; 13] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000,
];

/// A fixed-bucket latency histogram: lock-free, no allocation per record.
///
/// Buckets hold plain (not cumulative) counts so that a record touches one
/// bucket; readers accumulate at scrape time.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; LATENCY_BOUNDS_US.len() + 1],
    sum_us: AtomicU64,
}

/// A read of a [`LatencyHistogram`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencyCounts {
    /// [`LATENCY_BOUNDS_US`], so readers outside this module see the bounds.
    pub bounds_us: &'static [u64],
    /// Cumulative counts per bound of [`LATENCY_BOUNDS_US`], then `+Inf`.
    pub cumulative: Vec<u64>,
    /// Sum of all recorded latencies, in microseconds.
    pub sum_us: u64,
}

impl LatencyCounts {
    /// Number of recorded latencies.
    pub fn count(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }
}

impl LatencyHistogram {
    /// Count one latency.
    pub fn record(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let slot = LATENCY_BOUNDS_US
            .iter()
            .position(|&bound| us <= bound)
            .unwrap_or(LATENCY_BOUNDS_US.len());
        self.buckets[slot].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }

    /// The counts now, cumulative as Prometheus expects.
    pub fn read(&self) -> LatencyCounts {
        let mut total = 0u64;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                total = total.saturating_add(b.load(Relaxed));
                total
            })
            .collect();
        LatencyCounts {
            bounds_us: &LATENCY_BOUNDS_US,
            cumulative,
            sum_us: self.sum_us.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = LatencyHistogram::default();
        h.record(Duration::from_micros(500)); // <= 1 ms
        h.record(Duration::from_millis(1)); // bound is inclusive
        h.record(Duration::from_millis(30)); // <= 50 ms
        h.record(Duration::from_secs(60)); // +Inf only
        let c = h.read();
        assert_eq!(c.cumulative[0], 2);
        assert_eq!(c.cumulative[4], 2); // 25 ms
        assert_eq!(c.cumulative[5], 3); // 50 ms
        assert_eq!(c.cumulative[12], 3); // 10 s
        assert_eq!(c.count(), 4);
        assert_eq!(c.sum_us, 500 + 1_000 + 30_000 + 60_000_000);
    }
}
