//! Stateless checks of group requests, run by `route` on the connection's
//! worker: ids parse, texts and maps are bounded, enums are defined.
//!
//! Invariant: the owner shard only sees well-formed ops; everything that
//! depends on the group's state (membership, roles, modes) is decided by the
//! owner at the moment of the write.

use std::collections::BTreeMap;

use missive_protocol::pb;
use missive_protocol::{ConvId, GroupId, UserId};

use crate::config::Relations;
use crate::error::Reject;
use crate::services::checks;

use super::{GroupOp, GroupsOp};

/// The conversation of a group id field.
pub(crate) fn group_conv(group: &str) -> Result<ConvId, Reject> {
    ConvId::parse(&format!("g:{group}")).map_err(|e| checks::invalid(format!("group_id: {e}")))
}

/// A group id field (queries).
pub(crate) fn group_id(group: &str) -> Result<GroupId, Reject> {
    group_conv(group)?.group_id().ok_or_else(|| checks::invalid("group_id: not a group id"))
}

fn op(group: &str, op: GroupOp) -> Result<GroupsOp, Reject> {
    Ok(GroupsOp::new(group_conv(group)?, op))
}

fn patch_ok(p: &pb::GroupPatch, r: &Relations) -> Result<(), Reject> {
    if let Some(v) = &p.name {
        checks::text(v, r.max_name_bytes, "name")?;
    }
    if let Some(v) = &p.avatar_url {
        checks::text(v, r.max_url_bytes, "avatar_url")?;
    }
    if let Some(v) = &p.introduction {
        checks::text(v, r.max_text_bytes * 4, "introduction")?;
    }
    if let Some(v) = &p.notice {
        checks::text(v, r.max_text_bytes * 4, "notice")?;
    }
    let mut probe = BTreeMap::new();
    checks::merge_ex(&mut probe, &p.ex, r, "ex")?;
    let defined = p.join_mode.is_none_or(|v| pb::JoinMode::try_from(v).is_ok())
        && p.invite_mode.is_none_or(|v| pb::InviteMode::try_from(v).is_ok())
        && p.edit_mode.is_none_or(|v| pb::EditMode::try_from(v).is_ok())
        && p.history_visibility.is_none_or(|v| pb::HistoryVisibility::try_from(v).is_ok());
    if !defined {
        return Err(checks::invalid("patch: undefined enum value"));
    }
    Ok(())
}

pub(crate) fn create(mut req: pb::CreateGroup, r: &Relations) -> Result<GroupsOp, Reject> {
    if req.group_id.is_empty() {
        req.group_id = format!("g{:016x}", rand::random::<u64>());
    }
    let conv = group_conv(&req.group_id)?;
    if let Some(p) = &req.info {
        patch_ok(p, r)?;
    }
    let members = if req.member_ids.is_empty() {
        Vec::new()
    } else {
        checks::user_ids(std::mem::take(&mut req.member_ids), "member_ids")?
    };
    Ok(GroupsOp::new(conv, GroupOp::Create { req, members }))
}

pub(crate) fn update(req: pb::UpdateGroup, r: &Relations) -> Result<GroupsOp, Reject> {
    let patch = req.patch.unwrap_or_default();
    patch_ok(&patch, r)?;
    op(&req.group_id, GroupOp::Update { patch })
}

pub(crate) fn dismiss(req: pb::DismissGroup) -> Result<GroupsOp, Reject> {
    op(&req.group_id, GroupOp::Dismiss)
}

pub(crate) fn join(req: pb::JoinGroup, r: &Relations) -> Result<GroupsOp, Reject> {
    checks::text(&req.reason, r.max_text_bytes, "reason")?;
    op(&req.group_id, GroupOp::Join { reason: req.reason })
}

pub(crate) fn respond(req: pb::RespondGroupApplication) -> Result<GroupsOp, Reject> {
    let conv = group_conv(&req.group_id)?;
    let target = checks::user_id(req.user_id, "user_id")?;
    Ok(GroupsOp::new(conv, GroupOp::Respond { target, accept: req.accept }))
}

pub(crate) fn invite(req: pb::InviteToGroup) -> Result<GroupsOp, Reject> {
    let conv = group_conv(&req.group_id)?;
    Ok(GroupsOp::new(conv, GroupOp::Invite { targets: checks::user_ids(req.user_ids, "user_ids")? }))
}

pub(crate) fn kick(req: pb::KickFromGroup) -> Result<GroupsOp, Reject> {
    let conv = group_conv(&req.group_id)?;
    Ok(GroupsOp::new(conv, GroupOp::Kick { targets: checks::user_ids(req.user_ids, "user_ids")? }))
}

pub(crate) fn quit(req: pb::QuitGroup) -> Result<GroupsOp, Reject> {
    op(&req.group_id, GroupOp::Quit)
}

pub(crate) fn transfer(req: pb::TransferGroup) -> Result<GroupsOp, Reject> {
    let conv = group_conv(&req.group_id)?;
    let new_owner = checks::user_id(req.new_owner, "new_owner")?;
    Ok(GroupsOp::new(conv, GroupOp::Transfer { new_owner, quit: req.quit }))
}

pub(crate) fn set_role(req: pb::SetGroupRole) -> Result<GroupsOp, Reject> {
    let role = pb::GroupRole::try_from(req.role).map_err(|_| checks::invalid("role: undefined value"))?;
    let conv = group_conv(&req.group_id)?;
    Ok(GroupsOp::new(conv, GroupOp::SetRole { target: checks::user_id(req.user_id, "user_id")?, role }))
}

pub(crate) fn set_nickname(
    req: pb::SetGroupNickname,
    caller: &UserId,
    r: &Relations,
) -> Result<GroupsOp, Reject> {
    checks::text(&req.nickname, r.max_name_bytes, "nickname")?;
    let conv = group_conv(&req.group_id)?;
    let target =
        if req.user_id.is_empty() { caller.clone() } else { checks::user_id(req.user_id, "user_id")? };
    Ok(GroupsOp::new(conv, GroupOp::SetNickname { target, nickname: req.nickname }))
}

pub(crate) fn mute(req: pb::MuteGroupMember) -> Result<GroupsOp, Reject> {
    if req.duration_secs > 10 * 365 * 86_400 {
        return Err(checks::invalid("duration_secs: at most 10 years"));
    }
    let conv = group_conv(&req.group_id)?;
    let target = checks::user_id(req.user_id, "user_id")?;
    Ok(GroupsOp::new(conv, GroupOp::Mute { target, duration_secs: req.duration_secs }))
}

pub(crate) fn mute_all(req: pb::MuteGroupAll) -> Result<GroupsOp, Reject> {
    op(&req.group_id, GroupOp::MuteAll { muted: req.muted })
}

pub(crate) fn set_notify(req: pb::SetGroupNotify) -> Result<GroupsOp, Reject> {
    let notify =
        pb::GroupNotify::try_from(req.notify).map_err(|_| checks::invalid("notify: undefined value"))?;
    op(&req.group_id, GroupOp::SetNotify { notify })
}

pub(crate) fn receipt(req: pb::GetGroupReceipt) -> Result<GroupsOp, Reject> {
    op(&req.group_id, GroupOp::Receipt { seq: req.seq })
}
