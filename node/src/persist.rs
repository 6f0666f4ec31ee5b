//! Session persistence: cookies and `stick on|match|store-request` rules
//! (the tables themselves are in [`crate::stick`]).
//!
//! The request path writes its local table at once (it never waits); the
//! table queues the write, and [`run_batcher`] turns queued writes into one
//! `StickBatch` command every few milliseconds (group commit), so the
//! replicated state holds the tables too and a node that takes over finds
//! them.

use crate::acl::Samples;
use crate::routing::{AdminState, BackendRt};
use crate::runtime::{ChangeError, Runtime};
use crate::stick::Queued;
use shoal_proto::command::Command;
use shoal_proto::config::{StickAction, StickPattern};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// How long writes gather before they are proposed as one batch.
const BATCH_WINDOW: Duration = Duration::from_millis(5);
/// How often expiry runs when nothing is written.
const EXPIRY_TICK: Duration = Duration::from_secs(1);
/// Most writes in one `StickBatch` (one Raft entry); more wait for the next.
const MAX_BATCH: usize = 8192;
/// About the most bytes of writes in one `StickBatch`: one Raft entry must
/// reach a follower and be fsynced there within openraft's append deadline
/// (the heartbeat interval), and 8,192 writes of long string keys (up to
/// 1 KiB each) would be several MiB.
const MAX_BATCH_BYTES: usize = 512 * 1024;
/// Most writes taken from the queue and waiting for a batch (kept for retry
/// while batches fail to commit, or more than one batch holds); beyond it
/// the oldest are dropped and counted.
const MAX_RETAINED: usize = 100_000;
/// Pause after a batch failed, before the next attempt.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Propose queued stick writes as `StickBatch` commands: a batch leaves
/// [`BATCH_WINDOW`] after the first write, or as soon as
/// [`crate::stick::FLUSH_AT`] writes are queued, whichever comes first.
/// A batch that fails to commit (no quorum) is kept and proposed again
/// with the next writes, so a node that loses quorum briefly loses no
/// entries; at most [`MAX_RETAINED`] writes are kept, oldest dropped
/// first (and counted in `shoal_stick_writes_dropped_total`).
/// Also runs expiry (local purge and a replicated expiry batch) once a
/// second. Runs until the task is dropped.
pub async fn run_batcher(runtime: std::sync::Arc<Runtime>) {
    let queue = runtime.stick_queue().clone();
    let mut tick = tokio::time::interval(EXPIRY_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Writes taken from the queue and not yet committed, oldest first:
    // batches that failed to commit, and whatever did not fit in the last
    // batch. Each round sends the oldest MAX_BATCH of them; only those are
    // coalesced, so a backlog costs each round what it sends, not its
    // whole length (coalescing the whole backlog every round made a
    // writer at 50,000/s fall further behind with every batch).
    let mut backlog: VecDeque<Queued> = VecDeque::new();
    loop {
        let expiry = if backlog.is_empty() {
            tokio::select! {
                () = queue.ready.notified() => false,
                _ = tick.tick() => true,
            }
        } else {
            false
        };
        if !expiry && backlog.len() + queue.len() < crate::stick::FLUSH_AT {
            // Group commit: let more writes join this batch.
            let _ = tokio::time::timeout(BATCH_WINDOW, queue.full.notified()).await;
        }
        backlog.extend(queue.take());
        bound(&runtime, &mut backlog);
        // One Raft entry carries at most MAX_BATCH writes and about
        // MAX_BATCH_BYTES; the rest go first in the next round.
        let take = batch_prefix(&backlog);
        let writes = coalesce(backlog.drain(..take).collect());
        if expiry {
            for table in runtime.snapshot().tables.values() {
                table.purge();
            }
        }
        let state_has_entries =
            expiry && runtime.read(|s| s.tables().values().any(|t| !t.entries().is_empty()));
        if writes.is_empty() && !state_has_entries {
            continue;
        }
        let (batch, gens) = runtime.own_stick_batch(writes);
        let started = std::time::Instant::now();
        let result = runtime.change(&batch).await;
        tracing::debug!(
            writes = gens.len(),
            backlog = backlog.len(),
            queued = queue.len(),
            ms = started.elapsed().as_secs_f64() * 1e3,
            "stick batch"
        );
        match result {
            // Committed: a node behind the log applies it when it catches
            // up (proposing it again would only add to the lag).
            Ok(()) | Err(ChangeError::CommittedNotApplied(_)) => {}
            Err(ChangeError::Cluster(why)) => {
                // Not committed (or not known to be): propose it again,
                // first. A batch that did commit meanwhile is harmless to
                // apply twice (a write naming its own server is a refresh).
                tracing::warn!("stick batch not committed, kept for retry: {why}");
                if let Command::StickBatch { at, .. } = &batch {
                    runtime.forget_own_stick_batch(*at);
                }
                for q in queued(batch, gens).rev() {
                    backlog.push_front(q);
                }
                bound(&runtime, &mut backlog);
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Err(e) => {
                tracing::warn!("stick batch refused: {e}");
                abandon(&runtime, queued(batch, gens));
            }
        }
    }
}

/// The writes of a batch built by [`Runtime::own_stick_batch`], back with
/// their `gen`s.
fn queued(batch: Command, gens: Vec<u64>) -> impl DoubleEndedIterator<Item = Queued> {
    let writes = match batch {
        Command::StickBatch { writes, .. } => writes,
        _ => Vec::new(),
    };
    writes
        .into_iter()
        .zip(gens)
        .map(|(write, gen)| Queued { write, gen })
}

/// Writes that will never reach the log: their entries stop waiting.
fn abandon(runtime: &Runtime, writes: impl IntoIterator<Item = Queued>) {
    let snapshot = runtime.snapshot();
    for q in writes {
        if let Some(table) = snapshot.tables.get(q.write.table.as_str()) {
            table.abandon(&q.write.key, q.gen);
        }
    }
}

/// How many of the oldest waiting writes make one batch: at most
/// [`MAX_BATCH`], and at most about [`MAX_BATCH_BYTES`] (at least one).
fn batch_prefix(backlog: &VecDeque<Queued>) -> usize {
    let mut bytes = 0;
    backlog
        .iter()
        .take(MAX_BATCH)
        .take_while(|q| {
            let w = &q.write;
            bytes += w.table.len() + w.key.len() + w.server.len();
            bytes += w.prev.as_ref().map_or(0, String::len) + 16;
            bytes <= MAX_BATCH_BYTES
        })
        .count()
        .max(usize::from(!backlog.is_empty()))
}

/// Keep at most [`MAX_RETAINED`] writes waiting; drop (and count) the
/// oldest beyond it.
fn bound(runtime: &Runtime, backlog: &mut VecDeque<Queued>) {
    let excess = backlog.len().saturating_sub(MAX_RETAINED);
    if excess > 0 {
        abandon(runtime, backlog.drain(..excess));
        crate::stick::WRITES_DROPPED.fetch_add(excess as u64, Relaxed);
    }
}

/// Merge writes of one key into one: the last server (and its `gen`),
/// with the `prev` of the first (what the replicated entry said before
/// any of them), in the order keys were first written. Keys are compared
/// in place (no copy of a key or table name per write).
fn coalesce(writes: Vec<Queued>) -> Vec<Queued> {
    if writes.len() < 2 {
        return writes;
    }
    // The merged position of each write: keys numbered by first appearance.
    let slots: Vec<usize> = {
        let mut first: HashMap<(&str, &str), usize> = HashMap::with_capacity(writes.len());
        writes
            .iter()
            .map(|q| {
                let next = first.len();
                *first.entry((&q.write.table, &q.write.key)).or_insert(next)
            })
            .collect()
    };
    let mut merged: Vec<Queued> = Vec::with_capacity(writes.len());
    for (q, slot) in writes.into_iter().zip(slots) {
        match merged.get_mut(slot) {
            Some(kept) => {
                kept.write.server = q.write.server;
                kept.gen = q.gen;
            }
            None => merged.push(q),
        }
    }
    merged
}

/// What persistence decided for one request or connection.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sticky {
    /// The server the request must go to, if persistence names a usable one.
    pub server: Option<usize>,
    /// The server the client's persistence cookie names (even if unusable);
    /// `indirect` uses it to avoid re-sending a cookie the client has.
    pub cookie_server: Option<usize>,
    /// First-insertion date of the client's cookie (`maxlife`), seconds.
    pub cookie_first: Option<u64>,
}

/// Look up cookie and stick-table persistence for a request (HAProxy's
/// order: cookie first, then `stick match`/`stick on` rules in order).
/// A server that is DOWN or in maintenance is ignored, so the request is
/// balanced again (HAProxy's default); with `option persist` a DOWN (but not
/// MAINT) server is still used. Draining servers keep persistent traffic.
pub fn lookup(backend: &BackendRt, samples: &dyn Samples) -> Sticky {
    let mut sticky = Sticky::default();
    let allowed = |i: usize| {
        let s = &backend.servers[i];
        s.reachable() || (backend.persist && s.state.admin != AdminState::Maint)
    };
    if let Some(cookie) = &backend.cookie {
        use crate::http::cookie as c;
        let mut found = None;
        let now = unix_now();
        samples.any_header("cookie", &mut |header| {
            if let Some(value) =
                c::find(header, &cookie.name).filter(|v| !c::expired(cookie, v, now))
            {
                found = backend.server_by_cookie(c::server_part(cookie.mode, value));
                sticky.cookie_first = c::dates(value).1;
            }
            found.is_some()
        });
        sticky.cookie_server = found;
        if let Some(i) = found.filter(|&i| allowed(i)) {
            sticky.server = Some(i);
            return sticky;
        }
    }
    for rule in backend
        .stick
        .iter()
        .filter(|r| r.action != StickAction::StoreRequest)
    {
        if !rule.cond.as_ref().is_none_or(|c| c.eval(samples)) {
            continue;
        }
        let Some(key) = key_of(&rule.pattern, samples) else {
            continue;
        };
        let Some(name) = rule.table.lookup(&key) else {
            continue;
        };
        if let Some(i) = backend.server_by_name(&name).filter(|&i| allowed(i)) {
            sticky.server = Some(i);
            return sticky;
        }
    }
    sticky
}

/// Seconds since the epoch (cookie dates).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Record the chosen server in the tables of `stick on` and
/// `stick store-request` rules.
pub fn store(backend: &BackendRt, samples: &dyn Samples, server: usize) {
    for rule in backend
        .stick
        .iter()
        .filter(|r| r.action != StickAction::Match)
    {
        if !rule.cond.as_ref().is_none_or(|c| c.eval(samples)) {
            continue;
        }
        if let Some(key) = key_of(&rule.pattern, samples) {
            rule.table
                .store(&key, &backend.servers[server].name, server + 1);
        }
    }
}

/// The table key a pattern extracts, as text.
fn key_of(pattern: &StickPattern, samples: &dyn Samples) -> Option<String> {
    match pattern {
        StickPattern::Src => samples.src().map(|ip| match ip {
            std::net::IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map_or(v6.to_string(), |v4| v4.to_string()),
            v4 => v4.to_string(),
        }),
        StickPattern::ReqHdr(name) => {
            let mut value = None;
            samples.any_header(name, &mut |v| {
                value = Some(v.to_string());
                true
            });
            value
        }
        StickPattern::ReqCookie(name) => {
            let mut value = None;
            samples.any_header("cookie", &mut |h| {
                value = crate::http::cookie::find(h, name).map(str::to_string);
                value.is_some()
            });
            value
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::command::StickWrite;

    fn write(key: &str, server: &str, prev: Option<&str>, gen: u64) -> Queued {
        Queued {
            write: StickWrite {
                table: "t".into(),
                key: key.into(),
                server: server.into(),
                prev: prev.map(str::to_string),
            },
            gen,
        }
    }

    #[test]
    fn a_batch_is_bounded_by_count_and_by_bytes() {
        let short: VecDeque<Queued> = (0..10_000)
            .map(|i| write(&format!("k{i}"), "s1", None, i))
            .collect();
        assert_eq!(batch_prefix(&short), MAX_BATCH);
        let long_key = "x".repeat(1024);
        let long: VecDeque<Queued> = (0..1000).map(|i| write(&long_key, "s1", None, i)).collect();
        let n = batch_prefix(&long);
        assert!(n > 400 && n < 512, "{n} writes of 1 KiB keys");
        let huge: VecDeque<Queued> =
            [write(&"y".repeat(MAX_BATCH_BYTES * 2), "s1", None, 0)].into();
        assert_eq!(
            batch_prefix(&huge),
            1,
            "a write larger than the bound still goes"
        );
        assert_eq!(batch_prefix(&VecDeque::new()), 0);
    }

    #[test]
    fn writes_of_one_key_merge_into_the_last_with_the_first_prev() {
        let merged = coalesce(vec![
            write("a", "s1", Some("s9"), 1),
            write("b", "s2", None, 2),
            write("a", "s2", Some("s1"), 3),
            write("a", "s3", Some("s2"), 4),
        ]);
        assert_eq!(
            merged,
            vec![write("a", "s3", Some("s9"), 4), write("b", "s2", None, 2)]
        );
    }
}
