//! Keyword tables: what Shoal implements, and the near-miss hint for
//! unknown words. HAProxy keywords Shoal does not implement are in
//! [`super::gaps`], with what Shoal does when it meets one; a word HAProxy
//! does not know at all is an error.

/// Section keywords Shoal parses.
pub(super) const SECTIONS: &[&str] = &["global", "defaults", "frontend", "backend", "listen"];

/// Proxy keywords implemented by Shoal (sub-keywords are checked separately).
pub(super) const PROXY_IMPLEMENTED: &[&str] = &[
    "acl",
    "balance",
    "bind",
    "contimeout",
    "clitimeout",
    // Shoal: how node reports become a health verdict.
    "cluster-health",
    "cookie",
    "default-server",
    "default_backend",
    "enabled",
    "external-check",
    "hash-type",
    "http-check",
    "http-request",
    "http-reuse",
    "log",
    "maxconn",
    "mode",
    "no",
    "option",
    "retries",
    "server",
    "srvtimeout",
    "stats",
    "stick",
    "stick-table",
    "timeout",
    "use_backend",
];

/// `option` names Shoal implements (some mapped onto others, see proxy.rs).
pub(super) const OPTIONS_IMPLEMENTED: &[&str] = &[
    "allbackups",
    "external-check",
    "forceclose",
    "forwardfor",
    "http-keep-alive",
    "http-server-close",
    "httpchk",
    "httpclose",
    "httplog",
    "persist",
    "redispatch",
    "tcplog",
];

/// Global keywords Shoal implements.
pub(super) const GLOBAL_IMPLEMENTED: &[&str] = &[
    "daemon",
    // HAProxy needs it to allow `option external-check`; Shoal always does.
    "external-check",
    "grace",
    "group",
    "log",
    "maxconn",
    "nbthread",
    "stats",
    "timeout",
    "tune.bufsize",
    "tune.http.maxhdr",
    "user",
    "zero-warning",
];

/// Server options Shoal implements, with their argument counts.
pub(super) const SERVER_IMPLEMENTED: &[(&str, usize)] = &[
    ("backup", 0),
    ("check", 0),
    ("cookie", 1),
    ("disabled", 0),
    ("downinter", 1),
    ("enabled", 0),
    ("error-limit", 1),
    ("fall", 1),
    ("fastinter", 1),
    ("inter", 1),
    ("maxconn", 1),
    ("maxqueue", 1),
    ("no-backup", 0),
    ("no-check", 0),
    ("observe", 1),
    ("on-error", 1),
    ("on-marked-down", 1),
    ("port", 1),
    ("proto", 1),
    ("rise", 1),
    ("slowstart", 1),
    ("weight", 1),
];

/// Sample fetches HAProxy has but Shoal's ACLs cannot evaluate yet.
pub(super) const FETCHES_UNIMPLEMENTED: &[&str] = &[
    "always_false",
    "always_true",
    "base",
    "base32",
    "base32+src",
    "base_beg",
    "base_dir",
    "base_dom",
    "base_end",
    "base_len",
    "base_reg",
    "base_sub",
    "cook",
    "cook_beg",
    "cook_cnt",
    "cook_dom",
    "cook_end",
    "cook_len",
    "cook_reg",
    "cook_sub",
    "cook_val",
    "dst",
    "dst_conn",
    "dst_is_local",
    "env",
    "hdr_cnt",
    "hdr_len",
    "http_auth",
    "http_auth_group",
    "http_first_req",
    "nbsrv",
    "path_len",
    "query",
    "rand",
    "req_len",
    "req_proto_http",
    "req_ssl_sni",
    "req_ssl_ver",
    "req_ver",
    "shdr",
    "src_is_local",
    "src_port",
    "srv_is_up",
    "status",
    "url_ip",
    "url_len",
    "url_param",
    "url_port",
    "urlp",
    "urlp_val",
    "var",
    "wait_end",
];

/// Prefixes of families of HAProxy fetches (`ssl_fc`, `req.ssl_sni`, `sc0_conn_cur`, ...).
pub(super) const FETCH_PREFIXES_UNIMPLEMENTED: &[&str] = &[
    "ssl_", "req.", "res.", "sc0_", "sc1_", "sc2_", "sc_", "src_", "bc_", "fc_", "be_", "fe_",
    "so_", "capture.", "txn.", "http_", "cook",
];

/// `"; did you mean 'X'?"` when a candidate is within edit distance 2 of
/// `word` (and the word is long enough for that to mean something), else "".
pub(super) fn hint<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    let len = word.chars().count();
    let best = candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| (distance(word, c), c))
        .filter(|(d, _)| *d <= 2 && *d < len)
        .min_by_key(|(d, _)| *d);
    match best {
        Some((_, c)) => format!("; did you mean '{c}'?"),
        None => String::new(),
    }
}

/// Levenshtein distance, on characters, with a cheap cut-off for long words.
fn distance(a: &str, b: &str) -> usize {
    // Checked on bytes first, so that a huge word costs nothing.
    if a.len() > 4 * 64 || b.len() > 4 * 64 {
        return usize::MAX;
    }
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > 2 || a.len() > 64 || b.len() > 64 {
        return usize::MAX;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut row = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            row[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(row[j] + 1);
        }
        // Only distances up to 2 matter: stop once every cell is past that,
        // which keeps a hint over many candidates (backend names) cheap.
        if row.iter().all(|d| *d > 2) {
            return usize::MAX;
        }
        prev = row;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses() {
        assert_eq!(distance("blance", "balance"), 1);
        assert_eq!(
            hint("blance", PROXY_IMPLEMENTED.iter().copied()),
            "; did you mean 'balance'?"
        );
        assert_eq!(hint("x", ["id"]), "");
        assert_eq!(hint("zzzzzz", PROXY_IMPLEMENTED.iter().copied()), "");
    }
}
