//! JSON views of backends, servers and stick tables, read from a snapshot.

use crate::routing::{BackendRt, OpState, ServerRt, Snapshot};
use crate::stick::{EntryView, StickTable};
use serde::Serialize;
use shoal_proto::config::{Balance, Mode};
use std::sync::atomic::Ordering::Relaxed;
use utoipa::ToSchema;

/// A backend. `servers` is filled for `GET /v1/backends/{backend}` only.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackendView {
    pub name: String,
    #[schema(example = "http")]
    pub mode: &'static str,
    /// The `balance` line as written, e.g. `roundrobin` or `hdr(host)`.
    pub balance: String,
    /// `UP` while at least one server may take traffic, else `DOWN`.
    #[schema(example = "UP")]
    pub status: &'static str,
    pub active_servers: usize,
    pub current_sessions: u32,
    pub total_sessions: u64,
    pub queue: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub servers: Option<Vec<ServerView>>,
}

/// The last health-check result of a server.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckView {
    pub enabled: bool,
    /// HAProxy's check status code (`L4OK`, `L7STS`, `L4CON`...).
    #[schema(example = "L4OK")]
    pub status: &'static str,
    pub code: Option<i32>,
    pub duration_ms: u64,
    pub reason: String,
}

/// A server: state, settings and counters.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerView {
    pub backend: String,
    pub name: String,
    pub addr: String,
    /// The `status` of `show stat`: UP, DOWN, MAINT, DRAIN, NOLB,
    /// `no check`, `UP 1/3` (going down)...
    pub status: String,
    /// `ready`, `drain` or `maint`.
    #[schema(example = "ready")]
    pub admin_state: &'static str,
    /// `up`, `down` or `stopping`.
    #[schema(example = "up")]
    pub health: &'static str,
    pub weight: u32,
    pub config_weight: u32,
    pub backup: bool,
    pub maxconn: Option<u32>,
    pub check: CheckView,
    pub current_sessions: u32,
    pub max_sessions: u32,
    pub total_sessions: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub connection_errors: u64,
    pub response_errors: u64,
    pub retries: u64,
    pub redispatches: u64,
}

/// A stick table; `entries` is filled for `GET /v1/tables/{table}` only.
#[derive(Debug, Serialize, ToSchema)]
pub struct TableView {
    pub name: String,
    /// The key type: `ip`, `ipv6`, `integer` or `string`.
    #[serde(rename = "type")]
    #[schema(example = "ip")]
    pub key_type: &'static str,
    pub size: u64,
    pub used: usize,
    pub expire_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries: Option<Vec<EntryJson>>,
}

/// One stick-table entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntryJson {
    pub key: String,
    pub server_id: usize,
    pub server: String,
    pub expires_in_ms: Option<u64>,
}

/// HAProxy's word for an operational state.
pub fn health_word(op: OpState) -> &'static str {
    match op {
        OpState::Up => "up",
        OpState::Down => "down",
        OpState::Stopping => "stopping",
    }
}

/// The `balance` line as written.
pub fn balance_word(b: &Balance) -> String {
    match b {
        Balance::RoundRobin => "roundrobin".into(),
        Balance::StaticRr => "static-rr".into(),
        Balance::LeastConn => "leastconn".into(),
        Balance::First => "first".into(),
        Balance::Source => "source".into(),
        Balance::Uri { whole: false } => "uri".into(),
        Balance::Uri { whole: true } => "uri whole".into(),
        Balance::UrlParam(name) => format!("url_param {name}"),
        Balance::Hdr(name) => format!("hdr({name})"),
        Balance::Random { draws } => format!("random({draws})"),
    }
}

/// A backend's view; with its servers when `with_servers`.
pub fn backend(snapshot: &Snapshot, b: &BackendRt, with_servers: bool) -> BackendView {
    let active = b.servers.iter().filter(|s| s.usable()).count();
    BackendView {
        name: b.name.to_string(),
        mode: match b.mode {
            Mode::Http => "http",
            Mode::Tcp => "tcp",
        },
        balance: balance_word(&b.balance),
        status: if active > 0 { "UP" } else { "DOWN" },
        active_servers: active,
        current_sessions: b.counters.cur.load(Relaxed),
        total_sessions: b.counters.total.load(Relaxed),
        queue: b.queue.waiting.load(Relaxed),
        servers: with_servers.then(|| b.servers.iter().map(|s| server(snapshot, b, s)).collect()),
    }
}

/// A server's view.
pub fn server(snapshot: &Snapshot, b: &BackendRt, s: &ServerRt) -> ServerView {
    let c = &s.shared.counters;
    let report = s.shared.check_report();
    let cfg = snapshot
        .config
        .proxies
        .iter()
        .find(|p| *p.name == *b.name && p.kind.is_backend())
        .and_then(|p| p.servers.iter().find(|x| *x.name == *s.name));
    let checked = cfg.is_some_and(|c| c.check) && s.state.check_enabled;
    let (rise, fall) = cfg.map_or((2, 3), |c| (c.rise_or_default(), c.fall_or_default()));
    let status = crate::stats::server_status(&s.state, checked, report.streak, rise, fall);
    ServerView {
        backend: b.name.to_string(),
        name: s.name.to_string(),
        addr: s.addr.to_string(),
        status,
        admin_state: s.state.admin.word(),
        health: health_word(s.state.op),
        weight: s.state.weight,
        config_weight: s.config_weight,
        backup: s.backup,
        maxconn: s.maxconn,
        check: CheckView {
            enabled: s.state.check_enabled,
            status: report.status,
            code: report.code,
            duration_ms: report.duration_ms,
            reason: report.reason,
        },
        current_sessions: c.current(),
        max_sessions: c.max.load(Relaxed),
        total_sessions: c.total.load(Relaxed),
        bytes_in: c.bytes_in.load(Relaxed),
        bytes_out: c.bytes_out.load(Relaxed),
        connection_errors: c.conn_errors.load(Relaxed),
        response_errors: c.resp_errors.load(Relaxed),
        retries: c.retries.load(Relaxed),
        redispatches: c.redispatches.load(Relaxed),
    }
}

/// A table's view; with its live entries when `with_entries`.
pub fn table(t: &StickTable, with_entries: bool) -> TableView {
    TableView {
        name: t.name.to_string(),
        key_type: t.type_word(),
        size: t.config.size,
        used: t.used(),
        expire_ms: t.config.expire.map(|d| d.as_millis() as u64),
        entries: with_entries.then(|| t.dump().into_iter().map(entry).collect()),
    }
}

fn entry(e: EntryView) -> EntryJson {
    EntryJson {
        key: e.key,
        server_id: e.server_id,
        server: e.server,
        expires_in_ms: e.expires_in_ms,
    }
}
