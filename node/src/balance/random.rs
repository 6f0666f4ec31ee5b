//! `random(N)`: weighted power of N choices, and the small PRNG it uses.

use super::{less_loaded, Slot};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// `random(N)`: draw N servers with probability proportional to weight and
/// keep the one with the lowest in-flight/weight ratio. With N = 2 (HAProxy's
/// default) this avoids both the herding of pure leastconn across many
/// nodes with slightly stale counts and the imbalance of pure random.
#[derive(Debug)]
pub(super) struct WeightedRandom {
    slots: Box<[Slot]>,
    /// `cumulative[i]` = sum of the weights of slots `0..=i`.
    cumulative: Box<[u64]>,
    draws: u32,
}

impl WeightedRandom {
    pub(super) fn new(slots: Box<[Slot]>, draws: u32) -> WeightedRandom {
        let cumulative = slots
            .iter()
            .scan(0u64, |sum, s| {
                *sum += u64::from(s.weight);
                Some(*sum)
            })
            .collect();
        // `random(0)` makes no sense; treat it as a single draw. More draws
        // than servers gain nothing (the best of n draws over n servers is
        // already all but certain to be the least loaded), and an absurd
        // `random(4294967295)` must not cost seconds per request.
        let useful = u32::try_from(slots.len()).unwrap_or(u32::MAX).max(1);
        WeightedRandom {
            slots,
            cumulative,
            draws: draws.clamp(1, useful),
        }
    }

    pub(super) fn pick(
        &self,
        load: &dyn Fn(usize) -> u32,
        skip: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        let total = self.cumulative.last().copied().unwrap_or(0);
        let mut best: Option<(Slot, u32)> = None;
        let mut drawn = 0;
        // Skipped servers do not count as draws, but a bounded number of
        // attempts keeps a mostly-full backend from spinning.
        for _ in 0..self.draws.saturating_mul(4) {
            if drawn == self.draws {
                break;
            }
            let r = below(total);
            let index = self.cumulative.partition_point(|&c| c <= r);
            let Some(&slot) = self.slots.get(index) else {
                continue;
            };
            if skip(slot.id) {
                continue;
            }
            drawn += 1;
            let l = load(slot.id);
            let better = match best {
                None => true,
                Some((b, bl)) => less_loaded(l, slot.weight, bl, b.weight),
            };
            if better {
                best = Some((slot, l));
            }
        }
        if let Some((slot, _)) = best {
            return Some(slot.id);
        }
        // Every draw hit a skipped server: take the least loaded usable one.
        self.slots
            .iter()
            .filter(|s| !skip(s.id))
            .map(|s| (s, load(s.id)))
            .reduce(|a, b| {
                if less_loaded(b.1, b.0.weight, a.1, a.0.weight) {
                    b
                } else {
                    a
                }
            })
            .map(|(s, _)| s.id)
    }
}

thread_local! {
    /// wyrand state, one per thread so that drawing never contends.
    static STATE: Cell<u64> = Cell::new(seed());
}

/// A distinct seed per thread: a global counter (so two threads never share
/// a stream) mixed with the clock (so two processes differ).
fn seed() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    super::hash::mix64(n ^ nanos)
}

/// wyrand: a 64-bit PRNG that passes BigCrush and costs one multiply. Not
/// for secrets; only for spreading load.
pub(super) fn next_u64() -> u64 {
    STATE.with(|state| {
        let s = state.get().wrapping_add(0xa076_1d64_78bd_642f);
        state.set(s);
        let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    })
}

/// A uniform number in `0..n` (0 when `n` is 0), by Lemire's
/// multiply-shift, which avoids the modulo's division.
pub(super) fn below(n: u64) -> u64 {
    ((u128::from(next_u64()) * u128::from(n)) >> 64) as u64
}
