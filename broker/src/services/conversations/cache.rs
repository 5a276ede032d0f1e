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
//! leaves the cache as it found it; after a failed write the cache is dropped
//! and entries reload from the log.
//!
//! Coalesced member records: an op that changes a member's `uconv` record
//! only marks it ([`ConvEntry::touch`]); [`ConvCache::flush`], called once
//! after the turn's last op and before its write, stages each marked record
//! once with one new feed version. So a conversation with k sends in a turn
//! writes its two members' records and feed entries once, not k times
//! (issue #17: 2 + 6/k entries per message instead of 8). The mark is part
//! of the entry's undo snapshot, so a refused op's mark goes with it.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use missive_protocol::{ConvId, ErrorCode, UserId};
use missive_storage::{BlockRecord, RelKind, Store, UserConvRecord};

use crate::error::Reject;
use crate::node::clock::VersionClock;
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
    pub(crate) members: [Member; 2],
    /// `blocked[i]` = members[i] blacklisted the other member.
    pub(crate) blocked: [bool; 2],
    /// The conversation's latest update seq (spec [UP-1]).
    pub(crate) update_seq: u64,
    /// Both members' ids, shared by every push of the conversation.
    pub(crate) users: Arc<[UserId]>,
    /// `pending[i]`: members[i]'s record changed this turn and is staged by
    /// [`ConvCache::flush`] (with a new feed version).
    pending: [bool; 2],
    /// Listed in [`ConvCache::touched`] this turn (not undone: a listed entry
    /// with nothing pending costs the flush one look).
    listed: bool,
}

/// What a staging op may change in an entry (no allocation to take: the
/// members' ids never change).
#[derive(Debug, Clone)]
pub(crate) struct ConvSnapshot {
    max_seq: u64,
    last: Option<Bytes>,
    recs: [UserConvRecord; 2],
    blocked: [bool; 2],
    update_seq: u64,
    pending: [bool; 2],
}

impl ConvEntry {
    /// Marks members[i]'s record as changed: the turn's flush stages it once,
    /// with a new feed version, whatever the number of changes.
    pub(crate) fn touch(&mut self, i: usize) {
        self.pending[i] = true;
    }

    /// Marks both members' records as changed.
    pub(crate) fn touch_all(&mut self) {
        self.pending = [true, true];
    }

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
        let member = |u: &str| -> Result<Member, Reject> {
            let user = UserId::new(u).map_err(|e| Reject::new(ErrorCode::InvalidConvId, e.to_string()))?;
            let rec = store.user_conv(&user, conv)?.unwrap_or_default();
            Ok(Member { user, rec })
        };
        let members = [member(a)?, member(b)?];
        let [m0, m1] = &members;
        let blocked = [
            store.rel::<BlockRecord>(&m0.user, RelKind::Block, &m1.user)?.is_some(),
            store.rel::<BlockRecord>(&m1.user, RelKind::Block, &m0.user)?.is_some(),
        ];
        let update_seq = store.update_seq(conv)?;
        let users: Arc<[UserId]> = Arc::from(vec![members[0].user.clone(), members[1].user.clone()]);
        Ok(ConvEntry {
            max_seq: max_seq.0,
            last,
            members,
            blocked,
            update_seq,
            users,
            pending: [false; 2],
            listed: false,
        })
    }

    fn snapshot(&self) -> ConvSnapshot {
        ConvSnapshot {
            max_seq: self.max_seq,
            last: self.last.clone(),
            recs: [self.members[0].rec.clone(), self.members[1].rec.clone()],
            blocked: self.blocked,
            update_seq: self.update_seq,
            pending: self.pending,
        }
    }

    fn restore(&mut self, s: ConvSnapshot) {
        let [r0, r1] = s.recs;
        self.max_seq = s.max_seq;
        self.last = s.last;
        self.members[0].rec = r0;
        self.members[1].rec = r1;
        self.blocked = s.blocked;
        self.update_seq = s.update_seq;
        self.pending = s.pending;
    }
}

/// The cache; see the module docs.
#[derive(Debug)]
pub(crate) struct ConvCache {
    entries: HashMap<ConvId, ConvEntry>,
    cap: usize,
    /// An entry changed this turn: no eviction until the turn ends (an evicted
    /// entry would lose staged state), and a failed write drops the cache.
    dirty: bool,
    /// Entries handed out for changing this turn, once each: what
    /// [`ConvCache::flush`] looks at.
    touched: Vec<ConvId>,
}

impl ConvCache {
    pub(crate) fn new(cap: usize) -> Self {
        Self { entries: HashMap::new(), cap, dirty: false, touched: Vec::new() }
    }

    /// Evicts 10 % when over capacity; only between turns (nothing staged).
    fn evict_if_full(&mut self) {
        if !self.dirty && self.entries.len() > self.cap {
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
        let entry = self
            .entries
            .get_mut(conv)
            .ok_or_else(|| Reject::new(ErrorCode::Internal, "cache miss after load"))?;
        t.undo(Undo::Conv(conv.clone(), Some(entry.snapshot())));
        self.dirty = true;
        if !entry.listed {
            entry.listed = true;
            self.touched.push(conv.clone());
        }
        Ok(entry)
    }

    /// The cached entry, if any, for changing (no load): records its undo first.
    pub(crate) fn cached_mut(&mut self, conv: &ConvId, t: &mut Turn<Undo>) -> Option<&mut ConvEntry> {
        let entry = self.entries.get_mut(conv)?;
        t.undo(Undo::Conv(conv.clone(), Some(entry.snapshot())));
        self.dirty = true;
        if !entry.listed {
            entry.listed = true;
            self.touched.push(conv.clone());
        }
        Some(entry)
    }

    /// Stages every member record marked this turn ([`ConvEntry::touch`]):
    /// one new feed version and one `uconv` put per (conversation, member).
    /// Called after the turn's last op, before its write; stages nothing that
    /// can be refused, so it needs no save point.
    pub(crate) fn flush(&mut self, clock: &VersionClock, t: &mut Turn<Undo>) {
        for conv in self.touched.drain(..) {
            let Some(entry) = self.entries.get_mut(&conv) else { continue };
            entry.listed = false;
            for (i, m) in entry.members.iter_mut().enumerate() {
                if std::mem::take(&mut entry.pending[i]) {
                    let old = m.rec.feed_version;
                    m.rec.feed_version = clock.alloc(&mut t.versions);
                    t.batch.put_user_conv(&m.user, &conv, old, &m.rec);
                }
            }
        }
    }

    /// Undo: puts back an entry's previous state (`None`: drop it, it reloads).
    pub(crate) fn restore(&mut self, conv: ConvId, before: Option<ConvSnapshot>) {
        match (before, self.entries.get_mut(&conv)) {
            (Some(s), Some(e)) => e.restore(s),
            _ => {
                self.entries.remove(&conv);
            }
        }
    }

    /// The turn's write failed: drop every entry (they reload from storage).
    /// Rare, so simpler than tracking which entries the turn changed.
    pub(crate) fn drop_staged(&mut self) {
        if self.dirty {
            self.entries.clear();
        }
        self.touched.clear();
    }

    pub(crate) fn end_turn(&mut self) {
        self.dirty = false;
        // Flushed before the write; anything left (a turn that staged no
        // write) only loses its marks.
        for conv in self.touched.drain(..) {
            if let Some(e) = self.entries.get_mut(&conv) {
                e.listed = false;
                e.pending = [false; 2];
            }
        }
    }
}
