//! The command table: which verb runs what, at which level, and HAProxy's
//! help and "Unknown command" answers.

use super::{servers, show};
use crate::runtime::Runtime;
use shoal_proto::config::StatsLevel;
use std::time::Duration;

/// The state of one CLI connection.
#[derive(Debug, Clone)]
pub struct Session {
    pub level: StatsLevel,
    /// `prompt` mode: keep the connection, print `> ` after each answer.
    pub interactive: bool,
    /// Idle limit (`stats timeout`, `set timeout cli`).
    pub timeout: Duration,
}

/// What the connection does after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// `quit`: close now, print nothing more.
    Quit,
}

/// HAProxy's answer to a command a level may not run.
pub const DENIED: &str = "Permission denied\n";

/// Numeric rank of a level (user < operator < admin).
pub fn rank(level: StatsLevel) -> u8 {
    match level {
        StatsLevel::User => 0,
        StatsLevel::Operator => 1,
        StatsLevel::Admin => 2,
    }
}

/// `Err(DENIED)` unless the session has at least `level`.
pub fn need(session: &Session, level: StatsLevel) -> Result<(), String> {
    if rank(session.level) >= rank(level) {
        Ok(())
    } else {
        Err(DENIED.to_string())
    }
}

/// The commands Shoal answers, as HAProxy 2.6's help lists them.
const HELP: &[(&str, &str)] = &[
    (
        "clear table <table> [<filter>]*",
        "remove an entry from a table (filter: data/key)",
    ),
    ("disable agent", "disable agent checks"),
    ("disable health", "disable health checks"),
    (
        "disable server (DEPRECATED)",
        "disable a server for maintenance (use 'set server' instead)",
    ),
    ("enable agent", "enable agent checks"),
    ("enable health", "enable health checks"),
    (
        "enable server  (DEPRECATED)",
        "enable a disabled server (use 'set server' instead)",
    ),
    ("get weight <bk>/<srv>", "report a server's current weight"),
    (
        "operator",
        "lower the level of the current CLI session to operator",
    ),
    (
        "set maxconn server <bk>/<srv>",
        "change a server's maxconn setting",
    ),
    (
        "set server <bk>/<srv> [opts]",
        "change a server's state, weight or address",
    ),
    (
        "set table <table> key <k> [data.* <v>]*",
        "update or create a table entry's data",
    ),
    ("set timeout [cli] <delay>", "change a timeout setting"),
    (
        "set weight <bk>/<srv>  (DEPRECATED)",
        "change a server's weight (use 'set server' instead)",
    ),
    (
        "show backend",
        "list backends in the current running config",
    ),
    (
        "show cli level",
        "display the level of the current CLI session",
    ),
    (
        "show cluster health",
        "every node's health report per server, the verdict and its rule (Shoal)",
    ),
    ("show info", "report information about the running process"),
    (
        "show servers state [<backend>]",
        "dump volatile server information (all or for a single backend)",
    ),
    (
        "show stat [no-maint|up]*",
        "report counters for each proxy and server",
    ),
    (
        "show table <table> [<filter>]*",
        "report table usage stats or dump this table's contents (filter: key)",
    ),
    ("show version", "show version of the current process"),
    (
        "shutdown sessions server <bk>/<srv>",
        "kill sessions on a server",
    ),
    ("user", "lower the level of the current CLI session to user"),
];

/// Always listed last, as HAProxy does.
const TAIL: &[(&str, &str)] = &[
    ("help [<command>]", "list matching or all commands"),
    ("prompt", "toggle interactive mode with prompt"),
    ("quit", "disconnect"),
];

fn help_line(usage: &str, text: &str) -> String {
    format!("  {usage:<40}: {text}\n")
}

/// The keywords of a help entry (the words before any argument).
fn keywords(usage: &str) -> Vec<&str> {
    usage
        .split_whitespace()
        .take_while(|w| !w.starts_with(['<', '[', '(']))
        .collect()
}

/// Help entries whose keywords start with as many of `words` as possible.
fn best_matches(session: &Session, words: &[String]) -> Vec<(&'static str, &'static str)> {
    let visible = HELP
        .iter()
        .filter(|(u, _)| !(*u == "operator" && session.level == StatsLevel::User));
    for depth in (1..=words.len().min(3)).rev() {
        let found: Vec<_> = visible
            .clone()
            .filter(|(u, _)| {
                let k = keywords(u);
                k.len() >= depth && k[..depth].iter().zip(words).all(|(a, b)| a == b)
            })
            .copied()
            .collect();
        if !found.is_empty() {
            return found;
        }
    }
    Vec::new()
}

fn listing(
    session: &Session,
    title: &str,
    entries: &[(&'static str, &'static str)],
    all: bool,
) -> String {
    let mut out = format!("{title}\n");
    let visible = HELP
        .iter()
        .filter(|(u, _)| !(*u == "operator" && session.level == StatsLevel::User));
    let chosen: Vec<_> = if all {
        visible.copied().collect()
    } else {
        entries.to_vec()
    };
    for (usage, text) in chosen.iter().chain(TAIL) {
        out.push_str(&help_line(usage, text));
    }
    out
}

/// `help [WORDS]`.
fn help(session: &Session, words: &[String]) -> String {
    let found = best_matches(session, words);
    let title = "The following commands are valid at this level:";
    listing(session, title, &found, found.is_empty())
}

/// The answer to a command Shoal does not know.
fn unknown(session: &Session, words: &[String]) -> String {
    let found = best_matches(session, words);
    if found.is_empty() {
        let title = "Unknown command. Please enter one of the following commands only:";
        listing(session, title, &[], true)
    } else {
        let title = "Unknown command, but maybe one of the following ones is a better match:";
        listing(session, title, &found, false)
    }
}

/// Run one command. The answer is empty or ends with a line break; the
/// caller adds the empty line that ends every answer.
pub async fn execute(runtime: &Runtime, session: &mut Session, words: &[String]) -> (String, Flow) {
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    let answer = match w.as_slice() {
        ["quit", ..] => return (String::new(), Flow::Quit),
        ["prompt", ..] => {
            session.interactive = !session.interactive;
            Ok(String::new())
        }
        ["help", ..] => Ok(help(session, &words[1..])),
        ["user"] => lower(session, StatsLevel::User),
        ["operator"] => lower(session, StatsLevel::Operator),
        ["show", "cli", "level"] => Ok(format!("{}\n", level_word(session.level))),
        ["show", "version"] => Ok(format!("{}\n", env!("CARGO_PKG_VERSION"))),
        ["show", "info", ..] => Ok(show::info(runtime)),
        ["show", "stat", args @ ..] => show::stat(runtime, session, args),
        ["show", "servers", "state", args @ ..] => show::servers_state(runtime, args),
        ["show", "backend", ..] => Ok(show::backends(runtime)),
        ["show", "table", args @ ..] => show::table(runtime, session, args),
        ["show", "cluster", "health"] => Ok(crate::health::render_text(
            &crate::health::cluster_health(runtime),
            runtime.node(),
        )),
        ["clear", "table", args @ ..] => show::clear_table(runtime, session, args).await,
        ["get", "weight", args @ ..] => servers::get_weight(runtime, args),
        ["set", "weight", args @ ..] => servers::set_weight(runtime, session, args).await,
        ["set", "server", args @ ..] => servers::set_server(runtime, session, args).await,
        ["set", "maxconn", "server", args @ ..] => {
            servers::set_maxconn(runtime, session, args).await
        }
        ["set", "table", args @ ..] => super::set_table::set_table(runtime, session, args),
        ["set", "timeout", args @ ..] => set_timeout(session, args),
        [verb @ ("enable" | "disable"), what @ ("server" | "health" | "agent"), args @ ..] => {
            servers::toggle(runtime, session, *verb == "enable", what, args).await
        }
        ["shutdown", "sessions", "server", args @ ..] => {
            servers::shutdown(runtime, session, args).await
        }
        _ => Ok(unknown(session, words)),
    };
    (answer.unwrap_or_else(|e| e), Flow::Continue)
}

/// `user` / `operator`: a session may lower its level, never raise it.
fn lower(session: &mut Session, level: StatsLevel) -> Result<String, String> {
    need(session, level)?;
    session.level = level;
    Ok(String::new())
}

fn level_word(level: StatsLevel) -> &'static str {
    match level {
        StatsLevel::User => "user",
        StatsLevel::Operator => "operator",
        StatsLevel::Admin => "admin",
    }
}

/// `set timeout cli DELAY` (seconds unless a unit is given).
fn set_timeout(session: &mut Session, args: &[&str]) -> Result<String, String> {
    match args {
        ["cli", delay, ..] => {
            let t = parse_delay(delay).ok_or("Invalid timeout value.\n")?;
            session.timeout = t;
            Ok(String::new())
        }
        _ => Err("'set timeout' only supports 'cli'.\n".to_string()),
    }
}

/// `10`, `10s`, `500ms`, `2m`, `1h`, `1d` (a bare number is seconds).
pub fn parse_delay(text: &str) -> Option<Duration> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let n: u64 = text.get(..digits)?.parse().ok()?;
    let ms = match &text[digits..] {
        "" | "s" => n.checked_mul(1_000)?,
        "ms" => n,
        "us" => n / 1_000,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        "d" => n.checked_mul(86_400_000)?,
        _ => return None,
    };
    (ms > 0).then(|| Duration::from_millis(ms))
}
