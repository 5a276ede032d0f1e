//! Recall (spec 18.1) and edit (spec 18.2) of one stored message.
//!
//! Role: the stateless checks of `RecallMessage` / `EditMessage` (called by
//! `route`), and their staging on the conversation's owner through
//! [`life::with_message`]: the permission and window checks at the moment of
//! the write, the rewritten log row, the update log entry ([UP-1]), the
//! `MessageUpdate` push ([UP-4]) and, for a recall, the tip appended to the
//! conversation.
//!
//! Invariants:
//! - A recalled message keeps its seq, ids, sender and time; its content is
//!   gone from the log row (not only hidden), its reactions and extensions
//!   are dropped, and it cannot be recalled, edited, reacted to or extended
//!   again (4202).
//! - An edit keeps only the newest content: older versions are overwritten
//!   in the same write ([ED-4]).
//! - Everything a change implies (row, index entry, version moves, tip) is
//!   staged in the op's save point: a refused op leaves nothing behind.

use std::sync::Arc;

use bytes::Bytes;
use missive_protocol::pb::{self, message_update, response};
use missive_protocol::{ConvId, ConvKind, ErrorCode, Seq, UserId};
use missive_storage::ExtrasRecord;
use prost::Message as _;

use crate::error::Reject;
use crate::frames;
use crate::services::{Services, Undo, checks};
use crate::shard::{Effect, ShardOp, Turn};

use super::life::{self, Named};
use super::{Change, MessagesOp};

/// The tip kind appended by a recall ([RC-4]).
pub(crate) const RECALL_TIP: &str = "message.recalled";

fn gone() -> Reject {
    Reject::new(ErrorCode::MessageRecalled, "the message was recalled or deleted")
}

/// `secs` after `sent_ms` (0 = no limit) → 4201 once passed.
fn within(now_ms: u64, sent_ms: u64, secs: u64, what: &str) -> Result<(), Reject> {
    if secs > 0 && now_ms.saturating_sub(sent_ms) > secs.saturating_mul(1000) {
        return Err(Reject::new(
            ErrorCode::TimeLimitExceeded,
            format!("messages may be {what} within {secs} s of sending"),
        ));
    }
    Ok(())
}

/// RecallMessage → [`MessagesOp::Change`].
pub(crate) fn check_recall(user: &UserId, req: pb::RecallMessage) -> Result<MessagesOp, Reject> {
    let conv = checks::conversation(user, &req.conv_id)?;
    if req.seq == 0 {
        return Err(life::not_found(0));
    }
    Ok(MessagesOp::Change { conv, seq: req.seq, change: Change::Recall, admin: false })
}

/// EditMessage → [`MessagesOp::Change`]: content present, a text or custom
/// body (4203 otherwise), the content checks of a send ([S-1]).
pub(crate) fn check_edit(
    user: &UserId,
    req: pb::EditMessage,
    max_bytes: usize,
) -> Result<MessagesOp, Reject> {
    let conv = checks::conversation(user, &req.conv_id)?;
    if req.seq == 0 {
        return Err(life::not_found(0));
    }
    let Some(content) = req.content else {
        return Err(checks::invalid("content is required"));
    };
    super::check::content_ok(&content, max_bytes)?;
    if body_kind(&content).is_none() {
        return Err(Reject::new(ErrorCode::EditNotAllowed, "only text and custom content can be edited"));
    }
    Ok(MessagesOp::Change { conv, seq: req.seq, change: Change::Edit { content }, admin: false })
}

/// The editable body kinds: `Some(true)` text, `Some(false)` custom.
fn body_kind(c: &pb::Content) -> Option<bool> {
    match &c.body {
        Some(pb::content::Body::Text(_)) => Some(true),
        Some(pb::content::Body::Custom(_)) => Some(false),
        _ => None,
    }
}

/// Stages a recall ([RC-1]..[RC-5]); answers the recalled form.
pub(super) fn recall(
    s: &mut Services,
    op: &ShardOp<MessagesOp>,
    conv: &ConvId,
    seq: u64,
    admin: bool,
    t: &mut Turn<Undo>,
) -> Result<response::Result, Reject> {
    let conn = op.origin.conn();
    let window = s.node.config.messages.recall_window_secs;
    life::with_message(s, &op.user, admin, conv, seq, t, |s, n, t| {
        n.require_current()?;
        if n.gone() {
            return Err(gone());
        }
        if !(n.admin || n.manager) {
            if !n.is_sender() {
                return Err(if conv.kind() == ConvKind::Group {
                    Reject::new(
                        ErrorCode::GroupPermissionDenied,
                        "only the sender, the group owner or an admin may recall this message",
                    )
                } else {
                    Reject::new(ErrorCode::NotMessageSender, "only the sender may recall this message")
                });
            }
            within(t.now_ms, n.msg.server_time_ms, window, "recalled")?;
        }
        let mut msg = n.msg.clone();
        msg.content = None;
        msg.recalled = Some(pb::Recalled { by: n.user.to_string(), at_ms: t.now_ms });
        drop_extras(s, n, t)?;
        msg.update_seq = life::record(s, n, None, t)?;
        life::store_message(s, n, msg.clone(), t)?;
        let update = life::update_of(
            n,
            message_update::Kind::Recalled,
            t.now_ms,
            msg.update_seq,
            pb::Message { recalled: msg.recalled.clone(), ..Default::default() },
        );
        life::push_update(s, n, update, Some(conn), None, t)?;
        append_tip(s, n, op, t)?;
        Ok(response::Result::Message(msg))
    })
}

/// Drops the message's reactions, extensions and cached translations (recall, delete for
/// everyone): its extras record is emptied, so every read shows none and
/// `ListReactionUsers` lists nobody.
pub(super) fn drop_extras(s: &mut Services, n: &mut Named<'_>, t: &mut Turn<Undo>) -> Result<(), Reject> {
    crate::services::translate::forget(&s.node.store, &n.conv, n.seq, t)?;
    let x = life::extras_of(s, &n.conv, n.seq)?;
    if !x.reactions.is_empty() || !x.extensions.is_empty() {
        // Keep the index bookkeeping: `record` reads the old update seq first.
        let keep = ExtrasRecord { update_seq: x.update_seq, ..Default::default() };
        life::put_extras(s, &n.conv, n.seq, keep, t);
    }
    Ok(())
}

/// Appends the recall tip ([RC-4]): sender = the recaller, `no_unread`, read
/// by the recaller; pushed to every reader (the recaller's devices too).
fn append_tip(
    s: &mut Services,
    n: &mut Named<'_>,
    op: &ShardOp<MessagesOp>,
    t: &mut Turn<Undo>,
) -> Result<(), Reject> {
    let by = n.user.to_string();
    let params = [("by".to_owned(), by.clone()), ("seq".to_owned(), n.seq.to_string())].into_iter().collect();
    let tip = pb::Message {
        sender: by.clone(),
        sender_device: op.device.to_string(),
        content: Some(pb::Content {
            body: Some(pb::content::Body::Tip(pb::Tip {
                kind: RECALL_TIP.to_owned(),
                params,
                text: format!("{by} recalled a message"),
            })),
            ..Default::default()
        }),
        flags: Some(pb::MessageFlags { no_unread: true, ..Default::default() }),
        ..Default::default()
    };
    let node = Arc::clone(&s.node);
    let conv = n.conv.clone();
    let user = n.user.clone();
    let current = n.current && !n.admin;
    if let Some(e) = n.group() {
        let (tip, frame) = e.append(&mut s.ids, &node.clock, t, &conv, tip);
        super::uncounted::mark(s, t, &conv, tip.seq)?;
        if current && e.members.contains_key(&user) {
            let mut rec = s.groups.uconv_of(&node.store, &conv, &user)?;
            rec.read_seq = rec.read_seq.max(tip.seq);
            s.groups.write_uconv(&node.clock, t, &conv, &user, rec, false);
        }
        t.effect(Effect::Fanout { users: e.recipients(), exclude: None, frame });
        return Ok(());
    }
    let now = t.now_ms;
    let server_msg_id = s.ids.next(now);
    let entry = s.convs.get_mut(&node.store, &conv, t)?;
    let seq = entry.max_seq + 1;
    let tip = pb::Message { conv_id: conv.to_string(), seq, server_msg_id, server_time_ms: now, ..tip };
    let encoded = Bytes::from(tip.encode_to_vec());
    t.batch.put_message(&conv, Seq(seq), &encoded);
    let frame = frames::push_message(&encoded);
    entry.max_seq = seq;
    entry.last = Some(encoded);
    for m in entry.members.iter_mut() {
        if m.user == user {
            m.rec.read_seq = seq;
        }
    }
    entry.touch_all();
    let users = Arc::clone(&entry.users);
    super::uncounted::mark(s, t, &conv, seq)?;
    t.effect(Effect::Fanout { users, exclude: None, frame });
    Ok(())
}

/// Stages an edit ([ED-1]..[ED-4]); answers the new form.
pub(super) fn edit(
    s: &mut Services,
    op: &ShardOp<MessagesOp>,
    conv: &ConvId,
    seq: u64,
    content: &pb::Content,
    t: &mut Turn<Undo>,
) -> Result<response::Result, Reject> {
    let conn = op.origin.conn();
    let cfg = &s.node.config.messages;
    let enabled = if conv.kind() == ConvKind::Group { cfg.edit_group } else { cfg.edit_direct };
    let window = cfg.edit_window_secs;
    if !enabled {
        return Err(Reject::new(
            ErrorCode::EditNotAllowed,
            "editing is disabled in this kind of conversation",
        ));
    }
    life::with_message(s, &op.user, false, conv, seq, t, |s, n, t| {
        n.require_current()?;
        if n.gone() {
            return Err(gone());
        }
        if !n.is_sender() {
            return Err(Reject::new(ErrorCode::NotMessageSender, "only the sender may edit a message"));
        }
        let was = n.msg.content.as_ref().and_then(body_kind);
        if was.is_none() || was != body_kind(content) {
            return Err(Reject::new(
                ErrorCode::EditNotAllowed,
                "only text and custom messages can be edited, keeping their body kind",
            ));
        }
        within(t.now_ms, n.msg.server_time_ms, window, "edited")?;
        let mut msg = n.msg.clone();
        msg.content = Some(content.clone());
        msg.edit_version = msg.edit_version.saturating_add(1);
        msg.edited_at_ms = t.now_ms;
        msg.update_seq = life::record(s, n, None, t)?;
        life::store_message(s, n, msg.clone(), t)?;
        let update = life::update_of(
            n,
            message_update::Kind::Edited,
            t.now_ms,
            msg.update_seq,
            pb::Message {
                content: msg.content.clone(),
                edit_version: msg.edit_version,
                edited_at_ms: msg.edited_at_ms,
                ..Default::default()
            },
        );
        life::push_update(s, n, update, Some(conn), None, t)?;
        // The answer is the current form: the extras too ([UP-3]).
        let mut reply = [msg];
        life::overlay(&s.node.store, &n.user, conv, &mut reply)?;
        let [msg] = reply;
        Ok(response::Result::Message(msg))
    })
}
