//! Sending a request to a server and waiting for its answer: the head is
//! written, the body streams from the client as it comes (`timeout client`
//! bounds its silences), and interim answers are relayed, until the final
//! response head arrives (`timeout server` bounds the server's silences).
//! The server may answer before the body is all sent: the rest of it then
//! goes on beside the response body (see [`super::duplex`]).

use super::body;
use super::buf::Buf;
use super::conn::Client;
use super::duplex::UploadFault;
use super::head::{self, HeadScan, ResponseHead};
use super::proxy::{never, server_bytes_in, within, Exchange, Stop};
use super::rewrite::{self, ConnHeader, ResponseEdits};
use crate::dispatch::Claim;
use crate::health::Outcome as Health;
use crate::pool::ServerConn;
use crate::routing::BackendRt;
use std::sync::atomic::Ordering::Relaxed;
use tokio::time::Instant;

impl Exchange {
    /// Write the request (its head is in `c.out`; its body streams from
    /// the client) and wait for the final response head, relaying interim
    /// (1xx) answers to the client.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn send_and_wait(
        &mut self,
        c: &mut Client,
        backend: &BackendRt,
        cbuf: &mut Buf,
        conn: &ServerConn,
        claim: &Claim,
        sbuf: &mut Buf,
        kill_generation: u64,
    ) -> Result<ResponseHead, Stop> {
        let fe = self.outcome.frontend.clone();
        let limits = c.limits();
        let server_timeout = backend.timeouts.server;
        let client_timeout = fe.timeouts.client;
        let ready = self.body_ready.min(cbuf.len());
        let written = within(
            server_timeout,
            body::write_two(&conn.stream, &c.out, &cbuf.filled()[..ready]),
        )
        .await;
        match written {
            Some(Ok(())) => server_bytes_in(claim, c.out.len() + ready),
            // A reused connection the server closed meanwhile.
            Some(Err(_)) => return Err(Stop::Retry(Health::Closed)),
            None => return Err(Stop::server(504, "sH", Health::ReadTimeout)),
        }
        // A body that came whole with the head stays in the buffer until
        // the answer starts, so the request can be sent again (see relay).
        if !self.body.done() {
            cbuf.consume(ready);
            self.body_ready = 0;
        }
        self.upload_pending = 0;
        self.upload_cut = false;
        let mut last_server = Instant::now();
        let mut last_client = Instant::now();
        let mut scan = HeadScan::default();
        let mut got_any = false;
        let killed = claim.server().shared.killed(kill_generation);
        tokio::pin!(killed);
        loop {
            if scan.worth_parsing(sbuf.filled()) {
                match head::parse_response(
                    sbuf.filled(),
                    &limits,
                    self.head.method_kind,
                    &mut c.fields,
                ) {
                    Ok(Some(resp)) if resp.status < 200 && resp.status != 101 => {
                        // 100 Continue, 103 Early Hints: relayed (HTTP/1.0
                        // clients must not get them).
                        if self.head.minor == 1 {
                            c.out.clear();
                            let edits = ResponseEdits {
                                cookie: None,
                                connection: ConnHeader::None,
                            };
                            rewrite::response(&mut c.out, sbuf.filled(), &resp, &edits);
                            let sent =
                                within(client_timeout, body::write_all(&c.stream, &c.out)).await;
                            if !matches!(sent, Some(Ok(()))) {
                                return Err(Stop::Abort { termination: "CD" });
                            }
                            let n = c.out.len() as u64;
                            self.outcome.bytes += n;
                            fe.counters.bytes_out.fetch_add(n, Relaxed);
                            claim.backend().counters.bytes_out.fetch_add(n, Relaxed);
                            claim
                                .server()
                                .shared
                                .counters
                                .bytes_out
                                .fetch_add(n, Relaxed);
                        }
                        sbuf.consume(resp.len);
                        c.fields = resp.fields;
                        scan = HeadScan::default();
                        continue;
                    }
                    Ok(Some(resp)) => return Ok(resp),
                    Ok(None) => {}
                    Err(_) => return Err(Stop::server(502, "PH", Health::InvalidResponse)),
                }
            }
            if sbuf.len() >= limits.room() {
                return Err(Stop::server(502, "PH", Health::InvalidResponse));
            }
            let waiting_client = self.wants_body();
            let server_deadline = server_timeout.map(|t| last_server + t);
            let client_deadline = client_timeout
                .filter(|_| waiting_client)
                .map(|t| last_client + t);
            let deadline = match (server_deadline, client_deadline) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => a.or(b).unwrap_or_else(never),
            };
            tokio::select! {
                biased;
                // `shutdown sessions server` while waiting for the answer.
                () = &mut killed => return Err(Stop::Fail { status: 503, termination: "KH", health: None }),
                r = conn.stream.readable() => {
                    let read = match r {
                        Ok(()) => sbuf.try_read(&conn.stream),
                        Err(e) => Err(e),
                    };
                    match read {
                        Ok(0) if !got_any => return Err(Stop::Retry(Health::Closed)),
                        Ok(0) => return Err(Stop::server(502, "SH", Health::Closed)),
                        Ok(_) => {
                            got_any = true;
                            last_server = Instant::now();
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(_) if !got_any => return Err(Stop::Retry(Health::ReadError)),
                        Err(_) => return Err(Stop::server(502, "SH", Health::ReadError)),
                    }
                }
                // A failed wait shows in the write, which then cuts the body.
                _ = conn.stream.writable(), if self.upload_pending > 0 => {
                    if self.write_body(conn, cbuf, claim) {
                        last_server = Instant::now();
                    }
                }
                r = c.stream.readable(), if waiting_client => {
                    match r.map_err(|_| UploadFault::Gone).and_then(|()| self.read_body(c, cbuf)) {
                        Ok(true) => last_client = Instant::now(),
                        Ok(false) => {}
                        // A client fault, never the server's (HAProxy: 400, PH).
                        Err(UploadFault::Invalid) => return Err(Stop::client(400, "PH")),
                        // The client left in the middle of its body.
                        Err(UploadFault::Gone) => return Err(Stop::Abort { termination: "CD" }),
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    let now = Instant::now();
                    if client_deadline.is_some_and(|d| d <= now) {
                        // `timeout client` bounds silences of an upload.
                        return Err(Stop::client(408, "cD"));
                    }
                    if server_deadline.is_some_and(|d| d <= now) {
                        return Err(Stop::server(504, "sH", Health::ReadTimeout));
                    }
                }
            }
        }
    }
}
