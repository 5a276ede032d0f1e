//! The live snapshot of the word lists and the moderation mutes, shared by
//! every worker through `Node`.
//!
//! Role: [`Live`] holds the compiled lists as an `Arc` swapped at once on a
//! change; [`Mutes`] holds the global mutes (user → until, Unix ms). Both are
//! loaded from the `ops` family at start (spaces `words` and `mute`) and
//! changed only through the API: storage is written first, then the memory
//! copy, so a change takes effect at once and survives a restart.
//!
//! Invariants: readers never wait for a compile (the new snapshot is built
//! outside the lock and swapped in); with no list (or no mute) a reader
//! touches one atomic and nothing else; changes are serialized by one mutex
//! per structure, so two concurrent edits never lose each other.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use missive_storage::{OpsSpace, StorageError, Store};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use super::engine::{Action, Compiled, WordList};

/// A stored list (`ops/words/{name}`), JSON.
#[derive(Debug, Serialize, Deserialize)]
struct StoredList {
    action: Action,
    mask: String,
    words: Vec<String>,
}

/// A stored mute (`ops/mute/{user}`), JSON.
#[derive(Debug, Serialize, Deserialize)]
struct StoredMute {
    until_ms: u64,
}

/// Why a list change was refused.
#[derive(Debug)]
pub(crate) enum ChangeError {
    /// The store failed; nothing changed.
    Storage(StorageError),
    /// No list of that name.
    NotFound,
    /// A bound was exceeded (the message says which).
    Limit(String),
}

impl From<StorageError> for ChangeError {
    fn from(e: StorageError) -> Self {
        Self::Storage(e)
    }
}

/// The compiled lists in use.
#[derive(Debug)]
pub struct Live {
    current: RwLock<Arc<Compiled>>,
    /// Whether `current` can match anything (the readers' fast path).
    active: AtomicBool,
    /// Serializes changes.
    write: Mutex<()>,
}

impl Default for Live {
    fn default() -> Self {
        Self {
            current: RwLock::new(Arc::new(Compiled::empty())),
            active: AtomicBool::new(false),
            write: Mutex::new(()),
        }
    }
}

impl Live {
    /// The lists in use; `None` when there is none (no lock taken).
    pub fn snapshot(&self) -> Option<Arc<Compiled>> {
        if !self.active.load(Ordering::Acquire) {
            return None;
        }
        Some(Arc::clone(&self.current.read()))
    }

    /// The lists in use, even when empty.
    pub(crate) fn all(&self) -> Arc<Compiled> {
        Arc::clone(&self.current.read())
    }

    /// The names of the `flag` lists `text` matches (see
    /// [`Compiled::flagged`]); empty at no cost when there is no list.
    pub fn flagged(&self, text: &str) -> Vec<String> {
        self.snapshot().map(|c| c.flagged(text)).unwrap_or_default()
    }

    fn install(&self, compiled: Compiled) {
        let active = !compiled.is_empty();
        *self.current.write() = Arc::new(compiled);
        self.active.store(active, Ordering::Release);
    }

    /// Loads every stored list (start-up); a record that does not decode is
    /// skipped with an error log.
    pub(crate) fn load(&self, store: &Store) -> Result<usize, String> {
        let _w = self.write.lock();
        let mut lists = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let rows = store
                .ops_scan(OpsSpace::Words, b"", after.as_deref(), 256)
                .map_err(|e| format!("word lists: {e}"))?;
            let Some((last, _)) = rows.last() else { break };
            after = Some(last.clone());
            for (id, v) in rows {
                let name = String::from_utf8_lossy(&id).into_owned();
                match serde_json::from_slice::<StoredList>(&v) {
                    Ok(s) => lists.push(WordList { name, action: s.action, mask: s.mask, words: s.words }),
                    Err(e) => tracing::error!(list = %name, error = %e, "word list record skipped"),
                }
            }
        }
        let n = lists.len();
        self.install(Compiled::new(lists)?);
        Ok(n)
    }

    /// Replaces (or creates) list `list.name`; `max_lists` bounds the count.
    pub(crate) fn put(&self, store: &Store, list: WordList, max_lists: usize) -> Result<(), ChangeError> {
        let _w = self.write.lock();
        self.put_locked(store, list, max_lists)
    }

    /// [`Live::put`] with the write lock held.
    fn put_locked(&self, store: &Store, list: WordList, max_lists: usize) -> Result<(), ChangeError> {
        let cur = self.all();
        let mut lists: Vec<WordList> = cur.lists().to_vec();
        match lists.iter_mut().find(|l| l.name == list.name) {
            Some(slot) => *slot = list.clone(),
            None => {
                if lists.len() >= max_lists {
                    return Err(ChangeError::Limit(format!(
                        "at most {max_lists} word lists (filter.max_lists); delete one first"
                    )));
                }
                lists.push(list.clone());
            }
        }
        let compiled = Compiled::new(lists).map_err(ChangeError::Limit)?;
        let value =
            serde_json::to_vec(&StoredList { action: list.action, mask: list.mask, words: list.words })
                .map_err(|e| ChangeError::Limit(e.to_string()))?;
        let mut b = store.batch();
        b.put_ops(OpsSpace::Words, list.name.as_bytes(), &value);
        store.write(b)?;
        self.install(compiled);
        Ok(())
    }

    /// Adds and removes words of list `name`; `max_words` bounds the result.
    pub(crate) fn edit(
        &self,
        store: &Store,
        name: &str,
        add: Vec<String>,
        remove: &[String],
        max_words: usize,
    ) -> Result<WordList, ChangeError> {
        let _w = self.write.lock();
        let cur = self.all();
        let Some(old) = cur.lists().iter().find(|l| l.name == name) else {
            return Err(ChangeError::NotFound);
        };
        let mut list = old.clone();
        let remove: std::collections::HashSet<&String> = remove.iter().collect();
        list.words.retain(|w| !remove.contains(w));
        let mut have: std::collections::HashSet<String> = list.words.iter().cloned().collect();
        for w in add {
            if have.insert(w.clone()) {
                list.words.push(w);
            }
        }
        if list.words.len() > max_words {
            return Err(ChangeError::Limit(format!(
                "the list would hold {} words; at most {max_words} (filter.max_words_per_list)",
                list.words.len()
            )));
        }
        // The list exists, so the list-count bound cannot apply.
        self.put_locked(store, list.clone(), usize::MAX)?;
        Ok(list)
    }

    /// Deletes list `name`.
    pub(crate) fn delete(&self, store: &Store, name: &str) -> Result<(), ChangeError> {
        let _w = self.write.lock();
        let cur = self.all();
        if !cur.lists().iter().any(|l| l.name == name) {
            return Err(ChangeError::NotFound);
        }
        let lists: Vec<WordList> = cur.lists().iter().filter(|l| l.name != name).cloned().collect();
        let compiled = Compiled::new(lists).map_err(ChangeError::Limit)?;
        let mut b = store.batch();
        b.delete_ops(OpsSpace::Words, name.as_bytes());
        store.write(b)?;
        self.install(compiled);
        Ok(())
    }
}

/// Global mutes: user id → until (Unix ms).
#[derive(Debug, Default)]
pub struct Mutes {
    map: RwLock<BTreeMap<String, u64>>,
    /// Whether `map` is non-empty (the readers' fast path).
    any: AtomicBool,
    write: Mutex<()>,
}

impl Mutes {
    /// Until when `user` is muted at `now_ms`, if they are.
    pub fn until(&self, user: &str, now_ms: u64) -> Option<u64> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        self.map.read().get(user).copied().filter(|&u| u > now_ms)
    }

    /// Loads every stored mute still running at `now_ms`.
    pub(crate) fn load(&self, store: &Store, now_ms: u64) -> Result<usize, String> {
        let _w = self.write.lock();
        let mut map = BTreeMap::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let rows = store
                .ops_scan(OpsSpace::Mute, b"", after.as_deref(), 1024)
                .map_err(|e| format!("mutes: {e}"))?;
            let Some((last, _)) = rows.last() else { break };
            after = Some(last.clone());
            for (id, v) in rows {
                match serde_json::from_slice::<StoredMute>(&v) {
                    Ok(m) if m.until_ms > now_ms => {
                        map.insert(String::from_utf8_lossy(&id).into_owned(), m.until_ms);
                    }
                    _ => {}
                }
            }
        }
        let n = map.len();
        self.any.store(n > 0, Ordering::Release);
        *self.map.write() = map;
        Ok(n)
    }

    /// Mutes `user` until `until_ms` (0 = unmutes), storage first; mutes that
    /// ended before `now_ms` are dropped on the way.
    pub(crate) fn set(
        &self,
        store: &Store,
        user: &str,
        until_ms: u64,
        now_ms: u64,
    ) -> Result<(), StorageError> {
        let _w = self.write.lock();
        let expired: Vec<String> = self
            .map
            .read()
            .iter()
            .filter(|(u, t)| **t <= now_ms && u.as_str() != user)
            .map(|(u, _)| u.clone())
            .collect();
        let mut b = store.batch();
        for u in &expired {
            b.delete_ops(OpsSpace::Mute, u.as_bytes());
        }
        if until_ms > now_ms {
            let v = serde_json::to_vec(&StoredMute { until_ms }).unwrap_or_default();
            b.put_ops(OpsSpace::Mute, user.as_bytes(), &v);
        } else {
            b.delete_ops(OpsSpace::Mute, user.as_bytes());
        }
        store.write(b)?;
        let mut map = self.map.write();
        for u in &expired {
            map.remove(u);
        }
        if until_ms > now_ms {
            map.insert(user.to_owned(), until_ms);
        } else {
            map.remove(user);
        }
        self.any.store(!map.is_empty(), Ordering::Release);
        Ok(())
    }

    /// Running mutes after user `after` (exclusive), by user id, at most `limit`.
    pub(crate) fn page(&self, after: Option<&str>, limit: usize, now_ms: u64) -> Vec<(String, u64)> {
        let map = self.map.read();
        let range = match after {
            Some(a) => map.range::<str, _>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
            None => map.range::<str, _>(..),
        };
        range.filter(|(_, t)| **t > now_ms).take(limit).map(|(u, t)| (u.clone(), *t)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use missive_storage::{Durability, StoreOptions};

    fn store(dir: &std::path::Path) -> Store {
        Store::open(dir, &StoreOptions { durability: Durability::Buffered, ..Default::default() })
            .expect("open")
    }

    fn list(name: &str, action: Action, words: &[&str]) -> WordList {
        WordList {
            name: name.into(),
            action,
            mask: "*".into(),
            words: words.iter().map(|w| (*w).to_owned()).collect(),
        }
    }

    #[test]
    fn lists_change_at_once_and_reload_from_storage() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = store(dir.path());
        let live = Live::default();
        assert!(live.snapshot().is_none(), "no list: no snapshot");
        live.put(&s, list("a", Action::Block, &["x1"]), 2).expect("put a");
        live.put(&s, list("b", Action::Flag, &["y1"]), 2).expect("put b");
        assert!(matches!(live.put(&s, list("c", Action::Flag, &["z"]), 2), Err(ChangeError::Limit(_))));
        live.put(&s, list("b", Action::Flag, &["y1", "y2"]), 2).expect("replace b");
        let l = live.edit(&s, "b", vec!["y3".into(), "y1".into()], &["y2".into()], 3).expect("edit");
        assert_eq!(l.words, ["y1", "y3"]);
        assert!(matches!(
            live.edit(&s, "b", vec!["y4".into(), "y5".into()], &[], 3),
            Err(ChangeError::Limit(_))
        ));
        assert!(matches!(live.edit(&s, "nope", vec!["q".into()], &[], 3), Err(ChangeError::NotFound)));
        assert_eq!(live.flagged("y3!"), ["b"]);
        assert!(live.snapshot().expect("active").check("X1").blocked.is_some());
        // A fresh node loads the same lists.
        let again = Live::default();
        assert_eq!(again.load(&s).expect("load"), 2);
        assert_eq!(again.all().lists(), live.all().lists());
        live.delete(&s, "a").expect("delete");
        live.delete(&s, "b").expect("delete");
        assert!(matches!(live.delete(&s, "b"), Err(ChangeError::NotFound)));
        assert!(live.snapshot().is_none(), "no list left: back to the fast path");
        assert_eq!(Live::default().load(&s).expect("load"), 0);
    }

    #[test]
    fn mutes_expire_and_reload() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = store(dir.path());
        let m = Mutes::default();
        assert_eq!(m.until("u", 0), None);
        m.set(&s, "u1", 2_000, 1_000).expect("set");
        m.set(&s, "u2", 5_000, 1_000).expect("set");
        assert_eq!(m.until("u1", 1_500), Some(2_000));
        assert_eq!(m.until("u1", 2_000), None, "ends at its time");
        assert_eq!(m.page(None, 10, 2_500), [("u2".to_owned(), 5_000)]);
        let again = Mutes::default();
        assert_eq!(again.load(&s, 2_500).expect("load"), 1, "the ended mute is not loaded");
        // Setting another mute drops ended ones from storage.
        m.set(&s, "u2", 0, 3_000).expect("unmute");
        assert_eq!(m.until("u2", 3_000), None);
        assert_eq!(s.ops_scan(OpsSpace::Mute, b"", None, 10).expect("scan").len(), 0);
    }
}
