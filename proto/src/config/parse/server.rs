//! `server` and `default-server` lines.

use super::keywords::{self, SERVER_IMPLEMENTED, SERVER_UNIMPLEMENTED};
use super::state::ProxyState;
use super::{addr, check_name, Diags};
use crate::config::{Observe, OnError, Server};

/// HAProxy's bounds for `weight`.
const MAX_WEIGHT: u32 = 256;

/// `server NAME ADDR[:PORT] [options]`: starts from the `default-server`
/// settings in effect, then applies the line's own options.
pub(super) fn server_line(d: &mut Diags, st: &mut ProxyState, no: usize, args: &[String]) {
    let Some(name) = d.need(no, args, 1, "a name and an address") else {
        return;
    };
    let Some(addr_word) = d.need(no, args, 2, "an address (HOST[:PORT])") else {
        return;
    };
    let name_ok = check_name(d, no, "server", name);
    let addr = addr::parse_server_addr(addr_word)
        .map_err(|e| d.error(no, e))
        .ok();
    let mut srv = st.server_defaults.clone();
    srv.name = name.to_string();
    options(d, no, args.get(3..).unwrap_or_default(), &mut srv);
    if let Some(i) = st.proxy.servers.iter().position(|s| s.name == name) {
        let first = st.lines.servers.get(i).copied().unwrap_or_default();
        let (kind, proxy) = (st.scope.name(), &st.proxy.name);
        return d.error(
            no,
            format!("server '{name}' is already defined in {kind} '{proxy}' at line {first}"),
        );
    }
    if let (Some(addr), true) = (addr, name_ok) {
        srv.addr = addr;
        st.proxy.servers.push(srv);
        st.lines.servers.push(no);
    }
}

/// `default-server [options]`: changes the settings later servers start from.
pub(super) fn default_server_line(d: &mut Diags, st: &mut ProxyState, no: usize, args: &[String]) {
    options(
        d,
        no,
        args.get(1..).unwrap_or_default(),
        &mut st.server_defaults,
    );
}

fn options(d: &mut Diags, no: usize, words: &[String], srv: &mut Server) {
    let mut i = 0;
    while let Some(opt) = words.get(i) {
        i += 1;
        let opt = opt.as_str();
        let known = SERVER_IMPLEMENTED
            .iter()
            .chain(SERVER_UNIMPLEMENTED)
            .find(|(k, _)| *k == opt);
        let Some(&(_, nargs)) = known else {
            let names = SERVER_IMPLEMENTED
                .iter()
                .chain(SERVER_UNIMPLEMENTED)
                .map(|(k, _)| *k);
            let hint = keywords::hint(opt, names);
            d.error(no, format!("unknown server option '{opt}'{hint}"));
            continue;
        };
        let arg = match nargs {
            0 => "",
            _ => match words.get(i) {
                Some(a) => {
                    i += 1;
                    a.as_str()
                }
                None => return d.error(no, format!("server option '{opt}' expects an argument")),
            },
        };
        if SERVER_IMPLEMENTED.iter().any(|(k, _)| *k == opt) {
            apply(d, no, srv, opt, arg);
            continue;
        }
        d.warn_once(
            &format!("server option '{opt}'"),
            no,
            format!("server option '{opt}' not implemented yet; ignored"),
        );
        // `source ADDR [usesrc ADDR] [interface NAME]` has a variable tail.
        if opt == "source" {
            while let Some(sub @ ("usesrc" | "interface")) = words.get(i).map(String::as_str) {
                if words.get(i + 1).is_none() {
                    return d.error(
                        no,
                        format!("server option 'source {sub}' expects an argument"),
                    );
                }
                i += 2;
            }
        }
    }
}

fn apply(d: &mut Diags, no: usize, srv: &mut Server, opt: &str, arg: &str) {
    match opt {
        "weight" => {
            if let Some(w) = d.number::<u32>(no, opt, arg) {
                if w > MAX_WEIGHT {
                    return d.error(
                        no,
                        format!("server weight {w} is out of range (0..{MAX_WEIGHT})"),
                    );
                }
                srv.weight = Some(w);
            }
        }
        "backup" | "no-backup" => srv.backup = opt == "backup",
        "disabled" | "enabled" => srv.disabled = opt == "disabled",
        "check" | "no-check" => srv.check = opt == "check",
        "maxconn" => srv.maxconn = d.number(no, opt, arg).or(srv.maxconn),
        "maxqueue" => srv.maxqueue = d.number(no, opt, arg).or(srv.maxqueue),
        "rise" | "fall" => {
            let Some(n) = d.number::<u32>(no, opt, arg) else {
                return;
            };
            if n == 0 {
                return d.error(no, format!("server option '{opt}' must be at least 1"));
            }
            *if opt == "rise" {
                &mut srv.rise
            } else {
                &mut srv.fall
            } = Some(n);
        }
        "inter" | "fastinter" | "downinter" => {
            let Some(t) = d.duration(no, opt, arg) else {
                return;
            };
            if t.is_zero() {
                return d.error(
                    no,
                    format!("server option '{opt}' must be greater than zero"),
                );
            }
            let slot = match opt {
                "inter" => &mut srv.inter,
                "fastinter" => &mut srv.fastinter,
                _ => &mut srv.downinter,
            };
            *slot = Some(t);
        }
        "slowstart" => srv.slowstart = d.duration(no, opt, arg).or(srv.slowstart),
        "cookie" => srv.cookie = Some(arg.to_string()),
        "observe" => match arg {
            "layer4" => srv.observe = Some(Observe::Layer4),
            "layer7" => srv.observe = Some(Observe::Layer7),
            // HAProxy's default: no passive health check.
            "none" => srv.observe = None,
            other => d.error(
                no,
                format!(
                    "server option 'observe' expects 'layer4', 'layer7' or 'none', got '{other}'"
                ),
            ),
        },
        "error-limit" => {
            let Some(n) = d.number::<u32>(no, opt, arg) else {
                return;
            };
            if n == 0 {
                return d.error(no, "server option 'error-limit' must be at least 1");
            }
            srv.error_limit = Some(n);
        }
        "on-error" => {
            srv.on_error = Some(match arg {
                "fastinter" => OnError::FastInter,
                "fail-check" => OnError::FailCheck,
                "sudden-death" => OnError::SuddenDeath,
                "mark-down" => OnError::MarkDown,
                other => {
                    let hint = keywords::hint(
                        other,
                        ["fastinter", "fail-check", "sudden-death", "mark-down"],
                    );
                    return d.error(
                        no,
                        format!("server option 'on-error' expects 'fastinter', 'fail-check', 'sudden-death' or 'mark-down', got '{other}'{hint}"),
                    );
                }
            });
        }
        // HAProxy knows one action here.
        "on-marked-down" => match arg {
            "shutdown-sessions" => srv.on_marked_down_shutdown = true,
            other => d.error(
                no,
                format!(
                    "server option 'on-marked-down' expects 'shutdown-sessions', got '{other}'"
                ),
            ),
        },
        "port" => match arg.parse::<u16>() {
            Ok(p) if p > 0 => srv.check_port = Some(p),
            _ => d.error(
                no,
                format!("server option 'port' expects a port number (1..65535), got '{arg}'"),
            ),
        },
        _ => {}
    }
}
