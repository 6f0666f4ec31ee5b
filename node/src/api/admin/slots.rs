//! The admin API's connection table: at most `cap` connections, each
//! either busy (a request is being handled) or idle (waiting for a
//! request head, or writing an answer). A new connection never waits for
//! room: at the cap the connection idle the longest is told to close, or,
//! when every one is busy, the one busy the longest.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::Notify;
use tokio::time::{Duration, Instant};

/// The table. Its lock is held only to add, remove or pick a connection.
pub struct Slots {
    cap: usize,
    epoch: Instant,
    next_id: AtomicU64,
    table: Mutex<HashMap<u64, Arc<Slot>>>,
}

/// One connection's entry.
pub struct Slot {
    id: u64,
    busy: AtomicBool,
    /// Milliseconds after the table's epoch at which the connection last
    /// became busy or idle.
    since_ms: AtomicU64,
    epoch: Instant,
    close: Notify,
}

/// Holds a connection's place in the table; leaving frees it.
pub struct Admission {
    slots: Arc<Slots>,
    pub slot: Arc<Slot>,
}

/// Marks a connection busy while alive (one request being handled).
pub struct Busy(Arc<Slot>);

impl Slots {
    /// A table of at most `cap` connections (at least one).
    pub fn new(cap: usize) -> Arc<Slots> {
        Arc::new(Slots {
            cap: cap.max(1),
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            table: Mutex::new(HashMap::new()),
        })
    }

    /// Connections in the table now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Enter a new (idle) connection, telling another to close first when
    /// the table is full. The evicted connection leaves the table at once,
    /// so the count never exceeds the cap.
    pub fn admit(self: &Arc<Self>) -> Admission {
        let slot = Arc::new(Slot {
            id: self.next_id.fetch_add(1, Relaxed),
            busy: AtomicBool::new(false),
            since_ms: AtomicU64::new(0),
            epoch: self.epoch,
            close: Notify::new(),
        });
        slot.mark(false);
        let mut table = self.lock();
        while table.len() >= self.cap {
            // Idle before busy; among each, the longest in that state.
            let victim = table
                .values()
                .min_by_key(|s| (s.busy.load(Relaxed), s.since_ms.load(Relaxed)))
                .map(|s| s.id);
            let Some(id) = victim else { break };
            if let Some(evicted) = table.remove(&id) {
                // A stored permit: the connection sees it even if it is
                // not waiting right now.
                evicted.close.notify_one();
            }
        }
        table.insert(slot.id, slot.clone());
        drop(table);
        Admission {
            slots: self.clone(),
            slot,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Slot>>> {
        // The table stays consistent even if a holder panicked: every
        // change is one insert or remove.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.slots.lock().remove(&self.slot.id);
    }
}

impl Slot {
    /// Mark the connection busy until the returned guard drops.
    pub fn begin_request(self: &Arc<Self>) -> Busy {
        self.mark(true);
        Busy(self.clone())
    }

    /// When an idle connection has been idle `limit` long; `None` while busy.
    pub fn idle_deadline(&self, limit: Duration) -> Option<Instant> {
        if self.busy.load(Relaxed) {
            return None;
        }
        Some(self.epoch + Duration::from_millis(self.since_ms.load(Relaxed)) + limit)
    }

    /// Resolves once the table has evicted this connection.
    pub async fn evicted(&self) {
        self.close.notified().await;
    }

    fn mark(&self, busy: bool) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.since_ms.store(ms, Relaxed);
        self.busy.store(busy, Relaxed);
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.mark(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// True when an eviction is pending (consumes it).
    async fn was_evicted(slot: &Slot) -> bool {
        tokio::time::timeout(Duration::ZERO, slot.evicted())
            .await
            .is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn full_table_evicts_longest_idle_then_longest_busy() {
        let slots = Slots::new(3);
        let a = slots.admit();
        tokio::time::advance(Duration::from_millis(10)).await;
        let b = slots.admit();
        tokio::time::advance(Duration::from_millis(10)).await;
        let c = slots.admit();
        tokio::time::advance(Duration::from_millis(10)).await;
        // `a` is busy, so `b` (idle the longest) goes first.
        let a_busy = a.slot.begin_request();
        let d = slots.admit();
        assert_eq!(slots.len(), 3);
        assert!(was_evicted(&b.slot).await);
        assert!(!was_evicted(&c.slot).await && !was_evicted(&a.slot).await);
        // Now all but `a` are idle: `c` is the older idle one.
        tokio::time::advance(Duration::from_millis(10)).await;
        let e = slots.admit();
        assert!(was_evicted(&c.slot).await);
        assert!(!was_evicted(&a.slot).await && !was_evicted(&d.slot).await);
        // With everyone busy, the longest busy goes.
        let _d_busy = d.slot.begin_request();
        let _e_busy = e.slot.begin_request();
        let _f = slots.admit();
        assert!(was_evicted(&a.slot).await);
        drop(a_busy);
        drop((a, b, c));
        assert_eq!(slots.len(), 3, "leaving after eviction frees nothing twice");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_deadline_restarts_after_each_request() {
        let slots = Slots::new(1);
        let a = slots.admit();
        let limit = Duration::from_secs(10);
        let first = a.slot.idle_deadline(limit).expect("idle");
        tokio::time::advance(Duration::from_secs(4)).await;
        let busy = a.slot.begin_request();
        assert_eq!(a.slot.idle_deadline(limit), None);
        tokio::time::advance(Duration::from_secs(30)).await;
        drop(busy);
        let again = a.slot.idle_deadline(limit).expect("idle");
        assert_eq!(again - first, Duration::from_secs(34));
    }
}
