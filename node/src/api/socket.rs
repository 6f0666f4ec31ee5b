//! HAProxy's runtime API on `stats socket` lines.
//!
//! `stats socket PATH [mode M] [level L]` opens a unix socket (a stale
//! file is removed first, then the mode is applied); `ipv4@ADDR:PORT` and
//! `ipv6@ADDR:PORT` open TCP sockets (port 0 lets the kernel choose). Each
//! prints `[NOTICE] stats socket listening on ADDR` so scripts and tests
//! learn where. Connections speak HAProxy's line protocol ([`session`])
//! and commands ([`commands`]); every change goes through
//! `Runtime::submit`. At most [`MAX_CLIENTS`] connections per socket are
//! served at once; more wait in the kernel's backlog.

mod commands;
mod line;
mod servers;
mod session;
mod set_table;
mod show;
#[cfg(test)]
mod tests;

use crate::runtime::Runtime;
use commands::Session;
use shoal_proto::config::{Config, StatsSocket};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};

/// Connections served at once per socket.
pub const MAX_CLIENTS: usize = 64;

/// HAProxy's default `stats timeout`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The running stats sockets; dropping this closes them and removes the
/// unix socket files.
#[derive(Default)]
pub struct Sockets {
    tasks: Vec<JoinHandle<()>>,
    files: Vec<PathBuf>,
}

impl Drop for Sockets {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// Where a `stats socket` line listens.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Place {
    Unix(PathBuf),
    /// Host (empty: any address) and port.
    Tcp {
        host: String,
        port: u16,
        v6: bool,
    },
}

/// Read HAProxy's address syntax: `unix@PATH`, `ipv4@HOST:PORT`,
/// `ipv6@HOST:PORT` (`[V6]:PORT` too), a bare `HOST:PORT`, else a path.
fn place(addr: &str) -> Result<Place, String> {
    if let Some(path) = addr.strip_prefix("unix@") {
        return Ok(Place::Unix(path.into()));
    }
    let (text, v6, explicit) = if let Some(rest) = addr.strip_prefix("ipv4@") {
        (rest, false, true)
    } else if let Some(rest) = addr.strip_prefix("ipv6@") {
        (rest, true, true)
    } else {
        (addr, false, false)
    };
    let tcp = text.rsplit_once(':').and_then(|(host, port)| {
        let port: u16 = port.parse().ok()?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Some((host, port))
    });
    match tcp {
        Some((host, port)) if explicit || !text.starts_with(['/', '.']) => {
            let host = if host == "*" { "" } else { host };
            let v6 = v6 || host.contains(':');
            Ok(Place::Tcp {
                host: host.to_string(),
                port,
                v6,
            })
        }
        None if explicit => Err(format!("stats socket '{addr}': expected ADDR:PORT")),
        _ => Ok(Place::Unix(text.into())),
    }
}

/// Open every `stats socket` of `config` and serve HAProxy's command language.
pub async fn start(runtime: Arc<Runtime>, config: &Config) -> std::io::Result<Sockets> {
    crate::stats::mark_started();
    let timeout = config
        .global
        .stats_timeout
        .filter(|t| !t.is_zero())
        .unwrap_or(DEFAULT_TIMEOUT);
    let mut sockets = Sockets::default();
    for sock in &config.global.stats_sockets {
        let where_ = place(&sock.addr).map_err(std::io::Error::other)?;
        let session = Session {
            level: sock.level,
            interactive: false,
            timeout,
        };
        let task = match where_ {
            Place::Unix(path) => {
                let listener = bind_unix(&path, sock)?;
                sockets.files.push(path.clone());
                println!("[NOTICE] stats socket listening on {}", path.display());
                tokio::spawn(accept_unix(listener, runtime.clone(), session))
            }
            Place::Tcp { host, port, v6 } => {
                let host = match (host.as_str(), v6) {
                    ("", false) => "0.0.0.0",
                    ("", true) => "::",
                    (h, _) => h,
                };
                let listener = TcpListener::bind((host, port)).await?;
                let local: SocketAddr = listener.local_addr()?;
                println!("[NOTICE] stats socket listening on {local}");
                tokio::spawn(accept_tcp(listener, runtime.clone(), session))
            }
        };
        sockets.tasks.push(task);
    }
    Ok(sockets)
}

/// Bind a unix socket, replacing a stale socket file, and apply `mode`.
fn bind_unix(path: &std::path::Path, sock: &StatsSocket) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(std::io::Error::other(format!(
                "{} exists and is not a socket",
                path.display()
            )));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    if let Some(mode) = sock.mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(listener)
}

/// Accept clients until the task is aborted, at most `MAX_CLIENTS` at a
/// time; `accept` is the listener's accept call (unix or TCP).
async fn accept_loop<S, F, Fut>(mut accept: F, runtime: Arc<Runtime>, session: Session)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::io::Result<S>>,
{
    let limit = Arc::new(Semaphore::new(MAX_CLIENTS));
    let mut clients = JoinSet::new();
    loop {
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        while clients.try_join_next().is_some() {}
        match accept().await {
            Ok(stream) => spawn(&mut clients, stream, &runtime, &session, permit),
            Err(e) => pause_after(e).await,
        }
    }
}

async fn accept_unix(listener: UnixListener, runtime: Arc<Runtime>, session: Session) {
    let listener = Arc::new(listener);
    let accept = || {
        let l = listener.clone();
        async move { l.accept().await.map(|(s, _)| s) }
    };
    accept_loop(accept, runtime, session).await;
}

async fn accept_tcp(listener: TcpListener, runtime: Arc<Runtime>, session: Session) {
    let listener = Arc::new(listener);
    let accept = || {
        let l = listener.clone();
        async move { l.accept().await.map(|(s, _)| s) }
    };
    accept_loop(accept, runtime, session).await;
}

fn spawn<S>(
    clients: &mut JoinSet<()>,
    stream: S,
    runtime: &Arc<Runtime>,
    session: &Session,
    permit: tokio::sync::OwnedSemaphorePermit,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let runtime = runtime.clone();
    let session = session.clone();
    clients.spawn(async move {
        session::serve(stream, runtime, session).await;
        drop(permit);
    });
}

/// Accept errors (out of descriptors...) are transient: wait a little
/// rather than spin.
async fn pause_after(e: std::io::Error) {
    tracing::warn!("stats socket: accept failed: {e}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
