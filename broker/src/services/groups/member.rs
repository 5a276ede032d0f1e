//! One member's settings: SetGroupRole, SetGroupNickname, MuteGroupMember,
//! SetGroupNotify.
//!
//! Invariant: the member record is staged and cached together
//! ([`store_member`]); the cached list is copied on write, so a refused op's
//! undo snapshot still holds the old list.

use missive_protocol::pb::{self, response};
use missive_protocol::{ErrorCode, UserId};
use missive_storage::GroupMemberRecord;

use crate::error::Reject;
use crate::services::checks;

use super::plan::{Ctx, Plan};
use super::views::member_view;
use super::{denied, is_manager, role_of};

/// Stages a changed member record (storage and cache); returns its wire view.
fn store_member(c: &mut Ctx<'_>, user: &UserId, m: GroupMemberRecord) -> pb::GroupMember {
    let view = member_view(&c.e.id, user.as_str(), &m);
    c.t.batch.put_group_member(&c.e.id, user, Some(&m));
    c.e.members_mut().insert(user.clone(), m);
    view
}

pub(super) fn set_role(c: &mut Ctx<'_>, target: &UserId, role: pb::GroupRole) -> Result<Plan, Reject> {
    let m = c.need_member()?;
    if role_of(&m) != pb::GroupRole::Owner {
        return Err(denied("set admins (owner only)"));
    }
    if target == c.me() && !c.admin() {
        return Err(Reject::new(ErrorCode::SelfTarget, "the owner's role changes by TransferGroup"));
    }
    if !matches!(role, pb::GroupRole::Admin | pb::GroupRole::Member) {
        return Err(checks::invalid("role: ADMIN or MEMBER"));
    }
    let mut tm = c.target_member(target)?;
    c.admin_spares_owner(&tm, "given another role")?;
    tm.role = role as i32;
    let view = store_member(c, target, tm);
    Ok(Plan::with_tip(
        response::Result::GroupMember(view),
        "group.role_changed",
        &[("user", target.to_string()), ("role", role.as_str_name().to_owned()), ("by", c.me().to_string())],
    ))
}

pub(super) fn set_nickname(c: &mut Ctx<'_>, target: &UserId, nickname: &str) -> Result<Plan, Reject> {
    let m = c.need_member()?;
    let mut tm = c.target_member(target)?;
    let allowed = target == c.me()
        || role_of(&m) == pb::GroupRole::Owner
        || (role_of(&m) == pb::GroupRole::Admin && role_of(&tm) == pb::GroupRole::Member);
    if !allowed {
        return Err(denied("change this member's group nickname"));
    }
    tm.nickname = nickname.to_owned();
    let view = store_member(c, target, tm);
    Ok(Plan::with_tip(
        response::Result::GroupMember(view),
        "group.nickname_changed",
        &[("user", target.to_string()), ("nickname", nickname.to_owned()), ("by", c.me().to_string())],
    ))
}

pub(super) fn mute(c: &mut Ctx<'_>, target: &UserId, duration_secs: u64) -> Result<Plan, Reject> {
    let m = c.need_member()?;
    if !is_manager(&m) {
        return Err(denied("mute members"));
    }
    if target == c.me() && !c.admin() {
        return Err(Reject::new(ErrorCode::SelfTarget, "name another member"));
    }
    let mut tm = c.target_member(target)?;
    if role_of(&m) == pb::GroupRole::Admin && role_of(&tm) != pb::GroupRole::Member {
        return Err(denied("mute the owner or another admin"));
    }
    c.admin_spares_owner(&tm, "muted")?;
    tm.mute_until_ms =
        if duration_secs == 0 { 0 } else { c.now().saturating_add(duration_secs.saturating_mul(1000)) };
    let view = store_member(c, target, tm);
    let until = view.mute_until_ms.to_string();
    Ok(Plan::with_tip(
        response::Result::GroupMember(view),
        "group.member_muted",
        &[("user", target.to_string()), ("until_ms", until), ("by", c.me().to_string())],
    ))
}

pub(super) fn set_notify(c: &mut Ctx<'_>, notify: pb::GroupNotify) -> Result<Plan, Reject> {
    let mut m = c.need_member()?;
    m.notify = notify as i32;
    let me = c.me().clone();
    store_member(c, &me, m);
    let node = std::sync::Arc::clone(&c.s.node);
    let rec = c.s.groups.uconv_of(&node.store, c.conv, &me)?;
    c.s.groups.write_uconv(&node.clock, c.t, c.conv, &me, rec, true);
    let mut plan = Plan::reply(response::Result::Ok(pb::Ok {}));
    plan.state_reply = true;
    Ok(plan)
}
