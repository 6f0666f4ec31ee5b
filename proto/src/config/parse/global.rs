//! The `global` section.

use super::keywords::{self, GLOBAL_IMPLEMENTED, GLOBAL_UNIMPLEMENTED};
use super::proxy::bind_options;
use super::timeout::{parse_timeout, timeout_slot};
use super::Diags;
use crate::config::{Global, LogTarget, StatsLevel, StatsSocket};

/// Handles one line of the `global` section.
pub(super) fn line(d: &mut Diags, g: &mut Global, no: usize, args: &[String]) {
    let Some(kw) = args.first().map(String::as_str) else {
        return;
    };
    match kw {
        "maxconn" => g.maxconn = one_number(d, no, args).or(g.maxconn),
        "nbthread" => match one_number::<usize>(d, no, args) {
            Some(0) => d.error(no, "'nbthread' must be at least 1"),
            Some(n) => g.nbthread = Some(n),
            None => {}
        },
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
        "tune.bufsize" => match one_number::<u32>(d, no, args) {
            // HAProxy refuses buffers too small for a request line.
            Some(n) if n < 1024 => d.error(no, "'tune.bufsize' must be at least 1024"),
            Some(n) => g.tune_bufsize = Some(n),
            None => {}
        },
        "tune.http.maxhdr" => match one_number::<u32>(d, no, args) {
            // HAProxy's range: 1..32767.
            Some(n) if (1..=32_767).contains(&n) => g.tune_maxhdr = Some(n),
            Some(_) => d.error(no, "'tune.http.maxhdr' must be between 1 and 32767"),
            None => {}
        },
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
                *slot = Some(value);
            }
        }
        _ if keywords::is_unimplemented_global(kw) => d.unimplemented(no, kw),
        _ => {
            let known = GLOBAL_IMPLEMENTED
                .iter()
                .chain(GLOBAL_UNIMPLEMENTED)
                .chain(keywords::SECTIONS);
            let hint = keywords::hint(kw, known.copied());
            d.error(
                no,
                format!("unknown keyword '{kw}' in 'global' section{hint}"),
            );
        }
    }
}

fn one_number<T: std::str::FromStr>(d: &mut Diags, no: usize, args: &[String]) -> Option<T> {
    let kw = args.first().map(String::as_str).unwrap_or_default();
    let word = d.need(no, args, 1, "a number")?;
    if !d.at_most(no, args, 2) {
        return None;
    }
    d.number(no, kw, word)
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
            if d.at_most(no, args, 3) {
                g.stats_timeout = d.duration(no, "stats timeout", word).or(g.stats_timeout);
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
