//! `show info`: process-wide figures as HAProxy's `Name: value` lines.
//!
//! The names and their order are HAProxy 2.6's. Figures Shoal does not
//! have (SSL, pipes, memory pools, compression) read 0, as in an HAProxy
//! that does not use the feature.

use super::{started_unix, unix_now};
use crate::routing::Snapshot;
use std::sync::atomic::Ordering::Relaxed;

/// One `Name: value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoLine {
    pub name: &'static str,
    pub value: String,
}

/// Release date printed by `show info` / `show version`.
const RELEASE_DATE: &str = "2026/11/25";

/// Every `show info` line, in HAProxy's order.
pub fn info(snapshot: &Snapshot) -> Vec<InfoLine> {
    let config = &snapshot.config;
    let fronts = &snapshot.frontends;
    let fsum = |f: &dyn Fn(&crate::routing::ProxyCounters) -> u64| {
        fronts.iter().map(|fe| f(&fe.counters)).sum::<u64>()
    };
    let now = unix_now();
    let start = started_unix();
    let uptime = now.saturating_sub(start);
    let maxconn = config.global.maxconn.unwrap_or(0);
    let nofile = open_files_limit();
    let threads = config.global.nbthread.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let cur = fsum(&|c| u64::from(c.cur.load(Relaxed)));
    let listeners = config
        .proxies
        .iter()
        .filter(|p| p.kind.is_frontend())
        .map(|p| p.binds.len())
        .sum::<usize>()
        + config.global.stats_sockets.len();
    let version = env!("CARGO_PKG_VERSION");
    let lines: Vec<(&'static str, String)> = vec![
        ("Name", "Shoal".into()),
        ("Version", version.into()),
        ("Release_date", RELEASE_DATE.into()),
        ("Nbthread", threads.to_string()),
        ("Nbproc", "1".into()),
        ("Process_num", "1".into()),
        ("Pid", std::process::id().to_string()),
        ("Uptime", uptime_text(uptime)),
        ("Uptime_sec", uptime.to_string()),
        ("Memmax_MB", "0".into()),
        ("PoolAlloc_MB", "0".into()),
        ("PoolUsed_MB", "0".into()),
        ("PoolFailed", "0".into()),
        ("Ulimit-n", nofile.to_string()),
        ("Maxsock", nofile.to_string()),
        ("Maxconn", maxconn.to_string()),
        ("Hard_maxconn", maxconn.to_string()),
        ("CurrConns", cur.to_string()),
        ("CumConns", fsum(&|c| c.total.load(Relaxed)).to_string()),
        ("CumReq", fsum(&|c| c.requests.load(Relaxed)).to_string()),
        ("MaxSslConns", "0".into()),
        ("CurrSslConns", "0".into()),
        ("CumSslConns", "0".into()),
        ("Maxpipes", "0".into()),
        ("PipesUsed", "0".into()),
        ("PipesFree", "0".into()),
        ("ConnRate", "0".into()),
        ("ConnRateLimit", "0".into()),
        ("MaxConnRate", "0".into()),
        ("SessRate", "0".into()),
        ("SessRateLimit", "0".into()),
        ("MaxSessRate", "0".into()),
        ("SslRate", "0".into()),
        ("SslRateLimit", "0".into()),
        ("MaxSslRate", "0".into()),
        ("SslFrontendKeyRate", "0".into()),
        ("SslFrontendMaxKeyRate", "0".into()),
        ("SslFrontendSessionReuse_pct", "0".into()),
        ("SslBackendKeyRate", "0".into()),
        ("SslBackendMaxKeyRate", "0".into()),
        ("SslCacheLookups", "0".into()),
        ("SslCacheMisses", "0".into()),
        ("CompressBpsIn", "0".into()),
        ("CompressBpsOut", "0".into()),
        ("CompressBpsRateLim", "0".into()),
        ("Tasks", "0".into()),
        ("Run_queue", "0".into()),
        ("Idle_pct", "100".into()),
        ("node", hostname()),
        ("Stopping", "0".into()),
        ("Jobs", (cur + listeners as u64).to_string()),
        ("Unstoppable Jobs", "0".into()),
        ("Listeners", listeners.to_string()),
        ("ActivePeers", "0".into()),
        ("ConnectedPeers", "0".into()),
        ("DroppedLogs", "0".into()),
        ("BusyPolling", "0".into()),
        ("FailedResolutions", "0".into()),
        (
            "TotalBytesOut",
            fsum(&|c| c.bytes_out.load(Relaxed)).to_string(),
        ),
        ("TotalSplicdedBytesOut", "0".into()),
        ("BytesOutRate", "0".into()),
        ("DebugCommandsIssued", "0".into()),
        ("CumRecvLogs", "0".into()),
        ("Build info", version.into()),
        ("Memmax_bytes", "0".into()),
        ("PoolAlloc_bytes", "0".into()),
        ("PoolUsed_bytes", "0".into()),
        ("Start_time_sec", start.to_string()),
        ("Tainted", "0".into()),
    ];
    lines
        .into_iter()
        .map(|(name, value)| InfoLine { name, value })
        .collect()
}

/// `0d 0h00m07s`, HAProxy's uptime format.
pub fn uptime_text(secs: u64) -> String {
    format!(
        "{}d {}h{:02}m{:02}s",
        secs / 86_400,
        (secs / 3_600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}

/// The host name, as HAProxy's `node` defaults to it.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The soft limit on open files (`Ulimit-n`), from /proc (0 if unknown).
fn open_files_limit() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/self/limits") else {
        return 0;
    };
    text.lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
