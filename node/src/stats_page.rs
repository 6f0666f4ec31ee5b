//! The stats page of frontends with `stats enable`, as HAProxy serves it:
//! `stats uri` (a prefix; default `/haproxy?stats`), `stats refresh`,
//! `stats realm` / `stats auth` (HTTP Basic), `stats hide-version` and
//! `stats admin if COND`, which adds per-server controls that POST back to
//! the same URI and are answered with a 303 to `URI;st=CODE`.
//!
//! Options follow the URI after `;`, as in HAProxy: `;csv` for the CSV of
//! `show stat`, `;norefresh`, and `;st=CODE` for the last action's result.

mod actions;
mod auth;
pub(crate) mod form;
mod page;

use crate::routing::FrontendRt;
use crate::runtime::Runtime;
use bytes::Bytes;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, HOST, LOCATION, ORIGIN};
use hyper::{Method, Request, Response, StatusCode};
use std::net::SocketAddr;
use std::sync::Arc;

/// Largest admin form accepted.
pub const MAX_FORM: usize = 64 * 1024;

/// What follows the stats URI.
#[derive(Debug, Default, PartialEq, Eq)]
struct Options {
    csv: bool,
    norefresh: bool,
    status: Option<String>,
}

impl Options {
    /// Parse `;csv;norefresh;st=DONE` (anything before the first `;` is ignored).
    fn parse(rest: &str) -> Options {
        let mut opts = Options::default();
        for word in rest.split(';').skip(1) {
            match word {
                "csv" => opts.csv = true,
                "norefresh" => opts.norefresh = true,
                w => {
                    if let Some(code) = w.strip_prefix("st=") {
                        opts.status = Some(code.to_string());
                    }
                }
            }
        }
        opts
    }
}

/// Answer a request under the frontend's `stats uri`. The HTTP engine
/// (`crate::http`) reads the whole request body first (at most
/// [`MAX_FORM`] bytes matter) and writes the response out.
pub async fn serve(
    req: Request<Bytes>,
    runtime: &Arc<Runtime>,
    frontend: &FrontendRt,
    peer: SocketAddr,
) -> Response<Bytes> {
    let Some(stats) = &frontend.stats else {
        return plain(StatusCode::NOT_FOUND, "Not found.\n");
    };
    let (parts, body) = req.into_parts();
    if !stats.config.auth.is_empty() && !auth::basic_ok(&parts.headers, &stats.config.auth) {
        let mut resp = plain(StatusCode::UNAUTHORIZED, "401 Unauthorized\n");
        if let Ok(v) = HeaderValue::from_str(&auth::challenge(stats.config.realm.as_deref())) {
            resp.headers_mut()
                .insert(hyper::header::WWW_AUTHENTICATE, v);
        }
        return resp;
    }
    let full = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let opts = Options::parse(full.strip_prefix(stats.uri.as_str()).unwrap_or(""));
    let admin = stats.admin.as_ref().is_some_and(|cond| {
        cond.eval(&auth::PageSamples {
            parts: &parts,
            src: peer.ip(),
        })
    });
    match parts.method {
        Method::GET | Method::HEAD if opts.csv => csv(runtime),
        Method::GET | Method::HEAD => {
            let snapshot = runtime.snapshot();
            let info = crate::stats::info(&snapshot);
            let health = crate::health::cluster_health(runtime);
            let view = page::View {
                uri: &stats.uri,
                refresh: stats.config.refresh.filter(|_| !opts.norefresh),
                admin,
                status: opts.status.as_deref(),
                hide_version: stats.config.hide_version,
                info: &info,
                health: &health,
            };
            let html = page::render(&crate::stats::collect(&snapshot), &view);
            let mut resp = with_type(StatusCode::OK, "text/html; charset=utf-8", html);
            resp.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            resp
        }
        Method::POST => {
            let outcome = if !admin || !same_origin(&parts.headers) {
                actions::Outcome::Denied
            } else {
                if body.len() > MAX_FORM {
                    actions::Outcome::BadParams
                } else {
                    actions::apply(runtime, &String::from_utf8_lossy(&body)).await
                }
            };
            // Each change is settled once applied: the page the browser
            // is sent back to shows it.
            redirect(&format!("{};st={}", stats.uri, outcome.code()))
        }
        _ => plain(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed.\n"),
    }
}

/// A browser's cross-site POST carries a foreign `Origin`: refuse it, so
/// another site cannot drive the controls with the user's credentials.
/// Requests without `Origin` (scripts, old browsers) are judged by
/// `stats admin` alone, as in HAProxy.
fn same_origin(headers: &hyper::HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers.get(HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

/// The CSV of `show stat`, as HAProxy serves it at `URI;csv`.
fn csv(runtime: &Runtime) -> Response<Bytes> {
    let mut text = crate::stats::csv_header();
    text.push('\n');
    for row in crate::stats::collect(&runtime.snapshot()) {
        text.push_str(&row.to_csv());
        text.push('\n');
    }
    with_type(StatusCode::OK, "text/plain; charset=utf-8", text)
}

fn redirect(location: &str) -> Response<Bytes> {
    let mut resp = plain(StatusCode::SEE_OTHER, "");
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(LOCATION, v);
    }
    resp
}

fn plain(status: StatusCode, text: &'static str) -> Response<Bytes> {
    with_type(status, "text/plain; charset=utf-8", text)
}

fn with_type(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Bytes> {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

#[cfg(test)]
mod tests {
    use super::Options;

    #[test]
    fn parses_uri_options() {
        assert_eq!(Options::parse(""), Options::default());
        let o = Options::parse(";csv;norefresh");
        assert!(o.csv && o.norefresh);
        assert_eq!(Options::parse("/x;st=DONE").status.as_deref(), Some("DONE"));
    }
}
