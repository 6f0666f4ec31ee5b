//! The cluster's certificate store: TLS certificates with their private
//! keys, added with `shoal cert add` through any node and served by every
//! `bind ... ssl` of every node (matched by SNI).
//!
//! The PEM text is parsed and checked (chain, key, key fits the leaf) on
//! the node that builds the command, which also extracts what the store
//! shows (names, validity, fingerprint): apply only stores what arrived, so
//! it stays pure. Private keys are [`Secret`]s: their `Debug` is
//! `<redacted>`, so no log line that prints a command or a state shows one.

use crate::command::Millis;
use serde::{Deserialize, Serialize};

/// Most certificates the store holds.
pub const MAX_CERTIFICATES: usize = 1000;
/// Longest certificate name, in bytes.
pub const MAX_CERT_NAME: usize = 128;
/// Largest PEM chain of one certificate, in bytes.
pub const MAX_CHAIN_PEM: usize = 256 * 1024;
/// Largest PEM private key, in bytes (an RSA-16384 key is about 13 KiB).
pub const MAX_KEY_PEM: usize = 32 * 1024;
/// Most PEM bytes (chains and keys) the whole store holds, so that the
/// state stays far below what a snapshot may carry.
pub const MAX_STORE_BYTES: usize = 16 * 1024 * 1024;
/// Most DNS names one certificate may serve.
pub const MAX_CERT_NAMES: usize = 1000;

/// Text that must never be shown: its `Debug` prints `<redacted>`. It
/// serialises as the plain string (the Raft log and snapshots hold it).
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret text.
    pub fn new(text: String) -> Secret {
        Secret(text)
    }

    /// The secret itself: only for the code that loads the key.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One stored certificate, as checked by the node that added it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// The chain, leaf first, as PEM `CERTIFICATE` blocks.
    pub chain_pem: String,
    /// The leaf's private key, PEM.
    pub key_pem: Secret,
    /// The DNS names it serves (SANs and subject CN), lowercase.
    pub names: Vec<String>,
    /// Validity of the leaf, seconds since the Unix epoch.
    pub not_before: i64,
    pub not_after: i64,
    /// SHA-256 of the leaf's DER, lowercase hex.
    pub fingerprint: String,
    /// When it was added (the command's time).
    pub added_at: Millis,
}

/// Why a certificate name is refused, or `None` when it is a good one:
/// 1 to [`MAX_CERT_NAME`] bytes of letters, digits, `.`, `_` and `-`, not
/// starting with `.` (it goes into URIs, metrics labels and file names).
pub fn bad_name(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > MAX_CERT_NAME {
        return Some(format!(
            "a certificate name has 1 to {MAX_CERT_NAME} characters"
        ));
    }
    let good = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if !name.chars().all(good) || name.starts_with('.') {
        return Some(format!(
            "certificate name '{}': use letters, digits, '.', '_' and '-' (not first '.')",
            name.escape_default()
        ));
    }
    None
}

/// Why a certificate cannot be stored, or `None`: the size limits (the
/// contents were checked by the node that built the command).
pub fn bad_certificate(cert: &Certificate) -> Option<String> {
    if cert.chain_pem.len() > MAX_CHAIN_PEM {
        return Some(format!(
            "the certificate chain is {} bytes (at most {MAX_CHAIN_PEM})",
            cert.chain_pem.len()
        ));
    }
    if cert.key_pem.expose().len() > MAX_KEY_PEM {
        return Some(format!(
            "the private key is {} bytes (at most {MAX_KEY_PEM})",
            cert.key_pem.expose().len()
        ));
    }
    if cert.names.len() > MAX_CERT_NAMES {
        return Some(format!(
            "the certificate serves {} names (at most {MAX_CERT_NAMES})",
            cert.names.len()
        ));
    }
    if cert.chain_pem.is_empty() || cert.key_pem.expose().is_empty() {
        return Some("a certificate needs its chain and its private key".into());
    }
    None
}

impl Certificate {
    /// Its PEM bytes, as counted against [`MAX_STORE_BYTES`].
    pub fn pem_bytes(&self) -> usize {
        self.chain_pem.len() + self.key_pem.expose().len()
    }
}
