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
    let code = proc.wait_exit(within);
    // Output may trail the exit by a moment.
    std::thread::sleep(Duration::from_millis(100));
    let lines = proc.drain().to_vec();
    let code = code.unwrap_or_else(|| panic!("still running after {within:?}: {lines:?}"));
    (code, lines)
}

const TCP: &str = "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n";

/// The error line: the last line, starting with `shoal: `.
fn error_line(lines: &[String]) -> &str {
    let last = lines.last().map(String::as_str).unwrap_or("");
    assert!(
        last.starts_with("shoal: "),
        "last line {last:?} of {lines:?}"
    );
    last
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
