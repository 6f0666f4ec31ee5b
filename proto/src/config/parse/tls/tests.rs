//! The TLS keywords: what is accepted, what is refused and why, and how
//! `ssl-default-bind-*` folds into binds.

use crate::config::*;

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

fn fe(bind: &str) -> String {
    format!("frontend fe\n    mode http\n    bind {bind}\n")
}

fn tls_of(p: &Parsed) -> &BindTls {
    p.config.proxies[0].binds[0]
        .tls
        .as_deref()
        .expect("a TLS bind")
}

#[test]
fn ssl_bind_with_its_options() {
    let p = ok(&fe(":443 ssl crt /a.pem crt /certs alpn h2,http/1.1 ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.3 ciphers ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384 ciphersuites TLS_AES_128_GCM_SHA256 curves X25519:prime256v1 strict-sni name web"));
    let tls = tls_of(&p);
    assert_eq!(tls.crts, ["/a.pem", "/certs"]);
    assert_eq!(tls.alpn, ["h2", "http/1.1"]);
    assert_eq!(tls.min_ver, Some(TlsVersion::Tls12));
    assert_eq!(tls.max_ver, Some(TlsVersion::Tls13));
    assert_eq!(
        tls.ciphers.as_deref(),
        Some(
            &[
                "ECDHE-RSA-AES128-GCM-SHA256".to_string(),
                "ECDHE-ECDSA-AES256-GCM-SHA384".into()
            ][..]
        )
    );
    assert_eq!(
        tls.curves.as_deref(),
        Some(&["X25519".to_string(), "P-256".into()][..])
    );
    assert!(tls.strict_sni);
    assert_eq!(tls.at.0, "t.cfg:3");
    // A plain bind has no TLS; a port range shares the line's settings.
    let p = ok(&fe("127.0.0.1:8000-8001 ssl crt /a.pem no-tlsv12"));
    let binds = &p.config.proxies[0].binds;
    assert_eq!(binds.len(), 2);
    assert_eq!(
        binds[1].tls.as_deref().and_then(|t| t.min_ver),
        Some(TlsVersion::Tls13)
    );
    assert!(ok(&fe(":80")).config.proxies[0].binds[0].tls.is_none());
}

#[test]
fn what_rustls_cannot_honour_is_refused_with_the_line() {
    for (opts, says) in [
        ("ssl-min-ver TLSv1.0", "rustls) does not offer TLSv1.0"),
        ("ssl-max-ver SSLv3", "does not offer SSLv3"),
        ("ssl-min-ver TLSv9", "expects SSLv3, TLSv1.0"),
        ("ciphers HIGH:!aNULL", "'HIGH' is not a suite"),
        (
            "ciphers ECDHE-RSA-AES128-GCM-SHA256:!MD5",
            "cipher-string operator",
        ),
        (
            "ciphers DHE-RSA-AES128-GCM-SHA256",
            "not a suite Shoal's TLS library (rustls) offers",
        ),
        ("ciphersuites TLS_AES_128_CCM_SHA256", "not a suite"),
        ("curves X448", "not a group"),
        ("ecdhe X25519:P-256", "names one curve"),
        ("alpn h3", "protocol 'h3' is not served"),
        (
            "ssl-min-ver TLSv1.3 ssl-max-ver TLSv1.2",
            "no TLS version is left",
        ),
        (
            "ca-file /ca.pem",
            "bind option 'ca-file' is not implemented",
        ),
        ("verify required", "bind option 'verify' is not implemented"),
        ("crt-list /l", "bind option 'crt-list' is not implemented"),
    ] {
        let e = errors(&fe(&format!(":443 ssl crt /a.pem {opts}")));
        assert!(
            e.iter()
                .any(|e| e.starts_with("t.cfg:3: ") && e.contains(says)),
            "{opts}: {e:#?}"
        );
    }
    let e = errors(&fe(":443 crt /a.pem alpn h2"));
    assert!(
        e[0].starts_with("t.cfg:3: bind option 'crt' needs 'ssl'"),
        "{e:#?}"
    );
    let e = errors(&fe(":443 ssl"));
    assert!(e[0].contains("needs a certificate"), "{e:#?}");
    let e = errors(&fe(":443 ssl crt"));
    assert!(e[0].contains("'crt' expects an argument"), "{e:#?}");
    // Another option's argument is not read as a TLS option.
    let e = errors(&fe(":443 name ssl crt /a.pem"));
    assert!(e[0].contains("needs 'ssl'"), "{e:#?}");
    // TLS on a runtime socket stays refused.
    let e = errors("global\n    stats socket /tmp/s ssl crt /a.pem\n");
    assert!(
        e[0].contains("stats socket option 'ssl' is not implemented"),
        "{e:#?}"
    );
}

#[test]
fn ssl_default_bind_globals_apply_to_binds_without_their_own() {
    let p = ok(&format!(
        "global\n    ssl-default-bind-ciphers ECDHE-RSA-AES256-GCM-SHA384\n    ssl-default-bind-ciphersuites TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256\n    ssl-default-bind-curves secp384r1\n    ssl-default-bind-options no-sslv3 no-tlsv10 no-tlsv11 no-tls-tickets ssl-min-ver TLSv1.2\n{}    bind :444 ssl crt /b.pem ciphers ECDHE-RSA-CHACHA20-POLY1305 ssl-min-ver TLSv1.3\n",
        fe(":443 ssl crt /a.pem")
    ));
    let binds = &p.config.proxies[0].binds;
    let a = binds[0].tls.as_deref().expect("tls");
    assert_eq!(
        a.ciphers.as_deref(),
        Some(&["ECDHE-RSA-AES256-GCM-SHA384".to_string()][..])
    );
    assert_eq!(a.curves.as_deref(), Some(&["P-384".to_string()][..]));
    assert_eq!(a.min_ver, Some(TlsVersion::Tls12));
    let b = binds[1].tls.as_deref().expect("tls");
    assert_eq!(
        b.ciphers.as_deref(),
        Some(&["ECDHE-RSA-CHACHA20-POLY1305".to_string()][..])
    );
    assert_eq!(b.ciphersuites.as_ref().map(Vec::len), Some(2));
    assert_eq!(b.min_ver, Some(TlsVersion::Tls13));
    for (line, says) in [
        (
            "ssl-default-bind-options prefer-client-ciphers",
            "option 'prefer-client-ciphers' is not implemented",
        ),
        (
            "ssl-default-bind-options ssl-min-ver TLSv1.1",
            "does not offer TLSv1.1",
        ),
        ("ssl-default-bind-ciphers ALL", "'ALL' is not a suite"),
    ] {
        let e = errors(&format!("global\n    {line}\n"));
        assert!(
            e[0].starts_with("t.cfg:2: ") && e[0].contains(says),
            "{line}: {e:#?}"
        );
    }
}

#[test]
fn tls_binds_round_trip_through_the_printer() {
    let p = ok(&format!(
        "global\n    ssl-default-bind-curves X25519\n    ssl-default-bind-options ssl-max-ver TLSv1.3\n{}    bind 127.0.0.1:0 ssl crt \"/with space.pem\" alpn http/1.1\n",
        fe(":443 ssl crt /a.pem crt /d alpn h2,http/1.1 ciphersuites TLS_AES_128_GCM_SHA256 strict-sni")
    ));
    let text = print(&p.config);
    let again = ok(&text);
    assert_eq!(again.config, p.config, "{text}");
    assert!(
        text.contains("bind :443 ssl crt /a.pem crt /d alpn h2,http/1.1"),
        "{text}"
    );
}

#[test]
fn server_ssl_options() {
    let p = ok("backend be\n    mode http\n    default-server ca-file /ca.pem\n    server a 10.0.0.1:443 ssl sni str(api.example.com)\n    server b 10.0.0.2:443 ssl verify none\n    server c 10.0.0.3:80\n");
    let s = &p.config.proxies[0].servers;
    assert!(s[0].tls.ssl && !s[0].tls.verify_none);
    assert_eq!(s[0].tls.ca_file.as_deref(), Some("/ca.pem"));
    assert_eq!(
        s[0].tls.sni,
        Some(crate::config::SniExpr::constant("api.example.com"))
    );
    assert_eq!(s[0].tls.at.0, "t.cfg:4");
    assert!(s[1].tls.ssl && s[1].tls.verify_none);
    assert!(!s[2].tls.ssl);
    let text = print(&p.config);
    assert_eq!(ok(&text).config, p.config, "{text}");
    for (line, says) in [
        (
            "server a 10.0.0.1:443 ssl",
            "verify is enabled by default but no CA file specified",
        ),
        (
            "server a 10.0.0.1:443 ssl verify none sni nope(x)",
            "server option 'sni': error detected while parsing sni expression: unknown fetch method 'nope'",
        ),
        (
            "server a 10.0.0.1:443 ssl verify maybe",
            "expects 'none' or 'required'",
        ),
        (
            "server a 10.0.0.1:443 ssl verify none proto fcgi",
            "server option 'proto fcgi' is not implemented",
        ),
    ] {
        let e = errors(&format!("backend be\n    mode http\n    {line}\n"));
        assert!(
            e[0].starts_with("t.cfg:3: ") && e[0].contains(says),
            "{line}: {e:#?}"
        );
    }
    let e = errors("backend be\n    mode http\n    option httpchk\n    server a 10.0.0.1:443 ssl verify none check\n");
    assert!(e[0].contains("HTTP health checks over TLS"), "{e:#?}");
}

#[test]
fn server_proto_and_alpn() {
    let p = ok("backend be\n    mode http\n    default-server proto h2\n    server a 10.0.0.1:80\n    server b 10.0.0.2:443 ssl verify none alpn h2,http/1.1 proto h1\n    server c 10.0.0.3:443 ssl verify none alpn h2\nbackend raw\n    mode tcp\n    server d 10.0.0.4:80 proto none\n");
    let s = &p.config.proxies[0].servers;
    assert_eq!(s[0].proto, Some(ServerProto::H2), "default-server applies");
    assert_eq!(s[1].proto, Some(ServerProto::H1));
    assert_eq!(s[1].tls.alpn, ["h2", "http/1.1"]);
    assert_eq!(s[2].proto, Some(ServerProto::H2));
    assert_eq!(s[2].tls.alpn, ["h2"]);
    assert_eq!(
        p.config.proxies[1].servers[0].proto,
        Some(ServerProto::None)
    );
    let text = print(&p.config);
    assert!(
        text.contains("server b 10.0.0.2:443 ssl verify none alpn h2,http/1.1 proto h1"),
        "{text}"
    );
    assert_eq!(ok(&text).config, p.config, "{text}");
    // A multiplexer that does not fit the mode is refused, as by HAProxy,
    // on the server's line even when `mode` comes later or from defaults.
    for (cfg, line, says) in [
        (
            "backend be\n    server a 10.0.0.1:80 proto h2\n",
            2,
            "MUX protocol 'h2' is not usable for server 'a': backend 'be' is in mode tcp",
        ),
        (
            "defaults\n    mode tcp\nlisten l\n    bind :80\n    server a 10.0.0.1:80 proto h1\n",
            5,
            "MUX protocol 'h1' is not usable for server 'a': listen 'l' is in mode tcp",
        ),
        (
            "backend be\n    server a 10.0.0.1:80 proto none\n    mode http\n",
            2,
            "MUX protocol 'none' is not usable for server 'a': backend 'be' is in mode http",
        ),
        (
            "backend be\n    mode http\n    server a 10.0.0.1:80 proto h3\n",
            3,
            "unknown MUX protocol 'h3'",
        ),
        (
            "backend be\n    mode http\n    server a 10.0.0.1:80 ssl verify none alpn h2,,x\n",
            3,
            "expects a comma-separated list of protocol names",
        ),
        (
            "backend be\n    mode http\n    server a 10.0.0.1:80 proto h2 check-proto h2\n",
            3,
            "server option 'check-proto' is not implemented",
        ),
    ] {
        let e = errors(cfg);
        assert!(
            e[0].starts_with(&format!("t.cfg:{line}: ")) && e[0].contains(says),
            "{cfg}: {e:#?}"
        );
    }
}

#[test]
fn server_sni_expressions() {
    let p = ok("defaults\n    mode http\n    default-server sni req.hdr(Host),lower,field(1,:)\nbackend be\n    server a 10.0.0.1:443 ssl verify none\n    server b 10.0.0.2:443 ssl verify none sni hdr(x-sni)\n    server c 10.0.0.3:443 ssl verify none sni ssl_fc_sni,upper\n    server d 10.0.0.4:443 ssl verify none sni str()\n    server e 10.0.0.5:443 ssl verify none sni str(X.A.test),lower,field(-2,.)\nbackend tcp\n    mode tcp\n    server t 10.0.0.6:443 ssl verify none sni ssl_fc_sni\n    server u 10.0.0.7:443 sni req.hdr(host)\n");
    let s = &p.config.proxies[0].servers;
    let sni = |i: usize| s[i].tls.sni.clone().expect("sni");
    assert_eq!(
        sni(0),
        SniExpr {
            fetch: SniFetch::ReqHdr("host".into()),
            converters: vec![
                Converter::Lower,
                Converter::Field {
                    index: 1,
                    delimiters: ":".into()
                }
            ],
        }
    );
    assert_eq!(sni(1).fetch, SniFetch::ReqHdr("x-sni".into()));
    assert_eq!(sni(2).fetch, SniFetch::SslFcSni);
    assert_eq!(sni(2).converters, [Converter::Upper]);
    assert_eq!(sni(3).fixed(), Some(None), "str() sends no SNI");
    assert_eq!(sni(4).fixed(), Some(Some("a".into())));
    // The printer writes each expression back, and it parses the same.
    let text = print(&p.config);
    assert!(
        text.contains("sni req.hdr(host),lower,field(1,:)"),
        "{text}"
    );
    assert!(
        text.contains("sni str(X.A.test),lower,field(-2,.)"),
        "{text}"
    );
    assert_eq!(ok(&text).config, p.config, "{text}");

    for (opt, says) in [
        ("sni nope(x)", "unknown fetch method 'nope'"),
        ("sni req.hdr(host),bogus", "unknown converter 'bogus'"),
        (
            "sni req.hdr(host),field(0,:)",
            "invalid args in converter 'field' : Unexpected value 0 for index",
        ),
        (
            "sni req.hdr(host),field(1,:,2)",
            "converter 'field' with a count is not implemented by Shoal yet",
        ),
        (
            "sni req.hdr(host,1)",
            "header occurrence in 'req.hdr(host,1)' is not implemented",
        ),
        ("sni req.hdr", "fetch method 'req.hdr' expects an argument"),
        (
            "sni src",
            "fetch method 'src' is not implemented by Shoal yet in 'sni'",
        ),
        (
            "sni req.hdr(host),regsub(a,b)",
            "converter 'regsub' is not implemented by Shoal yet",
        ),
        ("sni req.hdr(host", "missing closing ')'"),
        ("sni req.hdr(host),,lower", "empty fetch or converter name"),
        ("sni ssl_fc_sni(x)", "'ssl_fc_sni' takes no argument"),
    ] {
        let e = errors(&format!(
            "backend be\n    mode http\n    server a 10.0.0.1:443 ssl verify none {opt}\n"
        ));
        assert!(
            e[0].starts_with(
                "t.cfg:3: server option 'sni': error detected while parsing sni expression: "
            ) && e[0].contains(says),
            "{opt}: {e:#?}"
        );
    }
    // A request fetch cannot be evaluated when a TCP connection opens:
    // refused in mode tcp, whichever line sets the mode or the `sni`.
    for cfg in [
        "backend be\n    server a 10.0.0.1:443 ssl verify none sni req.hdr(host)\n    mode tcp\n",
        "defaults\n    mode tcp\n    default-server sni hdr(host)\nbackend be\n    server a 10.0.0.1:443 ssl verify none\n",
    ] {
        let e = errors(cfg);
        let line = cfg.lines().position(|l| l.contains("server a")).expect("line") + 1;
        assert!(
            e[0].starts_with(&format!("t.cfg:{line}: server 'a': 'sni req.hdr(host)' reads the HTTP request, which needs 'mode http', but backend 'be' is in mode tcp")),
            "{cfg}: {e:#?}"
        );
    }
}
