//! Helpers for the HTTP engine tests: a scripted raw HTTP server (real
//! sockets, for servers that misbehave on purpose) and a client that
//! reads exactly one response from a raw connection.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};

/// Bound on any wait in these helpers.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// What the raw server does for a request path.
#[derive(Clone)]
pub enum Script {
    /// Send these bytes, then keep reading requests.
    Send(Vec<u8>),
    /// Send these bytes, then close.
    SendClose(Vec<u8>),
    /// Close without a word.
    Close,
    /// Reset the connection (RST) without a word.
    Reset,
    /// Never answer.
    Hang,
    /// Echo the first request of a connection; close without a word on a
    /// later one (a server dropping an idle connection as it is reused).
    CloseOnReuse,
    /// Answer `ok` (Content-Length 2), then, once [`RawServer::release`]
    /// is notified, send `surplus` on the same connection and report the
    /// proxy's address of that connection on `surplus_sent`.
    SurplusLater(Vec<u8>),
    /// Answer `200` with the request's `Content-Length` at once, then echo
    /// the body as it comes, reading at most 10 KB at a time (a streaming
    /// echo: it needs the body to flow while its answer does).
    Echo,
    /// Send these bytes as soon as the head is in, then read the body
    /// (`Content-Length`) to its end and keep serving the connection.
    EarlyThenDrain(Vec<u8>),
    /// Send these bytes as soon as the head is in, then never read again
    /// (the connection stays open).
    EarlyThenStop(Vec<u8>),
    /// Send these bytes as soon as the head is in, then close.
    EarlyThenClose(Vec<u8>),
}

/// A scripted HTTP/1.1 server on 127.0.0.1, port chosen by the kernel.
/// Paths without a script get `200` with the request head they received
/// (as the server saw it) as the body, and an `x-conn` header numbering
/// the connection.
pub struct RawServer {
    pub addr: SocketAddr,
    /// Connections accepted.
    pub conns: Arc<AtomicUsize>,
    /// Connections that reached end of stream (closed by the peer).
    pub closed: Arc<AtomicUsize>,
    pub release: Arc<Notify>,
    pub surplus_sent: mpsc::UnboundedReceiver<SocketAddr>,
    /// Request heads received, in order.
    pub heads: Arc<Mutex<Vec<String>>>,
}

impl RawServer {
    pub async fn start(scripts: &[(&str, Script)]) -> RawServer {
        let scripts: Arc<HashMap<String, Script>> = Arc::new(
            scripts
                .iter()
                .map(|(p, s)| (p.to_string(), s.clone()))
                .collect(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let conns = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(Notify::new());
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (tx, surplus_sent) = mpsc::unbounded_channel();
        let server = RawServer {
            addr,
            conns: conns.clone(),
            closed: closed.clone(),
            release: release.clone(),
            surplus_sent,
            heads: heads.clone(),
        };
        tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    return;
                };
                let n = conns.fetch_add(1, SeqCst) + 1;
                let ctx = (
                    scripts.clone(),
                    closed.clone(),
                    release.clone(),
                    tx.clone(),
                    heads.clone(),
                );
                tokio::spawn(serve_conn(stream, peer, n, ctx));
            }
        });
        server
    }
}

type Ctx = (
    Arc<HashMap<String, Script>>,
    Arc<AtomicUsize>,
    Arc<Notify>,
    mpsc::UnboundedSender<SocketAddr>,
    Arc<Mutex<Vec<String>>>,
);

async fn serve_conn(mut s: TcpStream, peer: SocketAddr, n: usize, ctx: Ctx) {
    let (scripts, closed, release, sent, heads) = ctx;
    let mut buf = Vec::new();
    let mut served = 0;
    loop {
        let Some(head) = read_head(&mut s, &mut buf, &heads).await else {
            closed.fetch_add(1, SeqCst);
            return;
        };
        let path = head
            .split(' ')
            .nth(1)
            .unwrap_or("/")
            .split('?')
            .next()
            .unwrap_or("/")
            .to_string();
        served += 1;
        let script = scripts.get(&path).cloned();
        let length = content_length(&head);
        match &script {
            Some(Script::Echo) => {
                let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n");
                if s.write_all(answer.as_bytes()).await.is_err()
                    || !echo(&mut s, &mut buf, length).await
                {
                    return;
                }
                continue;
            }
            Some(Script::EarlyThenDrain(bytes)) => {
                if s.write_all(bytes).await.is_err() || !skip(&mut s, &mut buf, length).await {
                    return;
                }
                continue;
            }
            Some(Script::EarlyThenStop(bytes)) => {
                let _ = s.write_all(bytes).await;
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
            Some(Script::EarlyThenClose(bytes)) => {
                let _ = s.write_all(bytes).await;
                return;
            }
            _ => {}
        }
        let Some(body) = read_body(&mut s, &mut buf, &head).await else {
            closed.fetch_add(1, SeqCst);
            return;
        };
        match script {
            Some(Script::CloseOnReuse) if served > 1 => return,
            None | Some(Script::CloseOnReuse) => {
                let mut echo = head.clone().into_bytes();
                echo.extend_from_slice(&body);
                let mut out = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Conn: {n}\r\n\r\n",
                    echo.len()
                )
                .into_bytes();
                out.extend_from_slice(&echo);
                if s.write_all(&out).await.is_err() {
                    return;
                }
            }
            Some(Script::Send(bytes)) => {
                if s.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            Some(Script::SendClose(bytes)) => {
                let _ = s.write_all(&bytes).await;
                return;
            }
            Some(Script::Close) => return,
            Some(Script::Reset) => {
                let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
                return;
            }
            Some(Script::Hang) => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
            Some(
                Script::Echo
                | Script::EarlyThenDrain(_)
                | Script::EarlyThenStop(_)
                | Script::EarlyThenClose(_),
            ) => {
                unreachable!("answered before the body")
            }
            Some(Script::SurplusLater(surplus)) => {
                if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await
                    .is_err()
                {
                    return;
                }
                release.notified().await;
                let _ = s.write_all(&surplus).await;
                let _ = sent.send(peer);
            }
        }
    }
}

/// Read one request head from `s`, keeping extra bytes in `buf`; the head
/// is recorded in `heads` as soon as it is complete. `None` at end of
/// stream.
async fn read_head(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    heads: &Mutex<Vec<String>>,
) -> Option<String> {
    let end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        if !more(s, buf).await {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    heads.lock().expect("heads").push(head.clone());
    buf.drain(..end);
    Some(head)
}

/// Read the body (Content-Length, or chunked) of the request whose head is
/// `head`, as received. Chunk lines end at LF, as in lenient servers.
/// `None` at end of stream.
async fn read_body(s: &mut TcpStream, buf: &mut Vec<u8>, head: &str) -> Option<Vec<u8>> {
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let len = content_length(head);
        while buf.len() < len {
            if !more(s, buf).await {
                return None;
            }
        }
        return Some(buf.drain(..len).collect());
    }
    let mut body = Vec::new();
    loop {
        let line = read_line(s, buf).await?;
        body.extend_from_slice(&line);
        let text = String::from_utf8_lossy(&line);
        let digits = text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(digits, 16).ok()?;
        if size == 0 {
            // Trailers, up to an empty line.
            loop {
                let line = read_line(s, buf).await?;
                body.extend_from_slice(&line);
                if line == b"\r\n" || line == b"\n" {
                    return Some(body);
                }
            }
        }
        while buf.len() < size {
            if !more(s, buf).await {
                return None;
            }
        }
        body.extend(buf.drain(..size));
        body.extend_from_slice(&read_line(s, buf).await?);
    }
}

/// Read one line, LF included.
async fn read_line(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    loop {
        if let Some(i) = buf.iter().position(|&b| b == b'\n') {
            return Some(buf.drain(..=i).collect());
        }
        if !more(s, buf).await {
            return None;
        }
    }
}

/// The request's `Content-Length` (0 if none).
fn content_length(head: &str) -> usize {
    head.to_ascii_lowercase()
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Read once more into `buf`; `false` at end of stream or on error.
async fn more(s: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    match s.read(&mut chunk).await {
        Ok(n) if n > 0 => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
        _ => false,
    }
}

/// Echo `len` body bytes back as they come, 10 KB at most per read.
async fn echo(s: &mut TcpStream, buf: &mut Vec<u8>, len: usize) -> bool {
    let mut left = len;
    let mut step = vec![0u8; 10_000];
    while left > 0 {
        if !buf.is_empty() {
            let n = buf.len().min(left);
            let out: Vec<u8> = buf.drain(..n).collect();
            if s.write_all(&out).await.is_err() {
                return false;
            }
            left -= n;
            continue;
        }
        let want = left.min(step.len());
        match s.read(&mut step[..want]).await {
            Ok(n) if n > 0 => {
                if s.write_all(&step[..n]).await.is_err() {
                    return false;
                }
                left -= n;
            }
            _ => return false,
        }
    }
    true
}

/// Read and discard `len` body bytes.
async fn skip(s: &mut TcpStream, buf: &mut Vec<u8>, len: usize) -> bool {
    let mut left = len;
    loop {
        let n = buf.len().min(left);
        buf.drain(..n);
        left -= n;
        if left == 0 {
            return true;
        }
        if !more(s, buf).await {
            return false;
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One response read from a raw connection: the head as text and the body
/// (Content-Length or chunked, de-chunked; or up to end of stream).
#[derive(Debug)]
pub struct Answer {
    pub head: String,
    pub body: Vec<u8>,
    /// The exact bytes received for this response.
    pub raw: Vec<u8>,
}

impl Answer {
    pub fn status(&self) -> u16 {
        self.head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
    /// The value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A raw client connection that keeps unread bytes between responses.
pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Conn {
        Conn {
            stream: TcpStream::connect(addr).await.expect("connect"),
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        match tokio::time::timeout(DEADLINE, self.stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Ok(_) => false,
            Err(_) => panic!("no data within {DEADLINE:?}"),
        }
    }

    /// Read one response; `None` if the connection closed before a head.
    pub async fn response(&mut self) -> Option<Answer> {
        let end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if !self.fill().await {
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        let mut answer = Answer {
            head,
            body: Vec::new(),
            raw: Vec::new(),
        };
        let status = answer.status();
        let chunked = answer
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let length = answer
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok());
        let mut pos = end;
        if (100..200).contains(&status) || status == 204 || status == 304 {
            // No body.
        } else if chunked {
            loop {
                let line_end = loop {
                    if let Some(i) = find(&self.buf[pos..], b"\r\n") {
                        break pos + i;
                    }
                    if !self.fill().await {
                        return Some(answer);
                    }
                };
                let size_text = String::from_utf8_lossy(&self.buf[pos..line_end]).into_owned();
                let size =
                    usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                        .expect("chunk size");
                pos = line_end + 2;
                if size == 0 {
                    while find(&self.buf[pos..], b"\r\n\r\n").is_none()
                        && !self.buf[pos..].starts_with(b"\r\n")
                    {
                        if !self.fill().await {
                            break;
                        }
                    }
                    pos += if self.buf[pos..].starts_with(b"\r\n") {
                        2
                    } else {
                        find(&self.buf[pos..], b"\r\n\r\n").map_or(0, |i| i + 4)
                    };
                    break;
                }
                while self.buf.len() < pos + size + 2 {
                    if !self.fill().await {
                        return Some(answer);
                    }
                }
                answer.body.extend_from_slice(&self.buf[pos..pos + size]);
                pos += size + 2;
            }
        } else if let Some(len) = length {
            while self.buf.len() < end + len {
                if !self.fill().await {
                    break;
                }
            }
            let take = len.min(self.buf.len() - end);
            answer.body = self.buf[end..end + take].to_vec();
            pos = end + take;
        } else {
            while self.fill().await {}
            answer.body = self.buf[end..].to_vec();
            pos = self.buf.len();
        }
        answer.raw = self.buf[..pos].to_vec();
        self.buf.drain(..pos);
        Some(answer)
    }

    /// Wait for end of stream; returns the bytes that came first.
    pub async fn until_closed(&mut self) -> Vec<u8> {
        while self.fill().await {}
        std::mem::take(&mut self.buf)
    }
}

/// Send `request` on a fresh connection and read one response.
pub async fn ask(addr: SocketAddr, request: &str) -> Answer {
    let mut c = Conn::open(addr).await;
    c.send(request.as_bytes()).await;
    c.response().await.expect("a response")
}

/// A process's resident memory and open descriptors, from /proc.
pub fn rss_kb_and_fds(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .count();
    (rss, fds)
}

/// `addr` as /proc/net/tcp writes it.
fn proc_hex(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(a.ip().octets()),
            a.port()
        ),
        SocketAddr::V6(_) => panic!("IPv4 only"),
    }
}

/// Receive queues (unread bytes) of the TCP sockets whose local address
/// is `local`, with their peers (hex, as in /proc/net/tcp).
fn rx_queues(local: SocketAddr) -> Vec<(String, u64)> {
    let l = proc_hex(local);
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() <= 4 || f[1] != l {
                return None;
            }
            let rx = f[4]
                .split_once(':')
                .and_then(|(_, rx)| u64::from_str_radix(rx, 16).ok())?;
            Some((f[2].to_string(), rx))
        })
        .collect()
}

/// Wait until no socket accepted on `listening` holds unread bytes: the
/// proxy has read (or refused and drained) everything its clients sent.
pub async fn wait_drained(listening: SocketAddr) {
    let started = std::time::Instant::now();
    while rx_queues(listening).iter().any(|(_, rx)| *rx > 0) {
        assert!(
            started.elapsed() < DEADLINE,
            "{listening} still has unread bytes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Wait until the kernel holds unread bytes on the TCP socket connected
/// from `local` to `remote` (its receive queue in /proc/net/tcp): data a
/// server sent has really arrived at the proxy.
pub async fn wait_unread(local: SocketAddr, remote: SocketAddr) {
    let r = proc_hex(remote);
    let started = std::time::Instant::now();
    while !rx_queues(local)
        .iter()
        .any(|(peer, rx)| *peer == r && *rx > 0)
    {
        assert!(
            started.elapsed() < DEADLINE,
            "no unread bytes on {local} -> {remote}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The body [`upload_while_reading`] sends: `len` bytes of a pattern.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

/// POST [`pattern`]`(len)` to `path` on a new connection while the answer
/// is read as it comes, as a streaming client does: the head and the first
/// 10 KB go first, the rest (10 KB per write) only once the answer has
/// started, so the upload has to flow beside the answer. Returns the
/// answer's head and the body bytes received before the answer's
/// `Content-Length` was reached or the connection closed.
pub async fn upload_while_reading(addr: SocketAddr, path: &str, len: usize) -> (String, Vec<u8>) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    let head = format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n");
    let (started, answer_started) = tokio::sync::oneshot::channel::<()>();
    let writer = tokio::spawn(async move {
        let body = pattern(len);
        let mut pieces = body.chunks(10_000);
        let first = [head.as_bytes(), pieces.next().unwrap_or_default()].concat();
        if wr.write_all(&first).await.is_err() || answer_started.await.is_err() {
            return;
        }
        for piece in pieces {
            if wr.write_all(piece).await.is_err() {
                return;
            }
        }
        // Keep the write half open until the answer is read.
        std::future::pending::<()>().await;
        drop(wr);
    });
    let mut started = Some(started);
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 65536];
    let (head, body) = loop {
        if let Some(i) = find(&got, b"\r\n\r\n") {
            if let Some(started) = started.take() {
                let _ = started.send(());
            }
            let head = String::from_utf8_lossy(&got[..i + 4]).into_owned();
            let want = content_length(&head);
            if got.len() >= i + 4 + want {
                break (head, got[i + 4..].to_vec());
            }
        }
        let n = tokio::time::timeout(DEADLINE, rd.read(&mut chunk))
            .await
            .expect("data in time")
            .unwrap_or(0);
        if n == 0 {
            let i = find(&got, b"\r\n\r\n").map_or(0, |i| i + 4);
            break (
                String::from_utf8_lossy(&got[..i]).into_owned(),
                got[i..].to_vec(),
            );
        }
        got.extend_from_slice(&chunk[..n]);
    };
    // Done with this connection, whether or not the upload finished.
    writer.abort();
    (head, body)
}
