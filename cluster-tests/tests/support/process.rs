//! Child processes killed on drop, whose output the tests read; the
//! demo backend.

use super::{bin, DEADLINE};
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A child process killed on drop, whose stdout and stderr lines arrive on
/// a channel (both: the notices go to stdout, the logs to stderr).
pub struct Proc {
    pub name: String,
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start {cmd:?}: {e}"));
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx2.send(line);
            }
        });
        Proc {
            name: name.to_string(),
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Everything printed so far, one line each.
    pub fn log(&mut self) -> String {
        self.drain();
        self.seen.join("\n")
    }

    /// Collect whatever output arrived so far.
    pub fn drain(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }

    /// How many lines so far contain `needle`.
    pub fn count(&mut self, needle: &str) -> usize {
        self.drain().iter().filter(|l| l.contains(needle)).count()
    }

    /// Wait for the first line containing `needle`; returns it.
    pub fn wait_line(&mut self, needle: &str) -> String {
        self.wait_nth(needle, 1)
    }

    /// Wait for the `n`th line (from 1) containing `needle`; returns it.
    pub fn wait_nth(&mut self, needle: &str, n: usize) -> String {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(l) = self.seen.iter().filter(|l| l.contains(needle)).nth(n - 1) {
                return l.clone();
            }
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "{}: no line #{n} containing {needle:?} within {DEADLINE:?}; it printed:\n{}",
                    self.name,
                    self.seen.join("\n")
                ),
                Err(mpsc::RecvTimeoutError::Disconnected) => panic!(
                    "{}: exited ({:?}) before printing line #{n} containing {needle:?}; it printed:\n{}",
                    self.name,
                    self.child.try_wait().ok().flatten(),
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Wait until the process exits; `None` if it is still running after `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Send `signal` (SIGHUP, SIGTERM...) to the process.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = i32::try_from(self.child.id()).expect("a pid fits in i32");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal)
            .unwrap_or_else(|e| panic!("{}: cannot send {signal}: {e}", self.name));
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `kill -9`: no chance to flush or say goodbye.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The address at the end of a notice line (`... listening on ADDR`).
pub(super) fn addr_at_end(line: &str) -> SocketAddr {
    line.trim()
        .rsplit(' ')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address at the end of {line:?}"))
}

/// A running `shoal-demo-backend http`.
pub struct Backend {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub name: String,
}

impl Backend {
    pub fn http(name: &str) -> Backend {
        Backend::http_at(name, "127.0.0.1:0")
    }

    /// A backend on a given address: a killed server started again where
    /// it was (the demo backend binds with SO_REUSEADDR, so the old
    /// connections' TIME_WAIT does not stand in the way).
    pub fn http_at(name: &str, listen: &str) -> Backend {
        let mut cmd = Command::new(bin("shoal-demo-backend"));
        cmd.args(["http", "--listen", listen, "--name", name, "--threads", "1"]);
        let mut proc = Proc::spawn(&format!("backend {name}"), cmd);
        let addr = addr_at_end(&proc.wait_line("listening "));
        Backend {
            proc,
            addr,
            name: name.to_string(),
        }
    }
}
