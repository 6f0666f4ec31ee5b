//! Splits one line into words the way HAProxy's `parse_line()` does.
//!
//! Words are separated by spaces or tabs; `#` starts a comment; double quotes
//! group words and still honour backslash escapes; single quotes group words
//! and escape nothing. Escapes: `\ `, `\#`, `\\`, `\'`, `\"`, `\r`, `\n`,
//! `\t`, `\xNN` and, inside double quotes, `\$`. Any other backslash is kept
//! as written, which is what lets regexes such as `^/api/\d+` pass through
//! unchanged. There is no line continuation in HAProxy, so there is none here.
//!
//! HAProxy expands `$NAME` and `${NAME}` inside double quotes from the
//! environment. Shoal does not: such a line is an error, since using the
//! word as written would change its meaning. A line has at most
//! [`MAX_WORDS`] words, as in HAProxy.

/// HAProxy's `MAX_LINE_ARGS`: it refuses lines with more words.
pub(super) const MAX_WORDS: usize = 64;

/// Tokenizes `line` into words; the error says what is wrong with the line.
pub(super) fn split(line: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
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
            i += escape(bytes, i, dquote, &mut cur)?;
            continue;
        }
        if dquote {
            if c == b'"' {
                dquote = false;
            } else if c == b'$' {
                return Err(env_error(bytes.get(i + 1..).unwrap_or_default()));
            } else {
                cur.push(c);
            }
            i += 1;
            continue;
        }
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                if in_word {
                    push(&mut out, &mut cur)?;
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
        push(&mut out, &mut cur)?;
    }
    Ok(out)
}

/// Decodes the escape starting at `bytes[at]` (a backslash) into `cur`;
/// returns how many bytes it used.
fn escape(bytes: &[u8], at: usize, dquote: bool, cur: &mut Vec<u8>) -> Result<usize, String> {
    let Some(&next) = bytes.get(at + 1) else {
        cur.push(b'\\');
        return Ok(1);
    };
    let decoded = match next {
        b' ' | b'\\' | b'#' | b'\'' | b'"' => next,
        // HAProxy escapes `$` only where it would expand a variable.
        b'$' if dquote => next,
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

/// Ends the current word.
fn push(out: &mut Vec<String>, cur: &mut Vec<u8>) -> Result<(), String> {
    if out.len() == MAX_WORDS {
        return Err(format!(
            "too many words on one line (HAProxy's limit is {MAX_WORDS})"
        ));
    }
    let word = String::from_utf8(std::mem::take(cur))
        .map_err(|_| "a '\\x' escape produced invalid UTF-8".to_string())?;
    out.push(word);
    Ok(())
}

/// The error for a `$` inside double quotes; `rest` follows the `$`.
fn env_error(rest: &[u8]) -> String {
    let rest = rest.strip_prefix(b"{").unwrap_or(rest);
    let len = rest
        .iter()
        .take(64)
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_' || **b == b'.')
        .count();
    let name = rest.get(..len).filter(|n| {
        n.first()
            .is_some_and(|b| b.is_ascii_alphabetic() || b"_.".contains(b))
    });
    match name {
        Some(name) => format!(
            "environment variable '${}' is not expanded by Shoal; refusing to start because using the word as written would change its meaning (write the value, or '\\$' for a literal '$')",
            String::from_utf8_lossy(name)
        ),
        // HAProxy: "forbidden first char in environment variable name".
        None => "forbidden first character in environment variable name after '$' (write '\\$' for a literal '$')".to_string(),
    }
}
