//! The pure parts of the client: argument parsing, the table, the error
//! lines. Requests go through real processes in `node/tests/cli.rs`.

use super::client::{error_message, io_reason, CliError};
use super::render::{self, ClusterStatus};
use super::{host_port, seconds, ClientCommand, ServerName};
use clap::{Parser, Subcommand};
use hyper::StatusCode;
use std::time::Duration;

/// The commands as `main` mounts them.
#[derive(Parser, Debug)]
#[command(name = "shoal")]
struct Cli {
    #[command(subcommand)]
    command: Top,
}

#[derive(Subcommand, Debug)]
enum Top {
    #[command(flatten)]
    Client(ClientCommand),
}

fn parse(args: &[&str]) -> Result<ClientCommand, clap::Error> {
    let argv = std::iter::once("shoal").chain(args.iter().copied());
    Cli::try_parse_from(argv).map(|cli| match cli.command {
        Top::Client(c) => c,
    })
}

#[test]
fn server_names_need_exactly_one_slash() {
    let name: ServerName = "app/s1".parse().expect("valid");
    assert_eq!((name.backend.as_str(), name.server.as_str()), ("app", "s1"));
    assert_eq!(name.to_string(), "app/s1");
    for bad in ["app", "/s1", "app/", "a/b/c", ""] {
        assert!(bad.parse::<ServerName>().is_err(), "{bad:?}");
    }
}

#[test]
fn admin_addresses_and_timeouts() {
    for good in [
        "127.0.0.1:9090",
        "[::1]:9090",
        "localhost:9090",
        "lb-1.example:1",
    ] {
        assert_eq!(host_port(good).as_deref(), Ok(good));
    }
    for bad in [
        "127.0.0.1",
        "localhost",
        ":9090",
        "::1",
        "host:99999",
        "host:x",
    ] {
        assert!(host_port(bad).is_err(), "{bad:?}");
    }
    assert_eq!(seconds("1.5"), Ok(Duration::from_millis(1500)));
    for bad in ["0", "-1", "nan", "inf", "1e9", "x"] {
        assert!(seconds(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn usage_errors_are_clap_errors() {
    use clap::error::ErrorKind;
    assert!(parse(&["server", "weight", "app/s1", "50"]).is_ok());
    assert!(parse(&["cluster", "status", "--json", "--admin", "h:1"]).is_ok());
    assert!(parse(&["cluster", "join", "--via", "10.0.0.1:7001"]).is_ok());
    let cases: &[&[&str]] = &[
        &["server", "weight", "app", "50"],
        &["server", "weight", "app/s1", "-1"],
        &["server", "state", "app/s1", "up"],
        &["cluster", "join"],
        &["cluster", "join", "--via", "somewhere"],
        &["cluster", "remove", "one"],
        &["node", "drain"],
        &["config", "apply"],
        &["config", "show", "--admin", "nowhere"],
        &["config", "show", "--timeout", "0"],
    ];
    for args in cases {
        let e = parse(args).expect_err(&args.join(" "));
        assert_ne!(e.kind(), ErrorKind::DisplayHelp, "{args:?}");
        // clap exits 2 on these.
        assert_eq!(e.exit_code(), 2, "{args:?}");
    }
}

#[test]
fn defaults() {
    let Ok(ClientCommand::Server(super::ServerCommand::State { target, state, .. })) =
        parse(&["server", "state", "app/s1", "maint"])
    else {
        panic!("parsed as something else");
    };
    assert_eq!(target.admin, super::DEFAULT_ADMIN);
    assert_eq!(target.timeout, None);
    assert_eq!(state.word(), "maint");
}

const STATUS: &str = r#"{"node":1,"leader":1,"term":3,"quorum":true,"members":[
  {"id":2,"cluster":"127.0.0.12:7001","admin":"127.0.0.12:9090","role":"voter","reachable":false,"drained":true,"committed":null,"applied":null,"lag":null},
  {"id":1,"cluster":"127.0.0.11:7001","admin":"127.0.0.11:9090","role":"voter","reachable":true,"drained":false,"committed":12,"applied":12,"lag":0}]}"#;

#[test]
fn cluster_table() {
    let status: ClusterStatus = serde_json::from_str(STATUS).expect("parses");
    let text = render::cluster_status(&status);
    let want = "\
node 1  leader 1  term 3  quorum ok
ID          CLUSTER          ADMIN            ROLE   REACHABLE  DRAINED  APPLIED  LAG
1 (leader)  127.0.0.11:7001  127.0.0.11:9090  voter  yes        no       12       0
2           127.0.0.12:7001  127.0.0.12:9090  voter  no         yes      -        -
";
    assert_eq!(text, want);
}

#[test]
fn lost_quorum_comes_first_and_nulls_show_as_dashes() {
    let doc = r#"{"node":3,"leader":null,"term":4,"quorum":false,"members":[{"id":3}]}"#;
    let status: ClusterStatus = serde_json::from_str(doc).expect("parses");
    let text = render::cluster_status(&status);
    let mut lines = text.lines();
    assert!(
        lines.next().is_some_and(|l| l.starts_with("QUORUM LOST")),
        "{text}"
    );
    assert_eq!(
        lines.next(),
        Some("node 3  leader none  term 4  quorum LOST")
    );
    assert_eq!(
        lines.nth(1),
        Some("3   -        -      -     -          -        -        -"),
        "{text}"
    );
}

#[test]
fn errors_are_one_line() {
    let refused = CliError::Refused {
        status: StatusCode::UNAUTHORIZED,
        message: error_message(br#"{"error":"missing or invalid bearer token"}"#),
    };
    assert_eq!(
        render::error(&refused),
        "shoal: 401 Unauthorized: missing or invalid bearer token\n"
    );
    // Not the API's JSON (a proxy in front): the text, on one line.
    let proxy = CliError::Refused {
        status: StatusCode::BAD_GATEWAY,
        message: error_message(b"<html>\n<body>bad gateway</body>\n</html>\n"),
    };
    assert_eq!(
        render::error(&proxy),
        "shoal: 502 Bad Gateway: <html>; <body>bad gateway</body>; </html>\n"
    );
    let empty = CliError::Refused {
        status: StatusCode::from_u16(599).expect("status"),
        message: error_message(b""),
    };
    assert_eq!(render::error(&empty), "shoal: 599\n");
    // Terminal escapes from the network are shown, not obeyed.
    let sneaky = CliError::Refused {
        status: StatusCode::CONFLICT,
        message: error_message(b"{\"error\":\"a\\u001b[31mb\"}"),
    };
    assert_eq!(
        render::error(&sneaky),
        "shoal: 409 Conflict: a\\u{1b}[31mb\n"
    );
    // ECONNREFUSED, as the OS words it, in lower case and without its number.
    let os = std::io::Error::from_raw_os_error(111);
    assert_eq!(io_reason(&os), "connection refused");
}

#[test]
fn config_diagnostics_follow_on_indented_lines() {
    let one = CliError::ConfigRefused("new.cfg:3: unknown keyword 'bnid'".into());
    assert_eq!(
        render::error(&one),
        "shoal: config refused: new.cfg:3: unknown keyword 'bnid'\n"
    );
    let many = CliError::ConfigRefused(
        "new.cfg:3: unknown keyword 'bnid'\nnew.cfg:7: no such backend 'x'\n".into(),
    );
    assert_eq!(
        render::error(&many),
        "shoal: config refused: new.cfg:3: unknown keyword 'bnid'\n  new.cfg:7: no such backend 'x'\n"
    );
}

#[test]
fn warnings_beside_an_accepted_config() {
    assert_eq!(
        render::warnings(br#"{"warnings":["a.cfg:2: 'option x' is ignored"]}"#),
        vec!["a.cfg:2: 'option x' is ignored".to_string()]
    );
    assert!(render::warnings(b"ok").is_empty());
    assert!(render::warnings(b"{}").is_empty());
}

#[test]
fn certificates_show_expiry_and_mark_the_near_ones() {
    let doc = r#"[
      {"name":"ok","names":["a.test","b.test"],"not_after_utc":"2027-06-01T00:00:00Z","days_left":200,"expiry":"ok","sha256_fingerprint":"aa"},
      {"name":"soon","names":["c.test"],"not_after_utc":"2026-12-10T00:00:00Z","days_left":9,"expiry":"expiring","sha256_fingerprint":"bb"},
      {"name":"old","names":[],"not_after_utc":"2026-01-01T00:00:00Z","days_left":-333,"expiry":"expired","sha256_fingerprint":"cc"}]"#;
    let list: Vec<render::Cert> = serde_json::from_str(doc).expect("parses");
    let want = "\
CERTIFICATE  NAMES          EXPIRES                               SHA256
ok           a.test,b.test  2027-06-01T00:00:00Z (200 days left)  aa
soon         c.test         2026-12-10T00:00:00Z (9 days left) !  bb
old                         2026-01-01T00:00:00Z (EXPIRED) !      cc
";
    assert_eq!(render::certificates(&list), want);
    assert_eq!(render::certificates(&[]), "no certificates\n");
}

/// `shoal cert add` sends a private key only to an admin API on this
/// machine (the admin API is plain HTTP).
#[test]
fn only_local_admin_addresses_count_as_this_machine() {
    use super::commands::is_local;
    for local in [
        "127.0.0.1:9090",
        "127.0.0.12:9090",
        "[::1]:9090",
        "localhost:9090",
    ] {
        assert!(is_local(local), "{local}");
    }
    for remote in [
        "10.0.0.12:9090",
        "[2001:db8::1]:9090",
        "shoal-2.example:9090",
        "0.0.0.0:9090",
    ] {
        assert!(!is_local(remote), "{remote}");
    }
}
