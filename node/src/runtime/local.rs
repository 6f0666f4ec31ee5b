//! Node-local facts the projection joins to the replicated state: counters,
//! pools, queues and connection limits that outlive snapshots, the local
//! stick tables, and resolved server addresses. None of it is replicated.

use crate::routing::{ProxyCounters, Queue, ServerShared};
use crate::stick::{StickQueue, StickTable};
use shoal_proto::config::Config;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// A server host as written, with its port: the key of the address cache.
pub(crate) type HostKey = (String, Option<u16>);

/// A server name that did not resolve.
#[derive(Debug, Clone, thiserror::Error)]
#[error("server {backend}/{server}: cannot resolve '{host}': {reason}")]
pub struct ResolveError {
    pub backend: String,
    pub server: String,
    pub host: String,
    pub reason: String,
}

/// Everything node-local that outlives a single snapshot.
pub(super) struct Local {
    /// By `backend/server`; never removed (a later reload may bring a
    /// server back, with its counters).
    pub servers: HashMap<String, Arc<ServerShared>>,
    /// By `frontend/NAME` and `backend/NAME`.
    pub proxies: HashMap<String, Arc<ProxyCounters>>,
    pub queues: HashMap<String, Arc<Queue>>,
    /// Connection limits and their sizes, by `global` or `frontend/NAME`.
    pub limits: HashMap<String, (u32, Arc<Semaphore>)>,
    /// Resolved server addresses, so that a state change never waits on
    /// DNS; start and reload resolve afresh.
    pub addrs: HashMap<HostKey, SocketAddr>,
    /// The data plane's stick tables, by declaring proxy.
    pub tables: HashMap<String, Arc<StickTable>>,
    /// Where stick tables queue their writes for replication.
    pub stick: Arc<StickQueue>,
    /// The last snapshot has a server in its `slowstart` ramp.
    pub ramping: bool,
    /// The cluster's certificates, which every TLS bind serves.
    pub certs: Arc<crate::tls::ClusterCerts>,
}

impl Local {
    pub fn new(stick: Arc<StickQueue>, certs: Arc<crate::tls::ClusterCerts>) -> Local {
        Local {
            servers: HashMap::new(),
            proxies: HashMap::new(),
            queues: HashMap::new(),
            limits: HashMap::new(),
            addrs: HashMap::new(),
            tables: HashMap::new(),
            stick,
            ramping: false,
            certs,
        }
    }

    /// Cache resolved addresses.
    pub fn remember(&mut self, resolved: Vec<(HostKey, SocketAddr)>) {
        self.addrs.extend(resolved);
    }

    /// Hosts of `config` not in the cache.
    pub fn missing(&self, config: &Config) -> Vec<(String, String, HostKey)> {
        hosts(config)
            .filter(|(_, _, key)| !self.addrs.contains_key(key))
            .collect()
    }
}

/// Every server host of a config: (backend, server, host key).
fn hosts(config: &Config) -> impl Iterator<Item = (String, String, HostKey)> + '_ {
    config
        .proxies
        .iter()
        .filter(|p| p.kind.is_backend())
        .flat_map(|p| {
            p.servers.iter().map(|s| {
                (
                    p.name.clone(),
                    s.name.clone(),
                    (s.addr.host.clone(), s.addr.port),
                )
            })
        })
}

/// Resolve every server host of `config` (blocking DNS; call it off the
/// async workers and without holding a lock).
pub(super) fn resolve_all(config: &Config) -> Result<Vec<(HostKey, SocketAddr)>, ResolveError> {
    resolve_each(hosts(config))
}

/// Resolve the given hosts (blocking DNS).
pub(super) fn resolve_each(
    hosts: impl IntoIterator<Item = (String, String, HostKey)>,
) -> Result<Vec<(HostKey, SocketAddr)>, ResolveError> {
    let mut out: Vec<(HostKey, SocketAddr)> = Vec::new();
    for (backend, server, key) in hosts {
        if out.iter().any(|(k, _)| *k == key) {
            continue;
        }
        let addr = resolve(&key.0, key.1).map_err(|reason| ResolveError {
            backend,
            server,
            host: key.0.clone(),
            reason,
        })?;
        out.push((key, addr));
    }
    Ok(out)
}

/// Resolve a server address (HAProxy resolves at boot and reload). A
/// missing port yields port 0: the client's destination port is used.
fn resolve(host: &str, port: Option<u16>) -> Result<SocketAddr, String> {
    let port = port.unwrap_or(0);
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (host, port)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| "no address".to_string())
}
