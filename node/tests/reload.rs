//! A reload is a transaction: a config that cannot run in full (a server
//! name that does not resolve, an address that cannot be bound) changes
//! nothing — no server state, no weight, no listener — and the log says why.

mod support;

use support::*;

const DEFAULTS: &str = "\
global
    stats socket ipv4@127.0.0.1:0 level admin
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
";

/// Reload with `config`, and wait for the refusal line; returns it.
fn refused_reload(shoal: &mut Shoal, config: &str) -> String {
    std::fs::write(&shoal.cfg, config).expect("rewrite config");
    shoal.proc.signal("HUP");
    shoal.proc.wait_line("reload refused")
}

/// "configuration reloaded" notices printed so far.
fn reload_notices(shoal: &mut Shoal) -> usize {
    shoal.proc.drain();
    shoal
        .proc
        .seen
        .iter()
        .filter(|l| l.contains("configuration reloaded"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unresolvable_server_refuses_the_reload_and_keeps_server_state() {
    let (a, b) = (Backend::http("a"), Backend::http("b"));
    let config = |s1_weight: u32, extra: &str| {
        format!(
            "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend app\n\
             backend app\n    server s1 {} weight {s1_weight}\n    server s2 {}\n{extra}",
            a.addr, b.addr
        )
    };
    let mut shoal = Shoal::start(&config(10, ""), &["fe"]);
    let socket: std::net::SocketAddr = shoal.stats_sockets(1)[0].parse().expect("socket addr");
    assert_eq!(
        cli_tcp(socket, "set server app/s2 state maint\n").await,
        "\n"
    );

    let line = refused_reload(
        &mut shoal,
        &config(50, "    server s3 nonexistent.invalid:80\n"),
    );
    assert!(line.contains("nonexistent.invalid"), "why: {line}");
    // Nothing of the refused file took effect.
    assert_eq!(
        cli_tcp(socket, "get weight app/s1\n").await,
        "10 (initial 10)\n\n"
    );
    let stat = cli_tcp(socket, "show stat\n").await;
    let s2 = stat
        .lines()
        .find(|l| l.starts_with("app,s2,"))
        .expect("s2 row");
    assert!(s2.contains(",MAINT,"), "s2 kept its maintenance: {s2}");
    assert!(!stat.contains("app,s3,"), "s3 was not added");
    // The server is still known to the runtime API.
    assert_eq!(
        cli_tcp(socket, "set server app/s2 state ready\n").await,
        "\n"
    );
    assert_eq!(tally(shoal.addr("fe"), "/", 20).await.len(), 2);
    assert_eq!(reload_notices(&mut shoal), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_failure_refuses_the_reload_before_anything_changes() {
    let (a, b) = (Backend::http("a"), Backend::http("b"));
    // Someone else holds this address for the whole test.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_addr = taken.local_addr().expect("addr");
    let first = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend one\n\
         backend one\n    server a {}\nbackend two\n    server b {}\n",
        a.addr, b.addr
    );
    let mut shoal = Shoal::start(&first, &["fe"]);
    let fe = shoal.addr("fe");
    assert_eq!(get(fe, "/").await.server(), "a");

    // The new file reroutes fe and adds a frontend on the taken address.
    let second = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend two\n\
         frontend more\n    bind {taken_addr}\n    default_backend two\n\
         backend one\n    server a {}\nbackend two\n    server b {}\n",
        a.addr, b.addr
    );
    let line = refused_reload(&mut shoal, &second);
    assert!(
        line.contains("cannot bind") && line.contains(&taken_addr.to_string()),
        "why: {line}"
    );
    assert_eq!(get(fe, "/").await.server(), "a", "routing unchanged");

    // Once the address is free, the same file applies in full.
    drop(taken);
    shoal.reload(&second, &["more"]);
    assert_eq!(get(fe, "/").await.server(), "b");
    assert_eq!(get(shoal.addr("more"), "/").await.server(), "b");
    assert_eq!(reload_notices(&mut shoal), 1, "only the good reload");
}
