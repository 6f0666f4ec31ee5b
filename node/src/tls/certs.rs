//! Loading `crt` certificates: PEM files holding a chain and its key (or
//! the key beside it in `FILE.key`, as HAProxy looks for it), and
//! directories of them in name order. Each certificate is kept with the
//! names it serves (its DNS subject alternative names and its subject CN),
//! for SNI selection.

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
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
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("'{shown}': not a PEM certificate file: {e}"))?;
    let Some(leaf) = chain.first() else {
        return Err(format!("'{shown}': no certificate in this file"));
    };
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
    let names = names(leaf).map_err(|e| format!("'{shown}': {e}"))?;
    let key = CertifiedKey::from_der(chain, key, provider)
        .map_err(|e| format!("'{shown}': the private key does not fit the certificate: {e}"))?;
    Ok(Loaded {
        key: Arc::new(key),
        names,
    })
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
