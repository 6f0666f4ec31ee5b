//! TLS towards servers (`server ... ssl [verify none|required] [ca-file F]
//! [sni str(NAME)] [alpn LIST]`).
//!
//! The engines speak to a server socket, so, as on the client side, a
//! [`bridge`](super::bridge) socket pair carries the plaintext: a task
//! copies between the TLS session and one end, the engine gets the other
//! (pooled and reused like any server connection).
//!
//! Verification follows HAProxy: `verify required` (the default) checks
//! the chain against `ca-file`, and the name against `sni` when one is
//! set; without `sni` no SNI is sent and only the chain is checked (as
//! HAProxy without `verifyhost`). `verify none` checks nothing but the
//! handshake's own signatures.

use super::bridge;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use shoal_proto::config::ServerTls;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// How to open TLS to one server.
pub struct Upstream {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Upstream({:?})", self.name)
    }
}

impl Upstream {
    /// Reads `ca-file` and builds the client configuration for a server at
    /// `ip`. The error starts with the server line's `FILE:LINE`.
    pub fn new(tls: &ServerTls, ip: IpAddr) -> Result<Upstream, String> {
        let at = &tls.at.0;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = if tls.verify_none {
            Arc::new(Unchecked(provider.clone()))
        } else {
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
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| format!("{at}: ca-file '{ca_file}': {e}"))?;
            if tls.sni.is_some() {
                webpki
            } else {
                Arc::new(ChainOnly(webpki))
            }
        };
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("{at}: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        config.alpn_protocols = tls.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        let name = match &tls.sni {
            Some(sni) => ServerName::try_from(sni.clone())
                .map_err(|e| format!("{at}: 'sni str({sni})': {e}"))?,
            None => {
                config.enable_sni = false;
                ServerName::IpAddress(ip.into())
            }
        };
        Ok(Upstream {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            name,
        })
    }

    /// The TLS handshake on a connected socket; the plaintext end of a
    /// bridge is returned for the engine.
    pub async fn connect(&self, tcp: TcpStream) -> io::Result<TcpStream> {
        let tls = self.handshake(tcp).await?;
        bridge_to(tls)
    }

    /// The TLS handshake alone (HTTP/2 speaks on the session itself).
    pub async fn handshake(&self, tcp: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        self.connector.connect(self.name.clone(), tcp).await
    }
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
