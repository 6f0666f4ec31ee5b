//! The replicated state and its one change function.
//!
//! [`ClusterState`] is everything about a Shoal deployment that is not a
//! traffic counter: the running config (source text, its [`Layout`] and
//! this node's parsed model), each server's runtime state (weight, admin
//! state, operational state and the health reports behind it, maxconn and
//! address overrides, checks on or off) and the contents of the stick
//! tables. It is pure data in ordered
//! maps keyed by stable names, so it serialises the same way everywhere and
//! [`ClusterState::hash`] can compare two nodes.
//!
//! Every change is a [`Command`]: [`ClusterState::validate`] is the one
//! validation every surface uses, and [`ClusterState::apply`] is the one
//! place state changes. `apply` is deterministic (no clocks, randomness,
//! DNS or I/O; times travel in the command, and so does what the state
//! takes from a config, as a [`Layout`]: a node whose environment does not
//! load the text still applies it the same) and infallible for a command
//! that passed `validate`. It returns what the node must do besides
//! rebuilding its routing table ([`Effect`]s), so that the consequences of
//! a change follow from applying it, in one place.

mod apply;
pub mod certs;
#[cfg(test)]
mod certs_tests;
#[cfg(test)]
mod health_tests;
mod layout;
mod refusal;
mod tables;
#[cfg(test)]
mod tests;
mod validate;

pub use apply::verdict_detail;
pub use certs::{Certificate, Secret};
pub use layout::{BackendLayout, Layout, ServerLayout};
pub use refusal::Refusal;
pub use tables::{StickEntry, TableState};

use crate::command::{AdminState, Millis, NodeId, OpState, ServerRef};
use crate::config::{Config, EnvLookup, Server};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

/// The running config: what was loaded, what it means for the replicated
/// state, and what it says on this node.
///
/// Only `file`, `text` and `layout` are serialised (what Raft stores,
/// snapshots and [`ClusterState::hash`] compare, so equality looks at
/// nothing else). The text is the same on every node, but its `"${NAME}"`
/// references expand from each node's own environment, so the model may
/// differ from node to node, or not load at all on a node that lacks a
/// variable: then `local_error` says why, and the state (servers, tables:
/// the `layout`) is still the cluster's.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(from = "ConfigSource")]
pub struct LoadedConfig {
    /// The file name diagnostics use.
    pub file: String,
    /// The haproxy.cfg text as loaded, variables unexpanded.
    pub text: String,
    /// What the replicated state takes from the config, as computed by the
    /// node that proposed it.
    pub layout: Layout,
    /// The parsed model (a function of `text` and this node's
    /// environment), shared with the routing snapshots built from it. When
    /// the text does not load here: the model this node served before (an
    /// empty one when it had none).
    #[serde(skip_serializing)]
    pub model: Arc<Config>,
    /// Why `text` does not load on this node (every `FILE:LINE: message`),
    /// or `None` when `model` is its parse.
    #[serde(skip_serializing)]
    pub local_error: Option<String>,
}

impl PartialEq for LoadedConfig {
    /// The replicated part only: two nodes with different environments
    /// hold equal configs.
    fn eq(&self, other: &LoadedConfig) -> bool {
        (&self.file, &self.text, &self.layout) == (&other.file, &other.text, &other.layout)
    }
}

impl Eq for LoadedConfig {}

impl LoadedConfig {
    /// A replicated config as this node loads it: `text` parsed with `env`,
    /// or, when it does not load, `fallback` as the model and the reason
    /// in `local_error`.
    fn load(
        file: String,
        text: String,
        layout: Layout,
        env: EnvLookup<'_>,
        fallback: Arc<Config>,
    ) -> LoadedConfig {
        let (model, local_error) = match crate::config::parse_with_env(&text, &file, env) {
            Ok(parsed) => (Arc::new(parsed.config), None),
            Err(errors) => {
                let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
                (fallback, Some(errors.join("; ")))
            }
        };
        LoadedConfig {
            file,
            text,
            layout,
            model,
            local_error,
        }
    }
}

/// What is serialised of a [`LoadedConfig`].
#[derive(Deserialize)]
struct ConfigSource {
    file: String,
    text: String,
    layout: Layout,
}

impl From<ConfigSource> for LoadedConfig {
    /// Decoding never fails because of this node's environment: a text
    /// that does not load here gives an empty model and a `local_error`.
    fn from(source: ConfigSource) -> LoadedConfig {
        LoadedConfig::load(
            source.file,
            source.text,
            source.layout,
            &process_env,
            Arc::default(),
        )
    }
}

/// This process's environment variable `name` (a value that is not UTF-8
/// counts as unset, as in the parser).
fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// One node's last word on a server: what its own checks concluded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    pub up: bool,
    /// The check's description ("Layer4 connection problem, info:
    /// \"Connection refused\""); empty when the report carried none.
    pub reason: String,
    /// When the node saw it.
    pub at: Millis,
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
    /// The last report of each node that checks the server (a node that
    /// has not reported yet, or was forgotten, does not count).
    pub reports: BTreeMap<NodeId, HealthReport>,
    /// The health verdict derived from `reports` (UP until reports say DOWN).
    pub verdict_up: bool,
}

impl ServerStatus {
    /// The state of a server as the config file starts it (also what the
    /// routing gives a server this node's model has and the replicated
    /// state lacks).
    pub fn from_config(server: &Server, at: Millis) -> ServerStatus {
        ServerStatus::from_layout(&ServerLayout::of(server), at)
    }

    /// The state of a server as its layout starts it.
    fn from_layout(server: &ServerLayout, at: Millis) -> ServerStatus {
        ServerStatus {
            admin: if server.disabled {
                AdminState::Maint
            } else {
                AdminState::Ready
            },
            op: OpState::Up,
            weight: server.weight.min(256),
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
    /// The cluster's TLS certificates by name (`shoal cert add`), served
    /// by every `bind ... ssl` beside its `crt` files.
    certificates: BTreeMap<String, Certificate>,
}

/// What applying a command asks of the node besides storing the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// A new config is running: listeners, checks and sockets follow it.
    ConfigLoaded,
    /// The whole state was replaced by a backup's: the node follows it as
    /// after installing a snapshot (config, tables, pooled connections).
    Restored,
    /// End every session open on this server.
    ShutdownSessions(ServerRef),
    /// The server moved or left service: close its pooled idle connections.
    FlushConnections(ServerRef),
    /// Entries were removed from a stick table (`None`: all of them).
    TableCleared { table: String, key: Option<String> },
    /// A stick batch was stored: nodes other than its writer copy its
    /// accepted entries into their local tables, and every node makes its
    /// local table follow the replicated entry of a write that lost a
    /// conflict (`rejected`: indices into the batch's writes).
    StickStored { rejected: Vec<usize> },
    /// A proxy node was drained or made ready again.
    NodeDrained { node: NodeId, drained: bool },
    /// A certificate was added, replaced or removed: every TLS bind
    /// serves the new set from its next handshake.
    CertificatesChanged,
    /// The cluster's health verdict on a server changed: every node logs
    /// it once, saying who saw what (`detail`: "nodes 1 and 3 report
    /// DOWN, node 2 UP; rule majority").
    Verdict {
        server: ServerRef,
        up: bool,
        detail: String,
    },
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

    /// The cluster's certificates, by name.
    pub fn certificates(&self) -> &BTreeMap<String, Certificate> {
        &self.certificates
    }

    /// A copy without the certificates (and so without private keys):
    /// what a backup holds.
    pub fn without_certificates(&self) -> ClusterState {
        ClusterState {
            certificates: BTreeMap::new(),
            ..self.clone()
        }
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
            certificates: self.certificates.clone(),
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

    /// This node cannot load the running config (see
    /// [`LoadedConfig::local_error`]): serve `model`, what it served
    /// before, rather than what decoding or applying left (the replicated
    /// state is unchanged). Does nothing when the config loads here.
    pub fn keep_serving(&mut self, model: &Arc<Config>) {
        if self.config.local_error.is_some() && !Arc::ptr_eq(&self.config.model, model) {
            Arc::make_mut(&mut self.config).model = model.clone();
        }
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
