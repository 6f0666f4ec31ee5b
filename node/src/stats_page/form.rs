//! Percent-decoding of paths, query strings and
//! `application/x-www-form-urlencoded` bodies.

/// Decode `%XX` escapes (and `+` as a space when `plus_is_space`, as forms
/// and query strings use it). A `%` not followed by two hex digits is kept
/// as written; `None` when the result is not UTF-8.
pub fn decode(text: &str, plus_is_space: bool) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| {
                    std::str::from_utf8(h)
                        .ok()
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                });
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The `name=value` pairs of a form body or query string, decoded; pairs
/// that do not decode are skipped.
pub fn pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((decode(k, true)?, decode(v, true)?))
        })
        .collect()
}

/// The first value of `name` in a form body or query string.
pub fn value(text: &str, name: &str) -> Option<String> {
    pairs(text)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes() {
        assert_eq!(decode("a%20b+c", true).as_deref(), Some("a b c"));
        assert_eq!(decode("a+b", false).as_deref(), Some("a+b"));
        assert_eq!(decode("100%", false).as_deref(), Some("100%"));
        assert_eq!(decode("%zz%4", false).as_deref(), Some("%zz%4"));
        assert_eq!(decode("%ff", false), None);
        assert_eq!(
            pairs("b=app&s=s%2F1&x&action=drain"),
            [
                ("b".into(), "app".into()),
                ("s".into(), "s/1".into()),
                ("x".into(), String::new()),
                ("action".into(), "drain".into())
            ]
        );
        assert_eq!(
            value("key=10.0.0.1&k=2", "key").as_deref(),
            Some("10.0.0.1")
        );
    }
}
