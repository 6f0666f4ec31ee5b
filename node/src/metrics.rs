//! Prometheus metrics, read from the live counters at scrape time.
//!
//! Nothing is registered or updated per request: a scrape walks the current
//! [`Snapshot`] and reads the same atomics the stats page and `show stat`
//! read. The only request-path cost is the latency histogram's two atomic
//! adds (`ProxyCounters::record_latency`). Names follow HAProxy's exporter
//! with a `shoal_` prefix and `proxy`/`server` labels:
//! `shoal_frontend_current_sessions{proxy="fe"}`,
//! `shoal_server_check_status{proxy="app",server="s1",state="L4OK"} 1`.

mod backend;
mod server;
mod text;

pub use text::CONTENT_TYPE;

use crate::routing::{ProxyCounters, Snapshot, StatusClass};
use std::sync::atomic::Ordering::Relaxed;
use text::{Kind, Writer};

/// Append this node's Raft figures to a rendered exposition: term,
/// leader (-1: none known), commit and applied index, and quorum.
pub fn cluster(text: &mut String, m: &shoal_raft::cluster::Metrics) {
    let mut w = Writer::default();
    let node = m.node.to_string();
    let labels = [("node", node.as_str())];
    let index = |i: Option<u64>| i.map_or(-1, |i| i64::try_from(i).unwrap_or(i64::MAX));
    let families: [(&str, &str, i64); 5] = [
        (
            "shoal_cluster_term",
            "Current Raft term.",
            index(Some(m.term)),
        ),
        (
            "shoal_cluster_leader",
            "Node id of the leader this node knows (-1: none).",
            index(m.leader),
        ),
        (
            "shoal_cluster_committed_index",
            "Highest log index this node knows committed (-1: none).",
            index(m.committed),
        ),
        (
            "shoal_cluster_applied_index",
            "Highest log index applied to this node's state (-1: none).",
            index(m.applied),
        ),
        (
            "shoal_cluster_quorum",
            "1 when a leader that reaches a majority of the voters is known.",
            i64::from(m.quorum),
        ),
    ];
    for (name, help, value) in families {
        w.family(name, Kind::Gauge, help);
        w.sample(name, &labels, value);
    }
    text.push_str(&w.finish());
}

/// Append the cluster certificates' expiry: one gauge per certificate,
/// `not_after` in seconds since the Unix epoch, for alerts such as
/// `shoal_certificate_expiry_seconds - time() < 30 * 86400`. Nothing when
/// the cluster holds none.
pub fn certificates(text: &mut String, expiries: &[(String, i64)]) {
    if expiries.is_empty() {
        return;
    }
    let mut w = Writer::default();
    let name = "shoal_certificate_expiry_seconds";
    w.family(
        name,
        Kind::Gauge,
        "When a cluster certificate (shoal cert add) expires, in seconds since the Unix epoch.",
    );
    for (cert, not_after) in expiries {
        w.sample(name, &[("name", cert.as_str())], not_after);
    }
    text.push_str(&w.finish());
}

/// Response classes with their `code` label values.
const CLASSES: [(StatusClass, &str); 6] = [
    (StatusClass::C1xx, "1xx"),
    (StatusClass::C2xx, "2xx"),
    (StatusClass::C3xx, "3xx"),
    (StatusClass::C4xx, "4xx"),
    (StatusClass::C5xx, "5xx"),
    (StatusClass::Other, "other"),
];

/// What frontends and backends both report.
struct ProxyNumbers<'a> {
    proxy: &'a str,
    counters: &'a ProxyCounters,
    /// Bytes in and out: the proxy's own counters for frontends, the sum
    /// over servers for backends (where the data plane counts them, as
    /// `show stat` does).
    bytes: (u64, u64),
}

/// The whole exposition for one snapshot.
pub fn render(snapshot: &Snapshot) -> String {
    let mut w = Writer::default();
    let fronts: Vec<ProxyNumbers> = snapshot
        .frontends
        .iter()
        .map(|f| ProxyNumbers {
            proxy: &f.name,
            counters: &f.counters,
            bytes: (
                f.counters.bytes_in.load(Relaxed),
                f.counters.bytes_out.load(Relaxed),
            ),
        })
        .collect();
    let backs: Vec<ProxyNumbers> = snapshot
        .backends
        .iter()
        .map(|b| ProxyNumbers {
            proxy: &b.name,
            counters: &b.counters,
            bytes: (
                backend::server_sum(b, |c| &c.bytes_in),
                backend::server_sum(b, |c| &c.bytes_out),
            ),
        })
        .collect();
    proxy_families(&mut w, "frontend", &fronts);
    let name = "shoal_frontend_request_errors_total";
    w.family(name, Kind::Counter, "Invalid or timed-out requests.");
    for f in &fronts {
        let errors = f.counters.req_errors.load(Relaxed);
        w.sample(name, &[("proxy", f.proxy)], errors);
    }
    proxy_families(&mut w, "backend", &backs);
    backend::families(&mut w, &snapshot.backends);
    server::families(&mut w, snapshot);
    let name = "shoal_log_lines_dropped_total";
    w.family(
        name,
        Kind::Counter,
        "Access-log lines dropped because the log writer fell behind.",
    );
    w.sample(name, &[], crate::log::DROPPED.load(Relaxed));
    let name = "shoal_stick_writes_dropped_total";
    w.family(
        name,
        Kind::Counter,
        "Stick-table writes never replicated (queue full, or a batch kept for retry pushed out); they stay in this node's table.",
    );
    w.sample(name, &[], crate::stick::WRITES_DROPPED.load(Relaxed));
    w.finish()
}

/// Families every frontend and backend has.
fn proxy_families(w: &mut Writer, scope: &str, list: &[ProxyNumbers]) {
    type Get = fn(&ProxyNumbers) -> u64;
    let families: [(&str, Kind, &str, Get); 6] = [
        ("current_sessions", Kind::Gauge, "Current sessions.", |n| {
            u64::from(n.counters.cur.load(Relaxed))
        }),
        ("max_sessions", Kind::Gauge, "Most sessions at once.", |n| {
            u64::from(n.counters.max.load(Relaxed))
        }),
        ("sessions_total", Kind::Counter, "Sessions ever.", |n| {
            n.counters.total.load(Relaxed)
        }),
        (
            "bytes_in_total",
            Kind::Counter,
            "Bytes from clients.",
            |n| n.bytes.0,
        ),
        ("bytes_out_total", Kind::Counter, "Bytes to clients.", |n| {
            n.bytes.1
        }),
        (
            "http_requests_total",
            Kind::Counter,
            "HTTP requests.",
            |n| n.counters.requests.load(Relaxed),
        ),
    ];
    for (suffix, kind, help, get) in families {
        let name = format!("shoal_{scope}_{suffix}");
        w.family(&name, kind, help);
        for n in list {
            w.sample(&name, &[("proxy", n.proxy)], get(n));
        }
    }
    let name = format!("shoal_{scope}_http_responses_total");
    w.family(&name, Kind::Counter, "HTTP responses by status class.");
    for n in list {
        for (class, code) in CLASSES {
            let labels = [("proxy", n.proxy), ("code", code)];
            w.sample(&name, &labels, n.counters.responses(class));
        }
    }
}
