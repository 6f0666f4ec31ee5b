//! Fixtures for the cluster tests: real `shoal` nodes and
//! `shoal-demo-backend` servers on loopback, with ports chosen by the
//! kernel and read back from what each process prints; the `shoal` CLI;
//! a small HTTP client; and network cuts with iptables. Nothing here
//! sleeps in place of a condition: every wait polls against a deadline.
// Each test binary uses a part of it.
#![allow(dead_code)]

mod browser;
mod chaos;
mod cli;
mod cluster;
mod cut;
mod drivers;
mod http;
mod node;
mod process;
mod sources;

#[allow(unused_imports)]
pub use {
    browser::*, chaos::*, cli::*, cluster::*, cut::*, drivers::*, http::*, node::*, process::*,
    sources::*,
};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Generous bound for anything a test waits on: elections, joins and
/// catching up on a busy 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The admin API token of every node (a cluster node always needs one).
pub const TOKEN: &str = "cluster-tests-token";

/// One cluster at a time per test binary: the machine has 2 cores, and
/// several clusters electing at once would measure the machine, not Shoal.
/// (An async lock: it is held across awaits, and a failed test does not
/// poison it.)
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Hold this while a cluster runs.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// [`serial`] for a test without a runtime.
pub fn serial_blocking() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.blocking_lock()
}

/// A binary of this build: the test binary lives in target/<profile>/deps,
/// the binaries one level up.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("path of the test binary");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build -p shoal-node --bins` \
         (`cargo test --workspace` builds it too)",
        path.display()
    );
    path
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "shoal-ct-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn file(&self, name: &str, content: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, content).expect("write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Poll `check` every 100 ms until it gives `Some`, or panic after
/// [`DEADLINE`] saying what did not happen.
pub async fn poll<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    poll_within(what, DEADLINE, &mut check).await
}

/// [`poll`] with its own deadline.
pub async fn poll_within<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < end, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Poll until `check` is true.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    poll(what, || {
        let fut = check();
        async move { fut.await.then_some(()) }
    })
    .await
}
