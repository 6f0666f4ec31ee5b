//! Checking uploads (`shoal cert add`) and choosing between a bind's
//! `crt` files and the cluster's certificates.

use super::certs::{load_stored, parse_upload, Loaded};
use super::sni::Resolver;
use super::store::ClusterCerts;
use rustls_pki_types::pem::PemObject as _;
use shoal_proto::state::Certificate;
use std::collections::BTreeMap;

/// A self-signed certificate for `names`: (chain PEM, key PEM).
fn self_signed(names: &[&str]) -> (String, String) {
    let names: Vec<String> = names.iter().map(ToString::to_string).collect();
    let made = rcgen::generate_simple_self_signed(names).expect("a certificate");
    (made.cert.pem(), made.key_pair.serialize_pem())
}

fn upload(names: &[&str]) -> Certificate {
    let (chain, key) = self_signed(names);
    parse_upload(format!("{chain}{key}").as_bytes(), 7).expect("a good upload")
}

fn loaded(names: &[&str]) -> Loaded {
    load_stored(&upload(names), &rustls::crypto::ring::default_provider()).expect("loads")
}

/// The DNS names (comma-separated) of the certificate `resolver` serves
/// for `sni`.
fn pick(resolver: &Resolver, sni: Option<&str>) -> Option<String> {
    let cert = resolver.pick(sni)?;
    let leaf = cert.cert.first().expect("a leaf");
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf).expect("parses");
    let san = parsed
        .subject_alternative_name()
        .ok()
        .flatten()
        .expect("SANs");
    let names: Vec<String> = san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(n) => Some(n.to_string()),
            _ => None,
        })
        .collect();
    Some(names.join(","))
}

#[test]
fn an_upload_keeps_the_chain_and_key_and_says_what_it_serves() {
    let (chain, key) = self_signed(&["a.test", "*.b.test"]);
    let text = format!("junk before\n{key}{chain}");
    let cert = parse_upload(text.as_bytes(), 42).expect("key first is fine too");
    assert_eq!(cert.names[..2], ["a.test", "*.b.test"]);
    assert!(cert.not_before < cert.not_after);
    assert_eq!(cert.added_at, 42);
    assert_eq!(cert.fingerprint.len(), 64);
    // Only certificate blocks in the chain; the key alone in the key.
    assert!(!cert.chain_pem.contains("KEY"), "{}", cert.chain_pem);
    assert!(cert.chain_pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert!(cert.key_pem.expose().contains("PRIVATE KEY"));
    assert!(!cert.key_pem.expose().contains("CERTIFICATE"));
    let der = rustls_pki_types::CertificateDer::from_pem_slice(chain.as_bytes()).expect("der");
    assert_eq!(cert.fingerprint, super::certs::fingerprint(&der));
}

#[test]
fn bad_uploads_say_why_without_quoting_the_key() {
    let (chain, key) = self_signed(&["a.test"]);
    let (_, other_key) = self_signed(&["b.test"]);
    let body = key.lines().nth(1).expect("a key line").to_string();
    let cases = [
        (chain.clone(), "no private key"),
        (key.clone(), "no certificate"),
        (
            format!("{chain}{other_key}"),
            "does not fit the certificate",
        ),
        (format!("{chain}{key}{other_key}"), "2 private keys"),
        (
            "-----BEGIN CERTIFICATE-----\n!!\n".to_string(),
            "not valid PEM",
        ),
        ("hello".to_string(), "no certificate"),
        (
            format!("{chain}-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"),
            "the private key is encrypted",
        ),
    ];
    for (text, why) in cases {
        let err = parse_upload(text.as_bytes(), 1).expect_err(why);
        assert!(err.contains(why), "{why}: {err}");
        assert!(!err.contains(&body), "{err}");
    }
}

#[test]
fn a_more_specific_name_wins_and_the_cluster_wins_a_tie() {
    let files = vec![
        loaded(&["default.test"]),
        loaded(&["same.test"]),
        loaded(&["exact.wild.test"]),
    ];
    let cluster = ClusterCerts::empty();
    let resolver = Resolver::new(files, cluster.clone(), false);
    assert_eq!(
        pick(&resolver, Some("same.test")).as_deref(),
        Some("same.test")
    );

    let mut store = BTreeMap::new();
    store.insert(
        "same".to_string(),
        upload(&["same.test", "cluster-marker.test"]),
    );
    store.insert("wild".to_string(), upload(&["*.wild.test"]));
    cluster.rebuild(|| store.clone());
    // The same resolver sees the new set: no rebuild of the bind.
    let by = |sni| pick(&resolver, Some(sni));
    assert_eq!(
        by("same.test").as_deref(),
        Some("same.test,cluster-marker.test"),
        "the cluster's certificate wins an exact tie"
    );
    assert_eq!(
        by("exact.wild.test").as_deref(),
        Some("exact.wild.test"),
        "file exact beats cluster wildcard"
    );
    assert_eq!(by("other.wild.test").as_deref(), Some("*.wild.test"));
    assert_eq!(
        by("SAME.TEST").as_deref(),
        Some("same.test,cluster-marker.test")
    );
    assert_eq!(by("unknown.test").as_deref(), Some("default.test"));
    assert_eq!(pick(&resolver, None).as_deref(), Some("default.test"));

    // Removed from the store: gone at the next pick.
    cluster.rebuild(BTreeMap::new);
    assert_eq!(by("other.wild.test").as_deref(), Some("default.test"));

    let strict = Resolver::new(vec![loaded(&["default.test"])], cluster.clone(), true);
    cluster.rebuild(|| store.clone());
    assert_eq!(
        pick(&strict, Some("x.wild.test")).as_deref(),
        Some("*.wild.test")
    );
    assert_eq!(pick(&strict, Some("unknown.test")), None);
}
