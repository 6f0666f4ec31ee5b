//! Idle keep-alive connections to one server, for `http-reuse`.
//!
//! A connection enters the pool only after a complete exchange with no
//! byte left over (see `http::proxy`), and leaves it when a request takes
//! it. Idle connections cost no task and no buffer: whether one is still
//! clean is checked when it is taken, with a non-blocking read that must
//! find nothing (any data or end of stream means the server sent something
//! it should not have, or closed: the connection is dropped).
//!
//! Like HAProxy, the pool keeps no more idle connections than were
//! recently needed at once (its `est_need_conns`): a burst of first
//! requests, each on a connection of its own under `http-reuse safe`, does
//! not leave as many idle connections behind.
//!
//! Every entry records the address it was opened to, the pool's
//! generation at that time, and the SNI it was opened with when the
//! server's `sni` is evaluated per connection (HAProxy hashes it into the
//! connection's reuse key): a request takes only a connection made for
//! the SNI its own evaluates to. Servers without such an `sni` (plain,
//! or a constant one) key all connections `None`, which costs a compare. [`Pool::flush`] bumps the generation (address
//! change, maintenance, reload) and closes what is idle; a connection in
//! use at that moment is refused when it comes back. Idle connections are
//! closed after [`IDLE_TIMEOUT`] (HAProxy's `pool-purge-delay` default).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Idle connections kept per server at most; more are closed.
const MAX_IDLE: usize = 512;

/// How long a connection may stay idle in the pool.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Source of connection identities.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// An open connection to a server, between or during exchanges.
#[derive(Debug)]
pub struct ServerConn {
    pub stream: TcpStream,
    /// Unique for the process: lets a client ask for "its" connection back.
    pub id: u64,
    /// Where it is connected.
    pub addr: SocketAddr,
    /// The pool generation when it was opened.
    pub generation: u64,
    /// Exchanges completed on it.
    pub exchanges: u32,
    /// The SNI it was opened with, when the server's `sni` is evaluated
    /// per connection; `None` otherwise (or when none was sent).
    pub sni: Option<Box<str>>,
    idle_since: Instant,
}

impl ServerConn {
    /// A connection just opened to `addr` for a pool at `generation`.
    pub fn new(stream: TcpStream, addr: SocketAddr, generation: u64) -> ServerConn {
        ServerConn {
            stream,
            id: NEXT_ID.fetch_add(1, Relaxed),
            addr,
            generation,
            exchanges: 0,
            sni: None,
            idle_since: Instant::now(),
        }
    }

    /// True when nothing at all arrived while the connection was idle.
    /// Always asks the kernel (tokio's cached readiness may not have seen
    /// bytes that just arrived); when tokio believes the socket readable,
    /// the answer also clears that stale readiness, so the wait for the
    /// response does not begin with a read that finds nothing.
    pub fn clean(&self) -> bool {
        let peek = || {
            let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); 1];
            socket2::SockRef::from(&self.stream).peek(&mut probe)
        };
        let mut asked = false;
        let via_tokio = self.stream.try_io(tokio::io::Interest::READABLE, || {
            asked = true;
            peek()
        });
        let peeked = if asked { via_tokio } else { peek() };
        matches!(peeked, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

/// Which idle connections a request may take (`http-reuse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Share {
    /// Any idle connection.
    Any,
    /// Only one already reused at least once (`aggressive` first requests).
    Proven,
}

/// A per-server stack of idle connections, most recently used last.
#[derive(Default)]
pub struct Pool {
    inner: Mutex<Inner>,
    generation: AtomicU64,
}

#[derive(Default)]
struct Inner {
    idle: Vec<ServerConn>,
    /// Most connections in use at once during this period and the last
    /// one (HAProxy's `est_need_conns`): idle connections beyond that
    /// estimate of the need are closed rather than kept.
    peak: u32,
    prev_peak: u32,
    /// When the current period began (periods last [`IDLE_TIMEOUT`]).
    period: Option<Instant>,
    /// A connection keyed by SNI was pooled: the need estimate then
    /// applies to each SNI's connections (a request can only take one of
    /// its own SNI), and [`MAX_IDLE`] to all. Never set for plain servers
    /// or a constant `sni`, whose pools keep the cheaper rule.
    keyed: bool,
}

impl Inner {
    fn need(&self) -> usize {
        self.peak.max(self.prev_peak).max(1) as usize
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pool({} idle)", self.idle_count())
    }
}

impl Pool {
    /// The generation new connections must be opened under.
    pub fn generation(&self) -> u64 {
        self.generation.load(Relaxed)
    }

    /// An idle connection to `addr` opened with `sni` that is still clean:
    /// `prefer` (a connection id) first, else the most recently used one
    /// allowed by `share`. Connections made for another SNI stay pooled.
    pub fn take(
        &self,
        addr: SocketAddr,
        share: Share,
        prefer: Option<u64>,
        sni: Option<&str>,
    ) -> Option<ServerConn> {
        let generation = self.generation();
        let fits = |c: &ServerConn| c.sni.as_deref() == sni;
        loop {
            let conn = {
                let mut inner = self.lock();
                let idle = &mut inner.idle;
                let found = prefer
                    .and_then(|id| idle.iter().rposition(|c| c.id == id && fits(c)))
                    .or_else(|| match share {
                        Share::Any => idle.iter().rposition(fits),
                        Share::Proven => idle.iter().rposition(|c| c.exchanges >= 2 && fits(c)),
                    })?;
                idle.remove(found)
            };
            // Checked outside the lock; a bad one is closed and we look again.
            if conn.addr == addr
                && conn.generation == generation
                && conn.idle_since.elapsed() < IDLE_TIMEOUT
                && conn.clean()
            {
                return Some(conn);
            }
        }
    }

    /// Return a connection after a complete exchange; `in_use` is how many
    /// exchanges with the server are under way, this one included. It is
    /// closed instead when its generation is over. When the server now
    /// has more connections than were recently needed at once (or the
    /// pool is full), the oldest idle ones are closed: the one just
    /// returned is the warmest, and its client may ask for it back.
    pub fn put(&self, mut conn: ServerConn, in_use: u32) {
        if conn.generation != self.generation() {
            return;
        }
        conn.idle_since = Instant::now();
        let expired = {
            let mut inner = self.lock();
            inner.peak = inner.peak.max(in_use);
            let mut expired = take_expired(&mut inner.idle);
            inner.keyed |= conn.sni.is_some();
            inner.idle.push(conn);
            let busy = in_use.saturating_sub(1) as usize;
            let keep = inner.need().saturating_sub(busy).clamp(1, MAX_IDLE);
            if inner.keyed {
                trim_keyed(&mut inner.idle, keep, &mut expired);
            } else if inner.idle.len() > keep {
                let surplus = inner.idle.len() - keep;
                expired.extend(inner.idle.drain(..surplus));
            }
            expired
        };
        drop(expired);
    }

    /// Close every idle connection and refuse those in use when they come
    /// back (the server moved, went into maintenance, or was reloaded).
    pub fn flush(&self) {
        self.generation.fetch_add(1, Relaxed);
        let idle = std::mem::take(&mut self.lock().idle);
        drop(idle);
    }

    /// Close connections idle for longer than [`IDLE_TIMEOUT`], and start
    /// a new period for the need estimate when one is over. Called every
    /// second or so.
    pub fn purge(&self) {
        let expired = {
            let mut inner = self.lock();
            let now = Instant::now();
            match inner.period {
                Some(start) if now.duration_since(start) < IDLE_TIMEOUT => {}
                _ => {
                    inner.prev_peak = inner.peak;
                    inner.peak = 0;
                    inner.period = Some(now);
                }
            }
            take_expired(&mut inner.idle)
        };
        drop(expired);
    }

    /// How many idle connections are pooled now.
    pub fn idle_count(&self) -> usize {
        self.lock().idle.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The state is valid whatever a panicking holder did.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// After `idle`'s newest entry was pushed: closes the oldest connections
/// of the same SNI beyond `keep`, then the oldest of all beyond
/// [`MAX_IDLE`] (into `expired`, dropped once the lock is released).
fn trim_keyed(idle: &mut Vec<ServerConn>, keep: usize, expired: &mut Vec<ServerConn>) {
    let Some(newest) = idle.last() else {
        return;
    };
    let key = newest.sni.clone();
    let mut surplus = idle
        .iter()
        .filter(|c| c.sni == key)
        .count()
        .saturating_sub(keep);
    let mut i = 0;
    while surplus > 0 && i < idle.len() {
        if idle[i].sni == key {
            expired.push(idle.remove(i));
            surplus -= 1;
        } else {
            i += 1;
        }
    }
    if idle.len() > MAX_IDLE {
        let over = idle.len() - MAX_IDLE;
        expired.extend(idle.drain(..over));
    }
}

/// Remove the expired entries (the oldest come first), to be dropped
/// by the caller once the lock is released.
fn take_expired(idle: &mut Vec<ServerConn>) -> Vec<ServerConn> {
    let n = idle
        .iter()
        .position(|c| c.idle_since.elapsed() < IDLE_TIMEOUT)
        .unwrap_or(idle.len());
    if n == 0 {
        return Vec::new();
    }
    idle.drain(..n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    /// A connected pair: (our side as a ServerConn's stream, the server side).
    async fn pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
        let ours = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (theirs, _) = listener.accept().await.expect("accept");
        (ours, theirs)
    }

    #[tokio::test]
    async fn take_checks_address_generation_and_cleanliness() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let pool = Pool::default();
        let (ours, _theirs) = pair(&listener).await;
        let conn = ServerConn::new(ours, addr, pool.generation());
        let id = conn.id;
        pool.put(conn, 1);
        let other: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        assert!(
            pool.take(other, Share::Any, None, None).is_none(),
            "wrong address"
        );
        assert_eq!(pool.idle_count(), 0, "and it was closed");

        let (ours, _theirs) = pair(&listener).await;
        pool.put(ServerConn::new(ours, addr, pool.generation()), 1);
        let taken = pool.take(addr, Share::Any, None, None).expect("clean");
        assert_ne!(taken.id, id);
        assert!(
            pool.take(addr, Share::Proven, None, None).is_none(),
            "empty pool"
        );
        // Refused when it comes back after a flush.
        pool.flush();
        pool.put(taken, 1);
        assert_eq!(pool.idle_count(), 0);

        // A server that sends anything while idle: closed on take.
        let (ours, mut theirs) = pair(&listener).await;
        pool.put(ServerConn::new(ours, addr, pool.generation()), 1);
        theirs.write_all(b"X").await.expect("write");
        // The byte reaches our socket asynchronously: until it does, the
        // connection is (rightly) clean and goes back.
        for _ in 0..2000 {
            match pool.take(addr, Share::Any, None, None) {
                None => return,
                Some(conn) => pool.put(conn, 1),
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("a connection with unread data was handed out");
    }

    #[tokio::test]
    async fn proven_and_preferred_connections() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let pool = Pool::default();
        let mut keep = Vec::new();
        let mut ids = Vec::new();
        // Three exchanges were under way at once: all three are kept.
        for (exchanges, in_use) in [(1, 3), (2, 2), (1, 1)] {
            let (ours, theirs) = pair(&listener).await;
            keep.push(theirs);
            let mut conn = ServerConn::new(ours, addr, pool.generation());
            conn.exchanges = exchanges;
            ids.push(conn.id);
            pool.put(conn, in_use);
        }
        assert_eq!(pool.idle_count(), 3);
        let proven = pool.take(addr, Share::Proven, None, None).expect("proven");
        assert_eq!(proven.id, ids[1]);
        let preferred = pool
            .take(addr, Share::Any, Some(ids[0]), None)
            .expect("preferred");
        assert_eq!(preferred.id, ids[0]);
        let last = pool.take(addr, Share::Any, Some(12345), None).expect("any");
        assert_eq!(last.id, ids[2]);
    }

    #[tokio::test]
    async fn no_more_idle_connections_than_recently_needed() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let pool = Pool::default();
        let mut keep = Vec::new();
        // One exchange at a time: one idle connection is enough.
        for _ in 0..3 {
            let (ours, theirs) = pair(&listener).await;
            keep.push(theirs);
            pool.put(ServerConn::new(ours, addr, pool.generation()), 1);
        }
        assert_eq!(pool.idle_count(), 1);
    }

    #[tokio::test]
    async fn connections_are_taken_only_for_their_sni() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let pool = Pool::default();
        let mut keep = Vec::new();
        let mut ids = Vec::new();
        // Two exchanges were under way at once: both are kept.
        for (sni, in_use) in [("a.example", 2), ("b.example", 1)] {
            let (ours, theirs) = pair(&listener).await;
            keep.push(theirs);
            let mut conn = ServerConn::new(ours, addr, pool.generation());
            conn.sni = Some(sni.into());
            ids.push(conn.id);
            pool.put(conn, in_use);
        }
        assert_eq!(pool.idle_count(), 2);
        // Neither a request without SNI nor one for c.example takes one,
        // and asking does not close them.
        assert!(pool.take(addr, Share::Any, None, None).is_none());
        assert!(pool
            .take(addr, Share::Any, None, Some("c.example"))
            .is_none());
        // A preferred connection of another SNI is passed over.
        assert!(pool
            .take(addr, Share::Any, Some(ids[1]), Some("c.example"))
            .is_none());
        assert_eq!(pool.idle_count(), 2);
        let a = pool
            .take(addr, Share::Any, Some(ids[1]), Some("a.example"))
            .expect("a.example's");
        assert_eq!(a.id, ids[0]);
        let b = pool
            .take(addr, Share::Any, None, Some("b.example"))
            .expect("b.example's");
        assert_eq!(b.id, ids[1]);
    }

    #[tokio::test]
    async fn each_sni_keeps_the_idle_connections_it_needs() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let pool = Pool::default();
        let mut keep = Vec::new();
        let mut ids = Vec::new();
        // One exchange at a time, alternating SNIs: one idle connection
        // each (a plain pool would keep one in all).
        for sni in ["a.example", "b.example", "b.example"] {
            let (ours, theirs) = pair(&listener).await;
            keep.push(theirs);
            let mut conn = ServerConn::new(ours, addr, pool.generation());
            conn.sni = Some(sni.into());
            ids.push(conn.id);
            pool.put(conn, 1);
        }
        assert_eq!(pool.idle_count(), 2, "b.example's older one closed");
        let b = pool.take(addr, Share::Any, None, Some("b.example"));
        assert_eq!(b.map(|c| c.id), Some(ids[2]));
        let a = pool.take(addr, Share::Any, None, Some("a.example"));
        assert_eq!(a.map(|c| c.id), Some(ids[0]));
    }

    #[tokio::test]
    async fn idle_connections_expire() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let pool = Pool::default();
        let (ours, _theirs) = pair(&listener).await;
        pool.put(ServerConn::new(ours, addr, pool.generation()), 1);
        tokio::time::pause();
        tokio::time::advance(IDLE_TIMEOUT + Duration::from_millis(1)).await;
        pool.purge();
        assert_eq!(pool.idle_count(), 0);
    }
}
