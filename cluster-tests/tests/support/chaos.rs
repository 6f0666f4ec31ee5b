//! The chaos run's rules: its settings (duration, seed), a seeded random
//! source, the record of what it broke and when, and the two judgements
//! made at the end: which failed client requests a fault excuses, and
//! which final weight a writer's record allows.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Seconds of chaos: `SHOAL_CHAOS_SECS`, 60 by default (CI).
pub fn chaos_secs() -> u64 {
    match std::env::var("SHOAL_CHAOS_SECS") {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("SHOAL_CHAOS_SECS={v:?} is not a number of seconds")),
        Err(_) => 60,
    }
}

/// The run's seed: `SHOAL_CHAOS_SEED` replays a run, otherwise the clock.
pub fn chaos_seed() -> u64 {
    match std::env::var("SHOAL_CHAOS_SEED") {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("SHOAL_CHAOS_SEED={v:?} is not a number")),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    }
}

/// SplitMix64: a few lines give a seeded, replayable sequence, which is
/// all the chaos loop needs (no crate, and no change to Cargo.lock).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` is small: the bias does not matter).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// A duration between `lo` and `hi` milliseconds.
    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next_u64() % (hi - lo + 1))
    }
}

/// What the chaos loop did.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    NodeKilled(u64),
    NodeRestarted(u64),
    NodeCut(u64),
    NodeHealed(u64),
    BackendKilled(String),
    BackendRestarted(String),
}

impl Fault {
    /// The kind of action, for the figures.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::NodeKilled(_) => "node kill -9",
            Fault::NodeRestarted(_) => "node restart",
            Fault::NodeCut(_) => "node cut off",
            Fault::NodeHealed(_) => "node healed",
            Fault::BackendKilled(_) => "backend kill -9",
            Fault::BackendRestarted(_) => "backend restart",
        }
    }
}

/// One action, from just before it began to just after it was done.
#[derive(Debug, Clone)]
pub struct Event {
    pub fault: Fault,
    pub from: Instant,
    pub to: Instant,
}

/// One client request as the client saw it (over all the nodes it tried).
#[derive(Debug, Clone)]
pub struct Request {
    /// Which driver and frontend.
    pub who: String,
    pub started: Instant,
    pub ended: Instant,
    /// The node of the last attempt (earlier ones were refused).
    pub via: u64,
    /// The server this client was on before (cookie or stick entry).
    pub pinned: Option<String>,
    /// The answering server for a 200, otherwise what went wrong.
    pub outcome: Result<String, String>,
}

/// How long after its restart a server may still be DOWN for some node
/// (rise 2 at 200 ms, the verdict through Raft, a busy machine): until
/// then the load balancer may send its clients to any other server.
pub const SETTLE: Duration = Duration::from_secs(5);

/// The fault that excuses a failed request, if any: a kill while the
/// request was in flight (started before the kill was done, ended after
/// it began), of the node it went through, or of a backend that could
/// have served it. Cuts and restarts excuse nothing.
pub fn excuse<'a>(req: &Request, events: &'a [Event]) -> Option<&'a Event> {
    events.iter().find(|e| {
        let in_flight = req.started < e.to && req.ended > e.from;
        in_flight
            && match &e.fault {
                Fault::NodeKilled(id) => req.via == *id,
                Fault::BackendKilled(k) => could_serve(req, k, events),
                _ => false,
            }
    })
}

/// Whether backend `k` could have served `req`: the client had no server
/// yet, or was on `k`, or its server was down (or back for less than
/// [`SETTLE`]) when the request started, so that any server could be
/// chosen.
fn could_serve(req: &Request, k: &str, events: &[Event]) -> bool {
    let Some(pinned) = &req.pinned else {
        return true;
    };
    if pinned == k {
        return true;
    }
    let last = events
        .iter()
        .filter(|e| e.from < req.started)
        .rfind(|e| match &e.fault {
            Fault::BackendKilled(s) | Fault::BackendRestarted(s) => s == pinned,
            _ => false,
        });
    match last.map(|e| (&e.fault, e.to)) {
        Some((Fault::BackendKilled(_), _)) => true,
        Some((Fault::BackendRestarted(_), at)) => req.started < at + SETTLE,
        _ => false,
    }
}

/// One weight change as its writer saw it.
#[derive(Debug, Clone)]
pub struct Write {
    pub server: String,
    pub weight: u32,
    pub via: u64,
    /// 200 from the admin API. Anything else (an error status, a reset,
    /// a timeout) leaves the outcome unknown: it may have committed.
    pub acked: bool,
    pub why: String,
}

/// The final weights a writer's record allows for `server`: the last
/// acknowledged value, or any value attempted after it whose outcome is
/// unknown (it is earlier in the log than the next attempt, so it cannot
/// overwrite a later acknowledged one). With no acknowledged write, the
/// config's weight 1 or any attempted value.
pub fn allowed_finals(writes: &[Write], server: &str) -> Vec<u32> {
    let mine: Vec<&Write> = writes.iter().filter(|w| w.server == server).collect();
    match mine.iter().rposition(|w| w.acked) {
        Some(i) => mine[i..].iter().map(|w| w.weight).collect(),
        None => std::iter::once(1)
            .chain(mine.iter().map(|w| w.weight))
            .collect(),
    }
}
