//! TLS towards servers (`server ... ssl [verify none|required] [ca-file F]
//! [sni EXPR] [alpn LIST]`).
//!
//! The engines speak to a server socket, so, as on the client side, a
//! [`bridge`](super::bridge) socket pair carries the plaintext: a task
//! copies between the TLS session and one end, the engine gets the other
//! (pooled and reused like any server connection).
//!
//! Verification follows HAProxy: `verify required` (the default) checks
//! the chain against `ca-file`, and the name against the SNI sent when
//! there is one; with no SNI (no `sni`, or an expression that yields
//! nothing) only the chain is checked (as HAProxy without `verifyhost`).
//! `verify none` checks nothing but the handshake's own signatures.
//!
//! A constant `sni str(NAME)` is resolved once, here. Any other
//! expression is evaluated by the caller for each new connection (see
//! [`super::SniSource`]) and its value handed to [`Upstream::connect`].

use super::bridge;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use shoal_proto::config::{ServerTls, SniExpr};
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// How to open TLS to one server.
pub struct Upstream {
    /// Sends SNI; with `verify required` the certificate must match it.
    named: Option<TlsConnector>,
    /// Sends no SNI; with `verify required` only the chain is checked.
    unnamed: Option<TlsConnector>,
    /// The name rustls is given when no SNI is sent (it sends none for an
    /// address, and [`ChainOnly`] ignores the name check).
    ip: IpAddr,
    sni: Sni,
}

/// The `sni` of a server line, as a connection needs it.
#[derive(Debug)]
enum Sni {
    /// No `sni`, or a constant one: the name sent, if any.
    Fixed(Option<ServerName<'static>>),
    /// Evaluated for each new connection.
    PerConnection(SniExpr),
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Upstream({:?})", self.sni)
    }
}

impl Upstream {
    /// Reads `ca-file` and builds the client configuration for a server at
    /// `ip`. The error starts with the server line's `FILE:LINE`.
    pub fn new(tls: &ServerTls, ip: IpAddr) -> Result<Upstream, String> {
        let at = &tls.at.0;
        let sni = match &tls.sni {
            None => Sni::Fixed(None),
            Some(expr) => match expr.fixed() {
                None => Sni::PerConnection(expr.clone()),
                Some(None) => Sni::Fixed(None),
                Some(Some(name)) => Sni::Fixed(Some(
                    ServerName::try_from(name).map_err(|e| format!("{at}: 'sni {expr}': {e}"))?,
                )),
            },
        };
        let (needs_named, needs_unnamed) = match &sni {
            Sni::Fixed(name) => (name.is_some(), name.is_none()),
            Sni::PerConnection(_) => (true, true),
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let webpki = match tls.verify_none {
            true => None,
            false => Some(webpki(tls, &provider)?),
        };
        let verifier = |named: bool| -> Arc<dyn ServerCertVerifier> {
            match &webpki {
                None => Arc::new(Unchecked(provider.clone())),
                Some(webpki) if named => webpki.clone(),
                Some(webpki) => Arc::new(ChainOnly(webpki.clone())),
            }
        };
        let connector = |named: bool| -> Result<TlsConnector, String> {
            let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("{at}: {e}"))?
                .dangerous()
                .with_custom_certificate_verifier(verifier(named))
                .with_no_client_auth();
            config.alpn_protocols = tls.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
            config.enable_sni = named;
            Ok(TlsConnector::from(Arc::new(config)))
        };
        Ok(Upstream {
            named: needs_named.then(|| connector(true)).transpose()?,
            unnamed: needs_unnamed.then(|| connector(false)).transpose()?,
            ip,
            sni,
        })
    }

    /// The `sni` expression to evaluate for each new connection, if the
    /// server has one that is not a constant.
    pub fn per_connection_sni(&self) -> Option<&SniExpr> {
        match &self.sni {
            Sni::PerConnection(expr) => Some(expr),
            Sni::Fixed(_) => None,
        }
    }

    /// The TLS handshake on a connected socket; the plaintext end of a
    /// bridge is returned for the engine. `sni` is the value of a
    /// per-connection expression (ignored for a constant one).
    pub async fn connect(&self, tcp: TcpStream, sni: Option<&str>) -> io::Result<TcpStream> {
        let tls = self.handshake(tcp, sni).await?;
        bridge_to(tls)
    }

    /// The TLS handshake alone (HTTP/2 speaks on the session itself).
    pub async fn handshake(
        &self,
        tcp: TcpStream,
        sni: Option<&str>,
    ) -> io::Result<TlsStream<TcpStream>> {
        let (connector, name) = self.name_for(sni)?;
        connector.connect(name, tcp).await
    }

    /// Whether `sni`, the value of a per-connection `sni` expression, can
    /// be used for a handshake: empty (no SNI is sent) or a server name.
    pub fn sendable(sni: &str) -> bool {
        sni.is_empty() || ServerName::try_from(sni).is_ok()
    }

    /// The connector and the name for a handshake sending `sni`.
    fn name_for(&self, sni: Option<&str>) -> io::Result<(&TlsConnector, ServerName<'static>)> {
        let name = match &self.sni {
            Sni::Fixed(name) => name.clone(),
            Sni::PerConnection(_) => match sni.filter(|s| !s.is_empty()) {
                None => None,
                Some(value) => match ServerName::try_from(value) {
                    Ok(name) => Some(name.to_owned()),
                    // A value that cannot be a server name (a Host with a
                    // port, a space...) is never sent, and no connection
                    // is made: HAProxy sends it as it is, which a server
                    // refuses or cannot match, and fails; sending no SNI
                    // instead would skip the name check under `verify
                    // required`.
                    Err(_) => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidInput,
                            format!("sni value {value:?} is not a valid server name"),
                        ))
                    }
                },
            },
        };
        let (connector, name) = match name {
            Some(name) => (&self.named, name),
            None => (&self.unnamed, ServerName::IpAddress(self.ip.into())),
        };
        let connector = connector
            .as_ref()
            .ok_or_else(|| io::Error::other("no TLS configuration for this server name"))?;
        Ok((connector, name))
    }
}

/// The `verify required` verifier: the chain against `ca-file`, and the
/// name.
fn webpki(
    tls: &ServerTls,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, String> {
    let at = &tls.at.0;
    let Some(ca_file) = &tls.ca_file else {
        return Err(format!("{at}: 'verify required' needs a 'ca-file'"));
    };
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca_file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{at}: cannot load ca-file '{ca_file}': {e}"))?;
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("{at}: cannot load ca-file '{ca_file}': {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "{at}: cannot load ca-file '{ca_file}': no certificate in it"
        ));
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("{at}: ca-file '{ca_file}': {e}"))
}

/// Hands an established TLS session to the engine: the plaintext end of
/// a bridge.
pub fn bridge_to(mut tls: TlsStream<TcpStream>) -> io::Result<TcpStream> {
    let (theirs, mut ours) = bridge::pair()?;
    tokio::spawn(async move {
        let _ = tokio::io::copy_bidirectional(&mut tls, &mut ours).await;
    });
    Ok(theirs)
}

impl Upstream {
    /// The protocol the server chose by ALPN on `tls`, if any.
    pub fn chosen(tls: &TlsStream<TcpStream>) -> Option<&[u8]> {
        tls.get_ref().1.alpn_protocol()
    }
}

/// `verify required` without `sni`: the chain is checked, not the name.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, name, ocsp, now)
        {
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `verify none`: any certificate; the handshake's signatures are still
/// checked (they bind the session to the certificate sent).
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
