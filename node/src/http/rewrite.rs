//! Writing the heads Shoal forwards. Header lines are copied as received
//! (name case, order, spacing), minus the hop-by-hop ones that
//! [`super::head`] marked; the proxy adds only what it must: its own
//! `Connection`, `X-Forwarded-For`, persistence cookies, and the single
//! `Content-Length` or `TE: trailers` that replaces a normalised line.

use super::cookie;
use super::head::{Field, Kind, RequestHead, ResponseHead};
use super::rules::{HeaderSet, Rules};
use crate::persist;
use shoal_proto::config::{CookieConfig, CookieMode};
use std::io::Write as _;

/// The `Connection` header the proxy writes on a hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnHeader {
    /// None: HTTP/1.1 keeps the connection by default.
    None,
    Close,
    /// For HTTP/1.0 peers, which close by default.
    KeepAlive,
    /// A protocol upgrade (with the `Upgrade` line kept).
    Upgrade,
}

impl ConnHeader {
    fn line(self) -> &'static [u8] {
        match self {
            ConnHeader::None => b"",
            ConnHeader::Close => b"Connection: close\r\n",
            ConnHeader::KeepAlive => b"Connection: keep-alive\r\n",
            ConnHeader::Upgrade => b"Connection: upgrade\r\n",
        }
    }
}

/// What the proxy changes in a request on its way to a server.
pub struct RequestEdits<'a> {
    /// `option forwardfor`: the client address to append.
    pub forwarded_for: Option<&'a str>,
    /// Cookie persistence: hide or unprefix the persistence cookie.
    pub cookie: Option<&'a CookieConfig>,
    pub connection: ConnHeader,
    /// `http-request set-header|add-header|del-header` rules that hold.
    pub headers: (&'a Rules, HeaderSet),
}

fn raw_line(out: &mut Vec<u8>, buf: &[u8], f: &Field) {
    out.extend_from_slice(&buf[f.name.start as usize..f.value.end as usize]);
    out.extend_from_slice(b"\r\n");
}

fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Append the request head to send to the server to `out`.
pub fn request(out: &mut Vec<u8>, buf: &[u8], head: &RequestHead, edits: &RequestEdits<'_>) {
    out.extend_from_slice(head.method.of(buf));
    out.push(b' ');
    out.extend_from_slice(head.target.of(buf));
    out.extend_from_slice(if head.minor == 0 {
        b" HTTP/1.0\r\n"
    } else {
        b" HTTP/1.1\r\n"
    });
    let (rules, set) = edits.headers;
    for f in head.fields.iter().filter(|f| !f.hop) {
        if rules.drops(set, f.name.of(buf)) {
            continue;
        }
        if let (Kind::Cookie, Some(cfg)) = (f.kind, edits.cookie) {
            let value = String::from_utf8_lossy(f.value.of(buf));
            match cookie::for_server(&value, cfg) {
                None => raw_line(out, buf, f),
                Some(text) if text.is_empty() => {}
                Some(text) => line(out, f.name.of(buf), text.as_bytes()),
            }
            continue;
        }
        raw_line(out, buf, f);
    }
    if let Some(n) = head.normalized_length {
        let _ = write!(out, "Content-Length: {n}\r\n");
    }
    if head.te_trailers {
        out.extend_from_slice(b"TE: trailers\r\n");
    }
    rules.added(set, |name, value| line(out, name, value));
    if let Some(ip) = edits.forwarded_for {
        // HAProxy appends its own line rather than editing an existing one.
        line(out, b"X-Forwarded-For", ip.as_bytes());
    }
    out.extend_from_slice(edits.connection.line());
    out.extend_from_slice(b"\r\n");
}

/// Cookie persistence facts for a response.
pub struct CookieEdit<'a> {
    pub cfg: &'a CookieConfig,
    /// The cookie value of the server that answered.
    pub server_cookie: &'a str,
    /// The client already sent a cookie naming this server.
    pub client_has_it: bool,
    /// First-insertion date of the client's cookie (`maxlife`).
    pub first: Option<u64>,
}

/// What the proxy changes in a response on its way to the client.
pub struct ResponseEdits<'a> {
    pub cookie: Option<CookieEdit<'a>>,
    pub connection: ConnHeader,
}

/// Append the response head to send to the client to `out`. The status
/// line always says HTTP/1.1, as HAProxy's does.
pub fn response(out: &mut Vec<u8>, buf: &[u8], head: &ResponseHead, edits: &ResponseEdits<'_>) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(head.status_text.of(buf));
    out.extend_from_slice(b"\r\n");
    let plan = edits
        .cookie
        .as_ref()
        .map(|c| CookiePlan::new(buf, head, c))
        .unwrap_or_default();
    for f in head.fields.iter().filter(|f| !f.hop) {
        match (f.kind, &edits.cookie) {
            (Kind::SetCookie, Some(c)) if plan.rewrite => {
                let value = String::from_utf8_lossy(f.value.of(buf));
                match cookie::rewrite_response(&value, c.cfg, c.server_cookie) {
                    Some(text) => line(out, f.name.of(buf), text.as_bytes()),
                    None => raw_line(out, buf, f),
                }
            }
            // `nocache`: the response must not be cached with our cookie.
            (Kind::CacheControl, _) if plan.private => {}
            _ => raw_line(out, buf, f),
        }
    }
    if let (Some(n), true) = (
        head.normalized_length,
        head.framing != super::head::Framing::Chunked,
    ) {
        let _ = write!(out, "Content-Length: {n}\r\n");
    }
    if let (Some(c), true) = (&edits.cookie, plan.insert) {
        let first = if c.client_has_it { c.first } else { None };
        let value = cookie::inserted(c.cfg, c.server_cookie, persist::unix_now(), first);
        line(out, b"Set-Cookie", value.as_bytes());
    }
    if plan.private {
        out.extend_from_slice(b"Cache-Control: private\r\n");
    }
    out.extend_from_slice(edits.connection.line());
    out.extend_from_slice(b"\r\n");
}

/// What cookie persistence does to one response.
#[derive(Default)]
struct CookiePlan {
    /// Insert mode: add our `Set-Cookie`.
    insert: bool,
    /// Rewrite/prefix mode: edit the server's `Set-Cookie` lines.
    rewrite: bool,
    /// `nocache`: replace `Cache-Control` with `private`.
    private: bool,
}

impl CookiePlan {
    fn new(buf: &[u8], head: &ResponseHead, c: &CookieEdit<'_>) -> CookiePlan {
        let set_cookies = || {
            head.fields
                .iter()
                .filter(|f| !f.hop && f.kind == Kind::SetCookie)
                .map(|f| f.value.of(buf))
        };
        match c.cfg.mode {
            CookieMode::Insert => {
                let server_sets_it = c.cfg.preserve
                    && set_cookies()
                        .any(|v| cookie::sets(&String::from_utf8_lossy(v), &c.cfg.name));
                // With `maxidle` the cookie is re-sent to refresh its idle date.
                let refresh = c.cfg.maxidle.is_some();
                let insert = !((c.cfg.indirect && c.client_has_it && !refresh) || server_sets_it);
                CookiePlan {
                    insert,
                    rewrite: false,
                    private: insert && c.cfg.nocache,
                }
            }
            CookieMode::Rewrite | CookieMode::Prefix => {
                let any = set_cookies().next().is_some();
                CookiePlan {
                    insert: false,
                    rewrite: any,
                    private: any && c.cfg.nocache,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::{parse_request, parse_response, Limits, Method};
    use shoal_proto::config::CookieMode;

    const LIMITS: Limits = Limits {
        bufsize: 16384,
        maxhdr: 101,
    };

    fn cookie(mode: CookieMode) -> CookieConfig {
        CookieConfig {
            name: "SRV".into(),
            mode,
            indirect: true,
            nocache: true,
            preserve: false,
            httponly: false,
            secure: false,
            domains: vec![],
            maxidle: None,
            maxlife: None,
        }
    }

    /// `http-request set-header|add-header|del-header`, as HAProxy: a set
    /// replaces every line of the name (any case), a later set or del
    /// removes what an earlier add put, rules whose condition fails do
    /// nothing.
    #[test]
    fn header_rules_edit_the_request_head() {
        let cfg = "frontend fe\n    mode http\n    bind :80\n\
            \x20   http-request add-header X-Gone early\n\
            \x20   http-request set-header X-Forwarded-Proto https\n\
            \x20   http-request add-header X-Via shoal\n\
            \x20   http-request del-header x-debug\n\
            \x20   http-request set-header x-gone late\n\
            \x20   http-request set-header X-Never no if { src 10.9.9.9 }\n";
        let parsed = shoal_proto::config::parse(cfg, "t.cfg").expect("config");
        let rules = Rules::compile(&parsed.config.proxies[0]).expect("rules");
        let raw: &[u8] = b"GET / HTTP/1.1\r\nhost: x\r\nx-forwarded-proto: http\r\nX-Debug: 1\r\nX-FORWARDED-PROTO: ftp\r\nX-Never: kept\r\n\r\n";
        let head = parse_request(raw, &LIMITS, &mut Vec::new())
            .expect("valid")
            .expect("complete");
        let samples = super::super::samples::HttpSamples {
            buf: raw,
            head: &head,
            src: "127.0.0.1".parse().expect("ip"),
            dst_port: 80,
            tls: None,
        };
        let super::super::rules::Verdict::Forward(set) = rules.eval(&samples) else {
            panic!("no redirect here");
        };
        let mut out = Vec::new();
        let edits = RequestEdits {
            forwarded_for: None,
            cookie: None,
            connection: ConnHeader::None,
            headers: (&rules, set),
        };
        request(&mut out, raw, &head, &edits);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "GET / HTTP/1.1\r\nhost: x\r\nX-Never: kept\r\n\
             X-Forwarded-Proto: https\r\nX-Via: shoal\r\nx-gone: late\r\n\r\n"
        );
    }

    #[test]
    fn request_keeps_lines_and_edits_only_what_it_must() {
        let raw: &[u8] = b"POST /a HTTP/1.0\r\nhost: x\r\nCookie: a=1; SRV=s1\r\nConnection: keep-alive\r\nX-Odd:  spaced\r\nContent-Length: 2, 2\r\n\r\nhi";
        let head = parse_request(raw, &LIMITS, &mut Vec::new())
            .expect("valid")
            .expect("complete");
        let cfg = cookie(CookieMode::Insert);
        let mut out = Vec::new();
        let rules = Rules::default();
        let edits = RequestEdits {
            forwarded_for: Some("10.0.0.9"),
            cookie: Some(&cfg),
            connection: ConnHeader::KeepAlive,
            headers: (&rules, HeaderSet::default()),
        };
        request(&mut out, raw, &head, &edits);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "POST /a HTTP/1.0\r\nhost: x\r\nCookie: a=1\r\nX-Odd:  spaced\r\nContent-Length: 2\r\n\
             X-Forwarded-For: 10.0.0.9\r\nConnection: keep-alive\r\n\r\n"
        );
    }

    #[test]
    fn response_gets_the_persistence_cookie() {
        let raw: &[u8] = b"HTTP/1.1 200 Fine\r\nCache-Control: max-age=60\r\nKeep-Alive: 5\r\nContent-Length: 0\r\n\r\n";
        let head = parse_response(raw, &LIMITS, Method::Other, &mut Vec::new())
            .expect("valid")
            .expect("complete");
        let cfg = cookie(CookieMode::Insert);
        let edits = ResponseEdits {
            cookie: Some(CookieEdit {
                cfg: &cfg,
                server_cookie: "s2",
                client_has_it: false,
                first: None,
            }),
            connection: ConnHeader::Close,
        };
        let mut out = Vec::new();
        response(&mut out, raw, &head, &edits);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "HTTP/1.1 200 Fine\r\nContent-Length: 0\r\nSet-Cookie: SRV=s2; path=/\r\n\
             Cache-Control: private\r\nConnection: close\r\n\r\n"
        );
        // Rewrite mode edits the server's own cookie in place.
        let raw: &[u8] = b"HTTP/1.1 200 OK\r\nSet-Cookie: SRV=app; Path=/\r\nX: 1\r\n\r\n";
        let head = parse_response(raw, &LIMITS, Method::Other, &mut Vec::new())
            .expect("valid")
            .expect("complete");
        let mut cfg = cookie(CookieMode::Rewrite);
        cfg.nocache = false;
        let edits = ResponseEdits {
            cookie: Some(CookieEdit {
                cfg: &cfg,
                server_cookie: "s2",
                client_has_it: false,
                first: None,
            }),
            connection: ConnHeader::None,
        };
        let mut out = Vec::new();
        response(&mut out, raw, &head, &edits);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "HTTP/1.1 200 OK\r\nSet-Cookie: SRV=s2; Path=/\r\nX: 1\r\n\r\n"
        );
    }
}
