//! What an operator runs by hand, run as written: README.md's "3-node
//! cluster in five minutes" walkthrough, `deploy/local-cluster.sh
//! start|status|stop`, and the deploy/ files' own checks. Bash at the
//! repository root, with this build's binaries (`SHOAL_BIN`) and files in
//! a scratch directory. The walkthrough and the script use the same fixed
//! addresses (127.0.0.11-13 ports 7000, 8080 and 9090; backends on
//! 127.0.0.1:9001-9003), so both live in this one test binary and hold its
//! lock ([`serial_blocking`]): they never run at the same time.

#![forbid(unsafe_code)]

#[path = "support/mod.rs"]
mod support;

use std::os::unix::process::CommandExt as _;
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

/// The shell blocks of README.md's walkthrough (every ```sh block between
/// `<!-- walkthrough:start -->` and `<!-- walkthrough:end -->`), in order,
/// as one bash script that stops at the first failing command.
fn walkthrough(readme: &str) -> String {
    let start = readme
        .find("<!-- walkthrough:start -->")
        .expect("README.md has <!-- walkthrough:start -->");
    let end = readme
        .find("<!-- walkthrough:end -->")
        .expect("README.md has <!-- walkthrough:end -->");
    let mut section = &readme[start..end];
    let mut script = String::from("set -euo pipefail\n");
    while let Some(open) = section.find("```sh\n") {
        let body = &section[open + "```sh\n".len()..];
        let close = body
            .find("```")
            .expect("a closing fence for each ```sh block");
        script.push_str(&body[..close]);
        section = &body[close + 3..];
    }
    assert!(
        script.lines().count() > 20,
        "no walkthrough blocks:\n{script}"
    );
    script
}

/// Kills a whole process group (the walkthrough's shell and everything it
/// started in the background) when the test ends, passed or not.
struct Group(i32);

impl Drop for Group {
    /// Kill the group and wait (bounded) until none of it is left, so that
    /// the next test under the lock finds the fixed addresses free (a
    /// killed process's sockets close as it dies, a moment after the
    /// signal: the local-cluster script once found 127.0.0.1:9001 still
    /// taken right after the walkthrough).
    fn drop(&mut self) {
        use nix::sys::signal::{killpg, Signal};
        let group = nix::unistd::Pid::from_raw(self.0);
        let _ = killpg(group, Signal::SIGKILL);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while killpg(group, None).is_ok() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn readme_walkthrough_runs_as_written() {
    let _serial = serial_blocking();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository root");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("read README.md");
    let tmp = TempDir::new("walkthrough");
    let file = tmp.file("walkthrough.sh", &walkthrough(&readme));
    let shoal = bin("shoal");
    bin("shoal-demo-backend");
    let bin_dir = shoal.parent().expect("the binaries' directory");

    let mut cmd = Command::new("bash");
    cmd.arg(&file)
        .current_dir(root)
        .env("SHOAL_BIN", bin_dir)
        // `mktemp -d` puts the nodes' files here, removed with it.
        .env("TMPDIR", &tmp.0)
        // Its own process group, so that a failed or stuck run still
        // stops every node and backend it started.
        .process_group(0);
    let mut run = Proc::spawn("the walkthrough", cmd);
    let _group = Group(run.child.id() as i32);
    let status = run.wait_exit(Duration::from_secs(120));
    let out = run.log();
    let status =
        status.unwrap_or_else(|| panic!("the walkthrough did not finish in 120 s:\n{out}"));
    assert!(
        status.success(),
        "the walkthrough failed ({status}):\n{out}"
    );
    // The answers, without the runtime socket's blank line after each.
    let lines: Vec<&str> = out
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    for l in &lines {
        assert!(
            !l.starts_with("shoal: ")
                && !l.contains("command not found")
                && !l.contains("No such file"),
            "a command of the walkthrough failed: {l}\n{out}"
        );
    }
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line containing {needle:?} in:\n{out}"))
    };
    let is_web = |l: &str| ["web1", "web2"].contains(&l);

    // Step 2: `cluster status` through node 3: one leader, three
    // reachable voters, quorum.
    let table = at("node 3  leader ");
    assert!(lines[table].ends_with("quorum ok"), "{}", lines[table]);
    let rows = &lines[table + 2..table + 5];
    assert!(
        rows.iter().all(|l| l.contains("  voter  yes  ")),
        "three reachable voters:\n{out}"
    );
    assert_eq!(
        rows.iter().filter(|l| l.contains("(leader)")).count(),
        1,
        "one leader:\n{out}"
    );
    // Step 3: every node answers.
    assert!(
        lines[table + 5..table + 8].iter().all(|l| is_web(l)),
        "an answer through each node after the status table:\n{out}"
    );
    // Step 4: weight 0 through node 3 shows on node 1's runtime socket, and
    // only web2 answers through node 1.
    let weight = at("web/web1: weight 0");
    assert_eq!(lines[weight + 1], "0 (initial 1)", "{out}");
    assert_eq!(
        lines[weight + 2..weight + 5],
        ["web2", "web2", "web2"],
        "web2 only, through node 1:\n{out}"
    );
    // Step 5: the applied config's new server takes traffic.
    let apply = at("cluster-v2.cfg applied");
    let counts: Vec<&str> = lines[apply + 1..]
        .iter()
        .take_while(|l| l.trim_start().starts_with(char::is_numeric))
        .map(|l| l.split_whitespace().last().unwrap_or(""))
        .collect();
    assert_eq!(counts, ["web1", "web2", "web3"], "{out}");
    // Step 6: drained node 2 is not ready, refuses; the others serve.
    let drain = at("node 2: drain");
    assert_eq!(lines[drain + 1], "node 2 /ready: 503", "{out}");
    assert_eq!(lines[drain + 2], "node 2 refuses new connections", "{out}");
    assert!(
        lines[drain + 3..drain + 5].iter().all(|l| is_web(l)),
        "nodes 1 and 3 serve while node 2 is drained:\n{out}"
    );
    let row: Vec<&str> = lines[drain + 5].split_whitespace().collect();
    assert_eq!(
        (row[0], row[5]),
        ("2", "yes"),
        "node 2 DRAINED yes: {}",
        lines[drain + 5]
    );
    assert_eq!(lines[drain + 6], "node 2: ready", "{out}");
    assert_eq!(lines[drain + 7], "node 2 serves again", "{out}");
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

/// Two keepalived instances, each in a network namespace of its own
/// joined by a veth pair, hold one VRRP virtual IP with
/// deploy/keepalived/keepalived.conf (interface, priority and addresses
/// filled in) and its track script asking nodes 1 and 2 of a real
/// cluster for `/ready`: the VIP sits on node 1's side, moves to node 2's
/// when node 1 is drained, and comes back when it is ready again.
#[tokio::test]
async fn the_vip_follows_drain_and_ready() {
    let backend = Backend::http("a");
    let cluster = Cluster::start(2, &config(&[&backend], "")).await;
    let pair = VethPair::new();
    let template = std::fs::read_to_string(deploy_dir().join("keepalived/keepalived.conf"))
        .expect("read keepalived.conf");
    let script = deploy_dir().join("keepalived/shoal-ready.sh");
    let mut keepalived = Vec::new();
    for (side, id, priority) in [(&pair.a, 1, "150"), (&pair.b, 2, "140")] {
        // The track script runs inside the side's namespace; the nodes
        // listen in the test's own, which it enters to ask (as root:
        // entering a namespace needs it, where the file says `nobody`).
        let track = format!(
            "nsenter --net=/proc/{}/ns/net {} {}",
            std::process::id(),
            script.display(),
            cluster.node(id).admin
        );
        let conf = [
            (
                "/etc/keepalived/shoal-ready.sh 10.0.0.11:9090",
                track.as_str(),
            ),
            ("script_user nobody", "script_user root"),
            ("interface eth0", &format!("interface {}", side.link)),
            ("priority 150 ", &format!("priority {priority} ")),
            ("10.0.0.100/24", VIP),
        ]
        .iter()
        .fold(template.clone(), |text, (from, to)| {
            assert!(
                text.contains(from),
                "keepalived.conf no longer has {from:?}"
            );
            text.replace(from, to)
        });
        keepalived.push(side.keepalived(&cluster.dir, &conf));
    }
    let admin1 = cluster.node(1).admin.to_string();
    let holder = || {
        let on = |side: &Side| side.holds(VIP.split('/').next().unwrap_or(VIP));
        match (on(&pair.a), on(&pair.b)) {
            (true, false) => "node 1",
            (false, true) => "node 2",
            (true, true) => "both",
            (false, false) => "none",
        }
    };
    let wait_for = |want: &str, keepalived: &mut Vec<Keepalived>| {
        let end = Instant::now() + DEADLINE;
        while holder() != want {
            if Instant::now() > end {
                let logs: Vec<String> = keepalived.iter_mut().map(|k| k.0.log()).collect();
                panic!(
                    "the VIP is on {}, not {want}:\n{}",
                    holder(),
                    logs.join("\n---\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for("node 1", &mut keepalived);
    shoal(&["node", "drain", "1", "--admin", &admin1])
        .await
        .ok();
    wait_for("node 2", &mut keepalived);
    shoal(&["node", "ready", "1", "--admin", &admin1])
        .await
        .ok();
    wait_for("node 1", &mut keepalived);
}

/// The VIP and its prefix, on the link between the two namespaces.
const VIP: &str = "10.231.0.100/24";

/// One end of the veth pair, in its own network namespace.
struct Side {
    netns: String,
    link: String,
}

impl Side {
    /// Whether `ip` is on the link.
    fn holds(&self, ip: &str) -> bool {
        let out = ip_cmd(&[
            "-n",
            &self.netns,
            "-4",
            "-o",
            "addr",
            "show",
            "dev",
            &self.link,
        ]);
        out.contains(&format!(" {ip}/"))
    }

    /// keepalived in this namespace with `conf`, in the foreground.
    fn keepalived(&self, dir: &TempDir, conf: &str) -> Keepalived {
        let file = |what: &str| dir.path(&format!("{}-{what}", self.netns));
        std::fs::write(file("keepalived.conf"), conf).expect("write keepalived.conf");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns, "keepalived", "--dont-fork"])
            .args(["--log-console", "--log-detail", "-f"])
            .arg(file("keepalived.conf"))
            .arg("-p")
            .arg(file("keepalived.pid"))
            .arg("-r")
            .arg(file("vrrp.pid"))
            .arg("-c")
            .arg(file("checkers.pid"));
        Keepalived(Proc::spawn(&format!("keepalived {}", self.netns), cmd))
    }
}

/// keepalived, stopped with SIGTERM so that its VRRP child gives up the
/// address and exits with it.
struct Keepalived(Proc);

impl Drop for Keepalived {
    fn drop(&mut self) {
        self.0.signal(nix::sys::signal::Signal::SIGTERM);
        let _ = self.0.wait_exit(Duration::from_secs(10));
    }
}

/// Two network namespaces joined by a veth pair, 10.231.0.1 and .2/24;
/// both deleted on drop (with anything still running in them).
struct VethPair {
    a: Side,
    b: Side,
}

impl VethPair {
    fn new() -> VethPair {
        let id = std::process::id();
        let side = |s: &str| Side {
            netns: format!("shoal-vrrp-{id}-{s}"),
            link: format!("sv{id}{s}"),
        };
        let pair = VethPair {
            a: side("a"),
            b: side("b"),
        };
        for s in [&pair.a, &pair.b] {
            ip_cmd(&["netns", "add", &s.netns]);
        }
        ip_cmd(&[
            "link",
            "add",
            &pair.a.link,
            "type",
            "veth",
            "peer",
            "name",
            &pair.b.link,
        ]);
        for (s, addr) in [(&pair.a, "10.231.0.1/24"), (&pair.b, "10.231.0.2/24")] {
            ip_cmd(&["link", "set", &s.link, "netns", &s.netns]);
            ip_cmd(&["-n", &s.netns, "addr", "add", addr, "dev", &s.link]);
            ip_cmd(&["-n", &s.netns, "link", "set", &s.link, "up"]);
            ip_cmd(&["-n", &s.netns, "link", "set", "lo", "up"]);
        }
        pair
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        for s in [&self.a, &self.b] {
            let pids = Command::new("ip")
                .args(["netns", "pids", &s.netns])
                .output();
            for pid in pids
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
                .split_whitespace()
            {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
            let _ = Command::new("ip").args(["netns", "del", &s.netns]).status();
        }
    }
}

/// `ip ARGS`, which must succeed; its stdout.
fn ip_cmd(args: &[&str]) -> String {
    run_ok("ip", args)
}
