//! Building one [`StatRow`] per frontend, server and backend from the
//! runtime's counters and states.

use super::status::{self, check_description, server_status};
use super::{algo, started_unix, RowKind, StatRow};
use crate::routing::{BackendRt, FrontendRt, OpState, ServerRt};
use shoal_proto::config::{Config, Mode, Proxy, Server};
use std::sync::atomic::Ordering::Relaxed;

fn responses(c: &crate::routing::ProxyCounters) -> [u64; 6] {
    use crate::routing::StatusClass as C;
    [C::C1xx, C::C2xx, C::C3xx, C::C4xx, C::C5xx, C::Other].map(|k| c.responses(k))
}

pub(super) fn frontend_row(config: &Config, proxy: &Proxy, fe: &FrontendRt, iid: u64) -> StatRow {
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

pub(super) fn server_row(
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
    let changed = s.state.last_change / 1000;
    row.lastchg = Some(now.saturating_sub(changed));
    if checked {
        row.chkfail = Some(report.failed_checks);
        row.chkdown = Some(report.downs);
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
                crate::routing::StatusClass::C1xx,
                crate::routing::StatusClass::C2xx,
                crate::routing::StatusClass::C3xx,
                crate::routing::StatusClass::C4xx,
                crate::routing::StatusClass::C5xx,
                crate::routing::StatusClass::Other,
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

pub(super) fn backend_row(
    config: &Config,
    proxy: &Proxy,
    be: &BackendRt,
    iid: u64,
    now: u64,
) -> StatRow {
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
    // A backend that is DOWN has been so since start as far as Shoal
    // knows (no per-backend history yet); HAProxy counts the same way for
    // a backend that never came up.
    row.downtime = Some(if up {
        0
    } else {
        now.saturating_sub(started_unix())
    });
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
    row.algo = Some(algo(&be.balance));
    row.connect = Some(sum(&|s| s.shared.counters.connects.load(Relaxed)));
    row.uweight = Some(weight);
    row
}
