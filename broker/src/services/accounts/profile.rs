//! ImportUser and SetProfile on the subject's owner shard.
//!
//! Invariant: a profile change moves the `Profile(subject)` feed entry of
//! every user who lists the subject as a friend (at most
//! [`MAX_PROFILE_FANOUT`]) in the same batch, and pushes the new profile.

use missive_protocol::pb::{self, push, response};
use missive_protocol::{ErrorCode, UserId};
use missive_storage::{AccountRecord, ProfileRecord};

use crate::error::Reject;
use crate::frames;
use crate::services::accounts::{AccountsOp, MAX_PROFILE_FANOUT, profile_view};
use crate::services::{Services, Undo, checks};
use crate::shard::{Effect, ShardOp, Turn, failpoint};

pub(super) fn stage_import(
    s: &mut Services,
    user: &UserId,
    patch: &pb::ProfilePatch,
    t: &mut Turn<Undo>,
) -> Result<response::Result, Reject> {
    if s.node.store.account(user)?.is_some() {
        return Err(Reject::new(ErrorCode::AccountExists, format!("user {user} is already registered")));
    }
    let now = t.now_ms;
    t.batch.put_account(user, &AccountRecord { created_ms: now, ..Default::default() });
    let mut rec = ProfileRecord::default();
    if apply_patch(&mut rec, patch, &s.node.config.relations)? {
        rec.updated_ms = now;
        rec.feed_version = s.node.clock.alloc(&mut t.versions);
        t.batch.put_profile(user, 0, &rec);
    }
    Ok(response::Result::Profile(profile_view(user, &rec)))
}

pub(super) fn stage_profile(
    s: &mut Services,
    op: &ShardOp<AccountsOp>,
    patch: &pb::ProfilePatch,
    t: &mut Turn<Undo>,
) -> Result<response::Result, Reject> {
    let user = &op.user;
    let store = &s.node.store;
    let mut rec = store.profile(user)?.unwrap_or_default();
    let old = rec.feed_version;
    if !apply_patch(&mut rec, patch, &s.node.config.relations)? {
        return Ok(response::Result::Profile(profile_view(user, &rec)));
    }
    rec.updated_ms = t.now_ms;
    rec.feed_version = s.node.clock.alloc(&mut t.versions);
    t.batch.put_profile(user, old, &rec);
    // Users who list the caller as a friend see the change in their feeds, and live.
    let mut users = Vec::new();
    for (peer, _) in store.rel_page(user, missive_storage::RelKind::FriendOf, "", MAX_PROFILE_FANOUT)? {
        let Ok(friend) = UserId::new(peer) else { continue };
        failpoint::check("accounts.profile.friend_feed")?;
        let old = store.profile_feed_version(&friend, user)?;
        let v = s.node.clock.alloc(&mut t.versions);
        t.batch.move_profile_feed(&friend, user, old, v);
        users.push(friend);
    }
    users.push(user.clone());
    let view = profile_view(user, &rec);
    t.effect(Effect::Fanout {
        users: users.into(),
        exclude: Some(op.origin.conn()),
        frame: frames::push(push::Event::Profile(view.clone())),
    });
    Ok(response::Result::Profile(view))
}

/// Applies a (checked) patch; returns whether anything changed.
fn apply_patch(
    rec: &mut ProfileRecord,
    p: &pb::ProfilePatch,
    r: &crate::config::Relations,
) -> Result<bool, Reject> {
    let before = rec.clone();
    if let Some(v) = &p.nickname {
        rec.nickname = v.clone();
    }
    if let Some(v) = &p.avatar_url {
        rec.avatar_url = v.clone();
    }
    if let Some(v) = p.gender {
        rec.gender = v;
    }
    if let Some(v) = &p.birthday {
        rec.birthday = v.clone();
    }
    if let Some(v) = &p.signature {
        rec.signature = v.clone();
    }
    if let Some(v) = p.friend_verification {
        rec.friend_verification = v;
    }
    checks::merge_ex(&mut rec.ex, &p.ex, r, "ex")?;
    Ok(*rec != before)
}
