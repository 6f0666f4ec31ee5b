//! What ACLs and hash balancers read from an HTTP request.

use crate::acl::Samples;
use hyper::body::Incoming;
use hyper::Request;
use shoal_proto::config::Balance;
use std::net::IpAddr;

/// An HTTP request plus its connection's addresses.
pub struct HttpSamples<'a> {
    pub req: &'a Request<Incoming>,
    pub src: IpAddr,
    pub dst_port: u16,
}

impl Samples for HttpSamples<'_> {
    fn path(&self) -> Option<&str> {
        Some(self.req.uri().path())
    }
    fn url(&self) -> Option<&str> {
        Some(
            self.req
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/"),
        )
    }
    fn method(&self) -> Option<&str> {
        Some(self.req.method().as_str())
    }
    fn any_header(&self, name: &str, f: &mut dyn FnMut(&str) -> bool) -> bool {
        for value in self.req.headers().get_all(name) {
            if let Ok(v) = value.to_str() {
                if f(v) {
                    return true;
                }
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
}

/// The bytes a hash balancer hashes for this request, borrowed from the
/// request (or written into `buf` for `source`). `None` makes the balancer
/// fall back to round robin, as HAProxy does when the sample is missing.
pub fn hash_key<'a>(
    balance: &Balance,
    req: &'a Request<Incoming>,
    src: IpAddr,
    buf: &'a mut [u8; 16],
) -> Option<&'a [u8]> {
    match balance {
        Balance::Source => {
            let n = crate::tcp::ip_key(&src, buf);
            Some(&buf[..n])
        }
        Balance::Uri { whole: false } => Some(req.uri().path().as_bytes()),
        Balance::Uri { whole: true } => req.uri().path_and_query().map(|p| p.as_str().as_bytes()),
        Balance::UrlParam(name) => query_param(req.uri().query()?, name).map(str::as_bytes),
        Balance::Hdr(name) => req.headers().get(name.as_str()).map(|v| v.as_bytes()),
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
    use super::query_param;

    #[test]
    fn finds_params() {
        assert_eq!(query_param("a=1&user=bob&c", "user"), Some("bob"));
        assert_eq!(query_param("a=1&c", "c"), Some(""));
        assert_eq!(query_param("a=1", "b"), None);
    }
}
