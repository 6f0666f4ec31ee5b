//! The `global` section.

use super::gaps;
use super::keywords::{self, GLOBAL_IMPLEMENTED};
use super::proxy::{bind_options, maxconn};
use super::timeout::{parse_timeout, timeout_slot};
use super::{addr, Diags};
use crate::config::{Global, LogTarget, StatsLevel, StatsSocket};

/// Handles one line of the `global` section.
pub(super) fn line(d: &mut Diags, g: &mut Global, no: usize, args: &[String]) {
    let Some(kw) = args.first().map(String::as_str) else {
        return;
    };
    match kw {
        "maxconn" => {
            if let Some(n) = one_arg(d, no, args).and_then(|w| maxconn(d, no, w)) {
                g.maxconn = n;
            }
        }
        "nbthread" => {
            let n = one_int(d, no, args, 1, MAX_THREADS);
            if let Some(n) = n.and_then(|n| usize::try_from(n).ok()) {
                g.nbthread = Some(n);
            }
        }
        "daemon" => {
            d.at_most(no, args, 1);
            g.daemon = true;
        }
        "user" | "group" => {
            let Some(name) = d.need(no, args, 1, "a name") else {
                return;
            };
            if d.at_most(no, args, 2) {
                *if kw == "user" {
                    &mut g.user
                } else {
                    &mut g.group
                } = Some(name.to_string());
            }
        }
        "log" => {
            if d.need(no, args, 1, "a target (an address or path and a facility)")
                .is_some()
            {
                g.logs.push(LogTarget {
                    args: args.get(1..).unwrap_or_default().to_vec(),
                });
            }
        }
        "stats" => stats(d, g, no, args),
        "grace" => {
            let Some(word) = d.need(no, args, 1, "a time") else {
                return;
            };
            if d.at_most(no, args, 2) {
                g.grace = d.duration(no, "grace", word).or(g.grace);
            }
        }
        // HAProxy refuses buffers of 256 MB or more when HTTP is used, and
        // cannot build its error pages below about 340 bytes; Shoal asks
        // for at least 1 kB, room for a request line and a few headers.
        "tune.bufsize" => {
            let n = one_int(d, no, args, 1024, (256 << 20) - 1);
            g.tune_bufsize = n.and_then(|n| u32::try_from(n).ok()).or(g.tune_bufsize);
        }
        // HAProxy's range.
        "tune.http.maxhdr" => {
            let n = one_int(d, no, args, 1, 32_767);
            g.tune_maxhdr = n.and_then(|n| u32::try_from(n).ok()).or(g.tune_maxhdr);
        }
        "zero-warning" => {
            d.at_most(no, args, 1);
            d.zero_warning = true;
        }
        // Required by HAProxy before `option external-check`; Shoal needs
        // no such switch, so there is nothing to do.
        "external-check" => {
            d.at_most(no, args, 1);
        }
        // Not HAProxy: the seed guide writes `timeout` in `global`.
        "timeout" => {
            let Some((name, _, value)) = parse_timeout(d, no, args) else {
                return;
            };
            d.warn(
                no,
                format!("'timeout {name}' is not valid in HAProxy's 'global' section; Shoal applies it as a fallback for proxies without their own"),
            );
            if let Some(slot) = timeout_slot(&mut g.timeouts, name) {
                *slot = value;
            }
        }
        _ => {
            if super::tls::global(d, &mut g.ssl_bind, no, args) {
                return;
            }
            if let Some(gap) = gaps::global(kw) {
                return d.gap(no, &format!("'{kw}'"), gap);
            }
            let known = GLOBAL_IMPLEMENTED
                .iter()
                .chain(keywords::SECTIONS)
                .copied()
                .chain(gaps::GLOBAL.iter().map(|(k, _)| *k));
            let hint = keywords::hint(kw, known);
            d.error(
                no,
                format!("unknown keyword '{kw}' in 'global' section{hint}"),
            );
        }
    }
}

/// HAProxy 2.6's `MAX_THREADS` (`haproxy -vv`): `nbthread` goes up to it.
const MAX_THREADS: i64 = 64;

/// The single argument of a one-argument keyword.
fn one_arg<'a>(d: &mut Diags, no: usize, args: &'a [String]) -> Option<&'a str> {
    let word = d.need(no, args, 1, "a number")?;
    d.at_most(no, args, 2).then_some(word)
}

/// The single integer argument of a keyword, within `min..=max`.
fn one_int(d: &mut Diags, no: usize, args: &[String], min: i64, max: i64) -> Option<i64> {
    let kw = args.first().map(String::as_str).unwrap_or_default();
    let word = one_arg(d, no, args)?;
    d.int_in(no, kw, word, min, max)
}

fn stats(d: &mut Diags, g: &mut Global, no: usize, args: &[String]) {
    match d.need(no, args, 1, "'socket' or 'timeout'") {
        Some("socket") => {
            if let Some(sock) = stats_socket(d, no, args) {
                g.stats_sockets.push(sock);
            }
        }
        Some("timeout") => {
            let Some(word) = d.need(no, args, 2, "a duration") else {
                return;
            };
            if !d.at_most(no, args, 3) {
                return;
            }
            match d.duration(no, "stats timeout", word) {
                // HAProxy's wording.
                Some(t) if t.is_zero() => d.error(no, "'stats timeout' expects a positive value"),
                Some(t) => g.stats_timeout = Some(t),
                None => {}
            }
        }
        Some(sub @ ("maxconn" | "bind-process")) => d.unimplemented(no, &format!("stats {sub}")),
        Some(other) => {
            let hint = keywords::hint(other, ["socket", "timeout", "maxconn"]);
            d.error(
                no,
                format!("unknown 'stats' setting '{other}' in 'global' section{hint}"),
            );
        }
        None => {}
    }
}

/// `stats socket ADDR [mode OCTAL] [level user|operator|admin] [bind options]`.
fn stats_socket(d: &mut Diags, no: usize, args: &[String]) -> Option<StatsSocket> {
    let addr = d.need(no, args, 2, "a unix socket path or ipv4@ADDR:PORT")?;
    if let Err(e) = addr::check_socket_addr(addr) {
        d.error(no, format!("'stats socket': {e}"));
        return None;
    }
    // HAProxy's default level for a stats socket is `operator`.
    let mut sock = StatsSocket {
        addr: addr.to_string(),
        mode: None,
        level: StatsLevel::Operator,
    };
    let words = args.get(3..).unwrap_or_default();
    let mut others = Vec::new();
    let mut i = 0;
    let mut ok = true;
    while let Some(w) = words.get(i) {
        let value = words.get(i + 1).map(String::as_str);
        match (w.as_str(), value) {
            ("mode", Some(v)) => {
                match u32::from_str_radix(v, 8) {
                    Ok(m) if m <= 0o7777 => sock.mode = Some(m),
                    _ => {
                        d.error(no, format!("'stats socket' mode expects an octal file mode such as 600, got '{v}'"));
                        ok = false;
                    }
                }
            }
            ("level", Some(v)) => {
                sock.level = match v {
                    "user" => StatsLevel::User,
                    "operator" => StatsLevel::Operator,
                    "admin" => StatsLevel::Admin,
                    _ => {
                        d.error(
                            no,
                            format!(
                                "'stats socket' level must be user, operator or admin, got '{v}'"
                            ),
                        );
                        ok = false;
                        sock.level
                    }
                };
            }
            _ => {
                others.push(w.clone());
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    bind_options(d, no, &others, "stats socket option");
    ok.then_some(sock)
}
