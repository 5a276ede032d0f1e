//! The shared core of the message lifecycle (spec section 18): naming a
//! stored message on its owner shard, the per-conversation update log
//! ([UP-1]), rewriting a message, the `MessageUpdate` push, and the overlay
//! that gives every read the current form of its messages ([UP-3]).
//!
//! Role: recall, edit, delete, reactions and extensions all stage through
//! [`with_message`] (checks: participant or member, readable window, the
//! message exists) and [`record`] (a new update seq, its index entry, the
//! conversation's version moved so offline devices find it by sync).
//!
//! Invariants:
//! - A message has at most one index entry for everyone: [`record`] deletes
//!   the previous one (the larger of the log row's and the extras'
//!   `update_seq`); per-user deletions ([UP-5]) have entries of their own.
//! - The turn's staged rewrites, extras and reaction keys are read back by
//!   later ops of the same turn ([`Staging`]), each change recorded with an
//!   undo, so two changes of one message in one turn compose and a refused
//!   op leaves nothing behind.
//! - Update seqs live in the cached entries (`ConvEntry` / `GroupEntry`,
//!   undone with them) and are recovered from the index at load.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use missive_protocol::pb::{self, push};
use missive_protocol::{ConvId, ConvKind, ErrorCode, Seq, UserId};
use missive_storage::{ExtrasRecord, Store, UpdateRecord, UserReactionsRecord};
use prost::Message as _;

use crate::error::Reject;
use crate::frames;
use crate::node::directory::ConnRef;
use crate::services::groups::entry::GroupEntry;
use crate::services::{Services, Undo, groups};
use crate::shard::{Effect, Turn};

/// This turn's staged lifecycle state, read back by later ops of the turn.
#[derive(Debug, Default)]
pub(crate) struct Staging {
    msgs: HashMap<(ConvId, u64), pb::Message>,
    extras: HashMap<(ConvId, u64), ExtrasRecord>,
    user_keys: HashMap<(ConvId, u64, UserId), UserReactionsRecord>,
}

/// The previous value of one [`Staging`] entry (`None`: absent).
// A message snapshot per change, as the other undo records; boxing would add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum LifeUndo {
    Msg((ConvId, u64), Option<pb::Message>),
    Extras((ConvId, u64), Option<ExtrasRecord>),
    UserKeys((ConvId, u64, UserId), Option<UserReactionsRecord>),
}

impl Staging {
    pub(crate) fn undo(&mut self, u: LifeUndo) {
        fn put<K: std::hash::Hash + Eq, V>(m: &mut HashMap<K, V>, k: K, v: Option<V>) {
            match v {
                Some(v) => {
                    m.insert(k, v);
                }
                None => {
                    m.remove(&k);
                }
            }
        }
        match u {
            LifeUndo::Msg(k, v) => put(&mut self.msgs, k, v),
            LifeUndo::Extras(k, v) => put(&mut self.extras, k, v),
            LifeUndo::UserKeys(k, v) => put(&mut self.user_keys, k, v),
        }
    }

    pub(crate) fn clear(&mut self) {
        self.msgs.clear();
        self.extras.clear();
        self.user_keys.clear();
    }
}

/// A stored message named by a lifecycle request, checked on its owner.
#[derive(Debug)]
pub(crate) struct Named<'e> {
    pub(crate) conv: ConvId,
    pub(crate) seq: u64,
    /// The message's log row as staged so far (current form, no extras).
    pub(crate) msg: pb::Message,
    /// The caller (the admin API's acting user for `admin`).
    pub(crate) user: UserId,
    /// The admin API: any message, no membership.
    pub(crate) admin: bool,
    /// The caller is a current participant / member (may write).
    pub(crate) current: bool,
    /// The caller is the group's owner or an admin.
    pub(crate) manager: bool,
    group: Option<&'e mut GroupEntry>,
}

impl Named<'_> {
    /// The caller sent the message.
    pub(crate) fn is_sender(&self) -> bool {
        self.msg.sender == self.user.as_str()
    }

    /// The message was recalled or deleted for everyone (spec 4202).
    pub(crate) fn gone(&self) -> bool {
        self.msg.recalled.is_some() || self.msg.deleted
    }

    /// Refuses writes by a former member (they may only read).
    pub(crate) fn require_current(&self) -> Result<(), Reject> {
        if self.current || self.admin {
            Ok(())
        } else {
            Err(Reject::new(ErrorCode::NotParticipant, "you are no longer a member of this conversation"))
        }
    }

    /// The group's entry (`None` in a 1:1 conversation).
    pub(crate) fn group(&mut self) -> Option<&mut GroupEntry> {
        self.group.as_deref_mut()
    }
}

pub(crate) fn not_found(seq: u64) -> Reject {
    Reject::new(ErrorCode::MessageNotFound, format!("no message at seq {seq} that you may see"))
}

fn corrupt(e: prost::DecodeError) -> Reject {
    Reject::new(ErrorCode::Internal, format!("stored message undecodable: {e}"))
}

/// The current log row of (`conv`, `seq`): this turn's rewrite, else storage.
pub(crate) fn load_message(s: &Services, conv: &ConvId, seq: u64) -> Result<Option<pb::Message>, Reject> {
    if let Some(m) = s.life.msgs.get(&(conv.clone(), seq)) {
        return Ok(Some(m.clone()));
    }
    match s.node.store.message(conv, Seq(seq))? {
        Some(b) => Ok(Some(pb::Message::decode(b.as_slice()).map_err(corrupt)?)),
        None => Ok(None),
    }
}

/// Runs `f` on message `seq` of `conv` named by `user` (on the owner shard,
/// inside the op's save point). Checks: the caller participates (current or
/// former group member; `admin`: anyone), `seq` is within their readable
/// window ([P-1], [GR-18], [GR-20]), the message is stored, and it is not
/// deleted for the caller. Refused: 3002, 4200, 3006.
pub(crate) fn with_message<R>(
    s: &mut Services,
    user: &UserId,
    admin: bool,
    conv: &ConvId,
    seq: u64,
    t: &mut Turn<Undo>,
    f: impl FnOnce(&mut Services, &mut Named<'_>, &mut Turn<Undo>) -> Result<R, Reject>,
) -> Result<R, Reject> {
    let store = s.node.store.clone();
    match conv.kind() {
        ConvKind::Direct => {
            let entry = s.convs.get(&store, conv)?;
            let (min, top, current) = if admin {
                (1, entry.max_seq, true)
            } else {
                let me = entry.participant(user)?;
                (entry.members[me].rec.cleared_seq + 1, entry.max_seq, true)
            };
            let mut named = name(s, &store, user, admin, conv, seq, (min, top), current, false, None)?;
            f(s, &mut named, t)
        }
        ConvKind::Group => groups::with_entry(s, conv, t, |s, e, t| {
            if e.info.as_ref().is_none_or(|i| i.dismissed) {
                return Err(Reject::new(ErrorCode::GroupNotFound, format!("no group {}", e.id)));
            }
            let (min, top, current, manager) = if admin {
                (1, e.max_seq, true, true)
            } else {
                let (current, manager, min, top) = groups::member_window(s, e, user, conv)?;
                (min, top, current, manager)
            };
            let mut named = name(s, &store, user, admin, conv, seq, (min, top), current, manager, Some(e))?;
            f(s, &mut named, t)
        }),
        _ => Err(Reject::new(
            ErrorCode::UnsupportedConversation,
            "messages of this conversation kind cannot be changed",
        )),
    }
}

#[allow(clippy::too_many_arguments)]
fn name<'e>(
    s: &Services,
    store: &Store,
    user: &UserId,
    admin: bool,
    conv: &ConvId,
    seq: u64,
    (min, top): (u64, u64),
    current: bool,
    manager: bool,
    group: Option<&'e mut GroupEntry>,
) -> Result<Named<'e>, Reject> {
    if seq == 0 || seq < min || seq > top {
        return Err(not_found(seq));
    }
    let msg = load_message(s, conv, seq)?.ok_or_else(|| not_found(seq))?;
    if !admin && store.is_deleted_for(conv, user, seq)? {
        return Err(not_found(seq));
    }
    Ok(Named { conv: conv.clone(), seq, msg, user: user.clone(), admin, current, manager, group })
}

/// The message's extras as staged so far (default when it has none).
pub(crate) fn extras_of(s: &Services, conv: &ConvId, seq: u64) -> Result<ExtrasRecord, Reject> {
    if let Some(x) = s.life.extras.get(&(conv.clone(), seq)) {
        return Ok(x.clone());
    }
    Ok(s.node.store.extras(conv, seq)?.unwrap_or_default())
}

/// Stages a message's extras (readable by later ops of the turn).
pub(crate) fn put_extras(s: &mut Services, conv: &ConvId, seq: u64, x: ExtrasRecord, t: &mut Turn<Undo>) {
    t.batch.put_extras(conv, seq, &x);
    let k = (conv.clone(), seq);
    let before = s.life.extras.insert(k.clone(), x);
    t.undo(Undo::Life(LifeUndo::Extras(k, before)));
}

/// `user`'s reaction keys on the message, as staged so far.
pub(crate) fn user_keys_of(
    s: &Services,
    conv: &ConvId,
    seq: u64,
    user: &UserId,
) -> Result<UserReactionsRecord, Reject> {
    if let Some(r) = s.life.user_keys.get(&(conv.clone(), seq, user.clone())) {
        return Ok(r.clone());
    }
    Ok(s.node.store.user_reactions(conv, seq, user)?)
}

/// Stages `user`'s reaction keys on the message.
pub(crate) fn put_user_keys(
    s: &mut Services,
    conv: &ConvId,
    seq: u64,
    user: &UserId,
    r: UserReactionsRecord,
    t: &mut Turn<Undo>,
) {
    t.batch.put_user_reactions(conv, seq, user, &r);
    let k = (conv.clone(), seq, user.clone());
    let before = s.life.user_keys.insert(k.clone(), r);
    t.undo(Undo::Life(LifeUndo::UserKeys(k, before)));
}

/// Rewrites the message's log row (recall, edit, delete for everyone) and
/// the entry's last message when it is the latest.
pub(crate) fn store_message(
    s: &mut Services,
    n: &mut Named<'_>,
    msg: pb::Message,
    t: &mut Turn<Undo>,
) -> Result<(), Reject> {
    let encoded = Bytes::from(msg.encode_to_vec());
    t.batch.replace_message(&n.conv, Seq(n.seq), &encoded);
    let seq = n.seq;
    match n.group() {
        Some(e) => {
            if e.max_seq == seq {
                e.last = Some(encoded);
            }
        }
        None => {
            let store = s.node.store.clone();
            let entry = s.convs.get_mut(&store, &n.conv, t)?;
            if entry.max_seq == n.seq {
                entry.last = Some(encoded);
            }
        }
    }
    let k = (n.conv.clone(), n.seq);
    let before = s.life.msgs.insert(k.clone(), msg.clone());
    t.undo(Undo::Life(LifeUndo::Msg(k, before)));
    n.msg = msg;
    Ok(())
}

/// Records one change of the named message ([UP-1]): the conversation's next
/// update seq, its index entry (replacing the message's previous one), and
/// the conversation's version moved (both 1:1 participants' feed entries, or
/// the group's version). `only` = a change visible to that user alone
/// ([UP-5]): only their feed entry moves and the index entry names them.
/// The caller stamps the returned seq on what it writes.
pub(crate) fn record(
    s: &mut Services,
    n: &mut Named<'_>,
    only: Option<&UserId>,
    t: &mut Turn<Undo>,
) -> Result<u64, Reject> {
    let node = Arc::clone(&s.node);
    let prev =
        if only.is_none() { n.msg.update_seq.max(extras_of(s, &n.conv, n.seq)?.update_seq) } else { 0 };
    let conv = n.conv.clone();
    let useq = match n.group() {
        Some(e) => {
            e.update_seq += 1;
            let useq = e.update_seq;
            match only {
                None => {
                    let v = node.clock.alloc(&mut t.versions);
                    t.batch.put_group_version(&e.id, v);
                }
                Some(u) => {
                    let rec = s.groups.uconv_of(&node.store, &conv, u)?;
                    s.groups.write_uconv(&node.clock, t, &conv, u, rec, true);
                }
            }
            useq
        }
        None => {
            let entry = s.convs.get_mut(&node.store, &conv, t)?;
            entry.update_seq += 1;
            for i in 0..entry.members.len() {
                if only.is_none_or(|u| *u == entry.members[i].user) {
                    entry.touch(i);
                }
            }
            entry.update_seq
        }
    };
    if prev > 0 {
        t.batch.delete_update(&conv, prev);
    }
    let user = only.map(|u| u.to_string()).unwrap_or_default();
    t.batch.put_update(&conv, useq, &UpdateRecord { seq: n.seq, user });
    Ok(useq)
}

/// A `MessageUpdate` of `kind` made by the named message's caller at
/// `at_ms`; `fields` holds what the kind changed (the message's `conv_id`,
/// `seq` and `update_seq` are set here).
pub(crate) fn update_of(
    n: &Named<'_>,
    kind: pb::message_update::Kind,
    at_ms: u64,
    update_seq: u64,
    fields: pb::Message,
) -> pb::MessageUpdate {
    pb::MessageUpdate {
        kind: kind as i32,
        conv_id: n.conv.to_string(),
        seq: n.seq,
        by: n.user.to_string(),
        at_ms,
        message: Some(pb::Message { conv_id: n.conv.to_string(), seq: n.seq, update_seq, ..fields }),
        update_seq,
    }
}

/// Pushes `Push{message_update}` ([UP-4]) to every online device of the
/// conversation's readers (a group: members not `BLOCK`ing it) except
/// `exclude`; `only`: to that user's devices alone.
pub(crate) fn push_update(
    s: &mut Services,
    n: &mut Named<'_>,
    update: pb::MessageUpdate,
    exclude: Option<ConnRef>,
    only: Option<&UserId>,
    t: &mut Turn<Undo>,
) -> Result<(), Reject> {
    let users: Arc<[UserId]> = match (only, n.group()) {
        (Some(u), _) => Arc::from(vec![u.clone()]),
        (None, Some(e)) => e.recipients(),
        (None, None) => {
            let store = s.node.store.clone();
            let entry = s.convs.get(&store, &n.conv)?;
            entry.members.iter().map(|m| m.user.clone()).collect()
        }
    };
    t.effect(Effect::Fanout { users, exclude, frame: frames::push(push::Event::MessageUpdate(update)) });
    Ok(())
}

/// The reaction summaries as `user` sees them (`me` set from their keys).
pub(crate) fn with_me(
    reactions: &[pb::ReactionSummary],
    mine: &UserReactionsRecord,
) -> Vec<pb::ReactionSummary> {
    reactions.iter().map(|r| pb::ReactionSummary { me: mine.keys.contains(&r.key), ..r.clone() }).collect()
}

/// Gives messages read from the log their current form for `user` ([UP-3]):
/// reactions (with `me`) and extensions from the extras, the latest update
/// seq, and tombstones for messages deleted for `user`. `msgs` ascending.
pub(crate) fn overlay(
    store: &Store,
    user: &UserId,
    conv: &ConvId,
    msgs: &mut [pb::Message],
) -> Result<(), Reject> {
    let (Some(first), Some(last)) = (msgs.first().map(|m| m.seq), msgs.last().map(|m| m.seq)) else {
        return Ok(());
    };
    let (from, to) = (first.min(last), first.max(last));
    let extras: HashMap<u64, ExtrasRecord> = store.extras_range(conv, from, to)?.into_iter().collect();
    let deleted = store.deleted_for(conv, user, from, to)?;
    for m in msgs.iter_mut() {
        if let Some(x) = extras.get(&m.seq) {
            m.update_seq = m.update_seq.max(x.update_seq);
            if !x.reactions.is_empty() {
                let mine = store.user_reactions(conv, m.seq, user)?;
                m.reactions = with_me(&x.reactions, &mine);
            }
            m.extensions = x.extensions.clone();
        }
        if deleted.binary_search(&m.seq).is_ok() {
            tombstone(m);
        }
    }
    Ok(())
}

/// Turns a message into its tombstone ([UP-3]): no content, nothing attached.
pub(crate) fn tombstone(m: &mut pb::Message) {
    m.deleted = true;
    m.content = None;
    m.reactions.clear();
    m.extensions.clear();
}
