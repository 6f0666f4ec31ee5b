//! Read commands (`show info|stat|servers state|backend|table`) and
//! `clear table`, in HAProxy 2.6's formats.

use super::commands::{need, rank, Session};
use crate::routing::Snapshot;
use crate::runtime::Runtime;
use crate::stats::{self, status, RowKind, StatRow};
use shoal_proto::command::Command;
use shoal_proto::config::{Proxy, StatsLevel};

type Answer = Result<String, String>;

/// `show info`.
pub fn info(runtime: &Runtime) -> String {
    stats::info(&runtime.snapshot())
        .into_iter()
        .map(|l| format!("{}: {}\n", l.name, l.value))
        .collect()
}

/// Which rows `show stat` prints.
struct StatFilter {
    /// Proxy id; `None` for all (`-1`).
    iid: Option<u64>,
    /// Bit mask: 1 frontends, 2 backends, 4 servers.
    types: u64,
    /// Server id; `None` for all.
    sid: Option<u64>,
    /// `up`: hide servers that are not up.
    up: bool,
    /// `no-maint`: hide servers in maintenance.
    no_maint: bool,
}

fn stat_filter(snap: &Snapshot, args: &[&str]) -> Result<StatFilter, String> {
    let mut f = StatFilter {
        iid: None,
        types: 7,
        sid: None,
        up: false,
        no_maint: false,
    };
    let mut positional = Vec::new();
    let mut words = args.iter();
    while let Some(word) = words.next() {
        match *word {
            "up" => f.up = true,
            "no-maint" => f.no_maint = true,
            "desc" => {}
            "typed" | "json" => {
                return Err(format!("'show stat {word}' is not supported by Shoal.\n"))
            }
            "domain" => {
                if words.next() != Some(&"proxy") {
                    return Err("Shoal only has the 'proxy' stats domain.\n".into());
                }
            }
            other => positional.push(other),
        }
    }
    if let Some(px) = positional.first() {
        let config = &snap.config;
        let known =
            |id: u64| (0..config.proxies.len()).any(|pos| stats::proxy_id(config, pos) == id);
        f.iid = match px.parse::<i64>() {
            Ok(-1) => None,
            Ok(n) => Some(
                u64::try_from(n)
                    .ok()
                    .filter(|&id| known(id))
                    .ok_or("No such proxy.\n")?,
            ),
            Err(_) => Some(stats::proxy_id_of(config, px).ok_or("No such proxy.\n")?),
        };
    }
    if let Some(t) = positional.get(1) {
        f.types = match t.parse::<i64>() {
            Ok(-1) => 7,
            Ok(n) if n >= 0 => n as u64,
            _ => return Err("Invalid type.\n".into()),
        };
    }
    if let Some(s) = positional.get(2) {
        f.sid = match s.parse::<i64>() {
            Ok(-1) => None,
            Ok(n) if n >= 0 => Some(n as u64),
            _ => return Err("Invalid server id.\n".into()),
        };
    }
    Ok(f)
}

fn keep(f: &StatFilter, row: &StatRow) -> bool {
    let bit = match row.kind {
        RowKind::Frontend => 1,
        RowKind::Backend => 2,
        RowKind::Server => 4,
    };
    if f.types & bit == 0 || f.iid.is_some_and(|id| id != row.iid) {
        return false;
    }
    if row.kind == RowKind::Server {
        if f.sid.is_some_and(|sid| sid != row.sid) {
            return false;
        }
        let maint = row.admin == Some(crate::routing::AdminState::Maint);
        let down = maint || row.op == Some(crate::routing::OpState::Down);
        if (f.up && down) || (f.no_maint && maint) {
            return false;
        }
    }
    true
}

/// `show stat [PROXY|IID TYPE SID] [up] [no-maint]`: header and CSV rows.
pub fn stat(runtime: &Runtime, session: &Session, args: &[&str]) -> Answer {
    let snap = runtime.snapshot();
    let filter = stat_filter(&snap, args)?;
    let mut rows = stats::collect(&snap);
    let hidden = filter.up || filter.no_maint;
    let mut out = stats::csv_header();
    out.push('\n');
    for row in rows.iter_mut() {
        if hidden && row.kind == RowKind::Backend {
            // With servers hidden, HAProxy tells how many are usable.
            let total = snap.backend(&row.pxname).map_or(0, |b| b.servers.len());
            let usable = row.act.unwrap_or(0) + row.bck.unwrap_or(0);
            row.status = format!("{} ({usable}/{total})", row.status);
        }
        if rank(session.level) < rank(StatsLevel::Operator) {
            row.hide_legends();
        }
        if keep(&filter, row) {
            out.push_str(&row.to_csv());
            out.push('\n');
        }
    }
    Ok(out)
}

const SERVERS_STATE_HEADER: &str = "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port";

/// `show servers state [BACKEND]`: format version 1.
pub fn servers_state(runtime: &Runtime, args: &[&str]) -> Answer {
    let snap = runtime.snapshot();
    let rows = stats::collect(&snap);
    let only = args.first().copied();
    if let Some(name) = only {
        if snap.backend(name).is_none() {
            return Err("Can't find backend.\n".into());
        }
    }
    let mut out = format!("1\n{SERVERS_STATE_HEADER}\n");
    let backends = snap
        .config
        .proxies
        .iter()
        .filter(|p| p.kind.is_backend() && only.is_none_or(|n| n == p.name));
    for proxy in backends {
        let Some(be) = snap.backend(&proxy.name) else {
            continue;
        };
        let be_id = stats::proxy_id_of(&snap.config, &proxy.name).unwrap_or(0);
        for (i, s) in be.servers.iter().enumerate() {
            let row = rows
                .iter()
                .find(|r| r.pxname == proxy.name && r.sid == i as u64 + 1);
            out.push_str(&server_state_line(proxy, be_id, i, s, row));
        }
    }
    Ok(out)
}

fn server_state_line(
    proxy: &Proxy,
    be_id: u64,
    i: usize,
    s: &crate::routing::ServerRt,
    row: Option<&StatRow>,
) -> String {
    let cfg = proxy.servers.iter().find(|c| *c.name == *s.name);
    let configured = cfg.is_some_and(|c| c.check);
    let disabled = cfg.is_some_and(|c| c.disabled);
    let report = s.shared.check_report();
    let (rise, fall) = cfg.map_or((2, 3), |c| (c.rise_or_default(), c.fall_or_default()));
    let checked = configured && s.state.check_enabled;
    let health = status::health(&s.state, checked, report.streak, rise, fall);
    let since = row.and_then(|r| r.lastchg).unwrap_or(0);
    format!(
        "{be_id} {} {} {} {} {} {} {} {} {since} {} {} {health} {} 0 0 0 - {} - 0 {} - - 0\n",
        proxy.name,
        i + 1,
        s.name,
        s.addr.ip(),
        status::op_state_code(&s.state),
        status::admin_state_code(&s.state, disabled),
        s.state.weight,
        s.config_weight,
        status::check_status_code(report.status),
        status::check_result_code(report.status),
        status::check_state_code(&s.state, configured, disabled),
        s.addr.port(),
        cfg.and_then(|c| c.check_port).unwrap_or(0),
    )
}

/// `show backend`.
pub fn backends(runtime: &Runtime) -> String {
    let snap = runtime.snapshot();
    let mut out = String::from("# name\n");
    for p in snap.config.proxies.iter().filter(|p| p.kind.is_backend()) {
        out.push_str(&p.name);
        out.push('\n');
    }
    out
}

/// Tables in config order.
fn tables(snap: &Snapshot) -> Vec<std::sync::Arc<crate::stick::StickTable>> {
    snap.config
        .proxies
        .iter()
        .filter_map(|p| snap.tables.get(p.name.as_str()).cloned())
        .collect()
}

fn table_header(t: &crate::stick::StickTable) -> String {
    format!(
        "# table: {}, type: {}, size:{}, used:{}\n",
        t.name,
        t.type_word(),
        t.config.size,
        t.used()
    )
}

/// A stable pseudo address for an entry (HAProxy prints a pointer).
fn entry_id(table: &str, key: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in table.bytes().chain([0]).chain(key.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("0x{:012x}", h & 0xffff_ffff_fff0)
}

fn entry_line(table: &str, e: &crate::stick::EntryView) -> String {
    format!(
        "{}: key={} use=0 exp={} server_id={} server_key={}\n",
        entry_id(table, &e.key),
        e.key,
        e.expires_in_ms.unwrap_or(0),
        e.server_id,
        e.server
    )
}

const TABLE_ARGS: &str =
    "Optional argument only supports \"data.<store_data_type>\" <operator> <value> and key <key>\n";
const NO_DATA_FILTER: &str = "Shoal does not filter tables on data yet; use key <key>.\n";

/// `show table [NAME [key K]]`.
pub fn table(runtime: &Runtime, session: &Session, args: &[&str]) -> Answer {
    let snap = runtime.snapshot();
    let Some(name) = args.first() else {
        return Ok(tables(&snap).iter().map(|t| table_header(t)).collect());
    };
    let t = snap.tables.get(*name).ok_or("No such table\n")?;
    let key = match &args[1..] {
        [] => None,
        ["key"] => return Err("Key value expected\n".into()),
        ["key", k, ..] => Some(*k),
        [d, ..] if d.starts_with("data.") => return Err(NO_DATA_FILTER.into()),
        _ => return Err(TABLE_ARGS.into()),
    };
    let mut out = String::new();
    if let Some(k) = key {
        // A key lookup prints the entry alone, or nothing (one map lookup,
        // not a walk of the table under its lock).
        let Some(e) = t.view(k) else {
            return Ok(out);
        };
        out.push_str(&table_header(t));
        if need(session, StatsLevel::Operator).is_ok() {
            out.push_str(&entry_line(name, &e));
        }
        return Ok(out);
    }
    let entries = t.dump();
    out.push_str(&table_header(t));
    if need(session, StatsLevel::Operator).is_err() {
        out.push_str("# contents not dumped due to insufficient privileges\n");
        return Ok(out);
    }
    for e in &entries {
        out.push_str(&entry_line(name, e));
    }
    Ok(out)
}

/// `clear table NAME [key K]` (operator level).
pub async fn clear_table(runtime: &Runtime, session: &Session, args: &[&str]) -> Answer {
    let Some(name) = args.first() else {
        return Err("Required arguments: <table> \"data.<store_data_type>\" <operator> <value> or <table> key <key>\n".into());
    };
    need(session, StatsLevel::Operator)?;
    let snap = runtime.snapshot();
    if !snap.tables.contains_key(*name) {
        return Err("No such table\n".into());
    }
    let key = match &args[1..] {
        [] => None,
        ["key"] => return Err("Key value expected\n".into()),
        ["key", k, ..] => Some(k.to_string()),
        [d, ..] if d.starts_with("data.") => return Err(NO_DATA_FILTER.into()),
        _ => return Err(TABLE_ARGS.into()),
    };
    runtime
        .change(&Command::ClearTable {
            table: name.to_string(),
            key,
        })
        .await
        .map(|()| String::new())
        .map_err(|e| format!("{e}\n"))
}
