//! Parser for the haproxy.cfg dialect.
//!
//! The file is read line by line ([`lines`], with bounded memory): [`lexer`]
//! splits a line into words, the first word picks a section or a keyword,
//! and the keyword's handler maps it onto the model. Errors do not stop the
//! parse: every line is looked at and every error is returned, up to
//! [`MAX_ERRORS`] (then reading stops, as HAProxy does). Checks that need
//! the whole file (backend names, modes) run at the end, in [`validate`].
//!
//! Policy, following DESIGN.md: a word HAProxy does not know is an error. A
//! HAProxy keyword Shoal does not implement is classified in [`gaps`]: an
//! error when ignoring it would change security or what traffic means, else
//! a warning, once per file.

mod acl;
mod addr;
mod backend;
mod duration;
mod gaps;
mod global;
mod keywords;
mod lexer;
mod lines;
mod options;
mod proxy;
mod server;
mod state;
mod stick;
#[cfg(test)]
mod tests;
mod timeout;
mod validate;

pub use lines::{MAX_CONFIG_BYTES, MAX_LINE_BYTES};

use super::{Config, Diagnostic, Global, Parsed, ProxyKind};
use gaps::Gap;
use state::{ProxyState, Scope};
use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::path::Path;
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

/// Parse a whole file held in memory. `file` names it in diagnostics.
///
/// Returns the config and its warnings, or the errors found (sorted by
/// line, at most [`MAX_ERRORS`] and a last one saying more were left out).
/// Never panics, whatever the input.
pub fn parse(text: &str, file: &str) -> Result<Parsed, Vec<Diagnostic>> {
    parse_reader(text.as_bytes(), file)
}

/// Reads and parses the config file at `path`, line by line: memory stays
/// bounded by the longest line ([`MAX_LINE_BYTES`]) and the model, and at
/// most [`MAX_CONFIG_BYTES`] are read. What `shoal check` and `shoal run`
/// load.
pub fn parse_file(path: &Path) -> Result<Parsed, Vec<Diagnostic>> {
    let name = path.display().to_string();
    match std::fs::File::open(path) {
        Ok(file) => parse_reader(std::io::BufReader::new(file), &name),
        Err(e) => Err(vec![Diagnostic {
            file: name,
            line: 0,
            message: format!("cannot read file: {e}"),
        }]),
    }
}

/// Parses a config from any buffered input; see [`parse_file`].
pub fn parse_reader(input: impl BufRead, file: &str) -> Result<Parsed, Vec<Diagnostic>> {
    let mut p = Parser::new(file);
    let mut lines = lines::Lines::new(input);
    loop {
        match lines.next_line() {
            Ok(Some((no, Ok(text)))) => p.line(no, text),
            Ok(Some((no, Err(why)))) => p.d.error(no, why),
            Ok(None) => break,
            Err((no, why)) => {
                p.d.error(no, why);
                p.stopped = true;
                break;
            }
        }
        if p.d.errors.len() >= MAX_ERRORS {
            let no = p.d.errors.iter().map(|e| e.line).max().unwrap_or_default();
            p.d.stop_message = Some(Diagnostic {
                file: file.to_string(),
                line: no,
                message: format!(
                    "too many errors ({MAX_ERRORS}); stopping here without reading the rest of the file"
                ),
            });
            p.stopped = true;
            break;
        }
    }
    p.finish()
}

/// Errors and warnings collected so far.
pub(super) struct Diags {
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
    zero_warning: bool,
}

impl Diags {
    fn diag(&self, line: usize, message: String) -> Diagnostic {
        Diagnostic {
            file: self.file.clone(),
            line,
            message: shorten(message),
        }
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

/// What kind of section the current line belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    /// Before the first section header.
    Outside,
    Global,
    /// `defaults`, `frontend`, `backend` or `listen`: see `Parser::cur`.
    Proxy,
    /// A section Shoal does not implement; its lines are skipped.
    Skipped,
}

/// Parser state across lines.
struct Parser {
    d: Diags,
    global: Global,
    section: Section,
    /// The `defaults` or proxy section being parsed.
    cur: Option<ProxyState>,
    /// The last complete `defaults` section: what the next proxy inherits.
    last_defaults: ProxyState,
    /// Named `defaults` sections, for `from NAME`.
    named_defaults: HashMap<String, ProxyState>,
    /// Complete proxies, in file order.
    done: Vec<ProxyState>,
    /// Indexes into `done` by proxy name, so that a config with many
    /// proxies costs linear time to check.
    done_by_name: HashMap<String, Vec<usize>>,
    /// Reading stopped before the end (too many errors, an I/O error): the
    /// whole-file checks are skipped, as their findings would be noise.
    stopped: bool,
}

impl Parser {
    fn new(file: &str) -> Self {
        Parser {
            d: Diags {
                file: file.to_string(),
                errors: Vec::new(),
                warnings: Vec::new(),
                warned: HashSet::new(),
                dropped_warnings: 0,
                stop_message: None,
                zero_warning: false,
            },
            global: Global::default(),
            section: Section::Outside,
            cur: None,
            last_defaults: ProxyState::empty_defaults(),
            named_defaults: HashMap::new(),
            done: Vec::new(),
            done_by_name: HashMap::new(),
            stopped: false,
        }
    }

    fn line(&mut self, no: usize, raw: &str) {
        let args = match lexer::split(raw) {
            Ok(words) => words,
            Err(e) => return self.d.error(no, e),
        };
        let Some(kw) = args.first() else { return };
        if keywords::SECTIONS.contains(&kw.as_str()) || gaps::find(gaps::SECTIONS, kw).is_some() {
            return self.start_section(no, &args);
        }
        match self.section {
            Section::Outside => {
                let hint = keywords::hint(kw, keywords::SECTIONS.iter().copied());
                self.d
                    .error(no, format!("'{kw}' is outside of any section{hint}"));
            }
            Section::Global => global::line(&mut self.d, &mut self.global, no, &args),
            Section::Proxy => {
                if let Some(st) = self.cur.as_mut() {
                    proxy::line(&mut self.d, st, no, &args);
                }
            }
            Section::Skipped => {}
        }
    }

    fn start_section(&mut self, no: usize, args: &[String]) {
        self.end_section();
        let kw = args.first().map(String::as_str).unwrap_or_default();
        match kw {
            "global" => {
                self.d.at_most(no, args, 1);
                self.section = Section::Global;
            }
            "defaults" => self.start_defaults(no, args),
            "frontend" | "backend" | "listen" => self.start_proxy(no, args),
            _ => {
                if let Some(gap) = gaps::find(gaps::SECTIONS, kw) {
                    self.d.gap(no, &format!("section '{kw}'"), gap);
                }
                self.section = Section::Skipped;
            }
        }
    }

    /// `defaults [NAME] [from OTHER]`: a new defaults section resets
    /// everything, unless it copies a named one.
    fn start_defaults(&mut self, no: usize, args: &[String]) {
        let (name, from) = match args.get(1).map(String::as_str) {
            Some("from") => (None, args.get(2)),
            Some(name) => match args.get(2).map(String::as_str) {
                Some("from") => (Some(name), args.get(3)),
                Some(other) => {
                    self.d.error(
                        no,
                        format!("unexpected argument '{other}' after 'defaults {name}'"),
                    );
                    (Some(name), None)
                }
                None => (Some(name), None),
            },
            None => (None, None),
        };
        if let Some(name) = name {
            check_name(&mut self.d, no, "defaults", name);
        }
        let mut st = match from {
            Some(base) => self
                .find_defaults(no, base)
                .unwrap_or_else(ProxyState::empty_defaults),
            None => ProxyState::empty_defaults(),
        };
        st = ProxyState::inherit(&st, Scope::Defaults, name.unwrap_or_default(), no);
        st.proxy.name = name.unwrap_or_default().to_string();
        self.cur = Some(st);
        self.section = Section::Proxy;
    }

    /// `frontend|backend|listen NAME [ADDR] [from DEFAULTS]`.
    fn start_proxy(&mut self, no: usize, args: &[String]) {
        let kind = match args.first().map(String::as_str) {
            Some("frontend") => ProxyKind::Frontend,
            Some("backend") => ProxyKind::Backend,
            _ => ProxyKind::Listen,
        };
        self.section = Section::Proxy;
        let name = self.d.need(no, args, 1, "a name").unwrap_or_default();
        check_name(&mut self.d, no, kind.keyword(), name);
        self.check_duplicate(no, kind, name);
        let mut rest = args.get(2..).unwrap_or_default();
        let mut base = None;
        if let Some(pos) = rest.iter().position(|w| w == "from") {
            base = match rest.get(pos + 1) {
                Some(d) => self.find_defaults(no, d),
                None => {
                    self.d
                        .error(no, "'from' expects the name of a defaults section");
                    None
                }
            };
            if let Some(extra) = rest.get(pos + 2) {
                self.d
                    .error(no, format!("unexpected argument '{extra}' after 'from'"));
            }
            rest = rest.get(..pos).unwrap_or_default();
        }
        let base = base.as_ref().unwrap_or(&self.last_defaults);
        let mut st = ProxyState::inherit(base, Scope::Proxy(kind), name, no);
        // Old syntax: `listen NAME ADDR:PORT` binds like a `bind` line.
        if let Some(addr) = rest.first() {
            let mut bind_args = vec!["bind".to_string(), addr.clone()];
            bind_args.extend(rest.get(1..).unwrap_or_default().iter().cloned());
            proxy::line(&mut self.d, &mut st, no, &bind_args);
        }
        self.cur = Some(st);
    }

    fn find_defaults(&mut self, no: usize, name: &str) -> Option<ProxyState> {
        let found = self.named_defaults.get(name).cloned();
        if found.is_none() {
            let hint = keywords::hint(name, self.named_defaults.keys().map(String::as_str));
            self.d.error(
                no,
                format!(
                    "defaults section '{name}' not found (it must be declared before use){hint}"
                ),
            );
        }
        found
    }

    /// Two proxies may share a name only if their sides do not overlap
    /// (a frontend and a backend may; two backends, or a listen, may not).
    fn check_duplicate(&mut self, no: usize, kind: ProxyKind, name: &str) {
        let same_name = self.done_by_name.get(name).into_iter().flatten();
        let clash = same_name.filter_map(|i| self.done.get(*i)).find(|o| {
            (kind.is_frontend() && o.proxy.kind.is_frontend())
                || (kind.is_backend() && o.proxy.kind.is_backend())
        });
        if let Some(o) = clash {
            let (ok, ol) = (o.proxy.kind.keyword(), o.lines.header);
            self.d.error(
                no,
                format!(
                    "{} '{name}' has the same name as {ok} '{name}' declared at line {ol}",
                    kind.keyword()
                ),
            );
        }
    }

    fn end_section(&mut self) {
        if let Some(mut st) = self.cur.take() {
            match st.scope {
                Scope::Defaults => {
                    if !st.proxy.name.is_empty() {
                        if let Some(old) = self.named_defaults.get(&st.proxy.name) {
                            let msg = format!(
                                "defaults section '{}' has the same name as the one declared at line {}; the later one is used",
                                st.proxy.name, old.lines.header
                            );
                            self.d.warn(st.lines.header, msg);
                        }
                        self.named_defaults
                            .insert(st.proxy.name.clone(), st.clone());
                    }
                    self.last_defaults = st;
                }
                Scope::Proxy(_) => {
                    validate::end_of_proxy(&mut self.d, &mut st);
                    self.done_by_name
                        .entry(st.proxy.name.clone())
                        .or_default()
                        .push(self.done.len());
                    self.done.push(st);
                }
            }
        }
        self.section = Section::Outside;
    }

    fn finish(mut self) -> Result<Parsed, Vec<Diagnostic>> {
        if !self.stopped {
            self.end_section();
            validate::whole_config(&mut self.d, &self.done);
        }
        let mut d = self.d;
        d.errors.sort_by_key(|e| e.line);
        d.warnings.sort_by_key(|w| w.line);
        let file = d.file.clone();
        let summary = |line: usize, message: String| Diagnostic {
            file: file.clone(),
            line,
            message,
        };
        if let Some(stop) = d.stop_message.take() {
            d.errors.push(stop);
        } else if d.is_full() {
            // The whole-file checks stop early once the list is full.
            let msg = format!("too many errors ({MAX_ERRORS}); the others are not shown");
            d.errors.push(summary(0, msg));
        }
        if !d.errors.is_empty() {
            return Err(d.errors);
        }
        if d.dropped_warnings > 0 {
            let msg = format!(
                "{} more warnings are not shown (at most {MAX_WARNINGS} are)",
                d.dropped_warnings
            );
            d.warnings.push(summary(0, msg));
        }
        if d.zero_warning && !d.warnings.is_empty() {
            // HAProxy: "Some warnings were found and 'zero-warning' is set. Aborting."
            let mut errors = d.warnings;
            let msg = "warnings were found and 'zero-warning' is set; refusing to start";
            errors.push(summary(0, msg.to_string()));
            return Err(errors);
        }
        let proxies = self.done.into_iter().map(|st| st.proxy).collect();
        Ok(Parsed {
            config: Config {
                global: self.global,
                proxies,
            },
            warnings: d.warnings,
        })
    }
}

/// HAProxy allows only letters, digits, `-`, `_`, `.` and `:` in names of
/// proxies, servers and ACLs.
pub(super) fn check_name(d: &mut Diags, line: usize, what: &str, name: &str) -> bool {
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.:".contains(*c)))
    {
        d.error(
            line,
            format!("character '{c}' is not permitted in {what} name '{name}'"),
        );
        return false;
    }
    true
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
