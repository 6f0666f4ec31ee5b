//! Request extractors that answer their failures in the API's own shape
//! (`{"error": ...}`), and the one bounded body reader.

use super::reply::Failure;
use super::{BODY_TIMEOUT, MAX_BODY};
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_LENGTH;
use axum::http::request::Parts;
use axum::http::StatusCode;
use http_body_util::{BodyExt, Limited};
use serde::de::DeserializeOwned;

/// Path parameters, decoded (`%2F` and the like), as `T`.
pub struct Params<T>(pub T);

impl<T, S> FromRequestParts<S> for Params<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Failure> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Params(p.0))
            .map_err(|e| Failure::bad(e.body_text()))
    }
}

/// A JSON request body, read within [`BODY_TIMEOUT`] and [`MAX_BODY`].
/// The `Content-Type` is not checked: `curl -d` sends a form type, and
/// the body is JSON whatever it says.
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Failure;

    async fn from_request(req: Request, _: &S) -> Result<Self, Failure> {
        let bytes = read_body(req, MAX_BODY).await?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| Failure::bad(format!("invalid JSON body: {e}")))
    }
}

/// Read a whole body of at most `limit` bytes within [`BODY_TIMEOUT`]:
/// 413 when it is (or says it will be) larger, 408 when it is too slow.
/// Both answers close the connection, since the rest of the body is
/// still on its way.
pub async fn read_body(req: Request, limit: usize) -> Result<Bytes, Failure> {
    let too_large = || {
        Failure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {limit} bytes"),
        )
        .closing()
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let body: Body = req.into_body();
    let read = Limited::new(body, limit).collect();
    match tokio::time::timeout(BODY_TIMEOUT, read).await {
        Ok(Ok(body)) => Ok(body.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err(Failure::bad(format!("cannot read request body: {e}")).closing()),
        Err(_) => Err(Failure::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "request body not received within {} s",
                BODY_TIMEOUT.as_secs()
            ),
        )
        .closing()),
    }
}
