//! Printer: Config -> haproxy.cfg text.
//!
//! Writes `global`, then every proxy as its own section with every setting
//! spelled out (there is no `defaults` section: the model has already
//! applied it). Only settings that apply to a proxy's side are written, so
//! the text is valid for HAProxy and `parse(print(c)) == c`. Durations are in
//! milliseconds (microseconds when below one), words are escaped with
//! backslashes where needed.

use super::{
    AclDef, AclRef, Balance, Condition, Config, CookieConfig, CookieMode, ExpectKind, Global,
    HashType, HttpCheckSend, MatchKind, Mode, Observe, OnError, Proxy, Sample, Server, StatsLevel,
    StatsPage, StickAction, StickKeyType, StickPattern, StickRule, StickTable, Timeouts,
};
use std::fmt::Write;
use std::time::Duration;

/// Print a config in the dialect, every proxy in full.
pub fn print(config: &Config) -> String {
    let mut out = Out::default();
    global(&mut out, &config.global);
    for p in &config.proxies {
        out.text.push('\n');
        proxy(&mut out, p);
    }
    out.text
}

#[derive(Default)]
struct Out {
    text: String,
}

impl Out {
    /// Writes one indented line; `words` are already escaped.
    fn line<S: AsRef<str>>(&mut self, words: impl IntoIterator<Item = S>) {
        self.text.push_str("    ");
        let mut first = true;
        for w in words {
            if !first {
                self.text.push(' ');
            }
            first = false;
            self.text.push_str(w.as_ref());
        }
        self.text.push('\n');
    }
}

fn global(out: &mut Out, g: &Global) {
    out.text.push_str("global\n");
    if g.daemon {
        out.line(["daemon"]);
    }
    if let Some(n) = g.maxconn {
        out.line(["maxconn".into(), n.to_string()]);
    }
    if let Some(n) = g.nbthread {
        out.line(["nbthread".into(), n.to_string()]);
    }
    if let Some(n) = g.tune_bufsize {
        out.line(["tune.bufsize".into(), n.to_string()]);
    }
    if let Some(n) = g.tune_maxhdr {
        out.line(["tune.http.maxhdr".into(), n.to_string()]);
    }
    if let Some(u) = &g.user {
        out.line(["user".into(), word(u)]);
    }
    if let Some(grp) = &g.group {
        out.line(["group".into(), word(grp)]);
    }
    for log in &g.logs {
        out.line(std::iter::once("log".to_string()).chain(log.args.iter().map(|a| word(a))));
    }
    for s in &g.stats_sockets {
        let mut l = vec!["stats".to_string(), "socket".into(), word(&s.addr)];
        if let Some(m) = s.mode {
            l.extend(["mode".into(), format!("{m:o}")]);
        }
        let level = match s.level {
            StatsLevel::User => "user",
            StatsLevel::Operator => "operator",
            StatsLevel::Admin => "admin",
        };
        l.extend(["level".into(), level.into()]);
        out.line(l);
    }
    if let Some(t) = g.stats_timeout {
        out.line(["stats".into(), "timeout".into(), duration(t)]);
    }
    if let Some(t) = g.grace {
        out.line(["grace".into(), duration(t)]);
    }
    for l in super::parse::print_ssl_defaults(&g.ssl_bind) {
        out.line(l.iter().map(|w| word(w)));
    }
    timeouts(out, &g.timeouts, true, true);
}

fn proxy(out: &mut Out, p: &Proxy) {
    let (fe, be) = (p.kind.is_frontend(), p.kind.is_backend());
    let _ = writeln!(out.text, "{} {}", p.kind.keyword(), word(&p.name));
    out.line(["mode", if p.mode == Mode::Http { "http" } else { "tcp" }]);
    if fe {
        for b in &p.binds {
            let tls = b.tls.as_deref().map(super::parse::print_bind_tls);
            out.line(
                [
                    "bind".into(),
                    word(&host_port(&b.host, Some(b.port), b.host.is_empty())),
                ]
                .into_iter()
                .chain(tls.into_iter().flatten().map(|w| word(&w))),
            );
        }
        if let Some(n) = p.maxconn {
            out.line(["maxconn".into(), n.to_string()]);
        }
    }
    for log in &p.logs {
        out.line(std::iter::once("log".to_string()).chain(log.args.iter().map(|a| word(a))));
    }
    timeouts(out, &p.timeouts, fe, be);
    options(out, p, fe, be);
    if be {
        backend_settings(out, p);
    }
    if let Some(t) = &p.stick_table {
        out.line([stick_table(t)]);
    }
    for acl in &p.acls {
        out.line([format!("acl {} {}", word(&acl.name), acl_body(acl))]);
    }
    if fe {
        for rule in &p.http_request {
            let words: Vec<String> = super::parse::print_http_request(rule)
                .iter()
                .map(|w| word(w))
                .collect();
            out.line([format!("{}{}", words.join(" "), condition(&rule.cond))]);
        }
    }
    for rule in &p.use_backends {
        out.line([format!(
            "use_backend {}{}",
            word(&rule.backend),
            condition(&rule.cond)
        )]);
    }
    if be {
        // After the ACLs, which their conditions may name.
        for rule in &p.stick_rules {
            out.line([stick_rule(rule)]);
        }
    }
    if fe {
        if let Some(b) = &p.default_backend {
            out.line(["default_backend".into(), word(b)]);
        }
    }
    stats(out, &p.stats);
    if be {
        for s in &p.servers {
            out.line([server(s)]);
        }
    }
}

fn timeouts(out: &mut Out, t: &Timeouts, fe: bool, be: bool) {
    let all = [
        ("connect", t.connect, be),
        ("client", t.client, fe),
        ("server", t.server, be),
        ("queue", t.queue, be),
        ("check", t.check, be),
        ("http-request", t.http_request, true),
        ("http-keep-alive", t.http_keep_alive, true),
        ("tunnel", t.tunnel, be),
        ("client-fin", t.client_fin, fe),
        ("server-fin", t.server_fin, be),
    ];
    for (name, value, applies) in all {
        if let (Some(v), true) = (value, applies) {
            out.line(["timeout".into(), name.to_string(), duration(v)]);
        }
    }
}

fn options(out: &mut Out, p: &Proxy, fe: bool, be: bool) {
    let o = &p.options;
    let flags = [
        ("forwardfor", o.forwardfor, true),
        ("http-keep-alive", o.http_keep_alive, true),
        ("httpclose", o.httpclose, true),
        ("httplog", o.httplog, fe),
        ("tcplog", o.tcplog, fe),
        ("redispatch", o.redispatch, be),
        ("allbackups", o.allbackups, be),
        ("persist", o.persist, be),
        ("external-check", o.external_check, be),
    ];
    for (name, on, applies) in flags {
        if on && applies {
            out.line(["option", name]);
        }
    }
    if let (Some(chk), true) = (&o.httpchk, be) {
        out.line([
            "option".into(),
            "httpchk".into(),
            word(&chk.method),
            word(&chk.uri),
            word(&chk.version),
        ]);
    }
}

fn backend_settings(out: &mut Out, p: &Proxy) {
    let balance = match &p.balance {
        Balance::RoundRobin => "roundrobin".to_string(),
        Balance::StaticRr => "static-rr".into(),
        Balance::LeastConn => "leastconn".into(),
        Balance::First => "first".into(),
        Balance::Source => "source".into(),
        Balance::Uri { whole: false } => "uri".into(),
        Balance::Uri { whole: true } => "uri whole".into(),
        Balance::UrlParam(name) => format!("url_param {}", word(name)),
        Balance::Hdr(name) => word(&format!("hdr({name})")),
        Balance::Random { draws } => format!("random({draws})"),
    };
    out.line(["balance", &balance]);
    let hash = if p.hash_type == HashType::Consistent {
        "consistent"
    } else {
        "map-based"
    };
    out.line(["hash-type", hash]);
    if let Some(n) = p.retries {
        out.line(["retries".into(), n.to_string()]);
    }
    if let Some(reuse) = p.http_reuse {
        out.line(["http-reuse", reuse.keyword()]);
    }
    if let Some(rule) = p.cluster_health {
        out.line(["cluster-health", rule.keyword()]);
    }
    if let Some(c) = &p.cookie {
        out.line([cookie(c)]);
    }
    if let Some(send) = &p.http_check_send {
        out.line([http_check_send(send)]);
    }
    for e in &p.http_check_expect {
        let kind = match e.kind {
            ExpectKind::Status => "status",
            ExpectKind::Rstatus => "rstatus",
            ExpectKind::String => "string",
            ExpectKind::Rstring => "rstring",
        };
        let neg = if e.negate { " !" } else { "" };
        out.line([format!(
            "http-check expect{neg} {kind} {}",
            word(&e.pattern)
        )]);
    }
    if let Some(cmd) = &p.external_check_command {
        out.line(["external-check".into(), "command".into(), word(cmd)]);
    }
    if let Some(path) = &p.external_check_path {
        out.line(["external-check".into(), "path".into(), word(path)]);
    }
}

/// `http-check send ...`, with the parts that are set.
fn http_check_send(s: &HttpCheckSend) -> String {
    let mut l = "http-check send".to_string();
    let parts = [("meth", &s.method), ("uri", &s.uri), ("ver", &s.version)];
    for (name, value) in parts {
        if let Some(v) = value {
            let _ = write!(l, " {name} {}", word(v));
        }
    }
    for (name, value) in &s.headers {
        let _ = write!(l, " hdr {} {}", word(name), word(value));
    }
    if let Some(body) = &s.body {
        let _ = write!(l, " body {}", word(body));
    }
    l
}

fn stick_table(t: &StickTable) -> String {
    let key = match t.key {
        StickKeyType::Ip => "ip".to_string(),
        StickKeyType::Ipv6 => "ipv6".into(),
        StickKeyType::Integer => "integer".into(),
        StickKeyType::String { len } => format!("string len {len}"),
    };
    let mut l = format!("stick-table type {key} size {}", t.size);
    if let Some(e) = t.expire {
        let _ = write!(l, " expire {}", duration(e));
    }
    if !t.store.is_empty() {
        let _ = write!(l, " store {}", word(&t.store.join(",")));
    }
    l
}

fn stick_rule(r: &StickRule) -> String {
    let action = match r.action {
        StickAction::On => "on",
        StickAction::Match => "match",
        StickAction::StoreRequest => "store-request",
    };
    let pattern = match &r.pattern {
        StickPattern::Src => "src".to_string(),
        StickPattern::ReqCookie(c) => format!("req.cook({c})"),
        StickPattern::ReqHdr(h) => format!("req.hdr({h})"),
    };
    let mut l = format!("stick {action} {}", word(&pattern));
    if let Some(t) = &r.table {
        let _ = write!(l, " table {}", word(t));
    }
    if let Some(c) = &r.cond {
        l.push_str(&condition(c));
    }
    l
}

fn cookie(c: &CookieConfig) -> String {
    let mode = match c.mode {
        CookieMode::Insert => "insert",
        CookieMode::Rewrite => "rewrite",
        CookieMode::Prefix => "prefix",
    };
    let mut l = format!("cookie {} {mode}", word(&c.name));
    let flags = [
        ("indirect", c.indirect),
        ("nocache", c.nocache),
        ("preserve", c.preserve),
        ("httponly", c.httponly),
        ("secure", c.secure),
    ];
    for (name, on) in flags {
        if on {
            let _ = write!(l, " {name}");
        }
    }
    for domain in &c.domains {
        let _ = write!(l, " domain {}", word(domain));
    }
    if let Some(t) = c.maxidle {
        let _ = write!(l, " maxidle {}", duration(t));
    }
    if let Some(t) = c.maxlife {
        let _ = write!(l, " maxlife {}", duration(t));
    }
    l
}

fn stats(out: &mut Out, s: &StatsPage) {
    if s.enabled {
        out.line(["stats", "enable"]);
    }
    if let Some(uri) = &s.uri {
        out.line(["stats".into(), "uri".into(), word(uri)]);
    }
    if let Some(t) = s.refresh {
        out.line(["stats".into(), "refresh".into(), duration(t)]);
    }
    if let Some(realm) = &s.realm {
        out.line(["stats".into(), "realm".into(), word(realm)]);
    }
    for (user, pass) in &s.auth {
        out.line([
            "stats".into(),
            "auth".into(),
            word(&format!("{user}:{pass}")),
        ]);
    }
    if let Some(cond) = &s.admin {
        out.line([format!("stats admin{}", condition(cond))]);
    }
    if s.hide_version {
        out.line(["stats", "hide-version"]);
    }
}

fn server(s: &Server) -> String {
    let mut l = format!(
        "server {} {}",
        word(&s.name),
        word(&host_port(&s.addr.host, s.addr.port, false))
    );
    let mut opt = |name: &str, value: Option<String>| {
        let _ = match value {
            Some(v) => write!(l, " {name} {v}"),
            None => write!(l, " {name}"),
        };
    };
    let num = |n: Option<u32>| n.map(|n| n.to_string());
    let dur = |t: Option<Duration>| t.map(duration);
    if let Some(w) = num(s.weight) {
        opt("weight", Some(w));
    }
    if s.backup {
        opt("backup", None);
    }
    for (name, value) in [("maxconn", num(s.maxconn)), ("maxqueue", num(s.maxqueue))] {
        if value.is_some() {
            opt(name, value);
        }
    }
    if s.disabled {
        opt("disabled", None);
    }
    if s.check {
        opt("check", None);
    }
    let t = &s.tls;
    if t.ssl {
        opt("ssl", None);
    }
    if t.verify_none {
        opt("verify", Some("none".into()));
    }
    if let Some(ca) = &t.ca_file {
        opt("ca-file", Some(word(ca)));
    }
    if let Some(sni) = &t.sni {
        opt("sni", Some(word(&sni.to_string())));
    }
    if !t.alpn.is_empty() {
        opt("alpn", Some(word(&t.alpn.join(","))));
    }
    if let Some(proto) = s.proto {
        opt("proto", Some(proto.keyword().to_string()));
    }
    let timed = [
        ("inter", dur(s.inter)),
        ("fastinter", dur(s.fastinter)),
        ("downinter", dur(s.downinter)),
        ("rise", num(s.rise)),
        ("fall", num(s.fall)),
        ("cookie", s.cookie.as_deref().map(word)),
        ("slowstart", dur(s.slowstart)),
        ("port", s.check_port.map(|p| p.to_string())),
        (
            "observe",
            s.observe.map(|o| {
                match o {
                    Observe::Layer4 => "layer4",
                    Observe::Layer7 => "layer7",
                }
                .to_string()
            }),
        ),
        ("error-limit", num(s.error_limit)),
        (
            "on-error",
            s.on_error.map(|o| {
                match o {
                    OnError::FastInter => "fastinter",
                    OnError::FailCheck => "fail-check",
                    OnError::SuddenDeath => "sudden-death",
                    OnError::MarkDown => "mark-down",
                }
                .to_string()
            }),
        ),
        (
            "on-marked-down",
            s.on_marked_down_shutdown
                .then(|| "shutdown-sessions".to_string()),
        ),
    ];
    for (name, value) in timed {
        if value.is_some() {
            opt(name, value);
        }
    }
    l
}

/// `HOST:PORT`, with IPv6 literals in brackets; `:PORT` for an empty host.
fn host_port(host: &str, port: Option<u16>, empty_host: bool) -> String {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    match port {
        Some(p) if empty_host => format!(":{p}"),
        Some(p) => format!("{host}:{p}"),
        None => host,
    }
}

/// ` if ...` / ` unless ...`, or "" for an unconditional rule.
fn condition(c: &Condition) -> String {
    if c.any_of.is_empty() {
        // `Condition::always()`: the rule is written without a condition.
        return String::new();
    }
    let groups: Vec<String> = c
        .any_of
        .iter()
        .map(|group| {
            let terms: Vec<String> = group
                .iter()
                .map(|t| {
                    let neg = if t.negated { "!" } else { "" };
                    match &t.acl {
                        AclRef::Named(name) => format!("{neg}{}", word(name)),
                        AclRef::Inline(def) => format!("{neg}{{ {} }}", acl_body(def)),
                    }
                })
                .collect();
            terms.join(" ")
        })
        .collect();
    format!(
        " {} {}",
        if c.unless { "unless" } else { "if" },
        groups.join(" || ")
    )
}

/// `FETCH [-i] [-m METHOD] [--] VALUES` of an ACL.
fn acl_body(acl: &AclDef) -> String {
    let (fetch, default) = match &acl.sample {
        Sample::Path => ("path".to_string(), MatchKind::Str),
        Sample::Url => ("url".into(), MatchKind::Str),
        Sample::Hdr(h) => (format!("hdr({h})"), MatchKind::Str),
        Sample::Method => ("method".into(), MatchKind::Str),
        Sample::Src => ("src".into(), MatchKind::Ip),
        Sample::DstPort => ("dst_port".into(), MatchKind::Int),
        Sample::SslFc => ("ssl_fc".into(), MatchKind::Bool),
        Sample::SslFcSni => ("ssl_fc_sni".into(), MatchKind::Str),
    };
    let mut l = word(&fetch);
    if acl.ignore_case {
        l.push_str(" -i");
    }
    if acl.kind != default {
        let _ = write!(l, " -m {}", acl.kind.keyword());
    }
    if acl.values.iter().any(|v| v.starts_with('-')) {
        l.push_str(" --");
    }
    for v in &acl.values {
        let _ = write!(l, " {}", word(v));
    }
    l
}

/// A duration in milliseconds, or microseconds when not a whole number of them.
fn duration(d: Duration) -> String {
    let (us, ms) = (d.as_micros(), d.as_millis());
    if ms * 1000 == us {
        format!("{ms}ms")
    } else {
        format!("{us}us")
    }
}

/// Escapes a word so that HAProxy's tokenizer reads it back unchanged.
fn word(s: &str) -> String {
    if s.is_empty() {
        return "\"\"".into();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' => out.push_str("\\ "),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '#' | '"' | '\'' => {
                out.push('\\');
                out.push(c);
            }
            // A backslash stands for itself unless it would start an escape.
            '\\' => match chars.peek() {
                None | Some(' ' | '\\' | '#' | '\'' | '"' | 'r' | 'n' | 't' | 'x') => {
                    out.push_str("\\\\")
                }
                Some(_) => out.push('\\'),
            },
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}
