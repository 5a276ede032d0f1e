//! Group messages and a member's own state in the group conversation:
//! SendMessage (group), MarkRead / UpdateConversation / ClearHistory on a
//! group, the readable window of pull and history, and GetGroupReceipt.
//!
//! Invariants: a send is checked (membership, member mute, mute-all) against
//! the cached entry at the moment of the write; the message is stored once
//! and only the sender's and mentioned members' `uconv` records are written.

use std::sync::Arc;

use missive_protocol::pb::{self, push, response};
use missive_protocol::{ConvId, ErrorCode, Seq, UserId};
use missive_storage::UserConvRecord;
use prost::Message as _;

use crate::error::Reject;
use crate::frames;
use crate::node::directory::ConnRef;
use crate::services::{Services, Undo, checks};
use crate::shard::{Effect, ShardOp, Turn, failpoint};

use super::entry::GroupEntry;
use super::{MAX_MENTIONS, cached_state, corrupt, is_manager, not_member, with_entry};

/// SendMessage to a group conversation: stages the message, returns its ack.
pub(crate) fn send(
    s: &mut Services,
    origin: ConnRef,
    sender: &UserId,
    conv: &ConvId,
    msg: pb::Message,
    t: &mut Turn<Undo>,
) -> Result<pb::SendAck, Reject> {
    with_entry(s, conv, t, |s, e, t| send_inner(s, origin, sender, conv, msg, e, t))
}

fn send_inner(
    s: &mut Services,
    origin: ConnRef,
    sender: &UserId,
    conv: &ConvId,
    msg: pb::Message,
    e: &mut GroupEntry,
    t: &mut Turn<Undo>,
) -> Result<pb::SendAck, Reject> {
    may_send(e, sender, t.now_ms)?;
    let node = Arc::clone(&s.node);
    let mentions = msg.content.as_ref().and_then(|c| c.mentions.clone()).unwrap_or_default();
    let (msg, frame) = e.append(&mut s.ids, &node.clock, t, conv, msg);
    failpoint::check("groups.send.after_append")?;
    let seq = msg.seq;
    // The sender has read up to its own message.
    let mut rec = s.groups.uconv_of(&node.store, conv, sender)?;
    rec.read_seq = rec.read_seq.max(seq);
    s.groups.write_uconv(&node.clock, t, conv, sender, rec, false);
    if mentions.all
        && let Some(i) = e.info.as_mut()
    {
        i.all_mention_seq = seq;
        t.batch.put_group(&e.id, i);
    }
    let mut named: Vec<UserId> =
        mentions.user_ids.iter().take(MAX_MENTIONS).filter_map(|u| UserId::new(u.as_str()).ok()).collect();
    named.sort();
    named.dedup();
    for u in named {
        if u == *sender || !e.members.contains_key(&u) {
            continue;
        }
        let mut rec = s.groups.uconv_of(&node.store, conv, &u)?;
        rec.mention_seq = seq;
        s.groups.write_uconv(&node.clock, t, conv, &u, rec, true);
    }
    t.effect(Effect::Fanout { users: e.recipients(), exclude: Some(origin), frame });
    Ok(pb::SendAck {
        conv_id: conv.as_str().to_owned(),
        seq,
        server_msg_id: msg.server_msg_id,
        server_time_ms: msg.server_time_ms,
        duplicate: false,
    })
}

/// Whether `sender` may send to the group now: a member, not muted, and
/// the group not muted for them ([GR-16]).
fn may_send(e: &GroupEntry, sender: &UserId, now: u64) -> Result<(), Reject> {
    let Some(me) = e.members.get(sender) else {
        return Err(Reject::new(ErrorCode::NotParticipant, "you are not a member of this group"));
    };
    if me.mute_until_ms > now {
        return Err(Reject::new(
            ErrorCode::MemberMuted,
            format!("you are muted in this group until {} (unix ms)", me.mute_until_ms),
        ));
    }
    if e.info.as_ref().is_some_and(|i| i.mute_all) && !is_manager(me) {
        return Err(Reject::new(
            ErrorCode::GroupMuted,
            "the group is muted: only the owner and admins may send",
        ));
    }
    Ok(())
}

/// An `online_only` group send (spec [MF-1]): the checks of a send, then a
/// push to the online members; nothing is stored and the seq stays.
pub(crate) fn send_online(
    s: &mut Services,
    origin: ConnRef,
    sender: &UserId,
    conv: &ConvId,
    msg: pb::Message,
    t: &mut Turn<Undo>,
) -> Result<(), Reject> {
    with_entry(s, conv, t, |_s, e, t| {
        may_send(e, sender, t.now_ms)?;
        t.effect(Effect::Fanout {
            users: e.recipients(),
            exclude: Some(origin),
            frame: frames::push(push::Event::Message(msg)),
        });
        Ok(())
    })
}

/// MarkRead (`receipt`), UpdateConversation or ClearHistory on a group conversation.
pub(crate) fn member_change<O>(
    s: &mut Services,
    op: &ShardOp<O>,
    conv: &ConvId,
    t: &mut Turn<Undo>,
    change: impl FnOnce(&mut UserConvRecord, u64),
    receipt: bool,
) -> Result<response::Result, Reject> {
    with_entry(s, conv, t, |s, e, t| member_change_inner(s, op, conv, t, change, receipt, e))
}

fn member_change_inner<O>(
    s: &mut Services,
    op: &ShardOp<O>,
    conv: &ConvId,
    t: &mut Turn<Undo>,
    change: impl FnOnce(&mut UserConvRecord, u64),
    receipt: bool,
    e: &mut GroupEntry,
) -> Result<response::Result, Reject> {
    let node = Arc::clone(&s.node);
    // Current or former member (cached_state refuses anyone else).
    let before_state = cached_state(s, e, &op.user, conv)?;
    let before = s.groups.uconv_of(&node.store, conv, &op.user)?;
    let mut rec = before.clone();
    change(&mut rec, before_state.max_seq);
    if rec.hidden && !before.hidden {
        rec.hidden_seq = e.max_seq;
    }
    let changed = rec != before;
    if changed {
        s.groups.write_uconv(&node.clock, t, conv, &op.user, rec.clone(), true);
    }
    let state = cached_state(s, e, &op.user, conv)?;
    if changed {
        t.effect(Effect::Fanout {
            users: vec![op.user.clone()].into(),
            exclude: Some(op.origin.conn()),
            frame: frames::push(push::Event::Conversation(state.clone())),
        });
        if receipt && rec.read_seq > before.read_seq {
            let small =
                e.info.as_ref().is_some_and(|i| i.member_count <= node.config.groups.receipt_max_members);
            let users = if small { e.members.keys().cloned().collect() } else { vec![op.user.clone()] };
            let r = pb::ReadReceipt {
                conv_id: conv.to_string(),
                reader: op.user.to_string(),
                read_seq: rec.read_seq,
                reader_device: op.device.to_string(),
            };
            t.effect(Effect::Fanout {
                users: users.into(),
                exclude: Some(op.origin.conn()),
                frame: frames::push(push::Event::ReadReceipt(r)),
            });
        }
    }
    Ok(response::Result::Conversation(state))
}

/// Pull or history on a group conversation: the caller's readable window
/// (lowest readable seq, highest visible seq).
pub(crate) fn window_of(s: &mut Services, user: &UserId, conv: &ConvId) -> Result<(u64, u64), Reject> {
    let node = Arc::clone(&s.node);
    let e = s.groups.take_for_read(&node.store, conv, node.config.groups.max_members)?;
    let r = cached_state(s, &e, user, conv);
    s.groups.put(conv.clone(), e);
    let st = r?;
    Ok((st.min_readable_seq, st.max_seq))
}

/// GetGroupReceipt (after the turn's write).
pub(super) fn receipt(
    s: &mut Services,
    user: &UserId,
    conv: &ConvId,
    seq: u64,
) -> Result<response::Result, Reject> {
    let node = Arc::clone(&s.node);
    let e = s.groups.take_for_read(&node.store, conv, node.config.groups.max_members)?;
    let r = receipt_inner(s, user, conv, seq, &e);
    s.groups.put(conv.clone(), e);
    r
}

fn receipt_inner(
    s: &mut Services,
    user: &UserId,
    conv: &ConvId,
    seq: u64,
    e: &GroupEntry,
) -> Result<response::Result, Reject> {
    let node = Arc::clone(&s.node);
    let Some(info) = e.info.clone().filter(|i| !i.dismissed) else {
        return Err(Reject::new(ErrorCode::GroupNotFound, "no such group"));
    };
    if !e.members.contains_key(user) {
        return Err(not_member(user));
    }
    let limit = node.config.groups.receipt_max_members;
    if info.member_count > limit {
        return Err(Reject::new(
            ErrorCode::ReceiptGroupTooLarge,
            format!("group receipts are kept for groups of at most {limit} members"),
        ));
    }
    if seq == 0 || seq > e.max_seq {
        return Err(checks::invalid(format!("seq: must be within 1..={}", e.max_seq)));
    }
    let sender = match node.store.message(conv, Seq(seq))? {
        Some(b) => pb::Message::decode(b.as_slice()).map_err(corrupt)?.sender,
        None => String::new(),
    };
    let full = info.history_visibility == pb::HistoryVisibility::Full as i32;
    let candidates: Vec<UserId> = e
        .members
        .iter()
        .filter(|(u, m)| u.as_str() != sender && (full || m.join_seq <= seq))
        .map(|(u, _)| u.clone())
        .collect();
    let (mut read, mut unread) = (Vec::new(), Vec::new());
    let read_seqs = s.groups.read_seqs_of(&node.store, conv, &candidates)?;
    for (u, read_seq) in candidates.iter().zip(read_seqs) {
        if read_seq >= seq { read.push(u.to_string()) } else { unread.push(u.to_string()) }
    }
    Ok(response::Result::GroupReceipt(pb::GroupReceipt {
        group_id: e.id.to_string(),
        seq,
        read_count: read.len() as u32,
        unread_count: unread.len() as u32,
        read,
        unread,
    }))
}
