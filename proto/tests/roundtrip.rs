//! `parse(print(c)) == c` on a config that sets every field of the model,
//! and on thousands of mutations of it (the parser must never panic, and
//! whatever it accepts must round-trip).

use shoal_proto::config::{
    parse, print, AclRef, Balance, Config, HashType, HttpCheckSend, Mode, Observe, OnError,
    ProxyKind, StickAction, StickKeyType, StickPattern,
};

const FULL: &str = r#"
global
    daemon
    maxconn 50000
    nbthread 4
    tune.bufsize 32768
    tune.http.maxhdr 200
    user shoal
    group shoal
    log /dev/log local0 info
    log stdout format raw local0
    stats socket /run/shoal/admin.sock mode 600 level admin
    stats socket ipv4@127.0.0.1:9999 level user
    stats timeout 2m
    timeout connect 3s

defaults base
    mode http
    log global
    option httplog
    option forwardfor
    option http-keep-alive
    option redispatch
    retries 2
    http-reuse always
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout queue 10s
    timeout check 2s
    timeout http-request 10s
    timeout http-keep-alive 2s
    timeout tunnel 1h
    timeout client-fin 5s
    timeout server-fin 5s
    default-server inter 2s fastinter 500ms downinter 10s rise 2 fall 3 slowstart 30s maxconn 200 maxqueue 50 observe layer7 error-limit 5 on-error mark-down
    http-check send meth GET uri /health ver HTTP/1.1 hdr Host example.com hdr X-Check "a b" body ping
    stats enable
    stats uri /haproxy?stats

frontend www
    bind :80
    bind [::]:80,*:8080
    bind 127.0.0.1:8443
    maxconn 20000
    stick-table type ipv6 size 10k store conn_cnt,http_req_rate(10s)
    acl is_api path_beg -i /api /v1
    acl is_api hdr_beg(host) -i api.
    acl is_static path_end .css .js .png
    acl is_admin path_dir admin
    acl is_ws hdr(Upgrade) -i websocket
    acl from_lan src 10.0.0.0/8 192.168.0.0/16 ::1
    acl high_port dst_port 8000:9000 ge 10000
    acl is_post method POST
    acl legacy url_sub legacy
    acl weird path -- -dash "with space" "quote\"d" 'hash#tag' tab\there ""
    acl has_cookie hdr(cookie) -m found
    acl rx path_reg ^/item/[0-9]+$ \d+\.json
    acl dom hdr_dom(host) example.com
    acl url_exact url /exact
    acl u1 url_beg /u
    acl u2 url_end .php
    acl u3 url_reg ^/x
    acl u4 url_dir img
    acl u5 url_dom cdn
    acl h1 hdr_end(host) .org
    acl h2 hdr_sub(user-agent) -i bot
    acl h3 hdr_reg(x-id) ^[a-f0-9]{8}$
    acl h4 hdr_dir(x-path) api
    acl h5 hdr_ip(x-forwarded-for) 10.0.0.0/8
    acl h6 hdr_val(x-count) gt 5
    acl p1 path -m sub admin
    acl p2 path_sub -i /login
    use_backend api if is_api !is_static || is_post from_lan
    use_backend static if is_static or { path_beg /assets /img }
    use_backend ws unless !is_ws
    use_backend admin if is_admin LOCALHOST
    use_backend admin if !{ src -m ip 10.1.0.0/16 } METH_GET
    use_backend api
    default_backend static
    stats realm Shoal\ Stats
    stats auth admin:s3cr3t
    stats auth ops:with:colon
    stats refresh 5s
    stats admin if from_lan
    stats hide-version

backend api
    balance leastconn
    hash-type consistent
    cookie SRV insert indirect nocache preserve httponly secure domain .example.com domain .example.org maxidle 30m maxlife 1d
    option httpchk GET /health HTTP/1.1\r\nHost:\ api.example.com
    http-check expect status 200-399
    http-check send hdr Host api.example.com body '{"ok": 1}'
    http-check expect ! rstring ^ERROR
    option allbackups
    option persist
    stick-table type string len 64 size 100k expire 30m store http_req_rate(10s),conn_cur store gpc(3),gpc_rate(2,1m)
    stick on req.cook(SRV)
    stick match hdr(X-User) if { path_beg /u } || METH_POST
    stick store-request cookie(JSESSIONID) table api
    server a1 10.0.0.1:8080 weight 10 check cookie a1 port 9090 observe layer4 error-limit 3 on-error fastinter on-marked-down shutdown-sessions
    server a2 10.0.0.2:8080 weight 256 check backup on-error sudden-death
    server a3 [2001:db8::3]:8080 weight 0 disabled observe none
    server a4 api4.internal:8080 check inter 1500us
    server a5 10.0.0.5

backend static
    balance uri whole
    option httpclose
    no option redispatch
    server s1 10.0.1.1:80 check

backend ws
    balance hdr(X-User)
    timeout tunnel 2h
    server w1 10.0.2.1:80

backend admin
    balance url_param session_id
    cookie ADM rewrite
    server ad1 10.0.3.1:80

defaults tcp
    mode tcp
    option tcplog
    timeout connect 1s
    timeout client 1m
    timeout server 1m

listen mysql
    bind :3306
    balance source
    option external-check
    external-check command /usr/local/bin/check_mysql
    external-check path /usr/bin:/bin
    stick-table type ip size 1m expire 1h
    acl lan src 10.0.0.0/8
    stick on src
    stick match src table rnd unless lan
    server db1 10.0.4.1:3306 check observe layer4 on-error fail-check
    server db2 10.0.4.2:3306 check backup

listen redis from tcp
    bind 127.0.0.1:6379
    balance first
    maxconn 100
    server r1 10.0.5.1:6379 maxconn 50 check

frontend tcp_front
    bind :5000-5002
    acl lan src 10.0.0.0/8
    use_backend rnd if lan
    default_backend static_rr

backend static_rr
    balance static-rr
    cookie PFX prefix
    stick-table type integer size 1k expire 10s
    server s 10.0.6.1:5000

backend rnd
    balance random(3)
    hash-type map-based
    stick-table type ip size 1g
    stick store-request src table www
    server s 10.0.6.2
"#;

fn round_trip(config: &Config) -> Result<(), String> {
    let printed = print(config);
    let again = parse(&printed, "printed")
        .map_err(|e| format!("printed config rejected: {e:#?}\n{printed}"))?;
    if &again.config != config {
        return Err(format!(
            "round trip changed the config; printed:\n{printed}"
        ));
    }
    Ok(())
}

#[test]
fn full_config_round_trips() {
    let parsed = match parse(FULL, "full.cfg") {
        Ok(p) => p,
        Err(e) => panic!("{e:#?}"),
    };
    let c = &parsed.config;
    // Spot checks that the config really exercises the model.
    assert_eq!(c.proxies.len(), 10);
    assert_eq!(
        (c.global.tune_bufsize, c.global.tune_maxhdr),
        (Some(32768), Some(200))
    );
    assert_eq!(
        c.proxies[1].http_reuse,
        Some(shoal_proto::config::HttpReuse::Always),
        "inherited from 'defaults base'"
    );
    let www = &c.proxies[0];
    assert_eq!(
        (www.kind, www.mode, www.binds.len()),
        (ProxyKind::Frontend, Mode::Http, 4)
    );
    assert_eq!(www.acls.len(), 27);
    assert!(www
        .use_backends
        .iter()
        .flat_map(|u| u.cond.any_of.iter().flatten())
        .any(|t| matches!(t.acl, AclRef::Inline(_))));
    let api = &c.proxies[1];
    assert_eq!(
        (&api.balance, api.hash_type, api.servers.len()),
        (&Balance::LeastConn, HashType::Consistent, 5)
    );
    assert_eq!(
        api.servers[0].inter,
        Some(std::time::Duration::from_secs(2)),
        "default-server folded in"
    );
    assert!(c
        .proxies
        .iter()
        .any(|p| p.kind == ProxyKind::Listen && p.maxconn == Some(100)));
    // Passive health checks: default-server folded in, then overridden.
    let (a1, a2, a3) = (&api.servers[0], &api.servers[1], &api.servers[2]);
    assert_eq!(
        (
            a1.observe,
            a1.error_limit,
            a1.on_error,
            a1.on_marked_down_shutdown
        ),
        (
            Some(Observe::Layer4),
            Some(3),
            Some(OnError::FastInter),
            true
        )
    );
    assert_eq!(
        (
            a2.observe,
            a2.error_limit,
            a2.on_error,
            a2.on_marked_down_shutdown
        ),
        (
            Some(Observe::Layer7),
            Some(5),
            Some(OnError::SuddenDeath),
            false
        )
    );
    assert_eq!((a3.observe, a3.on_error), (None, Some(OnError::MarkDown)));
    // `http-check send`: the backend's own rule replaces the inherited one.
    assert_eq!(
        api.http_check_send,
        Some(HttpCheckSend {
            headers: vec![("Host".into(), "api.example.com".into())],
            body: Some(r#"{"ok": 1}"#.into()),
            ..HttpCheckSend::default()
        })
    );
    let static_send = c.proxies[2].http_check_send.as_ref().expect("inherited");
    assert_eq!(
        (static_send.method.as_deref(), static_send.headers.len()),
        (Some("GET"), 2)
    );
    // Stick tables and rules.
    let table = api.stick_table.as_ref().expect("api table");
    assert_eq!(
        (table.key, table.size, table.store.len()),
        (StickKeyType::String { len: 64 }, 100 * 1024, 4)
    );
    assert_eq!(
        www.stick_table.as_ref().map(|t| t.key),
        Some(StickKeyType::Ipv6)
    );
    let rules = &api.stick_rules;
    assert_eq!(rules.len(), 3);
    assert_eq!(
        (rules[0].action, &rules[0].pattern, &rules[0].table),
        (
            StickAction::On,
            &StickPattern::ReqCookie("SRV".into()),
            &None
        )
    );
    assert_eq!(rules[1].pattern, StickPattern::ReqHdr("x-user".into()));
    assert!(rules[1].cond.is_some());
    assert_eq!(rules[2].action, StickAction::StoreRequest);
    assert_eq!(rules[2].table.as_deref(), Some("api"));
    assert_eq!(
        c.proxies.last().map(|p| &p.balance),
        Some(&Balance::Random { draws: 3 })
    );
    if let Err(e) = round_trip(c) {
        panic!("{e}");
    }
    // Printing is stable: printing the re-parsed config gives the same text.
    let once = print(c);
    let twice = parse(&once, "p")
        .map(|p| print(&p.config))
        .unwrap_or_default();
    assert_eq!(once, twice);
}

#[test]
fn mutations_never_panic_and_round_trip() {
    let lines: Vec<&str> = FULL.lines().collect();
    let extra = [
        "!", "||", "{", "}", "\"", "\\", "#", "-m", "--", "if", "0", "-1", "99999", "::", ",", "(",
        "é", "backend", "listen x",
    ];
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n.max(1) as u64) as usize
    };
    let (mut accepted, rounds) = (0, 1500);
    for _ in 0..rounds {
        let mut text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        for _ in 0..1 + next(3) {
            let i = next(text.len());
            match next(6) {
                0 => {
                    text.remove(i);
                }
                1 => {
                    let dup = text[i].clone();
                    text.insert(next(text.len()), dup);
                }
                2 => {
                    let mut words: Vec<&str> = text[i].split(' ').collect();
                    if !words.is_empty() {
                        words.remove(next(words.len()));
                    }
                    text[i] = words.join(" ");
                }
                3 => {
                    let w = extra[next(extra.len())];
                    let pos = text[i]
                        .char_indices()
                        .map(|(p, _)| p)
                        .nth(next(text[i].chars().count() + 1))
                        .unwrap_or(text[i].len());
                    text[i].insert_str(pos, w);
                }
                4 => {
                    let keep = next(text[i].chars().count() + 1);
                    text[i] = text[i].chars().take(keep).collect();
                }
                _ => {
                    let j = next(text.len());
                    text.swap(i, j);
                }
            }
        }
        let input = text.join("\n");
        if let Ok(parsed) = parse(&input, "mutant") {
            accepted += 1;
            if let Err(e) = round_trip(&parsed.config) {
                panic!("{e}\ninput:\n{input}");
            }
        }
    }
    assert!(
        accepted > rounds / 10,
        "only {accepted} of {rounds} mutants were accepted; the test is too weak"
    );
}
