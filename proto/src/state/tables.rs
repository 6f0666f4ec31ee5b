//! Stick-table contents as replicated state: which server each key sticks
//! to, and when it was last written. Expiry and eviction are deterministic:
//! they use the time carried by the command, and ties break on the key.

use crate::command::Millis;
use crate::config::StickTable;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One entry: the server a key sticks to, and when it was last written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StickEntry {
    pub server: String,
    pub at: Millis,
}

/// The replicated contents of one stick table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "TableRepr")]
pub struct TableState {
    /// The table's definition when its entries were written; a reload that
    /// changes it starts the table afresh.
    pub def: StickTable,
    entries: BTreeMap<String, StickEntry>,
    /// `(at, key)` of every entry, oldest first: expiry and eviction order.
    /// Derived from `entries`, so it is not serialised.
    #[serde(skip)]
    by_age: BTreeSet<(Millis, String)>,
}

/// The serialised form of a [`TableState`] (the age index is rebuilt).
#[derive(Deserialize)]
struct TableRepr {
    def: StickTable,
    entries: BTreeMap<String, StickEntry>,
}

impl From<TableRepr> for TableState {
    fn from(repr: TableRepr) -> TableState {
        let by_age = repr
            .entries
            .iter()
            .map(|(k, e)| (e.at, k.clone()))
            .collect();
        TableState {
            def: repr.def,
            entries: repr.entries,
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
            by_age: BTreeSet::new(),
        }
    }

    /// Every entry, by key.
    pub fn entries(&self) -> &BTreeMap<String, StickEntry> {
        &self.entries
    }

    /// Stick `key` to `server` as of `at`, evicting the oldest entries
    /// when the table is over its `size`.
    pub(super) fn write(&mut self, key: &str, server: &str, at: Millis) {
        let entry = StickEntry {
            server: server.to_string(),
            at,
        };
        if let Some(old) = self.entries.insert(key.to_string(), entry) {
            self.by_age.remove(&(old.at, key.to_string()));
        }
        self.by_age.insert((at, key.to_string()));
        let size = usize::try_from(self.def.size).unwrap_or(usize::MAX).max(1);
        while self.entries.len() > size {
            let Some((_, oldest)) = self.by_age.pop_first() else {
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
        while let Some((at, _)) = self.by_age.first() {
            if at.saturating_add(ttl) > now {
                break;
            }
            if let Some((_, key)) = self.by_age.pop_first() {
                self.entries.remove(&key);
            }
        }
    }

    /// Remove one key, or every entry.
    pub(super) fn clear(&mut self, key: Option<&str>) {
        match key {
            Some(key) => {
                if let Some(old) = self.entries.remove(key) {
                    self.by_age.remove(&(old.at, key.to_string()));
                }
            }
            None => {
                self.entries.clear();
                self.by_age.clear();
            }
        }
    }

    /// The age index matches the entries (checked in debug builds).
    pub(super) fn consistent(&self) -> bool {
        self.by_age.len() == self.entries.len()
            && self
                .by_age
                .iter()
                .all(|(at, k)| self.entries.get(k).is_some_and(|e| e.at == *at))
    }
}
