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
pub mod status;
#[cfg(test)]
mod tests;

pub use columns::{csv_header, Value, COLUMNS};
pub use info::{info, InfoLine};
pub use status::{check_description, server_status};

use crate::runtime::{AdminState, BackendRt, FrontendRt, OpState, ServerRt, Snapshot};
use shoal_proto::config::{Balance, Config, HashType, Mode, Proxy, Server};
use std::sync::atomic::Ordering::Relaxed;
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

fn responses(c: &crate::runtime::ProxyCounters) -> [u64; 6] {
    use crate::runtime::StatusClass as C;
    [C::C1xx, C::C2xx, C::C3xx, C::C4xx, C::C5xx, C::Other].map(|k| c.responses(k))
}

fn frontend_row(config: &Config, proxy: &Proxy, fe: &FrontendRt, iid: u64) -> StatRow {
    let c = &fe.counters;
    let mut row = StatRow::new(&proxy.name, "FRONTEND", RowKind::Frontend, fe.mode, iid);
    row.scur = u64::from(c.cur.load(Relaxed));
    row.smax = u64::from(c.max.load(Relaxed));
    row.slim = frontend_limit(config, proxy).map(u64::from);
    row.stot = c.total.load(Relaxed);
    row.bin = c.bytes_in.load(Relaxed);
    row.bout = c.bytes_out.load(Relaxed);
    row.ereq = Some(c.req_errors.load(Relaxed));
    let full = fe
        .conn_limit
        .as_ref()
        .is_some_and(|s| s.available_permits() == 0);
    row.status = if full { "FULL" } else { "OPEN" }.to_string();
    row.hrsp = (fe.mode == Mode::Http).then(|| responses(c));
    row.req_tot = Some(c.requests.load(Relaxed));
    row.conn_tot = Some(row.stot);
    row
}

/// A frontend's connection limit: its `maxconn`, else the global one.
fn frontend_limit(config: &Config, proxy: &Proxy) -> Option<u32> {
    proxy.maxconn.or(config.global.maxconn)
}

/// HAProxy's default `fullconn`: a tenth (rounded up, at least 1) of the
/// summed limits of the frontends that route to the backend. `None` when
/// one of them has no limit (Shoal then has none either).
fn fullconn(config: &Config, backend: &Proxy) -> Option<u64> {
    let mut sum = 0u64;
    for fe in config.proxies.iter().filter(|p| p.kind.is_frontend()) {
        let own = fe.kind.is_backend() && fe.default_backend.is_none() && fe.name == backend.name;
        let routes = own
            || fe.default_backend.as_deref() == Some(backend.name.as_str())
            || fe.use_backends.iter().any(|u| u.backend == backend.name);
        if routes {
            sum += u64::from(frontend_limit(config, fe)?);
        }
    }
    Some(sum.div_ceil(10).max(1))
}

fn server_row(
    proxy: &Proxy,
    be: &BackendRt,
    s: &ServerRt,
    cfg: Option<&Server>,
    iid: u64,
    sid: u64,
    now: u64,
) -> StatRow {
    let c = &s.shared.counters;
    let report = s.shared.check_report();
    let checked = cfg.is_some_and(|c| c.check) && s.state.check_enabled;
    let (rise, fall) = cfg.map_or((2, 3), |c| (c.rise_or_default(), c.fall_or_default()));
    let mut row = StatRow::new(&proxy.name, &s.name, RowKind::Server, be.mode, iid);
    row.qcur = Some(0);
    row.qmax = Some(0);
    row.scur = u64::from(c.current());
    row.smax = u64::from(c.max.load(Relaxed));
    row.slim = s.maxconn.filter(|&m| m > 0).map(u64::from);
    row.stot = c.total.load(Relaxed);
    row.bin = c.bytes_in.load(Relaxed);
    row.bout = c.bytes_out.load(Relaxed);
    row.econ = Some(c.conn_errors.load(Relaxed));
    row.eresp = Some(c.resp_errors.load(Relaxed));
    row.wretr = Some(c.retries.load(Relaxed));
    row.wredis = Some(c.redispatches.load(Relaxed));
    row.status = server_status(&s.state, checked, report.streak, rise, fall);
    row.weight = Some(u64::from(s.state.weight));
    row.act = Some(u64::from(!s.backup));
    row.bck = Some(u64::from(s.backup));
    let changed = match report.last_change_unix {
        0 => started_unix(),
        t => t,
    };
    row.lastchg = Some(now.saturating_sub(changed));
    if checked {
        row.chkfail = Some(0);
        row.chkdown = Some(0);
        // Shoal keeps no downtime total: report the current outage.
        row.downtime = Some(if s.state.op == OpState::Down {
            now.saturating_sub(changed)
        } else {
            0
        });
        if !report.status.is_empty() {
            row.check_status = Some(report.status.to_string());
            row.check_code = report.code.map(i64::from);
            row.check_duration = Some(report.duration_ms);
            let desc = check_description(report.status);
            // HAProxy's `last_chk` is the check's own detail ("Connection
            // refused"), empty when there is only the status description.
            let detail = (report.reason != desc).then(|| report.reason.clone());
            row.last_chk = Some(detail.unwrap_or_default());
            row.check_desc = Some(desc.to_string());
        }
        row.check_rise = Some(u64::from(rise));
        row.check_fall = Some(u64::from(fall));
        row.check_health = Some(u64::from(status::health(
            &s.state,
            true,
            report.streak,
            rise,
            fall,
        )));
    }
    row.qlimit = s.maxqueue.filter(|&q| q > 0).map(u64::from);
    row.sid = sid;
    row.lbtot = Some(row.stot);
    if be.mode == Mode::Http {
        row.hrsp = Some(
            [
                crate::runtime::StatusClass::C1xx,
                crate::runtime::StatusClass::C2xx,
                crate::runtime::StatusClass::C3xx,
                crate::runtime::StatusClass::C4xx,
                crate::runtime::StatusClass::C5xx,
                crate::runtime::StatusClass::Other,
            ]
            .map(|k| c.responses(k)),
        );
        row.req_tot = Some(row.stot);
    }
    row.lastsess = Some(last_session(c.last_session_unix(), now));
    row.addr = Some(s.addr.to_string());
    row.cookie = be.cookie.as_ref().map(|_| s.cookie.to_string());
    row.connect = Some(c.connects.load(Relaxed));
    row.srv_icur = Some(s.shared.pool.idle_count() as u64);
    row.used_conn_cur = Some(row.scur);
    row.uweight = row.weight;
    row.admin = Some(s.state.admin);
    row.op = Some(s.state.op);
    row.backup = s.backup;
    row
}

/// `lastsess`: seconds since the last session, or -1 for never.
fn last_session(at: u64, now: u64) -> i64 {
    if at == 0 {
        -1
    } else {
        i64::try_from(now.saturating_sub(at)).unwrap_or(i64::MAX)
    }
}

fn backend_row(config: &Config, proxy: &Proxy, be: &BackendRt, iid: u64, now: u64) -> StatRow {
    let c = &be.counters;
    let sum = |f: &dyn Fn(&ServerRt) -> u64| be.servers.iter().map(f).sum::<u64>();
    let mut row = StatRow::new(&proxy.name, "BACKEND", RowKind::Backend, be.mode, iid);
    row.qcur = Some(be.queue.waiting.load(Relaxed) as u64);
    row.qmax = Some(0);
    row.scur = u64::from(c.cur.load(Relaxed)).max(sum(&|s| u64::from(s.shared.counters.current())));
    row.smax = u64::from(c.max.load(Relaxed)).max(row.scur);
    row.slim = fullconn(config, proxy);
    row.stot = c
        .total
        .load(Relaxed)
        .max(sum(&|s| s.shared.counters.total.load(Relaxed)));
    row.bin = sum(&|s| s.shared.counters.bytes_in.load(Relaxed));
    row.bout = sum(&|s| s.shared.counters.bytes_out.load(Relaxed));
    row.econ =
        Some(sum(&|s| s.shared.counters.conn_errors.load(Relaxed)) + c.no_server.load(Relaxed));
    row.eresp = Some(sum(&|s| s.shared.counters.resp_errors.load(Relaxed)));
    row.wretr = Some(sum(&|s| s.shared.counters.retries.load(Relaxed)));
    row.wredis = Some(sum(&|s| s.shared.counters.redispatches.load(Relaxed)));
    let usable = |backup: bool| {
        be.servers
            .iter()
            .filter(move |s| s.backup == backup && s.usable())
    };
    let act = usable(false).count() as u64;
    let bck = usable(true).count() as u64;
    // HAProxy weighs the active servers, or the backups when none is up.
    let weight = if act > 0 {
        usable(false).map(|s| u64::from(s.state.weight)).sum()
    } else {
        usable(true).map(|s| u64::from(s.state.weight)).sum::<u64>()
    };
    let up = weight > 0 || be.servers.is_empty();
    row.status = if up { "UP" } else { "DOWN" }.to_string();
    row.weight = Some(weight);
    row.act = Some(act);
    row.bck = Some(bck);
    row.chkdown = Some(0);
    row.lastchg = Some(now.saturating_sub(started_unix()));
    row.downtime = (!be.servers.is_empty()).then_some(0);
    row.lbtot = Some(sum(&|s| s.shared.counters.total.load(Relaxed)));
    if be.mode == Mode::Http {
        row.hrsp = Some(responses(c));
        row.req_tot = Some(c.requests.load(Relaxed));
    }
    let last = be
        .servers
        .iter()
        .map(|s| s.shared.counters.last_session_unix())
        .max()
        .unwrap_or(0);
    row.lastsess = Some(last_session(last, now));
    row.cookie = be.cookie.as_ref().map(|c| c.name.clone());
    row.algo = Some(algo(&be.balance, proxy.hash_type));
    row.connect = Some(sum(&|s| s.shared.counters.connects.load(Relaxed)));
    row.uweight = Some(weight);
    row
}

/// HAProxy's name of a balance algorithm (`algo` column). HAProxy 2.6
/// prints `unknown` for `random`; Shoal prints `random`.
pub fn algo(balance: &Balance, _hash: HashType) -> String {
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
