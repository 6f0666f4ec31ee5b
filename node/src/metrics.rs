//! Prometheus metrics, read from the live counters at scrape time.
//!
//! Nothing is registered or updated per request: a scrape walks the current
//! [`Snapshot`] and reads the same atomics the stats page and `show stat`
//! read. The only request-path cost is the latency histogram's two atomic
//! adds (`ProxyCounters::record_latency`). Names follow HAProxy's exporter
//! with a `shoal_` prefix: `shoal_frontend_current_sessions{proxy="fe"}`,
//! `shoal_server_check_status{proxy="app",server="s1",state="L4OK"} 1`.

mod text;

pub use text::CONTENT_TYPE;

use crate::runtime::{
    AdminState, BackendRt, CheckReport, OpState, ProxyCounters, ServerCounters, ServerRt, Snapshot,
    StatusClass,
};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use text::{Kind, Writer};

/// Response classes with their `code` label values.
const CLASSES: [(StatusClass, &str); 6] = [
    (StatusClass::C1xx, "1xx"),
    (StatusClass::C2xx, "2xx"),
    (StatusClass::C3xx, "3xx"),
    (StatusClass::C4xx, "4xx"),
    (StatusClass::C5xx, "5xx"),
    (StatusClass::Other, "other"),
];

/// Server states of `shoal_server_status`, as HAProxy's exporter lists them.
const SERVER_STATES: [&str; 5] = ["DOWN", "UP", "MAINT", "DRAIN", "NOLB"];

/// Check statuses of `shoal_server_check_status` (HAProxy's `check_status`).
const CHECK_STATES: [&str; 16] = [
    "UNK", "INI", "SOCKERR", "L4OK", "L4TOUT", "L4CON", "L6OK", "L6TOUT", "L6RSP", "L7OK", "L7OKC",
    "L7TOUT", "L7RSP", "L7STS", "EXOK", "EXNOK",
];

/// A counter read from a frontend or backend.
type ProxyGet = fn(&ProxyCounters) -> u64;

/// Families every frontend and backend has: (suffix, kind, help, getter).
const PROXY_FAMILIES: [(&str, Kind, &str, ProxyGet); 7] = [
    ("current_sessions", Kind::Gauge, "Current sessions.", |c| {
        u64::from(c.cur.load(Relaxed))
    }),
    (
        "max_sessions",
        Kind::Gauge,
        "Highest current sessions seen.",
        |c| u64::from(c.max.load(Relaxed)),
    ),
    ("sessions_total", Kind::Counter, "Sessions ever.", |c| {
        c.total.load(Relaxed)
    }),
    (
        "bytes_in_total",
        Kind::Counter,
        "Bytes from clients.",
        |c| c.bytes_in.load(Relaxed),
    ),
    ("bytes_out_total", Kind::Counter, "Bytes to clients.", |c| {
        c.bytes_out.load(Relaxed)
    }),
    (
        "http_requests_total",
        Kind::Counter,
        "HTTP requests.",
        |c| c.requests.load(Relaxed),
    ),
    (
        "request_errors_total",
        Kind::Counter,
        "Invalid or timed-out requests.",
        |c| c.req_errors.load(Relaxed),
    ),
];

/// HAProxy's word for a server's state: `MAINT`, `DRAIN`, `DOWN`, `NOLB`,
/// `UP`, or `no check` for an up server without health checks.
pub fn server_status(server: &ServerRt) -> &'static str {
    match (server.state.admin, server.state.op) {
        (AdminState::Maint, _) => "MAINT",
        (AdminState::Drain, _) => "DRAIN",
        (_, OpState::Down) => "DOWN",
        (_, OpState::Stopping) => "NOLB",
        (_, OpState::Up) if !server.state.check_enabled => "no check",
        (_, OpState::Up) => "UP",
    }
}

/// The whole exposition for one snapshot.
pub fn render(snapshot: &Snapshot) -> String {
    let mut w = Writer::default();
    let fronts: Vec<(&str, &ProxyCounters)> = snapshot
        .frontends
        .iter()
        .map(|f| (&*f.name, &*f.counters))
        .collect();
    let backs: Vec<(&str, &ProxyCounters)> = snapshot
        .backends
        .iter()
        .map(|b| (&*b.name, &*b.counters))
        .collect();
    for (scope, list) in [("frontend", &fronts), ("backend", &backs)] {
        proxy_families(&mut w, scope, list);
    }
    backend_families(&mut w, &snapshot.backends);
    server_families(&mut w, &snapshot.backends);
    w.finish()
}

fn proxy_families(w: &mut Writer, scope: &str, list: &[(&str, &ProxyCounters)]) {
    for (suffix, kind, help, get) in PROXY_FAMILIES {
        let name = format!("shoal_{scope}_{suffix}");
        w.family(&name, kind, help);
        for (proxy, c) in list {
            w.sample(&name, &[("proxy", proxy)], get(c));
        }
    }
    let name = format!("shoal_{scope}_http_responses_total");
    w.family(&name, Kind::Counter, "HTTP responses by status class.");
    for (proxy, c) in list {
        for (class, code) in CLASSES {
            w.sample(
                &name,
                &[("proxy", proxy), ("code", code)],
                c.responses(class),
            );
        }
    }
}

/// A server counter summed over a backend's servers.
fn server_sum(b: &BackendRt, get: fn(&ServerCounters) -> &AtomicU64) -> u64 {
    b.servers
        .iter()
        .map(|s| get(&s.shared.counters).load(Relaxed))
        .sum()
}

/// Backend-only families: queue, sums over servers, latency histogram.
fn backend_families(w: &mut Writer, backends: &[Arc<BackendRt>]) {
    type BackendGet = fn(&BackendRt) -> u64;
    let families: [(&str, Kind, &str, BackendGet); 7] = [
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
        (
            "redispatches_total",
            Kind::Counter,
            "Redispatches to another server.",
            |b| server_sum(b, |c| &c.redispatches),
        ),
        (
            "no_server_total",
            Kind::Counter,
            "Requests that found no server.",
            |b| b.counters.no_server.load(Relaxed),
        ),
        (
            "active_servers",
            Kind::Gauge,
            "Servers that may take new traffic.",
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
    latency_family(w, backends);
}

fn latency_family(w: &mut Writer, backends: &[Arc<BackendRt>]) {
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

/// Per-server families.
fn server_families(w: &mut Writer, backends: &[Arc<BackendRt>]) {
    type ServerGet = fn(&ServerRt) -> u64;
    let servers: Vec<(&str, &ServerRt)> = backends
        .iter()
        .flat_map(|b| b.servers.iter().map(move |s| (&*b.name, s)))
        .collect();
    let families: [(&str, Kind, &str, ServerGet); 11] = [
        ("current_sessions", Kind::Gauge, "Current sessions.", |s| {
            u64::from(s.shared.counters.current())
        }),
        (
            "max_sessions",
            Kind::Gauge,
            "Highest current sessions seen.",
            |s| u64::from(s.shared.counters.max.load(Relaxed)),
        ),
        ("sessions_total", Kind::Counter, "Sessions ever.", |s| {
            s.shared.counters.total.load(Relaxed)
        }),
        (
            "bytes_in_total",
            Kind::Counter,
            "Bytes toward the server.",
            |s| s.shared.counters.bytes_in.load(Relaxed),
        ),
        (
            "bytes_out_total",
            Kind::Counter,
            "Bytes from the server.",
            |s| s.shared.counters.bytes_out.load(Relaxed),
        ),
        (
            "connection_errors_total",
            Kind::Counter,
            "Failed connects.",
            |s| s.shared.counters.conn_errors.load(Relaxed),
        ),
        (
            "response_errors_total",
            Kind::Counter,
            "Failed responses.",
            |s| s.shared.counters.resp_errors.load(Relaxed),
        ),
        ("retries_total", Kind::Counter, "Connection retries.", |s| {
            s.shared.counters.retries.load(Relaxed)
        }),
        (
            "redispatches_total",
            Kind::Counter,
            "Redispatches away from this server.",
            |s| s.shared.counters.redispatches.load(Relaxed),
        ),
        ("weight", Kind::Gauge, "Current weight.", |s| {
            u64::from(s.state.weight)
        }),
        (
            "check_up",
            Kind::Gauge,
            "1 when health checks say UP.",
            |s| u64::from(s.state.op == OpState::Up),
        ),
    ];
    for (suffix, kind, help, get) in families {
        let name = format!("shoal_server_{suffix}");
        w.family(&name, kind, help);
        for (proxy, s) in &servers {
            w.sample(&name, &[("proxy", proxy), ("server", &s.name)], get(s));
        }
    }
    let name = "shoal_server_http_responses_total";
    w.family(name, Kind::Counter, "HTTP responses by status class.");
    for (proxy, s) in &servers {
        for (class, code) in CLASSES {
            let labels = [("proxy", *proxy), ("server", &s.name), ("code", code)];
            w.sample(name, &labels, s.shared.counters.responses(class));
        }
    }
    let name = "shoal_server_status";
    w.family(name, Kind::Gauge, "Server state: 1 for the current one.");
    for (proxy, s) in &servers {
        let current = match server_status(s) {
            "no check" => "UP",
            other => other,
        };
        for state in SERVER_STATES {
            let labels = [("proxy", *proxy), ("server", &s.name), ("state", state)];
            w.sample(name, &labels, u8::from(state == current));
        }
    }
    check_families(w, &servers);
}

/// Check status and duration of servers with health checks.
fn check_families(w: &mut Writer, servers: &[(&str, &ServerRt)]) {
    let checked: Vec<(&str, &ServerRt, CheckReport)> = servers
        .iter()
        .filter(|(_, s)| s.state.check_enabled)
        .map(|(p, s)| (*p, *s, s.shared.check_report()))
        .collect();
    let name = "shoal_server_check_status";
    w.family(
        name,
        Kind::Gauge,
        "Last check status: 1 for the current one.",
    );
    for (proxy, s, report) in &checked {
        // No result yet reads as HAProxy's initial status.
        let current = if report.status.is_empty() {
            "INI"
        } else {
            report.status
        };
        for state in CHECK_STATES {
            let labels = [("proxy", *proxy), ("server", &s.name), ("state", state)];
            w.sample(name, &labels, u8::from(state == current));
        }
        if !CHECK_STATES.contains(&current) {
            let labels = [("proxy", *proxy), ("server", &s.name), ("state", current)];
            w.sample(name, &labels, 1);
        }
    }
    let name = "shoal_server_check_duration_seconds";
    w.family(name, Kind::Gauge, "Duration of the last check.");
    for (proxy, s, report) in &checked {
        let labels = [("proxy", *proxy), ("server", &*s.name)];
        w.sample(name, &labels, report.duration_ms as f64 / 1e3);
    }
}
