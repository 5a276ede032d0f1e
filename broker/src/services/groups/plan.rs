//! What a group op decided ([`Plan`]) and how it is applied ([`finish`]).
//!
//! Role: every group management op (see `manage.rs`, `membership.rs`,
//! `member.rs`) checks permissions and builds a [`Plan`] without changing the
//! group; `finish` then stages it: the tip message, membership changes at the
//! tip's seq, the info record, applications, pushes and the reply.
//!
//! Invariant: `finish` runs inside the op's save point, so a failure anywhere
//! in it (a read, a counter reservation) leaves nothing of the op behind.

use std::collections::BTreeMap;

use missive_protocol::pb::{self, push, response};
use missive_protocol::{ConvId, GroupId, UserId};
use missive_storage::{GroupApplicationRecord, GroupDepartedRecord, GroupMemberRecord, GroupRecord};

use crate::error::Reject;
use crate::frames;
use crate::services::{Services, Undo};
use crate::shard::{Effect, ShardOp, Turn, failpoint};

use super::entry::GroupEntry;
use super::views::info_view;
use super::{GroupsOp, cached_state, not_member, release_joins};

/// The state an op is decided on.
pub(super) struct Ctx<'a> {
    pub(super) s: &'a mut Services,
    pub(super) t: &'a mut Turn<Undo>,
    pub(super) op: &'a ShardOp<GroupsOp>,
    pub(super) conv: &'a ConvId,
    pub(super) e: &'a mut GroupEntry,
    /// The live group's info before the op; `new_info` is what the op makes of it.
    pub(super) info: GroupRecord,
    pub(super) new_info: GroupRecord,
}

impl Ctx<'_> {
    pub(super) fn me(&self) -> &UserId {
        &self.op.user
    }

    pub(super) fn group(&self) -> GroupId {
        self.e.id.clone()
    }

    pub(super) fn now(&self) -> u64 {
        self.t.now_ms
    }

    /// The op comes from the admin API ([GR-30], `admin.rs`).
    pub(super) fn admin(&self) -> bool {
        self.op.op.admin
    }

    /// The caller's member record, or NOT_GROUP_MEMBER. An admin op acts
    /// with the owner's rights ([GR-30]): a record with role OWNER that is
    /// never stored (the operator does not become a member).
    pub(super) fn need_member(&self) -> Result<GroupMemberRecord, Reject> {
        if self.admin() {
            return Ok(GroupMemberRecord { role: pb::GroupRole::Owner as i32, ..Default::default() });
        }
        self.e.members.get(&self.op.user).cloned().ok_or_else(|| not_member(&self.op.user))
    }

    /// [GR-30]: an admin op acts with the owner's rights, but never on the
    /// owner (the owner changes by transfer only).
    pub(super) fn admin_spares_owner(&self, target: &GroupMemberRecord, what: &str) -> Result<(), Reject> {
        if self.admin() && target.role == pb::GroupRole::Owner as i32 {
            return Err(Reject::new(
                missive_protocol::ErrorCode::GroupPermissionDenied,
                format!("the owner cannot be {what}; transfer the group first"),
            ));
        }
        Ok(())
    }

    /// `u`'s member record, or NOT_GROUP_MEMBER.
    pub(super) fn target_member(&self, u: &UserId) -> Result<GroupMemberRecord, Reject> {
        self.e.members.get(u).cloned().ok_or_else(|| not_member(u))
    }

    /// The reply carrying the group's info.
    pub(super) fn info_reply(&self, i: &GroupRecord) -> response::Result {
        response::Result::Group(info_view(&self.e.id, i))
    }
}

/// What one group op decided.
pub(super) struct Plan {
    pub(super) result: response::Result,
    /// Tip to append (kind, params), pushed to members and to those who leave.
    pub(super) tip: Option<(String, BTreeMap<String, String>)>,
    /// Members who join at the tip's seq, with their role.
    pub(super) join: Vec<(UserId, pb::GroupRole)>,
    /// Members who leave at the tip's seq.
    pub(super) leave: Vec<UserId>,
    /// Application records to write (`None` deletes).
    pub(super) applications: Vec<(UserId, Option<GroupApplicationRecord>)>,
    /// Pushes besides the tip.
    pub(super) pushes: Vec<(Vec<UserId>, push::Event)>,
    /// The op created the group: reply with its info.
    pub(super) created: bool,
    /// Reply with (and push) the caller's conversation state.
    pub(super) state_reply: bool,
}

impl Plan {
    pub(super) fn reply(result: response::Result) -> Self {
        Self {
            result,
            tip: None,
            join: Vec::new(),
            leave: Vec::new(),
            applications: Vec::new(),
            pushes: Vec::new(),
            created: false,
            state_reply: false,
        }
    }

    pub(super) fn with_tip(result: response::Result, kind: &str, params: &[(&str, String)]) -> Self {
        let params = params.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        Self { tip: Some((kind.to_owned(), params)), ..Self::reply(result) }
    }
}

/// The webhook event of a group tip kind (`None`: no event).
fn event_of(tip_kind: &str) -> Option<&'static str> {
    Some(match tip_kind {
        "group.created" => "group.created",
        "group.info_updated" => "group.info_changed",
        "group.dismissed" => "group.dismissed",
        "group.owner_transferred" => "group.transferred",
        "group.mute_all" | "group.member_muted" => "group.muted",
        "group.role_changed" => "group.role_changed",
        "group.member_joined" | "group.members_invited" | "group.joined" => "group.member_joined",
        "group.members_kicked" => "group.member_kicked",
        "group.member_quit" => "group.member_left",
        _ => return None,
    })
}

/// Stages the `group.*` after-event of a change recorded by `tip`.
fn emit_event<U>(
    node: &crate::node::Node,
    t: &mut Turn<U>,
    group: &GroupId,
    op: &ShardOp<GroupsOp>,
    tip: &pb::Message,
    join: &[(UserId, pb::GroupRole)],
    leave: &[UserId],
) {
    let Some(pb::content::Body::Tip(tp)) = tip.content.as_ref().and_then(|c| c.body.as_ref()) else { return };
    let Some(kind) = event_of(&tp.kind) else { return };
    crate::services::events::emit(node, t, kind, || {
        serde_json::json!({
            "group_id": group.as_str(),
            "by": op.user.as_str(),
            "tip": tp.kind,
            "params": tp.params,
            "seq": tip.seq,
            "joined": join.iter().map(|(u, r)| serde_json::json!({ "user_id": u.as_str(), "role": r.as_str_name() })).collect::<Vec<_>>(),
            "left": leave.iter().map(UserId::as_str).collect::<Vec<_>>(),
        })
    });
}

/// Stages a decided plan: tip, membership, records, effects; returns the reply.
pub(super) fn finish(c: Ctx<'_>, plan: Plan) -> Result<response::Result, Reject> {
    let Ctx { s, t, op, conv, e, info, new_info } = c;
    if new_info != info || plan.created {
        e.info = Some(new_info);
    }
    let now = t.now_ms;
    let group = e.id.clone();
    let node = std::sync::Arc::clone(&s.node);
    let mut result = plan.result;
    let mut extra = Vec::new();
    if let Some((kind, params)) = plan.tip {
        let text = format!(
            "{kind} {}",
            params.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
        );
        let tip = pb::Message {
            sender: op.user.to_string(),
            sender_device: op.device.to_string(),
            content: Some(pb::Content {
                body: Some(pb::content::Body::Tip(pb::Tip { kind, params, text })),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (tip, frame) = e.append(&mut s.ids, &node.clock, t, conv, tip);
        failpoint::check("groups.finish.after_tip")?;
        let seq = tip.seq;
        emit_event(&node, t, &group, op, &tip, &plan.join, &plan.leave);
        let leaving: Vec<UserId> =
            plan.leave.iter().filter(|u| e.members.contains_key(*u)).cloned().collect();
        release_joins(&node, &leaving, t)?;
        for u in &leaving {
            let Some(m) = e.members_mut().remove(u) else { continue };
            t.batch.put_group_member(&group, u, None);
            let d = GroupDepartedRecord { join_seq: m.join_seq, leave_seq: seq, left_ms: now };
            t.batch.put_group_departed(&group, u, Some(&d));
            let rec = s.groups.uconv_of(&node.store, conv, u)?;
            s.groups.write_uconv(&node.clock, t, conv, u, rec, true);
            extra.push(u.clone());
        }
        for (u, role) in &plan.join {
            let m =
                GroupMemberRecord { role: *role as i32, join_ms: now, join_seq: seq, ..Default::default() };
            t.batch.put_group_member(&group, u, Some(&m));
            t.batch.put_group_departed(&group, u, None);
            e.members_mut().insert(u.clone(), m);
            let rec = s.groups.uconv_of(&node.store, conv, u)?;
            s.groups.write_uconv(&node.clock, t, conv, u, rec, true);
        }
        // [GR-22]: a tip's sender has read it, as a message's sender has ([GR-17]).
        if e.members.contains_key(&op.user) || leaving.contains(&op.user) {
            let mut rec = s.groups.uconv_of(&node.store, conv, &op.user)?;
            if rec.read_seq < seq {
                rec.read_seq = seq;
                s.groups.write_uconv(&node.clock, t, conv, &op.user, rec, false);
            }
        }
        // Ownership follows the info record.
        if let Some(owner) = e.info.as_ref().and_then(|i| UserId::new(i.owner.clone()).ok()) {
            let needs = e.members.get(&owner).is_some_and(|m| m.role != pb::GroupRole::Owner as i32);
            if needs {
                let members = e.members_mut();
                if let Some(m) = members.get_mut(&owner) {
                    m.role = pb::GroupRole::Owner as i32;
                    t.batch.put_group_member(&group, &owner, Some(m));
                }
                if let Some((u, m)) =
                    members.iter_mut().find(|(u, m)| **u != owner && m.role == pb::GroupRole::Owner as i32)
                {
                    m.role = pb::GroupRole::Member as i32;
                    t.batch.put_group_member(&group, u, Some(m));
                }
            }
        }
        let count = e.members.len() as u32;
        if let Some(i) = e.info.as_mut() {
            i.member_count = if i.dismissed { 0 } else { count };
        }
        let mut users = e.recipients().to_vec();
        users.extend(extra);
        t.effect(Effect::Fanout { users: users.into(), exclude: None, frame });
    }
    if let Some(i) = e.info.as_ref() {
        t.batch.put_group(&group, i);
        if plan.created {
            result = response::Result::Group(info_view(&group, i));
        }
        if let response::Result::Group(g) = &mut result {
            *g = info_view(&group, i);
        }
        if let response::Result::JoinGroup(j) = &mut result {
            j.group = Some(info_view(&group, i));
        }
    }
    for (u, a) in plan.applications {
        t.batch.put_group_application(&group, &u, a.as_ref());
    }
    for (users, ev) in plan.pushes {
        t.effect(Effect::Fanout {
            users: users.into(),
            exclude: Some(op.origin.conn()),
            frame: frames::push(ev),
        });
    }
    if plan.state_reply {
        let st = cached_state(s, e, &op.user, conv)?;
        t.effect(Effect::Fanout {
            users: vec![op.user.clone()].into(),
            exclude: Some(op.origin.conn()),
            frame: frames::push(push::Event::Conversation(st.clone())),
        });
        result = response::Result::Conversation(st);
    }
    Ok(result)
}
