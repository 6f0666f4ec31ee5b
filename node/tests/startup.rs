//! Start-up failures: whatever stops `shoal run` from serving (a taken
//! address, an impossible thread count, an unusable stats socket or admin
//! address) ends the process promptly with a non-zero status and a one-line
//! error naming the problem; nothing stays half started.

mod support;

use std::process::Command;
use std::time::Duration;
use support::*;

/// Run `shoal run -f CFG [extra]`; returns its exit code and output, or
/// fails if it is still running after `within`.
fn run_expecting_exit(config: &str, extra: &[&str], within: Duration) -> (i32, Vec<String>) {
    let dir = TempDir::new("startup");
    let cfg = dir.file("shoal.cfg", config);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shoal"));
    cmd.arg("run").arg("-f").arg(&cfg).args(extra);
    let mut proc = spawn_proc(cmd);
    let Some(code) = proc.wait_exit(within) else {
        panic!("still running after {within:?}: {:?}", proc.drain());
    };
    (code, proc.drain_to_end().to_vec())
}

const TCP: &str = "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n";

/// The error line: the one starting with `shoal: ` (stdout and stderr are
/// read apart, so it need not come last).
fn error_line(lines: &[String]) -> &str {
    lines
        .iter()
        .rev()
        .find(|l| l.starts_with("shoal: "))
        .unwrap_or_else(|| panic!("no `shoal: ` error line in {lines:?}"))
}

#[test]
fn a_taken_bind_address_fails_the_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let backend = dead_addr();
    // The first frontend binds fine; the second cannot.
    let cfg = format!(
        "{TCP}listen ok\n    bind 127.0.0.1:0\n    server s {backend}\n\
         listen clash\n    bind {addr}\n    server s {backend}\n"
    );
    let (code, lines) = run_expecting_exit(&cfg, &[], Duration::from_secs(10));
    assert_ne!(code, 0);
    let error = error_line(&lines);
    assert!(
        error.contains(&addr.to_string()) && error.contains("clash"),
        "{error}"
    );
    drop(taken);
}

#[test]
fn an_impossible_thread_count_fails_the_start() {
    for n in ["100000", "99999999999"] {
        let cfg = format!(
            "global\n    nbthread {n}\n{TCP}listen l\n    bind 127.0.0.1:0\n    server s {}\n",
            dead_addr()
        );
        let (code, lines) = run_expecting_exit(&cfg, &[], Duration::from_secs(10));
        assert_ne!(code, 0, "nbthread {n}");
        // Either the config check or the runtime says what is wrong.
        let all = lines.join("\n");
        assert!(
            all.contains("nbthread") && !all.contains("panicked"),
            "nbthread {n}: {all}"
        );
        assert!(!all.contains("listening on"), "nbthread {n}: {all}");
    }
}

#[test]
fn an_unusable_stats_socket_fails_the_start() {
    let dir = TempDir::new("nosock");
    let path = dir.0.join("missing").join("admin.sock");
    let cfg = format!(
        "global\n    stats socket {}\n{TCP}listen l\n    bind 127.0.0.1:0\n    server s {}\n",
        path.display(),
        dead_addr()
    );
    let (code, lines) = run_expecting_exit(&cfg, &[], Duration::from_secs(10));
    assert_ne!(code, 0);
    let error = error_line(&lines);
    assert!(error.contains("stats socket"), "{error}");
}

#[test]
fn a_taken_admin_address_fails_the_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let cfg = format!(
        "{TCP}listen l\n    bind 127.0.0.1:0\n    server s {}\n",
        dead_addr()
    );
    let (code, lines) = run_expecting_exit(&cfg, &["--admin", &addr], Duration::from_secs(10));
    assert_ne!(code, 0);
    let error = error_line(&lines);
    assert!(error.contains(&addr), "{error}");
}

/// `user`/`group` name who Shoal must run as: it does not switch, so it
/// refuses to run as someone else (root keeping its privileges, say).
#[test]
fn it_runs_only_as_the_user_and_group_the_config_names() {
    use nix::unistd::{getegid, geteuid, Group, User};
    let me = User::from_uid(geteuid())
        .ok()
        .flatten()
        .expect("current user");
    let my_group = Group::from_gid(getegid())
        .ok()
        .flatten()
        .expect("current group");
    let other = if me.name == "nobody" {
        "root"
    } else {
        "nobody"
    };
    let dead = dead_addr();
    let cfg = |user: &str, group: &str| {
        format!(
            "global\n    user {user}\n    group {group}\n{TCP}listen l\n    bind 127.0.0.1:0\n    server s {dead}\n"
        )
    };
    let (code, lines) =
        run_expecting_exit(&cfg(other, &my_group.name), &[], Duration::from_secs(10));
    assert_ne!(code, 0);
    let error = error_line(&lines);
    assert!(error.contains(&format!("'user {other}'")), "{error}");
    assert!(
        !lines.iter().any(|l| l.contains("listening on")),
        "{lines:?}"
    );
    // As the named user and group it starts.
    let mut shoal = Shoal::start(&cfg(&me.name, &my_group.name), &["l"]);
    shoal.proc.signal("TERM");
    assert_eq!(shoal.proc.wait_exit(DEADLINE), Some(0));
}
