//! `Typing` on the owner shard (spec 18.6, [TY-1]..[TY-6]).
//!
//! Invariants: nothing is staged in the turn's batch (no record, no feed
//! version); the push goes to the other participants only, never to the
//! typer's own devices; a group larger than `messages.typing_max_members`
//! gets nothing pushed; a 1:1 peer who blacklisted the typer gets nothing.

use std::sync::Arc;

use missive_protocol::pb::{self, push, response};
use missive_protocol::{ConvId, ConvKind, ErrorCode, UserId};

use crate::error::Reject;
use crate::frames;
use crate::services::{Services, Undo};
use crate::shard::{Effect, ShardOp, Turn};

use super::SignalsOp;

fn not_participant() -> Reject {
    Reject::new(ErrorCode::NotParticipant, "you are not a participant of this conversation")
}

/// Checks the caller and pushes the event; answers `ok`.
pub(super) fn stage(
    s: &mut Services,
    op: &ShardOp<SignalsOp>,
    conv: &ConvId,
    typing: bool,
    t: &mut Turn<Undo>,
) -> Result<response::Result, Reject> {
    let node = Arc::clone(&s.node);
    let to: Option<Arc<[UserId]>> = match conv.kind() {
        ConvKind::Group => {
            let e = s.groups.take_for_read(&node.store, conv, node.config.groups.max_members)?;
            let member = e.info.as_ref().is_some_and(|i| !i.dismissed) && e.members.contains_key(&op.user);
            let small =
                e.info.as_ref().is_some_and(|i| i.member_count <= node.config.messages.typing_max_members);
            let users = (member && small).then(|| {
                e.members
                    .iter()
                    .filter(|(u, m)| **u != op.user && m.notify != pb::GroupNotify::Block as i32)
                    .map(|(u, _)| u.clone())
                    .collect::<Arc<[UserId]>>()
            });
            s.groups.put(conv.clone(), e);
            if !member {
                return Err(not_participant());
            }
            users
        }
        ConvKind::Direct => {
            let entry = s.convs.get(&node.store, conv)?;
            let me = entry.participant(&op.user)?;
            let peer = 1 - me;
            // [TY-3]: a peer who blacklisted the typer does not see it typing.
            (!entry.blocked[peer]).then(|| Arc::from(vec![entry.members[peer].user.clone()]))
        }
        _ => {
            return Err(Reject::new(
                ErrorCode::UnsupportedConversation,
                "typing is served in p: and g: conversations",
            ));
        }
    };
    if let Some(users) = to.filter(|u| !u.is_empty()) {
        let event = pb::TypingEvent {
            conv_id: conv.to_string(),
            user_id: op.user.to_string(),
            device_id: op.device.to_string(),
            typing,
        };
        t.effect(Effect::Fanout {
            users,
            exclude: Some(op.origin.conn()),
            frame: frames::push(push::Event::Typing(event)),
        });
    }
    Ok(response::Result::Ok(pb::Ok {}))
}
