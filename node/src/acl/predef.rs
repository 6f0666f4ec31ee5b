//! HAProxy's predefined ACLs (`TRUE`, `LOCALHOST`, `METH_GET`, ...), used
//! when a condition names one that the proxy does not define itself.

use super::matcher::Matcher;
use super::{AclError, CompiledAcl};
use shoal_proto::config::{AclDef, MatchKind, Sample};
use std::sync::Arc;

/// The predefined ACL `name`, or an error saying it is unknown or not
/// supported.
pub(super) fn compile(name: &str) -> Result<CompiledAcl, AclError> {
    use MatchKind as K;
    use Sample as S;
    let (sample, kind, values): (Sample, MatchKind, &[&str]) = match name {
        "TRUE" => return Ok(CompiledAcl::Const(true)),
        "FALSE" => return Ok(CompiledAcl::Const(false)),
        // `req.proto_http`: the request was parsed as HTTP.
        "HTTP" => (S::Method, K::Found, &[]),
        "HTTP_CONTENT" => (S::Hdr("content-length".into()), K::Int, &["gt", "0"]),
        "HTTP_URL_ABS" => (S::Url, K::Reg, &["^[^/:]*://"]),
        "HTTP_URL_SLASH" => (S::Url, K::Beg, &["/"]),
        "HTTP_URL_STAR" => (S::Url, K::Str, &["*"]),
        "LOCALHOST" => (S::Src, K::Ip, &["127.0.0.1/8", "::1"]),
        "METH_CONNECT" => (S::Method, K::Str, &["CONNECT"]),
        "METH_DELETE" => (S::Method, K::Str, &["DELETE"]),
        // As in HAProxy, METH_GET also covers HEAD.
        "METH_GET" => (S::Method, K::Str, &["GET", "HEAD"]),
        "METH_HEAD" => (S::Method, K::Str, &["HEAD"]),
        "METH_OPTIONS" => (S::Method, K::Str, &["OPTIONS"]),
        "METH_POST" => (S::Method, K::Str, &["POST"]),
        "METH_PUT" => (S::Method, K::Str, &["PUT"]),
        "METH_TRACE" => (S::Method, K::Str, &["TRACE"]),
        "HTTP_1.0" | "HTTP_1.1" | "HTTP_2.0" | "REQ_CONTENT" | "WAIT_END" | "RDP_COOKIE" => {
            return Err(AclError::UnsupportedPredefined(name.to_owned()))
        }
        _ => return Err(AclError::UnknownAcl(name.to_owned())),
    };
    let def = AclDef {
        name: name.to_owned(),
        sample,
        kind,
        ignore_case: false,
        values: values.iter().map(|v| (*v).to_owned()).collect(),
    };
    Ok(CompiledAcl::Any(Arc::from([Matcher::compile(&def)?])))
}
