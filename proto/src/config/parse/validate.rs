//! Checks that need a whole section or the whole file.

use super::acl::{is_http, sample_name};
use super::keywords;
use super::state::ProxyState;
use super::{stick, Diags};
use crate::config::{AclRef, Balance, Condition, Mode, Observe, Proxy};
use std::collections::HashMap;

/// The complete proxies, with an index by name so that the whole-file
/// checks take linear time however many proxies there are.
pub(super) struct Index<'a> {
    pub all: &'a [ProxyState],
    by_name: HashMap<&'a str, Vec<&'a ProxyState>>,
}

impl<'a> Index<'a> {
    fn new(all: &'a [ProxyState]) -> Self {
        let mut by_name: HashMap<&str, Vec<&ProxyState>> = HashMap::new();
        for st in all {
            by_name.entry(st.proxy.name.as_str()).or_default().push(st);
        }
        Index { all, by_name }
    }
    /// The proxies called `name`, in file order.
    pub fn named(&self, name: &str) -> impl Iterator<Item = &'a ProxyState> + '_ {
        self.by_name.get(name).into_iter().flatten().copied()
    }
}

/// Checks run when a proxy section ends (its mode is then known).
pub(super) fn end_of_proxy(d: &mut Diags, st: &mut ProxyState) {
    let (p, lines) = (&mut st.proxy, &st.lines);
    let (kind, name) = (p.kind.keyword(), p.name.clone());
    if p.mode == Mode::Tcp && p.kind.is_frontend() {
        for (acl, line) in p.acls.iter().zip(&lines.acls) {
            if is_http(&acl.sample) {
                let what = format!("acl '{}' uses '{}'", acl.name, sample_name(&acl.sample));
                d.error(
                    *line,
                    format!("{what}, which needs 'mode http', but {kind} '{name}' is in mode tcp"),
                );
            }
        }
        let conds = p
            .use_backends
            .iter()
            .map(|u| &u.cond)
            .zip(lines.use_backends.iter().copied());
        let admin = p.stats.admin.as_ref().map(|c| (c, lines.stats_admin));
        for (cond, line) in conds.chain(admin) {
            for sample in inline_http_samples(cond) {
                d.error(line, format!("anonymous acl uses '{sample}', which needs 'mode http', but {kind} '{name}' is in mode tcp"));
            }
        }
        if !p.http_request.is_empty() {
            // HAProxy ignores them with a warning; ignoring a redirect or a
            // header rule would change what traffic means.
            d.error(
                lines.header,
                format!(
                    "'http-request' rules need 'mode http', but {kind} '{name}' is in mode tcp"
                ),
            );
        }
        if p.options.httplog {
            let msg = format!(
                "'option httplog' needs 'mode http'; {kind} '{name}' falls back to 'option tcplog'"
            );
            d.warn(line_or(lines.httplog, lines.header), msg);
            p.options.httplog = false;
            p.options.tcplog = true;
        }
    }
    if p.options.httpchk.is_some() {
        for (s, line) in p.servers.iter().zip(&lines.servers) {
            if s.tls.ssl && s.check {
                // HAProxy sends such checks over TLS; Shoal's would go in
                // clear text to a TLS port and mark the server DOWN.
                d.error(*line, format!("server '{}': HTTP health checks over TLS ('check' with 'ssl' and 'option httpchk') are not implemented by Shoal yet", s.name));
            }
        }
    }
    if p.mode == Mode::Tcp && p.kind.is_backend() {
        if let Some(c) = &p.cookie {
            let msg = format!(
                "'cookie {}' is ignored because {kind} '{name}' is not in mode http",
                c.name
            );
            d.warn(line_or(lines.cookie, lines.header), msg);
        }
        if matches!(
            p.balance,
            Balance::Uri { .. } | Balance::UrlParam(_) | Balance::Hdr(_)
        ) {
            let msg = format!(
                "layer 7 'balance' needs 'mode http'; {kind} '{name}' falls back to roundrobin"
            );
            d.warn(line_or(lines.balance, lines.header), msg);
            p.balance = Balance::RoundRobin;
        }
    }
    for (srv, line) in p.servers.iter().zip(&lines.servers) {
        match srv.proto {
            // HAProxy refuses a multiplexer that does not match the mode.
            Some(proto) if !proto.fits(p.mode) => d.error(
                *line,
                format!(
                    "MUX protocol '{}' is not usable for server '{}': {kind} '{name}' is in mode {}",
                    proto.keyword(),
                    srv.name,
                    if p.mode == Mode::Tcp { "tcp" } else { "http" }
                ),
            ),
            _ => {}
        }
    }
    if p.mode == Mode::Tcp {
        for (srv, line) in p.servers.iter().zip(&lines.servers) {
            if srv.observe == Some(Observe::Layer7) {
                let msg = format!(
                    "server '{}' uses 'observe layer7', which needs 'mode http'; {kind} '{name}' is in mode tcp, so only connection errors are observed",
                    srv.name
                );
                d.warn(*line, msg);
            }
        }
    }
    if p.kind.is_frontend() && p.binds.is_empty() {
        let msg = format!(
            "{kind} '{name}' has no 'bind' line; declare it as a backend if it only has servers"
        );
        d.error(lines.header, msg);
    }
    stick::end_of_proxy(d, st);
    super::server::end_of_proxy(d, st);
}

fn line_or(line: usize, fallback: usize) -> usize {
    if line == 0 {
        fallback
    } else {
        line
    }
}

/// Names of HTTP samples used by anonymous ACLs of a condition.
fn inline_http_samples(cond: &Condition) -> Vec<String> {
    let inline = cond.any_of.iter().flatten().filter_map(|t| match &t.acl {
        AclRef::Inline(def) => Some(def),
        AclRef::Named(_) => None,
    });
    inline
        .filter(|def| is_http(&def.sample))
        .map(|def| sample_name(&def.sample))
        .collect()
}

/// Checks run once the whole file is read: every backend a frontend routes
/// to exists, is a backend, and speaks the same mode; stick rules find
/// their tables.
pub(super) fn whole_config(d: &mut Diags, proxies: &[ProxyState]) {
    let index = Index::new(proxies);
    stick::whole_config(d, &index);
    for st in proxies.iter().filter(|st| st.proxy.kind.is_frontend()) {
        let p = &st.proxy;
        if let Some(target) = &p.default_backend {
            check_target(
                d,
                &index,
                p,
                target,
                line_or(st.lines.default_backend, st.lines.header),
            );
        }
        for (rule, line) in p.use_backends.iter().zip(&st.lines.use_backends) {
            if d.is_full() {
                return;
            }
            check_target(d, &index, p, &rule.backend, *line);
        }
    }
}

fn check_target(d: &mut Diags, index: &Index, from: &Proxy, target: &str, line: usize) {
    let (kind, name) = (from.kind.keyword(), &from.name);
    let backend = index
        .named(target)
        .map(|st| &st.proxy)
        .find(|p| p.kind.is_backend());
    let Some(backend) = backend else {
        if index.named(target).next().is_some() {
            return d.error(
                line,
                format!("{kind} '{name}' routes to '{target}', which is a frontend, not a backend"),
            );
        }
        let names = index
            .all
            .iter()
            .filter(|st| st.proxy.kind.is_backend())
            .map(|st| st.proxy.name.as_str());
        let hint = keywords::hint(target, names);
        return d.error(
            line,
            format!("{kind} '{name}' routes to backend '{target}', which is not defined{hint}"),
        );
    };
    if backend.mode != from.mode {
        let mode = |m: Mode| if m == Mode::Http { "http" } else { "tcp" };
        let msg = format!(
            "{kind} '{name}' is in mode {} but routes to {} '{target}' in mode {}; modes must match",
            mode(from.mode),
            backend.kind.keyword(),
            mode(backend.mode)
        );
        d.error(line, msg);
    }
}
