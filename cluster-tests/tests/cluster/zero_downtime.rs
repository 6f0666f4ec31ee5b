//! Zero downtime under load: while clients spread over the nodes as
//! round-robin DNS would (moving to the next address when one refuses the
//! connection), every operator action below completes without a single
//! failed client request:
//!
//! 1. weight changes through different nodes;
//! 2. a server drained, taken out (`maint`) and put back;
//! 3. a config apply that adds a backend and a server and removes a server;
//! 4. a node drained, stopped (SIGTERM), restarted and made ready;
//! 5. a rolling upgrade: every node in turn drained, stopped, started on
//!    another build of `shoal` (a copy of the binary), made ready.
//!
//! A node is drained as in production: its `/ready` turns 503, the DNS
//! health check withdraws its record, and its listeners stay open for the
//! config's `grace` (1 s) for clients that resolved it just before, then
//! close. Each node drained and stopped also has slow requests in flight
//! through it (answered after [`SLOW_MS`], longer than the drain and the
//! SIGTERM take), which must all complete whole.

use crate::support::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLIENTS: u8 = 4;

/// Slow requests in flight through a node when it is drained and stopped.
const SLOW: usize = 4;
/// How long the backend takes to answer each of them.
const SLOW_MS: u64 = 5000;

/// [`sticky_pair_config`] with health checks every 200 ms, `grace 1s`,
/// and a frontend `slow` that only the slow requests use (so that its
/// `scur` counts them alone).
fn zd_config(backends: &[&Backend], extra: &str) -> String {
    let slow =
        format!("frontend slow\n    bind \"${{NODE_IP}}:0\"\n    default_backend ck\n{extra}");
    sticky_pair_config(backends, "check inter 200ms fall 2 rise 2", &slow).replacen(
        "global\n",
        "global\n    grace 1s\n",
        1,
    )
}

/// Start [`SLOW`] slow requests through node `id`'s frontend `slow` and
/// wait until the node has them all in progress.
async fn slow_requests(
    c: &mut Cluster,
    id: u64,
) -> Vec<tokio::task::JoinHandle<(Result<Resp, String>, Duration)>> {
    let front = c.node_mut(id).front("slow");
    let path = format!("/delay/{SLOW_MS}");
    let requests = (0..SLOW)
        .map(|_| {
            let path = path.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let r = try_http(front, "GET", &path, &[], "", Duration::from_secs(60)).await;
                (r, started.elapsed())
            })
        })
        .collect();
    let socket = c.node(id).dir.join("admin.sock");
    poll(
        &format!("node {id} has the {SLOW} slow requests in progress"),
        || {
            let socket = socket.clone();
            async move {
                let scur =
                    tokio::task::block_in_place(|| stat_field(&socket, "slow", "FRONTEND", "scur"));
                (scur == SLOW.to_string()).then_some(())
            }
        },
    )
    .await;
    requests
}

/// The clients' requests so far, taken phase by phase.
struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<Vec<Request>>>,
    started: Instant,
}

impl Load {
    fn start(dns: &Dns) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (1..=CLIENTS)
            .map(|i| spawn_client(i, dns.clone(), stop.clone()))
            .collect();
        Load {
            stop,
            clients,
            started: Instant::now(),
        }
    }

    async fn finish(self) -> Vec<Request> {
        self.stop.store(true, Ordering::SeqCst);
        let mut all = Vec::new();
        for c in self.clients {
            all.extend(c.await.expect("client task"));
        }
        all
    }
}

/// Point the DNS entry of node `id` at its frontends as last opened.
fn publish(c: &mut Cluster, dns: &Dns, id: u64) {
    let node = c.node_mut(id);
    let (web, cookies) = (node.front("web"), node.front("cookies"));
    dns.set(id, web, cookies);
}

async fn cli(args: &[&str]) {
    shoal(args).await.ok();
}

/// Drain node `id` through node `via`, wait until it refuses connections,
/// stop it, start it again (on `program`, when given), make it ready,
/// publish its new ports.
async fn cycle_node(
    c: &mut Cluster,
    dns: &Dns,
    id: u64,
    via: u64,
    program: Option<&std::path::Path>,
) {
    let admin = c.node(via).admin.to_string();
    let slow = slow_requests(c, id).await;
    cli(&["node", "drain", &id.to_string(), "--admin", &admin]).await;
    let probe = c.node(id).admin;
    poll(&format!("node {id}'s /ready answers 503"), || async move {
        let r = try_http(probe, "GET", "/ready", &[], "", DEADLINE).await;
        r.is_ok_and(|r| r.status == 503).then_some(())
    })
    .await;
    dns.withdraw(id);
    let front = c.node_mut(id).front("web");
    poll(
        &format!("node {id} refuses new connections"),
        || async move {
            tokio::net::TcpStream::connect(front)
                .await
                .is_err()
                .then_some(())
        },
    )
    .await;
    assert!(
        slow.iter().all(|r| !r.is_finished()),
        "the slow requests must still be in flight at the SIGTERM (the machine was too slow for this test)"
    );
    let old = tokio::task::block_in_place(|| c.stop(id));
    // SIGTERM let them finish: each whole, none cut short.
    for r in slow {
        let (r, took) = r.await.expect("slow request task");
        let r = r.unwrap_or_else(|e| panic!("a slow request through node {id} failed: {e}"));
        assert_eq!(r.status, 200, "a slow request through node {id}: {r:?}");
        assert!(
            took >= Duration::from_millis(SLOW_MS),
            "a slow request through node {id} answered after {took:?}"
        );
    }
    tokio::task::block_in_place(|| match program {
        Some(p) => {
            c.restart_program(old, p);
        }
        None => {
            c.restart(old);
        }
    });
    c.converged(&c.ids()).await;
    cli(&["node", "ready", &id.to_string(), "--admin", &admin]).await;
    tokio::task::block_in_place(|| publish(c, dns, id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_actions_under_load_fail_no_request() {
    let (s1, s2, s3, s4) = (
        Backend::http("s1"),
        Backend::http("s2"),
        Backend::http("s3"),
        Backend::http("s4"),
    );
    let mut c = Cluster::start(3, &zd_config(&[&s1, &s2, &s3], "")).await;
    let dns = Dns::default();
    for id in c.ids() {
        publish(&mut c, &dns, id);
    }
    let admin = |c: &Cluster, id: u64| c.node(id).admin.to_string();

    let mut phases: Vec<(&str, Vec<Request>, Duration)> = Vec::new();
    let mut phase = |name: &'static str, load: Load, requests: Vec<Request>| {
        let took = load.started.elapsed();
        phases.push((name, requests, took));
    };

    // 1. Weights, through every node in turn.
    let load = Load::start(&dns);
    for round in 0..3u64 {
        let via = 1 + round % 3;
        cli(&[
            "server",
            "weight",
            "app/s1",
            "0",
            "--admin",
            &admin(&c, via),
        ])
        .await;
        cli(&["server", "weight", "ck/s2", "0", "--admin", &admin(&c, via)]).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        cli(&[
            "server",
            "weight",
            "app/s1",
            "1",
            "--admin",
            &admin(&c, via),
        ])
        .await;
        cli(&["server", "weight", "ck/s2", "1", "--admin", &admin(&c, via)]).await;
    }
    let (load, requests) = finish_phase(load).await;
    phase("weight changes", load, requests);

    // 2. A server drained, taken out, put back.
    let load = Load::start(&dns);
    for state in ["drain", "maint", "ready"] {
        for b in ["app", "ck"] {
            let server = format!("{b}/s2");
            cli(&["server", "state", &server, state, "--admin", &admin(&c, 2)]).await;
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let (load, requests) = finish_phase(load).await;
    phase("server drain, maint, ready", load, requests);

    // 3. A config apply: s4 and a backend added, s3 removed; then back.
    let load = Load::start(&dns);
    let extra = "backend spare\n    server x 127.0.0.1:9\n";
    let next = c.dir.file("next.cfg", &zd_config(&[&s1, &s2, &s4], extra));
    let first = c.dir.file("first.cfg", &zd_config(&[&s1, &s2, &s3], ""));
    for file in [&next, &first, &next] {
        let file = file.display().to_string();
        cli(&["config", "apply", "-f", &file, "--admin", &admin(&c, 3)]).await;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let (load, requests) = finish_phase(load).await;
    phase("config apply (add and remove)", load, requests);

    // 4. Node 2 drained, stopped, restarted, ready.
    let load = Load::start(&dns);
    cycle_node(&mut c, &dns, 2, 1, None).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (load, requests) = finish_phase(load).await;
    phase("node drained and restarted", load, requests);

    // 5. A rolling upgrade onto another build (a copy of the binary).
    let upgraded = c.dir.path("shoal-next");
    std::fs::copy(bin("shoal"), &upgraded).expect("copy the shoal binary");
    let load = Load::start(&dns);
    for id in [1, 2, 3] {
        let via = if id == 1 { 2 } else { 1 };
        cycle_node(&mut c, &dns, id, via, Some(&upgraded)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (load, requests) = finish_phase(load).await;
    phase("rolling upgrade of 3 nodes", load, requests);

    // Every node runs the new build and has the same state.
    for id in [1, 2, 3] {
        let pid = c.node(id).proc.child.id();
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe");
        assert_eq!(exe, upgraded, "node {id} runs the upgraded binary");
    }
    c.converged(&[1, 2, 3]).await;

    eprintln!("| phase | took | requests | requests/s | failed |");
    eprintln!("|---|---:|---:|---:|---:|");
    let mut failures = Vec::new();
    for (name, requests, took) in &phases {
        let failed: Vec<&Request> = requests.iter().filter(|r| r.outcome.is_err()).collect();
        eprintln!(
            "| {name} | {:.1} s | {} | {:.0} | {} |",
            took.as_secs_f64(),
            requests.len(),
            requests.len() as f64 / took.as_secs_f64(),
            failed.len()
        );
        assert!(
            requests.len() > 20,
            "{name}: the load hardly ran ({})",
            requests.len()
        );
        for id in [1, 2, 3] {
            assert!(
                requests.iter().any(|r| r.via == id && r.outcome.is_ok()),
                "{name}: no request was served through node {id}"
            );
        }
        failures.extend(
            failed
                .into_iter()
                .map(|r| format!("{name}: {} via node {}: {:?}", r.who, r.via, r.outcome)),
        );
    }
    assert!(
        failures.is_empty(),
        "failed requests:\n{}",
        failures.join("\n")
    );
}

/// Stop a phase's load; its requests.
async fn finish_phase(load: Load) -> (Load, Vec<Request>) {
    let marker = Load {
        stop: load.stop.clone(),
        clients: Vec::new(),
        started: load.started,
    };
    (marker, load.finish().await)
}
