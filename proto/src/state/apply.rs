//! [`ClusterState::apply`]: the one place state changes.

use super::{
    Applied, ClusterState, Effect, HealthReport, Layout, LoadedConfig, ServerStatus, TableState,
};
use crate::command::{AdminState, Command, Millis, NodeId, OpState, ServerRef};
use crate::config::EnvLookup;
use crate::config::HealthRule;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

impl ClusterState {
    /// Carry out a command that passed [`ClusterState::validate`].
    ///
    /// Deterministic: the replicated state (what [`ClusterState::hash`]
    /// covers) depends only on the state and the command, whatever this
    /// node's environment. Only the config's local model is parsed here,
    /// with this process's environment (see [`ClusterState::apply_with_env`]).
    /// A command that would not pass validation changes nothing (apply
    /// never panics on one, but callers validate first).
    pub fn apply(&mut self, command: &Command) -> Applied {
        self.apply_with_env(command, &super::process_env)
    }

    /// [`ClusterState::apply`], with the `"${NAME}"` of a loaded config
    /// looked up in `env` (a test plays a node with another environment).
    pub fn apply_with_env(&mut self, command: &Command, env: EnvLookup<'_>) -> Applied {
        let applied = match command {
            Command::LoadConfig {
                file,
                text,
                at,
                layout,
            } => self.load_config(file, text, layout, *at, env),
            Command::SetWeight { server, weight } => {
                self.change(server, None, |s| s.weight = (*weight).min(256))
            }
            Command::SetAdminState { server, state, at } => {
                self.change(server, Some(*at), |s| s.admin = *state)
            }
            Command::SetHealth { server, state, at } => {
                self.change(server, Some(*at), |s| s.op = *state)
            }
            Command::ReportHealth {
                server,
                node,
                up,
                at,
            } => self.report(server, *node, *up, "", *at),
            Command::ReportObservation {
                server,
                node,
                up,
                reason,
                at,
            } => self.report(server, *node, *up, reason, *at),
            Command::ForgetNode { node, at } => self.forget_node(*node, *at),
            Command::RestoreState { state } => self.restore(state, &BTreeSet::new(), 0),
            Command::Restore { state, forget, at } => self.restore(state, forget, *at),
            Command::SetCheckEnabled { server, enabled } => {
                self.change(server, None, |s| s.check_enabled = *enabled)
            }
            Command::SetAddr { server, ip, port } => {
                // Without a port, keep the one in use: the override's, else
                // the config's (none: the client's destination port, 0).
                let configured = self
                    .config
                    .layout
                    .server(server)
                    .and_then(|c| c.addr.port)
                    .unwrap_or(0);
                self.change(server, None, |s| {
                    let current = s.addr.map_or(configured, |a| a.port());
                    s.addr = Some(SocketAddr::new(*ip, port.unwrap_or(current)));
                })
            }
            Command::SetMaxconn { server, maxconn } => {
                self.change(server, None, |s| s.maxconn = Some(*maxconn))
            }
            Command::ShutdownSessions { server } => {
                if self.servers.contains_key(server) {
                    Applied {
                        routing: false,
                        effects: vec![Effect::ShutdownSessions(server.clone())],
                    }
                } else {
                    Applied::default()
                }
            }
            Command::StickBatch { at, writes, .. } => {
                // Expire first: an expired entry is absent to the
                // conflict rule, and a full table drops expired entries
                // before it evicts live ones.
                for table in self.tables.values_mut() {
                    table.expire(*at);
                }
                let mut rejected = Vec::new();
                for (i, w) in writes.iter().enumerate() {
                    if let Some(table) = self.tables.get_mut(&w.table) {
                        if !table.write(&w.key, &w.server, w.prev.as_deref(), *at) {
                            rejected.push(i);
                        }
                    }
                }
                Applied {
                    routing: false,
                    effects: vec![Effect::StickStored { rejected }],
                }
            }
            Command::ClearTable { table, key } => match self.tables.get_mut(table) {
                Some(t) => {
                    t.clear(key.as_deref());
                    Applied {
                        routing: false,
                        effects: vec![Effect::TableCleared {
                            table: table.clone(),
                            key: key.clone(),
                        }],
                    }
                }
                None => Applied::default(),
            },
            Command::AddCertificate { name, certificate } => {
                self.certificates
                    .insert(name.clone(), certificate.as_ref().clone());
                certificates_changed()
            }
            Command::RemoveCertificate { name } => match self.certificates.remove(name) {
                Some(_) => certificates_changed(),
                None => Applied::default(),
            },
            Command::SetNodeDrained { node, drained } => {
                if *drained {
                    self.drained.insert(*node);
                } else {
                    self.drained.remove(node);
                }
                Applied {
                    routing: false,
                    effects: vec![Effect::NodeDrained {
                        node: *node,
                        drained: *drained,
                    }],
                }
            }
        };
        debug_assert!(self.invariants_hold(), "invariants broken by {command:?}");
        applied
    }

    /// Change one server with `edit`. With `at`, a change of admin or
    /// operational state restarts `lastchg` and, when the server comes back
    /// into service, its `slowstart` ramp. A server marked DOWN with
    /// `on-marked-down shutdown-sessions` has its sessions ended, whoever
    /// marked it.
    fn change(
        &mut self,
        server: &ServerRef,
        at: Option<Millis>,
        edit: impl FnOnce(&mut ServerStatus),
    ) -> Applied {
        let shutdown_on_down = self
            .config
            .layout
            .server(server)
            .is_some_and(|c| c.on_marked_down_shutdown);
        let Some(status) = self.servers.get_mut(server) else {
            return Applied::default();
        };
        let before = status.clone();
        edit(status);
        if *status == before {
            return Applied::default();
        }
        let mut effects = Vec::new();
        if let Some(at) = at {
            if (status.admin, status.op) != (before.admin, before.op) {
                status.last_change = at;
            }
            if status.serving() && !before.serving() {
                status.serving_since = Some(at);
            }
        }
        if shutdown_on_down && status.op == OpState::Down && before.op != OpState::Down {
            effects.push(Effect::ShutdownSessions(server.clone()));
        }
        let entered_maint = status.admin == AdminState::Maint && before.admin != AdminState::Maint;
        if entered_maint || status.addr != before.addr {
            effects.push(Effect::FlushConnections(server.clone()));
        }
        Applied {
            routing: true,
            effects,
        }
    }

    /// Replace the config. Servers and stick tables follow the layout
    /// the proposing node computed, so they are the same on every node:
    /// servers that stay keep their state (a changed configured weight or
    /// address replaces the runtime one, as a reload of the file means
    /// it); stick tables keep their entries while their definition is
    /// unchanged. The model is this node's parse of the text; when it does
    /// not load here, the node keeps the model it had and says why in
    /// `local_error`.
    fn load_config(
        &mut self,
        file: &str,
        text: &str,
        layout: &Layout,
        at: Millis,
        env: EnvLookup<'_>,
    ) -> Applied {
        let old = std::mem::take(&mut self.servers);
        for (id, line) in layout.servers() {
            let fresh = ServerStatus::from_layout(line, at);
            let status = match (old.get(&id), self.config.layout.server(&id)) {
                (Some(kept), Some(before)) => {
                    let mut s = kept.clone();
                    if before.weight != line.weight {
                        s.weight = fresh.weight;
                    }
                    if before.addr != line.addr {
                        s.addr = None;
                    }
                    s
                }
                _ => fresh,
            };
            self.servers.insert(id, status);
        }
        let mut old_tables = std::mem::take(&mut self.tables);
        for (name, def) in &layout.tables {
            let table = match old_tables.remove(name) {
                Some(t) if t.def == *def => t,
                _ => TableState::new(def.clone()),
            };
            self.tables.insert(name.clone(), table);
        }
        self.config = Arc::new(LoadedConfig::load(
            file.to_string(),
            text.to_string(),
            layout.clone(),
            env,
            self.config.model.clone(),
        ));
        Applied {
            routing: true,
            effects: vec![Effect::ConfigLoaded],
        }
    }

    /// Become `state` (a backup), then forget the reports of `forget`
    /// (see `forget_node`). When its config does not load with this
    /// node's environment, keep serving the model running now, as after
    /// a `LoadConfig` that does not load here (entries of tables the
    /// backup lacks go with their tables).
    /// A backup holds no certificates (no private keys leave the
    /// cluster through one), so restoring keeps the ones the cluster has.
    fn restore(&mut self, state: &ClusterState, forget: &BTreeSet<NodeId>, at: Millis) -> Applied {
        let serving = self.config.model.clone();
        let certificates = std::mem::take(&mut self.certificates);
        *self = state.clone();
        self.certificates = certificates;
        self.keep_serving(&serving);
        let mut applied = Applied {
            routing: true,
            effects: vec![Effect::Restored],
        };
        for &node in forget {
            applied.effects.extend(self.forget_node(node, at).effects);
        }
        applied
    }

    /// The config, servers and tables agree (checked in debug builds).
    pub(super) fn invariants_hold(&self) -> bool {
        let layout = &self.config.layout;
        let tables_match = self.tables.iter().all(|(name, t)| {
            t.consistent() && layout.tables.get(name).is_some_and(|def| *def == t.def)
        });
        let configured: std::collections::BTreeSet<ServerRef> =
            layout.servers().map(|(id, _)| id).collect();
        configured.iter().eq(self.servers.keys())
            && self.servers.values().all(|s| s.weight <= 256)
            && tables_match
    }
}

/// What adding or removing a certificate asks of the node.
fn certificates_changed() -> Applied {
    Applied {
        routing: false,
        effects: vec![Effect::CertificatesChanged],
    }
}

// --- health verdicts ---

/// Longest report reason kept (a reason comes from a peer: untrusted).
const MAX_REASON: usize = 256;

impl ClusterState {
    /// Node `node`'s checks concluded `up` (why: `reason`): keep it as the
    /// node's last word and derive the verdict again. A report equal to
    /// the node's previous one changes nothing, unless an operator forced
    /// the state since (`set server health`): then, as HAProxy's checks
    /// do, the report brings the server back to what the verdict says.
    fn report(
        &mut self,
        server: &ServerRef,
        node: NodeId,
        up: bool,
        reason: &str,
        at: Millis,
    ) -> Applied {
        let rule = self.health_rule(server);
        let mut reason = reason.to_string();
        if reason.len() > MAX_REASON {
            let mut end = MAX_REASON;
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            reason.truncate(end);
        }
        let before = self.servers.get(server).map(|s| s.verdict_up);
        let mut applied = self.change(server, Some(at), |s| {
            let same = s.reports.get(&node).is_some_and(|r| r.up == up);
            if !same {
                s.reports.insert(node, HealthReport { up, reason, at });
            }
            // A report is a node's checks changing their mind (after an
            // operator forced a state too): the verdict decides again.
            let verdict = verdict(rule, &s.reports).unwrap_or(s.verdict_up);
            s.verdict_up = verdict;
            s.op = if verdict { OpState::Up } else { OpState::Down };
        });
        self.note_verdict(server, before, rule, &mut applied);
        applied
    }

    /// Node `node` left the cluster: drop its reports everywhere and
    /// derive every verdict again from the nodes that remain (in server
    /// order, so every node logs the same changes).
    fn forget_node(&mut self, node: NodeId, at: Millis) -> Applied {
        let mut all = Applied::default();
        let reported: Vec<ServerRef> = self
            .servers
            .iter()
            .filter(|(_, s)| s.reports.contains_key(&node))
            .map(|(id, _)| id.clone())
            .collect();
        for server in reported {
            let rule = self.health_rule(&server);
            let before = self.servers.get(&server).map(|s| s.verdict_up);
            let mut applied = self.change(&server, Some(at), |s| {
                s.reports.remove(&node);
                if let Some(verdict) = verdict(rule, &s.reports) {
                    if verdict != s.verdict_up {
                        s.verdict_up = verdict;
                        s.op = if verdict { OpState::Up } else { OpState::Down };
                    }
                }
            });
            self.note_verdict(&server, before, rule, &mut applied);
            all.routing |= applied.routing;
            all.effects.append(&mut applied.effects);
        }
        all
    }

    /// The `cluster-health` rule of a server's backend.
    fn health_rule(&self, server: &ServerRef) -> HealthRule {
        self.config
            .layout
            .backend(&server.backend)
            .map_or(HealthRule::default(), |b| b.health_rule)
    }

    /// Add an [`Effect::Verdict`] when the verdict moved from `before`.
    fn note_verdict(
        &self,
        server: &ServerRef,
        before: Option<bool>,
        rule: HealthRule,
        applied: &mut Applied,
    ) {
        let Some(status) = self.servers.get(server) else {
            return;
        };
        if before.is_some_and(|b| b != status.verdict_up) {
            applied.effects.push(Effect::Verdict {
                server: server.clone(),
                up: status.verdict_up,
                detail: verdict_detail(&status.reports, rule),
            });
        }
    }
}

/// The cluster verdict under `rule` from each reporting node's last word,
/// or `None` when the rule leaves it as it was (no reports; a tie under
/// `majority`). Only the nodes that reported count.
pub(super) fn verdict(rule: HealthRule, reports: &BTreeMap<NodeId, HealthReport>) -> Option<bool> {
    let up = reports.values().filter(|r| r.up).count();
    let down = reports.len() - up;
    if reports.is_empty() {
        return None;
    }
    match rule {
        HealthRule::Any => Some(down == 0),
        HealthRule::All => Some(up > 0),
        HealthRule::Majority => match up.cmp(&down) {
            std::cmp::Ordering::Greater => Some(true),
            std::cmp::Ordering::Less => Some(false),
            std::cmp::Ordering::Equal => None,
        },
    }
}

/// Who saw what: "nodes 1 and 3 report DOWN, node 2 UP; rule majority".
pub fn verdict_detail(reports: &BTreeMap<NodeId, HealthReport>, rule: HealthRule) -> String {
    let list = |up: bool| -> Vec<NodeId> {
        reports
            .iter()
            .filter(|(_, r)| r.up == up)
            .map(|(n, _)| *n)
            .collect()
    };
    let (down, up) = (list(false), list(true));
    let mut parts = Vec::new();
    if !down.is_empty() {
        parts.push(format!("{} DOWN", nodes_phrase(&down, parts.is_empty())));
    }
    if !up.is_empty() {
        parts.push(format!("{} UP", nodes_phrase(&up, parts.is_empty())));
    }
    if parts.is_empty() {
        parts.push("no node reports".into());
    }
    format!("{}; rule {}", parts.join(", "), rule.keyword())
}

/// "node 2", "nodes 1 and 3", "nodes 1, 2 and 4"; with "report(s)" after
/// the first group only.
fn nodes_phrase(nodes: &[NodeId], first: bool) -> String {
    let names: Vec<String> = nodes.iter().map(ToString::to_string).collect();
    let list = match names.as_slice() {
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
        [] => String::new(),
    };
    let noun = if nodes.len() == 1 { "node" } else { "nodes" };
    match (first, nodes.len()) {
        (true, 1) => format!("{noun} {list} reports"),
        (true, _) => format!("{noun} {list} report"),
        (false, _) => format!("{noun} {list}"),
    }
}
