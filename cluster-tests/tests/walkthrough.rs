//! The README's cluster walkthrough, the block between
//! `<!-- walkthrough:start -->` and `<!-- walkthrough:end -->`, run as
//! written: bash at the repository root, with this build's binaries first
//! on PATH (`SHOAL_BIN`). It uses the README's fixed addresses
//! (127.0.0.11-13 ports 7000, 8080 and 9090; backends on 127.0.0.1:9001-9002),
//! so it must not run twice at once on one machine.

#[path = "support/mod.rs"]
mod support;

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::*;

/// The bash block of the walkthrough section of README.md.
fn walkthrough(readme: &str) -> String {
    let start = readme
        .find("<!-- walkthrough:start -->")
        .expect("README.md has <!-- walkthrough:start -->");
    let end = readme
        .find("<!-- walkthrough:end -->")
        .expect("README.md has <!-- walkthrough:end -->");
    let section = &readme[start..end];
    let open = section.find("```bash\n").expect("a ```bash block") + "```bash\n".len();
    let close = section[open..]
        .find("```")
        .expect("the block's closing fence");
    section[open..open + close].to_string()
}

/// Kills the walkthrough's whole process group (its backgrounded nodes
/// and backends too) when the test ends, passed or not.
struct Group(i32);

impl Drop for Group {
    fn drop(&mut self) {
        use nix::sys::signal::{killpg, Signal};
        let _ = killpg(nix::unistd::Pid::from_raw(self.0), Signal::SIGKILL);
    }
}

#[test]
fn readme_walkthrough_runs_as_written() {
    let _serial = serial_blocking();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository root");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("read README.md");
    let script = walkthrough(&readme);
    let tmp = TempDir::new("walkthrough");
    let file = tmp.file("walkthrough.sh", &script);
    let shoal = bin("shoal");
    bin("shoal-demo-backend");
    let bin_dir = shoal.parent().expect("the binaries' directory");

    let mut cmd = Command::new("bash");
    cmd.arg(&file)
        .current_dir(root)
        .env("SHOAL_BIN", bin_dir)
        // `mktemp -d` puts the nodes' files here, removed with it.
        .env("TMPDIR", &tmp.0)
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
    let lines: Vec<&str> = out.lines().map(str::trim_end).collect();

    // No command failed.
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
    // `shoal cluster status` through node 3: three voters, all reachable.
    let table = at("node 3  leader ");
    assert!(lines[table].ends_with("quorum ok"), "{}", lines[table]);
    let voters = lines[table..]
        .iter()
        .filter(|l| l.contains("  voter  yes "))
        .take(3)
        .count();
    assert_eq!(voters, 3, "three reachable voters:\n{out}");
    // A request through node 2 before the change.
    assert!(
        ["web1", "web2"].contains(&lines[table + 5]),
        "an answer through node 2 after the status table:\n{out}"
    );
    // Weight 0 for web1 through node 3, then only web2 answers through node 1.
    let weight = at("web/web1: weight 0");
    assert_eq!(
        lines[weight + 1..weight + 4],
        ["web2", "web2", "web2"],
        "web2 only, through node 1:\n{out}"
    );
    // Drain: node 2's /ready says 503; then ready again.
    let drain = at("node 2: drain");
    assert_eq!(
        lines[drain + 1],
        "503",
        "node 2's /ready while drained:\n{out}"
    );
    assert_eq!(lines[drain + 2], "node 2: ready", "{out}");
    // `shoal config show` through node 2: the example config's first line.
    assert!(
        lines[drain + 3].starts_with("# Example configuration for a three-node Shoal cluster"),
        "the running config through node 2:\n{out}"
    );
}
