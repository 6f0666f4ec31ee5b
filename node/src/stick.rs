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

/// A write waiting for a batch, with its place in this node's write
/// order (`gen`, increasing): when the batch that carries it comes back
/// from the log, the local entry is settled only if no newer write of the
/// key is still on its way (see [`StickTable::follow`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub write: StickWrite,
    pub gen: u64,
}

#[derive(Debug, Default)]
struct Waiting {
    writes: Vec<Queued>,
    next_gen: u64,
}

/// Stick-table writes waiting for the next batch.
#[derive(Debug, Default)]
pub struct StickQueue {
    waiting: Mutex<Waiting>,
    /// Signalled when the queue stops being empty.
    pub ready: Notify,
    /// Signalled when [`FLUSH_AT`] writes are queued.
    pub full: Notify,
}

impl StickQueue {
    /// Queue `write`; its `gen`, or `None` when it was dropped (too many
    /// waiting).
    fn push(&self, write: StickWrite) -> Option<u64> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if waiting.writes.len() >= MAX_PENDING {
            WRITES_DROPPED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return None;
        }
        let gen = waiting.next_gen;
        waiting.next_gen += 1;
        waiting.writes.push(Queued { write, gen });
        match waiting.writes.len() {
            1 => self.ready.notify_one(),
            FLUSH_AT => self.full.notify_one(),
            _ => {}
        }
        Some(gen)
    }

    /// Writes queued now.
    pub fn len(&self) -> usize {
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .writes
            .len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Everything queued so far, oldest first.
    pub fn take(&self) -> Vec<Queued> {
        std::mem::take(
            &mut self
                .waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .writes,
        )
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
    /// When the cluster last heard of this entry with this server: a
    /// write of it queued here, or the entry copied from the log.
    replicated: Instant,
    /// Matches the newest `order` record for this key.
    seq: u64,
    /// The `gen` of this node's newest write of the key that the log has
    /// not settled yet: while it is on its way, entries from the log do
    /// not overwrite it (it would be overwritten with an older value).
    pending: Option<u64>,
}

/// Most entries a table's map has room for from the start (see
/// [`StickTable::new`]); a larger table grows past it as it fills.
const PRESIZED_ENTRIES: usize = 1 << 20;

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<Box<str>, Entry>,
    /// Keys in update order; stale records (older seq) are skipped lazily.
    order: VecDeque<(Box<str>, u64)>,
    next_seq: u64,
    /// The `touched` of the newest `order` record. Records are in touch
    /// order while every put touches at or after it, so expiry only looks
    /// at the front of `order`.
    newest_touch: Option<Instant>,
    /// An entry was put touched earlier than `newest_touch` (loaded with
    /// its age into a table in use): the next expiry walks the whole map
    /// once and puts `order` back in touch order.
    unsorted: bool,
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
        // Room for `size` entries up front (up to PRESIZED_ENTRIES): a
        // map that grows rehashes every entry at once, and at a million
        // entries that stalled the node's thread for long enough to time
        // out Raft appends. The cost: for a `size` of about a million or
        // more, 192 MiB of address space per table, of which only the
        // control bytes (2 MiB) are written at once; buckets become
        // resident as entries fill them.
        let room =
            usize::try_from(config.size).map_or(PRESIZED_ENTRIES, |s| s.min(PRESIZED_ENTRIES));
        StickTable {
            name: name.into(),
            config,
            inner: Mutex::new(Inner {
                map: HashMap::with_capacity(room),
                ..Inner::default()
            }),
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

    /// How often a refresh that keeps an entry's server is replicated:
    /// an eighth of `expire` (at most a minute; a minute without
    /// `expire`). Replicating every refresh would make every request a
    /// write for the whole cluster; this way the replicated entry of a key
    /// in use never expires, and a key idle since may expire on the other
    /// nodes up to this much earlier than here.
    pub fn refresh_every(&self) -> Duration {
        const MOST: Duration = Duration::from_secs(60);
        self.config.expire.map_or(MOST, |e| (e / 8).min(MOST))
    }

    /// Store or refresh `key -> server` (the request path), and queue the
    /// write for replication with the server the key stuck to before,
    /// unless it only refreshes an entry the cluster heard of within
    /// [`StickTable::refresh_every`].
    pub fn store(&self, key: &str, server: &str, server_id: usize) {
        let key = self.normalise(key);
        let mut inner = self.lock();
        // Read under the lock: puts then touch in the order they are made,
        // which keeps `order` sorted by touch time (see `drop_expired`).
        let now = Instant::now();
        let heard = inner
            .map
            .get(&key)
            .filter(|e| !self.expired(e, now) && *e.server == *server)
            .filter(|e| now.saturating_duration_since(e.replicated) < self.refresh_every())
            .map(|e| (e.replicated, e.pending));
        let (key, prev) = self.put_normalised(&mut inner, key, server, server_id, now);
        let (replicated, pending) = match heard {
            Some(kept) => kept,
            // Queued under the table's lock, so that the queue holds one
            // key's writes in the order the table took them (a batch's
            // last write of a key is the one the table kept).
            None => (
                now,
                self.queue.push(StickWrite {
                    table: self.name.to_string(),
                    key: key.to_string(),
                    server: server.to_string(),
                    prev: prev.map(Into::into),
                }),
            ),
        };
        if let Some(entry) = inner.map.get_mut(&key) {
            entry.replicated = replicated;
            entry.pending = pending;
        }
    }

    /// Store or refresh `key -> server` locally only, evicting the oldest
    /// entries when full; returns the key as stored.
    pub fn write(&self, key: &str, server: &str, server_id: usize) -> Box<str> {
        self.put(&mut self.lock(), key, server, server_id, Instant::now())
            .0
    }

    /// [`StickTable::write`] of an entry last written `age` ago (entries
    /// loaded from the replicated state keep their remaining lifetime).
    pub fn load(&self, key: &str, server: &str, server_id: usize, age: Duration) {
        let now = Instant::now();
        let touched = now.checked_sub(age).unwrap_or(now);
        self.put(&mut self.lock(), key, server, server_id, touched);
    }

    /// Make the local entry of `key` what the log says it is now
    /// (`replicated`: the server and its id, or `None` when the entry is
    /// gone), as a committed batch is applied. `settles`: the batch carried
    /// this node's own write of the key with that `gen`.
    ///
    /// While a newer write of this node is on its way the entry is left as
    /// it is: that write settles it when it comes back (accepted, the log
    /// says what the table holds; refused, the table takes the winner).
    /// Without this, another node's refresh of the old server, committed
    /// between this node's write and its batch, put the old server back
    /// here while the log took this node's new one.
    pub fn follow(&self, key: &str, replicated: Option<(&str, usize)>, settles: Option<u64>) {
        let mut inner = self.lock();
        if let Some(entry) = inner.map.get_mut(key) {
            match (entry.pending, settles) {
                (Some(newest), Some(gen)) if newest > gen => return,
                (Some(_), None) => return,
                _ => entry.pending = None,
            }
            if settles.is_some() && replicated.is_some_and(|(s, _)| *entry.server == *s) {
                // Our own write, accepted: the table holds it already.
                return;
            }
        }
        match replicated {
            Some((server, server_id)) => {
                self.put(&mut inner, key, server, server_id, Instant::now());
            }
            None => {
                inner.map.remove(key);
            }
        }
    }

    /// Every entry stops waiting for this node's writes: the log was
    /// replaced by a snapshot (or a restore) that already holds whatever
    /// of them committed, and those batches will not come back.
    pub fn settle_all(&self) {
        for entry in self.lock().map.values_mut() {
            entry.pending = None;
        }
    }

    /// A write of this node that will never reach the log (dropped from
    /// the backlog): the entry stops waiting for it.
    pub fn abandon(&self, key: &str, gen: u64) {
        if let Some(entry) = self.lock().map.get_mut(key) {
            if entry.pending == Some(gen) {
                entry.pending = None;
            }
        }
    }

    /// Store `key -> server` as touched at `touched`, as an entry the
    /// cluster heard of then; returns the key as stored and the server of
    /// the live entry it replaced.
    fn put(
        &self,
        inner: &mut Inner,
        key: &str,
        server: &str,
        server_id: usize,
        touched: Instant,
    ) -> (Box<str>, Option<Box<str>>) {
        self.put_normalised(inner, self.normalise(key), server, server_id, touched)
    }

    /// [`StickTable::put`] of a key already cut to the table's `len`.
    fn put_normalised(
        &self,
        inner: &mut Inner,
        key: Box<str>,
        server: &str,
        server_id: usize,
        touched: Instant,
    ) -> (Box<str>, Option<Box<str>>) {
        let stored = key.clone();
        let now = Instant::now();
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let old = inner.map.insert(
            key.clone(),
            Entry {
                server: server.into(),
                server_id,
                touched,
                replicated: touched,
                seq,
                pending: None,
            },
        );
        let prev = old.filter(|e| !self.expired(e, now)).map(|e| e.server);
        inner.order.push_back((key, seq));
        match inner.newest_touch {
            Some(newest) if touched < newest => inner.unsorted = true,
            _ => inner.newest_touch = Some(touched),
        }
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
            let Inner { map, order, .. } = inner;
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

    /// Live entries now (expired ones are dropped first, from the oldest:
    /// this costs what expired, not the size of the table, so `show
    /// table` can be polled without holding the table from the requests).
    pub fn used(&self) -> usize {
        let mut inner = self.lock();
        self.drop_expired(&mut inner, Instant::now());
        inner.map.len()
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
        self.drop_expired(&mut self.lock(), Instant::now());
    }

    /// Remove the entries expired at `now`. `order` is in touch order, so
    /// they are at its front: walk it until the first live entry.
    fn drop_expired(&self, inner: &mut Inner, now: Instant) {
        let Some(expire) = self.config.expire else {
            return;
        };
        if inner.unsorted {
            let Inner { map, order, .. } = &mut *inner;
            map.retain(|_, e| now.duration_since(e.touched) < expire);
            // Keep each live entry's current record, in touch order.
            let mut records: Vec<(Instant, u64, Box<str>)> = order
                .drain(..)
                .filter_map(|(k, seq)| {
                    let e = map.get(&k).filter(|e| e.seq == seq)?;
                    Some((e.touched, seq, k))
                })
                .collect();
            records.sort_unstable_by_key(|(touched, seq, _)| (*touched, *seq));
            order.extend(records.into_iter().map(|(_, seq, k)| (k, seq)));
            inner.newest_touch = inner
                .order
                .back()
                .and_then(|(k, _)| inner.map.get(k))
                .map(|e| e.touched);
            inner.unsorted = false;
            return;
        }
        let Inner { map, order, .. } = inner;
        while let Some((key, seq)) = order.front() {
            // A stale record (the key was put again later) is skipped.
            let current = map.get(key).filter(|e| e.seq == *seq);
            if current.is_some_and(|e| now.duration_since(e.touched) < expire) {
                break;
            }
            let is_current = current.is_some();
            if let Some((key, _)) = order.pop_front() {
                if is_current {
                    map.remove(&key);
                }
            }
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

    /// Every new entry and every change of server is replicated; a refresh
    /// that keeps the server only once per `refresh_every` (expire / 8).
    #[tokio::test(start_paused = true)]
    async fn refreshes_are_replicated_once_per_eighth_of_expire() {
        let t = table(10, Some(Duration::from_secs(80)));
        assert_eq!(t.refresh_every(), Duration::from_secs(10));
        let queued = |t: &StickTable| t.queue.take();
        t.store("a", "s1", 1);
        let first = queued(&t);
        assert_eq!(first.len(), 1, "a new entry is replicated");
        assert_eq!(first[0].write.prev, None);
        for _ in 0..5 {
            tokio::time::advance(Duration::from_secs(1)).await;
            t.store("a", "s1", 1);
        }
        assert!(queued(&t).is_empty(), "refreshes within 10 s stay local");
        assert_eq!(
            t.view("a").and_then(|v| v.expires_in_ms),
            Some(80_000),
            "a local refresh still renews the entry here"
        );
        t.store("a", "s2", 2);
        let moved = queued(&t);
        assert_eq!(moved.len(), 1, "a new server is replicated at once");
        assert_eq!(moved[0].write.prev.as_deref(), Some("s1"));
        tokio::time::advance(Duration::from_secs(9)).await;
        t.store("a", "s2", 2);
        assert!(queued(&t).is_empty(), "9 s after the last replicated write");
        tokio::time::advance(Duration::from_secs(1)).await;
        t.store("a", "s2", 2);
        let refreshed = queued(&t);
        assert_eq!(refreshed.len(), 1, "10 s after it: replicated");
        assert_eq!(refreshed[0].write.prev.as_deref(), Some("s2"));
        // An entry copied from the cluster counts as heard of.
        t.write("b", "s1", 1);
        t.store("b", "s1", 1);
        assert!(
            queued(&t).is_empty(),
            "a replicated entry refreshed at once stays local"
        );
        assert_eq!(table(1, None).refresh_every(), Duration::from_secs(60));
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

    /// `used` and `purge` drop expired entries from the front of the
    /// update order; entries loaded with their age behind newer ones (a
    /// snapshot installed into a table in use) still expire on time.
    #[tokio::test(start_paused = true)]
    async fn expiry_counts_entries_loaded_out_of_order() {
        let t = table(100, Some(Duration::from_secs(10)));
        t.store("new", "s1", 1);
        t.load("old", "s1", 1, Duration::from_secs(8));
        t.store("newer", "s1", 1);
        assert_eq!(t.used(), 3);
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(t.used(), 2, "'old' expired although 'new' is before it");
        assert_eq!(t.lookup("old"), None);
        t.store("later", "s2", 2);
        tokio::time::advance(Duration::from_secs(7)).await;
        assert_eq!(t.used(), 1, "'new' and 'newer' expired, 'later' lives");
        t.purge();
        let keys: Vec<String> = t.dump().into_iter().map(|e| e.key).collect();
        assert_eq!(keys, vec!["later"]);
        // Refreshed keys leave stale records behind: they do not stop expiry.
        for _ in 0..3 {
            t.store("later", "s2", 2);
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        t.purge();
        assert_eq!(t.used(), 0);
        assert!(t.lock().order.is_empty());
    }
}
