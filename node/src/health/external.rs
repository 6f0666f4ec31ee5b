//! `option external-check`: run `external-check command` with HAProxy's
//! arguments and environment; exit status 0 passes.
//!
//! The command runs in its own process group so that a check that hangs
//! is killed whole (a shell and whatever it started) when `timeout check`
//! expires, and it is always waited for, so it never lingers as a zombie.

use super::status::{CheckResult, Status};
use super::tcp::strerror;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use shoal_proto::config::{Mode, Proxy};
use std::net::IpAddr;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

/// One server's external check, ready to run.
#[derive(Debug)]
pub struct ExternalCheck {
    command: String,
    /// `external-check path`; HAProxy's default is empty.
    path: String,
    proxy_name: String,
    proxy_id: usize,
    /// First `bind` of a `listen` section: address and port as HAProxy
    /// prints them; `None` for a plain backend.
    bind: Option<(String, String)>,
    server_name: String,
    server_id: usize,
    proto: &'static str,
}

/// The parts that can change between checks.
#[derive(Debug, Clone, Copy)]
pub struct Vars {
    pub addr: IpAddr,
    /// The server's traffic port (HAProxy passes that, not the check port).
    pub port: u16,
    pub curconn: u32,
    pub maxconn: u32,
}

impl ExternalCheck {
    /// `proxy_id` / `server_id`: 1-based positions in the config, which
    /// is how HAProxy numbers proxies and servers without explicit ids.
    pub fn new(
        proxy: &Proxy,
        command: &str,
        proxy_id: usize,
        server_name: &str,
        server_id: usize,
    ) -> ExternalCheck {
        let bind = proxy.binds.first().map(|b| {
            let host = match b.host.as_str() {
                "" | "*" => "0.0.0.0",
                h => h.trim_start_matches('[').trim_end_matches(']'),
            };
            (host.to_string(), b.port.to_string())
        });
        ExternalCheck {
            command: command.to_string(),
            path: proxy.external_check_path.clone().unwrap_or_default(),
            proxy_name: proxy.name.clone(),
            proxy_id,
            bind,
            server_name: server_name.to_string(),
            server_id,
            proto: if proxy.mode == Mode::Http {
                "h1"
            } else {
                "tcp"
            },
        }
    }

    /// The argument vector after the command: `<proxy_address>
    /// <proxy_port> <server_address> <server_port>`, with `NOT_USED` for
    /// the proxy part of a backend without `bind`.
    pub fn args(&self, vars: &Vars) -> [String; 4] {
        let (paddr, pport) = self
            .bind
            .clone()
            .unwrap_or_else(|| ("NOT_USED".into(), "NOT_USED".into()));
        [paddr, pport, vars.addr.to_string(), vars.port.to_string()]
    }

    /// The whole environment of the command (nothing is inherited).
    pub fn env(&self, vars: &Vars) -> Vec<(&'static str, String)> {
        let (paddr, pport) = self.bind.clone().unwrap_or_default();
        vec![
            ("PATH", self.path.clone()),
            ("HAPROXY_PROXY_ADDR", paddr),
            ("HAPROXY_PROXY_ID", self.proxy_id.to_string()),
            ("HAPROXY_PROXY_NAME", self.proxy_name.clone()),
            ("HAPROXY_PROXY_PORT", pport),
            ("HAPROXY_SERVER_ADDR", vars.addr.to_string()),
            ("HAPROXY_SERVER_CURCONN", vars.curconn.to_string()),
            ("HAPROXY_SERVER_ID", self.server_id.to_string()),
            ("HAPROXY_SERVER_MAXCONN", vars.maxconn.to_string()),
            ("HAPROXY_SERVER_NAME", self.server_name.clone()),
            ("HAPROXY_SERVER_PORT", vars.port.to_string()),
            ("HAPROXY_SERVER_SSL", "0".into()),
            ("HAPROXY_SERVER_PROTO", self.proto.into()),
        ]
    }

    /// Run once, killing the process group after `limit`.
    pub async fn run(&self, vars: Vars, limit: Duration) -> CheckResult {
        let mut cmd = Command::new(&self.command);
        cmd.args(self.args(&vars))
            .env_clear()
            .envs(self.env(&vars))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return CheckResult::new(Status::ProcErr).info(format!(
                    "cannot run '{}': {}",
                    self.command,
                    strerror(&e)
                ))
            }
        };
        // The child leads its own group, so its pid is the group id.
        let guard = GroupGuard(child.id());
        match tokio::time::timeout(limit, child.wait()).await {
            Ok(Ok(status)) => {
                guard.disarm();
                match status.code() {
                    Some(0) => CheckResult::new(Status::ProcOk).code(0),
                    Some(code) => CheckResult::new(Status::ProcErr).code(code),
                    // Killed by a signal: HAProxy reports code -1.
                    None => CheckResult::new(Status::ProcErr).code(-1),
                }
            }
            Ok(Err(e)) => {
                guard.disarm();
                CheckResult::new(Status::ProcErr).info(strerror(&e))
            }
            Err(_) => {
                if let Some(pgid) = guard.disarm() {
                    kill_group(pgid);
                }
                // SIGKILL the leader too (in case the group kill could not
                // run) and reap it.
                let _ = child.kill().await;
                CheckResult::new(Status::ProcTout)
            }
        }
    }
}

/// Send SIGKILL to a whole process group (nix gives a safe `killpg`).
fn kill_group(pgid: u32) {
    let Ok(raw) = i32::try_from(pgid) else { return };
    if let Err(e) = killpg(Pid::from_raw(raw), Signal::SIGKILL) {
        // ESRCH: the group is already gone, which is what we wanted.
        if e != nix::errno::Errno::ESRCH {
            tracing::warn!("external check: cannot kill process group {pgid}: {e}");
        }
    }
}

/// Kills the group if the check is abandoned mid-run (its task aborted on
/// reload or shutdown); `kill_on_drop` only reaches the leader.
struct GroupGuard(Option<u32>);

impl GroupGuard {
    fn disarm(mut self) -> Option<u32> {
        self.0.take()
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        let Some(pgid) = self.0.take() else { return };
        kill_group(pgid);
    }
}
