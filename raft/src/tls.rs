//! Trust between nodes: the cluster CA, node certificates, and the TLS
//! configurations the QUIC transport uses.
//!
//! A cluster has one certificate authority (`shoal cluster ca`). Each node
//! holds a certificate signed by it (`shoal cluster cert`) that names the
//! node by the DNS name `node-<id>.shoal` ([`node_name`]); nothing resolves
//! that name, it only says which node id the certificate speaks for. Both
//! sides of every connection present their certificate: a client checks
//! that the server it reached is the node it meant, and a server checks
//! that the client is the node it claims to be.
//!
//! A node's `--certs DIR` holds three PEM files: `ca.pem` (the CA
//! certificates it trusts; several may be listed while the CA is rotated),
//! `node.pem` (its own certificate) and `node-key.pem` (its private key).

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use shoal_proto::command::NodeId;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The ALPN protocol nodes speak; its version changes when the wire format
/// changes incompatibly (see [`crate::transport`]).
pub const ALPN: &[u8] = b"shoal-raft/1";
/// The CA certificate (in a CA directory and in every node's directory).
pub const CA_CERT: &str = "ca.pem";
/// The CA's private key (only in the CA directory).
pub const CA_KEY: &str = "ca-key.pem";
/// A node's own certificate.
pub const NODE_CERT: &str = "node.pem";
/// A node's private key.
pub const NODE_KEY: &str = "node-key.pem";

/// How long a new CA is valid.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How long a new node certificate is valid.
const NODE_VALIDITY: Duration = Duration::from_secs(5 * 365 * 24 * 3600);
/// Certificates start to be valid a little before they are made, so that a
/// peer whose clock lags slightly accepts them at once.
const BACKDATE: Duration = Duration::from_secs(3600);

/// The name a node's certificate carries: `node-<id>.shoal`.
pub fn node_name(node: NodeId) -> String {
    format!("node-{node}.shoal")
}

/// What went wrong making or loading certificates. Every variant names the
/// file it is about.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: already exists; refusing to overwrite it", path.display())]
    Exists { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {what}", path.display())]
    Invalid { path: PathBuf, what: String },
    #[error("{}: {what} (CA: {})", path.display(), ca.display())]
    Untrusted {
        path: PathBuf,
        ca: PathBuf,
        what: String,
    },
    #[error("{}: this certificate is not node {node}'s: it is not valid for {} (was the node started with another node's --certs?)", path.display(), node_name(*node))]
    WrongNode { path: PathBuf, node: NodeId },
    #[error("{}: the private key does not belong to the certificate {}", key.display(), cert.display())]
    KeyMismatch { key: PathBuf, cert: PathBuf },
    #[error("cannot issue a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot build the TLS configuration: {0}")]
    Config(String),
}

/// A node's loaded TLS identity: QUIC configurations for serving and for
/// connecting to peers.
#[derive(Clone)]
pub struct Tls {
    node: NodeId,
    /// Accepts only clients whose certificate chains to the cluster CA.
    pub server: quinn::ServerConfig,
    /// Trusts only the cluster CA and presents this node's certificate.
    pub client: quinn::ClientConfig,
    /// Like `client`, but accepts any node certificate of the cluster CA:
    /// for a join, where only a member's address is known. The chain is
    /// still verified; only which node it names is not.
    pub any_member: quinn::ClientConfig,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("node", &self.node).finish()
    }
}

impl Tls {
    /// The node id the loaded certificate names.
    pub fn node(&self) -> NodeId {
        self.node
    }
}

/// Create a new cluster CA in `out`: `ca.pem` and `ca-key.pem` (mode 0600).
/// Refuses to replace an existing CA.
pub fn generate_ca(out: &Path) -> Result<(), TlsError> {
    let cert_path = out.join(CA_CERT);
    let key_path = out.join(CA_KEY);
    refuse_existing(&[&cert_path, &key_path])?;
    let key = KeyPair::generate()?;
    let serial = random_serial()?;
    let mut params = CertificateParams::default();
    // A unique name per CA, so that an old and a new CA trusted side by side
    // during a rotation are told apart (in logs and in chain building).
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "Shoal");
    name.push(
        DnType::CommonName,
        format!("Shoal cluster CA {}", hex(&serial[..6])),
    );
    params.distinguished_name = name;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, CA_VALIDITY);
    let cert = params.self_signed(&key)?;
    make_dir(out)?;
    write_new(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_new(&cert_path, cert.pem().as_bytes(), 0o644)?;
    Ok(())
}

/// Issue node `node`'s certificate from the CA in `ca_dir` into `out`:
/// `node.pem`, `node-key.pem` (mode 0600) and a copy of `ca.pem`, so that
/// `out` alone is the node's `--certs` directory. The certificate names
/// [`node_name`]`(node)` and serves for both server and client
/// authentication. Refuses to replace an existing certificate or key.
pub fn generate_node_cert(ca_dir: &Path, node: NodeId, out: &Path) -> Result<(), TlsError> {
    let ca_path = ca_dir.join(CA_CERT);
    let ca_key_path = ca_dir.join(CA_KEY);
    let ca_pem = read_string(&ca_path)?;
    let ca_key = KeyPair::from_pem(&read_string(&ca_key_path)?).map_err(|e| TlsError::Invalid {
        path: ca_key_path.clone(),
        what: format!("not a usable private key: {e}"),
    })?;
    let issuer = CertificateParams::from_ca_cert_pem(&ca_pem)
        .map_err(|e| TlsError::Invalid {
            path: ca_path.clone(),
            what: format!("not a usable CA certificate: {e}"),
        })?
        .self_signed(&ca_key)?;

    let cert_path = out.join(NODE_CERT);
    let key_path = out.join(NODE_KEY);
    let out_ca = out.join(CA_CERT);
    refuse_existing(&[&cert_path, &key_path])?;
    if out_ca.exists() && read_string(&out_ca)? != ca_pem {
        return Err(TlsError::Invalid {
            path: out_ca,
            what: format!("holds another CA than {}", ca_path.display()),
        });
    }

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec![node_name(node)])?;
    params
        .distinguished_name
        .push(DnType::CommonName, node_name(node));
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, NODE_VALIDITY);
    let cert = params.signed_by(&key, &issuer, &ca_key)?;

    // The CA key must be the one of the CA certificate; otherwise the new
    // certificate would not chain and the node would fail only at start.
    let roots = parse_certs(&ca_path, ca_pem.as_bytes())?;
    check_identity(&[cert.der().clone()], &roots, node, &cert_path, &ca_path).map_err(|_| {
        TlsError::KeyMismatch {
            key: ca_key_path,
            cert: ca_path.clone(),
        }
    })?;

    make_dir(out)?;
    write_new(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_new(&cert_path, cert.pem().as_bytes(), 0o644)?;
    if !out_ca.exists() {
        write_new(&out_ca, ca_pem.as_bytes(), 0o644)?;
    }
    Ok(())
}

/// Load node `node`'s identity from `certs` (`ca.pem`, `node.pem`,
/// `node-key.pem`). Checks that `node.pem` chains to a CA in `ca.pem`, is
/// valid now, names `node` and matches the key, so that a misconfigured
/// node fails at start instead of at its first connection.
pub fn load(certs: &Path, node: NodeId) -> Result<Tls, TlsError> {
    let ca_path = certs.join(CA_CERT);
    let cert_path = certs.join(NODE_CERT);
    let key_path = certs.join(NODE_KEY);
    let roots = parse_certs(&ca_path, &read_bytes(&ca_path)?)?;
    let chain = parse_certs(&cert_path, &read_bytes(&cert_path)?)?;
    let key =
        PrivateKeyDer::from_pem_slice(&read_bytes(&key_path)?).map_err(|e| TlsError::Invalid {
            path: key_path.clone(),
            what: format!("no usable private key: {e}"),
        })?;
    check_identity(&chain, &roots, node, &cert_path, &ca_path)?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let signing_key = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| TlsError::Invalid {
            path: key_path.clone(),
            what: format!("unsupported private key: {e}"),
        })?;
    rustls::sign::CertifiedKey::new(chain.clone(), signing_key)
        .keys_match()
        .map_err(|_| TlsError::KeyMismatch {
            key: key_path.clone(),
            cert: cert_path.clone(),
        })?;

    let mut store = RootCertStore::empty();
    for root in &roots {
        store.add(root.clone()).map_err(|e| TlsError::Invalid {
            path: ca_path.clone(),
            what: format!("not a usable CA certificate: {e}"),
        })?;
    }
    let store = Arc::new(store);
    let server = server_config(
        provider.clone(),
        store.clone(),
        chain.clone(),
        key.clone_key(),
    )?;
    let client = client_config(
        provider.clone(),
        store.clone(),
        chain.clone(),
        key.clone_key(),
        false,
    )?;
    let any_member = client_config(provider, store, chain, key, true)?;
    Ok(Tls {
        node,
        server,
        client,
        any_member,
    })
}

/// TLS 1.3 only (QUIC requires it), client certificates required and
/// verified against the CA.
fn server_config(
    provider: Arc<CryptoProvider>,
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<quinn::ServerConfig, TlsError> {
    let config_err = |e: &dyn std::fmt::Display| TlsError::Config(e.to_string());
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| config_err(&e))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| config_err(&e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| config_err(&e))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic =
        quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| config_err(&e))?;
    Ok(quinn::ServerConfig::with_crypto(Arc::new(quic)))
}

/// The CA as the only root; this node's certificate as client certificate.
/// `any_member`: accept a server certificate of the CA whatever node it
/// names (see [`AnyMember`]).
fn client_config(
    provider: Arc<CryptoProvider>,
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    any_member: bool,
) -> Result<quinn::ClientConfig, TlsError> {
    let config_err = |e: &dyn std::fmt::Display| TlsError::Config(e.to_string());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| config_err(&e))?;
    let builder = if any_member {
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|e| config_err(&e))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyMember(inner)))
    } else {
        builder.with_root_certificates(roots)
    };
    let mut tls = builder
        .with_client_auth_cert(chain, key)
        .map_err(|e| config_err(&e))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic =
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| config_err(&e))?;
    Ok(quinn::ClientConfig::new(Arc::new(quic)))
}

/// The server name a join dials: no node has it, so only [`AnyMember`]
/// accepts the answer.
pub const ANY_MEMBER: &str = "member.shoal";

/// Verifies a server's chain against the cluster CA like rustls does, but
/// accepts whichever node the certificate names: a joining node knows a
/// member's address, not its id. Everything else (chain, validity, usage,
/// signatures) is checked by the wrapped webpki verifier.
#[derive(Debug)]
struct AnyMember(Arc<rustls::client::WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for AnyMember {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls_pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use rustls::{CertificateError, Error};
        // webpki checks the chain before the name, so a name mismatch here
        // means the chain to the CA is good.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Whether `cert` (already verified against the CA by rustls) is valid for
/// node `node`'s name.
pub fn names_node(cert: &CertificateDer<'_>, node: NodeId) -> bool {
    let Ok(name) = ServerName::try_from(node_name(node)) else {
        return false;
    };
    webpki::EndEntityCert::try_from(cert)
        .and_then(|ee| ee.verify_is_valid_for_subject_name(&name))
        .is_ok()
}

/// Check that `chain[0]` is valid now, chains to one of `roots` for both
/// server and client use, and names `node`.
fn check_identity(
    chain: &[CertificateDer<'static>],
    roots: &[CertificateDer<'static>],
    node: NodeId,
    cert_path: &Path,
    ca_path: &Path,
) -> Result<(), TlsError> {
    let invalid = |path: &Path, what: String| TlsError::Invalid {
        path: path.to_path_buf(),
        what,
    };
    let anchors = roots
        .iter()
        .map(webpki::anchor_from_trusted_cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(ca_path, format!("not a usable CA certificate: {e}")))?;
    let ee = webpki::EndEntityCert::try_from(&chain[0])
        .map_err(|e| invalid(cert_path, format!("not a usable certificate: {e}")))?;
    let now = UnixTime::now();
    for usage in [
        webpki::KeyUsage::server_auth(),
        webpki::KeyUsage::client_auth(),
    ] {
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &chain[1..],
            now,
            usage,
            None,
            None,
        )
        .map_err(|e| TlsError::Untrusted {
            path: cert_path.to_path_buf(),
            ca: ca_path.to_path_buf(),
            what: untrusted_reason(&e),
        })?;
    }
    if !names_node(&chain[0], node) {
        return Err(TlsError::WrongNode {
            path: cert_path.to_path_buf(),
            node,
        });
    }
    Ok(())
}

/// webpki's error names, said for an operator.
fn untrusted_reason(e: &webpki::Error) -> String {
    match e {
        webpki::Error::UnknownIssuer => "not issued by the cluster CA".to_string(),
        webpki::Error::CertExpired { .. } => "the certificate has expired".to_string(),
        webpki::Error::CertNotValidYet { .. } => {
            "the certificate is not valid yet (check the clock)".to_string()
        }
        webpki::Error::RequiredEkuNotFoundContext(_) => {
            "the certificate is not allowed for both server and client authentication".to_string()
        }
        other => format!("the certificate does not verify: {other}"),
    }
}

fn parse_certs(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Invalid {
            path: path.to_path_buf(),
            what: format!("not a PEM certificate file: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Invalid {
            path: path.to_path_buf(),
            what: "no certificate in it".to_string(),
        });
    }
    Ok(certs)
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn read_string(path: &Path) -> Result<String, TlsError> {
    fs::read_to_string(path).map_err(|source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn refuse_existing(paths: &[&Path]) -> Result<(), TlsError> {
    match paths.iter().find(|p| p.exists()) {
        Some(path) => Err(TlsError::Exists {
            path: path.to_path_buf(),
        }),
        None => Ok(()),
    }
}

/// Create `dir` (and parents) if missing; a new directory is private (0700).
fn make_dir(dir: &Path) -> Result<(), TlsError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| TlsError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

/// Write a file that must not exist yet, created with `mode` (so a key is
/// never readable by others, not even for a moment).
fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    let io = |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => TlsError::Exists {
                path: path.to_path_buf(),
            },
            _ => io(e),
        })?;
    file.write_all(contents).map_err(io)?;
    file.sync_all().map_err(io)
}

fn set_validity(params: &mut CertificateParams, valid_for: Duration) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + valid_for;
}

/// A random positive 16-byte serial number.
fn random_serial() -> Result<[u8; 16], TlsError> {
    let mut serial = [0u8; 16];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut serial)
        .map_err(|_| TlsError::Config("no secure random source".to_string()))?;
    serial[0] &= 0x7f;
    serial[0] |= 0x01;
    Ok(serial)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
