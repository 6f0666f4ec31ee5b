//! Choosing a certificate by the client's SNI, as HAProxy does: an exact
//! name first, then a wildcard covering the first label
//! (`*.example.com` serves `a.example.com`, not `example.com` nor
//! `a.b.example.com`), else the first certificate of the `bind` line, or
//! no certificate at all (the handshake fails) with `strict-sni`.
//! Names compare case-insensitively. When two certificates claim one
//! name, the first loaded wins.
//!
//! The cluster's certificates (`shoal cert add`, [`super::store`]) join
//! every bind's choice: for each kind of match, exact then wildcard, a
//! cluster certificate comes before the bind's `crt` files (it is the
//! newer operator intent), so a more specific name still wins over a
//! less specific one whichever side it is on. The default certificate (no
//! SNI, or no name matches) stays the bind's first `crt`.

use super::certs::Loaded;
use super::store::ClusterCerts;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::Arc;

/// Certificates indexed by the names they serve.
#[derive(Debug, Default)]
pub struct Names {
    certs: Vec<Arc<CertifiedKey>>,
    exact: HashMap<String, usize>,
    /// `*.example.com` under `example.com`.
    wildcard: HashMap<String, usize>,
}

impl Names {
    /// Indexes `loaded` in order (the first to claim a name keeps it).
    pub fn new(loaded: Vec<Loaded>) -> Names {
        let mut n = Names {
            certs: Vec::with_capacity(loaded.len()),
            ..Names::default()
        };
        for (i, cert) in loaded.into_iter().enumerate() {
            for name in cert.names {
                match name.strip_prefix("*.") {
                    Some(parent) => n.wildcard.entry(parent.to_string()).or_insert(i),
                    None => n.exact.entry(name).or_insert(i),
                };
            }
            n.certs.push(cert.key);
        }
        n
    }

    /// The certificate named exactly `name` (lowercase).
    pub fn exact(&self, name: &str) -> Option<&Arc<CertifiedKey>> {
        self.exact.get(name).and_then(|&i| self.certs.get(i))
    }

    /// The certificate whose wildcard covers `name` (lowercase).
    pub fn wildcard(&self, name: &str) -> Option<&Arc<CertifiedKey>> {
        let (_, parent) = name.split_once('.')?;
        self.wildcard.get(parent).and_then(|&i| self.certs.get(i))
    }
}

/// The certificates of one `bind` line, and the cluster's.
#[derive(Debug)]
pub struct Resolver {
    files: Names,
    cluster: Arc<ClusterCerts>,
    strict: bool,
}

impl Resolver {
    /// Indexes `loaded` (in `crt` order; never empty) beside `cluster`.
    pub fn new(loaded: Vec<Loaded>, cluster: Arc<ClusterCerts>, strict: bool) -> Resolver {
        Resolver {
            files: Names::new(loaded),
            cluster,
            strict,
        }
    }

    /// The certificate for `sni` (`None`: no SNI). One atomic load of the
    /// cluster's set: a certificate added or removed counts from the next
    /// handshake, with no lock.
    pub fn pick(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = sni {
            let lower;
            let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
                lower = name.to_ascii_lowercase();
                &lower
            } else {
                name
            };
            let cluster = self.cluster.current();
            let found = cluster
                .exact(name)
                .or_else(|| self.files.exact(name))
                .or_else(|| cluster.wildcard(name))
                .or_else(|| self.files.wildcard(name));
            if let Some(cert) = found {
                return Some(cert.clone());
            }
        }
        match self.strict {
            true => None,
            false => self.files.certs.first().cloned(),
        }
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(hello.server_name())
    }
}
