//! TCP mode through real processes, beside the real HAProxy 2.6 with the
//! same config: per-side inactivity timeouts (a server that never reads,
//! `timeout tunnel`, `client-fin`, `server-fin`) end a connection at the
//! same time and with the same termination state, and peers that write at
//! the same time never deadlock.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the test server does with each connection.
#[derive(Clone, Copy)]
enum Peer {
    /// Accept and hold the connection; never read, never write.
    Idle,
    /// Send FIN at once, then hold the connection.
    Fin,
}

/// A server on a kernel-chosen port that keeps every connection open.
async fn test_server(peer: Peer) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let held = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            if let Peer::Fin = peer {
                let _ = stream.shutdown().await;
            }
            held.lock().expect("held").push(stream);
        }
    });
    addr
}

/// Shoal and HAProxy running `body` (defaults and a `listen l`) with a
/// tcplog on stdout; returns both and their addresses.
fn both(body: &str) -> (Shoal, Haproxy, SocketAddr, SocketAddr) {
    // HAProxy's copy of the listener is its own once it runs.
    let log = "global\n    log stdout format raw local0\n";
    let shoal = Shoal::start(
        &format!("{log}{}", body.replace("@BIND@", "127.0.0.1:0")),
        &["l"],
    );
    // The socket lives in Shoal's scratch directory, removed with it.
    let sock = shoal.dir.0.join("h.sock");
    let listener = Inherited::new();
    let cfg = format!(
        "{log}    stats socket {}\n{}",
        sock.display(),
        body.replace("@BIND@", &listener.bind())
    );
    let haproxy = Haproxy::start(&cfg, &sock);
    let s = shoal.addr("l");
    (shoal, haproxy, s, listener.addr)
}

/// The `Tt` and termination state of the tcplog line for the connection
/// from `client`.
fn logged(proc: &mut Proc, client: SocketAddr) -> (i64, String) {
    let line = proc.wait_line(&format!("{client} ["));
    let fields: Vec<&str> = line.split(' ').collect();
    let tt = fields
        .get(4)
        .and_then(|t| t.rsplit('/').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("timers in {line}"));
    (tt, fields.get(6).unwrap_or(&"").to_string())
}

fn config(timeouts: &str, server: SocketAddr) -> String {
    format!(
        "defaults\n    mode tcp\n    log global\n    option tcplog\n    timeout connect 1s\n{timeouts}\
         listen l\n    bind @BIND@\n    server s {server}\n"
    )
}

/// Write until the proxy cuts the connection; returns how long that took
/// and the client's address.
async fn write_until_cut(addr: SocketAddr) -> (Duration, SocketAddr) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let me = s.local_addr().expect("local address");
    let started = Instant::now();
    let chunk = vec![b'x'; 64 * 1024];
    let cut = async { while s.write_all(&chunk).await.is_ok() {} };
    tokio::time::timeout(DEADLINE, cut)
        .await
        .expect("the proxy cut the connection in time");
    (started.elapsed(), me)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_reads_is_cut_after_timeout_server_like_haproxy() {
    let sink = test_server(Peer::Idle).await;
    let cfg = config("    timeout client 1s\n    timeout server 1s\n", sink);
    let (mut shoal, mut haproxy, s_addr, h_addr) = both(&cfg);
    let ((shoal_took, s_me), (haproxy_took, h_me)) =
        tokio::join!(write_until_cut(s_addr), write_until_cut(h_addr));
    let (s_tt, s_term) = logged(&mut shoal.proc, s_me);
    let (h_tt, h_term) = logged(&mut haproxy.proc, h_me);
    assert_eq!(h_term, "sD", "haproxy");
    assert_eq!(s_term, "sD", "shoal (haproxy: {h_term} after {h_tt} ms)");
    // The write stalls once the socket buffers are full; a second later
    // the server side has been inactive for `timeout server`.
    assert!(
        shoal_took < haproxy_took + Duration::from_millis(1500),
        "shoal cut after {shoal_took:?}, haproxy after {haproxy_took:?}"
    );
    assert!(s_tt >= 1000, "shoal Tt {s_tt}");
}

/// Connect, optionally send FIN, and read until end of stream (the proxy
/// closing, or the server's FIN passed on). The connection is returned
/// open: the proxy's log line says when it ended the session.
async fn read_to_end(addr: SocketAddr, fin: bool) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    if fin {
        s.shutdown().await.expect("fin");
    }
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, s.read_to_end(&mut buf))
        .await
        .expect("end of stream in time");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_and_fin_timeouts_end_connections_like_haproxy() {
    // (timeouts, what the server does, whether the client sends FIN,
    // terminations HAProxy 2.6 logs). Both sides of an idle tunnel expire
    // together; HAProxy blames either, depending on which timer it sees
    // first.
    let cases: [(&str, Peer, bool, &[&str]); 3] = [
        (
            "    timeout tunnel 500ms\n",
            Peer::Idle,
            false,
            &["cD", "sD"],
        ),
        ("    timeout server-fin 500ms\n", Peer::Idle, true, &["sD"]),
        ("    timeout client-fin 500ms\n", Peer::Fin, false, &["cD"]),
    ];
    for (extra, peer, fin, want) in cases {
        let server = test_server(peer).await;
        let cfg = config(
            &format!("    timeout client 10s\n    timeout server 10s\n{extra}"),
            server,
        );
        let (mut shoal, mut haproxy, s_addr, h_addr) = both(&cfg);
        let (s_conn, h_conn) = tokio::join!(read_to_end(s_addr, fin), read_to_end(h_addr, fin));
        let (h_tt, h_term) = logged(&mut haproxy.proc, h_conn.local_addr().expect("addr"));
        let (s_tt, s_term) = logged(&mut shoal.proc, s_conn.local_addr().expect("addr"));
        // On a busy machine HAProxy may see the client's FIN before its own
        // connect to the server finished and log `CC` instead; that is
        // HAProxy's timing, not what this test compares Shoal against.
        let haproxy_raced = fin && h_term == "CC";
        assert!(
            want.contains(&h_term.as_str()) || haproxy_raced,
            "haproxy: {h_term} with{extra}"
        );
        assert!(
            want.contains(&s_term.as_str()),
            "shoal: {s_term} with{extra}"
        );
        // When HAProxy raced (`CC` at once) its Tt says nothing about the
        // timeout: compare Shoal's with the configured 500 ms alone.
        let near_haproxy = haproxy_raced || (s_tt - h_tt).abs() < 400;
        assert!(
            near_haproxy && (450..1500).contains(&s_tt),
            "with{extra}: shoal Tt {s_tt} ms, haproxy {h_tt} ms ({h_term})"
        );
    }
}

/// Small socket buffers (set before connecting or listening, which turns
/// off autotuning), so that little data fills a direction.
fn small_buffers(socket: &tokio::net::TcpSocket) {
    socket.set_send_buffer_size(64 * 1024).expect("sndbuf");
    socket.set_recv_buffer_size(64 * 1024).expect("rcvbuf");
}

/// Write `total` bytes of `byte` in 64 KB chunks.
async fn send(w: &mut (impl AsyncWriteExt + Unpin), byte: u8, total: usize) {
    let chunk = vec![byte; 64 * 1024];
    let mut sent = 0;
    while sent < total {
        w.write_all(&chunk).await.expect("write");
        sent += chunk.len();
    }
}

/// Read until end of stream; returns how many bytes were `byte`.
async fn receive(r: &mut (impl AsyncReadExt + Unpin), byte: u8) -> usize {
    let mut buf = vec![0u8; 64 * 1024];
    let mut count = 0;
    loop {
        let n = r.read(&mut buf).await.expect("read");
        if n == 0 {
            return count;
        }
        count += buf[..n].iter().filter(|&&b| b == byte).count();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_writing_at_the_same_time_do_not_deadlock() {
    // The server writes its whole answer before it reads anything; the
    // client writes its request and reads at the same time. More than the
    // socket buffers hold goes each way. The old copy loop blocked on the
    // write to the server and so never read the answer: both stalled.
    const SIZE: usize = 32 << 20;
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    small_buffers(&socket);
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let listener = socket.listen(16).expect("listen");
    let server_addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.expect("accept");
        send(&mut s, b's', SIZE).await;
        s.shutdown().await.expect("server fin");
        receive(&mut s, b'c').await
    });
    let cfg = config(
        "    timeout client 10s\n    timeout server 10s\n",
        server_addr,
    )
    .replace("@BIND@", "127.0.0.1:0");
    let shoal = Shoal::start(&cfg, &["l"]);
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    small_buffers(&socket);
    let client = socket.connect(shoal.addr("l")).await.expect("connect");
    let (mut rd, mut wr) = client.into_split();
    let writer = tokio::spawn(async move {
        send(&mut wr, b'c', SIZE).await;
        wr.shutdown().await.expect("client fin");
        wr
    });
    let got = tokio::time::timeout(DEADLINE, receive(&mut rd, b's'))
        .await
        .expect("no deadlock");
    assert_eq!(got, SIZE);
    let _wr = tokio::time::timeout(DEADLINE, writer)
        .await
        .expect("request sent")
        .expect("writer");
    let server_got = tokio::time::timeout(DEADLINE, server)
        .await
        .expect("server done")
        .expect("server");
    assert_eq!(server_got, SIZE, "server got the request");
}
