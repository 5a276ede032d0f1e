//! Per-user counters (friends, blacklist, joined groups) that enforce the limits.
//!
//! A user's friend and block records are written by many owner shards (one
//! per pair, see `relations`), so the limit check cannot be a read of storage:
//! two shards could both see 2 999 friends and both add one. Instead every
//! change reserves its delta here, under one lock per counter shard, before it
//! is staged; the reservation is settled after the batch is written (kept on
//! success, undone on failure).
//!
//! Invariants: a counter is loaded from storage (a prefix count) under its lock
//! before the first reservation, so every committed or staged change is either
//! in the loaded count or in a reservation made against it. Entries without
//! pending reservations may be evicted (and reloaded later) when a shard map
//! grows beyond its bound, so memory stays bounded.

use std::collections::HashMap;
use std::hash::BuildHasher;

use missive_protocol::UserId;
use missive_storage::{RelKind, Store};
use parking_lot::Mutex;

use crate::error::Reject;

const SHARDS: usize = 64;
/// Entries per shard before idle ones are evicted.
const SHARD_CAP: usize = 4096;

/// Which count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Counted {
    Friends,
    Blocks,
    /// Groups the user belongs to (written by each group's owner shard).
    Groups,
}

impl Counted {
    /// The committed count, from storage.
    fn load(self, store: &Store, user: &UserId) -> Result<usize, Reject> {
        Ok(match self {
            Counted::Friends => store.rel_count(user, RelKind::Friend)?,
            Counted::Blocks => store.rel_count(user, RelKind::Block)?,
            Counted::Groups => store.joined_count(user)?,
        })
    }
}

#[derive(Debug, Default)]
struct Entry {
    /// Committed plus reserved count.
    count: i64,
    /// Reservations not yet settled.
    pending: u32,
}

/// One reserved delta, to settle after the write.
#[derive(Debug, Clone)]
pub(crate) struct Reservation {
    user: UserId,
    what: Counted,
    delta: i64,
}

#[derive(Debug)]
pub(crate) struct Counters {
    shards: Vec<Mutex<HashMap<(UserId, Counted), Entry>>>,
    hasher: std::collections::hash_map::RandomState,
}

impl Counters {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    fn shard(&self, user: &UserId, what: Counted) -> &Mutex<HashMap<(UserId, Counted), Entry>> {
        &self.shards[(self.hasher.hash_one((user, what)) as usize) % SHARDS]
    }

    /// Reserves `delta` on `user`'s count. A positive delta fails (returns
    /// `Ok(None)`) when the count would exceed `limit`; nothing is reserved then.
    pub(crate) fn reserve(
        &self,
        store: &Store,
        user: &UserId,
        what: Counted,
        delta: i64,
        limit: usize,
    ) -> Result<Option<Reservation>, Reject> {
        let mut g = self.shard(user, what).lock();
        if g.len() > SHARD_CAP {
            g.retain(|_, e| e.pending > 0);
        }
        let key = (user.clone(), what);
        if !g.contains_key(&key) {
            let n = what.load(store, user)?;
            g.insert(key.clone(), Entry { count: n as i64, pending: 0 });
        }
        let Some(e) = g.get_mut(&key) else {
            return Err(Reject::new(missive_protocol::ErrorCode::Internal, "counter vanished"));
        };
        if delta > 0 && e.count + delta > limit as i64 {
            return Ok(None);
        }
        e.count += delta;
        e.pending += 1;
        Ok(Some(Reservation { user: user.clone(), what, delta }))
    }

    /// Settles a reservation: keeps it (`committed`) or undoes it.
    pub(crate) fn settle(&self, r: Reservation, committed: bool) {
        let mut g = self.shard(&r.user, r.what).lock();
        if let Some(e) = g.get_mut(&(r.user, r.what)) {
            if !committed {
                e.count -= r.delta;
            }
            e.pending = e.pending.saturating_sub(1);
        }
    }
}
