//! Every node's view of every server's health, as `show cluster health`,
//! `GET /v1/cluster/health` and the stats page show it: the cluster
//! verdict and its rule, each reporting node's last word, and whether this
//! node avoids the server on its own checks.

use crate::runtime::Runtime;
use serde::Serialize;
use shoal_proto::command::{NodeId, OpState, ServerRef};
use utoipa::ToSchema;

/// One server's health across the cluster.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServerHealth {
    pub backend: String,
    pub server: String,
    /// The cluster verdict derived from the reports: `UP` or `DOWN`.
    #[schema(example = "UP")]
    pub verdict: &'static str,
    /// The operational state in force: the verdict, or what an operator
    /// forced since (`up`, `down`, `stopping`).
    #[schema(example = "up")]
    pub health: &'static str,
    /// The backend's `cluster-health` rule: `any`, `majority` or `all`.
    #[schema(example = "majority")]
    pub rule: &'static str,
    /// This node's own checks have the server DOWN: it sends it no
    /// traffic, whatever the verdict.
    pub avoided_here: bool,
    /// The last report of each node that reported, by node id.
    pub reports: Vec<NodeReport>,
}

/// A node's last report on a server.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NodeReport {
    pub node: NodeId,
    /// `UP` or `DOWN`.
    #[schema(example = "DOWN")]
    pub report: &'static str,
    /// The check's description when the node saw it.
    #[schema(example = "Layer4 connection problem, info: \"Connection refused\"")]
    pub reason: String,
    /// When the node saw it (milliseconds since the Unix epoch).
    pub at: u64,
}

/// `UP` or `DOWN`.
fn word(up: bool) -> &'static str {
    if up {
        "UP"
    } else {
        "DOWN"
    }
}

/// Every checked server of the running config, in config order.
pub fn cluster_health(runtime: &Runtime) -> Vec<ServerHealth> {
    let snapshot = runtime.snapshot();
    runtime.read(|state| {
        let layout = &state.config().layout;
        let mut out = Vec::new();
        for backend in &layout.backends {
            for line in backend.servers.iter().filter(|s| s.check) {
                let id = ServerRef::new(&backend.name, &line.name);
                let Some(status) = state.server(&id) else {
                    continue;
                };
                let avoided_here = snapshot
                    .server(&backend.name, &line.name)
                    .is_some_and(|s| s.avoided);
                out.push(ServerHealth {
                    backend: backend.name.clone(),
                    server: line.name.clone(),
                    verdict: word(status.verdict_up),
                    health: match status.op {
                        OpState::Up => "up",
                        OpState::Down => "down",
                        OpState::Stopping => "stopping",
                    },
                    rule: backend.health_rule.keyword(),
                    avoided_here,
                    reports: status
                        .reports
                        .iter()
                        .map(|(node, r)| NodeReport {
                            node: *node,
                            report: word(r.up),
                            reason: r.reason.clone(),
                            at: r.at,
                        })
                        .collect(),
                });
            }
        }
        out
    })
}

/// `show cluster health`: a header, then one line per server and
/// reporting node (a server no node reported on yet gets one line of
/// `-`). The reason comes last, as it has spaces.
pub fn render_text(servers: &[ServerHealth], node: NodeId) -> String {
    let mut out = format!(
        "# node {node}\n# be_name srv_name verdict rule avoided_here node report at reason\n"
    );
    for s in servers {
        let head = format!(
            "{} {} {} {} {}",
            s.backend,
            s.server,
            s.verdict,
            s.rule,
            u8::from(s.avoided_here)
        );
        if s.reports.is_empty() {
            out.push_str(&format!("{head} - - - -\n"));
        }
        for r in &s.reports {
            let reason = if r.reason.is_empty() { "-" } else { &r.reason };
            out.push_str(&format!(
                "{head} {} {} {} {}\n",
                r.node, r.report, r.at, reason
            ));
        }
    }
    out.push('\n');
    out
}
