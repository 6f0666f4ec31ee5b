//! `timeout NAME VALUE` and the legacy `contimeout`/`clitimeout`/`srvtimeout`.

use super::keywords;
use super::proxy::{one_arg, wrong_side};
use super::state::ProxyState;
use super::Diags;
use crate::config::Timeouts;
use std::time::Duration;

/// Timeout names Shoal implements and the side each applies to.
pub(super) const TIMEOUTS: &[(&str, Side)] = &[
    ("connect", Side::Be),
    ("client", Side::Fe),
    ("server", Side::Be),
    ("queue", Side::Be),
    ("check", Side::Be),
    ("http-request", Side::Both),
    ("http-keep-alive", Side::Both),
    ("tunnel", Side::Be),
    ("client-fin", Side::Fe),
    ("server-fin", Side::Be),
];

/// Real HAProxy timeouts Shoal does not implement yet (see `gaps::FORMS`).
pub(super) const TIMEOUTS_UNIMPLEMENTED: &[&str] = &["tarpit", "client-hs"];

/// Which side of a proxy a setting applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Fe,
    Be,
    Both,
}

/// The model field for timeout `name` (one of [`TIMEOUTS`]).
pub(super) fn timeout_slot<'a>(
    t: &'a mut Timeouts,
    name: &str,
) -> Option<&'a mut Option<Duration>> {
    Some(match name {
        "connect" => &mut t.connect,
        "client" => &mut t.client,
        "server" => &mut t.server,
        "queue" => &mut t.queue,
        "check" => &mut t.check,
        "http-request" => &mut t.http_request,
        "http-keep-alive" => &mut t.http_keep_alive,
        "tunnel" => &mut t.tunnel,
        "client-fin" => &mut t.client_fin,
        "server-fin" => &mut t.server_fin,
        _ => return None,
    })
}

/// Parses `timeout NAME VALUE` (also used by the global section); returns
/// the name, its side and the value, or `None` after reporting. A value of
/// 0 is `None` inside: HAProxy stores "no timeout" and "0" alike.
pub(super) fn parse_timeout<'a>(
    d: &mut Diags,
    no: usize,
    args: &'a [String],
) -> Option<(&'a str, Side, Option<Duration>)> {
    let name = d.need(
        no,
        args,
        1,
        "a name (connect, client, server, ...) and a duration",
    )?;
    if TIMEOUTS_UNIMPLEMENTED.contains(&name) {
        d.unimplemented(no, &format!("timeout {name}"));
        return None;
    }
    let Some(&(_, side)) = TIMEOUTS.iter().find(|(n, _)| *n == name) else {
        let hint = keywords::hint(name, TIMEOUTS.iter().map(|(n, _)| *n));
        d.error(no, format!("unknown timeout '{name}'{hint}"));
        return None;
    };
    let word = d.need(no, args, 2, "a duration")?;
    if !d.at_most(no, args, 3) {
        return None;
    }
    let value = d.duration(no, &format!("timeout {name}"), word)?;
    Some((name, side, Some(value).filter(|v| !v.is_zero())))
}

pub(super) fn timeout(d: &mut Diags, st: &mut ProxyState, no: usize, args: &[String]) {
    let Some((name, side, value)) = parse_timeout(d, no, args) else {
        return;
    };
    set_timeout(d, st, no, name, side, value);
}

fn set_timeout(
    d: &mut Diags,
    st: &mut ProxyState,
    no: usize,
    name: &str,
    side: Side,
    value: Option<Duration>,
) {
    let applies = match side {
        Side::Fe => st.scope.fe(),
        Side::Be => st.scope.be(),
        Side::Both => true,
    };
    if !applies {
        return wrong_side(d, st, no, &format!("timeout {name}"));
    }
    if let Some(slot) = timeout_slot(&mut st.proxy.timeouts, name) {
        *slot = value;
    }
}

/// `contimeout`, `clitimeout`, `srvtimeout`: removed from HAProxy 2.x but
/// common in old configs; read as their `timeout` equivalents.
pub(super) fn legacy_timeout(d: &mut Diags, st: &mut ProxyState, no: usize, args: &[String]) {
    let Some(kw) = args.first().map(String::as_str) else {
        return;
    };
    let (name, side) = match kw {
        "contimeout" => ("connect", Side::Be),
        "clitimeout" => ("client", Side::Fe),
        _ => ("server", Side::Be),
    };
    d.warn(
        no,
        format!("'{kw}' is deprecated; use 'timeout {name}' (Shoal reads it as that)"),
    );
    let Some(word) = one_arg(d, no, args, "a duration") else {
        return;
    };
    if let Some(value) = d.duration(no, kw, word) {
        set_timeout(d, st, no, name, side, Some(value).filter(|v| !v.is_zero()));
    }
}
