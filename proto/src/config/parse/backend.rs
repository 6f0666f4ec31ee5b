//! Backend-side keywords: `balance`, `hash-type`, `cookie`, `http-check`
//! and `external-check`.

use super::state::ProxyState;
use super::{acl, gaps, keywords, Diags};
use crate::config::{
    Balance, CookieConfig, CookieMode, ExpectKind, HashType, HttpCheckExpect, HttpCheckSend,
};

pub(super) fn balance(d: &mut Diags, st: &mut ProxyState, no: usize, args: &[String]) {
    let Some(algo) = d.need(
        no,
        args,
        1,
        "an algorithm (roundrobin, leastconn, source, ...)",
    ) else {
        return;
    };
    let extra = args.get(2..).unwrap_or_default();
    let simple = |b: Balance, d: &mut Diags| d.at_most(no, args, 2).then_some(b);
    let parsed = match algo {
        "roundrobin" => simple(Balance::RoundRobin, d),
        "static-rr" => simple(Balance::StaticRr, d),
        "leastconn" => simple(Balance::LeastConn, d),
        "first" => simple(Balance::First, d),
        "source" => simple(Balance::Source, d),
        "uri" => Some(balance_uri(d, no, extra)),
        "url_param" => d.need(no, args, 2, "a parameter name").map(|p| {
            if args.len() > 3 {
                d.unimplemented(no, "balance url_param check_post");
            }
            Balance::UrlParam(p.to_string())
        }),
        _ if algo.starts_with("hdr(") => match paren_arg(algo, "hdr") {
            Some(h) if !h.is_empty() => {
                if !extra.is_empty() {
                    d.unimplemented(no, "balance hdr use_domain_only");
                }
                Some(Balance::Hdr(h.to_ascii_lowercase()))
            }
            _ => {
                d.error(no, format!("'balance {algo}': expected hdr(NAME)"));
                None
            }
        },
        "random" => simple(Balance::Random { draws: 2 }, d),
        _ if algo.starts_with("random(") => match paren_arg(algo, "random") {
            Some(n) => {
                let draws = d.int_in(no, "balance random(N)", n, 1, MAX_DRAWS.into());
                draws
                    .and_then(|n| u32::try_from(n).ok())
                    .and_then(|draws| simple(Balance::Random { draws }, d))
            }
            None => {
                d.error(no, format!("'balance {algo}': expected random(N)"));
                None
            }
        },
        "rdp-cookie" | "hash" | "sticky" | "log-hash" => {
            d.unimplemented(no, &format!("balance {algo}"));
            None
        }
        _ if algo.starts_with("rdp-cookie(") => {
            d.unimplemented(no, "balance rdp-cookie");
            None
        }
        _ => {
            let names = [
                "roundrobin",
                "static-rr",
                "leastconn",
                "first",
                "source",
                "uri",
                "url_param",
                "random",
            ];
            let hint = keywords::hint(algo, names);
            d.error(no, format!("unknown balance algorithm '{algo}'{hint}"));
            None
        }
    };
    if let Some(b) = parsed {
        st.proxy.balance = b;
        st.lines.balance = no;
    }
}

/// Largest N of `balance random(N)`: HAProxy reads it into a positive int.
/// (The balancer draws at most as many times as there are servers, so a
/// huge N costs no more than leastconn.)
const MAX_DRAWS: u32 = i32::MAX as u32;

/// `balance uri [whole] [len N] [depth N] [path-only]`.
fn balance_uri(d: &mut Diags, no: usize, words: &[String]) -> Balance {
    let mut whole = false;
    let mut i = 0;
    while let Some(w) = words.get(i) {
        i += 1;
        match w.as_str() {
            "whole" => whole = true,
            "len" | "depth" => {
                i += 1;
                d.unimplemented(no, &format!("balance uri {w}"));
            }
            "path-only" => d.unimplemented(no, "balance uri path-only"),
            other => d.error(no, format!("unknown 'balance uri' option '{other}'")),
        }
    }
    Balance::Uri { whole }
}

/// The text between `NAME(` and the final `)`.
pub(super) fn paren_arg<'a>(word: &'a str, name: &str) -> Option<&'a str> {
    word.strip_prefix(name)?
        .strip_prefix('(')?
        .strip_suffix(')')
}

pub(super) fn hash_type(d: &mut Diags, st: &mut ProxyState, no: usize, args: &[String]) {
    let kind = match d.need(no, args, 1, "'map-based' or 'consistent'") {
        Some("map-based") => HashType::MapBased,
        Some("consistent") => HashType::Consistent,
        Some(other) => {
            return d.error(
                no,
                format!("unknown hash-type '{other}' (expected 'map-based' or 'consistent')"),
            )
        }
        None => return,
    };
    for w in args.get(2..).unwrap_or_default() {
        match w.as_str() {
            "sdbm" | "djb2" | "wt6" | "crc32" | "none" | "avalanche" => {
                d.unimplemented(no, &format!("hash-type {w}"));
            }
            other => d.error(no, format!("unknown hash-type function '{other}' (expected sdbm, djb2, wt6, crc32, none or avalanche)")),
        }
    }
    st.proxy.hash_type = kind;
}

/// `cookie NAME insert|rewrite|prefix [indirect] [nocache] [preserve]
/// [httponly] [secure] [domain D]* [maxidle T] [maxlife T]`.
pub(super) fn cookie(d: &mut Diags, st: &mut ProxyState, no: usize, args: &[String]) {
    let Some(name) = d.need(no, args, 1, "a cookie name") else {
        return;
    };
    let mut mode = None;
    let mut c = CookieConfig {
        name: name.to_string(),
        mode: CookieMode::Insert,
        indirect: false,
        nocache: false,
        preserve: false,
        httponly: false,
        secure: false,
        domains: Vec::new(),
        maxidle: None,
        maxlife: None,
    };
    let words = args.get(2..).unwrap_or_default();
    let mut i = 0;
    let mut ok = true;
    while let Some(w) = words.get(i) {
        i += 1;
        let w = w.as_str();
        let new_mode = match w {
            "insert" => Some(CookieMode::Insert),
            "rewrite" => Some(CookieMode::Rewrite),
            "prefix" => Some(CookieMode::Prefix),
            _ => None,
        };
        if let Some(m) = new_mode {
            if mode.is_some_and(|old| old != m) {
                d.error(
                    no,
                    "'cookie': 'insert', 'rewrite' and 'prefix' are mutually exclusive",
                );
                ok = false;
            }
            mode = Some(m);
            continue;
        }
        match w {
            "indirect" => c.indirect = true,
            "nocache" => c.nocache = true,
            "preserve" => c.preserve = true,
            "httponly" => c.httponly = true,
            "secure" => c.secure = true,
            "postonly" | "dynamic" => d.unimplemented(no, &format!("cookie {w}")),
            "domain" | "maxidle" | "maxlife" | "attr" => {
                let Some(value) = words.get(i) else {
                    d.error(no, format!("'cookie {w}' expects an argument"));
                    return;
                };
                i += 1;
                match w {
                    "domain" => c.domains.push(value.clone()),
                    "maxidle" => c.maxidle = d.duration(no, "cookie maxidle", value),
                    "maxlife" => c.maxlife = d.duration(no, "cookie maxlife", value),
                    _ => d.unimplemented(no, "cookie attr"),
                }
            }
            other => {
                let names = [
                    "insert", "rewrite", "prefix", "indirect", "nocache", "preserve", "httponly",
                    "secure", "domain", "maxidle", "maxlife",
                ];
                let hint = keywords::hint(other, names);
                d.error(no, format!("unknown 'cookie' option '{other}'{hint}"));
                ok = false;
            }
        }
    }
    let Some(mode) = mode else {
        let msg = "'cookie' without 'insert', 'rewrite' or 'prefix' (passive mode) is not implemented by Shoal yet";
        return d.error(no, msg);
    };
    if ok {
        c.mode = mode;
        st.proxy.cookie = Some(c);
        st.lines.cookie = no;
    }
}

pub(super) fn http_check(d: &mut Diags, st: &mut ProxyState, no: usize, args: &[String]) {
    match d.need(no, args, 1, "an action such as 'expect'") {
        Some("expect") => {}
        Some("send") => return http_check_send(d, st, no, args.get(2..).unwrap_or_default()),
        Some(
            sub @ ("connect" | "disable-on-404" | "send-state" | "comment" | "set-var"
            | "unset-var"),
        ) => {
            return d.unimplemented(no, &format!("http-check {sub}"));
        }
        Some(other) => {
            let hint = keywords::hint(
                other,
                [
                    "expect",
                    "send",
                    "connect",
                    "disable-on-404",
                    "send-state",
                    "comment",
                ],
            );
            return d.error(no, format!("unknown 'http-check' action '{other}'{hint}"));
        }
        None => return,
    }
    let words = args.get(2..).unwrap_or_default();
    let mut i = 0;
    // Options of 2.2+ before the match (min-recv, comment, ok-status, ...).
    while let Some(w) = words.get(i) {
        if !matches!(
            w.as_str(),
            "min-recv"
                | "comment"
                | "ok-status"
                | "error-status"
                | "tout-status"
                | "on-success"
                | "on-error"
                | "status-code"
        ) {
            break;
        }
        d.unimplemented(no, &format!("http-check expect {w}"));
        i += 2;
    }
    let mut negate = false;
    let mut kind_word = words.get(i).map(String::as_str);
    if kind_word == Some("!") {
        negate = true;
        i += 1;
        kind_word = words.get(i).map(String::as_str);
    } else if let Some(k) = kind_word.and_then(|k| k.strip_prefix('!')) {
        negate = true;
        kind_word = Some(k);
    }
    let kind = match kind_word {
        Some("status") => ExpectKind::Status,
        Some("rstatus") => ExpectKind::Rstatus,
        Some("string") => ExpectKind::String,
        Some("rstring") => ExpectKind::Rstring,
        Some(m @ ("hdr" | "fhdr" | "custom")) => return d.unimplemented(no, &format!("http-check expect {m}")),
        Some(other) => return d.error(no, format!("unknown 'http-check expect' match '{other}' (expected status, rstatus, string or rstring)")),
        None => return d.error(no, "'http-check expect' expects a match (status, rstatus, string or rstring) and a pattern"),
    };
    i += 1;
    let Some(pattern) = words.get(i) else {
        return d.error(no, "'http-check expect' expects a pattern");
    };
    if let Some(extra) = words.get(i + 1) {
        return d.error(
            no,
            format!("unexpected argument '{extra}' after the 'http-check expect' pattern"),
        );
    }
    let valid = match kind {
        ExpectKind::Rstatus | ExpectKind::Rstring => acl::check_regex(pattern, false),
        ExpectKind::Status => pattern
            .split(',')
            .all(|part| {
                part.split('-')
                    .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            })
            .then_some(())
            .ok_or_else(|| {
                format!(
                    "invalid status pattern '{pattern}' (expected e.g. 200, 200-399 or 200,302)"
                )
            }),
        ExpectKind::String => Ok(()),
    };
    if let Err(e) = valid {
        return d.error(no, e);
    }
    own_check_rules(st);
    st.proxy.http_check_expect.push(HttpCheckExpect {
        negate,
        kind,
        pattern: pattern.clone(),
    });
}

/// The first `http-check` rule of a section replaces the whole ruleset
/// inherited from `defaults` (its `send` as well as its `expect` rules).
fn own_check_rules(st: &mut ProxyState) {
    if !st.lines.own_http_check {
        st.proxy.http_check_expect.clear();
        st.proxy.http_check_send = None;
        st.lines.own_http_check = true;
    }
}

/// `http-check send [meth M] [uri U] [ver V] [hdr NAME VALUE]... [body STRING]`
/// (HAProxy 2.2+); `words` follow `send`.
fn http_check_send(d: &mut Diags, st: &mut ProxyState, no: usize, words: &[String]) {
    const OPTIONS: [&str; 8] = [
        "meth", "uri", "uri-lf", "ver", "hdr", "body", "body-lf", "comment",
    ];
    let mut send = HttpCheckSend::default();
    let mut ok = true;
    let mut i = 0;
    while let Some(opt) = words.get(i) {
        i += 1;
        let opt = opt.as_str();
        if !OPTIONS.contains(&opt) {
            let hint = keywords::hint(opt, OPTIONS);
            return d.error(
                no,
                format!("unknown 'http-check send' option '{opt}'{hint}"),
            );
        }
        let Some(value) = words.get(i) else {
            let what = if opt == "hdr" {
                "a header name and a value"
            } else {
                "an argument"
            };
            return d.error(no, format!("'http-check send {opt}' expects {what}"));
        };
        i += 1;
        match opt {
            "meth" | "uri" | "ver" => {
                if value.is_empty() || value.chars().any(char::is_whitespace) {
                    d.error(
                        no,
                        format!("'http-check send {opt}' expects a non-empty word without spaces, got '{value}'"),
                    );
                    ok = false;
                    continue;
                }
                let slot = match opt {
                    "meth" => &mut send.method,
                    "uri" => &mut send.uri,
                    _ => &mut send.version,
                };
                *slot = Some(value.clone());
            }
            "hdr" => {
                let Some(hvalue) = words.get(i) else {
                    return d.error(
                        no,
                        format!("'http-check send hdr {value}' expects a header value"),
                    );
                };
                i += 1;
                let valid_name = !value.is_empty()
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
                if !valid_name {
                    d.error(
                        no,
                        format!("'http-check send hdr': invalid header name '{value}'"),
                    );
                    ok = false;
                    continue;
                }
                if hvalue.contains("%[") {
                    let form = "a log-format expression in 'http-check send hdr'";
                    d.gap(no, form, gaps::form(form));
                    ok = false;
                    continue;
                }
                send.headers.push((value.clone(), hvalue.clone()));
            }
            "body" => send.body = Some(value.clone()),
            // uri-lf, body-lf and comment.
            _ => d.unimplemented(no, &format!("http-check send {opt}")),
        }
    }
    if !ok {
        return;
    }
    own_check_rules(st);
    if st.proxy.http_check_send.is_some() {
        let form = "a second 'http-check send' rule (a multi-step check)";
        return d.gap(no, form, gaps::form(form));
    }
    st.proxy.http_check_send = Some(send);
}

pub(super) fn external_check(d: &mut Diags, st: &mut ProxyState, no: usize, args: &[String]) {
    let slot = match d.need(no, args, 1, "'command' or 'path'") {
        Some("command") => &mut st.proxy.external_check_command,
        Some("path") => &mut st.proxy.external_check_path,
        Some(other) => {
            return d.error(
                no,
                format!(
                    "unknown 'external-check' setting '{other}' (expected 'command' or 'path')"
                ),
            )
        }
        None => return,
    };
    if let Some(value) = d.need(no, args, 2, "an argument") {
        if d.at_most(no, args, 3) {
            *slot = Some(value.to_string());
        }
    }
}
