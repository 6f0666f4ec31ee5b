//! The HTML stats page through a real `shoal`: `stats auth`/`realm`,
//! `stats refresh`, `;csv`, admin actions posted as forms, and a headless
//! Chromium that renders the page and clicks a real "Drain" button.

mod support;

use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

/// Basic credentials `admin:s3cret`.
const AUTH: &str = "Basic YWRtaW46czNjcmV0";

fn config(s1: &Backend, s2: &Backend, extra_servers: &str) -> String {
    format!(
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n\
         frontend fe\n    bind 127.0.0.1:0\n    default_backend app\n\
         frontend stats\n    bind 127.0.0.1:0\n    stats enable\n    stats uri /admin?stats\n    stats refresh 5s\n\
             stats realm ShoalStats\n    stats auth admin:s3cret\n    stats auth ops:pw\n    stats admin if LOCALHOST\n\
         frontend readonly\n    bind 127.0.0.1:0\n    stats enable\n\
         backend app\n    balance roundrobin\n    server s1 {}\n    server s2 {}\n{extra_servers}",
        s1.addr, s2.addr
    )
}

/// A form post to the stats page, with credentials.
async fn post(addr: SocketAddr, path: &str, form: &str, extra: &[(&str, &str)]) -> Resp {
    let mut headers = vec![
        ("authorization", AUTH),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    headers.extend_from_slice(extra);
    send(addr, "POST", path, &headers, form).await
}

/// The `status` cell of `pxname/svname` in the CSV.
fn csv_status(csv: &str, px: &str, sv: &str) -> String {
    let header: Vec<&str> = csv
        .lines()
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .expect("CSV header")
        .split(',')
        .collect();
    let col = header
        .iter()
        .position(|c| *c == "status")
        .expect("status column");
    csv.lines()
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&px) && cells.get(1) == Some(&sv))
        .and_then(|cells| cells.get(col).map(|s| s.to_string()))
        .unwrap_or_else(|| panic!("no {px}/{sv} row in:\n{csv}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_refresh_csv_and_admin_forms() {
    let (s1, s2) = (Backend::http("s1"), Backend::http("s2"));
    let shoal = Shoal::start(&config(&s1, &s2, ""), &["fe", "stats", "readonly"]);
    let st = shoal.addr("stats");

    // `stats auth` with `stats realm`.
    for headers in [vec![], vec![("authorization", "Basic YWRtaW46d3Jvbmc=")]] {
        let r = send(st, "GET", "/admin?stats", &headers, "").await;
        assert_eq!(r.status, 401);
        assert_eq!(r.headers["www-authenticate"], "Basic realm=\"ShoalStats\"");
    }
    let page = send(st, "GET", "/admin?stats", &[("authorization", AUTH)], "").await;
    assert_eq!(page.status, 200);
    assert!(page.headers["content-type"]
        .to_str()
        .unwrap_or("")
        .starts_with("text/html"));
    for needle in [
        "<meta http-equiv=\"refresh\" content=\"5\">",
        "data-proxy=\"fe\"",
        "<tr class=\"nocheck\" data-server=\"app/s1\">",
        "data-server=\"app/s2\" data-action=\"drain\"",
        "action=\"/admin?stats\"",
    ] {
        assert!(
            page.body.contains(needle),
            "{needle} missing from:\n{}",
            page.body
        );
    }
    let plain = send(
        st,
        "GET",
        "/admin?stats;norefresh",
        &[("authorization", AUTH)],
        "",
    )
    .await;
    assert!(!plain.body.contains("http-equiv=\"refresh\""));

    // `;csv` is `show stat`.
    let csv = send(
        st,
        "GET",
        "/admin?stats;csv",
        &[("authorization", AUTH)],
        "",
    )
    .await;
    assert_eq!(csv.status, 200);
    assert!(
        csv.body.starts_with("# pxname,svname,qcur,"),
        "{}",
        csv.body
    );
    assert_eq!(csv_status(&csv.body, "app", "s2"), "no check");

    // Admin actions: 303 back to the page with HAProxy's result code.
    let r = post(st, "/admin?stats", "b=app&s=s2&action=drain", &[]).await;
    assert_eq!(
        (r.status, r.headers["location"].to_str().ok()),
        (303, Some("/admin?stats;st=DONE"))
    );
    let csv = send(
        st,
        "GET",
        "/admin?stats;csv",
        &[("authorization", AUTH)],
        "",
    )
    .await;
    assert_eq!(csv_status(&csv.body, "app", "s2"), "DRAIN");
    let counts = tally(shoal.addr("fe"), "/", 40).await;
    assert_eq!(counts.get("s2"), None, "drained s2 got traffic: {counts:?}");
    let done = send(
        st,
        "GET",
        "/admin?stats;st=DONE",
        &[("authorization", AUTH)],
        "",
    )
    .await;
    assert!(done.body.contains("Action processed successfully."));
    assert!(
        done.body.contains("content=\"5;url=/admin?stats\""),
        "{}",
        done.body
    );

    for (form, code) in [
        ("b=app&s=s2&action=weight&weight=9", "DONE"),
        ("b=app&s=s2&action=weight&weight=300", "ERRP"),
        ("b=nope&s=s2&action=ready", "ERRP"),
        ("b=app&action=ready", "NONE"),
        ("b=app&s=s2&action=explode", "UNKN"),
        ("b=app&s=s2&action=ready", "DONE"),
    ] {
        let r = post(st, "/admin?stats", form, &[]).await;
        let want = format!("/admin?stats;st={code}");
        assert_eq!(
            r.headers["location"].to_str().ok(),
            Some(want.as_str()),
            "{form}"
        );
    }
    let csv = send(
        st,
        "GET",
        "/admin?stats;csv",
        &[("authorization", AUTH)],
        "",
    )
    .await;
    assert_eq!(csv_status(&csv.body, "app", "s2"), "no check");
    assert!(csv
        .body
        .lines()
        .any(|l| l.starts_with("app,s2,") && l.contains(",9,")));

    // A cross-site form post is refused, as is a post without credentials.
    let r = post(
        st,
        "/admin?stats",
        "b=app&s=s2&action=maint",
        &[("origin", "http://evil.example")],
    )
    .await;
    assert_eq!(
        r.headers["location"].to_str().ok(),
        Some("/admin?stats;st=DENY")
    );
    let r = send(st, "POST", "/admin?stats", &[], "b=app&s=s2&action=maint").await;
    assert_eq!(r.status, 401);

    // Without `stats admin`: no controls, and posts are denied.
    let ro = shoal.addr("readonly");
    let page = get(ro, "/haproxy?stats").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("data-server=\"app/s1\"") && !page.body.contains("<form"));
    let r = send(ro, "POST", "/haproxy?stats", &[], "b=app&s=s2&action=maint").await;
    assert_eq!(
        r.headers["location"].to_str().ok(),
        Some("/haproxy?stats;st=DENY")
    );
    let csv = get(ro, "/haproxy?stats;csv").await;
    assert_eq!(csv_status(&csv.body, "app", "s2"), "no check");
    // Other paths of the frontend still proxy.
    assert_eq!(get(ro, "/").await.status, 503);
}

/// The browser test needs Debian's Chromium and ChromeDriver; it fails
/// (never skips) without them. `./test.sh` installs them.
fn require_chromium() {
    assert!(
        Path::new("/usr/bin/chromium").exists() && Path::new("/usr/bin/chromedriver").exists(),
        "/usr/bin/chromium or /usr/bin/chromedriver is missing: run ./test.sh, which installs \
         the Debian packages chromium and chromium-driver"
    );
}

/// Chromium's flags for a quiet, sandbox-free headless run.
fn chromium_flags(profile: &Path) -> Vec<String> {
    [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1500,900",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect()
}

/// Browsers start slowly on a busy machine.
const BROWSER_DEADLINE: Duration = Duration::from_secs(90);

/// A W3C WebDriver session on a local chromedriver.
struct Driver {
    addr: SocketAddr,
    session: String,
    _proc: Proc,
}

impl Driver {
    async fn start(profile: &Path) -> Driver {
        // Port 0: ChromeDriver picks one and says which.
        let mut cmd = Command::new("/usr/bin/chromedriver");
        cmd.arg("--port=0");
        let mut proc = spawn_proc(cmd);
        let line = proc.wait_line("started successfully on port ");
        let port: u16 = line
            .trim_end()
            .trim_end_matches('.')
            .rsplit(' ')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("chromedriver port");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": chromium_flags(profile) }
        } } });
        let created = wd(addr, "POST", "/session", Some(caps)).await;
        let session = created["sessionId"]
            .as_str()
            .expect("session id")
            .to_string();
        Driver {
            addr,
            session,
            _proc: proc,
        }
    }

    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        wd(
            self.addr,
            method,
            &format!("/session/{}{path}", self.session),
            body,
        )
        .await
    }

    /// The WebDriver id of the element matching a CSS selector.
    async fn find(&self, css: &str) -> String {
        let found = self
            .cmd(
                "POST",
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        found["element-6066-11e4-a52e-4f735466cecf"]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_string()
    }

    async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        let v = self.cmd("GET", &format!("/element/{id}/text"), None).await;
        v.as_str().unwrap_or_default().to_string()
    }
}

impl Drop for Driver {
    /// End the session so that chromedriver closes Chromium (killing
    /// chromedriver alone would leave the browser running), also when the
    /// test panicked. Drop cannot await, hence `block_in_place`.
    fn drop(&mut self) {
        let path = format!("/session/{}", self.session);
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async {
                let deleting = quiet_delete(self.addr, &path);
                let _ = tokio::time::timeout(BROWSER_DEADLINE, deleting).await;
            })
        });
    }
}

/// `DELETE path`, ignoring every failure (a panic in drop would abort).
async fn quiet_delete(addr: SocketAddr, path: &str) -> Option<()> {
    use http_body_util::BodyExt;
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.ok()?;
    tokio::spawn(conn);
    let req = hyper::Request::delete(path)
        .header("host", addr.to_string())
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .ok()?;
    let resp = sender.send_request(req).await.ok()?;
    resp.into_body().collect().await.ok()?;
    Some(())
}

/// One WebDriver call; returns the `value` member, panicking on errors.
async fn wd(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> Value {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let headers = [("content-type", "application/json; charset=utf-8")];
    let r = tokio::time::timeout(BROWSER_DEADLINE, send(addr, method, path, &headers, &body))
        .await
        .unwrap_or_else(|_| panic!("WebDriver {method} {path}: no answer"));
    let v: Value = serde_json::from_str(&r.body)
        .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}: {}", r.body));
    assert_eq!(r.status, 200, "WebDriver {method} {path}: {v}");
    v["value"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_renders_the_page_and_drains_a_server_on_click() {
    require_chromium();
    let (s1, s2, s3) = (
        Backend::http("s1"),
        Backend::http("s2"),
        Backend::http("s3"),
    );
    // Extra servers show the other colours: a backup, one in maintenance
    // and one whose checks fail (DOWN).
    let (dead4, dead5) = (dead_addr(), dead_addr());
    let extra = format!(
        "    server s3 {} backup\n    server s4 {dead4} disabled\n    server s5 {dead5} check inter 100ms fall 1\n",
        s3.addr,
    );
    let cfg = config(&s1, &s2, &extra).replace(
        "frontend readonly\n    bind 127.0.0.1:0\n    stats enable\n",
        "frontend open\n    bind 127.0.0.1:0\n    stats enable\n    stats uri /stats\n    stats refresh 30s\n    stats admin if LOCALHOST\n",
    );
    let shoal = Shoal::start(&cfg, &["fe", "open"]);
    let page = format!("http://{}/stats", shoal.addr("open"));
    let dir = TempDir::new("chromium");

    // 1. The rendered DOM, as Chromium builds it.
    let mut cmd = Command::new("/usr/bin/chromium");
    cmd.args(chromium_flags(&dir.0.join("dump")))
        .arg("--dump-dom")
        .arg(&page);
    let mut dump = spawn_proc(cmd);
    assert_eq!(
        dump.wait_exit(BROWSER_DEADLINE),
        Some(0),
        "chromium --dump-dom failed"
    );
    let dom = dump.drain().join("\n");
    for needle in [
        "data-server=\"app/s2\"",
        "data-action=\"drain\"",
        "<td class=\"st\">MAINT</td>",
        "Shoal statistics report",
    ] {
        assert!(
            dom.contains(needle),
            "{needle} missing from the DOM:\n{dom}"
        );
    }

    // 2. A real click through WebDriver.
    let driver = Driver::start(&dir.0.join("driver")).await;
    driver
        .cmd("POST", "/url", Some(json!({ "url": page })))
        .await;
    // s5 fails its checks within a few intervals; wait until the page says so.
    let end = Instant::now() + DEADLINE;
    while driver.text("tr[data-server=\"app/s5\"] td.st").await != "DOWN" {
        assert!(Instant::now() < end, "s5 never shown DOWN");
        tokio::time::sleep(Duration::from_millis(200)).await;
        driver.cmd("POST", "/refresh", Some(json!({}))).await;
    }
    // Some traffic, so the counters in the screenshot are not all zero.
    tally(shoal.addr("fe"), "/", 30).await;
    driver.cmd("POST", "/refresh", Some(json!({}))).await;
    assert_eq!(
        driver.text("tr[data-server=\"app/s2\"] td.st").await,
        "no check"
    );
    let button = driver
        .find("button[data-server=\"app/s2\"][data-action=\"drain\"]")
        .await;
    driver
        .cmd("POST", &format!("/element/{button}/click"), Some(json!({})))
        .await;
    let end = Instant::now() + DEADLINE;
    loop {
        let url = driver.cmd("GET", "/url", None).await;
        if url.as_str().is_some_and(|u| u.ends_with("/stats;st=DONE")) {
            break;
        }
        assert!(Instant::now() < end, "no redirect after the click: {url}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        driver.text("tr[data-server=\"app/s2\"] td.st").await,
        "DRAIN"
    );
    assert_eq!(
        driver.text("#action-result").await,
        "Action processed successfully."
    );
    let shot = driver.cmd("GET", "/screenshot", None).await;
    let png = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        shot.as_str().expect("screenshot"),
    )
    .expect("screenshot is base64");
    assert!(png.starts_with(b"\x89PNG"), "screenshot is not a PNG");
    std::fs::write("/tmp/shoal-stats.png", &png).expect("write /tmp/shoal-stats.png");
    drop(driver);

    // 3. The drained server takes no new traffic.
    let counts = tally(shoal.addr("fe"), "/", 60).await;
    assert_eq!(counts.get("s2"), None, "drained s2 got traffic: {counts:?}");
    assert_eq!(counts.get("s1"), Some(&60), "{counts:?}");
}
