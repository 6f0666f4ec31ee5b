//! Load-balancing algorithms with HAProxy semantics.
//!
//! A [`Balancer`] is built by the routing-snapshot builder from the usable
//! servers of one backend tier (the primary servers, or the backups) and is
//! rebuilt whenever weights or states change, so it never mutates its server
//! set. Picking is cheap: no allocation, at most a short uncontended mutex
//! (smooth round robin) or a few atomics, and never a lock held across I/O.
//!
//! The caller supplies two closures at pick time, so that live numbers (which
//! the node shares cluster-wide every ~100 ms) stay out of the snapshot:
//! `load(id)` gives a server's in-flight connections and `skip(id)` says that a
//! server must not be chosen now (full at `maxconn`, or already tried).

use shoal_proto::config::{Balance, HashType};

mod hash;
mod leastconn;
mod random;
mod rr;
#[cfg(test)]
mod tests;

use hash::{key_hash, Maglev, WeightedTable};
use leastconn::{First, LeastConn};
use random::WeightedRandom;
use rr::{SmoothRr, StaticRr};

/// One server the balancer may choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Index of the server in its backend; what [`Balancer::pick`] returns.
    pub id: usize,
    /// Effective weight; slots with weight 0 are ignored.
    pub weight: u32,
}

/// A built load-balancing algorithm over a fixed set of servers.
#[derive(Debug)]
pub struct Balancer {
    algo: Algo,
}

#[derive(Debug)]
enum Algo {
    Empty,
    RoundRobin(SmoothRr),
    StaticRr(StaticRr),
    LeastConn(LeastConn),
    First(First),
    /// Hash algorithms keep a round robin for requests without a key, as
    /// HAProxy does (e.g. `balance hdr(x)` when the header is missing).
    Hash {
        table: HashTable,
        fallback: SmoothRr,
    },
    Random(WeightedRandom),
}

#[derive(Debug)]
enum HashTable {
    Map(WeightedTable),
    Consistent(Maglev),
}

impl Balancer {
    /// Builds the algorithm `balance` over `slots`. Slots with weight 0 are
    /// dropped here, so they can never be picked.
    pub fn new(balance: &Balance, hash_type: HashType, slots: Vec<Slot>) -> Balancer {
        let slots: Box<[Slot]> = slots.into_iter().filter(|s| s.weight > 0).collect();
        if slots.is_empty() {
            return Balancer { algo: Algo::Empty };
        }
        let algo = match balance {
            Balance::RoundRobin => Algo::RoundRobin(SmoothRr::new(slots)),
            Balance::StaticRr => Algo::StaticRr(StaticRr::new(slots)),
            Balance::LeastConn => Algo::LeastConn(LeastConn::new(slots)),
            Balance::First => Algo::First(First::new(slots)),
            Balance::Random { draws } => Algo::Random(WeightedRandom::new(slots, *draws)),
            Balance::Source | Balance::Uri { .. } | Balance::UrlParam(_) | Balance::Hdr(_) => {
                let table = match hash_type {
                    HashType::MapBased => HashTable::Map(WeightedTable::new(&slots)),
                    HashType::Consistent => HashTable::Consistent(Maglev::new(&slots)),
                };
                Algo::Hash {
                    table,
                    fallback: SmoothRr::new(slots),
                }
            }
        };
        Balancer { algo }
    }

    /// Chooses a server and returns its id, or `None` when every server is
    /// skipped (or there is none).
    ///
    /// `key`: hash input for hash algorithms (source: IP bytes; uri: path;
    /// url_param: value; hdr: header value). `None` falls back to round
    /// robin, as HAProxy does. Other algorithms ignore it.
    /// `load(id)`: current in-flight connections of server `id` (leastconn,
    /// random use it).
    /// `skip(id)`: true if the server must not be chosen now. Hash
    /// algorithms then move on to the next candidate of their table, so a
    /// key keeps landing on the same fallback server.
    pub fn pick(
        &self,
        key: Option<&[u8]>,
        load: &dyn Fn(usize) -> u32,
        skip: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        match &self.algo {
            Algo::Empty => None,
            Algo::RoundRobin(rr) => rr.pick(skip),
            Algo::StaticRr(rr) => rr.pick(skip),
            Algo::LeastConn(lc) => lc.pick(load, skip),
            Algo::First(first) => first.pick(skip),
            Algo::Random(random) => random.pick(load, skip),
            Algo::Hash { table, fallback } => match key {
                None => fallback.pick(skip),
                Some(key) => {
                    let h = key_hash(key);
                    match table {
                        HashTable::Map(t) => t.pick(h, skip),
                        HashTable::Consistent(m) => m.pick(h, skip),
                    }
                }
            },
        }
    }

    /// True when the balancer has no server to offer.
    pub fn is_empty(&self) -> bool {
        matches!(self.algo, Algo::Empty)
    }
}

/// True when `load_a / weight_a < load_b / weight_b`, without division
/// (weights are never 0 here, and u64 cannot overflow from u32 products).
fn less_loaded(load_a: u32, weight_a: u32, load_b: u32, weight_b: u32) -> bool {
    u64::from(load_a) * u64::from(weight_b) < u64::from(load_b) * u64::from(weight_a)
}

/// The first slot at or after `start` (cyclically) that is not skipped: the
/// fallback when a precomputed schedule lands on a skipped server. O(n).
fn next_usable(slots: &[Slot], start: usize, skip: &dyn Fn(usize) -> bool) -> Option<usize> {
    let n = slots.len();
    (0..n)
        .map(|i| slots[(start + i) % n].id)
        .find(|&id| !skip(id))
}
