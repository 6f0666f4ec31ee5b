//! The `shoal` client commands and the runtime socket (through socat).

use super::{bin, DEADLINE, TOKEN};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a `shoal` client command did.
#[derive(Debug)]
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl Out {
    /// Assert exit 0; returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "command failed: {self:?}");
        &self.stdout
    }
}

/// Run `shoal ARGS` with the token; bounded by a deadline.
pub async fn shoal(args: &[&str]) -> Out {
    let started = Instant::now();
    let child = tokio::process::Command::new(bin("shoal"))
        .args(args)
        .env("SHOAL_ADMIN_TOKEN", TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start shoal");
    // Longer than the CLI's own 60 s for a join or a config apply.
    let out = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("shoal {args:?} did not finish"))
        .expect("shoal output");
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: started.elapsed(),
    }
}

/// `echo LINE | socat stdio unix-connect:PATH`: one runtime-API command.
pub fn socat(socket: &Path, line: &str) -> String {
    use std::io::Write as _;
    let mut child = Command::new("socat")
        .args(["-t", "10", "stdio"])
        .arg(format!("unix-connect:{}", socket.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("socat is installed (./test.sh installs it)");
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .expect("write to socat");
    }
    // Read the answer while socat writes it: an answer larger than the
    // pipe (64 KiB, a big `show table`) would otherwise block socat until
    // its own timeout and arrive cut short.
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("a pid fits in i32"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let Ok(out) = rx.recv_timeout(DEADLINE) else {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        panic!("socat {} did not finish: {line:?}", socket.display());
    };
    let out = out.expect("socat output");
    assert!(out.status.success(), "socat failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `column` cell of the `backend/server` row of `show stat` (HAProxy's
/// CSV, header `# pxname,svname,...`) through the runtime socket at `socket`.
pub fn stat_field(socket: &Path, backend: &str, server: &str, column: &str) -> String {
    let csv = socat(socket, "show stat");
    let header: Vec<&str> = csv
        .lines()
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .unwrap_or_else(|| panic!("no `# pxname,...` header in show stat:\n{csv}"))
        .split(',')
        .collect();
    let col = header
        .iter()
        .position(|c| *c == column)
        .unwrap_or_else(|| panic!("no column {column:?} in show stat:\n{csv}"));
    csv.lines()
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&backend) && cells.get(1) == Some(&server))
        .and_then(|cells| cells.get(col).map(|s| s.to_string()))
        .unwrap_or_else(|| panic!("no {backend}/{server} row in show stat:\n{csv}"))
}
