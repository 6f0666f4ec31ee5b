//! Errors and warnings met while parsing, with the bounds that keep a
//! broken config cheap: at most [`MAX_ERRORS`] errors and [`MAX_WARNINGS`]
//! warnings are kept, and user words echoed in messages are cut.

use super::gaps::{self, Gap};
use super::{duration, Diagnostic};
use std::collections::HashSet;
use std::time::Duration;

/// After this many errors the parser stops reading, as HAProxy does after
/// 50 fatal errors: the rest would mostly be consequences of the first ones.
pub const MAX_ERRORS: usize = 50;

/// At most this many warnings are kept; a final one counts the others.
const MAX_WARNINGS: usize = 100;

/// A word echoed in a diagnostic is cut to this many characters.
const MAX_ECHO: usize = 64;

/// A diagnostic's message is cut to this many characters.
const MAX_MESSAGE: usize = 1024;

/// Errors and warnings collected so far.
pub(crate) struct Diags {
    file: String,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    /// Keys of warnings already printed, for the once-per-file ones.
    warned: HashSet<String>,
    /// Warnings left out because their list was full.
    dropped_warnings: usize,
    /// Why reading stopped early, reported after every other error.
    stop_message: Option<Diagnostic>,
    /// `zero-warning` in `global`: any warning refuses the config.
    pub zero_warning: bool,
}

impl Diags {
    pub fn new(file: &str) -> Self {
        Diags {
            file: file.to_string(),
            errors: Vec::new(),
            warnings: Vec::new(),
            warned: HashSet::new(),
            dropped_warnings: 0,
            stop_message: None,
            zero_warning: false,
        }
    }

    /// Notes that reading stops here, after [`MAX_ERRORS`] errors.
    pub fn stop_reading(&mut self) {
        let line = self.errors.iter().map(|e| e.line).max().unwrap_or_default();
        let message = format!(
            "too many errors ({MAX_ERRORS}); stopping here without reading the rest of the file"
        );
        self.stop_message = Some(self.diag(line, message));
    }

    /// The warnings, or the errors (sorted by line, then the summaries).
    pub fn finish(mut self) -> Result<Vec<Diagnostic>, Vec<Diagnostic>> {
        self.errors.sort_by_key(|e| e.line);
        self.warnings.sort_by_key(|w| w.line);
        if let Some(stop) = self.stop_message.take() {
            self.errors.push(stop);
        } else if self.is_full() {
            // The whole-file checks stop early once the list is full.
            let msg = format!("too many errors ({MAX_ERRORS}); the others are not shown");
            self.errors.push(self.diag(0, msg));
        }
        if !self.errors.is_empty() {
            return Err(self.errors);
        }
        if self.dropped_warnings > 0 {
            let msg = format!(
                "{} more warnings are not shown (at most {MAX_WARNINGS} are)",
                self.dropped_warnings
            );
            self.warnings.push(self.diag(0, msg));
        }
        if self.zero_warning && !self.warnings.is_empty() {
            // HAProxy: "Some warnings were found and 'zero-warning' is set. Aborting."
            let msg = "warnings were found and 'zero-warning' is set; refusing to start";
            let last = self.diag(0, msg.to_string());
            let mut errors = self.warnings;
            errors.push(last);
            return Err(errors);
        }
        Ok(self.warnings)
    }

    fn diag(&self, line: usize, message: String) -> Diagnostic {
        Diagnostic {
            file: self.file.clone(),
            line,
            message: shorten(message),
        }
    }
    /// `FILE:LINE` of line `line`, for errors found after parsing.
    pub fn at(&self, line: usize) -> String {
        format!("{}:{line}", self.file)
    }
    /// Records an error.
    pub fn error(&mut self, line: usize, message: impl Into<String>) {
        if self.is_full() {
            return;
        }
        let d = self.diag(line, message.into());
        self.errors.push(d);
    }
    /// True once no more errors are kept: costly checks can stop.
    pub fn is_full(&self) -> bool {
        self.errors.len() >= MAX_ERRORS
    }
    /// Records a warning.
    pub fn warn(&mut self, line: usize, message: impl Into<String>) {
        if self.warnings.len() >= MAX_WARNINGS {
            self.dropped_warnings += 1;
            return;
        }
        let d = self.diag(line, message.into());
        self.warnings.push(d);
    }
    /// Records a warning unless one with the same `key` was already given.
    pub fn warn_once(&mut self, key: &str, line: usize, message: impl Into<String>) {
        if self.warned.insert(key.to_string()) {
            self.warn(line, message);
        }
    }
    /// A HAProxy feature Shoal does not implement: an error on every line
    /// when the gap is refused, else a warning once per file. `label` names
    /// the feature as the message shows it (`'http-request'`, `bind option
    /// 'ssl'`).
    pub fn gap(&mut self, line: usize, label: &str, gap: Gap) {
        if gap.refuse {
            self.error(
                line,
                format!(
                    "{label} is not implemented by Shoal; refusing to start because ignoring it would {}",
                    gap.why
                ),
            );
        } else {
            let msg = format!(
                "{label} is not implemented by Shoal yet; ignored ({})",
                gap.why
            );
            self.warn_once(label, line, msg);
        }
    }
    /// [`Diags::gap`] for a partly implemented form listed in
    /// [`gaps::FORMS`], such as `balance rdp-cookie`.
    pub fn unimplemented(&mut self, line: usize, form: &str) {
        self.gap(line, &format!("'{form}'"), gaps::form(form));
    }

    /// `args[i]`, or an error saying the keyword expects `what`.
    pub fn need<'a>(
        &mut self,
        line: usize,
        args: &'a [String],
        i: usize,
        what: &str,
    ) -> Option<&'a str> {
        let arg = args.get(i).map(String::as_str);
        if arg.is_none() {
            let label = args.get(..i).unwrap_or(args).join(" ");
            self.error(line, format!("'{label}' expects {what}"));
        }
        arg
    }
    /// False (with an error) if there are more than `n` words.
    pub fn at_most(&mut self, line: usize, args: &[String], n: usize) -> bool {
        match args.get(n) {
            None => true,
            Some(extra) => {
                let before = args.get(..n).unwrap_or(args).join(" ");
                self.error(
                    line,
                    format!("unexpected argument '{extra}' after '{before}'"),
                );
                false
            }
        }
    }
    /// Parses an integer argument of keyword `label` that must lie within
    /// `min..=max`; the error uses HAProxy's wording for `nbthread`.
    pub fn int_in(
        &mut self,
        line: usize,
        label: &str,
        word: &str,
        min: i64,
        max: i64,
    ) -> Option<i64> {
        let digits = word.strip_prefix('-').unwrap_or(word);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            self.error(line, format!("'{label}' expects an integer, got '{word}'"));
            return None;
        }
        // Too many digits for i64 is out of range too.
        match word.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.error(
                    line,
                    format!("'{label}' value must be between {min} and {max} (was {word})"),
                );
                None
            }
        }
    }
    /// Parses a duration argument of keyword `label`.
    pub fn duration(&mut self, line: usize, label: &str, word: &str) -> Option<Duration> {
        match duration::parse(word) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(line, format!("'{label}': {e}"));
                None
            }
        }
    }
}

/// Cuts every quoted word of a diagnostic (`'...'`) to [`MAX_ECHO`]
/// characters and the whole message to [`MAX_MESSAGE`], so that a huge
/// token in a config is never echoed whole.
fn shorten(message: String) -> String {
    let long_word = message
        .split('\'')
        .skip(1)
        .step_by(2)
        .any(|w| w.len() > MAX_ECHO);
    if !long_word && message.len() <= MAX_MESSAGE {
        return message;
    }
    let mut out = String::new();
    for (i, part) in message.split('\'').enumerate() {
        if i > 0 {
            out.push('\'');
        }
        if i % 2 == 1 && part.chars().nth(MAX_ECHO).is_some() {
            out.extend(part.chars().take(MAX_ECHO));
            out.push_str("...");
        } else {
            out.push_str(part);
        }
        if out.len() > MAX_MESSAGE {
            break;
        }
    }
    if let Some((cut, _)) = out.char_indices().nth(MAX_MESSAGE) {
        out.truncate(cut);
        out.push_str("...");
    }
    out
}
