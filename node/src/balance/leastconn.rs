//! `leastconn` and `first`.

use super::{less_loaded, Slot};
use std::sync::atomic::{AtomicUsize, Ordering};

/// `leastconn`: the server with the lowest (in-flight + 1)/weight ratio,
/// i.e. the lowest load once it takes this request, as HAProxy computes it
/// (so a heavier server is preferred between equally idle ones). The scan
/// starts at a rotating offset and only a strictly lower ratio replaces the
/// current best, so equally loaded servers (typically all idle) take turns
/// instead of the first one getting every short request.
#[derive(Debug)]
pub(super) struct LeastConn {
    slots: Box<[Slot]>,
    start: AtomicUsize,
}

impl LeastConn {
    pub(super) fn new(slots: Box<[Slot]>) -> LeastConn {
        LeastConn {
            slots,
            start: AtomicUsize::new(0),
        }
    }

    pub(super) fn pick(
        &self,
        load: &dyn Fn(usize) -> u32,
        skip: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        let n = self.slots.len();
        let start = self.start.fetch_add(1, Ordering::Relaxed) % n;
        let mut best: Option<(Slot, u32)> = None;
        for i in 0..n {
            let slot = self.slots[(start + i) % n];
            if skip(slot.id) {
                continue;
            }
            let l = load(slot.id);
            let better = match best {
                None => true,
                Some((b, bl)) => less_loaded(l + 1, slot.weight, bl + 1, b.weight),
            };
            if better {
                best = Some((slot, l));
            }
        }
        best.map(|(slot, _)| slot.id)
    }
}

/// `first`: the server with the lowest id that still has room; the caller's
/// `skip` says which are full (at `maxconn`). Fills servers one after the
/// other so the rest can be powered down.
#[derive(Debug)]
pub(super) struct First {
    /// Sorted by id.
    slots: Box<[Slot]>,
}

impl First {
    pub(super) fn new(mut slots: Box<[Slot]>) -> First {
        slots.sort_unstable_by_key(|s| s.id);
        First { slots }
    }

    pub(super) fn pick(&self, skip: &dyn Fn(usize) -> bool) -> Option<usize> {
        self.slots.iter().map(|s| s.id).find(|&id| !skip(id))
    }
}
