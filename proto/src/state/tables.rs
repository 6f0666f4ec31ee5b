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
//!
//! Each table also keeps a journal of the keys changed since the store
//! last took them ([`TableState::take_changes`]), so that the Raft store
//! persists only what a batch changed. The journal is not part of the
//! replicated state (not serialised, not compared).

use super::ClusterState;
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
    /// Keys changed since [`TableState::take_changes`] (node-local).
    #[serde(skip)]
    changes: TableChanges,
}

impl PartialEq for TableState {
    /// The replicated contents only (not the change journal).
    fn eq(&self, other: &TableState) -> bool {
        self.def == other.def && self.entries == other.entries && self.next_seq == other.next_seq
    }
}

impl Eq for TableState {}

/// What changed in one table since the changes were last taken.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableChanges {
    /// The whole table must be rewritten: it is new (or replaced), was
    /// cleared, or more keys changed than are worth listing.
    pub reset: bool,
    /// Keys written or removed (look each up to know which).
    pub keys: BTreeSet<String>,
}

/// One table's entries to persist after a batch of commands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableDelta {
    /// Drop every stored entry of the table first.
    pub reset: bool,
    /// Entries written (their current value).
    pub put: Vec<(String, StickEntry)>,
    /// Keys removed (expired, evicted, cleared).
    pub removed: Vec<String>,
}

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
            changes: TableChanges::default(),
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
            changes: TableChanges {
                reset: true,
                keys: BTreeSet::new(),
            },
        }
    }

    /// This table without its entries (the definition and write counter
    /// stay): what the Raft store keeps beside the entries it stores one
    /// by one.
    pub fn without_entries(&self) -> TableState {
        TableState {
            def: self.def.clone(),
            entries: BTreeMap::new(),
            next_seq: self.next_seq,
            by_age: BTreeSet::new(),
            changes: TableChanges::default(),
        }
    }

    /// Put back an entry the Raft store kept (start-up); not journaled.
    pub fn restore(&mut self, key: String, entry: StickEntry) {
        if let Some(old) = self.entries.get(&key) {
            self.by_age.remove(&(old.at, old.seq, key.clone()));
        }
        self.by_age.insert((entry.at, entry.seq, key.clone()));
        self.entries.insert(key, entry);
    }

    /// The entries changed since the last call, with their values now.
    pub fn take_changes(&mut self) -> TableDelta {
        let changes = std::mem::take(&mut self.changes);
        if changes.reset {
            return TableDelta {
                reset: true,
                put: self
                    .entries
                    .iter()
                    .map(|(k, e)| (k.clone(), e.clone()))
                    .collect(),
                removed: Vec::new(),
            };
        }
        let mut delta = TableDelta::default();
        for key in changes.keys {
            match self.entries.get(&key) {
                Some(e) => delta.put.push((key, e.clone())),
                None => delta.removed.push(key),
            }
        }
        delta
    }

    /// Journal a changed key; beyond a bound (a node that never takes
    /// its changes, such as a standalone one) the journal says "rewrite
    /// all" instead of growing.
    fn changed(&mut self, key: &str) {
        if self.changes.reset {
            return;
        }
        let bound = usize::try_from(self.def.size)
            .unwrap_or(usize::MAX)
            .saturating_add(1024);
        if self.changes.keys.len() >= bound {
            self.changes.reset = true;
            self.changes.keys.clear();
            return;
        }
        if !self.changes.keys.contains(key) {
            self.changes.keys.insert(key.to_string());
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
        self.changed(key);
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
            self.changed(&oldest);
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
                self.changed(&key);
            }
        }
    }

    /// Remove one key, or every entry.
    pub(super) fn clear(&mut self, key: Option<&str>) {
        match key {
            Some(key) => {
                if let Some(old) = self.entries.remove(key) {
                    self.by_age.remove(&(old.at, old.seq, key.to_string()));
                    self.changed(key);
                }
            }
            None => {
                self.entries.clear();
                self.by_age.clear();
                self.changes.reset = true;
                self.changes.keys.clear();
            }
        }
    }

    /// The age index matches the entries (checked in debug builds).
    pub(super) fn consistent(&self) -> bool {
        self.by_age.len() == self.entries.len()
            && self.by_age.iter().all(|(at, seq, k)| {
                self.entries
                    .get(k)
                    .is_some_and(|e| e.at == *at && e.seq == *seq)
            })
    }
}

impl ClusterState {
    /// This state without its stick-table entries (definitions and write
    /// counters stay): the small part the Raft store rewrites after each
    /// batch, beside the entries it stores one by one.
    pub fn without_entries(&self) -> ClusterState {
        ClusterState {
            config: self.config.clone(),
            servers: self.servers.clone(),
            tables: self
                .tables
                .iter()
                .map(|(name, t)| (name.clone(), t.without_entries()))
                .collect(),
            drained: self.drained.clone(),
            certificates: self.certificates.clone(),
        }
    }

    /// The stick entries changed since the last call, by table (only
    /// tables with a change). Tables absent from the state were dropped.
    pub fn take_table_changes(&mut self) -> Vec<(String, TableDelta)> {
        self.tables
            .iter_mut()
            .map(|(name, t)| (name.clone(), t.take_changes()))
            .filter(|(_, d)| d.reset || !d.put.is_empty() || !d.removed.is_empty())
            .collect()
    }

    /// Put back an entry the Raft store kept (start-up: the state without
    /// entries, then each stored entry); entries of a table the state does
    /// not have are ignored.
    pub fn restore_entry(&mut self, table: &str, key: String, entry: StickEntry) {
        if let Some(t) = self.tables.get_mut(table) {
            t.restore(key, entry);
        }
    }

    /// Mark every table as changed whole (the next
    /// [`ClusterState::take_table_changes`] lists all its entries).
    pub fn mark_tables_changed(&mut self) {
        for t in self.tables.values_mut() {
            t.changes = TableChanges {
                reset: true,
                keys: BTreeSet::new(),
            };
        }
    }

    /// Forget every table's change journal (the store just wrote the
    /// whole state, as after installing a snapshot).
    pub fn forget_table_changes(&mut self) {
        for t in self.tables.values_mut() {
            t.changes = TableChanges::default();
        }
    }
}

#[cfg(test)]
mod tests;
