//! [`Layout`]: what the replicated state needs to know of a config.
//!
//! A config's text is the same on every node, but its `"${NAME}"`
//! references expand from each node's own environment, so the parsed
//! model may differ from node to node, or not exist at all on a node that
//! lacks a variable. What `validate` and `apply` read of a config must be
//! the same everywhere, so it is computed once, by the node that proposes
//! the config, travels in the `LoadConfig` command and is stored (and
//! hashed) with the state: backends, their servers as configured, and the
//! stick-table definitions.

use super::validate::static_algorithm;
use crate::command::ServerRef;
use crate::config::{Config, HealthRule, Server, ServerAddr, StickTable};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The environment-independent facts of a config that the replicated
/// state depends on. Built by [`Layout::of`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Layout {
    /// Every backend (and listen), in config order.
    pub backends: Vec<BackendLayout>,
    /// Stick-table definitions, by the name of the proxy declaring them.
    pub tables: BTreeMap<String, StickTable>,
}

/// A backend as the state sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendLayout {
    pub name: String,
    /// Its algorithm keeps weights fixed (see [`static_algorithm`]).
    pub static_algorithm: bool,
    /// Its servers, in config order.
    pub servers: Vec<ServerLayout>,
    /// `cluster-health`: how node reports become the verdict.
    pub health_rule: HealthRule,
}

/// A server line as the state sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerLayout {
    pub name: String,
    /// The configured weight (`weight_or_default`).
    pub weight: u32,
    /// Starts in maintenance.
    pub disabled: bool,
    /// Health checks configured.
    pub check: bool,
    /// The address as the proposing node parsed it: a reload that changes
    /// it drops a runtime override, and `set server addr` without a port
    /// keeps its port.
    pub addr: ServerAddr,
    /// `on-marked-down shutdown-sessions`.
    pub on_marked_down_shutdown: bool,
}

impl Layout {
    /// The layout of a parsed config.
    pub fn of(config: &Config) -> Layout {
        let backends = config
            .proxies
            .iter()
            .filter(|p| p.kind.is_backend())
            .map(|p| BackendLayout {
                name: p.name.clone(),
                static_algorithm: static_algorithm(p),
                servers: p.servers.iter().map(ServerLayout::of).collect(),
                health_rule: p.cluster_health.unwrap_or_default(),
            })
            .collect();
        let tables = config
            .proxies
            .iter()
            .filter_map(|p| Some((p.name.clone(), p.stick_table.clone()?)))
            .collect();
        Layout { backends, tables }
    }

    /// The backend called `name`.
    pub fn backend(&self, name: &str) -> Option<&BackendLayout> {
        self.backends.iter().find(|b| b.name == name)
    }

    /// A server's line.
    pub fn server(&self, server: &ServerRef) -> Option<&ServerLayout> {
        self.backend(&server.backend)?
            .servers
            .iter()
            .find(|s| s.name == server.server)
    }

    /// Every server, as `backend/server`, with its line.
    pub fn servers(&self) -> impl Iterator<Item = (ServerRef, &ServerLayout)> + '_ {
        self.backends.iter().flat_map(|b| {
            b.servers
                .iter()
                .map(|s| (ServerRef::new(&b.name, &s.name), s))
        })
    }
}

impl ServerLayout {
    /// The layout of one server line.
    pub fn of(server: &Server) -> ServerLayout {
        ServerLayout {
            name: server.name.clone(),
            weight: server.weight_or_default(),
            disabled: server.disabled,
            check: server.check,
            addr: server.addr.clone(),
            on_marked_down_shutdown: server.on_marked_down_shutdown,
        }
    }
}
