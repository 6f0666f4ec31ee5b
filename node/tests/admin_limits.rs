//! The admin API's bounds, through raw sockets against a real `shoal`:
//! slow bodies are cut with 408, idle and half-sent connections are
//! closed, oversized bodies get 413, and probes answer promptly while
//! hundreds of connections sit idle or half-sent.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "limits-token";
/// The server's bounds (node/src/api/admin.rs).
const MAX_CONNECTIONS: usize = 256;
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BODY: usize = 1024 * 1024;

fn start() -> (Shoal, SocketAddr, Backend) {
    let backend = Backend::http("s1");
    let config = format!(
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n\
         frontend fe\n    bind 127.0.0.1:0\n    default_backend app\n\
         backend app\n    server s1 {}\n",
        backend.addr
    );
    let mut shoal = Shoal::start_with_env(
        &config,
        &["fe"],
        &["--admin", "127.0.0.1:0"],
        &[("SHOAL_ADMIN_TOKEN", TOKEN)],
    );
    let admin = shoal.admin_addr();
    (shoal, admin, backend)
}

async fn connect(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    s
}

/// Read until the peer closes (EOF or reset), within `within`; returns
/// what arrived, or `None` if the connection is still open by then.
async fn read_until_closed(s: &mut TcpStream, within: Duration) -> Option<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let end = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(end, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&out).into_owned()),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Read one response with a `Content-Length` body; returns its status line.
async fn read_response(s: &mut TcpStream) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(DEADLINE, s.read(&mut buf))
            .await
            .expect("answer in time")
            .ok()?;
        if n == 0 {
            return None;
        }
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().expect("length"))
            })
            .expect("content-length");
        if body.len() >= length {
            return head.lines().next().map(str::to_string);
        }
    }
}

fn put_weight_head(length: usize, extra: &str) -> String {
    format!(
        "PUT /v1/backends/app/servers/s1/weight HTTP/1.1\r\nHost: admin\r\n\
         Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n{extra}\
         Content-Length: {length}\r\n\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_body_is_answered_408_and_closed() {
    let (_shoal, admin, _backend) = start();
    let body = r#"{"weight": 5}"#;
    // The head and half the body, then nothing.
    let mut bytes = put_weight_head(body.len(), "").into_bytes();
    bytes.extend_from_slice(&body.as_bytes()[..5]);
    let started = Instant::now();
    let mut s = connect(admin, &bytes).await;
    let answer = read_until_closed(&mut s, BODY_TIMEOUT + Duration::from_secs(5))
        .await
        .expect("the slow-body connection is closed within the body timeout");
    let took = started.elapsed();
    assert!(
        answer.starts_with("HTTP/1.1 408 "),
        "408 before closing: {answer:?}"
    );
    assert!(answer.contains("\"error\""), "{answer}");
    assert!(
        took >= BODY_TIMEOUT - Duration::from_millis(500),
        "cut before the bound: {took:?}"
    );
    // Nothing was applied.
    let r = get_with(
        admin,
        "/v1/backends/app/servers/s1",
        &[("authorization", &format!("Bearer {TOKEN}"))],
    )
    .await;
    assert!(r.body.contains("\"weight\": 1,"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_sent_connections_are_closed() {
    let (_shoal, admin, _backend) = start();
    let started = Instant::now();
    let mut silent = connect(admin, b"").await;
    let mut half = connect(admin, b"GET /v1/backends HTTP/1.1\r\nHost: admin\r\n").await;
    let mut kept = connect(admin, b"GET /live HTTP/1.1\r\nHost: admin\r\n\r\n").await;
    assert_eq!(
        read_response(&mut kept).await.as_deref(),
        Some("HTTP/1.1 200 OK")
    );
    for (what, s) in [
        ("silent", &mut silent),
        ("half-sent head", &mut half),
        ("idle keep-alive", &mut kept),
    ] {
        let left = (IDLE_TIMEOUT + Duration::from_secs(5)).saturating_sub(started.elapsed());
        assert!(
            read_until_closed(s, left).await.is_some(),
            "{what} connection still open after {:?}",
            started.elapsed()
        );
    }
    assert!(
        started.elapsed() >= IDLE_TIMEOUT - Duration::from_millis(500),
        "closed before the idle bound: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_get_413() {
    let (_shoal, admin, _backend) = start();
    // Declared too large: refused before reading it.
    let mut s = connect(admin, put_weight_head(2 * MAX_BODY, "").as_bytes()).await;
    let answer = read_until_closed(&mut s, DEADLINE)
        .await
        .expect("closed after 413");
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer:?}");
    assert!(answer.contains("connection: close"), "{answer}");

    // Chunked, no length: cut when it passes the limit. The body is sent
    // while the answer is read, since the server answers before the end.
    let head =
        put_weight_head(0, "Transfer-Encoding: chunked\r\n").replace("Content-Length: 0\r\n", "");
    let mut s = connect(admin, head.as_bytes()).await;
    let (mut rd, mut wr) = s.split();
    let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "x".repeat(64 * 1024));
    let write = async {
        for _ in 0..(2 * MAX_BODY / (64 * 1024)) {
            if wr.write_all(chunk.as_bytes()).await.is_err() {
                break;
            }
        }
    };
    let read = async {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&out).contains("\r\n\r\n") {
            match tokio::time::timeout(DEADLINE, rd.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    let ((), answer) = tokio::join!(write, read);
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer:?}");

    // A body within the limit is still read whole (and refused on its merits).
    let body = format!(r#"{{"weight":1,"pad":"{}"}}"#, "x".repeat(MAX_BODY - 64));
    let mut bytes = put_weight_head(body.len(), "Connection: close\r\n").into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    let mut s = connect(admin, &bytes).await;
    let answer = read_until_closed(&mut s, DEADLINE).await.expect("answered");
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer:?}");
    assert!(answer.contains("unknown field `pad`"), "{answer}");
}

/// Hundreds of connections idle, half-sent or trickling a body cannot
/// delay a probe: the table closes the longest-idle ones to make room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_answer_while_clients_hold_connections() {
    let (_shoal, admin, _backend) = start();
    // All at once, as clients would come: opening them one by one
    // would wait for each to be accepted and hide a lock-out.
    let mut opening = tokio::task::JoinSet::new();
    let half: &[u8] = b"GET /v1/backends HTTP/1.1\r\nHost: admin\r\n";
    // Answered, then idle in keep-alive (the answer stays unread).
    let idle: &[u8] = b"GET /live HTTP/1.1\r\nHost: admin\r\n\r\n";
    let slow = put_weight_head(100, "").into_bytes();
    for i in 0..300 {
        let mut kinds = vec![half.to_vec(), idle.to_vec()];
        if i % 6 == 0 {
            kinds.push(slow.clone());
        }
        for bytes in kinds {
            opening.spawn(async move { connect(admin, &bytes).await });
        }
    }
    let mut held = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(s) = opening.join_next().await {
            held.extend(s.ok());
        }
    })
    .await;
    for round in 0..5 {
        for path in ["/live", "/ready", "/metrics"] {
            let started = Instant::now();
            let r = send(admin, "GET", path, &[], "").await;
            let took = started.elapsed();
            assert_eq!(r.status, 200, "{path}");
            assert!(
                took < Duration::from_secs(1),
                "round {round}: {path} took {took:?}"
            );
        }
    }
    // Every client got in (the server accepts at once), and it holds at
    // most its cap of them open.
    assert!(held.len() > 600, "only {} connections opened", held.len());
    let end = Instant::now() + DEADLINE;
    loop {
        let open = open_count(&mut held).await;
        if open <= MAX_CONNECTIONS {
            break;
        }
        assert!(
            Instant::now() < end,
            "{open} of {} held connections still open",
            held.len()
        );
    }
}

/// How many of `held` the server has not closed yet (each is given a
/// millisecond to show its end).
async fn open_count(held: &mut [TcpStream]) -> usize {
    let mut open = 0;
    for s in held.iter_mut() {
        if read_until_closed(s, Duration::from_millis(1))
            .await
            .is_none()
        {
            open += 1;
        }
    }
    open
}
