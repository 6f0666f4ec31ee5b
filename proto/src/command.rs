//! The one vocabulary for change.
//!
//! The runtime socket, the admin HTTP API, the CLI and (later) the Raft log
//! all turn what they are asked into [`Command`]s, and the node's
//! `Runtime::apply` is the only place server state changes. Commands carry
//! everything they need (no clocks, no lookups), so applying one is
//! deterministic.

use serde::{Deserialize, Serialize};

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

/// Operational state, from health checks or forced by an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpState {
    Up,
    Down,
    /// `set server B/S health stopping`: up, but takes no new traffic.
    Stopping,
}

/// `backend/server`, as HAProxy's runtime API names a server.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServerRef {
    pub backend: String,
    pub server: String,
}

impl ServerRef {
    /// Parse `BACKEND/SERVER`.
    pub fn parse(text: &str) -> Option<ServerRef> {
        let (backend, server) = text.split_once('/')?;
        if backend.is_empty() || server.is_empty() || server.contains('/') {
            return None;
        }
        Some(ServerRef {
            backend: backend.to_string(),
            server: server.to_string(),
        })
    }
}

impl std::fmt::Display for ServerRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.backend, self.server)
    }
}

/// A change to server state. Each variant is one runtime-API verb.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// `set weight B/S N` / `set server B/S weight N` (absolute, 0..=256).
    SetWeight { server: ServerRef, weight: u32 },
    /// `set server B/S state ready|drain|maint`, `enable|disable server`.
    SetAdminState {
        server: ServerRef,
        state: AdminState,
    },
    /// `set server B/S health up|down|stopping`, and a health check's
    /// verdict (the health path).
    SetOpState { server: ServerRef, state: OpState },
    /// `enable|disable health B/S`: run or pause the server's checks.
    SetCheckEnabled { server: ServerRef, enabled: bool },
    /// `set server B/S addr ADDR [port PORT]`.
    SetAddr {
        server: ServerRef,
        addr: String,
        port: Option<u16>,
    },
    /// `set maxconn server B/S N` (0 = unlimited).
    SetMaxconn { server: ServerRef, maxconn: u32 },
    /// `clear table NAME [key K]`.
    ClearTable { table: String, key: Option<String> },
}

impl Command {
    /// The server a command is about, if any.
    pub fn server(&self) -> Option<&ServerRef> {
        match self {
            Command::SetWeight { server, .. }
            | Command::SetAdminState { server, .. }
            | Command::SetOpState { server, .. }
            | Command::SetCheckEnabled { server, .. }
            | Command::SetAddr { server, .. }
            | Command::SetMaxconn { server, .. } => Some(server),
            Command::ClearTable { .. } => None,
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
