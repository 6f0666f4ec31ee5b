//! A frontend's `http-request` rules, compiled once per snapshot and run
//! on each request before routing, in order: the first `redirect` whose
//! condition holds answers at once; header rules whose conditions hold
//! are remembered in a bit set and applied when the head is written for
//! the server (so a request costs no allocation for them).
//!
//! Every condition sees the request as the client sent it: a header set
//! by an earlier rule is not visible to a later rule's ACLs (HAProxy's
//! would be), which only matters for rules that test headers they set.

use crate::acl::{AclError, CompiledCond, Samples};
use shoal_proto::config::{HttpRequestAction, Proxy};

/// Most `http-request` rules a frontend may have (one bit each).
pub const MAX_RULES: usize = 64;

/// The compiled rules of one frontend.
#[derive(Debug, Default)]
pub struct Rules {
    rules: Box<[Rule]>,
}

#[derive(Debug)]
struct Rule {
    cond: CompiledCond,
    action: Action,
}

#[derive(Debug)]
enum Action {
    Redirect {
        scheme: Box<str>,
        code: u16,
    },
    /// `set-header` (drop, then add), `add-header` (add), `del-header`
    /// (drop).
    Header {
        name: Box<str>,
        value: Option<Box<str>>,
        drop: bool,
    },
}

/// What the rules decided for a request.
pub enum Verdict {
    /// Forward it, applying the header rules in the set.
    Forward(HeaderSet),
    /// Answer with this redirect.
    Redirect { code: u16, scheme: Box<str> },
}

/// The header rules that hold for a request (bit `i`: rule `i`).
#[derive(Debug, Clone, Copy, Default)]
pub struct HeaderSet(u64);

impl Rules {
    /// Compiles `proxy`'s rules against its ACLs.
    pub fn compile(proxy: &Proxy) -> Result<Rules, String> {
        if proxy.http_request.len() > MAX_RULES {
            return Err(format!(
                "{} 'http-request' rules; Shoal takes at most {MAX_RULES} per frontend",
                proxy.http_request.len()
            ));
        }
        let rules = proxy
            .http_request
            .iter()
            .map(|r| {
                let cond = CompiledCond::compile(&r.cond, &proxy.acls)?;
                let action = match &r.action {
                    HttpRequestAction::RedirectScheme { scheme, code } => Action::Redirect {
                        scheme: scheme.as_str().into(),
                        code: *code,
                    },
                    HttpRequestAction::SetHeader { name, value } => Action::Header {
                        name: name.as_str().into(),
                        value: Some(value.as_str().into()),
                        drop: true,
                    },
                    HttpRequestAction::AddHeader { name, value } => Action::Header {
                        name: name.as_str().into(),
                        value: Some(value.as_str().into()),
                        drop: false,
                    },
                    HttpRequestAction::DelHeader { name } => Action::Header {
                        name: name.as_str().into(),
                        value: None,
                        drop: true,
                    },
                };
                Ok(Rule { cond, action })
            })
            .collect::<Result<Vec<_>, AclError>>()
            .map_err(|e| e.to_string())?;
        Ok(Rules {
            rules: rules.into_boxed_slice(),
        })
    }

    /// True when there is no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Runs the rules on a request.
    pub fn eval(&self, s: &dyn Samples) -> Verdict {
        let mut set = 0u64;
        for (i, rule) in self.rules.iter().enumerate() {
            if !rule.cond.eval(s) {
                continue;
            }
            match &rule.action {
                Action::Redirect { scheme, code } => {
                    return Verdict::Redirect {
                        code: *code,
                        scheme: scheme.clone(),
                    }
                }
                Action::Header { .. } => set |= 1 << i,
            }
        }
        Verdict::Forward(HeaderSet(set))
    }

    fn held(&self, set: HeaderSet) -> impl Iterator<Item = (usize, &Action)> {
        self.rules
            .iter()
            .enumerate()
            .filter(move |(i, _)| set.0 & (1 << i) != 0)
            .map(|(i, r)| (i, &r.action))
    }

    /// True when a rule that holds removes header lines called `name`.
    pub fn drops(&self, set: HeaderSet, name: &[u8]) -> bool {
        set.0 != 0
            && self.held(set).any(|(_, a)| {
                matches!(a, Action::Header { name: n, drop: true, .. } if n.as_bytes().eq_ignore_ascii_case(name))
            })
    }

    /// Calls `f` with each header line the rules that hold add, in rule
    /// order; a line a later `set-header`/`del-header` of the same name
    /// removes is left out.
    pub fn added(&self, set: HeaderSet, mut f: impl FnMut(&[u8], &[u8])) {
        if set.0 == 0 {
            return;
        }
        for (i, action) in self.held(set) {
            let Action::Header {
                name,
                value: Some(value),
                ..
            } = action
            else {
                continue;
            };
            let removed_later = self.held(set).any(|(j, a)| {
                j > i && matches!(a, Action::Header { name: n, drop: true, .. } if n.eq_ignore_ascii_case(name))
            });
            if !removed_later {
                f(name.as_bytes(), value.as_bytes());
            }
        }
    }
}

/// HAProxy's redirect answer: no body, the new location, `cache-control:
/// no-cache` on the temporary codes (302, 303, 307), as HAProxy 2.6 writes
/// them; `connection` is the line to add, if any.
pub fn redirect(out: &mut Vec<u8>, code: u16, location: &[&[u8]], connection: Option<&str>) {
    let reason = match code {
        301 => "Moved Permanently",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        _ => "Found",
    };
    out.extend_from_slice(
        format!("HTTP/1.1 {code} {reason}\r\ncontent-length: 0\r\nlocation: ").as_bytes(),
    );
    for part in location {
        out.extend_from_slice(part);
    }
    out.extend_from_slice(b"\r\n");
    if matches!(code, 302 | 303 | 307) {
        out.extend_from_slice(b"cache-control: no-cache\r\n");
    }
    if let Some(c) = connection {
        out.extend_from_slice(format!("connection: {c}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}
