//! ACL and routing tests.

use super::{AclError, CompiledCond, Router, Samples};
use shoal_proto::config::{
    AclDef, AclRef, CondTerm, Condition, MatchKind as K, Proxy, ProxyKind, Sample as S, UseBackend,
};
use std::net::IpAddr;

/// A request (or, with only `src`/`dst_port`, a TCP connection).
#[derive(Default)]
struct Req {
    path: Option<&'static str>,
    url: Option<&'static str>,
    method: Option<&'static str>,
    headers: Vec<(&'static str, &'static str)>,
    src: Option<IpAddr>,
    dst_port: Option<u16>,
}

impl Samples for Req {
    fn path(&self) -> Option<&str> {
        self.path
    }
    fn url(&self) -> Option<&str> {
        self.url
    }
    fn method(&self) -> Option<&str> {
        self.method
    }
    fn any_header(&self, name: &str, f: &mut dyn FnMut(&str) -> bool) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|v| f(v.trim()))
    }
    fn src(&self) -> Option<IpAddr> {
        self.src
    }
    fn dst_port(&self) -> Option<u16> {
        self.dst_port
    }
}

fn path(p: &'static str) -> Req {
    Req {
        path: Some(p),
        url: Some(p),
        method: Some("GET"),
        ..Req::default()
    }
}

fn host(h: &'static str) -> Req {
    Req {
        headers: vec![("host", h)],
        ..path("/")
    }
}

fn src(ip: &str) -> Req {
    Req {
        src: Some(ip.parse().expect("test address")),
        dst_port: Some(80),
        ..Req::default()
    }
}

fn port(p: u16) -> Req {
    Req {
        dst_port: Some(p),
        ..Req::default()
    }
}

fn def(name: &str, sample: S, kind: K, ignore_case: bool, values: &[&str]) -> AclDef {
    AclDef {
        name: name.into(),
        sample,
        kind,
        ignore_case,
        values: values.iter().map(|v| (*v).to_owned()).collect(),
    }
}

fn term(name: &str) -> CondTerm {
    CondTerm {
        negated: false,
        acl: AclRef::Named(name.into()),
    }
}

fn not(name: &str) -> CondTerm {
    CondTerm {
        negated: true,
        acl: AclRef::Named(name.into()),
    }
}

fn when(any_of: Vec<Vec<CondTerm>>) -> Condition {
    Condition {
        unless: false,
        any_of,
    }
}

/// Compiles `if { <def> }` (an inline ACL) and evaluates it on `r`.
fn inline(d: &AclDef, r: &Req) -> bool {
    let cond = when(vec![vec![CondTerm {
        negated: false,
        acl: AclRef::Inline(Box::new(d.clone())),
    }]]);
    CompiledCond::compile(&cond, &[]).expect("compiles").eval(r)
}

fn compile_err(d: AclDef) -> AclError {
    let cond = when(vec![vec![term(&d.name)]]);
    CompiledCond::compile(&cond, &[d]).expect_err("must not compile")
}

#[test]
fn str_exact_and_ignore_case() {
    let d = def("", S::Path, K::Str, false, &["/b", "/a", "/c/d"]);
    assert!(inline(&d, &path("/a")));
    assert!(inline(&d, &path("/c/d")));
    assert!(!inline(&d, &path("/a/")));
    assert!(!inline(&d, &path("/A")));
    let ci = def("", S::Method, K::Str, true, &["get", "PoSt"]);
    assert!(inline(&ci, &path("/")));
    let post = Req {
        method: Some("post"),
        ..path("/")
    };
    assert!(inline(&ci, &post));
    // Many values go through the sorted binary search.
    let many: Vec<String> = (0..50).map(|i| format!("/p{i}")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let d = def("", S::Path, K::Str, true, &refs);
    assert!(inline(&d, &path("/P37")));
    assert!(!inline(&d, &path("/p50")));
}

#[test]
fn beg_end_sub() {
    let beg = def("", S::Path, K::Beg, false, &["/api/", "/static"]);
    assert!(inline(&beg, &path("/api/v1")));
    assert!(inline(&beg, &path("/static")));
    assert!(!inline(&beg, &path("/ap")));
    assert!(!inline(&beg, &path("/API/v1")));
    // Non-ASCII input never panics on a char boundary.
    let beg_ci = def("", S::Path, K::Beg, true, &["/API/", "/é"]);
    assert!(inline(&beg_ci, &path("/Api/x")));
    assert!(inline(&beg_ci, &path("/éa")));
    assert!(!inline(&beg_ci, &path("/\u{e8}")));

    let end = def("", S::Path, K::End, true, &[".JPG", ".png"]);
    assert!(inline(&end, &path("/img/a.jpg")));
    assert!(inline(&end, &path("/img/a.PNG")));
    assert!(!inline(&end, &path("/img/a.jpeg")));
    assert!(!inline(&end, &path("g")));

    let sub = def("", S::Hdr("user-agent".into()), K::Sub, false, &["bot"]);
    let ua = |v| Req {
        headers: vec![("user-agent", v)],
        ..path("/")
    };
    assert!(inline(&sub, &ua("Googlebot/2.1")));
    assert!(!inline(&sub, &ua("GoogleBOT/2.1")));
    let sub_ci = def("", S::Hdr("user-agent".into()), K::Sub, true, &["BOT"]);
    assert!(inline(&sub_ci, &ua("GoogleBOT/2.1")));
    assert!(!inline(&sub_ci, &ua("curl/8")));
}

#[test]
fn reg_compiled_once_with_ignore_case() {
    let d = def(
        "",
        S::Path,
        K::Reg,
        false,
        &[r"^/img/.*\.(png|jpg)$", "^/x$"],
    );
    assert!(inline(&d, &path("/img/a/b.png")));
    assert!(inline(&d, &path("/x")));
    assert!(!inline(&d, &path("/img/a.PNG")));
    let ci = def("", S::Path, K::Reg, true, &[r"^/img/.*\.(png|jpg)$"]);
    assert!(inline(&ci, &path("/IMG/a.PNG")));
    // Unanchored, like HAProxy's regex match.
    let sub = def("", S::Url, K::Reg, false, &["token="]);
    assert!(inline(&sub, &path("/a?x=1&token=2")));

    let err = compile_err(def(
        "bad_re",
        S::Path,
        K::Reg,
        false,
        &["^/ok$", "(unclosed"],
    ));
    let msg = err.to_string();
    println!("{msg}");
    assert!(matches!(err, AclError::Regex { .. }));
    assert!(
        msg.contains("ACL 'bad_re'") && msg.contains("(unclosed"),
        "{msg}"
    );
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
fn dom_matches_dot_delimited_labels() {
    let d = def("", S::Hdr("host".into()), K::Dom, false, &["example.com"]);
    assert!(inline(&d, &host("example.com")));
    assert!(inline(&d, &host("www.example.com")));
    assert!(inline(&d, &host("www.example.com:8080")));
    assert!(!inline(&d, &host("myexample.com")));
    assert!(!inline(&d, &host("example.co")));
    assert!(!inline(&d, &host("WWW.EXAMPLE.COM")));
    // HAProxy's dom is "a delimited run of labels anywhere", not a suffix.
    assert!(inline(&d, &host("example.com.evil.net")));
    // Delimiters at the ends of the value are ignored; -i folds case.
    let ci = def("", S::Hdr("host".into()), K::Dom, true, &[".Example.COM."]);
    assert!(inline(&ci, &host("WWW.EXAMPLE.com")));
    let single = def("", S::Hdr("host".into()), K::Dom, false, &["api"]);
    assert!(inline(&single, &host("api.example.com")));
    assert!(inline(&single, &host("x.api")));
    assert!(!inline(&single, &host("apix.example.com")));
}

#[test]
fn dir_matches_slash_delimited_parts() {
    let d = def("", S::Path, K::Dir, false, &["api"]);
    assert!(inline(&d, &path("/api")));
    assert!(inline(&d, &path("/v1/api/x")));
    assert!(!inline(&d, &path("/apix")));
    assert!(!inline(&d, &path("/v1/myapi")));
    let u = def("", S::Url, K::Dir, false, &["/v1/api/"]);
    assert!(inline(&u, &path("/v1/api?x=1")));
    assert!(!inline(&u, &path("/v1/api.json")));
    let ci = def("", S::Path, K::Dir, true, &["API"]);
    assert!(inline(&ci, &path("/x/Api/")));
}

#[test]
fn ip_networks_v4_v6_and_mapped() {
    let d = def(
        "",
        S::Src,
        K::Ip,
        false,
        &[
            "10.0.0.0/8",
            "192.168.1.1",
            "2001:db8::/32",
            "172.16.0.0/255.240.0.0",
        ],
    );
    assert!(inline(&d, &src("10.1.2.3")));
    assert!(inline(&d, &src("192.168.1.1")));
    assert!(!inline(&d, &src("192.168.1.2")));
    assert!(!inline(&d, &src("11.0.0.1")));
    assert!(inline(&d, &src("172.31.255.1")));
    assert!(!inline(&d, &src("172.32.0.1")));
    assert!(inline(&d, &src("2001:db8::1")));
    assert!(!inline(&d, &src("2001:db9::1")));
    // A v4-mapped v6 client matches v4 networks.
    assert!(inline(&d, &src("::ffff:10.9.9.9")));
    assert!(!inline(&d, &src("::ffff:11.9.9.9")));
    // v4 /0 is every v4 address but no native v6 one.
    let all4 = def("", S::Src, K::Ip, false, &["0.0.0.0/0"]);
    assert!(inline(&all4, &src("8.8.8.8")));
    assert!(!inline(&all4, &src("2001:db8::1")));
    let all6 = def("", S::Src, K::Ip, false, &["::/0"]);
    assert!(inline(&all6, &src("2001:db8::1")));

    // Header values are cast to addresses (with or without a port).
    let xff = def(
        "",
        S::Hdr("x-forwarded-for".into()),
        K::Ip,
        false,
        &["10.0.0.0/8"],
    );
    let with = |v| Req {
        headers: vec![("x-forwarded-for", v)],
        ..path("/")
    };
    assert!(inline(&xff, &with("1.1.1.1, 10.0.0.7")));
    assert!(inline(&xff, &with("10.0.0.7:5555")));
    assert!(!inline(&xff, &with("not-an-ip")));

    for bad in ["10.0.0.0/33", "example.com", "::1/129", "1.2.3.4/x"] {
        let err = compile_err(def("nets", S::Src, K::Ip, false, &[bad]));
        println!("{err}");
        assert!(err.to_string().contains(bad));
    }
}

#[test]
fn int_values_ranges_and_operators() {
    let d = def(
        "",
        S::DstPort,
        K::Int,
        false,
        &["80", "443", "8000:8999", "9000-9001"],
    );
    for (p, want) in [
        (80, true),
        (443, true),
        (8500, true),
        (9001, true),
        (81, false),
        (9002, false),
    ] {
        assert_eq!(inline(&d, &port(p)), want, "port {p}");
    }
    let gt = def("", S::DstPort, K::Int, false, &["gt", "1024"]);
    assert!(inline(&gt, &port(1025)) && !inline(&gt, &port(1024)));
    let ge = def("", S::DstPort, K::Int, false, &["ge 1024"]);
    assert!(inline(&ge, &port(1024)) && !inline(&ge, &port(1023)));
    let lt = def("", S::DstPort, K::Int, false, &["lt", "100"]);
    assert!(inline(&lt, &port(99)) && !inline(&lt, &port(100)));
    let le = def("", S::DstPort, K::Int, false, &["le", "100", "eq", "200"]);
    assert!(inline(&le, &port(100)) && inline(&le, &port(200)) && !inline(&le, &port(150)));
    let open = def("", S::DstPort, K::Int, false, &["60000:", ":10"]);
    assert!(inline(&open, &port(65000)) && inline(&open, &port(5)) && !inline(&open, &port(11)));

    // Text samples are cast (leading digits).
    let len = def(
        "",
        S::Hdr("content-length".into()),
        K::Int,
        false,
        &["gt", "100"],
    );
    let cl = |v| Req {
        headers: vec![("content-length", v)],
        ..path("/")
    };
    assert!(inline(&len, &cl("101")));
    assert!(!inline(&len, &cl("100")));
    assert!(!inline(&len, &cl("abc")));

    for bad in [&["x"][..], &["5:3"], &["gt", "1:5"], &["gt"]] {
        let err = compile_err(def("ports", S::DstPort, K::Int, false, bad));
        println!("{err}");
        assert!(matches!(err, AclError::BadValue { .. }));
        assert!(err.to_string().contains("ACL 'ports'"));
    }
    let err = compile_err(def("src_int", S::Src, K::Int, false, &["1"]));
    println!("{err}");
    assert!(matches!(err, AclError::Incompatible { .. }));
}

#[test]
fn found_and_missing_samples() {
    let found = def(
        "has_auth",
        S::Hdr("authorization".into()),
        K::Found,
        false,
        &[],
    );
    let with = Req {
        headers: vec![("Authorization", "Bearer x")],
        ..path("/")
    };
    assert!(inline(&found, &with));
    assert!(!inline(&found, &path("/")));
    let method = def("", S::Method, K::Found, false, &[]);
    assert!(inline(&method, &path("/")));

    // A TCP connection has no path, method or headers: the term is false
    // and its negation true.
    let tcp = src("10.0.0.1");
    let acls = vec![
        def("is_api", S::Path, K::Beg, false, &["/api"]),
        def("has_host", S::Hdr("host".into()), K::Found, false, &[]),
    ];
    let pos = CompiledCond::compile(&when(vec![vec![term("is_api")]]), &acls).expect("compiles");
    let neg = CompiledCond::compile(&when(vec![vec![not("is_api")]]), &acls).expect("compiles");
    let host = CompiledCond::compile(&when(vec![vec![not("has_host")]]), &acls).expect("compiles");
    assert!(!pos.eval(&tcp));
    assert!(neg.eval(&tcp));
    assert!(host.eval(&tcp));
    // A sample that exists but is empty is still a sample.
    let empty = def("", S::Path, K::Str, false, &[""]);
    assert!(inline(&empty, &path("")));
    // No values: never matches (HAProxy warns about it).
    let none = def("", S::Path, K::Beg, false, &[]);
    assert!(!inline(&none, &path("/")));
}

#[test]
fn headers_every_occurrence_and_full_host_value() {
    let d = def("", S::Hdr("x-tag".into()), K::Str, false, &["b"]);
    let r = Req {
        headers: vec![("x-tag", "a"), ("x-tag", "c, b")],
        ..path("/")
    };
    assert!(inline(&d, &r));
    // hdr(host) compares the full value, port included, as HAProxy does.
    let exact = def("", S::Hdr("host".into()), K::Str, true, &["example.com"]);
    assert!(inline(&exact, &host("Example.com")));
    assert!(!inline(&exact, &host("example.com:8080")));
}

#[test]
fn addresses_and_ports_as_text() {
    let d = def("", S::Src, K::Beg, false, &["10.1."]);
    assert!(inline(&d, &src("10.1.2.3")));
    assert!(!inline(&d, &src("10.2.2.3")));
    let v6 = def(
        "",
        S::Src,
        K::Str,
        false,
        &["ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
    );
    assert!(inline(&v6, &src("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
    let p = def("", S::DstPort, K::Str, false, &["443"]);
    assert!(inline(&p, &port(443)) && !inline(&p, &port(80)));
    let r = def("", S::DstPort, K::Reg, false, &["^8[0-9]+$"]);
    assert!(inline(&r, &port(8080)) && !inline(&r, &port(443)));
}

#[test]
fn same_name_or_not_or_and_unless() {
    let acls = vec![
        def("static", S::Path, K::Beg, false, &["/static/"]),
        def("static", S::Path, K::End, true, &[".css", ".js"]),
        def("is_get", S::Method, K::Str, false, &["GET"]),
        def("admin", S::Path, K::Beg, false, &["/admin"]),
        def("internal", S::Src, K::Ip, false, &["10.0.0.0/8"]),
    ];
    let c = |cond: Condition| CompiledCond::compile(&cond, &acls).expect("compiles");
    let post = |p| Req {
        method: Some("POST"),
        ..path(p)
    };

    // Same name: ORed definitions.
    let st = c(when(vec![vec![term("static")]]));
    assert!(st.eval(&path("/static/x.png")));
    assert!(st.eval(&path("/app/site.CSS")));
    assert!(!st.eval(&path("/app/x")));

    // Implicit AND.
    let get_static = c(when(vec![vec![term("is_get"), term("static")]]));
    assert!(get_static.eval(&path("/a.js")));
    assert!(!get_static.eval(&post("/a.js")));

    // `!` on one term.
    let non_get_static = c(when(vec![vec![not("is_get"), term("static")]]));
    assert!(non_get_static.eval(&post("/a.js")));
    assert!(!non_get_static.eval(&path("/a.js")));

    // `||` between groups: `admin internal || static`.
    let mixed = c(when(vec![
        vec![term("admin"), term("internal")],
        vec![term("static")],
    ]));
    let admin_from = |ip| Req {
        src: Some(ip),
        ..path("/admin/x")
    };
    assert!(mixed.eval(&admin_from("10.2.3.4".parse().expect("ip"))));
    assert!(!mixed.eval(&admin_from("8.8.8.8".parse().expect("ip"))));
    assert!(mixed.eval(&path("/a.css")));

    // `unless` negates the whole condition.
    let unless = c(Condition {
        unless: true,
        any_of: vec![vec![term("admin"), term("internal")]],
    });
    assert!(!unless.eval(&admin_from("10.2.3.4".parse().expect("ip"))));
    assert!(unless.eval(&admin_from("8.8.8.8".parse().expect("ip"))));
    assert!(unless.eval(&path("/")));
}

#[test]
fn predefined_acls() {
    let c =
        |name: &str, acls: &[AclDef]| CompiledCond::compile(&when(vec![vec![term(name)]]), acls);
    assert!(c("TRUE", &[]).expect("TRUE").eval(&Req::default()));
    assert!(!c("FALSE", &[]).expect("FALSE").eval(&Req::default()));
    let local = c("LOCALHOST", &[]).expect("LOCALHOST");
    assert!(local.eval(&src("127.0.0.1")) && local.eval(&src("::1")));
    assert!(!local.eval(&src("10.0.0.1")));
    let get = c("METH_GET", &[]).expect("METH_GET");
    let head = Req {
        method: Some("HEAD"),
        ..path("/")
    };
    assert!(get.eval(&path("/")) && get.eval(&head));
    let http = c("HTTP", &[]).expect("HTTP");
    assert!(http.eval(&path("/")) && !http.eval(&src("10.0.0.1")));
    let abs = c("HTTP_URL_ABS", &[]).expect("HTTP_URL_ABS");
    let proxy_req = Req {
        url: Some("http://example.com/"),
        ..path("/")
    };
    assert!(abs.eval(&proxy_req) && !abs.eval(&path("/x")));
    // A user definition wins over the predefined one.
    let mine = [def("TRUE", S::Path, K::Str, false, &["/only"])];
    let t = c("TRUE", &mine).expect("user TRUE");
    assert!(t.eval(&path("/only")) && !t.eval(&path("/")));

    let err = c("HTTP_1.1", &[]).expect_err("unsupported");
    println!("{err}");
    assert!(matches!(err, AclError::UnsupportedPredefined(_)));
    let err = c("nope", &[]).expect_err("unknown");
    println!("{err}");
    assert_eq!(err.to_string(), "unknown ACL 'nope'");
}

#[test]
fn empty_condition() {
    let acls: [AclDef; 0] = [];
    let never = CompiledCond::compile(&when(vec![]), &acls).expect("compiles");
    assert!(!never.eval(&path("/")));
    let always = CompiledCond::compile(
        &Condition {
            unless: true,
            any_of: vec![],
        },
        &acls,
    )
    .expect("compiles");
    assert!(always.eval(&path("/")));
}

fn frontend() -> Proxy {
    let mut p = Proxy::new(ProxyKind::Frontend, "fe");
    p.acls = vec![
        def("is_api", S::Path, K::Beg, false, &["/api"]),
        def("is_static", S::Path, K::Beg, false, &["/static"]),
        def("is_v2", S::Path, K::Beg, false, &["/api/v2"]),
    ];
    let rule = |backend: &str, cond| UseBackend {
        backend: backend.into(),
        cond,
    };
    p.use_backends = vec![
        rule("api", when(vec![vec![term("is_api")]])),
        // Never reached for /api/v2: the first matching rule wins.
        rule("api_v2", when(vec![vec![term("is_v2")]])),
        rule("static", when(vec![vec![term("is_static")]])),
        rule(
            "tcp_only",
            Condition {
                unless: true,
                any_of: vec![vec![CondTerm {
                    negated: false,
                    acl: AclRef::Named("HTTP".into()),
                }]],
            },
        ),
    ];
    p.default_backend = Some("web".into());
    p
}

fn resolve(name: &str) -> Option<usize> {
    ["web", "api", "api_v2", "static", "tcp_only"]
        .iter()
        .position(|b| *b == name)
}

#[test]
fn router_order_and_default() {
    let r = Router::compile(&frontend(), &resolve).expect("compiles");
    assert_eq!(r.route(&path("/api/v1")), Some(1));
    assert_eq!(r.route(&path("/api/v2/x")), Some(1));
    assert_eq!(r.route(&path("/static/a.css")), Some(3));
    assert_eq!(r.route(&path("/")), Some(0));
    assert_eq!(r.route(&src("10.0.0.1")), Some(4));

    let mut no_default = frontend();
    no_default.default_backend = None;
    let r = Router::compile(&no_default, &resolve).expect("compiles");
    assert_eq!(r.route(&path("/")), None);
    assert_eq!(r.route(&path("/api")), Some(1));

    // A backend section has no rules: nothing to route.
    let be = Proxy::new(ProxyKind::Backend, "be");
    let r = Router::compile(&be, &resolve).expect("compiles");
    assert_eq!(r.route(&path("/")), None);
}

#[test]
fn router_errors() {
    let mut p = frontend();
    p.default_backend = Some("missing".into());
    let err = Router::compile(&p, &resolve).expect_err("missing default");
    println!("{err}");
    assert_eq!(
        err.to_string(),
        "default_backend: no backend named 'missing'"
    );

    let mut p = frontend();
    p.use_backends[1].backend = "gone".into();
    let err = Router::compile(&p, &resolve).expect_err("missing use_backend");
    assert_eq!(err.to_string(), "use_backend: no backend named 'gone'");

    let mut p = frontend();
    p.use_backends[0].cond = when(vec![vec![term("is_apx")]]);
    let err = Router::compile(&p, &resolve).expect_err("unknown acl");
    assert_eq!(err.to_string(), "unknown ACL 'is_apx'");
}
