//! One test per class of bad config: each asserts the exact line and the
//! message, as `shoal check` prints them (`FILE:LINE: message`).

use shoal_proto::config::{parse, Parsed};

fn errors(text: &str) -> Vec<String> {
    match parse(text, "bad.cfg") {
        Ok(p) => panic!("expected errors, got a config: {:#?}", p.config),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

fn ok(text: &str) -> Parsed {
    match parse(text, "ok.cfg") {
        Ok(p) => p,
        Err(e) => panic!("unexpected errors: {e:#?}"),
    }
}

fn assert_has(errors: &[String], want: &str) {
    assert!(
        errors.iter().any(|e| e == want),
        "missing {want:?} in {errors:#?}"
    );
}

#[test]
fn unknown_keyword_with_near_miss_hint() {
    let e = errors(
        "backend be
    blance roundrobin
    frobnicate yes
    server s1 127.0.0.1:80 chek
",
    );
    assert_eq!(
        e,
        [
            "bad.cfg:2: unknown keyword 'blance' in 'backend' section; did you mean 'balance'?",
            "bad.cfg:3: unknown keyword 'frobnicate' in 'backend' section",
            "bad.cfg:4: unknown server option 'chek'; did you mean 'check'?",
        ]
    );
    let e = errors("global\n    maxcon 100\n");
    assert_eq!(
        e,
        ["bad.cfg:2: unknown keyword 'maxcon' in 'global' section; did you mean 'maxconn'?"]
    );
    let e = errors("backend be\n    option redispach\n");
    assert_eq!(
        e,
        ["bad.cfg:2: unknown option 'redispach'; did you mean 'redispatch'?"]
    );
}

#[test]
fn use_backend_to_a_missing_backend() {
    let e = errors(
        "frontend fe
    mode http
    bind :80
    acl api path_beg /api
    use_backend api_servrs if api
    default_backend nowhere
backend api_servers
    mode http
",
    );
    assert_eq!(
        e,
        [
            "bad.cfg:5: frontend 'fe' routes to backend 'api_servrs', which is not defined; did you mean 'api_servers'?",
            "bad.cfg:6: frontend 'fe' routes to backend 'nowhere', which is not defined",
        ]
    );
}

#[test]
fn routing_to_a_frontend_is_an_error() {
    let e = errors("frontend a\n    bind :80\n    default_backend b\nfrontend b\n    bind :81\n    default_backend a\n");
    assert_has(
        &e,
        "bad.cfg:3: frontend 'a' routes to 'b', which is a frontend, not a backend",
    );
    assert_has(
        &e,
        "bad.cfg:6: frontend 'b' routes to 'a', which is a frontend, not a backend",
    );
}

#[test]
fn bad_server_addresses() {
    let e = errors(
        "backend be
    server a 10.0.0.300:80
    server b 10.0.0.1:99999
    server c 10.0.0.1:http
    server d bad_host!:80
    server e
",
    );
    assert_eq!(
        e,
        [
            "bad.cfg:2: malformed address '10.0.0.300' in server address '10.0.0.300:80'",
            "bad.cfg:3: invalid port '99999' (expected 1..65535) in server address '10.0.0.1:99999'",
            "bad.cfg:4: invalid port 'http' (expected 1..65535) in server address '10.0.0.1:http'",
            "bad.cfg:5: malformed address 'bad_host!' in server address 'bad_host!:80'",
            "bad.cfg:6: 'server e' expects an address (HOST[:PORT])",
        ]
    );
}

#[test]
fn mode_mismatch_in_either_direction() {
    let e = errors(
        "frontend web
    mode http
    bind :80
    default_backend db
frontend raw
    mode tcp
    bind :81
    default_backend app
backend db
    mode tcp
backend app
    mode http
",
    );
    assert_eq!(
        e,
        [
            "bad.cfg:4: frontend 'web' is in mode http but routes to backend 'db' in mode tcp; modes must match",
            "bad.cfg:8: frontend 'raw' is in mode tcp but routes to backend 'app' in mode http; modes must match",
        ]
    );
}

#[test]
fn duplicate_names() {
    let e = errors(
        "frontend app
    bind :80
    default_backend app
backend app
    server s1 127.0.0.1:80
    server s1 127.0.0.1:81
backend app
listen app
    bind :82
",
    );
    assert_eq!(
        e,
        [
            "bad.cfg:6: server 's1' is already defined in backend 'app' at line 5",
            "bad.cfg:7: backend 'app' has the same name as backend 'app' declared at line 4",
            "bad.cfg:8: listen 'app' has the same name as frontend 'app' declared at line 1",
        ]
    );
}

#[test]
fn weight_out_of_range() {
    let e =
        errors("backend be\n    server s1 127.0.0.1:80 weight 300\n    default-server weight -1\n");
    assert_eq!(
        e,
        [
            "bad.cfg:2: 'weight' value must be between 0 and 256 (was 300)",
            "bad.cfg:3: 'weight' value must be between 0 and 256 (was -1)"
        ]
    );
}

#[test]
fn bad_durations() {
    let e = errors(
        "defaults
    timeout client 30x
    timeout server 1.5s
    timeout connect 30d
    timeout conect 5s
backend be
    server s 127.0.0.1:80 inter fast
",
    );
    assert_eq!(
        e,
        [
            "bad.cfg:2: 'timeout client': invalid duration '30x' (expected a number with an optional unit: us, ms, s, m, h or d)",
            "bad.cfg:3: 'timeout server': invalid duration '1.5s' (expected a number with an optional unit: us, ms, s, m, h or d)",
            "bad.cfg:4: 'timeout connect': timer overflow in '30d' (the maximum is 2147483647 ms, about 24.8 days)",
            "bad.cfg:5: unknown timeout 'conect'; did you mean 'connect'?",
            "bad.cfg:7: 'inter': invalid duration 'fast' (expected a number with an optional unit: us, ms, s, m, h or d)",
        ]
    );
}

#[test]
fn keyword_in_the_wrong_section() {
    let e = errors(
        "backend be
    bind :80
    default_backend other
frontend fe
    bind :81
    server s 127.0.0.1:80
    cookie SRV insert
defaults
    use_backend be
",
    );
    assert_eq!(
        e,
        [
            "bad.cfg:2: 'bind' is not allowed in 'backend' section",
            "bad.cfg:3: 'default_backend' is not allowed in 'backend' section",
            "bad.cfg:6: 'server' is not allowed in 'frontend' section",
            "bad.cfg:7: 'cookie' is not allowed in 'frontend' section",
            "bad.cfg:9: 'use_backend' is not allowed in 'defaults' section",
        ]
    );
}

/// The review's cases: each would have served plaintext, let through what
/// the operator denied, or sent what the servers do not expect.
#[test]
fn haproxy_keywords_that_change_traffic_are_refused_on_every_line() {
    let e = errors(
        "frontend fe
    bind :443 ssl crt /etc/ssl/site.pem ca-file /etc/ssl/ca.pem verify required
    bind :444 ssl crt /etc/ssl/other.pem crt-list /etc/ssl/list
    http-request deny if { src 10.0.0.1 }
    http-request set-header X-Forwarded-Proto https
    tcp-request connection reject if { src 10.0.0.2 }
    default_backend be
backend be
    server s 127.0.0.1:80 ssl verify required send-proxy
",
    );
    let tls = "refusing to start because ignoring it would serve or send plaintext where TLS was asked for";
    let rules = "refusing to start because ignoring it would skip its access-control, rewriting and redirect rules";
    assert_eq!(
        e,
        [
            // No `mode http` here: the set-header rule that Shoal now
            // implements cannot apply.
            "bad.cfg:1: 'http-request' rules need 'mode http', but frontend 'fe' is in mode tcp".to_string(),
            format!("bad.cfg:2: bind option 'ca-file' is not implemented by Shoal; {tls}"),
            format!("bad.cfg:2: bind option 'verify' is not implemented by Shoal; {tls}"),
            format!("bad.cfg:3: bind option 'crt-list' is not implemented by Shoal; {tls}"),
            format!("bad.cfg:4: 'http-request deny' is not implemented by Shoal; {rules}"),
            "bad.cfg:6: 'tcp-request' is not implemented by Shoal; refusing to start because ignoring it would skip its connection and content filtering rules".to_string(),
            "bad.cfg:9: server option 'send-proxy' is not implemented by Shoal; refusing to start because ignoring it would drop or misread the PROXY protocol header peers rely on".to_string(),
            "bad.cfg:9: server 's': verify is enabled by default but no CA file specified. If you're running on a LAN where you're certain to trust the server's certificate, please set an explicit 'verify none' statement on the 'server' line".to_string(),
        ]
    );
}

/// One representative of each class of refused keyword, in each place a
/// keyword can be: proxy, option, global, bind, server, section, forms.
#[test]
fn every_kind_of_refused_keyword_names_its_line() {
    let cases = [
        (
            "frontend f\n    bind :80 accept-proxy\n",
            "bind option 'accept-proxy'",
        ),
        (
            "frontend f\n    bind :80\n    redirect scheme https\n",
            "'redirect'",
        ),
        (
            "frontend f\n    bind :80\n    rate-limit sessions 10\n",
            "'rate-limit'",
        ),
        (
            "backend b\n    errorfile 503 /etc/haproxy/503.http\n",
            "'errorfile'",
        ),
        ("backend b\n    reqrep ^a b\n", "'reqrep'"),
        ("backend b\n    source 10.0.0.1\n", "'source'"),
        ("backend b\n    use-server s if TRUE\n", "'use-server'"),
        ("backend b\n    force-persist if TRUE\n", "'force-persist'"),
        ("backend b\n    option tcp-check\n", "'option tcp-check'"),
        (
            "backend b\n    option forwardfor header X-Client\n",
            "'option forwardfor header'",
        ),
        (
            "backend b\n    server s 10.0.0.1:80 send-proxy-v2\n",
            "server option 'send-proxy-v2'",
        ),
        (
            "backend b\n    server s 10.0.0.1:80 check-ssl\n",
            "server option 'check-ssl'",
        ),
        (
            "backend b\n    balance rdp-cookie\n",
            "'balance rdp-cookie'",
        ),
        (
            "backend b\n    cookie S insert attr SameSite=None\n",
            "'cookie attr'",
        ),
        (
            "backend b\n    http-check disable-on-404\n",
            "'http-check disable-on-404'",
        ),
        (
            "listen l\n    bind :80\n    stats scope be\n",
            "'stats scope'",
        ),
        ("listen l\n    bind :80\n    disabled\n", "'disabled'"),
        ("global\n    maxconnrate 100\n", "'maxconnrate'"),
        ("global\n    lua-load /etc/haproxy/x.lua\n", "'lua-load'"),
        (
            "global\n    stats socket /run/s.sock user haproxy\n",
            "stats socket option 'user'",
        ),
        ("global\n    daemon\nprogram sidecar\n", "section 'program'"),
    ];
    for (text, label) in cases {
        let e = errors(text);
        let line = text.lines().count();
        let want = format!("bad.cfg:{line}: {label} is not implemented by Shoal; refusing to start because ignoring it would ");
        assert!(
            e.len() == 1 && e[0].starts_with(&want),
            "{text:?}: want {want:?}... in {e:#?}"
        );
    }
}

/// What only tunes performance or logs is a warning, once per keyword.
#[test]
fn harmless_haproxy_keywords_warn_once() {
    let p = ok("global
    cpu-map auto:1/1-4 0-3
    tune.ssl.cachesize 100000
frontend fe
    bind :80 tfo backlog 100
    bind :81 tfo
    option dontlognull
    option dontlognull
    no option http-buffer-request
    no option checkcache
    log-format %ci
    default_backend be
backend be
    server s 127.0.0.1:80 tfo
    server t 127.0.0.1:81 tfo
");
    let got: Vec<String> = p.warnings.iter().map(ToString::to_string).collect();
    let perf = "ignored (it only tunes performance or resource use)";
    assert_eq!(
        got,
        [
            format!("ok.cfg:2: 'cpu-map' is not implemented by Shoal yet; {perf}"),
            format!("ok.cfg:3: 'tune.ssl.cachesize' is not implemented by Shoal yet; {perf}"),
            format!("ok.cfg:5: bind option 'tfo' is not implemented by Shoal yet; {perf}"),
            format!("ok.cfg:5: bind option 'backlog' is not implemented by Shoal yet; {perf}"),
            "ok.cfg:7: 'option dontlognull' is not implemented by Shoal yet; ignored (it only changes logs or statistics)".to_string(),
            "ok.cfg:11: 'log-format' is not implemented by Shoal yet; ignored (it only changes logs or statistics)".to_string(),
            format!("ok.cfg:14: server option 'tfo' is not implemented by Shoal yet; {perf}"),
        ]
    );
}

#[test]
fn frontend_without_bind() {
    let e =
        errors("frontend fe\n    mode http\n    default_backend be\nbackend be\n    mode http\n");
    assert_eq!(e, ["bad.cfg:1: frontend 'fe' has no 'bind' line; declare it as a backend if it only has servers"]);
}

#[test]
fn acl_not_defined_and_http_fetch_in_tcp_mode() {
    let e = errors(
        "frontend fe
    mode tcp
    bind :80
    acl is_api path_beg /api
    acl lan src 10.0.0.0/8
    use_backend be if is_apii
    use_backend be if lan { hdr(host) -i a.com }
    default_backend be
backend be
",
    );
    assert_eq!(
        e,
        [
            "bad.cfg:4: acl 'is_api' uses 'path', which needs 'mode http', but frontend 'fe' is in mode tcp",
            "bad.cfg:6: acl 'is_apii' is not defined (an acl must be declared before use in the same section); did you mean 'is_api'?",
            "bad.cfg:7: anonymous acl uses 'hdr(host)', which needs 'mode http', but frontend 'fe' is in mode tcp",
        ]
    );
}

#[test]
fn missing_arguments() {
    let e = errors("backend be\n    balance\n    retries\n    cookie\n    hash-type\nfrontend fe\n    bind\n    default_backend\n    use_backend\n");
    assert_eq!(
        e,
        [
            "bad.cfg:2: 'balance' expects an algorithm (roundrobin, leastconn, source, ...)",
            "bad.cfg:3: 'retries' expects a number",
            "bad.cfg:4: 'cookie' expects a cookie name",
            "bad.cfg:5: 'hash-type' expects 'map-based' or 'consistent'",
            "bad.cfg:6: frontend 'fe' has no 'bind' line; declare it as a backend if it only has servers",
            "bad.cfg:7: 'bind' expects an address such as ':80' or '10.0.0.1:443'",
            "bad.cfg:8: 'default_backend' expects a backend name",
            "bad.cfg:9: 'use_backend' expects a backend name",
        ]
    );
}

#[test]
fn unmatched_quote_and_text_outside_sections() {
    let e = errors("maxconn 10\nbackend be\n    server s \"127.0.0.1:80\n");
    assert_eq!(
        e,
        [
            "bad.cfg:1: 'maxconn' is outside of any section",
            "bad.cfg:3: unmatched double quote"
        ]
    );
}

#[test]
fn bad_passive_health_check_options() {
    let e = errors(
        "backend be
    server a 10.0.0.1:80 observe layer5
    server b 10.0.0.2:80 error-limit 0
    server c 10.0.0.3:80 error-limit many
    server d 10.0.0.4:80 on-error reboot
    server e 10.0.0.5:80 on-marked-down kill
    default-server on-error mark-dwn
    server f 10.0.0.6:80 observe
",
    );
    assert_eq!(
        e,
        [
            "bad.cfg:2: server option 'observe' expects 'layer4', 'layer7' or 'none', got 'layer5'",
            "bad.cfg:3: 'error-limit' value must be between 1 and 2147483647 (was 0)",
            "bad.cfg:4: 'error-limit' expects an integer, got 'many'",
            "bad.cfg:5: server option 'on-error' expects 'fastinter', 'fail-check', 'sudden-death' or 'mark-down', got 'reboot'",
            "bad.cfg:6: server option 'on-marked-down' expects 'shutdown-sessions', got 'kill'",
            "bad.cfg:7: server option 'on-error' expects 'fastinter', 'fail-check', 'sudden-death' or 'mark-down', got 'mark-dwn'; did you mean 'mark-down'?",
            "bad.cfg:8: server option 'observe' expects an argument",
        ]
    );
}

#[test]
fn bad_http_check_send() {
    let e = errors(
        "backend be
    http-check send meth
    http-check send verb GET
    http-check send hdr Host
    http-check send meth \"\" uri /x
    http-check send hdr \"Bad Name\" x
    http-check send uri /ok hdr
",
    );
    assert_eq!(
        e,
        [
            "bad.cfg:2: 'http-check send meth' expects an argument",
            "bad.cfg:3: unknown 'http-check send' option 'verb'; did you mean 'ver'?",
            "bad.cfg:4: 'http-check send hdr Host' expects a header value",
            "bad.cfg:5: 'http-check send meth' expects a non-empty word without spaces, got ''",
            "bad.cfg:6: 'http-check send hdr': invalid header name 'Bad Name'",
            "bad.cfg:7: 'http-check send hdr' expects a header name and a value",
        ]
    );
}

#[test]
fn bad_stick_tables() {
    let e = errors(
        "defaults
    stick-table type ip size 1k
backend a
    stick-table size 1k
    stick-table type ip
backend b
    stick-table type ipv4 size 1k
backend c
    stick-table type binary size 1k
backend d
    stick-table type ip size 10x
backend e
    stick-table type ip size 0
backend f
    stick-table type ip size 4g
backend g
    stick-table type string len 0 size 1k
backend h
    stick-table type ip size 1k store conn_cnt,bogus
backend i
    stick-table type ip size 1k store http_req_rate
backend j
    stick-table type ip size 1k
    stick-table type ip size 2k
backend k
    stick-table type ip size 1k sizee 2
backend l
    stick-table type ip size 1k expire 1x store gpc(101)
backend m
    stick-table type ip size
",
    );
    assert_eq!(
        e,
        [
            "bad.cfg:2: 'stick-table' is not allowed in 'defaults' section",
            "bad.cfg:4: 'stick-table' expects 'type ip|ipv6|integer|string'",
            "bad.cfg:5: 'stick-table' expects 'size N'",
            "bad.cfg:7: unknown stick-table type 'ipv4' (expected ip, ipv6, integer or string); did you mean 'ipv6'?",
            "bad.cfg:9: stick-table type 'binary' is not implemented by Shoal yet",
            "bad.cfg:11: 'stick-table size': invalid size '10x' (expected a number with an optional k, m or g suffix)",
            "bad.cfg:13: 'stick-table size': the size must be greater than zero",
            "bad.cfg:15: 'stick-table size': size '4g' is too large (the maximum is 4294967295)",
            "bad.cfg:17: 'stick-table type string len' expects a positive integer",
            "bad.cfg:19: 'stick-table store': unknown data type 'bogus'",
            "bad.cfg:21: 'stick-table store': data type 'http_req_rate' expects a period, as in http_req_rate(10s)",
            "bad.cfg:24: backend 'j' already declares a stick-table at line 23",
            "bad.cfg:26: unknown 'stick-table' argument 'sizee'; did you mean 'size'?",
            "bad.cfg:28: 'stick-table expire': invalid duration '1x' (expected a number with an optional unit: us, ms, s, m, h or d)",
            "bad.cfg:28: 'stick-table store': 'gpc' expects an element count from 1 to 100, got '101'",
            "bad.cfg:30: 'stick-table size' expects an argument",
        ]
    );
}

#[test]
fn bad_stick_rules() {
    let e = errors(
        "defaults
    stick on src
frontend fe
    bind :80
    stick-table type ip size 1k
    default_backend a
backend a
    stick on src
    stick match src table nowhere
    stick on src table b
    stick on src table mypeers/t
    stick on dst
    stick on src,ipmask(24)
    stick on req.hdr(x-forwarded-for,-1)
    stick on
    stick remember src
    stick on src tabel a
    stick on src if missing_acl
    stick on req.cook()
    stick match src table fe2
backend b
backend fe
    stick-table type ip size 1k
",
    );
    assert_eq!(
        e,
        [
            "bad.cfg:2: 'stick' is not allowed in 'defaults' section",
            "bad.cfg:8: stick rule needs a stick-table, but backend 'a' declares none (add a 'stick-table' line, or name another proxy's table with 'table NAME')",
            "bad.cfg:9: stick rule uses table 'nowhere', which is not declared (a table is named after the proxy that declares it)",
            "bad.cfg:10: stick rule uses table 'b', but backend 'b' declares no stick-table",
            "bad.cfg:11: stick rule uses table 'mypeers/t': tables of 'peers' sections are not implemented by Shoal yet",
            "bad.cfg:12: 'stick on': pattern 'dst' is not implemented by Shoal yet (Shoal supports src, req.cook(NAME) and req.hdr(NAME))",
            "bad.cfg:13: 'stick on': converters ('src,ipmask(24)') are not implemented by Shoal yet",
            "bad.cfg:14: 'stick on': header occurrence in 'req.hdr(x-forwarded-for,-1)' is not implemented by Shoal yet",
            "bad.cfg:15: 'stick on' expects a pattern such as 'src' or 'req.cook(NAME)'",
            "bad.cfg:16: unknown 'stick' action 'remember' (expected on, match, store-request or store-response)",
            "bad.cfg:17: 'stick on': unexpected argument 'tabel' (expected 'table NAME', or 'if'/'unless' and a condition)",
            "bad.cfg:18: acl 'missing_acl' is not defined (an acl must be declared before use in the same section)",
            "bad.cfg:19: 'stick on': 'req.cook' needs a cookie name, as in req.cook(SESSIONID)",
            "bad.cfg:20: stick rule uses table 'fe2', which is not declared (a table is named after the proxy that declares it); did you mean 'fe'?",
            "bad.cfg:23: stick-table of backend 'fe' has the same name as the one of frontend 'fe' declared at line 5 (a table is named after its proxy)",
        ]
    );
}
