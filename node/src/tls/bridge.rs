//! Hands a decrypted stream to the engines, which work on sockets.
//!
//! The HTTP/1.1 engine and the TCP proxy read and write their client's
//! socket directly (readiness, `try_read`, `shutdown`), so a TLS session
//! reaches them through a socket pair: this task copies between the TLS
//! stream and one end, the engine serves the other end as if it were the
//! client's socket, with the client's real addresses. The pair is a unix
//! stream pair: no port, no TIME_WAIT, nothing another process can reach.
//! The engine end is typed as a `TcpStream`, which only wraps the
//! descriptor; the engine uses nothing TCP-specific on a client socket
//! (it learns the addresses from its arguments), and the few socket
//! options it sets ignore their errors.

use super::Session;
use crate::health::Observer;
use crate::routing::FrontendRt;
use crate::runtime::Runtime;
use shoal_proto::config::Mode;
use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::watch;

/// What the engines need to serve a connection that came through TLS.
#[derive(Clone)]
pub struct Engine {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub frontend: Arc<FrontendRt>,
    pub runtime: Arc<Runtime>,
    pub observer: Observer,
    pub shutdown: watch::Receiver<bool>,
    pub session: Arc<Session>,
}

/// A connected pair: the engine's end, typed as the socket it expects,
/// and ours.
pub fn pair() -> io::Result<(TcpStream, UnixStream)> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    ours.set_nonblocking(true)?;
    theirs.set_nonblocking(true)?;
    let theirs = std::net::TcpStream::from(OwnedFd::from(theirs));
    Ok((TcpStream::from_std(theirs)?, UnixStream::from_std(ours)?))
}

impl Engine {
    /// Start the engine of the frontend's mode on `stream` (one end of a
    /// [`pair`]), in its own task.
    pub fn spawn(&self, stream: TcpStream) {
        let e = self.clone();
        tokio::spawn(async move {
            match e.frontend.mode {
                Mode::Http => {
                    crate::http::serve(
                        stream,
                        e.peer,
                        e.local,
                        e.frontend,
                        e.runtime,
                        e.observer,
                        e.shutdown,
                        Some(e.session),
                    )
                    .await;
                }
                Mode::Tcp => {
                    let snapshot = e.runtime.snapshot();
                    let tls = Some(e.session);
                    crate::tcp::serve(
                        stream, e.peer, e.local, e.frontend, snapshot, e.observer, tls,
                    )
                    .await;
                }
            }
        });
    }
}

/// Serve a TLS session with the engine of the frontend's mode, until
/// either side is done.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut tls: S, engine: Engine) {
    let (theirs, mut ours) = match pair() {
        Ok(pair) => pair,
        Err(e) => {
            tracing::warn!(frontend = %engine.frontend.name, "cannot hand a TLS connection to the engine: {e}");
            return;
        }
    };
    engine.spawn(theirs);
    // Ends with the first error or once both directions are shut; closing
    // ours then ends the engine's side too.
    let _ = tokio::io::copy_bidirectional(&mut tls, &mut ours).await;
}
