//! The chaos run (issue 8, section 5): writes, stick entries and client
//! traffic flow through a 3-node cluster while a seeded loop kills,
//! restarts and cuts off nodes and kills and restarts backends; then
//! everything is healed and the run must show no acknowledged write
//! lost, one state on every node, no client request failed except those
//! in flight at a kill of their node or of a backend that could have
//! served them, and no panic in any log.
//!
//! 60 s of chaos by default; `SHOAL_CHAOS_SECS=900` for the long run,
//! `SHOAL_CHAOS_SEED=N` to replay a run's actions (the seed is printed).

use crate::support::*;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Checks every 200 ms, DOWN after 2 failures, UP after 2 passes.
const CHECK: &str = "check inter 200ms fall 2 rise 2";

/// Clients through round-robin DNS, and writers of weights.
const CLIENTS: u8 = 3;
const WRITERS: usize = 3;

/// [`sticky_pair_config`] over the real backends, checked with [`CHECK`];
/// backend `w` holds the writers' servers (no traffic).
fn chaos_config(backends: &[Backend], series: usize) -> String {
    let mut w = String::from("backend w\n");
    for k in 0..WRITERS {
        for name in writer_servers(k, series) {
            w.push_str(&format!("    server {name} {}\n", backends[0].addr));
        }
    }
    let refs: Vec<&Backend> = backends.iter().collect();
    sticky_pair_config(&refs, CHECK, &w)
}

/// The chaos loop's state: at most one node down or cut, at most one
/// backend down, and what every process printed.
struct Chaos {
    rng: Rng,
    events: Vec<Event>,
    down: Option<Node>,
    cut: Option<(u64, Cut)>,
    /// Backends by name; `None` while killed (its address is kept).
    backends: Vec<(String, String, Option<Backend>)>,
    /// What killed processes printed.
    logs: Vec<(String, String)>,
}

#[derive(Clone, Copy)]
enum Action {
    KillNode,
    CutNode,
    EndNodeFault,
    KillBackend,
    RestartBackend,
}

impl Chaos {
    /// One random action among those the rules allow now.
    async fn act(&mut self, c: &mut Cluster, dns: &Dns) {
        let mut allowed = Vec::new();
        if self.down.is_none() && self.cut.is_none() {
            allowed.extend([Action::KillNode, Action::CutNode]);
        } else {
            allowed.push(Action::EndNodeFault);
        }
        if self.backends.iter().all(|b| b.2.is_some()) {
            // Only once the last restarted backend has had SETTLE to be UP
            // again everywhere: killing the next one sooner could leave a
            // node, for a moment, no server its checks and the verdicts let
            // it use (every one dead, or back but not yet UP), where any
            // load balancer, HAProxy too, answers 503.
            let settled = self
                .events
                .iter()
                .rfind(|e| matches!(e.fault, Fault::BackendRestarted(_)))
                .is_none_or(|e| e.to.elapsed() >= SETTLE);
            if settled {
                allowed.push(Action::KillBackend);
            }
        } else {
            allowed.push(Action::RestartBackend);
        }
        match allowed[self.rng.below(allowed.len())] {
            Action::KillNode => {
                let ids = c.ids();
                let id = ids[self.rng.below(ids.len())];
                let from = Instant::now();
                let mut node = c.kill(id);
                self.logs.push((format!("node {id}"), node.proc.log()));
                self.note(Fault::NodeKilled(id), from);
                self.down = Some(node);
            }
            Action::CutNode => {
                let ids = c.ids();
                let id = ids[self.rng.below(ids.len())];
                let from = Instant::now();
                self.cut = Some((id, Cut::isolate(c.node(id).cluster)));
                self.note(Fault::NodeCut(id), from);
            }
            Action::EndNodeFault => self.end_node_fault(c, dns),
            Action::KillBackend => {
                let i = self.rng.below(self.backends.len());
                let from = Instant::now();
                let mut backend = self.backends[i].2.take().expect("a live backend");
                backend.proc.kill9();
                let name = backend.name.clone();
                self.logs
                    .push((format!("backend {name}"), backend.proc.log()));
                self.note(Fault::BackendKilled(name), from);
            }
            Action::RestartBackend => self.restart_backend(),
        }
    }

    fn note(&mut self, fault: Fault, from: Instant) {
        let to = Instant::now();
        println!("chaos: {fault:?} (took {:?})", to - from);
        self.events.push(Event { fault, from, to });
    }

    /// Restart the killed node from its data directory (and tell DNS its
    /// new ports), or heal the cut one.
    fn end_node_fault(&mut self, c: &mut Cluster, dns: &Dns) {
        let from = Instant::now();
        if let Some(old) = self.down.take() {
            let id = old.id;
            // Starting waits on the process's output (a blocking read).
            tokio::task::block_in_place(|| {
                let node = c.restart(old);
                dns.set(id, node.front("web"), node.front("cookies"));
            });
            self.note(Fault::NodeRestarted(id), from);
        }
        if let Some((id, cut)) = self.cut.take() {
            cut.heal();
            self.note(Fault::NodeHealed(id), from);
        }
    }

    /// Start the killed backend again on its address.
    fn restart_backend(&mut self) {
        let from = Instant::now();
        let Some(slot) = self.backends.iter_mut().find(|b| b.2.is_none()) else {
            return;
        };
        let backend = tokio::task::block_in_place(|| Backend::http_at(&slot.0, &slot.1));
        slot.2 = Some(backend);
        let name = slot.0.clone();
        self.note(Fault::BackendRestarted(name), from);
    }

    /// Every node running and connected, every backend running.
    fn heal_all(&mut self, c: &mut Cluster, dns: &Dns) {
        self.end_node_fault(c, dns);
        self.restart_backend();
    }

    /// Whether anything printed `panicked`: every incarnation, killed or not.
    fn panics(&mut self, c: &mut Cluster) -> Vec<String> {
        let mut logs = std::mem::take(&mut self.logs);
        for (id, node) in &mut c.nodes {
            logs.push((format!("node {id}"), node.proc.log()));
        }
        for (name, _, backend) in &mut self.backends {
            if let Some(b) = backend {
                logs.push((format!("backend {name}"), b.proc.log()));
            }
        }
        logs.iter()
            .flat_map(|(who, log)| {
                log.lines()
                    .filter(|l| l.contains("panicked"))
                    .map(move |l| format!("{who}: {l}"))
            })
            .collect()
    }
}

/// The `used:` count of table `name` in `show table`'s header lines.
fn table_used(node: &Node, name: &str) -> usize {
    let headers = socat(&node.socket(), "show table");
    headers
        .lines()
        .find(|l| l.starts_with(&format!("# table: {name},")))
        .and_then(|l| l.split("used:").nth(1))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no used: count for table {name} in:\n{headers}"))
}

/// Wait until every node reports the same state hash and applied index.
async fn converge(c: &Cluster) -> (String, u64) {
    let ids = c.ids();
    poll_within(
        &format!("nodes {ids:?} reach the same state hash and applied index"),
        Duration::from_secs(120),
        || async {
            let mut seen = Vec::new();
            for &id in &ids {
                let s = c.try_status(id).await?;
                seen.push((own_hash(&s)?, own_applied(&s)?));
            }
            seen.windows(2)
                .all(|w| w[0] == w[1])
                .then(|| seen[0].clone())
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_run_loses_no_acknowledged_write_and_fails_no_unexcused_request() {
    // Before anything: a run whose dice never pick a cut must fail too.
    require_iptables();
    let secs = chaos_secs();
    let seed = chaos_seed();
    println!("chaos: seed {seed} (SHOAL_CHAOS_SEED={seed} replays these actions), {secs} s");
    let backends: Vec<Backend> = ["s1", "s2", "s3"]
        .iter()
        .map(|n| Backend::http(n))
        .collect();
    let series = writer_series(secs);
    let mut c = Cluster::start(3, &chaos_config(&backends, series)).await;
    let dns = Dns::default();
    let mut admins = Vec::new();
    for id in c.ids() {
        let node = c.node_mut(id);
        dns.set(id, node.front("web"), node.front("cookies"));
        admins.push((id, node.admin));
    }

    // The drivers, for the whole run.
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients: Vec<_> = (1..=CLIENTS)
        .map(|i| spawn_client(i, dns.clone(), stop.clone()))
        .collect();
    clients.push(spawn_sticker(dns.clone(), stop.clone()));
    let writers: Vec<_> = (0..WRITERS)
        .map(|k| spawn_writer(k, series, admins.clone(), seed ^ k as u64, stop.clone()))
        .collect();

    // The chaos.
    let mut chaos = Chaos {
        rng: Rng::new(seed),
        events: Vec::new(),
        down: None,
        cut: None,
        backends: backends
            .into_iter()
            .map(|b| (b.name.clone(), b.addr.to_string(), Some(b)))
            .collect(),
        logs: Vec::new(),
    };
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(secs) {
        // A pace, not a wait for a condition: faults last a few seconds.
        tokio::time::sleep(chaos.rng.millis(2000, 5000)).await;
        chaos.act(&mut c, &dns).await;
    }
    let chaos_took = started.elapsed();
    chaos.heal_all(&mut c, &dns);
    let healed = Instant::now();
    stop.store(true, Ordering::SeqCst);
    let mut requests = Vec::new();
    for client in clients {
        requests.extend(client.await.expect("client task"));
    }
    let mut writes = Vec::new();
    for writer in writers {
        writes.push(writer.await.expect("writer task"));
    }
    let (hash, applied) = converge(&c).await;
    let converged_in = healed.elapsed();

    // Acknowledged writes lost: a final weight the record does not allow.
    let reader = c.ids()[0];
    let mut lost = Vec::new();
    for (k, record) in writes.iter().enumerate() {
        for server in writer_servers(k, series) {
            if !record.iter().any(|w| w.server == server) {
                continue;
            }
            let weight = c.server(reader, "w", &server).await["weight"].as_u64();
            let allowed = allowed_finals(record, &server);
            if !weight.is_some_and(|w| allowed.contains(&(w as u32))) {
                lost.push(format!(
                    "w/{server}: weight {weight:?}, allowed {allowed:?}"
                ));
            }
        }
    }
    let writes: Vec<&Write> = writes.iter().flatten().collect();
    let acked = writes.iter().filter(|w| w.acked).count();

    // Failed client requests, excused or not.
    let failed: Vec<&Request> = requests.iter().filter(|r| r.outcome.is_err()).collect();
    let unexcused: Vec<&&Request> = failed
        .iter()
        .filter(|r| excuse(r, &chaos.events).is_none())
        .collect();
    // Every node's own table (what its data plane reads) follows the
    // replicated one: the same entries everywhere.
    let tables: Vec<(u64, BTreeMap<String, String>)> = tokio::task::block_in_place(|| {
        c.ids()
            .into_iter()
            .map(|id| (id, stick_table(c.node(id), "app")))
            .collect()
    });
    let stick_entries = tables[0].1.len();
    // With the traffic stopped, the dump read is whole: as many entries as
    // the table's header counts.
    let used = tokio::task::block_in_place(|| table_used(c.node(reader), "app"));
    let differ: Vec<String> = tables[1..]
        .iter()
        .filter(|(_, t)| *t != tables[0].1)
        .map(|(id, t)| {
            let other = &tables[0];
            let mut keys: Vec<&String> = t.keys().chain(other.1.keys()).collect();
            keys.sort();
            keys.dedup();
            let diff: Vec<String> = keys
                .into_iter()
                .filter(|k| t.get(*k) != other.1.get(*k))
                .map(|k| {
                    format!(
                        "{k}: {:?} here, {:?} on node {}",
                        t.get(k),
                        other.1.get(k),
                        other.0
                    )
                })
                .collect();
            format!("node {id}: {diff:?}")
        })
        .collect();
    let panics = chaos.panics(&mut c);

    let mut actions: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &chaos.events {
        *actions.entry(e.fault.kind()).or_default() += 1;
    }
    println!("chaos figures (seed {seed})");
    println!("  chaos duration                 {chaos_took:.1?}");
    for (kind, n) in &actions {
        println!("  actions: {kind:<21} {n}");
    }
    println!("  writes acknowledged            {acked}");
    println!("  writes failed or unknown       {}", writes.len() - acked);
    println!("  acknowledged writes lost       {}", lost.len());
    println!("  client requests                {}", requests.len());
    println!("  client requests failed         {}", failed.len());
    println!(
        "  of which excused (kill moment) {}",
        failed.len() - unexcused.len()
    );
    println!("  failed and not excused         {}", unexcused.len());
    println!("  stick entries at the end       {stick_entries} (tables differing: {differ:?})");
    println!("  state hash on all nodes        {hash} at index {applied}");
    println!("  converged after heal in        {converged_in:.1?}");
    println!("  panics in logs                 {}", panics.len());
    for r in &failed {
        let why = excuse(r, &chaos.events)
            .map_or("NOT EXCUSED".to_string(), |e| format!("{:?}", e.fault));
        println!(
            "  failed: {} via node {} ({:.1?} into the run, {:?}): {:?} -- {why}",
            r.who,
            r.via,
            r.started.saturating_duration_since(started),
            r.ended - r.started,
            r.outcome
        );
    }

    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    assert!(panics.is_empty(), "panics: {panics:?}");
    assert!(differ.is_empty(), "stick tables differ: {differ:?}");
    assert_eq!(
        stick_entries, used,
        "entries read from `show table app` against its header's used:"
    );
    assert!(
        unexcused.is_empty(),
        "{} client requests failed outside kill moments (listed above)",
        unexcused.len()
    );
    assert!(
        acked > 0 && requests.len() > failed.len() && stick_entries > 0,
        "the drivers ran"
    );
}
