use super::*;

const LIMITS: Limits = Limits {
    bufsize: 16384,
    maxhdr: 101,
};

fn request(raw: &str) -> Result<RequestHead, HeadError> {
    parse_request(raw.as_bytes(), &LIMITS, &mut Vec::new()).map(|h| h.expect("complete head"))
}

fn response(raw: &str, method: Method) -> Result<ResponseHead, HeadError> {
    parse_response(raw.as_bytes(), &LIMITS, method, &mut Vec::new())
        .map(|h| h.expect("complete head"))
}

fn status(raw: &str) -> u16 {
    match request(raw) {
        Ok(_) => 200,
        Err(e) => e.status(),
    }
}

#[test]
fn framing_rules_match_haproxy() {
    let r = "POST / HTTP/1.1\r\nHost: a\r\n";
    // Each answer below is what HAProxy 2.6 gives (see head.rs).
    assert_eq!(status(&format!("{r}Host: b\r\n\r\n")), 400);
    assert_eq!(status(&format!("{r}host: A\r\n\r\n")), 200);
    assert_eq!(
        status(&format!(
            "{r}Content-Length: 3\r\nContent-Length: 4\r\n\r\n"
        )),
        400
    );
    assert_eq!(status(&format!("{r}Content-Length: 3, 3\r\n\r\n")), 200);
    assert_eq!(status(&format!("{r}Content-Length: -1\r\n\r\n")), 400);
    assert_eq!(status(&format!("{r}Content-Length: +3\r\n\r\n")), 400);
    assert_eq!(
        status(&format!(
            "{r}Content-Length: 99999999999999999999999\r\n\r\n"
        )),
        400
    );
    assert_eq!(
        status(&format!(
            "{r}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
        )),
        400
    );
    assert_eq!(
        status(&format!("{r}Transfer-Encoding: chunked, chunked\r\n\r\n")),
        400
    );
    assert_eq!(status(&format!("{r}Transfer-Encoding: gzip\r\n\r\n")), 400);
    assert_eq!(
        status(&format!("{r}Transfer-Encoding: chunked, gzip\r\n\r\n")),
        400
    );
    assert_eq!(
        status(&format!("{r}Transfer-Encoding: identity, chunked\r\n\r\n")),
        422
    );
    assert_eq!(
        status(&format!("{r}Transfer-Encoding: gzip, chunked\r\n\r\n")),
        422
    );
    assert_eq!(
        status(&format!("{r}Transfer-Encoding: Chunked\r\n\r\n")),
        200
    );
    assert_eq!(status("GET http://other/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_eq!(status("GET http://A:80/x HTTP/1.1\r\nHost: a\r\n\r\n"), 200);
    assert_eq!(status("GET http://a/x HTTP/1.1\r\n\r\n"), 200);
    assert_eq!(status("GET / HTTP/1.1\r\nX-A : b\r\n\r\n"), 400);
}

#[test]
fn lengths_and_smuggling_guard() {
    let h = request("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n")
        .expect("valid");
    assert_eq!(h.framing, Framing::Chunked);
    assert!(h.smuggle_guard);
    assert!(h
        .fields
        .iter()
        .filter(|f| f.kind == Kind::ContentLength)
        .all(|f| f.hop));
    let h = request("POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\n").expect("valid");
    assert_eq!(h.framing, Framing::Length(3));
    assert_eq!(h.normalized_length, Some(3));
    let h = request("GET / HTTP/1.1\r\n\r\n").expect("valid");
    assert_eq!(h.framing, Framing::Empty);
}

#[test]
fn hop_by_hop_lines_are_marked() {
    let raw = "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Foo\r\nX-Foo: 1\r\n\
               Keep-Alive: 5\r\nProxy-Connection: x\r\nTE: gzip, trailers\r\nUpgrade: h2c\r\n\
               Trailer: X-T\r\nX-Keep: 1\r\n\r\n";
    let h = request(raw).expect("valid");
    let kept: Vec<&str> = h
        .fields
        .iter()
        .filter(|f| !f.hop)
        .map(|f| std::str::from_utf8(f.name.of(raw.as_bytes())).expect("ascii"))
        .collect();
    assert_eq!(kept, ["Host", "Trailer", "X-Keep"]);
    assert!(h.te_trailers && h.conn.keep_alive && !h.upgrade);
    let ws = request("GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        .expect("valid");
    assert!(ws.upgrade);
    assert!(ws.fields.iter().any(|f| f.kind == Kind::Upgrade && !f.hop));
}

#[test]
fn size_limits_follow_haproxy_accounting() {
    // HAProxy 2.6 with tune.bufsize 16384 accepts at most 15273 bytes for
    // a head with two header lines, 14881 with 100, and refuses 101 lines.
    let head = |total: usize, lines: usize| {
        let mut s = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        for i in 0..lines - 2 {
            s.push_str(&format!("X-H{i}: v\r\n"));
        }
        let pad = total - s.len() - "X-Pad: \r\n\r\n".len();
        s.push_str(&format!("X-Pad: {}\r\n\r\n", "p".repeat(pad)));
        assert_eq!(s.len(), total);
        s
    };
    assert!(request(&head(15273, 2)).is_ok());
    assert_eq!(request(&head(15274, 2)).err(), Some(HeadError::TooLarge));
    assert!(request(&head(14881, 100)).is_ok());
    assert_eq!(request(&head(14882, 100)).err(), Some(HeadError::TooLarge));
    assert_eq!(
        request(&head(3000, 101)).err(),
        Some(HeadError::TooManyFields)
    );
    // An incomplete head that fills the room is refused without waiting.
    let partial = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(LIMITS.room()));
    assert_eq!(
        parse_request(partial.as_bytes(), &LIMITS, &mut Vec::new()).err(),
        Some(HeadError::TooLarge)
    );
}

#[test]
fn responses() {
    let r = response(
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        Method::Other,
    )
    .expect("valid");
    assert_eq!(r.framing, Framing::Chunked);
    assert!(r.smuggle_guard);
    assert_eq!(
        response(
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
            Method::Other
        )
        .err(),
        Some(HeadError::ContentLength)
    );
    let r = response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", Method::Head).expect("valid");
    assert_eq!(r.framing, Framing::Empty);
    let r = response("HTTP/1.0 200 OK\r\n\r\n", Method::Other).expect("valid");
    assert_eq!(r.framing, Framing::UntilClose);
    assert!(!r.keep_alive);
    let r = response(
        "HTTP/1.0 204 No Content\r\nConnection: keep-alive\r\n\r\n",
        Method::Other,
    )
    .expect("valid");
    assert!(r.keep_alive && r.framing == Framing::Empty);
    let r = response(
        "HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n",
        Method::Other,
    )
    .expect("valid");
    assert!(!r.keep_alive);
    let raw = "HTTP/1.1 404 Not Found  \r\n\r\n";
    let r = response(raw, Method::Other).expect("valid");
    assert_eq!(r.status_text.of(raw.as_bytes()), b"404 Not Found");
    assert!(response("HTTP/1.1 200 OK\r\nBad Header Line\r\n\r\n", Method::Other).is_err());
    let r = response(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        Method::Other,
    )
    .expect("valid");
    assert_eq!(r.framing, Framing::Chunked);
}

#[test]
fn origin_part_of_targets() {
    assert_eq!(origin_part(b"/a?b"), b"/a?b");
    assert_eq!(origin_part(b"http://h:8/a?b"), b"/a?b");
    assert_eq!(origin_part(b"http://h"), b"");
    assert_eq!(
        authority(b"https://h.example:443/x"),
        Some(&b"h.example:443"[..])
    );
    assert_eq!(authority(b"/x:y"), None);
}

#[test]
fn head_scan_parses_on_empty_lines_and_doubling() {
    let mut scan = HeadScan::default();
    let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    assert!(
        scan.worth_parsing(&head[..5]),
        "first bytes: garbage is caught early"
    );
    assert!(!scan.worth_parsing(&head[..6]));
    assert!(scan.worth_parsing(&head[..10]), "doubled");
    assert!(!scan.worth_parsing(&head[..15]));
    assert!(!scan.worth_parsing(&head[..19]));
    assert!(
        scan.worth_parsing(head),
        "the empty line, split across reads"
    );
    let mut scan = HeadScan::default();
    assert!(scan.worth_parsing(b"GET / HTTP/1.1\nHost: a\n\n"));
}

#[test]
fn idempotent_methods_are_known() {
    let idempotent = |method: &str| {
        request(&format!("{method} / HTTP/1.1\r\nHost: a\r\n\r\n"))
            .expect("valid")
            .idempotent
    };
    for method in ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"] {
        assert!(idempotent(method), "{method}");
    }
    for method in ["POST", "PATCH", "CONNECT", "LOCK", "get", "Get"] {
        assert!(!idempotent(method), "{method}");
    }
}
