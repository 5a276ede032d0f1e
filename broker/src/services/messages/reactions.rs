//! Reactions (spec 18.4): `React` adds or removes one of the caller's keys
//! on a message; the summaries live in the message's extras record.
//!
//! Invariants:
//! - A reaction writes O(1) records whatever the conversation's size: the
//!   reaction row, the user's key list, the message's extras (summaries)
//!   and the update index entry, plus the conversation's version ([UP-1]);
//!   nothing per member.
//! - `count` of a summary is the number of reaction rows of its key; `users`
//!   holds at most `messages.reaction_summary_users` of them.
//! - Adding a key the caller already has, or removing one they do not have,
//!   changes nothing and writes nothing (idempotent retries).

use missive_protocol::pb::{self, message_update, response};
use missive_protocol::{ConvId, ErrorCode, UserId};
use missive_storage::{ExtrasRecord, UserReactionsRecord};

use crate::error::Reject;
use crate::services::checks;
use crate::services::{Services, Undo};
use crate::shard::{ShardOp, Turn};

use super::life::{self, Named};
use super::{Change, MessagesOp};

/// Longest reaction key, bytes (fixed by the protocol).
pub(crate) const MAX_KEY_BYTES: usize = 32;

/// A reaction key: 1..=32 bytes of UTF-8 without control characters or
/// leading/trailing whitespace (3000 otherwise).
pub(crate) fn check_key(key: &str) -> Result<(), Reject> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(checks::invalid(format!("key must be 1..={MAX_KEY_BYTES} bytes")));
    }
    if key.chars().any(char::is_control) || key.trim() != key {
        return Err(checks::invalid("key must not contain control characters or surrounding spaces"));
    }
    Ok(())
}

/// React → [`MessagesOp::Change`].
pub(crate) fn check(user: &UserId, req: pb::React) -> Result<MessagesOp, Reject> {
    let conv = checks::conversation(user, &req.conv_id)?;
    check_key(&req.key)?;
    if req.seq == 0 {
        return Err(life::not_found(0));
    }
    Ok(MessagesOp::Change {
        conv,
        seq: req.seq,
        change: Change::React { key: req.key, remove: req.remove },
        admin: false,
    })
}

/// Stages a reaction change; answers the message's summaries as the caller sees them.
pub(super) fn react(
    s: &mut Services,
    op: &ShardOp<MessagesOp>,
    conv: &ConvId,
    seq: u64,
    key: &str,
    remove: bool,
    t: &mut Turn<Undo>,
) -> Result<response::Result, Reject> {
    let conn = op.origin.conn();
    life::with_message(s, &op.user, false, conv, seq, t, |s, n, t| {
        n.require_current()?;
        if n.gone() {
            return Err(Reject::new(ErrorCode::MessageRecalled, "the message was recalled or deleted"));
        }
        let mut x = life::extras_of(s, conv, seq)?;
        let mut mine = life::user_keys_of(s, conv, seq, &n.user)?;
        let has = mine.keys.iter().any(|k| k == key);
        if has != remove {
            // Nothing to change: answer the current state.
            return Ok(answer(n, &x, &mine));
        }
        let cfg = &s.node.config.messages;
        if remove {
            unreact(s, n, &mut x, &mut mine, key, t)?;
        } else {
            if mine.keys.len() >= cfg.max_reactions_per_user as usize {
                return Err(Reject::new(
                    ErrorCode::ReactionLimit,
                    format!("you have {} reactions on this message (the limit)", mine.keys.len()),
                ));
            }
            let pos = x.reactions.binary_search_by(|r| r.key.as_str().cmp(key));
            let i = match pos {
                Ok(i) => i,
                Err(i) => {
                    if x.reactions.len() >= cfg.max_reaction_keys as usize {
                        return Err(Reject::new(
                            ErrorCode::ReactionLimit,
                            format!("the message has {} reaction keys (the limit)", x.reactions.len()),
                        ));
                    }
                    x.reactions.insert(i, pb::ReactionSummary { key: key.to_owned(), ..Default::default() });
                    i
                }
            };
            let summary_users = cfg.reaction_summary_users as usize;
            let r = &mut x.reactions[i];
            r.count += 1;
            if r.users.len() < summary_users {
                r.users.push(n.user.to_string());
            }
            mine.keys.push(key.to_owned());
            t.batch.put_reaction(conv, seq, key, &n.user, Some(t.now_ms));
        }
        x.update_seq = life::record(s, n, None, t)?;
        let update = life::update_of(
            n,
            message_update::Kind::Reactions,
            t.now_ms,
            x.update_seq,
            pb::Message { reactions: x.reactions.clone(), ..Default::default() },
        );
        let reply = answer(n, &x, &mine);
        let user = n.user.clone();
        life::put_user_keys(s, conv, seq, &user, mine, t);
        life::put_extras(s, conv, seq, x, t);
        life::push_update(s, n, update, Some(conn), None, t)?;
        Ok(reply)
    })
}

/// Removes the caller's `key`: one fewer in its summary (gone at zero), the
/// listed users refilled from the reaction rows when the caller was listed.
fn unreact(
    s: &mut Services,
    n: &Named<'_>,
    x: &mut ExtrasRecord,
    mine: &mut UserReactionsRecord,
    key: &str,
    t: &mut Turn<Undo>,
) -> Result<(), Reject> {
    let me = n.user.as_str();
    mine.keys.retain(|k| k != key);
    t.batch.put_reaction(&n.conv, n.seq, key, &n.user, None);
    let Ok(i) = x.reactions.binary_search_by(|r| r.key.as_str().cmp(key)) else {
        return Ok(());
    };
    let r = &mut x.reactions[i];
    r.count = r.count.saturating_sub(1);
    if r.count == 0 {
        x.reactions.remove(i);
        return Ok(());
    }
    let was_listed = r.users.iter().any(|u| u == me);
    r.users.retain(|u| u != me);
    let want = s.node.config.messages.reaction_summary_users as usize;
    if was_listed && (r.users.len() as u32) < r.count && r.users.len() < want {
        // Refill from committed rows (user-id order); this turn's changes of
        // other users are already in `users` or not yet stored.
        for (u, _) in s.node.store.reaction_users(&n.conv, n.seq, key, "", want + r.users.len() + 1)? {
            if r.users.len() >= want {
                break;
            }
            if u != me && !r.users.contains(&u) {
                r.users.push(u);
            }
        }
    }
    Ok(())
}

fn answer(n: &Named<'_>, x: &ExtrasRecord, mine: &UserReactionsRecord) -> response::Result {
    response::Result::Reactions(pb::Reactions {
        conv_id: n.conv.to_string(),
        seq: n.seq,
        reactions: life::with_me(&x.reactions, mine),
        update_seq: x.update_seq.max(n.msg.update_seq),
    })
}
