//! [`ClusterState::apply`]: the one place state changes.

use super::{Applied, ClusterState, Effect, Layout, LoadedConfig, ServerStatus, TableState};
use crate::command::{AdminState, Command, Millis, OpState, ServerRef};
use crate::config::EnvLookup;
use std::collections::BTreeMap;
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
            } => self.change(server, Some(*at), |s| {
                s.reports.insert(*node, *up);
                // A report is a node's checks changing their mind (after
                // an operator forced a state too, as HAProxy's checks
                // bring a server back): the verdict decides again.
                if let Some(verdict) = verdict(&s.reports) {
                    s.verdict_up = verdict;
                    s.op = if verdict { OpState::Up } else { OpState::Down };
                }
            }),
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

/// The cluster verdict from each reporting node's last word: DOWN when a
/// majority of them say DOWN, UP when a majority say UP; `None` on a tie
/// (the verdict stays as it was).
fn verdict(reports: &BTreeMap<u64, bool>) -> Option<bool> {
    let up = reports.values().filter(|&&u| u).count();
    let down = reports.len() - up;
    match up.cmp(&down) {
        std::cmp::Ordering::Greater => Some(true),
        std::cmp::Ordering::Less => Some(false),
        std::cmp::Ordering::Equal => None,
    }
}
