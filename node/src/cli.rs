//! The client commands of the `shoal` binary: `shoal cluster ...`,
//! `shoal server ...`, `shoal node ...`, `shoal config ...` and
//! `shoal cert ...`. Each is
//! one request to a node's admin HTTP API (`--admin`, default
//! 127.0.0.1:9090) with the bearer token from `--token-file` or
//! `SHOAL_ADMIN_TOKEN`, as `shoal run` takes it.
//!
//! Contract for scripts: success prints its result on stdout and exits 0;
//! any failure prints `shoal: <what failed>` on stderr (one line; a
//! refused config adds its diagnostics as indented lines) and exits 1;
//! clap's usage errors exit 2.
//!
//! - `client.rs`: one request over hyper's HTTP/1 client, within a deadline.
//! - `commands.rs`: what each command sends and prints.
//! - `render.rs`: the human output (summary lines, the cluster table) and
//!   the error line.

mod backup;
mod client;
mod commands;
mod render;
#[cfg(test)]
mod tests;

pub use client::CliError;

use clap::{Args, Subcommand, ValueEnum};
use shoal_proto::command::NodeId;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Admin API address used when `--admin` is not given.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:9090";
/// How long a command waits for its answer, connecting included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The wait for `config apply` and the membership commands, which commit
/// through the cluster and may wait for a join's catch-up (a minute) and
/// the membership changes around it: longer than the node's own bounds.
pub const LONG_TIMEOUT: Duration = Duration::from_secs(120);

/// The client commands; `main` flattens these into its own subcommands.
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Form, grow, shrink and inspect a cluster.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Change a server's weight or admin state (cluster-wide in a cluster).
    #[command(subcommand)]
    Server(ServerCommand),
    /// Take a proxy node out of service, or back in.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Show the running configuration, or replace it.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The cluster's TLS certificates, served by every `bind ... ssl`.
    #[command(subcommand)]
    Cert(CertCommand),
}

/// `shoal cluster ...`. (`ca` and `cert`, which work on files rather than
/// through the admin API, are added beside these.)
#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Create the cluster CA: `ca.pem` and `ca-key.pem` in DIR (keep the key
    /// secret; it signs node certificates).
    Ca {
        #[arg(long, value_name = "DIR")]
        out: std::path::PathBuf,
    },
    /// Issue node N's certificate from the CA in --ca: `node.pem`,
    /// `node-key.pem` and a copy of `ca.pem` in DIR (a node's --certs).
    Cert {
        /// The directory `shoal cluster ca` wrote.
        #[arg(long, value_name = "DIR")]
        ca: std::path::PathBuf,
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        node_id: NodeId,
        #[arg(long, value_name = "DIR")]
        out: std::path::PathBuf,
    },
    /// Make the node a one-member cluster that others can join.
    Init {
        #[command(flatten)]
        target: Target,
    },
    /// Have the node join the cluster a member belongs to.
    Join {
        /// A member's cluster (QUIC) address.
        #[arg(long, value_name = "IP:PORT")]
        via: SocketAddr,
        #[command(flatten)]
        target: Target,
    },
    /// Have the node leave its cluster.
    Leave {
        #[command(flatten)]
        target: Target,
    },
    /// Remove a member (for a node that is gone for good).
    Remove {
        /// The member's node id.
        #[arg(value_name = "NODE_ID")]
        node: NodeId,
        #[command(flatten)]
        target: Target,
    },
    /// Write the cluster's whole replicated state to FILE: through a
    /// member's admin API (after a read barrier: every acknowledged write
    /// is in it), or, with --data-dir, from a stopped node's data
    /// directory (for disaster recovery, when no majority is left).
    Backup {
        /// Where to write the backup (replaced atomically).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Read a stopped node's data directory instead of asking a node.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
    },
    /// Replace the cluster's whole replicated state with a backup's
    /// (config, server states, stick tables, drained nodes), on every node.
    Restore {
        /// A file `shoal cluster backup` wrote.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        #[command(flatten)]
        target: Target,
    },
    /// Members, leader, term, quorum and replication progress.
    Status {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        format: Format,
    },
}

/// `shoal server ...`.
#[derive(Subcommand, Debug)]
pub enum ServerCommand {
    /// Set a server's weight (0 to 256), like `set weight` on the runtime API.
    Weight {
        /// The server, as the runtime API names it.
        #[arg(value_name = "BACKEND/SERVER")]
        server: ServerName,
        /// The new weight, 0 to 256 (0: no new traffic).
        #[arg(value_name = "N")]
        weight: u32,
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        format: Format,
    },
    /// Set a server's admin state, like `set server ... state`.
    State {
        /// The server, as the runtime API names it.
        #[arg(value_name = "BACKEND/SERVER")]
        server: ServerName,
        /// ready: takes traffic; drain: only persistent clients; maint: none.
        state: ServerState,
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        format: Format,
    },
}

/// `shoal node ...`.
#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// Take a proxy node out of service: it stops taking new traffic.
    Drain {
        /// The proxy node's id.
        #[arg(value_name = "NODE_ID")]
        node: NodeId,
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        format: Format,
    },
    /// Put a drained proxy node back into service.
    Ready {
        /// The proxy node's id.
        #[arg(value_name = "NODE_ID")]
        node: NodeId,
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        format: Format,
    },
}

/// `shoal config ...`.
#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print the running configuration, exactly as it was loaded.
    Show {
        #[command(flatten)]
        target: Target,
    },
    /// Validate FILE on the node and make it the running configuration.
    Apply {
        /// The new configuration (haproxy.cfg dialect).
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: PathBuf,
        #[command(flatten)]
        target: Target,
    },
}

/// `shoal cert ...`.
#[derive(Subcommand, Debug)]
pub enum CertCommand {
    /// Store a certificate on the whole cluster (replacing one of the same
    /// name): FILE is PEM with the chain, leaf first, and its private key.
    Add {
        /// The PEM file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Its name in the store [default: the file name without its
        /// extension].
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// Send the key to an admin API that is not on this machine. The
        /// admin API is plain HTTP: the private key would cross the
        /// network in the clear (run `cert add` on a node, or through an
        /// SSH tunnel, instead).
        #[arg(long)]
        key_over_network: bool,
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        format: Format,
    },
    /// List the cluster's certificates: names served, expiry, fingerprint.
    List {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        format: Format,
    },
    /// Remove a certificate from the whole cluster.
    Remove {
        /// The certificate's name.
        #[arg(value_name = "NAME")]
        name: String,
        #[command(flatten)]
        target: Target,
    },
}

/// Where the admin API is and how to authenticate: every client command
/// takes these.
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// The node's admin API address (a host name works too).
    #[arg(long, value_name = "IP:PORT", default_value = DEFAULT_ADMIN, value_parser = host_port)]
    pub admin: String,
    /// File holding the admin API bearer token (else env SHOAL_ADMIN_TOKEN).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Seconds to wait for the answer, connecting included [default: 10;
    /// 60 for `config apply` and `cluster join`].
    #[arg(long, value_name = "SECONDS", value_parser = seconds)]
    pub timeout: Option<Duration>,
}

/// `--json`.
#[derive(Args, Debug, Clone, Copy)]
pub struct Format {
    /// Print the API's JSON answer instead of a summary.
    #[arg(long)]
    pub json: bool,
}

/// `BACKEND/SERVER`, as HAProxy's runtime API names a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerName {
    pub backend: String,
    pub server: String,
}

impl std::str::FromStr for ServerName {
    type Err = String;

    fn from_str(s: &str) -> Result<ServerName, String> {
        match s.split_once('/') {
            Some((backend, server))
                if !backend.is_empty() && !server.is_empty() && !server.contains('/') =>
            {
                Ok(ServerName {
                    backend: backend.to_string(),
                    server: server.to_string(),
                })
            }
            _ => Err("expected BACKEND/SERVER, e.g. app/s1".to_string()),
        }
    }
}

impl std::fmt::Display for ServerName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.backend, self.server)
    }
}

/// A server admin state, as `set server ... state` spells it.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    Ready,
    Drain,
    Maint,
}

impl ServerState {
    /// The word the API takes.
    pub fn word(self) -> &'static str {
        match self {
            ServerState::Ready => "ready",
            ServerState::Drain => "drain",
            ServerState::Maint => "maint",
        }
    }
}

/// `--admin`: `IP:PORT`, `[IPv6]:PORT` or `HOST:PORT`. Checked here so a
/// malformed address is a usage error; a host name resolves when used.
fn host_port(s: &str) -> Result<String, String> {
    if s.parse::<SocketAddr>().is_ok() {
        return Ok(s.to_string());
    }
    let bad = || format!("expected IP:PORT or HOST:PORT, got '{s}'");
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    // A bare IPv6 address has colons but no brackets: refuse it rather
    // than read its last group as a port.
    if host.is_empty() || host.contains(':') || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    Ok(s.to_string())
}

/// `--timeout`: positive seconds, fractions allowed, at most a day.
fn seconds(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 86_400.0 => Ok(Duration::from_secs_f64(v)),
        _ => Err(format!(
            "expected a number of seconds between 0 and 86400, got '{s}'"
        )),
    }
}

/// Run a client command: print its result and return the exit status.
pub fn run(command: ClientCommand) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let result = match runtime {
        Ok(rt) => rt.block_on(commands::execute(command)),
        Err(e) => Err(CliError::Runtime(e.to_string())),
    };
    let written = result.and_then(|out| {
        for warning in &out.warnings {
            eprintln!("[WARNING] {}", render::one_line(warning));
        }
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(out.stdout.as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(|e| CliError::Output(client::io_reason(&e)))
    });
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprint!("{}", render::error(&e));
            ExitCode::FAILURE
        }
    }
}
