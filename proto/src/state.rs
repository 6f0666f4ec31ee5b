//! The replicated state and its one change function.
//!
//! [`ClusterState`] is everything about a Shoal deployment that is not a
//! traffic counter: the running config (source text and parsed model), each
//! server's runtime state (weight, admin state, operational state and the
//! health reports behind it, maxconn and address overrides, checks on or
//! off) and the contents of the stick tables. It is pure data in ordered
//! maps keyed by stable names, so it serialises the same way everywhere and
//! [`ClusterState::hash`] can compare two nodes.
//!
//! Every change is a [`Command`]: [`ClusterState::validate`] is the one
//! validation every surface uses, and [`ClusterState::apply`] is the one
//! place state changes. `apply` is deterministic (no clocks, randomness,
//! DNS or I/O; times travel in the command) and infallible for a command
//! that passed `validate`. It returns what the node must do besides
//! rebuilding its routing table ([`Effect`]s), so that the consequences of
//! a change follow from applying it, in one place.

mod apply;
mod refusal;
mod tables;
#[cfg(test)]
mod tests;
mod validate;

pub use refusal::Refusal;
pub use tables::{StickEntry, TableState};

use crate::command::{AdminState, Millis, NodeId, OpState, ServerRef};
use crate::config::{Config, Proxy, Server};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

/// The running config: what was loaded, and what it says.
///
/// Only `file` and `text` are serialised (what Raft stores, snapshots and
/// [`ClusterState::hash`] compare): the text is the same on every node, but
/// its `"${NAME}"` references expand from each node's own environment, so
/// the model may differ from node to node. Decoding parses the text again
/// on the decoding node, and fails if it does not load there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(try_from = "ConfigSource")]
pub struct LoadedConfig {
    /// The file name diagnostics use.
    pub file: String,
    /// The haproxy.cfg text as loaded, variables unexpanded.
    pub text: String,
    /// The parsed model (a function of `text` and this node's
    /// environment), shared with the routing snapshots built from it.
    #[serde(skip_serializing)]
    pub model: Arc<Config>,
}

/// What is serialised of a [`LoadedConfig`].
#[derive(Deserialize)]
struct ConfigSource {
    file: String,
    text: String,
}

impl TryFrom<ConfigSource> for LoadedConfig {
    type Error = String;

    fn try_from(source: ConfigSource) -> Result<Self, String> {
        let model = match crate::config::parse(&source.text, &source.file) {
            Ok(parsed) => parsed.config,
            // An empty model would serve nothing while the servers and
            // tables still name its proxies: refuse, and say why.
            Err(errors) => {
                let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
                return Err(format!(
                    "the replicated config does not load on this node: {}",
                    errors.join("; ")
                ));
            }
        };
        Ok(LoadedConfig {
            file: source.file,
            text: source.text,
            model: Arc::new(model),
        })
    }
}

/// One server's runtime state: what the config file does not say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerStatus {
    pub admin: AdminState,
    /// Effective operational state: the health verdict, or what an
    /// operator forced since the verdict last changed.
    pub op: OpState,
    /// Current weight (0..=256); starts at the configured weight.
    pub weight: u32,
    /// Health checks run (`enable|disable health`).
    pub check_enabled: bool,
    /// `set maxconn server` override of the configured `maxconn`.
    pub maxconn: Option<u32>,
    /// `set server addr` override of the configured address.
    pub addr: Option<SocketAddr>,
    /// When the admin or operational state last changed (`lastchg`).
    pub last_change: Millis,
    /// When the server last came back into service (from DOWN or
    /// maintenance); `slowstart` ramps from there. `None`: in service since
    /// it was loaded, which never ramps (HAProxy does not slow-start at boot).
    pub serving_since: Option<Millis>,
    /// The last report of each node that checks the server: up or down.
    pub reports: BTreeMap<NodeId, bool>,
    /// The health verdict derived from `reports` (UP until reports say DOWN).
    pub verdict_up: bool,
}

impl ServerStatus {
    /// The state of a server as the config file starts it.
    fn from_config(server: &Server, at: Millis) -> ServerStatus {
        ServerStatus {
            admin: if server.disabled {
                AdminState::Maint
            } else {
                AdminState::Ready
            },
            op: OpState::Up,
            weight: server.weight_or_default(),
            check_enabled: server.check,
            maxconn: None,
            addr: None,
            last_change: at,
            serving_since: None,
            reports: BTreeMap::new(),
            verdict_up: true,
        }
    }

    /// In service for `slowstart` purposes: not DOWN, not in maintenance.
    pub fn serving(&self) -> bool {
        self.op != OpState::Down && self.admin != AdminState::Maint
    }
}

/// The replicated state of a Shoal deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ClusterState {
    config: Arc<LoadedConfig>,
    servers: BTreeMap<ServerRef, ServerStatus>,
    tables: BTreeMap<String, TableState>,
    /// Proxy nodes an operator drained (`shoal node drain N`).
    drained: BTreeSet<NodeId>,
}

/// What applying a command asks of the node besides storing the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// A new config is running: listeners, checks and sockets follow it.
    ConfigLoaded,
    /// End every session open on this server.
    ShutdownSessions(ServerRef),
    /// The server moved or left service: close its pooled idle connections.
    FlushConnections(ServerRef),
    /// Entries were removed from a stick table (`None`: all of them).
    TableCleared { table: String, key: Option<String> },
    /// A stick batch was stored: nodes other than its writer copy its
    /// entries into their local tables.
    StickStored,
    /// A proxy node was drained or made ready again.
    NodeDrained { node: NodeId, drained: bool },
}

/// The outcome of [`ClusterState::apply`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// The routing table must be rebuilt (config or server state changed).
    pub routing: bool,
    pub effects: Vec<Effect>,
}

impl ClusterState {
    /// The running config.
    pub fn config(&self) -> &Arc<LoadedConfig> {
        &self.config
    }

    /// Every server's state, by `backend/server`.
    pub fn servers(&self) -> &BTreeMap<ServerRef, ServerStatus> {
        &self.servers
    }

    /// One server's state.
    pub fn server(&self, server: &ServerRef) -> Option<&ServerStatus> {
        self.servers.get(server)
    }

    /// Stick-table contents, by the name of the proxy that declares them.
    pub fn tables(&self) -> &BTreeMap<String, TableState> {
        &self.tables
    }

    /// Whether proxy node `node` is drained.
    pub fn is_drained(&self, node: NodeId) -> bool {
        self.drained.contains(&node)
    }

    /// A copy of the config and server states without the stick-table
    /// contents (cheap even when tables are large): what a trial reload
    /// needs.
    pub fn without_tables(&self) -> ClusterState {
        ClusterState {
            config: self.config.clone(),
            servers: self.servers.clone(),
            tables: self
                .tables
                .iter()
                .map(|(name, t)| (name.clone(), TableState::new(t.def.clone())))
                .collect(),
            drained: self.drained.clone(),
        }
    }

    /// Validate, then apply: what every surface does with a command.
    pub fn execute(&mut self, command: &crate::command::Command) -> Result<Applied, Refusal> {
        self.validate(command)?;
        Ok(self.apply(command))
    }

    /// A hash of the whole state, stable across processes, builds and
    /// machines (FNV-1a over the canonical encoding), to compare nodes.
    pub fn hash(&self) -> u64 {
        let bytes = crate::codec::encode(self).unwrap_or_default();
        fnv1a(&bytes)
    }

    /// The backend (or listen) called `name` in the running config.
    pub fn backend(&self, name: &str) -> Option<&Proxy> {
        self.config
            .model
            .proxies
            .iter()
            .find(|p| p.kind.is_backend() && p.name == name)
    }

    /// A server's line in the running config.
    pub fn server_config(&self, server: &ServerRef) -> Option<&Server> {
        self.backend(&server.backend)?
            .servers
            .iter()
            .find(|s| s.name == server.server)
    }
}

/// 64-bit FNV-1a: tiny, and stable forever (unlike std's hashers).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}
