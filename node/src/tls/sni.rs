//! Choosing a certificate by the client's SNI, as HAProxy does: an exact
//! name first, then a wildcard covering the first label
//! (`*.example.com` serves `a.example.com`, not `example.com` nor
//! `a.b.example.com`), else the first certificate of the `bind` line, or
//! no certificate at all (the handshake fails) with `strict-sni`.
//! Names compare case-insensitively. When two certificates claim one
//! name, the first loaded wins.

use super::certs::Loaded;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::Arc;

/// The certificates of one `bind` line, by name.
#[derive(Debug)]
pub struct Resolver {
    certs: Vec<Arc<CertifiedKey>>,
    exact: HashMap<String, usize>,
    /// `*.example.com` under `example.com`.
    wildcard: HashMap<String, usize>,
    strict: bool,
}

impl Resolver {
    /// Indexes `loaded` (in `crt` order; never empty).
    pub fn new(loaded: Vec<Loaded>, strict: bool) -> Resolver {
        let mut r = Resolver {
            certs: Vec::with_capacity(loaded.len()),
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            strict,
        };
        for (i, cert) in loaded.into_iter().enumerate() {
            for name in cert.names {
                match name.strip_prefix("*.") {
                    Some(parent) => r.wildcard.entry(parent.to_string()).or_insert(i),
                    None => r.exact.entry(name).or_insert(i),
                };
            }
            r.certs.push(cert.key);
        }
        r
    }

    /// The certificate for `sni` (`None`: no SNI).
    pub fn pick(&self, sni: Option<&str>) -> Option<&Arc<CertifiedKey>> {
        let found = sni.and_then(|name| {
            let lower;
            let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
                lower = name.to_ascii_lowercase();
                &lower
            } else {
                name
            };
            self.exact.get(name).or_else(|| {
                let (_, parent) = name.split_once('.')?;
                self.wildcard.get(parent)
            })
        });
        match found {
            Some(&i) => self.certs.get(i),
            None if self.strict => None,
            None => self.certs.first(),
        }
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(hello.server_name()).cloned()
    }
}
