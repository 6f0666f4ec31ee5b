//! Compiled ACL values and HAProxy's match methods (`-m str|beg|end|sub|
//! reg|dom|dir|ip|int|found`).

use super::value::{parse_ints, parse_net, text_to_int, text_to_ip, IntRange, Net};
use super::AclError;
use regex::{RegexSet, RegexSetBuilder};
use shoal_proto::config::MatchKind;
use std::cmp::Ordering;
use std::net::IpAddr;

/// The values of one ACL line, prepared for matching.
#[derive(Debug)]
pub(super) enum Pattern {
    /// The string methods. With `-i` the values are stored lowercased and
    /// compared ASCII-case-insensitively, as HAProxy's strncasecmp.
    Text {
        op: TextOp,
        ignore_case: bool,
        /// For `Str`: sorted (case-folded when `ignore_case`), for a binary
        /// search. For `Dom`/`Dir`: leading and trailing delimiters removed.
        values: Box<[Box<str>]>,
    },
    Reg(RegexSet),
    Ip(Box<[Net]>),
    Int(Box<[IntRange]>),
    Found,
    /// `-m bool`: a boolean sample that is true.
    Bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TextOp {
    Str,
    Beg,
    End,
    Sub,
    Dom,
    Dir,
}

impl Pattern {
    /// Compiles `values` for `kind`. `label` names the ACL in errors.
    pub(super) fn compile(
        kind: MatchKind,
        ignore_case: bool,
        values: &[String],
        label: &dyn Fn() -> String,
    ) -> Result<Pattern, AclError> {
        let t = |op| text(op, ignore_case, values);
        Ok(match kind {
            MatchKind::Str => t(TextOp::Str),
            MatchKind::Beg => t(TextOp::Beg),
            MatchKind::End => t(TextOp::End),
            MatchKind::Sub => t(TextOp::Sub),
            MatchKind::Dom => t(TextOp::Dom),
            MatchKind::Dir => t(TextOp::Dir),
            MatchKind::Reg => {
                // Validate one by one so the error names the bad value.
                for v in values {
                    regex::RegexBuilder::new(v)
                        .case_insensitive(ignore_case)
                        .build()
                        .map_err(|e| regex_error(label, v, e))?;
                }
                let set = RegexSetBuilder::new(values)
                    .case_insensitive(ignore_case)
                    .build()
                    .map_err(|e| regex_error(label, values.join(" "), e))?;
                Pattern::Reg(set)
            }
            MatchKind::Ip => Pattern::Ip(
                values
                    .iter()
                    .map(|v| {
                        parse_net(v).ok_or_else(|| AclError::BadValue {
                            acl: label(),
                            value: v.clone(),
                            why: "is not an IPv4/IPv6 address or network \
                                  (host names are not resolved in ACLs)",
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
            MatchKind::Int => Pattern::Int(parse_ints(values, label)?),
            MatchKind::Found => Pattern::Found,
            MatchKind::Bool => Pattern::Bool,
        })
    }

    /// Matches a text sample (path, url, method, header value).
    pub(super) fn matches_str(&self, s: &str) -> bool {
        match self {
            Pattern::Text {
                op,
                ignore_case,
                values,
            } => match_text(*op, *ignore_case, values, s.as_bytes()),
            Pattern::Reg(set) => set.is_match(s),
            // HAProxy casts the text to an address / integer first.
            Pattern::Ip(_) => text_to_ip(s).is_some_and(|ip| self.matches_ip(ip)),
            Pattern::Int(_) => text_to_int(s).is_some_and(|n| self.matches_int(n)),
            Pattern::Found => true,
            // The parser gives `-m bool` to boolean samples only.
            Pattern::Bool => false,
        }
    }

    /// Matches an address sample against `Ip` (anything else but `Found`
    /// is false; the caller converts addresses to text for text methods).
    pub(super) fn matches_ip(&self, ip: IpAddr) -> bool {
        match self {
            Pattern::Ip(nets) => nets.iter().any(|n| n.contains(ip)),
            Pattern::Found => true,
            _ => false,
        }
    }

    /// Matches a boolean sample: true under `Bool`, present under `Found`.
    pub(super) fn matches_bool(&self, on: bool) -> bool {
        match self {
            Pattern::Bool => on,
            Pattern::Found => true,
            _ => false,
        }
    }

    /// Matches an integer sample against `Int` (see [`Pattern::matches_ip`]).
    pub(super) fn matches_int(&self, n: i64) -> bool {
        match self {
            Pattern::Int(ranges) => ranges.iter().any(|r| r.contains(n)),
            Pattern::Found => true,
            _ => false,
        }
    }
}

fn regex_error(label: &dyn Fn() -> String, value: impl Into<String>, e: regex::Error) -> AclError {
    AclError::Regex {
        acl: label(),
        value: value.into(),
        source: Box::new(e),
    }
}

fn text(op: TextOp, ignore_case: bool, values: &[String]) -> Pattern {
    let mut values: Vec<Box<str>> = values
        .iter()
        .map(|v| {
            let v = match op {
                // HAProxy ignores delimiters at both ends of the pattern.
                TextOp::Dom => v.trim_matches(is_dom_delim),
                TextOp::Dir => v.trim_matches(is_dir_delim),
                _ => v.as_str(),
            };
            if ignore_case {
                v.to_ascii_lowercase().into()
            } else {
                v.into()
            }
        })
        .collect();
    if op == TextOp::Str {
        // With -i the values are lowercase already, so byte order is the
        // case-folded order that `cmp_ci` searches with.
        values.sort_unstable();
        values.dedup();
    }
    Pattern::Text {
        op,
        ignore_case,
        values: values.into_boxed_slice(),
    }
}

fn is_dom_delim(c: char) -> bool {
    matches!(c, '/' | '?' | '.' | ':')
}

fn is_dir_delim(c: char) -> bool {
    matches!(c, '/' | '?')
}

/// Case-folded comparison without allocating.
fn cmp_ci(a: &[u8], b: &[u8]) -> Ordering {
    a.iter()
        .map(u8::to_ascii_lowercase)
        .cmp(b.iter().map(u8::to_ascii_lowercase))
}

fn eq(a: &[u8], b: &[u8], ignore_case: bool) -> bool {
    if ignore_case {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

fn match_text(op: TextOp, ic: bool, values: &[Box<str>], s: &[u8]) -> bool {
    match op {
        TextOp::Str => {
            if ic {
                values.binary_search_by(|v| cmp_ci(v.as_bytes(), s)).is_ok()
            } else {
                values.binary_search_by(|v| v.as_bytes().cmp(s)).is_ok()
            }
        }
        TextOp::Beg => values.iter().any(|v| {
            let v = v.as_bytes();
            s.get(..v.len()).is_some_and(|head| eq(head, v, ic))
        }),
        TextOp::End => values.iter().any(|v| {
            let v = v.as_bytes();
            s.len() >= v.len() && eq(&s[s.len() - v.len()..], v, ic)
        }),
        // An empty value never matches as a substring, as in HAProxy.
        TextOp::Sub => values.iter().any(|v| {
            let v = v.as_bytes();
            !v.is_empty() && s.windows(v.len()).any(|w| eq(w, v, ic))
        }),
        TextOp::Dom => values
            .iter()
            .any(|v| match_word(s, v.as_bytes(), ic, |c| is_dom_delim(char::from(c)))),
        TextOp::Dir => values
            .iter()
            .any(|v| match_word(s, v.as_bytes(), ic, |c| is_dir_delim(char::from(c)))),
    }
}

/// HAProxy's `match_word`: `word` occurs in `s` starting at the beginning or
/// right after a delimiter, and ending at the end or right before one. So
/// `dom example.com` matches `www.example.com` and `example.com:8080` but
/// not `myexample.com`, and `dir api` matches `/v1/api/x` but not `/apix`.
fn match_word(s: &[u8], word: &[u8], ic: bool, delim: impl Fn(u8) -> bool) -> bool {
    if word.is_empty() || word.len() > s.len() {
        return false;
    }
    let last = s.len() - word.len();
    let mut at_word_start = true;
    for c in 0..=last {
        if delim(s[c]) {
            at_word_start = true;
            continue;
        }
        if !at_word_start {
            continue;
        }
        at_word_start = false;
        let end = c + word.len();
        if eq(&s[c..end], word, ic) && (end == s.len() || delim(s[end])) {
            return true;
        }
    }
    false
}
