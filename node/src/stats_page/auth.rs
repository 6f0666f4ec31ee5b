//! `stats auth` (HTTP Basic) and the `Samples` that `stats admin` reads.

use crate::acl::Samples;
use base64::Engine as _;
use hyper::header::AUTHORIZATION;
use hyper::HeaderMap;
use std::net::IpAddr;
use subtle::ConstantTimeEq;

/// HAProxy's realm when `stats realm` is not set.
pub const DEFAULT_REALM: &str = "HAProxy Statistics";

/// True when the request's Basic credentials match one `stats auth` pair.
/// Every pair is compared, in constant time, whatever matched before.
pub fn basic_ok(headers: &HeaderMap, pairs: &[(String, String)]) -> bool {
    let Some((user, pass)) = credentials(headers) else {
        return false;
    };
    let mut ok = subtle::Choice::from(0u8);
    for (u, p) in pairs {
        ok |= user.as_bytes().ct_eq(u.as_bytes()) & pass.as_bytes().ct_eq(p.as_bytes());
    }
    ok.into()
}

/// `user:password` from `Authorization: Basic ...`.
fn credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

/// The `WWW-Authenticate` value for a realm, as a quoted string.
pub fn challenge(realm: Option<&str>) -> String {
    let realm: String = realm
        .unwrap_or(DEFAULT_REALM)
        .chars()
        .filter(|c| !c.is_control())
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    format!("Basic realm=\"{realm}\"")
}

/// What `stats admin if COND` sees of a stats-page request. The local port
/// is not known here, so `dst_port` is missing (its terms are false).
pub struct PageSamples<'a> {
    pub parts: &'a hyper::http::request::Parts,
    pub src: IpAddr,
}

impl Samples for PageSamples<'_> {
    fn path(&self) -> Option<&str> {
        Some(self.parts.uri.path())
    }
    fn url(&self) -> Option<&str> {
        Some(
            self.parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/"),
        )
    }
    fn method(&self) -> Option<&str> {
        Some(self.parts.method.as_str())
    }
    fn any_header(&self, name: &str, f: &mut dyn FnMut(&str) -> bool) -> bool {
        self.parts
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(',').map(str::trim))
            .any(f)
    }
    fn src(&self) -> Option<IpAddr> {
        Some(self.src)
    }
    fn dst_port(&self) -> Option<u16> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn basic_credentials() {
        let pairs = vec![
            ("admin".to_string(), "s3cret".to_string()),
            ("ops".to_string(), "pa:ss".to_string()),
        ];
        let mut h = HeaderMap::new();
        assert!(!basic_ok(&h, &pairs));
        // admin:s3cret
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Basic YWRtaW46czNjcmV0"),
        );
        assert!(basic_ok(&h, &pairs));
        // ops:pa:ss (a colon in the password)
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_static("basic b3BzOnBhOnNz"),
        );
        assert!(basic_ok(&h, &pairs));
        // admin:wrong
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Basic YWRtaW46d3Jvbmc="),
        );
        assert!(!basic_ok(&h, &pairs));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert!(!basic_ok(&h, &pairs));
    }

    #[test]
    fn challenge_quotes_the_realm() {
        assert_eq!(challenge(None), "Basic realm=\"HAProxy Statistics\"");
        assert_eq!(challenge(Some("a\"b")), "Basic realm=\"a\\\"b\"");
    }
}
