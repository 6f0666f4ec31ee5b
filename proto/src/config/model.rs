//! The config model: what a haproxy.cfg-dialect file says, after parsing.
//!
//! `defaults` sections are already resolved: every [`Proxy`] carries the
//! settings it inherited, exactly as HAProxy copies a `defaults` section into
//! each proxy that follows it. `default-server` lines are likewise folded into
//! each [`Server`]. The model therefore has no `defaults` of its own, and the
//! printer writes every proxy out in full, which is what makes
//! `Config -> text -> Config` an identity.
//!
//! Optional settings stay `Option` so that "not set" (use HAProxy's default)
//! and "set to the default value" print the way the operator wrote them; the
//! `*_or_default()` accessors give the effective values.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A whole configuration: the `global` section and every proxy in file order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Config {
    pub global: Global,
    /// Frontends, backends and listens, in the order they appear.
    pub proxies: Vec<Proxy>,
}

/// The `global` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Global {
    /// Process-wide bound on accepted connections; never `Some(0)` from the
    /// parser (`maxconn 0` means "not set" in HAProxy).
    pub maxconn: Option<u32>,
    /// Worker threads, 1..=64 (HAProxy 2.6's bound); `None` means the cores
    /// the process may use.
    pub nbthread: Option<usize>,
    pub daemon: bool,
    pub user: Option<String>,
    pub group: Option<String>,
    /// `log` lines, as written (targets are interpreted by the node).
    pub logs: Vec<LogTarget>,
    /// `stats socket` lines.
    pub stats_sockets: Vec<StatsSocket>,
    /// `stats timeout`.
    pub stats_timeout: Option<Duration>,
    /// `grace`: how long the node keeps accepting connections after a soft
    /// stop or a drain began (`/ready` already answers 503), so that a VIP
    /// or DNS health check moves clients away before the listeners close.
    /// HAProxy's default is 0: close at once.
    pub grace: Option<Duration>,
    /// `timeout ...` written in `global`. Not valid in HAProxy, but the seed
    /// guide does it; Shoal accepts it with a warning and uses each value as a
    /// fallback for proxies that set no such timeout themselves.
    pub timeouts: Timeouts,
    /// `tune.bufsize`: the largest request or response head (start line
    /// plus headers) a connection may hold, in bytes. HAProxy's default is
    /// 16384.
    pub tune_bufsize: Option<u32>,
    /// `tune.http.maxhdr`: the most header lines a message may carry
    /// (HAProxy's default is 101).
    pub tune_maxhdr: Option<u32>,
    /// `ssl-default-bind-*`: already applied to every `bind ... ssl`; kept
    /// so that the printer writes them back.
    #[serde(default)]
    pub ssl_bind: SslBindDefaults,
}

impl Global {
    /// Effective `tune.bufsize` (HAProxy's default, 16384).
    pub fn bufsize_or_default(&self) -> u32 {
        self.tune_bufsize.unwrap_or(16_384)
    }
    /// Effective `tune.http.maxhdr` (HAProxy's default, 101).
    pub fn maxhdr_or_default(&self) -> u32 {
        self.tune_maxhdr.unwrap_or(101)
    }
}

/// `http-reuse never|safe|aggressive|always`: which idle server
/// connections a request may ride (HAProxy's default is `safe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum HttpReuse {
    /// One server connection per client connection, never shared.
    Never,
    /// The first request of a client connection gets a connection of its
    /// own; later requests may ride idle connections of other clients.
    #[default]
    Safe,
    /// Like `safe`, but a first request may also ride a connection that
    /// has already been reused at least once.
    Aggressive,
    /// Any request may ride any idle connection.
    Always,
}

/// `cluster-health any|majority|all` (a Shoal extension): how a cluster
/// turns the health reports of the nodes that check a server into one
/// verdict. Standalone (one node) every rule gives the same answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum HealthRule {
    /// DOWN as soon as one reporting node says DOWN, UP when all say UP:
    /// fast, but one node's broken link takes the server from everyone.
    Any,
    /// DOWN when more than half of the reporting nodes say DOWN, UP when
    /// more than half say UP; a tie keeps the verdict as it was.
    #[default]
    Majority,
    /// DOWN only when every reporting node says DOWN, UP as soon as one
    /// says UP: one healthy link keeps the server in service.
    All,
}

impl HealthRule {
    /// The keyword as written in the config.
    pub fn keyword(self) -> &'static str {
        match self {
            HealthRule::Any => "any",
            HealthRule::Majority => "majority",
            HealthRule::All => "all",
        }
    }
}

impl HttpReuse {
    /// The keyword as written in the config.
    pub fn keyword(self) -> &'static str {
        match self {
            HttpReuse::Never => "never",
            HttpReuse::Safe => "safe",
            HttpReuse::Aggressive => "aggressive",
            HttpReuse::Always => "always",
        }
    }
}

/// One `log` line: `log global`, `log stdout format raw local0`, `log 127.0.0.1:514 local0 info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogTarget {
    /// The words after `log`, unchanged.
    pub args: Vec<String>,
}

/// Access level of a runtime-API socket, as HAProxy's `level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum StatsLevel {
    User,
    Operator,
    #[default]
    Admin,
}

/// `stats socket ADDR [mode M] [level L]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSocket {
    /// A unix path, or `ipv4@ADDR:PORT` / `ipv6@ADDR:PORT` as written.
    pub addr: String,
    /// Octal file mode for a unix socket.
    pub mode: Option<u32>,
    pub level: StatsLevel,
}

/// What kind of section declared a proxy; it decides which keywords apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProxyKind {
    Frontend,
    Backend,
    Listen,
}

impl ProxyKind {
    /// Section keyword as written in the file.
    pub fn keyword(self) -> &'static str {
        match self {
            ProxyKind::Frontend => "frontend",
            ProxyKind::Backend => "backend",
            ProxyKind::Listen => "listen",
        }
    }
    /// True for sections that accept connections (`bind`, ACL routing).
    pub fn is_frontend(self) -> bool {
        matches!(self, ProxyKind::Frontend | ProxyKind::Listen)
    }
    /// True for sections that own servers.
    pub fn is_backend(self) -> bool {
        matches!(self, ProxyKind::Backend | ProxyKind::Listen)
    }
}

/// `mode tcp|http`. HAProxy's default is tcp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Mode {
    #[default]
    Tcp,
    Http,
}

/// A frontend, backend or listen section, with defaults applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proxy {
    pub kind: ProxyKind,
    pub name: String,
    pub mode: Mode,
    /// `bind` addresses (frontend side).
    pub binds: Vec<Bind>,
    /// Frontend `maxconn`: bound on connections accepted by this proxy;
    /// never `Some(0)` from the parser (0 means "not set" in HAProxy).
    pub maxconn: Option<u32>,
    pub default_backend: Option<String>,
    /// ACL definitions, in order. Several with one name are ORed.
    pub acls: Vec<AclDef>,
    /// `use_backend` rules, evaluated in order; the first match wins.
    pub use_backends: Vec<UseBackend>,
    pub balance: Balance,
    pub hash_type: HashType,
    pub servers: Vec<Server>,
    pub timeouts: Timeouts,
    /// `retries`, 0..=2^31-1; `None` means HAProxy's default of 3.
    pub retries: Option<u32>,
    /// `http-reuse`; `None` means HAProxy's default, `safe`.
    pub http_reuse: Option<HttpReuse>,
    /// `cluster-health` (Shoal); `None` means the default, `majority`.
    pub cluster_health: Option<HealthRule>,
    pub options: Options,
    /// `cookie NAME ...` persistence.
    pub cookie: Option<CookieConfig>,
    /// `http-check expect ...` rules.
    pub http_check_expect: Vec<HttpCheckExpect>,
    /// `http-check send ...` (HAProxy 2.x); overrides parts of `option httpchk`.
    pub http_check_send: Option<HttpCheckSend>,
    /// `stick-table ...` declared in this proxy.
    pub stick_table: Option<StickTable>,
    /// `stick on|match|store-request ...` rules, in order.
    pub stick_rules: Vec<StickRule>,
    /// `external-check command` (with `option external-check`).
    pub external_check_command: Option<String>,
    /// `external-check path` (PATH for the command).
    pub external_check_path: Option<String>,
    /// `stats ...` lines that configure the stats page.
    pub stats: StatsPage,
    /// `log` lines of this proxy; `log global` is kept as a target with args `["global"]`.
    pub logs: Vec<LogTarget>,
    /// `http-request` rules of a frontend, in order.
    #[serde(default)]
    pub http_request: Vec<HttpRequestRule>,
}

/// `http-request ACTION ... [if|unless COND]` (the actions Shoal implements).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequestRule {
    pub action: HttpRequestAction,
    pub cond: Condition,
}

/// What an `http-request` rule does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HttpRequestAction {
    /// `redirect scheme SCHEME [code N]`: answer with a redirect to the
    /// same host and URI under another scheme; HAProxy's default code is 302.
    RedirectScheme { scheme: String, code: u16 },
    /// `set-header NAME VALUE`: replace every `NAME` line by one.
    SetHeader { name: String, value: String },
    /// `add-header NAME VALUE`: add a line.
    AddHeader { name: String, value: String },
    /// `del-header NAME`: remove every `NAME` line.
    DelHeader { name: String },
}

impl Proxy {
    /// An empty proxy of the given kind, with HAProxy's defaults.
    pub fn new(kind: ProxyKind, name: impl Into<String>) -> Self {
        Proxy {
            kind,
            name: name.into(),
            mode: Mode::Tcp,
            binds: Vec::new(),
            maxconn: None,
            default_backend: None,
            acls: Vec::new(),
            use_backends: Vec::new(),
            balance: Balance::RoundRobin,
            hash_type: HashType::MapBased,
            servers: Vec::new(),
            timeouts: Timeouts::default(),
            retries: None,
            http_reuse: None,
            cluster_health: None,
            options: Options::default(),
            cookie: None,
            http_check_expect: Vec::new(),
            http_check_send: None,
            stick_table: None,
            stick_rules: Vec::new(),
            external_check_command: None,
            external_check_path: None,
            stats: StatsPage::default(),
            logs: Vec::new(),
            http_request: Vec::new(),
        }
    }

    /// Effective `retries` (HAProxy's default is 3).
    pub fn retries_or_default(&self) -> u32 {
        self.retries.unwrap_or(3)
    }
}

/// One `bind` address. `host` is `""` for `:80`, `"*"` for `*:80`,
/// otherwise an IPv4/IPv6 literal or a host name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bind {
    pub host: String,
    pub port: u16,
    /// `ssl` and its options: the listener terminates TLS.
    #[serde(default)]
    pub tls: Option<Box<BindTls>>,
}

/// A TLS protocol version, as `ssl-min-ver`/`ssl-max-ver` name it. Only
/// the versions rustls offers exist here; the parser refuses the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    /// The keyword as written in the config.
    pub fn keyword(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
        }
    }
}

/// The TLS settings of a `bind ... ssl` line, with the `ssl-default-bind-*`
/// globals already applied (as `defaults` are folded into proxies).
/// Names are canonical: OpenSSL's suite names, `TLS_*` suite names and the
/// group names `X25519`, `P-256`, `P-384`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindTls {
    /// `crt` paths in order: PEM files (chain and key) or directories of
    /// them. The first certificate loaded is the default one.
    pub crts: Vec<String>,
    /// `alpn` protocols in preference order; empty means no ALPN, so
    /// clients speak HTTP/1.1 (HAProxy 2.6's default).
    pub alpn: Vec<String>,
    /// `ssl-min-ver` (or `no-tlsv12`, `force-tlsv13`).
    pub min_ver: Option<TlsVersion>,
    /// `ssl-max-ver` (or `no-tlsv13`, `force-tlsv12`).
    pub max_ver: Option<TlsVersion>,
    /// `ciphers`: the TLS 1.2 suites offered; `None` means rustls's set.
    pub ciphers: Option<Vec<String>>,
    /// `ciphersuites`: the TLS 1.3 suites offered; `None` means rustls's set.
    pub ciphersuites: Option<Vec<String>>,
    /// `curves` / `ecdhe`: the key-exchange groups; `None` means rustls's set.
    pub curves: Option<Vec<String>>,
    /// `strict-sni`: refuse handshakes whose SNI names no certificate.
    pub strict_sni: bool,
    /// Where the `bind` line is (`FILE:LINE`), for errors found when the
    /// node loads the certificates. Not part of the config's meaning.
    pub at: SourceLine,
}

/// `FILE:LINE` of a config line, for diagnostics found after parsing.
/// Equal to every other, so that moving a line does not change a config.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SourceLine(pub String);

impl PartialEq for SourceLine {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for SourceLine {}

/// `ssl-default-bind-*` globals: the TLS settings of `bind ... ssl` lines
/// that do not set their own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SslBindDefaults {
    /// `ssl-default-bind-ciphers`.
    pub ciphers: Option<Vec<String>>,
    /// `ssl-default-bind-ciphersuites`.
    pub ciphersuites: Option<Vec<String>>,
    /// `ssl-default-bind-curves`.
    pub curves: Option<Vec<String>>,
    /// `ssl-default-bind-options ssl-min-ver ...` (or `no-tlsv12`).
    pub min_ver: Option<TlsVersion>,
    /// `ssl-default-bind-options ssl-max-ver ...` (or `no-tlsv13`).
    pub max_ver: Option<TlsVersion>,
}

/// HTTP sample an ACL looks at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sample {
    /// Request path, without the query string.
    Path,
    /// Whole request URI as sent (`url`).
    Url,
    /// A request header's value (`hdr(NAME)`); name kept lowercase.
    Hdr(String),
    /// Request method.
    Method,
    /// Client source address.
    Src,
    /// Local port the client connected to.
    DstPort,
    /// `ssl_fc`: the client connection came through TLS (a boolean).
    SslFc,
    /// `ssl_fc_sni`: the server name the TLS client asked for.
    SslFcSni,
}

/// How an ACL compares the sample with its values (HAProxy's `-m` methods).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MatchKind {
    /// Exact string (`-m str`).
    Str,
    /// Prefix (`-m beg`).
    Beg,
    /// Suffix (`-m end`).
    End,
    /// Substring (`-m sub`).
    Sub,
    /// Regular expression (`-m reg`).
    Reg,
    /// Domain: value matches a dot-delimited part (`-m dom`).
    Dom,
    /// Slash-delimited part (`-m dir`).
    Dir,
    /// IPv4/IPv6 address or CIDR network (`-m ip`).
    Ip,
    /// Integer, or range `A:B`, or `gt|ge|lt|le|eq N` (`-m int`).
    Int,
    /// The sample exists (`-m found`).
    Found,
    /// A boolean sample is true (`-m bool`, the default of `ssl_fc`).
    Bool,
}

impl MatchKind {
    /// The `-m` word for this method.
    pub fn keyword(self) -> &'static str {
        match self {
            MatchKind::Str => "str",
            MatchKind::Beg => "beg",
            MatchKind::End => "end",
            MatchKind::Sub => "sub",
            MatchKind::Reg => "reg",
            MatchKind::Dom => "dom",
            MatchKind::Dir => "dir",
            MatchKind::Ip => "ip",
            MatchKind::Int => "int",
            MatchKind::Found => "found",
            MatchKind::Bool => "bool",
        }
    }
}

/// `acl NAME FETCH [flags] VALUES...`, normalised to sample + match method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclDef {
    pub name: String,
    pub sample: Sample,
    pub kind: MatchKind,
    /// `-i`: case-insensitive matching.
    pub ignore_case: bool,
    pub values: Vec<String>,
}

/// An ACL used in a condition: a name, or an anonymous `{ ... }` ACL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AclRef {
    Named(String),
    /// Anonymous ACL; its `name` is empty.
    Inline(Box<AclDef>),
}

/// One term of a condition: an ACL, possibly negated with `!`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CondTerm {
    pub negated: bool,
    pub acl: AclRef,
}

/// `if|unless` followed by ACL terms: `||`/`or` separates alternatives,
/// adjacent terms are ANDed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    /// True for `unless`.
    pub unless: bool,
    /// OR of AND-groups.
    pub any_of: Vec<Vec<CondTerm>>,
}

impl Condition {
    /// The condition of a rule written with no `if`/`unless` (such as a bare
    /// `use_backend NAME`): `unless` over no alternatives, which always holds.
    /// (Added with the parser.)
    pub fn always() -> Self {
        Condition {
            unless: true,
            any_of: Vec::new(),
        }
    }
    /// True for [`Condition::always`].
    pub fn is_always(&self) -> bool {
        self.unless && self.any_of.is_empty()
    }
}

/// `use_backend NAME if|unless COND`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UseBackend {
    pub backend: String,
    pub cond: Condition,
}

/// `balance` algorithm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Balance {
    #[default]
    RoundRobin,
    StaticRr,
    LeastConn,
    First,
    Source,
    /// `balance uri [whole]`: hash of the path (or the whole URI with `whole`).
    Uri {
        whole: bool,
    },
    /// `balance url_param NAME`.
    UrlParam(String),
    /// `balance hdr(NAME)`; name kept lowercase.
    Hdr(String),
    /// `balance random[(DRAWS)]`, 1..=2^31-1 draws; HAProxy's default is 2.
    Random {
        draws: u32,
    },
}

impl Balance {
    /// True for algorithms that pick by a hash of request data.
    pub fn is_hash(&self) -> bool {
        matches!(
            self,
            Balance::Source | Balance::Uri { .. } | Balance::UrlParam(_) | Balance::Hdr(_)
        )
    }
}

/// `hash-type map-based|consistent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum HashType {
    #[default]
    MapBased,
    Consistent,
}

/// A server's address as written. Host names are resolved by the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerAddr {
    /// IPv4/IPv6 literal (without brackets) or a host name.
    pub host: String,
    /// `None` when the line gives no port (HAProxy then uses the client's destination port).
    pub port: Option<u16>,
}

/// A `server` line, with `default-server` settings folded in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Server {
    pub name: String,
    pub addr: ServerAddr,
    /// 0..=256; `None` means 1.
    pub weight: Option<u32>,
    pub backup: bool,
    pub maxconn: Option<u32>,
    pub maxqueue: Option<u32>,
    /// Starts in maintenance.
    pub disabled: bool,
    /// Health checks enabled.
    pub check: bool,
    pub inter: Option<Duration>,
    pub fastinter: Option<Duration>,
    pub downinter: Option<Duration>,
    pub rise: Option<u32>,
    pub fall: Option<u32>,
    /// Persistence cookie value; `None` means the server's name when `cookie` is set on the backend.
    pub cookie: Option<String>,
    pub slowstart: Option<Duration>,
    /// `port N`: health-check port, when it differs from the traffic port.
    pub check_port: Option<u16>,
    /// `observe layer4|layer7`: passive health from real traffic.
    pub observe: Option<Observe>,
    /// `error-limit N` (default 10): errors in a row before `on-error` acts.
    pub error_limit: Option<u32>,
    /// `on-error fastinter|fail-check|sudden-death|mark-down`.
    pub on_error: Option<OnError>,
    /// `on-marked-down shutdown-sessions`.
    pub on_marked_down_shutdown: bool,
    /// `ssl` (and `verify`, `ca-file`, `sni`, `alpn`): TLS towards the server.
    #[serde(default)]
    pub tls: ServerTls,
    /// `proto h1|h2|none`: the protocol forced towards the server (also
    /// for its health checks); `None`: the mode's default (HTTP/1.1, or
    /// what ALPN picks with `ssl alpn`).
    #[serde(default)]
    pub proto: Option<ServerProto>,
}

/// `proto` on a server line: HAProxy's multiplexer names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerProto {
    /// `h1`: HTTP/1.1 (`mode http` only).
    H1,
    /// `h2`: HTTP/2; clear text with prior knowledge (h2c), or over TLS
    /// with `ssl` (`mode http` only).
    H2,
    /// `none`: raw forwarding (`mode tcp` only).
    None,
}

impl ServerProto {
    /// The keyword as written after `proto`.
    pub fn keyword(self) -> &'static str {
        match self {
            ServerProto::H1 => "h1",
            ServerProto::H2 => "h2",
            ServerProto::None => "none",
        }
    }
    /// Usable in a proxy of `mode`.
    pub fn fits(self, mode: Mode) -> bool {
        (self == ServerProto::None) == (mode == Mode::Tcp)
    }
}

/// TLS towards a server. `verify`, `ca-file` and `sni` are kept without
/// `ssl` too (a `default-server` may set them for servers that add `ssl`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ServerTls {
    /// `ssl`: connect with TLS.
    pub ssl: bool,
    /// `verify none`; `false` is HAProxy's default, `verify required`.
    pub verify_none: bool,
    /// `ca-file`: the CAs that sign the server's certificate.
    pub ca_file: Option<String>,
    /// `sni EXPR`: evaluated for each new connection, its value is the
    /// server name sent, and checked against the server's certificate.
    /// Without it, or when it yields nothing, no SNI is sent and only the
    /// chain is verified (as HAProxy without `verifyhost`).
    pub sni: Option<crate::config::SniExpr>,
    /// `alpn h2,http/1.1`: the protocols offered by ALPN, in order of
    /// preference; empty: no ALPN. In `mode http` the server's choice of
    /// `h2` makes the connection HTTP/2 (unless `proto` forces one).
    #[serde(default)]
    pub alpn: Vec<String>,
    /// Where the `server` line is, for errors loading `ca-file`.
    pub at: SourceLine,
}

/// What `observe` watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Observe {
    /// Connection failures.
    Layer4,
    /// Connection failures, invalid responses and 5xx statuses (except 501/505).
    Layer7,
}

/// `on-error` action once `error-limit` is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OnError {
    FastInter,
    FailCheck,
    SuddenDeath,
    MarkDown,
}

impl Server {
    /// A server with only name and address set.
    pub fn new(name: impl Into<String>, addr: ServerAddr) -> Self {
        Server {
            name: name.into(),
            addr,
            weight: None,
            backup: false,
            maxconn: None,
            maxqueue: None,
            disabled: false,
            check: false,
            inter: None,
            fastinter: None,
            downinter: None,
            rise: None,
            fall: None,
            cookie: None,
            slowstart: None,
            check_port: None,
            observe: None,
            error_limit: None,
            on_error: None,
            on_marked_down_shutdown: false,
            tls: ServerTls::default(),
            proto: None,
        }
    }
    /// Effective weight (HAProxy's default is 1).
    pub fn weight_or_default(&self) -> u32 {
        self.weight.unwrap_or(1)
    }
    /// Effective check interval (default 2 s).
    pub fn inter_or_default(&self) -> Duration {
        self.inter.unwrap_or(Duration::from_secs(2))
    }
    /// Effective `rise` (default 2).
    pub fn rise_or_default(&self) -> u32 {
        self.rise.unwrap_or(2)
    }
    /// Effective `fall` (default 3).
    pub fn fall_or_default(&self) -> u32 {
        self.fall.unwrap_or(3)
    }
}

/// The `timeout` family. Unset means "no timeout" as in HAProxy, except
/// where the node documents a safety default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Timeouts {
    pub connect: Option<Duration>,
    pub client: Option<Duration>,
    pub server: Option<Duration>,
    pub queue: Option<Duration>,
    pub check: Option<Duration>,
    pub http_request: Option<Duration>,
    pub http_keep_alive: Option<Duration>,
    pub tunnel: Option<Duration>,
    pub client_fin: Option<Duration>,
    pub server_fin: Option<Duration>,
}

impl Timeouts {
    /// Fill every unset timeout from `fallback`.
    pub fn or(self, fallback: &Timeouts) -> Timeouts {
        Timeouts {
            connect: self.connect.or(fallback.connect),
            client: self.client.or(fallback.client),
            server: self.server.or(fallback.server),
            queue: self.queue.or(fallback.queue),
            check: self.check.or(fallback.check),
            http_request: self.http_request.or(fallback.http_request),
            http_keep_alive: self.http_keep_alive.or(fallback.http_keep_alive),
            tunnel: self.tunnel.or(fallback.tunnel),
            client_fin: self.client_fin.or(fallback.client_fin),
            server_fin: self.server_fin.or(fallback.server_fin),
        }
    }
}

/// `option ...` switches. `no option X` sets the field back to false.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Options {
    pub redispatch: bool,
    pub forwardfor: bool,
    pub httpchk: Option<HttpChk>,
    pub http_keep_alive: bool,
    pub httpclose: bool,
    pub allbackups: bool,
    pub httplog: bool,
    pub tcplog: bool,
    pub external_check: bool,
    /// `option persist`: keep sending to a DOWN server named by a cookie.
    pub persist: bool,
}

/// `option httpchk [METHOD URI [VERSION]]`; the version may carry extra
/// header lines (`HTTP/1.1\r\nHost:\ example.com`), escapes already decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpChk {
    pub method: String,
    pub uri: String,
    pub version: String,
}

impl Default for HttpChk {
    fn default() -> Self {
        HttpChk {
            method: "OPTIONS".into(),
            uri: "/".into(),
            version: "HTTP/1.0".into(),
        }
    }
}

/// What `http-check expect` compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectKind {
    Status,
    Rstatus,
    String,
    Rstring,
}

/// `http-check expect [!] status|rstatus|string|rstring PATTERN`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpCheckExpect {
    pub negate: bool,
    pub kind: ExpectKind,
    pub pattern: String,
}

/// Cookie insertion mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CookieMode {
    Insert,
    Rewrite,
    Prefix,
}

/// `cookie NAME insert|rewrite|prefix [indirect] [nocache] [preserve] [httponly] [secure] [domain D] [maxidle T] [maxlife T]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CookieConfig {
    pub name: String,
    pub mode: CookieMode,
    pub indirect: bool,
    pub nocache: bool,
    pub preserve: bool,
    pub httponly: bool,
    pub secure: bool,
    pub domains: Vec<String>,
    pub maxidle: Option<Duration>,
    pub maxlife: Option<Duration>,
}

/// Stats page settings of a frontend/listen (`stats enable`, `stats uri`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StatsPage {
    pub enabled: bool,
    /// `stats uri`; HAProxy's default is `/haproxy?stats`.
    pub uri: Option<String>,
    pub refresh: Option<Duration>,
    pub realm: Option<String>,
    /// `stats auth USER:PASS` pairs.
    pub auth: Vec<(String, String)>,
    /// `stats admin if|unless COND`.
    pub admin: Option<Condition>,
    pub hide_version: bool,
}

/// `http-check send [meth M] [uri U] [ver V] [hdr NAME VALUE]... [body STRING]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HttpCheckSend {
    pub method: Option<String>,
    pub uri: Option<String>,
    pub version: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

/// Key type of a stick table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StickKeyType {
    Ip,
    Ipv6,
    Integer,
    /// `string [len N]` (HAProxy's default len is 32).
    String {
        len: u32,
    },
}

/// `stick-table type T [len N] size N [expire T] [store ...]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StickTable {
    pub key: StickKeyType,
    /// Maximum entries; a full table evicts its oldest entries.
    pub size: u64,
    pub expire: Option<Duration>,
    /// `store` data types as written (server_id is always stored).
    pub store: Vec<String>,
}

/// What a stick rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StickAction {
    /// `stick on`: match, and store after the server is chosen.
    On,
    /// `stick match`: only look up.
    Match,
    /// `stick store-request`: only store.
    StoreRequest,
}

/// The request sample a stick rule keys on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StickPattern {
    /// `src`
    Src,
    /// `req.cook(NAME)` / `cookie(NAME)`
    ReqCookie(String),
    /// `req.hdr(NAME)` / `hdr(NAME)`; name kept lowercase.
    ReqHdr(String),
}

/// `stick on|match|store-request PATTERN [table NAME] [if|unless COND]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StickRule {
    pub action: StickAction,
    pub pattern: StickPattern,
    /// Table in another proxy; `None` means this proxy's own table.
    pub table: Option<String>,
    pub cond: Option<Condition>,
}
