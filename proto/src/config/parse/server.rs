//! `server` and `default-server` lines.

use super::gaps::SERVER_OPTIONS;
use super::keywords::{self, SERVER_IMPLEMENTED};
use super::state::ProxyState;
use super::{addr, check_name, Diags};
use crate::config::{Converter, Mode, Observe, OnError, Server, ServerProto, SniExpr, SniFetch};

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
/// none|required`, `ca-file FILE`, `sni EXPR`, `alpn LIST`. `None`
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
        _ => match sni_expr(arg) {
            Ok(expr) => t.sni = Some(expr),
            // HAProxy's wording.
            Err(e) => d.error(
                no,
                format!("server option 'sni': error detected while parsing sni expression: {e}"),
            ),
        },
    }
    Some(1)
}

/// `sni FETCH[,CONVERTER...]`: see [`SniExpr`] for what Shoal evaluates.
/// A real HAProxy fetch or converter outside that set is refused as not
/// implemented (sending no SNI, or another one, would change which
/// certificate the server presents and which name is verified).
fn sni_expr(word: &str) -> Result<SniExpr, String> {
    let mut parts = split_expr(word)?.into_iter();
    let fetch_word = parts.next().unwrap_or_default();
    let (name, arg) = call(fetch_word)?;
    let fetch = match (name, arg) {
        ("str", Some(text)) => SniFetch::Str(text.to_string()),
        ("req.hdr" | "hdr", Some(header)) if !header.is_empty() && !header.contains(',') => {
            SniFetch::ReqHdr(header.to_ascii_lowercase())
        }
        ("req.hdr" | "hdr", Some(header)) if header.contains(',') => {
            return Err(format!(
                "header occurrence in '{fetch_word}' is not implemented by Shoal yet"
            ))
        }
        ("ssl_fc_sni", None) => SniFetch::SslFcSni,
        ("str" | "req.hdr" | "hdr", _) => {
            return Err(format!("fetch method '{name}' expects an argument, as in {name}(host)"))
        }
        ("ssl_fc_sni", Some(_)) => return Err("fetch method 'ssl_fc_sni' takes no argument".into()),
        _ if SNI_FETCHES_UNIMPLEMENTED.contains(&name) => {
            return Err(format!("fetch method '{name}' is not implemented by Shoal yet in 'sni' (it takes str(), req.hdr(), hdr() and ssl_fc_sni)"))
        }
        _ => return Err(format!("unknown fetch method '{name}'")),
    };
    let mut converters = Vec::new();
    for conv in parts {
        let (name, arg) = call(conv)?;
        converters.push(match (name, arg) {
            ("lower", None) => Converter::Lower,
            ("upper", None) => Converter::Upper,
            ("field", Some(args)) => field_args(args)?,
            ("lower" | "upper", Some(_)) => {
                return Err(format!("converter '{name}' takes no argument"))
            }
            ("field", None) => {
                return Err("converter 'field' expects arguments, as in field(1,:)".into())
            }
            _ if SNI_CONVERTERS_UNIMPLEMENTED.contains(&name) => {
                return Err(format!("converter '{name}' is not implemented by Shoal yet in 'sni' (it takes lower, upper and field)"))
            }
            _ => return Err(format!("unknown converter '{name}'")),
        });
    }
    Ok(SniExpr { fetch, converters })
}

/// Fetches HAProxy accepts in a server's `sni` that Shoal does not
/// evaluate there (the common ones, for a clearer error).
const SNI_FETCHES_UNIMPLEMENTED: &[&str] = &[
    "req.fhdr",
    "fhdr",
    "req.cook",
    "cook",
    "path",
    "url",
    "base",
    "src",
    "dst",
    "var",
    "ssl_c_s_dn",
    "ssl_fc_alpn",
    "ssl_fc_protocol",
    "hdr_ip",
    "req.ssl_sni",
    "req_ssl_sni",
    "env",
    "host",
    "url_param",
];

/// Converters HAProxy has that Shoal does not apply in `sni` (the common ones).
const SNI_CONVERTERS_UNIMPLEMENTED: &[&str] = &[
    "regsub",
    "word",
    "bytes",
    "concat",
    "map",
    "map_str",
    "json",
    "base64",
    "host_only",
    "port_only",
    "ltrim",
    "rtrim",
    "url_dec",
];

/// `field(INDEX,DELIMITERS)`; HAProxy's optional count is not implemented.
fn field_args(args: &str) -> Result<Converter, String> {
    let mut it = args.splitn(3, ',');
    let index = it.next().unwrap_or_default();
    let (Some(delimiters), None) = (it.next(), it.next()) else {
        return Err(if args.matches(',').count() >= 2 {
            "converter 'field' with a count is not implemented by Shoal yet".into()
        } else {
            format!("invalid args in converter 'field': expects field(INDEX,DELIMITERS), got field({args})")
        });
    };
    let index: i32 = match index.trim().parse() {
        Ok(0) | Err(_) => {
            // HAProxy's wording.
            return Err(format!(
                "invalid args in converter 'field' : Unexpected value {index} for index"
            ));
        }
        Ok(i) => i,
    };
    if delimiters.is_empty() {
        return Err("invalid args in converter 'field': empty delimiter list".into());
    }
    Ok(Converter::Field {
        index,
        delimiters: delimiters.to_string(),
    })
}

/// Splits `a(x,y),b,c(z)` at the commas outside parentheses.
fn split_expr(word: &str) -> Result<Vec<&str>, String> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0u32, 0);
    for (i, c) in word.char_indices() {
        match c {
            '(' if depth == 0 => depth = 1,
            '(' => return Err(format!("unexpected '(' in '{word}'")),
            ')' if depth == 1 => depth = 0,
            ')' => return Err(format!("unexpected ')' in '{word}'")),
            ',' if depth == 0 => {
                parts.push(&word[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!("missing closing ')' in '{word}'"));
    }
    parts.push(&word[start..]);
    match parts.iter().find(|p| p.is_empty()) {
        Some(_) => Err(format!("empty fetch or converter name in '{word}'")),
        None => Ok(parts),
    }
}

/// `name(arg)` or `name`; the argument is everything between the
/// parentheses, which must end the word.
fn call(word: &str) -> Result<(&str, Option<&str>), String> {
    match word.split_once('(') {
        None => Ok((word, None)),
        Some((name, rest)) => match rest.strip_suffix(')') {
            Some(arg) => Ok((name, Some(arg))),
            None => Err(format!("missing closing ')' after arguments to '{name}'")),
        },
    }
}

/// Checks that need the proxy's final mode: a `ssl` server's `sni` that
/// reads the HTTP request is refused in `mode tcp`. (HAProxy 2.6 accepts
/// it and sends no SNI when no HTTP request has been parsed, which is
/// always the case at connect time without `tcp-request inspect-delay`;
/// Shoal refuses rather than silently send none.)
pub(super) fn end_of_proxy(d: &mut Diags, st: &ProxyState) {
    let p = &st.proxy;
    if p.mode != Mode::Tcp || !p.kind.is_backend() {
        return;
    }
    let (kind, name) = (p.kind.keyword(), &p.name);
    for (srv, line) in p.servers.iter().zip(&st.lines.servers) {
        match &srv.tls.sni {
            Some(sni) if srv.tls.ssl && sni.needs_http() => d.error(
                *line,
                format!("server '{}': 'sni {sni}' reads the HTTP request, which needs 'mode http', but {kind} '{name}' is in mode tcp (use 'sni ssl_fc_sni' or 'sni str(NAME)')", srv.name),
            ),
            _ => {}
        }
    }
}

/// An integer option within `min..=max` (both within `u32`).
fn count(d: &mut Diags, no: usize, opt: &str, arg: &str, min: i64, max: i64) -> Option<u32> {
    d.int_in(no, opt, arg, min, max)
        .and_then(|n| u32::try_from(n).ok())
}
