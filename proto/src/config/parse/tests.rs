//! Unit tests of the parser: tokenizer, values, sections and inheritance.
//! Error classes and the seed configs are tested in proto/tests/.

use super::lexer::MAX_WORDS;
use super::{addr, duration, lexer, parse, parse_with_env, stick};
use crate::config::*;
use std::time::Duration;

fn ok(text: &str) -> Parsed {
    match parse(text, "t.cfg") {
        Ok(p) => p,
        Err(e) => panic!("unexpected errors: {e:#?}"),
    }
}

fn errors(text: &str) -> Vec<String> {
    match parse(text, "t.cfg") {
        Ok(p) => panic!("expected errors, got {:#?}", p.config),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

fn proxy<'a>(p: &'a Parsed, name: &str) -> &'a Proxy {
    p.config
        .proxies
        .iter()
        .find(|x| x.name == name)
        .expect("proxy exists")
}

/// The environment the lexer tests see.
fn test_env(name: &str) -> Option<String> {
    let value = match name {
        "FOO" => "bar",
        "EMPTY" => "",
        "V" => "client  5s",
        "LEAD" => " a",
        "TRAIL" => "a ",
        "WS" => "a\t\n\x0b\x0c\rb",
        "MANY" => return Some("w ".repeat(MAX_WORDS)),
        _ => return None,
    };
    Some(value.to_string())
}

/// Splits `line` as line 7 of `t.cfg`, in section `fe`, with [`test_env`].
fn split(line: &str) -> Result<Vec<String>, String> {
    let vars = lexer::Vars {
        env: &test_env,
        file: "t.cfg",
        line: 7,
        section: "fe",
    };
    lexer::split(line, &vars)
}

fn words(line: &str) -> Vec<String> {
    split(line).expect("lexes")
}

#[test]
fn tokenizer_follows_haproxy() {
    assert_eq!(words("  bind :80   # comment"), ["bind", ":80"]);
    assert_eq!(
        words("a\\ b \"c d\" 'e \\n f' g#h"),
        ["a b", "c d", "e \\n f", "g"]
    );
    assert_eq!(words(r"x\r\n\t\\\#\x41"), ["x\r\n\t\\#A"]);
    assert_eq!(words(r#"say "it's \"ok\"""#), ["say", "it's \"ok\""]);
    assert_eq!(
        words(r"path_reg ^/api/\d+\.json$"),
        ["path_reg", r"^/api/\d+\.json$"]
    );
    assert_eq!(words("empty \"\" x"), ["empty", "", "x"]);
    assert_eq!(words("con\"cat\"'en'ated"), ["concatenated"]);
    assert_eq!(words("trailing\\"), ["trailing\\"]);
    assert!(split("open \"quote").is_err());
    assert!(split("bad \\xZZ").is_err());
    assert!(split("bad \\xff").is_err(), "invalid UTF-8");
    assert!(split("acl a path_reg \"^/x$\"")
        .expect_err("refused")
        .contains("forbidden first character"));
    // `\$` is a literal `$` inside double quotes (outside, it stays `\$`).
    assert_eq!(
        words(r#"a "\$HOME" \$x '$y'"#),
        ["a", "$HOME", "\\$x", "$y"]
    );
    assert_eq!(words(&"w ".repeat(64)).len(), 64);
    assert!(split(&"w ".repeat(65))
        .expect_err("refused")
        .contains("too many words"));
}

/// Each case was checked against HAProxy 2.6.12 (`haproxy -c`, with the
/// expanded word shown in its "unknown keyword" error).
#[test]
fn variables_expand_inside_double_quotes_as_in_haproxy() {
    let cases: &[(&str, &str)] = &[
        (r#""A${FOO}B""#, "AbarB"),
        (r#""A$FOO.B""#, "Abar.B"),
        (r#""A${FOO}${FOO}B""#, "AbarbarB"),
        (r#""A$EMPTY""#, "A"),
        // Not inside double quotes: as written.
        ("'A${FOO}B'", "A${FOO}B"),
        ("A${FOO}B", "A${FOO}B"),
        (r#""A\${FOO}B""#, "A${FOO}B"),
        (r"A\$FOO", r"A\$FOO"),
        // Defaults replace an unset variable, not an empty one, and run
        // to the first `}` as written.
        (r#""A${UNDEF-dflt}B""#, "AdfltB"),
        (r#""A${FOO-dflt}B""#, "AbarB"),
        (r#""A${EMPTY-dflt}B""#, "AB"),
        (r#""A${UNDEF-}B""#, "AB"),
        (r#""A${UNDEF-x y}B""#, "Ax yB"),
        (r#""A${X-a}b}B""#, "Aab}B"),
        (r#""A${UNDEF-a\"b}B""#, r#"Aa\"bB"#),
        // Pseudo-variables.
        (r#""A${.LINE}B""#, "A7B"),
        (r#""A${.FILE}B""#, "At.cfgB"),
        (r#""A${.SECTION}B""#, "AfeB"),
        (r#""A$.LINE.B""#, "A7.B"),
        // `[*]` splits only inside braces.
        (r#""${V}[*]""#, "client  5s[*]"),
        (r#""$V[*]""#, "client  5s[*]"),
    ];
    for (line, want) in cases {
        assert_eq!(split(line), Ok(vec![want.to_string()]), "{line}");
    }
}

#[test]
fn variables_split_into_words_with_star() {
    let cases: &[(&str, &[&str])] = &[
        (r#"timeout "${V[*]}""#, &["timeout", "client", "5s"]),
        (r#""x${V[*]}y" z"#, &["xclient", "5sy", "z"]),
        (r#""x${UNDEF[*]-p  q}y" z"#, &["xp", "qy", "z"]),
        (r#""x${UNDEF-p  q}y""#, &["xp  qy"]),
        (r#""x${LEAD[*]}y""#, &["x", "ay"]),
        // HAProxy makes the same empty first word (`timeout` says "got ''").
        (r#"t "${LEAD[*]}""#, &["t", "", "a"]),
        (r#""x${EMPTY[*]}y""#, &["xy"]),
        (r#"t "${EMPTY[*]}" c"#, &["t", "", "c"]),
        // Trailing whitespace makes no empty last word.
        (r#"t "${TRAIL[*]}""#, &["t", "a"]),
        (r#"t "${WS[*]}""#, &["t", "a", "b"]),
    ];
    for (line, want) in cases {
        assert_eq!(words(line), *want, "{line}");
    }
    assert!(split(r#"x "${MANY[*]}""#)
        .expect_err("refused")
        .contains("too many words"));
    assert_eq!(words(r#""${MANY[*]}""#).len(), MAX_WORDS);
}

#[test]
fn bad_variable_references_are_refused() {
    let cases = [
        (r#""A$1B""#, "forbidden first character"),
        (r#""A${1}B""#, "forbidden first character"),
        (r#""$""#, "forbidden first character"),
        (
            r#""A${FOO""#,
            "unmatched brace in environment variable name '${FOO'",
        ),
        (r#""A${FOO:-x}B""#, "unmatched brace"),
        (r#""A${UNDEF-x""#, "unmatched brace"),
        (r#""A${FOO[x]}B""#, "invalid word expansion sequence"),
        (r#""A${FOO[*""#, "invalid word expansion sequence"),
        (r#""A${.NOPE}B""#, "unknown pseudo-variable '.NOPE'"),
        (r#""A${UNDEF}B""#, "environment variable 'UNDEF' is not set"),
        (r#""A$UNDEF""#, "environment variable 'UNDEF' is not set"),
        (
            r#""${UNDEF[*]}""#,
            "environment variable 'UNDEF' is not set",
        ),
        (
            r#""${HAPROXY_LOCALPEER}""#,
            "HAProxy's own HAPROXY_* variables",
        ),
    ];
    for (line, want) in cases {
        let err = split(line).expect_err(line);
        assert!(err.contains(want), "{line}: {err}");
    }
}

#[test]
fn durations_follow_haproxy() {
    let ms = Duration::from_millis;
    assert_eq!(duration::parse("500"), Ok(ms(500)));
    assert_eq!(duration::parse("500ms"), Ok(ms(500)));
    assert_eq!(duration::parse("30s"), Ok(ms(30_000)));
    assert_eq!(duration::parse("2m"), Ok(ms(120_000)));
    assert_eq!(duration::parse("1h"), Ok(ms(3_600_000)));
    assert_eq!(duration::parse("1d"), Ok(ms(86_400_000)));
    assert_eq!(duration::parse("1500us"), Ok(Duration::from_micros(1500)));
    for bad in [
        "",
        "s",
        "10x",
        "1.5s",
        "-1",
        "10 s",
        "25d",
        "99999999999999999999999",
    ] {
        assert!(duration::parse(bad).is_err(), "{bad:?} should be rejected");
    }
}

#[test]
fn bind_addresses() {
    let b = |w: &str| {
        addr::parse_binds(w).map(|v| v.into_iter().map(|b| (b.host, b.port)).collect::<Vec<_>>())
    };
    let hp = |h: &str, p: u16| (h.to_string(), p);
    assert_eq!(b(":80"), Ok(vec![hp("", 80)]));
    assert_eq!(b("*:80"), Ok(vec![hp("*", 80)]));
    assert_eq!(b("0.0.0.0:80"), Ok(vec![hp("0.0.0.0", 80)]));
    assert_eq!(b("[::]:80"), Ok(vec![hp("::", 80)]));
    assert_eq!(b(":::80"), Ok(vec![hp("::", 80)]));
    assert_eq!(b("ipv6@:80"), Ok(vec![hp("::", 80)]));
    assert_eq!(b(":80,:81"), Ok(vec![hp("", 80), hp("", 81)]));
    assert_eq!(b("lb.local:8080"), Ok(vec![hp("lb.local", 8080)]));
    assert_eq!(b(":8000-8002").map(|v| v.len()), Ok(3));
    // Shoal extension: port 0 asks the kernel for a free port.
    assert_eq!(b("127.0.0.1:0"), Ok(vec![hp("127.0.0.1", 0)]));
    for bad in [
        "1.2.3.4",
        ":0-5",
        ":65536",
        ":http",
        "1.2.3.300:80",
        ":90-80",
        ":1-60000",
        "a b:80",
        "",
    ] {
        assert!(
            addr::parse_binds(bad).is_err(),
            "{bad:?} should be rejected"
        );
    }
}

#[test]
fn server_addresses() {
    let s = |w: &str| addr::parse_server_addr(w).map(|a| (a.host, a.port));
    assert_eq!(s("10.0.0.1:80"), Ok(("10.0.0.1".into(), Some(80))));
    assert_eq!(s("10.0.0.1"), Ok(("10.0.0.1".into(), None)));
    assert_eq!(s("[::1]:8080"), Ok(("::1".into(), Some(8080))));
    assert_eq!(s("[fe80::1]"), Ok(("fe80::1".into(), None)));
    assert_eq!(s("ipv6@::1:80"), Ok(("::1".into(), Some(80))));
    assert_eq!(s("web1.local:80"), Ok(("web1.local".into(), Some(80))));
    for bad in [
        "10.0.0.1:",
        "10.0.0.1:99999",
        "10.0.0.256:80",
        "web_1..x:80",
        ":80",
        "/var/run/app.sock",
        "10.0.0.1:+10",
    ] {
        assert!(
            addr::parse_server_addr(bad).is_err(),
            "{bad:?} should be rejected"
        );
    }
    let e = addr::parse_server_addr("::1").expect_err("ambiguous");
    assert!(e.contains("[::1]"), "{e}");
}

#[test]
fn networks() {
    for good in [
        "10.0.0.1",
        "10.0.0.0/8",
        "10.0.0.0/255.0.0.0",
        "::1",
        "2001:db8::/32",
    ] {
        assert!(addr::is_ip_or_network(good), "{good}");
    }
    for bad in [
        "10.0.0.0/33",
        "10.0.0.0/255.0.255.0",
        "localhost",
        "::/129",
        "1.2.3",
    ] {
        assert!(!addr::is_ip_or_network(bad), "{bad}");
    }
}

#[test]
fn last_defaults_before_a_proxy_applies() {
    let p = ok("
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    retries 5
    option redispatch
    option httplog
    default_backend be
    default-server inter 3s fall 4
frontend fe1
    bind :80
backend be
    server s1 127.0.0.1:80 check
    default-server rise 5
    server s2 127.0.0.1:81 weight 5
defaults
    mode tcp
frontend fe2
    bind :81
    default_backend be2
backend be2
    server s3 127.0.0.1:82
");
    let fe1 = proxy(&p, "fe1");
    assert_eq!(fe1.mode, Mode::Http);
    assert_eq!(fe1.timeouts.client, Some(Duration::from_secs(30)));
    assert_eq!(
        fe1.timeouts.connect, None,
        "a frontend gets no backend timeouts"
    );
    assert_eq!(fe1.retries, None, "nor backend settings");
    assert!(fe1.options.httplog && !fe1.options.redispatch);
    assert_eq!(fe1.default_backend.as_deref(), Some("be"));
    let be = proxy(&p, "be");
    assert_eq!(
        (be.retries, be.options.redispatch, be.options.httplog),
        (Some(5), true, false)
    );
    assert_eq!(be.default_backend, None);
    let (s1, s2) = (&be.servers[0], &be.servers[1]);
    assert_eq!(
        (s1.inter, s1.fall, s1.rise, s1.check),
        (Some(Duration::from_secs(3)), Some(4), None, true)
    );
    assert_eq!(
        (s2.inter, s2.fall, s2.rise, s2.weight),
        (Some(Duration::from_secs(3)), Some(4), Some(5), Some(5))
    );
    let (fe2, be2) = (proxy(&p, "fe2"), proxy(&p, "be2"));
    assert_eq!(
        (fe2.mode, fe2.timeouts.client),
        (Mode::Tcp, None),
        "a new defaults resets everything"
    );
    assert_eq!(be2.servers[0].inter, None);
}

#[test]
fn named_defaults_and_from() {
    let p = ok("
defaults web
    mode http
    timeout client 10s
defaults web2 from web
    timeout client 20s
defaults tcp
    mode tcp
frontend a from web
    bind :80
    default_backend b
backend b from web
frontend c
    bind :81
    default_backend d
backend d
listen e from web2
    bind :82
");
    assert_eq!(proxy(&p, "a").mode, Mode::Http);
    assert_eq!(
        proxy(&p, "a").timeouts.client,
        Some(Duration::from_secs(10))
    );
    assert_eq!(
        proxy(&p, "c").mode,
        Mode::Tcp,
        "without 'from' the last defaults applies"
    );
    assert_eq!(proxy(&p, "e").mode, Mode::Http);
    assert_eq!(
        proxy(&p, "e").timeouts.client,
        Some(Duration::from_secs(20))
    );
    let e = errors("frontend a from nope\n    bind :80\n");
    assert!(e[0].contains("defaults section 'nope' not found"), "{e:?}");
}

#[test]
fn acls_and_conditions() {
    let p = ok(r#"
frontend fe
    mode http
    bind :80
    acl api path_beg -i /api /v2
    acl api path -m reg ^/rpc/\d+$
    acl host_ok hdr_dom(Host) example.com
    acl host2 req.hdr(X-Env) -m sub prod
    acl local src 10.0.0.0/8 ::1
    acl high dst_port ge 1024 8000:9000
    acl get method GET HEAD
    acl dash path -- -weird
    acl has_ua hdr(user-agent) -m found
    use_backend be if api host_ok || !local { path_end .css } or LOCALHOST
    use_backend be unless ! ! get
    use_backend be
    default_backend be
backend be
    mode http
"#);
    let fe = proxy(&p, "fe");
    let acl = |i: usize| &fe.acls[i];
    assert_eq!(
        (&acl(0).sample, acl(0).kind, acl(0).ignore_case),
        (&Sample::Path, MatchKind::Beg, true)
    );
    assert_eq!(acl(0).values, ["/api", "/v2"]);
    assert_eq!(
        (&acl(1).sample, acl(1).kind),
        (&Sample::Path, MatchKind::Reg)
    );
    assert_eq!(
        (&acl(2).sample, acl(2).kind),
        (&Sample::Hdr("host".into()), MatchKind::Dom)
    );
    assert_eq!(
        (&acl(3).sample, acl(3).kind),
        (&Sample::Hdr("x-env".into()), MatchKind::Sub)
    );
    assert_eq!((&acl(4).sample, acl(4).kind), (&Sample::Src, MatchKind::Ip));
    assert_eq!(
        (&acl(5).sample, acl(5).kind, &acl(5).values),
        (
            &Sample::DstPort,
            MatchKind::Int,
            &vec!["ge".to_string(), "1024".into(), "8000:9000".into()]
        )
    );
    assert_eq!(
        (&acl(6).sample, acl(6).kind),
        (&Sample::Method, MatchKind::Str)
    );
    assert_eq!(acl(7).values, ["-weird"]);
    assert_eq!((acl(8).kind, acl(8).values.len()), (MatchKind::Found, 0));
    let c = &fe.use_backends[0].cond;
    assert!(!c.unless);
    assert_eq!(c.any_of.len(), 3);
    assert_eq!(c.any_of[0].len(), 2);
    assert!(c.any_of[1][0].negated);
    assert!(
        matches!(&c.any_of[1][1].acl, AclRef::Inline(d) if d.kind == MatchKind::End && d.name.is_empty())
    );
    assert!(matches!(&c.any_of[2][0].acl, AclRef::Inline(d) if d.sample == Sample::Src));
    let c2 = &fe.use_backends[1].cond;
    assert!(c2.unless && !c2.any_of[0][0].negated, "two '!' cancel out");
    assert!(fe.use_backends[2].cond.is_always());
}

#[test]
fn acl_errors() {
    let e = errors("frontend fe\n    mode http\n    bind :80\n    acl a path_reg ^(unclosed\n    acl b src 10.0.0.300\n    acl c dst_port abc\n    acl d path_beg -m sub /x\n    acl e hdr_beg /x\n    acl f src -m beg 10\n    acl g path,lower /x\n    acl h cook(x) y\n    acl i pth_beg /x\n    acl j path -z /x\n    use_backend be if nope\n    use_backend be if a ||\n    use_backend be if { path_beg /x\n");
    let want = [
        (4, "invalid regex '^(unclosed'"),
        (5, "invalid IP address or network '10.0.0.300'"),
        (6, "invalid integer match 'abc'"),
        (7, "'-m' cannot be used with 'path_beg'"),
        (8, "'hdr_beg' needs a header name"),
        (9, "'-m beg' cannot be used with 'src'"),
        (10, "converters"),
        (11, "fetch 'cook' is not implemented by Shoal yet"),
        (
            12,
            "unknown fetch method 'pth_beg'; did you mean 'path_beg'?",
        ),
        (13, "'-z' is not a valid acl flag"),
        (14, "acl 'nope' is not defined"),
        (15, "condition ends with an operator"),
        (16, "missing '}'"),
    ];
    for (line, text) in want {
        let prefix = format!("t.cfg:{line}: ");
        assert!(
            e.iter().any(|m| m.starts_with(&prefix) && m.contains(text)),
            "no {text:?} at line {line} in {e:#?}"
        );
    }
}

#[test]
fn acl_must_be_declared_before_use() {
    let e = errors("frontend fe\n    mode http\n    bind :80\n    use_backend be if late\n    acl late path /x\nbackend be\n    mode http\n");
    assert!(
        e[0].starts_with("t.cfg:4: acl 'late' is not defined"),
        "{e:?}"
    );
}

#[test]
fn options_and_no_option() {
    let p = ok("
defaults
    option http-keep-alive
    option redispatch
    option forwardfor
    option tcplog
backend b
    no option redispatch
    option httpclose
    option allbackups
    option persist
    option httpchk
backend c
    option httpchk /ping
    option http-server-close
frontend f
    bind :80
    option httplog
");
    let b = proxy(&p, "b");
    assert!(!b.options.redispatch && b.options.httpclose && !b.options.http_keep_alive);
    assert!(b.options.allbackups && b.options.persist && b.options.forwardfor);
    assert_eq!(b.options.httpchk, Some(HttpChk::default()));
    let c = proxy(&p, "c");
    assert_eq!(
        c.options
            .httpchk
            .as_ref()
            .map(|h| (h.method.as_str(), h.uri.as_str())),
        Some(("OPTIONS", "/ping"))
    );
    assert!(
        !c.options.httpclose && !c.options.http_keep_alive,
        "http-server-close maps to keep-alive mode"
    );
    assert!(p
        .warnings
        .iter()
        .any(|w| w.message.contains("http-server-close")));
    let f = proxy(&p, "f");
    // httplog in a tcp frontend falls back to tcplog, as in HAProxy.
    assert!(!f.options.httplog && f.options.tcplog);
    assert!(p
        .warnings
        .iter()
        .any(|w| w.line == 18 && w.message.contains("falls back to 'option tcplog'")));
}

#[test]
fn http_check_rules_of_defaults_apply_only_to_proxies_without_their_own() {
    let p = ok("defaults\n    http-check expect status 200\nbackend a\nbackend b\n    http-check expect string ok\n    http-check expect ! status 500\n");
    assert_eq!(proxy(&p, "a").http_check_expect.len(), 1);
    let b = &proxy(&p, "b").http_check_expect;
    assert_eq!(
        (b.len(), b[0].kind, b[1].negate),
        (2, ExpectKind::String, true)
    );
}

#[test]
fn no_option_forwardfor_is_an_error() {
    let e = errors("frontend f\n    bind :80\n    no option forwardfor\n");
    assert!(
        e[0].contains("'option forwardfor' cannot be used with 'no'"),
        "{e:?}"
    );
}

#[test]
fn balance_hash_type_cookie_and_checks() {
    let p = ok("
backend a
    mode http
    balance uri whole
    hash-type consistent sdbm avalanche
    cookie SRV insert indirect nocache preserve httponly secure domain .a.com domain .b.com maxidle 30m maxlife 8h
    http-check expect ! rstatus ^5
    http-check expect string OK
    external-check command /bin/true
    external-check path /usr/bin:/bin
backend b
    mode http
    balance hdr(X-User)
backend c
    mode http
    balance random(3)
backend d
    balance url_param uid
backend e
    mode http
    balance random
");
    let a = proxy(&p, "a");
    assert_eq!(
        (&a.balance, a.hash_type),
        (&Balance::Uri { whole: true }, HashType::Consistent)
    );
    let c = a.cookie.as_ref().expect("cookie");
    assert_eq!(
        (
            c.name.as_str(),
            c.mode,
            c.indirect,
            c.nocache,
            c.preserve,
            c.httponly,
            c.secure
        ),
        ("SRV", CookieMode::Insert, true, true, true, true, true)
    );
    assert_eq!(c.domains, [".a.com", ".b.com"]);
    assert_eq!(
        (c.maxidle, c.maxlife),
        (
            Some(Duration::from_secs(1800)),
            Some(Duration::from_secs(8 * 3600))
        )
    );
    assert_eq!(
        a.http_check_expect[0],
        HttpCheckExpect {
            negate: true,
            kind: ExpectKind::Rstatus,
            pattern: "^5".into()
        }
    );
    assert_eq!(a.external_check_path.as_deref(), Some("/usr/bin:/bin"));
    assert_eq!(proxy(&p, "b").balance, Balance::Hdr("x-user".into()));
    assert_eq!(proxy(&p, "c").balance, Balance::Random { draws: 3 });
    assert_eq!(proxy(&p, "e").balance, Balance::Random { draws: 2 });
    // A layer-7 algorithm in a tcp backend falls back to roundrobin.
    assert_eq!(proxy(&p, "d").balance, Balance::RoundRobin);
    assert!(p
        .warnings
        .iter()
        .any(|w| w.line == 18 && w.message.contains("falls back to roundrobin")));
    assert!(p
        .warnings
        .iter()
        .any(|w| w.message.contains("'hash-type sdbm' is not implemented")));
}

#[test]
fn servers_and_their_options() {
    let p = ok("
backend b
    default-server check inter 2s maxconn 100
    server a 10.0.0.1:80 weight 0 backup maxqueue 5 disabled fastinter 500ms downinter 1m rise 1 fall 9 cookie A slowstart 10s port 8081
    server b 10.0.0.2 no-check enabled no-send-proxy no-ssl tfo minconn 3
    server c [2001:db8::1]:443
");
    let b = proxy(&p, "b");
    let a = &b.servers[0];
    assert_eq!(
        (a.weight, a.backup, a.maxconn, a.maxqueue, a.disabled, a.check),
        (Some(0), true, Some(100), Some(5), true, true)
    );
    assert_eq!(
        (a.fastinter, a.downinter),
        (
            Some(Duration::from_millis(500)),
            Some(Duration::from_secs(60))
        )
    );
    assert_eq!(
        (a.rise, a.fall, a.cookie.as_deref(), a.check_port),
        (Some(1), Some(9), Some("A"), Some(8081))
    );
    let s = &b.servers[1];
    assert_eq!(
        (s.check, s.disabled, s.addr.port, s.inter),
        (false, false, None, Some(Duration::from_secs(2)))
    );
    assert_eq!(b.servers[2].addr.host, "2001:db8::1");
    let msgs: Vec<&str> = p.warnings.iter().map(|w| w.message.as_str()).collect();
    assert_eq!(
        msgs,
        [
            "server option 'no-send-proxy' is not implemented by Shoal yet; ignored (Shoal always behaves this way)",
            "server option 'tfo' is not implemented by Shoal yet; ignored (it only tunes performance or resource use)",
            "server option 'minconn' is not implemented by Shoal yet; ignored (it only tunes performance or resource use)",
        ]
    );
    // PROXY protocol and the source address change what reaches the
    // server: refused, with the variable tail of `source` consumed (`ssl
    // verify none` is implemented).
    let e = errors("backend b\n    server b 10.0.0.2 send-proxy ssl verify none source 10.0.0.9 usesrc clientip check\n");
    let want = [
        "server option 'send-proxy' is not implemented by Shoal; refusing to start because ignoring it would drop or misread the PROXY protocol header peers rely on",
        "server option 'source' is not implemented by Shoal; refusing to start because ignoring it would connect to servers from another address than configured",
    ];
    assert_eq!(e, want.map(|m| format!("t.cfg:2: {m}")));
}

#[test]
fn passive_health_check_options() {
    let p = ok("
defaults
    mode http
    default-server observe layer7 error-limit 4 on-error sudden-death on-marked-down shutdown-sessions
backend b
    server a 10.0.0.1:80
    server n 10.0.0.2:80 observe none on-error fastinter
    default-server observe layer4 error-limit 1 on-error fail-check
    server c 10.0.0.3:80 on-error mark-down
frontend f
    bind :80
    default_backend b
backend t
    mode tcp
    server s 10.0.0.4:80 observe layer7
");
    let b = proxy(&p, "b");
    let view = |s: &Server| {
        (
            s.observe,
            s.error_limit,
            s.on_error,
            s.on_marked_down_shutdown,
        )
    };
    assert_eq!(
        view(&b.servers[0]),
        (
            Some(Observe::Layer7),
            Some(4),
            Some(OnError::SuddenDeath),
            true
        )
    );
    assert_eq!(
        view(&b.servers[1]),
        (None, Some(4), Some(OnError::FastInter), true),
        "'observe none' clears the default-server setting"
    );
    assert_eq!(
        view(&b.servers[2]),
        (
            Some(Observe::Layer4),
            Some(1),
            Some(OnError::MarkDown),
            true
        )
    );
    let msgs: Vec<(usize, &str)> = p
        .warnings
        .iter()
        .map(|w| (w.line, w.message.as_str()))
        .collect();
    assert_eq!(
        msgs,
        [
            (15, "server 's' uses 'observe layer7', which needs 'mode http'; backend 't' is in mode tcp, so only connection errors are observed"),
        ]
    );
}

#[test]
fn http_check_send_and_its_inheritance() {
    let p = ok(r#"
defaults
    mode http
    option httpchk
    http-check send meth HEAD uri /ping ver HTTP/1.1 hdr Host a.example hdr X-A "1 2" body hi
    http-check expect status 200
backend inherits
backend own_expect
    http-check expect status 204
backend own_send
    http-check send uri /other
backend twice
    http-check send uri /first comment c
frontend f
    bind :80
    default_backend inherits
    http-check send uri /x
"#);
    let want = HttpCheckSend {
        method: Some("HEAD".into()),
        uri: Some("/ping".into()),
        version: Some("HTTP/1.1".into()),
        headers: vec![
            ("Host".into(), "a.example".into()),
            ("X-A".into(), "1 2".into()),
        ],
        body: Some("hi".into()),
    };
    let inherits = proxy(&p, "inherits");
    assert_eq!(inherits.http_check_send.as_ref(), Some(&want));
    assert_eq!(inherits.http_check_expect.len(), 1);
    // A section's own http-check rule replaces the whole inherited ruleset.
    let own_expect = proxy(&p, "own_expect");
    assert_eq!(own_expect.http_check_send, None);
    assert_eq!(own_expect.http_check_expect[0].pattern, "204");
    let own_send = proxy(&p, "own_send");
    assert!(own_send.http_check_expect.is_empty());
    assert_eq!(
        own_send.http_check_send,
        Some(HttpCheckSend {
            uri: Some("/other".into()),
            ..HttpCheckSend::default()
        })
    );
    let twice = proxy(&p, "twice");
    assert_eq!(
        twice
            .http_check_send
            .as_ref()
            .and_then(|s| s.uri.as_deref()),
        Some("/first")
    );
    assert_eq!(proxy(&p, "f").http_check_send, None);
    let msgs: Vec<(usize, &str)> = p
        .warnings
        .iter()
        .map(|w| (w.line, w.message.as_str()))
        .collect();
    assert_eq!(
        msgs,
        [
            (13, "'http-check send comment' is not implemented by Shoal yet; ignored (it only changes logs or statistics)"),
            (17, "'http-check' ignored because frontend 'f' has no backend capability"),
        ]
    );
    // What would change the check itself is refused.
    let e = errors(
        "backend twice
    http-check send uri /first uri-lf /%[src]
    http-check send uri /second
    http-check send hdr X-Id %[uuid]
",
    );
    let checks = "refusing to start because ignoring it would change which servers health checks consider up";
    assert_eq!(
        e,
        [
            format!("t.cfg:2: 'http-check send uri-lf' is not implemented by Shoal; {checks}"),
            format!("t.cfg:3: a second 'http-check send' rule (a multi-step check) is not implemented by Shoal; {checks}"),
            format!("t.cfg:4: a log-format expression in 'http-check send hdr' is not implemented by Shoal; {checks}"),
        ]
    );
}

#[test]
fn stick_table_sizes() {
    for (text, want) in [
        ("1", 1),
        ("1000", 1000),
        ("1k", 1024),
        ("1K", 1024),
        ("200k", 204_800),
        ("1m", 1 << 20),
        ("3g", 3 << 30),
        ("4294967295", u64::from(u32::MAX)),
    ] {
        assert_eq!(stick::parse_size(text), Ok(want), "{text}");
    }
    for bad in [
        "",
        "k",
        "0",
        "0k",
        "1kb",
        "1.5m",
        "-1",
        "4g",
        "4294967296",
        "99999999999999999999999",
    ] {
        assert!(
            stick::parse_size(bad).is_err(),
            "{bad:?} should be rejected"
        );
    }
}

#[test]
fn stick_tables_and_rules() {
    let p = ok("
frontend fe
    mode http
    bind :80
    stick-table type ipv6 size 1m expire 10m store conn_cnt,http_req_rate(10s) store gpc(2),gpc_rate(2,1m),server_id
    stick on src
    default_backend be
backend be
    mode http
    stick-table type string size 10k
    acl api path_beg /api
    stick on req.cook(SessionID)
    stick match cookie(JSID) table be if api
    stick store-request hdr(X-User) unless api || { src 10.0.0.0/8 }
    stick store src table fe
    stick on req.hdr(X-Key) table be
    # stick store-response and stick-table nopurge are refused: see below
backend tables
    mode http
    stick-table type integer size 1g peers mypeers
backend b2
    mode http
    stick-table type string len 128 size 100
    stick on src table tables
");
    let fe = proxy(&p, "fe");
    assert_eq!(
        fe.stick_table,
        Some(StickTable {
            key: StickKeyType::Ipv6,
            size: 1 << 20,
            expire: Some(Duration::from_secs(600)),
            store: [
                "conn_cnt",
                "http_req_rate(10s)",
                "gpc(2)",
                "gpc_rate(2,1m)",
                "server_id"
            ]
            .map(String::from)
            .to_vec(),
        })
    );
    assert!(
        fe.stick_rules.is_empty(),
        "stick rules are ignored in a frontend"
    );
    let be = proxy(&p, "be");
    assert_eq!(
        be.stick_table.as_ref().map(|t| (t.key, t.size, t.expire)),
        Some((StickKeyType::String { len: 32 }, 10 * 1024, None))
    );
    let rules: Vec<(StickAction, &StickPattern, Option<&str>, bool)> = be
        .stick_rules
        .iter()
        .map(|r| (r.action, &r.pattern, r.table.as_deref(), r.cond.is_some()))
        .collect();
    assert_eq!(
        rules,
        [
            (
                StickAction::On,
                &StickPattern::ReqCookie("SessionID".into()),
                None,
                false
            ),
            (
                StickAction::Match,
                &StickPattern::ReqCookie("JSID".into()),
                Some("be"),
                true
            ),
            (
                StickAction::StoreRequest,
                &StickPattern::ReqHdr("x-user".into()),
                None,
                true
            ),
            (
                StickAction::StoreRequest,
                &StickPattern::Src,
                Some("fe"),
                false
            ),
            (
                StickAction::On,
                &StickPattern::ReqHdr("x-key".into()),
                Some("be"),
                false
            ),
        ]
    );
    let cond = be.stick_rules[2].cond.as_ref().expect("condition");
    assert!(cond.unless && cond.any_of.len() == 2);
    assert_eq!(
        proxy(&p, "tables")
            .stick_table
            .as_ref()
            .map(|t| (t.key, t.size)),
        Some((StickKeyType::Integer, 1 << 30))
    );
    assert_eq!(
        proxy(&p, "b2").stick_table.as_ref().map(|t| t.key),
        Some(StickKeyType::String { len: 128 })
    );
    let msgs: Vec<(usize, &str)> = p
        .warnings
        .iter()
        .map(|w| (w.line, w.message.as_str()))
        .collect();
    assert_eq!(
        msgs,
        [
            (6, "'stick' ignored because frontend 'fe' has no backend capability"),
            (20, "'stick-table peers' is not implemented by Shoal yet; ignored (stick tables are not shared with HAProxy peers; each Shoal node keeps its own)"),
            (24, "stick rule keys on 'src', but stick-table 'tables' is of type 'integer' (expected ip or ipv6)"),
        ]
    );
    let e = errors("backend be\n    mode http\n    stick-table type ip size 1k nopurge\n    stick store-response res.cook(x)\n");
    let persistence = "is not implemented by Shoal; refusing to start because ignoring it would break session persistence";
    assert_eq!(
        e,
        [
            format!("t.cfg:3: 'stick-table nopurge' {persistence}"),
            format!("t.cfg:4: 'stick store-response' {persistence}"),
        ]
    );
}

#[test]
fn stick_rule_warnings() {
    let p = ok("
backend be
    stick-table type ip size 1k store conn_cur,conn_cur,conn_rate(1s),conn_rate(2s)
    stick on req.cook(s)
    stick on src table str
backend str
    mode http
    stick-table type string size 1k
    stick on req.hdr(host)
");
    assert_eq!(
        proxy(&p, "be")
            .stick_table
            .as_ref()
            .map(|t| t.store.clone()),
        Some(vec!["conn_cur".to_string(), "conn_rate(1s)".into()])
    );
    let msgs: Vec<(usize, &str)> = p
        .warnings
        .iter()
        .map(|w| (w.line, w.message.as_str()))
        .collect();
    assert_eq!(
        msgs,
        [
            (3, "'stick-table store': 'conn_cur' is already stored; ignored"),
            (3, "'stick-table store': 'conn_rate' is already stored; ignored"),
            (4, "stick rule uses 'req.cook(s)', which needs 'mode http'; backend 'be' is in mode tcp, so the rule never matches"),
            (4, "stick rule keys on 'req.cook(s)', but stick-table 'be' is of type 'ip' (expected string)"),
            (5, "stick rule keys on 'src', but stick-table 'str' is of type 'string' (expected ip or ipv6)"),
        ]
    );
}

#[test]
fn global_section() {
    let p = ok("
global
    daemon
    maxconn 4096
    nbthread 4
    user haproxy
    group haproxy
    log /dev/log local0 info
    log 127.0.0.1:514 local1
    stats socket /run/shoal.sock mode 660 level admin expose-fd listeners
    stats socket ipv4@127.0.0.1:9999
    stats timeout 30s
    cpu-map auto:1/1-4 0-3
    tune.ssl.default-dh-param 2048
    ssl-dh-param-file /etc/haproxy/dh.pem
    timeout connect 4s
");
    let g = &p.config.global;
    assert!(g.daemon);
    assert_eq!(
        (g.maxconn, g.nbthread, g.user.as_deref(), g.group.as_deref()),
        (Some(4096), Some(4), Some("haproxy"), Some("haproxy"))
    );
    assert_eq!(g.logs[0].args, ["/dev/log", "local0", "info"]);
    assert_eq!(
        g.stats_sockets[0],
        StatsSocket {
            addr: "/run/shoal.sock".into(),
            mode: Some(0o660),
            level: StatsLevel::Admin
        }
    );
    assert_eq!(
        g.stats_sockets[1].level,
        StatsLevel::Operator,
        "HAProxy's default level"
    );
    assert_eq!(g.stats_timeout, Some(Duration::from_secs(30)));
    assert_eq!(g.timeouts.connect, Some(Duration::from_secs(4)));
    let msgs: Vec<&str> = p.warnings.iter().map(|w| w.message.as_str()).collect();
    for want in [
        "'cpu-map' is not implemented by Shoal yet; ignored (it only tunes performance or resource use)",
        "'tune.ssl.default-dh-param' is not implemented by Shoal yet; ignored (it only tunes performance or resource use)",
        "'ssl-dh-param-file' is not implemented by Shoal yet; ignored (it only takes effect through keywords that Shoal refuses)",
        "stats socket option 'expose-fd' is not implemented by Shoal yet; ignored (it only changes how the process is run or debugged)",
    ] {
        assert!(msgs.contains(&want), "missing {want:?} in {msgs:#?}");
    }
    // chroot confines the process: ignoring it weakens security.
    let e = errors("global\n    chroot /var/lib/haproxy\n");
    assert_eq!(e, ["t.cfg:2: 'chroot' is not implemented by Shoal; refusing to start because ignoring it would run the process with fewer restrictions than configured"]);
}

#[test]
fn stats_page() {
    let p = ok("
listen stats
    mode http
    bind :8404
    acl lan src 10.0.0.0/8
    stats enable
    stats uri /stats
    stats refresh 10s
    stats realm Shoal\\ Stats
    stats auth admin:secret
    stats auth ops:pa:ss
    stats admin if lan
    stats hide-version
    stats show-legends
");
    let s = &proxy(&p, "stats").stats;
    assert!(s.enabled && s.hide_version);
    assert_eq!(
        (s.uri.as_deref(), s.realm.as_deref()),
        (Some("/stats"), Some("Shoal Stats"))
    );
    assert_eq!(s.refresh, Some(Duration::from_secs(10)));
    assert_eq!(
        s.auth,
        [
            ("admin".to_string(), "secret".to_string()),
            ("ops".into(), "pa:ss".into())
        ]
    );
    assert!(s.admin.is_some());
}

#[test]
fn skipped_sections_warn_once_each() {
    let p = ok("
peers mypeers
    peer a 10.0.0.1:1024
    this is not even a keyword
userlist users
    user admin password x
frontend fe
    bind :80
    default_backend be
backend be
");
    let msgs: Vec<(usize, &str)> = p
        .warnings
        .iter()
        .map(|w| (w.line, w.message.as_str()))
        .collect();
    assert_eq!(
        msgs,
        [
            (
                2,
                "section 'peers' is not implemented by Shoal yet; ignored (stick tables are not shared with HAProxy peers; each Shoal node keeps its own)"
            ),
            (
                5,
                "section 'userlist' is not implemented by Shoal yet; ignored (it only takes effect through keywords that Shoal refuses)"
            )
        ]
    );
}

#[test]
fn misplaced_keywords() {
    let e = errors("backend b\n    bind :80\n    use_backend x\nfrontend f\n    bind :80\n    server s 1.2.3.4:80\n    balance roundrobin\ndefaults\n    bind :80\n    stats admin if TRUE\n");
    let want = [
        "t.cfg:2: 'bind' is not allowed in 'backend' section",
        "t.cfg:3: 'use_backend' is not allowed in 'backend' section",
        "t.cfg:6: 'server' is not allowed in 'frontend' section",
        "t.cfg:7: 'balance' is not allowed in 'frontend' section",
        "t.cfg:9: 'bind' is not allowed in 'defaults' section",
        "t.cfg:10: 'stats admin' is not allowed in 'defaults' section",
    ];
    for w in want {
        assert!(e.iter().any(|m| m == w), "missing {w:?} in {e:#?}");
    }
    // Softer cases warn and ignore, as HAProxy does.
    let p = ok("frontend f\n    bind :80\n    retries 3\n    timeout server 5s\nbackend b\n    maxconn 10\n    timeout client 5s\n");
    assert_eq!(p.warnings.len(), 4, "{:?}", p.warnings);
    assert_eq!(
        (proxy(&p, "f").retries, proxy(&p, "b").maxconn),
        (None, None)
    );
}

#[test]
fn legacy_and_env() {
    let p = ok("backend b\n    contimeout 5000\n    srvtimeout 30s\n    log \"\\$HOST\" local0\n");
    let b = proxy(&p, "b");
    assert_eq!(
        (b.timeouts.connect, b.timeouts.server),
        (Some(Duration::from_secs(5)), Some(Duration::from_secs(30)))
    );
    assert!(p
        .warnings
        .iter()
        .any(|w| w.message.contains("'contimeout' is deprecated")));
    assert_eq!(proxy(&p, "b").logs[0].args, ["$HOST", "local0"]);
    // HAProxy would put an empty string there; Shoal refuses.
    let text = "backend b\n    server s \"${HOST}:80\"\n";
    let e = parse_with_env(text, "t.cfg", &test_env).expect_err("refused");
    assert_eq!(e[0].to_string(), "t.cfg:2: environment variable 'HOST' is not set (HAProxy would use an empty string here; Shoal refuses, and '${HOST-DEFAULT}' gives a default)");
}

#[test]
fn old_style_listen_address_bom_and_crlf() {
    let p = ok("\u{feff}listen legacy 0.0.0.0:8000\r\n    server s 127.0.0.1:80\r\n");
    let l = proxy(&p, "legacy");
    assert_eq!(
        (l.binds[0].host.as_str(), l.binds[0].port),
        ("0.0.0.0", 8000)
    );
    assert_eq!(l.servers.len(), 1);
}

#[test]
fn outside_of_sections() {
    let e = errors("mode http\nfrontnd fe\n");
    assert_eq!(
        e,
        [
            "t.cfg:1: 'mode' is outside of any section",
            "t.cfg:2: 'frontnd' is outside of any section; did you mean 'frontend'?"
        ]
    );
}

#[test]
fn all_errors_are_reported_in_line_order() {
    let e = errors("frontend fe\n    bind :80\n    use_backend nope if { src 1.2.3.4 }\n    blah\nbackend be\n    server a 1.2.3.4:0\n    server b 1.2.3.4:80 weight 257\n");
    let lines: Vec<&str> = e
        .iter()
        .map(|m| m.split(':').nth(1).unwrap_or_default())
        .collect();
    assert_eq!(lines, ["3", "4", "6", "7"], "{e:#?}");
}

/// Feeds random lines (keywords, junk, quotes, escapes, bytes) to the
/// parser: it must never panic, and whatever it accepts must round-trip.
#[test]
fn garbage_never_panics_and_accepted_configs_round_trip() {
    let vocab = [
        "global",
        "defaults",
        "frontend",
        "backend",
        "listen",
        "peers",
        "fe",
        "be",
        "bind",
        ":80",
        "*:81",
        "[::]:82",
        "1.2.3.4:80",
        "server",
        "s1",
        "s2",
        "10.0.0.1",
        "::1",
        "acl",
        "a",
        "path_beg",
        "hdr(host)",
        "src",
        "dst_port",
        "-i",
        "-m",
        "beg",
        "reg",
        "--",
        "if",
        "unless",
        "!",
        "||",
        "{",
        "}",
        "use_backend",
        "default_backend",
        "mode",
        "http",
        "tcp",
        "balance",
        "roundrobin",
        "random(2)",
        "uri",
        "hash-type",
        "consistent",
        "timeout",
        "client",
        "connect",
        "5s",
        "0",
        "99999999999",
        "option",
        "no",
        "httpchk",
        "GET",
        "/",
        "redispatch",
        "cookie",
        "insert",
        "weight",
        "300",
        "check",
        "inter",
        "rise",
        "stats",
        "enable",
        "admin",
        "auth",
        "u:p",
        "log",
        "global",
        "retries",
        "http-check",
        "expect",
        "status",
        "200",
        "\"",
        "'",
        "\\",
        "\\x4",
        "#",
        "é",
        "(",
        ")",
        ",",
        "%[",
        "default-server",
        "maxconn",
        "-1",
        "ipv6@",
        "unix@/x",
        "from",
        "stick",
        "stick-table",
        "on",
        "match",
        "store-request",
        "type",
        "ip",
        "string",
        "len",
        "size",
        "1k",
        "expire",
        "store",
        "conn_cur,http_req_rate(1s)",
        "req.cook(s)",
        "hdr(x)",
        "table",
        "observe",
        "layer7",
        "error-limit",
        "on-error",
        "mark-down",
        "on-marked-down",
        "shutdown-sessions",
        "send",
        "meth",
        "uri",
        "hdr",
        "body",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..3000 {
        let mut text = String::new();
        for _ in 0..(next() % 12) {
            for _ in 0..(next() % 7) {
                let r = next();
                if r % 11 == 0 {
                    text.push(char::from_u32((r >> 8) as u32 % 0x3000).unwrap_or('?'));
                } else {
                    text.push_str(vocab[(r >> 8) as usize % vocab.len()]);
                }
                text.push(if r % 5 == 0 { '\t' } else { ' ' });
            }
            text.push('\n');
        }
        if let Ok(parsed) = parse(&text, "fuzz") {
            let printed = print(&parsed.config);
            match parse(&printed, "printed") {
                Ok(again) => assert_eq!(
                    again.config, parsed.config,
                    "input:\n{text}\nprinted:\n{printed}"
                ),
                Err(e) => {
                    panic!("printed config rejected: {e:?}\ninput:\n{text}\nprinted:\n{printed}")
                }
            }
        }
    }
}

#[test]
fn diagnostics_cut_long_words_on_character_boundaries() {
    let word = "é".repeat(100);
    let e = errors(&format!(
        "backend b\n    {word}\n    server s 10.0.0.1:80 weight {}\n",
        "9".repeat(3000)
    ));
    let cut = format!("{}...", "é".repeat(64));
    assert_eq!(
        e[0],
        format!("t.cfg:2: unknown keyword '{cut}' in 'backend' section")
    );
    // An unquoted echo is bounded by the message cap.
    assert!(e[1].starts_with("t.cfg:3: 'weight' value must be between 0 and 256 (was 999"));
    assert!(
        e[1].ends_with("...") && e[1].chars().count() < 1100,
        "{}",
        e[1]
    );
}

/// `grace` in `global` (HAProxy 2.6: how long listeners keep accepting
/// once a soft stop began), printed back as it was read.
#[test]
fn global_grace() {
    let p = ok("global\n    grace 2500ms\n");
    assert_eq!(p.config.global.grace, Some(Duration::from_millis(2500)));
    assert_eq!(ok("global\n").config.global.grace, None, "default: none");
    let printed = crate::config::print(&p.config);
    assert!(printed.contains("grace 2500ms"), "{printed}");
    assert_eq!(ok(&printed).config.global.grace, p.config.global.grace);
    for (text, want) in [
        ("global\n    grace\n", "t.cfg:2:"),
        ("global\n    grace 2x\n", "'grace'"),
        ("global\n    grace 1s 2s\n", "t.cfg:2:"),
        (
            "defaults\n    grace 2s\n",
            "t.cfg:2: the 'grace' keyword is not supported any more since HAProxy version 2.5",
        ),
    ] {
        let e = errors(text);
        assert!(e.iter().any(|e| e.contains(want)), "{text}: {e:?}");
    }
}
