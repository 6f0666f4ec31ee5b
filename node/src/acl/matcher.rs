//! One ACL definition: a sample fetch plus a compiled pattern, and the type
//! conversions HAProxy applies between them (an address or port matched as
//! text, a header matched as an address or an integer).

use super::pattern::Pattern;
use super::{AclError, Samples};
use shoal_proto::config::{AclDef, MatchKind, Sample};
use std::fmt::{self, Write as _};

/// A compiled `acl NAME FETCH [-i] [-m KIND] VALUES...` line.
#[derive(Debug)]
pub(super) struct Matcher {
    fetch: Fetch,
    pattern: Pattern,
}

#[derive(Debug)]
enum Fetch {
    Path,
    Url,
    Method,
    Hdr(Box<str>),
    Src,
    DstPort,
    SslFc,
    SslFcSni,
}

impl Matcher {
    pub(super) fn compile(def: &AclDef) -> Result<Matcher, AclError> {
        let fetch = match &def.sample {
            Sample::Path => Fetch::Path,
            Sample::Url => Fetch::Url,
            Sample::Method => Fetch::Method,
            // The model keeps header names lowercase; lowercasing again is
            // cheap insurance since `any_header` expects it.
            Sample::Hdr(name) => Fetch::Hdr(name.to_ascii_lowercase().into()),
            Sample::Src => Fetch::Src,
            Sample::DstPort => Fetch::DstPort,
            Sample::SslFc => Fetch::SslFc,
            Sample::SslFcSni => Fetch::SslFcSni,
        };
        // HAProxy has no address-to-integer or integer-to-address cast, so
        // these combinations are rejected when the config is loaded.
        let incompatible = matches!(
            (&fetch, def.kind),
            (Fetch::Src, MatchKind::Int) | (Fetch::DstPort, MatchKind::Ip)
        );
        if incompatible {
            return Err(AclError::Incompatible {
                acl: label(def),
                kind: def.kind.keyword(),
                sample: sample_name(&def.sample),
            });
        }
        let pattern = Pattern::compile(def.kind, def.ignore_case, &def.values, &|| label(def))?;
        Ok(Matcher { fetch, pattern })
    }

    /// True if any value matches any occurrence of the sample; false when
    /// the sample is missing.
    pub(super) fn eval(&self, s: &dyn Samples) -> bool {
        let p = &self.pattern;
        match &self.fetch {
            Fetch::Path => s.path().is_some_and(|v| p.matches_str(v)),
            Fetch::Url => s.url().is_some_and(|v| p.matches_str(v)),
            Fetch::Method => s.method().is_some_and(|v| p.matches_str(v)),
            Fetch::Hdr(name) => s.any_header(name, &mut |v| p.matches_str(v)),
            Fetch::Src => s.src().is_some_and(|ip| match p {
                Pattern::Ip(_) | Pattern::Found => p.matches_ip(ip),
                _ => with_text(format_args!("{ip}"), |t| p.matches_str(t)),
            }),
            Fetch::DstPort => s.dst_port().is_some_and(|port| match p {
                Pattern::Int(_) | Pattern::Found => p.matches_int(i64::from(port)),
                _ => with_text(format_args!("{port}"), |t| p.matches_str(t)),
            }),
            Fetch::SslFc => s.ssl_fc().is_some_and(|on| p.matches_bool(on)),
            Fetch::SslFcSni => s.ssl_fc_sni().is_some_and(|v| p.matches_str(v)),
        }
    }
}

/// How errors name an ACL: by name, or by its content when anonymous.
fn label(def: &AclDef) -> String {
    if def.name.is_empty() {
        format!(
            "anonymous ACL {{ {} -m {} }}",
            sample_name(&def.sample),
            def.kind.keyword()
        )
    } else {
        format!("ACL '{}'", def.name)
    }
}

fn sample_name(sample: &Sample) -> &'static str {
    match sample {
        Sample::Path => "path",
        Sample::Url => "url",
        Sample::Hdr(_) => "hdr()",
        Sample::Method => "method",
        Sample::Src => "src",
        Sample::DstPort => "dst_port",
        Sample::SslFc => "ssl_fc",
        Sample::SslFcSni => "ssl_fc_sni",
    }
}

/// Formats a small value (an address or a port) on the stack and hands the
/// text to `f`, so that matching an address as text allocates nothing.
fn with_text(args: fmt::Arguments<'_>, f: impl FnOnce(&str) -> bool) -> bool {
    let mut buf = StackText {
        buf: [0; 64],
        len: 0,
    };
    if buf.write_fmt(args).is_err() {
        return false;
    }
    std::str::from_utf8(&buf.buf[..buf.len]).is_ok_and(f)
}

/// A fixed buffer that is large enough for any IPv6 address (45 bytes).
struct StackText {
    buf: [u8; 64],
    len: usize,
}

impl fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
