//! Requests Shoal answers itself: the stats page of a frontend with
//! `stats enable`. The page is rare traffic, so it is built on `hyper`'s
//! request and response types (allocation is fine here) and serialised
//! with a `Content-Length`.

use super::body;
use super::buf::Buf;
use super::conn::Client;
use super::head::{Framing, RequestHead};
use super::proxy::{Exchange, Next};
use super::rewrite::ConnHeader;
use bytes::Bytes;
use std::io::Write as _;
use std::sync::atomic::Ordering::Relaxed;

/// Serve the stats page for the request in `x` (its head at the front of
/// `cbuf`).
pub(super) async fn stats(c: &mut Client, cbuf: &mut Buf, x: &mut Exchange) -> Next {
    x.outcome.stats = true;
    let request = parts(cbuf.filled(), &x.head);
    cbuf.consume(x.head.len);
    x.head_consumed = true;
    let body = match read_body(c, cbuf, x).await {
        Ok(body) => body,
        Err(status) => return answer_error(c, x, status).await,
    };
    let Some(builder) = request else {
        return answer_error(c, x, 400).await;
    };
    let Ok(req) = builder.body(Bytes::from(body)) else {
        return answer_error(c, x, 400).await;
    };
    let head_only = req.method() == hyper::Method::HEAD;
    let frontend = x.outcome.frontend.clone();
    let resp = crate::stats_page::serve(req, &c.runtime, &frontend, c.peer).await;
    let close = must_close(c, x);
    c.out.clear();
    let status = resp.status();
    let _ = write!(
        c.out,
        "HTTP/1.1 {} {}\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or("")
    );
    for (name, value) in resp.headers() {
        c.out.extend_from_slice(name.as_str().as_bytes());
        c.out.extend_from_slice(b": ");
        c.out.extend_from_slice(value.as_bytes());
        c.out.extend_from_slice(b"\r\n");
    }
    let _ = write!(c.out, "content-length: {}\r\n", resp.body().len());
    c.out.extend_from_slice(match connection(x, close) {
        ConnHeader::Close => b"connection: close\r\n".as_slice(),
        ConnHeader::KeepAlive => b"connection: keep-alive\r\n",
        _ => b"",
    });
    c.out.extend_from_slice(b"\r\n");
    let content: &[u8] = if head_only { &[] } else { resp.body() };
    let sent = body::write_two(&c.stream, &c.out, content).await;
    let bytes = (c.out.len() + content.len()) as u64;
    frontend.counters.bytes_out.fetch_add(bytes, Relaxed);
    frontend.counters.count_response(status.as_u16());
    x.outcome.status = Some(status.as_u16());
    x.outcome.bytes = bytes;
    if sent.is_err() || close {
        Next::Close
    } else {
        Next::KeepAlive
    }
}

fn must_close(c: &Client, x: &Exchange) -> bool {
    let h = &x.head;
    h.conn.close
        || (h.minor == 0 && !h.conn.keep_alive)
        || c.frontend.httpclose
        || *c.shutdown.borrow()
}

fn connection(x: &Exchange, close: bool) -> ConnHeader {
    if close {
        ConnHeader::Close
    } else if x.head.minor == 0 {
        ConnHeader::KeepAlive
    } else {
        ConnHeader::None
    }
}

async fn answer_error(c: &mut Client, x: &mut Exchange, status: u16) -> Next {
    c.out.clear();
    super::errors::response(&mut c.out, status, Some("close"));
    let _ = body::write_all(&c.stream, &c.out).await;
    let fe = &x.outcome.frontend;
    fe.counters.count_response(status);
    fe.counters.bytes_out.fetch_add(c.out.len() as u64, Relaxed);
    x.outcome.status = Some(status);
    x.outcome.bytes = c.out.len() as u64;
    x.outcome.termination = "PR";
    Next::Close
}

/// The request line and headers as a `hyper` request builder.
fn parts(buf: &[u8], head: &RequestHead) -> Option<hyper::http::request::Builder> {
    let mut builder = hyper::Request::builder()
        .method(hyper::Method::from_bytes(head.method.of(buf)).ok()?)
        .uri(hyper::Uri::try_from(head.target.of(buf)).ok()?)
        .version(if head.minor == 0 {
            hyper::Version::HTTP_10
        } else {
            hyper::Version::HTTP_11
        });
    for f in &head.fields {
        builder = builder.header(f.name.of(buf), f.value.of(buf));
    }
    Some(builder)
}

/// The request body (forms are small), de-chunked. `Err` is the status
/// to answer.
async fn read_body(c: &mut Client, cbuf: &mut Buf, x: &mut Exchange) -> Result<Vec<u8>, u16> {
    let mut raw = Vec::new();
    let mut ready = x.body_ready;
    let limit = crate::stats_page::MAX_FORM + 1024;
    loop {
        raw.extend_from_slice(&cbuf.filled()[..ready]);
        cbuf.consume(ready);
        if x.body.done() {
            break;
        }
        if raw.len() > limit {
            return Err(400);
        }
        let read = match c.frontend.timeouts.client {
            Some(t) => tokio::time::timeout(t, cbuf.read(&c.stream))
                .await
                .map_err(|_| 408u16)?,
            None => cbuf.read(&c.stream).await,
        };
        match read {
            Ok(n) if n > 0 => {
                c.frontend.counters.bytes_in.fetch_add(n as u64, Relaxed);
                ready = x.body.scan(cbuf.filled()).map_err(|_| 400u16)?;
            }
            _ => return Err(400),
        }
    }
    x.body_ready = 0;
    if x.head.framing == Framing::Chunked {
        return dechunk(&raw).ok_or(400);
    }
    Ok(raw)
}

/// The data of a chunked body already checked by a [`Decoder`].
fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let httparse::Status::Complete((used, size)) = httparse::parse_chunk_size(raw).ok()? else {
            return None;
        };
        if size == 0 {
            return Some(out);
        }
        let size = usize::try_from(size).ok()?;
        let data = raw.get(used..used + size)?;
        out.extend_from_slice(data);
        raw = &raw[used + size..];
        raw = raw
            .strip_prefix(b"\r\n")
            .or_else(|| raw.strip_prefix(b"\n"))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::body::Decoder;

    #[test]
    fn dechunks_a_checked_body() {
        let raw: &[u8] = b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: 1\r\n\r\n";
        let mut d = Decoder::new(Framing::Chunked);
        assert_eq!(d.scan(raw), Ok(raw.len()));
        assert_eq!(dechunk(raw).as_deref(), Some(&b"abcde"[..]));
    }
}
