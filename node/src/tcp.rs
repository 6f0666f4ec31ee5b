//! TCP mode: route a connection, connect to a server, then copy bytes both
//! ways with half-close and inactivity timeouts.
//!
//! The copy itself lives in [`tunnel`] (also used for upgraded HTTP
//! connections): each direction moves on its own, and each side has its
//! own inactivity timeout, as in HAProxy.

use crate::acl::Samples;
use crate::dispatch::{self, DispatchError};
use crate::log::{self, Record};
use crate::routing::{FrontendRt, Snapshot};
use shoal_proto::config::{Balance, Timeouts};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::net::TcpStream;
use tokio::time::Instant;

pub mod tunnel;

/// What a TCP-mode condition can see: source address and destination port.
pub struct TcpSamples {
    pub src: IpAddr,
    pub dst_port: u16,
    /// The connection's TLS session, if it came through TLS.
    pub tls: Option<Arc<crate::tls::Session>>,
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
    fn ssl_fc(&self) -> Option<bool> {
        Some(self.tls.is_some())
    }
    fn ssl_fc_sni(&self) -> Option<&str> {
        self.tls.as_ref().and_then(|t| t.sni.as_deref())
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
    observer: crate::observe::Observer,
    tls: Option<Arc<crate::tls::Session>>,
) {
    let accepted = SystemTime::now();
    let start = Instant::now();
    let samples = TcpSamples {
        src: peer.ip(),
        dst_port: local.port(),
        tls,
    };
    let Some(index) = frontend.router.route(&samples) else {
        tracing::debug!(frontend = %frontend.name, "no backend for connection from {peer}");
        return;
    };
    let backend = snapshot.backends[index].clone();
    // A TCP session can last for days: hold its backend, not the whole
    // routing table (and the config it shares) of when it began.
    drop(snapshot);
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
    // HAProxy's Tw (queue) and Tc (connect) timers, -1 when not reached.
    let mut t_queue = -1;
    let result = match claimed {
        Ok(claim) => {
            t_queue = claim.queued().as_millis() as i64;
            let sni = crate::tls::SniSource::Client {
                request: None,
                client_sni: samples.ssl_fc_sni(),
            };
            dispatch::connect(claim, key, local.port(), &observer, sni).await
        }
        Err(e) => Err(e),
    };
    let connected = start.elapsed();
    let (server_stream, claim) = match result {
        Ok((stream, claim, _)) => (stream, claim),
        Err(e) => {
            if matches!(
                e,
                DispatchError::NoServer | DispatchError::QueueFull | DispatchError::QueueTimeout
            ) {
                backend.counters.no_server.fetch_add(1, Relaxed);
            }
            if e == DispatchError::QueueTimeout {
                // HAProxy logs the time spent waiting before `sQ`.
                t_queue = connected.as_millis() as i64;
            }
            backend.counters.close();
            log_tcp(
                &frontend,
                &backend.name,
                "<NOSRV>",
                peer,
                accepted,
                start,
                (t_queue, -1),
                0,
                e.termination_state(),
            );
            return;
        }
    };
    let t_connect = connected.as_millis() as i64 - t_queue.max(0);
    let timeouts = merge(&frontend.timeouts, &backend.timeouts);
    if !backend.stick.is_empty() {
        crate::persist::store(&backend, &samples, claim.server_index());
    }
    let shared = &claim.server().shared;
    let killed = shared.killed(shared.generation());
    let (up, down, termination) = tokio::select! {
        r = tunnel(client, server_stream, &timeouts) => r,
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
        (t_queue, t_connect),
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
    (t_queue, t_connect): (i64, i64),
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
        t_queue,
        t_connect,
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

/// Copy bytes both ways between a client and a server connection until
/// both directions have ended, a side fails, or a side stays inactive past
/// its timeout (see [`tunnel`](self::tunnel) module docs for the rules).
/// `timeouts` is already merged frontend+backend (see [`merge`]); `timeout
/// tunnel` applies from the start. Returns bytes client->server, bytes
/// server->client and the termination state for the log (`--`, `CD`, `SD`,
/// `cD`, `sD`).
pub async fn tunnel(
    mut client: TcpStream,
    mut server: TcpStream,
    timeouts: &Timeouts,
) -> (u64, u64, &'static str) {
    let (cr, cw) = client.split();
    let (sr, sw) = server.split();
    tunnel::run(cr, cw, sr, sw, timeouts).await
}
