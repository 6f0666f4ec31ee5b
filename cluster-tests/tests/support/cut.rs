//! Network cuts: iptables rules that drop one node's QUIC traffic.

use std::net::SocketAddr;
use std::process::Command;

/// Fail (never skip) when the cuts cannot be made.
pub fn require_iptables() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test cuts the network with iptables and must run as root (CI does)"
    );
    let found = Command::new("iptables")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "iptables is missing: apt-get install -y iptables (./test.sh installs it)"
    );
}

/// UDP to and from one QUIC endpoint dropped while this lives: the node
/// at `endpoint` neither hears nor reaches its peers. Only that exact
/// address and port is cut, so other clusters on the machine are not
/// touched; the rules are removed on drop, even when a test fails.
pub struct Cut {
    rules: Vec<Vec<String>>,
}

impl Cut {
    pub fn isolate(endpoint: SocketAddr) -> Cut {
        require_iptables();
        let (ip, port) = (endpoint.ip().to_string(), endpoint.port().to_string());
        let rules: Vec<Vec<String>> =
            [["-d", &ip, "--dport", &port], ["-s", &ip, "--sport", &port]]
                .iter()
                .map(|r| {
                    let mut rule: Vec<String> = vec!["INPUT".into(), "-p".into(), "udp".into()];
                    rule.extend(r.iter().map(|s| s.to_string()));
                    rule.extend(["-j".into(), "DROP".into()]);
                    rule
                })
                .collect();
        let mut cut = Cut { rules: Vec::new() };
        for rule in rules {
            iptables("-I", &rule);
            cut.rules.push(rule);
        }
        cut
    }

    /// Remove the rules: the node can talk again.
    pub fn heal(mut self) {
        self.remove();
    }

    fn remove(&mut self) {
        for rule in self.rules.drain(..) {
            iptables("-D", &rule);
        }
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        self.remove();
    }
}

/// `iptables -w OP RULE...`, which must succeed.
pub fn iptables(op: &str, rule: &[String]) {
    let mut args = vec!["-w", op];
    args.extend(rule.iter().map(String::as_str));
    run_ok("iptables", &args);
}

/// `PROGRAM ARGS...`, which must succeed; its stdout.
pub fn run_ok(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (./test.sh installs it): {e}"));
    assert!(
        out.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
