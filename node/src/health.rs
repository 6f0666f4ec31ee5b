//! Health checks (first cut: TCP connect checks, HAProxy's default kind).
//!
//! Each server with `check` gets one task that connects every `inter`
//! (`fastinter` while a transition is pending, `downinter` while DOWN),
//! counts `rise` successes / `fall` failures in a row and, on a transition,
//! changes the server's operational state through [`Runtime::set_server`]
//! (the only owner of server state). Start times are spread over the first
//! interval so checks do not fire in bursts.

use crate::runtime::{OpState, Runtime};
use shoal_proto::config::{Config, Server};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The running check tasks; dropping this stops them.
#[derive(Default)]
pub struct Checks {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Checks {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Start one check task per `server ... check` of the config.
pub fn start(runtime: &Arc<Runtime>, config: &Config) -> Checks {
    let snapshot = runtime.snapshot();
    let mut tasks = Vec::new();
    for proxy in config.proxies.iter().filter(|p| p.kind.is_backend()) {
        let Some(backend) = snapshot.backend(&proxy.name) else {
            continue;
        };
        for (server, rt) in proxy.servers.iter().zip(backend.servers.iter()) {
            if !server.check {
                continue;
            }
            let mut addr = rt.addr;
            if let Some(port) = server.check_port {
                addr.set_port(port);
            }
            if addr.port() == 0 {
                tracing::warn!(
                    "{}/{}: no port to check; check disabled",
                    proxy.name,
                    server.name
                );
                continue;
            }
            let timeout = proxy.timeouts.check.or(proxy.timeouts.connect);
            let job = Job {
                runtime: runtime.clone(),
                backend: proxy.name.clone(),
                server: server.name.clone(),
                addr,
                timeout,
                settings: server.clone(),
            };
            tasks.push(tokio::spawn(job.run()));
        }
    }
    Checks { tasks }
}

struct Job {
    runtime: Arc<Runtime>,
    backend: String,
    server: String,
    addr: SocketAddr,
    timeout: Option<Duration>,
    settings: Server,
}

impl Job {
    async fn run(self) {
        let inter = self
            .settings
            .inter_or_default()
            .max(Duration::from_millis(10));
        let fastinter = self.settings.fastinter.unwrap_or(inter);
        let downinter = self.settings.downinter.unwrap_or(inter);
        let (rise, fall) = (
            self.settings.rise_or_default().max(1),
            self.settings.fall_or_default().max(1),
        );
        let mut hasher = DefaultHasher::new();
        (&self.backend, &self.server).hash(&mut hasher);
        let spread = Duration::from_micros(hasher.finish() % (inter.as_micros() as u64).max(1));
        tokio::time::sleep(spread).await;
        let mut up = self.current_up();
        let mut streak = 0u32;
        loop {
            let started = Instant::now();
            let result = self.probe(inter).await;
            let took = started.elapsed();
            let ok = result.is_ok();
            if ok == up {
                streak = 0;
            } else {
                streak += 1;
                if streak >= if up { fall } else { rise } {
                    up = ok;
                    streak = 0;
                    self.transition(up, result.err(), took);
                }
            }
            let next = match (up, streak > 0) {
                (_, true) => fastinter,
                (true, false) => inter,
                (false, false) => downinter,
            };
            tokio::time::sleep(next).await;
        }
    }

    fn current_up(&self) -> bool {
        let snapshot = self.runtime.snapshot();
        snapshot
            .backend(&self.backend)
            .and_then(|b| b.servers.iter().find(|s| &*s.name == self.server.as_str()))
            .is_none_or(|s| s.state.op == OpState::Up)
    }

    /// One TCP connect. `Err` carries HAProxy's wording of the failure.
    async fn probe(&self, inter: Duration) -> Result<(), &'static str> {
        let limit = self.timeout.unwrap_or(inter);
        match tokio::time::timeout(limit, TcpStream::connect(self.addr)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                Err("Connection refused")
            }
            Ok(Err(_)) => Err("Connection error"),
            Err(_) => Err("Connection timeout"),
        }
    }

    fn transition(&self, up: bool, why: Option<&str>, took: Duration) {
        let state = if up { OpState::Up } else { OpState::Down };
        if self
            .runtime
            .set_server(&self.backend, &self.server, |s| s.op = state)
            .is_err()
        {
            return;
        }
        let ms = took.as_millis();
        if up {
            tracing::warn!(
                "Server {}/{} is UP, reason: Layer4 check passed, check duration: {ms}ms.",
                self.backend,
                self.server
            );
        } else {
            let info = why.unwrap_or("");
            tracing::warn!(
                "Server {}/{} is DOWN, reason: Layer4 connection problem, info: \"{info}\", check duration: {ms}ms.",
                self.backend,
                self.server
            );
        }
    }
}
