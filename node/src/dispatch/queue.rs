//! The backend queue: requests waiting for a server slot, served first come,
//! first served.
//!
//! The design is HAProxy's: one queue for the backend (requests any server
//! may take) plus one queue per server for persistent requests (a cookie or
//! stick entry naming that server), all stamped from one arrival counter.
//! When a slot may have freed, [`Queue::pump`] looks at the head of every
//! queue, oldest first, claims a slot on behalf of that waiter and hands the
//! [`Claim`] over through a one-shot channel, so a woken request never races
//! a newcomer for the slot. A queue whose head cannot be served now is set
//! aside for the rest of the round, so a persistent request stuck on a full
//! server never blocks requests any other server can take.
//!
//! A newcomer finding requests already waiting in its queue lines up behind
//! them; it tries servers itself only when its queue is empty. All queue
//! changes happen under one short mutex that is never held across I/O; the
//! common case (nobody waiting) reads one atomic and takes no lock.

use super::{try_claim, Claim, DispatchError};
use crate::routing::{BackendRt, ServerShared};
use std::collections::VecDeque;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{fence, AtomicUsize};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Requests waiting for a free server slot in one backend. Shared by every
/// snapshot of the backend, so a reload does not lose its waiters.
#[derive(Debug, Default)]
pub struct Queue {
    /// How many requests wait now, both kinds (stats read this).
    pub waiting: AtomicUsize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Arrival stamp of the next waiter.
    next_seq: u64,
    /// Bumped by each pump round; marks queues set aside in the round.
    round: u64,
    /// Requests any server may serve.
    any: VecDeque<Waiter>,
    any_blocked: u64,
    /// Persistent requests, one queue per server that has some.
    pinned: Vec<Pinned>,
}

#[derive(Debug)]
struct Pinned {
    server: Arc<ServerShared>,
    waiters: VecDeque<Waiter>,
    blocked: u64,
}

/// What a waiter will accept.
#[derive(Debug)]
pub(super) enum Want {
    /// Any server the balancer picks (hash key kept for hash algorithms),
    /// except `avoid` when another is free (redispatch).
    Any {
        key: Option<Box<[u8]>>,
        avoid: Option<usize>,
    },
    /// This server only (index in the waiter's own snapshot).
    Server(usize),
}

#[derive(Debug)]
struct Waiter {
    seq: u64,
    /// The snapshot the request started with; its slot is claimed there.
    backend: Arc<BackendRt>,
    want: Want,
    since: Instant,
    reply: oneshot::Sender<Result<Claim, DispatchError>>,
}

/// A ticket no longer in any queue.
const SERVED: u64 = u64::MAX;

/// One queued request's place; dropping it leaves the queue.
pub(super) struct Ticket<'a> {
    queue: &'a Queue,
    seq: u64,
    pinned: Option<Arc<ServerShared>>,
    reply: oneshot::Receiver<Result<Claim, DispatchError>>,
}

impl Queue {
    /// Requests waiting now.
    pub fn len(&self) -> usize {
        self.waiting.load(SeqCst)
    }

    /// True when nobody waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every change keeps the queues consistent before it can panic.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot was freed (or may have been): hand free slots to waiters in
    /// arrival order. Called by [`Claim`]'s drop.
    pub(super) fn released(&self) {
        // Pairs with the fence in `enqueue`: either we see the waiter, or
        // its own pump sees the freed slot.
        fence(SeqCst);
        if self.waiting.load(SeqCst) > 0 {
            let bounced = self.pump(&mut self.lock());
            drop(bounced);
        }
    }

    /// A server's limit grew (its cluster share): hand the new slots to
    /// waiters.
    pub fn wake(&self) {
        self.released();
    }

    /// Serve waiters first, then try `want` for a newcomer unless others
    /// still wait in its queue, else line it up. `bound` caps the queue the
    /// newcomer would join.
    pub(super) fn join(
        &self,
        backend: &Arc<BackendRt>,
        want: Want,
        bound: Bound,
    ) -> Result<Joined<'_>, DispatchError> {
        let mut bounced = Vec::new();
        // The guard goes before `bounced`: dropping a bounced claim pumps,
        // which takes the lock again.
        let joined = self.join_locked(&mut self.lock(), &mut bounced, backend, want, bound);
        drop(bounced);
        joined
    }

    fn join_locked(
        &self,
        inner: &mut Inner,
        bounced: &mut Vec<Claim>,
        backend: &Arc<BackendRt>,
        want: Want,
        bound: Bound,
    ) -> Result<Joined<'_>, DispatchError> {
        bounced.extend(self.pump(inner));
        let pinned = match &want {
            Want::Server(i) => Some(backend.servers[*i].shared.clone()),
            Want::Any { .. } => None,
        };
        let ahead = match &pinned {
            None => inner.any.len(),
            Some(server) => inner
                .find(server)
                .map_or(0, |p| inner.pinned[p].waiters.len()),
        };
        if ahead == 0 {
            if let Some(claim) = attempt(backend, &want)? {
                return Ok(Joined::Now(claim));
            }
        }
        if self.waiting.load(SeqCst) >= bound.total || ahead >= bound.own {
            return Ok(Joined::Full);
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let (tx, rx) = oneshot::channel();
        let waiter = Waiter {
            seq,
            backend: backend.clone(),
            want,
            since: Instant::now(),
            reply: tx,
        };
        match &pinned {
            None => inner.any.push_back(waiter),
            Some(server) => match inner.find(server) {
                Some(p) => inner.pinned[p].waiters.push_back(waiter),
                None => inner.pinned.push(Pinned {
                    server: server.clone(),
                    waiters: VecDeque::from([waiter]),
                    blocked: 0,
                }),
            },
        }
        self.waiting.fetch_add(1, SeqCst);
        // A slot freed since our attempt was seen by its releaser, or is
        // seen by this pump (see `released`).
        fence(SeqCst);
        bounced.extend(self.pump(inner));
        Ok(Joined::Queued(Ticket {
            queue: self,
            seq,
            pinned,
            reply: rx,
        }))
    }

    /// Hand free slots to the oldest waiters that can use them. Returns
    /// claims that found their waiter gone, to be dropped after the lock
    /// is released (their drop pumps again).
    fn pump(&self, inner: &mut Inner) -> Vec<Claim> {
        let mut bounced = Vec::new();
        if inner.any.is_empty() && inner.pinned.is_empty() {
            return bounced;
        }
        inner.round += 1;
        let round = inner.round;
        loop {
            // The oldest head among the queues not set aside this round.
            let mut best: Option<(u64, Option<usize>)> = None;
            if inner.any_blocked != round {
                if let Some(w) = inner.any.front() {
                    best = Some((w.seq, None));
                }
            }
            for (i, p) in inner.pinned.iter().enumerate() {
                if p.blocked == round {
                    continue;
                }
                if let Some(w) = p.waiters.front() {
                    if best.is_none_or(|(seq, _)| w.seq < seq) {
                        best = Some((w.seq, Some(i)));
                    }
                }
            }
            let Some((_, which)) = best else { break };
            let queue = match which {
                None => &mut inner.any,
                Some(i) => &mut inner.pinned[i].waiters,
            };
            let Some(head) = queue.front() else { break };
            let reply = match attempt(&head.backend, &head.want) {
                Ok(Some(mut claim)) => {
                    claim.queued = head.since.elapsed();
                    Ok(claim)
                }
                Ok(None) => {
                    match which {
                        None => inner.any_blocked = round,
                        Some(i) => inner.pinned[i].blocked = round,
                    }
                    continue;
                }
                Err(e) => Err(e),
            };
            let Some(head) = queue.pop_front() else { break };
            self.waiting.fetch_sub(1, SeqCst);
            if let Err(Ok(claim)) = head.reply.send(reply) {
                bounced.push(claim);
            }
        }
        inner.pinned.retain(|p| !p.waiters.is_empty());
        bounced
    }
}

/// Limits on joining a queue.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bound {
    /// Waiters in the whole backend.
    pub total: usize,
    /// Waiters in the queue the newcomer joins.
    pub own: usize,
}

/// The outcome of [`Queue::join`].
pub(super) enum Joined<'a> {
    /// A slot was free and nobody was ahead.
    Now(Claim),
    /// Waiting in line.
    Queued(Ticket<'a>),
    /// The queue is at its bound.
    Full,
}

impl Inner {
    fn find(&self, server: &Arc<ServerShared>) -> Option<usize> {
        self.pinned
            .iter()
            .position(|p| Arc::ptr_eq(&p.server, server))
    }

    /// Take waiter `seq` out of its queue; false when it is not there (it
    /// has been served already).
    fn remove(&mut self, seq: u64, pinned: Option<&Arc<ServerShared>>) -> bool {
        let queue = match pinned {
            None => &mut self.any,
            Some(server) => match self.find(server) {
                Some(p) => &mut self.pinned[p].waiters,
                None => return false,
            },
        };
        // Waiters mostly leave from the front (the oldest time out first).
        match queue.iter().position(|w| w.seq == seq) {
            Some(i) => {
                queue.remove(i);
                self.pinned.retain(|p| !p.waiters.is_empty());
                true
            }
            None => false,
        }
    }
}

impl Ticket<'_> {
    /// Wait for a slot until `deadline`.
    pub(super) async fn wait(mut self, deadline: Instant) -> Result<Claim, DispatchError> {
        match tokio::time::timeout_at(deadline, &mut self.reply).await {
            Ok(Ok(result)) => {
                self.seq = SERVED;
                result
            }
            // The sender is only dropped once the waiter left the queue.
            Ok(Err(_)) => {
                self.seq = SERVED;
                Err(DispatchError::QueueTimeout)
            }
            Err(_) => {
                if self.leave() {
                    return Err(DispatchError::QueueTimeout);
                }
                // Served just as the timer fired: take the slot.
                match self.reply.try_recv() {
                    Ok(result) => result,
                    Err(_) => Err(DispatchError::QueueTimeout),
                }
            }
        }
    }

    /// Leave the queue if still in it; returns whether it was.
    fn leave(&mut self) -> bool {
        let mut inner = self.queue.lock();
        let left = inner.remove(self.seq, self.pinned.as_ref());
        if left {
            self.queue.waiting.fetch_sub(1, SeqCst);
        }
        // Drop need not look again.
        self.seq = SERVED;
        left
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        // The request went away (client gone) while queued.
        if self.seq != SERVED {
            self.leave();
        }
        // A slot handed over meanwhile is dropped here, outside the lock,
        // and goes to the next waiter.
        self.reply.close();
        drop(self.reply.try_recv());
    }
}

/// One non-blocking try for `want`: `Ok(None)` when every candidate is full.
fn attempt(backend: &Arc<BackendRt>, want: &Want) -> Result<Option<Claim>, DispatchError> {
    match want {
        Want::Any { key, avoid } => try_claim(backend, key.as_deref(), *avoid),
        Want::Server(i) => {
            let server = &backend.servers[*i];
            Ok(server
                .try_acquire()
                .then(|| Claim::new(backend.clone(), *i, true)))
        }
    }
}
