//! Server commands: `get weight`, `set weight`, `set server`,
//! `enable|disable server|health|agent`, `set maxconn server` and
//! `shutdown sessions server`. Every change is a [`Command`] submitted
//! through [`Runtime::submit`], which validates it the way every surface
//! does; answers are worded as HAProxy 2.6's.

use super::commands::{need, Session};
use crate::routing::{AdminState, BackendRt, OpState, ServerRt, Snapshot};
use crate::runtime::{now_ms, Runtime};
use shoal_proto::command::{Command, ServerRef};
use shoal_proto::config::StatsLevel;
use std::net::IpAddr;

type Answer = Result<String, String>;

const REQUIRE: &str = "Require 'backend/server'.\n";

/// Look up `BACKEND/SERVER` as HAProxy's `cli_find_server` does.
fn find<'a>(
    snap: &'a Snapshot,
    arg: Option<&&str>,
) -> Result<(&'a BackendRt, &'a ServerRt, ServerRef), String> {
    let (b, s) = arg
        .and_then(|a| a.split_once('/'))
        .ok_or_else(|| REQUIRE.to_string())?;
    let backend = snap
        .backend(b)
        .ok_or_else(|| "No such backend.\n".to_string())?;
    let server = backend
        .servers
        .iter()
        .find(|x| &*x.name == s)
        .ok_or_else(|| "No such server.\n".to_string())?;
    let r = ServerRef {
        backend: b.to_string(),
        server: s.to_string(),
    };
    Ok((backend, server, r))
}

/// Make the change (through the cluster when there is one) and answer as
/// HAProxy does: nothing on success, the reason on a refusal.
async fn apply(runtime: &Runtime, command: Command) -> Answer {
    runtime
        .change(&command)
        .await
        .map(|()| String::new())
        .map_err(|e| format!("{e}\n"))
}

/// C's `strtol`: an optional sign and digits, and the rest of the text.
fn strtol(text: &str) -> Option<(i64, &str)> {
    let sign = usize::from(text.starts_with(['-', '+']));
    let digits = text[sign..].bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let end = sign + digits;
    let n = text[..end].parse::<i64>().unwrap_or(i64::MAX);
    Some((n, &text[end..]))
}

/// HAProxy's `server_parse_weight_change_request` (the text part; the
/// state machine checks the value, e.g. against a static algorithm).
fn parse_weight(s: &ServerRt, text: Option<&&str>) -> Answer {
    let text = text
        .filter(|t| !t.is_empty())
        .ok_or("Require <weight> or <weight%>.\n")?;
    let (w, rest) = strtol(text).ok_or("Empty weight string empty or preceded by garbage\n")?;
    let initial = i64::from(s.config_weight);
    let w = if rest == "%" {
        if w < 0 {
            return Err("Relative weight must be positive.\n".into());
        }
        (initial * w.min(25_600) / 100).min(256)
    } else if !(0..=256).contains(&w) {
        return Err("Absolute weight can only be between 0 and 256 inclusive.\n".into());
    } else if !rest.is_empty() {
        return Err("Trailing garbage in weight string\n".into());
    } else {
        w
    };
    Ok(w.to_string())
}

fn weight_command(snap: &Snapshot, args: &[&str], at: usize) -> Result<Command, String> {
    let (_, s, server) = find(snap, args.first())?;
    let w = parse_weight(s, args.get(at))?;
    Ok(Command::SetWeight {
        server,
        weight: w.parse().unwrap_or(0),
    })
}

/// `get weight B/S`: `N (initial M)`.
pub fn get_weight(runtime: &Runtime, args: &[&str]) -> Answer {
    let snap = runtime.snapshot();
    let (_, s, _) = find(&snap, args.first())?;
    Ok(format!(
        "{} (initial {})\n",
        s.state.weight, s.config_weight
    ))
}

/// `set weight B/S N|N%`.
pub async fn set_weight(runtime: &Runtime, session: &Session, args: &[&str]) -> Answer {
    need(session, StatsLevel::Admin)?;
    let command = weight_command(&runtime.snapshot(), args, 1)?;
    apply(runtime, command).await
}

const SET_SERVER_USAGE: &str = "usage: set server <backend>/<server> addr | agent | agent-addr | agent-port | agent-send | check-addr | check-port | fqdn | health | ssl | state | weight\n";

/// `set server B/S weight|state|health|addr|agent... ...`.
pub async fn set_server(runtime: &Runtime, session: &Session, args: &[&str]) -> Answer {
    need(session, StatsLevel::Admin)?;
    let snap = runtime.snapshot();
    let (_, s, server) = find(&snap, args.first())?;
    let rest = args.get(1..).unwrap_or_default();
    let command = match rest {
        ["weight", ..] => weight_command(&snap, args, 2)?,
        ["state", word, ..] => {
            let state = match *word {
                "ready" => AdminState::Ready,
                "drain" => AdminState::Drain,
                "maint" => AdminState::Maint,
                _ => return Err(STATE_USAGE.into()),
            };
            Command::SetAdminState {
                server,
                state,
                at: now_ms(),
            }
        }
        ["state"] => return Err(STATE_USAGE.into()),
        ["health", word, ..] => {
            let state = match *word {
                "up" => OpState::Up,
                "stopping" => OpState::Stopping,
                "down" => OpState::Down,
                _ => return Err(HEALTH_USAGE.into()),
            };
            Command::SetHealth {
                server,
                state,
                at: now_ms(),
            }
        }
        ["health"] => return Err(HEALTH_USAGE.into()),
        ["agent" | "agent-send", ..] => {
            return Err("agent checks are not enabled on this server.\n".into())
        }
        ["agent-addr" | "agent-port", ..] => {
            return Err("agent checks are not enabled on this server\n".into())
        }
        ["check-addr" | "check-port", ..] => {
            let configured = snap
                .config
                .proxies
                .iter()
                .find(|p| p.kind.is_backend() && p.name == server.backend)
                .and_then(|p| p.servers.iter().find(|x| x.name == server.server))
                .is_some_and(|x| x.check);
            return Err(if configured {
                "Shoal cannot change a check address or port at run time.\n"
            } else {
                "health checks are not enabled on this server\n"
            }
            .into());
        }
        ["fqdn", ..] => {
            return Err(
                "set server <b>/<s> fqdn failed because no resolution is configured.\n".into(),
            )
        }
        ["ssl", ..] => return Err("'set server <srv> ssl' is not supported by Shoal.\n".into()),
        ["addr", addr_args @ ..] => return set_addr(runtime, s, server, addr_args).await,
        _ => return Err(SET_SERVER_USAGE.into()),
    };
    apply(runtime, command).await
}

const STATE_USAGE: &str = "'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n";
const HEALTH_USAGE: &str = "'set server <srv> health' expects 'up', 'stopping', or 'down'.\n";

/// `set server B/S addr IP [port P]`, answered as HAProxy reports the change.
async fn set_addr(runtime: &Runtime, s: &ServerRt, server: ServerRef, args: &[&str]) -> Answer {
    const BY: &str = " by 'stats socket command'\n";
    let text = args
        .first()
        .ok_or("set server <b>/<s> addr requires an address and optionally a port.\n")?;
    let bare = text.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = bare
        .parse()
        .map_err(|_| format!("Invalid addr '{text}'{BY}"))?;
    let old = s.addr;
    let mut parts = vec![if ip == old.ip() {
        "no need to change the addr".to_string()
    } else {
        format!("IP changed from '{}' to '{ip}'", old.ip())
    }];
    // Without a port the state machine keeps the port in use.
    let mut port = None;
    if args.get(1) == Some(&"port") {
        let p = args.get(2).copied().unwrap_or("");
        match p.parse::<u16>() {
            Ok(n) if n == old.port() => parts.push("no need to change the port".into()),
            Ok(n) => {
                port = Some(n);
                parts.push(format!("port changed from '{}' to '{n}'", old.port()));
            }
            Err(_) => parts.push(format!("problem converting port '{p}' to an int")),
        }
    }
    apply(runtime, Command::SetAddr { server, ip, port }).await?;
    Ok(format!("{}{BY}", parts.join(", ")))
}

/// `enable|disable server|health|agent B/S`.
pub async fn toggle(
    runtime: &Runtime,
    session: &Session,
    enable: bool,
    what: &str,
    args: &[&str],
) -> Answer {
    need(session, StatsLevel::Admin)?;
    let snap = runtime.snapshot();
    let (_, _, server) = find(&snap, args.first())?;
    let command = match what {
        "server" => Command::SetAdminState {
            server,
            state: if enable {
                AdminState::Ready
            } else {
                AdminState::Maint
            },
            at: now_ms(),
        },
        "health" => Command::SetCheckEnabled {
            server,
            enabled: enable,
        },
        // Shoal has no agent checks: HAProxy's answers for a server without one.
        _ if enable => {
            return Err("Agent was not configured on this server, cannot enable.\n".into())
        }
        _ => return Ok(String::new()),
    };
    apply(runtime, command).await
}

/// `set maxconn server B/S N` (0: no limit).
pub async fn set_maxconn(runtime: &Runtime, session: &Session, args: &[&str]) -> Answer {
    need(session, StatsLevel::Admin)?;
    let snap = runtime.snapshot();
    let (_, _, server) = find(&snap, args.first())?;
    let text = args
        .get(1)
        .filter(|t| !t.is_empty())
        .ok_or("Require <maxconn>.\n")?;
    let (n, rest) = strtol(text).ok_or("maxconn string empty or preceded by garbage\n")?;
    if !rest.is_empty() {
        return Err("Trailing garbage in maxconn string\n".into());
    }
    let maxconn = u32::try_from(n).map_err(|_| "Value out of range.\n".to_string())?;
    apply(runtime, Command::SetMaxconn { server, maxconn }).await
}

/// `shutdown sessions server B/S`: end every session on the server.
pub async fn shutdown(runtime: &Runtime, session: &Session, args: &[&str]) -> Answer {
    need(session, StatsLevel::Admin)?;
    let snap = runtime.snapshot();
    let (_, _, server) = find(&snap, args.first())?;
    apply(runtime, Command::ShutdownSessions { server }).await
}
