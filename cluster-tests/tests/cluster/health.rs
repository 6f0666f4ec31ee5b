//! Failure drills of the health path (issue 8): a backend killed (the
//! first drill) and one node's link to one backend cut (the third), with
//! clients through every node, counted.

use crate::support::*;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// Checks every 200 ms, DOWN after 2 failures, UP after 2 passes.
const CHECK: &str = "check inter 200ms fall 2 rise 2";

/// How long a transition may take on a busy 2-core machine: `fall *
/// inter` (400 ms) plus a Raft commit, with a wide margin.
const WITHIN: Duration = Duration::from_secs(10);

/// Requests through one node, one fresh connection each, until `stop`:
/// (answered 200, failed, answered by each server).
#[derive(Debug, Default)]
struct Counts {
    ok: AtomicUsize,
    failed: AtomicUsize,
    /// Failures: when the request started, and what the client saw.
    errors: std::sync::Mutex<Vec<(Instant, String)>>,
}

/// Run a client through `front` until `stop`; every answer not 200 and
/// every request without an answer counts as failed.
fn client(front: SocketAddr, stop: Arc<AtomicBool>) -> (Arc<Counts>, tokio::task::JoinHandle<()>) {
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    let task = tokio::spawn(async move {
        while !stop.load(Ordering::SeqCst) {
            let started = Instant::now();
            match try_http(front, "GET", "/", &[], "", Duration::from_secs(20)).await {
                Ok(r) if r.status == 200 => {
                    c.ok.fetch_add(1, Ordering::SeqCst);
                }
                Ok(r) => {
                    c.failed.fetch_add(1, Ordering::SeqCst);
                    let mut e = c.errors.lock().unwrap_or_else(|e| e.into_inner());
                    e.push((
                        started,
                        format!("{front}: status {} {}", r.status, r.body.trim()),
                    ));
                }
                Err(why) => {
                    c.failed.fetch_add(1, Ordering::SeqCst);
                    let mut e = c.errors.lock().unwrap_or_else(|e| e.into_inner());
                    e.push((started, why));
                }
            }
        }
    });
    (counts, task)
}

/// Stop the clients; the failed requests that started after `fault`
/// (the fault fully in place), and how many started before it. A request
/// a server was already handling when it died (or its link was cut) fails
/// with 502, as in HAProxy (Shoal retries connection failures, not a
/// request the server may have seen); each client has one such request
/// at most.
async fn finish(
    clients: Vec<(Arc<Counts>, tokio::task::JoinHandle<()>)>,
    stop: &AtomicBool,
    fault: Instant,
) -> (Vec<String>, usize) {
    stop.store(true, Ordering::SeqCst);
    let (mut after, mut before) = (Vec::new(), 0);
    for (counts, task) in clients {
        task.await.expect("client");
        let errors = counts.errors.lock().unwrap_or_else(|e| e.into_inner());
        let in_flight = errors.iter().filter(|(at, _)| *at < fault).count();
        assert!(
            in_flight <= 1,
            "more than the request in flight failed: {errors:?}"
        );
        before += in_flight;
        after.extend(
            errors
                .iter()
                .filter(|(at, _)| *at >= fault)
                .map(|(_, e)| e.clone()),
        );
    }
    (after, before)
}

/// Node `id`'s `GET /v1/cluster/health` entry for `server` of `app`.
async fn health(c: &Cluster, id: u64, server: &str) -> Value {
    let r = admin(c.node(id).admin, "GET", "/v1/cluster/health", "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    v["servers"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["server"] == server).cloned())
        .unwrap_or_else(|| panic!("{server} not in node {id}'s health view: {v}"))
}

/// What node `id` reports of `server` in the cluster view (`UP`, `DOWN`).
fn report_of(view: &Value, node: u64) -> Option<String> {
    view["reports"].as_array()?.iter().find_map(|r| {
        (r["node"] == node).then(|| r["report"].as_str().unwrap_or_default().to_string())
    })
}

/// Wait until `accept(view)` holds for `server` on every node of `ids`;
/// returns how long it took.
async fn on_every_node(
    c: &Cluster,
    ids: &[u64],
    server: &str,
    what: &str,
    within: Duration,
    accept: impl Fn(&Value) -> bool,
) -> Duration {
    let start = Instant::now();
    for &id in ids {
        let accept = &accept;
        poll_within(
            &format!("node {id}: {server} {what}"),
            within,
            || async move { accept(&health(c, id, server).await).then_some(()) },
        )
        .await;
    }
    start.elapsed()
}

/// Three nodes with their own environment each.
async fn start(config: &str, env: [Vec<(&str, String)>; 3]) -> Cluster {
    let mut c = Cluster::prepare(config, None).await;
    let pairs =
        |i: usize| -> Vec<(&str, &str)> { env[i].iter().map(|(k, v)| (*k, v.as_str())).collect() };
    c.spawn_with_env(1, None, &pairs(0));
    c.init(1).await;
    let via = c.node(1).cluster;
    c.spawn_with_env(2, Some(via), &pairs(1));
    c.spawn_with_env(3, Some(via), &pairs(2));
    for id in [2, 3] {
        c.node_mut(id)
            .proc
            .wait_line(&format!("node {id} joined the cluster through {via}"));
    }
    c.wait_voters(1, &[1, 2, 3]).await;
    c.converged(&[1, 2, 3]).await;
    c
}

/// Drill 1: a backend is killed while clients send through all three
/// nodes. Every node has it DOWN within the check timing, and with
/// `retries 3` and `option redispatch` no client request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_killed_backend_is_down_everywhere_and_no_request_fails() {
    let s1 = Backend::http("s1");
    let s2 = Backend::http("s2");
    let s3 = Backend::http("s3");
    let mut text = config(&[], "");
    text.push_str(&format!(
        "    retries 3\n    option redispatch\n\
         \x20   server s1 {} {CHECK}\n    server s2 {} {CHECK}\n    server s3 {} {CHECK}\n",
        s1.addr, s2.addr, s3.addr
    ));
    let mut c = start(&text, [vec![], vec![], vec![]]).await;
    let all = [1, 2, 3];
    // Every node's first checks are in: three UP reports per server.
    for server in ["s1", "s2", "s3"] {
        on_every_node(&c, &all, server, "reported UP by all", WITHIN, |v| {
            all.iter()
                .all(|&n| report_of(v, n).as_deref() == Some("UP"))
        })
        .await;
    }
    let fronts: Vec<SocketAddr> = all.iter().map(|&id| c.node_mut(id).front("web")).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = fronts.iter().map(|&f| client(f, stop.clone())).collect();
    poll("every client has 20 answers", || async {
        clients
            .iter()
            .all(|(n, _)| n.ok.load(Ordering::SeqCst) >= 20)
            .then_some(())
    })
    .await;

    drop(s2);
    let fault = Instant::now();
    let took = on_every_node(&c, &all, "s2", "DOWN by verdict", WITHIN, |v| {
        v["verdict"] == "DOWN" && v["health"] == "down"
    })
    .await;
    eprintln!("s2 DOWN on every node {took:?} after the kill");
    // Every node logs the verdict once, saying who saw what.
    for id in all {
        let line = c
            .node_mut(id)
            .proc
            .wait_line("Server app/s2 is DOWN (cluster verdict: ");
        assert!(line.contains("; rule majority)"), "{line}");
    }
    // Keep the clients going a little past the verdict.
    let seen: Vec<usize> = clients
        .iter()
        .map(|(n, _)| n.ok.load(Ordering::SeqCst))
        .collect();
    poll("every client has 20 more answers", || async {
        clients
            .iter()
            .zip(&seen)
            .all(|((n, _), s)| n.ok.load(Ordering::SeqCst) >= s + 20)
            .then_some(())
    })
    .await;
    let (failed, in_flight) = finish(clients, &stop, fault).await;
    eprintln!("{in_flight} requests in flight at the fault failed");
    assert!(
        failed.is_empty(),
        "requests after the fault failed: {failed:?}"
    );
    for id in all {
        let line_count = c
            .node_mut(id)
            .proc
            .count("Server app/s2 is DOWN (cluster verdict: ");
        assert_eq!(line_count, 1, "node {id} logs the verdict once");
    }
}

/// A TCP relay the test controls, in front of one backend; only node 3's
/// config reaches the backend through it.
struct Relay {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(to: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let addr = listener.local_addr().expect("relay address");
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Relay { addr, task }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Connections to one local TCP port refused (RST) while this lives; the
/// rule is removed on drop, even when the test fails.
struct Refuse {
    rule: Vec<String>,
}

impl Refuse {
    fn port(port: u16) -> Refuse {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test cuts a link with iptables and must run as root (CI does)"
        );
        let rule: Vec<String> = [
            "OUTPUT",
            "-p",
            "tcp",
            "-d",
            "127.0.0.1",
            "--dport",
            &port.to_string(),
            "-j",
            "REJECT",
            "--reject-with",
            "tcp-reset",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        iptables("-I", &rule);
        Refuse { rule }
    }
}

impl Drop for Refuse {
    fn drop(&mut self) {
        iptables("-D", &self.rule);
    }
}

/// Drill 3: node 3's link to s1 is cut. s1 stays UP for the cluster
/// (nodes 1 and 2 report UP; majority) and keeps taking traffic through
/// nodes 1 and 2; node 3 routes around it at once (no failed request) and
/// uses it again once the link heals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_one_nodes_link_cut_is_avoided_there_only() {
    let s1 = Backend::http("s1");
    let s2 = Backend::http("s2");
    let relay = Relay::start(s1.addr).await;
    let mut text = config(&[], "");
    text.push_str(&format!(
        "    retries 3\n    option redispatch\n\
         \x20   server s1 \"${{S1_ADDR}}\" {CHECK}\n    server s2 {} {CHECK}\n",
        s2.addr
    ));
    let direct = s1.addr.to_string();
    let env = |addr: &str| vec![("S1_ADDR", addr.to_string())];
    let mut c = start(
        &text,
        [env(&direct), env(&direct), env(&relay.addr.to_string())],
    )
    .await;
    let all = [1, 2, 3];
    on_every_node(&c, &all, "s1", "reported UP by all", WITHIN, |v| {
        all.iter()
            .all(|&n| report_of(v, n).as_deref() == Some("UP"))
    })
    .await;
    let fronts: Vec<SocketAddr> = all.iter().map(|&id| c.node_mut(id).front("web")).collect();
    let reaches_s1 = |front: SocketAddr| async move { tally(front, 10).await.contains_key("s1") };
    for &f in &fronts {
        assert!(reaches_s1(f).await, "s1 serves through {f}");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = fronts.iter().map(|&f| client(f, stop.clone())).collect();
    let cut = Refuse::port(relay.addr.port());
    let fault = Instant::now();
    let took = on_every_node(&c, &[3], "s1", "avoided on node 3", WITHIN, |v| {
        v["avoided_here"] == true && report_of(v, 3).as_deref() == Some("DOWN")
    })
    .await;
    eprintln!("node 3 avoids s1 {took:?} after the cut");
    // Node 3 sends s1 nothing now.
    let counts = tally(fronts[2], 20).await;
    assert_eq!(counts.get("s2"), Some(&20), "through node 3: {counts:?}");
    // For the cluster s1 is UP: nodes 1 and 2 report UP, node 3 DOWN.
    on_every_node(&c, &all, "s1", "UP by verdict", WITHIN, |v| {
        v["verdict"] == "UP" && v["health"] == "up" && report_of(v, 3).as_deref() == Some("DOWN")
    })
    .await;
    for id in [1, 2] {
        let v = health(&c, id, "s1").await;
        assert_eq!(v["avoided_here"], false, "node {id}: {v}");
        assert!(
            reaches_s1(fronts[id as usize - 1]).await,
            "s1 serves through node {id}"
        );
    }
    let seen: Vec<usize> = clients
        .iter()
        .map(|(n, _)| n.ok.load(Ordering::SeqCst))
        .collect();
    poll("every client has 20 more answers", || async {
        clients
            .iter()
            .zip(&seen)
            .all(|((n, _), s)| n.ok.load(Ordering::SeqCst) >= s + 20)
            .then_some(())
    })
    .await;

    // Healed: node 3's checks pass again and it uses s1 again.
    drop(cut);
    on_every_node(&c, &[3], "s1", "used again by node 3", WITHIN, |v| {
        v["avoided_here"] == false && report_of(v, 3).as_deref() == Some("UP")
    })
    .await;
    let front3 = fronts[2];
    poll("s1 serves through node 3 again", || async move {
        reaches_s1(front3).await.then_some(())
    })
    .await;
    let (failed, in_flight) = finish(clients, &stop, fault).await;
    eprintln!("{in_flight} requests in flight at the fault failed");
    assert!(
        failed.is_empty(),
        "requests after the fault failed: {failed:?}"
    );
    for id in all {
        let down = c
            .node_mut(id)
            .proc
            .count("Server app/s1 is DOWN (cluster verdict");
        assert_eq!(down, 0, "node {id}: s1 never DOWN for the cluster");
    }
    drop(relay);
}

/// `cluster-health any`, and a node's removal: node 3 alone cannot reach
/// s1, which under `any` takes s1 from everyone (the rule's failure
/// mode). Node 3 dies: its last report still counts while it is a member.
/// `shoal cluster remove 3`: its reports stop counting, and the verdict
/// is derived again on every node (UP, s1 serves again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_nodes_reports_stop_counting() {
    let s1 = Backend::http("s1");
    let s2 = Backend::http("s2");
    let relay = Relay::start(s1.addr).await;
    let mut text = config(&[], "");
    text.push_str(&format!(
        "    cluster-health any\n    retries 3\n    option redispatch\n\
         \x20   server s1 \"${{S1_ADDR}}\" {CHECK}\n    server s2 {} {CHECK}\n",
        s2.addr
    ));
    let direct = s1.addr.to_string();
    let env = |addr: &str| vec![("S1_ADDR", addr.to_string())];
    let mut c = start(
        &text,
        [env(&direct), env(&direct), env(&relay.addr.to_string())],
    )
    .await;
    let all = [1, 2, 3];
    on_every_node(&c, &all, "s1", "reported UP by all", WITHIN, |v| {
        all.iter()
            .all(|&n| report_of(v, n).as_deref() == Some("UP"))
    })
    .await;
    let _cut = Refuse::port(relay.addr.port());
    on_every_node(&c, &all, "s1", "DOWN by verdict (rule any)", WITHIN, |v| {
        v["verdict"] == "DOWN" && v["rule"] == "any" && report_of(v, 3).as_deref() == Some("DOWN")
    })
    .await;
    let line = c
        .node_mut(1)
        .proc
        .wait_line("Server app/s1 is DOWN (cluster verdict: ");
    assert!(
        line.ends_with("(cluster verdict: node 3 reports DOWN, nodes 1 and 2 UP; rule any)."),
        "{line}"
    );
    let front1 = c.node_mut(1).front("web");
    assert_eq!(tally(front1, 10).await.get("s2"), Some(&10));

    // Dead but still a member: its last report stands.
    c.kill(3);
    let v = health(&c, 1, "s1").await;
    assert_eq!(
        (v["verdict"].as_str(), report_of(&v, 3).as_deref()),
        (Some("DOWN"), Some("DOWN")),
        "{v}"
    );
    let admin1 = c.node(1).admin.to_string();
    poll("shoal cluster remove 3 succeeds", || async {
        let out = shoal(&["cluster", "remove", "3", "--admin", &admin1]).await;
        (out.code == Some(0)).then_some(())
    })
    .await;
    on_every_node(&c, &[1, 2], "s1", "UP without node 3", WITHIN, |v| {
        v["verdict"] == "UP" && report_of(v, 3).is_none()
    })
    .await;
    for id in [1, 2] {
        let line = c
            .node_mut(id)
            .proc
            .wait_line("Server app/s1 is UP (cluster verdict: ");
        assert!(
            line.ends_with("(cluster verdict: nodes 1 and 2 report UP; rule any)."),
            "node {id}: {line}"
        );
    }
    poll("s1 serves through node 1 again", || async move {
        tally(front1, 10).await.contains_key("s1").then_some(())
    })
    .await;
    c.converged(&[1, 2]).await;
    drop(relay);
}
