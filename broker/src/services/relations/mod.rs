//! The relations service: friends, friend requests and the blacklist (pair
//! relations), and their read-only queries ([`queries`]).
//!
//! Role: every record about users a and b (friend entries, blocks, requests,
//! both sides) is owned by the owner shard of the direct conversation
//! `p:a:b`. That shard also stores the pair's messages, so the blacklist check
//! of a send ([B-2]) and a block happen in one serial order, at the moment of
//! the write, and the cached conversation carries the block flags.
//!
//! An op loads both sides, applies the change to a copy, reserves counter
//! deltas (friend and blacklist limits, `node::counters`), writes the
//! records that differ, and for each user whose [`pb::Relation`] view changed
//! moves that relation's feed entry and pushes the new view.
//!
//! Invariants: one op per pair per turn (the pair key is claimed; a second
//! op waits for the next turn), so every op reads committed records.

mod queries;
mod side;

use std::collections::BTreeMap;
use std::sync::Arc;

use missive_protocol::pb::{self, push, response};
use missive_protocol::{ConvId, ErrorCode, UserId};
use missive_storage::{BlockRecord, RelKind, RequestRecord};

use crate::error::Reject;
use crate::frames;
use crate::node::counters::Counted;
use crate::node::{Node, OwnerKey};
use crate::services::{Services, Undo, checks};
use crate::shard::{Answer, Effect, ShardOp, Staged, Turn, failpoint};

pub(crate) use queries::{Query, relation_of, serve};
pub(crate) use side::{Side, load_side, view};
use side::{befriend, pending, settle_request};

/// A relation change between the acting user and a peer.
#[derive(Debug)]
pub(crate) enum PairOp {
    Add {
        message: String,
        remark: String,
        ex: BTreeMap<String, String>,
    },
    Respond {
        accept: bool,
        remark: String,
        ex: BTreeMap<String, String>,
    },
    Delete {
        both: bool,
    },
    Update {
        remark: Option<String>,
        ex: BTreeMap<String, String>,
    },
    Block,
    Unblock,
    /// Admin: friends both ways without verification.
    Import,
}

/// A pair op: `me` acts on the relation with `peer` (owner: `conv` = `p:me:peer`).
#[derive(Debug)]
pub(crate) struct RelationsOp {
    pub(crate) me: UserId,
    pub(crate) peer: UserId,
    pub(crate) conv: ConvId,
    pub(crate) op: PairOp,
}

impl RelationsOp {
    /// A pair op; fails with SELF_TARGET when `me == peer`.
    pub(crate) fn new(me: UserId, peer: UserId, op: PairOp) -> Result<Self, Reject> {
        let conv =
            ConvId::direct(&me, &peer).map_err(|e| Reject::new(ErrorCode::SelfTarget, e.to_string()))?;
        Ok(Self { me, peer, conv, op })
    }

    pub(crate) fn owner(&self) -> OwnerKey<'_> {
        OwnerKey::Conv(&self.conv)
    }
}

/// Stages one pair op (see the module docs).
pub(crate) fn stage(
    s: &mut Services,
    op: ShardOp<RelationsOp>,
    t: &mut Turn<Undo>,
) -> Result<Staged<RelationsOp>, Reject> {
    let RelationsOp { me, peer, conv, op: pair_op } = &op.op;
    if !t.claim(conv.to_string()) {
        return Ok(Staged::Defer(op));
    }
    let node = Arc::clone(&s.node);
    let store = &node.store;
    let needs_peer = !matches!(pair_op, PairOp::Block | PairOp::Unblock);
    if needs_peer && store.account(peer)?.is_none() {
        return Err(Reject::new(ErrorCode::UserNotFound, format!("user {peer} is not registered")));
    }
    if matches!(pair_op, PairOp::Import) && store.account(me)?.is_none() {
        return Err(Reject::new(ErrorCode::UserNotFound, format!("user {me} is not registered")));
    }
    let before_me = load_side(store, me, peer)?;
    let before_peer = load_side(store, peer, me)?;
    let (mut a, mut b) = (before_me.clone(), before_peer.clone());
    let now = t.now_ms;
    let mut status = pb::AddFriendStatus::Unspecified;
    let limits = &node.config.relations;
    match pair_op {
        PairOp::Add { message, remark, ex } => {
            if b.block.is_some() {
                return Err(Reject::new(ErrorCode::BlockedByUser, "this user has blacklisted you"));
            }
            if a.block.is_some() {
                return Err(Reject::new(
                    ErrorCode::InYourBlacklist,
                    "this user is in your blacklist; remove them first",
                ));
            }
            if a.friend.is_some() && b.friend.is_some() {
                return Err(Reject::new(ErrorCode::AlreadyFriends, "already friends both ways"));
            }
            let verification = store.profile(peer)?.map_or(0, |p| p.friend_verification);
            // [FR-2] 1 and 2: the peer already wants this friendship, or lets anyone in.
            if b.friend.is_some()
                || pending(&b.outgoing)
                || verification == pb::FriendVerification::AllowAnyone as i32
            {
                befriend(&mut a, &mut b, now, remark, ex);
                status = pb::AddFriendStatus::Added;
            } else if verification == pb::FriendVerification::DenyAll as i32 {
                return Err(Reject::new(
                    ErrorCode::FriendRequestsDenied,
                    "this user accepts no friend requests",
                ));
            } else {
                let req = RequestRecord {
                    message: message.clone(),
                    state: pb::RequestState::Pending as i32,
                    created_ms: now,
                    handled_ms: 0,
                    remark: remark.clone(),
                    ex: ex.clone(),
                };
                a.outgoing = Some(req.clone());
                b.incoming = Some(req);
                status = pb::AddFriendStatus::Requested;
            }
        }
        PairOp::Respond { accept, remark, ex } => {
            if !pending(&a.incoming) {
                return Err(Reject::new(
                    ErrorCode::NoPendingRequest,
                    format!("no pending friend request from {peer}"),
                ));
            }
            if *accept {
                befriend(&mut a, &mut b, now, remark, ex);
            } else {
                settle_request(&mut a.incoming, pb::RequestState::Rejected, now);
                settle_request(&mut b.outgoing, pb::RequestState::Rejected, now);
            }
        }
        PairOp::Delete { both } => {
            if a.friend.is_none() {
                return Err(Reject::new(ErrorCode::NotFriends, format!("{peer} is not in your friend list")));
            }
            a.friend = None;
            if *both {
                b.friend = None;
            }
        }
        PairOp::Update { remark, ex } => {
            let Some(f) = a.friend.as_mut() else {
                return Err(Reject::new(ErrorCode::NotFriends, format!("{peer} is not in your friend list")));
            };
            if let Some(r) = remark {
                f.remark = r.clone();
            }
            checks::merge_ex(&mut f.ex, ex, limits, "ex")?;
        }
        PairOp::Block => {
            if a.block.is_none() {
                a.block = Some(BlockRecord { since_ms: now });
            }
        }
        PairOp::Unblock => a.block = None,
        PairOp::Import => befriend(&mut a, &mut b, now, "", &BTreeMap::new()),
    }
    reserve_pair(&node, me, peer, (&before_me, &a), (&before_peer, &b), t)?;
    failpoint::check("relations.pair.after_reserve")?;
    // Records that differ.
    for (owner, other, before, after) in [(me, peer, &before_me, &a), (peer, me, &before_peer, &b)] {
        let batch = &mut t.batch;
        if before.friend != after.friend {
            batch.put_rel(owner, RelKind::Friend, other, after.friend.as_ref());
            if before.friend.is_some() != after.friend.is_some() {
                batch.put_friend_of(other, owner, after.friend.is_some());
            }
        }
        if before.block != after.block {
            batch.put_rel(owner, RelKind::Block, other, after.block.as_ref());
        }
        if before.incoming != after.incoming {
            batch.put_rel(owner, RelKind::Incoming, other, after.incoming.as_ref());
        }
        if before.outgoing != after.outgoing {
            batch.put_rel(owner, RelKind::Outgoing, other, after.outgoing.as_ref());
        }
    }
    emit_events(&node, t, me, peer, pair_op, (&before_me, &a), (&before_peer, &b));
    // Views that changed: feed entry and push.
    let mut my_view = view(me, peer, &a, &b);
    for (owner, other, own_before, their_before, own_after, their_after) in
        [(me, peer, &before_me, &before_peer, &a, &b), (peer, me, &before_peer, &before_me, &b, &a)]
    {
        let after_view = view(owner, other, own_after, their_after);
        if view(owner, other, own_before, their_before) == after_view {
            continue;
        }
        let v = node.clock.alloc(&mut t.versions);
        t.batch.move_rel_feed(owner, other, own_before.feed_version, v);
        t.effect(Effect::Fanout {
            users: vec![owner.clone()].into(),
            exclude: Some(op.origin.conn()),
            frame: frames::push(push::Event::Relation(after_view.clone())),
        });
        if owner == me {
            my_view = after_view;
        }
    }
    // Keep the cached conversation's block flags current.
    if let Some(entry) = s.convs.cached_mut(conv, t) {
        if let Some(i) = entry.member(me) {
            entry.blocked[i] = a.block.is_some();
        }
        if let Some(i) = entry.member(peer) {
            entry.blocked[i] = b.block.is_some();
        }
    }
    let result = match pair_op {
        PairOp::Add { .. } => response::Result::AddFriend(pb::AddFriendResult {
            status: status as i32,
            relation: Some(my_view),
        }),
        PairOp::Import => response::Result::Ok(pb::Ok {}),
        _ => response::Result::Relation(my_view),
    };
    Ok(Staged::Done(Answer::Response(result)))
}

/// Webhook after-events of a pair change (`friend.*`, `blacklist.*`), from
/// the records before and after (so an op that changed nothing emits nothing).
fn emit_events<U>(
    node: &Node,
    t: &mut Turn<U>,
    me: &UserId,
    peer: &UserId,
    pair_op: &PairOp,
    mine: (&Side, &Side),
    theirs: (&Side, &Side),
) {
    use crate::services::events::emit;
    use serde_json::json;
    let (m, p) = (me.as_str(), peer.as_str());
    let friends = |x: &Side, y: &Side| x.friend.is_some() && y.friend.is_some();
    if !pending(&mine.0.outgoing) && pending(&mine.1.outgoing) {
        let msg = mine.1.outgoing.as_ref().map(|r| r.message.clone()).unwrap_or_default();
        emit(node, t, "friend.request", || json!({ "from": m, "to": p, "message": msg }));
    }
    if let PairOp::Respond { accept, .. } = pair_op {
        let kind = if *accept { "friend.accepted" } else { "friend.declined" };
        emit(node, t, kind, || json!({ "user_id": m, "requester": p }));
    }
    if !friends(mine.0, theirs.0) && friends(mine.1, theirs.1) {
        emit(node, t, "friend.added", || json!({ "user_id": m, "friend_id": p }));
    }
    if mine.0.friend.is_some() && mine.1.friend.is_none() {
        let both = theirs.0.friend.is_some() && theirs.1.friend.is_none();
        emit(node, t, "friend.deleted", || json!({ "user_id": m, "friend_id": p, "both": both }));
    }
    if mine.0.block.is_none() && mine.1.block.is_some() {
        emit(node, t, "blacklist.added", || json!({ "user_id": m, "blocked_id": p }));
    }
    if mine.0.block.is_some() && mine.1.block.is_none() {
        emit(node, t, "blacklist.removed", || json!({ "user_id": m, "blocked_id": p }));
    }
}

/// Reserves the friend and blacklist count changes of both sides; fails
/// with the limit's code (and reserves nothing) when one is full.
fn reserve_pair(
    node: &Node,
    me: &UserId,
    peer: &UserId,
    mine: (&Side, &Side),
    theirs: (&Side, &Side),
    t: &mut Turn<Undo>,
) -> Result<(), Reject> {
    let r = &node.config.relations;
    let delta = |before: bool, after: bool| i64::from(after) - i64::from(before);
    let wanted = [
        (me, Counted::Friends, delta(mine.0.friend.is_some(), mine.1.friend.is_some()), r.max_friends),
        (peer, Counted::Friends, delta(theirs.0.friend.is_some(), theirs.1.friend.is_some()), r.max_friends),
        (me, Counted::Blocks, delta(mine.0.block.is_some(), mine.1.block.is_some()), r.max_blacklist),
    ];
    let mut got = Vec::new();
    for (i, (user, what, d, limit)) in wanted.into_iter().enumerate() {
        if d == 0 {
            continue;
        }
        match node.counters.reserve(&node.store, user, what, d, limit)? {
            Some(res) => got.push(res),
            None => {
                for res in got {
                    node.counters.settle(res, false);
                }
                return Err(match i {
                    0 => Reject::new(ErrorCode::FriendLimit, format!("your friend list is full ({limit})")),
                    1 => Reject::new(
                        ErrorCode::PeerFriendLimit,
                        format!("{peer}'s friend list is full ({limit})"),
                    ),
                    _ => Reject::new(ErrorCode::BlacklistLimit, format!("your blacklist is full ({limit})")),
                });
            }
        }
    }
    for res in got {
        t.reservation(res);
    }
    Ok(())
}
