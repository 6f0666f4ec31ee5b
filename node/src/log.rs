//! Access logs in HAProxy's `httplog` / `tcplog` field order.
//!
//! Lines are formatted on the request path and handed to one writer thread
//! through a bounded channel; when the channel is full the line is dropped
//! and counted, as HAProxy drops logs rather than slow traffic down.
//!
//! Targets: `log stdout` / `log stderr` write plain lines; `log ADDR[:PORT]`
//! sends RFC 3164 syslog over UDP (port 514 by default); `log /path` sends
//! to a unix datagram syslog socket such as `/dev/log`; `shoal run
//! --access-log FILE` appends plain lines to a file. Shoal sends every
//! proxy's lines to the union of all configured targets (a simplification:
//! HAProxy can route each proxy to its own targets).

use shoal_proto::config::Config;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Which line format a frontend logs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `option httplog`.
    Http,
    /// `option tcplog` (also used when a proxy logs without either option).
    Tcp,
}

/// Where lines go.
enum Target {
    Stdout,
    Stderr,
    File(std::fs::File),
    Udp(UdpSocket, SocketAddr),
    Unix(UnixDatagram, String),
}

static SINK: OnceLock<SyncSender<String>> = OnceLock::new();
/// Lines dropped because the writer could not keep up.
pub static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Start the writer thread for the targets a config names plus an optional
/// file. Calling it again keeps the first sink (targets change on restart).
pub fn init(config: &Config, file: Option<&std::path::Path>) -> std::io::Result<()> {
    let mut targets = Vec::new();
    if let Some(path) = file {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        targets.push(Target::File(f));
    }
    let lines = config
        .global
        .logs
        .iter()
        .chain(config.proxies.iter().flat_map(|p| p.logs.iter()));
    let mut seen = std::collections::HashSet::new();
    for log in lines {
        let Some(addr) = log.args.first() else {
            continue;
        };
        if addr == "global" || !seen.insert(addr.clone()) {
            continue;
        }
        match target(addr) {
            Ok(t) => targets.push(t),
            Err(e) => tracing::warn!("log target '{addr}' unusable: {e}"),
        }
    }
    if targets.is_empty() || SINK.get().is_some() {
        return Ok(());
    }
    let (tx, rx) = sync_channel::<String>(16_384);
    std::thread::Builder::new()
        .name("shoal-log".into())
        .spawn(move || {
            let pid = std::process::id();
            while let Ok(line) = rx.recv() {
                for t in targets.iter_mut() {
                    write_line(t, &line, pid);
                }
            }
        })?;
    let _ = SINK.set(tx);
    Ok(())
}

fn target(addr: &str) -> std::io::Result<Target> {
    Ok(match addr {
        "stdout" => Target::Stdout,
        "stderr" => Target::Stderr,
        path if path.starts_with('/') => Target::Unix(UnixDatagram::unbound()?, path.to_string()),
        other => {
            let other = other
                .strip_prefix("udp@")
                .or_else(|| other.strip_prefix("ipv4@"))
                .unwrap_or(other);
            let dest: SocketAddr = match other.parse() {
                Ok(a) => a,
                Err(_) => format!("{other}:514")
                    .parse()
                    .map_err(|_| std::io::Error::other("not an address"))?,
            };
            let bind = if dest.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            };
            Target::Udp(UdpSocket::bind(bind)?, dest)
        }
    })
}

fn write_line(target: &mut Target, line: &str, pid: u32) {
    // Errors on a log target must never stop the node; they are ignored.
    let _ = match target {
        Target::Stdout => writeln!(std::io::stdout().lock(), "{line}"),
        Target::Stderr => writeln!(std::io::stderr().lock(), "{line}"),
        Target::File(f) => writeln!(f, "{line}"),
        Target::Udp(sock, dest) => sock.send_to(syslog(line, pid).as_bytes(), *dest).map(drop),
        Target::Unix(sock, path) => sock
            .send_to(syslog(line, pid).as_bytes(), path.as_str())
            .map(drop),
    };
}

/// RFC 3164 framing, facility local0, severity info (HAProxy's usual setup).
fn syslog(line: &str, pid: u32) -> String {
    let (_, mon, day, h, m, s, _) = civil(SystemTime::now());
    format!(
        "<134>{} {day:>2} {h:02}:{m:02}:{s:02} shoal[{pid}]: {line}",
        MONTHS[mon - 1]
    )
}

/// True when some target is configured, so callers can skip formatting.
pub fn enabled() -> bool {
    SINK.get().is_some()
}

/// Queue one line; never blocks.
pub fn emit(line: String) {
    if let Some(tx) = SINK.get() {
        if let Err(TrySendError::Full(_)) = tx.try_send(line) {
            DROPPED.fetch_add(1, Relaxed);
        }
    }
}

/// Everything one access-log line says.
#[derive(Debug, Clone)]
pub struct Record<'a> {
    pub client: SocketAddr,
    pub accepted: SystemTime,
    pub frontend: &'a str,
    pub backend: &'a str,
    pub server: &'a str,
    /// Milliseconds: request receive (TR), queue (Tw), connect (Tc),
    /// response headers (Tr), total active (Ta/Tt); -1 when not reached.
    pub t_request: i64,
    pub t_queue: i64,
    pub t_connect: i64,
    pub t_response: i64,
    pub t_total: i64,
    pub status: u16,
    pub bytes: u64,
    /// Two-letter termination state (`--`, `SC`, `sQ`, `CD`, ...; see
    /// HAProxy's configuration manual, 8.5).
    pub termination: &'a str,
    pub active_conns: u32,
    pub frontend_conns: u32,
    pub backend_conns: u32,
    pub server_conns: u32,
    pub retries: u32,
    pub server_queue: usize,
    pub backend_queue: usize,
    /// `METHOD URI VERSION` for HTTP, or `<BADREQ>` for a request that
    /// could not be parsed or did not arrive in time.
    pub request_line: &'a str,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Split a time into (year, month, day, hour, minute, second, millisecond), UTC.
fn civil(t: SystemTime) -> (i64, usize, u32, u32, u32, u32, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as usize;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
        d.subsec_millis(),
    )
}

/// `secs` since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ` (before 1970:
/// the epoch).
pub fn utc_text(secs: i64) -> String {
    let t = UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(secs).unwrap_or(0));
    let (y, mon, d, h, m, s, _) = civil(t);
    format!("{y:04}-{mon:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

fn push_date(out: &mut String, t: SystemTime) {
    let (y, mon, d, h, m, s, ms) = civil(t);
    let _ = write!(
        out,
        "[{d:02}/{}/{y}:{h:02}:{m:02}:{s:02}.{ms:03}]",
        MONTHS[mon - 1]
    );
}

impl Record<'_> {
    /// `option httplog`:
    /// `%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %{+Q}r`.
    /// A status of 0 means no answer was sent, which HAProxy logs as -1.
    pub fn http_line(&self) -> String {
        let mut out = String::with_capacity(160);
        let _ = write!(out, "{}:{} ", self.client.ip(), self.client.port());
        push_date(&mut out, self.accepted);
        let status = match self.status {
            0 => -1,
            s => i32::from(s),
        };
        let _ = write!(
            out,
            " {} {}/{} {}/{}/{}/{}/{} {} {} - - {}-- {}/{}/{}/{}/{} {}/{} \"{}\"",
            self.frontend,
            self.backend,
            self.server,
            self.t_request,
            self.t_queue,
            self.t_connect,
            self.t_response,
            self.t_total,
            status,
            self.bytes,
            self.termination,
            self.active_conns,
            self.frontend_conns,
            self.backend_conns,
            self.server_conns,
            self.retries,
            self.server_queue,
            self.backend_queue,
            self.request_line,
        );
        out
    }

    /// `option tcplog`:
    /// `%ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq`
    pub fn tcp_line(&self) -> String {
        let mut out = String::with_capacity(128);
        let _ = write!(out, "{}:{} ", self.client.ip(), self.client.port());
        push_date(&mut out, self.accepted);
        let _ = write!(
            out,
            " {} {}/{} {}/{}/{} {} {} {}/{}/{}/{}/{} {}/{}",
            self.frontend,
            self.backend,
            self.server,
            self.t_queue,
            self.t_connect,
            self.t_total,
            self.bytes,
            self.termination,
            self.active_conns,
            self.frontend_conns,
            self.backend_conns,
            self.server_conns,
            self.retries,
            self.server_queue,
            self.backend_queue,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_are_civil_utc() {
        // 2026-11-25 22:31:10.123 UTC
        let t = UNIX_EPOCH + Duration::from_millis(1_795_645_870_123);
        let mut s = String::new();
        push_date(&mut s, t);
        assert_eq!(s, "[25/Nov/2026:22:31:10.123]");
    }

    #[test]
    fn httplog_field_order() {
        let r = Record {
            client: "127.0.0.1:5000".parse().expect("addr"),
            accepted: UNIX_EPOCH,
            frontend: "web",
            backend: "app",
            server: "s1",
            t_request: 0,
            t_queue: 0,
            t_connect: 1,
            t_response: 2,
            t_total: 3,
            status: 200,
            bytes: 42,
            termination: "--",
            active_conns: 1,
            frontend_conns: 1,
            backend_conns: 1,
            server_conns: 1,
            retries: 0,
            server_queue: 0,
            backend_queue: 0,
            request_line: "GET / HTTP/1.1",
        };
        assert_eq!(
            r.http_line(),
            "127.0.0.1:5000 [01/Jan/1970:00:00:00.000] web app/s1 0/0/1/2/3 200 42 - - ---- 1/1/1/1/0 0/0 \"GET / HTTP/1.1\""
        );
        let aborted = Record {
            status: 0,
            termination: "CD",
            ..r.clone()
        };
        assert!(aborted.http_line().contains(" 0/0/1/2/3 -1 42 - - CD-- "));
        assert_eq!(
            r.tcp_line(),
            "127.0.0.1:5000 [01/Jan/1970:00:00:00.000] web app/s1 0/1/3 42 -- 1/1/1/1/0 0/0"
        );
    }
}
