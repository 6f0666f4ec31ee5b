//! The copy engine through real loopback sockets: independent directions,
//! per-side inactivity timeouts, half-close and aborts.

use crate::tcp::tunnel as tunnel_fn;
use shoal_proto::config::Timeouts;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Generous bound for anything that should happen (busy CI machines).
const DEADLINE: Duration = Duration::from_secs(20);

/// Two connected sockets.
async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (a, b) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (a.expect("connect"), b.expect("accept").0)
}

/// A tunnel between a client and a server socket; returns the outer ends
/// (the client's and the server's) and the running tunnel.
async fn tunnel(t: Timeouts) -> (TcpStream, TcpStream, JoinHandle<(u64, u64, &'static str)>) {
    let (client, client_side) = pair().await;
    let (server_side, server) = pair().await;
    let task = tokio::spawn(async move { tunnel_fn(client_side, server_side, &t).await });
    (client, server, task)
}

async fn finish(task: JoinHandle<(u64, u64, &'static str)>) -> (u64, u64, &'static str) {
    tokio::time::timeout(DEADLINE, task)
        .await
        .expect("tunnel ended in time")
        .expect("tunnel task")
}

fn timeouts(client: u64, server: u64) -> Timeouts {
    Timeouts {
        client: Some(Duration::from_millis(client)),
        server: Some(Duration::from_millis(server)),
        ..Timeouts::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_writes_before_reading_does_not_deadlock_the_tunnel() {
    // The server writes its whole answer before reading anything, while
    // the client sends its whole request and reads at the same time. Over
    // a direct connection this completes; a copy loop that blocks on one
    // direction's write while the other direction is full deadlocks.
    const SIZE: usize = 8 << 20;
    let (client, mut server, task) = tunnel(timeouts(10_000, 10_000)).await;
    let server_side = tokio::spawn(async move {
        server
            .write_all(&vec![b's'; SIZE])
            .await
            .expect("server write");
        let mut got = vec![0u8; SIZE];
        server.read_exact(&mut got).await.expect("server read");
        assert!(got.iter().all(|&b| b == b'c'));
        server.shutdown().await.expect("server shutdown");
    });
    let (mut rd, mut wr) = client.into_split();
    let writer = tokio::spawn(async move {
        wr.write_all(&vec![b'c'; SIZE]).await.expect("client write");
        wr.shutdown().await.expect("client shutdown");
        wr
    });
    let mut got = Vec::new();
    tokio::time::timeout(DEADLINE, rd.read_to_end(&mut got))
        .await
        .expect("no deadlock")
        .expect("client read");
    assert_eq!(got.len(), SIZE);
    let _wr = writer.await.expect("writer");
    server_side.await.expect("server");
    assert_eq!(finish(task).await, (SIZE as u64, SIZE as u64, "--"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_reads_ends_in_server_timeout() {
    // HAProxy 2.6 with `timeout client 1s` / `timeout server 1s` cuts this
    // 1.0 s after the last progress, as `sD`.
    let (mut client, _server, task) = tunnel(timeouts(10_000, 300)).await;
    let started = Instant::now();
    let chunk = vec![b'x'; 64 * 1024];
    let write = async { while client.write_all(&chunk).await.is_ok() {} };
    let _ = tokio::time::timeout(DEADLINE, write).await;
    let (up, down, end) = finish(task).await;
    assert_eq!(end, "sD");
    assert!(up > 0 && down == 0, "{up} {down}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sides_time_out_with_their_own_timeout() {
    for (t, want) in [
        (timeouts(200, 10_000), "cD"),
        (timeouts(10_000, 200), "sD"),
        // `timeout tunnel` replaces both; an idle tunnel is blamed on the
        // client, as HAProxy logs it.
        (
            Timeouts {
                tunnel: Some(Duration::from_millis(200)),
                ..timeouts(10_000, 10_000)
            },
            "cD",
        ),
    ] {
        let (_client, _server, task) = tunnel(t).await;
        let started = Instant::now();
        let (_, _, end) = finish(task).await;
        let took = started.elapsed();
        assert_eq!(end, want);
        assert!(took >= Duration::from_millis(190), "{want} after {took:?}");
        assert!(took < Duration::from_secs(5), "{want} after {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_one_way_keeps_both_sides_alive() {
    // A download: the client never sends, but it reads, and a write to a
    // side refreshes the read waiting on that side.
    let (mut client, mut server, task) = tunnel(timeouts(300, 300)).await;
    let feed = tokio::spawn(async move {
        for _ in 0..12 {
            server.write_all(b"tick\n").await.expect("server write");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server.shutdown().await.expect("shutdown");
        server
    });
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while got.len() < 60 {
        let n = tokio::time::timeout(DEADLINE, client.read(&mut buf))
            .await
            .expect("read in time")
            .expect("read");
        assert!(n > 0, "closed after {} bytes", got.len());
        got.extend_from_slice(&buf[..n]);
    }
    let _server = feed.await.expect("feed");
    client.shutdown().await.expect("client shutdown");
    assert_eq!(finish(task).await, (0, 60, "--"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_passes_through_in_both_orders() {
    let (mut client, mut server, task) = tunnel(timeouts(10_000, 10_000)).await;
    client.write_all(b"request").await.expect("write");
    client.shutdown().await.expect("client fin");
    let mut req = Vec::new();
    server
        .read_to_end(&mut req)
        .await
        .expect("server reads to fin");
    assert_eq!(req, b"request");
    // The server still answers after the client's FIN.
    server.write_all(b"answer").await.expect("answer");
    server.shutdown().await.expect("server fin");
    let mut resp = Vec::new();
    client
        .read_to_end(&mut resp)
        .await
        .expect("client reads to fin");
    assert_eq!(resp, b"answer");
    assert_eq!(finish(task).await, (7, 6, "--"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fin_timeouts_apply_once_a_direction_has_shut() {
    let fin = |client_fin: Option<u64>, server_fin: Option<u64>| Timeouts {
        client_fin: client_fin.map(Duration::from_millis),
        server_fin: server_fin.map(Duration::from_millis),
        ..timeouts(10_000, 10_000)
    };
    // The server finished (FIN passed to the client): reading from the
    // client now uses `timeout client-fin`.
    let (mut client, server, task) = tunnel(fin(Some(200), None)).await;
    let mut server = server;
    server.shutdown().await.expect("server fin");
    let mut buf = Vec::new();
    client.read_to_end(&mut buf).await.expect("client sees fin");
    let started = Instant::now();
    assert_eq!(finish(task).await.2, "cD");
    assert!(started.elapsed() < Duration::from_secs(5));

    // The client finished: reading from the server uses `server-fin`.
    let (mut client, mut server, task) = tunnel(fin(None, Some(200))).await;
    client.shutdown().await.expect("client fin");
    let mut buf = Vec::new();
    server.read_to_end(&mut buf).await.expect("server sees fin");
    let started = Instant::now();
    assert_eq!(finish(task).await.2, "sD");
    assert!(started.elapsed() < Duration::from_secs(5));

    // Without `timeout tunnel`, `client-fin` does not apply to reading
    // from the server after the client's FIN (HAProxy: `sD` after
    // `timeout server`).
    let t = Timeouts {
        client_fin: Some(Duration::from_millis(100)),
        ..timeouts(10_000, 400)
    };
    let (mut client, _server, task) = tunnel(t).await;
    client.shutdown().await.expect("client fin");
    let started = Instant::now();
    assert_eq!(finish(task).await.2, "sD");
    assert!(started.elapsed() >= Duration::from_millis(380));
}

/// Make closing send a RST instead of a FIN.
fn reset_on_close(s: &TcpStream) {
    socket2::SockRef::from(s)
        .set_linger(Some(Duration::ZERO))
        .expect("linger");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_is_an_abort_of_that_side() {
    let (client, _server, task) = tunnel(timeouts(10_000, 10_000)).await;
    reset_on_close(&client);
    drop(client);
    assert_eq!(finish(task).await.2, "CD");

    let (_client, server, task) = tunnel(timeouts(10_000, 10_000)).await;
    reset_on_close(&server);
    drop(server);
    assert_eq!(finish(task).await.2, "SD");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_timeouts_an_idle_tunnel_stays_open() {
    let (mut client, mut server, task) = tunnel(Timeouts::default()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!task.is_finished());
    client.write_all(b"late").await.expect("write");
    let mut buf = [0u8; 4];
    server.read_exact(&mut buf).await.expect("read");
    assert_eq!(&buf, b"late");
    drop(client);
    drop(server);
    assert_eq!(finish(task).await.2, "--");
}
