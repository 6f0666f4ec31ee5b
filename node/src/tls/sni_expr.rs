//! Evaluating a server's `sni EXPR` when a connection to it opens: the
//! fetch reads the client's request or TLS session, the converters are
//! applied (see [`SniExpr`]), and the value is what the handshake sends
//! and what keys the server's idle connections.

use shoal_proto::config::{SniExpr, SniFetch};
use std::borrow::Cow;

/// What an `sni` expression is evaluated against.
#[derive(Clone, Copy)]
pub enum SniSource<'a> {
    /// A client connection: its HTTP request (`None` in TCP mode) and the
    /// server name it sent to a `bind ... ssl`.
    Client {
        request: Option<&'a (dyn RequestHeaders + Sync)>,
        client_sni: Option<&'a str>,
    },
    /// The value already computed for `expr` (a request sent again after
    /// its request head left the buffer).
    Known {
        expr: &'a SniExpr,
        value: Option<&'a str>,
    },
    /// A request sent again after its head left the buffer, from a
    /// connection made without a per-connection `sni`: a request fetch
    /// has nothing to read any more, the client's own SNI is still known.
    HeadGone { client_sni: Option<&'a str> },
}

/// The request headers an `sni` expression may read.
pub trait RequestHeaders {
    /// HAProxy's `req.hdr(NAME)` outside ACLs: the last comma-separated
    /// value of the last `name` field, trimmed; `name` is lowercase.
    fn last_value(&self, name: &str) -> Option<&str>;
}

/// `SniSource::Known` was asked for another expression than its own (a
/// retry redispatched to a server whose `sni` differs): there is no value
/// to send, and sending none could pass a certificate meant to be checked
/// against a name, so the connection is not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unknown;

impl<'a> SniSource<'a> {
    /// The value of `expr` for this connection: `Ok(None)` sends no SNI.
    pub fn eval(&self, expr: &SniExpr) -> Result<Option<Cow<'a, str>>, Unknown> {
        let fetched = match (self, &expr.fetch) {
            (SniSource::Known { expr: own, value }, _) => {
                // Already converted.
                return match *own == expr {
                    true => Ok(value.map(Cow::Borrowed)),
                    false => Err(Unknown),
                };
            }
            (_, SniFetch::Str(text)) => {
                return Ok(expr.convert(text).map(|v| Cow::Owned(v.into_owned())))
            }
            (SniSource::Client { request, .. }, SniFetch::ReqHdr(name)) => {
                request.and_then(|r| r.last_value(name))
            }
            (SniSource::Client { client_sni, .. }, SniFetch::SslFcSni)
            | (SniSource::HeadGone { client_sni }, SniFetch::SslFcSni) => *client_sni,
            // Evaluating it as absent would send no SNI, and skip the
            // name check under `verify required`.
            (SniSource::HeadGone { .. }, SniFetch::ReqHdr(_)) => return Err(Unknown),
        };
        Ok(fetched.and_then(|v| expr.convert(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::config::Converter;

    struct Host(&'static str);

    impl RequestHeaders for Host {
        fn last_value(&self, name: &str) -> Option<&str> {
            (name == "host").then_some(self.0)
        }
    }

    #[test]
    fn fetches_and_converters() {
        let host = Host("A.Example:8443");
        let client = SniSource::Client {
            request: Some(&host),
            client_sni: Some("c.example"),
        };
        let tcp = SniSource::Client {
            request: None,
            client_sni: None,
        };
        let hdr = SniExpr {
            fetch: SniFetch::ReqHdr("host".into()),
            converters: vec![
                Converter::Lower,
                Converter::Field {
                    index: 1,
                    delimiters: ":".into(),
                },
            ],
        };
        assert_eq!(
            client.eval(&hdr).expect("a value").as_deref(),
            Some("a.example")
        );
        assert_eq!(tcp.eval(&hdr).expect("a value"), None);
        let sni = SniExpr {
            fetch: SniFetch::SslFcSni,
            converters: Vec::new(),
        };
        assert_eq!(
            client.eval(&sni).expect("a value").as_deref(),
            Some("c.example")
        );
        assert!(matches!(client.eval(&sni), Ok(Some(Cow::Borrowed(_)))));
        let known = SniSource::Known {
            expr: &hdr,
            value: Some("a.example"),
        };
        assert_eq!(
            known.eval(&hdr).expect("a value").as_deref(),
            Some("a.example")
        );
        assert_eq!(known.eval(&sni), Err(Unknown));
        // A resend from a connection made without a per-connection `sni`,
        // redispatched to a server with one: the head is gone, so a header
        // cannot be read (no connection rather than no SNI); the client's
        // own SNI still can.
        let resend = SniSource::HeadGone {
            client_sni: Some("c.example"),
        };
        assert_eq!(resend.eval(&hdr), Err(Unknown));
        assert_eq!(
            resend.eval(&sni).expect("a value").as_deref(),
            Some("c.example")
        );
    }
}
