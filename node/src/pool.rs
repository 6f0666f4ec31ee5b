//! Idle keep-alive connections to one server, for `http-reuse`.
//!
//! A connection enters the pool only after a complete exchange with no
//! byte left over (see `http::proxy`), and leaves it when a request takes
//! it. Idle connections cost no task and no buffer: whether one is still
//! clean is checked when it is taken, with a non-blocking read that must
//! find nothing (any data or end of stream means the server sent something
//! it should not have, or closed: the connection is dropped).
//!
//! Every entry records the address it was opened to and the pool's
//! generation at that time. [`Pool::flush`] bumps the generation (address
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
    idle: Mutex<Vec<ServerConn>>,
    generation: AtomicU64,
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

    /// An idle connection to `addr` that is still clean: `prefer` (a
    /// connection id) first, else the most recently used one allowed by
    /// `share`.
    pub fn take(&self, addr: SocketAddr, share: Share, prefer: Option<u64>) -> Option<ServerConn> {
        let generation = self.generation();
        loop {
            let conn = {
                let mut idle = self.lock();
                let found = prefer
                    .and_then(|id| idle.iter().rposition(|c| c.id == id))
                    .or_else(|| match share {
                        Share::Any => idle.len().checked_sub(1),
                        Share::Proven => idle.iter().rposition(|c| c.exchanges >= 2),
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

    /// Return a connection after a complete exchange. It is closed instead
    /// when its generation is over or the pool is full.
    pub fn put(&self, mut conn: ServerConn) {
        if conn.generation != self.generation() {
            return;
        }
        conn.idle_since = Instant::now();
        let expired = {
            let mut idle = self.lock();
            let expired = take_expired(&mut idle);
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
            expired
        };
        drop(expired);
    }

    /// Close every idle connection and refuse those in use when they come
    /// back (the server moved, went into maintenance, or was reloaded).
    pub fn flush(&self) {
        self.generation.fetch_add(1, Relaxed);
        let idle = std::mem::take(&mut *self.lock());
        drop(idle);
    }

    /// Close connections idle for longer than [`IDLE_TIMEOUT`].
    pub fn purge(&self) {
        let expired = take_expired(&mut self.lock());
        drop(expired);
    }

    /// How many idle connections are pooled now.
    pub fn idle_count(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ServerConn>> {
        // The vector is valid whatever a panicking holder did.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
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
        pool.put(conn);
        let other: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        assert!(
            pool.take(other, Share::Any, None).is_none(),
            "wrong address"
        );
        assert_eq!(pool.idle_count(), 0, "and it was closed");

        let (ours, _theirs) = pair(&listener).await;
        pool.put(ServerConn::new(ours, addr, pool.generation()));
        let taken = pool.take(addr, Share::Any, None).expect("clean");
        assert_ne!(taken.id, id);
        assert!(pool.take(addr, Share::Proven, None).is_none(), "empty pool");
        // Refused when it comes back after a flush.
        pool.flush();
        pool.put(taken);
        assert_eq!(pool.idle_count(), 0);

        // A server that sends anything while idle: closed on take.
        let (ours, mut theirs) = pair(&listener).await;
        pool.put(ServerConn::new(ours, addr, pool.generation()));
        theirs.write_all(b"X").await.expect("write");
        // The byte reaches our socket asynchronously: until it does, the
        // connection is (rightly) clean and goes back.
        for _ in 0..2000 {
            match pool.take(addr, Share::Any, None) {
                None => return,
                Some(conn) => pool.put(conn),
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
        for exchanges in [1, 2, 1] {
            let (ours, theirs) = pair(&listener).await;
            keep.push(theirs);
            let mut conn = ServerConn::new(ours, addr, pool.generation());
            conn.exchanges = exchanges;
            ids.push(conn.id);
            pool.put(conn);
        }
        let proven = pool.take(addr, Share::Proven, None).expect("proven");
        assert_eq!(proven.id, ids[1]);
        let preferred = pool
            .take(addr, Share::Any, Some(ids[0]))
            .expect("preferred");
        assert_eq!(preferred.id, ids[0]);
        let last = pool.take(addr, Share::Any, Some(12345)).expect("any");
        assert_eq!(last.id, ids[2]);
    }

    #[tokio::test]
    async fn idle_connections_expire() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let pool = Pool::default();
        let (ours, _theirs) = pair(&listener).await;
        pool.put(ServerConn::new(ours, addr, pool.generation()));
        tokio::time::pause();
        tokio::time::advance(IDLE_TIMEOUT + Duration::from_millis(1)).await;
        pool.purge();
        assert_eq!(pool.idle_count(), 0);
    }
}
