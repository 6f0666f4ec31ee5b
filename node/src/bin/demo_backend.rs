//! `shoal-demo-backend`: a small, fast, scriptable backend server for the
//! README demo, the integration tests and the benchmarks.
//!
//! ```text
//! shoal-demo-backend http --listen 127.0.0.1:0 --name s1 [--body-size N] [--threads N] [--h2]
//! shoal-demo-backend tcp  --listen 127.0.0.1:0 --name s1 [--threads N]
//! ```
//!
//! After binding, it prints one line `listening ADDR` per `--listen` flag (the
//! real bound address, so port 0 works) to stdout and flushes it. It exits
//! with status 0 on SIGTERM or SIGINT.
//!
//! See [`http`] and [`tcp`] for what each mode answers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use tokio::net::TcpListener;

// A binary's root looks for modules next to itself, so point at our folder.
#[path = "demo_backend/http.rs"]
mod http;
#[path = "demo_backend/tcp.rs"]
mod tcp;

/// Command line.
#[derive(Parser, Debug)]
#[command(
    name = "shoal-demo-backend",
    version,
    about = "Demo backend for Shoal (HTTP or TCP line echo)"
)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

/// Protocol to serve.
#[derive(Subcommand, Debug)]
enum Mode {
    /// HTTP/1.1 server: answers 200 with body NAME and header `x-server: NAME`.
    Http {
        #[command(flatten)]
        common: Common,
        /// Make the default response body exactly N bytes (NAME repeated);
        /// the default body is NAME.
        #[arg(long, value_name = "N")]
        body_size: Option<usize>,
        /// Serve HTTP/2 with prior knowledge (h2c) instead of HTTP/1.1;
        /// every answer then carries `x-backend-proto: HTTP/2.0`.
        #[arg(long)]
        h2: bool,
    },
    /// TCP line protocol: replies `NAME LINE` to each line; `QUIT` closes,
    /// `CONNS` answers the number of connections accepted so far.
    Tcp {
        #[command(flatten)]
        common: Common,
    },
}

/// Options shared by both modes.
#[derive(Args, Debug)]
struct Common {
    /// Address to listen on (port 0 picks a free port). May be repeated.
    #[arg(long, value_name = "ADDR", required = true)]
    listen: Vec<SocketAddr>,
    /// Server name, returned in every answer.
    #[arg(long)]
    name: String,
    /// Number of runtime worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// State shared by all connections of one process.
#[derive(Debug)]
pub struct Shared {
    /// The `--name` value.
    pub name: String,
    /// TCP connections accepted so far, over all listeners.
    pub conns: AtomicU64,
    /// `/delay/MS` requests being answered now.
    pub delaying: AtomicU64,
    /// The most `/delay/MS` requests ever answered at once (`/peak`).
    pub peak: AtomicU64,
}

impl Shared {
    /// Counts one accepted connection.
    pub fn accepted(&self) {
        self.conns.fetch_add(1, Ordering::Relaxed);
    }

    /// Connections accepted so far.
    pub fn conn_count(&self) -> u64 {
        self.conns.load(Ordering::Relaxed)
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let common = match &cli.mode {
        Mode::Http { common, .. } | Mode::Tcp { common } => common,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(common.threads.max(1))
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    runtime.block_on(run(cli))
}

/// Binds every listener, announces the addresses, then serves until a signal.
async fn run(cli: Cli) -> anyhow::Result<()> {
    let (common, body_size, h2) = match cli.mode {
        Mode::Http {
            common,
            body_size,
            h2,
        } => (common, Some(body_size), h2),
        Mode::Tcp { common } => (common, None, false),
    };
    let shared = Arc::new(Shared {
        name: common.name,
        conns: AtomicU64::new(0),
        delaying: AtomicU64::new(0),
        peak: AtomicU64::new(0),
    });

    let mut listeners = Vec::with_capacity(common.listen.len());
    for addr in &common.listen {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        listeners.push(listener);
    }
    announce(&listeners)?;

    let http_state = body_size.map(|size| Arc::new(http::State::new(shared.clone(), size, h2)));
    for listener in listeners {
        match &http_state {
            Some(state) => tokio::spawn(http::serve(listener, state.clone())),
            None => tokio::spawn(tcp::serve(listener, shared.clone())),
        };
    }

    wait_for_signal().await
}

/// Prints `listening ADDR` for each listener and flushes stdout.
fn announce(listeners: &[TcpListener]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    for listener in listeners {
        writeln!(out, "listening {}", listener.local_addr()?)?;
    }
    out.flush().context("flushing stdout")
}

/// Resolves on the first SIGTERM or SIGINT.
async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

/// Accepts connections forever, counting them and handing each to `handle`
/// on its own task. Accept errors (e.g. EMFILE) are reported and retried
/// after a short pause instead of ending the listener.
pub async fn accept_loop<F, Fut>(listener: TcpListener, shared: Arc<Shared>, handle: F)
where
    F: Fn(tokio::net::TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                shared.accepted();
                // Best effort: small answers should leave at once.
                let _ = stream.set_nodelay(true);
                tokio::spawn(handle(stream));
            }
            Err(err) => {
                eprintln!("shoal-demo-backend: accept: {err}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}
