//! Splits one line into words the way HAProxy's `parse_line()` does.
//!
//! Words are separated by spaces or tabs; `#` starts a comment; double quotes
//! group words and still honour backslash escapes; single quotes group words
//! and escape nothing. Escapes: `\ `, `\#`, `\\`, `\'`, `\"`, `\r`, `\n`,
//! `\t`, `\xNN` and, inside double quotes, `\$`. Any other backslash is kept
//! as written, which is what lets regexes such as `^/api/\d+` pass through
//! unchanged. There is no line continuation in HAProxy, so there is none here.
//!
//! Inside double quotes only, `$NAME` and `${NAME}` expand to an environment
//! variable, as in HAProxy 2.6: `${NAME-DEFAULT}` gives a default for an
//! unset variable, `${NAME[*]}` splits the value into words at whitespace,
//! and `.FILE`, `.LINE` and `.SECTION` are HAProxy's pseudo-variables. The
//! one difference: HAProxy expands an unset variable to nothing, which turns
//! `bind "${IP}:80"` into "every interface"; Shoal refuses the line instead.
//! A value is used as it is (never re-read for quotes or escapes). A line
//! has at most [`MAX_WORDS`] words, as in HAProxy.

/// HAProxy's `MAX_LINE_ARGS`: it refuses lines with more words.
pub(super) const MAX_WORDS: usize = 64;

/// Looks up an environment variable: `None` when it is not set. The parser
/// takes it as a function so that tests can pass a map, and so that one
/// config text can load with each node's own values.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// What a `$` can expand to on one line.
pub(super) struct Vars<'a> {
    /// Environment variables.
    pub env: EnvLookup<'a>,
    /// `.FILE`: the name of the file being parsed.
    pub file: &'a str,
    /// `.LINE`: the number of the line being parsed.
    pub line: usize,
    /// `.SECTION`: the current section's name, or its keyword when it has
    /// none; empty before the first section.
    pub section: &'a str,
}

/// Tokenizes `line` into words, expanding variables from `vars`; the error
/// says what is wrong with the line.
pub(super) fn split(line: &str, vars: &Vars) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    // Bytes, because `\xNN` may build a multi-byte character piece by piece.
    let mut cur: Vec<u8> = Vec::new();
    let mut in_word = false;
    // The open word was begun by `${NAME[*]}` splitting: if it is still
    // empty at the end of the line it is dropped, as HAProxy does with a
    // value's trailing whitespace.
    let mut split_tail = false;
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
                i += 1;
            } else if c == b'$' {
                let var = expand(line, i, vars)?;
                i = var.end;
                if var.split {
                    split_tail |= split_words(&var.value, &mut out, &mut cur)?;
                } else {
                    cur.extend_from_slice(var.value.as_bytes());
                }
            } else {
                cur.push(c);
                i += 1;
            }
            continue;
        }
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                if in_word {
                    push(&mut out, &mut cur)?;
                    in_word = false;
                    split_tail = false;
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
    if in_word && !(split_tail && cur.is_empty()) {
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

/// One `$NAME` or `${...}` reference, expanded.
struct Expansion {
    /// The value (or the default).
    value: String,
    /// `${NAME[*]}`: the value is split into words.
    split: bool,
    /// Index of the first byte after the reference.
    end: usize,
}

/// Expands the reference whose `$` is at `line[dollar]`, the way HAProxy
/// 2.6 reads it: a name of letters, digits and `_` not starting with a
/// digit (or a `.` pseudo-variable); in braces, an optional `[*]` and then
/// an optional `-DEFAULT` running to the first `}`, taken as written.
fn expand(line: &str, dollar: usize, vars: &Vars) -> Result<Expansion, String> {
    let bytes = line.as_bytes();
    let at = |i: usize| bytes.get(i).copied().unwrap_or_default();
    let mut i = dollar + 1;
    let brace = at(i) == b'{';
    if brace {
        i += 1;
    }
    let start = i;
    let first = at(i);
    if !(first.is_ascii_alphabetic() || first == b'_' || first == b'.') {
        // HAProxy: "forbidden first char in environment variable name".
        return Err("forbidden first character in environment variable name after '$' (write '\\$' for a literal '$')".into());
    }
    if first == b'.' {
        i += 1;
    }
    while at(i).is_ascii_alphanumeric() || at(i) == b'_' {
        i += 1;
    }
    let name = line.get(start..i).unwrap_or_default();
    let mut value = lookup(name, vars)?;
    let split = brace && at(i) == b'[';
    if split {
        if bytes.get(i..i + 3) != Some(b"[*]") {
            return Err(format!(
                "truncated or invalid word expansion sequence after '${{{name}' (only '[*]' is known)"
            ));
        }
        i += 3;
    }
    if brace {
        let unmatched = || format!("unmatched brace in environment variable name '${{{name}'");
        if at(i) == b'-' {
            let len = bytes[i..]
                .iter()
                .position(|&b| b == b'}')
                .ok_or_else(unmatched)?;
            // The default replaces an unset variable, not an empty one.
            if value.is_none() {
                value = line.get(i + 1..i + len).map(str::to_string);
            }
            i += len;
        }
        if at(i) != b'}' {
            return Err(unmatched());
        }
        i += 1;
    }
    let Some(value) = value else {
        return Err(unset(name));
    };
    Ok(Expansion {
        value,
        split,
        end: i,
    })
}

/// The value of variable `name`: `None` when it is not set; an error for a
/// pseudo-variable HAProxy does not know.
fn lookup(name: &str, vars: &Vars) -> Result<Option<String>, String> {
    Ok(match name {
        ".FILE" => Some(vars.file.to_string()),
        ".LINE" => Some(vars.line.to_string()),
        ".SECTION" => Some(vars.section.to_string()),
        _ if name.starts_with('.') => {
            return Err(format!(
                "unknown pseudo-variable '{name}' (HAProxy 2.6 has '.FILE', '.LINE' and '.SECTION')"
            ))
        }
        _ => (vars.env)(name),
    })
}

/// The error for a variable that is not set and has no default.
fn unset(name: &str) -> String {
    // HAProxy sets these itself before reading its config; Shoal does not.
    let own = if name.starts_with("HAPROXY_") {
        "; Shoal does not set HAProxy's own HAPROXY_* variables"
    } else {
        ""
    };
    format!(
        "environment variable '{name}' is not set (HAProxy would use an empty string here; Shoal refuses, and '${{{name}-DEFAULT}}' gives a default){own}"
    )
}

/// Appends `value` to the open word, ending the word at each run of
/// whitespace (C's `isspace`, as HAProxy). Returns whether it split, that
/// is whether the word left open was begun by the split.
fn split_words(value: &str, out: &mut Vec<String>, cur: &mut Vec<u8>) -> Result<bool, String> {
    let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r');
    let mut rest = value.as_bytes();
    let mut split = false;
    while let Some(at) = rest.iter().position(is_space) {
        cur.extend_from_slice(rest.get(..at).unwrap_or_default());
        push(out, cur)?;
        split = true;
        let run = rest.get(at..).unwrap_or_default();
        rest = run
            .get(run.iter().take_while(|b| is_space(b)).count()..)
            .unwrap_or_default();
    }
    cur.extend_from_slice(rest);
    Ok(split)
}
