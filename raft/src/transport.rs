//! Node-to-node transport: one QUIC endpoint per node (quinn, mutual TLS
//! from [`crate::tls`]) carrying Raft's RPCs and the application requests of
//! [`crate::messages`].
//!
//! # Use
//!
//! ```text
//! let tls = tls::load(certs_dir, node_id)?;                 // fails at start if wrong
//! let transport = Transport::bind(cluster_addr, &tls, Options::default())?;
//! let raft = Raft::new(node_id, config, transport.network(), log, sm).await?;
//! tokio::spawn({ let t = transport.clone(); async move { t.serve(handler).await } });
//! transport.call(leader, &leader_addr, &AppRequest::Write(cmd)).await?;
//! ```
//!
//! # Wire format
//!
//! Nodes negotiate the ALPN protocol [`crate::tls::ALPN`] (`shoal-raft/1`).
//! A node keeps one connection to each peer and opens one bidirectional
//! stream per RPC. Everything on a stream is a *frame*: a 4-byte big-endian
//! length, then that many bytes. A frame's bytes are a value encoded with
//! `shoal_proto::codec` (bincode 2), except snapshot chunks, which are raw.
//!
//! ```text
//! client -> server   Head { from, rpc }                  <= 1 KiB
//!                    request, by rpc:
//!                      Append    AppendEntriesRequest    <= 64 MiB
//!                      Vote      VoteRequest             <= 64 KiB
//!                      App       AppRequest              <= 16 MiB
//!                      Snapshot  SnapshotHead { vote, meta, len } <= 1 MiB,
//!                                then chunks of <= 1 MiB adding up to
//!                                exactly len (<= 256 MiB)
//!                    then FIN
//! server -> client   one answer frame, then FIN:
//!                      Append    Result<AppendEntriesResponse, RaftError>  <= 1 MiB
//!                      Vote      Result<VoteResponse, RaftError>           <= 1 MiB
//!                      Snapshot  Result<SnapshotResponse, Fatal>           <= 1 MiB
//!                      App       AppResponse                               <= 16 MiB
//! ```
//!
//! The server checks that the client's certificate names `from`
//! (`node-<from>.shoal`) before it reads the request. A frame over its
//! limit, a frame that does not decode, a false `from` or a stream that
//! outlives its timeout resets that stream with a [`wire::Reset`] code; the
//! connection and the endpoint go on.
//!
//! # Compatibility rule
//!
//! Nodes of two versions meet during a rolling upgrade. Within one ALPN
//! version, new [`wire::Rpc`] kinds and [`wire::Reset`] codes are added only
//! at the end (an older node resets a stream of a kind it does not know),
//! and the frames above never change shape. Any other change (a new field
//! in a frame, a new limit that old nodes would refuse) needs a new ALPN
//! version, and a node speaks the old one as well for one release.
//!
//! # Load reports
//!
//! Load reports ([`crate::load`]) are QUIC datagrams on the sender's
//! connection, outside any stream; the server checks each report's `from`
//! against the connection's certificate and drops what fails.

mod client;
mod server;
pub mod wire;

use crate::messages::{AppRequest, AppResponse};
use crate::tls::Tls;
use crate::types::TypeConfig;
use openraft::error::{Fatal, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::Vote;
use shoal_proto::command::NodeId;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use client::{Network, PeerClient};

use crate::load::LoadReport;

/// Where the endpoint puts the load reports its peers send (sender
/// authenticated), for the node's load task.
type Reports = tokio::sync::mpsc::Sender<(NodeId, LoadReport)>;

/// The load task's end of [`Reports`].
pub type ReportReceiver = tokio::sync::mpsc::Receiver<(NodeId, LoadReport)>;

/// Reports waiting for the load task; more are dropped (the next round
/// brings fresh ones).
const REPORT_BACKLOG: usize = 256;
pub use wire::Reset;

/// What a node does with the requests its peers send. The cluster layer
/// implements it on top of `openraft::Raft`; `from` is the sending node,
/// already authenticated by its certificate.
pub trait RpcHandler: Send + Sync + 'static {
    /// `Raft::append_entries`.
    fn append(
        &self,
        from: NodeId,
        request: AppendEntriesRequest<TypeConfig>,
    ) -> impl Future<Output = Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>> + Send;
    /// `Raft::vote`.
    fn vote(
        &self,
        from: NodeId,
        request: VoteRequest<NodeId>,
    ) -> impl Future<Output = Result<VoteResponse<NodeId>, RaftError<NodeId>>> + Send;
    /// `Raft::install_full_snapshot`, with the whole snapshot received.
    fn snapshot(
        &self,
        from: NodeId,
        vote: Vote<NodeId>,
        snapshot: wire::Snapshot,
    ) -> impl Future<Output = Result<SnapshotResponse<NodeId>, Fatal<NodeId>>> + Send;
    /// A forwarded write, a membership request or a status query.
    fn app(&self, from: NodeId, request: AppRequest) -> impl Future<Output = AppResponse> + Send;
}

/// Timeouts and limits of the transport. The defaults suit a LAN.
#[derive(Debug, Clone)]
pub struct Options {
    /// Server side: the longest an AppendEntries or Vote stream may take,
    /// from its opening to the answer.
    pub stream_timeout: Duration,
    /// Server side: the longest an application request stream may take (a
    /// join waits for the new node to catch up).
    pub app_timeout: Duration,
    /// Server side: the longest a snapshot stream may take.
    pub snapshot_timeout: Duration,
    /// Client side: the default timeout of [`Transport::call`].
    pub call_timeout: Duration,
    /// A connection with no packet for this long is dead.
    pub idle_timeout: Duration,
    /// Keep-alive pings on idle connections, well inside `idle_timeout`.
    pub keep_alive: Duration,
    /// Concurrent streams (RPCs) a peer may open on one connection; more
    /// wait for a slot.
    pub max_streams: u32,
    /// Concurrent connections the endpoint accepts; more are refused.
    pub max_connections: usize,
    /// First and largest pause before retrying an unreachable peer; the
    /// pause doubles on each failure in a row. The largest stays well under
    /// the 1.5 s a follower waits for its leader before it campaigns
    /// (leader lease plus the shortest election timeout): a node that
    /// comes back must hear from the leader before then, or its higher term
    /// deposes the leader when they meet (openraft 0.9 has no pre-vote).
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            stream_timeout: Duration::from_secs(30),
            app_timeout: Duration::from_secs(120),
            snapshot_timeout: Duration::from_secs(600),
            call_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(10),
            keep_alive: Duration::from_secs(2),
            max_streams: 64,
            max_connections: 256,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_millis(500),
        }
    }
}

/// Why a request to a peer failed, or the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot bind the cluster address {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("node {node}: bad cluster address {addr:?}: {reason}")]
    Address {
        node: NodeId,
        addr: String,
        reason: String,
    },
    #[error("node {node} at {addr} is unreachable: {reason}")]
    Unreachable {
        node: NodeId,
        addr: SocketAddr,
        reason: String,
    },
    #[error("node {node} at {addr}: TLS handshake refused: {source}")]
    Handshake {
        node: NodeId,
        addr: SocketAddr,
        source: quinn::ConnectionError,
    },
    #[error("node {node} at {addr}: connection lost: {source}")]
    ConnectionLost {
        node: NodeId,
        addr: SocketAddr,
        source: quinn::ConnectionError,
    },
    #[error("node {node} at {addr}: no answer within {after:?}")]
    Timeout {
        node: NodeId,
        addr: SocketAddr,
        after: Duration,
    },
    #[error("node {node} at {addr} refused the request: {reason}")]
    Refused {
        node: NodeId,
        addr: SocketAddr,
        reason: Reset,
    },
    #[error("node {node} at {addr}: {source}")]
    Frame {
        node: NodeId,
        addr: SocketAddr,
        source: wire::FrameError,
    },
}

impl TransportError {
    /// Whether the peer could not be reached at all (or not as the node we
    /// meant): Raft should back off rather than retry at once.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            TransportError::Address { .. }
                | TransportError::Unreachable { .. }
                | TransportError::Handshake { .. }
                | TransportError::Refused {
                    reason: Reset::NotAuthorized,
                    ..
                }
        )
    }
}

/// A node's QUIC endpoint: it serves its peers ([`Transport::serve`]) and
/// connects to them ([`Transport::network`], [`Transport::call`]). Cheap to
/// clone; clones share the endpoint.
#[derive(Clone)]
pub struct Transport {
    endpoint: quinn::Endpoint,
    peers: Arc<client::Peers>,
    options: Arc<Options>,
    reports: Reports,
    /// The receiving end of `reports`, until [`Transport::load_reports`]
    /// takes it.
    reports_out: Arc<std::sync::Mutex<Option<ReportReceiver>>>,
}

impl Transport {
    /// Bind the endpoint to `addr` (port 0 picks a free port; see
    /// [`Transport::local_addr`]). Must run inside a tokio runtime.
    pub fn bind(addr: SocketAddr, tls: &Tls, options: Options) -> Result<Self, TransportError> {
        let transport = Arc::new(quic_transport(&options));
        let mut server = tls.server.clone();
        server.transport_config(transport.clone());
        let mut client = tls.client.clone();
        client.transport_config(transport.clone());
        let mut any_member = tls.any_member.clone();
        any_member.transport_config(transport);
        let endpoint = quinn::Endpoint::server(server, addr)
            .map_err(|source| TransportError::Bind { addr, source })?;
        let options = Arc::new(options);
        let peers = Arc::new(client::Peers::new(
            endpoint.clone(),
            client,
            any_member,
            tls.node(),
            options.clone(),
        ));
        let (reports, reports_out) = tokio::sync::mpsc::channel(REPORT_BACKLOG);
        Ok(Transport {
            endpoint,
            peers,
            options,
            reports,
            reports_out: Arc::new(std::sync::Mutex::new(Some(reports_out))),
        })
    }

    /// The address the endpoint is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        // quinn only fails here if the socket is gone, which it never is
        // while the endpoint lives.
        self.endpoint
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// This node's id (from its certificate).
    pub fn node(&self) -> NodeId {
        self.peers.me()
    }

    /// How many connections the endpoint has open (accepted and made).
    pub fn open_connections(&self) -> usize {
        self.endpoint.open_connections()
    }

    /// The openraft network factory that sends through this endpoint.
    pub fn network(&self) -> Network {
        Network::new(self.peers.clone())
    }

    /// Answer peers' requests with `handler` until the endpoint is closed.
    pub async fn serve<H: RpcHandler>(&self, handler: Arc<H>) {
        server::serve(
            self.endpoint.clone(),
            handler,
            self.options.clone(),
            self.reports.clone(),
        )
        .await
    }

    /// The load reports peers send, each with its authenticated sender
    /// (see [`crate::load`]). Only the first call gets them; later calls
    /// get `None`. Until it is called, reports are dropped once
    /// [`REPORT_BACKLOG`] wait.
    pub fn load_reports(&self) -> Option<ReportReceiver> {
        self.reports_out
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Send one round's load report (`parts`, from
    /// [`LoadReport::encode_parts`]) to node `target` at `addr` as QUIC
    /// datagrams, connecting first if needed, within `timeout`.
    pub async fn send_load(
        &self,
        target: NodeId,
        addr: &str,
        parts: &[bytes::Bytes],
        timeout: Duration,
    ) -> Result<(), TransportError> {
        self.peers
            .send_datagrams(target, addr, parts, timeout)
            .await
    }

    /// Send an application request to node `target` at `addr` (its
    /// `--cluster-addr`), waiting at most [`Options::call_timeout`].
    pub async fn call(
        &self,
        target: NodeId,
        addr: &str,
        request: &AppRequest,
    ) -> Result<AppResponse, TransportError> {
        self.peers
            .call(target, addr, request, self.options.call_timeout)
            .await
    }

    /// [`Transport::call`] with its own timeout. `target: None` reaches
    /// whichever member listens at `addr` (a join knows only the address):
    /// its certificate must still come from the cluster CA.
    pub async fn call_within(
        &self,
        target: Option<NodeId>,
        addr: &str,
        request: &AppRequest,
        timeout: Duration,
    ) -> Result<AppResponse, TransportError> {
        match target {
            Some(target) => self.peers.call(target, addr, request, timeout).await,
            None => self.peers.call_any(addr, request, timeout).await,
        }
    }

    /// Close every connection and stop serving; waits until peers were told.
    pub async fn shutdown(&self) {
        self.endpoint.close(0u32.into(), b"shutdown");
        self.endpoint.wait_idle().await;
    }
}

/// quinn's limits from our options: bidirectional streams only (and
/// datagrams for load reports), a bounded
/// number of them per connection, idle connections detected.
fn quic_transport(options: &Options) -> quinn::TransportConfig {
    let mut config = quinn::TransportConfig::default();
    config.max_concurrent_bidi_streams(options.max_streams.into());
    config.max_concurrent_uni_streams(0u32.into());
    // An idle timeout quinn cannot represent (over ~2^62 ms) means none.
    config.max_idle_timeout(options.idle_timeout.try_into().ok());
    config.keep_alive_interval(Some(options.keep_alive));
    // Load reports ride datagrams (quinn's defaults, stated here because
    // the reports depend on them).
    config.datagram_receive_buffer_size(Some(64 * 1024));
    config.datagram_send_buffer_size(64 * 1024);
    config
}

#[cfg(test)]
mod tests;
