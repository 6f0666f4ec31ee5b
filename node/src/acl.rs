//! ACLs and `use_backend` routing, compiled once per routing snapshot.
//!
//! Semantics follow HAProxy: ACL definitions sharing a name are ORed; a
//! term is true when any value matches any occurrence of its sample; `!`
//! negates a term; adjacent terms are ANDed and `||` separates
//! alternatives; `unless` negates the whole condition. A sample that is
//! missing makes its term false (so `!term` true).
//!
//! Everything that can be prepared is prepared at compile time (regexes
//! built, `-i` values lowercased, addresses and ranges parsed), so that
//! evaluation allocates nothing.

use shoal_proto::config::{AclDef, AclRef, Condition, Proxy};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

mod matcher;
mod pattern;
mod predef;
#[cfg(test)]
mod tests;
mod value;

use matcher::Matcher;

/// What a condition can look at. HTTP requests give all; TCP connections
/// only `src` and `dst_port` (the others return `None` / nothing).
pub trait Samples {
    /// Request path, without the query string.
    fn path(&self) -> Option<&str>;
    /// Request URI as sent.
    fn url(&self) -> Option<&str>;
    /// Request method.
    fn method(&self) -> Option<&str>;
    /// Calls `f` on each value of header `name` (lowercase): every
    /// occurrence, and each comma-separated value, as HAProxy's `hdr()`.
    /// Stops as soon as `f` returns true, and returns true if it did. A
    /// header that is present but empty should still be passed (as `""`),
    /// so that `-m found` sees it.
    fn any_header(&self, name: &str, f: &mut dyn FnMut(&str) -> bool) -> bool;
    /// Client address.
    fn src(&self) -> Option<IpAddr>;
    /// Local port the client connected to.
    fn dst_port(&self) -> Option<u16>;
    /// `ssl_fc`: whether the client connection came through TLS. `None`
    /// where that is not known (its terms are false).
    fn ssl_fc(&self) -> Option<bool> {
        None
    }
    /// `ssl_fc_sni`: the server name a TLS client asked for, lowercase.
    fn ssl_fc_sni(&self) -> Option<&str> {
        None
    }
}

/// Why a frontend's ACLs or rules could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum AclError {
    /// A condition names an ACL that is neither defined nor predefined.
    #[error("unknown ACL '{0}'")]
    UnknownAcl(String),
    /// A predefined HAProxy ACL that Shoal cannot evaluate.
    #[error("predefined ACL '{0}' is not supported")]
    UnsupportedPredefined(String),
    /// A `-m reg` value is not a valid regular expression.
    #[error("{acl}: invalid regular expression '{value}': {source}")]
    Regex {
        acl: String,
        value: String,
        #[source]
        source: Box<regex::Error>,
    },
    /// A value cannot be used with the ACL's match method.
    #[error("{acl}: '{value}' {why}")]
    BadValue {
        acl: String,
        value: String,
        why: &'static str,
    },
    /// The match method cannot apply to the ACL's sample.
    #[error("{acl}: '-m {kind}' cannot match {sample}")]
    Incompatible {
        acl: String,
        kind: &'static str,
        sample: &'static str,
    },
    /// A `use_backend` or `default_backend` names a missing backend.
    #[error("{keyword}: no backend named '{name}'")]
    UnknownBackend { keyword: &'static str, name: String },
}

/// A compiled `if|unless` condition.
#[derive(Debug, Clone)]
pub struct CompiledCond {
    unless: bool,
    /// OR of AND-groups.
    any_of: Box<[Box<[Term]>]>,
}

#[derive(Debug, Clone)]
struct Term {
    negated: bool,
    acl: CompiledAcl,
}

/// One ACL name: all its definitions, ORed.
#[derive(Debug, Clone)]
enum CompiledAcl {
    /// `TRUE` / `FALSE`.
    Const(bool),
    /// Shared between every term that names the same ACL.
    Any(Arc<[Matcher]>),
}

impl CompiledAcl {
    fn eval(&self, s: &dyn Samples) -> bool {
        match self {
            CompiledAcl::Const(v) => *v,
            CompiledAcl::Any(matchers) => matchers.iter().any(|m| m.eval(s)),
        }
    }
}

impl CompiledCond {
    /// Compiles `cond` against the proxy's ACL definitions `acls`.
    pub fn compile(cond: &Condition, acls: &[AclDef]) -> Result<CompiledCond, AclError> {
        Compiler::new(acls).cond(cond)
    }

    /// True when the condition holds for this request or connection. An
    /// empty condition is false (so `unless` with no terms is true), as in
    /// HAProxy's evaluation.
    pub fn eval(&self, s: &dyn Samples) -> bool {
        let any = self
            .any_of
            .iter()
            .any(|group| group.iter().all(|t| t.acl.eval(s) != t.negated));
        any != self.unless
    }
}

/// Compiles conditions, building each named ACL once however often it is
/// used.
struct Compiler<'a> {
    acls: &'a [AclDef],
    named: HashMap<&'a str, CompiledAcl>,
}

impl<'a> Compiler<'a> {
    fn new(acls: &'a [AclDef]) -> Self {
        Compiler {
            acls,
            named: HashMap::new(),
        }
    }

    fn cond(&mut self, cond: &'a Condition) -> Result<CompiledCond, AclError> {
        let mut any_of = Vec::with_capacity(cond.any_of.len());
        for group in &cond.any_of {
            let mut terms = Vec::with_capacity(group.len());
            for term in group {
                let acl = match &term.acl {
                    AclRef::Named(name) => self.named(name)?,
                    AclRef::Inline(def) => CompiledAcl::Any(Arc::from([Matcher::compile(def)?])),
                };
                terms.push(Term {
                    negated: term.negated,
                    acl,
                });
            }
            any_of.push(terms.into_boxed_slice());
        }
        Ok(CompiledCond {
            unless: cond.unless,
            any_of: any_of.into_boxed_slice(),
        })
    }

    /// The proxy's definitions named `name`, or else HAProxy's predefined
    /// ACL of that name (user definitions win, as in HAProxy).
    fn named(&mut self, name: &'a str) -> Result<CompiledAcl, AclError> {
        if let Some(acl) = self.named.get(name) {
            return Ok(acl.clone());
        }
        let defs: Vec<&AclDef> = self.acls.iter().filter(|d| d.name == name).collect();
        let acl = if defs.is_empty() {
            predef::compile(name)?
        } else {
            let matchers = defs
                .into_iter()
                .map(Matcher::compile)
                .collect::<Result<Vec<_>, _>>()?;
            CompiledAcl::Any(matchers.into())
        };
        self.named.insert(name, acl.clone());
        Ok(acl)
    }
}

/// The routing rules of one frontend: `use_backend` rules in order, then
/// `default_backend`.
#[derive(Debug, Clone)]
pub struct Router<B: Clone> {
    rules: Box<[(CompiledCond, B)]>,
    default: Option<B>,
}

impl<B: Clone> Router<B> {
    /// Compiles `proxy`'s rules. `resolve` maps a backend name to the
    /// caller's handle (e.g. an index); a name it does not know is an error.
    pub fn compile(
        proxy: &Proxy,
        resolve: &dyn Fn(&str) -> Option<B>,
    ) -> Result<Router<B>, AclError> {
        let mut compiler = Compiler::new(&proxy.acls);
        let mut rules = Vec::with_capacity(proxy.use_backends.len());
        for rule in &proxy.use_backends {
            let cond = compiler.cond(&rule.cond)?;
            let backend = resolve(&rule.backend).ok_or_else(|| AclError::UnknownBackend {
                keyword: "use_backend",
                name: rule.backend.clone(),
            })?;
            rules.push((cond, backend));
        }
        // A `listen` section without `default_backend` serves with its own
        // servers, as in HAProxy.
        let own = (proxy.kind == shoal_proto::config::ProxyKind::Listen).then_some(&proxy.name);
        let default = match proxy.default_backend.as_ref().or(own) {
            None => None,
            Some(name) => Some(resolve(name).ok_or_else(|| AclError::UnknownBackend {
                keyword: "default_backend",
                name: name.clone(),
            })?),
        };
        Ok(Router {
            rules: rules.into_boxed_slice(),
            default,
        })
    }

    /// The backend of the first rule whose condition holds, else the
    /// default backend, else `None`.
    pub fn route(&self, s: &dyn Samples) -> Option<B> {
        self.rules
            .iter()
            .find(|(cond, _)| cond.eval(s))
            .map(|(_, b)| b)
            .or(self.default.as_ref())
            .cloned()
    }
}
