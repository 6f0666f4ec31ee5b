//! The OpenAPI 3 document, generated from the route table.

use super::routes::{Op, Route, ROUTES};
use serde_json::{json, Map, Value};

/// The request body schema of a write route, if it takes one.
fn request_schema(op: Op) -> Option<Value> {
    let one = |name: &str, schema: Value| {
        json!({ "type": "object", "required": [name], "properties": { name: schema },
                "additionalProperties": false })
    };
    let words = |list: &[&str]| json!({ "type": "string", "enum": list });
    Some(match op {
        Op::SetWeight => one(
            "weight",
            json!({ "type": "integer", "minimum": 0, "maximum": 256 }),
        ),
        Op::SetState => one("state", words(&["ready", "drain", "maint"])),
        Op::SetHealth => one("health", words(&["up", "down", "stopping"])),
        Op::SetMaxconn => one("maxconn", json!({ "type": "integer", "minimum": 0 })),
        Op::SetAddr => json!({
            "type": "object", "required": ["addr"], "additionalProperties": false,
            "properties": {
                "addr": { "type": "string", "description": "IPv4 or IPv6 address" },
                "port": { "type": "integer", "minimum": 1, "maximum": 65535 }
            }
        }),
        _ => return None,
    })
}

/// The `200` response of a route.
fn ok_response(op: Op) -> Value {
    let content = |media: &str, schema: Value| json!({ media: { "schema": schema } });
    let obj = json!({ "type": "object" });
    let list = json!({ "type": "array", "items": { "type": "object" } });
    let (description, body) = match op {
        Op::Live | Op::Ready => ("Serving", None),
        Op::Metrics => (
            "Metrics",
            Some(content("text/plain", json!({ "type": "string" }))),
        ),
        Op::OpenApi => ("This document", Some(content("application/json", obj))),
        Op::ListBackends | Op::ListServers | Op::ListTables | Op::Stats => {
            ("A list", Some(content("application/json", list)))
        }
        _ => (
            "The resource as it is now",
            Some(content("application/json", obj)),
        ),
    };
    match body {
        Some(content) => json!({ "description": description, "content": content }),
        None => json!({ "description": description }),
    }
}

fn operation(route: &Route) -> Value {
    let error = json!({ "$ref": "#/components/responses/Error" });
    let mut responses = Map::new();
    responses.insert("200".into(), ok_response(route.op));
    if route.op == Op::Ready {
        responses.insert(
            "503".into(),
            json!({ "description": "Not serving yet, or stopping" }),
        );
    }
    if !route.public {
        responses.insert("401".into(), error.clone());
    }
    let mut params = Vec::new();
    for part in route.path.split('/') {
        if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            params.push(json!({ "name": name, "in": "path", "required": true,
                                "schema": { "type": "string" } }));
        }
    }
    if !params.is_empty() {
        responses.insert("404".into(), error.clone());
    }
    if route.op == Op::ClearTable {
        params.push(json!({ "name": "key", "in": "query", "required": false,
                            "schema": { "type": "string" },
                            "description": "Clear only this key" }));
    }
    let mut op = json!({
        "summary": route.summary,
        "operationId": format!("{:?}", route.op),
        "responses": responses,
    });
    if !params.is_empty() {
        op["parameters"] = Value::Array(params);
    }
    if let Some(schema) = request_schema(route.op) {
        op["requestBody"] = json!({ "required": true,
            "content": { "application/json": { "schema": schema } } });
        op["responses"]["400"] = error.clone();
        op["responses"]["413"] = error;
    }
    if route.public {
        // An empty requirement list overrides the global bearer requirement.
        op["security"] = json!([]);
    }
    op
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for route in &ROUTES {
        let entry = paths
            .entry(route.path)
            .or_insert_with(|| Value::Object(Map::new()));
        entry[route.method.as_str().to_ascii_lowercase()] = operation(route);
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Shoal admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Backends, servers and stick tables of one Shoal node. Every \
                            write becomes a runtime command, as the runtime socket's do."
        },
        "security": [{ "bearer": [] }],
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "responses": { "Error": {
                "description": "An error",
                "content": { "application/json": { "schema": {
                    "type": "object", "required": ["error"],
                    "properties": { "error": { "type": "string" } }
                } } }
            } }
        },
        "paths": paths,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn lists_every_route() {
        let doc = super::document();
        for route in &super::ROUTES {
            let method = route.method.as_str().to_ascii_lowercase();
            assert!(
                doc["paths"][route.path][&method].is_object(),
                "{}",
                route.path
            );
        }
    }
}
