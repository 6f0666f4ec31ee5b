//! `http-request` rules and the `ssl_fc` fetches.

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

const FE: &str = "frontend fe\n    mode http\n    bind :80\n";

#[test]
fn redirect_scheme_and_header_rules() {
    let p = ok(&format!(
        "{FE}    acl tls ssl_fc\n    http-request redirect scheme https unless {{ ssl_fc }}\n    http-request redirect scheme https code 301 if !tls\n    http-request set-header X-Forwarded-Proto https if {{ ssl_fc }}\n    http-request add-header X-Via shoal\n    http-request del-header X-Debug if {{ ssl_fc_sni -i www.example.com }}\n"
    ));
    let rules = &p.config.proxies[0].http_request;
    assert_eq!(rules.len(), 5);
    assert_eq!(
        rules[0].action,
        HttpRequestAction::RedirectScheme {
            scheme: "https".into(),
            code: 302
        }
    );
    assert!(rules[0].cond.unless);
    assert_eq!(
        rules[1].action,
        HttpRequestAction::RedirectScheme {
            scheme: "https".into(),
            code: 301
        }
    );
    assert!(rules[3].cond.is_always());
    let acl = &p.config.proxies[0].acls[0];
    assert_eq!((&acl.sample, acl.kind), (&Sample::SslFc, MatchKind::Bool));
    // Printed and parsed again, the same.
    let text = print(&p.config);
    assert_eq!(ok(&text).config, p.config, "{text}");
    assert!(
        text.contains("http-request redirect scheme https code 302 unless { ssl_fc }"),
        "{text}"
    );
}

#[test]
fn what_is_not_implemented_is_refused_with_the_line() {
    let refused = "refusing to start because ignoring it would skip its access-control, rewriting and redirect rules";
    for (rule, says) in [
        ("http-request deny", format!("'http-request deny' is not implemented by Shoal; {refused}")),
        ("http-request redirect location /x", format!("'http-request redirect location' is not implemented by Shoal; {refused}")),
        ("http-request redirect scheme https drop-query", format!("'http-request redirect' option 'drop-query' is not implemented by Shoal; {refused}")),
        ("http-request set-header X-Client %[src]", format!("a log-format expression in 'http-request set-header' is not implemented by Shoal; {refused}")),
        ("http-request redirect scheme https code 304", "'code': unsupported HTTP code '304' (must be one of 301, 302, 303, 307 or 308)".to_string()),
        ("http-request set-header X-A b c", "unexpected argument 'c' (expected 'if' or 'unless')".to_string()),
        ("acl a ssl_fc yes", "'-m bool' takes no values".to_string()),
        ("acl a ssl_fc_sni -m int 3", "cannot be used with 'ssl_fc_sni'".to_string()),
    ] {
        let e = errors(&format!("{FE}    {rule}\n"));
        assert!(e[0].starts_with("t.cfg:4: ") && e[0].contains(&says), "{rule}: {e:#?}");
    }
    let e = errors("frontend fe\n    mode tcp\n    bind :80\n    http-request set-header X-A b\n");
    assert!(
        e[0].starts_with("t.cfg:1: 'http-request' rules need 'mode http'"),
        "{e:#?}"
    );
    let e = errors("backend be\n    mode http\n    http-request set-header X-A b\n");
    assert!(
        e[0].contains("'http-request' in a 'backend' section is not implemented"),
        "{e:#?}"
    );
}
