//! TLS keywords: `bind ... ssl crt ...` options and the
//! `ssl-default-bind-*` globals.
//!
//! Shoal terminates TLS with rustls, which offers TLS 1.2 and 1.3 only, a
//! fixed set of AEAD suites and three key-exchange groups. A setting is
//! accepted only when it maps onto exactly that; anything else (an older
//! version, a suite or group rustls lacks, an OpenSSL cipher-string
//! operator such as `HIGH:!aNULL`) is refused with the reason, since
//! ignoring it would change what is offered to clients.

use super::Diags;
use crate::config::{BindTls, SourceLine, SslBindDefaults, TlsVersion};

/// TLS 1.2 suites rustls offers, by their OpenSSL names (`ciphers`).
pub const TLS12_SUITES: &[&str] = &[
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-CHACHA20-POLY1305",
];

/// TLS 1.3 suites rustls offers (`ciphersuites`).
pub const TLS13_SUITES: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// Key-exchange groups rustls offers (`curves`, `ecdhe`): the canonical
/// name and the OpenSSL aliases HAProxy configs use for it.
pub const GROUPS: &[(&str, &[&str])] = &[
    ("X25519", &["x25519"]),
    ("P-256", &["prime256v1", "secp256r1"]),
    ("P-384", &["secp384r1"]),
];

/// ALPN protocol names Shoal can serve behind a TLS `bind`.
const ALPN: &[&str] = &["h2", "http/1.1", "http/1.0"];

/// What a `bind` line's TLS options say before they are checked as a whole.
#[derive(Default)]
pub(super) struct BindTlsWords {
    pub ssl: bool,
    /// The first TLS option seen (for "needs 'ssl'" errors).
    pub first: Option<String>,
    pub tls: Option<BindTls>,
}

/// Handles one TLS bind option `w` with its argument (if it takes one).
/// Returns `None` when `w` is not one of them, else the arguments used.
pub(super) fn bind_option(
    d: &mut Diags,
    no: usize,
    w: &str,
    arg: Option<&str>,
    out: &mut BindTlsWords,
) -> Option<usize> {
    let nargs = match w {
        "ssl" | "strict-sni" | "no-sslv3" | "no-tlsv10" | "no-tlsv11" | "no-tlsv12"
        | "no-tlsv13" | "force-tlsv12" | "force-tlsv13" | "no-tls-tickets" => 0,
        "crt" | "alpn" | "ssl-min-ver" | "ssl-max-ver" | "ciphers" | "ciphersuites" | "curves"
        | "ecdhe" => 1,
        _ => return None,
    };
    let Some(arg) = (if nargs == 1 { arg } else { Some("") }) else {
        d.error(no, format!("bind option '{w}' expects an argument"));
        return Some(0);
    };
    if w == "ssl" {
        out.ssl = true;
        return Some(0);
    }
    if out.first.is_none() {
        out.first = Some(w.to_string());
    }
    let tls = out.tls.get_or_insert_with(empty);
    match w {
        "crt" => tls.crts.push(arg.to_string()),
        "alpn" => {
            tls.alpn.clear();
            for proto in arg.split(',') {
                if ALPN.contains(&proto) {
                    tls.alpn.push(proto.to_string());
                } else {
                    d.error(
                        no,
                        format!("bind option 'alpn': protocol '{proto}' is not served by Shoal (it serves h2, http/1.1 and http/1.0)"),
                    );
                }
            }
        }
        "ssl-min-ver" => tls.min_ver = version(d, no, w, arg).or(tls.min_ver),
        "ssl-max-ver" => tls.max_ver = version(d, no, w, arg).or(tls.max_ver),
        "ciphers" => tls.ciphers = suites(d, no, w, arg, TLS12_SUITES).or(tls.ciphers.take()),
        "ciphersuites" => {
            tls.ciphersuites = suites(d, no, w, arg, TLS13_SUITES).or(tls.ciphersuites.take());
        }
        "curves" => tls.curves = groups(d, no, w, arg).or(tls.curves.take()),
        "ecdhe" => {
            if arg.contains(':') {
                d.error(
                    no,
                    "bind option 'ecdhe' names one curve (use 'curves' for a list)",
                );
            } else {
                tls.curves = groups(d, no, w, arg).or(tls.curves.take());
            }
        }
        "strict-sni" => tls.strict_sni = true,
        // rustls never offers these versions, nor stateless session
        // tickets (it resumes TLS 1.3 sessions from its own cache).
        "no-sslv3" | "no-tlsv10" | "no-tlsv11" | "no-tls-tickets" => {}
        "no-tlsv12" => tls.min_ver = Some(TlsVersion::Tls13),
        "no-tlsv13" => tls.max_ver = Some(TlsVersion::Tls12),
        "force-tlsv12" => {
            (tls.min_ver, tls.max_ver) = (Some(TlsVersion::Tls12), Some(TlsVersion::Tls12))
        }
        "force-tlsv13" => {
            (tls.min_ver, tls.max_ver) = (Some(TlsVersion::Tls13), Some(TlsVersion::Tls13))
        }
        _ => {}
    }
    Some(nargs)
}

/// Checks a bind line's TLS options as a whole and applies the
/// `ssl-default-bind-*` globals; `None` for a plain bind (or after an error).
pub(super) fn finish_bind(
    d: &mut Diags,
    no: usize,
    words: BindTlsWords,
    defaults: &SslBindDefaults,
) -> Option<Box<BindTls>> {
    if !words.ssl {
        if let Some(first) = words.first {
            d.error(
                no,
                format!("bind option '{first}' needs 'ssl' on the same line (without it the listener would accept plaintext)"),
            );
        }
        return None;
    }
    let mut tls = words.tls.unwrap_or_else(empty);
    if tls.crts.is_empty() {
        d.error(
            no,
            "'bind ... ssl' needs a certificate: add 'crt PATH' (a PEM file with its key, or a directory of them)",
        );
        return None;
    }
    tls.ciphers = tls.ciphers.or_else(|| defaults.ciphers.clone());
    tls.ciphersuites = tls.ciphersuites.or_else(|| defaults.ciphersuites.clone());
    tls.curves = tls.curves.or_else(|| defaults.curves.clone());
    tls.min_ver = tls.min_ver.or(defaults.min_ver);
    tls.max_ver = tls.max_ver.or(defaults.max_ver);
    if let (Some(min), Some(max)) = (tls.min_ver, tls.max_ver) {
        if min > max {
            d.error(
                no,
                format!(
                    "'ssl-min-ver {}' is above 'ssl-max-ver {}': no TLS version is left",
                    min.keyword(),
                    max.keyword()
                ),
            );
            return None;
        }
    }
    tls.at = SourceLine(d.at(no));
    Some(Box::new(tls))
}

/// An `ssl-default-bind-*` global line; `false` when `kw` is not one that
/// Shoal implements.
pub(super) fn global(d: &mut Diags, g: &mut SslBindDefaults, no: usize, args: &[String]) -> bool {
    let kw = args.first().map(String::as_str).unwrap_or_default();
    let one = |d: &mut Diags| -> Option<String> {
        let v = d.need(no, args, 1, "an argument")?.to_string();
        d.at_most(no, args, 2).then_some(v)
    };
    match kw {
        "ssl-default-bind-ciphers" => {
            if let Some(v) = one(d) {
                g.ciphers = suites(d, no, kw, &v, TLS12_SUITES).or(g.ciphers.take());
            }
        }
        "ssl-default-bind-ciphersuites" => {
            if let Some(v) = one(d) {
                g.ciphersuites = suites(d, no, kw, &v, TLS13_SUITES).or(g.ciphersuites.take());
            }
        }
        "ssl-default-bind-curves" => {
            if let Some(v) = one(d) {
                g.curves = groups(d, no, kw, &v).or(g.curves.take());
            }
        }
        "ssl-default-bind-options" => {
            let words = args.get(1..).unwrap_or_default();
            let mut i = 0;
            while let Some(w) = words.get(i) {
                i += 1;
                match w.as_str() {
                    "ssl-min-ver" | "ssl-max-ver" => {
                        let Some(v) = words.get(i) else {
                            d.error(no, format!("'{kw}': '{w}' expects a version"));
                            return true;
                        };
                        i += 1;
                        let v = version(d, no, w, v);
                        if w == "ssl-min-ver" {
                            g.min_ver = v.or(g.min_ver);
                        } else {
                            g.max_ver = v.or(g.max_ver);
                        }
                    }
                    "no-sslv3" | "no-tlsv10" | "no-tlsv11" | "no-tls-tickets" => {}
                    "no-tlsv12" => g.min_ver = Some(TlsVersion::Tls13),
                    "no-tlsv13" => g.max_ver = Some(TlsVersion::Tls12),
                    "force-tlsv12" => {
                        (g.min_ver, g.max_ver) = (Some(TlsVersion::Tls12), Some(TlsVersion::Tls12));
                    }
                    "force-tlsv13" => {
                        (g.min_ver, g.max_ver) = (Some(TlsVersion::Tls13), Some(TlsVersion::Tls13));
                    }
                    other => d.error(
                        no,
                        format!("'{kw}': option '{other}' is not implemented by Shoal (it accepts ssl-min-ver, ssl-max-ver, no-sslv3, no-tlsv10, no-tlsv11, no-tlsv12, no-tlsv13, force-tlsv12, force-tlsv13 and no-tls-tickets)"),
                    ),
                }
            }
        }
        _ => return false,
    }
    true
}

/// A config's `ssl-default-bind-*` lines, word by word, as the printer
/// writes them.
pub(crate) fn print_defaults(g: &SslBindDefaults) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (kw, v) in [
        ("ssl-default-bind-ciphers", &g.ciphers),
        ("ssl-default-bind-ciphersuites", &g.ciphersuites),
        ("ssl-default-bind-curves", &g.curves),
    ] {
        if let Some(v) = v {
            out.push(vec![kw.to_string(), v.join(":")]);
        }
    }
    let mut opts = vec!["ssl-default-bind-options".to_string()];
    for (kw, v) in [("ssl-min-ver", g.min_ver), ("ssl-max-ver", g.max_ver)] {
        if let Some(v) = v {
            opts.extend([kw.to_string(), v.keyword().to_string()]);
        }
    }
    if opts.len() > 1 {
        out.push(opts);
    }
    out
}

/// The words after a `bind` address that say `tls`, as the printer writes them.
pub(crate) fn print_bind(tls: &BindTls) -> Vec<String> {
    let mut out = vec!["ssl".to_string()];
    for crt in &tls.crts {
        out.extend(["crt".into(), crt.clone()]);
    }
    if !tls.alpn.is_empty() {
        out.extend(["alpn".into(), tls.alpn.join(",")]);
    }
    if let Some(v) = tls.min_ver {
        out.extend(["ssl-min-ver".into(), v.keyword().into()]);
    }
    if let Some(v) = tls.max_ver {
        out.extend(["ssl-max-ver".into(), v.keyword().into()]);
    }
    for (kw, v) in [
        ("ciphers", &tls.ciphers),
        ("ciphersuites", &tls.ciphersuites),
        ("curves", &tls.curves),
    ] {
        if let Some(v) = v {
            out.extend([kw.into(), v.join(":")]);
        }
    }
    if tls.strict_sni {
        out.push("strict-sni".into());
    }
    out
}

fn empty() -> BindTls {
    BindTls {
        crts: Vec::new(),
        alpn: Vec::new(),
        min_ver: None,
        max_ver: None,
        ciphers: None,
        ciphersuites: None,
        curves: None,
        strict_sni: false,
        at: SourceLine::default(),
    }
}

/// `ssl-min-ver` / `ssl-max-ver` values.
fn version(d: &mut Diags, no: usize, kw: &str, v: &str) -> Option<TlsVersion> {
    match v {
        "TLSv1.2" => Some(TlsVersion::Tls12),
        "TLSv1.3" => Some(TlsVersion::Tls13),
        "SSLv3" | "TLSv1.0" | "TLSv1.1" => {
            d.error(
                no,
                format!("'{kw} {v}': Shoal's TLS library (rustls) does not offer {v}, only TLSv1.2 and TLSv1.3"),
            );
            None
        }
        _ => {
            d.error(
                no,
                format!("'{kw}' expects SSLv3, TLSv1.0, TLSv1.1, TLSv1.2 or TLSv1.3, got '{v}'"),
            );
            None
        }
    }
}

/// A `:`-separated list of suite names, each one rustls offers.
fn suites(
    d: &mut Diags,
    no: usize,
    kw: &str,
    list: &str,
    known: &[&'static str],
) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for name in list.split(':') {
        if name.starts_with(['!', '-', '+', '@']) || name.contains('+') || name.is_empty() {
            d.error(
                no,
                format!("'{kw}': '{name}' is an OpenSSL cipher-string operator, which Shoal does not implement; list the suites by name (rustls offers {})", known.join(":")),
            );
            return None;
        }
        match known.iter().find(|k| **k == name) {
            Some(k) => out.push((*k).to_string()),
            None => {
                d.error(
                    no,
                    format!("'{kw}': '{name}' is not a suite Shoal's TLS library (rustls) offers; it offers {}", known.join(":")),
                );
                return None;
            }
        }
    }
    Some(out)
}

/// A `:`-separated list of key-exchange groups, canonicalised.
fn groups(d: &mut Diags, no: usize, kw: &str, list: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for name in list.split(':') {
        let found = GROUPS
            .iter()
            .find(|(canon, aliases)| canon.eq_ignore_ascii_case(name) || aliases.contains(&name));
        match found {
            Some((canon, _)) => out.push((*canon).to_string()),
            None => {
                d.error(
                    no,
                    format!("'{kw}': '{name}' is not a group Shoal's TLS library (rustls) offers; it offers X25519, P-256 (prime256v1) and P-384 (secp384r1)"),
                );
                return None;
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests;
