//! Backend-only families: queue, sums over servers, latency histogram.

use super::text::{Kind, Writer};
use crate::routing::{BackendRt, ServerCounters};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// A server counter summed over a backend's servers.
pub(super) fn server_sum(b: &BackendRt, get: fn(&ServerCounters) -> &AtomicU64) -> u64 {
    b.servers
        .iter()
        .map(|s| get(&s.shared.counters).load(Relaxed))
        .sum()
}

pub(super) fn families(w: &mut Writer, backends: &[Arc<BackendRt>]) {
    type Get = fn(&BackendRt) -> u64;
    let families: [(&str, Kind, &str, Get); 7] = [
        (
            "current_queue",
            Kind::Gauge,
            "Requests waiting for a server.",
            |b| b.queue.waiting.load(Relaxed) as u64,
        ),
        (
            "connection_errors_total",
            Kind::Counter,
            "Failed connects.",
            |b| server_sum(b, |c| &c.conn_errors),
        ),
        (
            "response_errors_total",
            Kind::Counter,
            "Failed responses.",
            |b| server_sum(b, |c| &c.resp_errors),
        ),
        ("retries_total", Kind::Counter, "Connection retries.", |b| {
            server_sum(b, |c| &c.retries)
        }),
        ("redispatches_total", Kind::Counter, "Redispatches.", |b| {
            server_sum(b, |c| &c.redispatches)
        }),
        (
            "no_server_total",
            Kind::Counter,
            "Requests that found no server.",
            |b| b.counters.no_server.load(Relaxed),
        ),
        (
            "active_servers",
            Kind::Gauge,
            "Servers taking new traffic.",
            |b| b.servers.iter().filter(|s| s.usable()).count() as u64,
        ),
    ];
    for (suffix, kind, help, get) in families {
        let name = format!("shoal_backend_{suffix}");
        w.family(&name, kind, help);
        for b in backends {
            w.sample(&name, &[("proxy", &b.name)], get(b));
        }
    }
    latency(w, backends);
}

/// `shoal_backend_http_request_duration_seconds`, from the lock-free
/// histogram in the backend's counters.
fn latency(w: &mut Writer, backends: &[Arc<BackendRt>]) {
    let name = "shoal_backend_http_request_duration_seconds";
    let (bucket, sum, count) = (
        format!("{name}_bucket"),
        format!("{name}_sum"),
        format!("{name}_count"),
    );
    w.family(
        name,
        Kind::Histogram,
        "Time from request to response headers, queue and connect included.",
    );
    for b in backends {
        let counts = b.counters.latency.read();
        let proxy: &str = &b.name;
        for (bound, n) in counts.bounds_us.iter().zip(&counts.cumulative) {
            let le = (*bound as f64 / 1e6).to_string();
            w.sample(&bucket, &[("proxy", proxy), ("le", &le)], n);
        }
        w.sample(&bucket, &[("proxy", proxy), ("le", "+Inf")], counts.count());
        w.sample(&sum, &[("proxy", proxy)], counts.sum_us as f64 / 1e6);
        w.sample(&count, &[("proxy", proxy)], counts.count());
    }
}
