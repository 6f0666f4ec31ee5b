//! Real HAProxy keywords that Shoal does not implement, and what Shoal does
//! when it meets one (DESIGN.md, "Compatibility rule for the dialect").
//!
//! Each keyword is classified once, here, as a [`Gap`]:
//! - refused (an error): ignoring it would change security or what traffic
//!   means: TLS, access control, rewriting, redirects, PROXY protocol, rate
//!   limits, routing, persistence, health-check verdicts, error pages...
//! - warned (once per file, then ignored): ignoring it changes nothing but
//!   performance, logs, labels or process management, or it only matters
//!   together with a keyword that is itself refused (e.g. `ssl-default-*`
//!   globals, which only take effect on a `bind ... ssl` line).
//!
//! When in doubt a keyword is refused. The table in the README is generated
//! from these lists (see `classification_table` in the tests).

/// How Shoal treats a real HAProxy keyword it does not implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gap {
    /// True: the config is refused. False: a warning, once, and ignored.
    pub refuse: bool,
    /// Refused: completes "ignoring it would ...". Warned: why ignoring it
    /// is harmless, as a clause ("it only tunes performance").
    pub why: &'static str,
}

const fn refuse(why: &'static str) -> Gap {
    Gap { refuse: true, why }
}

const fn warn(why: &'static str) -> Gap {
    Gap { refuse: false, why }
}

// --- Refused: ignoring them would change security or what traffic means. ---
const TLS: Gap = refuse("serve or send plaintext where TLS was asked for");
const ACCESS: Gap = refuse("let through traffic that its rules would filter");
const REWRITE: Gap = refuse("change the requests or responses that pass through");
const REDIRECT: Gap = refuse("forward requests that should be redirected");
const PROXY_PROTOCOL: Gap = refuse("drop or misread the PROXY protocol header peers rely on");
const RATE_LIMIT: Gap = refuse("lift a rate limit");
const ROUTING: Gap = refuse("send traffic to other servers than configured");
const SOURCE: Gap = refuse("connect to servers from another address than configured");
const PERSISTENCE: Gap = refuse("break session persistence");
const CHECKS: Gap = refuse("change which servers health checks consider up");
const RESPONSES: Gap = refuse("change the responses clients receive");
const ACCEPTANCE: Gap = refuse("change which requests or responses are accepted");
const PROTOCOL: Gap = refuse("speak another protocol than configured");
const LISTENER: Gap = refuse("change where or how connections are accepted");
const CONFINEMENT: Gap = refuse("run the process with fewer restrictions than configured");
const SOCKET_ACCESS: Gap = refuse("change who may use the socket");
const SECURITY: Gap = refuse("drop a security measure the peers rely on");
/// `proto` values Shoal does not implement (`fcgi`).
pub(super) const UNIMPLEMENTED_PROTO: Gap = PROTOCOL;
/// `http-request` actions and forms Shoal does not implement.
pub(super) const HTTP_REQUEST: Gap =
    refuse("skip its access-control, rewriting and redirect rules");

// --- Warned: ignoring them changes nothing but the following. ---
const PERF: Gap = warn("it only tunes performance or resource use");
const LOGGING: Gap = warn("it only changes logs or statistics");
const COSMETIC: Gap = warn("it only changes names or labels shown in statistics");
const INERT: Gap = warn("it only takes effect through keywords that Shoal refuses");
const OPS: Gap = warn("it only changes how the process is run or debugged");
const NOTIFY: Gap = warn("it only sends notifications");
const PEERS: Gap =
    warn("stick tables are not shared with HAProxy peers; each Shoal node keeps its own");
const ALREADY: Gap = warn("Shoal always behaves this way");
const HASH: Gap =
    warn("equal keys still go to the same server, only not the one HAProxy would pick");

/// Sections Shoal skips, whole.
pub(super) const SECTIONS: &[(&str, Gap)] = &[
    ("acme", INERT),
    ("cache", INERT),
    ("crt-store", INERT),
    ("fcgi-app", INERT),
    ("http-errors", INERT),
    (
        "log-forward",
        refuse("leave its syslog listener not running"),
    ),
    ("mailers", NOTIFY),
    ("peers", PEERS),
    (
        "program",
        refuse("leave the programs it declares not running"),
    ),
    ("resolvers", INERT),
    ("ring", LOGGING),
    ("traces", OPS),
    ("userlist", INERT),
];

/// Proxy keywords of HAProxy 2.x (and removed 1.x ones that old configs
/// still carry; HAProxy 2.6 refuses those too).
pub(super) const PROXY: &[(&str, Gap)] = &[
    ("appsession", PERSISTENCE),
    ("backlog", PERF),
    ("bind-process", PERF),
    ("block", ACCESS),
    ("capture", LOGGING),
    ("cliexp", REWRITE),
    ("clitcpka-cnt", PERF),
    ("clitcpka-idle", PERF),
    ("clitcpka-intvl", PERF),
    (
        "compression",
        warn("responses go out uncompressed, which only costs bandwidth"),
    ),
    ("declare", INERT),
    ("description", COSMETIC),
    ("disabled", refuse("start a proxy that is marked disabled")),
    ("dispatch", ROUTING),
    ("dynamic-cookie-key", INERT),
    ("email-alert", NOTIFY),
    ("error-log-format", LOGGING),
    ("errorfile", RESPONSES),
    ("errorfiles", RESPONSES),
    ("errorloc", RESPONSES),
    ("errorloc302", RESPONSES),
    ("errorloc303", RESPONSES),
    (
        "filter",
        refuse("skip filters (SPOE, bandwidth limits, cache, compression) that act on traffic"),
    ),
    ("force-persist", PERSISTENCE),
    ("fullconn", PERF),
    ("guid", COSMETIC),
    ("hash-balance-factor", PERF),
    ("http-after-response", REWRITE),
    ("http-error", RESPONSES),
    (
        "http-response",
        refuse("skip its response filtering and rewriting rules"),
    ),
    ("http-send-name-header", REWRITE),
    ("id", COSMETIC),
    ("ignore-persist", PERSISTENCE),
    (
        "load-server-state-from-file",
        refuse("forget server states (maintenance, weights) saved across reloads"),
    ),
    ("log-format", LOGGING),
    ("log-format-sd", LOGGING),
    ("log-steps", LOGGING),
    ("log-tag", LOGGING),
    ("max-keep-alive-queue", PERF),
    ("max-session-srv-conns", PERF),
    ("monitor", RESPONSES),
    ("monitor-net", RESPONSES),
    ("monitor-uri", RESPONSES),
    ("persist", PERSISTENCE),
    ("rate-limit", RATE_LIMIT),
    ("redirect", REDIRECT),
    ("redisp", ROUTING),
    ("redispatch", ROUTING),
    ("reqadd", REWRITE),
    ("reqallow", ACCESS),
    ("reqdel", REWRITE),
    ("reqdeny", ACCESS),
    ("reqiallow", ACCESS),
    ("reqidel", REWRITE),
    ("reqideny", ACCESS),
    ("reqipass", ACCESS),
    ("reqirep", REWRITE),
    ("reqisetbe", ROUTING),
    ("reqitarpit", ACCESS),
    ("reqpass", ACCESS),
    ("reqrep", REWRITE),
    ("reqsetbe", ROUTING),
    ("reqtarpit", ACCESS),
    (
        "retry-on",
        refuse("change which failures are retried and which reach clients"),
    ),
    ("rspadd", REWRITE),
    ("rspdel", REWRITE),
    ("rspdeny", ACCESS),
    ("rspidel", REWRITE),
    ("rspideny", ACCESS),
    ("rspirep", REWRITE),
    ("rsprep", REWRITE),
    ("server-state-file-name", INERT),
    (
        "server-template",
        refuse("leave out the servers it declares"),
    ),
    ("source", SOURCE),
    ("srvexp", REWRITE),
    ("srvtcpka-cnt", PERF),
    ("srvtcpka-idle", PERF),
    ("srvtcpka-intvl", PERF),
    ("tcp-check", CHECKS),
    (
        "tcp-request",
        refuse("skip its connection and content filtering rules"),
    ),
    ("tcp-response", ACCESS),
    ("transparent", ROUTING),
    ("unique-id-format", LOGGING),
    ("unique-id-header", REWRITE),
    ("use-fcgi-app", PROTOCOL),
    ("use-server", ROUTING),
];

/// `option` names.
pub(super) const OPTIONS: &[(&str, Gap)] = &[
    ("abortonclose", PERF),
    ("accept-invalid-http-request", ACCEPTANCE),
    ("accept-invalid-http-response", ACCEPTANCE),
    ("accept-unsafe-violations-in-http-request", ACCEPTANCE),
    ("accept-unsafe-violations-in-http-response", ACCEPTANCE),
    (
        "checkcache",
        refuse("let cacheable responses carry cookies to shared caches"),
    ),
    ("clitcpka", PERF),
    ("contstats", LOGGING),
    ("disable-h2-upgrade", ALREADY),
    ("dontlog-normal", LOGGING),
    ("dontlognull", LOGGING),
    ("forwarded", REWRITE),
    ("h1-case-adjust-bogus-client", REWRITE),
    ("h1-case-adjust-bogus-server", REWRITE),
    ("http-buffer-request", PERF),
    ("http-drop-request-trailers", REWRITE),
    ("http-drop-response-trailers", REWRITE),
    ("http-ignore-probes", LOGGING),
    ("http-no-delay", PERF),
    ("http-pretend-keepalive", PERF),
    (
        "http-restrict-req-hdr-names",
        refuse("pass request headers whose names it deletes or rejects"),
    ),
    ("http-tunnel", ROUTING),
    ("http-use-htx", ALREADY),
    ("http-use-proxy-header", PERF),
    ("http_proxy", ROUTING),
    ("httpslog", LOGGING),
    ("idle-close-on-response", OPS),
    ("independent-streams", PERF),
    ("ldap-check", CHECKS),
    ("log-health-checks", LOGGING),
    ("log-separate-errors", LOGGING),
    ("logasap", LOGGING),
    ("mysql-check", CHECKS),
    ("nolinger", PERF),
    ("originalto", REWRITE),
    ("pgsql-check", CHECKS),
    (
        "prefer-last-server",
        refuse("spread a connection's requests over servers, which breaks connection-based authentication such as NTLM"),
    ),
    ("redis-check", CHECKS),
    ("smtpchk", CHECKS),
    ("socket-stats", LOGGING),
    ("splice-auto", PERF),
    ("splice-request", PERF),
    ("splice-response", PERF),
    ("spop-check", CHECKS),
    ("srvtcpka", PERF),
    ("ssl-hello-chk", CHECKS),
    ("tcp-check", CHECKS),
    ("tcp-smart-accept", PERF),
    ("tcp-smart-connect", PERF),
    ("tcpka", PERF),
    ("transparent", ROUTING),
];

/// Global keywords (exact names; see [`GLOBAL_PREFIXES`] for families).
pub(super) const GLOBAL: &[(&str, Gap)] = &[
    ("anonkey", OPS),
    ("busy-polling", PERF),
    ("ca-base", TLS),
    ("chroot", CONFINEMENT),
    ("close-spread-time", OPS),
    ("cluster-secret", INERT),
    ("cpu-map", PERF),
    ("cpu-policy", PERF),
    ("cpu-set", PERF),
    ("crt-base", TLS),
    ("debug", OPS),
    (
        "default-path",
        refuse("resolve relative file paths from another directory"),
    ),
    ("description", COSMETIC),
    ("expose-experimental-directives", OPS),
    ("fd-hard-limit", PERF),
    ("gid", CONFINEMENT),
    ("h1-accept-payload-with-any-method", ACCEPTANCE),
    ("h1-case-adjust", INERT),
    ("h1-case-adjust-file", INERT),
    ("h2-workaround-bogus-websocket-clients", INERT),
    ("hard-stop-after", OPS),
    ("insecure-fork-wanted", ALREADY),
    ("insecure-setuid-wanted", OPS),
    ("issuers-chain-path", INERT),
    ("localpeer", PEERS),
    ("log-send-hostname", LOGGING),
    ("log-tag", LOGGING),
    ("lua-load", refuse("skip scripts that may act on traffic")),
    (
        "lua-load-per-thread",
        refuse("skip scripts that may act on traffic"),
    ),
    ("lua-prepend-path", INERT),
    ("master-worker", OPS),
    ("max-spread-checks", PERF),
    ("maxcompcpuusage", PERF),
    ("maxcomprate", PERF),
    ("maxconnrate", RATE_LIMIT),
    ("maxpipes", PERF),
    ("maxsessrate", RATE_LIMIT),
    ("maxsslconn", INERT),
    ("maxsslrate", RATE_LIMIT),
    ("maxzlibmem", PERF),
    ("mworker-max-reloads", OPS),
    ("nbproc", PERF),
    ("no-memory-trimming", PERF),
    ("node", COSMETIC),
    ("noepoll", PERF),
    ("noevports", PERF),
    ("nogetaddrinfo", OPS),
    ("nokqueue", PERF),
    ("nopoll", PERF),
    ("noreuseport", OPS),
    ("nosplice", PERF),
    ("numa-cpu-mapping", PERF),
    ("pidfile", OPS),
    ("pp2-never-send-local", INERT),
    ("presetenv", INERT),
    ("quiet", LOGGING),
    ("resetenv", INERT),
    ("server-state-base", INERT),
    ("server-state-file", INERT),
    ("set-dumpable", OPS),
    ("set-var", INERT),
    ("set-var-fmt", INERT),
    ("setenv", INERT),
    ("spread-checks", PERF),
    ("ssl-default-bind-client-sigalgs", TLS),
    ("ssl-default-bind-sigalgs", TLS),
    ("ssl-default-server-ciphers", TLS),
    ("ssl-default-server-ciphersuites", TLS),
    ("ssl-default-server-client-sigalgs", TLS),
    ("ssl-default-server-curves", TLS),
    ("ssl-default-server-options", TLS),
    ("ssl-default-server-sigalgs", TLS),
    ("strict-limits", OPS),
    ("thread-group", PERF),
    ("thread-groups", PERF),
    ("uid", CONFINEMENT),
    ("ulimit-n", PERF),
    (
        "unix-bind",
        refuse("create unix sockets at other paths or with other permissions"),
    ),
    ("unsetenv", INERT),
];

/// Families of global keywords, tried after [`GLOBAL`].
pub(super) const GLOBAL_PREFIXES: &[(&str, Gap)] = &[
    ("51degrees-", INERT),
    ("deviceatlas-", INERT),
    ("h1-", INERT),
    ("h2-", INERT),
    ("httpclient.", INERT),
    ("limited-quic", INERT),
    ("lua-", INERT),
    ("ocsp-update.", INERT),
    ("profiling.", OPS),
    ("quic-", INERT),
    ("ssl-", INERT),
    ("stats-file", OPS),
    ("tune.", PERF),
    ("wurfl-", INERT),
];

/// `bind` (and `stats socket`) options, with the number of arguments each
/// takes.
pub(super) const BIND_OPTIONS: &[(&str, usize, Gap)] = &[
    ("accept-netscaler-cip", 1, PROXY_PROTOCOL),
    ("accept-proxy", 0, PROXY_PROTOCOL),
    ("allow-0rtt", 0, TLS),
    ("alpn", 1, TLS),
    ("backlog", 1, PERF),
    ("ca-file", 1, TLS),
    ("ca-ignore-err", 1, TLS),
    ("ca-sign-file", 1, TLS),
    ("ca-sign-pass", 1, TLS),
    ("ca-verify-file", 1, TLS),
    ("ciphers", 1, TLS),
    ("ciphersuites", 1, TLS),
    ("client-sigalgs", 1, TLS),
    ("crl-file", 1, TLS),
    ("crt", 1, TLS),
    ("crt-ignore-err", 1, TLS),
    ("crt-list", 1, TLS),
    ("curves", 1, TLS),
    ("default-crt", 1, TLS),
    ("defer-accept", 0, PERF),
    ("ecdhe", 1, TLS),
    ("expose-fd", 1, OPS),
    ("force-sslv3", 0, TLS),
    ("force-tlsv10", 0, TLS),
    ("force-tlsv11", 0, TLS),
    ("force-tlsv12", 0, TLS),
    ("force-tlsv13", 0, TLS),
    ("generate-certificates", 0, TLS),
    ("gid", 1, SOCKET_ACCESS),
    ("group", 1, SOCKET_ACCESS),
    ("guid-prefix", 1, COSMETIC),
    ("id", 1, COSMETIC),
    ("idle-ping", 1, PERF),
    ("interface", 1, LISTENER),
    ("level", 1, SOCKET_ACCESS),
    ("maxconn", 1, PERF),
    ("mode", 1, SOCKET_ACCESS),
    ("mss", 1, PERF),
    ("name", 1, COSMETIC),
    ("namespace", 1, LISTENER),
    ("nbconn", 1, PERF),
    ("nice", 1, PERF),
    ("no-alpn", 0, TLS),
    ("no-ca-names", 0, TLS),
    ("no-sslv3", 0, TLS),
    ("no-tls-tickets", 0, TLS),
    ("no-tlsv10", 0, TLS),
    ("no-tlsv11", 0, TLS),
    ("no-tlsv12", 0, TLS),
    ("no-tlsv13", 0, TLS),
    ("npn", 1, TLS),
    ("ocsp-update", 1, TLS),
    ("prefer-client-ciphers", 0, TLS),
    ("process", 1, PERF),
    ("proto", 1, PROTOCOL),
    ("quic-cc-algo", 1, INERT),
    ("quic-force-retry", 0, INERT),
    ("quic-socket", 1, INERT),
    (
        "severity-output",
        1,
        refuse("change the format of runtime API answers that scripts parse"),
    ),
    ("shards", 1, PERF),
    ("sigalgs", 1, TLS),
    ("ssl", 0, TLS),
    ("ssl-max-ver", 1, TLS),
    ("ssl-min-ver", 1, TLS),
    ("strict-sni", 0, TLS),
    ("tcp-md5sig", 1, SECURITY),
    ("tcp-ut", 1, PERF),
    ("tfo", 0, PERF),
    ("thread", 1, PERF),
    ("tls-ticket-keys", 1, TLS),
    ("transparent", 0, LISTENER),
    ("uid", 1, SOCKET_ACCESS),
    ("user", 1, SOCKET_ACCESS),
    ("v4v6", 0, LISTENER),
    ("v6only", 0, LISTENER),
    ("verify", 1, TLS),
];

/// `server` and `default-server` options, with their argument counts
/// (`source` is handled apart: its tail is variable).
pub(super) const SERVER_OPTIONS: &[(&str, usize, Gap)] = &[
    ("addr", 1, CHECKS),
    ("agent-addr", 1, INERT),
    (
        "agent-check",
        0,
        refuse("ignore the weights and states its agent reports"),
    ),
    ("agent-inter", 1, INERT),
    ("agent-port", 1, INERT),
    ("agent-send", 1, INERT),
    ("allow-0rtt", 0, TLS),
    ("check-alpn", 1, CHECKS),
    ("check-pool-conn-name", 1, CHECKS),
    ("check-proto", 1, CHECKS),
    ("check-reuse-pool", 0, PERF),
    ("check-send-proxy", 0, CHECKS),
    ("check-sni", 1, CHECKS),
    ("check-ssl", 0, CHECKS),
    ("check-via-socks4", 0, CHECKS),
    ("ciphers", 1, TLS),
    ("ciphersuites", 1, TLS),
    ("client-sigalgs", 1, TLS),
    ("crl-file", 1, TLS),
    ("crt", 1, TLS),
    ("curves", 1, TLS),
    ("force-sslv3", 0, TLS),
    ("force-tlsv10", 0, TLS),
    ("force-tlsv11", 0, TLS),
    ("force-tlsv12", 0, TLS),
    ("force-tlsv13", 0, TLS),
    ("guid", 1, COSMETIC),
    ("hash-key", 1, HASH),
    ("id", 1, COSMETIC),
    ("idle-ping", 1, PERF),
    (
        "init-addr",
        1,
        refuse("resolve the server's address differently at startup"),
    ),
    ("init-state", 1, CHECKS),
    ("log-bufsize", 1, LOGGING),
    ("log-proto", 1, LOGGING),
    ("max-reuse", 1, PERF),
    ("minconn", 1, PERF),
    ("namespace", 1, SOURCE),
    ("no-agent-check", 0, ALREADY),
    ("no-check-send-proxy", 0, ALREADY),
    ("no-check-ssl", 0, ALREADY),
    ("no-send-proxy", 0, ALREADY),
    ("no-send-proxy-v2", 0, ALREADY),
    ("no-send-proxy-v2-ssl", 0, ALREADY),
    ("no-send-proxy-v2-ssl-cn", 0, ALREADY),
    ("no-ssl-reuse", 0, TLS),
    ("no-sslv3", 0, TLS),
    ("no-tfo", 0, ALREADY),
    ("no-tls-tickets", 0, TLS),
    ("no-tlsv10", 0, TLS),
    ("no-tlsv11", 0, TLS),
    ("no-tlsv12", 0, TLS),
    ("no-tlsv13", 0, TLS),
    ("no-verifyhost", 0, TLS),
    ("non-stick", 0, PERSISTENCE),
    ("npn", 1, TLS),
    (
        "on-marked-up",
        1,
        refuse("keep sessions on backup servers that it would shut down"),
    ),
    ("pool-conn-name", 1, PERF),
    ("pool-low-conn", 1, PERF),
    ("pool-max-conn", 1, PERF),
    ("pool-purge-delay", 1, PERF),
    ("proxy-v2-options", 1, PROXY_PROTOCOL),
    ("redir", 1, REDIRECT),
    (
        "resolve-net",
        1,
        refuse("pick another of the server's addresses"),
    ),
    (
        "resolve-opts",
        1,
        refuse("pick another of the server's addresses"),
    ),
    (
        "resolve-prefer",
        1,
        refuse("pick another of the server's addresses"),
    ),
    (
        "resolvers",
        1,
        refuse("keep sending traffic to an address DNS no longer gives"),
    ),
    ("send-proxy", 0, PROXY_PROTOCOL),
    ("send-proxy-v2", 0, PROXY_PROTOCOL),
    ("send-proxy-v2-ssl", 0, PROXY_PROTOCOL),
    ("send-proxy-v2-ssl-cn", 0, PROXY_PROTOCOL),
    ("set-proxy-v2-tlv-fmt", 1, PROXY_PROTOCOL),
    ("shard", 1, PEERS),
    ("sigalgs", 1, TLS),
    ("socks4", 1, ROUTING),
    ("source", 1, SOURCE),
    ("ssl-max-ver", 1, TLS),
    ("ssl-min-ver", 1, TLS),
    ("ssl-reuse", 0, TLS),
    ("stick", 0, ALREADY),
    ("strict-maxconn", 0, PERF),
    ("tcp-md5sig", 1, SECURITY),
    ("tcp-ut", 1, PERF),
    ("tfo", 0, PERF),
    ("tls-tickets", 0, TLS),
    ("track", 1, CHECKS),
    ("verifyhost", 1, TLS),
    ("ws", 1, PROTOCOL),
];

/// Forms of keywords Shoal implements in part (`balance rdp-cookie`,
/// `stats scope`, ...), under the name diagnostics show.
pub(super) const FORMS: &[(&str, Gap)] = &[
    ("a log-format expression in 'http-check send hdr'", CHECKS),
    (
        "a second 'http-check send' rule (a multi-step check)",
        CHECKS,
    ),
    ("acl in a defaults section", INERT),
    ("balance hash", ROUTING),
    ("balance hdr use_domain_only", ROUTING),
    ("balance log-hash", ROUTING),
    ("balance rdp-cookie", PERSISTENCE),
    ("balance sticky", PERSISTENCE),
    ("balance uri depth", ROUTING),
    ("balance uri len", ROUTING),
    ("balance uri path-only", ROUTING),
    ("balance url_param check_post", ROUTING),
    ("bind on a unix socket or file descriptor", LISTENER),
    ("cookie attr", REWRITE),
    ("cookie dynamic", PERSISTENCE),
    ("cookie postonly", PERSISTENCE),
    ("hash-type avalanche", HASH),
    ("hash-type crc32", HASH),
    ("hash-type djb2", HASH),
    ("hash-type none", HASH),
    ("hash-type sdbm", HASH),
    ("hash-type wt6", HASH),
    ("http-check comment", LOGGING),
    ("http-check connect", CHECKS),
    ("http-check disable-on-404", CHECKS),
    ("http-check expect comment", LOGGING),
    ("http-check expect custom", CHECKS),
    ("http-check expect error-status", CHECKS),
    ("http-check expect fhdr", CHECKS),
    ("http-check expect hdr", CHECKS),
    ("http-check expect min-recv", CHECKS),
    ("http-check expect ok-status", CHECKS),
    ("http-check expect on-error", LOGGING),
    ("http-check expect on-success", LOGGING),
    ("http-check expect status-code", LOGGING),
    ("http-check expect tout-status", CHECKS),
    ("http-check send body-lf", CHECKS),
    ("http-check send comment", LOGGING),
    ("http-check send uri-lf", CHECKS),
    ("http-check send-state", CHECKS),
    ("http-check set-var", INERT),
    ("http-check unset-var", INERT),
    ("option forwardfor except", REWRITE),
    ("option forwardfor header", REWRITE),
    ("option forwardfor if-none", REWRITE),
    ("option httplog clf", LOGGING),
    ("option redispatch interval", ROUTING),
    ("stats bind-process", PERF),
    ("stats http-request", ACCESS),
    ("stats maxconn", PERF),
    (
        "stats scope",
        refuse("show proxies on the stats page that it hides"),
    ),
    ("stats show-desc", COSMETIC),
    ("stats show-legends", COSMETIC),
    ("stats show-modules", COSMETIC),
    ("stats show-node", COSMETIC),
    ("stick store-response", PERSISTENCE),
    ("stick-table brates-factor", INERT),
    ("stick-table nopurge", PERSISTENCE),
    ("stick-table peers", PEERS),
    ("stick-table recv-only", PEERS),
    ("stick-table srvkey", PERSISTENCE),
    ("stick-table write-to", PERSISTENCE),
    ("timeout client-hs", INERT),
    ("timeout tarpit", INERT),
];

/// Finds `name` in a table.
pub(super) fn find(table: &[(&str, Gap)], name: &str) -> Option<Gap> {
    table.iter().find(|(k, _)| *k == name).map(|(_, g)| *g)
}

/// The classification of a global keyword, exact names first.
pub(super) fn global(word: &str) -> Option<Gap> {
    find(GLOBAL, word).or_else(|| {
        GLOBAL_PREFIXES
            .iter()
            .find(|(p, _)| word.starts_with(p))
            .map(|(_, g)| *g)
    })
}

/// The classification of a partly implemented form (see [`FORMS`]); a form
/// missing from the table is refused, as the safe default.
pub(super) fn form(name: &str) -> Gap {
    find(FORMS, name).unwrap_or(refuse("change what traffic means"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every table, with the name of the place its keywords go.
    fn tables() -> Vec<(&'static str, Vec<(&'static str, Gap)>)> {
        let pairs = |t: &[(&'static str, Gap)]| t.to_vec();
        let triples =
            |t: &[(&'static str, usize, Gap)]| t.iter().map(|(k, _, g)| (*k, *g)).collect();
        let prefixes = GLOBAL_PREFIXES.iter().map(|(p, g)| (*p, *g)).collect();
        vec![
            ("section", pairs(SECTIONS)),
            ("global", pairs(GLOBAL)),
            ("global (any keyword starting so)", prefixes),
            ("proxy", pairs(PROXY)),
            ("option", pairs(OPTIONS)),
            ("bind / stats socket option", triples(BIND_OPTIONS)),
            ("server / default-server option", triples(SERVER_OPTIONS)),
            ("form of an implemented keyword", pairs(FORMS)),
        ]
    }

    #[test]
    fn tables_are_sorted_and_unique() {
        for (place, table) in tables() {
            let names: Vec<&str> = table.iter().map(|(k, _)| *k).collect();
            let mut sorted = names.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(names, sorted, "{place}: keep names sorted and unique");
            for (name, gap) in table {
                assert!(!gap.why.is_empty(), "{name}");
            }
        }
    }

    #[test]
    fn the_review_cases_are_refused() {
        let bind = |k: &str| BIND_OPTIONS.iter().find(|(n, _, _)| *n == k).map(|t| t.2);
        let server = |k: &str| SERVER_OPTIONS.iter().find(|(n, _, _)| *n == k).map(|t| t.2);
        for k in [
            "ssl",
            "crt",
            "ca-file",
            "verify",
            "alpn",
            "ciphers",
            "accept-proxy",
        ] {
            assert!(bind(k).is_some_and(|g| g.refuse), "bind {k}");
        }
        for k in ["send-proxy", "send-proxy-v2", "source"] {
            assert!(server(k).is_some_and(|g| g.refuse), "server {k}");
        }
        for k in [
            "tcp-request",
            "http-response",
            "tcp-response",
            "redirect",
            "rate-limit",
            "source",
            "use-server",
            "force-persist",
            "ignore-persist",
            "errorfile",
            "errorloc",
            "reqrep",
        ] {
            assert!(find(PROXY, k).is_some_and(|g| g.refuse), "{k}");
        }
        for k in [
            "tune.maxaccept",
            "cpu-map",
            "nbproc",
            "spread-checks",
            "ssl-dh-param-file",
        ] {
            assert!(global(k).is_some_and(|g| !g.refuse), "{k}");
        }
        // TLS globals that would change which certificates are found or
        // how strict TLS towards servers is.
        for k in [
            "crt-base",
            "ca-base",
            "ssl-default-server-options",
            "ssl-default-server-ciphers",
            "ssl-default-bind-sigalgs",
        ] {
            assert!(global(k).is_some_and(|g| g.refuse), "{k}");
        }
        assert_eq!(
            form("an unlisted form"),
            refuse("change what traffic means")
        );
    }

    /// The README table: `cargo test -p shoal-proto print_classification_table -- --ignored --nocapture`.
    #[test]
    #[ignore = "prints the README table"]
    fn print_classification_table() {
        let mut out = String::from("| Keyword | Where | Shoal | Why |\n|---|---|---|---|\n");
        for (place, table) in tables() {
            for (name, gap) in table {
                let (class, why) = if gap.refuse {
                    ("error", format!("ignoring it would {}", gap.why))
                } else {
                    ("warning", gap.why.to_string())
                };
                out.push_str(&format!("| `{name}` | {place} | {class} | {why} |\n"));
            }
        }
        println!("{out}");
    }
}
