//! Cluster-wide load: every [`INTERVAL`] a node tells each peer how many
//! sessions it has in flight on each server and how many it would like
//! ([`shoal_raft::load`]), and turns its peers' last reports into two
//! numbers per server that the request path reads with relaxed loads
//! ([`crate::routing::ClusterLoad`]):
//!
//! - the peers' sessions, which `leastconn` adds to this node's own;
//! - this node's limit on the server: its share of the server's `maxconn`
//!   ([`shares`]: proportional to each node's demand, at least 1), reached
//!   by growing only into the room the peers' last reported limits leave
//!   ([`next_limit`]).
//!
//! A peer whose last report is older than [`TIMEOUT`], that is no longer
//! a member, or whose server list differs from ours (a config change in
//! flight) counts for nothing. With no live peer (standalone, a cluster of
//! one, everyone else silent) every server is back to its own `maxconn`.
//! The task never touches the request path's locks; the only lock it
//! takes is a backend queue's, to wake waiters when a limit grows.

use crate::routing::Snapshot;
use crate::runtime::Runtime;
use shoal_proto::command::NodeId;
use shoal_raft::cluster::Cluster;
use shoal_raft::load::{layout_hash, LoadReport, ServerLoad, NO_LIMIT};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How often a node reports.
pub const INTERVAL: Duration = Duration::from_millis(100);

/// A peer silent for this long is dropped from the sums: long enough to
/// ride out a few lost datagrams, short enough that a dead node's share
/// comes back within a second.
pub const TIMEOUT: Duration = Duration::from_millis(750);

/// Longest a round's send to one peer may take (connecting included): an
/// unreachable peer is tried again a few rounds later, and the
/// connection slot Raft shares is not held for long.
const SEND_TIMEOUT: Duration = Duration::from_millis(300);

/// What the admin API shows of the peers' reports
/// (`GET /v1/cluster/load`): written once a round by the load task, read
/// by the API, never touched by the request path.
#[derive(Default)]
pub struct Board {
    peers: std::sync::Mutex<Vec<PeerView>>,
}

/// One peer as of the last round.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct PeerView {
    /// The peer's node id.
    pub node: NodeId,
    /// Its sessions count in this node's sums (heard within the timeout,
    /// about the same servers).
    pub live: bool,
    /// Milliseconds since its last report arrived, as of the last round.
    pub heard_ms_ago: u64,
}

impl Board {
    /// The peers as of the last round, by node id.
    pub fn peers(&self) -> Vec<PeerView> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn publish(&self, peers: &HashMap<NodeId, Peer>, now: Instant) {
        let mut views: Vec<PeerView> = peers
            .iter()
            .map(|(id, p)| PeerView {
                node: *id,
                live: p.live,
                heard_ms_ago: now.saturating_duration_since(p.heard).as_millis() as u64,
            })
            .collect();
        views.sort_unstable_by_key(|v| v.node);
        *self.peers.lock().unwrap_or_else(|e| e.into_inner()) = views;
    }
}

/// What the last report of one peer said.
struct Peer {
    /// Counted in the sums (as of the last round); for the log.
    live: bool,
    seq: u64,
    layout: u64,
    heard: Instant,
    servers: Vec<ServerLoad>,
}

impl Peer {
    /// Whether the peer counts in the sums at `now`: heard within
    /// [`TIMEOUT`], about the same servers as ours (`layout`).
    fn counts(&self, now: Instant, layout: u64) -> bool {
        now.saturating_duration_since(self.heard) < TIMEOUT && self.layout == layout
    }
}

/// Split `maxconn` among nodes by their `demands` (this node's and its
/// live peers', in one order every node agrees on): each gets at least 1;
/// the rest, `maxconn - n`, goes in proportion to demand (evenly when
/// nobody wants anything), by largest remainder, ties to the lower index.
/// The shares sum to `maxconn` whenever `maxconn >= n`; otherwise each
/// node gets 1.
pub fn shares(maxconn: u32, demands: &[u32]) -> Vec<u32> {
    let n = demands.len();
    let mut shares = vec![1u32; n];
    let Some(rest) = (maxconn as usize).checked_sub(n).filter(|&r| r > 0) else {
        return shares;
    };
    let total: u64 = demands.iter().map(|&d| u64::from(d)).sum();
    let weight = |i: usize| if total == 0 { 1 } else { u64::from(demands[i]) };
    let total = if total == 0 { n as u64 } else { total };
    let rest = rest as u64;
    let mut given = 0u64;
    let mut remainders: Vec<(u64, usize)> = Vec::with_capacity(n);
    for (i, share) in shares.iter_mut().enumerate() {
        let exact = rest * weight(i);
        let whole = exact / total;
        *share += whole as u32;
        given += whole;
        remainders.push((exact % total, i));
    }
    // Largest remainder first; equal remainders by index.
    remainders.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, i) in remainders.iter().take((rest - given) as usize) {
        shares[i] += 1;
    }
    shares
}

/// This node's next limit on a server with `maxconn`, given its `target`
/// share, its `current` limit (`None` in the first round with peers) and
/// `held`: what the live peers may use, each the larger of its reported
/// limit and its sessions in flight; `nodes` counts them and this node.
///
/// A limit shrinks to its target at once. It grows only into the room
/// the peers' reports leave free, and by at most `max(1, free / nodes)`
/// a round: nodes that grow in the same round (each before it saw the
/// others grow) together take at most the free room plus `nodes - 1`.
pub fn next_limit(maxconn: u32, target: u32, current: Option<u32>, held: u32, nodes: u32) -> u32 {
    let room = maxconn.saturating_sub(held);
    match current {
        None => target.min(room),
        Some(current) if target <= current => target,
        Some(current) => {
            let free = room.saturating_sub(current);
            if free == 0 {
                return current;
            }
            let step = (free / nodes.max(1)).max(1);
            current + step.min(target - current)
        }
    }
}

/// Exchange load reports with the cluster's members until the process
/// ends, showing the peers on `board`. Started once per cluster node.
pub async fn run(runtime: Arc<Runtime>, cluster: Arc<Cluster>, board: Arc<Board>) {
    let Some(mut reports) = cluster.transport().load_reports() else {
        tracing::error!("load reports: already taken; cluster-wide load is off");
        return;
    };
    let me = cluster.node();
    let mut peers: HashMap<NodeId, Peer> = HashMap::new();
    let mut sending: HashMap<NodeId, JoinHandle<()>> = HashMap::new();
    let mut layout = Layout::default();
    // Rounds count from the start time in milliseconds (a round lasts
    // 100), so a restarted node's reports are never taken as late ones.
    let mut seq = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            report = reports.recv() => match report {
                Some((from, report)) => {
                    receive(&mut peers, from, report, layout.servers, Instant::now());
                }
                None => return,
            },
            _ = tick.tick() => {
                seq += 1;
                let snapshot = runtime.snapshot();
                layout.follow(&snapshot);
                let members = cluster.members();
                peers.retain(|id, _| members.contains_key(id) && *id != me);
                let now = Instant::now();
                for (id, p) in peers.iter_mut() {
                    let live = p.counts(now, layout.hash);
                    if live != p.live {
                        p.live = live;
                        announce(me, *id, live);
                    }
                }
                let mut live: Vec<(NodeId, &Peer)> = peers
                    .iter()
                    .filter(|(_, p)| p.live)
                    .map(|(id, p)| (*id, p))
                    .collect();
                live.sort_unstable_by_key(|(id, _)| *id);
                board.publish(&peers, now);
                let mine = apply(&snapshot, me, &live);
                let parts = match LoadReport::encode_parts(me, seq, layout.hash, &mine) {
                    Ok(parts) => Arc::new(parts),
                    Err(e) => {
                        tracing::error!("load report not encoded: {e}");
                        continue;
                    }
                };
                for (id, info) in members.into_iter().filter(|(id, _)| *id != me) {
                    // One send at a time per peer: an unreachable one
                    // must not pile up tasks.
                    if sending.get(&id).is_some_and(|s| !s.is_finished()) {
                        continue;
                    }
                    let transport = cluster.transport().clone();
                    let parts = parts.clone();
                    sending.insert(id, tokio::spawn(async move {
                        if let Err(e) = transport.send_load(id, &info.cluster, &parts, SEND_TIMEOUT).await {
                            tracing::debug!("load report to node {id} not sent: {e}");
                        }
                    }));
                }
                sending.retain(|id, s| !s.is_finished() || peers.contains_key(id));
            }
        }
    }
}

/// Say when a peer starts or stops counting (tests and operators wait
/// for these lines).
fn announce(me: NodeId, peer: NodeId, live: bool) {
    if live {
        println!("[NOTICE] node {me}: load reports from node {peer} arrive; its sessions count cluster-wide");
    } else {
        println!(
            "[WARNING] node {me}: no current load report from node {peer} within {} ms; \
             it is dropped from the cluster-wide load",
            TIMEOUT.as_millis()
        );
    }
}

/// Take one part of a peer's report, arrived at `now`. The receiver
/// checked the sender's certificate. Parts of an older round than the
/// last one seen are late, unless the peer was silent for the timeout
/// (it restarted, its clock went back); parts naming servers past
/// `servers` (ours) are ignored.
fn receive(
    peers: &mut HashMap<NodeId, Peer>,
    from: NodeId,
    report: LoadReport,
    servers: usize,
    now: Instant,
) {
    let first = report.first as usize;
    let end = first + report.servers.len();
    if end > servers {
        return;
    }
    let peer = peers.entry(from).or_insert_with(|| Peer {
        live: false,
        seq: 0,
        layout: report.layout,
        heard: now,
        servers: Vec::new(),
    });
    if report.seq < peer.seq && now.saturating_duration_since(peer.heard) < TIMEOUT {
        return;
    }
    peer.seq = report.seq;
    peer.layout = report.layout;
    peer.heard = now;
    if end > peer.servers.len() {
        peer.servers.resize(end, ServerLoad::default());
    }
    peer.servers[first..end].copy_from_slice(&report.servers);
}

/// Set every server's cluster numbers from the live peers (sorted by node
/// id); return this node's own loads, in layout order, to report.
fn apply(snapshot: &Snapshot, me: NodeId, live: &[(NodeId, &Peer)]) -> Vec<ServerLoad> {
    // Every node orders the demands by node id, so that equal remainders
    // go to the same node whoever computes them.
    let my_index = live.iter().filter(|(id, _)| *id < me).count();
    let mut mine = Vec::new();
    let mut demands = Vec::with_capacity(live.len() + 1);
    for backend in &snapshot.backends {
        let waiting = u32::try_from(backend.queue.len()).unwrap_or(u32::MAX);
        let mut grew = false;
        for server in &backend.servers {
            let index = mine.len();
            let in_flight = server.shared.counters.current();
            let demand = in_flight.saturating_add(waiting);
            let theirs = |i: usize| live[i].1.servers.get(index).copied().unwrap_or_default();
            let mut peers_in_flight = 0u32;
            let mut held = 0u32;
            for i in 0..live.len() {
                let l = theirs(i);
                peers_in_flight = peers_in_flight.saturating_add(l.in_flight);
                let may = if l.limit == NO_LIMIT {
                    l.in_flight
                } else {
                    l.limit.max(l.in_flight)
                };
                held = held.saturating_add(may);
            }
            let limit = match server.maxconn.filter(|&m| m > 0) {
                Some(maxconn) if !live.is_empty() => {
                    demands.clear();
                    demands.extend((0..live.len()).map(|i| theirs(i).demand));
                    demands.insert(my_index, demand);
                    let target = shares(maxconn, &demands)[my_index];
                    let nodes = u32::try_from(demands.len()).unwrap_or(u32::MAX);
                    let current = server.shared.cluster.limit();
                    Some(next_limit(maxconn, target, current, held, nodes))
                }
                _ => None,
            };
            mine.push(ServerLoad {
                in_flight,
                demand,
                limit: limit.unwrap_or(NO_LIMIT),
            });
            let old = server.shared.cluster.set(peers_in_flight, limit);
            grew |= match (old, limit) {
                (Some(old), Some(new)) => new > old,
                (Some(_), None) => true,
                _ => false,
            };
        }
        if grew {
            backend.queue.wake();
        }
    }
    mine
}

/// The current snapshot's server order and its hash, recomputed only when
/// the snapshot changes.
#[derive(Default)]
struct Layout {
    of: Option<std::sync::Weak<Snapshot>>,
    hash: u64,
    /// How many servers it lists.
    servers: usize,
}

impl Layout {
    fn follow(&mut self, snapshot: &Arc<Snapshot>) {
        if self
            .of
            .as_ref()
            .is_some_and(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(snapshot)))
        {
            return;
        }
        self.of = Some(Arc::downgrade(snapshot));
        self.servers = snapshot.backends.iter().map(|b| b.servers.len()).sum();
        self.hash = layout_hash(
            snapshot
                .backends
                .iter()
                .flat_map(|b| b.servers.iter().map(move |s| (&*b.name, &*s.name))),
        );
    }
}

#[cfg(test)]
mod tests;
