//! `http-request` rules: the actions Shoal implements (`redirect scheme`,
//! `set-header`, `add-header`, `del-header`) in frontends and listens.
//! Every other action, and rules in backends, are refused: ignoring them
//! would skip access control, rewriting or redirects.

use super::gaps::HTTP_REQUEST;
use super::state::{ProxyState, Scope};
use super::{acl, Diags};
use crate::config::{Condition, HttpRequestAction, HttpRequestRule};

/// Redirect codes HAProxy accepts.
const CODES: &[u16] = &[301, 302, 303, 307, 308];

/// One `http-request` line.
pub(super) fn line(d: &mut Diags, st: &mut ProxyState, no: usize, args: &[String]) {
    let Some(action) = d.need(no, args, 1, "an action such as 'redirect' or 'set-header'") else {
        return;
    };
    if st.scope == Scope::Defaults || !st.scope.fe() {
        return d.gap(
            no,
            &format!("'http-request' in a '{}' section", st.scope.name()),
            HTTP_REQUEST,
        );
    }
    let (action, rest) = match action {
        "redirect" => match redirect(d, no, args) {
            Some(parsed) => parsed,
            None => return,
        },
        "set-header" | "add-header" => {
            let (Some(name), Some(value)) = (
                d.need(no, args, 2, "a header name and a value"),
                d.need(no, args, 3, "a header name and a value"),
            ) else {
                return;
            };
            if value.contains('%') {
                return d.gap(
                    no,
                    &format!("a log-format expression in 'http-request {action}'"),
                    HTTP_REQUEST,
                );
            }
            if !header_name(d, no, name) {
                return;
            }
            let (name, value) = (name.to_string(), value.to_string());
            let a = if action == "set-header" {
                HttpRequestAction::SetHeader { name, value }
            } else {
                HttpRequestAction::AddHeader { name, value }
            };
            (a, args.get(4..).unwrap_or_default())
        }
        "del-header" => {
            let Some(name) = d.need(no, args, 2, "a header name") else {
                return;
            };
            if args.get(3).is_some_and(|w| w == "-m") {
                return d.gap(no, "'http-request del-header -m'", HTTP_REQUEST);
            }
            if !header_name(d, no, name) {
                return;
            }
            let a = HttpRequestAction::DelHeader {
                name: name.to_string(),
            };
            (a, args.get(3..).unwrap_or_default())
        }
        other => {
            return d.gap(no, &format!("'http-request {other}'"), HTTP_REQUEST);
        }
    };
    let cond = match rest.first().map(String::as_str) {
        None => Some(Condition::always()),
        Some("if" | "unless") => acl::condition(d, no, &st.acl_names, rest),
        Some(other) => {
            d.error(
                no,
                format!(
                    "'http-request': unexpected argument '{other}' (expected 'if' or 'unless')"
                ),
            );
            None
        }
    };
    if let Some(cond) = cond {
        st.proxy.http_request.push(HttpRequestRule { action, cond });
    }
}

/// `redirect scheme SCHEME [code N]`, and the words left for a condition.
fn redirect<'a>(
    d: &mut Diags,
    no: usize,
    args: &'a [String],
) -> Option<(HttpRequestAction, &'a [String])> {
    let kind = d.need(no, args, 2, "'scheme', 'location' or 'prefix'")?;
    if kind != "scheme" {
        d.gap(no, &format!("'http-request redirect {kind}'"), HTTP_REQUEST);
        return None;
    }
    let scheme = d.need(no, args, 3, "a scheme such as 'https'")?;
    if scheme.contains('%')
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        d.gap(
            no,
            "a log-format expression in 'http-request redirect scheme'",
            HTTP_REQUEST,
        );
        return None;
    }
    let mut code = 302;
    let mut i = 4;
    while let Some(w) = args.get(i) {
        match w.as_str() {
            "if" | "unless" => break,
            "code" => {
                let n = args.get(i + 1).and_then(|n| n.parse::<u16>().ok());
                match n.filter(|n| CODES.contains(n)) {
                    Some(n) => code = n,
                    None => {
                        // HAProxy's wording.
                        d.error(no, format!("'http-request redirect': 'code': unsupported HTTP code '{}' (must be one of 301, 302, 303, 307 or 308)", args.get(i + 1).map_or("", String::as_str)));
                        return None;
                    }
                }
                i += 2;
            }
            opt @ ("drop-query" | "append-slash" | "set-cookie" | "clear-cookie"
            | "ignore-empty") => {
                d.gap(
                    no,
                    &format!("'http-request redirect' option '{opt}'"),
                    HTTP_REQUEST,
                );
                return None;
            }
            other => {
                d.error(
                    no,
                    format!("'http-request redirect': unexpected argument '{other}' (expected 'code', 'if' or 'unless')"),
                );
                return None;
            }
        }
    }
    let action = HttpRequestAction::RedirectScheme {
        scheme: scheme.to_string(),
        code,
    };
    Some((action, args.get(i..).unwrap_or_default()))
}

/// A header name is an HTTP token.
fn header_name(d: &mut Diags, no: usize, name: &str) -> bool {
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        d.error(no, format!("'http-request': invalid header name '{name}'"));
    }
    token
}

/// The rule as the printer writes it (without its condition).
pub(crate) fn print(rule: &HttpRequestRule) -> Vec<String> {
    let mut out = vec!["http-request".to_string()];
    match &rule.action {
        HttpRequestAction::RedirectScheme { scheme, code } => out.extend([
            "redirect".into(),
            "scheme".into(),
            scheme.clone(),
            "code".into(),
            code.to_string(),
        ]),
        HttpRequestAction::SetHeader { name, value } => {
            out.extend(["set-header".into(), name.clone(), value.clone()]);
        }
        HttpRequestAction::AddHeader { name, value } => {
            out.extend(["add-header".into(), name.clone(), value.clone()]);
        }
        HttpRequestAction::DelHeader { name } => out.extend(["del-header".into(), name.clone()]),
    }
    out
}

#[cfg(test)]
mod tests;
