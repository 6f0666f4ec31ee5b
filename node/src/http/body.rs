//! The response body Shoal sends to clients: a static error page, or a
//! server's body streamed through. When a server body ends, its connection
//! goes back to the pool, the server slot is freed (waking a queued
//! request), counters are updated and the access-log line is written.

use crate::dispatch::Claim;
use crate::log::{self, Record};
use crate::pool::Sender;
use crate::runtime::FrontendRt;
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::future::Future as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;
use tokio::time::Instant;

/// Response body toward the client.
pub struct ProxyBody {
    kind: Kind,
}

enum Kind {
    Full(Option<Bytes>),
    Upstream {
        inner: Incoming,
        finish: Option<Box<Finish>>,
    },
}

/// Access-log facts gathered while a request was handled; only built when
/// logging is on.
pub struct LogCtx {
    pub peer: SocketAddr,
    pub accepted: SystemTime,
    pub start: Instant,
    pub t_queue: i64,
    pub t_connect: i64,
    pub t_response: i64,
    pub status: u16,
    pub retries: u32,
    pub request_line: String,
}

/// What to do when the server's body has been sent (or abandoned).
/// Errors a client-bound body can end with.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

pub struct Finish {
    /// The server connection, to pool after a complete exchange (`None`
    /// for `option httpclose` and upgraded connections).
    pub sender: Option<Sender>,
    pub claim: Claim,
    pub frontend: Arc<FrontendRt>,
    pub bytes: u64,
    pub log: Option<LogCtx>,
    /// The server's kill generation when the request started.
    pub generation: u64,
    /// `timeout server`, applied to silences while the body streams.
    pub idle: Option<std::time::Duration>,
    /// Armed on the first wait for body data.
    pub timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Finish {
    fn done(mut self, complete: bool) {
        if complete {
            if let Some(sender) = self.sender.take() {
                self.claim.server().shared.pool.put(sender);
            }
        }
        let server = self.claim.server();
        server
            .shared
            .counters
            .bytes_out
            .fetch_add(self.bytes, Relaxed);
        let backend = self.claim.backend();
        backend.counters.bytes_out.fetch_add(self.bytes, Relaxed);
        self.frontend
            .counters
            .bytes_out
            .fetch_add(self.bytes, Relaxed);
        if let Some(ctx) = &self.log {
            let record = Record {
                client: ctx.peer,
                accepted: ctx.accepted,
                frontend: &self.frontend.name,
                backend: &backend.name,
                server: &server.name,
                t_request: 0,
                t_queue: ctx.t_queue,
                t_connect: ctx.t_connect,
                t_response: ctx.t_response,
                t_total: ctx.start.elapsed().as_millis() as i64,
                status: ctx.status,
                bytes: self.bytes,
                termination: if complete { "--" } else { "CD" },
                active_conns: crate::listener::active_connections(),
                frontend_conns: self.frontend.counters.cur.load(Relaxed),
                backend_conns: backend.counters.cur.load(Relaxed),
                server_conns: server.shared.counters.current(),
                retries: ctx.retries,
                server_queue: 0,
                backend_queue: backend.queue.waiting.load(Relaxed),
                request_line: &ctx.request_line,
            };
            log::emit(record.http_line());
        }
        backend.counters.close();
        // `self.claim` drops here: the slot is freed and a queued request woken.
    }
}

impl ProxyBody {
    /// A body that is one buffer.
    pub fn full(bytes: Bytes) -> ProxyBody {
        ProxyBody {
            kind: Kind::Full(Some(bytes)),
        }
    }
    /// An empty body.
    pub fn empty() -> ProxyBody {
        ProxyBody {
            kind: Kind::Full(None),
        }
    }
    /// A server's body, with what to do at its end.
    pub fn upstream(inner: Incoming, finish: Finish) -> ProxyBody {
        ProxyBody {
            kind: Kind::Upstream {
                inner,
                finish: Some(Box::new(finish)),
            },
        }
    }
}

impl Drop for ProxyBody {
    fn drop(&mut self) {
        if let Kind::Upstream { inner, finish } = &mut self.kind {
            if let Some(f) = finish.take() {
                // hyper never polls the body of a HEAD, 204 or 304 answer;
                // such an exchange is still complete and its connection reusable.
                f.done(inner.is_end_stream());
            }
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match &mut self.kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Upstream { inner, finish } => {
                // `shutdown sessions server`: abort responses still streaming.
                if let Some(f) = finish.as_ref() {
                    let shared = &f.claim.server().shared;
                    if shared.kill_generation.load(Relaxed) != f.generation {
                        if let Some(f) = finish.take() {
                            f.done(false);
                        }
                        return Poll::Ready(Some(Err("session killed by an operator".into())));
                    }
                }
                let polled = Pin::new(&mut *inner).poll_frame(cx);
                match &polled {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let (Some(data), Some(f)) = (frame.data_ref(), finish.as_mut()) {
                            f.bytes += data.len() as u64;
                            if let (Some(timer), Some(idle)) = (f.timer.as_mut(), f.idle) {
                                timer.as_mut().reset(Instant::now() + idle);
                            }
                        }
                        // hyper stops polling once a Content-Length is met,
                        // so the end must be noticed here, not at `None`.
                        if inner.is_end_stream() {
                            if let Some(f) = finish.take() {
                                f.done(true);
                            }
                        }
                    }
                    Poll::Ready(None) => {
                        if let Some(f) = finish.take() {
                            f.done(true);
                        }
                    }
                    Poll::Ready(Some(Err(_))) => {
                        if let Some(f) = finish.take() {
                            f.done(false);
                        }
                    }
                    Poll::Pending => {
                        // `timeout server` is an inactivity timeout: the
                        // timer exists only once the server has made us wait.
                        if let Some(f) = finish.as_mut() {
                            if let Some(idle) = f.idle {
                                let timer = f
                                    .timer
                                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                                if timer.as_mut().poll(cx).is_ready() {
                                    if let Some(f) = finish.take() {
                                        f.done(false);
                                    }
                                    return Poll::Ready(Some(Err(
                                        "server inactivity timeout".into()
                                    )));
                                }
                            }
                        }
                    }
                }
                polled.map(|o| o.map(|r| r.map_err(Into::into)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(bytes) => bytes.is_none(),
            // Never claim the end early: the end is what triggers pooling.
            Kind::Upstream { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Upstream { inner, .. } => inner.size_hint(),
        }
    }
}
