//! Build a [`Snapshot`] from the replicated state plus node-local facts,
//! reusing the backends and frontends of the previous snapshot whose
//! inputs did not change (their compiled routers, balancer tables and
//! round-robin positions with them).

use super::local::Local;
use super::BuildError;
use crate::acl::Router;
use crate::balance::{Balancer, Slot};
use crate::log::LogFormat;
use crate::routing::{BackendRt, FrontendRt, Queue, ServerRt, Snapshot, StatsRt, StickRt};
use crate::stick::StickTable;
use shoal_proto::command::{Millis, ServerRef};
use shoal_proto::config::{Mode, Proxy, Server, ServerProto};
use shoal_proto::state::{ClusterState, ServerStatus};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::Semaphore;

/// Build the next snapshot. Registers new servers and proxies in `p`;
/// never removes counters of vanished ones (a later reload may bring them
/// back). Does no DNS: every host must be in the address cache.
pub(super) fn build(
    p: &mut Local,
    state: &ClusterState,
    previous: Option<&Snapshot>,
    now: SystemTime,
) -> Result<Snapshot, BuildError> {
    let config = state.config().model.clone();
    let global_timeouts = config.global.timeouts;
    // Backends and frontends depend on the global section's timeouts; with
    // a different global section nothing is reused.
    let previous = previous.filter(|prev| prev.config.global == config.global);
    // Set again by the backends that have a server in its slowstart ramp.
    p.ramping = false;
    let mut tables = HashMap::new();
    for proxy in &config.proxies {
        let Some(def) = &proxy.stick_table else {
            continue;
        };
        let table = match p.tables.get(&proxy.name) {
            // Keep the entries while the definition is unchanged.
            Some(t) if t.config == *def => t.clone(),
            _ => Arc::new(StickTable::new(&proxy.name, def.clone(), p.stick.clone())),
        };
        p.tables.insert(proxy.name.clone(), table.clone());
        tables.insert(proxy.name.clone().into_boxed_str(), table);
    }
    let now_ms = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let mut backends = Vec::new();
    let mut backend_by_name = HashMap::new();
    for proxy in config.proxies.iter().filter(|x| x.kind.is_backend()) {
        let backend = build_backend(p, state, proxy, &global_timeouts, &tables, now_ms, previous)?;
        backend_by_name.insert(proxy.name.clone().into_boxed_str(), backends.len());
        backends.push(backend);
    }

    let mut frontends = Vec::new();
    let mut frontend_by_name = HashMap::new();
    for proxy in config.proxies.iter().filter(|x| x.kind.is_frontend()) {
        let reused = previous.and_then(|prev| {
            // A new config (a reload) re-reads TLS certificates even for
            // an unchanged frontend, as HAProxy's reload does.
            let has_tls = proxy.binds.iter().any(|b| b.tls.is_some());
            if has_tls && !Arc::ptr_eq(&prev.config, &config) {
                return None;
            }
            let same_routes = prev.backend_by_name == backend_by_name;
            let same_proxy = prev
                .config
                .proxies
                .iter()
                .any(|old| old.kind.is_frontend() && old == proxy);
            (same_routes && same_proxy)
                .then(|| prev.frontend(&proxy.name).cloned())
                .flatten()
        });
        if let Some(fe) = reused {
            frontend_by_name.insert(proxy.name.clone().into_boxed_str(), frontends.len());
            frontends.push(fe);
            continue;
        }
        let resolve = |name: &str| backend_by_name.get(name).copied();
        let router = Router::compile(proxy, &resolve).map_err(|e| BuildError::Rules {
            frontend: proxy.name.clone(),
            reason: e.to_string(),
        })?;
        let key = format!("frontend/{}", proxy.name);
        let counters = p.proxies.entry(key.clone()).or_default().clone();
        let conn_limit = proxy.maxconn.map(|max| limit(p, &key, max));
        let format = if proxy.options.httplog {
            LogFormat::Http
        } else {
            LogFormat::Tcp
        };
        let log = (!proxy.logs.is_empty()).then_some(format);
        frontend_by_name.insert(proxy.name.clone().into_boxed_str(), frontends.len());
        frontends.push(Arc::new(FrontendRt {
            name: proxy.name.clone().into(),
            mode: proxy.mode,
            router,
            timeouts: proxy.timeouts.or(&global_timeouts),
            forwardfor: proxy.options.forwardfor,
            httpclose: proxy.options.httpclose,
            log,
            counters,
            conn_limit,
            stats: stats_page(proxy)?,
            bufsize: config.global.bufsize_or_default() as usize,
            maxhdr: config.global.maxhdr_or_default() as usize,
            tls: tls_acceptors(proxy, &p.certs)?,
            http_request: crate::http::rules::Rules::compile(proxy).map_err(|reason| {
                BuildError::Rules {
                    frontend: proxy.name.clone(),
                    reason,
                }
            })?,
        }));
    }
    let global_limit = config.global.maxconn.map(|max| limit(p, "global", max));
    Ok(Snapshot {
        config,
        frontends,
        backends,
        frontend_by_name,
        backend_by_name,
        global_limit,
        tables,
    })
}

/// The TLS acceptors of a frontend's `bind ... ssl` lines (certificates
/// read from disk here; the cluster's come from `certs` at each
/// handshake), keyed as the listeners are.
fn tls_acceptors(
    proxy: &Proxy,
    certs: &Arc<crate::tls::ClusterCerts>,
) -> Result<crate::routing::TlsBinds, BuildError> {
    let mut out = Vec::new();
    for bind in &proxy.binds {
        if let Some(tls) = &bind.tls {
            let acceptor = crate::tls::Acceptor::new(tls, certs.clone()).map_err(|reason| {
                BuildError::Rules {
                    frontend: proxy.name.clone(),
                    reason,
                }
            })?;
            let key = format!("{}:{}", bind.host, bind.port).into_boxed_str();
            out.push((key, Arc::new(acceptor)));
        }
    }
    Ok(out)
}

/// The stats page of an HTTP frontend with `stats enable` (or any other
/// `stats` line, which HAProxy treats as enabling it).
fn stats_page(proxy: &Proxy) -> Result<Option<StatsRt>, BuildError> {
    let page = &proxy.stats;
    let enabled =
        page.enabled || page.uri.is_some() || !page.auth.is_empty() || page.admin.is_some();
    if !enabled || proxy.mode != shoal_proto::config::Mode::Http {
        return Ok(None);
    }
    let admin = match &page.admin {
        Some(cond) => Some(
            crate::acl::CompiledCond::compile(cond, &proxy.acls).map_err(|e| {
                BuildError::Rules {
                    frontend: proxy.name.clone(),
                    reason: e.to_string(),
                }
            })?,
        ),
        None => None,
    };
    Ok(Some(StatsRt {
        uri: page
            .uri
            .clone()
            .unwrap_or_else(|| "/haproxy?stats".to_string()),
        config: page.clone(),
        admin,
    }))
}

/// A connection limit that keeps its semaphore while its size is unchanged,
/// so that a reload does not forget connections already counted.
fn limit(p: &mut Local, key: &str, max: u32) -> Arc<Semaphore> {
    if let Some((size, sem)) = p.limits.get(key) {
        if *size == max {
            return sem.clone();
        }
    }
    let sem = Arc::new(Semaphore::new(max as usize));
    p.limits.insert(key.to_string(), (max, sem.clone()));
    sem
}

/// The previous snapshot's backend, when nothing that shapes it changed:
/// same config, same servers in the same states, same stick tables, and
/// no slowstart ramp in it (its weights were those of a moment).
fn reusable_backend(
    prev: &Snapshot,
    proxy: &Proxy,
    servers: &[ServerRt],
    tables: &HashMap<Box<str>, Arc<StickTable>>,
) -> Option<Arc<BackendRt>> {
    let old = prev.backend(&proxy.name).filter(|old| !old.ramping)?;
    let same_config = prev
        .config
        .proxies
        .iter()
        .any(|p| p.kind.is_backend() && p == proxy);
    let same_servers = old.servers.len() == servers.len()
        && old.servers.iter().zip(servers).all(|(a, b)| {
            a.name == b.name
                && a.addr == b.addr
                && a.maxconn == b.maxconn
                && same_routing(&a.state, &b.state)
                && a.avoided == b.avoided
                && Arc::ptr_eq(&a.shared, &b.shared)
        });
    let same_tables = old.stick.len() == proxy.stick_rules.len()
        && old.stick.iter().zip(&proxy.stick_rules).all(|(a, rule)| {
            let name = rule.table.as_deref().unwrap_or(&proxy.name);
            tables.get(name).is_some_and(|t| Arc::ptr_eq(&a.table, t))
        });
    (same_config && same_servers && same_tables).then(|| old.clone())
}

/// Two server states route the same: equal but for the health reports
/// behind the verdict (a node's first report, or one that does not move
/// the verdict, must not reset round-robin positions). A reused backend's
/// `reports` may therefore lag: read them from the replicated state.
fn same_routing(a: &ServerStatus, b: &ServerStatus) -> bool {
    (
        a.admin,
        a.op,
        a.weight,
        a.check_enabled,
        a.maxconn,
        a.addr,
        a.last_change,
        a.serving_since,
        a.verdict_up,
    ) == (
        b.admin,
        b.op,
        b.weight,
        b.check_enabled,
        b.maxconn,
        b.addr,
        b.last_change,
        b.serving_since,
        b.verdict_up,
    )
}

fn build_backend(
    p: &mut Local,
    state: &ClusterState,
    proxy: &Proxy,
    global_timeouts: &shoal_proto::config::Timeouts,
    tables: &HashMap<Box<str>, Arc<StickTable>>,
    now: Millis,
    previous: Option<&Snapshot>,
) -> Result<Arc<BackendRt>, BuildError> {
    let mut servers = Vec::with_capacity(proxy.servers.len());
    // slowstart: how far each server is into its ramp (None: full speed).
    let mut ramps = Vec::with_capacity(proxy.servers.len());
    let model = &state.config().model;
    for server in &proxy.servers {
        let id = ServerRef::new(&proxy.name, &server.name);
        let state = match state.server(&id) {
            Some(status) => status.clone(),
            // The replicated state lacks a server of this node's model: the
            // config does not load here, and the node serves the model it
            // had. The server runs as its line says (dated as in the last
            // snapshot, so that rebuilds do not change it).
            None => {
                let since = previous
                    .and_then(|prev| prev.server(&proxy.name, &server.name))
                    .map_or(now, |s| s.state.last_change);
                ServerStatus::from_config(server, since)
            }
        };
        let ramp = ramp_progress(state.serving_since, server.slowstart, now);
        ramps.push(ramp);
        let written = (server.addr.host.clone(), server.addr.port);
        let Some(&addr) = p.addrs.get(&written) else {
            return Err(BuildError::Resolve(super::ResolveError {
                backend: proxy.name.clone(),
                server: server.name.clone(),
                host: server.addr.host.clone(),
                reason: "not resolved yet".into(),
            }));
        };
        let key = id.to_string();
        let shared = p.servers.entry(key).or_default().clone();
        // Local avoidance: read once per build, so the request path pays
        // nothing for it.
        let avoided = shared
            .locally_down
            .load(std::sync::atomic::Ordering::Acquire);
        // TLS to the server: `ca-file` is read with a new config (a
        // reload), not again for every weight or state change.
        let tls = match server.tls.ssl {
            false => None,
            true => {
                let kept = previous
                    .filter(|prev| Arc::ptr_eq(&prev.config, model))
                    .and_then(|prev| prev.server(&proxy.name, &server.name))
                    .and_then(|s| s.tls.clone());
                match kept {
                    Some(tls) => Some(tls),
                    None => Some(Arc::new(
                        crate::tls::Upstream::new(&server.tls, addr.ip())
                            .map_err(BuildError::Tls)?,
                    )),
                }
            }
        };
        let h2 = match wants_h2(proxy, server) {
            false => None,
            true => {
                let kept = previous
                    .filter(|prev| Arc::ptr_eq(&prev.config, model))
                    .and_then(|prev| prev.server(&proxy.name, &server.name))
                    .and_then(|s| s.h2.clone());
                let forced = server.proto == Some(ServerProto::H2);
                Some(kept.unwrap_or_else(|| {
                    let max_headers = model.global.maxhdr_or_default() as usize;
                    let connect = proxy
                        .timeouts
                        .or(global_timeouts)
                        .connect
                        .unwrap_or(std::time::Duration::from_secs(30));
                    Arc::new(crate::tls::H2Upstream::new(
                        forced,
                        server.tls.ssl,
                        max_headers,
                        connect,
                    ))
                }))
            }
        };
        servers.push(ServerRt {
            tls,
            h2,
            name: server.name.clone().into(),
            addr: state.addr.unwrap_or(addr),
            backup: server.backup,
            maxconn: ramp_maxconn(state.maxconn.or(server.maxconn), ramp),
            maxqueue: server.maxqueue,
            config_weight: server.weight_or_default(),
            cookie: server
                .cookie
                .clone()
                .unwrap_or_else(|| server.name.clone())
                .into(),
            shared,
            state,
            avoided,
        });
    }

    // A ramping backend's weights move with time: it is always rebuilt,
    // and so is the first backend after a ramp (see `reusable_backend`).
    let ramping = ramps.iter().any(Option::is_some);
    p.ramping |= ramping;
    if let Some(same) = previous
        .filter(|_| !ramping)
        .and_then(|prev| reusable_backend(prev, proxy, &servers, tables))
    {
        return Ok(same);
    }
    let scale = weight_scale(proxy, &ramps);
    let primary_slots: Vec<Slot> = servers
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.backup && s.usable())
        .map(|(id, s)| Slot {
            id,
            weight: slot_weight(s.state.weight, ramps[id], scale),
        })
        .collect();
    // Backups serve only when no primary can: the first usable one, or all
    // of them with `option allbackups` (HAProxy's rule).
    let mut backup_slots = servers
        .iter()
        .enumerate()
        .filter(|(_, s)| s.backup && s.usable())
        .map(|(id, s)| Slot {
            id,
            weight: slot_weight(s.state.weight, ramps[id], scale),
        });
    let backup_slots: Vec<Slot> = if proxy.options.allbackups {
        backup_slots.collect()
    } else {
        backup_slots.next().into_iter().collect()
    };
    let maxqueue = servers
        .iter()
        .map(|s| s.maxqueue.filter(|&q| q > 0).map(|q| q as usize))
        .sum::<Option<usize>>();
    let key = format!("backend/{}", proxy.name);
    Ok(Arc::new(BackendRt {
        name: proxy.name.clone().into(),
        mode: proxy.mode,
        primary: Balancer::new(&proxy.balance, proxy.hash_type, primary_slots),
        backup: Balancer::new(&proxy.balance, proxy.hash_type, backup_slots),
        servers,
        balance: proxy.balance.clone(),
        timeouts: proxy.timeouts.or(global_timeouts),
        retries: proxy.retries_or_default(),
        redispatch: proxy.options.redispatch,
        forwardfor: proxy.options.forwardfor,
        httpclose: proxy.options.httpclose,
        http_reuse: proxy.http_reuse.unwrap_or_default(),
        maxqueue,
        counters: p.proxies.entry(key.clone()).or_default().clone(),
        queue: p
            .queues
            .entry(key)
            .or_insert_with(|| Arc::new(Queue::default()))
            .clone(),
        cookie: proxy
            .cookie
            .clone()
            .filter(|_| proxy.mode == shoal_proto::config::Mode::Http),
        persist: proxy.options.persist,
        stick: stick_rules(proxy, tables)?,
        ramping,
    }))
}

/// Compile a backend's stick rules against the tables they name.
fn stick_rules(
    proxy: &Proxy,
    tables: &HashMap<Box<str>, Arc<StickTable>>,
) -> Result<Vec<StickRt>, BuildError> {
    let fail = |reason: String| BuildError::Rules {
        frontend: proxy.name.clone(),
        reason,
    };
    proxy
        .stick_rules
        .iter()
        .map(|rule| {
            let name = rule.table.as_deref().unwrap_or(&proxy.name);
            let table = tables
                .get(name)
                .cloned()
                .ok_or_else(|| fail(format!("stick table '{name}' does not exist")))?;
            let cond = match &rule.cond {
                Some(c) => Some(
                    crate::acl::CompiledCond::compile(c, &proxy.acls)
                        .map_err(|e| fail(e.to_string()))?,
                ),
                None => None,
            };
            Ok(StickRt {
                action: rule.action,
                pattern: rule.pattern.clone(),
                table,
                cond,
            })
        })
        .collect()
}

// --- slowstart (HAProxy's `server_recalc_eweight` / `srv_dynamic_maxconn`) ---

/// HAProxy's `BE_WEIGHT_SCALE`: while a server of a backend ramps up, all
/// its weights are multiplied by this so that even weight 1 grows in steps.
const WEIGHT_SCALE: u32 = 16;

/// Progress (0..1) of a server's `slowstart` ramp, or `None` when it runs
/// at full speed (no slowstart, up since boot, or ramp over).
/// Requests to this server go as HTTP/2 streams: `proto h2`, or (in
/// `mode http`, unless `proto h1`) `ssl` with `alpn` offering `h2`, when
/// the server chooses it.
fn wants_h2(proxy: &Proxy, server: &Server) -> bool {
    match server.proto {
        Some(proto) => proto == ServerProto::H2,
        None => {
            proxy.mode == Mode::Http && server.tls.ssl && server.tls.alpn.iter().any(|p| p == "h2")
        }
    }
}

fn ramp_progress(
    since: Option<Millis>,
    slowstart: Option<std::time::Duration>,
    now: Millis,
) -> Option<f64> {
    let total = slowstart.filter(|d| !d.is_zero())?;
    let total = u64::try_from(total.as_millis()).unwrap_or(u64::MAX);
    let elapsed = now.saturating_sub(since?);
    (elapsed < total).then(|| elapsed as f64 / total as f64)
}

/// Weights only ramp for dynamic algorithms, as in HAProxy (static-rr,
/// first and map-based hashing keep their weights).
fn weight_scale(proxy: &Proxy, ramps: &[Option<f64>]) -> u32 {
    use shoal_proto::config::{Balance, HashType};
    let dynamic = match proxy.balance {
        Balance::RoundRobin | Balance::LeastConn | Balance::Random { .. } => true,
        Balance::StaticRr | Balance::First => false,
        _ => proxy.hash_type == HashType::Consistent,
    };
    if dynamic && ramps.iter().any(Option::is_some) {
        WEIGHT_SCALE
    } else {
        1
    }
}

/// Effective weight: grows linearly from about 1/16th to full over the
/// ramp (HAProxy: `uweight * (wdiv * elapsed + slowstart) / slowstart`).
fn slot_weight(weight: u32, ramp: Option<f64>, scale: u32) -> u32 {
    let full = weight * scale;
    match ramp {
        Some(progress) if scale > 1 && weight > 0 => {
            let w = (f64::from(full) * (progress + 1.0 / f64::from(scale))).ceil();
            (w as u32).clamp(1, full)
        }
        _ => full,
    }
}

/// `maxconn` grows from 1 to full over the ramp, whatever the algorithm.
fn ramp_maxconn(maxconn: Option<u32>, ramp: Option<f64>) -> Option<u32> {
    match (maxconn, ramp) {
        (Some(max), Some(progress)) if max > 0 => Some(((f64::from(max) * progress) as u32).max(1)),
        _ => maxconn,
    }
}
