//! The connecting side: one cached connection per peer, one stream per
//! RPC, and openraft's network traits on top.

use super::wire::{self, FrameError, Head, Reset, Rpc, SnapshotHead};
use super::{Options, TransportError};
use crate::messages::{AppRequest, AppResponse};
use crate::tls;
use crate::types::{NodeInfo, TypeConfig, APPEND_BUDGET};
use openraft::error::{
    Fatal, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, ReplicationClosed,
    StreamingError, Timeout, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::Vote;
use serde::de::DeserializeOwned;
use serde::Serialize;
use shoal_proto::codec;
use shoal_proto::command::NodeId;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::{timeout_at, Instant};

/// The connections of one endpoint to its peers.
pub(super) struct Peers {
    endpoint: quinn::Endpoint,
    config: quinn::ClientConfig,
    /// For [`Peers::call_any`]: accepts any member of the CA.
    any_member: quinn::ClientConfig,
    me: NodeId,
    options: Arc<Options>,
    /// Held only to look up or insert a peer's slot, never across I/O.
    slots: Mutex<HashMap<NodeId, Arc<Slot>>>,
}

/// One peer's connection. The async lock is held while connecting so that
/// concurrent RPCs to a peer share one new connection instead of racing.
#[derive(Default)]
struct Slot {
    conn: tokio::sync::Mutex<Option<quinn::Connection>>,
    /// When the peer was last heard on the connection: its id, the count
    /// of acknowledgements received then, and when that count was seen.
    heard: std::sync::Mutex<Option<(usize, u64, Instant)>>,
}

/// How long a connection may hear nothing from its peer (not even an
/// acknowledgement) before a timed-out call drops it and the next call
/// connects afresh. A killed or restarted peer never answers on the old
/// connection; a live one that is only slow (a starved CPU, a long fsync)
/// still acknowledges within this. Dropping at the first silent timeout
/// (75 ms for an append) made a loaded cluster reconnect again and again,
/// each handshake given up at its own short deadline, and replication
/// stalled for seconds behind the backoff.
const SILENCE: Duration = Duration::from_secs(1);

/// The sending half of an RPC's stream, reset unless the RPC was
/// answered. An RPC given up (timed out, or dropped because the caller
/// stopped waiting, as a forwarded write does when an election starts)
/// must not reach the peer later: without the reset QUIC keeps
/// retransmitting the request, and a write reported as failed would take
/// effect on the leader once the network heals, possibly over writes
/// acknowledged since. A reset drops the unacknowledged data.
struct TakeBack(Option<quinn::SendStream>);

impl TakeBack {
    fn stream(&mut self) -> &mut quinn::SendStream {
        self.0.as_mut().expect("the stream is held until answered")
    }

    /// The peer answered: nothing to take back.
    fn answered(&mut self) {
        self.0 = None;
    }
}

impl Drop for TakeBack {
    fn drop(&mut self) {
        if let Some(send) = self.0.as_mut() {
            // Fails only when the peer already has everything: then it
            // is too late to take back, which changes nothing here.
            let _ = send.reset(0u32.into());
        }
    }
}

impl Peers {
    pub(super) fn new(
        endpoint: quinn::Endpoint,
        config: quinn::ClientConfig,
        any_member: quinn::ClientConfig,
        me: NodeId,
        options: Arc<Options>,
    ) -> Self {
        Peers {
            endpoint,
            config,
            any_member,
            me,
            options,
            slots: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn me(&self) -> NodeId {
        self.me
    }

    fn slot(&self, node: NodeId) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entry(node).or_default().clone()
    }

    /// The live connection to `node` at `addr`, made if there is none. The
    /// server must prove it is `node` (its certificate names
    /// `node-<node>.shoal`).
    async fn connection(
        &self,
        node: NodeId,
        addr: SocketAddr,
        deadline: Instant,
    ) -> Result<quinn::Connection, TransportError> {
        let unreachable = |reason: String| TransportError::Unreachable { node, addr, reason };
        let slot = self.slot(node);
        let mut conn = timeout_at(deadline, slot.conn.lock())
            .await
            .map_err(|_| unreachable("no connection in time".to_string()))?;
        if let Some(c) = conn.as_ref() {
            if c.close_reason().is_none() && c.remote_address() == addr {
                return Ok(c.clone());
            }
        }
        *conn = None;
        let connecting = self
            .endpoint
            .connect_with(self.config.clone(), addr, &tls::node_name(node))
            .map_err(|e| unreachable(e.to_string()))?;
        let new = match timeout_at(deadline, connecting).await {
            Err(_) => return Err(unreachable("no handshake in time".to_string())),
            Ok(Err(e)) => return Err(connect_error(node, addr, e)),
            Ok(Ok(new)) => new,
        };
        *conn = Some(new.clone());
        Ok(new)
    }

    /// One request/answer exchange on a new stream, all of it before
    /// `deadline`.
    async fn rpc<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        node: NodeId,
        addr: SocketAddr,
        rpc: Rpc,
        request: &Req,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Resp, TransportError> {
        // Encode first: a request too large to send is refused before any
        // connection is made.
        let body = codec::encode(request).map_err(|e| frame_error(node, addr, e.into()))?;
        self.rpc_body(node, addr, rpc, &body, deadline, timeout)
            .await
    }

    /// [`Peers::rpc`] of a request already encoded.
    async fn rpc_body<Resp: DeserializeOwned>(
        &self,
        node: NodeId,
        addr: SocketAddr,
        rpc: Rpc,
        body: &[u8],
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Resp, TransportError> {
        if body.len() > rpc.request_limit() {
            let e = FrameError::TooLarge {
                len: body.len(),
                limit: rpc.request_limit(),
            };
            return Err(frame_error(node, addr, e));
        }
        let conn = self.connection(node, addr, deadline).await?;
        self.exchange(&conn, node, addr, rpc, body, deadline, timeout)
            .await
    }

    /// Send `body` as one `rpc` on a new stream of `conn`, read the answer.
    #[allow(clippy::too_many_arguments)]
    async fn exchange<Resp: DeserializeOwned>(
        &self,
        conn: &quinn::Connection,
        node: NodeId,
        addr: SocketAddr,
        rpc: Rpc,
        body: &[u8],
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Resp, TransportError> {
        let conn = conn.clone();
        let exchange = async {
            let (send, mut recv) = conn.open_bi().await.map_err(|e| lost(node, addr, e))?;
            let mut send = TakeBack(Some(send));
            let stream = send.stream();
            let head = Head { from: self.me, rpc };
            wire::write_value(stream, &head, wire::MAX_HEAD)
                .await
                .map_err(|e| stream_error(node, addr, &conn, e))?;
            wire::write_frame(stream, body)
                .await
                .map_err(|e| stream_error(node, addr, &conn, e))?;
            let _ = stream.finish();
            let answer = wire::read_value(&mut recv, rpc.reply_limit())
                .await
                .map_err(|e| stream_error(node, addr, &conn, e));
            if answer.is_ok() {
                send.answered();
            }
            answer
        };
        let acks = conn.stats().frame_rx.acks;
        let Ok(answer) = timeout_at(deadline, exchange).await else {
            // A live peer acknowledges what we sent within a round trip
            // and its ack delay, however slow its answer. Silence for
            // longer than SILENCE means it is gone (killed, or restarted
            // with a new endpoint): drop the connection, so that the next
            // call connects afresh instead of waiting out the idle timeout
            // on it. A one-off connection (no node yet) had one chance.
            let silent = if node == 0 {
                conn.stats().frame_rx.acks == acks
            } else {
                self.silent_for_long(node, &conn)
            };
            if silent {
                conn.close(0u32.into(), b"no answer");
            }
            return Err(TransportError::Timeout {
                node,
                addr,
                after: timeout,
            });
        };
        if node != 0 {
            self.silent_for_long(node, &conn);
        }
        answer
    }

    /// Note what `conn` to `node` received; whether it has heard nothing
    /// from the peer for [`SILENCE`].
    fn silent_for_long(&self, node: NodeId, conn: &quinn::Connection) -> bool {
        let acks = conn.stats().frame_rx.acks;
        let now = Instant::now();
        let slot = self.slot(node);
        let mut heard = slot.heard.lock().unwrap_or_else(|e| e.into_inner());
        match *heard {
            Some((id, seen, since)) if id == conn.stable_id() && seen == acks => {
                now.duration_since(since) >= SILENCE
            }
            _ => {
                *heard = Some((conn.stable_id(), acks, now));
                false
            }
        }
    }

    /// Send an application request to whichever member listens at `addr`
    /// (a join: the id is not known), on a connection of its own.
    pub(super) async fn call_any(
        &self,
        addr: &str,
        request: &AppRequest,
        timeout: Duration,
    ) -> Result<AppResponse, TransportError> {
        // Errors name node 0: no node has that id.
        const UNKNOWN: NodeId = 0;
        let deadline = Instant::now() + timeout;
        let addr = timeout_at(deadline, resolve(UNKNOWN, addr))
            .await
            .map_err(|_| TransportError::Address {
                node: UNKNOWN,
                addr: addr.to_string(),
                reason: "name not resolved in time".to_string(),
            })??;
        let unreachable = |reason: String| TransportError::Unreachable {
            node: UNKNOWN,
            addr,
            reason,
        };
        let body = codec::encode(request).map_err(|e| frame_error(UNKNOWN, addr, e.into()))?;
        let connecting = self
            .endpoint
            .connect_with(self.any_member.clone(), addr, tls::ANY_MEMBER)
            .map_err(|e| unreachable(e.to_string()))?;
        let conn = match timeout_at(deadline, connecting).await {
            Err(_) => return Err(unreachable("no handshake in time".to_string())),
            Ok(Err(e)) => return Err(connect_error(UNKNOWN, addr, e)),
            Ok(Ok(conn)) => conn,
        };
        let answer = self
            .exchange(&conn, UNKNOWN, addr, Rpc::App, &body, deadline, timeout)
            .await;
        conn.close(0u32.into(), b"done");
        answer
    }

    /// Send an application request to `node` at `addr`.
    pub(super) async fn call(
        &self,
        node: NodeId,
        addr: &str,
        request: &AppRequest,
        timeout: Duration,
    ) -> Result<AppResponse, TransportError> {
        let deadline = Instant::now() + timeout;
        let addr = timeout_at(deadline, resolve(node, addr))
            .await
            .map_err(|_| TransportError::Address {
                node,
                addr: addr.to_string(),
                reason: "name not resolved in time".to_string(),
            })??;
        self.rpc(node, addr, Rpc::App, request, deadline, timeout)
            .await
    }

    /// Send `parts` as datagrams to `node` at `addr` on the connection RPCs
    /// use (made if there is none), all before `timeout`. Datagrams are
    /// never retransmitted; a part that does not fit the path is dropped.
    pub(super) async fn send_datagrams(
        &self,
        node: NodeId,
        addr: &str,
        parts: &[bytes::Bytes],
        timeout: Duration,
    ) -> Result<(), TransportError> {
        let deadline = Instant::now() + timeout;
        let addr = timeout_at(deadline, resolve(node, addr))
            .await
            .map_err(|_| TransportError::Address {
                node,
                addr: addr.to_string(),
                reason: "name not resolved in time".to_string(),
            })??;
        let conn = self.connection(node, addr, deadline).await?;
        for part in parts {
            if let Err(e) = conn.send_datagram(part.clone()) {
                return Err(TransportError::Unreachable {
                    node,
                    addr,
                    reason: format!("datagram not sent: {e}"),
                });
            }
        }
        Ok(())
    }

    /// Stream a whole snapshot: its head, then chunks of at most
    /// `chunk_size`, each sent within `ttl` (openraft's per-chunk timeout);
    /// then the answer within `ttl` or [`Options::stream_timeout`],
    /// whichever is longer.
    async fn snapshot(
        &self,
        node: NodeId,
        addr: SocketAddr,
        vote: Vote<NodeId>,
        snapshot: wire::Snapshot,
        chunk_size: usize,
        ttl: Duration,
    ) -> Result<Result<SnapshotResponse<NodeId>, Fatal<NodeId>>, TransportError> {
        let data = snapshot.snapshot.into_inner();
        let timed_out = || TransportError::Timeout {
            node,
            addr,
            after: ttl,
        };
        if data.len() as u64 > wire::MAX_SNAPSHOT {
            let e = FrameError::TooLarge {
                len: data.len(),
                limit: wire::MAX_SNAPSHOT as usize,
            };
            return Err(frame_error(node, addr, e));
        }
        let conn = self.connection(node, addr, Instant::now() + ttl).await?;
        let (mut send, mut recv) = timeout_at(Instant::now() + ttl, conn.open_bi())
            .await
            .map_err(|_| timed_out())?
            .map_err(|e| lost(node, addr, e))?;
        let failed = |e| stream_error(node, addr, &conn, e);
        let head = SnapshotHead {
            vote,
            meta: snapshot.meta,
            len: data.len() as u64,
        };
        let first = async {
            wire::write_value(
                &mut send,
                &Head {
                    from: self.me,
                    rpc: Rpc::Snapshot,
                },
                wire::MAX_HEAD,
            )
            .await?;
            wire::write_value(&mut send, &head, wire::MAX_SNAPSHOT_HEAD).await
        };
        timeout_at(Instant::now() + ttl, first)
            .await
            .map_err(|_| timed_out())?
            .map_err(failed)?;
        for chunk in data.chunks(chunk_size.clamp(1, wire::MAX_CHUNK)) {
            timeout_at(Instant::now() + ttl, wire::write_frame(&mut send, chunk))
                .await
                .map_err(|_| timed_out())?
                .map_err(failed)?;
        }
        let _ = send.finish();
        // The receiver installs the snapshot before it answers, which may
        // take longer than moving one chunk.
        let wait = ttl.max(self.options.stream_timeout);
        timeout_at(
            Instant::now() + wait,
            wire::read_value(&mut recv, Rpc::Snapshot.reply_limit()),
        )
        .await
        .map_err(|_| TransportError::Timeout {
            node,
            addr,
            after: wait,
        })?
        .map_err(failed)
    }
}

/// A `host:port` or `ip:port` cluster address.
async fn resolve(node: NodeId, addr: &str) -> Result<SocketAddr, TransportError> {
    if let Ok(parsed) = addr.parse() {
        return Ok(parsed);
    }
    let bad = |reason: String| TransportError::Address {
        node,
        addr: addr.to_string(),
        reason,
    };
    tokio::net::lookup_host(addr)
        .await
        .map_err(|e| bad(e.to_string()))?
        .next()
        .ok_or_else(|| bad("the name has no address".to_string()))
}

/// A failed handshake: refused certificates (either way) are `Handshake`;
/// silence is `Unreachable`.
fn connect_error(node: NodeId, addr: SocketAddr, e: quinn::ConnectionError) -> TransportError {
    match e {
        quinn::ConnectionError::TransportError(_) | quinn::ConnectionError::ConnectionClosed(_) => {
            TransportError::Handshake {
                node,
                addr,
                source: e,
            }
        }
        e => TransportError::Unreachable {
            node,
            addr,
            reason: e.to_string(),
        },
    }
}

/// A connection that failed after the handshake. A server refuses a client
/// certificate only once the client thinks the handshake is over, so a
/// crypto error here is still a refused handshake.
fn lost(node: NodeId, addr: SocketAddr, e: quinn::ConnectionError) -> TransportError {
    let crypto = |code: quinn::TransportErrorCode| (0x100..0x200).contains(&u64::from(code));
    match &e {
        quinn::ConnectionError::ConnectionClosed(close) if crypto(close.error_code) => {
            TransportError::Handshake {
                node,
                addr,
                source: e,
            }
        }
        quinn::ConnectionError::TransportError(t) if crypto(t.code) => TransportError::Handshake {
            node,
            addr,
            source: e,
        },
        _ => TransportError::ConnectionLost {
            node,
            addr,
            source: e,
        },
    }
}

fn frame_error(node: NodeId, addr: SocketAddr, source: FrameError) -> TransportError {
    TransportError::Frame { node, addr, source }
}

/// A stream that failed: reset by the server (and why), lost with its
/// connection, or carrying a bad frame.
fn stream_error(
    node: NodeId,
    addr: SocketAddr,
    conn: &quinn::Connection,
    e: FrameError,
) -> TransportError {
    if let Some(close) = conn.close_reason() {
        return lost(node, addr, close);
    }
    match e {
        FrameError::Reset(code) => match Reset::from_code(code) {
            Some(reason) => TransportError::Refused { node, addr, reason },
            None => frame_error(node, addr, FrameError::Reset(code)),
        },
        e => frame_error(node, addr, e),
    }
}

/// openraft's network factory: a [`PeerClient`] per target, all sharing
/// this endpoint's connections.
#[derive(Clone)]
pub struct Network {
    peers: Arc<Peers>,
}

impl Network {
    pub(super) fn new(peers: Arc<Peers>) -> Self {
        Network { peers }
    }

    /// Send an application request to `target` at `addr` within `timeout`
    /// (as [`super::Transport::call_within`]).
    pub async fn call(
        &self,
        target: NodeId,
        addr: &str,
        request: &AppRequest,
        timeout: Duration,
    ) -> Result<AppResponse, TransportError> {
        self.peers.call(target, addr, request, timeout).await
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> PeerClient {
        PeerClient {
            peers: self.peers.clone(),
            target,
            node: node.clone(),
        }
    }
}

/// Sends Raft RPCs to one peer.
pub struct PeerClient {
    peers: Arc<Peers>,
    target: NodeId,
    node: NodeInfo,
}

type RaftRpcError = RPCError<NodeId, NodeInfo, RaftError<NodeId>>;

impl PeerClient {
    /// One Raft RPC within `option`'s soft deadline (openraft drops the
    /// call at the hard one), its remote error kept as openraft's.
    async fn raft_rpc<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        rpc: Rpc,
        action: RPCTypes,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RaftRpcError> {
        let body = self.encode(request, action, option)?;
        self.raft_rpc_body(rpc, action, &body, option).await
    }

    /// A request's bytes; a request that does not encode is openraft's
    /// error for `action` (no address is known yet: it is 0.0.0.0:0).
    // openraft's error type is what the callers return anyway.
    #[allow(clippy::result_large_err)]
    fn encode<Req: Serialize>(
        &self,
        request: &Req,
        action: RPCTypes,
        option: &RPCOption,
    ) -> Result<Vec<u8>, RaftRpcError> {
        codec::encode(request).map_err(|e| {
            let addr = SocketAddr::from(([0, 0, 0, 0], 0));
            self.to_rpc_error(
                frame_error(self.target, addr, e.into()),
                action,
                option.soft_ttl(),
            )
        })
    }

    /// [`PeerClient::raft_rpc`] of a request already encoded.
    async fn raft_rpc_body<Resp: DeserializeOwned>(
        &self,
        rpc: Rpc,
        action: RPCTypes,
        body: &[u8],
        option: &RPCOption,
    ) -> Result<Resp, RaftRpcError> {
        let ttl = option.soft_ttl();
        let deadline = Instant::now() + ttl;
        let addr = self
            .address(deadline)
            .await
            .map_err(|e| self.to_rpc_error(e, action, ttl))?;
        let reply: Result<Resp, RaftError<NodeId>> = self
            .peers
            .rpc_body(self.target, addr, rpc, body, deadline, ttl)
            .await
            .map_err(|e| self.to_rpc_error(e, action, ttl))?;
        reply.map_err(|e| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                e,
            ))
        })
    }

    async fn address(&self, deadline: Instant) -> Result<SocketAddr, TransportError> {
        timeout_at(deadline, resolve(self.target, &self.node.cluster))
            .await
            .map_err(|_| TransportError::Address {
                node: self.target,
                addr: self.node.cluster.clone(),
                reason: "name not resolved in time".to_string(),
            })?
    }

    /// How openraft should react: back off from an unreachable (or
    /// impostor) peer, split a batch too large, retry other failures soon.
    fn to_rpc_error(&self, e: TransportError, action: RPCTypes, ttl: Duration) -> RaftRpcError {
        match &e {
            TransportError::Timeout { .. } => RPCError::Timeout(Timeout {
                action,
                id: self.peers.me,
                target: self.target,
                timeout: ttl,
            }),
            TransportError::Frame {
                source: FrameError::TooLarge { .. },
                ..
            } if action == RPCTypes::AppendEntries => {
                RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(0))
            }
            e if e.is_unreachable() => RPCError::Unreachable(Unreachable::new(e)),
            e => RPCError::Network(NetworkError::new(e)),
        }
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        request: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RaftRpcError> {
        let entries = request.entries.len() as u64;
        let body = self.encode(&request, RPCTypes::AppendEntries, &option)?;
        if entries > 1 && body.len() > APPEND_BUDGET {
            // Ask openraft for as many entries as fit the budget.
            let fit = entries * APPEND_BUDGET as u64 / body.len() as u64;
            return Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(fit.max(1)),
            ));
        }
        self.raft_rpc_body(Rpc::Append, RPCTypes::AppendEntries, &body, &option)
            .await
            .map_err(|e| match e {
                // Ask openraft to send half as many entries next time.
                RPCError::PayloadTooLarge(_) => RPCError::PayloadTooLarge(
                    PayloadTooLarge::new_entries_hint((entries / 2).max(1)),
                ),
                e => e,
            })
    }

    async fn vote(
        &mut self,
        request: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RaftRpcError> {
        self.raft_rpc(Rpc::Vote, RPCTypes::Vote, &request, &option)
            .await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote<NodeId>,
        snapshot: wire::Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, StreamingError<TypeConfig, Fatal<NodeId>>> {
        // `hard_ttl` is openraft's per-chunk timeout for snapshots.
        let ttl = option.hard_ttl();
        let chunk = option.snapshot_chunk_size().unwrap_or(wire::MAX_CHUNK);
        let streaming = async {
            let addr = self.address(Instant::now() + ttl).await?;
            self.peers
                .snapshot(self.target, addr, vote, snapshot, chunk, ttl)
                .await
        };
        let outcome = tokio::select! {
            outcome = streaming => outcome,
            closed = cancel => return Err(StreamingError::Closed(closed)),
        };
        match outcome {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(fatal)) => Err(StreamingError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                fatal,
            ))),
            Err(e) => Err(match self.to_rpc_error(e, RPCTypes::InstallSnapshot, ttl) {
                RPCError::Timeout(t) => StreamingError::Timeout(t),
                RPCError::Unreachable(u) => StreamingError::Unreachable(u),
                RPCError::Network(n) => StreamingError::Network(n),
                other => StreamingError::Network(NetworkError::new(&other)),
            }),
        }
    }

    /// Exponential: `backoff_min`, doubling up to `backoff_max`. openraft
    /// takes a new one after each success, so a peer back from an outage
    /// is tried at the short end again.
    fn backoff(&self) -> Backoff {
        let min = self.peers.options.backoff_min;
        let max = self.peers.options.backoff_max;
        Backoff::new(std::iter::successors(Some(min), move |d| {
            Some((*d * 2).min(max))
        }))
    }
}
