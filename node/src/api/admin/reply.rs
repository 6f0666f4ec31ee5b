//! Building admin API responses: JSON bodies and `{"error": "..."}`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde::Serialize;

/// Response type of every admin route.
pub type Reply = Response<Full<Bytes>>;

/// A response with a body and content type.
pub fn body(status: StatusCode, content_type: &'static str, bytes: impl Into<Bytes>) -> Reply {
    let mut resp = Response::new(Full::new(bytes.into()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// `value` as JSON.
pub fn json(status: StatusCode, value: &impl Serialize) -> Reply {
    match serde_json::to_vec_pretty(value) {
        Ok(mut bytes) => {
            bytes.push(b'\n');
            body(status, "application/json", bytes)
        }
        // Only a non-string map key could fail; views have none.
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// `{"error": message}` with `status`.
pub fn error(status: StatusCode, message: &str) -> Reply {
    let text = serde_json::json!({ "error": message }).to_string() + "\n";
    body(status, "application/json", text)
}

/// An API failure: a status and a message for `{"error": ...}`.
#[derive(Debug)]
pub struct Failure(pub StatusCode, pub String);

impl Failure {
    /// 400 Bad Request.
    pub fn bad(message: impl Into<String>) -> Failure {
        Failure(StatusCode::BAD_REQUEST, message.into())
    }
    /// 404 Not Found.
    pub fn not_found(message: impl Into<String>) -> Failure {
        Failure(StatusCode::NOT_FOUND, message.into())
    }
    /// The response for this failure.
    pub fn reply(&self) -> Reply {
        error(self.0, &self.1)
    }
}

impl From<shoal_proto::state::Refusal> for Failure {
    fn from(e: shoal_proto::state::Refusal) -> Failure {
        if e.is_not_found() {
            Failure::not_found(e.to_string())
        } else {
            Failure::bad(e.to_string())
        }
    }
}
