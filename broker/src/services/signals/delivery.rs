//! Delivery receipts on the owner shard (spec 18.7, [DR-1]..[DR-7]).
//!
//! Invariants: the delivered seq is stored on the record of the participant
//! who is told (`uconv.peer_delivered_seq`), so a receipt writes one record;
//! it only moves forward and never above the conversation's max seq; an ack
//! that moves nothing stages nothing; the receipts of one conversation in one
//! turn share one feed version.

use std::sync::Arc;

use missive_protocol::pb::{self, push};
use missive_protocol::{ConvId, ConvKind};

use crate::error::Reject;
use crate::frames;
use crate::services::{Services, Undo};
use crate::shard::{Effect, ShardOp, Turn};

use super::SignalsOp;

/// Records that the acking user holds every message of `conv` up to `seq`
/// and tells the other participant. Bad entries are ignored (`Ok`).
pub(super) fn stage(
    s: &mut Services,
    op: &ShardOp<SignalsOp>,
    conv: &ConvId,
    seq: u64,
    t: &mut Turn<Undo>,
) -> Result<(), Reject> {
    let node = Arc::clone(&s.node);
    if !node.config.messages.delivery_receipts || conv.kind() != ConvKind::Direct || seq == 0 {
        return Ok(());
    }
    // First a look without an undo record: most acks move nothing.
    let entry = s.convs.get(&node.store, conv)?;
    let Some(me) = entry.member(&op.user) else { return Ok(()) };
    let peer = 1 - me;
    let target = seq.min(entry.max_seq);
    if target <= entry.members[peer].rec.peer_delivered_seq {
        return Ok(());
    }
    let entry = s.convs.get_mut(&node.store, conv, t)?;
    entry.members[peer].rec.peer_delivered_seq = target;
    // Staged once per turn by the cache's flush, with one feed version.
    entry.touch(peer);
    let m = &entry.members[peer];
    let receipt = pb::DeliveryReceipt {
        conv_id: conv.to_string(),
        user_id: op.user.to_string(),
        delivered_seq: target,
    };
    t.effect(Effect::Fanout {
        users: Arc::from(vec![m.user.clone()]),
        exclude: None,
        frame: frames::push(push::Event::DeliveryReceipt(receipt)),
    });
    Ok(())
}
