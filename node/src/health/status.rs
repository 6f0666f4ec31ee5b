//! Check results in HAProxy's vocabulary, and the rise/fall counter.

use std::time::Duration;

/// HAProxy's check status codes (the `check_status` column of `show stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// TCP connect succeeded and nothing more was asked.
    L4Ok,
    /// TCP connect timed out.
    L4Tout,
    /// TCP connect failed (refused, unreachable, ...).
    L4Con,
    /// HTTP response as expected.
    L7Ok,
    /// No (complete) HTTP response in time.
    L7Tout,
    /// Invalid HTTP response, or body not as expected.
    L7Rsp,
    /// HTTP status not as expected.
    L7Sts,
    /// External check exited 0.
    ProcOk,
    /// External check exited non-zero, was killed, or could not start.
    ProcErr,
    /// External check ran past its time limit and was killed.
    ProcTout,
    /// Passive health (`observe`) reached `error-limit`.
    Hana,
}

impl Status {
    /// The short code, as stats show it (`L4OK`, `PROCERR`, ...).
    pub fn code(self) -> &'static str {
        match self {
            Status::L4Ok => "L4OK",
            Status::L4Tout => "L4TOUT",
            Status::L4Con => "L4CON",
            Status::L7Ok => "L7OK",
            Status::L7Tout => "L7TOUT",
            Status::L7Rsp => "L7RSP",
            Status::L7Sts => "L7STS",
            Status::ProcOk => "PROCOK",
            Status::ProcErr => "PROCERR",
            Status::ProcTout => "PROCTOUT",
            Status::Hana => "HANA",
        }
    }

    /// HAProxy's description, used as the `reason:` of log lines.
    pub fn description(self) -> &'static str {
        match self {
            Status::L4Ok => "Layer4 check passed",
            Status::L4Tout => "Layer4 timeout",
            Status::L4Con => "Layer4 connection problem",
            Status::L7Ok => "Layer7 check passed",
            Status::L7Tout => "Layer7 timeout",
            Status::L7Rsp => "Layer7 invalid response",
            Status::L7Sts => "Layer7 wrong status",
            Status::ProcOk => "External check passed",
            Status::ProcErr => "External check error",
            Status::ProcTout => "External check timeout",
            Status::Hana => "Health analyze",
        }
    }

    /// True for a passed check.
    pub fn passed(self) -> bool {
        matches!(self, Status::L4Ok | Status::L7Ok | Status::ProcOk)
    }

    /// HAProxy prints `code: N` only for statuses past layer 6 data
    /// (`L7OK`, `L7STS`, `PROC*`), not for timeouts or invalid responses.
    fn shows_code(self) -> bool {
        matches!(
            self,
            Status::L7Ok | Status::L7Sts | Status::ProcOk | Status::ProcErr | Status::ProcTout
        )
    }
}

/// The outcome of one check (or of one passive verdict).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub status: Status,
    /// HTTP status, or exit code of an external check.
    pub code: Option<i32>,
    /// HAProxy's free-text detail (`info: "..."`); empty when none.
    pub info: String,
    /// How long the check took; `None` for passive verdicts (HAProxy
    /// prints no duration for those).
    pub duration: Option<Duration>,
}

impl CheckResult {
    /// A result with only a status.
    pub fn new(status: Status) -> CheckResult {
        CheckResult {
            status,
            code: None,
            info: String::new(),
            duration: None,
        }
    }

    /// Set the code.
    pub fn code(mut self, code: i32) -> CheckResult {
        self.code = Some(code);
        self
    }

    /// Set the info text.
    pub fn info(mut self, info: impl Into<String>) -> CheckResult {
        self.info = info.into();
        self
    }

    /// `, reason: R[, code: C][, info: "I"][, check duration: Nms]`, as
    /// HAProxy's `srv_append_status` writes it.
    pub fn describe(&self) -> String {
        let mut out = format!(", reason: {}", self.summary());
        if let Some(d) = self.duration {
            out.push_str(&format!(", check duration: {}ms", d.as_millis()));
        }
        out
    }

    /// `R[, code: C][, info: "I"]`: what a node's health report says of
    /// why (the reason of `show cluster health`).
    pub fn summary(&self) -> String {
        let mut out = self.status.description().to_string();
        if let (true, Some(code)) = (self.status.shows_code(), self.code) {
            out.push_str(&format!(", code: {code}"));
        }
        if !self.info.is_empty() {
            out.push_str(&format!(", info: \"{}\"", self.info));
        }
        out
    }
}

/// A state change decided by the counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Up,
    Down,
}

/// Which interval applies until the next check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Fully up: `inter`.
    Steady,
    /// A change is pending: `fastinter`.
    Moving,
    /// Fully down: `downinter`.
    Down,
}

/// HAProxy's health counter: 0 is DOWN, `rise + fall - 1` is fully UP, and
/// the server counts as UP from `rise` on. A failure while DOWN resets to
/// 0; a success while UP restores the full value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    value: u32,
    rise: u32,
    fall: u32,
}

impl Health {
    /// A counter for a server that is UP or DOWN now. A server UP at boot
    /// starts at `rise` (HAProxy: "up, but will fall down at first
    /// failure"); one that already passed checks starts fully UP.
    pub fn new(rise: u32, fall: u32, up: bool, fresh: bool) -> Health {
        let (rise, fall) = (rise.max(1), fall.max(1));
        let mut h = Health {
            value: 0,
            rise,
            fall,
        };
        if up {
            h.value = if fresh { rise } else { h.max() };
        }
        h
    }

    fn max(&self) -> u32 {
        self.rise + self.fall - 1
    }

    /// The server counts as UP.
    pub fn is_up(&self) -> bool {
        self.value >= self.rise
    }

    /// Count a passed check.
    pub fn pass(&mut self) -> Option<Change> {
        let was_up = self.is_up();
        if self.value < self.max() {
            self.value += 1;
            if self.value >= self.rise {
                self.value = self.max();
            }
        }
        (!was_up && self.is_up()).then_some(Change::Up)
    }

    /// Count a failed check.
    pub fn fail(&mut self) -> Option<Change> {
        let was_up = self.is_up();
        if self.value > 0 {
            self.value -= 1;
            if self.value < self.rise {
                self.value = 0;
            }
        }
        (was_up && !self.is_up()).then_some(Change::Down)
    }

    /// `on-error sudden-death`: as if every failed check but the last had
    /// already happened, so this failure plus one more mark it DOWN.
    pub fn sudden_death(&mut self) {
        if self.value > self.rise {
            self.value = self.rise + 1;
        }
    }

    /// `on-error mark-down`: the next failure marks an UP server DOWN.
    pub fn last_chance(&mut self) {
        if self.is_up() {
            self.value = self.rise;
        }
    }

    /// Follow a state someone else set (`set server health up|down`), as
    /// HAProxy resets the counter then.
    pub fn sync(&mut self, up: bool) {
        if up && !self.is_up() {
            self.value = self.max();
        } else if !up && self.is_up() {
            self.value = 0;
        }
    }

    /// Checks in a row that went against the current state.
    pub fn streak(&self) -> u32 {
        if self.is_up() {
            self.max() - self.value
        } else {
            self.value
        }
    }

    /// Which interval applies now.
    pub fn phase(&self) -> Phase {
        match self.value {
            0 => Phase::Down,
            v if v == self.max() => Phase::Steady,
            _ => Phase::Moving,
        }
    }

    /// `N/M UP|DOWN`, as HAProxy's `log-health-checks` lines end.
    pub fn progress(&self) -> String {
        if self.is_up() {
            format!("{}/{} UP", self.value - self.rise + 1, self.fall)
        } else {
            format!("{}/{} DOWN", self.value, self.rise)
        }
    }
}
