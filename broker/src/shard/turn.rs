//! One turn's staging area, with save points.
//!
//! Role: every op of a turn stages into the same [`Turn`]: storage puts (one
//! RocksDB batch for the whole turn), effects, counter reservations, claims
//! on read-modify-write keys, and undo records for the services' caches. The
//! engine takes a [`SavePoint`] before each op and, if the op fails, rolls
//! everything back to it with [`Turn::rollback`].
//!
//! Invariants:
//! - a refused op leaves no trace: not in the batch, the effects (so no
//!   reply, push, kick or directory change of it survives), the reservations
//!   (released at once), the claims, or the caches (its undo records are
//!   applied newest first);
//! - the turn's clock (`now_ms`) is an argument of the engine, never read here.

use std::collections::HashSet;

use missive_storage::{Batch, SavePoint as BatchSavePoint};

use crate::node::clock::BatchVersions;
use crate::node::counters::Reservation;

use super::effect::Effect;

/// Where a turn stood before an op began.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SavePoint {
    batch: BatchSavePoint,
    effects: usize,
    reservations: usize,
    claims: usize,
    undo: usize,
}

/// Per-turn staging area; `U` is the services' cache undo record.
pub(crate) struct Turn<U> {
    /// The turn's clock: every op of the turn sees the same time.
    pub(crate) now_ms: u64,
    pub(crate) batch: Batch,
    pub(crate) versions: BatchVersions,
    effects: Vec<Effect>,
    /// Counter reservations to settle after the write.
    reservations: Vec<Reservation>,
    /// Keys (users, pairs) whose stored records this turn already changes.
    busy: HashSet<String>,
    /// `busy` in claim order, so a rollback can release the op's claims.
    claims: Vec<String>,
    undo: Vec<U>,
}

impl<U> std::fmt::Debug for Turn<U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Turn")
            .field("now_ms", &self.now_ms)
            .field("batch", &self.batch.len())
            .field("effects", &self.effects.len())
            .finish()
    }
}

impl<U> Turn<U> {
    pub(crate) fn new(now_ms: u64, batch: Batch, expected_ops: usize) -> Self {
        Self {
            now_ms,
            batch,
            versions: BatchVersions::default(),
            effects: Vec::with_capacity(expected_ops * 2),
            reservations: Vec::new(),
            busy: HashSet::new(),
            claims: Vec::new(),
            // Most ops record one undo (a send: its conversation's snapshot).
            undo: Vec::with_capacity(expected_ops),
        }
    }

    /// Queues an effect, emitted only if the turn's write succeeds.
    pub(crate) fn effect(&mut self, e: Effect) {
        self.effects.push(e);
    }

    /// Queues an effect if there is one.
    pub(crate) fn effects_extend(&mut self, e: Option<Effect>) {
        self.effects.extend(e);
    }

    /// Holds a counter reservation until the turn settles it.
    pub(crate) fn reservation(&mut self, r: Reservation) {
        self.reservations.push(r);
    }

    /// Records how to undo a cache change; call it BEFORE changing the cache.
    pub(crate) fn undo(&mut self, u: U) {
        self.undo.push(u);
    }

    /// Claims `key` for this turn. Ops that read-modify-write stored records
    /// (accounts, profiles, relations) claim their key first; a second op on
    /// the same key in one turn is deferred, so every op reads committed state.
    pub(crate) fn claim(&mut self, key: String) -> bool {
        if self.busy.contains(&key) {
            return false;
        }
        self.busy.insert(key.clone());
        self.claims.push(key);
        true
    }

    pub(crate) fn save_point(&mut self) -> SavePoint {
        SavePoint {
            batch: self.batch.save_point(),
            effects: self.effects.len(),
            reservations: self.reservations.len(),
            claims: self.claims.len(),
            undo: self.undo.len(),
        }
    }

    /// Drops everything staged after `sp`. Returns the reservations to release
    /// and the undo records to apply, newest first.
    pub(crate) fn rollback(&mut self, sp: SavePoint) -> (Vec<Reservation>, Vec<U>) {
        self.batch.rollback_to(sp.batch);
        self.effects.truncate(sp.effects);
        for k in self.claims.drain(sp.claims..) {
            self.busy.remove(&k);
        }
        let reservations = self.reservations.split_off(sp.reservations);
        let mut undo = self.undo.split_off(sp.undo);
        undo.reverse();
        (reservations, undo)
    }

    /// Ends the turn's staging: effects and reservations go to the engine.
    /// The undo records are dropped: what was staged is now the turn's state.
    pub(crate) fn finish(&mut self) -> (Vec<Effect>, Vec<Reservation>) {
        self.undo.clear();
        (std::mem::take(&mut self.effects), std::mem::take(&mut self.reservations))
    }
}
