//! The haproxy.cfg dialect: model, parser, printer and diagnostics.
//!
//! `parse(text, file)` (or `parse_file(path)`, which reads with bounded
//! memory) returns the resolved [`Config`] plus warnings, or every
//! error found, each as `FILE:LINE: message` (what `shoal check` prints).
//! `"${NAME}"` in the text expands from the environment at parse time
//! (`parse_with_env` takes the lookup), so one text loads with each node's
//! own values.
//! `print(&config)` writes the model back out; `parse(print(c)) == c`.

pub mod model;
mod parse;
mod print;
mod sni;

pub use model::*;
pub use parse::{
    is_data_type, parse, parse_file, parse_reader, parse_with_env, EnvLookup, MAX_CONFIG_BYTES,
    MAX_ERRORS, MAX_LINE_BYTES, TLS12_SUITES, TLS13_SUITES, TLS_GROUPS,
};
pub use print::print;
pub use sni::{Converter, SniExpr, SniFetch};

use std::fmt;

/// An error or warning about one line of a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    /// 1-based line number; 0 when the problem concerns the file as a whole.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// A successfully parsed config and the warnings met on the way.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
}
