//! One owner's side of a pair relation, and the views built from both sides.
//!
//! Invariant: a [`Side`] is loaded from committed storage; an op changes
//! copies and writes only the records that differ.

use std::collections::BTreeMap;

use missive_protocol::UserId;
use missive_protocol::pb;
use missive_storage::{BlockRecord, FriendRecord, RelKind, RequestRecord, Store, VersionRecord};

use crate::error::Reject;

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

pub(super) fn request_view(from: &UserId, to: &UserId, r: &RequestRecord) -> pb::FriendRequest {
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

pub(super) fn pending(r: &Option<RequestRecord>) -> bool {
    r.as_ref().is_some_and(|r| r.state == pb::RequestState::Pending as i32)
}

pub(super) fn settle_request(r: &mut Option<RequestRecord>, state: pb::RequestState, now: u64) {
    if let Some(r) = r.as_mut()
        && r.state == pb::RequestState::Pending as i32
    {
        r.state = state as i32;
        r.handled_ms = now;
    }
}

pub(super) fn new_friend(now: u64, remark: &str, ex: &BTreeMap<String, String>) -> FriendRecord {
    FriendRecord { since_ms: now, remark: remark.to_owned(), ex: ex.clone() }
}

/// Makes both sides friends (keeping existing entries) and settles pending
/// requests as accepted. The peer's new entry takes the remark and ex the
/// peer gave with a pending request to `me`.
pub(super) fn befriend(
    me: &mut Side,
    peer: &mut Side,
    now: u64,
    remark: &str,
    ex: &BTreeMap<String, String>,
) {
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
