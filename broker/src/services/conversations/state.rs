//! A user's view of a conversation ([`pb::ConversationState`]).
//!
//! Role: built from cached entries on the owner shard (replies and pushes of
//! conversation ops) and from storage by sync, with one formula for unread.
//!
//! Invariant: unread = max_seq − max(read_seq, cleared_seq); sending marks the
//! conversation read for the sender, so everything above read_seq is from others.

use missive_protocol::ConvId;
use missive_protocol::pb::{self, push, response};
use missive_storage::UserConvRecord;
use prost::Message as _;

use crate::frames;
use crate::services::conversations::cache::ConvEntry;
use crate::shard::{Effect, ShardOp, Turn};

/// Builds `members[me]`'s view of a direct conversation from its entry.
pub(crate) fn conversation_state(
    conv: &ConvId,
    entry: &ConvEntry,
    me: usize,
    floor_ms: u64,
) -> pb::ConversationState {
    let rec = &entry.members[me].rec;
    let peer_read_seq = entry.members.iter().enumerate().find(|(i, _)| *i != me).map(|(_, m)| m.rec.read_seq);
    let last_message = match &entry.last {
        Some(b) if entry.max_seq > rec.cleared_seq => {
            pb::Message::decode(b.as_ref()).ok().filter(|m| m.server_time_ms >= floor_ms)
        }
        _ => None,
    };
    let mut st = state_from_parts(conv, entry.max_seq, rec, peer_read_seq.unwrap_or(0), last_message);
    st.update_seq = entry.update_seq;
    st
}

/// Builds a [`pb::ConversationState`]; shared with the sync path.
pub(crate) fn state_from_parts(
    conv: &ConvId,
    max_seq: u64,
    rec: &UserConvRecord,
    peer_read_seq: u64,
    last_message: Option<pb::Message>,
) -> pb::ConversationState {
    pb::ConversationState {
        conv_id: conv.to_string(),
        max_seq,
        read_seq: rec.read_seq,
        unread: max_seq.saturating_sub(rec.read_seq.max(rec.cleared_seq)),
        cleared_seq: rec.cleared_seq,
        pinned: rec.pinned,
        muted: rec.muted,
        hidden: rec.hidden,
        last_message,
        peer_read_seq,
        pin_time_ms: rec.pin_time_ms,
        mentioned: false,
        group_notify: 0,
        min_readable_seq: 0,
        update_seq: 0,
        peer_delivered_seq: 0,
    }
}

/// The reply of a conversation op: the user's new state; when it changed, the
/// same state is pushed to the user's other devices.
pub(crate) fn reply_with_state<O, U>(
    op: &ShardOp<O>,
    state: pb::ConversationState,
    changed: bool,
    t: &mut Turn<U>,
) -> response::Result {
    if changed {
        t.effect(Effect::Fanout {
            users: vec![op.user.clone()].into(),
            exclude: Some(op.origin.conn()),
            frame: frames::push(push::Event::Conversation(state.clone())),
        });
    }
    response::Result::Conversation(state)
}
