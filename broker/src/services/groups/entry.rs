//! The group cache of one shard: each group in use, and the `uconv` records
//! of its members that the shard read or wrote.
//!
//! Role: a group's info, member list and log tip are loaded once and kept
//! while the group is in use (bounded by `groups.cache_entries`); members'
//! `uconv` records are cached per group as they are needed (read diffusion:
//! a message writes nothing per member).
//!
//! Invariants:
//! - an op takes the entry out with [`GroupCache::take`], which records its
//!   undo first, and puts it back with [`GroupCache::put`]; a member's `uconv`
//!   changes only through [`GroupCache::write_uconv`], which records its undo;
//! - the member list is shared (`Arc`) so an undo snapshot costs no copy of
//!   it; ops that change membership copy it on write;
//! - eviction never drops an entry the current turn changed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use missive_protocol::pb;
use missive_protocol::{ConvId, ErrorCode, GroupId, Seq, UserId};
use missive_storage::{GroupMemberRecord, GroupRecord, Store, UserConvRecord};
use prost::Message as _;

use crate::error::Reject;
use crate::node::clock::{MsgIdGen, VersionClock};
use crate::services::Undo;
use crate::shard::Turn;

/// Cached committed (or, while staging, staged) state of one group.
#[derive(Debug, Clone)]
pub(crate) struct GroupEntry {
    pub(crate) id: GroupId,
    /// `None`: no such group.
    pub(crate) info: Option<GroupRecord>,
    pub(crate) members: Arc<BTreeMap<UserId, GroupMemberRecord>>,
    pub(crate) max_seq: u64,
    /// Encoded message at `max_seq`.
    pub(crate) last: Option<Bytes>,
    /// Members whose devices get messages pushed; rebuilt after any group op
    /// (the only writer of membership and notify settings).
    pub(crate) recipients: Option<Arc<[UserId]>>,
    /// The conversation's latest update seq (spec [UP-1]).
    pub(crate) update_seq: u64,
}

impl GroupEntry {
    fn load(store: &Store, conv: &ConvId, max_members: u32) -> Result<Self, Reject> {
        let id = conv
            .group_id()
            .ok_or_else(|| Reject::new(ErrorCode::UnsupportedConversation, "not a group conversation"))?;
        let info = store.group(&id)?;
        let mut members = BTreeMap::new();
        if info.as_ref().is_some_and(|i| !i.dismissed) {
            let cap = max_members as usize + 1;
            for (u, m) in store.group_members(&id, "", cap)? {
                if let Ok(u) = UserId::new(u) {
                    members.insert(u, m);
                }
            }
        }
        let max_seq = store.max_seq(conv)?.0;
        let last = if max_seq > 0 { store.message(conv, Seq(max_seq))?.map(Bytes::from) } else { None };
        let update_seq = store.update_seq(conv)?;
        Ok(GroupEntry { id, info, members: Arc::new(members), max_seq, last, recipients: None, update_seq })
    }

    /// The member list for changing (copied if an undo snapshot shares it).
    pub(crate) fn members_mut(&mut self) -> &mut BTreeMap<UserId, GroupMemberRecord> {
        self.recipients = None;
        Arc::make_mut(&mut self.members)
    }

    /// Users whose devices get a group message pushed (cached until the next group op).
    pub(crate) fn recipients(&mut self) -> Arc<[UserId]> {
        let members = &self.members;
        let list = self.recipients.get_or_insert_with(|| {
            members
                .iter()
                .filter(|(_, m)| m.notify != pb::GroupNotify::Block as i32)
                .map(|(u, _)| u.clone())
                .collect()
        });
        Arc::clone(list)
    }

    /// Appends a message to the group log: seq, version record, cache.
    /// Returns the stored message and its push frame, built around the
    /// stored encoding (`frames::push_message`: encoded once).
    pub(crate) fn append(
        &mut self,
        ids: &mut MsgIdGen,
        clock: &VersionClock,
        t: &mut Turn<Undo>,
        conv: &ConvId,
        mut msg: pb::Message,
    ) -> (pb::Message, Bytes) {
        let now = t.now_ms;
        msg.seq = self.max_seq + 1;
        msg.server_msg_id = ids.next(now);
        // An imported message keeps its original time (messages::send, admin import).
        if msg.server_time_ms == 0 {
            msg.server_time_ms = now;
        }
        msg.conv_id = conv.as_str().to_owned();
        let encoded = Bytes::from(msg.encode_to_vec());
        t.batch.put_message(conv, Seq(msg.seq), &encoded);
        let v = clock.alloc(&mut t.versions);
        t.batch.put_group_version(&self.id, v);
        self.max_seq = msg.seq;
        let frame = crate::frames::push_message(&encoded);
        self.last = Some(encoded);
        (msg, frame)
    }
}

/// The cache; see the module docs.
#[derive(Debug)]
pub(crate) struct GroupCache {
    entries: HashMap<ConvId, GroupEntry>,
    uconv: HashMap<ConvId, HashMap<UserId, UserConvRecord>>,
    cap: usize,
    /// Groups changed this turn (dropped if the turn's write fails; never evicted meanwhile).
    touched: Vec<ConvId>,
}

impl GroupCache {
    pub(crate) fn new(cap: usize) -> Self {
        Self { entries: HashMap::new(), uconv: HashMap::new(), cap, touched: Vec::new() }
    }

    /// Takes `conv`'s entry out for an op (loaded on first use); records its
    /// undo. Put it back with [`Self::put`].
    pub(crate) fn take(
        &mut self,
        store: &Store,
        conv: &ConvId,
        max_members: u32,
        t: &mut Turn<Undo>,
    ) -> Result<GroupEntry, Reject> {
        let e = match self.entries.remove(conv) {
            Some(e) => e,
            None => GroupEntry::load(store, conv, max_members)?,
        };
        t.undo(Undo::Group(conv.clone(), Some(e.clone())));
        self.touched.push(conv.clone());
        Ok(e)
    }

    /// Takes `conv`'s entry out for a read after the write (no undo).
    pub(crate) fn take_for_read(
        &mut self,
        store: &Store,
        conv: &ConvId,
        max_members: u32,
    ) -> Result<GroupEntry, Reject> {
        match self.entries.remove(conv) {
            Some(e) => Ok(e),
            None => GroupEntry::load(store, conv, max_members),
        }
    }

    /// Puts an entry back, evicting untouched entries when full.
    pub(crate) fn put(&mut self, conv: ConvId, e: GroupEntry) {
        if self.entries.len() >= self.cap {
            let drop_n = self.entries.len() - self.cap * 9 / 10 + 1;
            let touched = &self.touched;
            let victims: Vec<ConvId> =
                self.entries.keys().filter(|c| !touched.contains(c)).take(drop_n).cloned().collect();
            for v in victims {
                self.entries.remove(&v);
                self.uconv.remove(&v);
            }
        }
        self.entries.insert(conv, e);
    }

    /// `user`'s `uconv` record of group conversation `conv` (cached).
    pub(crate) fn uconv_of(
        &mut self,
        store: &Store,
        conv: &ConvId,
        user: &UserId,
    ) -> Result<UserConvRecord, Reject> {
        if let Some(r) = self.uconv.get(conv).and_then(|m| m.get(user)) {
            return Ok(r.clone());
        }
        let r = store.user_conv(user, conv)?.unwrap_or_default();
        self.uconv.entry(conv.clone()).or_default().insert(user.clone(), r.clone());
        Ok(r)
    }

    /// The read seqs of `users` in group conversation `conv`, in order: cached
    /// records from the cache, the others with ONE batched multi-get (then
    /// cached), not a lookup per member (group receipts, [GR-23]).
    pub(crate) fn read_seqs_of(
        &mut self,
        store: &Store,
        conv: &ConvId,
        users: &[UserId],
    ) -> Result<Vec<u64>, Reject> {
        let map = self.uconv.entry(conv.clone()).or_default();
        let mut missing: Vec<UserId> = users.iter().filter(|u| !map.contains_key(*u)).cloned().collect();
        if !missing.is_empty() {
            missing.sort();
            let recs = store.user_conv_many(&missing, conv)?;
            for (u, r) in missing.into_iter().zip(recs) {
                map.insert(u, r.unwrap_or_default());
            }
        }
        Ok(users.iter().map(|u| map.get(u).map_or(0, |r| r.read_seq)).collect())
    }

    /// Stages `user`'s record; `bump` moves its feed entry (their sync sees it).
    pub(crate) fn write_uconv(
        &mut self,
        clock: &VersionClock,
        t: &mut Turn<Undo>,
        conv: &ConvId,
        user: &UserId,
        mut rec: UserConvRecord,
        bump: bool,
    ) {
        let old = rec.feed_version;
        if bump {
            rec.feed_version = clock.alloc(&mut t.versions);
        }
        t.batch.put_user_conv(user, conv, old, &rec);
        let map = self.uconv.entry(conv.clone()).or_default();
        let before = map.insert(user.clone(), rec);
        t.undo(Undo::GroupUconv(conv.clone(), user.clone(), before));
        self.touched.push(conv.clone());
    }

    /// Undo: puts back an entry's previous value.
    pub(crate) fn restore(&mut self, conv: ConvId, before: Option<GroupEntry>) {
        match before {
            Some(e) => {
                self.entries.insert(conv, e);
            }
            None => {
                self.entries.remove(&conv);
            }
        }
    }

    /// Undo: puts back a member's previous `uconv` record.
    pub(crate) fn restore_uconv(&mut self, conv: ConvId, user: UserId, before: Option<UserConvRecord>) {
        let map = self.uconv.entry(conv).or_default();
        match before {
            Some(r) => {
                map.insert(user, r);
            }
            None => {
                map.remove(&user);
            }
        }
    }

    pub(crate) fn drop_touched(&mut self) {
        for c in self.touched.drain(..) {
            self.entries.remove(&c);
            self.uconv.remove(&c);
        }
    }

    pub(crate) fn end_turn(&mut self) {
        self.touched.clear();
    }
}
