//! Message bodies: finding where a body ends (`Content-Length`, chunked,
//! or the server's close) while its bytes are forwarded unchanged, and
//! writing to sockets without waiting on a lock.
//!
//! Chunked bodies are checked as they pass: every chunk-size line is
//! parsed with `httparse::parse_chunk_size`, every chunk must end with a
//! line break right after its announced size, and trailers end at an empty
//! line. Knowing exactly where a message ends is what lets a server
//! connection be reused safely: any byte after the end is surplus.

use super::head::Framing;
use std::io::{self, IoSlice};
use tokio::net::TcpStream;

/// The longest chunk-size line or trailer section accepted.
const MAX_LINE: usize = 4096;

/// A body that cannot be read to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("invalid chunk size")]
    ChunkSize,
    #[error("chunk longer than its size")]
    ChunkEnd,
    #[error("chunk-size line or trailers too long")]
    TooLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Bytes left of a `Content-Length` body.
    Length(u64),
    /// At a chunk-size line.
    Size,
    /// Bytes left in the current chunk.
    Data(u64),
    /// The line break after a chunk's data.
    DataEnd,
    /// Trailer lines after the last chunk; the count is bytes seen.
    Trailers(usize),
    UntilClose,
    Done,
}

/// Finds the end of one message body in the bytes that follow its head.
#[derive(Debug, Clone, Copy)]
pub struct Decoder {
    state: State,
}

impl Decoder {
    /// A decoder for a body framed as `framing`.
    pub fn new(framing: Framing) -> Decoder {
        let state = match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Size,
            Framing::UntilClose => State::UntilClose,
        };
        Decoder { state }
    }

    /// The whole body has been seen.
    pub fn done(&self) -> bool {
        self.state == State::Done
    }

    /// The body ends when the sender closes.
    pub fn until_close(&self) -> bool {
        self.state == State::UntilClose
    }

    /// Scan `data`, which follows what was scanned before, and return how
    /// many of its leading bytes belong to the body. When the body is not
    /// [`done`](Decoder::done), the bytes after them are an incomplete line
    /// that needs more data; when it is, they belong to the next message.
    pub fn scan(&mut self, data: &[u8]) -> Result<usize, BodyError> {
        let mut pos = 0;
        loop {
            let rest = &data[pos..];
            match self.state {
                State::Done => return Ok(pos),
                State::UntilClose => return Ok(data.len()),
                State::Length(n) | State::Data(n) => {
                    let take = n.min(rest.len() as u64);
                    pos += take as usize;
                    let left = n - take;
                    self.state = match (self.state, left) {
                        (State::Length(_), 0) => State::Done,
                        (State::Length(_), left) => State::Length(left),
                        (_, 0) => State::DataEnd,
                        (_, left) => State::Data(left),
                    };
                    if left > 0 {
                        return Ok(pos);
                    }
                }
                State::Size => match httparse::parse_chunk_size(rest) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        pos += used;
                        self.state = if size == 0 {
                            State::Trailers(0)
                        } else {
                            State::Data(size)
                        };
                    }
                    Ok(httparse::Status::Partial) if rest.len() > MAX_LINE => {
                        return Err(BodyError::TooLong)
                    }
                    Ok(httparse::Status::Partial) => return Ok(pos),
                    Err(_) => return Err(BodyError::ChunkSize),
                },
                State::DataEnd => match rest {
                    [] | [b'\r'] => return Ok(pos),
                    [b'\r', b'\n', ..] => {
                        pos += 2;
                        self.state = State::Size;
                    }
                    [b'\n', ..] => {
                        pos += 1;
                        self.state = State::Size;
                    }
                    _ => return Err(BodyError::ChunkEnd),
                },
                State::Trailers(seen) => match rest.iter().position(|&b| b == b'\n') {
                    None if seen + rest.len() > MAX_LINE => return Err(BodyError::TooLong),
                    None => return Ok(pos),
                    Some(i) => {
                        let line = &rest[..=i];
                        pos += i + 1;
                        self.state = if line == b"\r\n" || line == b"\n" {
                            State::Done
                        } else {
                            State::Trailers(seen + line.len())
                        };
                    }
                },
            }
        }
    }
}

/// Write all of `data`, waiting for the socket when its buffer is full.
pub async fn write_all(stream: &TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match stream.try_write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Write `a` then `b` with as few system calls as possible (a head and
/// the body bytes that came with it usually leave in one `writev`).
pub async fn write_two(stream: &TcpStream, mut a: &[u8], mut b: &[u8]) -> io::Result<()> {
    while !a.is_empty() {
        match stream.try_write_vectored(&[IoSlice::new(a), IoSlice::new(b)]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) if n < a.len() => a = &a[n..],
            Ok(n) => {
                b = &b[n - a.len()..];
                a = &[];
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.writable().await?,
            Err(e) => return Err(e),
        }
    }
    write_all(stream, b).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(framing: Framing, parts: &[&[u8]]) -> Result<(Vec<u8>, bool), BodyError> {
        // Feed the parts one by one, keeping unscanned bytes as a buffer would.
        let mut dec = Decoder::new(framing);
        let mut pending = Vec::new();
        let mut body = Vec::new();
        for part in parts {
            pending.extend_from_slice(part);
            let n = dec.scan(&pending)?;
            body.extend_from_slice(&pending[..n]);
            pending.drain(..n);
            if dec.done() {
                break;
            }
        }
        Ok((body, dec.done()))
    }

    #[test]
    fn content_length_stops_at_the_length() {
        let mut dec = Decoder::new(Framing::Length(5));
        assert_eq!(dec.scan(b"abc"), Ok(3));
        assert!(!dec.done());
        assert_eq!(dec.scan(b"deXYZ"), Ok(2), "surplus bytes are not the body");
        assert!(dec.done());
    }

    #[test]
    fn chunked_in_pieces_with_extensions_and_trailers() {
        let msg: &[u8] = b"3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for split in 1..msg.len() {
            let (body, done) =
                scan_all(Framing::Chunked, &[&msg[..split], &msg[split..]]).expect("valid body");
            assert!(done, "split at {split}");
            assert_eq!(body, &msg[..msg.len() - 4], "split at {split}");
        }
    }

    #[test]
    fn bad_chunks_are_refused() {
        assert_eq!(
            scan_all(Framing::Chunked, &[b"zz\r\nabc\r\n0\r\n\r\n"]),
            Err(BodyError::ChunkSize)
        );
        assert_eq!(
            scan_all(Framing::Chunked, &[b"3\r\nabcdef\r\n0\r\n\r\n"]),
            Err(BodyError::ChunkEnd)
        );
        let long = vec![b'1'; 5000];
        assert_eq!(
            scan_all(Framing::Chunked, &[&long]),
            Err(BodyError::ChunkSize),
            "more than 16 hex digits"
        );
    }

    #[test]
    fn until_close_takes_everything() {
        let mut dec = Decoder::new(Framing::UntilClose);
        assert_eq!(dec.scan(b"anything"), Ok(8));
        assert!(dec.until_close() && !dec.done());
    }
}
