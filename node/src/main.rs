//! The `shoal` command: `shoal check -f FILE` and `shoal run -f FILE`.

use clap::{Parser, Subcommand};
use shoal_node::node::{self, RunOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// mimalloc instead of glibc malloc: the data plane and the change path
/// allocate many small, short-lived values (keys, commands, log entries),
/// where glibc spent a third of a loaded node's CPU (bench/stick.sh).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "shoal",
    version,
    about = "A clustered, HAProxy-compatible TCP/HTTP load balancer"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a config like `haproxy -c -f FILE`: exit 0, or print
    /// `FILE:LINE: message` for every error and exit 1.
    Check {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// Run a node in the foreground: standalone (the file is the truth,
    /// SIGHUP reloads it), or with the cluster flags as a cluster member
    /// (the replicated state is the truth).
    Run {
        /// The config file (a cluster node restarting from its data
        /// directory does not need it).
        #[arg(short = 'f', long = "file")]
        file: Option<PathBuf>,
        /// Cluster: this node's id (a positive number, unique in the cluster).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        node_id: Option<u64>,
        /// Cluster: where the node keeps its Raft log and state.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Cluster: the QUIC address other members reach this node on.
        #[arg(long)]
        cluster_addr: Option<std::net::SocketAddr>,
        /// Cluster: the directory with ca.pem, node.pem and node-key.pem.
        #[arg(long)]
        certs: Option<PathBuf>,
        /// Cluster: members' cluster addresses to join through when the
        /// node has no data yet (ignored on restart).
        #[arg(long, value_delimiter = ',')]
        join: Vec<String>,
        /// Cluster: build a Raft snapshot and compact the log every N entries.
        #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..))]
        snapshot_every: u64,
        /// Also append access-log lines to this file.
        #[arg(long)]
        access_log: Option<PathBuf>,
        /// Seconds to wait for in-flight connections on SIGTERM.
        #[arg(long, default_value_t = 10)]
        grace: u64,
        /// Serve the admin HTTP API (JSON, /metrics, /live, /ready) on this address.
        #[arg(long)]
        admin: Option<std::net::SocketAddr>,
        /// File holding the admin API bearer token (else env SHOAL_ADMIN_TOKEN).
        #[arg(long, visible_alias = "token-file")]
        admin_token_file: Option<PathBuf>,
    },
    /// Client commands: `cluster`, `server`, `node`, `config`.
    #[command(flatten)]
    Client(shoal_node::cli::ClientCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { file } => check(&file),
        Command::Client(command) => shoal_node::cli::run(command),
        Command::Run {
            file,
            node_id,
            data_dir,
            cluster_addr,
            certs,
            join,
            snapshot_every,
            access_log,
            grace,
            admin,
            admin_token_file,
        } => {
            let cluster = match (node_id, data_dir, cluster_addr, certs) {
                (None, None, None, None) if join.is_empty() => None,
                (Some(node), Some(data_dir), Some(cluster_addr), Some(certs)) => {
                    Some(node::ClusterOptions {
                        node,
                        data_dir,
                        cluster_addr,
                        certs,
                        join,
                        snapshot_every,
                    })
                }
                _ => {
                    eprintln!("shoal: a cluster node needs --node-id, --data-dir, --cluster-addr and --certs together");
                    return ExitCode::from(2);
                }
            };
            if cluster.is_none() && file.is_none() {
                eprintln!("shoal: a standalone node needs its config file (-f FILE)");
                return ExitCode::from(2);
            }
            let admin_token = match admin_token_file {
                Some(path) => match std::fs::read_to_string(&path) {
                    Ok(t) if t.trim().is_empty() => {
                        eprintln!("shoal: {}: the token file is empty", path.display());
                        return ExitCode::FAILURE;
                    }
                    Ok(t) => Some(t.trim().to_string()),
                    Err(e) => {
                        eprintln!("shoal: cannot read {}: {e}", path.display());
                        return ExitCode::FAILURE;
                    }
                },
                None => std::env::var("SHOAL_ADMIN_TOKEN")
                    .ok()
                    .filter(|t| !t.is_empty()),
            };
            run(RunOptions {
                config: file,
                cluster,
                access_log,
                grace: Duration::from_secs(grace),
                admin,
                admin_token,
            })
        }
    }
}

fn check(file: &std::path::Path) -> ExitCode {
    // Line by line, in bounded memory: `check` needs no copy of the text.
    match shoal_proto::config::parse_file(file) {
        Ok(parsed) => {
            for w in &parsed.warnings {
                eprintln!("[WARNING] {w}");
            }
            let tls_errors = shoal_node::tls::check(&parsed.config);
            if !tls_errors.is_empty() {
                for e in &tls_errors {
                    eprintln!("{e}");
                }
                return ExitCode::FAILURE;
            }
            println!("Configuration file is valid");
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            ExitCode::FAILURE
        }
    }
}

/// HAProxy's `MAX_THREADS` on 64-bit systems: the most `nbthread` allows.
const MAX_THREADS: usize = 64;

/// `shoal run`: every failure before the node serves (config, runtime,
/// limits, listeners, sockets, admin API) ends the process with one line
/// on stderr and a non-zero status; nothing stays half started.
fn run(opts: RunOptions) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SHOAL_LOG")
                // openraft narrates every election and membership step at INFO.
                .unwrap_or_else(|_| "info,openraft=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // A cluster node's data directory: opened first, since a node that
    // restarts takes its config from there.
    let store = match &opts.cluster {
        Some(c) => match shoal_raft::store::open(&c.data_dir) {
            Ok(store) => Some(store),
            Err(e) => {
                eprintln!("shoal: data directory {}: {e}", c.data_dir.display());
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    // nbthread and the limits must be known before the runtime starts, so
    // peek at the config; `node::run` reports its errors if it has any.
    let persisted = store
        .as_ref()
        .and_then(|s| s.state())
        .map(|state| state.config().model.clone());
    let parsed = match persisted {
        Some(model) => Some(model),
        None => opts
            .config
            .as_deref()
            .and_then(|f| node::load(f).ok())
            .map(|l| std::sync::Arc::new(l.parsed.config)),
    };
    let threads = parsed.as_ref().and_then(|c| c.global.nbthread);
    if let Some(n) = threads {
        if !(1..=MAX_THREADS).contains(&n) {
            eprintln!("shoal: 'nbthread' value must be between 1 and {MAX_THREADS} (was {n})");
            return ExitCode::FAILURE;
        }
    }
    if let Some(config) = &parsed {
        shoal_node::limits::apply(config, opts.admin.is_some());
    }
    let runtime = match build_runtime(threads) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("shoal: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(node::run(opts, store));
    // Blocking work (name resolution, external checks) gets a moment to
    // finish; a stuck one must not keep a failed process alive.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shoal: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The tokio runtime for `nbthread` (default: one worker per core). When
/// the system refuses that many threads, fall back to one per core (at
/// most what was asked) with a warning, then fail with an error, never a
/// panic.
fn build_runtime(threads: Option<usize>) -> Result<tokio::runtime::Runtime, String> {
    if threads == Some(1) {
        // One thread: a current-thread runtime avoids cross-thread wakeups.
        return tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string());
    }
    match multi_thread(threads) {
        Ok(rt) => Ok(rt),
        Err(e) => {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let fewer = threads.map_or(cores, |n| n.min(cores));
            if threads.is_some_and(|n| n > fewer) {
                eprintln!(
                    "[WARNING] cannot start {} threads ({e}); using {fewer}",
                    threads.unwrap_or(fewer)
                );
                multi_thread(Some(fewer))
            } else {
                Err(e)
            }
        }
    }
}

/// Build a multi-thread runtime; tokio panics when the system cannot
/// create a worker thread, which becomes an error here.
fn multi_thread(threads: Option<usize>) -> Result<tokio::runtime::Runtime, String> {
    let build = move || {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if let Some(n) = threads {
            builder.worker_threads(n);
        }
        builder.enable_all().build()
    };
    // Keep the panic message off stderr: the caller prints one line.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let built = std::panic::catch_unwind(build);
    std::panic::set_hook(hook);
    match built {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(panic) => Err(panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "thread creation failed".to_string())),
    }
}
