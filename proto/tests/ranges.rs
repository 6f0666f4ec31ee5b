//! Values out of the range HAProxy 2.6 accepts are errors naming the line,
//! in HAProxy's wording where it has one (checked against `haproxy -c`).

use shoal_proto::config::{parse, Parsed};
use std::time::Duration;

fn errors(text: &str) -> Vec<String> {
    match parse(text, "r.cfg") {
        Ok(p) => panic!(
            "expected errors for {text:?}, got a config: {:#?}",
            p.config
        ),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

fn ok(text: &str) -> Parsed {
    match parse(text, "r.cfg") {
        Ok(p) => p,
        Err(e) => panic!("unexpected errors for {text:?}: {e:#?}"),
    }
}

/// `(config, the one error it must give)`.
fn refused(cases: &[(&str, &str)]) {
    for (text, want) in cases {
        assert_eq!(errors(text), [*want], "{text:?}");
    }
}

#[test]
fn nbthread_is_1_to_64_as_in_haproxy_2_6() {
    // Both used to pass `shoal check` and then crash `shoal run`.
    refused(&[
        (
            "global\n    nbthread 100000\n",
            "r.cfg:2: 'nbthread' value must be between 1 and 64 (was 100000)",
        ),
        (
            "global\n    nbthread 99999999999\n",
            "r.cfg:2: 'nbthread' value must be between 1 and 64 (was 99999999999)",
        ),
        (
            "global\n    nbthread 65\n",
            "r.cfg:2: 'nbthread' value must be between 1 and 64 (was 65)",
        ),
        (
            "global\n    nbthread 0\n",
            "r.cfg:2: 'nbthread' value must be between 1 and 64 (was 0)",
        ),
        (
            "global\n    nbthread -1\n",
            "r.cfg:2: 'nbthread' value must be between 1 and 64 (was -1)",
        ),
        (
            "global\n    nbthread four\n",
            "r.cfg:2: 'nbthread' expects an integer, got 'four'",
        ),
    ]);
    assert_eq!(
        ok("global\n    nbthread 64\n").config.global.nbthread,
        Some(64)
    );
    assert_eq!(
        ok("global\n    nbthread 1\n").config.global.nbthread,
        Some(1)
    );
}

#[test]
fn balance_random_draws_are_bounded() {
    // HAProxy reads N into a positive int (the balancer caps the draws it
    // makes at the number of servers: random(4294967295) used to burn 12 s
    // of CPU per request).
    refused(&[
        (
            "backend b\n    balance random(4294967295)\n",
            "r.cfg:2: 'balance random(N)' value must be between 1 and 2147483647 (was 4294967295)",
        ),
        (
            "backend b\n    balance random(0)\n",
            "r.cfg:2: 'balance random(N)' value must be between 1 and 2147483647 (was 0)",
        ),
        (
            "backend b\n    balance random(x)\n",
            "r.cfg:2: 'balance random(N)' expects an integer, got 'x'",
        ),
    ]);
    ok("backend b\n    balance random(2147483647)\n");
}

#[test]
fn retries_are_bounded() {
    refused(&[
        (
            "backend b\n    retries 4294967295\n",
            "r.cfg:2: 'retries' value must be between 0 and 2147483647 (was 4294967295)",
        ),
        (
            "backend b\n    retries -1\n",
            "r.cfg:2: 'retries' value must be between 0 and 2147483647 (was -1)",
        ),
    ]);
    let p = ok("backend b\n    retries 0\nbackend c\n    retries 2147483647\n");
    assert_eq!(p.config.proxies[0].retries, Some(0));
    assert_eq!(p.config.proxies[1].retries, Some(2147483647));
}

#[test]
fn maxconn_is_an_int_and_zero_means_unset() {
    refused(&[
        (
            "global\n    maxconn 2147483648\n",
            "r.cfg:2: 'maxconn' value must be between 0 and 2147483647 (was 2147483648)",
        ),
        (
            "frontend f\n    bind :80\n    maxconn -5\n",
            "r.cfg:3: 'maxconn' value must be between 0 and 2147483647 (was -5)",
        ),
        (
            "backend b\n    server s 10.0.0.1:80 maxconn 99999999999\n",
            "r.cfg:2: 'maxconn' value must be between 0 and 2147483647 (was 99999999999)",
        ),
        (
            "backend b\n    server s 10.0.0.1:80 maxqueue -1\n",
            "r.cfg:2: 'maxqueue' value must be between 0 and 2147483647 (was -1)",
        ),
    ]);
    // HAProxy: "When this value is set to zero, which is the default, the
    // global maxconn value is used" (and a global 0 is computed). Shoal
    // used to read 0 as a limit of zero connections.
    let p = ok("global\n    maxconn 0\ndefaults\n    maxconn 100\nfrontend f\n    bind :80\n    maxconn 0\nfrontend g\n    bind :81\n");
    assert_eq!(p.config.global.maxconn, None);
    assert_eq!(
        p.config.proxies[0].maxconn, None,
        "0 overrides the defaults"
    );
    assert_eq!(p.config.proxies[1].maxconn, Some(100));
    // For a server, 0 is "no limit", which the node reads as such.
    let p = ok("backend b\n    server s 10.0.0.1:80 maxconn 0 maxqueue 0\n");
    let s = &p.config.proxies[0].servers[0];
    assert_eq!((s.maxconn, s.maxqueue), (Some(0), Some(0)));
}

#[test]
fn server_counts_and_intervals() {
    refused(&[
        (
            "backend b\n    server s 10.0.0.1:80 weight 257\n",
            "r.cfg:2: 'weight' value must be between 0 and 256 (was 257)",
        ),
        (
            "backend b\n    server s 10.0.0.1:80 rise 0\n",
            "r.cfg:2: 'rise' value must be between 1 and 2147483647 (was 0)",
        ),
        (
            "backend b\n    default-server fall 0\n",
            "r.cfg:2: 'fall' value must be between 1 and 2147483647 (was 0)",
        ),
        (
            "backend b\n    server s 10.0.0.1:80 rise 99999999999\n",
            "r.cfg:2: 'rise' value must be between 1 and 2147483647 (was 99999999999)",
        ),
        (
            "backend b\n    server s 10.0.0.1:80 error-limit 0\n",
            "r.cfg:2: 'error-limit' value must be between 1 and 2147483647 (was 0)",
        ),
        (
            "backend b\n    server s 10.0.0.1:80 inter 0\n",
            "r.cfg:2: server option 'inter' must be greater than zero",
        ),
        (
            "backend b\n    server s 10.0.0.1:80 fastinter 0s\n",
            "r.cfg:2: server option 'fastinter' must be greater than zero",
        ),
        (
            "backend b\n    server s 10.0.0.1:80 downinter 0ms\n",
            "r.cfg:2: server option 'downinter' must be greater than zero",
        ),
        (
            "backend b\n    server s 10.0.0.1:80 inter 2147483648\n",
            "r.cfg:2: 'inter': timer overflow in '2147483648' (the maximum is 2147483647 ms, about 24.8 days)",
        ),
        (
            "backend b\n    server s 10.0.0.1:80 slowstart 25d\n",
            "r.cfg:2: 'slowstart': timer overflow in '25d' (the maximum is 2147483647 ms, about 24.8 days)",
        ),
        (
            "backend b\n    server s 10.0.0.1:80 port 0\n",
            "r.cfg:2: server option 'port' expects a port number (1..65535), got '0'",
        ),
        (
            "backend b\n    server s 10.0.0.1:80 port 65536\n",
            "r.cfg:2: server option 'port' expects a port number (1..65535), got '65536'",
        ),
        (
            "backend b\n    server s 10.0.0.1:0\n",
            "r.cfg:2: invalid port '0' (expected 1..65535) in server address '10.0.0.1:0'",
        ),
    ]);
    let p = ok("backend b\n    server s 10.0.0.1:80 weight 256 rise 2147483647 inter 2147483647 slowstart 0 port 65535\n");
    let s = &p.config.proxies[0].servers[0];
    assert_eq!(
        (s.weight, s.rise, s.check_port),
        (Some(256), Some(i32::MAX as u32), Some(65535))
    );
}

#[test]
fn timeouts_overflow_and_zero() {
    refused(&[
        (
            "defaults\n    timeout client 2147483648\n",
            "r.cfg:2: 'timeout client': timer overflow in '2147483648' (the maximum is 2147483647 ms, about 24.8 days)",
        ),
        (
            "defaults\n    timeout server 25d\n",
            "r.cfg:2: 'timeout server': timer overflow in '25d' (the maximum is 2147483647 ms, about 24.8 days)",
        ),
        (
            "global\n    stats timeout 0\n",
            "r.cfg:2: 'stats timeout' expects a positive value",
        ),
        (
            "backend b\n    stick-table type ip size 1k expire 25d\n",
            "r.cfg:2: 'stick-table expire': timer overflow in '25d' (the maximum is 2147483647 ms, about 24.8 days)",
        ),
    ]);
    // In HAProxy a timeout of 0 is "no timeout", the same as unset.
    let p = ok("defaults\n    timeout client 30s\n    timeout connect 5s\nfrontend f\n    bind :80\n    timeout client 0\nbackend b\n    timeout connect 0ms\n    timeout server 2147483647\n");
    assert_eq!(p.config.proxies[0].timeouts.client, None);
    let b = &p.config.proxies[1].timeouts;
    assert_eq!(b.connect, None);
    assert_eq!(b.server, Some(Duration::from_millis(2_147_483_647)));
}

#[test]
fn tune_limits() {
    refused(&[
        (
            "global\n    tune.bufsize 268435456\n",
            "r.cfg:2: 'tune.bufsize' value must be between 1024 and 268435455 (was 268435456)",
        ),
        (
            "global\n    tune.bufsize 0\n",
            "r.cfg:2: 'tune.bufsize' value must be between 1024 and 268435455 (was 0)",
        ),
        (
            "global\n    tune.http.maxhdr 32768\n",
            "r.cfg:2: 'tune.http.maxhdr' value must be between 1 and 32767 (was 32768)",
        ),
        (
            "global\n    tune.http.maxhdr 0\n",
            "r.cfg:2: 'tune.http.maxhdr' value must be between 1 and 32767 (was 0)",
        ),
    ]);
    let g = ok("global\n    tune.bufsize 268435455\n    tune.http.maxhdr 32767\n")
        .config
        .global;
    assert_eq!(
        (g.tune_bufsize, g.tune_maxhdr),
        (Some(268_435_455), Some(32_767))
    );
}

#[test]
fn ports() {
    refused(&[
        (
            "backend b\nfrontend f\n    bind :80\n    bind :65536\n    default_backend b\n",
            "r.cfg:4: invalid port '65536' (expected 1..65535) in bind address ':65536'",
        ),
        (
            "backend b\nfrontend f\n    bind :80\n    bind :0-10\n    default_backend b\n",
            "r.cfg:4: invalid port '0' (expected 1..65535) in bind address ':0-10'",
        ),
        (
            "global\n    stats socket ipv4@127.0.0.1:99999\n",
            "r.cfg:2: 'stats socket': invalid port '99999' (expected 1..65535) in address 'ipv4@127.0.0.1:99999'",
        ),
        (
            "global\n    stats socket 127.0.0.1:http\n",
            "r.cfg:2: 'stats socket': invalid port 'http' (expected 1..65535) in address '127.0.0.1:http'",
        ),
        (
            "global\n    stats socket ipv4@127.0.0.1\n",
            "r.cfg:2: 'stats socket': missing port in address 'ipv4@127.0.0.1'",
        ),
    ]);
    // Shoal's extension: port 0 lets the kernel choose, for tests and scripts.
    let p = ok("global\n    stats socket ipv4@127.0.0.1:0\n    stats socket /run/x.sock\n    stats socket unix@rel.sock\nbackend b\nfrontend f\n    bind 127.0.0.1:0\n    default_backend b\n");
    assert_eq!(p.config.proxies[1].binds[0].port, 0);
    assert_eq!(p.config.global.stats_sockets.len(), 3);
}
