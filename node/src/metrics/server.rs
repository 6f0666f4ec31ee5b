//! Per-server families, including HAProxy-exporter-style state and check
//! status gauges (one series per possible value, 1 for the current one).

use super::text::{Kind, Writer};
use super::CLASSES;
use crate::routing::{AdminState, OpState, ServerRt, Snapshot};
use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;

/// Server states of `shoal_server_status`, as HAProxy's exporter lists them.
const SERVER_STATES: [&str; 5] = ["DOWN", "UP", "MAINT", "DRAIN", "NOLB"];

/// Check statuses of `shoal_server_check_status` (HAProxy's `check_status`).
const CHECK_STATES: [&str; 16] = [
    "UNK", "INI", "SOCKERR", "L4OK", "L4TOUT", "L4CON", "L6OK", "L6TOUT", "L6RSP", "L7OK", "L7OKC",
    "L7TOUT", "L7RSP", "L7STS", "EXOK", "EXNOK",
];

/// The `state` label of `shoal_server_status`, in the exporter's words.
fn state_word(server: &ServerRt) -> &'static str {
    match (server.state.admin, server.state.op) {
        (AdminState::Maint, _) => "MAINT",
        (AdminState::Drain, _) => "DRAIN",
        (_, OpState::Down) => "DOWN",
        (_, OpState::Stopping) => "NOLB",
        (_, OpState::Up) => "UP",
    }
}

pub(super) fn families(w: &mut Writer, snapshot: &Snapshot) {
    type Get = fn(&ServerRt) -> u64;
    let servers: Vec<(&str, &ServerRt)> = snapshot
        .backends
        .iter()
        .flat_map(|b| b.servers.iter().map(move |s| (&*b.name, s)))
        .collect();
    let families: [(&str, Kind, &str, Get); 11] = [
        ("current_sessions", Kind::Gauge, "Current sessions.", |s| {
            u64::from(s.shared.counters.current())
        }),
        ("max_sessions", Kind::Gauge, "Most sessions at once.", |s| {
            u64::from(s.shared.counters.max.load(Relaxed))
        }),
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
            "Redispatches away.",
            |s| s.shared.counters.redispatches.load(Relaxed),
        ),
        ("weight", Kind::Gauge, "Current weight.", |s| {
            u64::from(s.state.weight)
        }),
        ("check_up", Kind::Gauge, "1 while operationally UP.", |s| {
            u64::from(s.state.op == OpState::Up)
        }),
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
        let current = state_word(s);
        for state in SERVER_STATES {
            let labels = [("proxy", *proxy), ("server", &s.name), ("state", state)];
            w.sample(name, &labels, u8::from(state == current));
        }
    }
    checks(w, snapshot, &servers);
}

/// Check status and duration of servers whose checks are configured and
/// running.
fn checks(w: &mut Writer, snapshot: &Snapshot, servers: &[(&str, &ServerRt)]) {
    let configured: HashSet<(&str, &str)> = snapshot
        .config
        .proxies
        .iter()
        .flat_map(|p| {
            let checked = p.servers.iter().filter(|s| s.check);
            checked.map(|s| (&*p.name, &*s.name))
        })
        .collect();
    let checked: Vec<_> = servers
        .iter()
        .filter(|(p, s)| s.state.check_enabled && configured.contains(&(*p, &*s.name)))
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
        let current = match report.status {
            "" => "INI",
            status => status,
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
