//! The `shoal` command: `shoal check -f FILE` and `shoal run -f FILE`.

use clap::{Parser, Subcommand};
use shoal_node::node::{self, RunOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

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
    /// Run a node in the foreground.
    Run {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
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
        #[arg(long)]
        admin_token_file: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { file } => check(&file),
        Command::Run {
            file,
            access_log,
            grace,
            admin,
            admin_token_file,
        } => {
            let admin_token = match admin_token_file {
                Some(path) => match std::fs::read_to_string(&path) {
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

fn run(opts: RunOptions) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SHOAL_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // nbthread must be known before the runtime starts, so peek at the file.
    let threads = node::load(&opts.config)
        .ok()
        .and_then(|l| l.parsed.config.global.nbthread);
    let runtime = match threads {
        // One thread: a current-thread runtime avoids cross-thread wakeups.
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("shoal: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(node::run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shoal: {e:#}");
            ExitCode::FAILURE
        }
    }
}
