//! Parser for the haproxy.cfg dialect.
//!
//! The file is read line by line: [`lexer`] splits a line into words, the
//! first word picks a section or a keyword, and the keyword's handler maps it
//! onto the model. Errors do not stop the parse: every line is looked at and
//! every error is returned. Checks that need the whole file (backend names,
//! modes) run at the end, in [`validate`].
//!
//! Policy, following DESIGN.md: a word HAProxy does not know is an error; a
//! HAProxy keyword Shoal does not implement is a warning, once per file, and
//! is otherwise ignored. Where ignoring would change where traffic goes (an
//! ACL fetch, a server address form Shoal cannot reach), it is an error.

mod acl;
mod addr;
mod backend;
mod duration;
mod global;
mod keywords;
mod lexer;
mod options;
mod proxy;
mod server;
mod state;
mod stick;
#[cfg(test)]
mod tests;
mod timeout;
mod validate;

use super::{Config, Diagnostic, Global, Parsed, ProxyKind};
use state::{ProxyState, Scope};
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

/// Parse a whole file. `file` names it in diagnostics.
///
/// Returns the config and its warnings, or every error found (sorted by
/// line). Never panics, whatever the input.
pub fn parse(text: &str, file: &str) -> Result<Parsed, Vec<Diagnostic>> {
    let mut p = Parser::new(file);
    // Editors on some systems start UTF-8 files with a byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (index, raw) in text.lines().enumerate() {
        p.line(index + 1, raw);
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
}

impl Diags {
    fn diag(&self, line: usize, message: String) -> Diagnostic {
        Diagnostic {
            file: self.file.clone(),
            line,
            message,
        }
    }
    /// Records an error.
    pub fn error(&mut self, line: usize, message: impl Into<String>) {
        let d = self.diag(line, message.into());
        self.errors.push(d);
    }
    /// Records a warning.
    pub fn warn(&mut self, line: usize, message: impl Into<String>) {
        let d = self.diag(line, message.into());
        self.warnings.push(d);
    }
    /// Records a warning unless one with the same `key` was already given.
    pub fn warn_once(&mut self, key: &str, line: usize, message: impl Into<String>) {
        if self.warned.insert(key.to_string()) {
            self.warn(line, message);
        }
    }
    /// The standard warning for a HAProxy keyword Shoal does not implement.
    pub fn unimplemented(&mut self, line: usize, what: &str) {
        self.warn_once(
            what,
            line,
            format!("'{what}' is not implemented by Shoal yet; ignored"),
        );
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
    /// Parses a number argument of keyword `label`.
    pub fn number<T: FromStr>(&mut self, line: usize, label: &str, word: &str) -> Option<T> {
        let value = word.parse().ok();
        if value.is_none() {
            self.error(line, format!("'{label}' expects a number, got '{word}'"));
        }
        value
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
}

impl Parser {
    fn new(file: &str) -> Self {
        Parser {
            d: Diags {
                file: file.to_string(),
                errors: Vec::new(),
                warnings: Vec::new(),
                warned: HashSet::new(),
            },
            global: Global::default(),
            section: Section::Outside,
            cur: None,
            last_defaults: ProxyState::empty_defaults(),
            named_defaults: HashMap::new(),
            done: Vec::new(),
        }
    }

    fn line(&mut self, no: usize, raw: &str) {
        let words = match lexer::split(raw) {
            Ok(words) => words,
            Err(e) => return self.d.error(no, e),
        };
        if let Some(var) = &words.env_var {
            self.d.warn_once(
                "environment variables",
                no,
                format!("environment variables are not expanded by Shoal yet; '${var}' is kept as written"),
            );
        }
        let args = words.words;
        let Some(kw) = args.first() else { return };
        if keywords::SECTIONS.contains(&kw.as_str())
            || keywords::SKIPPED_SECTIONS.contains(&kw.as_str())
        {
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
                self.d.warn(
                    no,
                    format!("section '{kw}' is not implemented by Shoal yet; ignored"),
                );
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
        let clash = self.done.iter().find(|o| {
            o.proxy.name == name
                && ((kind.is_frontend() && o.proxy.kind.is_frontend())
                    || (kind.is_backend() && o.proxy.kind.is_backend()))
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
                    self.done.push(st);
                }
            }
        }
        self.section = Section::Outside;
    }

    fn finish(mut self) -> Result<Parsed, Vec<Diagnostic>> {
        self.end_section();
        validate::whole_config(&mut self.d, &self.done);
        let mut d = self.d;
        d.errors.sort_by_key(|e| e.line);
        d.warnings.sort_by_key(|w| w.line);
        if !d.errors.is_empty() {
            return Err(d.errors);
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
