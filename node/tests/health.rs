//! Health checks against real processes: TCP, HTTP and external checks,
//! rise/fall, backups, slowstart, the check port and on-marked-down.
//! State is read from shoal's log lines (HAProxy's wording) and from the
//! traffic the proxy sends.

mod support;

use std::path::Path;
use support::*;

const DEFAULTS: &str = "defaults\n    mode http\n    timeout connect 1s\n    timeout client 10s\n    timeout server 10s\n";

/// Position of the first output line containing `needle`.
fn line_at(proc: &mut Proc, needle: &str) -> usize {
    proc.wait_line(needle);
    proc.seen
        .iter()
        .position(|l| l.contains(needle))
        .expect("line just seen")
}

/// A frontend `fe` in front of backend `app`, whose body is `backend`.
fn config(backend: &str) -> String {
    format!("{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend app\nbackend app\n{backend}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_check_goes_down_after_fall_and_up_after_rise() {
    let mut s1 = Backend::http("s1");
    let s2 = Backend::http("s2");
    let cfg = config(&format!(
        "    server s1 {} check inter 100ms\n    server s2 {} check inter 100ms\n",
        s1.addr, s2.addr
    ));
    let mut shoal = Shoal::start(&cfg, &["fe"]);
    let addr = shoal.addr("fe");
    // Default rise 2 / fall 3; the first pass brings s1 to fully UP.
    shoal
        .proc
        .wait_line("Health check for server app/s1 succeeded, reason: Layer4 check passed");
    s1.stop();
    let two = line_at(&mut shoal.proc, "server app/s1 failed, reason: Layer4 connection problem, info: \"Connection refused\", check duration: ");
    assert!(
        shoal.proc.seen[two].ends_with("status: 2/3 UP."),
        "{}",
        shoal.proc.seen[two]
    );
    let one = line_at(&mut shoal.proc, "status: 1/3 UP.");
    let down = line_at(&mut shoal.proc, "Server app/s1 is DOWN");
    assert!(two < one && one < down, "DOWN only after the third failure");
    let line = &shoal.proc.seen[down];
    assert!(
        line.contains("Server app/s1 is DOWN, reason: Layer4 connection problem, info: \"Connection refused\", check duration: ")
            && line.contains("ms. 1 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue."),
        "{line}"
    );
    let counts = tally(addr, "/", 20).await;
    assert_eq!(counts.get("s2"), Some(&20), "{counts:?}");

    s1.restart("http");
    let first = line_at(&mut shoal.proc, "status: 1/2 DOWN.");
    let up = line_at(&mut shoal.proc, "Server app/s1 is UP");
    assert!(first < up, "UP only after the second success");
    let line = &shoal.proc.seen[up];
    assert!(
        line.contains("Server app/s1 is UP, reason: Layer4 check passed, check duration: ")
            && line.contains(
                "ms. 2 active and 0 backup servers online. 0 sessions requeued, 0 total in queue."
            ),
        "{line}"
    );
    eventually("s1 serves again", || async {
        tally(addr, "/", 4).await.contains_key("s1")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn httpchk_status_expectations() {
    let s1 = Backend::http("s1");
    let s2 = Backend::http("s2");
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend app\n\
         frontend fe2\n    bind 127.0.0.1:0\n    default_backend ok\n\
         backend app\n    option httpchk GET /status/500\n    server s1 {} check inter 100ms\n\
         backend ok\n    option httpchk GET /health HTTP/1.1\\r\\nHost:\\ check.local\n\
         \x20   http-check expect status 200\n    server s2 {} check inter 100ms\n",
        s1.addr, s2.addr
    );
    let mut shoal = Shoal::start(&cfg, &["fe", "fe2"]);
    let line = shoal.proc.wait_line("Server app/s1 is DOWN");
    assert!(
        line.contains("Server app/s1 is DOWN, reason: Layer7 wrong status, code: 500, info: \"Internal Server Error\", check duration: ")
            && line.contains("0 active and 0 backup servers left."),
        "{line}"
    );
    shoal.proc.wait_line("backend app has no server available!");
    assert_eq!(get(shoal.addr("fe"), "/").await.status, 503);
    shoal.proc.wait_line(
        "Health check for server ok/s2 succeeded, reason: Layer7 check passed, code: 200, check duration: ",
    );
    assert!(!shoal
        .proc
        .drain()
        .iter()
        .any(|l| l.contains("ok/s2 is DOWN")));
    assert_eq!(get(shoal.addr("fe2"), "/").await.server(), "s2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_check_expect_string_and_regexes() {
    let backends: Vec<Backend> = (1..=6).map(|i| Backend::http(&format!("s{i}"))).collect();
    let rules = [
        "string healthy",
        "string nope",
        "rstatus ^2[0-9][0-9]$",
        "rstatus ^5",
        "rstring ^heal+thy$",
        "! rstring healthy",
    ];
    let mut cfg = String::from(DEFAULTS);
    for (i, (b, rule)) in backends.iter().zip(rules).enumerate() {
        cfg.push_str(&format!(
            "backend b{i}\n    option httpchk GET /health\n    http-check expect {rule}\n\
             \x20   server s{} {} check inter 100ms\n",
            i + 1,
            b.addr
        ));
    }
    cfg.push_str("frontend fe\n    bind 127.0.0.1:0\n    default_backend b0\n");
    let mut shoal = Shoal::start(&cfg, &["fe"]);
    for (i, pass) in [
        (0, true),
        (1, false),
        (2, true),
        (3, false),
        (4, true),
        (5, false),
    ] {
        let who = format!("b{i}/s{}", i + 1);
        if pass {
            shoal.proc.wait_line(&format!(
                "Health check for server {who} succeeded, reason: Layer7 check passed, code: 200"
            ));
        } else {
            shoal.proc.wait_line(&format!("Server {who} is DOWN"));
        }
    }
    let text = shoal.proc.seen.join("\n");
    for who in ["b0/s1", "b2/s3", "b4/s5"] {
        assert!(
            !text.contains(&format!("{who} is DOWN")),
            "{who} went down:\n{text}"
        );
    }
    let line = shoal.proc.wait_line("Server b1/s2 is DOWN");
    assert!(
        line.contains(
            "reason: Layer7 invalid response, info: \"HTTP content check did not match\""
        ),
        "{line}"
    );
    let line = shoal.proc.wait_line("Server b3/s4 is DOWN");
    assert!(
        line.contains("reason: Layer7 wrong status, code: 200, info: \"OK\""),
        "{line}"
    );
    let line = shoal.proc.wait_line("Server b5/s6 is DOWN");
    assert!(
        line.contains("info: \"HTTP check matched unwanted content\""),
        "{line}"
    );
    assert_eq!(get(shoal.addr("fe"), "/").await.server(), "s1");
}

/// A script that records its arguments and environment, then exits with
/// the code given for its server name.
fn record_script(dir: &TempDir) -> std::path::PathBuf {
    let out = dir.0.display();
    let script = dir.file(
        "check.sh",
        &format!(
            "#!/bin/sh\necho \"$@\" > {out}/args.$HAPROXY_SERVER_NAME\n\
             env > {out}/env.$HAPROXY_SERVER_NAME\n\
             [ \"$HAPROXY_SERVER_NAME\" = s1 ] && exit 0\nexit 3\n"
        ),
    );
    chmod_x(&script);
    script
}

fn chmod_x(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_check_gets_haproxy_arguments_and_environment() {
    let s1 = Backend::http("s1");
    let s2 = Backend::http("s2");
    let dir = TempDir::new("extchk");
    let script = record_script(&dir);
    let cfg = config(&format!(
        "    option external-check\n    external-check command {}\n    external-check path /usr/bin:/bin\n\
         \x20   server s1 {} check inter 200ms maxconn 7\n    server s2 {} check inter 200ms\n",
        script.display(),
        s1.addr,
        s2.addr
    ));
    let mut shoal = Shoal::start(&cfg, &["fe"]);
    shoal.proc.wait_line(
        "Health check for server app/s1 succeeded, reason: External check passed, code: 0, check duration: ",
    );
    let line = shoal.proc.wait_line("Server app/s2 is DOWN");
    assert!(
        line.contains(
            "Server app/s2 is DOWN, reason: External check error, code: 3, check duration: "
        ),
        "{line}"
    );
    let args = std::fs::read_to_string(dir.0.join("args.s1")).expect("args");
    assert_eq!(
        args.trim(),
        format!("NOT_USED NOT_USED {} {}", s1.addr.ip(), s1.addr.port()),
        "$1..$4"
    );
    let env = std::fs::read_to_string(dir.0.join("env.s1")).expect("env");
    for want in [
        "PATH=/usr/bin:/bin".to_string(),
        "HAPROXY_PROXY_NAME=app".into(),
        "HAPROXY_PROXY_ID=2".into(),
        "HAPROXY_PROXY_ADDR=".into(),
        "HAPROXY_PROXY_PORT=".into(),
        "HAPROXY_SERVER_NAME=s1".into(),
        "HAPROXY_SERVER_ID=1".into(),
        format!("HAPROXY_SERVER_ADDR={}", s1.addr.ip()),
        format!("HAPROXY_SERVER_PORT={}", s1.addr.port()),
        "HAPROXY_SERVER_MAXCONN=7".into(),
        "HAPROXY_SERVER_CURCONN=0".into(),
    ] {
        assert!(env.lines().any(|l| l == want), "missing {want} in:\n{env}");
    }
    assert!(
        !env.contains("SHOAL_LOG"),
        "the environment is not inherited"
    );
    assert_eq!(get(shoal.addr("fe"), "/").await.server(), "s1");
}

/// `/proc/PID/stat` fields after the command name: (state, ppid, pgrp).
fn proc_stat(pid: &str) -> Option<(char, u32, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut f = rest.split(' ');
    let state = f.next()?.chars().next()?;
    Some((state, f.next()?.parse().ok()?, f.next()?.parse().ok()?))
}

/// Every process as (pid, state, ppid, pgrp).
fn processes() -> Vec<(u32, char, u32, u32)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter_map(|name| {
            let pid = name.parse().ok()?;
            let (state, ppid, pgrp) = proc_stat(&name)?;
            Some((pid, state, ppid, pgrp))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_external_check_is_killed_whole_and_reaped() {
    let s1 = Backend::http("s1");
    let dir = TempDir::new("exthang");
    let out = dir.0.display();
    let script = dir.file(
        "hang.sh",
        &format!("#!/bin/sh\necho $$ >> {out}/pids\n/bin/sleep 30\n"),
    );
    chmod_x(&script);
    let cfg = config(&format!(
        "    timeout check 300ms\n    option external-check\n    external-check command {}\n\
         \x20   server s1 {} check inter 400ms\n",
        script.display(),
        s1.addr
    ));
    let mut shoal = Shoal::start(&cfg, &["fe"]);
    let shoal_pid = shoal.proc.child.id();
    let line = shoal.proc.wait_line("Server app/s1 is DOWN");
    assert!(
        line.contains("reason: External check timeout, check duration: "),
        "{line}"
    );
    let first: u32 = std::fs::read_to_string(dir.0.join("pids"))
        .expect("pids")
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("first pid");
    // The whole group (the shell and its sleep) is gone, not just the shell.
    eventually("the timed-out check's process group is gone", || async {
        !processes().iter().any(|p| p.3 == first)
    })
    .await;
    // Later rounds time out too; none may leave a zombie behind.
    let rounds = || std::fs::read_to_string(dir.0.join("pids")).map_or(0, |p| p.lines().count());
    eventually("checks keep running", || async { rounds() >= 3 }).await;
    let zombies = || {
        processes()
            .into_iter()
            .filter(|p| p.2 == shoal_pid && p.1 == 'Z')
            .count()
    };
    eventually("no zombie children of shoal", || async { zombies() == 0 }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_takes_over_and_hands_back_with_http_checks() {
    let mut p1 = Backend::http("p1");
    let bk = Backend::http("bk");
    let cfg = config(&format!(
        "    option httpchk GET /health\n    http-check expect string healthy\n\
         \x20   server p1 {} check inter 100ms fall 2 rise 2\n\
         \x20   server bk {} check inter 100ms backup\n",
        p1.addr, bk.addr
    ));
    let mut shoal = Shoal::start(&cfg, &["fe"]);
    let addr = shoal.addr("fe");
    assert_eq!(tally(addr, "/", 20).await.get("p1"), Some(&20));
    p1.stop();
    let line = shoal.proc.wait_line("Server app/p1 is DOWN");
    assert!(
        line.contains("0 active and 1 backup servers left. Running on backup."),
        "{line}"
    );
    assert_eq!(tally(addr, "/", 20).await.get("bk"), Some(&20));
    p1.restart("http");
    let line = shoal.proc.wait_line("Server app/p1 is UP");
    assert!(
        line.contains("1 active and 1 backup servers online."),
        "{line}"
    );
    assert_eq!(tally(addr, "/", 20).await.get("p1"), Some(&20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowstart_ramps_a_returning_server_up() {
    let s1 = Backend::http("s1");
    let mut s2 = Backend::http("s2");
    let cfg = config(&format!(
        "    balance roundrobin\n    option httpchk GET /health\n\
         \x20   server s1 {} check inter 100ms rise 1 fall 1 slowstart 8s\n\
         \x20   server s2 {} check inter 100ms rise 1 fall 1 slowstart 8s\n",
        s1.addr, s2.addr
    ));
    let mut shoal = Shoal::start(&cfg, &["fe"]);
    let addr = shoal.addr("fe");
    // Up since boot: no slowstart, an even share at once.
    let counts = tally(addr, "/", 100).await;
    assert_eq!(counts.get("s2"), Some(&50), "{counts:?}");
    s2.stop();
    shoal.proc.wait_line("Server app/s2 is DOWN");
    s2.restart("http");
    shoal.proc.wait_line("Server app/s2 is UP");
    let early = tally(addr, "/", 100).await.get("s2").copied().unwrap_or(0);
    assert!(
        (1..35).contains(&early),
        "s2 just came back and got {early}/100"
    );
    eventually("s2 reaches its full share", || async {
        tally(addr, "/", 100).await.get("s2").copied().unwrap_or(0) >= 48
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_port_is_checked_instead_of_the_traffic_port() {
    let s1 = Backend::http("s1");
    let dead = dead_addr();
    let cfg = config(&format!(
        "    server s1 {} check inter 100ms port {}\n",
        s1.addr,
        dead.port()
    ));
    let mut shoal = Shoal::start(&cfg, &["fe"]);
    let line = shoal.proc.wait_line("Server app/s1 is DOWN");
    assert!(line.contains("info: \"Connection refused\""), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_marked_down_shutdown_sessions_ends_open_sessions() {
    let s1 = Backend::http("s1");
    let mut chk = Backend::tcp("chk");
    // `timeout server` far beyond the wait below, so only the shutdown can end it.
    let cfg = format!(
        "defaults\n    mode http\n    timeout connect 1s\n    timeout client 60s\n    timeout server 60s\n\
         frontend fe\n    bind 127.0.0.1:0\n    default_backend app\nbackend app\n\
         \x20   server s1 {} check inter 100ms fall 1 port {} on-marked-down shutdown-sessions\n",
        s1.addr,
        chk.addr.port()
    );
    let mut shoal = Shoal::start(&cfg, &["fe"]);
    let addr = shoal.addr("fe");
    let base = backend_conns(s1.addr).await;
    // A request that would take 15 s; the check port dies meanwhile.
    let slow = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let mut client = Client::connect(addr).await;
        let r = tokio::spawn(async move { client.get("/delay/15000").await }).await;
        (started.elapsed(), r.map(|r| r.status).ok())
    });
    wait_new_backend_connection(s1.addr, base).await;
    chk.stop();
    shoal.proc.wait_line("Server app/s1 is DOWN");
    let (took, _) = slow.await.expect("join");
    assert!(
        took < std::time::Duration::from_secs(8),
        "session was not shut down: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_marked_down_shutdown_sessions_ends_tcp_sessions() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let s1 = Backend::tcp("s1");
    let mut chk = Backend::tcp("chk");
    let cfg = format!(
        "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 60s\n    timeout server 60s\n\
         frontend fe\n    bind 127.0.0.1:0\n    default_backend app\nbackend app\n\
         \x20   server s1 {} check inter 100ms fall 1 port {} on-marked-down shutdown-sessions\n",
        s1.addr,
        chk.addr.port()
    );
    let mut shoal = Shoal::start(&cfg, &["fe"]);
    let stream = tokio::net::TcpStream::connect(shoal.addr("fe"))
        .await
        .expect("connect");
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"hello\n").await.expect("write");
    let echo = tokio::time::timeout(DEADLINE, lines.next_line()).await;
    assert_eq!(
        echo.ok().and_then(|l| l.ok()).flatten().as_deref(),
        Some("s1 hello")
    );
    // The check port dies; the session on the (healthy) traffic port ends.
    chk.stop();
    shoal.proc.wait_line("Server app/s1 is DOWN");
    let end = tokio::time::timeout(DEADLINE, lines.next_line()).await;
    assert!(
        matches!(end, Ok(Ok(None)) | Ok(Err(_))),
        "session still open: {end:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_check_send_overrides_httpchk() {
    let s1 = Backend::http("s1");
    let s2 = Backend::http("s2");
    let cfg = format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:0\n    default_backend hdr\n\
         backend sts\n    option httpchk\n    http-check send meth GET uri /status/503\n\
         \x20   server s1 {} check inter 100ms\n\
         backend hdr\n    option httpchk\n\
         \x20   http-check send meth GET uri /echo-headers ver HTTP/1.1 hdr Host check.local hdr X-Probe yes\n\
         \x20   http-check expect string x-probe:\\ yes\n\
         \x20   server s2 {} check inter 100ms\n",
        s1.addr, s2.addr
    );
    let mut shoal = Shoal::start(&cfg, &["fe"]);
    let line = shoal.proc.wait_line("Server sts/s1 is DOWN");
    assert!(
        line.contains("reason: Layer7 wrong status, code: 503, info: \"Service Unavailable\""),
        "{line}"
    );
    shoal.proc.wait_line(
        "Health check for server hdr/s2 succeeded, reason: Layer7 check passed, code: 200",
    );
    assert!(!shoal
        .proc
        .drain()
        .iter()
        .any(|l| l.contains("hdr/s2 is DOWN")));
    assert_eq!(get(shoal.addr("fe"), "/").await.server(), "s2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_layer7_marks_a_failing_server_down_from_real_traffic() {
    // s1 answers 500 to /status/500 but its check port (a TCP backend) is
    // fine, so only passive health can take it out.
    let s1 = Backend::http("s1");
    let s2 = Backend::http("s2");
    let chk = Backend::tcp("chk");
    let cfg = format!(
        "defaults\n    mode http\n    timeout connect 1s\n    timeout client 10s\n    timeout server 10s\n\
         frontend fe\n    bind 127.0.0.1:0\n    default_backend app\n\
         backend app\n    balance roundrobin\n\
         \x20   server s1 {} check port {} inter 10s observe layer7 error-limit 3 on-error mark-down\n\
         \x20   server s2 {}\n",
        s1.addr,
        chk.addr.port(),
        s2.addr
    );
    let mut shoal = Shoal::start(&cfg, &["fe"]);
    let addr = shoal.addr("fe");
    // A passed active check ends an error run, so keep the errors coming
    // until the passive verdict lands (a handful of requests normally).
    let mut sent = 0;
    while !shoal
        .proc
        .drain()
        .iter()
        .any(|l| l.contains("Server app/s1 is DOWN"))
    {
        assert!(sent < 300, "no passive DOWN after {sent} failing requests");
        let _ = get(addr, "/status/500").await;
        sent += 1;
    }
    let counts = tally(addr, "/", 20).await;
    assert_eq!(counts.get("s2"), Some(&20), "{counts:?}");
}

/// The `cluster-health` keyword, `show cluster health` on the runtime
/// socket and `GET /v1/cluster/health` on a standalone node: one reporter
/// (node 0), the rule as configured, each report with its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_health_rule_socket_and_admin_views() {
    const TOKEN: &str = "health-view-token";
    let s1 = Backend::http("s1");
    let dead = dead_addr();
    let cfg = format!(
        "global\n    stats socket ipv4@127.0.0.1:0 level user\n\
         {DEFAULTS}    cluster-health all\n\
         frontend fe\n    bind 127.0.0.1:0\n    default_backend app\n\
         backend app\n    server s1 {} check inter 100ms\n    server s2 {dead} check inter 100ms\n",
        s1.addr
    );
    let mut shoal = Shoal::start_with_env(
        &cfg,
        &["fe"],
        &["--admin", "127.0.0.1:0"],
        &[("SHOAL_ADMIN_TOKEN", TOKEN)],
    );
    let socket: std::net::SocketAddr = shoal.stats_sockets(1)[0].parse().expect("TCP socket");
    let admin = shoal.admin_addr();

    // Node 0's first checks: s1 UP, s2 DOWN (it falls at the first
    // failure from boot), each report with the check's reason.
    let reported = |text: &str| {
        text.lines().filter(|l| l.starts_with("app ")).count() == 2 && !text.contains(" - - - -")
    };
    eventually("both servers reported", || async move {
        reported(&cli_tcp(socket, "show cluster health\n").await)
    })
    .await;
    let text = cli_tcp(socket, "show cluster health\n").await;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "# node 0", "{text}");
    assert_eq!(
        lines[1],
        "# be_name srv_name verdict rule avoided_here node report at reason"
    );
    let fields = |line: &str| -> Vec<String> { line.splitn(9, ' ').map(str::to_string).collect() };
    let s1_line = fields(lines[2]);
    assert_eq!(
        s1_line.iter().map(String::as_str).collect::<Vec<_>>()[..7],
        ["app", "s1", "UP", "all", "0", "0", "UP"],
        "{text}"
    );
    assert_eq!(s1_line[8], "Layer4 check passed", "{text}");
    let s2_line = fields(lines[3]);
    assert_eq!(
        s2_line.iter().map(String::as_str).collect::<Vec<_>>()[..7],
        ["app", "s2", "DOWN", "all", "1", "0", "DOWN"],
        "{text}"
    );
    assert_eq!(
        s2_line[8],
        "Layer4 connection problem, info: \"Connection refused\""
    );
    let at: u64 = s2_line[7].parse().expect("report time in ms");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    assert!(at <= now && now - at < 60_000, "at {at}, now {now}");

    // The same through the admin API, which documents the route.
    let auth = format!("Bearer {TOKEN}");
    let r = send(
        admin,
        "GET",
        "/v1/cluster/health",
        &[("authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("JSON");
    assert_eq!(v["node"], 0);
    let s2 = &v["servers"][1];
    assert_eq!(
        (
            &s2["server"],
            &s2["verdict"],
            &s2["rule"],
            &s2["avoided_here"],
            &s2["health"]
        ),
        (
            &serde_json::json!("s2"),
            &serde_json::json!("DOWN"),
            &serde_json::json!("all"),
            &serde_json::json!(true),
            &serde_json::json!("down")
        ),
        "{v}"
    );
    assert_eq!(s2["reports"][0]["node"], 0);
    assert_eq!(s2["reports"][0]["report"], "DOWN");
    assert_eq!(
        s2["reports"][0]["reason"],
        "Layer4 connection problem, info: \"Connection refused\""
    );
    assert_eq!(v["servers"][0]["avoided_here"], false);
    let r = send(admin, "GET", "/v1/cluster/health", &[], "").await;
    assert_eq!(r.status, 401, "the token is required");
    let doc = send(admin, "GET", "/openapi.json", &[], "").await;
    let doc: serde_json::Value = serde_json::from_str(&doc.body).expect("JSON");
    assert!(
        doc["paths"]["/v1/cluster/health"]["get"].is_object(),
        "documented"
    );
    // Traffic goes to the server that is UP only.
    let counts = tally(shoal.addr("fe"), "/", 10).await;
    assert_eq!(counts.get("s1"), Some(&10), "{counts:?}");

    // `/v1/cluster/load` answers standalone too: no peers, no shares.
    let r = send(
        admin,
        "GET",
        "/v1/cluster/load",
        &[("authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("JSON");
    assert_eq!(
        (&v["node"], &v["peers"]),
        (&serde_json::json!(0), &serde_json::json!([])),
        "{v}"
    );
    let s1 = &v["servers"][0];
    assert_eq!(
        (
            &s1["backend"],
            &s1["server"],
            &s1["in_flight"],
            &s1["peers_in_flight"],
            &s1["limit"]
        ),
        (
            &serde_json::json!("app"),
            &serde_json::json!("s1"),
            &serde_json::json!(0),
            &serde_json::json!(0),
            &serde_json::Value::Null
        ),
        "{v}"
    );
    assert!(
        doc["paths"]["/v1/cluster/load"]["get"].is_object(),
        "documented"
    );
}

/// `shoal check` knows the keyword, and says where a bad rule is.
#[test]
fn shoal_check_knows_cluster_health() {
    let dir = TempDir::new("check");
    let good = dir.file(
        "good.cfg",
        "defaults\n    cluster-health any\nbackend app\n    cluster-health majority\n    server s1 127.0.0.1:1 check\n",
    );
    let bad = dir.file(
        "bad.cfg",
        "backend app\n    server s1 127.0.0.1:1 check\n    cluster-health most\n",
    );
    let run = |path: &Path| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_shoal"))
            .arg("check")
            .arg("-f")
            .arg(path)
            .output()
            .expect("run shoal check");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, out) = run(&good);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = run(&bad);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "{}:3: 'cluster-health' expects any, majority or all, got 'most'",
            bad.display()
        )),
        "{out}"
    );
}

/// The stats page's "Nodes" column: each reporting node's word, the rule,
/// local avoidance, and the reasons in the cell's title.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_page_shows_each_nodes_report() {
    let s1 = Backend::http("s1");
    let dead = dead_addr();
    let cfg = format!(
        "{DEFAULTS}frontend stats\n    bind 127.0.0.1:0\n    stats enable\n    stats uri /stats\n\
         frontend fe\n    bind 127.0.0.1:0\n    default_backend app\n\
         backend app\n    cluster-health any\n\
         \x20   server s1 {} check inter 100ms\n    server s2 {dead} check inter 100ms\n",
        s1.addr
    );
    let shoal = Shoal::start(&cfg, &["stats", "fe"]);
    let page = shoal.addr("stats");
    let cell = "<td class=\"name nodes\" title=\"node 0: Layer4 connection problem, info: &quot;Connection refused&quot;\">0 DOWN (any); avoided here</td>";
    eventually("s2's Nodes cell", || async move {
        get(page, "/stats").await.body.contains(cell)
    })
    .await;
    let body = get(page, "/stats").await.body;
    assert!(body.contains("<th class=\"name\">Nodes</th>"), "{body}");
    assert!(
        body.contains(
            "<td class=\"name nodes\" title=\"node 0: Layer4 check passed\">0 UP (any)</td>"
        ),
        "{body}"
    );
}
