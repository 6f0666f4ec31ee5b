//! What a config costs to check is bounded: line length, words per line,
//! errors and warnings kept, echoed words, and time on huge valid configs.

use shoal_proto::config::{parse, Parsed};
use std::fmt::Write;
use std::time::{Duration, Instant};

fn errors(text: &str) -> Vec<String> {
    match parse(text, "l.cfg") {
        Ok(p) => panic!("expected errors, got a config: {:#?}", p.config),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

fn ok(text: &str) -> Parsed {
    match parse(text, "l.cfg") {
        Ok(p) => p,
        Err(e) => panic!("unexpected errors: {e:#?}"),
    }
}

#[test]
fn a_line_over_64_kib_is_an_error_and_is_not_echoed() {
    let long = format!("    acl a path {}", "x".repeat(70_000));
    let text = format!("backend b\n{long}\n    blance roundrobin\n");
    assert_eq!(
        errors(&text),
        [
            "l.cfg:2: line too long (more than 65536 bytes); it is not read",
            "l.cfg:3: unknown keyword 'blance' in 'backend' section; did you mean 'balance'?",
        ]
    );
    // Just under the limit is read as usual.
    let fits = format!("backend b\n    acl a path {}\n", "x".repeat(65_000));
    ok(&fits);
}

#[test]
fn more_than_64_words_on_a_line_is_an_error_as_in_haproxy() {
    // 3 words and 62 values: 65 words.
    let values: Vec<String> = (0..62).map(|i| format!("/{i}")).collect();
    let line = format!(
        "frontend f\n    bind :80\n    acl a path {}\n",
        values.join(" ")
    );
    assert_eq!(
        errors(&line),
        ["l.cfg:3: too many words on one line (HAProxy's limit is 64)"]
    );
    let values: Vec<String> = (0..61).map(|i| format!("/{i}")).collect();
    ok(&format!(
        "frontend f\n    mode http\n    bind :80\n    acl a path {}\n",
        values.join(" ")
    ));
}

#[test]
fn reading_stops_after_50_errors() {
    let mut text = String::from("backend b\n");
    for i in 0..10_000 {
        let _ = writeln!(text, "    bogus{i}");
    }
    let e = errors(&text);
    assert_eq!(e.len(), 51, "{e:#?}");
    assert_eq!(
        e[0],
        "l.cfg:2: unknown keyword 'bogus0' in 'backend' section"
    );
    assert_eq!(
        e[50],
        "l.cfg:51: too many errors (50); stopping here without reading the rest of the file"
    );
}

#[test]
fn errors_found_at_the_end_are_capped_too() {
    let mut text = String::from("frontend f\n    bind :80\n");
    for i in 0..300 {
        let _ = writeln!(text, "    use_backend nowhere{i}");
    }
    let e = errors(&text);
    assert_eq!(e.len(), 51);
    assert_eq!(
        e[0],
        "l.cfg:3: frontend 'f' routes to backend 'nowhere0', which is not defined"
    );
    assert_eq!(
        e[50],
        "l.cfg:0: too many errors (50); the others are not shown"
    );
}

#[test]
fn echoed_words_are_cut_to_64_characters() {
    let word = "k".repeat(5_000);
    let e = errors(&format!(
        "backend b\n    {word} x\n    server s '{word}!'\n"
    ));
    let cut = format!("{}...", "k".repeat(64));
    assert_eq!(
        e,
        [
            format!("l.cfg:2: unknown keyword '{cut}' in 'backend' section"),
            format!("l.cfg:3: malformed address '{cut}' in server address '{cut}'"),
        ]
    );
}

#[test]
fn at_most_100_warnings_are_kept() {
    let mut text = String::from("backend b\n");
    for _ in 0..5_000 {
        text.push_str("    contimeout 5s\n");
    }
    let p = ok(&text);
    assert_eq!(p.warnings.len(), 101);
    assert_eq!(
        p.warnings[100].to_string(),
        "l.cfg:0: 4900 more warnings are not shown (at most 100 are)"
    );
}

/// Duplicate names, server names, ACL names and routing targets are looked
/// up by name: checking used to take quadratic time (16 s for 20 000
/// backends and rules).
#[test]
fn huge_valid_configs_check_in_linear_time() {
    let n = 40_000;
    let mut text = String::new();
    for i in 0..n {
        let _ = writeln!(text, "backend b{i}\n    mode http\n    stick-table type ip size 1k\n    stick on src table b{i}\n    server s 10.0.0.1:80");
    }
    text.push_str("frontend f\n    mode http\n    bind :80\n    default_backend b0\n");
    for i in 0..n {
        let _ = writeln!(text, "    acl a{i} path /{i}\n    use_backend b{i} if a{i}");
    }
    text.push_str("backend many\n    mode http\n");
    for i in 0..n {
        let _ = writeln!(text, "    server s{i} 10.0.0.1:80");
    }
    let started = Instant::now();
    let p = ok(&text);
    let elapsed = started.elapsed();
    assert_eq!(p.config.proxies.len(), n + 2);
    // Generous for a debug build on a busy machine; quadratic took minutes.
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
}

#[test]
fn zero_warning_turns_warnings_into_errors() {
    let text = "global\n    zero-warning\n    cpu-map 1 0\nbackend b\n    contimeout 5s\n";
    assert_eq!(
        errors(text),
        [
            "l.cfg:3: 'cpu-map' is not implemented by Shoal yet; ignored (it only tunes performance or resource use)",
            "l.cfg:5: 'contimeout' is deprecated; use 'timeout connect' (Shoal reads it as that)",
            "l.cfg:0: warnings were found and 'zero-warning' is set; refusing to start",
        ]
    );
    ok("global\n    zero-warning\nbackend b\n");
}

#[test]
fn a_line_that_is_not_utf8_is_an_error_naming_it() {
    let p =
        shoal_proto::config::parse_reader(&b"backend b\n    \xff\xfe\n    bogus\n"[..], "l.cfg");
    let e: Vec<String> = p
        .err()
        .unwrap_or_default()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        e,
        [
            "l.cfg:2: line is not valid UTF-8 text",
            "l.cfg:3: unknown keyword 'bogus' in 'backend' section",
        ]
    );
}
