//! The HTML stats page of frontends with `stats enable`. (Being written.)

use crate::http::ProxyBody;
use crate::runtime::{FrontendRt, Runtime};
use hyper::body::Incoming;
use hyper::{Request, Response};
use std::net::SocketAddr;
use std::sync::Arc;

/// Answer a request under the frontend's `stats uri`.
pub async fn serve(
    req: Request<Incoming>,
    runtime: &Arc<Runtime>,
    frontend: &FrontendRt,
    peer: SocketAddr,
) -> Response<ProxyBody> {
    let _ = (req, runtime, frontend, peer);
    let mut resp = Response::new(ProxyBody::empty());
    *resp.status_mut() = hyper::StatusCode::NOT_IMPLEMENTED;
    resp
}
