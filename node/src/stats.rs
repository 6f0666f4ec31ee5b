//! The stats-row model shared by `show stat` (runtime socket), the HTML
//! stats page and the JSON admin API.
//!
//! [`collect`] turns one [`Snapshot`] into HAProxy's rows, in HAProxy's
//! order: for each proxy in config order a `FRONTEND` row (frontends and
//! listens), then one row per server and a `BACKEND` row (backends and
//! listens). Every value HAProxy 2.6 prints for a row kind is either
//! measured by Shoal (a named field of [`StatRow`]) or, when Shoal does not
//! measure it (compression, rates, timings...), printed as `0` exactly
//! where HAProxy prints a value; see [`columns`]. Empty cells are HAProxy's
//! "not applicable".

mod columns;
mod info;
mod rows;
pub mod status;
#[cfg(test)]
mod tests;

pub use columns::{csv_header, Value, COLUMNS};
pub use info::{info, InfoLine};
pub use status::{check_description, server_status};

use crate::routing::{AdminState, OpState, Snapshot};
use rows::{backend_row, frontend_row, server_row};
use shoal_proto::config::{Balance, Config, Mode};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// What a row describes (HAProxy's `type` column: 0, 1, 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    Frontend,
    Backend,
    Server,
}

impl RowKind {
    /// HAProxy's numeric `type`.
    pub fn code(self) -> u64 {
        match self {
            RowKind::Frontend => 0,
            RowKind::Backend => 1,
            RowKind::Server => 2,
        }
    }
}

/// One line of `show stat`. `None` prints as an empty cell.
///
/// Field names are HAProxy's column names; [`StatRow::fields`] lists every
/// column (including the ones Shoal does not measure) in HAProxy's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatRow {
    pub pxname: String,
    /// `FRONTEND`, `BACKEND` or the server name.
    pub svname: String,
    pub kind: RowKind,
    pub mode: Mode,
    pub qcur: Option<u64>,
    pub qmax: Option<u64>,
    pub scur: u64,
    pub smax: u64,
    pub slim: Option<u64>,
    pub stot: u64,
    pub bin: u64,
    pub bout: u64,
    pub ereq: Option<u64>,
    pub econ: Option<u64>,
    pub eresp: Option<u64>,
    pub wretr: Option<u64>,
    pub wredis: Option<u64>,
    /// `OPEN`, `UP`, `DOWN`, `MAINT`, `DRAIN`, `NOLB`, `no check`, `UP 2/3`...
    pub status: String,
    pub weight: Option<u64>,
    pub act: Option<u64>,
    pub bck: Option<u64>,
    pub chkfail: Option<u64>,
    pub chkdown: Option<u64>,
    /// Seconds since the last UP/DOWN change.
    pub lastchg: Option<u64>,
    pub downtime: Option<u64>,
    pub qlimit: Option<u64>,
    pub pid: u64,
    /// Proxy id (1-based config position, as HAProxy numbers proxies).
    pub iid: u64,
    /// Server id in its backend (1-based); 0 for frontend/backend rows.
    pub sid: u64,
    pub lbtot: Option<u64>,
    pub check_status: Option<String>,
    pub check_code: Option<i64>,
    pub check_duration: Option<u64>,
    /// `hrsp_1xx`, `hrsp_2xx`, `hrsp_3xx`, `hrsp_4xx`, `hrsp_5xx`,
    /// `hrsp_other` (HTTP proxies only).
    pub hrsp: Option<[u64; 6]>,
    pub req_tot: Option<u64>,
    /// Seconds since the last session; -1 when there never was one.
    pub lastsess: Option<i64>,
    pub last_chk: Option<String>,
    pub check_desc: Option<String>,
    pub check_rise: Option<u64>,
    pub check_fall: Option<u64>,
    pub check_health: Option<u64>,
    /// `ip:port` (`[v6]:port`); hidden from `user`-level sockets.
    pub addr: Option<String>,
    /// Server cookie value, or the backend's cookie name.
    pub cookie: Option<String>,
    /// Balance algorithm (backends).
    pub algo: Option<String>,
    pub conn_tot: Option<u64>,
    pub connect: Option<u64>,
    pub srv_icur: Option<u64>,
    pub used_conn_cur: Option<u64>,
    pub uweight: Option<u64>,
    /// Server admin state (not a CSV column; for the stats page and API).
    pub admin: Option<AdminState>,
    /// Server operational state (not a CSV column).
    pub op: Option<OpState>,
    /// True for backup servers (not a CSV column; `bck` says it too).
    pub backup: bool,
}

impl StatRow {
    fn new(pxname: &str, svname: &str, kind: RowKind, mode: Mode, iid: u64) -> StatRow {
        StatRow {
            pxname: pxname.to_string(),
            svname: svname.to_string(),
            kind,
            mode,
            qcur: None,
            qmax: None,
            scur: 0,
            smax: 0,
            slim: None,
            stot: 0,
            bin: 0,
            bout: 0,
            ereq: None,
            econ: None,
            eresp: None,
            wretr: None,
            wredis: None,
            status: String::new(),
            weight: None,
            act: None,
            bck: None,
            chkfail: None,
            chkdown: None,
            lastchg: None,
            downtime: None,
            qlimit: None,
            pid: 1,
            iid,
            sid: 0,
            lbtot: None,
            check_status: None,
            check_code: None,
            check_duration: None,
            hrsp: None,
            req_tot: None,
            lastsess: None,
            last_chk: None,
            check_desc: None,
            check_rise: None,
            check_fall: None,
            check_health: None,
            addr: None,
            cookie: None,
            algo: None,
            conn_tot: None,
            connect: None,
            srv_icur: None,
            used_conn_cur: None,
            uweight: None,
            admin: None,
            op: None,
            backup: false,
        }
    }

    /// Blank what HAProxy shows only to `operator` and `admin` levels
    /// (its "legends": addresses, cookies and the algorithm).
    pub fn hide_legends(&mut self) {
        self.addr = None;
        self.cookie = None;
        self.algo = None;
    }
}

/// Seconds since the epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

static STARTED: OnceLock<u64> = OnceLock::new();

/// Record the process start (first call wins); the node calls it at boot.
pub fn mark_started() {
    STARTED.get_or_init(unix_now);
}

/// When the process started, in seconds since the epoch.
pub fn started_unix() -> u64 {
    *STARTED.get_or_init(unix_now)
}

/// The id HAProxy gives the proxy at `position` (0-based) in the config:
/// proxies are numbered from 1 in config order, and a `stats socket`
/// creates an internal proxy first, which takes id 1.
pub fn proxy_id(config: &Config, position: usize) -> u64 {
    let first = if config.global.stats_sockets.is_empty() {
        1
    } else {
        2
    };
    first + position as u64
}

/// The id of the proxy called `name` (see [`proxy_id`]).
pub fn proxy_id_of(config: &Config, name: &str) -> Option<u64> {
    let pos = config.proxies.iter().position(|p| p.name == name)?;
    Some(proxy_id(config, pos))
}

/// All rows of `show stat`, in HAProxy's order.
pub fn collect(snapshot: &Snapshot) -> Vec<StatRow> {
    let now = unix_now();
    let config = &snapshot.config;
    let mut rows = Vec::new();
    for (pos, proxy) in config.proxies.iter().enumerate() {
        let iid = proxy_id(config, pos);
        if proxy.kind.is_frontend() {
            if let Some(fe) = snapshot.frontend(&proxy.name) {
                rows.push(frontend_row(config, proxy, fe, iid));
            }
        }
        if proxy.kind.is_backend() {
            if let Some(be) = snapshot.backend(&proxy.name) {
                for (i, server) in be.servers.iter().enumerate() {
                    let cfg = proxy.servers.iter().find(|s| *s.name == *server.name);
                    rows.push(server_row(proxy, be, server, cfg, iid, i as u64 + 1, now));
                }
                rows.push(backend_row(config, proxy, be, iid, now));
            }
        }
    }
    rows
}

/// HAProxy's name of a balance algorithm (`algo` column). HAProxy 2.6
/// prints `unknown` for `random`; Shoal prints `random`.
pub fn algo(balance: &Balance) -> String {
    match balance {
        Balance::RoundRobin => "roundrobin",
        Balance::StaticRr => "static-rr",
        Balance::LeastConn => "leastconn",
        Balance::First => "first",
        Balance::Source => "source",
        Balance::Uri { .. } => "uri",
        Balance::UrlParam(_) => "url_param",
        Balance::Hdr(_) => "hdr",
        Balance::Random { .. } => "random",
    }
    .to_string()
}
