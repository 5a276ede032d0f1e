//! Checks and routing of the account, profile, presence and relation writes.
//!
//! Role: the stateless half of each request (input checks, the admin check)
//! runs on the connection's worker; the op then goes to its owner shard: the
//! subject user's shard (`hash(USER_TAG, user)`) for per-user records, the
//! direct conversation's shard for pair relations (see `relations`).
//!
//! Invariants: permission (admin role) is checked before anything is routed;
//! every id, text and map is bounded here, so owner shards only see valid input.

use std::collections::BTreeMap;

use missive_protocol::pb::request::Op;
use missive_protocol::{ConvId, ErrorCode, UserId};

use crate::Shared;
use crate::checks;
use crate::error::Reject;
use crate::relations::PairOp;
use crate::shard::OpKind;
use crate::worker::{USER_TAG, owner_of};

/// Where a request goes.
#[derive(Debug)]
pub(crate) enum Routed {
    /// An op for this owner shard.
    Owner(usize, OpKind),
    /// Not an account/relation request: a conversation request, routed by the caller.
    Conversation(Op),
}

fn admin_only(admin: bool) -> Result<(), Reject> {
    if admin { Ok(()) } else { Err(Reject::new(ErrorCode::PermissionDenied, "admin token required")) }
}

fn not_self(user: &UserId, other: &UserId) -> Result<(), Reject> {
    if user == other {
        return Err(Reject::new(ErrorCode::SelfTarget, "name another user, not yourself"));
    }
    Ok(())
}

/// Checks an account/relation write and picks its owner shard.
pub(crate) fn user_op(shared: &Shared, user: &UserId, admin: bool, op: Op) -> Result<Routed, Reject> {
    let workers = shared.senders.len();
    let r = &shared.config.relations;
    let user_shard = |u: &UserId| owner_of((USER_TAG, u.as_str()), workers);
    let pair = |me: UserId, peer: UserId, op: PairOp| -> Result<Routed, Reject> {
        let conv =
            ConvId::direct(&me, &peer).map_err(|e| Reject::new(ErrorCode::SelfTarget, e.to_string()))?;
        Ok(Routed::Owner(owner_of(conv.as_str(), workers), OpKind::Pair { me, peer, op }))
    };
    let ex_checked = |ex: BTreeMap<String, String>| -> Result<BTreeMap<String, String>, Reject> {
        // Entries and total size; the merge with stored entries is checked again by the owner.
        let mut probe = BTreeMap::new();
        checks::merge_ex(&mut probe, &ex, r, "ex")?;
        Ok(ex)
    };
    Ok(match op {
        Op::ImportUser(req) => {
            admin_only(admin)?;
            let target = checks::user_id(req.user_id, "user_id")?;
            let patch = req.profile.unwrap_or_default();
            checks::profile_patch(&patch, r)?;
            Routed::Owner(user_shard(&target), OpKind::ImportUser { target, patch })
        }
        Op::SetAccountDisabled(req) => {
            admin_only(admin)?;
            let target = checks::user_id(req.user_id, "user_id")?;
            checks::text(&req.reason, r.max_text_bytes, "reason")?;
            Routed::Owner(
                user_shard(&target),
                OpKind::SetDisabled { target, disabled: req.disabled, reason: req.reason },
            )
        }
        Op::RevokeTokens(req) => {
            admin_only(admin)?;
            let target = checks::user_id(req.user_id, "user_id")?;
            Routed::Owner(user_shard(&target), OpKind::RevokeTokens { target })
        }
        Op::SetProfile(req) => {
            let patch = req.patch.unwrap_or_default();
            checks::profile_patch(&patch, r)?;
            Routed::Owner(user_shard(user), OpKind::SetProfile { patch })
        }
        Op::SubscribePresence(req) => {
            let targets = checks::user_ids(req.user_ids, "user_ids")?;
            for t in &targets {
                not_self(user, t)?;
            }
            Routed::Owner(user_shard(user), OpKind::Subscribe { targets })
        }
        Op::UnsubscribePresence(req) => {
            let targets = checks::user_ids(req.user_ids, "user_ids")?;
            Routed::Owner(user_shard(user), OpKind::Unsubscribe { targets })
        }
        Op::SetPresenceStatus(req) => {
            checks::text(&req.text, r.max_text_bytes, "text")?;
            Routed::Owner(user_shard(user), OpKind::SetStatus { text: req.text })
        }
        Op::AddFriend(req) => {
            let peer = checks::user_id(req.user_id, "user_id")?;
            not_self(user, &peer)?;
            checks::text(&req.message, r.max_text_bytes, "message")?;
            checks::text(&req.remark, r.max_name_bytes, "remark")?;
            let ex = ex_checked(req.ex)?;
            pair(user.clone(), peer, PairOp::Add { message: req.message, remark: req.remark, ex })?
        }
        Op::RespondFriendRequest(req) => {
            let peer = checks::user_id(req.user_id, "user_id")?;
            not_self(user, &peer)?;
            checks::text(&req.remark, r.max_name_bytes, "remark")?;
            let ex = ex_checked(req.ex)?;
            pair(user.clone(), peer, PairOp::Respond { accept: req.accept, remark: req.remark, ex })?
        }
        Op::DeleteFriend(req) => {
            let peer = checks::user_id(req.user_id, "user_id")?;
            not_self(user, &peer)?;
            pair(user.clone(), peer, PairOp::Delete { both: req.both_sides })?
        }
        Op::UpdateFriend(req) => {
            let peer = checks::user_id(req.user_id, "user_id")?;
            not_self(user, &peer)?;
            if let Some(remark) = &req.remark {
                checks::text(remark, r.max_name_bytes, "remark")?;
            }
            if req.remark.is_none() && req.ex.is_empty() {
                return Err(checks::invalid("nothing to update"));
            }
            let ex = ex_checked(req.ex)?;
            pair(user.clone(), peer, PairOp::Update { remark: req.remark, ex })?
        }
        Op::ImportFriendship(req) => {
            admin_only(admin)?;
            let a = checks::user_id(req.user_a, "user_a")?;
            let b = checks::user_id(req.user_b, "user_b")?;
            if a == b {
                return Err(Reject::new(ErrorCode::SelfTarget, "user_a and user_b must differ"));
            }
            pair(a, b, PairOp::Import)?
        }
        Op::AddToBlacklist(req) => {
            let peer = checks::user_id(req.user_id, "user_id")?;
            not_self(user, &peer)?;
            pair(user.clone(), peer, PairOp::Block)?
        }
        Op::RemoveFromBlacklist(req) => {
            let peer = checks::user_id(req.user_id, "user_id")?;
            not_self(user, &peer)?;
            pair(user.clone(), peer, PairOp::Unblock)?
        }
        other => Routed::Conversation(other),
    })
}
