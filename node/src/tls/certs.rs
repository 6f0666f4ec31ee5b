//! Loading `crt` certificates: PEM files holding a chain and its key (or
//! the key beside it in `FILE.key`, as HAProxy looks for it), and
//! directories of them in name order. Each certificate is kept with the
//! names it serves (its DNS subject alternative names and its subject CN),
//! for SNI selection. Also the PEM checks of `shoal cert add` uploads
//! and the loading of the cluster's stored certificates.

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use shoal_proto::command::Millis;
use shoal_proto::state::{Certificate, Secret};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A certificate ready to serve, and the names it serves.
pub struct Loaded {
    pub key: Arc<CertifiedKey>,
    /// Lowercase DNS names, wildcards (`*.example.com`) included.
    pub names: Vec<String>,
}

/// Files in a `crt` directory that HAProxy reads as companions of a
/// certificate, not as certificates.
const COMPANIONS: &[&str] = &["key", "ocsp", "issuer", "sctl"];

/// Loads a `crt` argument: a PEM file, or every PEM file of a directory in
/// name order (companion files, hidden files and subdirectories skipped).
/// The error names the file and says why.
pub fn load(path: &str, provider: &CryptoProvider) -> Result<Vec<Loaded>, String> {
    let path = Path::new(path);
    let meta = std::fs::metadata(path).map_err(|e| format!("'{}': {e}", path.display()))?;
    if !meta.is_dir() {
        return Ok(vec![load_file(path, provider)?]);
    }
    let mut files = Vec::new();
    let dir = std::fs::read_dir(path).map_err(|e| format!("'{}': {e}", path.display()))?;
    for entry in dir {
        let entry = entry.map_err(|e| format!("'{}': {e}", path.display()))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let companion = name
            .rsplit_once('.')
            .is_some_and(|(_, ext)| COMPANIONS.contains(&ext));
        if name.starts_with('.') || companion || entry.path().is_dir() {
            continue;
        }
        files.push(entry.path());
    }
    files.sort();
    if files.is_empty() {
        return Err(format!(
            "'{}': no certificate in this directory",
            path.display()
        ));
    }
    files.iter().map(|f| load_file(f, provider)).collect()
}

fn load_file(path: &Path, provider: &CryptoProvider) -> Result<Loaded, String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("'{shown}': {e}"))?;
    let chain = chain(&bytes).map_err(|e| format!("'{shown}': {e}"))?;
    let key = match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => key,
        Err(rustls_pki_types::pem::Error::NoItemsFound) => {
            // HAProxy's default `ssl-load-extra-files`: the key beside it.
            let mut key_path = path.as_os_str().to_owned();
            key_path.push(".key");
            let key_path = PathBuf::from(key_path);
            PrivateKeyDer::from_pem_file(&key_path).map_err(|e| {
                format!(
                    "'{shown}': no private key in this file, nor in '{}': {e}",
                    key_path.display()
                )
            })?
        }
        Err(e) => return Err(format!("'{shown}': cannot read its private key: {e}")),
    };
    certified(chain, key, provider).map_err(|e| format!("'{shown}': {e}"))
}

/// The `CERTIFICATE` blocks of a PEM text, leaf first (at least one).
fn chain(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate file: {e}"))?;
    if chain.is_empty() {
        return Err("no certificate in this file".into());
    }
    Ok(chain)
}

/// A chain and its key, checked to fit each other, with the names the
/// leaf serves.
fn certified(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    provider: &CryptoProvider,
) -> Result<Loaded, String> {
    let leaf = chain.first().ok_or("no certificate")?;
    let names = names(leaf)?;
    let key = CertifiedKey::from_der(chain, key, provider)
        .map_err(|e| format!("the private key does not fit the certificate: {e}"))?;
    Ok(Loaded {
        key: Arc::new(key),
        names,
    })
}

/// Loads a certificate of the cluster's store (checked when it was added;
/// checked again, since this node's crypto may differ).
pub fn load_stored(cert: &Certificate, provider: &CryptoProvider) -> Result<Loaded, String> {
    let chain = chain(cert.chain_pem.as_bytes())?;
    // Never print the parser's error: it could quote the key.
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.expose().as_bytes())
        .map_err(|_| "its private key does not parse".to_string())?;
    certified(chain, key, provider)
}

/// Checks a PEM text an operator uploads (`shoal cert add FILE`): one or
/// more `CERTIFICATE` blocks (leaf first) and exactly one private key that
/// fits the leaf. Returns what the store keeps, the PEM blocks rewritten
/// (nothing else of the text is kept, so a stray key never lands in the
/// chain), stamped `at`. Errors never quote the text.
pub fn parse_upload(pem: &[u8], at: Millis) -> Result<Certificate, String> {
    use rustls_pki_types::pem::SectionKind;
    let mut chain_pem = String::new();
    let mut chain_der = Vec::new();
    let mut keys = Vec::new();
    for section in rustls_pki_types::pem::PemObject::pem_slice_iter(pem) {
        let (kind, der): (SectionKind, Vec<u8>) =
            section.map_err(|_| "the text is not valid PEM".to_string())?;
        match kind {
            SectionKind::Certificate => {
                chain_pem.push_str(&encode_pem("CERTIFICATE", &der));
                chain_der.push(CertificateDer::from(der));
            }
            SectionKind::PrivateKey => keys.push(("PRIVATE KEY", der)),
            SectionKind::RsaPrivateKey => keys.push(("RSA PRIVATE KEY", der)),
            SectionKind::EcPrivateKey => keys.push(("EC PRIVATE KEY", der)),
            // Parameters and CRLs serve no purpose here.
            _ => {}
        }
    }
    if chain_der.is_empty() {
        return Err("no certificate (PEM 'CERTIFICATE' block) in the text".into());
    }
    // rustls skips blocks it does not know: say why such a key is missing.
    let encrypted = b"-----BEGIN ENCRYPTED PRIVATE KEY-----";
    if keys.is_empty() && pem.windows(encrypted.len()).any(|w| w == encrypted) {
        return Err("the private key is encrypted: store it decrypted \
                    (openssl pkey -in KEY -out PLAIN.key)"
            .into());
    }
    let (label, key_der) = match keys.len() {
        0 => {
            return Err("no private key in the text: give the chain and its key in one PEM".into())
        }
        1 => keys.remove(0),
        n => return Err(format!("{n} private keys in the text: give exactly one")),
    };
    let key = match label {
        "PRIVATE KEY" => PrivateKeyDer::Pkcs8(key_der.clone().into()),
        "RSA PRIVATE KEY" => PrivateKeyDer::Pkcs1(key_der.clone().into()),
        _ => PrivateKeyDer::Sec1(key_der.clone().into()),
    };
    let provider = rustls::crypto::ring::default_provider();
    let leaf = chain_der[0].clone();
    let loaded = certified(chain_der, key, &provider)?;
    let (_, parsed) = x509_parser::parse_x509_certificate(&leaf)
        .map_err(|e| format!("cannot parse the certificate: {e}"))?;
    let validity = parsed.validity();
    Ok(Certificate {
        chain_pem,
        key_pem: Secret::new(encode_pem(label, &key_der)),
        names: loaded.names,
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
        fingerprint: fingerprint(&leaf),
        added_at: at,
    })
}

/// SHA-256 of a DER certificate, lowercase hex.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// One PEM block: `label`, base64 in 64-column lines.
fn encode_pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The DNS names a certificate serves: its subject alternative names and
/// its subject CN (HAProxy matches SNI against both).
fn names(leaf: &CertificateDer<'_>) -> Result<Vec<String>, String> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| format!("cannot parse the certificate: {e}"))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                names.push(dns.to_ascii_lowercase());
            }
        }
    }
    for cn in cert.subject().iter_common_name() {
        if let Ok(cn) = cn.as_str() {
            let cn = cn.to_ascii_lowercase();
            if !names.contains(&cn) {
                names.push(cn);
            }
        }
    }
    Ok(names)
}
