//! Connection retries through real processes: a refused connection is
//! retried after HAProxy's turn-around pause, so the answer comes when
//! HAProxy 2.6's does and a huge `retries` cannot spin a core.

mod support;

use std::time::{Duration, Instant};
use support::*;

/// User+system CPU time of a process so far, from `/proc/PID/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    // Fields after the command name (which may hold spaces) start at ')'.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // Linux reports these in USER_HZ, which is 100 on every architecture.
    Duration::from_millis(ticks * 10)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connects_are_retried_after_a_turn_around_like_haproxy() {
    // min(1 s, timeout connect) between attempts: 3 retries take 900 ms.
    let dead = dead_addr();
    let body = format!(
        "defaults\n    mode http\n    timeout connect 300ms\n    timeout client 10s\n    timeout server 10s\n\
         listen l\n    bind @BIND@\n    retries 3\n    server s {dead}\n"
    );
    let shoal = Shoal::start(&body.replace("@BIND@", "127.0.0.1:0"), &["l"]);
    let sock = shoal.dir.0.join("h.sock");
    let listener = Inherited::new();
    let cfg = format!(
        "global\n    stats socket {}\n{}",
        sock.display(),
        body.replace("@BIND@", &listener.bind())
    );
    let _haproxy = Haproxy::start(&cfg, &sock);
    let timed = |addr| async move {
        let started = Instant::now();
        let status = get(addr, "/").await.status;
        (status, started.elapsed())
    };
    let haproxy_addr = listener.addr;
    let ((s_status, s_took), (h_status, h_took)) =
        tokio::join!(timed(shoal.addr("l")), timed(haproxy_addr));
    assert_eq!((s_status, h_status), (503, 503));
    assert!(
        s_took >= Duration::from_millis(850),
        "shoal answered after {s_took:?} (haproxy {h_took:?})"
    );
    assert!(
        s_took < h_took + Duration::from_millis(600),
        "shoal answered after {s_took:?} (haproxy {h_took:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_retries_count_does_not_spin_a_core() {
    let (dead, dead2) = (dead_addr(), dead_addr());
    let defaults = "defaults\n    mode tcp\n    timeout connect 200ms\n    timeout client 10s\n    timeout server 10s\n";
    // One refusing server; then two with `option redispatch`, where each
    // retry moves on at once until both have refused in this round.
    for servers in [
        format!("    server s {dead}\n"),
        format!("    option redispatch\n    server s {dead}\n    server t {dead2}\n"),
    ] {
        let cfg =
            format!("{defaults}listen l\n    bind 127.0.0.1:0\n    retries 1000000\n{servers}");
        let shoal = Shoal::start(&cfg, &["l"]);
        let pid = shoal.proc.child.id();
        let _client = tokio::net::TcpStream::connect(shoal.addr("l"))
            .await
            .expect("connect");
        // While the connection retries, the process mostly sleeps: one
        // pause of 200 ms per round. Retrying at once used a whole core.
        let (cpu0, t0) = (cpu_time(pid), Instant::now());
        tokio::time::sleep(Duration::from_secs(2)).await;
        let used = cpu_time(pid) - cpu0;
        let wall = t0.elapsed();
        assert!(
            used < wall / 5,
            "shoal used {used:?} of CPU in {wall:?} while retrying with:\n{servers}"
        );
    }
}
