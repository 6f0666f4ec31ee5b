//! Every balance algorithm through a real `shoal` and real backends.

mod support;

use std::collections::HashMap;
use support::*;

fn config(balance: &str, extra: &str, servers: &[(&Backend, &str)]) -> String {
    let mut s = format!(
        "global\n    maxconn 1000\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n\
         frontend fe\n    bind 127.0.0.1:0\n    default_backend app\n\
         backend app\n    balance {balance}\n{extra}"
    );
    for (b, opts) in servers {
        s.push_str(&format!("    server {} {} {opts}\n", b.name, b.addr));
    }
    s
}

fn three() -> Vec<Backend> {
    vec![
        Backend::http("s1"),
        Backend::http("s2"),
        Backend::http("s3"),
    ]
}

fn share(counts: &HashMap<String, usize>, name: &str, total: usize) -> f64 {
    *counts.get(name).unwrap_or(&0) as f64 / total as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roundrobin_rotates_evenly_and_never_repeats() {
    let b = three();
    let shoal = Shoal::start(
        &config("roundrobin", "", &[(&b[0], ""), (&b[1], ""), (&b[2], "")]),
        &["fe"],
    );
    let mut client = Client::connect(shoal.addr("fe")).await;
    let mut last = String::new();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..1200 {
        let server = client.get("/").await.server();
        assert_ne!(server, last, "roundrobin picked {server} twice in a row");
        *counts.entry(server.clone()).or_default() += 1;
        last = server;
    }
    for s in ["s1", "s2", "s3"] {
        assert_eq!(counts[s], 400, "counts: {counts:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_200_100_50_share_4_2_1() {
    let b = three();
    for algo in ["roundrobin", "static-rr"] {
        let cfg = config(
            algo,
            "",
            &[
                (&b[0], "weight 200"),
                (&b[1], "weight 100"),
                (&b[2], "weight 50"),
            ],
        );
        let shoal = Shoal::start(&cfg, &["fe"]);
        let counts = tally(shoal.addr("fe"), "/", 1400).await;
        for (name, want) in [("s1", 4.0 / 7.0), ("s2", 2.0 / 7.0), ("s3", 1.0 / 7.0)] {
            let got = share(&counts, name, 1400);
            assert!(
                (got - want).abs() < 0.02,
                "{algo}: {name} got {got:.3}, want {want:.3}: {counts:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weight_zero_gets_no_traffic() {
    let b = three();
    let shoal = Shoal::start(
        &config(
            "roundrobin",
            "",
            &[(&b[0], ""), (&b[1], "weight 0"), (&b[2], "")],
        ),
        &["fe"],
    );
    let counts = tally(shoal.addr("fe"), "/", 1000).await;
    assert_eq!(counts.get("s2"), None, "{counts:?}");
    assert_eq!(counts["s1"] + counts["s3"], 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leastconn_avoids_the_busy_server() {
    let b = three();
    let shoal = Shoal::start(
        &config("leastconn", "", &[(&b[0], ""), (&b[1], ""), (&b[2], "")]),
        &["fe"],
    );
    let addr = shoal.addr("fe");
    // Sequential requests: all servers idle, ties rotate -> even spread.
    let counts = tally(addr, "/", 1200).await;
    for s in ["s1", "s2", "s3"] {
        assert!(share(&counts, s, 1200) > 0.25, "{counts:?}");
    }
    // Hold one long request open; the others must take all the new ones.
    let mut slow = Client::connect(addr).await;
    let holder = tokio::spawn(async move { slow.get("/delay/3000").await.server() });
    let counts = tally(addr, "/", 1000).await;
    let busy = holder.await.expect("slow request");
    // A few requests may race ahead of the slow one's dispatch; after that
    // the busy server gets nothing.
    let on_busy = counts.get(&busy).copied().unwrap_or(0);
    assert!(
        on_busy <= 10,
        "leastconn sent {on_busy} requests to busy {busy}: {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_fills_servers_in_order() {
    let b = three();
    let shoal = Shoal::start(
        &config(
            "first",
            "",
            &[
                (&b[0], "maxconn 1"),
                (&b[1], "maxconn 1"),
                (&b[2], "maxconn 1"),
            ],
        ),
        &["fe"],
    );
    let addr = shoal.addr("fe");
    let counts = tally(addr, "/", 1000).await;
    assert_eq!(
        counts.get("s1"),
        Some(&1000),
        "sequential traffic all on the first server: {counts:?}"
    );
    // With the first server busy, new requests go to the second. A probe
    // can race the slow request to s1 (then the slow one lands on s2), so
    // the scenario is retried until the slow request holds s1.
    for _ in 0..5 {
        let mut slow = Client::connect(addr).await;
        let holder = tokio::spawn(async move { slow.get("/delay/1500").await.server() });
        let mut saw_second = false;
        while !holder.is_finished() {
            saw_second |= get(addr, "/").await.server() == "s2";
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        if holder.await.expect("slow") == "s1" {
            assert!(saw_second, "while s1 was full, no request went to s2");
            return;
        }
    }
    panic!("the slow request never landed on s1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_algorithms_are_sticky_and_spread() {
    let b = three();
    let servers = [(&b[0], ""), (&b[1], ""), (&b[2], "")];
    for (algo, hash_type) in [
        ("uri", "map-based"),
        ("uri", "consistent"),
        ("url_param user", "map-based"),
        ("url_param user", "consistent"),
        ("hdr(x-user)", "consistent"),
    ] {
        let shoal = Shoal::start(
            &config(algo, &format!("    hash-type {hash_type}\n"), &servers),
            &["fe"],
        );
        let mut client = Client::connect(shoal.addr("fe")).await;
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut spread: HashMap<String, usize> = HashMap::new();
        for i in 0..1200 {
            let key = format!("k{}", i % 300);
            let path = format!("/item/{key}?user={key}");
            let r = client.request(&path, &[("x-user", &key)]).await;
            let s = r.server();
            if let Some(prev) = seen.insert(key.clone(), s.clone()) {
                assert_eq!(prev, s, "{algo}/{hash_type}: key {key} moved");
            }
            *spread.entry(s).or_default() += 1;
        }
        assert_eq!(
            spread.len(),
            3,
            "{algo}/{hash_type}: all servers get keys: {spread:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_hash_keeps_a_client_on_one_server() {
    let b = three();
    let cfg = config(
        "source",
        "    hash-type consistent\n",
        &[(&b[0], ""), (&b[1], ""), (&b[2], "")],
    );
    let shoal = Shoal::start(&cfg, &["fe"]);
    // Every connection comes from 127.0.0.1: one server takes all of them.
    let mut servers = std::collections::HashSet::new();
    for _ in 0..1000 {
        servers.insert(get(shoal.addr("fe"), "/").await.server());
        if servers.len() > 1 {
            break;
        }
    }
    assert_eq!(servers.len(), 1, "{servers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_uses_every_server() {
    let b = three();
    let shoal = Shoal::start(
        &config("random", "", &[(&b[0], ""), (&b[1], ""), (&b[2], "")]),
        &["fe"],
    );
    let counts = tally(shoal.addr("fe"), "/", 1200).await;
    for s in ["s1", "s2", "s3"] {
        assert!(share(&counts, s, 1200) > 0.2, "{counts:?}");
    }
}
