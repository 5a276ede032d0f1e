//! The conversations service: a user's state in a conversation (read seq,
//! cleared seq, pin, mute, hide) and the user's global do-not-disturb.
//!
//! Role: MarkRead, UpdateConversation and ClearHistory run on the owner shard
//! of the conversation (group conversations go on to `groups::member_change`,
//! broadcast conversations go on to `messages::broadcast::member_change`);
//! SetGlobalDnd runs on the user's owner shard. Each op replies with the
//! user's new state and pushes it to the user's other devices when it changed;
//! a read receipt is pushed to the peer's devices.
//!
//! Invariants: every change moves the (user, conversation) feed entry to a new
//! version in the same batch, so the user's other devices find it by sync.

pub(crate) mod cache;
mod clear_all;
pub(crate) mod state;

use std::sync::Arc;

use missive_protocol::pb::{self, push, response};
use missive_protocol::{ConvId, ConvKind, UserId};
use missive_storage::UserConvRecord;

use crate::error::Reject;
use crate::frames;
use crate::node::OwnerKey;
use crate::node::clock::roam_floor_ms;
use crate::services::messages::broadcast;
use crate::services::{Services, Undo, groups};
use crate::shard::{Answer, Effect, ShardOp, Staged, Turn};

use state::{conversation_state, reply_with_state};

/// A conversation-state op.
#[derive(Debug)]
pub(crate) enum ConversationsOp {
    MarkRead {
        conv: ConvId,
        seq: u64,
    },
    Update {
        conv: ConvId,
        req: pb::UpdateConversation,
    },
    Clear {
        conv: ConvId,
        up_to: u64,
    },
    /// ClearAllMessages ([DL-6]): a chain of owners, one conversation each;
    /// `None` = the first hop, on the user's owner.
    ClearAll {
        next: Option<ConvId>,
    },
    /// Owned by the user's shard.
    GlobalDnd {
        enabled: bool,
    },
}

impl ConversationsOp {
    /// The op's owner key (`user` is the caller).
    pub(crate) fn owner<'a>(&'a self, user: &'a UserId) -> OwnerKey<'a> {
        match self {
            Self::MarkRead { conv, .. } | Self::Update { conv, .. } | Self::Clear { conv, .. } => {
                OwnerKey::Conv(conv)
            }
            Self::ClearAll { next: Some(conv) } => OwnerKey::Conv(conv),
            Self::GlobalDnd { .. } | Self::ClearAll { next: None } => OwnerKey::User(user),
        }
    }
}

/// `seq` clamped to `1..=max_seq` (0 = everything).
fn up_to(seq: u64, max_seq: u64) -> u64 {
    if seq == 0 || seq > max_seq { max_seq } else { seq }
}

pub(crate) fn stage(
    s: &mut Services,
    op: ShardOp<ConversationsOp>,
    t: &mut Turn<Undo>,
) -> Result<Staged<ConversationsOp>, Reject> {
    let now = t.now_ms;
    if let ConversationsOp::MarkRead { conv, .. }
    | ConversationsOp::Update { conv, .. }
    | ConversationsOp::Clear { conv, .. } = &op.op
        && !broadcast::claim_member(conv, &op.user, t)
    {
        return Ok(Staged::Defer(op));
    }
    if let ConversationsOp::ClearAll { next } = &op.op {
        return Ok(Staged::Done(clear_all::step(s, &op, next.as_ref(), t)?));
    }
    let res = match &op.op {
        ConversationsOp::MarkRead { conv, seq } => {
            let seq = *seq;
            let change = |rec: &mut UserConvRecord, max_seq: u64| {
                rec.read_seq = rec.read_seq.max(up_to(seq, max_seq));
            };
            if conv.kind() == ConvKind::Group {
                groups::member_change(s, &op, conv, t, change, true)?
            } else if conv.kind() == ConvKind::Broadcast {
                broadcast::member_change(s, &op, conv, t, change)?
            } else {
                mark_read(s, &op, conv, seq, t)?
            }
        }
        ConversationsOp::Update { conv, req } => {
            let change = |rec: &mut UserConvRecord, _: u64| {
                if let Some(p) = req.pinned {
                    if p && !rec.pinned {
                        rec.pin_time_ms = now;
                    }
                    rec.pinned = p;
                }
                if let Some(m) = req.muted {
                    rec.muted = m;
                }
                if let Some(h) = req.hidden {
                    rec.hidden = h;
                }
            };
            if conv.kind() == ConvKind::Group {
                groups::member_change(s, &op, conv, t, change, false)?
            } else if conv.kind() == ConvKind::Broadcast {
                broadcast::member_change(s, &op, conv, t, change)?
            } else {
                member_change(s, &op, conv, t, change)?
            }
        }
        ConversationsOp::Clear { conv, up_to: seq } => {
            let seq = *seq;
            let change = |rec: &mut UserConvRecord, max_seq: u64| {
                rec.cleared_seq = rec.cleared_seq.max(up_to(seq, max_seq));
            };
            if conv.kind() == ConvKind::Group {
                groups::member_change(s, &op, conv, t, change, false)?
            } else if conv.kind() == ConvKind::Broadcast {
                broadcast::member_change(s, &op, conv, t, change)?
            } else {
                member_change(s, &op, conv, t, change)?
            }
        }
        ConversationsOp::GlobalDnd { enabled } => global_dnd(s, &op, *enabled, t)?,
        ConversationsOp::ClearAll { .. } => unreachable_clear_all()?,
    };
    Ok(Staged::Done(Answer::Response(res)))
}

fn mark_read(
    s: &mut Services,
    op: &ShardOp<ConversationsOp>,
    conv: &ConvId,
    seq: u64,
    t: &mut Turn<Undo>,
) -> Result<response::Result, Reject> {
    let floor = roam_floor_ms(t.now_ms, s.node.config.history.roam_days);
    let node = &s.node;
    let entry = s.convs.get_mut(&node.store, conv, t)?;
    let me = entry.participant(&op.user)?;
    let target = up_to(seq, entry.max_seq);
    let changed = target > entry.members[me].rec.read_seq;
    let mut receipt_to = None;
    if changed {
        // Both participants' views change (read seq / peer read seq).
        let receipts = node.config.messages.delivery_receipts;
        for (i, m) in entry.members.iter_mut().enumerate() {
            if i == me {
                m.rec.read_seq = target;
            } else if receipts {
                // [DR-5]: what the reader read, it holds.
                m.rec.peer_delivered_seq = m.rec.peer_delivered_seq.max(target);
            }
        }
        entry.touch_all();
        receipt_to = Some(Arc::clone(&entry.users));
    }
    let mut state = conversation_state(conv, entry, me, floor);
    crate::services::messages::flags::view(s, conv, &mut state)?;
    if let Some(users) = receipt_to {
        let receipt = pb::ReadReceipt {
            conv_id: conv.to_string(),
            reader: op.user.to_string(),
            read_seq: target,
            reader_device: op.device.to_string(),
        };
        t.effect(Effect::Fanout {
            users,
            exclude: Some(op.origin.conn()),
            frame: frames::push(push::Event::ReadReceipt(receipt)),
        });
    }
    Ok(reply_with_state(op, state, changed, t))
}

/// Applies `change` to the caller's record; writes it, and replies with (and
/// pushes to the caller's other devices) the new state.
fn member_change(
    s: &mut Services,
    op: &ShardOp<ConversationsOp>,
    conv: &ConvId,
    t: &mut Turn<Undo>,
    change: impl FnOnce(&mut UserConvRecord, u64),
) -> Result<response::Result, Reject> {
    let floor = roam_floor_ms(t.now_ms, s.node.config.history.roam_days);
    let node = &s.node;
    let entry = s.convs.get_mut(&node.store, conv, t)?;
    let me = entry.participant(&op.user)?;
    let max_seq = entry.max_seq;
    let m = &mut entry.members[me];
    let before = m.rec.clone();
    change(&mut m.rec, max_seq);
    let changed = m.rec != before;
    if changed {
        entry.touch(me);
    }
    let mut state = conversation_state(conv, entry, me, floor);
    crate::services::messages::flags::view(s, conv, &mut state)?;
    Ok(reply_with_state(op, state, changed, t))
}

/// ClearAll is staged before the match above.
fn unreachable_clear_all() -> Result<response::Result, Reject> {
    Err(Reject::new(missive_protocol::ErrorCode::Internal, "ClearAll staged twice"))
}

fn global_dnd(
    s: &mut Services,
    op: &ShardOp<ConversationsOp>,
    enabled: bool,
    t: &mut Turn<Undo>,
) -> Result<response::Result, Reject> {
    let staged = s.settings.get(&op.user).cloned();
    let mut rec = match &staged {
        Some(r) => r.clone(),
        None => s.node.store.settings(&op.user)?,
    };
    if rec.global_dnd != enabled {
        let old = rec.feed_version;
        rec.global_dnd = enabled;
        rec.feed_version = s.node.clock.alloc(&mut t.versions);
        t.batch.put_settings(&op.user, old, &rec);
        t.effect(Effect::Fanout {
            users: vec![op.user.clone()].into(),
            exclude: Some(op.origin.conn()),
            frame: frames::push(push::Event::Settings(pb::UserSettings { global_dnd: enabled })),
        });
        t.undo(Undo::Settings(op.user.clone(), staged));
        s.settings.insert(op.user.clone(), rec);
    }
    Ok(response::Result::Ok(pb::Ok {}))
}
