//! `roundrobin` (smooth weighted, nginx style) and `static-rr`.

use super::{next_usable, Slot};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

/// Smooth weighted round robin: every pick adds each usable server's weight
/// to its credit, takes the server with the most credit and charges it the
/// total. Weights 5:1:1 give `a a b a c a a` rather than `a a a a a b c`,
/// and equal weights never give the same server twice in a row.
///
/// Skipped servers sit the round out (neither credited nor charged), so the
/// others keep their proportions while one is full.
#[derive(Debug)]
pub(super) struct SmoothRr {
    slots: Box<[Slot]>,
    /// Current credit of each slot. The lock is held only for one O(n) pass.
    credit: Mutex<Box<[i64]>>,
}

impl SmoothRr {
    pub(super) fn new(slots: Box<[Slot]>) -> SmoothRr {
        let credit = Mutex::new(vec![0i64; slots.len()].into_boxed_slice());
        SmoothRr { slots, credit }
    }

    pub(super) fn pick(&self, skip: &dyn Fn(usize) -> bool) -> Option<usize> {
        // A panic elsewhere cannot leave the credits invalid (they are plain
        // numbers), so a poisoned lock is simply taken over.
        let mut credit = self.credit.lock().unwrap_or_else(PoisonError::into_inner);
        let mut total = 0i64;
        let mut best: Option<usize> = None;
        for (i, slot) in self.slots.iter().enumerate() {
            if skip(slot.id) {
                continue;
            }
            credit[i] += i64::from(slot.weight);
            total += i64::from(slot.weight);
            let better = match best {
                None => true,
                Some(b) => credit[i] > credit[b],
            };
            if better {
                best = Some(i);
            }
        }
        let best = best?;
        credit[best] -= total;
        Some(self.slots[best].id)
    }
}

/// `static-rr`: a fixed weighted schedule computed once (the smooth round
/// robin sequence of one full cycle, weights divided by their gcd), walked
/// with an atomic cursor, so picking takes no lock at all.
pub(super) struct StaticRr {
    slots: Box<[Slot]>,
    /// Indices into `slots`; its length is the sum of the reduced weights.
    schedule: Box<[u32]>,
    cursor: AtomicUsize,
}

impl StaticRr {
    pub(super) fn new(slots: Box<[Slot]>) -> StaticRr {
        let schedule = interleaved_schedule(&slots);
        StaticRr {
            slots,
            schedule,
            cursor: AtomicUsize::new(0),
        }
    }

    pub(super) fn pick(&self, skip: &dyn Fn(usize) -> bool) -> Option<usize> {
        let pos = self.cursor.fetch_add(1, Ordering::Relaxed) % self.schedule.len();
        let index = self.schedule[pos] as usize;
        let slot = self.slots[index];
        if !skip(slot.id) {
            return Some(slot.id);
        }
        // The scheduled server is full: HAProxy moves on to the next one.
        next_usable(&self.slots, index + 1, skip)
    }
}

// The schedule can hold 256 entries per server: Debug shows its length.
impl fmt::Debug for StaticRr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticRr")
            .field("slots", &self.slots)
            .field("cycle", &self.schedule.len())
            .finish()
    }
}

/// One weighted cycle over `slots`, interleaved: with weights reduced by
/// their gcd (200:100:50 gives a cycle of 7, not 350), slot `i` appears
/// `w_i` times, its k-th appearance at virtual time `(k + 1/2) / w_i`, and
/// the cycle lists appearances by time (ties by slot order). 4:2:1 gives
/// `a b a c a b a`; equal weights give `a b c`. Sorting costs
/// O(T log T) for a cycle of T <= 256 * n entries, where replaying smooth
/// round robin would cost O(T * n). Entries are indices into `slots`.
/// Also used as the map-based hash table, where interleaving makes the entry
/// after a skipped one usually a different server.
pub(super) fn interleaved_schedule(slots: &[Slot]) -> Box<[u32]> {
    let g = slots.iter().fold(0u32, |g, s| gcd(g, s.weight)).max(1);
    // (slot index, appearance k, reduced weight w)
    let mut entries: Vec<(u32, u64, u64)> = Vec::new();
    for (i, slot) in slots.iter().enumerate() {
        let w = u64::from(slot.weight / g);
        // Slot counts are far below u32::MAX (backends have at most a few
        // thousand servers).
        entries.extend((0..w).map(|k| (i as u32, k, w)));
    }
    // (2ka + 1) / 2wa < (2kb + 1) / 2wb  <=>  (2ka + 1) * wb < (2kb + 1) * wa
    entries.sort_unstable_by(|a, b| {
        ((2 * a.1 + 1) * b.2)
            .cmp(&((2 * b.1 + 1) * a.2))
            .then(a.0.cmp(&b.0))
    });
    entries.into_iter().map(|(i, _, _)| i).collect()
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}
