//! Splits one line into words the way HAProxy's `parse_line()` does.
//!
//! Words are separated by spaces or tabs; `#` starts a comment; double quotes
//! group words and still honour backslash escapes; single quotes group words
//! and escape nothing. Escapes: `\ `, `\#`, `\\`, `\'`, `\"`, `\r`, `\n`,
//! `\t` and `\xNN`. Any other backslash is kept as written, which is what lets
//! regexes such as `^/api/\d+` pass through unchanged. There is no line
//! continuation in HAProxy, so there is none here.

/// The words of one line.
#[derive(Debug, Default)]
pub(super) struct Words {
    pub words: Vec<String>,
    /// A double-quoted `$NAME` or `${NAME}` was met. HAProxy would expand it
    /// from the environment; Shoal keeps it literally and warns.
    pub env_var: Option<String>,
}

/// Tokenizes `line`; the error says what is wrong with the line.
pub(super) fn split(line: &str) -> Result<Words, String> {
    let mut out = Words::default();
    // Bytes, because `\xNN` may build a multi-byte character piece by piece.
    let mut cur: Vec<u8> = Vec::new();
    let mut in_word = false;
    let (mut squote, mut dquote) = (false, false);
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if squote {
            if c == b'\'' {
                squote = false;
            } else {
                cur.push(c);
            }
            i += 1;
            continue;
        }
        if c == b'\\' {
            in_word = true;
            i += escape(bytes, i, &mut cur)?;
            continue;
        }
        if dquote {
            if c == b'"' {
                dquote = false;
            } else {
                if c == b'$' && out.env_var.is_none() {
                    out.env_var = env_name(&bytes[i + 1..]);
                }
                cur.push(c);
            }
            i += 1;
            continue;
        }
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                if in_word {
                    out.words.push(finish(&mut cur)?);
                    in_word = false;
                }
            }
            b'#' => break,
            b'"' => {
                dquote = true;
                in_word = true;
            }
            b'\'' => {
                squote = true;
                in_word = true;
            }
            _ => {
                cur.push(c);
                in_word = true;
            }
        }
        i += 1;
    }
    if squote || dquote {
        let which = if squote { "single" } else { "double" };
        return Err(format!("unmatched {which} quote"));
    }
    if in_word {
        out.words.push(finish(&mut cur)?);
    }
    Ok(out)
}

/// Decodes the escape starting at `bytes[at]` (a backslash) into `cur`;
/// returns how many bytes it used.
fn escape(bytes: &[u8], at: usize, cur: &mut Vec<u8>) -> Result<usize, String> {
    let Some(&next) = bytes.get(at + 1) else {
        cur.push(b'\\');
        return Ok(1);
    };
    let decoded = match next {
        b' ' | b'\\' | b'#' | b'\'' | b'"' => next,
        b'r' => b'\r',
        b'n' => b'\n',
        b't' => b'\t',
        b'x' => {
            let hex = bytes
                .get(at + 2..at + 4)
                .and_then(|h| std::str::from_utf8(h).ok());
            let value = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(value) = value else {
                return Err("truncated or invalid hexadecimal sequence after '\\x'".into());
            };
            cur.push(value);
            return Ok(4);
        }
        // Unknown escapes keep their backslash, as in HAProxy.
        _ => {
            cur.push(b'\\');
            return Ok(1);
        }
    };
    cur.push(decoded);
    Ok(2)
}

fn finish(cur: &mut Vec<u8>) -> Result<String, String> {
    String::from_utf8(std::mem::take(cur))
        .map_err(|_| "a '\\x' escape produced invalid UTF-8".to_string())
}

/// The variable name after a `$`, when it looks like one.
fn env_name(rest: &[u8]) -> Option<String> {
    let rest = rest.strip_prefix(b"{").unwrap_or(rest);
    let len = rest
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
        .count();
    let name = rest
        .get(..len)
        .filter(|n| n.first().is_some_and(|b| !b.is_ascii_digit()))?;
    Some(String::from_utf8_lossy(name).into_owned())
}
