//! Message bodies: finding where a body ends (`Content-Length`, chunked,
//! or the server's close) while its bytes are forwarded unchanged, and
//! writing to sockets without waiting on a lock.
//!
//! Chunked bodies are checked as they pass, strictly, because they are
//! forwarded as received: a line another parser would end elsewhere could
//! hide a second message inside the body (request smuggling). So:
//!
//! - a chunk-size line is at least one hex digit (at most 2^52 - 1, as
//!   HAProxy), then extensions that follow RFC 9112 7.1.1 exactly
//!   (`;` token [`=` token / quoted-string], whitespace around `;` and
//!   `=`), no control byte, ended by CRLF: a bare LF is refused where
//!   HAProxy ends the line there;
//! - chunk data is followed by CRLF;
//! - trailers are parsed with `httparse::parse_headers` and every line of
//!   the section ends with CRLF.
//!
//! Size lines and trailer sections are bounded. Knowing exactly where a
//! message ends is also what lets a server connection be reused safely:
//! any byte after the end is surplus.

use super::head::Framing;
use std::io::{self, IoSlice};
use tokio::net::TcpStream;

/// The longest chunk-size line accepted, CRLF included.
const MAX_SIZE_LINE: usize = 4096;

/// The largest trailer section accepted, final empty line included.
const MAX_TRAILERS: usize = 4096;

/// The most trailer fields accepted.
const MAX_TRAILER_FIELDS: usize = 32;

/// The largest chunk size: HAProxy refuses 13 hex digits and more, so that
/// no peer storing integers as floats misreads a size.
const MAX_CHUNK: u64 = (1 << 52) - 1;

/// A body that cannot be read to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("invalid chunk-size line")]
    ChunkSize,
    #[error("chunk data not followed by CRLF")]
    ChunkEnd,
    #[error("invalid trailer section")]
    Trailers,
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
    /// The CRLF after a chunk's data.
    DataEnd,
    /// The trailer section after the last chunk, held until complete.
    Trailers,
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
    /// (or trailer section) that needs more data; when it is, they belong
    /// to the next message.
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
                State::Size => match size_line(rest)? {
                    Some((used, size)) => {
                        pos += used;
                        self.state = if size == 0 {
                            State::Trailers
                        } else {
                            State::Data(size)
                        };
                    }
                    None => return Ok(pos),
                },
                State::DataEnd => match rest {
                    [] | [b'\r'] => return Ok(pos),
                    [b'\r', b'\n', ..] => {
                        pos += 2;
                        self.state = State::Size;
                    }
                    _ => return Err(BodyError::ChunkEnd),
                },
                State::Trailers => match trailers(rest)? {
                    Some(used) => {
                        pos += used;
                        self.state = State::Done;
                    }
                    None => return Ok(pos),
                },
            }
        }
    }
}

/// Where the parse of a chunk-size line is (RFC 9112 7.1 and 7.1.1).
#[derive(Clone, Copy)]
enum Line {
    /// In the hex digits of the size.
    Size,
    /// After the size or an extension value: whitespace, `;` or CR.
    AfterValue,
    /// After `;`: whitespace, then an extension name.
    Semicolon,
    Name,
    /// After an extension name and whitespace: `=`, `;` or CR.
    AfterName,
    /// After `=`: whitespace, then a token or a quoted string.
    Equals,
    Token,
    Quoted,
    /// After a backslash in a quoted string.
    Escaped,
    /// After CR: LF.
    Cr,
}

/// Parse the chunk-size line at the start of `line`: its length and the
/// size once its CRLF is in, `None` while it is incomplete but valid so
/// far. Refuses as soon as a byte cannot belong to a valid line.
fn size_line(line: &[u8]) -> Result<Option<(usize, u64)>, BodyError> {
    let mut size: u64 = 0;
    let mut at = Line::Size;
    for (i, &b) in line.iter().enumerate().take(MAX_SIZE_LINE) {
        at = match (at, b) {
            (Line::Size, _) if b.is_ascii_hexdigit() => {
                size = size << 4 | u64::from(hex_digit(b));
                if size > MAX_CHUNK {
                    return Err(BodyError::ChunkSize);
                }
                Line::Size
            }
            // At least one digit.
            (Line::Size, _) if i == 0 => return Err(BodyError::ChunkSize),
            (Line::Size | Line::AfterValue | Line::Token, b' ' | b'\t') => Line::AfterValue,
            (Line::Name | Line::AfterName, b' ' | b'\t') => Line::AfterName,
            (Line::Semicolon | Line::Equals, b' ' | b'\t') => at,
            (Line::Size | Line::AfterValue | Line::Name | Line::AfterName | Line::Token, b';') => {
                Line::Semicolon
            }
            (Line::Size | Line::AfterValue | Line::Name | Line::AfterName | Line::Token, b'\r') => {
                Line::Cr
            }
            (Line::Semicolon | Line::Name, _) if is_tchar(b) => Line::Name,
            (Line::Name | Line::AfterName, b'=') => Line::Equals,
            (Line::Equals | Line::Token, _) if is_tchar(b) => Line::Token,
            (Line::Equals, b'"') => Line::Quoted,
            (Line::Quoted, b'"') => Line::AfterValue,
            (Line::Quoted, b'\\') => Line::Escaped,
            // qdtext: HTAB, SP, VCHAR except `"` and `\`, obs-text.
            (Line::Quoted, b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff) => Line::Quoted,
            // quoted-pair: HTAB, SP, VCHAR, obs-text.
            (Line::Escaped, b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff) => Line::Quoted,
            (Line::Cr, b'\n') => return Ok(Some((i + 1, size))),
            _ => return Err(BodyError::ChunkSize),
        };
    }
    if line.len() >= MAX_SIZE_LINE {
        return Err(BodyError::TooLong);
    }
    Ok(None)
}

/// The value of an ASCII hex digit.
fn hex_digit(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

/// A token character (RFC 9110 5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parse the trailer section at the start of `data` (every field line,
/// then the empty line): its length once complete, `None` while it is
/// incomplete but valid so far.
fn trailers(data: &[u8]) -> Result<Option<usize>, BodyError> {
    let window = &data[..data.len().min(MAX_TRAILERS)];
    let mut fields = [httparse::EMPTY_HEADER; MAX_TRAILER_FIELDS];
    let parsed = httparse::parse_headers(window, &mut fields);
    // httparse also takes a bare LF as a line end; Shoal does not.
    let checked = match parsed {
        Ok(httparse::Status::Complete((used, _))) => &window[..used],
        _ => window,
    };
    let bare_lf = checked
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || checked[i - 1] != b'\r'));
    match parsed {
        _ if bare_lf => Err(BodyError::Trailers),
        Ok(httparse::Status::Complete((used, _))) => Ok(Some(used)),
        Ok(httparse::Status::Partial) if data.len() >= MAX_TRAILERS => Err(BodyError::TooLong),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(BodyError::TooLong),
        Err(_) => Err(BodyError::Trailers),
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
            "more than 2^52 - 1"
        );
    }

    /// Scan a whole chunked body given at once.
    fn chunked(body: &[u8]) -> Result<(Vec<u8>, bool), BodyError> {
        scan_all(Framing::Chunked, &[body])
    }

    #[test]
    fn a_bare_lf_never_ends_a_chunk_line() {
        // The smuggling attempt: a parser that ends the size line at the LF
        // sees a 1-byte chunk and then a second request.
        assert_eq!(
            chunked(b"1;a\nX\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n"),
            Err(BodyError::ChunkSize)
        );
        assert_eq!(chunked(b"3\nabc\r\n0\r\n\r\n"), Err(BodyError::ChunkSize));
        assert_eq!(chunked(b"3\r\nabc\n0\r\n\r\n"), Err(BodyError::ChunkEnd));
        assert_eq!(chunked(b"0\r\nX-T: 1\n\r\n"), Err(BodyError::Trailers));
        assert_eq!(chunked(b"0\r\n\n"), Err(BodyError::Trailers));
        assert_eq!(chunked(b"3\r\nabc\r\n0\n\r\n"), Err(BodyError::ChunkSize));
    }

    #[test]
    fn chunk_size_lines_follow_rfc_9112() {
        let ok: &[&[u8]] = &[
            b"3\r\n",
            b"3 \t\r\n",
            b"3;a\r\n",
            b"3;a;b=c\r\n",
            b"3 ; a = b ;c=\"x;\\\" y\"\t\r\n",
            b"3;a=\"\"\r\n",
            b"000000000000000000003\r\n",
            b"fffffffffffff\r\n",
            b"FfFfFfFfFfFfF\r\n",
        ];
        for line in ok {
            assert!(
                matches!(size_line(line), Ok(Some((n, _))) if n == line.len()),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
        assert_eq!(size_line(b"fffffffffffff\r\n"), Ok(Some((15, MAX_CHUNK))));
        let bad: &[&[u8]] = &[
            b"\r\n",
            b";a\r\n",
            b" 3\r\n",
            b"10000000000000\r\n",
            b"3;\r\n",
            b"3;=x\r\n",
            b"3;a=\r\n",
            b"3;a b\r\n",
            b"3;a=b c\r\n",
            b"3;a=\"x\r\n",
            b"3;a=\"x\"y\r\n",
            b"3;a\x01\r\n",
            b"3;a\x00\r\n",
            b"3;a=\"\x7f\"\r\n",
            b"3;a\rx\r\n",
            b"3x\r\n",
            b"0x3\r\n",
        ];
        for line in bad {
            assert_eq!(
                size_line(line),
                Err(BodyError::ChunkSize),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn a_bad_size_line_is_refused_before_its_end() {
        assert_eq!(size_line(b"3;a"), Ok(None), "valid so far");
        assert_eq!(size_line(b"3;a\r"), Ok(None), "valid so far");
        assert_eq!(size_line(b"zz"), Err(BodyError::ChunkSize));
        assert_eq!(size_line(b"3;a\x01"), Err(BodyError::ChunkSize));
    }

    #[test]
    fn size_lines_and_trailers_are_bounded() {
        let mut line = b"1;".to_vec();
        line.extend(vec![b'a'; MAX_SIZE_LINE]);
        assert_eq!(chunked(&line), Err(BodyError::TooLong));
        // A size line of exactly the limit passes; one byte more does not.
        let line = |len: usize| {
            let mut line = b"1;a=\"".to_vec();
            line.extend(vec![b'a'; len - 8]);
            line.extend_from_slice(b"\"\r\n");
            assert_eq!(line.len(), len);
            line.extend_from_slice(b"X\r\n0\r\n\r\n");
            line
        };
        let longest = line(MAX_SIZE_LINE);
        assert_eq!(chunked(&longest), Ok((longest.clone(), true)));
        assert_eq!(chunked(&line(MAX_SIZE_LINE + 1)), Err(BodyError::TooLong));

        let mut body = b"0\r\nX-Big: ".to_vec();
        body.extend(vec![b'v'; MAX_TRAILERS]);
        assert_eq!(chunked(&body), Err(BodyError::TooLong), "unfinished");
        let mut body = b"0\r\n".to_vec();
        for i in 0..=MAX_TRAILER_FIELDS {
            body.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        assert_eq!(chunked(&body), Err(BodyError::TooLong), "too many fields");
    }

    #[test]
    fn trailers_are_parsed_as_fields() {
        assert_eq!(chunked(b"0\r\n\r\n"), Ok((b"0\r\n\r\n".to_vec(), true)));
        let good = b"0\r\nX-T: 1\r\nX-Empty:\r\nX-Tab:\tv\r\n\r\n";
        assert_eq!(chunked(good), Ok((good.to_vec(), true)));
        for bad in [
            &b"0\r\nbad trailer\r\n\r\n"[..],
            b"0\r\nX T: 1\r\n\r\n",
            b"0\r\nX-T : 1\r\n\r\n",
            b"0\r\nX-T: 1\r\n folded\r\n\r\n",
            b"0\r\nX-T: a\x01b\r\n\r\n",
            b"0\r\n: v\r\n\r\n",
            b"0\r\nX-T: 1\rX\r\n\r\n",
        ] {
            assert_eq!(
                chunked(bad),
                Err(BodyError::Trailers),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // Held until the section is complete, then given whole.
        let mut dec = Decoder::new(Framing::Chunked);
        assert_eq!(dec.scan(b"0\r\nX-T: 1\r\n"), Ok(3));
        assert!(!dec.done());
        assert_eq!(dec.scan(b"X-T: 1\r\n\r\nNEXT"), Ok(10));
        assert!(dec.done());
    }

    #[test]
    fn until_close_takes_everything() {
        let mut dec = Decoder::new(Framing::UntilClose);
        assert_eq!(dec.scan(b"anything"), Ok(8));
        assert!(dec.until_close() && !dec.done());
    }
}
