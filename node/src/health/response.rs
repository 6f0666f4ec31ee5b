//! A small, bounded HTTP/1.x response reader for checks: status line,
//! framing headers and at most [`BODY_CAP`] bytes of body (enough for
//! `http-check expect string`), from bytes as they arrive.

/// Body bytes kept for content matching (HAProxy's check buffer is about
/// this size).
pub const BODY_CAP: usize = 16 * 1024;
/// Longest response head accepted.
pub const HEAD_CAP: usize = 16 * 1024;

/// A response, as far as checks care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Reason phrase (`Internal Server Error`), possibly empty.
    pub reason: String,
    /// Decoded body, truncated to [`BODY_CAP`].
    pub body: Vec<u8>,
}

/// What the bytes so far amount to.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Need more bytes.
    More,
    /// A complete enough response.
    Done(Response),
    /// Not HTTP, or broken; the text is HAProxy-style info.
    Invalid(&'static str),
}

/// Parse `buf`. `eof`: no more bytes will come. `no_body`: the request
/// was `HEAD`, so the response carries no body whatever it announces.
pub fn parse(mut buf: &[u8], eof: bool, no_body: bool) -> Parsed {
    loop {
        let Some((head, rest)) = split_head(buf) else {
            return if buf.len() > HEAD_CAP {
                Parsed::Invalid("response headers too large")
            } else if eof && buf.is_empty() {
                Parsed::Invalid("empty response")
            } else if eof {
                Parsed::Invalid("truncated response")
            } else {
                Parsed::More
            };
        };
        let Some(head) = Head::parse(head) else {
            return Parsed::Invalid("invalid HTTP response");
        };
        // Interim responses (100 Continue, 103 Early Hints) precede the real one.
        if (100..200).contains(&head.status) && head.status != 101 {
            buf = rest;
            continue;
        }
        let bodyless = no_body || head.status == 204 || head.status == 304 || head.status == 101;
        let (body, complete) = if bodyless {
            (Vec::new(), true)
        } else if head.chunked {
            match dechunk(rest) {
                Some(x) => x,
                None => return Parsed::Invalid("invalid chunked body"),
            }
        } else if let Some(len) = head.content_length {
            let have = rest.len().min(len);
            (rest[..have].to_vec(), have == len)
        } else {
            (rest.to_vec(), false)
        };
        return if complete || eof || body.len() >= BODY_CAP {
            let mut body = body;
            body.truncate(BODY_CAP);
            Parsed::Done(Response {
                status: head.status,
                reason: head.reason,
                body,
            })
        } else {
            Parsed::More
        };
    }
}

/// Split at the blank line that ends the head (CRLF or bare LF).
fn split_head(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut i = 0;
    while let Some(pos) = buf[i..].iter().position(|&b| b == b'\n') {
        let at = i + pos;
        match &buf[at + 1..] {
            [b'\n', ..] => return Some((&buf[..at], &buf[at + 2..])),
            [b'\r', b'\n', ..] => return Some((&buf[..at], &buf[at + 3..])),
            _ => i = at + 1,
        }
    }
    None
}

/// Status line and the headers that decide framing.
struct Head {
    status: u16,
    reason: String,
    chunked: bool,
    content_length: Option<usize>,
}

impl Head {
    fn parse(head: &[u8]) -> Option<Head> {
        let text = String::from_utf8_lossy(head);
        let mut lines = text.lines();
        let status_line = lines.next()?.trim_end_matches('\r');
        let rest = status_line.strip_prefix("HTTP/")?;
        let (_version, rest) = rest.split_once(' ')?;
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        if code.len() != 3 {
            return None;
        }
        let status: u16 = code.parse().ok()?;
        let mut head = Head {
            status,
            reason: reason.trim().to_string(),
            chunked: false,
            content_length: None,
        };
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("transfer-encoding") {
                head.chunked |= value.to_ascii_lowercase().contains("chunked");
            } else if name.eq_ignore_ascii_case("content-length") {
                head.content_length = value.parse().ok();
            }
        }
        Some(head)
    }
}

/// Decode as much of a chunked body as has arrived: the bytes and whether
/// the last chunk was seen. `None` when the framing is broken.
fn dechunk(mut buf: &[u8]) -> Option<(Vec<u8>, bool)> {
    let mut body = Vec::new();
    loop {
        let Some(eol) = buf.iter().position(|&b| b == b'\n') else {
            return Some((body, false));
        };
        let line = String::from_utf8_lossy(&buf[..eol]);
        let size = line.trim_end_matches('\r');
        let size = size.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16).ok()?;
        if size == 0 {
            return Some((body, true));
        }
        let data = &buf[eol + 1..];
        if data.len() < size {
            body.extend_from_slice(data);
            return Some((body, false));
        }
        body.extend_from_slice(&data[..size]);
        if body.len() >= BODY_CAP {
            return Some((body, true));
        }
        // Skip the CRLF after the data; wait for it if it is not there yet.
        let after = &data[size..];
        buf = match after {
            [b'\r', b'\n', rest @ ..] | [b'\n', rest @ ..] => rest,
            [] | [b'\r'] => return Some((body, false)),
            _ => return None,
        };
    }
}
