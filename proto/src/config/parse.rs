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
mod diags;
mod duration;
mod gaps;
mod global;
mod http_rules;
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
mod tls;
mod validate;

pub use diags::MAX_ERRORS;
pub(crate) use http_rules::print as print_http_request;
pub use lexer::EnvLookup;
pub use lines::{MAX_CONFIG_BYTES, MAX_LINE_BYTES};
pub use stick::is_data_type;
pub(crate) use tls::{print_bind as print_bind_tls, print_defaults as print_ssl_defaults};
pub use tls::{GROUPS as TLS_GROUPS, TLS12_SUITES, TLS13_SUITES};

use super::{Config, Diagnostic, Global, Parsed, ProxyKind};
use diags::Diags;
use state::{ProxyState, Scope};
use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

/// Parse a whole file held in memory. `file` names it in diagnostics.
///
/// Returns the config and its warnings, or the errors found (sorted by
/// line, at most [`MAX_ERRORS`] and a last one saying more were left out).
/// Never panics, whatever the input. `"${NAME}"` reads this process's
/// environment; see [`parse_with_env`].
pub fn parse(text: &str, file: &str) -> Result<Parsed, Vec<Diagnostic>> {
    parse_with_env(text, file, &process_env)
}

/// [`parse`], with environment variables looked up in `env` rather than in
/// this process's environment (a test passes a map).
pub fn parse_with_env(
    text: &str,
    file: &str,
    env: EnvLookup<'_>,
) -> Result<Parsed, Vec<Diagnostic>> {
    parse_input(text.as_bytes(), file, env)
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
    parse_input(input, file, &process_env)
}

/// This process's environment variable `name`. A value that is not UTF-8
/// counts as unset, so that the line is refused rather than changed.
fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// What every entry point above calls.
fn parse_input(
    input: impl BufRead,
    file: &str,
    env: EnvLookup<'_>,
) -> Result<Parsed, Vec<Diagnostic>> {
    let mut p = Parser::new(file, env);
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
        if p.d.is_full() {
            p.d.stop_reading();
            p.stopped = true;
            break;
        }
    }
    p.finish()
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
struct Parser<'e> {
    d: Diags,
    /// Where `"${NAME}"` looks variables up.
    env: EnvLookup<'e>,
    /// The file name, for `${.FILE}`.
    file: String,
    /// The current section's name, or its keyword: `${.SECTION}`.
    section_name: String,
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

impl<'e> Parser<'e> {
    fn new(file: &str, env: EnvLookup<'e>) -> Self {
        Parser {
            d: Diags::new(file),
            env,
            file: file.to_string(),
            section_name: String::new(),
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
        let vars = lexer::Vars {
            env: self.env,
            file: &self.file,
            line: no,
            section: &self.section_name,
        };
        let args = match lexer::split(raw, &vars) {
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
                    proxy::line(&mut self.d, st, no, &args, &self.global.ssl_bind);
                }
            }
            Section::Skipped => {}
        }
    }

    fn start_section(&mut self, no: usize, args: &[String]) {
        self.end_section();
        let kw = args.first().map(String::as_str).unwrap_or_default();
        // As HAProxy: the second word if any (even `from`), else the keyword.
        self.section_name = args
            .get(1)
            .filter(|w| !w.is_empty())
            .map_or(kw, String::as_str)
            .to_string();
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
            proxy::line(&mut self.d, &mut st, no, &bind_args, &self.global.ssl_bind);
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
        let warnings = self.d.finish()?;
        let proxies = self.done.into_iter().map(|st| st.proxy).collect();
        Ok(Parsed {
            config: Config {
                global: self.global,
                proxies,
            },
            warnings,
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
