//! What ACLs, persistence and hash balancers read from an HTTP request:
//! views of a parsed [`RequestHead`] into the buffer it came from.

use super::head::{self, RequestHead};
use crate::acl::Samples;
use shoal_proto::config::Balance;
use std::net::IpAddr;

/// An HTTP request plus its connection's addresses.
pub struct HttpSamples<'a> {
    /// The buffer the head was parsed from.
    pub buf: &'a [u8],
    pub head: &'a RequestHead,
    pub src: IpAddr,
    pub dst_port: u16,
    /// The connection's TLS session, if it came through TLS.
    pub tls: Option<&'a crate::tls::Session>,
}

impl HttpSamples<'_> {
    /// Path and query as an origin-form URI (absolute URIs lose their
    /// scheme and authority), as HAProxy's `path` and `url` see them.
    fn origin(&self) -> &str {
        let part = head::origin_part(self.head.target.of(self.buf));
        match std::str::from_utf8(part) {
            Ok("") => "/",
            Ok(s) => s,
            Err(_) => "",
        }
    }
}

impl Samples for HttpSamples<'_> {
    fn path(&self) -> Option<&str> {
        let url = self.origin();
        Some(url.split_once('?').map_or(url, |(p, _)| p))
    }
    fn url(&self) -> Option<&str> {
        std::str::from_utf8(self.head.target.of(self.buf)).ok()
    }
    fn method(&self) -> Option<&str> {
        std::str::from_utf8(self.head.method.of(self.buf)).ok()
    }
    fn any_header(&self, name: &str, f: &mut dyn FnMut(&str) -> bool) -> bool {
        let fields = self
            .head
            .fields
            .iter()
            .filter(|h| h.name.of(self.buf).eq_ignore_ascii_case(name.as_bytes()));
        for field in fields {
            let Ok(value) = std::str::from_utf8(field.value.of(self.buf)) else {
                continue;
            };
            if value.is_empty() {
                if f("") {
                    return true;
                }
                continue;
            }
            if value.split(',').map(str::trim).any(&mut *f) {
                return true;
            }
        }
        false
    }
    fn src(&self) -> Option<IpAddr> {
        Some(self.src)
    }
    fn dst_port(&self) -> Option<u16> {
        Some(self.dst_port)
    }
    fn ssl_fc(&self) -> Option<bool> {
        Some(self.tls.is_some())
    }
    fn ssl_fc_sni(&self) -> Option<&str> {
        self.tls.and_then(|t| t.sni.as_deref())
    }
}

impl crate::tls::RequestHeaders for HttpSamples<'_> {
    fn last_value(&self, name: &str) -> Option<&str> {
        let field = self
            .head
            .fields
            .iter()
            .rev()
            .find(|h| h.name.of(self.buf).eq_ignore_ascii_case(name.as_bytes()))?;
        let value = std::str::from_utf8(field.value.of(self.buf)).ok()?;
        value.rsplit(',').next().map(str::trim)
    }
}

/// The bytes a hash balancer hashes for this request, borrowed from the
/// request (or written into `key` for `source`). `None` makes the balancer
/// fall back to round robin, as HAProxy does when the sample is missing.
pub fn hash_key<'a>(
    balance: &Balance,
    samples: &HttpSamples<'a>,
    key: &'a mut [u8; 16],
) -> Option<&'a [u8]> {
    let origin = head::origin_part(samples.head.target.of(samples.buf));
    match balance {
        Balance::Source => {
            let n = crate::tcp::ip_key(&samples.src, key);
            Some(&key[..n])
        }
        Balance::Uri { whole: false } => {
            let path = origin.split(|&b| b == b'?').next().unwrap_or(origin);
            Some(path)
        }
        Balance::Uri { whole: true } => Some(origin),
        Balance::UrlParam(name) => {
            let (_, query) = std::str::from_utf8(origin).ok()?.split_once('?')?;
            query_param(query, name).map(str::as_bytes)
        }
        Balance::Hdr(name) => samples
            .head
            .fields
            .iter()
            .find(|h| h.name.of(samples.buf).eq_ignore_ascii_case(name.as_bytes()))
            .map(|h| h.value.of(samples.buf)),
        _ => None,
    }
}

/// Value of `name` in a query string, without allocating.
pub fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::{parse_request, Limits};

    const LIMITS: Limits = Limits {
        bufsize: 16384,
        maxhdr: 101,
    };

    #[test]
    fn finds_params() {
        assert_eq!(query_param("a=1&user=bob&c", "user"), Some("bob"));
        assert_eq!(query_param("a=1&c", "c"), Some(""));
        assert_eq!(query_param("a=1", "b"), None);
    }

    #[test]
    fn samples_read_the_raw_head() {
        let buf: &[u8] = b"GET http://h.example/a/b?x=1&u=7 HTTP/1.1\r\nHost: h.example\r\nX-List: a, b\r\nX-Empty:\r\n\r\n";
        let head = parse_request(buf, &LIMITS, &mut Vec::new())
            .expect("valid")
            .expect("complete");
        let s = HttpSamples {
            buf,
            head: &head,
            src: "10.0.0.1".parse().expect("ip"),
            dst_port: 80,
            tls: None,
        };
        assert_eq!(s.path(), Some("/a/b"));
        assert_eq!(s.url(), Some("http://h.example/a/b?x=1&u=7"));
        assert_eq!(s.method(), Some("GET"));
        let mut seen = Vec::new();
        s.any_header("x-list", &mut |v| {
            seen.push(v.to_string());
            false
        });
        assert_eq!(seen, ["a", "b"]);
        assert!(s.any_header("x-empty", &mut |v| v.is_empty()));
        // `req.hdr` for `sni`: the last value of the last field.
        use crate::tls::RequestHeaders;
        assert_eq!(s.last_value("x-list"), Some("b"));
        assert_eq!(s.last_value("host"), Some("h.example"));
        assert_eq!(s.last_value("x-empty"), Some(""));
        assert_eq!(s.last_value("x-none"), None);
        let mut key = [0u8; 16];
        assert_eq!(
            hash_key(&Balance::UrlParam("u".into()), &s, &mut key),
            Some(&b"7"[..])
        );
        let mut key = [0u8; 16];
        assert_eq!(
            hash_key(&Balance::Uri { whole: false }, &s, &mut key),
            Some(&b"/a/b"[..])
        );
    }
}
