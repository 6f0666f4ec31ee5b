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
use crate::runtime::Runtime;
use shoal_proto::command::Command;
use shoal_proto::config::{StickAction, StickPattern};
use std::time::Duration;

/// How long writes gather before they are proposed as one batch.
const BATCH_WINDOW: Duration = Duration::from_millis(5);
/// How often expiry runs when nothing is written.
const EXPIRY_TICK: Duration = Duration::from_secs(1);

/// Propose queued stick writes as `StickBatch` commands, and run expiry
/// (local purge and a replicated expiry batch) once a second. Runs until
/// the task is dropped.
pub async fn run_batcher(runtime: std::sync::Arc<Runtime>) {
    let queue = runtime.stick_queue().clone();
    let mut tick = tokio::time::interval(EXPIRY_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let expiry = tokio::select! {
            () = queue.ready.notified() => false,
            _ = tick.tick() => true,
        };
        if !expiry {
            // Group commit: let more writes join this batch.
            tokio::time::sleep(BATCH_WINDOW).await;
        }
        let writes = queue.take();
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
        let batch = Command::StickBatch {
            node: runtime.node(),
            at: crate::runtime::now_ms(),
            writes,
        };
        if let Err(e) = runtime.change(&batch).await {
            tracing::warn!("stick batch refused: {e}");
        }
    }
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
