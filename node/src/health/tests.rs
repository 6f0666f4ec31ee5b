//! Unit tests: response reading, expect rules, request bytes, the health
//! counter, passive verdicts, external-check arguments, and (with a real
//! runtime and sockets) passive mark-down and the slowstart ramp.

use super::expect::{compile, evaluate};
use super::external::{ExternalCheck, Vars};
use super::response::{parse, Parsed, Response, BODY_CAP};
use super::status::{Change, CheckResult, Health, Phase, Status};
use super::{http, start, Observer, Outcome};
use crate::observe::Passive;
use crate::routing::OpState;
use crate::runtime::Runtime;
use shoal_proto::command::{Command, ServerRef};
use shoal_proto::config::{
    Bind, Config, ExpectKind, HttpCheckExpect, HttpCheckSend, HttpChk, Observe, OnError, Proxy,
    ProxyKind, Server, ServerAddr,
};
use std::time::Duration;

fn done(bytes: &[u8], eof: bool) -> Response {
    match parse(bytes, eof, false) {
        Parsed::Done(r) => r,
        other => panic!("expected a response, got {other:?}"),
    }
}

#[test]
fn reads_content_length_bodies() {
    let r = done(
        b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nhealthy",
        false,
    );
    assert_eq!(
        (r.status, r.reason.as_str(), &r.body[..]),
        (200, "OK", &b"healthy"[..])
    );
    assert_eq!(
        parse(
            b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nheal",
            false,
            false
        ),
        Parsed::More
    );
    // Truncated by the server closing: judged on what arrived.
    assert_eq!(
        done(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nheal", true).body,
        b"heal"
    );
}

#[test]
fn reads_chunked_and_close_delimited_bodies() {
    let r = done(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nheal\r\n3;x=y\r\nthy\r\n0\r\n\r\n",
        false,
    );
    assert_eq!(r.body, b"healthy");
    assert_eq!(
        parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nhe",
            false,
            false
        ),
        Parsed::More
    );
    assert_eq!(
        parse(b"HTTP/1.0 200 OK\r\n\r\nuntil close", false, false),
        Parsed::More
    );
    assert_eq!(
        done(b"HTTP/1.0 200 OK\r\n\r\nuntil close", true).body,
        b"until close"
    );
    assert_eq!(
        parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            false,
            false
        ),
        Parsed::Invalid("invalid chunked body")
    );
}

#[test]
fn handles_interim_bodyless_and_broken_responses() {
    let r = done(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n", false);
    assert_eq!((r.status, r.reason.as_str()), (503, "Service Unavailable"));
    // Bare LF line ends are accepted, as HAProxy's parser does.
    assert_eq!(done(b"HTTP/1.0 204 No Content\n\n", false).status, 204);
    match parse(
        b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n",
        false,
        true,
    ) {
        Parsed::Done(r) => assert!(r.body.is_empty()),
        other => panic!("HEAD answers have no body: {other:?}"),
    }
    assert_eq!(parse(b"", true, false), Parsed::Invalid("empty response"));
    assert_eq!(
        parse(b"SSH-2.0-OpenSSH\r\n\r\n", false, false),
        Parsed::Invalid("invalid HTTP response")
    );
    assert_eq!(
        parse(b"HTTP/1.1 200 OK\r\n", true, false),
        Parsed::Invalid("truncated response")
    );
    let big = vec![b'x'; BODY_CAP + 100];
    let mut bytes = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
    bytes.extend_from_slice(&big);
    assert_eq!(done(&bytes, false).body.len(), BODY_CAP);
}

fn rule(negate: bool, kind: ExpectKind, pattern: &str) -> HttpCheckExpect {
    HttpCheckExpect {
        negate,
        kind,
        pattern: pattern.into(),
    }
}

fn resp(status: u16, reason: &str, body: &str) -> Response {
    Response {
        status,
        reason: reason.into(),
        body: body.as_bytes().to_vec(),
    }
}

#[test]
fn default_expectation_is_2xx_or_3xx() {
    let rules = compile(&[]);
    assert_eq!(evaluate(&rules, &resp(200, "OK", "")).status, Status::L7Ok);
    assert_eq!(
        evaluate(&rules, &resp(302, "Found", "")).status,
        Status::L7Ok
    );
    let r = evaluate(&rules, &resp(500, "Internal Server Error", ""));
    assert_eq!(
        r,
        CheckResult::new(Status::L7Sts)
            .code(500)
            .info("Internal Server Error")
    );
}

#[test]
fn status_rules_take_lists_ranges_and_negation() {
    let rules = compile(&[rule(false, ExpectKind::Status, "200,204,300-310")]);
    for (code, ok) in [
        (200, true),
        (204, true),
        (305, true),
        (201, false),
        (404, false),
    ] {
        assert_eq!(
            evaluate(&rules, &resp(code, "x", "")).status.passed(),
            ok,
            "{code}"
        );
    }
    let not_500 = compile(&[rule(true, ExpectKind::Status, "500")]);
    assert!(evaluate(&not_500, &resp(404, "Not Found", ""))
        .status
        .passed());
    assert_eq!(
        evaluate(&not_500, &resp(500, "Err", "")).status,
        Status::L7Sts
    );
    let rstatus = compile(&[rule(false, ExpectKind::Rstatus, "^2[0-9]{2}$")]);
    assert!(evaluate(&rstatus, &resp(204, "", "")).status.passed());
    assert_eq!(
        evaluate(&rstatus, &resp(404, "Not Found", "")).info,
        "Not Found"
    );
}

#[test]
fn body_rules_match_string_and_regex() {
    let string = compile(&[rule(false, ExpectKind::String, "healthy")]);
    assert_eq!(
        evaluate(&string, &resp(200, "OK", "all healthy")),
        CheckResult::new(Status::L7Ok).code(200)
    );
    let r = evaluate(&string, &resp(200, "OK", "sick"));
    assert_eq!(
        (r.status, r.info.as_str()),
        (Status::L7Rsp, "HTTP content check did not match")
    );
    let r = evaluate(&string, &resp(200, "OK", ""));
    assert_eq!(r.info, "HTTP content check could not find a response body");
    let not = compile(&[rule(true, ExpectKind::String, "maintenance")]);
    assert_eq!(
        evaluate(&not, &resp(200, "OK", "in maintenance")).info,
        "HTTP check matched unwanted content"
    );
    let rstring = compile(&[rule(false, ExpectKind::Rstring, "^heal+thy$")]);
    assert!(evaluate(&rstring, &resp(200, "OK", "healthy"))
        .status
        .passed());
    assert!(!evaluate(&rstring, &resp(200, "OK", "unhealthy"))
        .status
        .passed());
    // A pattern that does not compile never passes.
    let broken = compile(&[rule(false, ExpectKind::Rstring, "(")]);
    assert!(!evaluate(&broken, &resp(200, "OK", "x")).status.passed());
    // All rules must pass; the first failing one decides.
    let both = compile(&[
        rule(false, ExpectKind::Status, "200"),
        rule(false, ExpectKind::String, "ok"),
    ]);
    assert_eq!(evaluate(&both, &resp(500, "E", "ok")).status, Status::L7Sts);
    assert_eq!(
        evaluate(&both, &resp(200, "OK", "no")).status,
        Status::L7Rsp
    );
}

#[test]
fn request_bytes_follow_httpchk_and_http_check_send() {
    let mut proxy = Proxy::new(ProxyKind::Backend, "app");
    proxy.options.httpchk = Some(HttpChk::default());
    assert_eq!(
        http::request(&proxy),
        b"OPTIONS / HTTP/1.0\r\nConnection: close\r\n\r\n".to_vec()
    );
    proxy.options.httpchk = Some(HttpChk {
        method: "GET".into(),
        uri: "/health".into(),
        version: "HTTP/1.1\r\nHost: example.com".into(),
    });
    assert_eq!(
        String::from_utf8_lossy(&http::request(&proxy)),
        "GET /health HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"
    );
    proxy.http_check_send = Some(HttpCheckSend {
        method: Some("POST".into()),
        uri: Some("/check".into()),
        version: None,
        headers: vec![
            ("X-Probe".into(), "1".into()),
            ("connection".into(), "keep-alive".into()),
        ],
        body: Some("ping".into()),
    });
    assert_eq!(
        String::from_utf8_lossy(&http::request(&proxy)),
        "POST /check HTTP/1.1\r\nHost: example.com\r\nX-Probe: 1\r\nconnection: keep-alive\r\n\
         Content-Length: 4\r\n\r\nping"
    );
}

#[test]
fn health_counter_follows_rise_and_fall() {
    // Fully UP: `fall` failures to go DOWN, progress as HAProxy logs it.
    let mut h = Health::new(2, 3, true, false);
    assert_eq!(
        (h.phase(), h.progress()),
        (Phase::Steady, "3/3 UP".to_string())
    );
    assert_eq!(h.fail(), None);
    assert_eq!(
        (h.phase(), h.progress(), h.streak()),
        (Phase::Moving, "2/3 UP".into(), 1)
    );
    assert_eq!(h.pass(), None, "a success while UP restores the full value");
    assert_eq!(h.progress(), "3/3 UP");
    assert_eq!(
        (h.fail(), h.fail(), h.fail()),
        (None, None, Some(Change::Down))
    );
    assert_eq!(
        (h.phase(), h.progress()),
        (Phase::Down, "0/2 DOWN".to_string())
    );
    assert_eq!(h.fail(), None);
    assert_eq!(h.pass(), None);
    assert_eq!(h.fail(), None, "a failure while DOWN resets the count");
    assert_eq!((h.pass(), h.pass()), (None, Some(Change::Up)));
    assert_eq!(h.progress(), "3/3 UP");
    // UP at boot: the first failure marks it DOWN, as in HAProxy.
    let mut boot = Health::new(2, 3, true, true);
    assert_eq!(boot.fail(), Some(Change::Down));
}

#[test]
fn on_error_actions_shorten_the_way_down() {
    let mut h = Health::new(2, 3, true, false);
    h.sudden_death();
    assert_eq!(h.fail(), None, "sudden-death leaves one more failed check");
    assert_eq!(h.fail(), Some(Change::Down));
    let mut h = Health::new(2, 3, true, false);
    h.last_chance();
    assert_eq!(h.fail(), Some(Change::Down), "mark-down");
    let mut down = Health::new(2, 3, false, false);
    down.last_chance();
    assert_eq!(down.fail(), None, "no second DOWN for a DOWN server");
    // Someone forced the state: the counter follows.
    down.sync(true);
    assert_eq!(down.progress(), "3/3 UP");
    down.sync(false);
    assert_eq!(down.progress(), "0/2 DOWN");
}

#[test]
fn results_describe_themselves_like_haproxy() {
    let mut r = CheckResult::new(Status::L7Sts)
        .code(500)
        .info("Internal Server Error");
    r.duration = Some(Duration::from_millis(1));
    assert_eq!(
        r.describe(),
        ", reason: Layer7 wrong status, code: 500, info: \"Internal Server Error\", check duration: 1ms"
    );
    let mut ok = CheckResult::new(Status::L7Ok).code(200);
    ok.duration = Some(Duration::from_millis(3));
    assert_eq!(
        ok.describe(),
        ", reason: Layer7 check passed, code: 200, check duration: 3ms"
    );
    let mut l4 = CheckResult::new(Status::L4Con).info("Connection refused");
    l4.duration = Some(Duration::ZERO);
    assert_eq!(
        l4.describe(),
        ", reason: Layer4 connection problem, info: \"Connection refused\", check duration: 0ms"
    );
    // No code below layer 7 data, no duration for passive verdicts.
    let hana = CheckResult::new(Status::Hana)
        .code(5)
        .info("Detected 3 consecutive errors");
    assert_eq!(
        hana.describe(),
        ", reason: Health analyze, info: \"Detected 3 consecutive errors\""
    );
}

#[tokio::test]
async fn passive_errors_in_a_row_raise_one_event() {
    let (passive, mut events) = Passive::new(Observe::Layer7, 3);
    let observer = Observer::default();
    let mut registry = crate::observe::Registry::new();
    registry
        .entry("app".into())
        .or_default()
        .insert("s1".into(), passive);
    observer.install(registry);
    // An unobserved server is ignored.
    observer.report("app", "s2", Outcome::Status(500));
    observer.report("app", "s1", Outcome::Status(500));
    observer.report("app", "s1", Outcome::Status(502));
    observer.report("app", "s1", Outcome::Status(200)); // ends the run
    observer.report("app", "s1", Outcome::ConnectOk); // ignored at layer 7
    observer.report("app", "s1", Outcome::Status(501)); // not an error
    assert!(events.try_recv().is_err());
    observer.report("app", "s1", Outcome::ConnectError);
    observer.report("app", "s1", Outcome::ReadTimeout);
    observer.report("nope", "s1", Outcome::Closed);
    observer.report("app", "s1", Outcome::Closed);
    assert_eq!(
        events.try_recv().ok().as_deref(),
        Some("Detected 3 consecutive errors, last one was: Close from server (http)")
    );
    assert!(events.try_recv().is_err());
}

#[test]
fn external_check_arguments_and_environment() {
    let mut backend = Proxy::new(ProxyKind::Backend, "app");
    backend.external_check_path = Some("/usr/bin:/bin".into());
    let ext = ExternalCheck::new(&backend, "/bin/true", 3, "s1", 2);
    let vars = Vars {
        addr: "127.0.0.1".parse().expect("ip"),
        port: 8080,
        curconn: 4,
        maxconn: 0,
    };
    assert_eq!(
        ext.args(&vars),
        ["NOT_USED", "NOT_USED", "127.0.0.1", "8080"]
    );
    let env = ext.env(&vars);
    let get = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("PATH"), Some("/usr/bin:/bin"));
    assert_eq!(get("HAPROXY_PROXY_ADDR"), Some(""));
    assert_eq!(get("HAPROXY_PROXY_ID"), Some("3"));
    assert_eq!(get("HAPROXY_SERVER_ID"), Some("2"));
    assert_eq!(get("HAPROXY_SERVER_CURCONN"), Some("4"));
    assert_eq!(get("HAPROXY_SERVER_PORT"), Some("8080"));
    let mut listen = Proxy::new(ProxyKind::Listen, "web");
    listen.binds.push(Bind {
        host: String::new(),
        port: 80,
        tls: None,
    });
    let ext = ExternalCheck::new(&listen, "chk", 1, "s1", 1);
    assert_eq!(
        ext.args(&vars)[..2],
        ["0.0.0.0".to_string(), "80".to_string()]
    );
}

/// A backend `app` with servers at the given addresses.
fn config(servers: &[(&str, std::net::SocketAddr)], edit: impl Fn(&mut Server)) -> Config {
    let mut proxy = Proxy::new(ProxyKind::Backend, "app");
    for (name, addr) in servers {
        let mut s = Server::new(
            *name,
            ServerAddr {
                host: addr.ip().to_string(),
                port: Some(addr.port()),
            },
        );
        edit(&mut s);
        proxy.servers.push(s);
    }
    Config {
        proxies: vec![proxy],
        ..Config::default()
    }
}

fn op(runtime: &Runtime, server: &str) -> OpState {
    let snapshot = runtime.snapshot();
    let backend = snapshot.backend("app").expect("backend");
    let s = backend
        .servers
        .iter()
        .find(|s| &*s.name == server)
        .expect("server");
    s.state.op
}

#[tokio::test]
async fn passive_mark_down_takes_a_server_down_at_once() {
    let (addr, _server) = live().await;
    let cfg = config(&[("s1", addr)], |s| {
        s.check = true;
        s.inter = Some(Duration::from_secs(60));
        s.observe = Some(Observe::Layer4);
        s.error_limit = Some(2);
        s.on_error = Some(OnError::MarkDown);
    });
    let runtime = std::sync::Arc::new(Runtime::from_config(&cfg).expect("runtime"));
    let observer = Observer::default();
    let _checks = start(&runtime, &cfg, &observer);
    until("the first check", || {
        report(&runtime, "s1").status == "L4OK"
    })
    .await;
    observer.report("app", "s1", Outcome::ConnectError);
    assert_eq!(op(&runtime, "s1"), OpState::Up);
    observer.report("app", "s1", Outcome::ConnectError);
    until("marked down", || op(&runtime, "s1") == OpState::Down).await;
    assert_eq!(report(&runtime, "s1").status, "HANA");
    let snapshot = runtime.snapshot();
    let server = snapshot.server("app", "s1").expect("s1");
    let state = &server.state;
    assert!(state.last_change > 0 && !state.verdict_up);
    // Passive health feeds this node's own view: avoided here, and
    // reported with its reason.
    assert!(server.avoided, "observe marks the server DOWN locally");
    let reason = runtime.read(|st| st.server(&s1()).expect("s1").reports[&0].reason.clone());
    assert_eq!(
        reason,
        "Health analyze, info: \"Detected 2 consecutive errors, last one was: L4 unsuccessful connection\""
    );
}

fn report(runtime: &Runtime, server: &str) -> crate::routing::CheckReport {
    let snapshot = runtime.snapshot();
    let backend = snapshot.backend("app").expect("backend");
    let s = backend
        .servers
        .iter()
        .find(|s| &*s.name == server)
        .expect("server");
    s.shared.check_report()
}

/// Poll `cond` until it holds, failing after a generous deadline.
async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A listener that accepts and drops connections until its task ends.
async fn live() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            drop(s);
        }
    });
    (addr, task)
}

fn set(runtime: &Runtime, command: Command) {
    runtime.submit(&command).expect("apply");
    runtime.settled_blocking();
}

fn s1() -> ServerRef {
    ServerRef {
        backend: "app".into(),
        server: "s1".into(),
    }
}

#[tokio::test]
async fn checks_follow_forced_state_and_pause_when_disabled() {
    let (addr, server) = live().await;
    // s2 watches the same address with checks left on: its verdict proves
    // that check intervals went by while s1's checks were paused.
    let cfg = config(&[("s1", addr), ("s2", addr)], |s| {
        s.check = true;
        s.inter = Some(Duration::from_millis(20));
    });
    let runtime = std::sync::Arc::new(Runtime::from_config(&cfg).expect("runtime"));
    let _checks = start(&runtime, &cfg, &Observer::default());
    until("the first check", || {
        report(&runtime, "s1").status == "L4OK"
    })
    .await;
    // `set server health down` while checks pass: back UP after `rise`.
    set(
        &runtime,
        Command::SetHealth {
            server: s1(),
            state: OpState::Down,
            at: crate::runtime::now_ms(),
        },
    );
    until("checks bring it back", || op(&runtime, "s1") == OpState::Up).await;
    // `disable health`: the server dies but stays UP while checks pause.
    set(
        &runtime,
        Command::SetCheckEnabled {
            server: s1(),
            enabled: false,
        },
    );
    let failed_before = report(&runtime, "s1").failed_checks;
    server.abort();
    let _ = server.await;
    until("s2's running checks see the server dead", || {
        op(&runtime, "s2") == OpState::Down
    })
    .await;
    assert_eq!(op(&runtime, "s1"), OpState::Up, "checks ran while disabled");
    assert_eq!(report(&runtime, "s1").failed_checks, failed_before);
    set(
        &runtime,
        Command::SetCheckEnabled {
            server: s1(),
            enabled: true,
        },
    );
    until("re-enabled checks see it dead", || {
        op(&runtime, "s1") == OpState::Down
    })
    .await;
    assert_eq!(report(&runtime, "s1").status, "L4CON");
}

#[test]
fn slowstart_ramps_the_effective_weight() {
    let a: std::net::SocketAddr = "127.0.0.1:1".parse().expect("addr");
    let b: std::net::SocketAddr = "127.0.0.1:2".parse().expect("addr");
    let cfg = config(&[("s1", a), ("s2", b)], |s| {
        s.slowstart = Some(Duration::from_secs(60));
        s.maxconn = Some(100);
    });
    let runtime = Runtime::from_config(&cfg).expect("runtime");
    let share = |runtime: &Runtime| {
        let snapshot = runtime.snapshot();
        let backend = snapshot.backend("app").expect("app");
        (0..340)
            .filter(|_| backend.primary.pick(None, &|_| 0, &|_| false) == Some(1))
            .count()
    };
    assert_eq!(share(&runtime), 170, "no slowstart at boot");
    assert!(!runtime.refresh(), "nothing ramps at boot");
    let s2 = ServerRef {
        backend: "app".into(),
        server: "s2".into(),
    };
    for state in [OpState::Down, OpState::Up] {
        let cmd = Command::SetHealth {
            server: s2.clone(),
            state,
            at: crate::runtime::now_ms(),
        };
        set(&runtime, cmd);
    }
    // Just back: about 1/16th of s1's weight, and maxconn starts at 1.
    let early = share(&runtime);
    assert!((10..=40).contains(&early), "s2 got {early} of 340");
    let snapshot = runtime.snapshot();
    assert_eq!(
        snapshot.backend("app").expect("app").servers[1].maxconn,
        Some(1)
    );
    assert!(runtime.refresh(), "still ramping");
}

#[tokio::test]
async fn servers_in_maintenance_are_still_checked() {
    // Bound but never listening: connects are refused, and no other
    // process can take the port while the test runs.
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().expect("addr");
    socket.bind(&any.into()).expect("bind");
    let dead = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .expect("bound address");
    let cfg = config(&[("s1", dead)], |s| {
        s.check = true;
        s.disabled = true;
        s.inter = Some(Duration::from_millis(20));
    });
    let runtime = std::sync::Arc::new(Runtime::from_config(&cfg).expect("runtime"));
    let _checks = start(&runtime, &cfg, &Observer::default());
    until("checked while in MAINT", || {
        op(&runtime, "s1") == OpState::Down
    })
    .await;
}
