//! Reads a config file line by line with bounded memory: a line longer than
//! [`MAX_LINE_BYTES`] is skipped (not stored) and reported, and reading
//! stops after [`MAX_CONFIG_BYTES`], so neither a runaway line nor an
//! endless input (a FIFO, `/dev/zero`) can make a check expensive.

use std::io::{BufRead, ErrorKind};

/// The longest line Shoal reads, in bytes. HAProxy starts with 2 kB lines
/// and grows them without limit; real configs stay far below this.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// The largest config Shoal reads, in bytes. HAProxy 2.6 has no such cap
/// (3.1+ caps a config read from standard input at 10 MB); Shoal allows
/// more than that for generated configs.
pub const MAX_CONFIG_BYTES: u64 = 64 * 1024 * 1024;

/// One line, or why it cannot be used. The reason never echoes the line.
pub(super) type Line<'a> = Result<&'a str, &'static str>;

/// Line-by-line reader over any buffered input.
pub(super) struct Lines<R> {
    input: R,
    /// The current line, holding at most `MAX_LINE_BYTES + 1` bytes.
    buf: Vec<u8>,
    /// Number of the last line returned (1-based).
    number: usize,
    /// Bytes read so far.
    total: u64,
}

impl<R: BufRead> Lines<R> {
    pub fn new(input: R) -> Self {
        Lines {
            input,
            buf: Vec::new(),
            number: 0,
            total: 0,
        }
    }

    /// The next line and its number, `Ok(None)` at the end of the input, or
    /// an error (line number and message) after which nothing more can be
    /// read: an I/O error, or an input larger than [`MAX_CONFIG_BYTES`].
    pub fn next_line(&mut self) -> Result<Option<(usize, Line<'_>)>, (usize, String)> {
        self.buf.clear();
        let mut any = false;
        loop {
            let chunk = match self.input.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err((0, format!("cannot read file: {e}"))),
            };
            if chunk.is_empty() {
                break;
            }
            any = true;
            let (used, done) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            let text = chunk.get(..used - usize::from(done)).unwrap_or_default();
            // Keep one byte more than the limit, to know it was exceeded.
            let room = (MAX_LINE_BYTES + 1).saturating_sub(self.buf.len());
            self.buf
                .extend_from_slice(text.get(..room.min(text.len())).unwrap_or_default());
            self.input.consume(used);
            self.total += used as u64;
            if self.total > MAX_CONFIG_BYTES {
                let msg = format!(
                    "the file is larger than {} MiB; Shoal reads no further",
                    MAX_CONFIG_BYTES >> 20
                );
                return Err((self.number + 1, msg));
            }
            if done {
                break;
            }
        }
        if !any {
            return Ok(None);
        }
        self.number += 1;
        if self.buf.len() > MAX_LINE_BYTES {
            return Ok(Some((self.number, Err(TOO_LONG))));
        }
        // As `str::lines`: a CRLF line ending is one line ending.
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        let mut bytes = self.buf.as_slice();
        // Editors on some systems start UTF-8 files with a byte-order mark.
        if self.number == 1 {
            bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
        }
        let line = std::str::from_utf8(bytes).map_err(|_| "line is not valid UTF-8 text");
        Ok(Some((self.number, line)))
    }
}

/// The error for a line over [`MAX_LINE_BYTES`].
const TOO_LONG: &str = "line too long (more than 65536 bytes); it is not read";

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8]) -> Vec<(usize, Result<String, String>)> {
        let mut lines = Lines::new(input);
        let mut out = Vec::new();
        while let Ok(Some((n, line))) = lines.next_line() {
            out.push((n, line.map(str::to_string).map_err(str::to_string)));
        }
        out
    }

    #[test]
    fn splits_like_str_lines() {
        for text in ["", "a", "a\n", "a\nb", "a\r\nb\r\n", "\n\n", "x\ry\n"] {
            let want: Vec<(usize, Result<String, String>)> = text
                .lines()
                .enumerate()
                .map(|(i, l)| (i + 1, Ok(l.to_string())))
                .collect();
            assert_eq!(all(text.as_bytes()), want, "{text:?}");
        }
    }

    #[test]
    fn long_lines_bom_and_bad_utf8() {
        let long = "x".repeat(MAX_LINE_BYTES + 1);
        let fits = "y".repeat(MAX_LINE_BYTES);
        let text = format!("\u{feff}a\n{long}\n{fits}\nb");
        let got = all(text.as_bytes());
        assert_eq!(got[0], (1, Ok("a".to_string())));
        assert_eq!(got[1], (2, Err(TOO_LONG.to_string())));
        assert_eq!(got[2], (3, Ok(fits)));
        assert_eq!(got[3], (4, Ok("b".to_string())));
        assert_eq!(
            all(b"ok\n\xff\xfe\n"),
            [
                (1, Ok("ok".to_string())),
                (2, Err("line is not valid UTF-8 text".to_string()))
            ]
        );
    }

    #[test]
    fn endless_input_stops_at_the_size_cap() {
        let endless = std::io::BufReader::with_capacity(1 << 16, std::io::repeat(b'z'));
        let mut lines = Lines::new(endless);
        match lines.next_line() {
            Err((1, msg)) => assert!(msg.contains("larger than 64 MiB"), "{msg}"),
            other => panic!("{other:?}"),
        }
        assert!(
            lines.buf.len() <= MAX_LINE_BYTES + 1,
            "memory stays bounded"
        );
    }
}
