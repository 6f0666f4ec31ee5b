//! The config's suite, group and version names, mapped onto rustls (ring).
//! The parser already refused every name outside this map; a name missing
//! here would be a bug, reported rather than skipped.

use rustls::crypto::{ring, CryptoProvider};
use rustls::{CipherSuite, NamedGroup, SupportedProtocolVersion};
use shoal_proto::config::{BindTls, TlsVersion};

/// OpenSSL and IANA names of the suites rustls offers.
const SUITES: &[(&str, CipherSuite)] = &[
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_AES_128_GCM_SHA256",
        CipherSuite::TLS13_AES_128_GCM_SHA256,
    ),
    (
        "TLS_AES_256_GCM_SHA384",
        CipherSuite::TLS13_AES_256_GCM_SHA384,
    ),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    ),
];

const GROUPS: &[(&str, NamedGroup)] = &[
    ("X25519", NamedGroup::X25519),
    ("P-256", NamedGroup::secp256r1),
    ("P-384", NamedGroup::secp384r1),
];

/// ring's provider, narrowed to the bind's `ciphers`, `ciphersuites` and
/// `curves`, in the order they are listed (the server's preference).
pub fn provider(tls: &BindTls) -> Result<CryptoProvider, String> {
    let mut p = ring::default_provider();
    let all = std::mem::take(&mut p.cipher_suites);
    let (tls13, tls12): (Vec<_>, Vec<_>) = all.into_iter().partition(|s| s.tls13().is_some());
    let pick = |names: &Option<Vec<String>>, from: Vec<rustls::SupportedCipherSuite>| {
        let Some(names) = names else { return Ok(from) };
        names
            .iter()
            .map(|name| {
                let id = SUITES.iter().find(|(n, _)| n == name).map(|(_, id)| *id);
                from.iter()
                    .find(|s| Some(s.suite()) == id)
                    .copied()
                    .ok_or_else(|| format!("cipher suite '{name}' is not available"))
            })
            .collect::<Result<Vec<_>, String>>()
    };
    p.cipher_suites = pick(&tls.ciphersuites, tls13)?;
    p.cipher_suites.extend(pick(&tls.ciphers, tls12)?);
    if let Some(names) = &tls.curves {
        let all = std::mem::take(&mut p.kx_groups);
        for name in names {
            let id = GROUPS.iter().find(|(n, _)| n == name).map(|(_, id)| *id);
            let group = all
                .iter()
                .find(|g| Some(g.name()) == id)
                .ok_or_else(|| format!("key-exchange group '{name}' is not available"))?;
            p.kx_groups.push(*group);
        }
    }
    Ok(p)
}

/// The versions between `ssl-min-ver` and `ssl-max-ver`.
pub fn versions(tls: &BindTls) -> Vec<&'static SupportedProtocolVersion> {
    let min = tls.min_ver.unwrap_or(TlsVersion::Tls12);
    let max = tls.max_ver.unwrap_or(TlsVersion::Tls13);
    [
        (TlsVersion::Tls13, &rustls::version::TLS13),
        (TlsVersion::Tls12, &rustls::version::TLS12),
    ]
    .into_iter()
    .filter(|(v, _)| (min..=max).contains(v))
    .map(|(_, v)| v)
    .collect()
}
