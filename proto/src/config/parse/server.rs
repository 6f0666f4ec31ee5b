//! `server` and `default-server` lines.

use super::gaps::SERVER_OPTIONS;
use super::keywords::{self, SERVER_IMPLEMENTED};
use super::state::ProxyState;
use super::{addr, check_name, Diags};
use crate::config::{Observe, OnError, Server, ServerProto};

/// HAProxy's bound for `weight` (`SRV_UWGHT_MAX`).
const MAX_WEIGHT: i64 = 256;

/// HAProxy reads counts such as `maxconn` or `rise` into a C `int`.
const MAX_INT: i64 = i32::MAX as i64;

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
    srv.tls.at = crate::config::SourceLine(d.at(no));
    if srv.tls.ssl && !srv.tls.verify_none && srv.tls.ca_file.is_none() {
        // HAProxy's wording.
        return d.error(no, format!("server '{name}': verify is enabled by default but no CA file specified. If you're running on a LAN where you're certain to trust the server's certificate, please set an explicit 'verify none' statement on the 'server' line"));
    }
    if let Some(&i) = st.server_index.get(name) {
        let first = st.lines.servers.get(i).copied().unwrap_or_default();
        let (kind, proxy) = (st.scope.name(), &st.proxy.name);
        return d.error(
            no,
            format!("server '{name}' is already defined in {kind} '{proxy}' at line {first}"),
        );
    }
    if let (Some(addr), true) = (addr, name_ok) {
        srv.addr = addr;
        st.server_index
            .insert(name.to_string(), st.proxy.servers.len());
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
        if let Some(n) = tls_option(d, no, opt, words.get(i), srv) {
            i += n;
            continue;
        }
        let known = SERVER_IMPLEMENTED
            .iter()
            .map(|(k, n)| (*k, *n, None))
            .chain(SERVER_OPTIONS.iter().map(|(k, n, g)| (*k, *n, Some(*g))))
            .find(|(k, _, _)| *k == opt);
        let Some((_, nargs, gap)) = known else {
            let names = SERVER_IMPLEMENTED
                .iter()
                .map(|(k, _)| *k)
                .chain(SERVER_OPTIONS.iter().map(|(k, _, _)| *k));
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
        let Some(gap) = gap else {
            apply(d, no, srv, opt, arg);
            continue;
        };
        d.gap(no, &format!("server option '{opt}'"), gap);
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
        "weight" => srv.weight = count(d, no, opt, arg, 0, MAX_WEIGHT).or(srv.weight),
        "backup" | "no-backup" => srv.backup = opt == "backup",
        "disabled" | "enabled" => srv.disabled = opt == "disabled",
        "check" | "no-check" => srv.check = opt == "check",
        // 0 means "no limit", as in HAProxy.
        "maxconn" => srv.maxconn = count(d, no, opt, arg, 0, MAX_INT).or(srv.maxconn),
        "maxqueue" => srv.maxqueue = count(d, no, opt, arg, 0, MAX_INT).or(srv.maxqueue),
        "rise" => srv.rise = count(d, no, opt, arg, 1, MAX_INT).or(srv.rise),
        "fall" => srv.fall = count(d, no, opt, arg, 1, MAX_INT).or(srv.fall),
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
            srv.error_limit = count(d, no, opt, arg, 1, MAX_INT).or(srv.error_limit);
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
        "proto" => match arg {
            "h1" => srv.proto = Some(ServerProto::H1),
            "h2" => srv.proto = Some(ServerProto::H2),
            "none" => srv.proto = Some(ServerProto::None),
            // FastCGI needs an `fcgi-app` section, which Shoal skips.
            "fcgi" => d.gap(
                no,
                "server option 'proto fcgi'",
                super::gaps::UNIMPLEMENTED_PROTO,
            ),
            // HAProxy's wording.
            other => d.error(
                no,
                format!("server option 'proto': unknown MUX protocol '{other}' (expects 'h1', 'h2' or 'none')"),
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

/// The TLS server options Shoal implements: `ssl`, `no-ssl`, `verify
/// none|required`, `ca-file FILE`, `sni str(NAME)`, `alpn LIST`. `None`
/// when `opt` is none of them, else the arguments it took.
fn tls_option(
    d: &mut Diags,
    no: usize,
    opt: &str,
    arg: Option<&String>,
    srv: &mut Server,
) -> Option<usize> {
    let t = &mut srv.tls;
    match opt {
        "ssl" | "no-ssl" => {
            t.ssl = opt == "ssl";
            return Some(0);
        }
        "verify" | "ca-file" | "sni" | "alpn" => {}
        _ => return None,
    }
    let Some(arg) = arg else {
        d.error(no, format!("server option '{opt}' expects an argument"));
        return Some(0);
    };
    match opt {
        "verify" => match arg.as_str() {
            "none" => t.verify_none = true,
            "required" => t.verify_none = false,
            other => d.error(
                no,
                format!("server option 'verify' expects 'none' or 'required', got '{other}'"),
            ),
        },
        "ca-file" => t.ca_file = Some(arg.clone()),
        "alpn" => {
            let names: Vec<String> = arg.split(',').map(str::to_string).collect();
            // ALPN names are 1..=255 bytes (RFC 7301).
            match names.iter().find(|n| n.is_empty() || n.len() > 255) {
                Some(_) => d.error(
                    no,
                    format!("server option 'alpn' expects a comma-separated list of protocol names, got '{arg}'"),
                ),
                None => t.alpn = names,
            }
        }
        _ => match arg.strip_prefix("str(").and_then(|a| a.strip_suffix(')')) {
            Some(name) if !name.is_empty() && !name.contains(['(', ')', ',']) => {
                t.sni = Some(name.to_string());
            }
            _ => d.gap(
                no,
                &format!("server option 'sni {arg}' (only 'sni str(NAME)' is)"),
                super::gaps::UNIMPLEMENTED_TLS,
            ),
        },
    }
    Some(1)
}

/// An integer option within `min..=max` (both within `u32`).
fn count(d: &mut Diags, no: usize, opt: &str, arg: &str, min: i64, max: i64) -> Option<u32> {
    d.int_in(no, opt, arg, min, max)
        .and_then(|n| u32::try_from(n).ok())
}
