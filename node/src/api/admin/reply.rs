//! Building admin API responses: JSON bodies and `{"error": "..."}`.

use axum::body::Body;
use axum::http::header::{HeaderValue, CONNECTION, CONTENT_TYPE};
use axum::http::{Response, StatusCode};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

/// Response type of every admin route.
pub type Reply = Response<Body>;

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person to read.
    pub error: String,
}

/// A response with a body and content type.
pub fn body(status: StatusCode, content_type: &'static str, bytes: impl Into<Body>) -> Reply {
    let mut resp = Response::new(bytes.into());
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// `value` as pretty-printed JSON with a final newline (people read these
/// with curl).
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
pub struct Failure {
    pub status: StatusCode,
    pub message: String,
    /// Close the connection after answering: the request body was not
    /// read to its end, so the next bytes on the connection are not a
    /// request head.
    pub close: bool,
}

impl Failure {
    /// A failure with `status`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
            close: false,
        }
    }
    /// 400 Bad Request.
    pub fn bad(message: impl Into<String>) -> Failure {
        Failure::new(StatusCode::BAD_REQUEST, message)
    }
    /// 404 Not Found.
    pub fn not_found(message: impl Into<String>) -> Failure {
        Failure::new(StatusCode::NOT_FOUND, message)
    }
    /// The same failure, answered with `Connection: close`.
    pub fn closing(self) -> Failure {
        Failure {
            close: true,
            ..self
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Reply {
        let mut resp = error(self.status, &self.message);
        if self.close {
            resp.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

/// How a refused change is answered: the one place that maps the state
/// machine's refusals to HTTP statuses (404 for a name that does not
/// exist, else 400).
impl From<shoal_proto::state::Refusal> for Failure {
    fn from(e: shoal_proto::state::Refusal) -> Failure {
        if e.is_not_found() {
            Failure::not_found(e.to_string())
        } else {
            Failure::bad(e.to_string())
        }
    }
}

/// A change that did not take effect: refused (as above), refused when
/// applied from the log (400), or not committed because the cluster could
/// not (503: quorum lost, no leader).
impl From<crate::runtime::ChangeError> for Failure {
    fn from(e: crate::runtime::ChangeError) -> Failure {
        use crate::runtime::ChangeError;
        match e {
            ChangeError::Refused(r) => r.into(),
            ChangeError::RefusedInLog(why) => Failure::bad(why),
            ChangeError::Cluster(why) => Failure::new(StatusCode::SERVICE_UNAVAILABLE, why),
            ChangeError::CommittedNotApplied(why) => Failure::new(StatusCode::GATEWAY_TIMEOUT, why),
        }
    }
}
