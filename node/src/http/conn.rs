//! One client connection: wait for each request under HAProxy's timeouts,
//! read and check its head, hand it to [`super::proxy`], and keep the
//! connection between requests at the cost of a socket and a small
//! struct: the read buffer is released whenever no request is under way.
//!
//! Timeouts (HAProxy 2.6's rules, checked against the real binary):
//! - before the first byte of a request on a kept-alive connection:
//!   `timeout http-keep-alive`, else `timeout http-request`; expiry closes
//!   silently;
//! - the first request of a connection, and every request once its first
//!   byte came: the whole head within `timeout http-request` (counted from
//!   the accept for a first request, from the first byte otherwise);
//!   expiry answers 408 (`cR`), even when nothing was sent at all;
//! - `timeout client` applies throughout as an inactivity bound, so the
//!   smaller of it and the timeouts above wins.

use super::body::{self, Decoder};
use super::buf::Buf;
use super::errors;
use super::head::{self, Field, HeadScan, Limits, RequestHead};
use super::proxy::{self, Next};
use crate::health::Observer;
use crate::log::Record;
use crate::pool::ServerConn;
use crate::routing::FrontendRt;
use crate::runtime::Runtime;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

/// Bounds a request head when neither `timeout http-request` nor
/// `timeout client` is set (HAProxy would wait forever).
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a refused client may keep sending before the socket closes;
/// draining first lets it read the error instead of a reset.
const LINGER: Duration = Duration::from_millis(500);

/// A client connection and what it keeps between requests.
pub(super) struct Client {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub runtime: Arc<Runtime>,
    /// Passive health (`observe`): what this connection's requests saw.
    pub observer: Observer,
    /// The frontend as of the last request (refreshed for each one).
    pub frontend: Arc<FrontendRt>,
    /// Read buffer; `None` while idle between requests.
    pub buf: Option<Buf>,
    /// Spare header index, recycled between requests.
    pub fields: Vec<Field>,
    /// Scratch for the heads the proxy writes.
    pub out: Vec<u8>,
    /// Requests started on this connection.
    pub requests: u64,
    /// `http-reuse never`: the server connection private to this client,
    /// with the address of the server it belongs to.
    pub private: Option<(usize, ServerConn)>,
    /// The server connection used last, asked back from the pool first.
    pub last_conn: Option<u64>,
    /// The client address as an `X-Forwarded-For` value, built once.
    pub xff: Option<Box<str>>,
    /// The client's TLS session, when it came through a TLS `bind`.
    pub tls: Option<Arc<crate::tls::Session>>,
    /// Our side is shut (see `linger`).
    shut: bool,
    pub shutdown: watch::Receiver<bool>,
    accepted: Instant,
    accepted_at: SystemTime,
}

/// What ended the wait for a request's first byte.
enum Wake {
    Data,
    Gone,
    Timeout,
}

/// When a request started and when its head was complete.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timing {
    pub start: Instant,
    pub start_at: SystemTime,
    pub head_done: Instant,
}

/// A request head ready to forward, with the body bytes that came with it.
pub(super) struct Incoming {
    pub head: RequestHead,
    pub timing: Timing,
    /// Scans the body; already fed `body_ready` bytes after the head.
    pub body: Decoder,
    pub body_ready: usize,
}

/// Serve one accepted HTTP-mode client connection until it closes, a
/// timeout fires, or `shutdown` asks for a graceful close. `tls` is the
/// client's TLS session when [`crate::tls`] terminated it.
#[allow(clippy::too_many_arguments)] // each is one fact about the connection
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    frontend: Arc<FrontendRt>,
    runtime: Arc<Runtime>,
    observer: Observer,
    shutdown: watch::Receiver<bool>,
    tls: Option<Arc<crate::tls::Session>>,
) {
    let mut client = Client {
        stream,
        peer,
        local,
        runtime,
        observer,
        frontend,
        buf: None,
        fields: Vec::new(),
        out: Vec::new(),
        requests: 0,
        private: None,
        last_conn: None,
        xff: None,
        tls,
        shut: false,
        shutdown,
        accepted: Instant::now(),
        accepted_at: SystemTime::now(),
    };
    // Only the wait for a request is awaited in place; reading, handling
    // and refusing a request are boxed, so that an idle connection's task
    // stays small instead of carrying the largest state machine.
    while client.wait_for_request().await {
        match Box::pin(client.request()).await {
            Next::KeepAlive => continue,
            Next::Close => {
                Box::pin(client.linger()).await;
                break;
            }
            Next::Tunnel(tunnel) => {
                let Client { stream, .. } = client;
                Box::pin(tunnel.run(stream)).await;
                return;
            }
        }
    }
}

impl Client {
    /// Limits for heads, from `global`.
    pub fn limits(&self) -> Limits {
        Limits {
            bufsize: self.frontend.bufsize,
            maxhdr: self.frontend.maxhdr,
        }
    }

    /// Wait until a request starts: bytes are buffered (pipelined or just
    /// read). `false` when the connection is to close instead (the client
    /// left, a timeout fired, or shutdown).
    async fn wait_for_request(&mut self) -> bool {
        if self.buf.as_ref().is_some_and(|b| !b.is_empty()) {
            return true;
        }
        let first = self.requests == 0;
        let t = self.frontend.timeouts;
        // Idle: hold no buffer while waiting for the first byte.
        self.buf = None;
        if self.fields.capacity() > 64 {
            self.fields = Vec::new();
        }
        if self.out.capacity() > 4096 {
            self.out = Vec::new();
        }
        let bound = if first {
            t.http_request
        } else {
            t.http_keep_alive.or(t.http_request)
        };
        // `timeout client` stays an inactivity bound (HAProxy 2.6).
        let wait = match (bound, t.client) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(DEFAULT_REQUEST_TIMEOUT),
        };
        let deadline = if first {
            self.accepted + wait
        } else {
            Instant::now() + wait
        };
        // Readiness can be stale (the last read did not drain the socket),
        // so only bytes actually read end the wait.
        loop {
            let woke = tokio::select! {
                // A request already here is served even if shutdown began.
                biased;
                r = self.stream.readable() => if r.is_ok() { Wake::Data } else { Wake::Gone },
                () = tokio::time::sleep_until(deadline) => Wake::Timeout,
                // Graceful shutdown closes idle connections at once.
                _ = self.shutdown.wait_for(|stop| *stop) => Wake::Gone,
            };
            match woke {
                Wake::Data => {}
                Wake::Gone => return false,
                Wake::Timeout => {
                    if first {
                        let (at, at_wall) = (self.accepted, self.accepted_at);
                        Box::pin(self.refuse(408, "cR", at, at_wall)).await;
                    }
                    return false;
                }
            }
            let mut buf = Buf::new(self.frontend.bufsize);
            match buf.try_read(&self.stream) {
                Ok(n) if n > 0 => {
                    self.frontend.counters.bytes_in.fetch_add(n as u64, Relaxed);
                    self.buf = Some(buf);
                    return true;
                }
                // Nothing after all: the buffer goes back to the spares.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                // The client left without a word: HAProxy logs `CR` for a
                // first request, nothing between requests.
                _ => {
                    if first {
                        self.log_refusal(400, 0, "CR", self.accepted, self.accepted_at);
                    }
                    return false;
                }
            }
        }
    }

    /// Read the request whose first bytes are buffered and handle it.
    async fn request(&mut self) -> Next {
        let first = self.requests == 0;
        self.requests += 1;
        let start = Instant::now();
        // The log counts from the first byte; `timeout http-request` for a
        // first request counts from the accept.
        let deadline_base = if first { self.accepted } else { start };
        match self
            .read_head(start, SystemTime::now(), deadline_base)
            .await
        {
            Some(incoming) => proxy::handle(self, incoming).await,
            None => Next::Close,
        }
    }

    /// Read until a complete, valid head is buffered.
    async fn read_head(
        &mut self,
        start: Instant,
        start_at: SystemTime,
        deadline_base: Instant,
    ) -> Option<Incoming> {
        let limits = self.limits();
        let t = self.frontend.timeouts;
        let head_deadline = t
            .http_request
            .or(if t.client.is_none() {
                Some(DEFAULT_REQUEST_TIMEOUT)
            } else {
                None
            })
            .map(|d| deadline_base + d);
        let mut buf = self.buf.take().unwrap_or_else(|| Buf::new(limits.bufsize));
        let mut scan = HeadScan::default();
        let mut last_read = Instant::now();
        loop {
            if scan.worth_parsing(buf.filled()) {
                match head::parse_request(buf.filled(), &limits, &mut self.fields) {
                    Ok(Some(head)) => {
                        let timing = Timing {
                            start,
                            start_at,
                            head_done: Instant::now(),
                        };
                        let mut decoder = Decoder::new(head.framing);
                        // A body that came with the head is checked before
                        // anything is forwarded, as HAProxy does.
                        let body_ready = match decoder.scan(&buf.filled()[head.len..]) {
                            Ok(n) => n,
                            Err(_) => {
                                self.buf = Some(buf);
                                self.refuse(400, "PR", start, start_at).await;
                                return None;
                            }
                        };
                        self.buf = Some(buf);
                        return Some(Incoming {
                            head,
                            timing,
                            body: decoder,
                            body_ready,
                        });
                    }
                    Ok(None) => {}
                    Err(e) => {
                        self.buf = Some(buf);
                        self.refuse(e.status(), "PR", start, start_at).await;
                        return None;
                    }
                }
            }
            if buf.len() >= limits.room() {
                self.buf = Some(buf);
                self.refuse(400, "PR", start, start_at).await;
                return None;
            }
            match buf.try_read(&self.stream) {
                Ok(n) if n > 0 => {
                    last_read = Instant::now();
                    self.frontend.counters.bytes_in.fetch_add(n as u64, Relaxed);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let idle = t.client.map(|c| last_read + c);
                    let deadline = match (head_deadline, idle) {
                        (Some(a), Some(b)) => a.min(b),
                        (a, b) => a.or(b).unwrap_or(deadline_base + DEFAULT_REQUEST_TIMEOUT),
                    };
                    let ready = tokio::time::timeout_at(deadline, self.stream.readable()).await;
                    if ready.is_err() {
                        self.buf = Some(buf);
                        self.refuse(408, "cR", start, start_at).await;
                        return None;
                    }
                }
                // The client left in the middle of its head.
                _ => {
                    self.log_refusal(400, 0, "CR", start, start_at);
                    return None;
                }
            }
        }
    }

    /// Answer a request that cannot be processed with HAProxy's raw error
    /// page, log it as `<BADREQ>`, and drain briefly before closing so the
    /// client reads the answer rather than a reset.
    async fn refuse(
        &mut self,
        status: u16,
        termination: &'static str,
        start: Instant,
        start_at: SystemTime,
    ) {
        let page = errors::refusal(status);
        let linger = self.frontend.timeouts.client.unwrap_or(LINGER).min(LINGER);
        let sent = tokio::time::timeout(linger, body::write_all(&self.stream, page)).await;
        let bytes = if matches!(sent, Ok(Ok(()))) {
            page.len()
        } else {
            0
        };
        self.frontend
            .counters
            .bytes_out
            .fetch_add(bytes as u64, Relaxed);
        self.frontend.counters.count_response(status);
        self.log_refusal(status, 0, termination, start, start_at);
        self.linger().await;
    }

    /// Close our side after an answer, then discard what the client still
    /// sends for a moment (until it closes, at most [`LINGER`]): closing
    /// with unread data would reset the connection, and the client could
    /// lose the answer (a refused request, or an answer that came before
    /// the end of an upload).
    async fn linger(&mut self) {
        if std::mem::replace(&mut self.shut, true) {
            return;
        }
        let linger = self.frontend.timeouts.client.unwrap_or(LINGER).min(LINGER);
        let sock = socket2::SockRef::from(&self.stream);
        let _ = sock.shutdown(std::net::Shutdown::Write);
        let mut buf = self
            .buf
            .take()
            .unwrap_or_else(|| Buf::new(self.frontend.bufsize));
        let _ = tokio::time::timeout(linger, async {
            loop {
                buf.consume(buf.len());
                match buf.read(&self.stream).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
    }

    /// Count and log a request that never reached a backend (`<BADREQ>`):
    /// HAProxy logs it against the frontend with server `<NOSRV>`.
    fn log_refusal(
        &self,
        status: u16,
        bytes: u64,
        termination: &'static str,
        start: Instant,
        start_at: SystemTime,
    ) {
        let fe = &self.frontend;
        fe.counters.req_errors.fetch_add(1, Relaxed);
        if fe.log.is_none() || !crate::log::enabled() {
            return;
        }
        let record = Record {
            client: self.peer,
            accepted: start_at,
            frontend: &fe.name,
            backend: &fe.name,
            server: "<NOSRV>",
            t_request: -1,
            t_queue: -1,
            t_connect: -1,
            t_response: -1,
            t_total: start.elapsed().as_millis() as i64,
            status,
            bytes,
            termination,
            active_conns: crate::listener::active_connections(),
            frontend_conns: fe.counters.cur.load(Relaxed),
            backend_conns: 0,
            server_conns: 0,
            retries: 0,
            server_queue: 0,
            backend_queue: 0,
            request_line: "<BADREQ>",
        };
        crate::log::emit(record.http_line());
    }
}
