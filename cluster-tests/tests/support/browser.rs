//! A headless Chromium driven through ChromeDriver (W3C WebDriver), to
//! click what a person would click. Debian's `chromium` and
//! `chromium-driver`; a test that needs them fails (never skips) without.

use super::{try_http, Proc};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Browsers start slowly on a busy machine.
pub const BROWSER_DEADLINE: Duration = Duration::from_secs(90);

/// Fail, naming the fix, when Chromium or ChromeDriver is missing.
pub fn require_chromium() {
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

/// A WebDriver session on a local chromedriver; the browser closes on drop.
pub struct Driver {
    addr: SocketAddr,
    session: String,
    _proc: Proc,
}

impl Driver {
    /// Start chromedriver (on a port it picks and prints) and a Chromium
    /// session with its profile in `profile`.
    pub async fn start(profile: &Path) -> Driver {
        require_chromium();
        let mut cmd = Command::new("/usr/bin/chromedriver");
        cmd.arg("--port=0");
        let mut proc = Proc::spawn("chromedriver", cmd);
        let line = proc.wait_line("started successfully on port ");
        let port: u16 = line
            .trim_end()
            .trim_end_matches('.')
            .rsplit(' ')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no chromedriver port in {line:?}"));
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": chromium_flags(profile) }
        } } });
        let created = wd(addr, "POST", "/session", Some(caps)).await;
        let session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {created}"))
            .to_string();
        Driver {
            addr,
            session,
            _proc: proc,
        }
    }

    /// One command of this session; its `value`.
    pub async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        wd(self.addr, method, &path, body).await
    }

    /// Open `url`.
    pub async fn open(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url }))).await;
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        let v = self.cmd("GET", "/url", None).await;
        v.as_str().unwrap_or_default().to_string()
    }

    /// The WebDriver id of the element matching a CSS selector.
    pub async fn find(&self, css: &str) -> String {
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

    /// The rendered text of the element matching a CSS selector.
    pub async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        let v = self.cmd("GET", &format!("/element/{id}/text"), None).await;
        v.as_str().unwrap_or_default().to_string()
    }

    /// Click the element matching a CSS selector.
    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.cmd("POST", &format!("/element/{id}/click"), Some(json!({})))
            .await;
    }

    /// Wait until the current URL ends with `suffix`; returns it.
    pub async fn wait_url(&self, suffix: &str) -> String {
        let end = Instant::now() + BROWSER_DEADLINE;
        loop {
            let url = self.url().await;
            if url.ends_with(suffix) {
                return url;
            }
            assert!(
                Instant::now() < end,
                "the browser is at {url}, not at ...{suffix}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Driver {
    /// End the session so that chromedriver closes Chromium (killing
    /// chromedriver alone would leave the browser running), also when the
    /// test panicked. Drop cannot await, hence `block_in_place` (a
    /// multi-threaded runtime is needed).
    fn drop(&mut self) {
        let path = format!("/session/{}", self.session);
        let addr = self.addr;
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async {
                let _ = try_http(addr, "DELETE", &path, &[], "", BROWSER_DEADLINE).await;
            })
        });
    }
}

/// One WebDriver call; returns the `value` member, panicking on errors.
async fn wd(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> Value {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let headers = [("content-type", "application/json; charset=utf-8")];
    let r = try_http(addr, method, path, &headers, &body, BROWSER_DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
    let v: Value = serde_json::from_str(&r.body)
        .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}: {}", r.body));
    assert_eq!(r.status, 200, "WebDriver {method} {path}: {v}");
    v["value"].clone()
}
