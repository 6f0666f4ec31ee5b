//! `set table <table> key <key> [data.<type> <value>]*`: write one stick
//! entry by hand, exactly as a request's `stick on` does: the node's local
//! table at once, and the replication queue (so every node of a cluster
//! gets it with the next batch). Nothing waits on the cluster: the answer
//! comes as soon as the local table has the entry.
//!
//! Shoal's tables store one data type, `server_id` (HAProxy's server id,
//! the server's position in the backend that declares the table). The
//! errors are HAProxy 2.6's, checked in the same order. Where HAProxy
//! stores something Shoal cannot (an entry that names no server), the
//! command is refused and changes nothing; HAProxy would keep such an
//! entry, which sends nothing anywhere.

use super::commands::{need, Session};
use crate::runtime::Runtime;
use shoal_proto::config::StatsLevel;

type Answer = Result<String, String>;

const USAGE: &str = "Required arguments: <table> key <key> [data.<store_data_type> <value>]*\n";
const NOT_STORED: &str = "Data type not stored in this table\n";
const BAD_VALUE: &str = "Require a valid integer value to store\n";
const NO_SERVER_YET: &str =
    "Shoal keeps only entries that name a server: add data.server_id <id>.\n";

/// `set table NAME key K [data.server_id ID]` (operator level).
pub fn set_table(runtime: &Runtime, session: &Session, args: &[&str]) -> Answer {
    let Some(name) = args.first() else {
        return Err(USAGE.into());
    };
    let snap = runtime.snapshot();
    let table = snap.tables.get(*name).ok_or("No such table\n")?;
    let text =
        match &args[1..] {
            ["key", key, ..] => *key,
            ["key"] => return Err("Key value expected\n".into()),
            [d, ..] if d.starts_with("data.") => return Err(
                "content-based lookup is only supported with the \"show\" and \"clear\" actions\n"
                    .into(),
            ),
            // HAProxy answers nothing to a bare `set table NAME` (and does
            // nothing); Shoal says what is missing.
            _ => return Err(USAGE.into()),
        };
    let key = table.parse_key(text).ok_or("Invalid key\n")?;
    need(session, StatsLevel::Operator)?;
    let server_id = server_id_of(&args[3..])?;
    let servers = snap.backend(name).map(|b| &b.servers[..]).unwrap_or(&[]);
    let id = match server_id {
        Some(id) => id,
        // A bare key refreshes an entry that exists (HAProxy touches its
        // expiry); Shoal cannot create one that names no server.
        None => match table.lookup(&key) {
            Some(server) => servers
                .iter()
                .position(|s| s.name == server)
                .map_or(0, |i| i as i64 + 1),
            None => return Err(NO_SERVER_YET.into()),
        },
    };
    let server = usize::try_from(id)
        .ok()
        .and_then(|id| id.checked_sub(1))
        .and_then(|i| servers.get(i))
        .ok_or_else(|| format!("No such server: backend '{name}' has no server with id {id}.\n"))?;
    table.store(&key, &server.name, id as usize);
    Ok(String::new())
}

/// The `data.<type> <value>` pairs: the last `server_id` given, if any.
fn server_id_of(pairs: &[&str]) -> Result<Option<i64>, String> {
    let mut id = None;
    for pair in pairs.chunks(2) {
        let Some(kind) = pair[0].strip_prefix("data.") else {
            return Err("\"data.<type>\" followed by a value expected\n".into());
        };
        if !shoal_proto::config::is_data_type(kind) {
            return Err("Unknown data type\n".into());
        }
        // HAProxy's tables for `stick on` also keep `server_key`, which it
        // reads as a number here (and then ignores); Shoal keeps neither
        // it nor any other type but `server_id`.
        if kind != "server_id" && kind != "server_key" {
            return Err(NOT_STORED.into());
        }
        let value = pair.get(1).and_then(|v| integer(v)).ok_or(BAD_VALUE)?;
        if kind == "server_key" {
            return Err(NOT_STORED.into());
        }
        id = Some(value);
    }
    Ok(id)
}

/// A signed decimal integer as HAProxy's `strl2llrc` reads it (an optional
/// `-`, then digits only).
fn integer(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}
