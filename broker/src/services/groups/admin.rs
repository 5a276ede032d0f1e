//! Group ops of the admin REST API (spec [GR-30]): the app server manages
//! any group as an administrator of the server, not as a member.
//!
//! Role: builds [`GroupsOp`]s flagged `admin` from already-parsed REST input
//! (the stateless checks are those of `check.rs`, with batches of up to
//! [`MAX_ADMIN_BATCH`] users). On the owner shard, at the moment of the
//! write, such an op acts with the owner's rights (`plan::Ctx::need_member`)
//! and adds members directly: no join or invite mode, no invitee consent, no
//! blacklist check ([GR-29] governs what users do to each other). Group
//! bounds still hold: `max_members`, registered users, joined-group limits.
//!
//! Invariants: `route` never builds an admin op (a socket client, even with
//! an admin token, keeps the permissions of its group role); only the ops
//! [`allowed`] lists may carry the flag — an op about the caller itself
//! (join, quit, notify, nickname, receipts) is refused, so the operator never
//! becomes a member.

use missive_protocol::{ConvId, UserId, pb};

use crate::config::Relations;
use crate::error::Reject;
use crate::services::checks;

use super::check;
use super::{GroupOp, GroupsOp};

/// Most users one admin create, add or remove names.
pub(crate) const MAX_ADMIN_BATCH: usize = 500;

/// Whether `op` may be made by the admin API.
pub(crate) fn allowed(op: &GroupOp) -> bool {
    matches!(
        op,
        GroupOp::Create { .. }
            | GroupOp::Update { .. }
            | GroupOp::Dismiss
            | GroupOp::Transfer { quit: false, .. }
            | GroupOp::MuteAll { .. }
            | GroupOp::Invite { .. }
            | GroupOp::Kick { .. }
            | GroupOp::SetRole { .. }
            | GroupOp::Mute { .. }
    )
}

impl GroupsOp {
    /// This op, made by the admin API.
    pub(crate) fn by_admin(self) -> Self {
        Self { admin: true, ..self }
    }
}

/// 0..=[`MAX_ADMIN_BATCH`] (or 1.. when `required`) valid user ids.
fn users(ids: Vec<String>, field: &str, required: bool) -> Result<Vec<UserId>, Reject> {
    if (required && ids.is_empty()) || ids.len() > MAX_ADMIN_BATCH {
        let min = usize::from(required);
        return Err(checks::invalid(format!(
            "{field}: {min}..={MAX_ADMIN_BATCH} ids required, got {}",
            ids.len()
        )));
    }
    ids.into_iter().map(|s| checks::user_id(s, field)).collect()
}

/// CreateGroup for the owner shard, to be sent as the owner (who becomes the
/// group's owner); `req.member_ids` is ignored, `member_ids` joins at once.
pub(crate) fn create(
    mut req: pb::CreateGroup,
    member_ids: Vec<String>,
    r: &Relations,
) -> Result<GroupsOp, Reject> {
    let members = users(member_ids, "member_ids", false)?;
    req.member_ids.clear();
    let mut op = check::create(req, r)?;
    if let GroupOp::Create { members: m, .. } = &mut op.op {
        *m = members;
    }
    Ok(op.by_admin())
}

/// Adds users to a group at once (InviteToGroup without consent).
pub(crate) fn add(conv: ConvId, user_ids: Vec<String>) -> Result<GroupsOp, Reject> {
    let targets = users(user_ids, "user_ids", true)?;
    Ok(GroupsOp::new(conv, GroupOp::Invite { targets }).by_admin())
}

/// Removes members (KickFromGroup, all-or-nothing as [GR-12]).
pub(crate) fn remove(conv: ConvId, user_ids: Vec<String>) -> Result<GroupsOp, Reject> {
    let targets = users(user_ids, "user_ids", true)?;
    Ok(GroupsOp::new(conv, GroupOp::Kick { targets }).by_admin())
}
