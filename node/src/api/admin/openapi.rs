//! The OpenAPI document's frame (title, bearer scheme, error bodies). The
//! paths themselves come from the handlers' `#[utoipa::path]` annotations,
//! registered together with the routes (see `routes.rs`).

use super::reply::ErrorBody;
use std::collections::BTreeMap;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{IntoResponses, Modify, OpenApi};

/// The document before paths are added.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Shoal admin API",
        description = "Backends, servers and stick tables of one Shoal node. Every write \
                       becomes a runtime command, as the runtime socket's do. Everything but \
                       the probes, /metrics and /openapi.json needs `Authorization: Bearer TOKEN`."
    ),
    security(("bearer" = [])),
    modifiers(&BearerScheme),
    components(schemas(ErrorBody))
)]
pub struct ApiDoc;

/// Adds the `bearer` security scheme the document's `security` names.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Responses with an [`ErrorBody`], by status.
fn errors(list: &[(u16, &str)]) -> BTreeMap<String, RefOr<Response>> {
    list.iter()
        .map(|(status, description)| {
            let content = Content::new(Some(Ref::from_schema_name("ErrorBody")));
            let response = ResponseBuilder::new()
                .description(*description)
                .content("application/json", content)
                .build();
            (status.to_string(), RefOr::T(response))
        })
        .collect()
}

/// 401 for every route that needs the token.
pub struct Denied;

impl IntoResponses for Denied {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        errors(&[(401, "Missing or invalid bearer token")])
    }
}

/// 404 for routes that name a backend, server or table.
pub struct Missing;

impl IntoResponses for Missing {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        errors(&[(404, "No such backend, server or table")])
    }
}

/// What a route that reads a JSON body can answer besides success.
pub struct BodyErrors;

impl IntoResponses for BodyErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        errors(&[
            (400, "Invalid body or value"),
            (408, "The body did not arrive in time"),
            (413, "The body is too large"),
        ])
    }
}
