//! `option NAME`, `no option NAME` and `default option NAME`.

use super::gaps;
use super::keywords::{self, OPTIONS_IMPLEMENTED};
use super::proxy::wrong_side;
use super::state::ProxyState;
use super::timeout::Side;
use super::{addr, Diags};
use crate::config::HttpChk;

/// `[no|default] option NAME [ARGS]`; `at` is the index of `option`.
pub(super) fn option(
    d: &mut Diags,
    st: &mut ProxyState,
    no: usize,
    all: &[String],
    at: usize,
    negate: bool,
) {
    let args = all.get(at..).unwrap_or_default();
    let Some(name) = d.need(no, args, 1, "an option name") else {
        return;
    };
    let label = format!("option {name}");
    if let Some(gap) = gaps::find(gaps::OPTIONS, name) {
        // `no option X` asks for what Shoal does without X: nothing to say.
        if !negate {
            d.gap(no, &format!("'{label}'"), gap);
        }
        return;
    }
    if !OPTIONS_IMPLEMENTED.contains(&name) {
        let known = OPTIONS_IMPLEMENTED
            .iter()
            .copied()
            .chain(gaps::OPTIONS.iter().map(|(k, _)| *k));
        let hint = keywords::hint(name, known);
        return d.error(no, format!("unknown option '{name}'{hint}"));
    }
    let side = match name {
        "redispatch" | "allbackups" | "persist" | "httpchk" | "external-check" => Side::Be,
        "httplog" | "tcplog" => Side::Fe,
        _ => Side::Both,
    };
    if (side == Side::Be && !st.scope.be()) || (side == Side::Fe && !st.scope.fe()) {
        return wrong_side(d, st, no, &label);
    }
    if negate && matches!(name, "httpchk" | "forwardfor") {
        let prefix = all.first().map(String::as_str).unwrap_or("no");
        return d.error(no, format!("'{label}' cannot be used with '{prefix}'"));
    }
    let rest = args.get(2..).unwrap_or_default();
    let o = &mut st.proxy.options;
    let on = !negate;
    let no_args = |d: &mut Diags| {
        d.at_most(no, args, 2);
    };
    match name {
        "redispatch" => {
            if !rest.is_empty() {
                d.unimplemented(no, "option redispatch interval");
            }
            o.redispatch = on;
        }
        "forwardfor" => {
            forwardfor_args(d, no, rest);
            o.forwardfor = true;
        }
        "httpchk" => {
            if let Some(chk) = httpchk(d, no, args) {
                o.httpchk = Some(chk);
            }
        }
        // The three HTTP connection modes exclude each other; the last wins.
        "http-keep-alive" => {
            no_args(d);
            o.http_keep_alive = on;
            o.httpclose &= !on;
        }
        "httpclose" | "forceclose" => {
            no_args(d);
            if name == "forceclose" {
                d.warn(
                    no,
                    "'option forceclose' is deprecated; Shoal reads it as 'option httpclose'",
                );
            }
            o.httpclose = on;
            o.http_keep_alive &= !on;
        }
        // Shoal has no server-close mode yet. Clients see the same thing as
        // with HAProxy's default keep-alive mode, so that is what it maps to
        // (both flags off); only server connections are kept open too.
        "http-server-close" => {
            no_args(d);
            if on {
                d.warn_once(
                    "option http-server-close",
                    no,
                    "'option http-server-close' is not implemented by Shoal yet; it uses keep-alive mode (server connections are reused)",
                );
                o.httpclose = false;
                o.http_keep_alive = false;
            }
        }
        "allbackups" => {
            no_args(d);
            o.allbackups = on;
        }
        "persist" => {
            no_args(d);
            o.persist = on;
        }
        "external-check" => {
            no_args(d);
            o.external_check = on;
        }
        "httplog" => {
            match rest.first().map(String::as_str) {
                Some("clf") => d.unimplemented(no, "option httplog clf"),
                Some(other) => d.error(
                    no,
                    format!("unexpected argument '{other}' after 'option httplog'"),
                ),
                None => {}
            }
            o.httplog = on;
            o.tcplog &= !on;
            st.lines.httplog = no;
        }
        _ => {
            no_args(d);
            o.tcplog = on;
            o.httplog &= !on;
        }
    }
}

/// `option forwardfor [except NET] [header NAME] [if-none]`.
fn forwardfor_args(d: &mut Diags, no: usize, words: &[String]) {
    let mut i = 0;
    while let Some(w) = words.get(i) {
        i += 1;
        match w.as_str() {
            "except" | "header" => {
                let Some(value) = words.get(i) else {
                    return d.error(no, format!("'option forwardfor {w}' expects an argument"));
                };
                i += 1;
                if w == "except" && !addr::is_ip_or_network(value) {
                    d.error(no, format!("'option forwardfor except' expects an address or network, got '{value}'"));
                }
                d.unimplemented(no, &format!("option forwardfor {w}"));
            }
            "if-none" => d.unimplemented(no, "option forwardfor if-none"),
            other => d.error(no, format!("unknown 'option forwardfor' argument '{other}' (expected except, header or if-none)")),
        }
    }
}

/// `option httpchk`, `option httpchk URI`, `option httpchk METHOD URI [VERSION]`.
fn httpchk(d: &mut Diags, no: usize, args: &[String]) -> Option<HttpChk> {
    let mut chk = HttpChk::default();
    match args.get(2..).unwrap_or_default() {
        [] => {}
        [uri] => chk.uri = uri.clone(),
        [method, uri] => (chk.method, chk.uri) = (method.clone(), uri.clone()),
        [method, uri, version] => {
            (chk.method, chk.uri, chk.version) = (method.clone(), uri.clone(), version.clone());
        }
        _ => {
            d.at_most(no, args, 5);
            return None;
        }
    }
    Some(chk)
}
