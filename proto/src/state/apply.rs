//! [`ClusterState::apply`]: the one place state changes.

use super::{Applied, ClusterState, Effect, LoadedConfig, ServerStatus, TableState};
use crate::command::{AdminState, Command, Millis, OpState, ServerRef};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

impl ClusterState {
    /// Carry out a command that passed [`ClusterState::validate`].
    ///
    /// Deterministic: the result depends only on the state and the command.
    /// A command that would not pass validation changes nothing (apply
    /// never panics on one, but callers validate first).
    pub fn apply(&mut self, command: &Command) -> Applied {
        let applied = match command {
            Command::LoadConfig { file, text, at } => self.load_config(file, text, *at),
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
                    .server_config(server)
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
                for w in writes {
                    if let Some(table) = self.tables.get_mut(&w.table) {
                        table.write(&w.key, &w.server, *at);
                    }
                }
                for table in self.tables.values_mut() {
                    table.expire(*at);
                }
                Applied {
                    routing: false,
                    effects: vec![Effect::StickStored],
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
            .server_config(server)
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

    /// Replace the config. Servers that stay keep their state (a changed
    /// configured weight or address replaces the runtime one, as a reload
    /// of the file means it); stick tables keep their entries while their
    /// definition is unchanged.
    fn load_config(&mut self, file: &str, text: &str, at: Millis) -> Applied {
        let Ok(parsed) = crate::config::parse(text, file) else {
            return Applied::default();
        };
        let old = std::mem::take(&mut self.servers);
        let mut servers = BTreeMap::new();
        for proxy in parsed.config.proxies.iter().filter(|p| p.kind.is_backend()) {
            for server in &proxy.servers {
                let id = ServerRef::new(&proxy.name, &server.name);
                let fresh = ServerStatus::from_config(server, at);
                let status = match (old.get(&id), self.server_config(&id)) {
                    (Some(kept), Some(before)) => {
                        let mut s = kept.clone();
                        if before.weight_or_default() != server.weight_or_default() {
                            s.weight = fresh.weight;
                        }
                        if before.addr != server.addr {
                            s.addr = None;
                        }
                        s
                    }
                    _ => fresh,
                };
                servers.insert(id, status);
            }
        }
        let mut old_tables = std::mem::take(&mut self.tables);
        for proxy in &parsed.config.proxies {
            let Some(def) = &proxy.stick_table else {
                continue;
            };
            let table = match old_tables.remove(&proxy.name) {
                Some(t) if t.def == *def => t,
                _ => TableState::new(def.clone()),
            };
            self.tables.insert(proxy.name.clone(), table);
        }
        self.servers = servers;
        self.config = Arc::new(LoadedConfig {
            file: file.to_string(),
            text: text.to_string(),
            model: Arc::new(parsed.config),
        });
        Applied {
            routing: true,
            effects: vec![Effect::ConfigLoaded],
        }
    }

    /// The config, servers and tables agree (checked in debug builds).
    pub(super) fn invariants_hold(&self) -> bool {
        let configured: Vec<ServerRef> = self
            .config
            .model
            .proxies
            .iter()
            .filter(|p| p.kind.is_backend())
            .flat_map(|p| p.servers.iter().map(|s| ServerRef::new(&p.name, &s.name)))
            .collect();
        let tables_match = self.tables.iter().all(|(name, t)| {
            t.consistent()
                && self
                    .config
                    .model
                    .proxies
                    .iter()
                    .any(|p| p.name == *name && p.stick_table.as_ref() == Some(&t.def))
        });
        configured.len() == self.servers.len()
            && configured.iter().all(|s| self.servers.contains_key(s))
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
