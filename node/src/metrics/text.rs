//! A writer for Prometheus' text exposition format (version 0.0.4).
//!
//! The format is small enough that a writer is shorter than adapting a
//! client library's registry to counters that already exist: every family
//! is a `# HELP` and a `# TYPE` line followed by its samples, contiguous.

use std::fmt::{Display, Write as _};

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Accumulates one exposition.
#[derive(Debug, Default)]
pub struct Writer {
    out: String,
}

impl Writer {
    /// Start a family: its `# HELP` and `# TYPE` lines.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        // Writing to a String cannot fail.
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.word());
    }

    /// One sample line of the current family.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (key, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(key);
                self.out.push_str("=\"");
                escape_label_into(&mut self.out, val);
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// The finished text.
    pub fn finish(self) -> String {
        self.out
    }
}

/// Label values escape backslash, double quote and newline.
fn escape_label_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Help text escapes backslash and newline.
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_families_and_escapes_labels() {
        let mut w = Writer::default();
        w.family("x_total", Kind::Counter, "Things.");
        w.sample("x_total", &[("proxy", "a\"b\\c\nd"), ("code", "2xx")], 7u64);
        w.sample("x_total", &[], 0.25f64);
        assert_eq!(
            w.finish(),
            "# HELP x_total Things.\n# TYPE x_total counter\n\
             x_total{proxy=\"a\\\"b\\\\c\\nd\",code=\"2xx\"} 7\nx_total 0.25\n"
        );
    }
}
