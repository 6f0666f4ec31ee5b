//! A proxy (or `defaults`) section while it is being parsed, and how a
//! proxy inherits from a `defaults` section.

use crate::config::{Proxy, ProxyKind, Server, ServerAddr};
use std::collections::{BTreeSet, HashMap};

/// Which kind of section is being parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    Defaults,
    Proxy(ProxyKind),
}

impl Scope {
    /// Section keyword, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Defaults => "defaults",
            Scope::Proxy(kind) => kind.keyword(),
        }
    }
    /// Frontend side: accepts connections (defaults carry both sides).
    pub fn fe(self) -> bool {
        match self {
            Scope::Defaults => true,
            Scope::Proxy(kind) => kind.is_frontend(),
        }
    }
    /// Backend side: owns servers.
    pub fn be(self) -> bool {
        match self {
            Scope::Defaults => true,
            Scope::Proxy(kind) => kind.is_backend(),
        }
    }
    /// True if `caps` (letters of "dflb") lets a keyword appear here.
    pub fn allows(self, caps: &str) -> bool {
        let letter = match self {
            Scope::Defaults => 'd',
            Scope::Proxy(ProxyKind::Frontend) => 'f',
            Scope::Proxy(ProxyKind::Listen) => 'l',
            Scope::Proxy(ProxyKind::Backend) => 'b',
        };
        caps.contains(letter)
    }
}

/// Line numbers where things were set, for diagnostics found after the
/// section is complete. Inherited settings point at the `defaults` line.
#[derive(Debug, Clone, Default)]
pub(super) struct Lines {
    pub header: usize,
    pub default_backend: usize,
    pub cookie: usize,
    pub balance: usize,
    pub httplog: usize,
    /// Parallel to `Proxy::acls`.
    pub acls: Vec<usize>,
    /// Parallel to `Proxy::use_backends`.
    pub use_backends: Vec<usize>,
    /// Parallel to `Proxy::servers`.
    pub servers: Vec<usize>,
    pub stats_admin: usize,
    /// True once this section wrote its own `http-check expect` or
    /// `http-check send`: from then on the rules inherited from `defaults`
    /// (both kinds) no longer apply. HAProxy uses a defaults section's check
    /// ruleset only for proxies that write no `http-check` rule of their own.
    pub own_http_check: bool,
    pub stick_table: usize,
    /// Parallel to `Proxy::stick_rules`.
    pub stick_rules: Vec<usize>,
}

/// A section being parsed.
#[derive(Debug, Clone)]
pub(super) struct ProxyState {
    pub scope: Scope,
    pub proxy: Proxy,
    /// `default-server` settings so far; each `server` starts from a copy.
    pub server_defaults: Server,
    pub lines: Lines,
    /// Index of each server in `proxy.servers` by name, and the names of
    /// the ACLs declared so far: lookups stay cheap in huge sections.
    pub server_index: HashMap<String, usize>,
    pub acl_names: BTreeSet<String>,
}

impl ProxyState {
    /// An empty anonymous `defaults` section (HAProxy's built-in defaults).
    pub fn empty_defaults() -> Self {
        ProxyState {
            scope: Scope::Defaults,
            // The kind is irrelevant for defaults; only the settings matter.
            proxy: Proxy::new(ProxyKind::Listen, ""),
            server_defaults: Server::new(
                "",
                ServerAddr {
                    host: String::new(),
                    port: None,
                },
            ),
            lines: Lines::default(),
            server_index: HashMap::new(),
            acl_names: BTreeSet::new(),
        }
    }

    /// A new section that starts from `base` (a defaults section). For a
    /// proxy, only the settings that apply to its side are copied, as
    /// HAProxy does: a frontend gets no `balance`, a backend no `maxconn`.
    pub fn inherit(base: &ProxyState, scope: Scope, name: &str, header: usize) -> Self {
        let src = &base.proxy;
        let kind = match scope {
            Scope::Defaults => {
                return ProxyState {
                    lines: Lines {
                        header,
                        ..base.lines.clone()
                    },
                    ..base.clone()
                }
            }
            Scope::Proxy(kind) => kind,
        };
        let mut p = Proxy::new(kind, name);
        let mut lines = Lines {
            header,
            ..Lines::default()
        };
        p.mode = src.mode;
        p.logs = src.logs.clone();
        p.stats = src.stats.clone();
        p.options.forwardfor = src.options.forwardfor;
        p.options.http_keep_alive = src.options.http_keep_alive;
        p.options.httpclose = src.options.httpclose;
        p.timeouts.http_request = src.timeouts.http_request;
        p.timeouts.http_keep_alive = src.timeouts.http_keep_alive;
        if kind.is_frontend() {
            p.maxconn = src.maxconn;
            p.default_backend = src.default_backend.clone();
            p.options.httplog = src.options.httplog;
            p.options.tcplog = src.options.tcplog;
            p.timeouts.client = src.timeouts.client;
            p.timeouts.client_fin = src.timeouts.client_fin;
            lines.default_backend = base.lines.default_backend;
            lines.httplog = base.lines.httplog;
        }
        if kind.is_backend() {
            p.balance = src.balance.clone();
            p.hash_type = src.hash_type;
            p.retries = src.retries;
            p.http_reuse = src.http_reuse;
            p.cluster_health = src.cluster_health;
            p.cookie = src.cookie.clone();
            p.http_check_expect = src.http_check_expect.clone();
            p.http_check_send = src.http_check_send.clone();
            p.external_check_command = src.external_check_command.clone();
            p.external_check_path = src.external_check_path.clone();
            let (o, so) = (&mut p.options, &src.options);
            o.redispatch = so.redispatch;
            o.allbackups = so.allbackups;
            o.persist = so.persist;
            o.httpchk = so.httpchk.clone();
            o.external_check = so.external_check;
            let (t, st) = (&mut p.timeouts, &src.timeouts);
            t.connect = st.connect;
            t.server = st.server;
            t.queue = st.queue;
            t.check = st.check;
            t.tunnel = st.tunnel;
            t.server_fin = st.server_fin;
            lines.cookie = base.lines.cookie;
            lines.balance = base.lines.balance;
        }
        let server_defaults = if kind.is_backend() {
            base.server_defaults.clone()
        } else {
            ProxyState::empty_defaults().server_defaults
        };
        ProxyState {
            scope,
            proxy: p,
            server_defaults,
            lines,
            server_index: HashMap::new(),
            acl_names: BTreeSet::new(),
        }
    }
}
