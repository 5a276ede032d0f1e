//! The direct-conversation cache of one shard.
//!
//! Role: for each `p:` conversation in use, its max seq, its last message,
//! both members' `uconv` records and the pair's block flags (checked by every
//! send, [B-2]). Loaded from storage on first use; bounded by
//! `limits.conv_cache_entries` (10 % evicted at the start of a turn).
//!
//! Invariants: the cache holds committed state, plus what the current turn
//! staged. A service gets a mutable entry only through [`ConvCache::get_mut`],
//! which records the entry's previous value as an undo first, so a refused op
//! leaves the cache as it found it; after a failed write every entry the turn
//! touched is dropped and reloads from the log.

use std::collections::HashMap;

use bytes::Bytes;
use missive_protocol::{ConvId, ErrorCode, UserId};
use missive_storage::{BlockRecord, RelKind, Store, UserConvRecord};

use crate::error::Reject;
use crate::services::Undo;
use crate::shard::Turn;

/// One participant's cached state.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) user: UserId,
    pub(crate) rec: UserConvRecord,
}

/// Cached committed (or, while staging, staged) state of a direct conversation.
#[derive(Debug, Clone)]
pub(crate) struct ConvEntry {
    pub(crate) max_seq: u64,
    /// Encoded message at `max_seq`, for `last_message`.
    pub(crate) last: Option<Bytes>,
    pub(crate) members: Vec<Member>,
    /// `blocked[i]` = members[i] blacklisted the other member.
    pub(crate) blocked: [bool; 2],
}

impl ConvEntry {
    pub(crate) fn member(&self, user: &UserId) -> Option<usize> {
        self.members.iter().position(|m| &m.user == user)
    }

    /// Index of `user`, or NOT_PARTICIPANT.
    pub(crate) fn participant(&self, user: &UserId) -> Result<usize, Reject> {
        self.member(user).ok_or_else(|| Reject::new(ErrorCode::NotParticipant, "not a participant"))
    }

    fn load(store: &Store, conv: &ConvId) -> Result<Self, Reject> {
        let max_seq = store.max_seq(conv)?;
        let last = if max_seq.0 > 0 { store.message(conv, max_seq)?.map(Bytes::from) } else { None };
        let (a, b) = conv.direct_members().ok_or_else(|| {
            Reject::new(ErrorCode::UnsupportedConversation, "only p: conversations are served")
        })?;
        let mut members = Vec::with_capacity(2);
        for u in [a, b] {
            let user = UserId::new(u).map_err(|e| Reject::new(ErrorCode::InvalidConvId, e.to_string()))?;
            let rec = store.user_conv(&user, conv)?.unwrap_or_default();
            members.push(Member { user, rec });
        }
        let mut blocked = [false; 2];
        if let [m0, m1] = members.as_slice() {
            blocked[0] = store.rel::<BlockRecord>(&m0.user, RelKind::Block, &m1.user)?.is_some();
            blocked[1] = store.rel::<BlockRecord>(&m1.user, RelKind::Block, &m0.user)?.is_some();
        }
        Ok(ConvEntry { max_seq: max_seq.0, last, members, blocked })
    }
}

/// The cache; see the module docs.
#[derive(Debug)]
pub(crate) struct ConvCache {
    entries: HashMap<ConvId, ConvEntry>,
    cap: usize,
    /// Entries changed this turn (dropped if the turn's write fails).
    touched: Vec<ConvId>,
}

impl ConvCache {
    pub(crate) fn new(cap: usize) -> Self {
        Self { entries: HashMap::new(), cap, touched: Vec::new() }
    }

    /// Evicts 10 % when over capacity; only between turns (nothing staged).
    fn evict_if_full(&mut self) {
        if self.touched.is_empty() && self.entries.len() > self.cap {
            let drop_n = self.entries.len() - self.cap * 9 / 10;
            let victims: Vec<ConvId> = self.entries.keys().take(drop_n).cloned().collect();
            for v in victims {
                self.entries.remove(&v);
            }
        }
    }

    /// The entry of `conv` for reading (loaded on first use).
    pub(crate) fn get(&mut self, store: &Store, conv: &ConvId) -> Result<&ConvEntry, Reject> {
        self.load(store, conv)?;
        self.entries.get(conv).ok_or_else(|| Reject::new(ErrorCode::Internal, "cache miss after load"))
    }

    fn load(&mut self, store: &Store, conv: &ConvId) -> Result<(), Reject> {
        if !self.entries.contains_key(conv) {
            self.evict_if_full();
            let e = ConvEntry::load(store, conv)?;
            self.entries.insert(conv.clone(), e);
        }
        Ok(())
    }

    /// The entry of `conv` for changing: records its undo in `t` first.
    pub(crate) fn get_mut(
        &mut self,
        store: &Store,
        conv: &ConvId,
        t: &mut Turn<Undo>,
    ) -> Result<&mut ConvEntry, Reject> {
        self.load(store, conv)?;
        let before = self.entries.get(conv).cloned();
        t.undo(Undo::Conv(conv.clone(), before));
        self.touched.push(conv.clone());
        self.entries.get_mut(conv).ok_or_else(|| Reject::new(ErrorCode::Internal, "cache miss after load"))
    }

    /// The cached entry, if any, for changing (no load): records its undo first.
    pub(crate) fn cached_mut(&mut self, conv: &ConvId, t: &mut Turn<Undo>) -> Option<&mut ConvEntry> {
        let before = self.entries.get(conv)?.clone();
        t.undo(Undo::Conv(conv.clone(), Some(before)));
        self.touched.push(conv.clone());
        self.entries.get_mut(conv)
    }

    /// Undo: puts back an entry's previous value.
    pub(crate) fn restore(&mut self, conv: ConvId, before: Option<ConvEntry>) {
        match before {
            Some(e) => {
                self.entries.insert(conv, e);
            }
            None => {
                self.entries.remove(&conv);
            }
        }
    }

    pub(crate) fn drop_touched(&mut self) {
        for c in self.touched.drain(..) {
            self.entries.remove(&c);
        }
    }

    pub(crate) fn end_turn(&mut self) {
        self.touched.clear();
    }
}
