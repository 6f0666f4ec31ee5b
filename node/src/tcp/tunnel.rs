//! The bidirectional copy behind TCP mode and upgraded HTTP connections.
//!
//! Each direction (client to server, server to client) is its own small
//! state machine with its own buffer and progress, and both are polled from
//! one future: a direction stalled on a write never stops the other from
//! reading or writing, so two peers that both write cannot deadlock.
//!
//! Inactivity timeouts follow HAProxy 2.6 (`stream.c`, `stconn.c`). Each
//! direction waits on one operation at a time, and each operation belongs
//! to a side: reading from the client and writing to the client are the
//! client side (`timeout client`, result `cD`), reading from and writing to
//! the server are the server side (`timeout server`, result `sD`).
//! `timeout tunnel`, when set, replaces both. An operation that makes no
//! progress for its timeout ends the connection, so a write the peer never
//! drains is inactivity too. Progress refreshes the operation itself, and a
//! write (or the start of one) also refreshes the read waiting on the same
//! side, as HAProxy does unless `option independent-streams`.
//!
//! Half-closed connections: once the server's data is finished (we shut our
//! write towards the client), reading from the client uses `timeout
//! client-fin` when set; once the client's data is finished, reading from
//! the server uses `timeout server-fin`. With `timeout tunnel`, the writes
//! that remain take the `-fin` timeout of their side too.
//!
//! An idle direction holds no buffer: it waits for readiness first and takes
//! a 16 KB buffer from a per-thread free list only when there is something
//! to read, giving it back as soon as a read would block.

use shoal_proto::config::Timeouts;
use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Bytes moved per read; HAProxy's default `tune.bufsize`.
const BUF: usize = 16 * 1024;
/// Free buffers kept per thread; more are freed.
const KEEP: usize = 64;

/// A readable end that can wait for data without holding a buffer.
pub trait Source: AsyncRead + Unpin {
    /// Ready when a read is likely to return data, end of stream or an error.
    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

impl Source for tokio::net::tcp::ReadHalf<'_> {
    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.as_ref().poll_read_ready(cx)
    }
}

thread_local! {
    static FREE: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

fn take_buffer() -> Box<[u8]> {
    FREE.try_with(|f| f.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_else(|| vec![0u8; BUF].into_boxed_slice())
}

fn give_buffer(buf: Box<[u8]>) {
    let _ = FREE.try_with(|f| {
        let mut free = f.borrow_mut();
        if free.len() < KEEP {
            free.push(buf);
        }
    });
}

/// What one direction is waiting on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for data from its source.
    Read,
    /// Holding data its sink has not taken yet.
    Write,
    Flush,
    /// The source ended: pass the shutdown on.
    Shut,
    Done,
}

/// Why a direction stopped early.
enum Fault {
    Read,
    Write,
}

/// One direction of the copy.
struct Flow {
    state: State,
    buf: Option<Box<[u8]>>,
    start: usize,
    end: usize,
    bytes: u64,
    /// Last progress of the operation `state` waits on, or when it began.
    since: Instant,
}

impl Flow {
    fn new(now: Instant) -> Flow {
        Flow {
            state: State::Read,
            buf: None,
            start: 0,
            end: 0,
            bytes: 0,
            since: now,
        }
    }

    fn writing(&self) -> bool {
        matches!(self.state, State::Write | State::Flush | State::Shut)
    }

    fn release(&mut self) {
        if let Some(buf) = self.buf.take() {
            give_buffer(buf);
        }
    }

    /// Move data until the source or the sink would block. `moved` is set
    /// when anything was read or written.
    fn poll<R: Source, W: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        source: &mut R,
        sink: &mut W,
        moved: &mut bool,
    ) -> Poll<Result<(), Fault>> {
        loop {
            match self.state {
                State::Read => {
                    let buf = match &mut self.buf {
                        Some(buf) => buf,
                        None => {
                            if ready!(source.poll_readable(cx)).is_err() {
                                return Poll::Ready(Err(Fault::Read));
                            }
                            self.buf.insert(take_buffer())
                        }
                    };
                    let mut read = ReadBuf::new(buf);
                    match Pin::new(&mut *source).poll_read(cx, &mut read) {
                        Poll::Pending => {
                            self.release();
                            return Poll::Pending;
                        }
                        Poll::Ready(Err(_)) => return Poll::Ready(Err(Fault::Read)),
                        Poll::Ready(Ok(())) => {
                            let n = read.filled().len();
                            if n == 0 {
                                self.release();
                                self.state = State::Shut;
                            } else {
                                (self.start, self.end) = (0, n);
                                self.state = State::Write;
                                *moved = true;
                            }
                        }
                    }
                }
                State::Write => {
                    let Some(buf) = &self.buf else {
                        self.state = State::Read;
                        continue;
                    };
                    match Pin::new(&mut *sink).poll_write(cx, &buf[self.start..self.end]) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                            return Poll::Ready(Err(Fault::Write))
                        }
                        Poll::Ready(Ok(n)) => {
                            self.start += n;
                            self.bytes += n as u64;
                            *moved = true;
                            if self.start == self.end {
                                self.state = State::Flush;
                            }
                        }
                    }
                }
                State::Flush => {
                    if ready!(Pin::new(&mut *sink).poll_flush(cx)).is_err() {
                        return Poll::Ready(Err(Fault::Write));
                    }
                    self.state = State::Read;
                }
                State::Shut => {
                    // The peer may already be gone; the other direction
                    // will find out on its own.
                    let _ = ready!(Pin::new(&mut *sink).poll_shutdown(cx));
                    self.state = State::Done;
                }
                State::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}

/// The inactivity limit of each operation, from merged timeouts.
struct Limits {
    client: Option<Duration>,
    server: Option<Duration>,
    client_fin: Option<Duration>,
    server_fin: Option<Duration>,
    tunnel: bool,
}

impl Limits {
    fn new(t: &Timeouts) -> Limits {
        Limits {
            client: t.tunnel.or(t.client),
            server: t.tunnel.or(t.server),
            client_fin: t.client_fin,
            server_fin: t.server_fin,
            tunnel: t.tunnel.is_some(),
        }
    }

    /// Limit and termination state for the client-to-server direction.
    fn up(&self, up: &Flow, down: &Flow) -> Option<(Duration, &'static str)> {
        let down_done = down.state == State::Done;
        match up.state {
            State::Read if down_done => self.client_fin.or(self.client).map(|d| (d, "cD")),
            State::Read => self.client.map(|d| (d, "cD")),
            State::Done => None,
            _ if down_done && self.tunnel => self.server_fin.or(self.server).map(|d| (d, "sD")),
            _ => self.server.map(|d| (d, "sD")),
        }
    }

    /// Limit and termination state for the server-to-client direction.
    fn down(&self, up: &Flow, down: &Flow) -> Option<(Duration, &'static str)> {
        let up_done = up.state == State::Done;
        match down.state {
            State::Read if up_done => self.server_fin.or(self.server).map(|d| (d, "sD")),
            State::Read => self.server.map(|d| (d, "sD")),
            State::Done => None,
            _ if up_done && self.tunnel => self.client_fin.or(self.client).map(|d| (d, "cD")),
            _ => self.client.map(|d| (d, "cD")),
        }
    }

    /// The earliest deadline, and what ends the connection then.
    fn next(&self, up: &Flow, down: &Flow) -> Option<(Instant, &'static str)> {
        let a = self.up(up, down).map(|(d, why)| (up.since + d, why));
        let b = self.down(up, down).map(|(d, why)| (down.since + d, why));
        match (a, b) {
            // On a tie the client side is blamed, as HAProxy does for an
            // idle tunnel.
            (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
            (a, b) => a.or(b),
        }
    }
}

/// Copy both ways until both directions have ended, a side fails, or an
/// operation stays idle past its timeout. Returns bytes client->server,
/// bytes server->client and HAProxy's termination state (`--`, `CD`, `SD`,
/// `cD`, `sD`).
pub async fn run<CR, CW, SR, SW>(
    mut cr: CR,
    mut cw: CW,
    mut sr: SR,
    mut sw: SW,
    t: &Timeouts,
) -> (u64, u64, &'static str)
where
    CR: Source,
    CW: AsyncWrite + Unpin,
    SR: Source,
    SW: AsyncWrite + Unpin,
{
    let limits = Limits::new(t);
    let now = Instant::now();
    let mut up = Flow::new(now);
    let mut down = Flow::new(now);
    // Re-armed lazily: progress only records a time, and the timer is
    // moved when it fires early or when a nearer deadline appears.
    let timer = tokio::time::sleep_until(now);
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    let end = poll_fn(|cx| {
        let (was_up, was_down) = (up.state, down.state);
        let (mut up_moved, mut down_moved) = (false, false);
        match up.poll(cx, &mut cr, &mut sw, &mut up_moved) {
            Poll::Ready(Err(Fault::Read)) => return Poll::Ready("CD"),
            Poll::Ready(Err(Fault::Write)) => return Poll::Ready("SD"),
            _ => {}
        }
        match down.poll(cx, &mut sr, &mut cw, &mut down_moved) {
            Poll::Ready(Err(Fault::Read)) => return Poll::Ready("SD"),
            Poll::Ready(Err(Fault::Write)) => return Poll::Ready("CD"),
            _ => {}
        }
        if up.state == State::Done && down.state == State::Done {
            return Poll::Ready("--");
        }
        let up_ended = up.state == State::Done && was_up != State::Done;
        let down_ended = down.state == State::Done && was_down != State::Done;
        if up_moved || down_moved || up_ended || down_ended {
            let now = Instant::now();
            if up_moved {
                up.since = now;
            }
            if down_moved {
                down.since = now;
            }
            // Writing to (or starting to write to) a side refreshes the
            // read waiting on that side; a half-close re-arms the other
            // direction with its `-fin` timeout.
            if (up_moved && !down.writing()) || up_ended {
                down.since = now;
            }
            if (down_moved && !up.writing()) || down_ended {
                up.since = now;
            }
        }
        let Some((deadline, _)) = limits.next(&up, &down) else {
            return Poll::Pending;
        };
        if armed.is_none_or(|at| deadline < at) {
            timer.as_mut().reset(deadline);
            armed = Some(deadline);
        }
        while timer.as_mut().poll(cx).is_ready() {
            let Some((next, why)) = limits.next(&up, &down) else {
                armed = None;
                return Poll::Pending;
            };
            if next <= Instant::now() {
                return Poll::Ready(why);
            }
            timer.as_mut().reset(next);
            armed = Some(next);
        }
        Poll::Pending
    })
    .await;
    up.release();
    down.release();
    (up.bytes, down.bytes, end)
}

#[cfg(test)]
mod tests;
