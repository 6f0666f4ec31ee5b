//! The admin HTTP API through a real `shoal` started with `--admin` and a
//! token in SHOAL_ADMIN_TOKEN: auth, every route, effects on real traffic,
//! the OpenAPI document, `/metrics`, `/live` and `/ready`.

mod support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use support::*;

const TOKEN: &str = "t0ps3cret-token";

fn config(s1: &Backend, s2: &Backend) -> String {
    format!(
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n\
         frontend fe\n    bind 127.0.0.1:0\n    default_backend app\n\
         frontend sfe\n    bind 127.0.0.1:0\n    default_backend sticky\n\
         backend app\n    balance roundrobin\n    server s1 {}\n    server s2 {}\n\
         backend sticky\n    stick-table type ip size 100 expire 1m\n    stick on src\n    server t1 {}\n",
        s1.addr, s2.addr, s1.addr
    )
}

struct Fixture {
    shoal: Shoal,
    admin: SocketAddr,
    _backends: (Backend, Backend),
}

fn start() -> Fixture {
    let (s1, s2) = (Backend::http("s1"), Backend::http("s2"));
    let mut shoal = Shoal::start_with_env(
        &config(&s1, &s2),
        &["fe", "sfe"],
        &["--admin", "127.0.0.1:0"],
        &[("SHOAL_ADMIN_TOKEN", TOKEN)],
    );
    let admin = shoal.admin_addr();
    Fixture {
        shoal,
        admin,
        _backends: (s1, s2),
    }
}

const BEARER: &str = "Bearer t0ps3cret-token";

/// An authenticated request; returns status and parsed JSON body.
async fn call(admin: SocketAddr, method: &str, path: &str, body: &str) -> (u16, Value) {
    let r = send(
        admin,
        method,
        path,
        &[
            ("authorization", BEARER),
            ("content-type", "application/json"),
        ],
        body,
    )
    .await;
    let json = serde_json::from_str(&r.body)
        .unwrap_or_else(|e| panic!("{method} {path}: body is not JSON ({e}): {}", r.body));
    (r.status, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_probes_and_openapi() {
    let f = start();
    for (path, want) in [("/live", 200), ("/ready", 200), ("/metrics", 200)] {
        assert_eq!(
            send(f.admin, "GET", path, &[], "").await.status,
            want,
            "{path}"
        );
    }
    for headers in [
        vec![],
        vec![("authorization", "Bearer wrong")],
        vec![("authorization", "Basic dG9rZW4=")],
    ] {
        let r = send(f.admin, "GET", "/v1/backends", &headers, "").await;
        assert_eq!(r.status, 401, "{headers:?}");
        assert_eq!(r.headers["www-authenticate"], "Bearer");
        assert!(r.body.contains("\"error\""), "{}", r.body);
    }
    // Unknown paths are 401 too without a token: nothing is revealed.
    assert_eq!(
        send(f.admin, "GET", "/v1/nothing", &[], "").await.status,
        401
    );
    assert_eq!(call(f.admin, "GET", "/v1/nothing", "").await.0, 404);

    let r = send(f.admin, "GET", "/openapi.json", &[], "").await;
    assert_eq!(r.status, 200);
    let doc: Value = serde_json::from_str(&r.body).expect("OpenAPI is JSON");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    for (path, method) in [
        ("/v1/backends", "get"),
        ("/v1/backends/{backend}", "get"),
        ("/v1/backends/{backend}/servers", "get"),
        ("/v1/backends/{backend}/servers/{server}", "get"),
        ("/v1/backends/{backend}/servers/{server}/weight", "put"),
        ("/v1/backends/{backend}/servers/{server}/state", "put"),
        ("/v1/backends/{backend}/servers/{server}/health", "put"),
        ("/v1/backends/{backend}/servers/{server}/maxconn", "put"),
        ("/v1/backends/{backend}/servers/{server}/addr", "put"),
        (
            "/v1/backends/{backend}/servers/{server}/shutdown-sessions",
            "post",
        ),
        ("/v1/tables", "get"),
        ("/v1/tables/{table}", "get"),
        ("/v1/tables/{table}", "delete"),
        ("/v1/stats", "get"),
        ("/metrics", "get"),
        ("/live", "get"),
        ("/ready", "get"),
        ("/openapi.json", "get"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route() {
    let f = start();
    let a = f.admin;
    let (st, list) = call(a, "GET", "/v1/backends", "").await;
    assert_eq!(st, 200);
    let names: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|b| b["name"].as_str())
        .collect();
    assert_eq!(names, ["app", "sticky"]);

    let (st, b) = call(a, "GET", "/v1/backends/app", "").await;
    assert_eq!((st, b["servers"].as_array().map(Vec::len)), (200, Some(2)));
    assert_eq!(b["balance"], "roundrobin");
    let (st, servers) = call(a, "GET", "/v1/backends/app/servers", "").await;
    assert_eq!((st, servers[1]["name"].as_str()), (200, Some("s2")));
    let (st, s) = call(a, "GET", "/v1/backends/app/servers/s1", "").await;
    assert_eq!(
        (st, &s["status"], &s["weight"]),
        (200, &Value::from("no check"), &Value::from(1))
    );

    // Unknown names: 404 with an error message.
    for path in [
        "/v1/backends/nope",
        "/v1/backends/app/servers/nope",
        "/v1/tables/nope",
    ] {
        let (st, e) = call(a, "GET", path, "").await;
        assert_eq!(st, 404, "{path}");
        assert!(e["error"].is_string(), "{path}: {e}");
    }
    assert_eq!(
        call(
            a,
            "PUT",
            "/v1/backends/nope/servers/s1/weight",
            r#"{"weight":2}"#
        )
        .await
        .0,
        404
    );

    // Writes.
    let base = "/v1/backends/app/servers/s2";
    let (st, s) = call(a, "PUT", &format!("{base}/weight"), r#"{"weight":7}"#).await;
    assert_eq!((st, &s["weight"]), (200, &Value::from(7)));
    let (st, s) = call(a, "PUT", &format!("{base}/state"), r#"{"state":"maint"}"#).await;
    assert_eq!(
        (st, &s["status"], &s["admin_state"]),
        (200, &"MAINT".into(), &"maint".into())
    );
    let (st, s) = call(a, "PUT", &format!("{base}/state"), r#"{"state":"ready"}"#).await;
    assert_eq!((st, &s["status"]), (200, &"no check".into()));
    let (st, s) = call(a, "PUT", &format!("{base}/health"), r#"{"health":"down"}"#).await;
    assert_eq!(
        (st, &s["status"], &s["health"]),
        (200, &"DOWN".into(), &"down".into())
    );
    let (st, s) = call(a, "PUT", &format!("{base}/health"), r#"{"health":"up"}"#).await;
    assert_eq!((st, &s["health"]), (200, &"up".into()));
    let (st, s) = call(a, "PUT", &format!("{base}/maxconn"), r#"{"maxconn":12}"#).await;
    assert_eq!((st, &s["maxconn"]), (200, &Value::from(12)));
    let (st, s) = call(
        a,
        "PUT",
        "/v1/backends/app/servers/s1/addr",
        r#"{"addr":"127.0.0.1"}"#,
    )
    .await;
    assert_eq!(st, 200, "{s}");
    let (st, s) = call(a, "POST", &format!("{base}/shutdown-sessions"), "").await;
    assert_eq!((st, &s["name"]), (200, &"s2".into()));

    // Bad input: 400; wrong method: 405; too large: 413.
    for (path, body) in [
        ("weight", "{not json"),
        ("weight", r#"{"weight":257}"#),
        ("weight", r#"{"weight":-1}"#),
        ("weight", r#"{"wieght":1}"#),
        ("state", r#"{"state":"sleepy"}"#),
        ("health", r#"{"health":"meh"}"#),
        ("addr", r#"{"addr":"not-an-ip"}"#),
    ] {
        let (st, e) = call(a, "PUT", &format!("{base}/{path}"), body).await;
        assert_eq!(st, 400, "{path} {body}: {e}");
        assert!(e["error"].is_string());
    }
    let r = send(
        a,
        "DELETE",
        "/v1/backends",
        &[("authorization", BEARER)],
        "",
    )
    .await;
    // GET routes answer HEAD too, and `Allow` says so.
    assert_eq!(
        (r.status, r.headers["allow"].to_str().ok()),
        (405, Some("GET,HEAD"))
    );
    let big = format!(r#"{{"weight":1,"pad":"{}"}}"#, "x".repeat(1024 * 1024));
    assert_eq!(call(a, "PUT", &format!("{base}/weight"), &big).await.0, 413);

    // Stick tables: one entry after a request through `sfe`.
    assert_eq!(get(f.shoal.addr("sfe"), "/").await.status, 200);
    let (st, tables) = call(a, "GET", "/v1/tables", "").await;
    assert_eq!(
        (st, &tables[0]["name"], &tables[0]["used"]),
        (200, &"sticky".into(), &Value::from(1))
    );
    let (st, t) = call(a, "GET", "/v1/tables/sticky", "").await;
    assert_eq!(
        (st, &t["entries"][0]["key"], &t["type"]),
        (200, &"127.0.0.1".into(), &"ip".into())
    );
    let (st, t) = call(a, "DELETE", "/v1/tables/sticky?key=10.9.9.9", "").await;
    assert_eq!((st, &t["used"]), (200, &Value::from(1)));
    let (st, t) = call(a, "DELETE", "/v1/tables/sticky?key=127.0.0.1", "").await;
    assert_eq!((st, &t["used"]), (200, &Value::from(0)));
    assert_eq!(get(f.shoal.addr("sfe"), "/").await.status, 200);
    let (st, t) = call(a, "DELETE", "/v1/tables/sticky", "").await;
    assert_eq!((st, &t["used"]), (200, &Value::from(0)));
    assert_eq!(call(a, "DELETE", "/v1/tables/nope", "").await.0, 404);

    // Stats rows: HAProxy's field names, one row per frontend, backend and server.
    let (st, rows) = call(a, "GET", "/v1/stats", "").await;
    assert_eq!(st, 200);
    let rows = rows.as_array().expect("array");
    let row = rows
        .iter()
        .find(|r| r["pxname"] == "app" && r["svname"] == "s2")
        .unwrap_or_else(|| panic!("no app/s2 row in {rows:?}"));
    assert_eq!(row["weight"].to_string().trim_matches('"'), "7");
    assert!(rows
        .iter()
        .any(|r| r["pxname"] == "fe" && r["svname"] == "FRONTEND"));
    assert!(rows
        .iter()
        .any(|r| r["pxname"] == "app" && r["svname"] == "BACKEND"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weight_and_drain_change_traffic() {
    let f = start();
    let fe = f.shoal.addr("fe");
    let even = tally(fe, "/", 200).await;
    assert_eq!((even["s1"], even["s2"]), (100, 100), "{even:?}");

    let (st, _) = call(
        f.admin,
        "PUT",
        "/v1/backends/app/servers/s1/weight",
        r#"{"weight":3}"#,
    )
    .await;
    assert_eq!(st, 200);
    let weighted = tally(fe, "/", 400).await;
    assert!(
        (290..=310).contains(&weighted["s1"]),
        "3:1 expected: {weighted:?}"
    );

    let (st, _) = call(
        f.admin,
        "PUT",
        "/v1/backends/app/servers/s2/state",
        r#"{"state":"drain"}"#,
    )
    .await;
    assert_eq!(st, 200);
    let drained = tally(fe, "/", 100).await;
    assert_eq!(
        drained.get("s2"),
        None,
        "drained server got traffic: {drained:?}"
    );

    let (st, _) = call(
        f.admin,
        "PUT",
        "/v1/backends/app/servers/s2/state",
        r#"{"state":"ready"}"#,
    )
    .await;
    assert_eq!(st, 200);
    let back = tally(fe, "/", 400).await;
    assert!((90..=110).contains(&back["s2"]), "3:1 expected: {back:?}");
}

/// One sample of the text format.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parse Prometheus' text format strictly enough to catch malformed output.
fn parse_metrics(text: &str) -> (Vec<Sample>, BTreeMap<String, String>) {
    let mut samples = Vec::new();
    let mut types = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line");
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "{name} twice"
            );
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(
            !line.is_empty() && !line.starts_with('#'),
            "stray line {line:?}"
        );
        let (head, value) = line.rsplit_once(' ').expect("value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let (name, labels) = match head.split_once('{') {
            None => (head.to_string(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let mut labels = BTreeMap::new();
                let mut chars = body.chars().peekable();
                while chars.peek().is_some() {
                    let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
                    assert_eq!(chars.next(), Some('"'), "{line}");
                    let mut val = String::new();
                    while let Some(c) = chars.next() {
                        match c {
                            '\\' => val.push(match chars.next() {
                                Some('n') => '\n',
                                Some(c) => c,
                                None => panic!("{line}"),
                            }),
                            '"' => break,
                            c => val.push(c),
                        }
                    }
                    labels.insert(key, val);
                    if chars.peek() == Some(&',') {
                        chars.next();
                    }
                }
                (name.to_string(), labels)
            }
        };
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(&name);
        assert!(types.contains_key(family), "{name} has no TYPE line");
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    (samples, types)
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .unwrap_or_else(|| panic!("no {name} {labels:?}"))
        .value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_grow_with_traffic() {
    let f = start();
    let scrape = || async {
        let r = send(f.admin, "GET", "/metrics", &[], "").await;
        assert_eq!(r.status, 200);
        assert!(r.headers["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/plain; version=0.0.4"));
        parse_metrics(&r.body)
    };
    let (before, types) = scrape().await;
    assert_eq!(types["shoal_frontend_current_sessions"], "gauge");
    assert_eq!(types["shoal_server_sessions_total"], "counter");
    assert_eq!(
        types["shoal_backend_http_request_duration_seconds"],
        "histogram"
    );
    let fe = [("proxy", "fe")];
    let s1 = [("proxy", "app"), ("server", "s1")];
    assert_eq!(
        value(&before, "shoal_frontend_http_requests_total", &fe),
        0.0
    );
    assert_eq!(
        value(
            &before,
            "shoal_server_status",
            &[("proxy", "app"), ("server", "s1"), ("state", "UP")]
        ),
        1.0
    );
    assert_eq!(
        value(&before, "shoal_backend_current_queue", &[("proxy", "app")]),
        0.0
    );

    tally(f.shoal.addr("fe"), "/", 20).await;
    let (after, _) = scrape().await;
    assert_eq!(
        value(&after, "shoal_frontend_http_requests_total", &fe),
        20.0
    );
    assert_eq!(value(&after, "shoal_server_sessions_total", &s1), 10.0);
    assert_eq!(
        value(
            &after,
            "shoal_server_http_responses_total",
            &[("proxy", "app"), ("server", "s1"), ("code", "2xx")]
        ),
        10.0
    );
    assert_eq!(
        value(
            &after,
            "shoal_backend_http_responses_total",
            &[("proxy", "app"), ("code", "2xx")]
        ),
        20.0
    );
    assert!(value(&after, "shoal_backend_bytes_out_total", &[("proxy", "app")]) > 0.0);
    let count = value(
        &after,
        "shoal_backend_http_request_duration_seconds_count",
        &[("proxy", "app")],
    );
    assert_eq!(count, 20.0, "latency histogram counts requests");
    let inf = value(
        &after,
        "shoal_backend_http_request_duration_seconds_bucket",
        &[("proxy", "app"), ("le", "+Inf")],
    );
    assert_eq!(inf, count);

    // State shows up as the labelled gauge.
    call(
        f.admin,
        "PUT",
        "/v1/backends/app/servers/s1/state",
        r#"{"state":"drain"}"#,
    )
    .await;
    let (drained, _) = scrape().await;
    let state = |s: &str| {
        value(
            &drained,
            "shoal_server_status",
            &[("proxy", "app"), ("server", "s1"), ("state", s)],
        )
    };
    assert_eq!((state("DRAIN"), state("UP")), (1.0, 0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_dropped_log_lines() {
    // A syslog socket that nobody reads: once its queue is full the log
    // writer blocks, the bounded queue in front of it fills, and further
    // lines are dropped and counted rather than slowing traffic down.
    let dir = TempDir::new("log");
    let socket = dir.0.join("log.sock");
    let _deaf = std::os::unix::net::UnixDatagram::bind(&socket).expect("bind syslog socket");
    let s1 = Backend::http("s1");
    let config = format!(
        "global\n    log {} local0\n\
         defaults\n    mode http\n    log global\n    option httplog\n\
         \x20   timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n\
         frontend fe\n    bind 127.0.0.1:0\n    default_backend app\n\
         backend app\n    server s1 {}\n",
        socket.display(),
        s1.addr
    );
    let mut shoal = Shoal::start_with_env(
        &config,
        &["fe"],
        &["--admin", "127.0.0.1:0"],
        &[("SHOAL_ADMIN_TOKEN", TOKEN)],
    );
    let admin = shoal.admin_addr();
    let dropped = || async {
        let r = send(admin, "GET", "/metrics", &[], "").await;
        let (samples, types) = parse_metrics(&r.body);
        assert_eq!(types["shoal_log_lines_dropped_total"], "counter");
        value(&samples, "shoal_log_lines_dropped_total", &[])
    };
    assert_eq!(dropped().await, 0.0);

    // Traffic in rounds of 4 x 1000 keep-alive requests until lines drop
    // (the queue holds 16384 lines), bounded in count and time.
    let fe = shoal.addr("fe");
    let started = std::time::Instant::now();
    let mut sent = 0;
    let mut seen = 0.0;
    while seen == 0.0 {
        assert!(
            sent < 100_000 && started.elapsed() < std::time::Duration::from_secs(120),
            "no line dropped after {sent} requests"
        );
        let rounds: Vec<_> = (0..4)
            .map(|_| tokio::spawn(async move { tally(fe, "/", 1000).await }))
            .collect();
        for r in rounds {
            r.await.expect("traffic task");
        }
        sent += 4000;
        seen = dropped().await;
    }
    assert!(seen <= sent as f64, "{seen} dropped of {sent}");
}

/// Every `$ref` in `value` that points into the document itself.
fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r.clone());
            }
            map.values().for_each(|v| refs(v, out));
        }
        Value::Array(list) => list.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// The document is valid OpenAPI 3.1, and it lists exactly what the
/// router serves: on every documented path, each method answers other
/// than 404/405 exactly when the document lists it (HEAD rides on GET),
/// and needs the token exactly when the document says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_matches_the_router() {
    let f = start();
    let text = send(f.admin, "GET", "/openapi.json", &[], "").await.body;
    let spec = oas3::from_json(&text).expect("a valid OpenAPI 3.1 document");
    spec.validate_version().expect("supported OpenAPI version");
    let doc: Value = serde_json::from_str(&text).expect("JSON");
    let mut found = Vec::new();
    refs(&doc, &mut found);
    for r in &found {
        let pointer = r.strip_prefix('#').expect("local reference");
        assert!(doc.pointer(pointer).is_some(), "dangling {r}");
    }
    assert!(doc["info"]["version"].is_string());
    let global_security = &doc["security"];
    assert_eq!(global_security[0]["bearer"], Value::Array(vec![]));

    let paths = doc["paths"].as_object().expect("paths");
    assert_eq!(
        spec.operations().count(),
        paths
            .values()
            .map(|p| p.as_object().map_or(0, |o| o.len()))
            .sum::<usize>()
    );
    for (template, item) in paths {
        let path = template
            .replace("{backend}", "app")
            .replace("{server}", "s1")
            .replace("{table}", "sticky");
        for method in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
            let documented = match method {
                "HEAD" => item.get("get"),
                m => item.get(m.to_ascii_lowercase()),
            };
            let r = send(f.admin, method, &path, &[("authorization", BEARER)], "").await;
            let served = r.status != 404 && r.status != 405;
            assert_eq!(
                served,
                documented.is_some(),
                "{method} {path}: {} but documented: {}",
                r.status,
                documented.is_some()
            );
            let Some(op) = documented else { continue };
            let public = op["security"] == serde_json::json!([{}]);
            let anonymous = send(f.admin, method, &path, &[], "").await.status;
            assert_eq!(
                anonymous == 401,
                !public,
                "{method} {path} without a token: {anonymous}"
            );
        }
    }
    // Paths the document does not list are not served.
    for path in [
        "/",
        "/v1",
        "/v2/backends",
        "/v1/backends/app/servers/s1/nothing",
        "/v1/tables/sticky/entries",
    ] {
        let (status, body) = call(f.admin, "GET", path, "").await;
        assert_eq!(status, 404, "{path}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_answers_like_get_without_a_body() {
    let f = start();
    let get = send(f.admin, "GET", "/live", &[], "").await;
    let head = send(f.admin, "HEAD", "/live", &[], "").await;
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    assert_eq!(head.headers["content-type"], get.headers["content-type"]);
}

/// `/ready` turns 503 as soon as a graceful stop begins, while in-flight
/// requests finish, so a balancer in front stops sending first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_turns_503_while_stopping() {
    let f = start();
    let fe = f.shoal.addr("fe");
    let (status, _) = call(f.admin, "GET", "/ready", "").await;
    assert_eq!(status, 200);
    // A slow request keeps the node in its grace period.
    let slow = tokio::spawn(async move { get(fe, "/delay/3000").await.status });
    eventually("the slow request reached a server", || async {
        let (_, stats) = call(f.admin, "GET", "/v1/stats", "").await;
        stats.to_string().contains("\"scur\":\"1\"") || stats.to_string().contains("\"scur\":1")
    })
    .await;
    f.shoal.proc.signal("TERM");
    eventually("/ready says 503", || async {
        call(f.admin, "GET", "/ready", "").await.0 == 503
    })
    .await;
    assert_eq!(call(f.admin, "GET", "/live", "").await.0, 200);
    assert_eq!(
        slow.await.expect("slow request"),
        200,
        "in-flight request finished"
    );
}

/// Certificates are cluster state: a standalone node lists none and
/// refuses to store one (409), before it reads the body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_need_a_cluster() {
    let f = start();
    let (st, list) = call(f.admin, "GET", "/v1/certificates", "").await;
    assert_eq!((st, list), (200, Value::Array(Vec::new())));
    let (st, err) = call(f.admin, "POST", "/v1/certificates?name=site", "x").await;
    assert_eq!(st, 409, "{err}");
    assert!(
        err["error"]
            .as_str()
            .is_some_and(|e| e.contains("standalone")),
        "{err}"
    );
    let (st, _) = call(f.admin, "DELETE", "/v1/certificates/site", "").await;
    assert_eq!(st, 409);
}

/// With `global grace` (HAProxy's: keep accepting for that long after a
/// soft stop began), SIGTERM turns `/ready` to 503 at once while the
/// listeners still accept; they close once the grace is over, and the
/// process exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_keeps_accepting_for_the_grace_while_not_ready() {
    let grace = std::time::Duration::from_secs(3);
    let (s1, s2) = (Backend::http("s1"), Backend::http("s2"));
    let cfg = format!("global\n    grace 3s\n{}", config(&s1, &s2));
    let mut shoal = Shoal::start_with_env(
        &cfg,
        &["fe", "sfe"],
        &["--admin", "127.0.0.1:0"],
        &[("SHOAL_ADMIN_TOKEN", TOKEN)],
    );
    let admin = shoal.admin_addr();
    let fe = shoal.addr("fe");
    assert_eq!(call(admin, "GET", "/ready", "").await.0, 200);
    let termed_at = std::time::Instant::now();
    shoal.proc.signal("TERM");
    eventually("/ready says 503", || async {
        call(admin, "GET", "/ready", "").await.0 == 503
    })
    .await;
    let r = get(fe, "/").await;
    let served_at = termed_at.elapsed();
    assert_eq!(r.status, 200, "a new connection during the grace");
    assert!(
        served_at < grace,
        "the machine took {served_at:?}: longer than the grace"
    );
    eventually("the listener closes", || async {
        tokio::net::TcpStream::connect(fe).await.is_err()
    })
    .await;
    let refused_at = termed_at.elapsed();
    assert!(
        refused_at >= grace,
        "refused after {refused_at:?}, before the {grace:?} grace"
    );
    assert_eq!(shoal.proc.wait_exit(DEADLINE), Some(0), "exits after it");
}
