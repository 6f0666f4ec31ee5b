//! TLS termination on `bind ... ssl crt ...` listeners (rustls).
//!
//! Each TLS `bind` line gets one [`Acceptor`], built with the routing
//! snapshot (so a reload re-reads its certificates) and looked up by the
//! accept loop. The handshake runs in the connection's own task, under the
//! frontend's `timeout client`. What follows it depends on the protocol
//! the client chose by ALPN:
//!
//! - `h2` on an HTTP frontend: [`h2`] serves HTTP/2 and hands each request
//!   to the HTTP/1.1 engine;
//! - anything else: [`bridge`] hands the decrypted stream to the HTTP/1.1
//!   engine or to the TCP proxy, as for a plain connection.
//!
//! Modules: [`certs`] loads `crt` files, [`store`] holds the cluster's
//! certificates (`shoal cert add`), [`sni`] picks a certificate by SNI,
//! [`suites`] maps the config's suite and group names onto rustls,
//! [`upstream`] opens TLS towards `server ... ssl` (with [`sni_expr`]
//! evaluating its `sni`), [`upstream_h2`] speaks
//! HTTP/2 towards `server ... proto h2` (or `ssl alpn h2`).

mod bridge;
mod certs;
mod h2;
mod sni;
mod sni_expr;
mod store;
mod suites;
#[cfg(test)]
mod tests;
mod upstream;
mod upstream_h2;

pub use bridge::Engine;
pub use certs::parse_upload;
use rustls::ServerConfig;
use shoal_proto::config::{BindTls, Config, Mode};
pub use sni_expr::{RequestHeaders, SniSource};
use std::sync::Arc;
use std::time::Duration;
pub use store::ClusterCerts;
use tokio::net::TcpStream;
pub use upstream::Upstream;
pub use upstream_h2::H2Upstream;

/// The ALPN name of HTTP/2.
const H2: &[u8] = b"h2";

/// Bounds a handshake when the frontend sets no `timeout client`.
const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the request path may know of a client's TLS session (`ssl_fc`,
/// `ssl_fc_sni`).
#[derive(Debug, Default)]
pub struct Session {
    /// The server name the client asked for, lowercase.
    pub sni: Option<Box<str>>,
}

/// The TLS side of one `bind` line.
pub struct Acceptor {
    acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Acceptor")
    }
}

impl Acceptor {
    /// Loads the certificates and builds the rustls configuration of a
    /// `bind ... ssl` line, which also serves the certificates in
    /// `cluster` as they are at each handshake. The error starts with the
    /// line's `FILE:LINE`.
    pub fn new(tls: &BindTls, cluster: Arc<ClusterCerts>) -> Result<Acceptor, String> {
        let at = &tls.at.0;
        let provider = suites::provider(tls).map_err(|e| format!("{at}: {e}"))?;
        let mut loaded = Vec::new();
        for crt in &tls.crts {
            let certs = certs::load(crt, &provider)
                .map_err(|e| format!("{at}: cannot load certificate {e}"))?;
            loaded.extend(certs);
        }
        let versions = suites::versions(tls);
        let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&versions)
            .map_err(|e| format!("{at}: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(sni::Resolver::new(
                loaded,
                cluster,
                tls.strict_sni,
            )));
        config.alpn_protocols = tls.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        // OpenSSL (hence HAProxy) picks the suite by the server's order
        // unless `prefer-client-ciphers`.
        config.ignore_client_order = true;
        Ok(Acceptor {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }
}

/// Loads every TLS `bind` line's certificates and every `server ... ssl`
/// line's `ca-file`, as `shoal check` and a reload do before anything
/// changes: `FILE:LINE: why` for each failure.
pub fn check(config: &Config) -> Vec<String> {
    let binds = config
        .proxies
        .iter()
        .flat_map(|p| &p.binds)
        .filter_map(|b| b.tls.as_deref())
        .filter_map(|tls| Acceptor::new(tls, ClusterCerts::empty()).err());
    let servers = config
        .proxies
        .iter()
        .flat_map(|p| &p.servers)
        .filter(|s| s.tls.ssl)
        .filter_map(|s| Upstream::new(&s.tls, std::net::Ipv4Addr::LOCALHOST.into()).err());
    binds.chain(servers).collect()
}

/// Serves one accepted connection on a TLS listener: handshake, then the
/// protocol the client chose. `engine.session` is filled in here.
/// Returns when the connection is over.
pub async fn serve(acceptor: Arc<Acceptor>, stream: TcpStream, mut engine: Engine) {
    let (peer, frontend) = (engine.peer, &engine.frontend);
    let limit = frontend
        .timeouts
        .client
        .unwrap_or(DEFAULT_HANDSHAKE_TIMEOUT);
    let tls = match tokio::time::timeout(limit, acceptor.acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(frontend = %frontend.name, "TLS handshake with {peer} failed: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!(frontend = %frontend.name, "TLS handshake with {peer} timed out");
            return;
        }
    };
    let (_, conn) = tls.get_ref();
    engine.session = Arc::new(Session {
        sni: conn.server_name().map(|s| s.to_ascii_lowercase().into()),
    });
    if conn.alpn_protocol() == Some(H2) && frontend.mode == Mode::Http {
        h2::serve(tls, engine).await;
    } else {
        bridge::serve(tls, engine).await;
    }
}
