//! Backup and restore of the replicated state, and disaster recovery:
//! `shoal cluster backup --out FILE` through any node, `shoal cluster
//! restore FILE` through any node, and, once a majority is lost for good,
//! a backup read from a stopped node's data directory
//! (`--data-dir`) restored into a new cluster.

use crate::support::*;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

/// Client source address `i` (127.0.2.i), for `stick on src`.
fn source(i: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 2, i))
}

/// `app` over the backends, sticking on the client's address.
fn backup_config(backends: &[&Backend]) -> String {
    config(backends, "").replace(
        "backend app\n    balance roundrobin\n",
        "backend app\n    balance roundrobin\n    stick-table type ip size 10k expire 30m\n    stick on src\n",
    )
}

/// The state hash `shoal cluster backup|restore` printed.
fn printed_hash(out: &str) -> String {
    out.split("state hash ")
        .nth(1)
        .and_then(|rest| rest.split([',', ' ', '\n']).next())
        .unwrap_or_else(|| panic!("no state hash in {out:?}"))
        .to_string()
}

/// POST a file's bytes to an admin API route with curl: status, body.
fn post_file(admin: std::net::SocketAddr, path: &str, file: &Path) -> (u16, String) {
    let out = std::process::Command::new("curl")
        .args(["-s", "--max-time", "30", "-w", "\n%{http_code}", "-H"])
        .arg(format!("authorization: Bearer {TOKEN}"))
        .args([
            "-H",
            "content-type: application/octet-stream",
            "--data-binary",
        ])
        .arg(format!("@{}", file.display()))
        .arg(format!("http://{admin}{path}"))
        .output()
        .expect("curl (./test.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.trim().parse().unwrap_or(0), body.to_string())
}

/// Wait until every node in `ids` has `hash`.
async fn all_have(c: &Cluster, ids: &[u64], hash: &str) {
    for &id in ids {
        poll(&format!("node {id} has state hash {hash}"), || async move {
            let status = c.try_status(id).await?;
            (own_hash(&status).as_deref() == Some(hash)).then_some(())
        })
        .await;
    }
}

async fn weight(c: &Cluster, id: u64, server: &str) -> u64 {
    c.server(id, "app", server).await["weight"]
        .as_u64()
        .expect("a weight")
}

/// Stick clients 1..=n through node `id`: source address -> server.
async fn stick(c: &mut Cluster, id: u64, n: u8) -> BTreeMap<String, String> {
    let front = c.node_mut(id).front("web");
    let mut chosen = BTreeMap::new();
    for i in 1..=n {
        let (server, _) = ok_from(source(i), front, None).await;
        chosen.insert(source(i).to_string(), server);
    }
    chosen
}

/// Whether node `id`'s table is exactly `want`.
fn table_is(c: &Cluster, id: u64, want: &BTreeMap<String, String>) -> bool {
    stick_table(c.node(id), "app") == *want
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_through_one_node_is_restored_through_another() {
    let (s1, s2) = (Backend::http("s1"), Backend::http("s2"));
    let mut c = Cluster::start(3, &backup_config(&[&s1, &s2])).await;
    let out_dir = TempDir::new("backup");
    let file = out_dir.path("state.shoalbak");
    let file_arg = file.display().to_string();

    // The state to keep: a weight, a drained node, stick entries.
    assert_eq!(c.put_weight(1, "app", "s1", 7).await.status, 200);
    let admin1 = c.node(1).admin.to_string();
    shoal(&["node", "drain", "3", "--admin", &admin1])
        .await
        .ok();
    let sessions = stick(&mut c, 1, 6).await;
    poll("every node holds the stick entries", || async {
        [1, 2, 3]
            .iter()
            .all(|&id| table_is(&c, id, &sessions))
            .then_some(())
    })
    .await;

    // Backup through node 2: every acknowledged write is in it.
    let admin2 = c.node(2).admin.to_string();
    let out = shoal(&["cluster", "backup", "--out", &file_arg, "--admin", &admin2]).await;
    let saved = printed_hash(out.ok());
    assert!(out.stdout.contains("6 stick entries"), "{}", out.stdout);
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&file)
        .expect("the backup")
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "a backup is readable by its owner only"
    );
    let now = c.converged(&[1, 2, 3]).await;
    assert_eq!(saved, now, "the backup's hash is the cluster's");

    // Everything changes afterwards: weight, drain, table, even the config.
    assert_eq!(c.put_weight(2, "app", "s1", 2).await.status, 200);
    shoal(&["node", "ready", "3", "--admin", &admin1])
        .await
        .ok();
    socat(&c.node(1).socket(), "clear table app");
    let other = c.dir.file(
        "other.cfg",
        &config(&[&s2], "backend spare\n    server x 127.0.0.1:9\n"),
    );
    shoal(&[
        "config",
        "apply",
        "-f",
        &other.display().to_string(),
        "--admin",
        &admin1,
    ])
    .await
    .ok();
    c.converged(&[1, 2, 3]).await;

    // Restore through node 3: every node is the backup's state again.
    let admin3 = c.node(3).admin.to_string();
    let out = shoal(&["cluster", "restore", &file_arg, "--admin", &admin3]).await;
    assert_eq!(printed_hash(out.ok()), saved, "{}", out.stdout);
    all_have(&c, &[1, 2, 3], &saved).await;
    for id in [1, 2, 3] {
        assert_eq!(weight(&c, id, "s1").await, 7, "s1's weight on node {id}");
        assert!(table_is(&c, id, &sessions), "node {id}'s stick table");
    }
    let status = c.status(1).await;
    assert_eq!(member(&status, 3).expect("node 3")["drained"], true);
    let text = shoal(&["config", "show", "--admin", &admin3]).await;
    assert!(
        !text.ok().contains("backend spare"),
        "the config is the backup's"
    );
    // The sessions keep their servers through any node.
    let front2 = c.node_mut(2).front("web");
    for (i, (src, server)) in sessions.iter().enumerate() {
        let (got, _) = ok_from(src.parse().expect("an address"), front2, None).await;
        assert_eq!(&got, server, "client {i} ({src}) through node 2");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_other_files_and_damaged_backups() {
    let s1 = Backend::http("s1");
    let mut c = Cluster::start(3, &backup_config(&[&s1])).await;
    let admin = c.node(2).admin.to_string();
    let dir = TempDir::new("backup-bad");
    let good = dir.path("good.shoalbak");
    shoal(&[
        "cluster",
        "backup",
        "--out",
        &good.display().to_string(),
        "--admin",
        &admin,
    ])
    .await
    .ok();
    let before = c.converged(&[1, 2, 3]).await;

    let not_backup = dir.file("shoal.cfg", "global\n");
    let out = shoal(&[
        "cluster",
        "restore",
        &not_backup.display().to_string(),
        "--admin",
        &admin,
    ])
    .await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("not a Shoal backup"), "{}", out.stderr);

    let mut bytes = std::fs::read(&good).expect("the backup");
    let at = bytes
        .windows(6)
        .position(|w| w == b"server")
        .expect("the config text in the backup");
    bytes[at] = b'S';
    let damaged = dir.path("damaged.shoalbak");
    std::fs::write(&damaged, &bytes).expect("write");
    let out = shoal(&[
        "cluster",
        "restore",
        &damaged.display().to_string(),
        "--admin",
        &admin,
    ])
    .await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("damaged"), "{}", out.stderr);

    // The node checks too: the API refuses what the CLI would have.
    let (status, body) = post_file(c.node(1).admin, "/v1/cluster/restore", &damaged);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("damaged"), "{body}");
    assert_eq!(c.converged(&[1, 2, 3]).await, before, "nothing changed");

    // A node not in a cluster yet refuses (the restore would be replaced
    // by the cluster's state at init or join).
    let admin4 = c.spawn(4, None).admin.to_string();
    let out = shoal(&[
        "cluster",
        "restore",
        &good.display().to_string(),
        "--admin",
        &admin4,
    ])
    .await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("409") && out.stderr.contains("not in a cluster yet"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_lost_its_majority_for_good_starts_again_from_one_nodes_data() {
    let (s1, s2) = (Backend::http("s1"), Backend::http("s2"));
    // Checked servers: every node reports on each, so the backup carries
    // health reports of nodes 1, 2 and 3.
    let mut cfg = backup_config(&[&s1, &s2]);
    for b in [&s1, &s2] {
        let line = format!("server {} {}\n", b.name, b.addr);
        cfg = cfg.replace(
            &line,
            &format!("server {} {} check inter 300ms\n", b.name, b.addr),
        );
    }
    let keep = TempDir::new("disaster");
    let file = keep.path("node1.shoalbak");
    let file_arg = file.display().to_string();
    let (sessions, saved) = {
        let mut c = Cluster::start(3, &cfg).await;
        assert_eq!(c.put_weight(1, "app", "s2", 9).await.status, 200);
        let sessions = stick(&mut c, 1, 5).await;
        poll("node 1 holds the replicated entries", || async {
            table_is(&c, 1, &sessions).then_some(())
        })
        .await;
        for server in ["s1", "s2"] {
            poll(&format!("three nodes reported on {server}"), || async {
                let r = admin(c.node(1).admin, "GET", "/v1/cluster/health", "").await;
                let v = r.json();
                let entry = v["servers"]
                    .as_array()?
                    .iter()
                    .find(|s| s["server"] == server)?
                    .clone();
                (entry["reports"].as_array()?.len() == 3).then_some(())
            })
            .await;
        }
        let saved = c.converged(&[1, 2, 3]).await;

        // Nodes 2 and 3 are lost for good: no majority, no writes, and no
        // online backup either (no leader can confirm a read).
        c.kill(2);
        c.kill(3);
        let admin1 = c.node(1).admin.to_string();
        let out = shoal(&["cluster", "backup", "--out", &file_arg, "--admin", &admin1]).await;
        assert_eq!(out.code, Some(1), "{out:?}");
        assert!(out.stderr.contains("503"), "{}", out.stderr);

        // A running node's directory is locked.
        let data = c.node(1).data_dir.display().to_string();
        let out = shoal(&["cluster", "backup", "--data-dir", &data, "--out", &file_arg]).await;
        assert_eq!(out.code, Some(1), "{out:?}");
        assert!(out.stderr.contains("still running"), "{}", out.stderr);

        // Stopped, node 1's data directory gives the backup.
        let node1 = c.kill(1);
        let out = shoal(&["cluster", "backup", "--data-dir", &data, "--out", &file_arg]).await;
        assert_eq!(printed_hash(out.ok()), saved, "{}", out.stdout);
        drop(node1);
        (sessions, saved)
    };

    // A new cluster of two nodes (new data, new CA) from a plain config,
    // then the backup: node 3's health reports do not count here.
    let s3 = Backend::http("s3");
    let mut c = Cluster::start(2, &config(&[&s3], "")).await;
    let admin2 = c.node(2).admin.to_string();
    let out = shoal(&["cluster", "restore", &file_arg, "--admin", &admin2]).await;
    let restored = printed_hash(out.ok());
    assert_ne!(restored, saved, "node 3's reports went, so the hash moved");
    assert!(
        out.stdout
            .contains("the health reports of nodes 3 (not members here) were forgotten"),
        "{}",
        out.stdout
    );
    all_have(&c, &[1, 2], &restored).await;
    let r = admin(c.node(1).admin, "GET", "/v1/cluster/health", "").await;
    for s in r.json()["servers"].as_array().expect("servers") {
        let nodes: Vec<u64> = s["reports"]
            .as_array()
            .expect("reports")
            .iter()
            .filter_map(|r| r["node"].as_u64())
            .collect();
        assert!(
            !nodes.contains(&3),
            "node 3 still reports on {}: {s}",
            s["server"]
        );
    }
    for id in [1, 2] {
        assert_eq!(weight(&c, id, "s2").await, 9, "s2's weight on node {id}");
        assert!(table_is(&c, id, &sessions), "node {id}'s stick table");
    }
    let front2 = c.node_mut(2).front("web");
    for (src, server) in &sessions {
        let (got, _) = ok_from(src.parse().expect("an address"), front2, None).await;
        assert_eq!(&got, server, "{src} through the new cluster's node 2");
    }
    assert!(Path::new(&file_arg).exists());
}

/// A restore is trial-built on the node asked, as `config apply` is: a
/// backup whose certificate this node lacks is refused with a 400 naming
/// it, and nothing changes anywhere. (It used to be proposed, and the
/// node kept routing by its previous table.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_that_does_not_build_here_is_refused_before_it_is_proposed() {
    let s1 = Backend::http("s1");
    let plain = config(&[&s1], "");
    let c = Cluster::start(2, &plain).await;
    let (admin1, admin2) = (c.node(1).admin.to_string(), c.node(2).admin.to_string());
    // A certificate in node 1's directory only, and a config using it.
    let certs = c.dir.path("site");
    issue_cert(&c.ca, 9, &certs);
    let pem = std::fs::read_to_string(certs.join("node.pem")).expect("cert")
        + &std::fs::read_to_string(certs.join("node-key.pem")).expect("key");
    std::fs::write(c.node(1).dir.join("site.pem"), &pem).expect("write site.pem");
    let tls = plain.replace(
        "    bind \"${NODE_IP}:0\"\n",
        "    bind \"${NODE_IP}:0\"\n    bind 127.0.0.1:0 ssl crt \"${SHOAL_DIR}/site.pem\"\n",
    );
    let apply = |text: &str, name: &str| {
        let file = c.dir.file(name, text).display().to_string();
        let admin = admin1.clone();
        async move { shoal(&["config", "apply", "-f", &file, "--admin", &admin]).await }
    };
    apply(&tls, "tls.cfg").await.ok();
    let file = c.dir.path("tls.shoalbak").display().to_string();
    shoal(&["cluster", "backup", "--out", &file, "--admin", &admin1])
        .await
        .ok();
    apply(&format!("{plain}# again\n"), "plain.cfg").await.ok();
    let before = c.converged(&[1, 2]).await;

    let out = shoal(&["cluster", "restore", &file, "--admin", &admin2]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("400") && out.stderr.contains("site.pem"),
        "the refusal names the certificate: {}",
        out.stderr
    );
    assert_eq!(c.converged(&[1, 2]).await, before, "nothing changed");
    // Node 1 has the certificate: through it the same file restores.
    let out = shoal(&["cluster", "restore", &file, "--admin", &admin1]).await;
    let restored = printed_hash(out.ok());
    all_have(&c, &[1, 2], &restored).await;
}
