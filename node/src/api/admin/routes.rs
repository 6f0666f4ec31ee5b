//! The route table: the one list that both dispatches requests and
//! generates the OpenAPI document, so the two cannot disagree.

use hyper::Method;

/// What a route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Live,
    Ready,
    Metrics,
    OpenApi,
    ListBackends,
    GetBackend,
    ListServers,
    GetServer,
    SetWeight,
    SetState,
    SetHealth,
    SetMaxconn,
    SetAddr,
    ShutdownSessions,
    ListTables,
    GetTable,
    ClearTable,
    Stats,
}

/// One route. Path templates name their parameters `{backend}`,
/// `{server}` and `{table}`, as OpenAPI writes them.
#[derive(Debug)]
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub op: Op,
    pub summary: &'static str,
    /// Served without a token (probes and scrapers).
    pub public: bool,
}

const fn route(method: Method, path: &'static str, op: Op, summary: &'static str) -> Route {
    Route {
        method,
        path,
        op,
        summary,
        public: false,
    }
}

const fn open(path: &'static str, op: Op, summary: &'static str) -> Route {
    Route {
        method: Method::GET,
        path,
        op,
        summary,
        public: true,
    }
}

const SERVER: &str = "/v1/backends/{backend}/servers/{server}";

/// Every route of the admin API.
pub static ROUTES: [Route; 18] = [
    open("/live", Op::Live, "Liveness: 200 while the process runs"),
    open(
        "/ready",
        Op::Ready,
        "Readiness: 200 once the node serves traffic, else 503",
    ),
    open(
        "/metrics",
        Op::Metrics,
        "Prometheus metrics (text format 0.0.4)",
    ),
    open("/openapi.json", Op::OpenApi, "This OpenAPI 3 document"),
    route(
        Method::GET,
        "/v1/backends",
        Op::ListBackends,
        "List backends",
    ),
    route(
        Method::GET,
        "/v1/backends/{backend}",
        Op::GetBackend,
        "One backend with its servers",
    ),
    route(
        Method::GET,
        "/v1/backends/{backend}/servers",
        Op::ListServers,
        "Servers of a backend",
    ),
    route(Method::GET, SERVER, Op::GetServer, "One server"),
    route(
        Method::PUT,
        "/v1/backends/{backend}/servers/{server}/weight",
        Op::SetWeight,
        "Set the weight (0..=256)",
    ),
    route(
        Method::PUT,
        "/v1/backends/{backend}/servers/{server}/state",
        Op::SetState,
        "Set the admin state: ready, drain or maint",
    ),
    route(
        Method::PUT,
        "/v1/backends/{backend}/servers/{server}/health",
        Op::SetHealth,
        "Force the health: up, down or stopping",
    ),
    route(
        Method::PUT,
        "/v1/backends/{backend}/servers/{server}/maxconn",
        Op::SetMaxconn,
        "Set maxconn (0 = unlimited)",
    ),
    route(
        Method::PUT,
        "/v1/backends/{backend}/servers/{server}/addr",
        Op::SetAddr,
        "Set the address (and port)",
    ),
    route(
        Method::POST,
        "/v1/backends/{backend}/servers/{server}/shutdown-sessions",
        Op::ShutdownSessions,
        "End every session on the server",
    ),
    route(
        Method::GET,
        "/v1/tables",
        Op::ListTables,
        "List stick tables",
    ),
    route(
        Method::GET,
        "/v1/tables/{table}",
        Op::GetTable,
        "One stick table with its entries",
    ),
    route(
        Method::DELETE,
        "/v1/tables/{table}",
        Op::ClearTable,
        "Clear a stick table, or one key with ?key=K",
    ),
    route(
        Method::GET,
        "/v1/stats",
        Op::Stats,
        "All stats rows (HAProxy `show stat` fields)",
    ),
];

/// The outcome of matching a request path.
#[derive(Debug)]
pub enum Match {
    /// A route, with the decoded path parameters in order.
    Found(&'static Route, Vec<String>),
    /// The path exists, but not for this method; the allowed methods.
    WrongMethod(Vec<Method>),
    NotFound,
}

/// Find the route for `method` and `path`.
pub fn find(method: &Method, path: &str) -> Match {
    let mut allowed = Vec::new();
    for route in &ROUTES {
        let Some(params) = captures(route.path, path) else {
            continue;
        };
        if route.method == *method {
            return Match::Found(route, params);
        }
        allowed.push(route.method.clone());
    }
    if allowed.is_empty() {
        Match::NotFound
    } else {
        Match::WrongMethod(allowed)
    }
}

/// True when `path` is a public route (any method), so that auth can be
/// decided before matching.
pub fn is_public(path: &str) -> bool {
    ROUTES
        .iter()
        .any(|r| r.public && captures(r.path, path).is_some())
}

/// The decoded values of `template`'s `{params}` in `path`, if it matches.
fn captures(template: &str, path: &str) -> Option<Vec<String>> {
    let mut want = template.split('/');
    let mut got = path.split('/');
    let mut params = Vec::new();
    loop {
        match (want.next(), got.next()) {
            (None, None) => return Some(params),
            (Some(w), Some(g)) if w.starts_with('{') => {
                let value = crate::stats_page::form::decode(g, false)?;
                if value.is_empty() {
                    return None;
                }
                params.push(value);
            }
            (Some(w), Some(g)) if w == g => {}
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_templates_and_methods() {
        match find(&Method::PUT, "/v1/backends/app/servers/s%201/weight") {
            Match::Found(r, p) => {
                assert_eq!(r.op, Op::SetWeight);
                assert_eq!(p, ["app", "s 1"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            find(&Method::POST, "/v1/backends"),
            Match::WrongMethod(m) if m == [Method::GET]
        ));
        assert!(matches!(
            find(&Method::GET, "/v1/backends/"),
            Match::NotFound
        ));
        assert!(matches!(find(&Method::GET, "/v2"), Match::NotFound));
        assert!(is_public("/metrics") && !is_public("/v1/stats"));
    }
}
