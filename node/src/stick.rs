//! Stick tables: `stick-table type ... size N expire T`, the node-local
//! store the request path reads and writes (session persistence by key).
//!
//! A table maps a key (client address, cookie or header value, kept as
//! text) to the server that served it. Entries expire `expire` after their
//! last update; a full table evicts the least recently updated entries, as
//! HAProxy does. The lock is held only for a map operation, never across I/O.
//!
//! Every write of the request path is also queued in a [`StickQueue`], from
//! which `persist::run_batcher` proposes batches to the replicated state.

use shoal_proto::command::StickWrite;
use shoal_proto::config::{StickKeyType, StickTable as StickTableConfig};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Most writes waiting for a batch; beyond it, writes stay local only
/// (the batcher is far behind, and the request path must not wait).
const MAX_PENDING: usize = 100_000;

/// Queued writes that make the batcher flush at once rather than at the
/// end of its window.
pub const FLUSH_AT: usize = 4096;

/// Stick-table writes that were never replicated: the queue was full, or
/// a batch kept for retry was pushed out by newer writes (process-wide,
/// for `/metrics`). They stay in the writing node's local table.
pub static WRITES_DROPPED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Stick-table writes waiting for the next batch.
#[derive(Debug, Default)]
pub struct StickQueue {
    pending: Mutex<Vec<StickWrite>>,
    /// Signalled when the queue stops being empty.
    pub ready: Notify,
    /// Signalled when [`FLUSH_AT`] writes are queued.
    pub full: Notify,
}

impl StickQueue {
    fn push(&self, write: StickWrite) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.len() >= MAX_PENDING {
            WRITES_DROPPED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        pending.push(write);
        match pending.len() {
            1 => self.ready.notify_one(),
            FLUSH_AT => self.full.notify_one(),
            _ => {}
        }
    }

    /// Writes queued now.
    pub fn len(&self) -> usize {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Everything queued so far.
    pub fn take(&self) -> Vec<StickWrite> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// One entry as the runtime API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryView {
    pub key: String,
    /// HAProxy's 1-based server id (position in the backend).
    pub server_id: usize,
    pub server: String,
    /// Milliseconds until expiry; `None` when the table has no `expire`.
    pub expires_in_ms: Option<u64>,
}

#[derive(Debug)]
struct Entry {
    server: Box<str>,
    server_id: usize,
    touched: Instant,
    /// Matches the newest `order` record for this key.
    seq: u64,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<Box<str>, Entry>,
    /// Keys in update order; stale records (older seq) are skipped lazily.
    order: VecDeque<(Box<str>, u64)>,
    next_seq: u64,
}

/// A stick table.
#[derive(Debug)]
pub struct StickTable {
    /// The proxy that declares it (tables are named after their proxy).
    pub name: Box<str>,
    pub config: StickTableConfig,
    inner: Mutex<Inner>,
    /// Where writes go to be replicated.
    queue: std::sync::Arc<StickQueue>,
}

impl StickTable {
    /// An empty table whose writes are queued in `queue`.
    pub fn new(
        name: &str,
        config: StickTableConfig,
        queue: std::sync::Arc<StickQueue>,
    ) -> StickTable {
        StickTable {
            name: name.into(),
            config,
            inner: Mutex::new(Inner::default()),
            queue,
        }
    }

    /// HAProxy's word for the key type (`ip`, `ipv6`, `integer`, `string`).
    pub fn type_word(&self) -> &'static str {
        match self.config.key {
            StickKeyType::Ip => "ip",
            StickKeyType::Ipv6 => "ipv6",
            StickKeyType::Integer => "integer",
            StickKeyType::String { .. } => "string",
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The maps stay consistent whatever a panicking holder did.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn expired(&self, entry: &Entry, now: Instant) -> bool {
        self.config
            .expire
            .is_some_and(|exp| now.duration_since(entry.touched) >= exp)
    }

    /// The server name stored for `key`, if the entry is live.
    pub fn lookup(&self, key: &str) -> Option<Box<str>> {
        let now = Instant::now();
        let mut inner = self.lock();
        let entry = inner.map.get(key)?;
        if self.expired(entry, now) {
            inner.map.remove(key);
            return None;
        }
        Some(entry.server.clone())
    }

    /// Store or refresh `key -> server` (the request path), and queue the
    /// write for replication with the server the key stuck to before.
    pub fn store(&self, key: &str, server: &str, server_id: usize) {
        let (key, prev) = self.put(key, server, server_id, Instant::now());
        self.queue.push(StickWrite {
            table: self.name.to_string(),
            key: key.into(),
            server: server.to_string(),
            prev: prev.map(Into::into),
        });
    }

    /// Store or refresh `key -> server` locally only (a replicated entry),
    /// evicting the oldest entries when full; returns the key as stored.
    pub fn write(&self, key: &str, server: &str, server_id: usize) -> Box<str> {
        self.put(key, server, server_id, Instant::now()).0
    }

    /// [`StickTable::write`] of an entry last written `age` ago (entries
    /// loaded from the replicated state keep their remaining lifetime).
    pub fn load(&self, key: &str, server: &str, server_id: usize, age: Duration) {
        let now = Instant::now();
        let touched = now.checked_sub(age).unwrap_or(now);
        self.put(key, server, server_id, touched);
    }

    /// Store `key -> server` as touched at `touched`; returns the key as
    /// stored and the server of the live entry it replaced.
    fn put(
        &self,
        key: &str,
        server: &str,
        server_id: usize,
        touched: Instant,
    ) -> (Box<str>, Option<Box<str>>) {
        let key = self.normalise(key);
        let stored = key.clone();
        let now = Instant::now();
        let mut inner = self.lock();
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let old = inner.map.insert(
            key.clone(),
            Entry {
                server: server.into(),
                server_id,
                touched,
                seq,
            },
        );
        let prev = old.filter(|e| !self.expired(e, now)).map(|e| e.server);
        inner.order.push_back((key, seq));
        let size = self.config.size.max(1) as usize;
        while inner.map.len() > size {
            let Some((old, old_seq)) = inner.order.pop_front() else {
                break;
            };
            if inner.map.get(&old).is_some_and(|e| e.seq == old_seq) {
                inner.map.remove(&old);
            }
        }
        // Bound the lazy order queue: rebuild it when mostly stale.
        if inner.order.len() > 2 * inner.map.len() + 64 {
            let Inner { map, order, .. } = &mut *inner;
            order.retain(|(k, s)| map.get(k).is_some_and(|e| e.seq == *s));
        }
        (stored, prev)
    }

    /// A key typed by an operator (`set table`) as the request path would
    /// store it, or `None` when it is not a key of this table's type: an
    /// IPv4 address for `ip`; an IPv4 or IPv6 address for `ipv6` (IPv4
    /// clients are keyed by their IPv4 text there too); a 32-bit unsigned
    /// number for `integer`; any text for `string` (cut to `len` when
    /// stored).
    pub fn parse_key(&self, text: &str) -> Option<String> {
        use std::net::IpAddr;
        match self.config.key {
            StickKeyType::Ip => text
                .parse::<std::net::Ipv4Addr>()
                .ok()
                .map(|ip| ip.to_string()),
            StickKeyType::Ipv6 => match text.parse::<IpAddr>().ok()? {
                IpAddr::V6(v6) => Some(
                    v6.to_ipv4_mapped()
                        .map_or(v6.to_string(), |v4| v4.to_string()),
                ),
                v4 => Some(v4.to_string()),
            },
            StickKeyType::Integer if text.bytes().all(|b| b.is_ascii_digit()) => {
                text.parse::<u32>().ok().map(|n| n.to_string())
            }
            StickKeyType::Integer => None,
            StickKeyType::String { .. } => Some(text.to_string()),
        }
    }

    /// String keys are cut to the table's `len`, as HAProxy stores them.
    fn normalise(&self, key: &str) -> Box<str> {
        match self.config.key {
            StickKeyType::String { len } if key.len() > len as usize => {
                let mut end = len as usize;
                while !key.is_char_boundary(end) {
                    end -= 1;
                }
                key[..end].into()
            }
            _ => key.into(),
        }
    }

    /// The live entry of one key (`show table NAME key K`), found without
    /// walking the table.
    pub fn view(&self, key: &str) -> Option<EntryView> {
        let now = Instant::now();
        let inner = self.lock();
        let e = inner.map.get(key).filter(|e| !self.expired(e, now))?;
        Some(EntryView {
            key: key.to_string(),
            server_id: e.server_id,
            server: e.server.to_string(),
            expires_in_ms: self.config.expire.map(|exp| {
                exp.saturating_sub(now.duration_since(e.touched))
                    .as_millis() as u64
            }),
        })
    }

    /// Live entries, oldest update first.
    pub fn dump(&self) -> Vec<EntryView> {
        let now = Instant::now();
        let inner = self.lock();
        let mut views: Vec<(u64, EntryView)> = inner
            .map
            .iter()
            .filter(|(_, e)| !self.expired(e, now))
            .map(|(k, e)| {
                let expires_in_ms = self.config.expire.map(|exp| {
                    exp.saturating_sub(now.duration_since(e.touched))
                        .as_millis() as u64
                });
                (
                    e.seq,
                    EntryView {
                        key: k.to_string(),
                        server_id: e.server_id,
                        server: e.server.to_string(),
                        expires_in_ms,
                    },
                )
            })
            .collect();
        views.sort_by_key(|(seq, _)| *seq);
        views.into_iter().map(|(_, v)| v).collect()
    }

    /// Live entries now.
    pub fn used(&self) -> usize {
        let now = Instant::now();
        self.lock()
            .map
            .values()
            .filter(|e| !self.expired(e, now))
            .count()
    }

    /// Remove one key, or every entry; returns how many were removed.
    pub fn clear(&self, key: Option<&str>) -> usize {
        let mut inner = self.lock();
        match key {
            Some(k) => usize::from(inner.map.remove(k).is_some()),
            None => {
                let n = inner.map.len();
                inner.map.clear();
                inner.order.clear();
                n
            }
        }
    }

    /// Drop expired entries (called periodically so idle tables shrink).
    pub fn purge(&self) {
        let now = Instant::now();
        let mut inner = self.lock();
        if self.config.expire.is_some() {
            let expire = self.config.expire.unwrap_or(Duration::MAX);
            inner
                .map
                .retain(|_, e| now.duration_since(e.touched) < expire);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(size: u64, expire: Option<Duration>) -> StickTable {
        StickTable::new(
            "t",
            StickTableConfig {
                key: StickKeyType::String { len: 8 },
                size,
                expire,
                store: vec![],
            },
            Default::default(),
        )
    }

    #[test]
    fn stores_looks_up_and_clears() {
        let t = table(10, None);
        t.store("alice", "s1", 1);
        t.store("bob", "s2", 2);
        assert_eq!(t.lookup("alice").as_deref(), Some("s1"));
        assert_eq!(t.used(), 2);
        assert_eq!(t.clear(Some("alice")), 1);
        assert_eq!(t.lookup("alice"), None);
        assert_eq!(t.clear(None), 1);
        assert_eq!(t.used(), 0);
    }

    #[test]
    fn full_table_evicts_least_recently_updated() {
        let t = table(3, None);
        for (k, s) in [("a", "s1"), ("b", "s2"), ("c", "s3")] {
            t.store(k, s, 1);
        }
        t.store("a", "s1", 1); // refresh a: b is now the oldest
        t.store("d", "s4", 4);
        let keys: Vec<String> = t.dump().into_iter().map(|e| e.key).collect();
        assert_eq!(keys, vec!["c", "a", "d"]);
    }

    #[test]
    fn long_string_keys_are_cut_to_len() {
        let t = table(3, None);
        t.store("0123456789", "s1", 1);
        assert_eq!(t.dump()[0].key, "01234567");
    }

    #[test]
    fn operator_keys_are_checked_and_stored_as_requests_store_them() {
        let typed = |key: StickKeyType| {
            StickTable::new(
                "t",
                StickTableConfig {
                    key,
                    size: 10,
                    expire: None,
                    store: vec![],
                },
                Default::default(),
            )
        };
        let ip = typed(StickKeyType::Ip);
        assert_eq!(ip.parse_key("10.0.0.1").as_deref(), Some("10.0.0.1"));
        assert_eq!(ip.parse_key("10.0.0.999"), None);
        assert_eq!(ip.parse_key("::1"), None);
        let v6 = typed(StickKeyType::Ipv6);
        assert_eq!(v6.parse_key("::ffff:10.0.0.1").as_deref(), Some("10.0.0.1"));
        assert_eq!(
            v6.parse_key("2001:DB8::0001").as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(v6.parse_key("10.0.0.1").as_deref(), Some("10.0.0.1"));
        assert_eq!(v6.parse_key("zz"), None);
        let int = typed(StickKeyType::Integer);
        assert_eq!(int.parse_key("012").as_deref(), Some("12"));
        for bad in ["-3", "+3", "abc", "4294967296", ""] {
            assert_eq!(int.parse_key(bad), None, "{bad}");
        }
        let text = table(10, None);
        assert_eq!(text.parse_key("any text").as_deref(), Some("any text"));
    }

    #[tokio::test(start_paused = true)]
    async fn entries_expire() {
        let t = table(10, Some(Duration::from_secs(5)));
        t.store("a", "s1", 1);
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(t.dump()[0].expires_in_ms, Some(2000));
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(t.lookup("a"), None);
        assert_eq!(t.used(), 0);
    }
}
