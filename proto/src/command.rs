//! The one vocabulary for change.
//!
//! The config file (a reload), the runtime socket, the admin HTTP API, the
//! stats page, the health checker, the stick-table batcher and (later) the
//! Raft log all turn what they are asked into [`Command`]s, and
//! [`crate::state::ClusterState::apply`] is the only place state changes.
//! A command carries everything it needs — times travel inside it (`at`),
//! addresses arrive resolved — so applying one is deterministic: the same
//! commands in the same order give the same state on every node.
//!
//! Compatibility rule: commands are stored in the Raft log and in
//! snapshots. Add variants and fields only at the end, never reorder or
//! reuse them, so that an older log still decodes.

use crate::config::EnvLookup;
use crate::state::{Layout, Refusal};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::IpAddr;

/// A node of the cluster. A standalone node is node 0.
pub type NodeId = u64;

/// Milliseconds since the Unix epoch, as carried by commands.
pub type Millis = u64;

/// Administrative state, set by operators (`set server B/S state ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminState {
    /// Takes traffic.
    Ready,
    /// No new traffic except persistent sessions; existing ones finish.
    Drain,
    /// No traffic at all.
    Maint,
}

impl AdminState {
    /// HAProxy's word for the state (`ready`, `drain`, `maint`).
    pub fn word(self) -> &'static str {
        match self {
            AdminState::Ready => "ready",
            AdminState::Drain => "drain",
            AdminState::Maint => "maint",
        }
    }
}

/// Operational state: the health verdict, or what an operator forced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpState {
    Up,
    Down,
    /// `set server B/S health stopping`: up, but takes no new traffic.
    Stopping,
}

/// `backend/server`, as HAProxy's runtime API names a server. The same on
/// every node, so it is the server's stable identity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServerRef {
    pub backend: String,
    pub server: String,
}

impl ServerRef {
    /// A reference from its two names.
    pub fn new(backend: impl Into<String>, server: impl Into<String>) -> ServerRef {
        ServerRef {
            backend: backend.into(),
            server: server.into(),
        }
    }

    /// Parse `BACKEND/SERVER`.
    pub fn parse(text: &str) -> Option<ServerRef> {
        let (backend, server) = text.split_once('/')?;
        if backend.is_empty() || server.is_empty() || server.contains('/') {
            return None;
        }
        Some(ServerRef::new(backend, server))
    }
}

impl std::fmt::Display for ServerRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.backend, self.server)
    }
}

/// One stick-table entry written by the data plane: `key` now sticks to
/// `server` (a server name of the backend that uses the table).
///
/// `prev` is what the writing node believed the key stuck to before (its
/// live local entry; `None` for a new key). Applying the write checks it
/// against the replicated entry, so that when two nodes stick one key to
/// different servers within a batch window the first in log order wins
/// (see [`crate::state::TableState`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StickWrite {
    pub table: String,
    pub key: String,
    pub server: String,
    pub prev: Option<String>,
}

/// A change to the replicated state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Replace the running config (a reload, `shoal config apply`).
    /// Servers and stick tables that stay keep their state. Build it with
    /// [`Command::load_config`], which parses the text and fills `layout`.
    LoadConfig {
        /// The file name diagnostics use.
        file: String,
        /// The whole haproxy.cfg text.
        text: String,
        at: Millis,
        /// What the replicated state takes from the config, as parsed by
        /// the node that built the command: every node applies it the
        /// same, even one whose environment does not load the text.
        layout: Layout,
    },
    /// `set weight B/S N` / `set server B/S weight N` (absolute, 0..=256).
    SetWeight { server: ServerRef, weight: u32 },
    /// `set server B/S state ready|drain|maint`, `enable|disable server`.
    SetAdminState {
        server: ServerRef,
        state: AdminState,
        at: Millis,
    },
    /// `set server B/S health up|down|stopping`: an operator forces the
    /// operational state until the health verdict next changes.
    SetHealth {
        server: ServerRef,
        state: OpState,
        at: Millis,
    },
    /// A node's health checks saw the server go up or down, without a
    /// reason: kept so that older logs decode; nodes now propose
    /// [`Command::ReportObservation`].
    ReportHealth {
        server: ServerRef,
        node: NodeId,
        up: bool,
        at: Millis,
    },
    /// `enable|disable health B/S`: run or pause the server's checks.
    SetCheckEnabled { server: ServerRef, enabled: bool },
    /// `set server B/S addr IP [port PORT]`. Without a port the server
    /// keeps the port it has.
    SetAddr {
        server: ServerRef,
        ip: IpAddr,
        port: Option<u16>,
    },
    /// `set maxconn server B/S N` (0 = unlimited).
    SetMaxconn { server: ServerRef, maxconn: u32 },
    /// `shutdown sessions server B/S`: end every session on the server.
    ShutdownSessions { server: ServerRef },
    /// Stick-table entries written by `node`'s data plane since its last
    /// batch, all stamped `at`. Applying a batch also expires entries older
    /// than each table's `expire` as of `at` (an empty batch only expires).
    StickBatch {
        node: NodeId,
        at: Millis,
        writes: Vec<StickWrite>,
    },
    /// `clear table NAME [key K]`.
    ClearTable { table: String, key: Option<String> },
    /// `shoal node drain|ready N`: a drained proxy node accepts no new
    /// connections and its `/ready` answers 503, so that a VIP or DNS
    /// health check moves clients to the other nodes.
    SetNodeDrained { node: NodeId, drained: bool },
    /// A node's own checks concluded the server is up or down (on a
    /// transition, or the first time it knows), and why: the check's
    /// description. Supersedes `ReportHealth`, which carries no reason.
    ReportObservation {
        server: ServerRef,
        node: NodeId,
        up: bool,
        reason: String,
        at: Millis,
    },
    /// `node` left the membership: its health reports stop counting and
    /// every verdict is derived again without them (proposed by the leader
    /// after a removal, so that apply never reads Raft's membership).
    ForgetNode { node: NodeId, at: Millis },
    /// A restore as builds before [`Command::Restore`] wrote it (the
    /// health reports of non-members were forgotten by separate
    /// `ForgetNode`s after it). Kept at its place so that the variants
    /// after it keep their codec positions, and applied as a `Restore`
    /// that forgets nobody. (Logs of those builds do not decode anyway:
    /// the state gained certificates and server `proto` since.)
    RestoreState {
        state: Box<crate::state::ClusterState>,
    },
    /// `shoal cluster restore FILE`: replace the whole replicated state
    /// (config, server states, health reports, stick tables, drained
    /// nodes) with a backup's, then forget the health reports of the
    /// nodes in `forget` (node ids that are not members of the cluster
    /// restored into), as `ForgetNode` does, in the same step: no node
    /// ever routes by the backup's verdicts with strangers' reports in
    /// them. Build it with [`Command::restore`].
    Restore {
        state: Box<crate::state::ClusterState>,
        forget: BTreeSet<NodeId>,
        at: Millis,
    },
    /// `shoal cert add FILE [--name NAME]`: store a certificate and its
    /// key under `name` (replacing one of that name, as HAProxy's
    /// `set ssl cert` + `commit ssl cert` does). Built by the node that
    /// parsed and checked the PEM; its `Debug` hides the key.
    AddCertificate {
        name: String,
        certificate: Box<crate::state::Certificate>,
    },
    /// `shoal cert remove NAME`.
    RemoveCertificate { name: String },
}

impl Command {
    /// A `LoadConfig` of `text` (the contents of `file`), parsed here with
    /// this process's environment; a text that does not load is refused
    /// with every `FILE:LINE: message`. What every surface that loads a
    /// config calls.
    pub fn load_config(file: &str, text: &str, at: Millis) -> Result<Command, Refusal> {
        let parsed = crate::config::parse(text, file).map_err(Refusal::Config)?;
        Ok(Command::loaded(file, text, at, &parsed.config))
    }

    /// [`Command::load_config`], with `"${NAME}"` looked up in `env` (a
    /// test plays a node with another environment).
    pub fn load_config_with_env(
        file: &str,
        text: &str,
        at: Millis,
        env: EnvLookup<'_>,
    ) -> Result<Command, Refusal> {
        let parsed = crate::config::parse_with_env(text, file, env).map_err(Refusal::Config)?;
        Ok(Command::loaded(file, text, at, &parsed.config))
    }

    /// A `Restore` of `state` (decoded from a backup here, so its config
    /// was parsed with this process's environment) that forgets the
    /// reports of `forget`: refused when that config does not load here,
    /// with its errors, as `LoadConfig` is.
    pub fn restore(
        state: crate::state::ClusterState,
        forget: BTreeSet<NodeId>,
        at: Millis,
    ) -> Result<Command, Refusal> {
        if let Some(why) = &state.config().local_error {
            return Err(Refusal::Restore(format!(
                "its configuration does not load on this node: {why}"
            )));
        }
        Ok(Command::Restore {
            state: Box::new(state),
            forget,
            at,
        })
    }

    /// The `LoadConfig` of a text and its parse.
    fn loaded(file: &str, text: &str, at: Millis, config: &crate::config::Config) -> Command {
        Command::LoadConfig {
            file: file.to_string(),
            text: text.to_string(),
            at,
            layout: Layout::of(config),
        }
    }

    /// The server a command is about, if any.
    pub fn server(&self) -> Option<&ServerRef> {
        match self {
            Command::SetWeight { server, .. }
            | Command::SetAdminState { server, .. }
            | Command::SetHealth { server, .. }
            | Command::ReportHealth { server, .. }
            | Command::ReportObservation { server, .. }
            | Command::SetCheckEnabled { server, .. }
            | Command::SetAddr { server, .. }
            | Command::SetMaxconn { server, .. }
            | Command::ShutdownSessions { server } => Some(server),
            Command::LoadConfig { .. }
            | Command::StickBatch { .. }
            | Command::ClearTable { .. }
            | Command::SetNodeDrained { .. }
            | Command::ForgetNode { .. }
            | Command::RestoreState { .. }
            | Command::Restore { .. }
            | Command::AddCertificate { .. }
            | Command::RemoveCertificate { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_refs() {
        let r = ServerRef::parse("web/s1").expect("valid");
        assert_eq!(r.to_string(), "web/s1");
        for bad in ["web", "/s1", "web/", "a/b/c", ""] {
            assert!(ServerRef::parse(bad).is_none(), "{bad}");
        }
    }
}
