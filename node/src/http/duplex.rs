//! Both bodies at once: once the response head is sent, the response body
//! goes to the client while the rest of the request body still goes to the
//! server, until both have ended. A server that answers early and keeps
//! reading (a streaming echo, an upload progress API) gets the whole
//! upload, as through HAProxy; one that answered early without reading
//! gets the body until it stops taking it.
//!
//! Each side has its own inactivity timeout, as in HAProxy (without
//! `option independent-streams`): `timeout client` while Shoal waits on
//! the client (for body bytes, or for it to take response bytes), `timeout
//! server` while it waits on the server (for response bytes, or for it to
//! take body bytes). Progress either way on a side restarts its clock.
//!
//! Neither direction waits for the other: each pass tries the four socket
//! operations without blocking, and the loop waits on their readiness,
//! together, only when nothing moved.

use super::body::Decoder;
use super::buf::Buf;
use super::conn::Client;
use super::proxy::{never, server_bytes_in, Exchange};
use crate::dispatch::Claim;
use crate::pool::ServerConn;
use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::time::Instant;

/// Why reading the request body from the client stopped.
pub(super) enum UploadFault {
    /// The client closed or failed in the middle of its body.
    Gone,
    /// The body is invalid (a bad chunk, or a line longer than the buffer).
    Invalid,
}

impl Exchange {
    /// The request body needs more bytes from the client.
    pub(super) fn wants_body(&self) -> bool {
        self.uploading && self.upload_pending == 0 && !self.upload_cut
    }

    /// The request body is not all with the server, and still could be.
    fn upload_open(&self) -> bool {
        (self.uploading && !self.upload_cut) || self.upload_pending > 0
    }

    /// The termination state of an exchange whose response has ended: a
    /// body the server stopped taking is a server abort, even after a
    /// complete answer (HAProxy logs it `SD` too).
    fn ended(&self) -> &'static str {
        if self.upload_cut {
            "SD"
        } else {
            "--"
        }
    }

    /// Read request-body bytes the client sent, without waiting.
    /// `Ok(false)`: nothing was there.
    pub(super) fn read_body(&mut self, c: &Client, cbuf: &mut Buf) -> Result<bool, UploadFault> {
        match cbuf.try_read(&c.stream) {
            Ok(n) if n > 0 => {
                c.frontend.counters.bytes_in.fetch_add(n as u64, Relaxed);
                // Bytes are read only once the pending ones are sent, so
                // the whole buffer is unscanned.
                let body = self
                    .body
                    .scan(cbuf.filled())
                    .map_err(|_| UploadFault::Invalid)?;
                self.upload_pending = body;
                if self.body.done() {
                    self.uploading = false;
                } else if body == 0 && cbuf.is_full() {
                    return Err(UploadFault::Invalid);
                }
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            _ => Err(UploadFault::Gone),
        }
    }

    /// Write pending request-body bytes to the server, without waiting. A
    /// server that refuses them has stopped reading: the rest of the body
    /// is dropped, its answer may still come. `false`: no progress.
    pub(super) fn write_body(&mut self, conn: &ServerConn, cbuf: &mut Buf, claim: &Claim) -> bool {
        match conn.stream.try_write(&cbuf.filled()[..self.upload_pending]) {
            Ok(n) if n > 0 => {
                cbuf.consume(n);
                self.upload_pending -= n;
                server_bytes_in(claim, n);
                true
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            _ => {
                self.upload_cut = true;
                cbuf.consume(self.upload_pending);
                self.upload_pending = 0;
                true
            }
        }
    }

    /// Relay the response body after its head (`dec` has scanned what was
    /// sent with it) while the request body goes on. Returns the bytes
    /// written to the client and the termination state: `--` when both
    /// bodies ended, else which side failed or stalled and where.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn both_bodies(
        &mut self,
        c: &Client,
        cbuf: &mut Buf,
        conn: &ServerConn,
        claim: &Claim,
        sbuf: &mut Buf,
        dec: &mut Decoder,
        server_timeout: Option<Duration>,
        kill_generation: u64,
    ) -> (u64, &'static str) {
        if dec.done() && !self.upload_open() {
            // The usual case: the whole exchange is already through.
            return (0, self.ended());
        }
        let client_timeout = self.outcome.frontend.timeouts.client;
        let shared = claim.server().shared.clone();
        // `shutdown sessions server` cuts responses still streaming.
        let killed = shared.killed(kill_generation);
        tokio::pin!(killed);
        let timer = tokio::time::sleep_until(never());
        tokio::pin!(timer);
        let mut down = Downstream {
            unsent: 0,
            server_done: false,
            sent: 0,
        };
        let mut last_client = Instant::now();
        let mut last_server = Instant::now();
        loop {
            // Move what can move without waiting (`try_*` calls cost no
            // system call on a socket not known to be ready). The passes
            // are bounded so that a busy exchange still waits below, where
            // tokio makes it yield and `shutdown sessions` is noticed.
            for _ in 0..PASSES {
                let moved = match self.pump(c, cbuf, conn, claim, sbuf, dec, &mut down) {
                    Ok(moved) => moved,
                    Err(termination) => return (down.sent, termination),
                };
                let now = Instant::now();
                if moved.client {
                    last_client = now;
                }
                if moved.server {
                    last_server = now;
                }
                if !moved.client && !moved.server {
                    break;
                }
            }
            let response_open = !(dec.done() || down.server_done);
            if !response_open && down.unsent == 0 && !self.upload_open() {
                return (down.sent, self.ended());
            }
            let read_server = response_open && down.unsent == 0;
            let write_client = down.unsent > 0;
            let read_client = self.wants_body();
            let write_server = self.upload_pending > 0;
            let client_deadline = client_timeout
                .filter(|_| read_client || write_client)
                .map(|t| last_client + t);
            let server_deadline = server_timeout
                .filter(|_| read_server || write_server)
                .map(|t| last_server + t);
            let deadline = match (client_deadline, server_deadline) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => a.or(b).unwrap_or_else(never),
            };
            // Progress only moves deadlines later: the timer is reset when
            // one comes earlier, or when it fires early (see below), not on
            // every pass.
            if deadline < timer.deadline() {
                timer.as_mut().reset(deadline);
            }
            // Wait until a socket is ready; the next passes do the work.
            tokio::select! {
                biased;
                () = &mut killed => return (down.sent, "KD"),
                r = conn.stream.readable(), if read_server => {
                    if r.is_err() {
                        return (down.sent, "SD");
                    }
                }
                r = c.stream.writable(), if write_client => {
                    if r.is_err() {
                        return (down.sent, "CD");
                    }
                }
                r = c.stream.readable(), if read_client => {
                    if r.is_err() {
                        return (down.sent, "CD");
                    }
                }
                // A failed wait shows in the write, which then cuts the body.
                _ = conn.stream.writable(), if write_server => {}
                () = &mut timer => {
                    let now = Instant::now();
                    if client_deadline.is_some_and(|d| d <= now) {
                        return (down.sent, "cD");
                    }
                    if server_deadline.is_some_and(|d| d <= now) {
                        return (down.sent, "sD");
                    }
                    // Fired before the deadline progress has moved: wait on.
                    timer.as_mut().reset(deadline);
                }
            }
        }
    }

    /// One pass of both directions without waiting: server to client, then
    /// client to server. `Err` is the termination state of a failure.
    #[allow(clippy::too_many_arguments)]
    fn pump(
        &mut self,
        c: &Client,
        cbuf: &mut Buf,
        conn: &ServerConn,
        claim: &Claim,
        sbuf: &mut Buf,
        dec: &mut Decoder,
        down: &mut Downstream,
    ) -> Result<Moved, &'static str> {
        let mut moved = Moved::default();
        if down.unsent == 0 && !dec.done() && !down.server_done {
            match sbuf.try_read(&conn.stream) {
                Ok(0) if dec.until_close() => down.server_done = true,
                Ok(0) => return Err("SD"),
                Ok(_) => {
                    moved.server = true;
                    // Bytes are read only once the scanned ones are written,
                    // so the whole buffer is unscanned.
                    down.unsent = dec.scan(sbuf.filled()).map_err(|_| "SD")?;
                    if down.unsent == 0 && sbuf.is_full() {
                        return Err("SD");
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return Err("SD"),
            }
        }
        if down.unsent > 0 {
            match c.stream.try_write(&sbuf.filled()[..down.unsent]) {
                Ok(n) if n > 0 => {
                    moved.client = true;
                    sbuf.consume(n);
                    down.unsent -= n;
                    down.sent += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                _ => return Err("CD"),
            }
        }
        if self.wants_body() {
            match self.read_body(c, cbuf) {
                Ok(read) => moved.client |= read,
                Err(UploadFault::Gone) => return Err("CD"),
                // An invalid body after the answer started: HAProxy logs
                // `PD` as well.
                Err(UploadFault::Invalid) => return Err("PD"),
            }
        }
        if self.upload_pending > 0 {
            moved.server |= self.write_body(conn, cbuf, claim);
        }
        Ok(moved)
    }
}

/// Passes of [`Exchange::pump`] before waiting on the sockets.
const PASSES: usize = 8;

/// The response body's progress towards the client.
struct Downstream {
    /// Response bytes at the front of the server buffer, scanned, not yet
    /// written to the client.
    unsent: usize,
    /// The server closed a response that ends with its close.
    server_done: bool,
    /// Bytes written to the client.
    sent: u64,
}

/// Which sides a pass made progress on.
#[derive(Default)]
struct Moved {
    client: bool,
    server: bool,
}
