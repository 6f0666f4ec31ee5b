//! `stick-table` and `stick on|match|store-request` rules, and the checks
//! that need the whole file (a rule's table may be declared further down).

use super::keywords;
use super::state::ProxyState;
use super::validate::Index;
use super::{acl, duration, Diags};
use crate::config::{Mode, Proxy, StickAction, StickKeyType, StickPattern, StickRule, StickTable};

/// HAProxy's default key length of a `string` table.
const DEFAULT_STRING_LEN: u32 = 32;

/// HAProxy's bound on the element count of array data types (`gpc(N)`).
const MAX_ARRAY_SIZE: u32 = 100;

/// `stick-table` data types that take no argument.
const DATA_PLAIN: &[&str] = &[
    "server_id",
    "server_key",
    "server_name",
    "gpt0",
    "gpc0",
    "gpc1",
    "conn_cnt",
    "conn_cur",
    "sess_cnt",
    "http_req_cnt",
    "http_err_cnt",
    "http_fail_cnt",
    "bytes_in_cnt",
    "bytes_out_cnt",
    "glitch_cnt",
];

/// Data types that take a period: `conn_rate(10s)`.
const DATA_RATE: &[&str] = &[
    "gpc0_rate",
    "gpc1_rate",
    "conn_rate",
    "sess_rate",
    "http_req_rate",
    "http_err_rate",
    "http_fail_rate",
    "bytes_in_rate",
    "bytes_out_rate",
    "glitch_rate",
];

/// Data types that take an element count: `gpc(4)`; `gpc_rate(4,10s)`
/// takes a count and a period.
const DATA_ARRAY: &[&str] = &["gpt", "gpc", "gpc_rate"];

/// Whether `name` is one of HAProxy's stick-table data types (without
/// its argument): what `set table ... data.NAME` tells apart from an
/// unknown type.
pub fn is_data_type(name: &str) -> bool {
    DATA_PLAIN
        .iter()
        .chain(DATA_RATE)
        .chain(DATA_ARRAY)
        .any(|d| *d == name)
}

/// Arguments of `stick-table` (for the near-miss hint).
const TABLE_ARGS: &[&str] = &[
    "type",
    "size",
    "expire",
    "nopurge",
    "peers",
    "store",
    "srvkey",
    "write-to",
    "recv-only",
    "brates-factor",
];

/// `stick-table type ip|ipv6|integer|string [len N] size N[k|m|g]
/// [expire TIME] [nopurge] [peers NAME] [store DATA,...]...`.
pub(super) fn stick_table(d: &mut Diags, st: &mut ProxyState, no: usize, args: &[String]) {
    if st.proxy.stick_table.is_some() {
        let (kind, name) = (st.scope.name(), &st.proxy.name);
        return d.error(
            no,
            format!(
                "{kind} '{name}' already declares a stick-table at line {}",
                st.lines.stick_table
            ),
        );
    }
    let words = args.get(1..).unwrap_or_default();
    let (mut key, mut size, mut expire, mut store) = (None, None, None, Vec::new());
    let mut ok = true;
    let mut i = 0;
    while let Some(w) = words.get(i) {
        i += 1;
        let w = w.as_str();
        if !TABLE_ARGS.contains(&w) {
            let hint = keywords::hint(w, TABLE_ARGS.iter().copied());
            // The words after it cannot be told apart from arguments.
            return d.error(no, format!("unknown 'stick-table' argument '{w}'{hint}"));
        }
        let arg = if matches!(w, "nopurge" | "recv-only") {
            ""
        } else if let Some(a) = words.get(i) {
            i += 1;
            a.as_str()
        } else {
            return d.error(no, format!("'stick-table {w}' expects an argument"));
        };
        match w {
            "type" => {
                let len = if words.get(i).is_some_and(|l| l == "len")
                    && matches!(arg, "string" | "binary")
                {
                    i += 2;
                    match words
                        .get(i - 1)
                        .and_then(|n| n.parse::<u32>().ok())
                        .filter(|n| *n > 0)
                    {
                        Some(n) => n,
                        None => {
                            d.error(
                                no,
                                format!("'stick-table type {arg} len' expects a positive integer"),
                            );
                            ok = false;
                            continue;
                        }
                    }
                } else {
                    DEFAULT_STRING_LEN
                };
                key = match arg {
                    "ip" => Some(StickKeyType::Ip),
                    "ipv6" => Some(StickKeyType::Ipv6),
                    "integer" => Some(StickKeyType::Integer),
                    "string" => Some(StickKeyType::String { len }),
                    "binary" => {
                        d.error(
                            no,
                            "stick-table type 'binary' is not implemented by Shoal yet",
                        );
                        ok = false;
                        continue;
                    }
                    other => {
                        let hint = keywords::hint(other, ["ip", "ipv6", "integer", "string"]);
                        d.error(no, format!("unknown stick-table type '{other}' (expected ip, ipv6, integer or string){hint}"));
                        ok = false;
                        continue;
                    }
                };
            }
            "size" => match parse_size(arg) {
                Ok(n) => size = Some(n),
                Err(e) => {
                    d.error(no, format!("'stick-table size': {e}"));
                    ok = false;
                }
            },
            "expire" => match d.duration(no, "stick-table expire", arg) {
                Some(t) => expire = Some(t),
                None => ok = false,
            },
            "store" => ok &= store_list(d, no, arg, &mut store),
            // nopurge, peers, srvkey, write-to, recv-only, brates-factor.
            _ => d.unimplemented(no, &format!("stick-table {w}")),
        }
    }
    if !ok {
        return;
    }
    let (Some(key), Some(size)) = (key, size) else {
        let what = if key.is_none() {
            "'type ip|ipv6|integer|string'"
        } else {
            "'size N'"
        };
        return d.error(no, format!("'stick-table' expects {what}"));
    };
    st.proxy.stick_table = Some(StickTable {
        key,
        size,
        expire,
        store,
    });
    st.lines.stick_table = no;
}

/// HAProxy's size format: a number with an optional `k`, `m` or `g`
/// suffix (powers of 1024), at most 2^32-1, and not zero.
pub(super) fn parse_size(word: &str) -> Result<u64, String> {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = word.split_at(digits);
    let shift = match unit {
        "" => Some(0),
        "k" | "K" => Some(10),
        "m" | "M" => Some(20),
        "g" | "G" => Some(30),
        _ => None,
    };
    let Some(shift) = shift.filter(|_| !number.is_empty()) else {
        return Err(format!(
            "invalid size '{word}' (expected a number with an optional k, m or g suffix)"
        ));
    };
    let too_big = || format!("size '{word}' is too large (the maximum is {})", u32::MAX);
    let value = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1u64 << shift))
        .filter(|n| *n <= u64::from(u32::MAX))
        .ok_or_else(too_big)?;
    if value == 0 {
        return Err("the size must be greater than zero".into());
    }
    Ok(value)
}

/// `store DATA[,DATA...]`: checks each data type and appends it to
/// `store` as written. Returns false after an error.
fn store_list(d: &mut Diags, no: usize, arg: &str, store: &mut Vec<String>) -> bool {
    for item in split_top_level(arg) {
        if let Err(e) = check_data_type(item) {
            d.error(no, format!("'stick-table store': {e}"));
            return false;
        }
        let base = |s: &str| s.split('(').next().unwrap_or_default().to_string();
        if store.iter().any(|s| base(s) == base(item)) {
            d.warn(
                no,
                format!(
                    "'stick-table store': '{}' is already stored; ignored",
                    base(item)
                ),
            );
            continue;
        }
        store.push(item.to_string());
    }
    true
}

/// Splits at the commas that are not inside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0usize, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(text.get(start..i).unwrap_or_default());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(text.get(start..).unwrap_or_default());
    parts
}

/// One `store` data type: a known name with the arguments it needs.
fn check_data_type(item: &str) -> Result<(), String> {
    let (name, arg) = match item.split_once('(') {
        Some((name, rest)) => match rest.strip_suffix(')') {
            Some(a) if !a.contains(['(', ')']) => (name, Some(a)),
            _ => {
                return Err(format!(
                    "malformed data type '{item}' (expected NAME or NAME(ARG))"
                ))
            }
        },
        None => (item, None),
    };
    let period = |p: &str| duration::parse(p).map(|_| ());
    let count = |n: &str| match n.parse::<u32>() {
        Ok(n) if (1..=MAX_ARRAY_SIZE).contains(&n) => Ok(()),
        _ => Err(format!(
            "'{name}' expects an element count from 1 to {MAX_ARRAY_SIZE}, got '{n}'"
        )),
    };
    if DATA_PLAIN.contains(&name) {
        return match arg {
            None => Ok(()),
            Some(_) => Err(format!("data type '{name}' takes no argument")),
        };
    }
    if DATA_RATE.contains(&name) {
        return match arg {
            Some(p) => period(p),
            None => Err(format!(
                "data type '{name}' expects a period, as in {name}(10s)"
            )),
        };
    }
    if DATA_ARRAY.contains(&name) {
        return match (name, arg.map(|a| a.split_once(','))) {
            ("gpc_rate", Some(Some((n, p)))) => count(n).and_then(|()| period(p)),
            ("gpc_rate", _) => Err(
                "data type 'gpc_rate' expects a count and a period, as in gpc_rate(2,10s)".into(),
            ),
            (_, Some(None)) => count(arg.unwrap_or_default()),
            _ => Err(format!(
                "data type '{name}' expects an element count, as in {name}(2)"
            )),
        };
    }
    let names = DATA_PLAIN
        .iter()
        .chain(DATA_RATE)
        .chain(DATA_ARRAY)
        .copied();
    let hint = keywords::hint(name, names);
    Err(format!("unknown data type '{name}'{hint}"))
}

/// `stick on|match|store-request PATTERN [table NAME] [if|unless COND]`.
pub(super) fn stick_rule(d: &mut Diags, st: &mut ProxyState, no: usize, args: &[String]) {
    const ACTIONS: [&str; 4] = ["on", "match", "store-request", "store-response"];
    let action = match d.need(
        no,
        args,
        1,
        "'on', 'match', 'store-request' or 'store-response'",
    ) {
        Some("on") => StickAction::On,
        Some("match") => StickAction::Match,
        // `store` is HAProxy's older spelling of `store-request`.
        Some("store-request" | "store") => StickAction::StoreRequest,
        Some("store-response") => return d.unimplemented(no, "stick store-response"),
        Some(other) => {
            let hint = keywords::hint(other, ACTIONS);
            return d.error(no, format!("unknown 'stick' action '{other}' (expected on, match, store-request or store-response){hint}"));
        }
        None => return,
    };
    let label = args.get(..2).unwrap_or_default().join(" ");
    let Some(word) = d.need(no, args, 2, "a pattern such as 'src' or 'req.cook(NAME)'") else {
        return;
    };
    let pattern = match pattern(word) {
        Ok(p) => p,
        Err(e) => return d.error(no, format!("'{label}': {e}")),
    };
    let mut rest = args.get(3..).unwrap_or_default();
    let mut table = None;
    if rest.first().is_some_and(|w| w == "table") {
        let Some(name) = rest.get(1) else {
            return d.error(no, format!("'{label}': 'table' expects a table name"));
        };
        table = Some(name.clone());
        rest = rest.get(2..).unwrap_or_default();
    }
    let cond = match rest.first().map(String::as_str) {
        None => None,
        Some("if" | "unless") => match acl::condition(d, no, &st.acl_names, rest) {
            Some(c) => Some(c),
            None => return,
        },
        Some(other) => {
            return d.error(
                no,
                format!("'{label}': unexpected argument '{other}' (expected 'table NAME', or 'if'/'unless' and a condition)"),
            )
        }
    };
    st.proxy.stick_rules.push(StickRule {
        action,
        pattern,
        table,
        cond,
    });
    st.lines.stick_rules.push(no);
}

/// A stick rule's pattern: `src`, `req.cook(NAME)`/`cookie(NAME)` or
/// `req.hdr(NAME)`/`hdr(NAME)`.
fn pattern(word: &str) -> Result<StickPattern, String> {
    if split_top_level(word).len() > 1 {
        return Err(format!(
            "converters ('{word}') are not implemented by Shoal yet"
        ));
    }
    let (base, arg) = match word.split_once('(') {
        Some((base, rest)) => match rest.strip_suffix(')') {
            Some(arg) if !arg.contains(['(', ')']) => (base, Some(arg)),
            _ => return Err(format!("malformed pattern '{word}' (expected NAME(ARG))")),
        },
        None => (word, None),
    };
    let name = arg.unwrap_or_default();
    match base {
        "src" if arg.is_none() => Ok(StickPattern::Src),
        "src" => Err("'src' takes no argument".into()),
        "req.cook" | "cookie" => {
            if name.is_empty() {
                Err(format!("'{base}' needs a cookie name, as in {base}(SESSIONID)"))
            } else if name.contains(',') {
                Err(format!("malformed pattern '{word}' (expected {base}(NAME))"))
            } else {
                Ok(StickPattern::ReqCookie(name.to_string()))
            }
        }
        "req.hdr" | "hdr" => {
            if name.is_empty() {
                Err(format!("'{base}' needs a header name, as in {base}(x-user)"))
            } else if name.contains(',') {
                Err(format!(
                    "header occurrence in '{word}' is not implemented by Shoal yet"
                ))
            } else {
                Ok(StickPattern::ReqHdr(name.to_ascii_lowercase()))
            }
        }
        _ => Err(format!("pattern '{word}' is not implemented by Shoal yet (Shoal supports src, req.cook(NAME) and req.hdr(NAME))")),
    }
}

/// The pattern as the printer writes it.
pub(super) fn pattern_name(p: &StickPattern) -> String {
    match p {
        StickPattern::Src => "src".into(),
        StickPattern::ReqCookie(c) => format!("req.cook({c})"),
        StickPattern::ReqHdr(h) => format!("req.hdr({h})"),
    }
}

/// Checks run when a section ends: HTTP patterns need `mode http`.
pub(super) fn end_of_proxy(d: &mut Diags, st: &ProxyState) {
    let p = &st.proxy;
    if p.mode != Mode::Tcp {
        return;
    }
    for (rule, line) in p.stick_rules.iter().zip(&st.lines.stick_rules) {
        if rule.pattern != StickPattern::Src {
            let msg = format!(
                "stick rule uses '{}', which needs 'mode http'; {} '{}' is in mode tcp, so the rule never matches",
                pattern_name(&rule.pattern),
                p.kind.keyword(),
                p.name
            );
            d.warn(*line, msg);
        }
    }
}

/// Checks run once the whole file is read: each rule has a table, and
/// table names (the names of their proxies) are unique.
pub(super) fn whole_config(d: &mut Diags, index: &Index) {
    let proxies = index.all;
    for st in proxies {
        if st.proxy.stick_table.is_none() {
            continue;
        }
        // The first table of that name, if it is not this one.
        let first = index
            .named(&st.proxy.name)
            .find(|o| o.proxy.stick_table.is_some());
        if let Some(o) = first.filter(|o| !std::ptr::eq(*o, st)) {
            let name = &st.proxy.name;
            d.error(
                st.lines.stick_table,
                format!(
                    "stick-table of {} '{name}' has the same name as the one of {} '{name}' declared at line {} (a table is named after its proxy)",
                    st.proxy.kind.keyword(),
                    o.proxy.kind.keyword(),
                    o.lines.stick_table
                ),
            );
        }
    }
    for st in proxies {
        let p = &st.proxy;
        for (rule, line) in p.stick_rules.iter().zip(&st.lines.stick_rules) {
            if d.is_full() {
                return;
            }
            if let Some((name, table)) = rule_table(d, index, p, rule, *line) {
                check_key_type(d, rule, name, table, *line);
            }
        }
    }
}

/// The table a rule uses, or an error.
fn rule_table<'a>(
    d: &mut Diags,
    index: &Index<'a>,
    from: &'a Proxy,
    rule: &'a StickRule,
    line: usize,
) -> Option<(&'a str, &'a StickTable)> {
    let Some(target) = &rule.table else {
        if let Some(t) = &from.stick_table {
            return Some((&from.name, t));
        }
        let (kind, name) = (from.kind.keyword(), &from.name);
        d.error(line, format!("stick rule needs a stick-table, but {kind} '{name}' declares none (add a 'stick-table' line, or name another proxy's table with 'table NAME')"));
        return None;
    };
    let declaring = index
        .named(target)
        .map(|st| &st.proxy)
        .find(|p| p.stick_table.is_some());
    if let Some(t) = declaring.and_then(|p| p.stick_table.as_ref()) {
        return Some((target, t));
    }
    let msg = if target.contains('/') {
        format!("stick rule uses table '{target}': tables of 'peers' sections are not implemented by Shoal yet")
    } else if let Some(p) = index.named(target).next() {
        format!(
            "stick rule uses table '{target}', but {} '{target}' declares no stick-table",
            p.proxy.kind.keyword()
        )
    } else {
        let names = index
            .all
            .iter()
            .filter(|st| st.proxy.stick_table.is_some())
            .map(|st| st.proxy.name.as_str());
        let hint = keywords::hint(target, names);
        format!("stick rule uses table '{target}', which is not declared (a table is named after the proxy that declares it){hint}")
    };
    d.error(line, msg);
    None
}

/// Warns when the pattern does not fit the table's key type. HAProxy
/// converts between types where it can, so this is only a warning.
fn check_key_type(d: &mut Diags, rule: &StickRule, name: &str, table: &StickTable, line: usize) {
    let (fits, expected) = match rule.pattern {
        StickPattern::Src => (
            matches!(table.key, StickKeyType::Ip | StickKeyType::Ipv6),
            "ip or ipv6",
        ),
        StickPattern::ReqCookie(_) | StickPattern::ReqHdr(_) => {
            (matches!(table.key, StickKeyType::String { .. }), "string")
        }
    };
    if !fits {
        let ty = match table.key {
            StickKeyType::Ip => "ip",
            StickKeyType::Ipv6 => "ipv6",
            StickKeyType::Integer => "integer",
            StickKeyType::String { .. } => "string",
        };
        d.warn(
            line,
            format!(
                "stick rule keys on '{}', but stick-table '{name}' is of type '{ty}' (expected {expected})",
                pattern_name(&rule.pattern)
            ),
        );
    }
}
