//! Descriptor limits through real processes started under `prlimit`:
//! Shoal raises its soft limit to fit `maxconn` (deriving `maxconn` from
//! the limit when unset, as HAProxy does), lowers a `maxconn` that cannot
//! fit with a warning, and, when descriptors run out anyway, pauses
//! accepting without flooding its log.

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// `shoal run -f CFG [extra]` under `prlimit --nofile=SOFT:HARD`.
fn shoal_with_nofile(nofile: &str, config: &str, extra: &[&str]) -> (Proc, TempDir) {
    let dir = TempDir::new("limits");
    let cfg = dir.file("shoal.cfg", config);
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--nofile={nofile}"))
        .arg(env!("CARGO_BIN_EXE_shoal"))
        .arg("run")
        .arg("-f")
        .arg(&cfg)
        .args(extra)
        .env("SHOAL_LOG", "info");
    (spawn_proc(cmd), dir)
}

/// The address in a `... listening on ADDR` line.
fn listening(proc: &mut Proc, what: &str) -> SocketAddr {
    proc.wait_line(what)
        .rsplit(' ')
        .next()
        .and_then(|a| a.parse().ok())
        .expect("listen address")
}

/// The number after `maxconn ` in the start-up notice.
fn notice_maxconn(line: &str) -> u32 {
    line.split("maxconn ")
        .nth(1)
        .and_then(|r| r.split([' ', ',']).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("maxconn in {line:?}"))
}

/// One echo through the line protocol on a new connection, kept open.
async fn echo(addr: SocketAddr, i: usize) -> BufReader<TcpStream> {
    let s = TcpStream::connect(addr).await.expect("connect");
    let mut s = BufReader::new(s);
    s.get_mut()
        .write_all(format!("hello {i}\n").as_bytes())
        .await
        .expect("write");
    let mut line = String::new();
    s.read_line(&mut line).await.expect("read");
    assert!(line.ends_with(&format!("hello {i}\n")), "reply {line:?}");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_soft_fd_limit_is_raised_to_serve_more_clients() {
    let line = Backend::tcp("line");
    // No maxconn: derived from the hard limit, and the soft one raised.
    let cfg = format!(
        "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 30s\n    timeout server 30s\n\
         listen l\n    bind 127.0.0.1:0\n    server line {}\n",
        line.addr
    );
    let (mut shoal, _dir) = shoal_with_nofile("256:4096", &cfg, &[]);
    let addr = listening(&mut shoal, "frontend 'l' listening on ");
    // 400 concurrent clients need 800 descriptors in the proxy: far more
    // than the 256 it was started with.
    let clients = (0..400).map(|i| tokio::spawn(echo(addr, i)));
    let mut open = Vec::new();
    for c in clients {
        let c = tokio::time::timeout(DEADLINE, c)
            .await
            .expect("every client served in time")
            .expect("client");
        open.push(c);
    }
    assert_eq!(open.len(), 400);
    let errors = shoal
        .drain()
        .iter()
        .filter(|l| l.contains("accept"))
        .count();
    assert_eq!(errors, 0, "{:?}", shoal.seen);
    let notice = shoal.wait_line("[NOTICE] maxconn ");
    assert!(
        notice.contains("(derived from the fd limit), fd limit 40")
            && notice.ends_with(" (raised from 256)"),
        "{notice}"
    );
    // (hard limit - reserved descriptors) / 2, as HAProxy computes it.
    let maxconn = notice_maxconn(&notice);
    assert!((1900..2048).contains(&maxconn), "{notice}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maxconn_that_cannot_fit_is_lowered_with_a_warning() {
    let line = Backend::tcp("line");
    // 2 x 1,000,000 descriptors is past what even root may set (fs.nr_open
    // defaults to 1,048,576): the soft limit goes up to the hard one and
    // maxconn comes down to fit it.
    let cfg = format!(
        "global\n    maxconn 1000000\n\
         defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 30s\n    timeout server 30s\n\
         listen l\n    bind 127.0.0.1:0\n    server line {}\n",
        line.addr
    );
    let (mut shoal, _dir) = shoal_with_nofile("256:4096", &cfg, &[]);
    let warning = shoal.wait_line("Cannot raise FD limit to ");
    assert!(warning.contains("limit is 4096"), "{warning}");
    let lowered = shoal.wait_line("too low for maxconn=1000000");
    let notice = shoal.wait_line("[NOTICE] maxconn ");
    let maxconn = notice_maxconn(&notice);
    assert!((1900..2048).contains(&maxconn), "{notice}");
    assert!(
        lowered.contains(&format!("maxconn lowered to {maxconn}")),
        "{lowered}"
    );
    assert!(
        notice.contains("fd limit 4096 (raised from 256)"),
        "{notice}"
    );
    let addr = listening(&mut shoal, "frontend 'l' listening on ");
    drop(echo(addr, 1).await);
}

/// Descriptors the process has open now.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_descriptors_pauses_accepts_without_flooding_the_log() {
    let line = Backend::tcp("line");
    // maxconn 10 fits in 64 descriptors, so the limit stays at 64; admin
    // API connections (outside maxconn) then use up the rest.
    let cfg = format!(
        "global\n    maxconn 10\n\
         defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 30s\n    timeout server 30s\n\
         listen l\n    bind 127.0.0.1:0\n    server line {}\n",
        line.addr
    );
    let (mut shoal, _dir) = shoal_with_nofile("64:64", &cfg, &["--admin", "127.0.0.1:0"]);
    let addr = listening(&mut shoal, "frontend 'l' listening on ");
    let admin = listening(&mut shoal, "admin API listening on ");
    let pid = shoal.child.id();
    let mut hogs = Vec::new();
    // Fill the table, then look again a moment later in case a descriptor
    // the process held briefly at start has been closed since.
    for _ in 0..2 {
        while open_fds(pid) < 64 {
            let before = open_fds(pid);
            hogs.push(TcpStream::connect(admin).await.expect("admin connect"));
            eventually("the admin API accepted", || async {
                open_fds(pid) > before
            })
            .await;
            assert!(hogs.len() < 64, "descriptors never ran out");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Every descriptor is in use: this client waits in the backlog while
    // accept() fails with EMFILE.
    let waiting = tokio::spawn(echo(addr, 7));
    let window = Instant::now();
    let accept_error = format!("accept on {addr}: Too many open files");
    eventually("an accept error is logged", || {
        let seen = shoal.drain().iter().any(|l| l.contains(&accept_error));
        async move { seen }
    })
    .await;
    // Watch the log for a while: the old accept loop logged every 10 ms.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let errors = shoal
        .drain()
        .iter()
        .filter(|l| l.contains(&accept_error))
        .count();
    let seconds = window.elapsed().as_secs() + 1;
    assert!(
        errors as u64 <= seconds,
        "{errors} accept errors logged in {seconds} s:\n{}",
        shoal.seen.join("\n")
    );
    // Descriptors come back: the waiting client is served.
    drop(hogs);
    let served = tokio::time::timeout(DEADLINE, waiting)
        .await
        .expect("served once descriptors are free");
    drop(served.expect("client"));
    let notice = shoal.wait_line("[NOTICE] maxconn ");
    assert!(notice.contains("maxconn 10, fd limit 64"), "{notice}");
}
