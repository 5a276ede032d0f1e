//! Read-only account, profile, presence and relation requests.
//!
//! Role: served on the connection's own worker, like sync, from committed
//! storage and the online directory; no owner shard is involved.
//!
//! Invariants: a read observes every write whose response was sent before
//! the read arrived (writes answer only after their batch is durable). A read
//! sent before a write's response may or may not observe it (spec 8.1).

use missive_protocol::pb::{self, response};
use missive_protocol::{ErrorCode, UserId};
use missive_storage::{BlockRecord, ProfileRecord, RelKind, RequestRecord, Store};
use prost::Message as _;

use crate::Shared;
use crate::checks::{self, MAX_QUERY};
use crate::directory::Directory;
use crate::error::Reject;
use crate::relations::{load_side, view};

/// The wire profile of `user` from its record.
pub(crate) fn profile_view(user: &UserId, r: &ProfileRecord) -> pb::Profile {
    pb::Profile {
        user_id: user.to_string(),
        nickname: r.nickname.clone(),
        avatar_url: r.avatar_url.clone(),
        gender: r.gender,
        birthday: r.birthday.clone(),
        signature: r.signature.clone(),
        ex: r.ex.clone(),
        friend_verification: r.friend_verification,
        updated_ms: r.updated_ms,
    }
}

/// The profile of a registered user (empty if never set); `None` if unregistered.
pub(crate) fn profile_of(store: &Store, user: &UserId) -> Result<Option<pb::Profile>, Reject> {
    if store.account(user)?.is_none() {
        return Ok(None);
    }
    Ok(Some(profile_view(user, &store.profile(user)?.unwrap_or_default())))
}

/// `user`'s presence from the directory and the stored status.
pub(crate) fn presence_of(store: &Store, dir: &Directory, user: &UserId) -> Result<pb::Presence, Reject> {
    let online = dir.online(user);
    let status = store.status(user)?.unwrap_or_default();
    Ok(pb::Presence {
        user_id: user.to_string(),
        online: !online.platforms.is_empty(),
        platforms: online.platforms.iter().map(|p| *p as i32).collect(),
        status_text: status.text,
        changed_ms: online.changed_ms.max(status.changed_ms),
    })
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

/// Serves one read-only request of sections 12 and 13.
pub(crate) fn serve(shared: &Shared, user: &UserId, op: pb::request::Op) -> Result<response::Result, Reject> {
    use pb::request::Op;
    let store = &shared.store;
    let r = &shared.config.relations;
    Ok(match op {
        Op::AccountsExist(req) => {
            let mut accounts = Vec::new();
            for u in checks::user_ids(req.user_ids, "user_ids")? {
                let a = store.account(&u)?;
                accounts.push(pb::AccountStatus {
                    user_id: u.to_string(),
                    exists: a.is_some(),
                    disabled: a.is_some_and(|a| a.disabled),
                });
            }
            response::Result::Accounts(pb::AccountsExistResult { accounts })
        }
        Op::GetProfiles(req) => {
            let mut profiles = Vec::new();
            for u in checks::user_ids(req.user_ids, "user_ids")? {
                profiles.extend(profile_of(store, &u)?);
            }
            response::Result::Profiles(pb::Profiles { profiles })
        }
        Op::GetPresence(req) => {
            let ids = checks::user_ids(req.user_ids, "user_ids")?;
            let presences = ids
                .iter()
                .map(|u| presence_of(store, &shared.directory, u))
                .collect::<Result<Vec<_>, _>>()?;
            response::Result::Presence(pb::PresenceList { presences })
        }
        Op::ListPresenceSubscriptions(_) => {
            let mut presences = Vec::new();
            for s in store.subscriptions(user, r.max_subscriptions)? {
                if let Ok(u) = UserId::new(s) {
                    presences.push(presence_of(store, &shared.directory, &u)?);
                }
            }
            response::Result::Presence(pb::PresenceList { presences })
        }
        Op::ListFriends(req) => {
            checks::cursor(&req.cursor)?;
            let limit = checks::page(req.limit, r);
            let rows = store.rel_page(user, RelKind::Friend, &req.cursor, limit + 1)?;
            let (friends, profiles, next_cursor) = friend_page(store, user, rows, limit, req.with_profiles)?;
            response::Result::Friends(pb::FriendList { friends, profiles, next_cursor })
        }
        Op::SearchFriends(req) => {
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
        Op::ListFriendRequests(req) => {
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
        Op::CheckRelations(req) => {
            let ids = checks::user_ids(req.user_ids, "user_ids")?;
            let relations = ids.iter().map(|u| relation_of(store, user, u)).collect::<Result<Vec<_>, _>>()?;
            response::Result::Relations(pb::Relations { relations })
        }
        Op::ListBlacklist(req) => {
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
        _ => return Err(Reject::new(ErrorCode::Internal, "not a read-only request")),
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

/// Whether `op` is served by [`serve`].
pub(crate) fn is_query(op: &pb::request::Op) -> bool {
    use pb::request::Op;
    matches!(
        op,
        Op::AccountsExist(_)
            | Op::GetProfiles(_)
            | Op::GetPresence(_)
            | Op::ListPresenceSubscriptions(_)
            | Op::ListFriends(_)
            | Op::SearchFriends(_)
            | Op::ListFriendRequests(_)
            | Op::CheckRelations(_)
            | Op::ListBlacklist(_)
    )
}
