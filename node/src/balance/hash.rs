//! Hash-based selection: `hash-type map-based` and `hash-type consistent`.
//!
//! Consistent hashing uses a Maglev lookup table (Eisenbud et al., NSDI
//! 2016) rather than HAProxy's ring of virtual nodes. Measured with the same
//! key hash on 100,000 keys over 10 equal servers (Maglev: `tests.rs`; ring:
//! a throwaway harness, 20 ring seeds, binary search over sorted points):
//!
//! | scheme                  | max load deviation     | moved, -1 / +1 server | lookup           |
//! |-------------------------|------------------------|-----------------------|------------------|
//! | ring, 160 points/server | 12.7 % mean, 19.8 % worst | 9.1 % / 9.6 %      | ~11 probes       |
//! | ring, 1000 points/server| 6.3 % mean, 9.0 % worst   | 10.3 % / 9.2 %     | ~14 probes       |
//! | Maglev, M = 65537       | 2.7 %                  | 10.3 % / 9.3 %        | 1 array read     |
//!
//! A ring moves only the keys it must, but its load deviation falls only as
//! 1/sqrt(points), so it needs ~1000 points per server to keep every server
//! within 10 % of the mean. Maglev gives each equal server M/n entries +-1,
//! so what remains is the sampling noise of the keys themselves; a lookup is
//! one read; the price is a little extra movement (0.24 % of keys changed
//! between two surviving servers when one of 10 was removed). For a load
//! balancer whose job is even spread, that is the better trade. The table
//! costs 4 B x 65537 = 256 KiB per consistent-hash backend tier and is
//! rebuilt (about 2 ms for 10 servers, release build) only when servers or
//! weights change.

use super::rr::interleaved_schedule;
use super::Slot;
use std::fmt;

/// Hash of request data (source address, path, parameter or header value):
/// FNV-1a over the bytes, then splitmix64's finalizer, because FNV's low
/// bits avalanche poorly on short, similar keys such as IPv4 addresses.
pub(super) fn key_hash(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(h)
}

/// splitmix64's finalizer: a bijective avalanche of 64 bits.
pub(super) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Maps a 64-bit hash onto `0..n` with the high bits (multiply-shift).
fn scale(h: u64, n: usize) -> usize {
    ((u128::from(h) * n as u128) >> 64) as usize
}

/// The entry for `h` in `table`, or the next one whose server is usable.
/// Walking the table (rather than rehashing) keeps a key's fallback server
/// stable while its own server is skipped.
fn walk(slots: &[Slot], table: &[u32], h: u64, skip: &dyn Fn(usize) -> bool) -> Option<usize> {
    let start = scale(h, table.len());
    let id_at = |pos: usize| slots[table[pos % table.len()] as usize].id;
    let first = id_at(start);
    if !skip(first) {
        return Some(first);
    }
    // Bound the walk: if nothing is usable, say so after an O(n) check
    // instead of scanning the whole table.
    if slots.iter().all(|s| skip(s.id)) {
        return None;
    }
    (1..table.len())
        .map(|i| id_at(start + i))
        .find(|&id| !skip(id))
}

/// `hash-type map-based`: the hash picks an entry of a table in which each
/// server appears as many times as its (gcd-reduced) weight. Any change to
/// the server set remaps most keys, as in HAProxy.
pub(super) struct WeightedTable {
    /// Sorted by id, so the table does not depend on the builder's order.
    slots: Box<[Slot]>,
    table: Box<[u32]>,
}

impl WeightedTable {
    pub(super) fn new(slots: &[Slot]) -> WeightedTable {
        let mut slots: Box<[Slot]> = slots.into();
        slots.sort_unstable_by_key(|s| s.id);
        let table = interleaved_schedule(&slots);
        WeightedTable { slots, table }
    }

    pub(super) fn pick(&self, h: u64, skip: &dyn Fn(usize) -> bool) -> Option<usize> {
        walk(&self.slots, &self.table, h, skip)
    }
}

/// Maglev lookup table sizes: primes, the smallest one with at least 100
/// entries per server is used (Maglev's disruption bound needs M >> n).
/// The size only grows past 655 servers, so adding servers to a normal
/// backend never reshuffles the whole table.
const MAGLEV_SIZES: [u64; 5] = [65_537, 131_071, 262_139, 524_287, 1_048_573];

/// `hash-type consistent`, as a weighted Maglev table (see the module
/// comment for why not a ring).
pub(super) struct Maglev {
    /// Sorted by id: population order decides contested entries, so it
    /// must not depend on the builder's order.
    slots: Box<[Slot]>,
    /// Indices into `slots`.
    table: Box<[u32]>,
}

impl Maglev {
    pub(super) fn new(slots: &[Slot]) -> Maglev {
        let mut slots: Box<[Slot]> = slots.into();
        slots.sort_unstable_by_key(|s| s.id);
        let n = slots.len() as u64;
        let m = MAGLEV_SIZES
            .iter()
            .copied()
            .find(|&m| m >= 100 * n)
            .unwrap_or(MAGLEV_SIZES[MAGLEV_SIZES.len() - 1]);

        // Each server's preference list is the permutation
        // offset, offset + step, offset + 2*step, ... (mod m), derived from
        // its id, so every node of the cluster builds the same table.
        let mut pos: Vec<u64> = Vec::with_capacity(slots.len());
        let mut step: Vec<u64> = Vec::with_capacity(slots.len());
        for s in slots.iter() {
            let id = s.id as u64;
            pos.push(mix64(id ^ 0x6d61_676c_6576_0001) % m);
            step.push(mix64(id ^ 0x6d61_676c_6576_0002) % (m - 1) + 1);
        }

        // Weighted population: in each round a server takes a turn each
        // time its credit reaches the largest weight, so entries are shared
        // in proportion to weight.
        let max_w = slots.iter().map(|s| u64::from(s.weight)).max().unwrap_or(1);
        let mut credit = vec![0u64; slots.len()];
        const EMPTY: u32 = u32::MAX;
        let mut table = vec![EMPTY; m as usize];
        let mut filled = 0u64;
        while filled < m {
            for i in 0..slots.len() {
                credit[i] += u64::from(slots[i].weight);
                if credit[i] < max_w {
                    continue;
                }
                credit[i] -= max_w;
                loop {
                    let c = pos[i] as usize;
                    pos[i] = (pos[i] + step[i]) % m;
                    if table[c] == EMPTY {
                        table[c] = i as u32;
                        filled += 1;
                        break;
                    }
                }
                if filled == m {
                    break;
                }
            }
        }
        Maglev {
            slots,
            table: table.into_boxed_slice(),
        }
    }

    pub(super) fn pick(&self, h: u64, skip: &dyn Fn(usize) -> bool) -> Option<usize> {
        walk(&self.slots, &self.table, h, skip)
    }
}

// Tables run to 65537 entries: Debug shows their size, not their content.
impl fmt::Debug for WeightedTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeightedTable")
            .field("slots", &self.slots)
            .field("entries", &self.table.len())
            .finish()
    }
}

impl fmt::Debug for Maglev {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Maglev")
            .field("slots", &self.slots)
            .field("entries", &self.table.len())
            .finish()
    }
}
