//! Keywords of `defaults`, `frontend`, `backend` and `listen` sections:
//! the dispatcher, placement rules, and the frontend-side keywords.

use super::gaps::{self, BIND_OPTIONS};
use super::keywords;
use super::state::{ProxyState, Scope};
use super::{acl, addr, backend, options, server, stick, timeout, tls, Diags};
use crate::config::{
    Condition, HealthRule, HttpReuse, LogTarget, Mode, SslBindDefaults, UseBackend,
};

/// Handles one line of a proxy or defaults section.
pub(super) fn line(
    d: &mut Diags,
    st: &mut ProxyState,
    no: usize,
    args: &[String],
    ssl: &SslBindDefaults,
) {
    let Some(kw) = args.first().map(String::as_str) else {
        return;
    };
    if let Some((caps, strict)) = placement(kw) {
        if !st.scope.allows(caps) {
            return misplaced(d, st, no, kw, strict);
        }
    }
    match kw {
        "mode" => mode(d, st, no, args),
        "bind" => bind(d, st, no, args, ssl),
        "maxconn" => {
            if let Some(n) = one_arg(d, no, args, "a number").and_then(|w| maxconn(d, no, w)) {
                st.proxy.maxconn = n;
            }
        }
        "default_backend" => {
            if let Some(name) = one_arg(d, no, args, "a backend name") {
                st.proxy.default_backend = Some(name.to_string());
                st.lines.default_backend = no;
            }
        }
        "acl" => acl::def_line(d, st, no, args),
        "http-request" => super::http_rules::line(d, st, no, args),
        "use_backend" => use_backend(d, st, no, args),
        "balance" => backend::balance(d, st, no, args),
        "hash-type" => backend::hash_type(d, st, no, args),
        "server" => server::server_line(d, st, no, args),
        "default-server" => server::default_server_line(d, st, no, args),
        "timeout" => timeout::timeout(d, st, no, args),
        "contimeout" | "clitimeout" | "srvtimeout" => timeout::legacy_timeout(d, st, no, args),
        "retries" => {
            let n = one_arg(d, no, args, "a number")
                .and_then(|w| d.int_in(no, kw, w, 0, MAX_RETRIES.into()));
            if let Some(n) = n.and_then(|n| u32::try_from(n).ok()) {
                st.proxy.retries = Some(n);
            }
        }
        "http-reuse" => {
            let reuse = match one_arg(d, no, args, "never, safe, aggressive or always") {
                Some("never") => Some(HttpReuse::Never),
                Some("safe") => Some(HttpReuse::Safe),
                Some("aggressive") => Some(HttpReuse::Aggressive),
                Some("always") => Some(HttpReuse::Always),
                Some(other) => {
                    d.error(
                        no,
                        format!(
                            "'http-reuse' expects never, safe, aggressive or always, got '{other}'"
                        ),
                    );
                    None
                }
                None => None,
            };
            if reuse.is_some() {
                st.proxy.http_reuse = reuse;
            }
        }
        "cluster-health" => {
            let rule = match one_arg(d, no, args, "any, majority or all") {
                Some("any") => Some(HealthRule::Any),
                Some("majority") => Some(HealthRule::Majority),
                Some("all") => Some(HealthRule::All),
                Some(other) => {
                    d.error(
                        no,
                        format!("'cluster-health' expects any, majority or all, got '{other}'"),
                    );
                    None
                }
                None => None,
            };
            if rule.is_some() {
                st.proxy.cluster_health = rule;
            }
        }
        "option" => options::option(d, st, no, args, 0, false),
        "no" | "default" => match args.get(1).map(String::as_str) {
            Some("option") => options::option(d, st, no, args, 1, true),
            Some("log") if kw == "no" => {
                d.at_most(no, args, 2);
                st.proxy.logs.clear();
            }
            _ => d.error(
                no,
                format!(
                    "'{kw}' is only supported before 'option'{}",
                    if kw == "no" { " and 'log'" } else { "" }
                ),
            ),
        },
        "cookie" => backend::cookie(d, st, no, args),
        "http-check" => backend::http_check(d, st, no, args),
        "external-check" => backend::external_check(d, st, no, args),
        "stats" => stats(d, st, no, args),
        "stick-table" => stick::stick_table(d, st, no, args),
        "stick" => stick::stick_rule(d, st, no, args),
        "log" => {
            if d.need(
                no,
                args,
                1,
                "a target ('global' or an address and a facility)",
            )
            .is_some()
            {
                st.proxy.logs.push(LogTarget {
                    args: args.get(1..).unwrap_or_default().to_vec(),
                });
            }
        }
        // `enabled` is the default state of a proxy: nothing to do.
        "enabled" => {
            d.at_most(no, args, 1);
        }
        // Refused as HAProxy 2.6 refuses it: ignoring it would drop the
        // grace the operator asked for.
        "grace" => d.error(
            no,
            "the 'grace' keyword is not supported any more since HAProxy version 2.5 in a proxy; set 'grace' in the 'global' section",
        ),
        _ => {
            if let Some(gap) = gaps::find(gaps::PROXY, kw) {
                return d.gap(no, &format!("'{kw}'"), gap);
            }
            let known = keywords::PROXY_IMPLEMENTED
                .iter()
                .chain(keywords::SECTIONS)
                .copied()
                .chain(gaps::PROXY.iter().map(|(k, _)| *k));
            let hint = keywords::hint(kw, known);
            d.error(
                no,
                format!(
                    "unknown keyword '{kw}' in '{}' section{hint}",
                    st.scope.name()
                ),
            );
        }
    }
}

/// Sections where a keyword applies ("dflb": defaults, frontend, listen,
/// backend), and whether using it elsewhere is an error (`true`) or, as
/// HAProxy does for most keywords, a warning and ignored.
fn placement(kw: &str) -> Option<(&'static str, bool)> {
    Some(match kw {
        "bind" | "use_backend" => ("fl", true),
        "default_backend" => ("dfl", true),
        "balance" | "hash-type" | "cookie" | "default-server" => ("dlb", true),
        "server" => ("lb", true),
        "maxconn" | "clitimeout" => ("dfl", false),
        "acl" => ("flb", false),
        // HAProxy: not in defaults (an error there), ignored in a frontend.
        "stick-table" => ("flb", true),
        "stick" => ("lb", false),
        "retries" | "http-check" | "external-check" | "contimeout" | "srvtimeout"
        | "http-reuse" => ("dlb", false),
        // A Shoal extension: refused where it cannot mean anything.
        "cluster-health" => ("dlb", true),
        _ => return None,
    })
}

fn misplaced(d: &mut Diags, st: &ProxyState, no: usize, kw: &str, strict: bool) {
    let section = st.scope.name();
    if strict || (kw == "stick" && st.scope == Scope::Defaults) {
        d.error(no, format!("'{kw}' is not allowed in '{section}' section"));
    } else if kw == "acl" {
        // HAProxy 2.5+ accepts ACLs in named defaults, for rules there only.
        d.unimplemented(no, "acl in a defaults section");
    } else if kw == "maxconn" {
        let msg = "'maxconn' is ignored in a backend (HAProxy reads it as 'fullconn' there, which Shoal does not implement yet)";
        d.warn(no, msg);
    } else {
        wrong_side(d, st, no, kw);
    }
}

/// HAProxy's warning for a setting that does not apply to this side.
pub(super) fn wrong_side(d: &mut Diags, st: &ProxyState, no: usize, what: &str) {
    let (needs, name) = (
        if st.scope.fe() { "backend" } else { "frontend" },
        &st.proxy.name,
    );
    d.warn(
        no,
        format!(
            "'{what}' ignored because {} '{name}' has no {needs} capability",
            st.scope.name()
        ),
    );
}

/// Largest `retries`: HAProxy reads it into an int. Retries after a refused
/// connection wait a turn-around (up to a second), so a large count makes a
/// client wait, not a core spin.
const MAX_RETRIES: u32 = i32::MAX as u32;

/// `maxconn N` of a global or proxy section: HAProxy reads it into an int;
/// 0 means "not set" (the default applies), which is `None` in the model.
pub(super) fn maxconn(d: &mut Diags, no: usize, word: &str) -> Option<Option<u32>> {
    let n = d.int_in(no, "maxconn", word, 0, i32::MAX.into())?;
    Some(u32::try_from(n).ok().filter(|n| *n > 0))
}

/// The single argument of a one-argument keyword.
pub(super) fn one_arg<'a>(
    d: &mut Diags,
    no: usize,
    args: &'a [String],
    what: &str,
) -> Option<&'a str> {
    let arg = d.need(no, args, 1, what)?;
    d.at_most(no, args, 2).then_some(arg)
}

fn mode(d: &mut Diags, st: &mut ProxyState, no: usize, args: &[String]) {
    let mode = match one_arg(d, no, args, "'tcp' or 'http'") {
        Some("tcp") => Mode::Tcp,
        Some("http") => Mode::Http,
        Some(other) => {
            return d.error(
                no,
                format!("unknown mode '{other}' (expected 'tcp' or 'http')"),
            )
        }
        None => return,
    };
    st.proxy.mode = mode;
}

fn bind(d: &mut Diags, st: &mut ProxyState, no: usize, args: &[String], ssl: &SslBindDefaults) {
    let Some(word) = d.need(no, args, 1, "an address such as ':80' or '10.0.0.1:443'") else {
        return;
    };
    if ["/", "unix@", "abns@", "fd@", "sockpair@"]
        .iter()
        .any(|p| word.starts_with(p))
    {
        return d.unimplemented(no, "bind on a unix socket or file descriptor");
    }
    if let Some(family) = [
        "quic4@", "quic6@", "udp@", "udp4@", "udp6@", "tcp@", "tcp4@", "tcp6@",
    ]
    .iter()
    .find(|p| word.starts_with(**p))
    {
        return d.error(
            no,
            format!("address family '{family}' in 'bind {word}' is not implemented by Shoal (use ipv4@ or ipv6@)"),
        );
    }
    // TLS options are Shoal's; the rest are refused or warned about.
    let words = args.get(2..).unwrap_or_default();
    let mut tls_words = tls::BindTlsWords::default();
    let mut others = Vec::new();
    let mut i = 0;
    while let Some(w) = words.get(i) {
        let arg = words.get(i + 1).map(String::as_str);
        match tls::bind_option(d, no, w, arg, &mut tls_words) {
            Some(nargs) => i += 1 + nargs,
            None => {
                // Another option keeps its arguments with it.
                let nargs = BIND_OPTIONS
                    .iter()
                    .find(|(k, _, _)| k == w)
                    .map_or(0, |(_, n, _)| *n);
                let end = (i + 1 + nargs).min(words.len());
                others.extend(words.get(i..end).unwrap_or_default().iter().cloned());
                i = end;
            }
        }
    }
    bind_options(d, no, &others, "bind option");
    let tls = tls::finish_bind(d, no, tls_words, ssl);
    match addr::parse_binds(word) {
        Ok(binds) => st.proxy.binds.extend(binds.into_iter().map(|mut b| {
            b.tls.clone_from(&tls);
            b
        })),
        Err(e) => d.error(no, e),
    }
}

/// `bind` (or `stats socket`) options: Shoal implements none, so each is
/// refused or warned about as [`gaps::BIND_OPTIONS`] says.
pub(super) fn bind_options(d: &mut Diags, no: usize, words: &[String], what: &str) {
    let mut i = 0;
    while let Some(w) = words.get(i) {
        i += 1;
        let Some(&(_, nargs, gap)) = BIND_OPTIONS.iter().find(|(k, _, _)| *k == w) else {
            let hint = keywords::hint(w, BIND_OPTIONS.iter().map(|(k, _, _)| *k));
            d.error(no, format!("unknown {what} '{w}'{hint}"));
            continue;
        };
        if words.len() < i + nargs {
            d.error(no, format!("{what} '{w}' expects an argument"));
            return;
        }
        i += nargs;
        d.gap(no, &format!("{what} '{w}'"), gap);
    }
}

fn use_backend(d: &mut Diags, st: &mut ProxyState, no: usize, args: &[String]) {
    let Some(name) = d.need(no, args, 1, "a backend name") else {
        return;
    };
    if name.contains("%[") {
        return d.error(
            no,
            "dynamic backend names (log-format expressions) are not implemented by Shoal yet",
        );
    }
    let rest = args.get(2..).unwrap_or_default();
    // No condition means "always": `unless` nothing.
    let cond = if rest.is_empty() {
        Some(Condition::always())
    } else {
        acl::condition(d, no, &st.acl_names, rest)
    };
    if let Some(cond) = cond {
        st.proxy.use_backends.push(UseBackend {
            backend: name.to_string(),
            cond,
        });
        st.lines.use_backends.push(no);
    }
}

fn stats(d: &mut Diags, st: &mut ProxyState, no: usize, args: &[String]) {
    let Some(sub) = d.need(no, args, 1, "a setting such as 'enable' or 'uri'") else {
        return;
    };
    let s = &mut st.proxy.stats;
    let value = |d: &mut Diags, what: &str| -> Option<String> {
        let v = d.need(no, args, 2, what)?;
        d.at_most(no, args, 3).then(|| v.to_string())
    };
    match sub {
        "enable" => {
            d.at_most(no, args, 2);
            s.enabled = true;
        }
        "hide-version" => {
            d.at_most(no, args, 2);
            s.hide_version = true;
        }
        "uri" => s.uri = value(d, "a URI prefix").or(s.uri.take()),
        "realm" => s.realm = value(d, "a realm").or(s.realm.take()),
        "refresh" => {
            if let Some(t) =
                value(d, "a duration").and_then(|w| d.duration(no, "stats refresh", &w))
            {
                s.refresh = Some(t);
            }
        }
        "auth" => match value(d, "USER:PASSWORD").map(|v| {
            v.split_once(':')
                .map(|(u, p)| (u.to_string(), p.to_string()))
        }) {
            Some(Some(pair)) => s.auth.push(pair),
            Some(None) => d.error(no, "'stats auth' expects USER:PASSWORD"),
            None => {}
        },
        "admin" => {
            if st.scope == Scope::Defaults {
                return d.error(no, "'stats admin' is not allowed in 'defaults' section");
            }
            if !matches!(args.get(2).map(String::as_str), Some("if" | "unless")) {
                return d.error(
                    no,
                    "'stats admin' expects 'if' or 'unless' followed by a condition",
                );
            }
            if let Some(cond) =
                acl::condition(d, no, &st.acl_names, args.get(2..).unwrap_or_default())
            {
                st.proxy.stats.admin = Some(cond);
                st.lines.stats_admin = no;
            }
        }
        "show-legends" | "show-node" | "show-desc" | "show-modules" | "scope" | "http-request"
        | "bind-process" => {
            d.unimplemented(no, &format!("stats {sub}"));
        }
        "socket" | "timeout" | "maxconn" => d.error(
            no,
            format!("'stats {sub}' is only allowed in the 'global' section"),
        ),
        other => {
            let names = [
                "enable",
                "uri",
                "realm",
                "refresh",
                "auth",
                "admin",
                "hide-version",
                "show-legends",
                "show-node",
                "scope",
            ];
            let hint = keywords::hint(other, names);
            d.error(no, format!("unknown 'stats' setting '{other}'{hint}"));
        }
    }
}
