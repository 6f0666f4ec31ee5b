//! The node-to-node transport through real QUIC on 127.0.0.1 (port 0), with
//! certificates generated into temporary directories. Where a test needs a
//! misbehaving peer, it speaks the wire format by hand over quinn.

use openraft::error::{RPCError, ReplicationClosed};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{CommittedLeaderId, LogId, Membership, SnapshotMeta, StoredMembership, Vote};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use shoal_proto::codec;
use shoal_proto::command::NodeId;
use shoal_raft::messages::{AppRequest, AppResponse, PeerStatus};
use shoal_raft::tls::{self, Tls, TlsError};
use shoal_raft::transport::wire::{self, FrameError, Head, Reset, Rpc, SnapshotHead};
use shoal_raft::transport::{Options, PeerClient, RpcHandler, Transport, TransportError};
use shoal_raft::{NodeInfo, TypeConfig};
use std::collections::BTreeMap;
use std::future::Future;
use std::io::Cursor;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long any condition may take to come true on a busy machine.
const DEADLINE: Duration = Duration::from_secs(20);

/// Poll `check` until it returns true or [`DEADLINE`] passes.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("condition not met within {DEADLINE:?}: {what}");
}

/// A cluster CA and node directories in a temporary directory.
struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        tls::generate_ca(&dir.path().join("ca")).expect("CA");
        Certs { dir }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca")
    }

    /// Node `id`'s `--certs` directory (issued on first use).
    fn node_dir(&self, id: NodeId) -> PathBuf {
        let dir = self.dir.path().join(format!("node{id}"));
        if !dir.exists() {
            tls::generate_node_cert(&self.ca(), id, &dir).expect("node cert");
        }
        dir
    }

    fn tls(&self, id: NodeId) -> Tls {
        tls::load(&self.node_dir(id), id).expect("loads")
    }
}

/// A handler that answers everything and records what reached it.
#[derive(Default)]
struct Recorder {
    calls: AtomicUsize,
    snapshots: Mutex<Vec<(NodeId, Vote<NodeId>, wire::Snapshot)>>,
}

impl RpcHandler for Recorder {
    async fn append(
        &self,
        _from: NodeId,
        _request: AppendEntriesRequest<TypeConfig>,
    ) -> Result<AppendEntriesResponse<NodeId>, openraft::error::RaftError<NodeId>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(AppendEntriesResponse::Success)
    }

    async fn vote(
        &self,
        _from: NodeId,
        request: VoteRequest<NodeId>,
    ) -> Result<VoteResponse<NodeId>, openraft::error::RaftError<NodeId>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(VoteResponse::new(request.vote, None, true))
    }

    async fn snapshot(
        &self,
        from: NodeId,
        vote: Vote<NodeId>,
        snapshot: wire::Snapshot,
    ) -> Result<SnapshotResponse<NodeId>, openraft::error::Fatal<NodeId>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.snapshots
            .lock()
            .expect("lock")
            .push((from, vote, snapshot));
        Ok(SnapshotResponse::new(vote))
    }

    /// `Status` answers with the node id the request came from, so tests
    /// see what the server authenticated.
    async fn app(&self, from: NodeId, request: AppRequest) -> AppResponse {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match request {
            AppRequest::Status => AppResponse::Status(PeerStatus {
                node: from,
                ..PeerStatus::default()
            }),
            _ => AppResponse::Done,
        }
    }
}

/// A serving node.
struct Node {
    transport: Transport,
    recorder: Arc<Recorder>,
}

impl Node {
    fn start(tls: &Tls) -> Node {
        Node::start_at("127.0.0.1:0".parse().expect("addr"), tls)
    }

    fn start_at(addr: SocketAddr, tls: &Tls) -> Node {
        Node::serve(Transport::bind(addr, tls, Options::default()).expect("binds"))
    }

    fn start_with(tls: &Tls, options: Options) -> Node {
        let addr = "127.0.0.1:0".parse().expect("addr");
        Node::serve(Transport::bind(addr, tls, options).expect("binds"))
    }

    fn serve(transport: Transport) -> Node {
        let recorder = Arc::new(Recorder::default());
        let serving = transport.clone();
        let handler = recorder.clone();
        tokio::spawn(async move { serving.serve(handler).await });
        Node {
            transport,
            recorder,
        }
    }

    fn addr(&self) -> String {
        self.transport.local_addr().to_string()
    }

    fn calls(&self) -> usize {
        self.recorder.calls.load(Ordering::SeqCst)
    }

    async fn client(&self, target: NodeId, addr: &str) -> PeerClient {
        let info = NodeInfo {
            cluster: addr.to_string(),
            admin: String::new(),
            incarnation: 1,
        };
        self.transport.network().new_client(target, &info).await
    }
}

fn vote_request() -> VoteRequest<NodeId> {
    VoteRequest::new(Vote::new(4, 2), None)
}

fn option(ttl: Duration) -> RPCOption {
    RPCOption::new(ttl)
}

/// Log lines written while a test runs. Tests run on a current-thread
/// runtime, so every task they spawn logs into the test's own capture.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A client config built by hand: trusting `ca_pem`, presenting the
/// certificate in `identity` (a node directory) or none.
fn hand_made_client(ca_pem: &Path, identity: Option<&Path>) -> quinn::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_pem).expect("ca.pem") {
        roots.add(cert.expect("cert")).expect("root");
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(dir) => {
            let chain = CertificateDer::pem_file_iter(dir.join(tls::NODE_CERT))
                .expect("node.pem")
                .collect::<Result<Vec<_>, _>>()
                .expect("certs");
            let key = PrivateKeyDer::from_pem_file(dir.join(tls::NODE_KEY)).expect("key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client auth")
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![tls::ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(config).expect("QUIC");
    quinn::ClientConfig::new(Arc::new(quic))
}

/// A bare quinn connection to node `node` at `addr`.
async fn raw_connect(
    config: quinn::ClientConfig,
    addr: &str,
    node: NodeId,
) -> Result<quinn::Connection, quinn::ConnectionError> {
    let mut endpoint =
        quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("client endpoint");
    endpoint.set_default_client_config(config);
    endpoint
        .connect(addr.parse().expect("addr"), &tls::node_name(node))
        .expect("connect")
        .await
}

/// One stream by hand: write `bytes` as they are, finish, read the answer.
/// A write refused by the server is not an error here: the answer (or the
/// reset) says what happened.
async fn raw_exchange(conn: &quinn::Connection, bytes: &[u8]) -> Result<Vec<u8>, FrameError> {
    let (mut send, mut recv) = conn
        .open_bi()
        .await
        .map_err(|e| FrameError::Read(quinn::ReadError::ConnectionLost(e)))?;
    let _ = send.write_all(bytes).await;
    let _ = send.finish();
    wire::read_frame(&mut recv, wire::MAX_APP).await
}

/// Connect to node 1 at `addr` by hand and ask for its status as `from`.
async fn handshake_then_status(
    config: quinn::ClientConfig,
    addr: &str,
    from: NodeId,
) -> Result<Vec<u8>, FrameError> {
    match raw_connect(config, addr, 1).await {
        Err(e) => Err(FrameError::Read(quinn::ReadError::ConnectionLost(e))),
        Ok(conn) => raw_exchange(&conn, &status_from(from)).await,
    }
}

/// Whether the server closed the connection with a TLS error saying `why`.
fn closed_by_tls(result: &Result<Vec<u8>, FrameError>, why: &str) -> bool {
    let Err(FrameError::Read(quinn::ReadError::ConnectionLost(
        quinn::ConnectionError::ConnectionClosed(close),
    ))) = result
    else {
        return false;
    };
    let code = u64::from(close.error_code);
    (0x100..0x200).contains(&code) && String::from_utf8_lossy(&close.reason).contains(why)
}

/// `value` encoded as one frame.
fn frame<T: serde::Serialize>(value: &T) -> Vec<u8> {
    raw_frame(&codec::encode(value).expect("encodes"))
}

fn raw_frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// A status request that node `from` sends by hand.
fn status_from(from: NodeId) -> Vec<u8> {
    [
        frame(&Head {
            from,
            rpc: Rpc::App,
        }),
        frame(&AppRequest::Status),
    ]
    .concat()
}

fn status_of(reply: &[u8]) -> PeerStatus {
    match codec::decode::<AppResponse>(reply).expect("decodes") {
        AppResponse::Status(status) => status,
        other => panic!("not a status: {other:?}"),
    }
}

fn is_reset(result: &Result<Vec<u8>, FrameError>, reset: Reset) -> bool {
    matches!(result, Err(FrameError::Reset(code)) if *code == reset.code())
}

#[tokio::test]
async fn mutual_tls_carries_app_requests_and_raft_rpcs_both_ways() {
    let certs = Certs::new();
    let (one, two) = (Node::start(&certs.tls(1)), Node::start(&certs.tls(2)));

    for _ in 0..5 {
        let reply = two
            .transport
            .call(1, &one.addr(), &AppRequest::Status)
            .await
            .expect("node 2 -> node 1");
        // The server saw the request as node 2's.
        assert_eq!(
            reply,
            AppResponse::Status(PeerStatus {
                node: 2,
                ..Default::default()
            })
        );
    }
    assert_eq!(one.calls(), 5);
    assert_eq!(
        two.transport.open_connections(),
        1,
        "node 2 keeps one connection to node 1"
    );

    let reply = one
        .transport
        .call(2, &two.addr(), &AppRequest::Status)
        .await
        .expect("node 1 -> node 2");
    assert_eq!(
        reply,
        AppResponse::Status(PeerStatus {
            node: 1,
            ..Default::default()
        })
    );

    // Node 2 now also holds the connection node 1 made to it.
    let before = two.transport.open_connections();
    assert_eq!(before, 2);
    let mut client = two.client(1, &one.addr()).await;
    let granted = client
        .vote(vote_request(), option(Duration::from_secs(5)))
        .await
        .expect("vote");
    assert!(granted.vote_granted);
    assert_eq!(granted.vote, Vote::new(4, 2));
    let appended = client
        .append_entries(
            AppendEntriesRequest {
                vote: Vote::new_committed(4, 2),
                prev_log_id: None,
                entries: vec![],
                leader_commit: None,
            },
            option(Duration::from_secs(5)),
        )
        .await
        .expect("append");
    assert_eq!(appended, AppendEntriesResponse::Success);
    assert_eq!(
        two.transport.open_connections(),
        before,
        "Raft RPCs share the connection"
    );
}

#[tokio::test]
async fn a_broken_connection_is_made_again() {
    let certs = Certs::new();
    let one = Node::start(&certs.tls(1));
    let two = Node::start(&certs.tls(2));
    let addr = one.transport.local_addr();
    two.transport
        .call(1, &addr.to_string(), &AppRequest::Status)
        .await
        .expect("first call");

    // Node 1 goes away and comes back on the same address.
    one.transport.shutdown().await;
    drop(one);
    let tls = certs.tls(1);
    let mut restarted = None;
    // The old endpoint lets go of its socket once its tasks have wound down.
    eventually("node 1's address is free again", || {
        restarted = Transport::bind(addr, &tls, Options::default()).ok();
        std::future::ready(restarted.is_some())
    })
    .await;
    let one = Node::serve(restarted.expect("bound"));
    eventually("node 2 reaches the restarted node 1", || async {
        two.transport
            .call(1, &addr.to_string(), &AppRequest::Status)
            .await
            .is_ok()
    })
    .await;
    assert_eq!(one.calls(), 1);
}

/// A node on a runtime of its own, so that a test can make it vanish as
/// `kill -9` does: its tasks stop at once, no CONNECTION_CLOSE goes out,
/// and its socket is released.
fn start_killable(tls: &Tls) -> (tokio::runtime::Runtime, Node) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let node = {
        let _inside = runtime.enter();
        Node::start(tls)
    };
    (runtime, node)
}

#[tokio::test]
async fn a_peer_killed_without_a_word_is_reached_soon_after_it_restarts() {
    let certs = Certs::new();
    let two = Node::start(&certs.tls(2));
    let (runtime, one) = start_killable(&certs.tls(1));
    let addr = one.transport.local_addr();
    two.transport
        .call(1, &addr.to_string(), &AppRequest::Status)
        .await
        .expect("first call");

    // kill -9: node 2 keeps a connection nobody will ever answer on.
    runtime.shutdown_background();
    drop(one);
    let tls = certs.tls(1);
    let mut restarted = None;
    eventually("node 1's address is free again", || {
        restarted = Transport::bind(addr, &tls, Options::default()).ok();
        std::future::ready(restarted.is_some())
    })
    .await;
    let one = Node::serve(restarted.expect("bound"));
    let started = Instant::now();
    eventually("node 2 reaches the restarted node 1", || async {
        two.transport
            .call_within(
                Some(1),
                &addr.to_string(),
                &AppRequest::Status,
                Duration::from_millis(200),
            )
            .await
            .is_ok()
    })
    .await;
    // A restarted follower that hears nothing from its leader for the
    // leader lease plus an election timeout (1.5 s at the least) campaigns,
    // and its higher term deposes the leader when they meet again.
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "reached after {:?}",
        started.elapsed()
    );
    assert_eq!(one.calls(), 1);
}

#[tokio::test]
async fn a_peer_with_a_cert_from_another_ca_is_refused() {
    let (logs, _guard) = Logs::capture();
    let certs = Certs::new();
    let stranger = Certs::new();
    let one = Node::start(&certs.tls(1));

    // A client that trusts our CA but presents a stranger's certificate:
    // node 1 refuses it.
    let config = hand_made_client(&certs.ca().join(tls::CA_CERT), Some(&stranger.node_dir(2)));
    let refused = handshake_then_status(config, &one.addr(), 2).await;
    assert!(closed_by_tls(&refused, "UnknownIssuer"), "{refused:?}");
    eventually("node 1 logs the refused handshake", || async {
        logs.text().contains("TLS handshake failed")
    })
    .await;

    // A node of another cluster does not trust node 1 either: the
    // handshake fails on its side already.
    let other = Node::start(&stranger.tls(2));
    let err = other
        .transport
        .call(1, &one.addr(), &AppRequest::Status)
        .await
        .expect_err("another cluster's node");
    assert!(matches!(err, TransportError::Handshake { .. }), "{err}");
    assert!(err.is_unreachable());

    // A stranger that trusts our CA too (as in a CA rotation that node 1
    // has not joined): only node 1 refuses, after the stranger considers
    // the handshake done. It still reads as a refused handshake, so Raft
    // backs off.
    let dir = stranger.node_dir(2);
    let bundle = [
        std::fs::read(dir.join(tls::CA_CERT)).expect("stranger CA"),
        std::fs::read(certs.ca().join(tls::CA_CERT)).expect("our CA"),
    ]
    .concat();
    std::fs::write(dir.join(tls::CA_CERT), bundle).expect("bundle");
    let trusting = Node::start(&tls::load(&dir, 2).expect("loads"));
    let err = trusting
        .transport
        .call(1, &one.addr(), &AppRequest::Status)
        .await
        .expect_err("node 1 does not trust the stranger");
    assert!(matches!(err, TransportError::Handshake { .. }), "{err}");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    let mut client = trusting.client(1, &one.addr()).await;
    let err = client
        .vote(vote_request(), option(Duration::from_secs(5)))
        .await
        .expect_err("refused");
    assert!(matches!(err, RPCError::Unreachable(_)), "{err}");
    assert_eq!(one.calls(), 0);
}

#[tokio::test]
async fn nodes_of_two_cas_talk_while_both_are_trusted() {
    // A CA rotation half done: node 1 still has an old-CA certificate,
    // node 2 already a new-CA one, and both trust both CAs.
    let (old, new) = (Certs::new(), Certs::new());
    let bundle = [
        std::fs::read(old.ca().join(tls::CA_CERT)).expect("old CA"),
        std::fs::read(new.ca().join(tls::CA_CERT)).expect("new CA"),
    ]
    .concat();
    let (dir1, dir2) = (old.node_dir(1), new.node_dir(2));
    for dir in [&dir1, &dir2] {
        std::fs::write(dir.join(tls::CA_CERT), &bundle).expect("bundle");
    }
    let one = Node::start(&tls::load(&dir1, 1).expect("node 1"));
    let two = Node::start(&tls::load(&dir2, 2).expect("node 2"));
    let reply = two
        .transport
        .call(1, &one.addr(), &AppRequest::Status)
        .await
        .expect("new CA -> old CA");
    assert_eq!(
        reply,
        AppResponse::Status(PeerStatus {
            node: 2,
            ..Default::default()
        })
    );
    let reply = one
        .transport
        .call(2, &two.addr(), &AppRequest::Status)
        .await
        .expect("old CA -> new CA");
    assert_eq!(
        reply,
        AppResponse::Status(PeerStatus {
            node: 1,
            ..Default::default()
        })
    );
}

#[tokio::test]
async fn a_peer_without_a_client_cert_is_refused() {
    let (logs, _guard) = Logs::capture();
    let certs = Certs::new();
    let one = Node::start(&certs.tls(1));
    let config = hand_made_client(&certs.ca().join(tls::CA_CERT), None);
    let refused = handshake_then_status(config, &one.addr(), 2).await;
    assert!(
        closed_by_tls(&refused, "peer sent no certificates"),
        "{refused:?}"
    );
    assert_eq!(one.calls(), 0);
    eventually("node 1 logs the refused handshake", || async {
        logs.text().contains("TLS handshake failed")
    })
    .await;

    // The same hand-made client with a certificate is served: the refusal
    // above is about the missing certificate, not the hand-made client.
    let config = hand_made_client(&certs.ca().join(tls::CA_CERT), Some(&certs.node_dir(2)));
    let conn = raw_connect(config, &one.addr(), 1).await.expect("connects");
    let reply = raw_exchange(&conn, &status_from(2)).await.expect("served");
    assert_eq!(status_of(&reply).node, 2);
}

#[tokio::test]
async fn a_peer_claiming_another_node_id_is_refused() {
    let (logs, _guard) = Logs::capture();
    let certs = Certs::new();
    let one = Node::start(&certs.tls(1));
    // Node 5's certificate, speaking for node 2.
    let conn = raw_connect(certs.tls(5).client, &one.addr(), 1)
        .await
        .expect("node 5 is a member");
    let refused = raw_exchange(&conn, &status_from(2)).await;
    assert!(is_reset(&refused, Reset::NotAuthorized), "{refused:?}");
    assert_eq!(one.calls(), 0);
    eventually("node 1 logs the false claim", || async {
        let logs = logs.text();
        logs.contains("claimed=2") && logs.contains("not valid for node-2.shoal")
    })
    .await;

    // Speaking for itself on the same connection, node 5 is served.
    let reply = raw_exchange(&conn, &status_from(5)).await.expect("served");
    assert_eq!(status_of(&reply).node, 5);
}

#[tokio::test]
async fn a_server_answering_as_another_node_is_refused() {
    let certs = Certs::new();
    let one = Node::start(&certs.tls(1));
    let two = Node::start(&certs.tls(2));

    // Node 2 believes node 3 is at node 1's address.
    let err = two
        .transport
        .call(3, &one.addr(), &AppRequest::Status)
        .await
        .expect_err("node 1 is not node 3");
    assert!(matches!(err, TransportError::Handshake { .. }), "{err}");
    assert!(err.to_string().contains("node-3.shoal"), "{err}");

    let mut client = two.client(3, &one.addr()).await;
    let err = client
        .vote(vote_request(), option(Duration::from_secs(5)))
        .await
        .expect_err("node 1 is not node 3");
    assert!(matches!(err, RPCError::Unreachable(_)), "{err}");
    assert_eq!(one.calls(), 0);
}

#[tokio::test]
async fn an_oversized_frame_resets_only_its_stream() {
    let (logs, _guard) = Logs::capture();
    let certs = Certs::new();
    let one = Node::start(&certs.tls(1));
    let two = Node::start(&certs.tls(2));
    let conn = raw_connect(certs.tls(2).client, &one.addr(), 1)
        .await
        .expect("connects");

    // A vote request announcing one byte more than a vote may have.
    let mut oversized = frame(&Head {
        from: 2,
        rpc: Rpc::Vote,
    });
    oversized.extend_from_slice(&(wire::MAX_VOTE as u32 + 1).to_be_bytes());
    oversized.extend_from_slice(&[0u8; 1024]);
    let refused = raw_exchange(&conn, &oversized).await;
    assert!(is_reset(&refused, Reset::TooLarge), "{refused:?}");

    // An oversized head, and garbage where a request belongs.
    let refused = raw_exchange(&conn, &raw_frame(&[0u8; wire::MAX_HEAD + 1])).await;
    assert!(is_reset(&refused, Reset::TooLarge), "{refused:?}");
    let garbage = [
        frame(&Head {
            from: 2,
            rpc: Rpc::App,
        }),
        raw_frame(&[0xff; 16]),
    ]
    .concat();
    let refused = raw_exchange(&conn, &garbage).await;
    assert!(is_reset(&refused, Reset::Malformed), "{refused:?}");
    assert_eq!(one.calls(), 0);

    // The same connection and the endpoint go on.
    let reply = raw_exchange(&conn, &status_from(2)).await.expect("served");
    assert_eq!(status_of(&reply).node, 2);
    two.transport
        .call(1, &one.addr(), &AppRequest::Status)
        .await
        .expect("endpoint still serves");
    assert_eq!(one.calls(), 2);
    assert!(logs.text().contains("over its limit"), "{}", logs.text());
}

#[tokio::test]
async fn a_stalled_stream_is_reset_after_its_timeout() {
    let (logs, _guard) = Logs::capture();
    let certs = Certs::new();
    let options = Options {
        stream_timeout: Duration::from_millis(300),
        ..Options::default()
    };
    let one = Node::start_with(&certs.tls(1), options);
    let conn = raw_connect(certs.tls(2).client, &one.addr(), 1)
        .await
        .expect("connects");

    // Half a length prefix, then nothing: the stream is open and idle.
    let (mut send, mut recv) = conn.open_bi().await.expect("stream");
    send.write_all(&[0, 0]).await.expect("writes");
    let started = Instant::now();
    let stalled = wire::read_frame(&mut recv, wire::MAX_APP).await;
    assert!(is_reset(&stalled, Reset::Timeout), "{stalled:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    assert!(
        logs.text().contains(&Reset::Timeout.to_string()),
        "{}",
        logs.text()
    );

    // The connection goes on.
    let reply = raw_exchange(&conn, &status_from(2)).await.expect("served");
    assert_eq!(status_of(&reply).node, 2);
}

#[tokio::test]
async fn an_unreachable_peer_is_unreachable_within_its_timeout() {
    let certs = Certs::new();
    let two = Node::start(&certs.tls(2));
    // A UDP port that is bound (so no other test gets it) but never answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let silent = silent.local_addr().expect("addr").to_string();

    let mut client = two.client(1, &silent).await;
    let started = Instant::now();
    let err = client
        .vote(vote_request(), option(Duration::from_millis(400)))
        .await
        .expect_err("nobody answers");
    assert!(matches!(err, RPCError::Unreachable(_)), "{err}");
    // soft_ttl is 300 ms; allow a busy machine plenty beyond it.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    let started = Instant::now();
    let err = two
        .transport
        .call_within(
            Some(1),
            &silent,
            &AppRequest::Status,
            Duration::from_millis(300),
        )
        .await
        .expect_err("nobody answers");
    assert!(err.is_unreachable(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // openraft waits longer and longer between tries, up to a cap.
    let pauses: Vec<Duration> = client.backoff().take(12).collect();
    assert!(pauses.windows(2).all(|w| w[0] <= w[1]), "{pauses:?}");
    assert!(pauses[1] > pauses[0], "{pauses:?}");
    assert_eq!(pauses[11], Options::default().backoff_max);
}

#[tokio::test]
async fn an_unreachable_peer_is_retried_before_it_would_campaign() {
    let certs = Certs::new();
    let two = Node::start(&certs.tls(2));
    let client = two.client(1, "127.0.0.1:9").await;
    // However long the outage, the leader tries again well within the
    // 1.5 s after which a restarted follower that heard nothing campaigns.
    let longest = client.backoff().take(50).max().expect("pauses");
    assert!(longest <= Duration::from_millis(500), "{longest:?}");
}

fn snapshot_meta() -> SnapshotMeta<NodeId, NodeInfo> {
    let log_id = LogId::new(CommittedLeaderId::new(4, 2), 77);
    let nodes = BTreeMap::from([(2, NodeInfo::default())]);
    let membership = Membership::new(vec![[2].into()], nodes);
    SnapshotMeta {
        last_log_id: Some(log_id),
        last_membership: StoredMembership::new(Some(log_id), membership),
        snapshot_id: "4-77-test".into(),
    }
}

/// Bytes that differ all along, so a lost, repeated or swapped chunk shows.
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

#[tokio::test]
async fn a_snapshot_of_several_mib_streams_across_intact() {
    let certs = Certs::new();
    let one = Node::start(&certs.tls(1));
    let two = Node::start(&certs.tls(2));
    let data = pattern((5 << 20) + 12_345);
    let snapshot = wire::Snapshot {
        meta: snapshot_meta(),
        snapshot: Box::new(Cursor::new(data.clone())),
    };
    let vote = Vote::new_committed(4, 2);
    let mut client = two.client(1, &one.addr()).await;
    let reply = client
        .full_snapshot(
            vote,
            snapshot,
            std::future::pending::<ReplicationClosed>(),
            option(Duration::from_secs(10)),
        )
        .await
        .expect("installed");
    assert_eq!(reply.vote, vote);

    let received = one.recorder.snapshots.lock().expect("lock");
    let [(from, got_vote, got)] = received.as_slice() else {
        panic!("{} snapshots arrived", received.len());
    };
    assert_eq!((*from, *got_vote), (2, vote));
    assert_eq!(got.meta, snapshot_meta());
    assert_eq!(got.snapshot.get_ref().len(), data.len());
    assert!(*got.snapshot.get_ref() == data, "the bytes differ");
}

#[tokio::test]
async fn a_snapshot_out_of_bounds_is_reset() {
    let certs = Certs::new();
    let one = Node::start(&certs.tls(1));
    let conn = raw_connect(certs.tls(2).client, &one.addr(), 1)
        .await
        .expect("connects");
    let head = |len: u64| {
        [
            frame(&Head {
                from: 2,
                rpc: Rpc::Snapshot,
            }),
            frame(&SnapshotHead {
                vote: Vote::new_committed(4, 2),
                meta: snapshot_meta(),
                len,
            }),
        ]
        .concat()
    };

    // Over the total cap: refused before any byte of it is read.
    let refused = raw_exchange(&conn, &head(wire::MAX_SNAPSHOT + 1)).await;
    assert!(is_reset(&refused, Reset::TooLarge), "{refused:?}");

    // A chunk over 1 MiB.
    let big = [head(4 << 20), raw_frame(&vec![7u8; wire::MAX_CHUNK + 1])].concat();
    let refused = raw_exchange(&conn, &big).await;
    assert!(is_reset(&refused, Reset::TooLarge), "{refused:?}");

    // Chunks adding up to less than announced.
    let short = [head(3000), raw_frame(&[7u8; 1000])].concat();
    let refused = raw_exchange(&conn, &short).await;
    assert!(is_reset(&refused, Reset::Malformed), "{refused:?}");

    assert!(one.recorder.snapshots.lock().expect("lock").is_empty());
    let reply = raw_exchange(&conn, &status_from(2)).await.expect("served");
    assert_eq!(status_of(&reply).node, 2);
}

#[tokio::test]
async fn loading_another_nodes_certificate_fails_clearly() {
    let certs = Certs::new();
    let dir = certs.node_dir(2);
    let err = tls::load(&dir, 1).expect_err("node 2's certificate");
    assert!(matches!(err, TlsError::WrongNode { node: 1, .. }), "{err}");
    let message = err.to_string();
    assert!(!message.contains('\n'), "one line: {message}");
    assert!(
        message.contains(&dir.join(tls::NODE_CERT).display().to_string()),
        "names the file: {message}"
    );
    assert!(message.contains("node-1.shoal"), "{message}");
}
