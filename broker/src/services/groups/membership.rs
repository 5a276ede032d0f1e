//! Who is in a group: JoinGroup, RespondGroupApplication (an owner or admin
//! answering an application, or an invitee answering their own invitation),
//! InviteToGroup, KickFromGroup, QuitGroup.
//!
//! Invariants: joins reserve the joiners' joined-group counts
//! (`groups.max_joined`) before anything is staged; a kick list is
//! all-or-nothing; an invitation (a `GroupApplicationRecord` with `inviter`)
//! is answered only by its invitee, an application only by an owner or
//! admin; each op only decides a [`Plan`] (see `plan.rs`).

use missive_protocol::pb::{self, push, response};
use missive_protocol::{ErrorCode, UserId};
use missive_storage::GroupApplicationRecord;

use crate::error::Reject;

use super::plan::{Ctx, Plan};
use super::views::application_view;
use super::{
    check_not_blocked_by, check_registered, check_room, csv, denied, is_manager, reserve_joins, role_of,
};

pub(super) fn join(c: &mut Ctx<'_>, reason: &str) -> Result<Plan, Reject> {
    let me = c.me().clone();
    let group = c.group();
    if c.e.members.contains_key(&me) {
        return Err(Reject::new(ErrorCode::AlreadyGroupMember, "you are already a member"));
    }
    let prior = c.s.node.store.group_application(&group, me.as_str())?;
    let invited = prior
        .as_ref()
        .is_some_and(|a| !a.inviter.is_empty() && a.state == pb::ApplicationState::Pending as i32);
    let mode = pb::JoinMode::try_from(c.info.join_mode).unwrap_or(pb::JoinMode::Nobody);
    let now = c.now();
    if mode == pb::JoinMode::Nobody {
        // [GR-6]: NOBODY also suspends pending invitations (they admit again
        // if the group reopens).
        return Err(Reject::new(ErrorCode::JoinDenied, "the group is closed to new members"));
    }
    if invited || mode == pb::JoinMode::Anyone {
        check_room(&c.info, 1)?;
        reserve_joins(&c.s.node, std::slice::from_ref(&me), c.t)?;
        let mut plan = Plan::with_tip(
            response::Result::JoinGroup(pb::JoinGroupResult {
                status: pb::JoinStatus::Joined as i32,
                group: None,
            }),
            "group.member_joined",
            &[("user", me.to_string())],
        );
        if let Some(mut a) = prior.filter(|_| invited) {
            a.state = pb::ApplicationState::Accepted as i32;
            a.handled_ms = now;
            a.handled_by = me.to_string();
            plan.applications.push((me.clone(), Some(a)));
        }
        plan.join.push((me, pb::GroupRole::Member));
        Ok(plan)
    } else if mode == pb::JoinMode::Approval {
        let a = GroupApplicationRecord {
            reason: reason.to_owned(),
            state: pb::ApplicationState::Pending as i32,
            created_ms: now,
            ..Default::default()
        };
        let managers: Vec<UserId> =
            c.e.members.iter().filter(|(_, m)| is_manager(m)).map(|(u, _)| u.clone()).collect();
        let mut plan = Plan::reply(response::Result::JoinGroup(pb::JoinGroupResult {
            status: pb::JoinStatus::Applied as i32,
            group: None,
        }));
        plan.pushes
            .push((managers, push::Event::GroupApplication(application_view(&group, me.as_str(), &a))));
        plan.applications.push((me, Some(a)));
        Ok(plan)
    } else {
        Err(Reject::new(ErrorCode::JoinDenied, "this group does not take join requests"))
    }
}

pub(super) fn respond(c: &mut Ctx<'_>, target: &UserId, accept: bool) -> Result<Plan, Reject> {
    if target == c.me() && !c.admin() {
        return answer_invitation(c, accept);
    }
    let m = c.need_member()?;
    if !is_manager(&m) {
        return Err(denied("handle applications"));
    }
    let group = c.group();
    let pending =
        c.s.node
            .store
            .group_application(&group, target.as_str())?
            .filter(|a| a.state == pb::ApplicationState::Pending as i32);
    let mut a = match pending {
        Some(a) if a.inviter.is_empty() => a,
        // [GR-9]: an invitation is its invitee's to answer, never a manager's.
        Some(_) => {
            return Err(Reject::new(
                ErrorCode::NoPendingApplication,
                format!("{target} holds a pending invitation, which only the invitee answers"),
            ));
        }
        None => {
            return Err(Reject::new(
                ErrorCode::NoPendingApplication,
                format!("no pending application from {target}"),
            ));
        }
    };
    a.handled_ms = c.now();
    a.handled_by = c.me().to_string();
    let joins = accept && !c.e.members.contains_key(target);
    if joins && c.info.join_mode == pb::JoinMode::Nobody as i32 {
        // [GR-9]: a closed group admits nobody, even by an earlier application.
        return Err(Reject::new(ErrorCode::JoinDenied, "the group is closed to new members"));
    }
    if joins {
        check_room(&c.info, 1)?;
        reserve_joins(&c.s.node, std::slice::from_ref(target), c.t)?;
    }
    a.state = if accept { pb::ApplicationState::Accepted } else { pb::ApplicationState::Rejected } as i32;
    let mut plan = if joins {
        Plan::with_tip(
            response::Result::Ok(pb::Ok {}),
            "group.member_joined",
            &[("user", target.to_string()), ("approved_by", c.me().to_string())],
        )
    } else {
        Plan::reply(response::Result::Ok(pb::Ok {}))
    };
    if joins {
        plan.join.push((target.clone(), pb::GroupRole::Member));
    }
    plan.pushes.push((
        vec![target.clone()],
        push::Event::GroupApplication(application_view(&group, target.as_str(), &a)),
    ));
    plan.applications.push((target.clone(), Some(a)));
    Ok(plan)
}

/// [GR-9a]: the caller answers their own pending invitation. Accepting is
/// exactly `JoinGroup` on it ([GR-6]: same checks, tip and records; the reply
/// is `ok`); declining marks it REJECTED (handled by the invitee), nobody
/// joins, and the outcome is pushed to the inviter and to the invitee's other
/// devices. Owners and admins are not pushed, as they are not for the
/// invitation itself ([GR-8]); they read it with ListGroupApplications.
fn answer_invitation(c: &mut Ctx<'_>, accept: bool) -> Result<Plan, Reject> {
    let me = c.me().clone();
    let group = c.group();
    let Some(mut a) =
        c.s.node
            .store
            .group_application(&group, me.as_str())?
            .filter(|a| !a.inviter.is_empty() && a.state == pb::ApplicationState::Pending as i32)
    else {
        return Err(Reject::new(
            ErrorCode::NoPendingApplication,
            format!("you have no pending invitation to {group}"),
        ));
    };
    if accept {
        let mut plan = join(c, "")?;
        plan.result = response::Result::Ok(pb::Ok {});
        return Ok(plan);
    }
    a.state = pb::ApplicationState::Rejected as i32;
    a.handled_ms = c.now();
    a.handled_by = me.to_string();
    let mut to = vec![me.clone()];
    // A stored inviter is a valid id; a damaged one only loses its push.
    if let Ok(inviter) = UserId::new(a.inviter.clone())
        && inviter != me
    {
        to.push(inviter);
    }
    let mut plan = Plan::reply(response::Result::Ok(pb::Ok {}));
    plan.pushes.push((to, push::Event::GroupApplication(application_view(&group, me.as_str(), &a))));
    plan.applications.push((me, Some(a)));
    Ok(plan)
}

pub(super) fn invite(c: &mut Ctx<'_>, targets: &[UserId]) -> Result<Plan, Reject> {
    let m = c.need_member()?;
    // [GR-30]: an admin adds directly, whatever the modes, consent and blacklists.
    let admin = c.admin();
    if c.info.join_mode == pb::JoinMode::Nobody as i32 && !admin {
        return Err(Reject::new(ErrorCode::JoinDenied, "the group is closed to new members"));
    }
    if c.info.invite_mode == pb::InviteMode::Admins as i32 && !is_manager(&m) {
        return Err(denied("invite (admins only)"));
    }
    let mut new: Vec<UserId> = targets.iter().filter(|u| !c.e.members.contains_key(*u)).cloned().collect();
    new.sort();
    new.dedup();
    if new.is_empty() {
        return Err(Reject::new(ErrorCode::AlreadyGroupMember, "every invited user is already a member"));
    }
    check_registered(&c.s.node.store, &new)?;
    let me = c.me().clone();
    if !admin {
        check_not_blocked_by(&c.s.node.store, &me, &new)?;
    }
    if c.info.invitee_consent && !admin {
        let group = c.group();
        let mut plan = Plan::reply(c.info_reply(&c.info));
        for u in new {
            let a = GroupApplicationRecord {
                inviter: me.to_string(),
                state: pb::ApplicationState::Pending as i32,
                created_ms: c.now(),
                ..Default::default()
            };
            plan.pushes.push((
                vec![u.clone()],
                push::Event::GroupApplication(application_view(&group, u.as_str(), &a)),
            ));
            plan.applications.push((u, Some(a)));
        }
        Ok(plan)
    } else {
        check_room(&c.info, new.len())?;
        reserve_joins(&c.s.node, &new, c.t)?;
        let mut plan = Plan::with_tip(
            response::Result::Ok(pb::Ok {}),
            "group.members_invited",
            &[("by", me.to_string()), ("users", csv(&new))],
        );
        plan.join = new.into_iter().map(|u| (u, pb::GroupRole::Member)).collect();
        Ok(plan)
    }
}

pub(super) fn kick(c: &mut Ctx<'_>, targets: &[UserId]) -> Result<Plan, Reject> {
    let m = c.need_member()?;
    let my_role = role_of(&m);
    if my_role == pb::GroupRole::Member {
        return Err(denied("remove members"));
    }
    let mut out: Vec<UserId> = targets.to_vec();
    out.sort();
    out.dedup();
    for u in &out {
        if u == c.me() && !c.admin() {
            return Err(Reject::new(ErrorCode::SelfTarget, "use QuitGroup to leave"));
        }
        let tm = c.target_member(u)?;
        if my_role == pb::GroupRole::Admin && role_of(&tm) != pb::GroupRole::Member {
            return Err(denied("remove the owner or another admin"));
        }
        c.admin_spares_owner(&tm, "removed")?;
    }
    let mut plan = Plan::with_tip(
        response::Result::Ok(pb::Ok {}),
        "group.members_kicked",
        &[("by", c.me().to_string()), ("users", csv(&out))],
    );
    plan.leave = out;
    Ok(plan)
}

pub(super) fn quit(c: &mut Ctx<'_>) -> Result<Plan, Reject> {
    let m = c.need_member()?;
    if role_of(&m) == pb::GroupRole::Owner {
        return Err(Reject::new(ErrorCode::OwnerCannotQuit, "transfer the group or dismiss it first"));
    }
    let me = c.me().clone();
    let mut plan =
        Plan::with_tip(response::Result::Ok(pb::Ok {}), "group.member_quit", &[("user", me.to_string())]);
    plan.leave.push(me);
    Ok(plan)
}
