use super::commands::{execute, parse_delay, Flow, Session};
use super::*;
use crate::routing::{AdminState, OpState};
use crate::runtime::Runtime;
use shoal_proto::config::StatsLevel;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CONFIG: &str = "\
global
    maxconn 1000
defaults
    mode http
frontend fe
    bind 127.0.0.1:0
    default_backend app
backend app
    balance roundrobin
    stick-table type ip size 100 expire 30m
    stick on src
    server s1 127.0.0.1:1 weight 200 check
    server s2 127.0.0.1:2 weight 100
    server s3 127.0.0.1:3 weight 50 backup disabled
backend fixed
    balance static-rr
    server f1 127.0.0.1:5 weight 10
";

fn runtime() -> Arc<Runtime> {
    Arc::new(Runtime::from_text(CONFIG).expect("runtime builds"))
}

fn session(level: StatsLevel) -> Session {
    Session {
        level,
        interactive: false,
        timeout: Duration::from_secs(5),
    }
}

/// Run one command line at `level`; the answers joined as the wire has them.
fn run(rt: &Runtime, level: StatsLevel, line: &str) -> String {
    let mut s = session(level);
    let mut out = String::new();
    let exec = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("test runtime");
    for words in line::split(line) {
        let (answer, flow) = exec.block_on(execute(rt, &mut s, &words));
        if flow == Flow::Quit {
            break;
        }
        out.push_str(&answer);
        out.push('\n');
    }
    out
}

fn admin(rt: &Runtime, line: &str) -> String {
    run(rt, StatsLevel::Admin, line)
}

fn server_state(rt: &Runtime, b: &str, s: &str) -> crate::routing::ServerStatus {
    let snap = rt.snapshot();
    let be = snap.backend(b).expect("backend");
    be.servers
        .iter()
        .find(|x| &*x.name == s)
        .expect("server")
        .state
        .clone()
}

#[test]
fn get_and_set_weight() {
    let rt = runtime();
    assert_eq!(admin(&rt, "get weight app/s2"), "100 (initial 100)\n\n");
    assert_eq!(admin(&rt, "set weight app/s2 50"), "\n");
    assert_eq!(admin(&rt, "get weight app/s2"), "50 (initial 100)\n\n");
    assert_eq!(admin(&rt, "set weight app/s2 25%"), "\n");
    assert_eq!(admin(&rt, "get weight app/s2"), "25 (initial 100)\n\n");
    assert_eq!(admin(&rt, "set weight app/s2 300%"), "\n");
    assert_eq!(server_state(&rt, "app", "s2").weight, 256);
    assert_eq!(admin(&rt, "set server app/s2 weight 7"), "\n");
    assert_eq!(server_state(&rt, "app", "s2").weight, 7);
}

#[test]
fn weight_errors_are_haproxys() {
    let rt = runtime();
    let cases = [
        (
            "set weight app/s2 300",
            "Absolute weight can only be between 0 and 256 inclusive.\n\n",
        ),
        (
            "set weight app/s2 abc",
            "Empty weight string empty or preceded by garbage\n\n",
        ),
        (
            "set weight app/s2 7x",
            "Trailing garbage in weight string\n\n",
        ),
        (
            "set weight app/s2 -5%",
            "Relative weight must be positive.\n\n",
        ),
        ("set weight app/s2", "Require <weight> or <weight%>.\n\n"),
        ("set weight app", "Require 'backend/server'.\n\n"),
        ("set weight nope/s2 5", "No such backend.\n\n"),
        ("set weight app/nope 5", "No such server.\n\n"),
        ("get weight app", "Require 'backend/server'.\n\n"),
        ("get weight", "Require 'backend/server'.\n\n"),
        (
            "set weight fixed/f1 5",
            "Backend is using a static LB algorithm and only accepts weights '0%' and '100%'.\n\n",
        ),
    ];
    for (line, want) in cases {
        assert_eq!(admin(&rt, line), want, "{line}");
    }
    assert_eq!(admin(&rt, "set weight fixed/f1 0%"), "\n");
    assert_eq!(admin(&rt, "set weight fixed/f1 100%"), "\n");
}

#[test]
fn levels_are_enforced() {
    let rt = runtime();
    for line in [
        "set weight app/s2 5",
        "set server app/s2 state drain",
        "disable server app/s2",
        "enable health app/s1",
        "set maxconn server app/s2 10",
        "shutdown sessions server app/s2",
    ] {
        assert_eq!(
            run(&rt, StatsLevel::User, line),
            "Permission denied\n\n",
            "{line}"
        );
        assert_eq!(
            run(&rt, StatsLevel::Operator, line),
            "Permission denied\n\n",
            "{line}"
        );
    }
    assert_eq!(server_state(&rt, "app", "s2").weight, 100);
    assert_eq!(
        run(&rt, StatsLevel::User, "clear table app"),
        "Permission denied\n\n"
    );
    assert_eq!(run(&rt, StatsLevel::Operator, "clear table app"), "\n");
    assert_eq!(
        run(&rt, StatsLevel::User, "get weight app/s2"),
        "100 (initial 100)\n\n"
    );
    assert_eq!(run(&rt, StatsLevel::User, "show cli level"), "user\n\n");
    // A session may lower its level, never raise it.
    assert_eq!(
        run(&rt, StatsLevel::Admin, "user; set weight app/s2 5"),
        "\nPermission denied\n\n"
    );
    assert_eq!(
        run(&rt, StatsLevel::User, "operator"),
        "Permission denied\n\n"
    );
}

#[test]
fn server_states() {
    let rt = runtime();
    assert_eq!(admin(&rt, "set server app/s2 state drain"), "\n");
    assert_eq!(server_state(&rt, "app", "s2").admin, AdminState::Drain);
    assert_eq!(admin(&rt, "set server app/s2 state maint"), "\n");
    assert_eq!(server_state(&rt, "app", "s2").admin, AdminState::Maint);
    assert_eq!(admin(&rt, "enable server app/s2"), "\n");
    assert_eq!(server_state(&rt, "app", "s2").admin, AdminState::Ready);
    assert_eq!(admin(&rt, "disable server app/s2"), "\n");
    assert_eq!(server_state(&rt, "app", "s2").admin, AdminState::Maint);
    assert_eq!(admin(&rt, "set server app/s2 health down"), "\n");
    assert_eq!(server_state(&rt, "app", "s2").op, OpState::Down);
    assert_eq!(admin(&rt, "set server app/s2 health stopping"), "\n");
    assert_eq!(server_state(&rt, "app", "s2").op, OpState::Stopping);
    assert_eq!(admin(&rt, "disable health app/s1"), "\n");
    assert!(!server_state(&rt, "app", "s1").check_enabled);
    assert_eq!(admin(&rt, "enable health app/s1"), "\n");
    assert!(server_state(&rt, "app", "s1").check_enabled);
    assert_eq!(admin(&rt, "set maxconn server app/s2 10"), "\n");
    assert_eq!(server_state(&rt, "app", "s2").maxconn, Some(10));
    assert_eq!(admin(&rt, "shutdown sessions server app/s2"), "\n");
    let cases = [
        (
            "set server app/s2 state foo",
            "'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n\n",
        ),
        (
            "set server app/s2 health bad",
            "'set server <srv> health' expects 'up', 'stopping', or 'down'.\n\n",
        ),
        (
            "set server app/s2 agent up",
            "agent checks are not enabled on this server.\n\n",
        ),
        (
            "enable agent app/s2",
            "Agent was not configured on this server, cannot enable.\n\n",
        ),
        ("set server app/s2", "usage: set server <backend>/<server> addr | agent | agent-addr | agent-port | agent-send | check-addr | check-port | fqdn | health | ssl | state | weight\n\n"),
        ("set server nope/s2 state drain", "No such backend.\n\n"),
        ("enable server app/nope", "No such server.\n\n"),
        ("shutdown sessions server app", "Require 'backend/server'.\n\n"),
        ("set maxconn server app/s2", "Require <maxconn>.\n\n"),
        (
            "set maxconn server app/s2 x",
            "maxconn string empty or preceded by garbage\n\n",
        ),
    ];
    for (line, want) in cases {
        assert_eq!(admin(&rt, line), want, "{line}");
    }
}

#[test]
fn set_addr_reports_like_haproxy() {
    let rt = runtime();
    assert_eq!(
        admin(&rt, "set server app/s2 addr 127.0.0.2"),
        "IP changed from '127.0.0.1' to '127.0.0.2' by 'stats socket command'\n\n"
    );
    assert_eq!(
        admin(&rt, "set server app/s2 addr 127.0.0.2 port 8080"),
        "no need to change the addr, port changed from '2' to '8080' by 'stats socket command'\n\n"
    );
    let snap = rt.snapshot();
    let s2 = &snap.backend("app").expect("app").servers[1];
    assert_eq!(s2.addr.to_string(), "127.0.0.2:8080");
    assert_eq!(
        admin(&rt, "set server app/s2 addr bogus"),
        "Invalid addr 'bogus' by 'stats socket command'\n\n"
    );
    assert_eq!(
        admin(&rt, "set server app/s2 addr 127.0.0.2 port x"),
        "no need to change the addr, problem converting port 'x' to an int by 'stats socket command'\n\n"
    );
    assert_eq!(
        admin(&rt, "set server app/s2 addr"),
        "set server <b>/<s> addr requires an address and optionally a port.\n\n"
    );
}

#[test]
fn show_commands() {
    let rt = runtime();
    let stat = admin(&rt, "show stat");
    let mut lines = stat.lines();
    assert_eq!(lines.next(), Some(crate::stats::csv_header().as_str()));
    assert!(stat.ends_with(",\n\n"), "{stat}");
    assert_eq!(stat.lines().filter(|l| l.is_empty()).count(), 1);
    assert!(stat.contains("\napp,s2,"));
    // `show stat PROXY TYPE SID`: the backend row alone, then server 2 alone.
    let only = admin(&rt, "show stat app 2 -1");
    assert_eq!(only.lines().count(), 3, "{only}");
    assert!(only.contains("\napp,BACKEND,"));
    let one = admin(&rt, "show stat -1 4 2");
    assert!(one.contains("\napp,s2,") && !one.contains("\nfixed,f1,"));
    assert_eq!(admin(&rt, "show stat nope"), "No such proxy.\n\n");
    let up = admin(&rt, "show stat up");
    assert!(!up.contains("app,s3,"), "maint server hidden: {up}");
    assert!(up.contains("app,BACKEND,0,0,0,0,100,0,0,0,0,0,,0,0,0,0,UP (2/3),"));
    // Addresses are legends: hidden from user-level sockets.
    assert!(stat.contains(",127.0.0.1:2,"));
    assert!(!run(&rt, StatsLevel::User, "show stat").contains(",127.0.0.1:2,"));

    let info = admin(&rt, "show info");
    assert!(info.starts_with("Name: Shoal\nVersion: "));
    assert!(info.contains("\nMaxconn: 1000\n"));
    assert!(info.contains("\nUptime_sec: "));
    assert!(info.ends_with("\n\n"));

    assert_eq!(admin(&rt, "show backend"), "# name\napp\nfixed\n\n");
    let state = admin(&rt, "show servers state app");
    let lines: Vec<&str> = state.lines().collect();
    assert_eq!(lines[0], "1");
    assert!(lines[1].starts_with("# be_id be_name srv_id srv_name srv_addr srv_op_state"));
    assert_eq!(lines.len(), 6, "{state}");
    let s3: Vec<&str> = lines[4].split(' ').collect();
    assert_eq!(
        &s3[..9],
        ["2", "app", "3", "s3", "127.0.0.1", "0", "5", "50", "50"]
    );
    assert_eq!(s3.len(), 25);
    assert_eq!(
        &s3[14..],
        ["0", "0", "0", "-", "3", "-", "0", "0", "-", "-", "0"]
    );
    assert_eq!(
        admin(&rt, "show servers state nope"),
        "Can't find backend.\n\n"
    );
    assert_eq!(admin(&rt, "show servers state").lines().count(), 7);
}

#[test]
fn tables() {
    let rt = runtime();
    let snap = rt.snapshot();
    let table = snap.tables.get("app").expect("table").clone();
    table.store("10.0.0.1", "s2", 2);
    table.store("10.0.0.2", "s1", 1);
    let all = admin(&rt, "show table");
    assert_eq!(all, "# table: app, type: ip, size:100, used:2\n\n");
    let dump = admin(&rt, "show table app");
    let lines: Vec<&str> = dump.lines().collect();
    assert_eq!(lines[0], "# table: app, type: ip, size:100, used:2");
    assert!(lines[1].starts_with("0x"), "{dump}");
    assert!(
        lines[1].contains(": key=10.0.0.1 use=0 exp=")
            && lines[1].ends_with(" server_id=2 server_key=s2"),
        "{dump}"
    );
    let user = run(&rt, StatsLevel::User, "show table app");
    assert_eq!(
        user,
        "# table: app, type: ip, size:100, used:2\n# contents not dumped due to insufficient privileges\n\n"
    );
    let one = admin(&rt, "show table app key 10.0.0.2");
    assert_eq!(one.lines().count(), 3, "{one}");
    assert_eq!(admin(&rt, "show table app key 10.9.9.9"), "\n");
    assert_eq!(admin(&rt, "show table nope"), "No such table\n\n");
    assert_eq!(admin(&rt, "clear table app key"), "Key value expected\n\n");
    assert_eq!(admin(&rt, "clear table app key 10.0.0.1"), "\n");
    assert_eq!(table.used(), 1);
    assert_eq!(admin(&rt, "clear table app"), "\n");
    assert_eq!(table.used(), 0);
    assert_eq!(admin(&rt, "clear table nope"), "No such table\n\n");
}

#[test]
fn help_and_unknown_commands() {
    let rt = runtime();
    let help = admin(&rt, "help");
    assert!(help.starts_with("The following commands are valid at this level:\n"));
    assert!(help.contains(
        "\n  get weight <bk>/<srv>                   : report a server's current weight\n"
    ));
    assert!(help.ends_with("  quit                                    : disconnect\n\n"));
    let set = admin(&rt, "help set weight");
    assert_eq!(set.lines().count(), 6, "{set}");
    let unknown = admin(&rt, "show servers");
    assert!(unknown.starts_with(
        "Unknown command, but maybe one of the following ones is a better match:\n  show servers state"
    ));
    let none = admin(&rt, "frobnicate");
    assert!(none.starts_with("Unknown command. Please enter one of the following commands only:\n"));
    assert!(!none.contains("\n\n\n"));
    // No answer ever contains an empty line before its end.
    for line in [
        "help",
        "show info",
        "show stat",
        "show servers state",
        "foo",
    ] {
        let out = admin(&rt, line);
        assert_eq!(out.matches("\n\n").count(), 1, "{line}");
    }
}

#[test]
fn delays() {
    assert_eq!(parse_delay("10"), Some(Duration::from_secs(10)));
    assert_eq!(parse_delay("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(parse_delay("2m"), Some(Duration::from_secs(120)));
    assert_eq!(parse_delay("x"), None);
    assert_eq!(parse_delay("0"), None);
    let rt = runtime();
    assert_eq!(
        admin(&rt, "set timeout cli x"),
        "Invalid timeout value.\n\n"
    );
    assert_eq!(
        admin(&rt, "set timeout foo 5"),
        "'set timeout' only supports 'cli'.\n\n"
    );
}

#[test]
fn places() {
    assert_eq!(
        place("/run/haproxy.sock"),
        Ok(Place::Unix("/run/haproxy.sock".into()))
    );
    assert_eq!(place("admin.sock"), Ok(Place::Unix("admin.sock".into())));
    assert_eq!(
        place("ipv4@127.0.0.1:0"),
        Ok(Place::Tcp {
            host: "127.0.0.1".into(),
            port: 0,
            v6: false
        })
    );
    assert_eq!(
        place("ipv6@[::1]:9999"),
        Ok(Place::Tcp {
            host: "::1".into(),
            port: 9999,
            v6: true
        })
    );
    assert_eq!(
        place("ipv4@*:9999"),
        Ok(Place::Tcp {
            host: String::new(),
            port: 9999,
            v6: false
        })
    );
    assert!(place("ipv4@nowhere").is_err());
}

/// Drive a session over an in-memory pipe.
async fn converse(level: StatsLevel, input: &[u8]) -> String {
    let (mut client, server) = tokio::io::duplex(1 << 20);
    let task = tokio::spawn(session::serve(server, runtime(), session(level)));
    client.write_all(input).await.expect("write");
    // End of input, as `socat` does after stdin.
    client.shutdown().await.expect("shutdown");
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "session did not close");
    let _ = task.await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn one_line_then_close() {
    let out = converse(StatsLevel::Admin, b"get weight app/s1;get weight app/s2\n").await;
    assert_eq!(out, "200 (initial 200)\n\n100 (initial 100)\n\n");
    // Lines that arrived together are all answered, as HAProxy does.
    let out = converse(StatsLevel::Admin, b"show backend\nget weight app/s2\n").await;
    assert_eq!(out, "# name\napp\nfixed\n\n100 (initial 100)\n\n");
}

#[tokio::test]
async fn prompt_mode() {
    let out = converse(
        StatsLevel::Admin,
        b"prompt\nget weight app/s1\n\nshow cli level\nquit\nshow backend\n",
    )
    .await;
    assert!(
        out.starts_with("\n> 200 (initial 200)\n\n> Unknown command."),
        "{out}"
    );
    assert!(out.ends_with("> admin\n\n> "), "{out}");
    // A second `prompt` leaves interactive mode and closes.
    let out = converse(StatsLevel::Admin, b"prompt\nprompt\nshow backend\n").await;
    assert_eq!(out, "\n> \n");
}

#[tokio::test]
async fn bad_input_never_hurts() {
    let long = vec![b'a'; session::MAX_LINE + 10];
    let out = converse(StatsLevel::Admin, &long).await;
    assert_eq!(out, "Command line too long.\n\n");
    let out = converse(StatsLevel::Admin, b"\xff\xfe\x00 show\x00;;;\\\n").await;
    assert!(out.contains("Unknown command"), "{out}");
}

#[tokio::test]
async fn idle_interactive_sessions_time_out() {
    let (mut client, server) = tokio::io::duplex(4096);
    let mut s = session(StatsLevel::User);
    s.timeout = Duration::from_millis(200);
    let task = tokio::spawn(session::serve(server, runtime(), s));
    client.write_all(b"prompt\n").await.expect("write");
    let mut out = Vec::new();
    // The session closes by itself once idle for its timeout.
    let read = tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "idle session stayed open");
    assert_eq!(out, b"\n> ");
    task.await.expect("session ends");
}
