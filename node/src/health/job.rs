//! One server's check task: schedule, probe, count, and on a transition
//! report it through [`Runtime::change`] and log it in HAProxy's words.
//!
//! The counter is this node's own view of the server. It drives local
//! avoidance at once (`ServerShared::locally_down`, read by the next
//! snapshot) and is reported to the cluster whenever it differs from this
//! node's last report in the replicated state (the first check, each
//! rise/fall transition, a report that did not commit): the cluster
//! verdict is `apply`'s, from every node's reports. The counter follows
//! the replicated state only where an operator forced it (`set server
//! health`), as HAProxy's does.

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
use std::sync::atomic::Ordering;
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
    /// Operational state UP (or stopping), as the verdict or an operator
    /// set it.
    op_up: bool,
    /// An operator forced `op_up` against the verdict: the counter follows.
    forced: bool,
    /// This node's last report in the replicated state (`None`: none yet).
    reported: Option<bool>,
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
        // Start from what this node last knew: its avoidance flag (kept
        // across reloads), its last report, else the verdict.
        let locally_down = first.shared.locally_down.load(Ordering::Acquire);
        let start_up = !locally_down && first.reported.unwrap_or(first.up);
        let mut health = Health::new(self.rise, self.fall, start_up, fresh);
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
            if target.forced {
                health.sync(target.op_up);
            }
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
        if target.forced {
            health.sync(target.op_up);
        }
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
        let op_up = s.state.op != OpState::Down;
        // From the replicated state: a reused snapshot's reports may lag.
        let node = self.runtime.node();
        let reported = self.runtime.read(|state| {
            state
                .server(&self.server)
                .and_then(|st| st.reports.get(&node))
                .map(|r| r.up)
        });
        Some(Target {
            op_up,
            forced: op_up != s.state.verdict_up,
            reported,
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
        let own = health.is_up();
        // Local avoidance first: this node stops (or resumes) sending the
        // server traffic without waiting for the cluster.
        let was_down = target.shared.locally_down.swap(!own, Ordering::AcqRel);
        if was_down == own {
            self.runtime.rebuild();
            self.runtime.settled().await;
        }
        // Report what differs from this node's last word; a transition
        // against an operator-forced state is reported again, so that the
        // verdict takes the server back (HAProxy's checks do).
        let forced_against = change.is_some() && target.op_up != own;
        if target.reported != Some(own) || forced_against {
            self.report(own, &result).await;
        }
        if let Some(change) = change {
            self.log_transition(change, target, &result);
        }
    }

    /// Propose this node's observation; the verdict is the cluster's.
    async fn report(&self, up: bool, result: &CheckResult) {
        // Not in the cluster yet: local avoidance acts alone; the report
        // goes out at a check after joining (it still differs then).
        if self.runtime.awaiting_cluster() {
            return;
        }
        // A node that cannot load the running config checks the servers of
        // the config it still serves: what it sees of an address the
        // cluster no longer uses must not count in the cluster's verdict.
        if self.runtime.read(|s| s.config().local_error.is_some()) {
            return;
        }
        let command = Command::ReportObservation {
            server: self.server.clone(),
            node: self.runtime.node(),
            up,
            reason: result.summary(),
            at: now_ms(),
        };
        // A failure (no quorum) is retried at the next check: the report
        // still differs from the replicated one then.
        if let Err(e) = self.runtime.change(&command).await {
            tracing::warn!("health check of {}: {e}", self.server);
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

    /// Log a transition of this node's checks: standalone in HAProxy's
    /// words (the verdict is this node's), in a cluster as this node's
    /// view (the verdict is logged by every node when it changes).
    fn log_transition(&self, change: Change, target: &Target, result: &CheckResult) {
        if self.runtime.clustered() {
            let node = self.runtime.node();
            match change {
                Change::Down => tracing::warn!(
                    "Server {} is DOWN for node {node}'s checks{}. Node {node} avoids it \
                     until its checks pass; the cluster verdict decides for the others.",
                    self.server,
                    result.describe()
                ),
                Change::Up => tracing::warn!(
                    "Server {} is UP for node {node}'s checks{}. Node {node} sends it \
                     traffic again while the cluster verdict has it UP.",
                    self.server,
                    result.describe()
                ),
            }
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
