//! Bearer-token authentication, in front of routing: without the token
//! an unknown path is 401 like a known one, so nothing is revealed.

use super::reply::{error, Reply};
use super::Api;
use axum::extract::{Request, State};
use axum::http::header::{HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::StatusCode;
use axum::middleware::Next;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Paths served without a token, whatever the method: probes, scrapers
/// and the API's own description.
pub const PUBLIC: [&str; 4] = ["/live", "/ready", "/metrics", "/openapi.json"];

/// Middleware: pass public paths and requests carrying the token, answer
/// 401 with `WWW-Authenticate: Bearer` otherwise.
pub async fn require_token(State(api): State<Arc<Api>>, req: Request, next: Next) -> Reply {
    if PUBLIC.contains(&req.uri().path()) || authorized(&req, api.token.as_deref()) {
        return next.run(req).await;
    }
    let mut resp = error(StatusCode::UNAUTHORIZED, "missing or invalid bearer token");
    resp.headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

/// True when no token is configured, or the request carries it as
/// `Authorization: Bearer TOKEN` (compared in constant time).
fn authorized(req: &Request, token: Option<&str>) -> bool {
    let Some(token) = token else {
        return true;
    };
    let Some(value) = req.headers().get(AUTHORIZATION) else {
        return false;
    };
    let Some((scheme, given)) = value.as_bytes().split_first_chunk::<7>() else {
        return false;
    };
    // `ct_eq` on slices of different lengths answers at once: the token's
    // length is not secret, its bytes are.
    scheme.eq_ignore_ascii_case(b"Bearer ")
        && bool::from(given.trim_ascii().ct_eq(token.as_bytes()))
}
