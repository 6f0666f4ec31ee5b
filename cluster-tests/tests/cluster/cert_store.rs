//! Certificates as cluster state: `shoal cert add` through one node is
//! served by another node's `bind ... ssl` on its next handshake (no
//! restart), listed with its expiry through a third, and gone after
//! `shoal cert remove`; a bad upload is refused with 400 and nothing
//! replicated; the private key shows nowhere (answers, status, metrics,
//! backup file, node logs). Certificates come from the `openssl` CLI and
//! handshakes are made with `openssl s_client`, as an operator would.

use crate::support::*;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `openssl ARGS`, which must succeed.
fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl (./test.sh installs it)");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A self-signed P-256 certificate for `dns` valid `days`: (cert, key).
fn make_cert(dir: &TempDir, stem: &str, dns: &str, days: u32) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.path(&format!("{stem}.crt")),
        dir.path(&format!("{stem}.key")),
    );
    let (c, k) = (cert.display().to_string(), key.display().to_string());
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &k,
        "-out",
        &c,
        "-subj",
        &format!("/CN={dns}"),
        "-addext",
        &format!("subjectAltName=DNS:{dns}"),
        "-days",
        &days.to_string(),
    ]);
    (cert, key)
}

/// `parts` concatenated into `name` in `dir`.
fn bundle(dir: &TempDir, name: &str, parts: &[&Path]) -> PathBuf {
    let text: String = parts
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("a PEM part"))
        .collect();
    dir.file(name, &text)
}

/// The base64 body of a PEM file, without line breaks.
fn pem_body(path: &Path) -> String {
    std::fs::read_to_string(path)
        .expect("a PEM file")
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect()
}

/// A TLS handshake with `sni` to `addr`: the leaf certificate the server
/// presented (base64 body), or `None` when the handshake gave none.
async fn served(addr: SocketAddr, sni: &str) -> Option<String> {
    let out = tokio::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            sni,
        ])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(DEADLINE, out)
        .await
        .expect("openssl s_client finishes")
        .expect("openssl s_client runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let start = text.find("-----BEGIN CERTIFICATE-----")?;
    let end = text[start..].find("-----END CERTIFICATE-----")? + start;
    Some(
        text[start..end]
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect(),
    )
}

/// Wait until node `addr` serves `want` for `sni`.
async fn wait_served(addr: SocketAddr, sni: &str, want: &str, what: &str) {
    poll(what, || async move {
        (served(addr, sni).await.as_deref() == Some(want)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_added_through_one_node_is_served_by_another() {
    let pems = TempDir::new("certs");
    let (file_crt, file_key) = make_cert(&pems, "file", "file.test", 365);
    let file_pem = bundle(&pems, "file.pem", &[&file_crt, &file_key]);
    // 20 days: under the 30-day warning.
    let (site_crt, site_key) = make_cert(&pems, "site", "site.test", 20);
    let site_pem = bundle(&pems, "site.pem", &[&site_crt, &site_key]);
    let (_, other_key) = make_cert(&pems, "other", "other.test", 365);
    let mismatched = bundle(&pems, "mismatched.pem", &[&site_crt, &other_key]);
    let keyless = bundle(&pems, "keyless.pem", &[&site_crt]);
    let garbage = pems.file("garbage.pem", "-----BEGIN CERTIFICATE-----\nnot base64!\n");
    let (file_leaf, site_leaf) = (pem_body(&file_crt), pem_body(&site_crt));
    // Part of the key's second PEM line: the private scalar (the first
    // 36 bytes are the same in every P-256 key), within one line of
    // both the file and whatever PEM a node might store or print.
    let secret = pem_body(&site_key)[66..106].to_string();

    let s1 = Backend::http("s1");
    let tls = format!(
        "frontend tls\n    bind \"${{NODE_IP}}:0\" ssl crt {}\n    default_backend app\n",
        file_pem.display()
    );
    let mut c = Cluster::start(3, &config(&[&s1], &tls)).await;
    let tls_a = c.node_mut(1).front("tls");
    // Restarts keep these addresses.
    let admins: Vec<String> = [1, 2, 3].map(|id| c.node(id).admin.to_string()).to_vec();
    let (a, b, cc) = (admins[0].clone(), admins[1].clone(), admins[2].clone());

    // Before: node A has only its file certificate, the default.
    assert_eq!(
        served(tls_a, "site.test").await.as_deref(),
        Some(&*file_leaf)
    );

    // Added through node B: node A serves it, without a restart.
    let site = site_pem.display().to_string();
    let added = shoal(&["cert", "add", &site, "--admin", &b]).await;
    assert!(
        added
            .ok()
            .starts_with("certificate site added (site.test), expires "),
        "{added:?}"
    );
    wait_served(tls_a, "site.test", &site_leaf, "node A serves site.test").await;
    // Other names still get the file certificate.
    assert_eq!(
        served(tls_a, "file.test").await.as_deref(),
        Some(&*file_leaf)
    );

    // Listed through node C (once it applied the change: a read answers
    // from the node's own state) with its expiry, flagged under 30 days.
    let listed = poll("node C lists site", || async {
        let list = shoal(&["cert", "list", "--admin", &cc]).await;
        list.ok().contains("site ").then(|| list.stdout.clone())
    })
    .await;
    let listed = listed.as_str();
    let row = listed
        .lines()
        .find(|l| l.starts_with("site "))
        .unwrap_or_else(|| panic!("no site row in {listed}"));
    assert!(row.contains("site.test"), "{row}");
    assert!(row.contains("days left) !"), "{row}");
    let json = shoal(&["cert", "list", "--json", "--admin", &cc]).await;
    let views: serde_json::Value = serde_json::from_str(json.ok()).expect("JSON");
    let days = views[0]["days_left"].as_i64().expect("days_left");
    assert!((18..=20).contains(&days), "{views}");
    assert_eq!(views[0]["expiry"], "expiring");
    let status = shoal(&["cluster", "status", "--admin", &cc]).await;
    assert!(status.ok().contains("site.test"), "{status:?}");
    let metrics = get(c.node(3).admin, "/metrics").await;
    assert!(
        metrics
            .body
            .contains("shoal_certificate_expiry_seconds{name=\"site\"} "),
        "{}",
        metrics.body
    );

    // Node C killed and started again from its data directory serves it
    // at once.
    let mut dead = c.kill(3);
    let dead_log = dead.proc.log();
    c.restart(dead);
    let tls_c = c.node_mut(3).front("tls");
    wait_served(
        tls_c,
        "site.test",
        &site_leaf,
        "restarted node C serves site.test",
    )
    .await;

    // Bad uploads: a clear 400, nothing replicated.
    for (file, why) in [
        (&mismatched, "does not fit the certificate"),
        (&keyless, "no private key"),
        (&garbage, "not valid PEM"),
    ] {
        let path = file.display().to_string();
        let out = shoal(&["cert", "add", &path, "--name", "bad", "--admin", &b]).await;
        assert_eq!(out.code, Some(1), "{out:?}");
        assert!(out.stderr.contains("400 Bad Request"), "{out:?}");
        assert!(out.stderr.contains(why), "{why}: {out:?}");
        assert!(!out.stderr.contains(&secret), "{out:?}");
    }
    let hash = c.converged(&[1, 2, 3]).await;
    for (id, admin) in [1, 2, 3].into_iter().zip(&admins) {
        let json = shoal(&["cert", "list", "--json", "--admin", admin]).await;
        let views: serde_json::Value = serde_json::from_str(json.ok()).expect("JSON");
        assert_eq!(
            views.as_array().map(Vec::len),
            Some(1),
            "node {id}: {views}"
        );
    }

    // The backup holds no key (nor the certificate).
    let out_dir = TempDir::new("cert-backup");
    let file = out_dir.path("state.shoalbak");
    shoal(&[
        "cluster",
        "backup",
        "--out",
        &file.display().to_string(),
        "--admin",
        &a,
    ])
    .await
    .ok();
    let bytes = std::fs::read(&file).expect("the backup");
    let key_der_b64 = &secret;
    assert!(
        !bytes
            .windows(key_der_b64.len())
            .any(|w| w == key_der_b64.as_bytes()),
        "the backup holds the private key"
    );

    // Restoring it keeps the cluster's certificate (it could not restore
    // a key it does not hold).
    let file_arg = file.display().to_string();
    let restored = shoal(&["cluster", "restore", &file_arg, "--admin", &b]).await;
    assert!(
        restored
            .ok()
            .contains("the cluster's 1 certificate(s) were kept"),
        "{restored:?}"
    );
    assert_eq!(
        served(tls_a, "site.test").await.as_deref(),
        Some(&*site_leaf)
    );

    // Removed through node A: its next handshake no longer gets it.
    assert_eq!(
        shoal(&["cert", "remove", "site", "--admin", &a]).await.ok(),
        "certificate site removed\n"
    );
    wait_served(
        tls_a,
        "site.test",
        &file_leaf,
        "node A falls back to its file",
    )
    .await;
    // Gone from node B too (once applied there): removing again is 404.
    poll("node B lists no certificate", || async {
        let list = shoal(&["cert", "list", "--admin", &b]).await;
        (list.ok() == "no certificates\n").then_some(())
    })
    .await;
    let again = shoal(&["cert", "remove", "site", "--admin", &b]).await;
    assert_eq!(again.code, Some(1), "{again:?}");
    assert!(
        again.stderr.contains("404 Not Found: No such certificate."),
        "{again:?}"
    );
    assert_ne!(c.converged(&[1, 2, 3]).await, hash);

    // The key never showed: not in any answer above, nor in any log.
    for text in [listed, &status.stdout, &metrics.body, &added.stdout] {
        assert!(!text.contains(&secret), "{text}");
    }
    let added = "cluster certificates changed: TLS binds now serve 1 (site)";
    let removed = "cluster certificates changed: TLS binds now serve 0 ()";
    for id in [1, 2, 3] {
        let mut log = c.node_mut(id).proc.log();
        if id == 3 {
            log = format!("{dead_log}\n{log}");
        }
        assert!(log.contains(added), "node {id} logs the addition:\n{log}");
        assert!(log.contains(removed), "node {id} logs the removal:\n{log}");
        assert!(!log.contains(&secret), "node {id} logged the key");
        assert!(!log.contains("PRIVATE KEY"), "node {id} logged a key");
    }
}
