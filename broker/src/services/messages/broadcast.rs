//! The broadcast conversation `b:all` (spec [AM-2]): system messages every
//! user reads, stored ONCE (read diffusion).
//!
//! Role: its owner shard (`OwnerKey::Conv("b:all")`) appends a message posted
//! by the admin API (`POST /v1/messages/broadcast`, a `MessagesOp::Send` no
//! client can route: `check::send` refuses `b:` ids) and moves one version
//! record (`meta/"bcast"/b:all`); sync adds the conversation when that
//! version is in (token, watermark], O(1) per sync. Every user may pull and
//! read its history; a user's state (read, cleared, flags) is a `uconv`
//! record written only when that user acts ([`member_change`]).
//!
//! Invariants: nothing is written per user for a broadcast; seqs come from
//! the log's last key, so one broadcast per turn ([`claim`]) keeps them
//! dense; the push goes to every online session (`Effect::FanoutAll`).

use bytes::Bytes;
use missive_protocol::pb::{self, response};
use missive_protocol::{ClientMsgId, ConvId, ConvKind, Seq, UserId};
use missive_storage::{Store, UserConvRecord};
use prost::Message as _;

use crate::error::Reject;
use crate::frames;
use crate::node::clock::roam_floor_ms;
use crate::services::conversations::state::{reply_with_state, state_from_parts};
use crate::services::{Services, Undo};
use crate::shard::{Effect, ShardOp, Turn};

use super::send::Sender;

/// Claims a broadcast conversation for this turn (`true` for any other
/// kind): its max seq is read from the log, so a second append waits for
/// the next turn, when the first is committed.
pub(crate) fn claim<U>(conv: &ConvId, t: &mut Turn<U>) -> bool {
    conv.kind() != ConvKind::Broadcast || t.claim(format!("b\0{conv}"))
}

/// Appends one broadcast message: the log row and the version record.
pub(super) fn append(
    s: &mut Services,
    who: &Sender<'_>,
    conv: &ConvId,
    client_msg_id: &ClientMsgId,
    content: &pb::Content,
    t: &mut Turn<Undo>,
) -> Result<pb::SendAck, Reject> {
    let now = t.now_ms;
    let time = who.time_ms.unwrap_or(now);
    let seq = s.node.store.max_seq(conv)?.0 + 1;
    let server_msg_id = s.ids.next(now);
    let msg = pb::Message {
        conv_id: conv.to_string(),
        seq,
        server_msg_id,
        client_msg_id: client_msg_id.as_str().to_owned(),
        sender: who.user.to_string(),
        sender_device: who.device.to_string(),
        server_time_ms: time,
        content: Some(content.clone()),
        ..Default::default()
    };
    let encoded = Bytes::from(msg.encode_to_vec());
    t.batch.put_message(conv, Seq(seq), &encoded);
    let v = s.node.clock.alloc(&mut t.versions);
    t.batch.put_broadcast_version(conv, v);
    t.effect(Effect::FanoutAll { frame: frames::push_message(&encoded) });
    Ok(pb::SendAck { conv_id: conv.to_string(), seq, server_msg_id, server_time_ms: time, duplicate: false })
}

/// (max seq, min readable seq) of `user` in a broadcast conversation.
pub(crate) fn window(store: &Store, user: &UserId, conv: &ConvId) -> Result<(u64, u64), Reject> {
    let max_seq = store.max_seq(conv)?.0;
    let rec = store.user_conv(user, conv)?.unwrap_or_default();
    Ok((max_seq, rec.cleared_seq + 1))
}

/// `user`'s state in a broadcast conversation, from committed storage.
pub(crate) fn stored_state(
    store: &Store,
    user: &UserId,
    conv: &ConvId,
    floor_ms: u64,
) -> Result<pb::ConversationState, Reject> {
    let rec = store.user_conv(user, conv)?.unwrap_or_default();
    let max_seq = store.max_seq(conv)?.0;
    state_with(store, conv, &rec, max_seq, floor_ms)
}

fn state_with(
    store: &Store,
    conv: &ConvId,
    rec: &UserConvRecord,
    max_seq: u64,
    floor_ms: u64,
) -> Result<pb::ConversationState, Reject> {
    let last = if max_seq > rec.cleared_seq {
        store
            .message(conv, Seq(max_seq))?
            .and_then(|b| pb::Message::decode(b.as_slice()).ok())
            .filter(|m| m.server_time_ms >= floor_ms)
    } else {
        None
    };
    Ok(state_from_parts(conv, max_seq, rec, 0, last))
}

/// Claims (`user`, broadcast `conv`) for this turn (`true` for any other
/// kind), so [`member_change`] reads the committed `uconv` record.
pub(crate) fn claim_member<U>(conv: &ConvId, user: &UserId, t: &mut Turn<U>) -> bool {
    conv.kind() != ConvKind::Broadcast || t.claim(format!("b\0{conv}\0{user}"))
}

/// MarkRead, UpdateConversation or ClearHistory on a broadcast conversation
/// (claimed first, [`claim_member`]): applies `change` to the caller's
/// `uconv` record and replies with the new state (no receipt: nobody else
/// reads this user's position).
pub(crate) fn member_change<O>(
    s: &mut Services,
    op: &ShardOp<O>,
    conv: &ConvId,
    t: &mut Turn<Undo>,
    change: impl FnOnce(&mut UserConvRecord, u64),
) -> Result<response::Result, Reject> {
    let store = &s.node.store;
    let floor = roam_floor_ms(t.now_ms, s.node.config.history.roam_days);
    let before = store.user_conv(&op.user, conv)?.unwrap_or_default();
    let max_seq = store.max_seq(conv)?.0;
    let mut rec = before.clone();
    change(&mut rec, max_seq);
    let changed = rec != before;
    if changed {
        rec.feed_version = s.node.clock.alloc(&mut t.versions);
        t.batch.put_user_conv(&op.user, conv, before.feed_version, &rec);
    }
    let state = state_with(store, conv, &rec, max_seq, floor)?;
    Ok(reply_with_state(op, state, changed, t))
}
