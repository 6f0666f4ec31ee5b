//! Health checks with HAProxy 2.x semantics.
//!
//! Each `server ... check` gets one task ([`job`]) that probes every
//! `inter` (`fastinter` while a change is pending, `downinter` while DOWN),
//! counts with HAProxy's rise/fall counter and, when this node's view
//! differs from its last report (first check, each transition), reports
//! it as a `ReportObservation` command through `Runtime::change` (the
//! state machine derives the verdict under the backend's `cluster-health`
//! rule and, with `on-marked-down shutdown-sessions`, ends the server's
//! sessions), logging it in HAProxy's words. Probes: TCP connect
//! (default), `option httpchk` with `http-check send|expect`, and `option
//! external-check`. First checks are spread over the interval so they do
//! not fire in bursts.
//!
//! Also here: passive health from real traffic (`observe`; see
//! [`Observer`] for the data-plane call sites), and the `slowstart` ticker
//! (the ramp itself is computed by the snapshot builder). A successful
//! check that moves the counter is logged at info level in the words of
//! HAProxy's `option log-health-checks`. Dropping [`Checks`] stops every
//! task.
//!
//! In a cluster every node checks every server: a node's own view avoids
//! the server locally at once, its reports feed the cluster verdict
//! (`cluster-health`, derived by `apply`), and the verdict sets `status`.

mod expect;
mod external;
mod http;
mod job;
mod response;
mod slowstart;
mod status;
mod tcp;
#[cfg(test)]
mod tests;
mod view;

pub use crate::observe::{Observer, Outcome};
pub use status::Status;
pub use view::{cluster_health, render_text, NodeReport, ServerHealth};

use crate::observe::{Passive, Registry};
use crate::runtime::Runtime;
use job::{Job, PassiveLink, Probe, Timing};
use shoal_proto::command::ServerRef;
use shoal_proto::config::{Config, OnError, Proxy, Server};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Shortest `inter` honoured, so a typo cannot turn checks into a flood.
const MIN_INTER: Duration = Duration::from_millis(10);
/// HAProxy's default `error-limit`.
const DEFAULT_ERROR_LIMIT: u32 = 10;

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

/// Start one check task per `server ... check` of the config (and the
/// slowstart ticker), registering observed servers in `observer`: pass the
/// same observer at start and on every reload so that the data plane keeps
/// one handle.
pub fn start(runtime: &Arc<Runtime>, config: &Config, observer: &Observer) -> Checks {
    let mut jobs = Vec::new();
    let mut registry = Registry::new();
    for (proxy_index, proxy) in config.proxies.iter().enumerate() {
        if !proxy.kind.is_backend() {
            continue;
        }
        for (server_index, server) in proxy.servers.iter().enumerate() {
            if !server.check {
                if server.observe.is_some() {
                    tracing::warn!(
                        "{}/{}: 'observe' needs 'check'; ignored",
                        proxy.name,
                        server.name
                    );
                }
                continue;
            }
            let ids = (proxy_index + 1, server_index + 1);
            let Some(probe) = probe(proxy, server, ids) else {
                continue;
            };
            let passive = server.observe.map(|mode| {
                let limit = server.error_limit.unwrap_or(DEFAULT_ERROR_LIMIT);
                let (state, events) = Passive::new(mode, limit);
                registry
                    .entry(proxy.name.clone().into())
                    .or_default()
                    .insert(server.name.clone().into(), state.clone());
                PassiveLink {
                    state,
                    events,
                    on_error: server.on_error.unwrap_or(OnError::FailCheck),
                }
            });
            jobs.push(Job {
                runtime: runtime.clone(),
                server: ServerRef {
                    backend: proxy.name.clone(),
                    server: server.name.clone(),
                },
                probe,
                timing: timing(config, proxy, server),
                rise: server.rise_or_default(),
                fall: server.fall_or_default(),
                check_port: server.check_port,
                passive,
                first_delay: Duration::ZERO,
            });
        }
    }
    observer.install(registry);
    // Spread first checks evenly over each server's interval (HAProxy
    // spreads them by position, the same way).
    let n = jobs.len() as u32;
    for (i, job) in jobs.iter_mut().enumerate() {
        job.first_delay = job.timing.inter * i as u32 / n.max(1);
    }
    let mut tasks: Vec<JoinHandle<()>> = jobs.into_iter().map(|j| tokio::spawn(j.run())).collect();
    tasks.extend(slowstart::start(runtime, config));
    Checks { tasks }
}

/// Log a change of the cluster verdict on a server (every node does, once,
/// as it applies the change). Standalone the check task's HAProxy line
/// has said it already.
pub fn log_verdict(clustered: bool, server: &ServerRef, up: bool, detail: &str) {
    if clustered {
        let state = if up { "UP" } else { "DOWN" };
        tracing::warn!("Server {server} is {state} (cluster verdict: {detail}).");
    }
}

/// The kind of check a server gets; `None` (with a warning) when it
/// cannot be checked.
fn probe(proxy: &Proxy, server: &Server, (proxy_id, server_id): (usize, usize)) -> Option<Probe> {
    if proxy.options.external_check {
        let Some(command) = &proxy.external_check_command else {
            tracing::warn!(
                "{}/{}: 'option external-check' without 'external-check command'; check disabled",
                proxy.name,
                server.name
            );
            return None;
        };
        return Some(Probe::External(Arc::new(external::ExternalCheck::new(
            proxy,
            command,
            proxy_id,
            &server.name,
            server_id,
        ))));
    }
    if server.addr.port.is_none() && server.check_port.is_none() {
        tracing::warn!(
            "{}/{}: no port to check; check disabled",
            proxy.name,
            server.name
        );
        return None;
    }
    if proxy.options.httpchk.is_some() {
        // HAProxy checks a `proto h2` server over HTTP/2 too.
        let h2 = server.proto == Some(shoal_proto::config::ServerProto::H2);
        return Some(Probe::Http(Arc::new(http::HttpCheck::new(proxy, h2))));
    }
    Some(Probe::Tcp)
}

/// HAProxy's limits: with `timeout check`, connect within `min(timeout
/// connect, inter)` and read within `timeout check`; without it, `inter`
/// bounds the whole check.
fn timing(config: &Config, proxy: &Proxy, server: &Server) -> Timing {
    let inter = server.inter_or_default().max(MIN_INTER);
    let timeouts = proxy.timeouts.or(&config.global.timeouts);
    let connect = match timeouts.check {
        Some(_) => timeouts.connect.map_or(inter, |c| c.min(inter)),
        None => inter,
    };
    Timing {
        inter,
        fastinter: server.fastinter.map(|d| d.max(MIN_INTER)),
        downinter: server.downinter.map(|d| d.max(MIN_INTER)),
        connect,
        check: timeouts.check,
    }
}
