//! The accepting side: authenticate each connection (rustls, during the
//! handshake) and each stream's claimed node id, then hand the request to
//! the [`RpcHandler`].

use super::wire::{self, FrameError, Head, Reset, Rpc, SnapshotHead};
use super::{Options, Reports, RpcHandler};
use crate::load::LoadReport;
use crate::tls;
use rustls_pki_types::CertificateDer;
use shoal_proto::command::NodeId;
use std::io::Cursor;
use std::net::SocketAddr;
use std::sync::Arc;
use tracing::{debug, warn};

/// Accept connections until the endpoint closes.
pub(super) async fn serve<H: RpcHandler>(
    endpoint: quinn::Endpoint,
    handler: Arc<H>,
    options: Arc<Options>,
    reports: Reports,
) {
    while let Some(incoming) = endpoint.accept().await {
        // An incoming connection counts only once accepted.
        if endpoint.open_connections() >= options.max_connections {
            warn!(
                remote = %incoming.remote_address(),
                "cluster endpoint: refusing a connection: {} are open already",
                options.max_connections
            );
            incoming.refuse();
            continue;
        }
        tokio::spawn(connection(
            incoming,
            handler.clone(),
            options.clone(),
            reports.clone(),
        ));
    }
}

/// One peer connection: its streams are served concurrently (quinn bounds
/// how many are open at once).
async fn connection<H: RpcHandler>(
    incoming: quinn::Incoming,
    handler: Arc<H>,
    options: Arc<Options>,
    reports: Reports,
) {
    let remote = incoming.remote_address();
    // The handshake is bounded by the idle timeout.
    let conn = match incoming.await {
        Ok(conn) => conn,
        Err(e) => {
            warn!(%remote, "cluster peer refused: TLS handshake failed: {e}");
            return;
        }
    };
    let Some(cert) = peer_certificate(&conn) else {
        // rustls requires a client certificate, so this does not happen.
        warn!(%remote, "cluster peer refused: no client certificate");
        conn.close(0u32.into(), b"no certificate");
        return;
    };
    let cert = Arc::new(cert);
    // Load reports come as datagrams on the same connection; the task
    // ends with it.
    tokio::spawn(datagrams(conn.clone(), cert.clone(), reports));
    loop {
        match conn.accept_bi().await {
            Ok((send, recv)) => {
                let peer = Peer {
                    remote,
                    cert: cert.clone(),
                };
                tokio::spawn(stream(peer, send, recv, handler.clone(), options.clone()));
            }
            Err(e) => {
                debug!(%remote, "cluster peer connection ended: {e}");
                return;
            }
        }
    }
}

/// Read a peer's load reports until its connection ends. A report that
/// is too large, does not decode or speaks for another node is dropped
/// (logged once per connection); a full channel drops it too: the next
/// one follows within an interval.
async fn datagrams(conn: quinn::Connection, cert: Arc<CertificateDer<'static>>, reports: Reports) {
    let remote = conn.remote_address();
    let mut complained = false;
    while let Ok(bytes) = conn.read_datagram().await {
        let why = match LoadReport::decode(&bytes) {
            Ok(report) if tls::names_node(&cert, report.from) => {
                let _ = reports.try_send((report.from, report));
                continue;
            }
            Ok(report) => format!(
                "its certificate is not valid for {}",
                tls::node_name(report.from)
            ),
            Err(e) => e.to_string(),
        };
        if !complained {
            warn!(%remote, "cluster peer load report dropped: {why}");
            complained = true;
        }
    }
}

fn peer_certificate(conn: &quinn::Connection) -> Option<CertificateDer<'static>> {
    let chain = conn
        .peer_identity()?
        .downcast::<Vec<CertificateDer<'static>>>()
        .ok()?;
    chain.into_iter().next()
}

/// The authenticated end of a connection.
struct Peer {
    remote: SocketAddr,
    cert: Arc<CertificateDer<'static>>,
}

/// Why serving one stream stopped early.
enum StreamError {
    Frame(FrameError),
    NotAuthorized(NodeId),
    Timeout,
}

impl From<FrameError> for StreamError {
    fn from(e: FrameError) -> Self {
        StreamError::Frame(e)
    }
}

/// Serve one stream within its timeout; on failure reset it (never the
/// connection) and say why.
async fn stream<H: RpcHandler>(
    peer: Peer,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    handler: Arc<H>,
    options: Arc<Options>,
) {
    let started = tokio::time::Instant::now();
    let served = async {
        // The head says which timeout applies; until then the shortest does.
        let head: Head = tokio::time::timeout(
            options.stream_timeout,
            wire::read_value(&mut recv, wire::MAX_HEAD),
        )
        .await
        .map_err(|_| StreamError::Timeout)??;
        let timeout = match head.rpc {
            Rpc::Append | Rpc::Vote => options.stream_timeout,
            Rpc::App => options.app_timeout,
            Rpc::Snapshot => options.snapshot_timeout,
        };
        tokio::time::timeout_at(
            started + timeout,
            answer(&peer, head, &mut send, &mut recv, &*handler),
        )
        .await
        .map_err(|_| StreamError::Timeout)?
    };
    let reset = match served.await {
        Ok(()) => return,
        Err(StreamError::Timeout) => {
            warn!(remote = %peer.remote, "cluster peer stream reset: {}", Reset::Timeout);
            Reset::Timeout
        }
        Err(StreamError::NotAuthorized(claimed)) => {
            warn!(
                remote = %peer.remote,
                claimed,
                "cluster peer refused: its certificate is not valid for {}",
                tls::node_name(claimed)
            );
            Reset::NotAuthorized
        }
        Err(StreamError::Frame(e)) => match e.reset() {
            Some(reset) => {
                warn!(remote = %peer.remote, "cluster peer stream reset: {e}");
                reset
            }
            None => {
                debug!(remote = %peer.remote, "cluster peer stream failed: {e}");
                return;
            }
        },
    };
    reset_stream(&mut send, &mut recv, reset);
}

fn reset_stream(send: &mut quinn::SendStream, recv: &mut quinn::RecvStream, reset: Reset) {
    // Either side may be closed already; nothing more to do then.
    let _ = send.reset(reset.code());
    let _ = recv.stop(reset.code());
}

/// Check the claimed identity, read the request, ask the handler, answer.
async fn answer<H: RpcHandler>(
    peer: &Peer,
    head: Head,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
    handler: &H,
) -> Result<(), StreamError> {
    // rustls checked the chain to the CA; this checks the name, per request,
    // before anything large is read.
    if !tls::names_node(&peer.cert, head.from) {
        return Err(StreamError::NotAuthorized(head.from));
    }
    let from = head.from;
    let limit = head.rpc.request_limit();
    let reply_limit = head.rpc.reply_limit();
    match head.rpc {
        Rpc::Append => {
            let request = wire::read_value(recv, limit).await?;
            let reply = handler.append(from, request).await;
            wire::write_value(send, &reply, reply_limit).await?;
        }
        Rpc::Vote => {
            let request = wire::read_value(recv, limit).await?;
            let reply = handler.vote(from, request).await;
            wire::write_value(send, &reply, reply_limit).await?;
        }
        Rpc::App => {
            let request = wire::read_value(recv, limit).await?;
            let reply = handler.app(from, request).await;
            wire::write_value(send, &reply, reply_limit).await?;
        }
        Rpc::Snapshot => {
            let head: SnapshotHead = wire::read_value(recv, limit).await?;
            let data = read_snapshot(recv, head.len).await?;
            let snapshot = wire::Snapshot {
                meta: head.meta,
                snapshot: Box::new(Cursor::new(data)),
            };
            let reply = handler.snapshot(from, head.vote, snapshot).await;
            wire::write_value(send, &reply, reply_limit).await?;
        }
    }
    // The answer is queued; quinn delivers it even after the stream is
    // dropped.
    let _ = send.finish();
    Ok(())
}

/// Read chunk frames until exactly `len` bytes arrived.
async fn read_snapshot(recv: &mut quinn::RecvStream, len: u64) -> Result<Vec<u8>, FrameError> {
    if len > wire::MAX_SNAPSHOT {
        return Err(FrameError::TooLarge {
            len: usize::try_from(len).unwrap_or(usize::MAX),
            limit: wire::MAX_SNAPSHOT as usize,
        });
    }
    let len = len as usize;
    // Grow with what arrives rather than trusting the announced size.
    let mut data = Vec::with_capacity(len.min(wire::MAX_CHUNK));
    while data.len() < len {
        let chunk = wire::read_frame(recv, wire::MAX_CHUNK.min(len - data.len())).await?;
        if chunk.is_empty() {
            return Err(FrameError::Truncated);
        }
        data.extend_from_slice(&chunk);
    }
    Ok(data)
}
