//! `deploy/local-cluster.sh start|status|stop`, run as an operator would:
//! bash at the repository root, with this build's binaries (`SHOAL_BIN`)
//! and its files in a scratch directory (`SHOAL_LOCAL_DIR`). It uses the
//! fixed addresses the script documents (127.0.0.11-13 ports 7000, 8080
//! and 9090; backends on 127.0.0.1:9001-9002), like the README
//! walkthrough, which is in another test binary: cargo runs test binaries
//! one after the other.

#![forbid(unsafe_code)]

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use support::*;

/// The script, run with this build's binaries and `dir` for its files.
struct Script {
    root: PathBuf,
    bin_dir: PathBuf,
    dir: PathBuf,
}

impl Script {
    fn run(&self, verb: &str) -> Output {
        Command::new("bash")
            .arg(self.root.join("deploy/local-cluster.sh"))
            .arg(verb)
            .current_dir(&self.root)
            .env("SHOAL_BIN", &self.bin_dir)
            .env("SHOAL_LOCAL_DIR", &self.dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run local-cluster.sh {verb}: {e}"))
    }

    /// `verb`, which must succeed; its stdout.
    fn ok(&self, verb: &str) -> String {
        let out = self.run(verb);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "local-cluster.sh {verb} failed ({}):\n{text}",
            out.status
        );
        text
    }

    /// `shoal ARGS` against the cluster, with the token `start` made.
    fn shoal(&self, args: &[&str]) -> String {
        let token = std::fs::read_to_string(self.dir.join("token")).expect("the token file");
        let out = Command::new(self.bin_dir.join("shoal"))
            .args(args)
            .env("SHOAL_ADMIN_TOKEN", token.trim())
            .output()
            .expect("run shoal");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "shoal {args:?}: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    /// The processes `start` recorded, by pid file name.
    fn pids(&self) -> Vec<(String, i32)> {
        let mut pids = Vec::new();
        for entry in std::fs::read_dir(&self.dir).expect("read the script's directory") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "pid") {
                let text = std::fs::read_to_string(&path).expect("pid file");
                let pid = text.split(' ').next().and_then(|p| p.parse().ok());
                let name = path
                    .file_stem()
                    .expect("stem")
                    .to_string_lossy()
                    .to_string();
                pids.push((name, pid.expect("a pid in the pid file")));
            }
        }
        pids.sort();
        pids
    }
}

/// Stops whatever the script started when the test ends, passed or not.
impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.run("stop");
    }
}

fn running(pid: i32) -> bool {
    // A zombie (exited, not yet reaped) counts as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

/// `curl -s URL`'s body.
fn curl(url: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5", url])
        .output()
        .expect("curl (./test.sh installs it)");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Poll `check` every 100 ms for up to 30 s.
fn until(what: &str, mut check: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < end, "not within 30 s: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn local_cluster_script_starts_reports_stops_and_resumes() {
    let _serial = serial_blocking();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository root")
        .to_path_buf();
    let tmp = TempDir::new("local-cluster");
    let shoal = bin("shoal");
    bin("shoal-demo-backend");
    let script = Script {
        root,
        bin_dir: shoal
            .parent()
            .expect("the binaries' directory")
            .to_path_buf(),
        dir: tmp.path("lc"),
    };
    // A process the script did not start, which `stop` must leave alone.
    let mut bystander = Backend::http("bystander");

    let out = script.ok("start");
    assert!(out.contains("A three-node Shoal cluster runs"), "{out}");
    assert!(
        out.contains("shoal cluster status --admin 127.0.0.11:9090"),
        "{out}"
    );

    // Three voters, reachable through each node's admin API on port 9090.
    for n in 1..=3 {
        let status = script.shoal(&[
            "cluster",
            "status",
            "--admin",
            &format!("127.0.0.1{n}:9090"),
        ]);
        assert_eq!(
            status
                .lines()
                .filter(|l| l.contains("  voter  yes "))
                .count(),
            3,
            "through node {n}:\n{status}"
        );
    }
    // Every node serves HTTP on port 8080 from the example backends.
    for n in 1..=3 {
        let body = curl(&format!("http://127.0.0.1{n}:8080/"));
        assert!(
            ["web1", "web2"].contains(&body.trim()),
            "node {n} answered {body:?}"
        );
    }
    let status = script.ok("status");
    for name in ["node1", "node2", "node3", "web1", "web2"] {
        assert!(status.contains(&format!("{name}: running")), "{status}");
    }
    assert!(status.contains("quorum ok"), "{status}");

    // A change made now must survive stop and start.
    script.shoal(&[
        "server",
        "weight",
        "web/web1",
        "0",
        "--admin",
        "127.0.0.12:9090",
    ]);
    until("web2 alone answers", || {
        (1..=3).all(|n| curl(&format!("http://127.0.0.1{n}:8080/")).trim() == "web2")
    });

    // Stop ends what start started, and only that.
    let pids = script.pids();
    assert_eq!(pids.len(), 5, "five processes recorded: {pids:?}");
    let out = script.ok("stop");
    assert!(out.contains("stopped"), "{out}");
    for (name, pid) in &pids {
        until(&format!("{name} (pid {pid}) ends"), || !running(*pid));
    }
    assert!(
        bystander.proc.running(),
        "stop ended a process it had not started"
    );
    let out = script.run("status");
    assert_eq!(out.status.code(), Some(3), "status of a stopped cluster");
    assert!(String::from_utf8_lossy(&out.stdout).contains("not running"));
    assert!(
        std::net::TcpStream::connect("127.0.0.11:9090").is_err(),
        "node 1's admin API still answers after stop"
    );

    // Start again: the same cluster comes back with its state (no init).
    let out = script.ok("start");
    assert!(out.contains("A three-node Shoal cluster runs"), "{out}");
    until("web2 alone answers after the restart", || {
        (1..=3).all(|n| curl(&format!("http://127.0.0.1{n}:8080/")).trim() == "web2")
    });
    let again = script.run("start");
    assert!(
        !again.status.success(),
        "a second start while running must fail"
    );
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already running"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    script.ok("stop");
}

/// The repository's deploy/ directory.
fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .canonicalize()
        .expect("the repository's deploy/")
}

/// deploy/systemd/shoal.service passes `systemd-analyze verify` without a
/// warning (an unknown or misspelt hardening key would be one), with its
/// binary pointed at this build's.
#[test]
fn systemd_unit_verifies_cleanly() {
    let unit = std::fs::read_to_string(deploy_dir().join("systemd/shoal.service"))
        .expect("read shoal.service");
    let shoal = bin("shoal");
    let unit = unit.replace("/usr/local/bin/shoal", &shoal.display().to_string());
    let env = deploy_dir().join("systemd/shoal.env.example");
    let unit = unit.replace("/etc/shoal/shoal.env", &env.display().to_string());
    let tmp = TempDir::new("systemd");
    let path = tmp.file("shoal.service", &unit);
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (./test.sh installs systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed: {stderr}"
    );
    assert!(
        stderr.trim().is_empty(),
        "systemd-analyze verify warns: {stderr}"
    );
}

/// Every key of deploy/sysctl/99-shoal.conf names a kernel setting.
#[test]
fn sysctl_file_names_existing_settings() {
    let text = std::fs::read_to_string(deploy_dir().join("sysctl/99-shoal.conf"))
        .expect("read 99-shoal.conf");
    let keys: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.contains('='))
        .map(|l| l.split('=').next().unwrap_or("").trim())
        .collect();
    assert!(keys.len() >= 8, "{keys:?}");
    for key in keys {
        let path = Path::new("/proc/sys").join(key.replace('.', "/"));
        assert!(
            path.exists(),
            "{key} is no kernel setting ({} is missing)",
            path.display()
        );
    }
}

/// deploy/keepalived/keepalived.conf passes keepalived's own config test,
/// with the track script at its place in the repository.
#[test]
fn keepalived_config_passes_its_config_test() {
    let conf = std::fs::read_to_string(deploy_dir().join("keepalived/keepalived.conf"))
        .expect("read keepalived.conf");
    let script = deploy_dir().join("keepalived/shoal-ready.sh");
    let conf = conf.replace(
        "/etc/keepalived/shoal-ready.sh",
        &script.display().to_string(),
    );
    let tmp = TempDir::new("keepalived");
    let path = tmp.file("keepalived.conf", &conf);
    let log = tmp.path("config-test.log");
    let out = Command::new("keepalived")
        .arg(format!("--config-test={}", log.display()))
        .arg("-f")
        .arg(&path)
        .output()
        .expect("keepalived (./test.sh installs it)");
    let report = std::fs::read_to_string(&log).unwrap_or_default();
    // keepalived 2.2 reports errors in the log and exits with a code from
    // 1 upwards; after a clean test it ends itself with SIGTERM (143 from
    // a shell) instead of exiting 0.
    use std::os::unix::process::ExitStatusExt as _;
    let clean = out.status.success() || out.status.signal() == Some(15);
    assert!(
        clean && report.trim().is_empty(),
        "keepalived's config test failed ({}): {report}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The container example's config passes `shoal check` with the
/// environment compose gives a node.
#[test]
fn container_config_passes_shoal_check() {
    let out = Command::new(bin("shoal"))
        .args(["check", "-f"])
        .arg(deploy_dir().join("docker/shoal.cfg"))
        .env("NODE_IP", "172.28.0.11")
        .env("SHOAL_DIR", "/run/shoal")
        .output()
        .expect("run shoal check");
    assert!(
        out.status.success(),
        "shoal check deploy/docker/shoal.cfg: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
