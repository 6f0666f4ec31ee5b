//! `/v1/certificates`: the cluster's TLS certificates (`shoal cert ...`).
//! An upload is checked here (PEM, chain, one key that fits the leaf)
//! and becomes one `AddCertificate` command through the log, so every
//! node serves it from its next handshake. Answers show a certificate's
//! names, validity and fingerprint: never its key, nor its chain.

use super::cluster::cluster;
use super::extract::{read_body, Params};
use super::openapi::{Denied, Missing};
use super::reply::{json, Failure, Reply};
use super::{Api, MAX_BODY};
use axum::extract::{RawQuery, Request, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use shoal_proto::command::Command;
use shoal_proto::state::Certificate;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// Days left under which a certificate is flagged as expiring soon.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// One certificate, as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct CertificateView {
    name: String,
    /// The DNS names it serves (SANs and subject CN).
    names: Vec<String>,
    /// Validity of the leaf, seconds since the Unix epoch and as UTC text.
    not_before: i64,
    not_after: i64,
    #[schema(example = "2027-03-01T12:00:00Z")]
    not_after_utc: String,
    /// Whole days until `not_after` (negative: expired that long ago).
    days_left: i64,
    /// `ok`, `expiring` (under 30 days left) or `expired`.
    expiry: String,
    /// SHA-256 of the leaf certificate (DER), lowercase hex.
    sha256_fingerprint: String,
    /// When it was added, milliseconds since the Unix epoch.
    added_at: u64,
}

/// A stored certificate as shown at `now` (seconds since the epoch).
pub fn view(name: &str, cert: &Certificate, now: i64) -> CertificateView {
    let left = cert.not_after.saturating_sub(now);
    let expiry = if left <= 0 {
        "expired"
    } else if left < EXPIRY_WARNING_DAYS * 86_400 {
        "expiring"
    } else {
        "ok"
    };
    CertificateView {
        name: name.to_string(),
        names: cert.names.clone(),
        not_before: cert.not_before,
        not_after: cert.not_after,
        not_after_utc: crate::log::utc_text(cert.not_after),
        days_left: left.div_euclid(86_400),
        expiry: expiry.into(),
        sha256_fingerprint: cert.fingerprint.clone(),
        added_at: cert.added_at,
    }
}

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> i64 {
    i64::try_from(crate::runtime::now_ms() / 1000).unwrap_or(i64::MAX)
}

/// Every certificate of the cluster, by name.
pub fn views(api: &Api) -> Vec<CertificateView> {
    let now = now_secs();
    api.runtime.read(|s| {
        s.certificates()
            .iter()
            .map(|(name, cert)| view(name, cert, now))
            .collect()
    })
}

/// `?name=NAME` of `POST /v1/certificates`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AddQuery {
    /// The certificate's name in the store (letters, digits, `.`, `_`, `-`).
    #[allow(dead_code)]
    name: String,
}

/// `{name}` in a path.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CertPath {
    /// Certificate name.
    name: String,
}

/// What adding answers.
#[derive(Serialize, ToSchema)]
pub struct Added {
    /// `added`, or `replaced` when the name was taken.
    status: String,
    certificate: CertificateView,
}

/// What removing answers.
#[derive(Serialize, ToSchema)]
pub struct Removed {
    status: String,
}

/// The cluster's certificates: names, validity, fingerprint (never keys).
#[utoipa::path(get, path = "/v1/certificates", tag = "certificates",
    responses((status = 200, description = "Every certificate", body = Vec<CertificateView>),
        Denied))]
pub async fn list(State(api): State<Arc<Api>>) -> Reply {
    json(StatusCode::OK, &views(&api))
}

/// Add a certificate (the body: PEM text with the chain, leaf first, and
/// its private key) to the whole cluster, or replace the one of that
/// name. Every node serves it from its next TLS handshake.
#[utoipa::path(post, path = "/v1/certificates", tag = "certificates", params(AddQuery),
    request_body(content = String, content_type = "text/plain"),
    responses((status = 200, description = "Stored on the cluster", body = Added), Denied,
        (status = 400, description = "Not a certificate with its key, or refused"),
        (status = 409, description = "Standalone node, or not in a cluster yet"),
        (status = 413, description = "Body too large"),
        (status = 503, description = "Quorum lost")))]
pub async fn add(
    State(api): State<Arc<Api>>,
    RawQuery(query): RawQuery,
    req: Request,
) -> Result<Reply, Failure> {
    writable(&api)?;
    let name = query
        .and_then(|q| crate::stats_page::form::value(&q, "name"))
        .ok_or_else(|| Failure::bad("a certificate needs a name: ?name=NAME"))?;
    if let Some(why) = shoal_proto::state::certs::bad_name(&name) {
        return Err(Failure::bad(format!("certificate refused: {why}")));
    }
    let bytes = read_body(req, MAX_BODY).await?;
    let at = crate::runtime::now_ms();
    let certificate = tokio::task::spawn_blocking(move || crate::tls::parse_upload(&bytes, at))
        .await
        .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|why| Failure::bad(format!("certificate '{name}' refused: {why}")))?;
    let replaced = api.runtime.read(|s| s.certificates().contains_key(&name));
    let shown = view(&name, &certificate, now_secs());
    let command = Command::AddCertificate {
        name: name.clone(),
        certificate: Box::new(certificate),
    };
    api.runtime.change(&command).await?;
    tracing::info!(
        "certificate '{name}' {} (names {}, expires {}, sha256 {})",
        if replaced { "replaced" } else { "added" },
        shown.names.join(","),
        shown.not_after_utc,
        shown.sha256_fingerprint
    );
    Ok(json(
        StatusCode::OK,
        &Added {
            status: if replaced { "replaced" } else { "added" }.into(),
            certificate: shown,
        },
    ))
}

/// Remove a certificate from the whole cluster.
#[utoipa::path(delete, path = "/v1/certificates/{name}", tag = "certificates", params(CertPath),
    responses((status = 200, description = "Removed", body = Removed), Denied, Missing,
        (status = 409, description = "Standalone node, or not in a cluster yet"),
        (status = 503, description = "Quorum lost")))]
pub async fn remove(
    State(api): State<Arc<Api>>,
    Params(CertPath { name }): Params<CertPath>,
) -> Result<Reply, Failure> {
    writable(&api)?;
    let command = Command::RemoveCertificate { name: name.clone() };
    api.runtime.change(&command).await?;
    tracing::info!("certificate '{name}' removed");
    Ok(json(
        StatusCode::OK,
        &Removed {
            status: format!("certificate {name} removed"),
        },
    ))
}

/// Certificates are cluster state: a standalone node (whose file is the
/// truth, and which keeps nothing across a restart) and a node not in a
/// cluster yet (whose state the cluster's replaces) refuse changes.
fn writable(api: &Api) -> Result<(), Failure> {
    cluster(api)?;
    if api.runtime.awaiting_cluster() {
        return Err(Failure::new(
            StatusCode::CONFLICT,
            "this node is not in a cluster yet: run `shoal cluster init` (or join it) first",
        ));
    }
    Ok(())
}
