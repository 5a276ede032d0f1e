//! ClearAllMessages (spec [DL-6]): ClearHistory up to the latest message on
//! every conversation of the caller, served by a chain of owners.
//!
//! Role: the request starts on the caller's owner shard, which names the
//! caller's first conversation (their `uconv` records, in id order) and
//! forwards the op to that conversation's owner (`Effect::Forward`, after
//! its turn is durable). Each owner clears one conversation as ClearHistory
//! would (the cleared seq moves to the conversation's latest seq, the user's
//! feed entry moves, their other devices get the new state), names the next
//! conversation after it and forwards again; the owner that finds no next
//! conversation answers `ok`.
//!
//! Invariants: each hop does O(1) work (one conversation, one one-row
//! listing), so a user with any number of conversations never makes one
//! turn long; every owner writes only the conversation it owns, at the
//! moment of the write; the answer comes after every clear is durable. A
//! conversation the caller may not clear (e.g. a group they never joined)
//! is skipped, with nothing staged for it.

use missive_protocol::pb::response;
use missive_protocol::{ConvId, ConvKind};
use missive_storage::UserConvRecord;

use crate::error::Reject;
use crate::node::OwnerKey;
use crate::services::{ServiceOp, Services, Undo, groups};
use crate::shard::{Answer, Effect, Service, ShardOp, Turn};

use super::ConversationsOp;

/// One hop: clears `here` (if any), then forwards to the next conversation's
/// owner or answers `ok`.
pub(super) fn step(
    s: &mut Services,
    op: &ShardOp<ConversationsOp>,
    here: Option<&ConvId>,
    t: &mut Turn<Undo>,
) -> Result<Answer, Reject> {
    if let Some(conv) = here {
        clear_one(s, op, conv, t);
    }
    let after = here.map(ConvId::as_str).unwrap_or("");
    let next = s.node.store.user_convs(&op.user, after, 1)?;
    let Some(next) = next.into_iter().next().and_then(|(c, _)| ConvId::parse(&c).ok()) else {
        return Ok(Answer::Response(response::Result::Ok(missive_protocol::pb::Ok {})));
    };
    let owner = s.node.owner(OwnerKey::Conv(&next));
    let fwd = ShardOp {
        origin: op.origin,
        user: op.user.clone(),
        device: op.device.clone(),
        op: ServiceOp::Conversations(ConversationsOp::ClearAll { next: Some(next) }),
    };
    t.effect(Effect::Forward { owner, op: Box::new(fwd) });
    Ok(Answer::Forwarded)
}

/// ClearHistory up to the latest on `conv` (1:1 and group conversations);
/// a refusal (not a participant, a dismissed group) stages nothing.
fn clear_one(s: &mut Services, op: &ShardOp<ConversationsOp>, conv: &ConvId, t: &mut Turn<Undo>) {
    let change = |rec: &mut UserConvRecord, max_seq: u64| {
        rec.cleared_seq = rec.cleared_seq.max(max_seq);
    };
    let sp = t.save_point();
    let r = match conv.kind() {
        ConvKind::Group => groups::member_change(s, op, conv, t, change, false).map(drop),
        ConvKind::Direct => super::member_change(s, op, conv, t, change).map(drop),
        _ => Ok(()),
    };
    if r.is_err() {
        let (reservations, undo) = t.rollback(sp);
        for res in reservations {
            s.node.counters.settle(res, false);
        }
        for u in undo {
            s.undo(u);
        }
    }
}
