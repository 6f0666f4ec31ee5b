//! Process limits decided once at start: the file-descriptor limit and the
//! effective global `maxconn`, following HAProxy 2.6 (`haproxy.c`,
//! `compute_ideal_maxconn`).
//!
//! Every proxied connection needs two descriptors (client and server), and
//! the process needs a few more for listeners, stats sockets, the admin API,
//! health checks and itself. At start Shoal:
//! - derives `maxconn` from the descriptor limit when the config sets none:
//!   (hard limit - reserved) / 2, at least 100, as HAProxy does;
//! - raises the soft `RLIMIT_NOFILE` to fit 2 x maxconn + reserved (up to
//!   the hard limit, or beyond it when privileged, as HAProxy does);
//! - when the configured `maxconn` still cannot fit, warns with HAProxy's
//!   words and lowers `maxconn` to what fits (HAProxy, with its default
//!   `strict-limits`, refuses to start instead; lowering keeps Shoal from
//!   running into "Too many open files" on accept);
//! - prints the effective `maxconn` and descriptor limit as a `[NOTICE]`.
//!
//! The result is a process-wide connection semaphore that every listener
//! takes a permit from before `accept()`, so at the limit new clients wait
//! in the kernel backlog instead of failing. It is fixed at start: a reload
//! may lower the global `maxconn` (the routing snapshot enforces the
//! config's value too) but raising it past the start value needs a restart.

use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};
use shoal_proto::config::Config;
use std::sync::{Arc, OnceLock};
use tokio::sync::Semaphore;

/// HAProxy's `DEFAULT_MAXCONN`: the floor of a derived `maxconn`.
const DEFAULT_MAXCONN: u64 = 100;
/// Descriptors the process uses whatever the config: stdio, the event
/// loop, signal handling, log files, name resolution.
const BASE_FDS: u64 = 16;
/// Admin API connections counted in the budget (it allows more, which then
/// compete with proxied connections).
const ADMIN_FDS: u64 = 16;

/// What [`apply`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Effective global `maxconn`.
    pub maxconn: u32,
    /// The `maxconn` the config asked for, when it was lowered to fit.
    pub lowered_from: Option<u32>,
    /// True when the config set no `maxconn` and it was derived.
    pub derived: bool,
    /// Soft descriptor limit now.
    pub fd_limit: u64,
    /// Soft descriptor limit before, when it was raised.
    pub raised_from: Option<u64>,
    /// Descriptors kept for things other than proxied connections.
    pub reserved: u64,
}

static PLAN: OnceLock<Plan> = OnceLock::new();
static SLOTS: OnceLock<Arc<Semaphore>> = OnceLock::new();

/// The effective global `maxconn`, once [`apply`] has run.
pub fn maxconn() -> Option<u32> {
    PLAN.get().map(|p| p.maxconn)
}

/// The process-wide connection slots, once [`apply`] has run.
pub fn connection_slots() -> Option<&'static Arc<Semaphore>> {
    SLOTS.get()
}

/// Descriptors needed besides two per proxied connection: listeners, stats
/// sockets and their sessions, the admin API, one per health-checked server.
pub fn reserved_fds(config: &Config, admin: bool) -> u64 {
    let binds: usize = config.proxies.iter().map(|p| p.binds.len()).sum();
    let sockets = config.global.stats_sockets.len() * (1 + crate::api::socket::MAX_CLIENTS);
    let checks = config
        .proxies
        .iter()
        .flat_map(|p| &p.servers)
        .filter(|s| s.check)
        .count();
    BASE_FDS + (binds + sockets + checks) as u64 + if admin { 1 + ADMIN_FDS } else { 0 }
}

/// Decide the limits for `config`, raise the descriptor limit, print what
/// was decided and install the connection slots. `admin`: the admin API
/// runs too. Call once, before any listener opens; later calls return the
/// first plan.
pub fn apply(config: &Config, admin: bool) -> Plan {
    let reserved = reserved_fds(config, admin);
    let plan = plan(config.global.maxconn, reserved, &mut SystemLimit);
    if let Some(wanted) = plan.lowered_from {
        let maxsock = 2 * u64::from(wanted) + reserved;
        eprintln!(
            "[WARNING] Cannot raise FD limit to {maxsock}, limit is {}.",
            plan.fd_limit
        );
        eprintln!(
            "[WARNING] FD limit ({}) too low for maxconn={wanted}/maxsock={maxsock}; \
             maxconn lowered to {}. Raise 'ulimit -n' to {maxsock} or more to get {wanted}.",
            plan.fd_limit, plan.maxconn
        );
    }
    let how = if plan.derived {
        " (derived from the fd limit)"
    } else {
        ""
    };
    let raised = plan
        .raised_from
        .map(|from| format!(" (raised from {from})"))
        .unwrap_or_default();
    println!(
        "[NOTICE] maxconn {}{how}, fd limit {}{raised}",
        plan.maxconn, plan.fd_limit
    );
    let plan = PLAN.get_or_init(|| plan).clone();
    SLOTS.get_or_init(|| Arc::new(Semaphore::new(plan.maxconn as usize)));
    plan
}

/// Reading and setting `RLIMIT_NOFILE`; a trait so the arithmetic can be
/// tested without touching the process.
pub trait FdLimit {
    /// (soft, hard).
    fn get(&mut self) -> Option<(u64, u64)>;
    /// Set both; false when refused.
    fn set(&mut self, soft: u64, hard: u64) -> bool;
}

/// The real process limit.
pub struct SystemLimit;

impl FdLimit for SystemLimit {
    fn get(&mut self) -> Option<(u64, u64)> {
        getrlimit(Resource::RLIMIT_NOFILE).ok()
    }
    fn set(&mut self, soft: u64, hard: u64) -> bool {
        setrlimit(Resource::RLIMIT_NOFILE, soft, hard).is_ok()
    }
}

/// The arithmetic of [`apply`]: choose `maxconn`, raise the limit to fit
/// it, lower `maxconn` when the limit cannot be raised enough.
pub fn plan(configured: Option<u32>, reserved: u64, limit: &mut dyn FdLimit) -> Plan {
    let (soft, mut hard) = limit.get().unwrap_or((1024, 1024));
    // As HAProxy: an unlimited hard limit counts as the soft one.
    if hard == RLIM_INFINITY {
        hard = soft;
    }
    let wanted = match configured {
        Some(m) => u64::from(m),
        None => (soft.max(hard).saturating_sub(reserved) / 2).max(DEFAULT_MAXCONN),
    };
    let wanted = wanted.min(u64::from(u32::MAX));
    let need = 2 * wanted + reserved;
    let mut now = soft;
    if need > soft {
        // First the exact need (raising the hard limit too when allowed),
        // else as far as the hard limit goes.
        if limit.set(need, hard.max(need)) || (hard > soft && limit.set(hard, hard)) {
            now = limit.get().map_or(soft, |(s, _)| s);
        }
    }
    let fits = (now.saturating_sub(reserved) / 2).max(1);
    let maxconn = wanted.min(fits) as u32;
    Plan {
        maxconn,
        lowered_from: (u64::from(maxconn) < wanted).then_some(wanted as u32),
        derived: configured.is_none(),
        fd_limit: now,
        raised_from: (now > soft).then_some(soft),
        reserved,
    }
}

#[cfg(test)]
mod tests;
