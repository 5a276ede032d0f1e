//! Lifecycle reads, served after the turn's write: `PullUpdates` ([UP-2]),
//! `GetReactions` and `ListReactionUsers` (18.4).
//!
//! Invariants: every read is bounded (ids per request, page limits, index
//! rows scanned per page) and only returns messages inside the caller's
//! readable window; a change visible to one user alone ([UP-5]) is returned
//! to that user only.

use std::collections::HashSet;

use missive_protocol::pb::{self, response};
use missive_protocol::{ConvId, ConvKind, ErrorCode, UserId};
use prost::Message as _;

use crate::error::Reject;
use crate::services::{Services, checks, groups};

use super::LifeRead;
use super::life;

/// The caller's readable window `(min, top)` of `conv` ([P-1], [GR-18]).
fn window(s: &mut Services, user: &UserId, conv: &ConvId) -> Result<(u64, u64), Reject> {
    match conv.kind() {
        ConvKind::Direct => {
            let store = s.node.store.clone();
            let entry = s.convs.get(&store, conv)?;
            let me = entry.participant(user)?;
            Ok((entry.members[me].rec.cleared_seq + 1, entry.max_seq))
        }
        ConvKind::Group => {
            let (min, top) = groups::window_of(s, user, conv)?;
            Ok((min.max(1), top))
        }
        _ => Err(Reject::new(
            ErrorCode::UnsupportedConversation,
            "no lifecycle reads in this conversation kind",
        )),
    }
}

/// Serves one lifecycle read for `user`.
pub(super) fn read(
    s: &mut Services,
    user: &UserId,
    conv: &ConvId,
    read: LifeRead,
    _now_ms: u64,
) -> Result<response::Result, Reject> {
    let (min, top) = window(s, user, conv)?;
    let store = s.node.store.clone();
    let visible = |seq: u64| seq >= min && seq <= top;
    match read {
        LifeRead::Reactions { seqs } => {
            let mut messages = Vec::with_capacity(seqs.len());
            for seq in seqs {
                if !visible(seq) || store.is_deleted_for(conv, user, seq)? {
                    return Err(life::not_found(seq));
                }
                let x = store.extras(conv, seq)?.unwrap_or_default();
                let mine = store.user_reactions(conv, seq, user)?;
                messages.push(pb::Reactions {
                    conv_id: conv.to_string(),
                    seq,
                    reactions: life::with_me(&x.reactions, &mine),
                    update_seq: x.update_seq,
                });
            }
            Ok(response::Result::ReactionsList(pb::ReactionsList { messages }))
        }
        LifeRead::ReactionUsers { seq, key, after, limit } => {
            if !visible(seq) || store.is_deleted_for(conv, user, seq)? {
                return Err(life::not_found(seq));
            }
            let x = store.extras(conv, seq)?.unwrap_or_default();
            let total = x.reactions.iter().find(|r| r.key == key).map_or(0, |r| r.count);
            // A recalled or deleted message keeps no summaries: its rows are not listed.
            let mut rows = if total == 0 {
                Vec::new()
            } else {
                store.reaction_users(conv, seq, &key, &after, limit + 1)?
            };
            let more = rows.len() > limit;
            rows.truncate(limit);
            let next_cursor =
                if more { rows.last().map(|(u, _)| u.clone()).unwrap_or_default() } else { String::new() };
            Ok(response::Result::ReactionUsers(pb::ReactionUsers {
                conv_id: conv.to_string(),
                seq,
                key,
                users: rows.into_iter().map(|(user_id, at_ms)| pb::ReactionUser { user_id, at_ms }).collect(),
                next_cursor,
                total,
            }))
        }
        LifeRead::Updates { after, limit } => {
            let read_seq = super::flags::read_seq_of(s, user, conv)?;
            // Scan at most 4 index rows per returned message, so rows of
            // other users' own deletions cannot make one page unbounded.
            let scan = limit.saturating_mul(4).max(1);
            let rows = store.updates_after(conv, after, scan + 1)?;
            let scanned_all = rows.len() <= scan;
            let mut last = after;
            let mut seen = HashSet::new();
            let mut messages = Vec::new();
            let mut more = false;
            for (useq, rec) in rows.into_iter().take(scan) {
                if messages.len() >= limit {
                    more = true;
                    break;
                }
                last = useq;
                if !rec.user.is_empty() && rec.user != user.as_str() {
                    continue;
                }
                if !visible(rec.seq) || !seen.insert(rec.seq) {
                    continue;
                }
                let Some(bytes) = store.message(conv, missive_protocol::Seq(rec.seq))? else { continue };
                let mut m = pb::Message::decode(bytes.as_slice()).map_err(|e| {
                    Reject::new(ErrorCode::Internal, format!("stored message undecodable: {e}"))
                })?;
                life::overlay(&store, user, conv, std::slice::from_mut(&mut m))?;
                super::flags::render(&mut m, read_seq);
                m.update_seq = m.update_seq.max(useq);
                messages.push(m);
            }
            if !scanned_all && !more {
                more = true;
            }
            let update_seq = if more { last } else { last.max(store.update_seq(conv)?) };
            messages.sort_by_key(|m| m.update_seq);
            Ok(response::Result::Updates(pb::MessageUpdates {
                conv_id: conv.to_string(),
                messages,
                update_seq,
                more,
            }))
        }
    }
}

/// Page size of a lifecycle read (`0` = default; capped).
pub(crate) fn page(limit: u32, default: u32, max: u32) -> usize {
    (if limit == 0 { default } else { limit.min(max) }) as usize
}

/// GetReactions → a read op (1..=100 seqs, each non-zero).
pub(crate) fn check_seqs(seqs: &[u64]) -> Result<(), Reject> {
    if seqs.is_empty() || seqs.len() > 100 {
        return Err(checks::invalid("seqs must hold 1..=100 seqs"));
    }
    if let Some(&0) = seqs.iter().find(|&&q| q == 0) {
        return Err(life::not_found(0));
    }
    Ok(())
}
