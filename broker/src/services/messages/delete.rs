//! DeleteMessages (spec 18.3): for the caller only, or for everyone.
//!
//! Role: the stateless checks (called by `route`) and the staging on the
//! conversation's owner, one seq after the other through
//! [`life::with_message`], all in the op's save point: one seq refused
//! refuses the whole request and nothing is deleted.
//!
//! Invariants:
//! - A deletion for oneself never changes the log row: it is a `'d'` row of
//!   the `life` column family read by every read of that user ([UP-3]), an
//!   update index entry naming that user ([UP-5]) and their feed entry moved,
//!   so it follows the user to every device, including new ones ([DL-2]).
//! - A deletion for everyone empties the log row (content, reactions,
//!   extensions) like a recall, without a tip ([DL-3]).
//! - At most 100 seqs per request: the work of one op is bounded.

use missive_protocol::pb::{self, message_update, response};
use missive_protocol::{ConvId, ConvKind, ErrorCode, UserId};

use crate::error::Reject;
use crate::services::{Services, Undo, checks};
use crate::shard::{ShardOp, Turn};

use super::MessagesOp;
use super::life;

/// DeleteMessages → [`MessagesOp::Delete`]: 1..=100 non-zero seqs (repeats
/// count once).
pub(crate) fn check(user: &UserId, req: pb::DeleteMessages) -> Result<MessagesOp, Reject> {
    let conv = checks::conversation(user, &req.conv_id)?;
    super::updates::check_seqs(&req.seqs)?;
    let mut seqs = req.seqs;
    seqs.sort_unstable();
    seqs.dedup();
    Ok(MessagesOp::Delete { conv, seqs, for_everyone: req.for_everyone, admin: false })
}

/// Stages a deletion of `seqs`; answers `ok`.
pub(super) fn delete(
    s: &mut Services,
    op: &ShardOp<MessagesOp>,
    conv: &ConvId,
    seqs: &[u64],
    for_everyone: bool,
    admin: bool,
    t: &mut Turn<Undo>,
) -> Result<response::Result, Reject> {
    let conn = op.origin.conn();
    for &seq in seqs {
        if for_everyone {
            life::with_message(s, &op.user, admin, conv, seq, t, |s, n, t| {
                n.require_current()?;
                if !(n.admin || n.manager) {
                    return Err(if conv.kind() == ConvKind::Group {
                        Reject::new(
                            ErrorCode::GroupPermissionDenied,
                            "only the group owner or an admin may delete messages for everyone",
                        )
                    } else {
                        Reject::new(
                            ErrorCode::PermissionDenied,
                            "messages of a one-to-one conversation are deleted for everyone by the admin API only",
                        )
                    });
                }
                if n.msg.deleted {
                    return Ok(()); // already: a retry changes nothing
                }
                let mut msg = n.msg.clone();
                msg.content = None;
                msg.deleted = true;
                super::recall::drop_extras(s, n, t)?;
                msg.update_seq = life::record(s, n, None, t)?;
                life::store_message(s, n, msg.clone(), t)?;
                let update = update(message_update::Kind::Deleted, n, t.now_ms, msg.update_seq);
                life::push_update(s, n, update, Some(conn), None, t)
            })?;
        } else {
            if s.node.store.is_deleted_for(conv, &op.user, seq)? {
                continue; // already: a retry changes nothing
            }
            life::with_message(s, &op.user, false, conv, seq, t, |s, n, t| {
                let user = n.user.clone();
                t.batch.put_deleted_for(conv, &user, seq);
                let useq = life::record(s, n, Some(&user), t)?;
                let update = update(message_update::Kind::DeletedForMe, n, t.now_ms, useq);
                life::push_update(s, n, update, Some(conn), Some(&user), t)
            })?;
        }
    }
    Ok(response::Result::Ok(pb::Ok {}))
}

/// The `MessageUpdate` of a deletion: the message marked `deleted`.
fn update(kind: message_update::Kind, n: &life::Named<'_>, at_ms: u64, update_seq: u64) -> pb::MessageUpdate {
    life::update_of(n, kind, at_ms, update_seq, pb::Message { deleted: true, ..Default::default() })
}
