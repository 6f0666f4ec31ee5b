//! Admin actions posted from the stats page, each turned into a
//! [`Command`] submitted through `Runtime::submit`.
//!
//! The form follows HAProxy's: `b=BACKEND`, one or more `s=SERVER`,
//! `action=ready|drain|maint|hrunn|hnolb|hdown|ehlth|dhlth|shutdown`, plus
//! Shoal's `action=weight` with `weight=N`. The outcome is reported back
//! with HAProxy's `;st=` codes.

use super::form;
use crate::routing::{AdminState, OpState};
use crate::runtime::Runtime;
use shoal_proto::command::{Command, ServerRef};

/// HAProxy's result codes for the `;st=` suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every action was applied.
    Done,
    /// Some were applied, some refused.
    Partial,
    /// Nothing selected.
    None,
    /// Bad parameters (unknown backend, bad weight).
    BadParams,
    /// Admin actions are not allowed for this request.
    Denied,
    /// Unknown action.
    Unknown,
}

impl Outcome {
    /// The code written after `;st=`.
    pub fn code(self) -> &'static str {
        match self {
            Outcome::Done => "DONE",
            Outcome::Partial => "PART",
            Outcome::None => "NONE",
            Outcome::BadParams => "ERRP",
            Outcome::Denied => "DENY",
            Outcome::Unknown => "UNKN",
        }
    }

    /// The code from a `;st=` suffix, and the message the page shows.
    pub fn message(code: &str) -> Option<(bool, &'static str)> {
        Some(match code {
            "DONE" => (true, "Action processed successfully."),
            "PART" => (false, "Action partially processed."),
            "NONE" => (false, "Nothing has changed."),
            "ERRP" => (false, "Action not processed because of invalid parameters."),
            "DENY" => (false, "Action denied."),
            "UNKN" => (false, "Unexpected result."),
            _ => return None,
        })
    }
}

/// Apply the actions of a posted form body.
pub async fn apply(runtime: &Runtime, body: &str) -> Outcome {
    let pairs = form::pairs(body);
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let (Some(backend), Some(action)) = (get("b"), get("action")) else {
        return Outcome::BadParams;
    };
    let servers: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "s")
        .map(|(_, v)| v.as_str())
        .collect();
    if servers.is_empty() {
        return Outcome::None;
    }
    if runtime.snapshot().backend(backend).is_none() {
        return Outcome::BadParams;
    }
    let weight = match (action, get("weight").map(|w| w.trim().parse::<u32>())) {
        ("weight", Some(Ok(w))) if w <= 256 => Some(w),
        ("weight", _) => return Outcome::BadParams,
        _ => None,
    };
    let mut applied = 0;
    for name in &servers {
        let server = ServerRef {
            backend: backend.to_string(),
            server: name.to_string(),
        };
        let command = match (action, weight) {
            (_, Some(weight)) => Command::SetWeight { server, weight },
            ("ready", _) => admin(server, AdminState::Ready),
            ("drain", _) => admin(server, AdminState::Drain),
            ("maint", _) => admin(server, AdminState::Maint),
            ("hrunn", _) => health(server, OpState::Up),
            ("hnolb", _) => health(server, OpState::Stopping),
            ("hdown", _) => health(server, OpState::Down),
            ("ehlth", _) => Command::SetCheckEnabled {
                server,
                enabled: true,
            },
            ("dhlth", _) => Command::SetCheckEnabled {
                server,
                enabled: false,
            },
            ("shutdown", _) => Command::ShutdownSessions { server },
            _ => return Outcome::Unknown,
        };
        if runtime.change(&command).await.is_ok() {
            applied += 1;
        }
    }
    match applied {
        0 => Outcome::BadParams,
        n if n == servers.len() => Outcome::Done,
        _ => Outcome::Partial,
    }
}

fn admin(server: ServerRef, state: AdminState) -> Command {
    Command::SetAdminState {
        server,
        state,
        at: crate::runtime::now_ms(),
    }
}

fn health(server: ServerRef, state: OpState) -> Command {
    Command::SetHealth {
        server,
        state,
        at: crate::runtime::now_ms(),
    }
}
