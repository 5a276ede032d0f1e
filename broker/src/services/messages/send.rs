//! Staging a SendMessage: dedup, then a 1:1 append, a group send or (admin
//! API only) a broadcast append; and the admin import of historical messages.
//!
//! Invariant: the dedup record and the message are staged together; a send
//! refused at any point (blacklist, membership, mute, a failed read) stages
//! neither, so a retry is stored exactly once. Every stored message of this
//! service (send, import, broadcast) is staged by [`send_as`]: one place to
//! hook after-send events.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use missive_protocol::pb::{self, response};
use missive_protocol::{ClientMsgId, ConvId, ConvKind, DeviceId, ErrorCode, Seq, UserId};
use missive_storage::{DedupRecord, dedup_key};
use prost::Message as _;

use crate::error::Reject;
use crate::frames;
use crate::node::directory::ConnRef;
use crate::services::{Services, Undo, groups};
use crate::shard::{Answer, Effect, ShardOp, Turn, failpoint};

use super::{DedupKey, MessagesOp};

/// Who sends one message, and when it is stamped.
pub(super) struct Sender<'a> {
    pub(super) conn: ConnRef,
    pub(super) user: &'a UserId,
    pub(super) device: &'a DeviceId,
    /// `Some(original time)` for an imported message; `None` = the turn's time.
    pub(super) time_ms: Option<u64>,
    /// The send flags (spec 18.8), normalized (`None` = none).
    pub(super) flags: Option<pb::MessageFlags>,
    /// A `first_attempt` send: when its session began ([S-7]).
    pub(super) fresh: Option<Instant>,
}

/// A client send (`time_ms` `None`: the turn's time) or an admin import of
/// one historical message (spec [AM-1]: `Some(original time)`, sender
/// `op.user`); already stored (same sender, device, client_msg_id) → the
/// original ack with `duplicate`.
// The send's fields as the op carries them; a struct would only repack them.
#[allow(clippy::too_many_arguments)]
pub(super) fn stage(
    s: &mut Services,
    op: &ShardOp<MessagesOp>,
    conv: &ConvId,
    client_msg_id: &ClientMsgId,
    content: &pb::Content,
    time_ms: Option<u64>,
    flags: Option<pb::MessageFlags>,
    fresh: Option<Instant>,
    t: &mut Turn<Undo>,
) -> Result<Answer, Reject> {
    let flags = super::flags::normalize(flags);
    let who = Sender { conn: op.origin.conn(), user: &op.user, device: &op.device, time_ms, flags, fresh };
    let ack = send_as(s, &who, conv, client_msg_id, content, t)?;
    Ok(Answer::Response(response::Result::SendAck(ack)))
}

/// Dedup, then the append for the conversation's kind, then the dedup record.
pub(super) fn send_as(
    s: &mut Services,
    who: &Sender<'_>,
    conv: &ConvId,
    client_msg_id: &ClientMsgId,
    content: &pb::Content,
    t: &mut Turn<Undo>,
) -> Result<pb::SendAck, Reject> {
    if let Some(f) = who.flags.filter(|f| f.online_only) {
        // [MF-1]: never stored, so no dedup either.
        return super::flags::send_online(s, who, conv, client_msg_id, content, f, t);
    }
    let key: DedupKey =
        dedup_key(conv, who.user.as_str(), who.device.as_str(), client_msg_id.as_str()).into_boxed_slice();
    let hash = s.retries.hash(&key);
    // [S-7]: a first attempt no stored retry can precede skips both lookups.
    let first = who.fresh.is_some_and(|since| s.retries.covers(hash, since));
    let prior = if first {
        None
    } else {
        match s.dedup.get(&key) {
            Some(r) => Some(r.clone()),
            None => s.node.store.dedup_by_key(&key, t.now_ms)?,
        }
    };
    if let Some(r) = prior {
        return Ok(pb::SendAck {
            conv_id: conv.as_str().to_owned(),
            seq: r.seq,
            server_msg_id: r.server_msg_id,
            server_time_ms: r.server_time_ms,
            duplicate: true,
        });
    }
    let ack = match conv.kind() {
        ConvKind::Group => {
            let msg = pb::Message {
                client_msg_id: client_msg_id.as_str().to_owned(),
                sender: who.user.as_str().to_owned(),
                sender_device: who.device.as_str().to_owned(),
                server_time_ms: who.time_ms.unwrap_or(0),
                content: Some(content.clone()),
                flags: who.flags,
                ..Default::default()
            };
            groups::send(s, who.conn, who.user, conv, msg, t)?
        }
        ConvKind::Broadcast => super::broadcast::append(s, who, conv, client_msg_id, content, t)?,
        _ => stage_direct(s, who, conv, client_msg_id, content, t)?,
    };
    if who.flags.is_some_and(|f| f.no_unread) {
        super::uncounted::mark(s, t, conv, ack.seq)?;
    }
    crate::services::events::after_send(
        &s.node,
        t,
        conv.as_str(),
        who.user.as_str(),
        who.device.as_str(),
        &ack,
        client_msg_id.as_str(),
        content,
        who.flags.as_ref(),
    );
    failpoint::check("messages.send.before_dedup")?;
    let stored_ms = if who.time_ms.is_some() { t.now_ms } else { 0 };
    let rec = DedupRecord {
        seq: ack.seq,
        server_msg_id: ack.server_msg_id,
        server_time_ms: ack.server_time_ms,
        stored_ms,
    };
    t.batch.put_dedup_by_key(&key, &rec);
    if who.fresh.is_none() {
        // Not undone: a key remembered for nothing only costs a lookup.
        s.retries.insert(hash, Instant::now());
    }
    let key = Arc::new(key);
    t.undo(Undo::Dedup(Arc::clone(&key)));
    s.dedup.insert(key, rec);
    Ok(ack)
}

/// Appends a 1:1 message: seq, log, both members' `uconv` records, push.
fn stage_direct(
    s: &mut Services,
    who: &Sender<'_>,
    conv: &ConvId,
    client_msg_id: &ClientMsgId,
    content: &pb::Content,
    t: &mut Turn<Undo>,
) -> Result<pb::SendAck, Reject> {
    let now = t.now_ms;
    let time = who.time_ms.unwrap_or(now);
    let server_msg_id = s.ids.next(now);
    let node = Arc::clone(&s.node);
    let entry = s.convs.get_mut(&node.store, conv, t)?;
    let sender_idx = entry
        .member(who.user)
        .ok_or_else(|| Reject::new(ErrorCode::NotParticipant, "sender is not a participant"))?;
    // [B-2]: checked here, at the moment the message would be stored.
    if entry.members.len() == 2 && entry.blocked[1 - sender_idx] {
        return Err(Reject::new(ErrorCode::BlockedByUser, "the recipient has blacklisted you"));
    }
    let seq = entry.max_seq + 1;
    let msg = pb::Message {
        conv_id: conv.as_str().to_owned(),
        seq,
        server_msg_id,
        client_msg_id: client_msg_id.as_str().to_owned(),
        sender: who.user.as_str().to_owned(),
        sender_device: who.device.as_str().to_owned(),
        server_time_ms: time,
        content: Some(content.clone()),
        flags: who.flags,
        ..Default::default()
    };
    let encoded = Bytes::from(msg.encode_to_vec());
    drop(msg);
    t.batch.put_message(conv, Seq(seq), &encoded);
    let frame = frames::push_message(&encoded);
    entry.max_seq = seq;
    entry.last = Some(encoded);
    entry.members[sender_idx].rec.read_seq = seq;
    for m in entry.members.iter_mut() {
        m.rec.hidden = false;
    }
    // Both records are staged once per turn by the cache's flush.
    entry.touch_all();
    t.effect(Effect::Fanout { users: Arc::clone(&entry.users), exclude: Some(who.conn), frame });
    Ok(pb::SendAck {
        conv_id: conv.as_str().to_owned(),
        seq,
        server_msg_id,
        server_time_ms: time,
        duplicate: false,
    })
}
