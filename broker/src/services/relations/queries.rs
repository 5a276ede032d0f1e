//! Read-only relation requests: friend lists, friend search, friend requests,
//! relation checks and the blacklist.
//!
//! Role: served on the connection's own worker from committed storage; no
//! owner shard is involved.
//!
//! Invariants: a read observes every write whose response was sent before
//! the read arrived (writes answer only after their batch is durable). A read
//! sent before a write's response may or may not observe it (spec 8.1).

use missive_protocol::pb::{self, response};
use missive_protocol::{ErrorCode, UserId};
use missive_storage::{BlockRecord, RelKind, RequestRecord, Store};
use prost::Message as _;

use crate::error::Reject;
use crate::node::Node;
use crate::services::accounts::profile_of;
use crate::services::checks::{self, MAX_QUERY};

use super::side::{load_side, view};

/// A read-only relation request.
#[derive(Debug)]
pub(crate) enum Query {
    ListFriends(pb::ListFriends),
    SearchFriends(pb::SearchFriends),
    ListFriendRequests(pb::ListFriendRequests),
    CheckRelations(pb::CheckRelations),
    ListBlacklist(pb::ListBlacklist),
}

/// `owner`'s view of the relation with `other`, from storage.
pub(crate) fn relation_of(store: &Store, owner: &UserId, other: &UserId) -> Result<pb::Relation, Reject> {
    let own = load_side(store, owner, other)?;
    let theirs = load_side(store, other, owner)?;
    Ok(view(owner, other, &own, &theirs))
}

fn corrupt(e: prost::DecodeError) -> Reject {
    Reject::new(ErrorCode::Internal, format!("stored relation undecodable: {e}"))
}

/// Serves a read-only relation request from committed storage.
pub(crate) fn serve(node: &Node, user: &UserId, q: Query) -> Result<response::Result, Reject> {
    let store = &node.store;
    let r = &node.config.relations;
    Ok(match q {
        Query::ListFriends(req) => {
            checks::cursor(&req.cursor)?;
            let limit = checks::page(req.limit, r);
            let rows = store.rel_page(user, RelKind::Friend, &req.cursor, limit + 1)?;
            let (friends, profiles, next_cursor) = friend_page(store, user, rows, limit, req.with_profiles)?;
            response::Result::Friends(pb::FriendList { friends, profiles, next_cursor })
        }
        Query::SearchFriends(req) => {
            if req.query.is_empty() || req.query.len() > MAX_QUERY {
                return Err(checks::invalid(format!("query: 1..={MAX_QUERY} bytes")));
            }
            let limit = checks::page(req.limit, r);
            let needle = req.query.to_lowercase();
            let mut friends = Vec::new();
            let mut profiles = Vec::new();
            for (peer, bytes) in store.rel_page(user, RelKind::Friend, "", r.max_friends)? {
                let Ok(peer) = UserId::new(peer) else { continue };
                let f = missive_storage::FriendRecord::decode(bytes.as_slice()).map_err(corrupt)?;
                let profile = profile_of(store, &peer)?;
                let nick = profile.as_ref().map(|p| p.nickname.to_lowercase()).unwrap_or_default();
                if peer.as_str().to_lowercase().contains(&needle)
                    || nick.contains(&needle)
                    || f.remark.to_lowercase().contains(&needle)
                {
                    friends.push(relation_of(store, user, &peer)?);
                    profiles.extend(profile);
                    if friends.len() >= limit {
                        break;
                    }
                }
            }
            response::Result::Friends(pb::FriendList { friends, profiles, next_cursor: String::new() })
        }
        Query::ListFriendRequests(req) => {
            checks::cursor(&req.cursor)?;
            let limit = checks::page(req.limit, r);
            let kind = if req.outgoing { RelKind::Outgoing } else { RelKind::Incoming };
            let (rows, next_cursor) = cut_page(store.rel_page(user, kind, &req.cursor, limit + 1)?, limit);
            let mut requests = Vec::new();
            for (peer, bytes) in rows {
                let rec = RequestRecord::decode(bytes.as_slice()).map_err(corrupt)?;
                let (from, to) =
                    if req.outgoing { (user.to_string(), peer) } else { (peer, user.to_string()) };
                requests.push(pb::FriendRequest {
                    from_user: from,
                    to_user: to,
                    message: rec.message,
                    state: rec.state,
                    created_ms: rec.created_ms,
                    handled_ms: rec.handled_ms,
                });
            }
            response::Result::FriendRequests(pb::FriendRequestList { requests, next_cursor })
        }
        Query::CheckRelations(req) => {
            let ids = checks::user_ids(req.user_ids, "user_ids")?;
            let relations = ids.iter().map(|u| relation_of(store, user, u)).collect::<Result<Vec<_>, _>>()?;
            response::Result::Relations(pb::Relations { relations })
        }
        Query::ListBlacklist(req) => {
            checks::cursor(&req.cursor)?;
            let limit = checks::page(req.limit, r);
            let (rows, next_cursor) =
                cut_page(store.rel_page(user, RelKind::Block, &req.cursor, limit + 1)?, limit);
            let mut users = Vec::new();
            for (peer, bytes) in rows {
                let rec = BlockRecord::decode(bytes.as_slice()).map_err(corrupt)?;
                users.push(pb::BlockedUser { user_id: peer, since_ms: rec.since_ms });
            }
            response::Result::Blacklist(pb::Blacklist { users, next_cursor })
        }
    })
}

/// One page of `(peer, record)` rows ([`checks::cut_page`]).
fn cut_page(rows: Vec<(String, Vec<u8>)>, limit: usize) -> (Vec<(String, Vec<u8>)>, String) {
    checks::cut_page(rows, limit, |(peer, _)| peer.as_str())
}

/// Builds one friend-list page from `limit + 1` raw rows.
fn friend_page(
    store: &Store,
    user: &UserId,
    rows: Vec<(String, Vec<u8>)>,
    limit: usize,
    with_profiles: bool,
) -> Result<(Vec<pb::Relation>, Vec<pb::Profile>, String), Reject> {
    let (rows, next) = cut_page(rows, limit);
    let mut friends = Vec::with_capacity(rows.len());
    let mut profiles = Vec::new();
    for (peer, _) in rows {
        let Ok(peer) = UserId::new(peer) else { continue };
        friends.push(relation_of(store, user, &peer)?);
        if with_profiles {
            profiles.extend(profile_of(store, &peer)?);
        }
    }
    Ok((friends, profiles, next))
}
