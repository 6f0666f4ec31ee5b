//! TCP mode: route a connection, connect to a server, then copy bytes both
//! ways with half-close and inactivity timeouts.
//!
//! Timeouts follow HAProxy: while both directions are open the connection is
//! idle-timed by `timeout tunnel` when set, else by `timeout client` for the
//! client side and `timeout server` for the server side; once one direction
//! has shut, `timeout client-fin` / `timeout server-fin` take over when set.

use crate::acl::Samples;
use crate::dispatch::{self, DispatchError};
use crate::log::{self, Record};
use crate::runtime::{FrontendRt, Snapshot};
use shoal_proto::config::{Balance, Timeouts};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

const BUF: usize = 16 * 1024;

/// What a TCP-mode condition can see: source address and destination port.
pub struct TcpSamples {
    pub src: IpAddr,
    pub dst_port: u16,
}

impl Samples for TcpSamples {
    fn path(&self) -> Option<&str> {
        None
    }
    fn url(&self) -> Option<&str> {
        None
    }
    fn method(&self) -> Option<&str> {
        None
    }
    fn any_header(&self, _: &str, _: &mut dyn FnMut(&str) -> bool) -> bool {
        false
    }
    fn src(&self) -> Option<IpAddr> {
        Some(self.src)
    }
    fn dst_port(&self) -> Option<u16> {
        Some(self.dst_port)
    }
}

/// Bytes of an IP address, for `balance source`.
pub fn ip_key(ip: &IpAddr, buf: &mut [u8; 16]) -> usize {
    match ip {
        IpAddr::V4(v4) => {
            buf[..4].copy_from_slice(&v4.octets());
            4
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => {
                buf[..4].copy_from_slice(&v4.octets());
                4
            }
            None => {
                *buf = v6.octets();
                16
            }
        },
    }
}

/// Serve one accepted TCP-mode connection to the end.
pub async fn serve(
    client: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    frontend: Arc<FrontendRt>,
    snapshot: Arc<Snapshot>,
    runtime: Arc<crate::runtime::Runtime>,
) {
    let accepted = SystemTime::now();
    let start = Instant::now();
    let samples = TcpSamples {
        src: peer.ip(),
        dst_port: local.port(),
    };
    let Some(index) = frontend.router.route(&samples) else {
        tracing::debug!(frontend = %frontend.name, "no backend for connection from {peer}");
        return;
    };
    let backend = snapshot.backends[index].clone();
    backend.counters.open();
    let mut key_buf = [0u8; 16];
    let key = match backend.balance {
        Balance::Source => {
            let n = ip_key(&peer.ip(), &mut key_buf);
            Some(&key_buf[..n])
        }
        _ => None,
    };
    let sticky = if backend.stick.is_empty() {
        crate::persist::Sticky::default()
    } else {
        crate::persist::lookup(&backend, &samples)
    };
    let claimed = match sticky.server {
        Some(server) => dispatch::claim_server(&backend, server).await,
        None => dispatch::claim(&backend, key, None).await,
    };
    let result = match claimed {
        Ok(claim) => dispatch::connect(claim, key, local.port(), &runtime.observer).await,
        Err(e) => Err(e),
    };
    let t_connect = start.elapsed();
    let (server_stream, claim) = match result {
        Ok(ok) => ok,
        Err(e) => {
            if matches!(
                e,
                DispatchError::NoServer | DispatchError::QueueFull | DispatchError::QueueTimeout
            ) {
                backend.counters.no_server.fetch_add(1, Relaxed);
            }
            backend.counters.close();
            log_tcp(
                &frontend,
                &backend.name,
                "<NOSRV>",
                peer,
                accepted,
                start,
                t_connect,
                0,
                e.termination_state(),
            );
            return;
        }
    };
    let timeouts = merge(&frontend.timeouts, &backend.timeouts);
    if !backend.stick.is_empty() {
        crate::persist::store(&backend, &samples, claim.server_index());
    }
    let shared = &claim.server().shared;
    let killed = shared.killed(shared.generation());
    let (up, down, termination) = tokio::select! {
        r = pump(client, server_stream, &timeouts) => r,
        // `shutdown sessions server` / `on-marked-down shutdown-sessions`.
        () = killed => (0, 0, "KD"),
    };
    let server = claim.server();
    server.shared.counters.bytes_in.fetch_add(up, Relaxed);
    server.shared.counters.bytes_out.fetch_add(down, Relaxed);
    backend.counters.bytes_in.fetch_add(up, Relaxed);
    backend.counters.bytes_out.fetch_add(down, Relaxed);
    frontend.counters.bytes_in.fetch_add(up, Relaxed);
    frontend.counters.bytes_out.fetch_add(down, Relaxed);
    log_tcp(
        &frontend,
        &backend.name,
        &server.name,
        peer,
        accepted,
        start,
        t_connect,
        down,
        termination,
    );
    drop(claim);
    backend.counters.close();
}

/// Client-side timeouts come from the frontend, server-side ones from the
/// backend, as in HAProxy.
pub fn merge(fe: &Timeouts, be: &Timeouts) -> Timeouts {
    Timeouts {
        client: fe.client,
        client_fin: fe.client_fin,
        server: be.server,
        server_fin: be.server_fin,
        tunnel: be.tunnel.or(fe.tunnel),
        ..*be
    }
}

#[allow(clippy::too_many_arguments)]
fn log_tcp(
    frontend: &FrontendRt,
    backend: &str,
    server: &str,
    peer: SocketAddr,
    accepted: SystemTime,
    start: Instant,
    t_connect: std::time::Duration,
    bytes: u64,
    termination: &str,
) {
    if frontend.log.is_none() || !log::enabled() {
        return;
    }
    let ms = start.elapsed().as_millis() as i64;
    let record = Record {
        client: peer,
        accepted,
        frontend: &frontend.name,
        backend,
        server,
        t_request: 0,
        t_queue: 0,
        t_connect: t_connect.as_millis() as i64,
        t_response: -1,
        t_total: ms,
        status: 0,
        bytes,
        termination,
        active_conns: crate::listener::active_connections(),
        frontend_conns: frontend.counters.cur.load(Relaxed),
        backend_conns: 0,
        server_conns: 0,
        retries: 0,
        server_queue: 0,
        backend_queue: 0,
        request_line: "",
    };
    log::emit(record.tcp_line());
}

/// Copy both ways until both sides have finished, an error, or inactivity.
/// Returns bytes client->server, bytes server->client and the termination
/// state for the log.
async fn pump(
    mut client: TcpStream,
    mut server: TcpStream,
    t: &Timeouts,
) -> (u64, u64, &'static str) {
    let (cr, cw) = client.split();
    let (sr, sw) = server.split();
    copy_both_ways(cr, cw, sr, sw, t).await
}

/// Copy both ways over an upgraded HTTP connection (WebSocket, CONNECT)
/// until both sides close, an error, or inactivity; returns bytes
/// client->server, server->client and the termination state.
pub async fn tunnel(
    client: TcpStream,
    server: TcpStream,
    timeouts: &Timeouts,
) -> (u64, u64, &'static str) {
    pump(client, server, timeouts).await
}

/// The copy loop behind [`pump`], for any pair of streams (also upgraded
/// HTTP connections, where `timeout tunnel` is an inactivity timeout too).
pub async fn copy_both_ways<CR, CW, SR, SW>(
    mut cr: CR,
    mut cw: CW,
    mut sr: SR,
    mut sw: SW,
    t: &Timeouts,
) -> (u64, u64, &'static str)
where
    CR: tokio::io::AsyncRead + Unpin,
    CW: tokio::io::AsyncWrite + Unpin,
    SR: tokio::io::AsyncRead + Unpin,
    SW: tokio::io::AsyncWrite + Unpin,
{
    let mut cbuf = vec![0u8; BUF];
    let mut sbuf = vec![0u8; BUF];
    let (mut up, mut down) = (0u64, 0u64);
    let (mut client_done, mut server_done) = (false, false);
    // The timer is re-armed lazily: activity only records a time, and the
    // sleep, when it fires early, is pushed to the real deadline.
    let mut last = Instant::now();
    let idle = |client_done: bool, server_done: bool| -> Option<Duration> {
        let base_client = t.tunnel.or(t.client);
        let base_server = t.tunnel.or(t.server);
        let c = if client_done {
            t.client_fin.or(base_client)
        } else {
            base_client
        };
        let s = if server_done {
            t.server_fin.or(base_server)
        } else {
            base_server
        };
        match (c, s) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    };
    let far = Duration::from_secs(86_400 * 365);
    let sleep = tokio::time::sleep(idle(false, false).unwrap_or(far));
    tokio::pin!(sleep);
    loop {
        if client_done && server_done {
            return (up, down, "--");
        }
        tokio::select! {
            r = cr.read(&mut cbuf), if !client_done => match r {
                Ok(0) => {
                    client_done = true;
                    let _ = sw.shutdown().await;
                }
                Ok(n) => {
                    if sw.write_all(&cbuf[..n]).await.is_err() {
                        return (up, down, "SD");
                    }
                    up += n as u64;
                    last = Instant::now();
                }
                Err(_) => return (up, down, "CD"),
            },
            r = sr.read(&mut sbuf), if !server_done => match r {
                Ok(0) => {
                    server_done = true;
                    let _ = cw.shutdown().await;
                }
                Ok(n) => {
                    if cw.write_all(&sbuf[..n]).await.is_err() {
                        return (up, down, "CD");
                    }
                    down += n as u64;
                    last = Instant::now();
                }
                Err(_) => return (up, down, "SD"),
            },
            () = &mut sleep => {
                match idle(client_done, server_done) {
                    Some(limit) if last.elapsed() >= limit => {
                        return (up, down, if client_done || !server_done { "cD" } else { "sD" });
                    }
                    Some(limit) => sleep.as_mut().reset(last + limit),
                    None => sleep.as_mut().reset(Instant::now() + far),
                }
            }
        }
    }
}
