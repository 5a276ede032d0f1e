//! The online directory: which sessions (connection, device, platform) each
//! user has, on which worker.
//!
//! Read on every delivery, written on login/logout, so it is sharded by user
//! hash behind `parking_lot` read-write locks; lookups copy out a small vector.
//!
//! Invariants: sessions are added only by the user's owner shard (login
//! policies are decided there, one login at a time, [L-3]); they are removed by
//! whoever ends the session (its worker on close, the owner shard on a kick).
//! Removing an absent session is a no-op. `changed_ms` moves whenever the set
//! of online platforms changes. The generation ([`Directory::generation`])
//! moves after every session added or removed, once the change is visible to
//! lookups, so a result computed from lookups that started at generation `g`
//! is still exact while the generation is `g` (the fan-out route cache,
//! `net/routes.rs`).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

use missive_protocol::pb::Platform;
use missive_protocol::{DeviceId, UserId};
use parking_lot::RwLock;

use crate::node::clock::now_ms;

const SHARDS: usize = 64;

/// Globally unique address of a connection: its worker and its id there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ConnRef {
    pub(crate) worker: usize,
    pub(crate) id: u64,
}

/// One online device session.
#[derive(Debug, Clone)]
pub(crate) struct Presence {
    pub(crate) conn: ConnRef,
    pub(crate) device: DeviceId,
    pub(crate) platform: Platform,
    /// Login order within the user (older sessions have smaller values).
    pub(crate) since_ms: u64,
    /// An admin-token session: gets pushes, but is not presence and no login policy applies.
    pub(crate) admin: bool,
}

#[derive(Debug, Default)]
struct UserEntry {
    sessions: Vec<Presence>,
    /// Last change of the online platform set (unix ms).
    changed_ms: u64,
}

impl UserEntry {
    fn platforms(&self) -> Vec<Platform> {
        let mut p: Vec<Platform> = self.sessions.iter().filter(|s| !s.admin).map(|s| s.platform).collect();
        p.sort_unstable_by_key(|p| *p as i32);
        p.dedup();
        p
    }
}

/// A user's online platforms and when that set last changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Online {
    pub(crate) platforms: Vec<Platform>,
    pub(crate) changed_ms: u64,
}

#[derive(Debug)]
pub(crate) struct Directory {
    shards: Vec<RwLock<HashMap<UserId, UserEntry>>>,
    hasher: std::collections::hash_map::RandomState,
    /// Sessions added or removed so far (see the module invariants).
    generation: AtomicU64,
}

impl Directory {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            generation: AtomicU64::new(0),
        }
    }

    /// How many times the set of sessions changed: read it before lookups
    /// whose result is kept, and keep the result only while it is unchanged.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Moves the generation after a change, outside the shard's lock (the
    /// change is already visible to every lookup that starts now).
    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn shard(&self, user: &UserId) -> &RwLock<HashMap<UserId, UserEntry>> {
        &self.shards[(self.hasher.hash_one(user) as usize) % SHARDS]
    }

    /// Adds a session; returns whether the platform set changed.
    pub(crate) fn add(&self, user: &UserId, p: Presence) -> bool {
        let changed = {
            let mut g = self.shard(user).write();
            let e = g.entry(user.clone()).or_default();
            let before = e.platforms();
            e.sessions.push(p);
            let changed = e.platforms() != before;
            if changed {
                e.changed_ms = now_ms();
            }
            changed
        };
        self.changed();
        changed
    }

    /// Removes a session; returns it if it was present, with whether the
    /// platform set changed.
    pub(crate) fn remove(&self, user: &UserId, conn: ConnRef) -> Option<(Presence, bool)> {
        let out = self.remove_locked(user, conn);
        if out.is_some() {
            self.changed();
        }
        out
    }

    fn remove_locked(&self, user: &UserId, conn: ConnRef) -> Option<(Presence, bool)> {
        let mut g = self.shard(user).write();
        let e = g.get_mut(user)?;
        let pos = e.sessions.iter().position(|p| p.conn == conn)?;
        let before = e.platforms();
        let removed = e.sessions.remove(pos);
        if e.sessions.is_empty() {
            g.remove(user);
            return Some((removed, true));
        }
        let changed = e.platforms() != before;
        if changed {
            e.changed_ms = now_ms();
        }
        Some((removed, changed))
    }

    /// Every online session of `user`.
    pub(crate) fn sessions(&self, user: &UserId) -> Vec<Presence> {
        self.shard(user).read().get(user).map(|e| e.sessions.clone()).unwrap_or_default()
    }

    /// Calls `f` for every online session of `user` (no copy of the list).
    pub(crate) fn for_each_session(&self, user: &UserId, mut f: impl FnMut(&Presence)) {
        if let Some(e) = self.shard(user).read().get(user) {
            e.sessions.iter().for_each(&mut f);
        }
    }

    /// Calls `f` for every online session of every user (a broadcast push):
    /// one shard's read lock at a time.
    pub(crate) fn for_each_online(&self, mut f: impl FnMut(&Presence)) {
        for shard in &self.shards {
            for e in shard.read().values() {
                e.sessions.iter().for_each(&mut f);
            }
        }
    }

    /// Users online (on any platform), device sessions and sessions per
    /// platform (index = wire value), admin-token sessions left out: a walk
    /// of every shard under its read lock (O(online users); for statistics).
    pub(crate) fn counts(&self) -> (u64, u64, [u64; 8]) {
        let (mut users, mut sessions, mut by) = (0u64, 0u64, [0u64; 8]);
        for shard in &self.shards {
            for e in shard.read().values() {
                let mut any = false;
                for s in e.sessions.iter().filter(|s| !s.admin) {
                    any = true;
                    sessions += 1;
                    if let Some(n) = by.get_mut(s.platform as usize) {
                        *n += 1;
                    }
                }
                users += u64::from(any);
            }
        }
        (users, sessions, by)
    }

    /// The user's online platforms (empty when offline).
    pub(crate) fn online(&self, user: &UserId) -> Online {
        match self.shard(user).read().get(user) {
            Some(e) => Online { platforms: e.platforms(), changed_ms: e.changed_ms },
            None => Online::default(),
        }
    }
}
