//! A fixed-size read buffer: the bytes between `start` and `end` are
//! filled and not yet consumed. It never grows, so a connection costs at
//! most its size however much a peer sends (`tune.bufsize`, as in HAProxy).
//!
//! Buffers are recycled through a small per-thread free list, so a busy
//! keep-alive connection does not allocate per request while an idle one
//! holds no buffer at all.

use std::cell::RefCell;
use std::io::{self, Read as _};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Spare buffers kept per worker thread (2 MB of 16 KB buffers): enough
/// for a busy thread's requests in flight, each holding one client-side
/// and one server-side buffer, so that steady traffic neither allocates
/// nor zeroes buffers.
const SPARES: usize = 128;

thread_local! {
    static FREE: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

/// A read buffer of fixed capacity.
pub struct Buf {
    mem: Box<[u8]>,
    start: usize,
    end: usize,
}

impl Buf {
    /// An empty buffer of `size` bytes, recycled when one is spare.
    pub fn new(size: usize) -> Buf {
        let mem = FREE
            .with(|free| {
                let mut free = free.borrow_mut();
                let i = free.iter().rposition(|m| m.len() == size)?;
                Some(free.swap_remove(i))
            })
            .unwrap_or_else(|| vec![0u8; size].into_boxed_slice());
        Buf {
            mem,
            start: 0,
            end: 0,
        }
    }

    /// The filled, unconsumed bytes.
    pub fn filled(&self) -> &[u8] {
        &self.mem[self.start..self.end]
    }

    /// Number of filled bytes.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// True when nothing is filled.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Total capacity.
    pub fn capacity(&self) -> usize {
        self.mem.len()
    }

    /// True when no byte more can be read without consuming some first.
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity()
    }

    /// Forget the first `n` filled bytes.
    pub fn consume(&mut self, n: usize) {
        self.start += n.min(self.len());
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Room to read into, moving the filled bytes to the front if needed.
    fn space(&mut self) -> &mut [u8] {
        if self.end == self.mem.len() && self.start > 0 {
            self.mem.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.mem[self.end..]
    }

    /// Read once from `stream` without waiting. `Ok(0)` is end of stream;
    /// `WouldBlock` means nothing is there yet. Never called when full.
    ///
    /// A read that leaves room in the buffer has drained the socket, so
    /// tokio is told to forget its readiness (as its own `poll_read`
    /// does): the next wait then sleeps until data comes instead of
    /// costing a read that finds nothing.
    pub fn try_read(&mut self, stream: &TcpStream) -> io::Result<usize> {
        let space = self.space();
        let room = space.len();
        let mut got = None;
        let result = stream.try_io(Interest::READABLE, || {
            let n = (&*socket2::SockRef::from(stream)).read(&mut space[..])?;
            got = Some(n);
            if n > 0 && n < room {
                // Cleared with the readiness seen before the read, so data
                // arriving meanwhile is not forgotten.
                Err(io::ErrorKind::WouldBlock.into())
            } else {
                Ok(n)
            }
        });
        match (got, result) {
            (Some(n), _) => {
                self.end += n;
                Ok(n)
            }
            (None, Err(e)) => Err(e),
            (None, Ok(n)) => Ok(n),
        }
    }

    /// Wait until `stream` has data, then read once (`Ok(0)`: end of stream).
    pub async fn read(&mut self, stream: &TcpStream) -> io::Result<usize> {
        loop {
            stream.readable().await?;
            match self.try_read(stream) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return other,
            }
        }
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        let mem = std::mem::take(&mut self.mem);
        if mem.is_empty() {
            return;
        }
        // `try_with`: the thread-local may already be gone at thread exit.
        let _ = FREE.try_with(|free| {
            if let Ok(mut free) = free.try_borrow_mut() {
                if free.len() < SPARES {
                    free.push(mem);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::Buf;

    #[test]
    fn consume_and_compact() {
        let mut b = Buf::new(8);
        b.mem[..6].copy_from_slice(b"abcdef");
        b.end = 6;
        b.consume(4);
        assert_eq!(b.filled(), b"ef");
        b.end = 8;
        b.mem[6..8].copy_from_slice(b"gh");
        // Full at the end: making space moves "efgh" to the front.
        assert_eq!(b.space().len(), 4);
        assert_eq!(b.filled(), b"efgh");
        b.consume(10);
        assert!(b.is_empty());
    }
}
