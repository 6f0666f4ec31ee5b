//! `server ... sni EXPR`: the sample expression whose value is sent as
//! the server name (SNI) of each new TLS connection to the server.
//!
//! Shoal evaluates a subset of HAProxy's sample language here: the fetches
//! `str(TEXT)`, `req.hdr(NAME)` (also `hdr(NAME)`) and `ssl_fc_sni`,
//! followed by any of the converters `lower`, `upper` and
//! `field(INDEX,DELIMITERS)`. The fetch is read by the node (it needs the
//! request or the client's TLS session); the converters are pure and live
//! here, so the parser can fold a constant expression once.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;

/// `sni FETCH[,CONVERTER...]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SniExpr {
    pub fetch: SniFetch,
    pub converters: Vec<Converter>,
}

/// Where the value of an `sni` expression comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SniFetch {
    /// `str(TEXT)`: a constant.
    Str(String),
    /// `req.hdr(NAME)` / `hdr(NAME)`: the last comma-separated value of
    /// the request header `NAME` (kept lowercase), as HAProxy's `req.hdr`
    /// returns outside ACLs. Needs `mode http`.
    ReqHdr(String),
    /// `ssl_fc_sni`: the server name the client sent to a `bind ... ssl`.
    SslFcSni,
}

/// A converter applied to the fetched string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Converter {
    /// `lower`: ASCII lowercase.
    Lower,
    /// `upper`: ASCII uppercase.
    Upper,
    /// `field(INDEX,DELIMITERS)`: the INDEXth field (1-based; negative
    /// counts from the end) of the input split at any of DELIMITERS'
    /// characters; no value when there are fewer fields.
    Field { index: i32, delimiters: String },
}

impl SniExpr {
    /// A `str(NAME)` expression, without converters.
    pub fn constant(name: impl Into<String>) -> SniExpr {
        SniExpr {
            fetch: SniFetch::Str(name.into()),
            converters: Vec::new(),
        }
    }

    /// The value when it does not depend on the connection (`str(...)`
    /// and its converters): `Some(None)` when that value is empty or
    /// missing (no SNI is sent); `None` when the expression must be
    /// evaluated per connection.
    pub fn fixed(&self) -> Option<Option<String>> {
        match &self.fetch {
            SniFetch::Str(text) => Some(
                self.convert(text)
                    .filter(|v| !v.is_empty())
                    .map(Cow::into_owned),
            ),
            _ => None,
        }
    }

    /// True when the fetch reads the HTTP request (`mode http` only).
    pub fn needs_http(&self) -> bool {
        matches!(self.fetch, SniFetch::ReqHdr(_))
    }

    /// Applies the converters to a fetched value; `None` when one of them
    /// has no result (a missing `field`). Borrows when nothing changes.
    pub fn convert<'a>(&self, value: &'a str) -> Option<Cow<'a, str>> {
        let mut value = Cow::Borrowed(value);
        for conv in &self.converters {
            value = match conv {
                Converter::Lower if value.bytes().any(|b| b.is_ascii_uppercase()) => {
                    Cow::Owned(value.to_ascii_lowercase())
                }
                Converter::Upper if value.bytes().any(|b| b.is_ascii_lowercase()) => {
                    Cow::Owned(value.to_ascii_uppercase())
                }
                Converter::Lower | Converter::Upper => value,
                Converter::Field { index, delimiters } => match value {
                    Cow::Borrowed(v) => Cow::Borrowed(field(v, *index, delimiters)?),
                    Cow::Owned(v) => Cow::Owned(field(&v, *index, delimiters)?.to_string()),
                },
            };
        }
        Some(value)
    }
}

/// The `index`th field of `value` split at any char of `delimiters`.
fn field<'a>(value: &'a str, index: i32, delimiters: &str) -> Option<&'a str> {
    let mut parts = value.split(|c| delimiters.contains(c));
    match index {
        i if i > 0 => parts.nth(i as usize - 1),
        i if i < 0 => parts.rev().nth(i.unsigned_abs() as usize - 1),
        _ => None,
    }
}

impl fmt::Display for SniExpr {
    /// The expression as written in a config (hence one word: no space).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.fetch {
            SniFetch::Str(text) => write!(f, "str({text})")?,
            SniFetch::ReqHdr(name) => write!(f, "req.hdr({name})")?,
            SniFetch::SslFcSni => f.write_str("ssl_fc_sni")?,
        }
        for conv in &self.converters {
            match conv {
                Converter::Lower => f.write_str(",lower")?,
                Converter::Upper => f.write_str(",upper")?,
                Converter::Field { index, delimiters } => {
                    write!(f, ",field({index},{delimiters})")?
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expr(converters: Vec<Converter>) -> SniExpr {
        SniExpr {
            fetch: SniFetch::ReqHdr("host".into()),
            converters,
        }
    }

    fn field_conv(index: i32, delimiters: &str) -> Converter {
        Converter::Field {
            index,
            delimiters: delimiters.into(),
        }
    }

    #[test]
    fn converters_follow_haproxy() {
        let host_only = expr(vec![Converter::Lower, field_conv(1, ":")]);
        assert_eq!(
            host_only.convert("A.Example:8080").as_deref(),
            Some("a.example")
        );
        assert_eq!(host_only.convert("a.example").as_deref(), Some("a.example"));
        assert!(matches!(
            host_only.convert("a.example"),
            Some(Cow::Borrowed(_))
        ));
        // HAProxy's own examples of `field`.
        let f = |i, d: &str| expr(vec![field_conv(i, d)]);
        assert_eq!(f(5, "_").convert("f1_f2_f3__f5").as_deref(), Some("f5"));
        assert_eq!(f(4, "_").convert("f1_f2_f3__f5").as_deref(), Some(""));
        assert_eq!(f(-1, "_").convert("f1_f2_f3__f5").as_deref(), Some("f5"));
        assert_eq!(f(6, "_").convert("f1_f2_f3__f5"), None);
        assert_eq!(f(2, ".:").convert("a.b:c").as_deref(), Some("b"));
        let upper = expr(vec![Converter::Upper]);
        assert_eq!(upper.convert("a.Example").as_deref(), Some("A.EXAMPLE"));
    }

    #[test]
    fn constants_are_folded_and_printed_back() {
        let e = SniExpr {
            fetch: SniFetch::Str("API.Example:443".into()),
            converters: vec![Converter::Lower, field_conv(1, ":")],
        };
        assert_eq!(e.fixed(), Some(Some("api.example".into())));
        assert_eq!(e.to_string(), "str(API.Example:443),lower,field(1,:)");
        assert_eq!(SniExpr::constant("").fixed(), Some(None));
        assert_eq!(expr(Vec::new()).fixed(), None);
        assert!(expr(Vec::new()).needs_http());
        assert_eq!(expr(Vec::new()).to_string(), "req.hdr(host)");
    }
}
