//! ACL definitions (`acl NAME FETCH [flags] VALUES`) and conditions
//! (`if|unless TERMS`), normalised to the model's sample + match method.

use super::keywords::{self, FETCHES_UNIMPLEMENTED, FETCH_PREFIXES_UNIMPLEMENTED};
use super::state::ProxyState;
use super::{addr, check_name, Diags};
use crate::config::{AclDef, AclRef, CondTerm, Condition, MatchKind, Sample};
use std::collections::BTreeSet;

/// Fetches Shoal implements, for the near-miss hint.
const FETCHES: &[&str] = &[
    "path",
    "path_beg",
    "path_end",
    "path_sub",
    "path_reg",
    "path_dir",
    "path_dom",
    "url",
    "url_beg",
    "url_end",
    "url_sub",
    "url_reg",
    "url_dir",
    "url_dom",
    "hdr",
    "req.hdr",
    "hdr_beg",
    "hdr_end",
    "hdr_sub",
    "hdr_reg",
    "hdr_dir",
    "hdr_dom",
    "hdr_ip",
    "hdr_val",
    "method",
    "src",
    "dst_port",
    "ssl_fc",
    "ssl_fc_sni",
    "ssl_fc_sni_end",
    "ssl_fc_sni_reg",
];

/// `acl NAME FETCH [flags] [VALUES]`.
pub(super) fn def_line(d: &mut Diags, st: &mut ProxyState, no: usize, args: &[String]) {
    let Some(name) = d.need(no, args, 1, "a name, a fetch method and values") else {
        return;
    };
    if !check_name(d, no, "acl", name) {
        return;
    }
    let rest = args.get(2..).unwrap_or_default();
    if rest.is_empty() {
        return d.error(
            no,
            format!("'acl {name}' expects a fetch method such as 'path_beg' or 'hdr(host)'"),
        );
    }
    if let Some(def) = parse_def(d, no, name, rest) {
        st.acl_names.insert(def.name.clone());
        st.proxy.acls.push(def);
        st.lines.acls.push(no);
    }
}

/// Parses `FETCH [flags] [VALUES]` into a definition named `name` ("" for
/// an anonymous ACL).
fn parse_def(d: &mut Diags, no: usize, name: &str, words: &[String]) -> Option<AclDef> {
    let label = if name.is_empty() {
        "anonymous acl".to_string()
    } else {
        format!("acl '{name}'")
    };
    let Some(fetch_word) = words.first() else {
        d.error(no, format!("{label} expects a fetch method"));
        return None;
    };
    let (sample, mut kind, forced) = match fetch(fetch_word) {
        Ok(f) => f,
        Err(e) => {
            d.error(no, format!("{label}: {e}"));
            return None;
        }
    };
    let mut ignore_case = false;
    let mut i = 1;
    while let Some(flag) = words.get(i).filter(|w| w.starts_with('-') && w.len() > 1) {
        i += 1;
        match flag.as_str() {
            "-i" => ignore_case = true,
            // `-n` forbids DNS resolution of values; Shoal never resolves them.
            "-n" => {}
            "--" => break,
            "-m" => {
                let Some(m) = words.get(i) else {
                    d.error(no, format!("{label}: '-m' expects a match method"));
                    return None;
                };
                i += 1;
                if forced {
                    d.error(no, format!("{label}: '-m' cannot be used with '{fetch_word}', which already sets the match method"));
                    return None;
                }
                kind = match match_method(m) {
                    Ok(k) => k,
                    Err(e) => {
                        d.error(no, format!("{label}: {e}"));
                        return None;
                    }
                };
            }
            "-f" | "-u" | "-M" => {
                d.error(
                    no,
                    format!("{label}: flag '{flag}' is not implemented by Shoal yet"),
                );
                return None;
            }
            other => {
                let msg = format!("{label}: '{other}' is not a valid acl flag (write '--' before a value that starts with '-')");
                d.error(no, msg);
                return None;
            }
        }
    }
    let values = words.get(i..).unwrap_or_default().to_vec();
    if let Err(e) =
        compatible(&sample, kind).and_then(|()| check_values(kind, ignore_case, &values))
    {
        d.error(no, format!("{label}: {e}"));
        return None;
    }
    if values.is_empty() && !matches!(kind, MatchKind::Found | MatchKind::Bool) {
        d.warn(
            no,
            format!("{label} has no value to match and will never match"),
        );
    }
    Some(AclDef {
        name: name.to_string(),
        sample,
        kind,
        ignore_case,
        values,
    })
}

/// A fetch word: its sample, its default match method and whether the
/// word forces that method (`path_beg` does, `path` does not).
fn fetch(word: &str) -> Result<(Sample, MatchKind, bool), String> {
    if word.split('(').next().is_some_and(|b| b.contains(',')) || word.contains("),") {
        return Err(format!(
            "converters ('{word}') are not implemented by Shoal yet"
        ));
    }
    let (base, arg) = match word.split_once('(') {
        Some((base, rest)) => match rest.strip_suffix(')') {
            Some(arg) if !arg.contains(')') => (base, Some(arg)),
            _ => return Err(format!("malformed fetch '{word}' (expected NAME(ARG))")),
        },
        None => (word, None),
    };
    let (stem, suffix) = match base {
        "dst_port" | "req.hdr" | "ssl_fc" | "ssl_fc_sni" => (base, None),
        // HAProxy's older `ssl_fc_sni_end`/`ssl_fc_sni_reg` spellings.
        _ if base.starts_with("ssl_fc_sni_") => ("ssl_fc_sni", base.strip_prefix("ssl_fc_sni_")),
        _ => match base.split_once('_') {
            Some((stem, suffix)) => (stem, Some(suffix)),
            None => (base, None),
        },
    };
    let sample = match stem {
        "path" => Sample::Path,
        "url" => Sample::Url,
        "method" if suffix.is_none() => Sample::Method,
        "src" if suffix.is_none() => Sample::Src,
        "dst_port" => Sample::DstPort,
        "ssl_fc" => Sample::SslFc,
        "ssl_fc_sni" => Sample::SslFcSni,
        "hdr" | "req.hdr" => {
            let name = arg.unwrap_or_default();
            if name.is_empty() {
                return Err(format!("'{base}' needs a header name, as in {base}(host)"));
            }
            if name.contains(',') {
                return Err(format!(
                    "header occurrence in '{word}' is not implemented by Shoal yet"
                ));
            }
            Sample::Hdr(name.to_ascii_lowercase())
        }
        _ => return Err(unknown_fetch(base)),
    };
    if arg.is_some() && !matches!(sample, Sample::Hdr(_)) {
        return Err(format!("'{base}' takes no argument"));
    }
    let default = match sample {
        Sample::Src => MatchKind::Ip,
        Sample::DstPort => MatchKind::Int,
        Sample::SslFc => MatchKind::Bool,
        _ => MatchKind::Str,
    };
    let kind = match (suffix, &sample) {
        (None, _) => return Ok((sample, default, false)),
        (Some("ip"), Sample::Hdr(_)) => MatchKind::Ip,
        (Some("val"), Sample::Hdr(_)) => MatchKind::Int,
        (Some(s), _) => match match_method(s) {
            Ok(
                k @ (MatchKind::Beg
                | MatchKind::End
                | MatchKind::Sub
                | MatchKind::Reg
                | MatchKind::Dir
                | MatchKind::Dom),
            ) => k,
            _ => return Err(unknown_fetch(base)),
        },
    };
    Ok((sample, kind, true))
}

fn unknown_fetch(base: &str) -> String {
    let real = FETCHES_UNIMPLEMENTED.contains(&base)
        || FETCH_PREFIXES_UNIMPLEMENTED
            .iter()
            .any(|p| base.starts_with(p))
        || ["_len", "_cnt", "_val", "_ip"]
            .iter()
            .any(|s| base.ends_with(s));
    if real {
        format!("fetch '{base}' is not implemented by Shoal yet")
    } else {
        format!(
            "unknown fetch method '{base}'{}",
            keywords::hint(base, FETCHES.iter().copied())
        )
    }
}

/// `-m METHOD`.
fn match_method(m: &str) -> Result<MatchKind, String> {
    Ok(match m {
        "str" => MatchKind::Str,
        "beg" => MatchKind::Beg,
        "end" => MatchKind::End,
        "sub" => MatchKind::Sub,
        "reg" => MatchKind::Reg,
        "dom" => MatchKind::Dom,
        "dir" => MatchKind::Dir,
        "ip" => MatchKind::Ip,
        "int" => MatchKind::Int,
        "found" => MatchKind::Found,
        "bool" => MatchKind::Bool,
        "bin" | "len" => {
            return Err(format!(
                "match method '-m {m}' is not implemented by Shoal yet"
            ))
        }
        other => {
            let names = [
                "str", "beg", "end", "sub", "reg", "dom", "dir", "ip", "int", "found", "bool",
            ];
            return Err(format!(
                "unknown match method '{other}'{}",
                keywords::hint(other, names)
            ));
        }
    })
}

/// Rejects methods that make no sense for the sample's type.
fn compatible(sample: &Sample, kind: MatchKind) -> Result<(), String> {
    let ok = match sample {
        Sample::Src => matches!(kind, MatchKind::Ip | MatchKind::Found),
        Sample::DstPort => matches!(kind, MatchKind::Int | MatchKind::Found),
        Sample::SslFc => matches!(kind, MatchKind::Bool | MatchKind::Found),
        _ if kind == MatchKind::Bool => false,
        Sample::Hdr(_) => true,
        Sample::Path | Sample::Url | Sample::Method | Sample::SslFcSni => {
            !matches!(kind, MatchKind::Ip | MatchKind::Int)
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "match method '-m {}' cannot be used with '{}'",
            kind.keyword(),
            sample_name(sample)
        ))
    }
}

/// Checks that values parse for the method (regexes compile, addresses
/// and integers are well formed).
fn check_values(kind: MatchKind, ignore_case: bool, values: &[String]) -> Result<(), String> {
    match kind {
        MatchKind::Reg => values.iter().try_for_each(|v| check_regex(v, ignore_case)),
        MatchKind::Ip => match values.iter().find(|v| !addr::is_ip_or_network(v)) {
            Some(v) => Err(format!("invalid IP address or network '{v}'")),
            None => Ok(()),
        },
        MatchKind::Int => check_ints(values),
        MatchKind::Found if !values.is_empty() => Err("'-m found' takes no values".into()),
        MatchKind::Bool if !values.is_empty() => Err("'-m bool' takes no values".into()),
        _ => Ok(()),
    }
}

/// Compiles `pattern` with the regex crate, as the node will.
pub(super) fn check_regex(pattern: &str, ignore_case: bool) -> Result<(), String> {
    regex::RegexBuilder::new(pattern)
        .case_insensitive(ignore_case)
        .size_limit(1 << 20)
        .build()
        .map(|_| ())
        .map_err(|e| {
            let why = e.to_string();
            let why = why
                .lines()
                .last()
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .to_string();
            format!("invalid regex '{pattern}': {why}")
        })
}

/// Integer patterns: `N`, `A:B`, `:B`, `A:`, or `eq|ge|gt|le|lt N`.
fn check_ints(values: &[String]) -> Result<(), String> {
    let int = |s: &str| s.parse::<i64>().is_ok();
    let mut iter = values.iter();
    while let Some(v) = iter.next() {
        let ok = match v.as_str() {
            "eq" | "ge" | "gt" | "le" | "lt" => iter.next().is_some_and(|n| int(n)),
            _ => match v.split_once(':') {
                Some((a, b)) => {
                    (a.is_empty() || int(a))
                        && (b.is_empty() || int(b))
                        && !(a.is_empty() && b.is_empty())
                }
                None => int(v),
            },
        };
        if !ok {
            return Err(format!(
                "invalid integer match '{v}' (expected N, A:B, or eq|ge|gt|le|lt N)"
            ));
        }
    }
    Ok(())
}

/// The fetch keyword of a sample, as written in a config.
pub(super) fn sample_name(sample: &Sample) -> String {
    match sample {
        Sample::Path => "path".into(),
        Sample::Url => "url".into(),
        Sample::Hdr(h) => format!("hdr({h})"),
        Sample::Method => "method".into(),
        Sample::Src => "src".into(),
        Sample::DstPort => "dst_port".into(),
        Sample::SslFc => "ssl_fc".into(),
        Sample::SslFcSni => "ssl_fc_sni".into(),
    }
}

/// True for samples that only exist in HTTP mode.
pub(super) fn is_http(sample: &Sample) -> bool {
    matches!(
        sample,
        Sample::Path | Sample::Url | Sample::Hdr(_) | Sample::Method
    )
}

/// Parses `if|unless TERMS`. `acls` names the ACLs defined so far in the
/// section: as in HAProxy, an ACL must be declared before it is used.
pub(super) fn condition(
    d: &mut Diags,
    no: usize,
    acls: &BTreeSet<String>,
    words: &[String],
) -> Option<Condition> {
    let unless = match words.first().map(String::as_str) {
        Some("if") => false,
        Some("unless") => true,
        Some(other) => {
            d.error(no, format!("expected 'if' or 'unless', got '{other}'"));
            return None;
        }
        None => {
            d.error(no, "expected 'if' or 'unless' followed by a condition");
            return None;
        }
    };
    let terms = words.get(1..).unwrap_or_default();
    if terms.is_empty() {
        d.error(
            no,
            format!(
                "'{}' expects a condition",
                if unless { "unless" } else { "if" }
            ),
        );
        return None;
    }
    let mut any_of: Vec<Vec<CondTerm>> = vec![Vec::new()];
    let (mut negated, mut ok, mut i) = (false, true, 0);
    // Terms seen in the current group, valid or not (so that one bad term
    // does not also report a dangling operator).
    let mut seen = 0;
    while let Some(word) = terms.get(i) {
        i += 1;
        if word == "||" || word == "or" {
            if negated || seen == 0 {
                d.error(no, format!("'{word}' must come between two acls"));
                ok = false;
            }
            any_of.push(Vec::new());
            (negated, seen) = (false, 0);
            continue;
        }
        // Each leading '!' flips the sense; a lone '!' applies to the next word.
        let bangs = word.bytes().take_while(|b| *b == b'!').count();
        negated ^= bangs % 2 == 1;
        let word = word.get(bangs..).unwrap_or_default();
        if word.is_empty() {
            continue;
        }
        let acl = if word == "{" {
            let Some(len) = terms
                .get(i..)
                .unwrap_or_default()
                .iter()
                .position(|t| t == "}")
            else {
                d.error(no, "missing '}' to close an anonymous acl");
                return None;
            };
            let inner = terms.get(i..i + len).unwrap_or_default();
            i += len + 1;
            parse_def(d, no, "", inner).map(|def| AclRef::Inline(Box::new(def)))
        } else if acls.contains(word) || CONSTANT_ACLS.contains(&word) {
            // Constant predefined ACLs stay named; the node evaluates them.
            Some(AclRef::Named(word.to_string()))
        } else {
            match predefined(word) {
                Some(Ok(def)) => Some(AclRef::Inline(Box::new(def))),
                Some(Err(e)) => {
                    d.error(no, e);
                    None
                }
                None => {
                    let hint = keywords::hint(word, acls.iter().map(String::as_str));
                    d.error(no, format!("acl '{word}' is not defined (an acl must be declared before use in the same section){hint}"));
                    None
                }
            }
        };
        seen += 1;
        match (acl, any_of.last_mut()) {
            (Some(acl), Some(group)) => group.push(CondTerm { negated, acl }),
            _ => ok = false,
        }
        negated = false;
    }
    if negated || seen == 0 {
        d.error(no, "condition ends with an operator ('!', '||' or 'or')");
        ok = false;
    }
    ok.then_some(Condition { unless, any_of })
}

/// Predefined ACLs whose value does not depend on a sample Shoal models:
/// always true/false, or true for every HTTP request.
const CONSTANT_ACLS: [&str; 4] = ["TRUE", "FALSE", "HTTP", "HTTP_CONTENT"];

/// HAProxy's predefined ACLs that map onto the model; the others are
/// errors, since ignoring them would change where traffic goes.
fn predefined(name: &str) -> Option<Result<AclDef, String>> {
    let def = |sample, kind, values: &[&str]| {
        Some(Ok(AclDef {
            name: String::new(),
            sample,
            kind,
            ignore_case: false,
            values: values.iter().map(|v| v.to_string()).collect(),
        }))
    };
    match name {
        "LOCALHOST" => def(Sample::Src, MatchKind::Ip, &["127.0.0.1/8", "::1"]),
        "METH_GET" => def(Sample::Method, MatchKind::Str, &["GET", "HEAD"]),
        "METH_CONNECT" | "METH_DELETE" | "METH_HEAD" | "METH_OPTIONS" | "METH_POST"
        | "METH_PUT" | "METH_TRACE" => def(
            Sample::Method,
            MatchKind::Str,
            &[name.trim_start_matches("METH_")],
        ),
        "HTTP_URL_ABS" => def(Sample::Url, MatchKind::Reg, &["^[^/:]*://"]),
        "HTTP_URL_SLASH" => def(Sample::Url, MatchKind::Beg, &["/"]),
        "HTTP_URL_STAR" => def(Sample::Url, MatchKind::Str, &["*"]),
        "HTTP_1.0" | "HTTP_1.1" | "HTTP_2.0" | "HTTP_3.0" | "HTTP_CONTENT" | "RDP_COOKIE"
        | "REQ_CONTENT" | "WAIT_END" => Some(Err(format!(
            "predefined acl '{name}' is not implemented by Shoal yet"
        ))),
        _ => None,
    }
}
