//! Stick-table contents as replicated state: which server each key sticks
//! to, and when it was last written. Expiry and eviction are deterministic:
//! they use the time carried by the command, and writes stamped with the
//! same time keep the order they were written in.
//!
//! Conflicts are settled by log order: a write names the server its node
//! believed the key stuck to (`prev`), and it is accepted only when the
//! replicated entry is absent, still says `prev`, or already says the
//! written server. Two nodes that stick a new key to different servers
//! within one batch window: the first batch in the log wins, the second
//! write is ignored on every node, and the losing node's local table
//! follows the winner. A re-stick after the old server went DOWN names the
//! old server as `prev`, so it overwrites.

use crate::command::Millis;
use crate::config::StickTable;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One entry: the server a key sticks to, and when it was last written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StickEntry {
    pub server: String,
    pub at: Millis,
    /// Write order within the table, for ties on `at`.
    pub seq: u64,
}

/// The replicated contents of one stick table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "TableRepr")]
pub struct TableState {
    /// The table's definition when its entries were written; a reload that
    /// changes it starts the table afresh.
    pub def: StickTable,
    entries: BTreeMap<String, StickEntry>,
    /// The `seq` of the next write.
    next_seq: u64,
    /// `(at, seq, key)` of every entry, oldest first: expiry and eviction
    /// order. Derived from `entries`, so it is not serialised.
    #[serde(skip)]
    by_age: BTreeSet<(Millis, u64, String)>,
}

impl PartialEq for TableState {
    /// The replicated contents (the age index derives from them).
    fn eq(&self, other: &TableState) -> bool {
        self.def == other.def && self.entries == other.entries && self.next_seq == other.next_seq
    }
}

impl Eq for TableState {}

/// The serialised form of a [`TableState`] (the age index is rebuilt).
#[derive(Deserialize)]
struct TableRepr {
    def: StickTable,
    entries: BTreeMap<String, StickEntry>,
    next_seq: u64,
}

impl From<TableRepr> for TableState {
    fn from(repr: TableRepr) -> TableState {
        let by_age = repr
            .entries
            .iter()
            .map(|(k, e)| (e.at, e.seq, k.clone()))
            .collect();
        TableState {
            def: repr.def,
            entries: repr.entries,
            next_seq: repr.next_seq,
            by_age,
        }
    }
}

impl TableState {
    /// An empty table with this definition.
    pub fn new(def: StickTable) -> TableState {
        TableState {
            def,
            entries: BTreeMap::new(),
            next_seq: 0,
            by_age: BTreeSet::new(),
        }
    }

    /// Every entry, by key.
    pub fn entries(&self) -> &BTreeMap<String, StickEntry> {
        &self.entries
    }

    /// Stick `key` to `server` as of `at`, unless the entry now names
    /// another server than `prev` (a conflicting write from another node
    /// came first in the log: it wins, and this write is ignored).
    /// Evicts the oldest entries when the table is over its `size`.
    /// Returns whether the write was accepted.
    pub(super) fn write(
        &mut self,
        key: &str,
        server: &str,
        prev: Option<&str>,
        at: Millis,
    ) -> bool {
        if let Some(current) = self.entries.get(key) {
            if current.server != server && Some(current.server.as_str()) != prev {
                return false;
            }
        }
        self.put(key, server, at);
        true
    }

    /// The entry a key sticks to now, if any.
    pub fn get(&self, key: &str) -> Option<&StickEntry> {
        self.entries.get(key)
    }

    fn put(&mut self, key: &str, server: &str, at: Millis) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let entry = StickEntry {
            server: server.to_string(),
            at,
            seq,
        };
        if let Some(old) = self.entries.insert(key.to_string(), entry) {
            self.by_age.remove(&(old.at, old.seq, key.to_string()));
        }
        self.by_age.insert((at, seq, key.to_string()));
        let size = usize::try_from(self.def.size).unwrap_or(usize::MAX).max(1);
        while self.entries.len() > size {
            let Some((_, _, oldest)) = self.by_age.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
        }
    }

    /// Remove entries not written within `expire` as of `now`.
    pub(super) fn expire(&mut self, now: Millis) {
        let Some(expire) = self.def.expire else {
            return;
        };
        let ttl = u64::try_from(expire.as_millis()).unwrap_or(u64::MAX);
        while let Some((at, _, _)) = self.by_age.first() {
            if at.saturating_add(ttl) > now {
                break;
            }
            if let Some((_, _, key)) = self.by_age.pop_first() {
                self.entries.remove(&key);
            }
        }
    }

    /// Remove one key, or every entry.
    pub(super) fn clear(&mut self, key: Option<&str>) {
        match key {
            Some(key) => {
                if let Some(old) = self.entries.remove(key) {
                    self.by_age.remove(&(old.at, old.seq, key.to_string()));
                }
            }
            None => {
                self.entries.clear();
                self.by_age.clear();
            }
        }
    }

    /// The age index matches the entries (checked in debug builds after
    /// every applied command): entry by entry for tables of up to
    /// [`FULL_CHECK`] entries, by count above. A full walk per command
    /// made a debug build quadratic in the table's size, and a node
    /// rebuilding its state from thousands of log entries took longer
    /// than the tests wait for it.
    pub(super) fn consistent(&self) -> bool {
        const FULL_CHECK: usize = 1024;
        self.by_age.len() == self.entries.len()
            && (self.entries.len() > FULL_CHECK
                || self.by_age.iter().all(|(at, seq, k)| {
                    self.entries
                        .get(k)
                        .is_some_and(|e| e.at == *at && e.seq == *seq)
                }))
    }
}

#[cfg(test)]
mod tests;
