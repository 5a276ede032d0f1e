//! Group lifecycle and settings: CreateGroup, UpdateGroup, DismissGroup,
//! TransferGroup, MuteGroupAll.
//!
//! Invariant: each op only checks and decides (a [`Plan`], `new_info`); it
//! changes nothing itself — `plan::finish` stages the decision.

use missive_protocol::pb::{self, response};
use missive_protocol::{ErrorCode, UserId};
use missive_storage::GroupRecord;

use crate::error::Reject;
use crate::services::checks;

use super::plan::{Ctx, Plan};
use super::{check_not_blocked_by, check_registered, check_room, reserve_joins};
use super::{csv, denied, is_manager, role_of};

/// The defaults of a group type: (join, invite, edit).
fn type_defaults(t: pb::GroupType) -> (pb::JoinMode, pb::InviteMode, pb::EditMode) {
    match t {
        pb::GroupType::Public => (pb::JoinMode::Approval, pb::InviteMode::Admins, pb::EditMode::Admins),
        _ => (pb::JoinMode::InviteOnly, pb::InviteMode::AnyMember, pb::EditMode::Everyone),
    }
}

pub(super) fn create(c: &mut Ctx<'_>, req: &pb::CreateGroup, members: &[UserId]) -> Result<Plan, Reject> {
    let me = c.me().clone();
    if c.e.info.is_some() {
        return Err(Reject::new(ErrorCode::GroupExists, format!("group {} already exists", c.e.id)));
    }
    let gt = match pb::GroupType::try_from(req.r#type) {
        Ok(pb::GroupType::Unspecified) | Ok(pb::GroupType::Work) => pb::GroupType::Work,
        Ok(pb::GroupType::Public) => pb::GroupType::Public,
        _ => return Err(checks::invalid("type: only WORK and PUBLIC groups are served")),
    };
    let config = std::sync::Arc::clone(&c.s.node.config);
    let limit = config.groups.max_members;
    let max_members = if req.max_members == 0 { limit } else { req.max_members };
    if max_members > limit || max_members < 2 {
        return Err(checks::invalid(format!("max_members: 2..={limit}")));
    }
    let (j, i, ed) = type_defaults(gt);
    let now = c.now();
    let mut info = GroupRecord {
        group_type: gt as i32,
        join_mode: j as i32,
        invite_mode: i as i32,
        edit_mode: ed as i32,
        owner: me.to_string(),
        max_members,
        created_ms: now,
        updated_ms: now,
        ..Default::default()
    };
    apply_patch(&mut info, req.info.as_ref().unwrap_or(&pb::GroupPatch::default()), &config.relations)?;
    let mut all = vec![me.clone()];
    all.extend(members.iter().filter(|u| **u != me).cloned());
    all.sort();
    all.dedup();
    check_room(&info, all.len())?;
    check_registered(&c.s.node.store, &all)?;
    if !c.admin() {
        // [GR-30]: an admin create adds the members without their consent.
        check_not_blocked_by(&c.s.node.store, &me, &all)?;
    }
    reserve_joins(&c.s.node, &all, c.t)?;
    c.e.members_mut().clear();
    c.new_info = info;
    let mut plan = Plan::with_tip(
        response::Result::Ok(pb::Ok {}),
        "group.created",
        &[("owner", me.to_string()), ("members", csv(&all))],
    );
    for u in all {
        let role = if u == me { pb::GroupRole::Owner } else { pb::GroupRole::Member };
        plan.join.push((u, role));
    }
    plan.created = true;
    Ok(plan)
}

pub(super) fn update(c: &mut Ctx<'_>, patch: &pb::GroupPatch) -> Result<Plan, Reject> {
    let m = c.need_member()?;
    let edits = patch.name.is_some()
        || patch.avatar_url.is_some()
        || patch.introduction.is_some()
        || patch.notice.is_some()
        || !patch.ex.is_empty();
    let settings = patch.join_mode.is_some()
        || patch.invite_mode.is_some()
        || patch.invitee_consent.is_some()
        || patch.edit_mode.is_some()
        || patch.history_visibility.is_some();
    if edits && c.info.edit_mode != pb::EditMode::Everyone as i32 && !is_manager(&m) {
        return Err(denied("edit the group info"));
    }
    if settings && !is_manager(&m) {
        return Err(denied("change the group settings"));
    }
    apply_patch(&mut c.new_info, patch, &c.s.node.config.relations)?;
    c.new_info.updated_ms = c.now();
    Ok(Plan::with_tip(c.info_reply(&c.new_info), "group.info_updated", &[("by", c.me().to_string())]))
}

pub(super) fn dismiss(c: &mut Ctx<'_>) -> Result<Plan, Reject> {
    let m = c.need_member()?;
    if role_of(&m) != pb::GroupRole::Owner {
        return Err(denied("dismiss the group (owner only)"));
    }
    c.new_info.dismissed = true;
    let mut plan =
        Plan::with_tip(response::Result::Ok(pb::Ok {}), "group.dismissed", &[("by", c.me().to_string())]);
    plan.leave = c.e.members.keys().cloned().collect();
    Ok(plan)
}

pub(super) fn transfer(c: &mut Ctx<'_>, new_owner: &UserId, quit: bool) -> Result<Plan, Reject> {
    let m = c.need_member()?;
    let me = c.me().clone();
    if role_of(&m) != pb::GroupRole::Owner {
        return Err(denied("transfer the group (owner only)"));
    }
    // [GR-30]: an admin transfers from the current owner and is named as `by`.
    let from = if c.admin() { c.info.owner.clone() } else { me.to_string() };
    if new_owner.as_str() == from {
        return Err(Reject::new(ErrorCode::SelfTarget, "name another member than the owner"));
    }
    c.target_member(new_owner)?;
    c.new_info.owner = new_owner.to_string();
    let mut params = vec![("from", from), ("to", new_owner.to_string()), ("quit", quit.to_string())];
    if c.admin() {
        params.push(("by", me.to_string()));
    }
    let mut plan = Plan::with_tip(c.info_reply(&c.new_info), "group.owner_transferred", &params);
    if quit {
        plan.leave.push(me);
    }
    Ok(plan)
}

pub(super) fn mute_all(c: &mut Ctx<'_>, muted: bool) -> Result<Plan, Reject> {
    let m = c.need_member()?;
    if !is_manager(&m) {
        return Err(denied("mute the group"));
    }
    c.new_info.mute_all = muted;
    c.new_info.updated_ms = c.now();
    Ok(Plan::with_tip(
        c.info_reply(&c.new_info),
        "group.mute_all",
        &[("muted", muted.to_string()), ("by", c.me().to_string())],
    ))
}

/// Applies a checked patch to a group record.
pub(super) fn apply_patch(
    i: &mut GroupRecord,
    p: &pb::GroupPatch,
    r: &crate::config::Relations,
) -> Result<(), Reject> {
    if let Some(v) = &p.name {
        i.name = v.clone();
    }
    if let Some(v) = &p.avatar_url {
        i.avatar_url = v.clone();
    }
    if let Some(v) = &p.introduction {
        i.introduction = v.clone();
    }
    if let Some(v) = &p.notice {
        i.notice = v.clone();
    }
    checks::merge_ex(&mut i.ex, &p.ex, r, "ex")?;
    if let Some(v) = p.join_mode
        && v != 0
    {
        i.join_mode = v;
    }
    if let Some(v) = p.invite_mode
        && v != 0
    {
        i.invite_mode = v;
    }
    if let Some(v) = p.invitee_consent {
        i.invitee_consent = v;
    }
    if let Some(v) = p.edit_mode
        && v != 0
    {
        i.edit_mode = v;
    }
    if let Some(v) = p.history_visibility {
        i.history_visibility = v;
    }
    Ok(())
}
