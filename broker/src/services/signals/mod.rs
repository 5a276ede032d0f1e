//! The signals service: typing indicators and 1:1 delivery receipts (spec
//! 18.6, 18.7).
//!
//! Role: both run on the owner shard of the conversation.
//! - `Typing` ([`typing`]): the caller's participation is checked against the
//!   owner's caches (the direct-conversation cache, or the group's cached
//!   member list) and a `TypingEvent` is pushed to the other participants'
//!   online devices. It stages NOTHING in the batch and allocates no feed
//!   version, so a turn of typing ops writes nothing ([TY-4]).
//! - `Delivered` ([`delivery`]): a device's `PushAck` entry for a `p:`
//!   conversation (an internal event, no answer): the other participant's
//!   `uconv` record gets `peer_delivered_seq` raised (one record, its feed
//!   entry moved so an offline sender learns it by sync) and a
//!   `DeliveryReceipt` is pushed to its online devices.
//!
//! Invariants: typing is never stored; a delivered seq only moves forward,
//! never above the conversation's max seq, and only for a participant; a
//! conversation's records of one turn are written once, with one feed
//! version (the direct-conversation cache's flush).

pub(crate) mod delivery;
pub(crate) mod typing;

use missive_protocol::ConvId;

use crate::error::Reject;
use crate::node::OwnerKey;
use crate::services::{Services, Undo};
use crate::shard::{Answer, ShardOp, Staged, Turn};

/// A signals op (owner: the conversation).
#[derive(Debug)]
pub(crate) enum SignalsOp {
    /// `Request.typing`, checked statelessly (conv id parses; for `p:` the caller is in it).
    Typing { conv: ConvId, typing: bool },
    /// A device acknowledged pushes up to `seq` in the `p:` conversation `conv`
    /// (from a `PushAck`; origin `Event`, no answer).
    Delivered { conv: ConvId, seq: u64 },
}

impl SignalsOp {
    pub(crate) fn owner(&self) -> OwnerKey<'_> {
        match self {
            Self::Typing { conv, .. } | Self::Delivered { conv, .. } => OwnerKey::Conv(conv),
        }
    }
}

pub(crate) fn stage(
    s: &mut Services,
    op: ShardOp<SignalsOp>,
    t: &mut Turn<Undo>,
) -> Result<Staged<SignalsOp>, Reject> {
    match &op.op {
        SignalsOp::Typing { conv, typing } => {
            let res = typing::stage(s, &op, conv, *typing, t)?;
            Ok(Staged::Done(Answer::Response(res)))
        }
        SignalsOp::Delivered { conv, seq } => {
            delivery::stage(s, &op, conv, *seq, t)?;
            Ok(Staged::Done(Answer::None))
        }
    }
}
