//! Send flags (spec 18.8, [MF-1]..[MF-4]): how a flagged message is sent,
//! stored and read back.
//!
//! Role:
//! - `online_only` ([`send_online`]): checked like any send on the owner
//!   shard, then only pushed: no seq, no dedup record, no feed move, nothing
//!   written;
//! - `no_history` ([`render`]): stored, but a pull returns it only while it
//!   is above the reader's read seq; otherwise (and history always) a
//!   placeholder of the same seq without content;
//! - `no_unread`: the seq is marked uncounted (`uncounted::mark`), and
//!   every conversation state takes it out of `unread` ([`view`]);
//! - `no_push`: stored only.
//!
//! Invariants: flags are stored with the message exactly as sent (all false
//! = absent, so unflagged messages are byte-for-byte what they were); a
//! conversation state is finished by [`view`] / [`view_stored`] wherever it
//! is built, so unread and `last_message` agree on every path.

use missive_protocol::pb::{self, push};
use missive_protocol::{ClientMsgId, ConvId, ConvKind, ErrorCode, UserId};
use missive_storage::Store;

use crate::error::Reject;
use crate::frames;
use crate::services::{Services, Undo, groups};
use crate::shard::{Effect, Turn};

use super::send::Sender;
use super::uncounted;

/// The flags to store: `None` when none is set.
pub(crate) fn normalize(f: Option<pb::MessageFlags>) -> Option<pb::MessageFlags> {
    f.filter(|f| f.online_only || f.no_history || f.no_unread || f.no_push)
}

/// Whether the message carries `no_history`.
fn no_history(m: &pb::Message) -> bool {
    m.flags.as_ref().is_some_and(|f| f.no_history)
}

/// [MF-2]: a `no_history` message at or below the reader's `read_seq` is
/// returned as a placeholder (same seq and metadata, no content, flag set).
/// History passes `u64::MAX`: it never returns the content.
pub(crate) fn render(m: &mut pb::Message, read_seq: u64) {
    if no_history(m) && m.seq <= read_seq {
        m.content = None;
    }
}

/// The caller's read seq in `conv` (for [`render`] in pulls).
pub(crate) fn read_seq_of(s: &mut Services, user: &UserId, conv: &ConvId) -> Result<u64, Reject> {
    let store = s.node.store.clone();
    match conv.kind() {
        ConvKind::Group => Ok(s.groups.uconv_of(&store, conv, user)?.read_seq),
        ConvKind::Broadcast => Ok(store.user_conv(user, conv)?.unwrap_or_default().read_seq),
        _ => {
            let e = s.convs.get(&store, conv)?;
            let me = e.participant(user)?;
            Ok(e.members[me].rec.read_seq)
        }
    }
}

/// Finishes a state built on the owner shard: uncounted seqs out of
/// `unread` ([MF-3]), a read `no_history` last message as its placeholder.
pub(crate) fn view(s: &mut Services, conv: &ConvId, state: &mut pb::ConversationState) -> Result<(), Reject> {
    let store = s.node.store.clone();
    let seqs = s.uncounted.get(&store, conv)?;
    finish(state, &seqs);
    Ok(())
}

/// [`view`] for a state built from committed storage (sync).
pub(crate) fn view_stored(
    store: &Store,
    conv: &ConvId,
    state: &mut pb::ConversationState,
) -> Result<(), Reject> {
    let seqs = if state.unread > 0 { store.uncounted(conv)? } else { Vec::new() };
    finish(state, &seqs);
    Ok(())
}

fn finish(state: &mut pb::ConversationState, seqs: &[u64]) {
    uncounted::adjust(state, seqs);
    let read_seq = state.read_seq;
    if let Some(m) = state.last_message.as_mut() {
        render(m, read_seq);
    }
}

/// [MF-1]: an `online_only` send. The owner checks it like a stored send
/// (participant, blacklist; group membership and mutes), then pushes it to
/// the participants' online devices and the sender's other devices. The ack
/// and the push carry `seq = 0`; nothing is written.
pub(super) fn send_online(
    s: &mut Services,
    who: &Sender<'_>,
    conv: &ConvId,
    client_msg_id: &ClientMsgId,
    content: &pb::Content,
    flags: pb::MessageFlags,
    t: &mut Turn<Undo>,
) -> Result<pb::SendAck, Reject> {
    let now = t.now_ms;
    let msg = pb::Message {
        conv_id: conv.to_string(),
        seq: 0,
        server_msg_id: s.ids.next(now),
        client_msg_id: client_msg_id.as_str().to_owned(),
        sender: who.user.to_string(),
        sender_device: who.device.to_string(),
        server_time_ms: now,
        content: Some(content.clone()),
        flags: Some(flags),
        ..Default::default()
    };
    let ack = pb::SendAck {
        conv_id: conv.to_string(),
        seq: 0,
        server_msg_id: msg.server_msg_id,
        server_time_ms: now,
        duplicate: false,
    };
    match conv.kind() {
        ConvKind::Group => groups::send_online(s, who.conn, who.user, conv, msg, t)?,
        ConvKind::Broadcast => {
            return Err(Reject::new(ErrorCode::InvalidArgument, "flags: online_only is not for broadcasts"));
        }
        _ => {
            let store = s.node.store.clone();
            let entry = s.convs.get(&store, conv)?;
            let idx = entry
                .member(who.user)
                .ok_or_else(|| Reject::new(ErrorCode::NotParticipant, "sender is not a participant"))?;
            // [B-2] holds for messages that are never stored too.
            if entry.blocked[1 - idx] {
                return Err(Reject::new(ErrorCode::BlockedByUser, "the recipient has blacklisted you"));
            }
            let users: Vec<UserId> = entry.members.iter().map(|m| m.user.clone()).collect();
            t.effect(Effect::Fanout {
                users: users.into(),
                exclude: Some(who.conn),
                frame: frames::push(push::Event::Message(msg)),
            });
        }
    }
    Ok(ack)
}
