//! Friends, friend requests and the blacklist: pair relations.
//!
//! Role: every record about users a and b (friend entries, blocks, requests,
//! both sides) is owned by the owner shard of the direct conversation
//! `p:a:b`. That shard also stores the pair's messages, so the blacklist check
//! of a send ([B-2]) and a block happen in one serial order, at the moment of
//! the write, and the cached conversation carries the block flags.
//!
//! An op loads both sides, applies the change to a copy, reserves counter
//! deltas (friend and blacklist limits, see [`crate::counters`]), writes the
//! records that differ, and for each user whose [`pb::Relation`] view changed
//! moves that relation's feed entry and pushes the new view.
//!
//! Invariants: one op per pair per turn (the pair key is claimed; a second
//! op waits for the next turn), so every op reads committed records.

use std::collections::BTreeMap;

use missive_protocol::pb::{self, push, response};
use missive_protocol::{ConvId, ErrorCode, UserId};
use missive_storage::{BlockRecord, FriendRecord, RelKind, RequestRecord, Store, VersionRecord};

use crate::checks;
use crate::clock::now_ms;
use crate::counters::Counted;
use crate::error::Reject;
use crate::frames;
use crate::shard::{Effect, OpKind, Shard, ShardOp, Turn};

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

/// One owner's side of a pair.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Side {
    pub(crate) friend: Option<FriendRecord>,
    pub(crate) block: Option<BlockRecord>,
    pub(crate) incoming: Option<RequestRecord>,
    pub(crate) outgoing: Option<RequestRecord>,
    pub(crate) feed_version: u64,
}

/// Loads `owner`'s side of the pair with `other`.
pub(crate) fn load_side(store: &Store, owner: &UserId, other: &UserId) -> Result<Side, Reject> {
    Ok(Side {
        friend: store.rel(owner, RelKind::Friend, other)?,
        block: store.rel(owner, RelKind::Block, other)?,
        incoming: store.rel(owner, RelKind::Incoming, other)?,
        outgoing: store.rel(owner, RelKind::Outgoing, other)?,
        feed_version: store
            .rel::<VersionRecord>(owner, RelKind::FeedVersion, other)?
            .map_or(0, |v| v.feed_version),
    })
}

fn request_view(from: &UserId, to: &UserId, r: &RequestRecord) -> pb::FriendRequest {
    pb::FriendRequest {
        from_user: from.to_string(),
        to_user: to.to_string(),
        message: r.message.clone(),
        state: r.state,
        created_ms: r.created_ms,
        handled_ms: r.handled_ms,
    }
}

/// `owner`'s view of the relation with `other`.
pub(crate) fn view(owner: &UserId, other: &UserId, own: &Side, theirs: &Side) -> pb::Relation {
    let f = own.friend.as_ref();
    pb::Relation {
        user_id: other.to_string(),
        is_friend: f.is_some(),
        peer_has_me: theirs.friend.is_some(),
        blocked: own.block.is_some(),
        remark: f.map(|f| f.remark.clone()).unwrap_or_default(),
        ex: f.map(|f| f.ex.clone()).unwrap_or_default(),
        friend_since_ms: f.map_or(0, |f| f.since_ms),
        blocked_since_ms: own.block.as_ref().map_or(0, |b| b.since_ms),
        incoming: own.incoming.as_ref().map(|r| request_view(other, owner, r)),
        outgoing: own.outgoing.as_ref().map(|r| request_view(owner, other, r)),
    }
}

fn pending(r: &Option<RequestRecord>) -> bool {
    r.as_ref().is_some_and(|r| r.state == pb::RequestState::Pending as i32)
}

fn settle_request(r: &mut Option<RequestRecord>, state: pb::RequestState, now: u64) {
    if let Some(r) = r.as_mut()
        && r.state == pb::RequestState::Pending as i32
    {
        r.state = state as i32;
        r.handled_ms = now;
    }
}

fn new_friend(now: u64, remark: &str, ex: &BTreeMap<String, String>) -> FriendRecord {
    FriendRecord { since_ms: now, remark: remark.to_owned(), ex: ex.clone() }
}

/// Makes both sides friends (keeping existing entries) and settles pending
/// requests as accepted. The peer's new entry takes the remark and ex the
/// peer gave with a pending request to `me`.
fn befriend(me: &mut Side, peer: &mut Side, now: u64, remark: &str, ex: &BTreeMap<String, String>) {
    if me.friend.is_none() {
        me.friend = Some(new_friend(now, remark, ex));
    }
    if peer.friend.is_none() {
        let entry = match peer.outgoing.as_ref().filter(|r| r.state == pb::RequestState::Pending as i32) {
            Some(r) => new_friend(now, &r.remark, &r.ex),
            None => new_friend(now, "", &BTreeMap::new()),
        };
        peer.friend = Some(entry);
    }
    for r in [&mut me.incoming, &mut me.outgoing, &mut peer.incoming, &mut peer.outgoing] {
        settle_request(r, pb::RequestState::Accepted, now);
    }
}

impl Shard {
    /// Stages one pair op (see the module docs).
    pub(crate) fn stage_pair(&mut self, op: ShardOp, t: &mut Turn) -> Result<(), Reject> {
        let OpKind::Pair { me, peer, op: pair_op } = &op.kind else {
            return Err(Reject::new(ErrorCode::Internal, "not a pair op"));
        };
        let conv = ConvId::direct(me, peer).map_err(|e| Reject::new(ErrorCode::SelfTarget, e.to_string()))?;
        if !t.claim(conv.to_string()) {
            t.deferred.push(op);
            return Ok(());
        }
        let needs_peer = !matches!(pair_op, PairOp::Block | PairOp::Unblock);
        if needs_peer && self.store.account(peer)?.is_none() {
            return Err(Reject::new(ErrorCode::UserNotFound, format!("user {peer} is not registered")));
        }
        if matches!(pair_op, PairOp::Import) && self.store.account(me)?.is_none() {
            return Err(Reject::new(ErrorCode::UserNotFound, format!("user {me} is not registered")));
        }
        let before_me = load_side(&self.store, me, peer)?;
        let before_peer = load_side(&self.store, peer, me)?;
        let (mut a, mut b) = (before_me.clone(), before_peer.clone());
        let now = now_ms();
        let mut status = pb::AddFriendStatus::Unspecified;
        let limits = &self.config.relations;
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
                let verification = self.store.profile(peer)?.map_or(0, |p| p.friend_verification);
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
                    return Err(Reject::new(
                        ErrorCode::NotFriends,
                        format!("{peer} is not in your friend list"),
                    ));
                }
                a.friend = None;
                if *both {
                    b.friend = None;
                }
            }
            PairOp::Update { remark, ex } => {
                let Some(f) = a.friend.as_mut() else {
                    return Err(Reject::new(
                        ErrorCode::NotFriends,
                        format!("{peer} is not in your friend list"),
                    ));
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
        self.reserve_pair(me, peer, (&before_me, &a), (&before_peer, &b), t)?;
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
        // Views that changed: feed entry and push.
        let mut my_view = view(me, peer, &a, &b);
        for (owner, other, own_before, their_before, own_after, their_after) in
            [(me, peer, &before_me, &before_peer, &a, &b), (peer, me, &before_peer, &before_me, &b, &a)]
        {
            let after_view = view(owner, other, own_after, their_after);
            if view(owner, other, own_before, their_before) == after_view {
                continue;
            }
            let v = self.clock.alloc(&mut t.versions);
            t.batch.move_rel_feed(owner, other, own_before.feed_version, v);
            t.effects.push(Effect::Fanout {
                users: vec![owner.clone()].into(),
                exclude: Some(op.origin),
                frame: frames::push(push::Event::Relation(after_view.clone())),
            });
            if owner == me {
                my_view = after_view;
            }
        }
        // Keep the cached conversation's block flags current.
        if let Some(entry) = self.cache.get_mut(&conv) {
            if let Some(i) = entry.member(me) {
                entry.blocked[i] = a.block.is_some();
            }
            if let Some(i) = entry.member(peer) {
                entry.blocked[i] = b.block.is_some();
            }
            t.touched.push(conv);
        }
        let result = match pair_op {
            PairOp::Add { .. } => response::Result::AddFriend(pb::AddFriendResult {
                status: status as i32,
                relation: Some(my_view),
            }),
            PairOp::Import => response::Result::Ok(pb::Ok {}),
            _ => response::Result::Relation(my_view),
        };
        t.effects.push(Effect::Reply {
            conn: op.origin,
            request_id: op.request_id,
            frame: frames::response(op.request_id, result),
        });
        Ok(())
    }

    /// Reserves the friend and blacklist count changes of both sides; fails
    /// with the limit's code (and reserves nothing) when one is full.
    fn reserve_pair(
        &self,
        me: &UserId,
        peer: &UserId,
        mine: (&Side, &Side),
        theirs: (&Side, &Side),
        t: &mut Turn,
    ) -> Result<(), Reject> {
        let r = &self.config.relations;
        let delta = |before: bool, after: bool| i64::from(after) - i64::from(before);
        let wanted = [
            (me, Counted::Friends, delta(mine.0.friend.is_some(), mine.1.friend.is_some()), r.max_friends),
            (
                peer,
                Counted::Friends,
                delta(theirs.0.friend.is_some(), theirs.1.friend.is_some()),
                r.max_friends,
            ),
            (me, Counted::Blocks, delta(mine.0.block.is_some(), mine.1.block.is_some()), r.max_blacklist),
        ];
        let mut got = Vec::new();
        for (i, (user, what, d, limit)) in wanted.into_iter().enumerate() {
            if d == 0 {
                continue;
            }
            match self.shared.counters.reserve(&self.store, user, what, d, limit)? {
                Some(res) => got.push(res),
                None => {
                    for res in got {
                        self.shared.counters.settle(res, false);
                    }
                    return Err(match i {
                        0 => {
                            Reject::new(ErrorCode::FriendLimit, format!("your friend list is full ({limit})"))
                        }
                        1 => Reject::new(
                            ErrorCode::PeerFriendLimit,
                            format!("{peer}'s friend list is full ({limit})"),
                        ),
                        _ => Reject::new(
                            ErrorCode::BlacklistLimit,
                            format!("your blacklist is full ({limit})"),
                        ),
                    });
                }
            }
        }
        t.reservations.extend(got);
        Ok(())
    }
}
