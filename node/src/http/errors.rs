//! HAProxy 2.6's error pages, byte for byte.
//!
//! HAProxy writes them two ways, and Shoal copies both: an answer to a
//! request that could not be parsed or did not arrive in time (400, 408,
//! 422) is its raw error file, with `Content-length` and `Connection:
//! close` spelled as in the file; an answer produced while a request is
//! processed (502, 503, 504, or 400 for a bad body) goes through its HTTP
//! layer, which writes lowercase header names and adds `connection: close`
//! only when the connection is going to close.

use std::io::Write as _;

/// The HTML body HAProxy sends for a status.
pub fn body(status: u16) -> &'static str {
    match status {
        400 => "<html><body><h1>400 Bad request</h1>\nYour browser sent an invalid request.\n</body></html>\n",
        403 => "<html><body><h1>403 Forbidden</h1>\nRequest forbidden by administrative rules.\n</body></html>\n",
        408 => "<html><body><h1>408 Request Time-out</h1>\nYour browser didn't send a complete request in time.\n</body></html>\n",
        422 => "<html><body><h1>422 Unprocessable Content</h1>\nThe server cannot process the contained instructions.\n</body></html>\n",
        500 => "<html><body><h1>500 Internal Server Error</h1>\nAn internal server error occurred.\n</body></html>\n",
        502 => "<html><body><h1>502 Bad Gateway</h1>\nThe server returned an invalid or incomplete response.\n</body></html>\n",
        504 => "<html><body><h1>504 Gateway Time-out</h1>\nThe server didn't respond in time.\n</body></html>\n",
        _ => "<html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle this request.\n</body></html>\n",
    }
}

/// The status line's reason as HAProxy's error files spell it.
fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad request",
        403 => "Forbidden",
        408 => "Request Time-out",
        422 => "Unprocessable Content",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        504 => "Gateway Time-out",
        _ => "Service Unavailable",
    }
}

/// The raw error file for a request refused before it was processed
/// (400, 408 and 422; the connection then closes).
pub fn refusal(status: u16) -> &'static [u8] {
    match status {
        408 => b"HTTP/1.1 408 Request Time-out\r\nContent-length: 110\r\nCache-Control: no-cache\r\nConnection: close\r\nContent-Type: text/html\r\n\r\n<html><body><h1>408 Request Time-out</h1>\nYour browser didn't send a complete request in time.\n</body></html>\n",
        422 => b"HTTP/1.1 422 Unprocessable Content\r\nContent-length: 116\r\nCache-Control: no-cache\r\nContent-Type: text/html\r\n\r\n<html><body><h1>422 Unprocessable Content</h1>\nThe server cannot process the contained instructions.\n</body></html>\n",
        _ => b"HTTP/1.1 400 Bad request\r\nContent-length: 90\r\nCache-Control: no-cache\r\nConnection: close\r\nContent-Type: text/html\r\n\r\n<html><body><h1>400 Bad request</h1>\nYour browser sent an invalid request.\n</body></html>\n",
    }
}

/// Append an error produced while a request was processed to `out`;
/// `connection` is the line to add (`connection: close`), if any.
pub fn response(out: &mut Vec<u8>, status: u16, connection: Option<&str>) {
    let body = body(status);
    let _ = write!(
        out,
        "HTTP/1.1 {status} {}\r\ncontent-length: {}\r\ncache-control: no-cache\r\ncontent-type: text/html\r\n",
        reason(status),
        body.len()
    );
    if let Some(value) = connection {
        let _ = write!(out, "connection: {value}\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_declare_their_length() {
        for status in [400, 408, 422] {
            let page = std::str::from_utf8(refusal(status)).expect("ascii");
            let (head, body) = page.split_once("\r\n\r\n").expect("head");
            assert!(
                head.contains(&format!("Content-length: {}", body.len())),
                "{status}"
            );
        }
        let mut out = Vec::new();
        response(&mut out, 503, None);
        assert!(out.starts_with(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 107\r\n"));
        assert_eq!(out.len(), 214);
        out.clear();
        response(&mut out, 400, Some("close"));
        assert!(out.ends_with(b"connection: close\r\n\r\n<html><body><h1>400 Bad request</h1>\nYour browser sent an invalid request.\n</body></html>\n"));
    }
}
