//! One server's check task: schedule, probe, count, and on a transition
//! report it through [`Runtime::submit`] and log it in HAProxy's words.

use super::external::{ExternalCheck, Vars};
use super::http::HttpCheck;
use super::status::{Change, CheckResult, Health, Phase, Status};
use super::tcp;
use crate::observe::Passive;
use crate::routing::{OpState, ServerShared};
use crate::runtime::{now_ms, Runtime};
use shoal_proto::command::{Command, ServerRef};
use shoal_proto::config::OnError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What a check does.
#[derive(Debug)]
pub enum Probe {
    /// TCP connect (the default).
    Tcp,
    /// `option httpchk`.
    Http(Arc<HttpCheck>),
    /// `option external-check`.
    External(Arc<ExternalCheck>),
}

/// Intervals and time limits of one server's checks.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub inter: Duration,
    pub fastinter: Option<Duration>,
    pub downinter: Option<Duration>,
    /// Connect limit: `min(timeout connect, inter)` when `timeout check`
    /// is set, else `inter` (which then bounds the whole check).
    pub connect: Duration,
    /// `timeout check`: the read limit after connecting.
    pub check: Option<Duration>,
}

impl Timing {
    fn next(&self, phase: Phase) -> Duration {
        match phase {
            Phase::Steady => self.inter,
            Phase::Moving => self.fastinter.unwrap_or(self.inter),
            Phase::Down => self.downinter.unwrap_or(self.inter),
        }
    }
}

/// Passive-health wiring of one server.
#[derive(Debug)]
pub struct PassiveLink {
    pub state: Arc<Passive>,
    pub events: mpsc::Receiver<String>,
    pub on_error: OnError,
}

/// One server's check task.
#[derive(Debug)]
pub struct Job {
    pub runtime: Arc<Runtime>,
    pub server: ServerRef,
    pub probe: Probe,
    pub timing: Timing,
    pub rise: u32,
    pub fall: u32,
    /// `port N`: check this port instead of the traffic port.
    pub check_port: Option<u16>,
    pub passive: Option<PassiveLink>,
    /// Offset of the first check, spreading checks over the interval.
    pub first_delay: Duration,
}

/// The server as the current snapshot has it.
struct Target {
    /// Where checks go (the `port` option applied).
    addr: SocketAddr,
    /// The traffic port, which external checks are told.
    port: u16,
    up: bool,
    check_enabled: bool,
    backup: bool,
    maxconn: u32,
    shared: Arc<ServerShared>,
}

impl Job {
    /// Run until the task is aborted (or the server leaves the config).
    pub async fn run(mut self) {
        let Some(first) = self.target() else { return };
        let fresh = first.shared.check_report().status.is_empty();
        if fresh {
            first
                .shared
                .check
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .status = "INI";
        }
        let mut health = Health::new(self.rise, self.fall, first.up, fresh);
        let mut next = Instant::now() + self.first_delay;
        loop {
            self.wait(&mut health, next).await;
            let started = Instant::now();
            let Some(target) = self.target() else { return };
            // `disable health` pauses checks; the state stays as it was.
            if !target.check_enabled {
                next = started + self.timing.inter;
                continue;
            }
            health.sync(target.up);
            let mut result = self.probe(&target).await;
            result.duration = Some(started.elapsed());
            self.record(&mut health, &target, result).await;
            next = started + self.timing.next(health.phase());
        }
    }

    /// Sleep until `next`, acting on passive-health events meanwhile.
    async fn wait(&mut self, health: &mut Health, mut next: Instant) {
        loop {
            let info = {
                let event = async {
                    match self.passive.as_mut() {
                        Some(link) => link.events.recv().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = tokio::time::sleep_until(next) => return,
                    Some(info) = event => info,
                }
            };
            self.on_error(health, info).await;
            // Every action also brings the next check forward.
            if let Some(fast) = self.timing.fastinter {
                next = next.min(Instant::now() + fast);
            }
        }
    }

    /// `error-limit` reached: HAProxy's `on-error` actions.
    async fn on_error(&self, health: &mut Health, info: String) {
        let Some(link) = &self.passive else { return };
        let Some(target) = self.target() else { return };
        health.sync(target.up);
        match link.on_error {
            OnError::FastInter => return,
            OnError::FailCheck => {}
            OnError::SuddenDeath => health.sudden_death(),
            OnError::MarkDown => health.last_chance(),
        }
        self.record(health, &target, CheckResult::new(Status::Hana).info(info))
            .await;
    }

    fn target(&self) -> Option<Target> {
        let snapshot = self.runtime.snapshot();
        let backend = snapshot.backend(&self.server.backend)?;
        let s = backend
            .servers
            .iter()
            .find(|s| *s.name == *self.server.server)?;
        let mut addr = s.addr;
        if let Some(port) = self.check_port {
            addr.set_port(port);
        }
        Some(Target {
            addr,
            port: s.addr.port(),
            up: s.state.op != OpState::Down,
            check_enabled: s.state.check_enabled,
            backup: s.backup,
            maxconn: s.maxconn.unwrap_or(0),
            shared: s.shared.clone(),
        })
    }

    async fn probe(&self, target: &Target) -> CheckResult {
        let t = &self.timing;
        match &self.probe {
            Probe::Tcp => tcp::check(target.addr, t.connect).await,
            Probe::Http(http) => http.run(target.addr, t.connect, t.check).await,
            Probe::External(ext) => {
                let vars = Vars {
                    addr: target.addr.ip(),
                    port: target.port,
                    curconn: target.shared.counters.current(),
                    maxconn: target.maxconn,
                };
                ext.run(vars, t.check.unwrap_or(t.inter)).await
            }
        }
    }

    /// Count a result, store it for stats, log it, act on a transition.
    async fn record(&self, health: &mut Health, target: &Target, result: CheckResult) {
        let before = *health;
        let change = if result.status.passed() {
            if let Some(link) = &self.passive {
                link.state.clear();
            }
            health.pass()
        } else {
            health.fail()
        };
        if *health != before {
            // HAProxy's `option log-health-checks` line, at info level.
            tracing::info!(
                "Health check for {}server {} {}{}, status: {}.",
                if target.backup { "backup " } else { "" },
                self.server,
                if result.status.passed() {
                    "succeeded"
                } else {
                    "failed"
                },
                result.describe(),
                health.progress()
            );
        }
        self.store(target, health, &result, change.is_some());
        if let Some(change) = change {
            self.transition(change, target, &result).await;
        }
    }

    fn store(&self, target: &Target, health: &Health, result: &CheckResult, changed: bool) {
        let mut report = target
            .shared
            .check
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        report.status = result.status.code();
        report.code = result.code;
        report.duration_ms = result.duration.map_or(0, |d| d.as_millis() as u64);
        report.reason = if result.info.is_empty() {
            result.status.description().to_string()
        } else {
            result.info.clone()
        };
        report.streak = health.streak();
        if !result.status.passed() {
            report.failed_checks += 1;
        }
        if changed && !health.is_up() {
            report.downs += 1;
        }
    }

    async fn transition(&self, change: Change, target: &Target, result: &CheckResult) {
        let command = Command::ReportHealth {
            server: self.server.clone(),
            node: self.runtime.node(),
            up: change == Change::Up,
            at: now_ms(),
        };
        // Settled on return: the count below includes this change.
        if let Err(e) = self.runtime.change(&command).await {
            tracing::warn!("health check of {}: {e}", self.server);
            return;
        }
        // Count usable servers in the table that includes this change.
        let (act, bck) = self.usable_counts();
        let on_backup = if bck > 0 && act == 0 {
            " Running on backup."
        } else {
            ""
        };
        let who = if target.backup {
            "Backup Server"
        } else {
            "Server"
        };
        match change {
            Change::Down => {
                let sessions = target.shared.counters.current();
                tracing::warn!(
                    "{who} {} is DOWN{}. {act} active and {bck} backup servers left.{on_backup} \
                     {sessions} sessions active, 0 requeued, 0 remaining in queue.",
                    self.server,
                    result.describe()
                );
                if act + bck == 0 {
                    tracing::error!("backend {} has no server available!", self.server.backend);
                }
            }
            Change::Up => tracing::warn!(
                "{who} {} is UP{}. {act} active and {bck} backup servers online.{on_backup} \
                 0 sessions requeued, 0 total in queue.",
                self.server,
                result.describe()
            ),
        }
    }

    /// Usable primary and backup servers of the backend now.
    fn usable_counts(&self) -> (usize, usize) {
        let snapshot = self.runtime.snapshot();
        let Some(backend) = snapshot.backend(&self.server.backend) else {
            return (0, 0);
        };
        let count = |backup: bool| {
            backend
                .servers
                .iter()
                .filter(|s| s.backup == backup && s.usable())
                .count()
        };
        (count(false), count(true))
    }
}
