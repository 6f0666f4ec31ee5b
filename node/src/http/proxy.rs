//! One request through the proxy: route it, pick a server and a
//! connection, send the request (streaming its body), bring the response
//! back, decide what happens to both connections, count and log.
//!
//! Blame follows HAProxy: a client that sends a bad body, stalls or leaves
//! is answered 4xx (or nothing) and never counts against the server; a
//! server that answers badly, late or not at all gets 502/504, a response
//! error and a passive-health report.

use super::body::{self, Decoder};
use super::buf::Buf;
use super::conn::{Client, Incoming};
use super::errors;
use super::head::{self, Framing, Method, RequestHead};
pub(super) use super::outcome::Outcome;
use super::reuse;
use super::rewrite::{self, ConnHeader, CookieEdit, RequestEdits, ResponseEdits};
use super::rules::{HeaderSet, Verdict};
use super::samples::{hash_key, HttpSamples};
use super::tunnel::Tunnel;
use crate::dispatch::{self, Claim, DispatchError};
use crate::health::Outcome as Health;
use crate::persist::{self, Sticky};
use crate::pool::ServerConn;
use crate::routing::{BackendRt, ServerShared};
use crate::tls::SniSource;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// What the client connection does after a request.
pub(super) enum Next {
    KeepAlive,
    Close,
    /// The connection became a tunnel (WebSocket, CONNECT).
    Tunnel(Box<Tunnel>),
}

/// Handle one request to its end.
pub(super) async fn handle(c: &mut Client, incoming: Incoming) -> Next {
    let snapshot = c.runtime.snapshot();
    let frontend = snapshot
        .frontend(&c.frontend.name)
        .cloned()
        .unwrap_or_else(|| c.frontend.clone());
    c.frontend = frontend.clone();
    frontend.counters.requests.fetch_add(1, Relaxed);
    let Incoming {
        head,
        timing,
        body,
        body_ready,
    } = incoming;
    let request_line = (frontend.log.is_some() && crate::log::enabled()).then(|| {
        let buf = c.buf.as_ref().map_or(&[][..], Buf::filled);
        format!(
            "{} {} HTTP/1.{}",
            String::from_utf8_lossy(head.method.of(buf)),
            String::from_utf8_lossy(head.target.of(buf)),
            head.minor
        )
    });
    let mut x = Exchange {
        head,
        body,
        body_ready,
        outcome: Outcome::new(frontend.clone(), c.peer, timing, request_line),
        uploading: false,
        upload_pending: 0,
        upload_cut: false,
        head_consumed: false,
        headers: HeaderSet::default(),
    };
    let mut cbuf = c.buf.take().unwrap_or_else(|| Buf::new(c.limits().bufsize));
    let mut redirect = None;
    let route = {
        let samples = HttpSamples {
            buf: cbuf.filled(),
            head: &x.head,
            src: c.peer.ip(),
            dst_port: c.local.port(),
            tls: c.tls.as_deref(),
        };
        // `http-request` rules run first, as in HAProxy.
        if !frontend.http_request.is_empty() {
            match frontend.http_request.eval(&samples) {
                Verdict::Forward(set) => x.headers = set,
                Verdict::Redirect { code, scheme } => redirect = Some((code, scheme)),
            }
        }
        match &frontend.stats {
            Some(stats) if is_stats_uri(&samples, &stats.uri) => None,
            _ => Some(frontend.router.route(&samples)),
        }
    };
    let next = match route {
        _ if redirect.is_some() => {
            drop(snapshot);
            let (code, scheme) = redirect.unwrap_or((302, "https".into()));
            x.redirect(c, &cbuf, code, &scheme).await
        }
        // The stats page, served by Shoal itself.
        None => {
            drop(snapshot);
            super::local::stats(c, &mut cbuf, &mut x).await
        }
        Some(None) => {
            drop(snapshot);
            x.fail(c, 503, "SC", false).await
        }
        Some(Some(index)) => {
            let backend = snapshot.backends[index].clone();
            drop(snapshot);
            backend.counters.open();
            backend.counters.requests.fetch_add(1, Relaxed);
            x.outcome.backend = Some(backend.clone());
            let next = x.forward(c, &backend, &mut cbuf).await;
            if !matches!(next, Next::Tunnel(_)) {
                backend.counters.close();
            }
            next
        }
    };
    // A request answered without being forwarded (503, ...) must leave the
    // buffer, or it would be read again as the next request; when its body
    // has not all arrived, the connection cannot be reused.
    let next = if x.head_consumed {
        next
    } else if x.body.done() {
        cbuf.consume(x.head.len + x.body_ready);
        next
    } else {
        Next::Close
    };
    c.fields = std::mem::take(&mut x.head.fields);
    c.buf = Some(cbuf);
    if !matches!(next, Next::Tunnel(_)) {
        x.outcome.emit();
    }
    next
}

fn is_stats_uri(samples: &HttpSamples<'_>, uri: &str) -> bool {
    head::origin_part(samples.head.target.of(samples.buf)).starts_with(uri.as_bytes())
}

/// The state of one request.
pub(super) struct Exchange {
    pub head: RequestHead,
    /// Scans the request body; `body_ready` bytes after the head are scanned.
    pub body: Decoder,
    pub body_ready: usize,
    pub outcome: Outcome,
    /// The request body is still arriving.
    pub uploading: bool,
    /// Scanned request-body bytes at the front of the client buffer, not
    /// yet sent to the server.
    pub upload_pending: usize,
    /// The server stopped taking the request body: the rest is not read.
    pub upload_cut: bool,
    /// The head has left the client's buffer (forwarded or served).
    pub head_consumed: bool,
    /// `http-request` header rules that hold for this request.
    pub headers: HeaderSet,
}

/// Why an exchange stopped early.
pub(super) enum Stop {
    /// Answer `status` and end with `termination`; a `health` outcome
    /// charges the server (response error, passive health report).
    Fail {
        status: u16,
        termination: &'static str,
        health: Option<Health>,
    },
    /// The client left or stalled after the answer started: no answer.
    Abort { termination: &'static str },
    /// The connection died before any answer: a reused one may be replaced
    /// once (see `relay`); otherwise a server fault with this outcome.
    Retry(Health),
}

impl Stop {
    pub(super) fn server(status: u16, termination: &'static str, health: Health) -> Stop {
        Stop::Fail {
            status,
            termination,
            health: Some(health),
        }
    }
    pub(super) fn client(status: u16, termination: &'static str) -> Stop {
        Stop::Fail {
            status,
            termination,
            health: None,
        }
    }
}

/// Run `f`, giving up after `limit` when there is one.
pub(super) async fn within<F: Future>(limit: Option<Duration>, f: F) -> Option<F::Output> {
    match limit {
        Some(d) => tokio::time::timeout(d, f).await.ok(),
        None => Some(f.await),
    }
}

/// Far enough to mean "never" for a timer.
pub(super) fn never() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

impl Exchange {
    /// The client connection must close after this request, whatever
    /// becomes of its body.
    fn must_close(&self, c: &Client, backend: Option<&BackendRt>) -> bool {
        let h = &self.head;
        h.conn.close
            || (h.minor == 0 && !h.conn.keep_alive)
            || h.smuggle_guard
            || c.frontend.httpclose
            || backend.is_some_and(|b| b.httpclose)
            || *c.shutdown.borrow()
    }

    /// The client connection must close after an error page: the rest of
    /// a body still arriving cannot be skipped.
    fn client_must_close(&self, c: &Client, backend: Option<&BackendRt>) -> bool {
        self.must_close(c, backend) || self.uploading || (!self.head_consumed && !self.body.done())
    }

    /// The `Connection` header for the answer to the client.
    fn client_connection(&self, close: bool) -> ConnHeader {
        if close {
            ConnHeader::Close
        } else if self.head.minor == 0 {
            ConnHeader::KeepAlive
        } else {
            ConnHeader::None
        }
    }

    /// Answer with an error page produced by the proxy, count it and set
    /// the log fields; `force_close` closes the client connection after.
    async fn fail(
        &mut self,
        c: &mut Client,
        status: u16,
        termination: &'static str,
        force_close: bool,
    ) -> Next {
        let backend = self.outcome.backend.clone();
        let close = self.client_must_close(c, backend.as_deref()) || force_close;
        c.out.clear();
        let connection = match self.client_connection(close) {
            ConnHeader::Close => Some("close"),
            ConnHeader::KeepAlive => Some("keep-alive"),
            _ => None,
        };
        errors::response(&mut c.out, status, connection);
        let fe = self.outcome.frontend.clone();
        let sent = within(fe.timeouts.client, body::write_all(&c.stream, &c.out)).await;
        let ok = matches!(sent, Some(Ok(())));
        self.outcome.status = Some(status);
        self.outcome.termination = termination;
        let bytes = if ok { c.out.len() as u64 } else { 0 };
        self.outcome.bytes = bytes;
        fe.counters.bytes_out.fetch_add(bytes, Relaxed);
        fe.counters.count_response(status);
        if let Some(b) = &backend {
            b.counters.bytes_out.fetch_add(bytes, Relaxed);
            b.counters.count_response(status);
        }
        if status == 400 || status == 408 {
            fe.counters.req_errors.fetch_add(1, Relaxed);
        }
        if close || !ok {
            Next::Close
        } else {
            Next::KeepAlive
        }
    }

    /// Answer with an `http-request redirect scheme`: the same host and
    /// URI (origin form) under `scheme`. Logged with HAProxy's `LR`.
    async fn redirect(&mut self, c: &mut Client, cbuf: &Buf, code: u16, scheme: &str) -> Next {
        let close = self.client_must_close(c, None);
        let buf = cbuf.filled();
        let host = self
            .head
            .fields
            .iter()
            .find(|f| f.name.of(buf).eq_ignore_ascii_case(b"host"))
            .map_or(&[][..], |f| f.value.of(buf));
        let uri = match head::origin_part(self.head.target.of(buf)) {
            b"" => &b"/"[..],
            uri => uri,
        };
        let connection = match self.client_connection(close) {
            ConnHeader::Close => Some("close"),
            ConnHeader::KeepAlive => Some("keep-alive"),
            _ => None,
        };
        c.out.clear();
        let location: [&[u8]; 4] = [scheme.as_bytes(), b"://", host, uri];
        super::rules::redirect(&mut c.out, code, &location, connection);
        let fe = self.outcome.frontend.clone();
        let sent = within(fe.timeouts.client, body::write_all(&c.stream, &c.out)).await;
        let ok = matches!(sent, Some(Ok(())));
        self.outcome.status = Some(code);
        self.outcome.termination = "LR";
        let bytes = if ok { c.out.len() as u64 } else { 0 };
        self.outcome.bytes = bytes;
        fe.counters.bytes_out.fetch_add(bytes, Relaxed);
        fe.counters.count_response(code);
        if close || !ok {
            Next::Close
        } else {
            Next::KeepAlive
        }
    }

    /// Route to a server of `backend`, exchange, relay the answer.
    async fn forward(&mut self, c: &mut Client, backend: &Arc<BackendRt>, cbuf: &mut Buf) -> Next {
        let first = c.requests == 1;
        let persistent = backend.cookie.is_some() || !backend.stick.is_empty();
        // Persistence and hash keys read the head, which stays in `cbuf`
        // until the request has been written to the server.
        let tls = c.tls.clone();
        let got = {
            let samples = HttpSamples {
                buf: cbuf.filled(),
                head: &self.head,
                src: c.peer.ip(),
                dst_port: c.local.port(),
                tls: tls.as_deref(),
            };
            let mut key_mem = [0u8; 16];
            let key = hash_key(&backend.balance, &samples, &mut key_mem);
            let sticky = if persistent {
                persist::lookup(backend, &samples)
            } else {
                Sticky::default()
            };
            let claimed = match sticky.server {
                Some(server) => dispatch::claim_server(backend, server).await,
                None => dispatch::claim(backend, key, None).await,
            };
            match claimed {
                Err(e) => Err(e),
                Ok(claim) => {
                    self.outcome.t_queue = claim.queued().as_millis() as i64;
                    // Logged even when connecting fails, as HAProxy does.
                    self.outcome.server = Some(claim.server_index());
                    let started = Instant::now();
                    let sni = SniSource::Client {
                        request: Some(&samples),
                        client_sni: samples.tls.and_then(|t| t.sni.as_deref()),
                    };
                    let got = server_connection(c, backend, claim, key, first, sni).await;
                    if let Ok((_, claim, _)) = &got {
                        if !backend.stick.is_empty() {
                            persist::store(backend, &samples, claim.server_index());
                        }
                        self.outcome.t_connect = started.elapsed().as_millis() as i64;
                    }
                    got.map(|(conn, claim, reused)| (conn, claim, reused, sticky))
                }
            }
        };
        let (conn, claim, reused, sticky) = match got {
            Ok(got) => got,
            Err(e) => {
                if matches!(
                    e,
                    DispatchError::NoServer
                        | DispatchError::QueueFull
                        | DispatchError::QueueTimeout
                ) {
                    backend.counters.no_server.fetch_add(1, Relaxed);
                }
                return self.fail(c, 503, e.termination_state(), false).await;
            }
        };
        self.outcome.server = Some(claim.server_index());
        self.relay(c, backend, cbuf, conn, claim, reused, sticky)
            .await
    }

    /// Send the request on `conn` and relay the response.
    #[allow(clippy::too_many_arguments)]
    async fn relay(
        &mut self,
        c: &mut Client,
        backend: &Arc<BackendRt>,
        cbuf: &mut Buf,
        mut conn: ServerConn,
        mut claim: Claim,
        mut reused: bool,
        sticky: Sticky,
    ) -> Next {
        let fe = self.outcome.frontend.clone();
        // The request head as the server gets it.
        let connection = if fe.httpclose || backend.httpclose {
            ConnHeader::Close
        } else if self.head.upgrade {
            ConnHeader::Upgrade
        } else if self.head.minor == 0 {
            // Ask an HTTP/1.0 server to keep the connection, as HAProxy does.
            ConnHeader::KeepAlive
        } else {
            ConnHeader::None
        };
        if (fe.forwardfor || backend.forwardfor) && c.xff.is_none() {
            c.xff = Some(c.peer.ip().to_string().into());
        }
        let edits = RequestEdits {
            forwarded_for: c
                .xff
                .as_deref()
                .filter(|_| fe.forwardfor || backend.forwardfor),
            cookie: backend.cookie.as_ref(),
            connection,
            headers: (&fe.http_request, self.headers),
        };
        c.out.clear();
        rewrite::request(&mut c.out, cbuf.filled(), &self.head, &edits);
        cbuf.consume(self.head.len);
        self.head_consumed = true;
        self.uploading = !self.body.done();
        // A request may be sent again on another connection only when its
        // method is idempotent (RFC 9110 9.2.2: a proxy must not retry
        // others, the server may have acted on them) and all of it is still
        // at hand (its body, if any, came with the head).
        let replayable = self.head.idempotent && self.body.done();
        let kill_generation = claim.server().shared.generation();
        let mut sbuf = Buf::new(c.limits().bufsize);
        let sent_at = Instant::now();
        let mut retried = false;
        let resp = loop {
            let result = self
                .send_and_wait(c, backend, cbuf, &conn, &claim, &mut sbuf, kill_generation)
                .await;
            let retry = matches!(result, Err(Stop::Retry(_))) && reused && replayable && !retried;
            if !retry {
                // The body kept for a resend leaves the buffer now.
                cbuf.consume(self.body_ready);
                self.body_ready = 0;
            }
            match result {
                Ok(resp) => break resp,
                Err(Stop::Retry(_)) if retry => {
                    retried = true;
                    let port = c.local.port();
                    // The head has left the buffer: the SNI is the one the
                    // failed connection was opened with.
                    let server_tls = claim.server().tls.clone();
                    let sni_value = conn.sni.take();
                    let sni = match server_tls.as_ref().and_then(|t| t.per_connection_sni()) {
                        Some(expr) => SniSource::Known {
                            expr,
                            value: sni_value.as_deref(),
                        },
                        None => SniSource::HeadGone {
                            client_sni: c.tls.as_deref().and_then(|t| t.sni.as_deref()),
                        },
                    };
                    match dispatch::connect(claim, None, port, &c.observer, sni).await {
                        Ok((stream, moved, sni)) => {
                            claim = moved;
                            let shared = &claim.server().shared;
                            conn = ServerConn::new(
                                stream,
                                effective_addr(&claim, port),
                                shared.pool.generation(),
                            );
                            conn.sni = sni;
                            self.outcome.server = Some(claim.server_index());
                            reused = false;
                            sbuf.consume(sbuf.len());
                        }
                        Err(e) => return self.fail(c, 503, e.termination_state(), false).await,
                    }
                }
                Err(Stop::Retry(health)) => {
                    return self.server_failed(c, &claim, 502, "SH", health).await;
                }
                Err(Stop::Fail {
                    status,
                    termination,
                    health: Some(health),
                }) => {
                    return self
                        .server_failed(c, &claim, status, termination, health)
                        .await
                }
                Err(Stop::Fail {
                    status,
                    termination,
                    health: None,
                }) => return self.fail(c, status, termination, true).await,
                Err(Stop::Abort { termination }) => {
                    self.outcome.termination = termination;
                    return Next::Close;
                }
            }
        };
        let t_response = sent_at.elapsed();
        let server = claim.server();
        let observer = &c.observer;
        // A 101 the client did not ask for is not forwarded (HAProxy: 502).
        let tunnel = match resp.status {
            101 => self.head.upgrade,
            200..=299 => self.head.method_kind == Method::Connect,
            _ => false,
        };
        if resp.status == 101 && !tunnel {
            return self
                .server_failed(c, &claim, 502, "PH", Health::InvalidResponse)
                .await;
        }
        let mut dec = Decoder::new(if tunnel { Framing::Empty } else { resp.framing });
        // A bad body that came with the head is refused before anything
        // is forwarded (HAProxy answers 502).
        let Ok(ready) = dec.scan(&sbuf.filled()[resp.len..]) else {
            return self
                .server_failed(c, &claim, 502, "PH", Health::InvalidResponse)
                .await;
        };
        // After a 101, whatever follows the head belongs to the tunnel.
        let ready = if tunnel { sbuf.len() - resp.len } else { ready };
        self.outcome.t_response = t_response.as_millis() as i64;
        observer.report(&backend.name, &server.name, Health::Status(resp.status));
        backend.counters.record_latency(t_response);
        server.shared.counters.count_response(resp.status);
        backend.counters.count_response(resp.status);
        fe.counters.count_response(resp.status);
        self.outcome.status = Some(resp.status);

        // A body still arriving does not close the connection: it goes on
        // to the server beside the response (see `duplex`), and the
        // connection is kept if both end well, as HAProxy does.
        let close =
            tunnel || self.must_close(c, Some(backend)) || resp.framing == Framing::UntilClose;
        let cookie = backend.cookie.as_ref().map(|cfg| CookieEdit {
            cfg,
            server_cookie: &server.cookie,
            client_has_it: sticky.cookie_server == Some(claim.server_index()),
            first: sticky.cookie_first,
        });
        let edits = ResponseEdits {
            cookie,
            connection: if tunnel {
                if resp.status == 101 {
                    ConnHeader::Upgrade
                } else {
                    ConnHeader::None
                }
            } else {
                self.client_connection(close)
            },
        };
        c.out.clear();
        rewrite::response(&mut c.out, sbuf.filled(), &resp, &edits);
        let client_timeout = fe.timeouts.client;
        let written = within(
            client_timeout,
            body::write_two(
                &c.stream,
                &c.out,
                &sbuf.filled()[resp.len..resp.len + ready],
            ),
        )
        .await;
        let mut sent = 0u64;
        match written {
            Some(Ok(())) => sent += (c.out.len() + ready) as u64,
            Some(Err(_)) => return self.finish(c, backend, conn, claim, sent, false, true, "CD"),
            None => return self.finish(c, backend, conn, claim, sent, false, true, "cD"),
        }
        sbuf.consume(resp.len + ready);
        let server_keeps = resp.keep_alive && !resp.smuggle_guard;
        c.fields = resp.fields;

        if tunnel {
            self.outcome.bytes = sent;
            let timeouts = crate::tcp::merge(&fe.timeouts, &backend.timeouts);
            // Bytes the client sent after its request belong to the tunnel.
            let early = cbuf.filled();
            if !early.is_empty() {
                if body::write_all(&conn.stream, early).await.is_err() {
                    return self.finish(c, backend, conn, claim, sent, false, true, "SD");
                }
                backend
                    .counters
                    .bytes_in
                    .fetch_add(early.len() as u64, Relaxed);
                server_bytes_in(&claim, early.len());
                cbuf.consume(early.len());
            }
            let timing = self.outcome.timing;
            let outcome = std::mem::replace(
                &mut self.outcome,
                Outcome::new(fe.clone(), c.peer, timing, None),
            );
            return Next::Tunnel(Box::new(Tunnel {
                server: conn,
                claim,
                backend: backend.clone(),
                timeouts,
                kill_generation,
                outcome,
            }));
        }

        // The rest of the response body, and of the request body.
        let (more, ended) = self
            .both_bodies(
                c,
                cbuf,
                &conn,
                &claim,
                &mut sbuf,
                &mut dec,
                backend.timeouts.server,
                kill_generation,
            )
            .await;
        sent += more;
        // Reuse only a connection whose exchange ended exactly: any byte
        // after the end of the response is surplus, and the server's next
        // answer could go to the wrong client.
        let reusable = ended == "--"
            && !dec.until_close()
            && sbuf.is_empty()
            && server_keeps
            && !self.uploading
            && !(fe.httpclose || backend.httpclose);
        self.finish(c, backend, conn, claim, sent, reusable, close, ended)
    }

    /// The server failed before its answer could be relayed: charge it and
    /// answer `status`.
    async fn server_failed(
        &mut self,
        c: &mut Client,
        claim: &Claim,
        status: u16,
        termination: &'static str,
        health: Health,
    ) -> Next {
        let server = claim.server();
        server.shared.counters.resp_errors.fetch_add(1, Relaxed);
        c.observer
            .report(&claim.backend().name, &server.name, health);
        self.fail(c, status, termination, false).await
    }

    /// Settle counters and connections after an answer was relayed.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &mut self,
        c: &mut Client,
        backend: &BackendRt,
        mut conn: ServerConn,
        claim: Claim,
        sent: u64,
        reusable: bool,
        close: bool,
        termination: &'static str,
    ) -> Next {
        self.outcome.bytes += sent;
        self.outcome.termination = termination;
        let server = claim.server();
        let fe = &self.outcome.frontend;
        server.shared.counters.bytes_out.fetch_add(sent, Relaxed);
        backend.counters.bytes_out.fetch_add(sent, Relaxed);
        fe.counters.bytes_out.fetch_add(sent, Relaxed);
        if reusable {
            conn.exchanges += 1;
            if reuse::shared(backend.http_reuse) {
                c.last_conn = Some(conn.id);
                let in_use = server.shared.counters.current();
                server.shared.pool.put(conn, in_use);
            } else {
                c.private = Some((owner(&server.shared), conn));
            }
        }
        // `claim` drops here: the slot is freed and a queued request woken.
        drop(claim);
        if termination == "--" && !close {
            Next::KeepAlive
        } else {
            Next::Close
        }
    }
}

/// Identity of a server's shared state (its address; they live as long as
/// the process), for the connection a client keeps.
fn owner(shared: &Arc<ServerShared>) -> usize {
    Arc::as_ptr(shared) as usize
}

/// Where a claimed server is reached: its address, with the client's
/// destination port when the config gives none.
fn effective_addr(claim: &Claim, dst_port: u16) -> SocketAddr {
    let addr = claim.server().addr;
    if addr.port() == 0 {
        SocketAddr::new(addr.ip(), dst_port)
    } else {
        addr
    }
}

/// Bytes sent to a server are its `bin`, and its backend's.
pub(super) fn server_bytes_in(claim: &Claim, n: usize) {
    claim
        .server()
        .shared
        .counters
        .bytes_in
        .fetch_add(n as u64, Relaxed);
    claim
        .backend()
        .counters
        .bytes_in
        .fetch_add(n as u64, Relaxed);
}

/// A connection to the claimed server: the client's private one, a pooled
/// one `http-reuse` allows, or a new one (with retries and redispatch).
/// A server whose `sni` is evaluated per connection only reuses a
/// connection opened with this request's SNI.
async fn server_connection(
    c: &mut Client,
    backend: &BackendRt,
    claim: Claim,
    key: Option<&[u8]>,
    first: bool,
    sni: SniSource<'_>,
) -> Result<(ServerConn, Claim, bool), DispatchError> {
    let port = c.local.port();
    let addr = effective_addr(&claim, port);
    let server = claim.server();
    let shared = &server.shared;
    // Nothing is evaluated (nor allocated) for plain servers or a constant
    // `sni`: their connections are all keyed `None`. A value that cannot
    // be had matches no connection, and the connect refuses it.
    let key_sni = match server.tls.as_ref().and_then(|t| t.per_connection_sni()) {
        None => Ok(None),
        Some(expr) => sni.eval(expr),
    };
    if let Ok(wanted) = &key_sni {
        let wanted = wanted.as_deref();
        if let Some((of, conn)) = c.private.take() {
            // Dropped (closed) unless it fits this request.
            if of == owner(shared)
                && conn.addr == addr
                && conn.generation == shared.pool.generation()
                && conn.sni.as_deref() == wanted
                && conn.clean()
            {
                return Ok((conn, claim, true));
            }
        }
        if let Some(share) = reuse::share(backend.http_reuse, first) {
            if let Some(conn) = shared.pool.take(addr, share, c.last_conn, wanted) {
                return Ok((conn, claim, true));
            }
        }
    }
    let (stream, claim, sni) = dispatch::connect(claim, key, port, &c.observer, sni).await?;
    let addr = effective_addr(&claim, port);
    let mut conn = ServerConn::new(stream, addr, claim.server().shared.pool.generation());
    conn.sni = sni;
    Ok((conn, claim, false))
}
