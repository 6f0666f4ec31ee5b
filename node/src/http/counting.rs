//! An I/O wrapper that adds the bytes read from it to counters, so that
//! `bin` (bytes from clients, bytes sent to servers) is exact in HTTP mode,
//! headers included, as in HAProxy. One relaxed atomic add per read or
//! write call; nothing per byte.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Counts bytes that pass one way: `Direction::Read` counts what is read
/// from the inner stream, `Direction::Write` what is written to it.
pub struct Counting<T> {
    inner: T,
    direction: Direction,
    add: Arc<dyn Fn(u64) + Send + Sync>,
}

/// Which way to count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Read,
    Write,
}

impl<T> Counting<T> {
    /// Wrap `inner`; `add` receives each chunk's length.
    pub fn new(inner: T, direction: Direction, add: Arc<dyn Fn(u64) + Send + Sync>) -> Self {
        Counting {
            inner,
            direction,
            add,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Counting<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if self.direction == Direction::Read {
            if let Poll::Ready(Ok(())) = polled {
                let n = buf.filled().len() - before;
                if n > 0 {
                    (self.add)(n as u64);
                }
            }
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counting<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if self.direction == Direction::Write {
            if let Poll::Ready(Ok(n)) = polled {
                (self.add)(n as u64);
            }
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if self.direction == Direction::Write {
            if let Poll::Ready(Ok(n)) = polled {
                (self.add)(n as u64);
            }
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
