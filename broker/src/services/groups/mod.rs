//! The groups service: management, roles and permissions, membership, mute,
//! group messages by read diffusion, tips, mentions and receipts.
//!
//! Role: every record of group g (info, members, departed members,
//! applications, the members' joined-groups index entries) is written only by
//! the owner shard of the conversation `g:{g}`, which also owns g's message
//! log. Permission checks, membership changes and sends are therefore
//! serialized, and each check happens at the moment of the write.
//!
//! Files: `check.rs` (stateless checks, for `route`), `admin.rs` (ops of the
//! admin REST API, [GR-30]), `entry.rs` (the cache),
//! `send.rs` (group sends, member conversation state, receipts),
//! `manage.rs` / `membership.rs` / `member.rs` (one function per management
//! op, each deciding a `Plan`), `plan.rs` (staging a plan), `views.rs` (wire
//! views), `queries.rs` (read-only requests on the connection's worker).
//!
//! Read diffusion: a group message is stored once (`msg` keyspace); nothing is
//! written per member for it. A member's `uconv` record (read seq, cleared
//! seq, flags, mention seq) is written only when that member acts or is
//! mentioned. Sync finds groups with news through the per-group version
//! record (`group/{g}/v`), moved to a new feed version by every message and tip.
//!
//! Invariants:
//! - an op runs inside the engine's save point: a refused op (at any point)
//!   leaves nothing in the batch, the cache, the counters or the effects;
//! - every membership or info change appends a server-generated `Tip` to the
//!   group log, pushed to the members (and to removed members) like a message;
//! - joined-group counts change only through counter reservations.

pub(crate) mod admin;
pub(crate) mod check;
pub(crate) mod entry;
mod manage;
mod member;
mod membership;
mod plan;
mod queries;
mod send;
pub(crate) mod views;

use missive_protocol::pb::{self, response};
use missive_protocol::{ConvId, ErrorCode, UserId};
use missive_storage::{BlockRecord, GroupMemberRecord, GroupRecord, RelKind, Store};

use crate::error::Reject;
use crate::node::counters::Counted;
use crate::node::{Node, OwnerKey};
use crate::services::{Services, Undo};
use crate::shard::{Answer, ShardOp, Staged, Turn};

pub(crate) use queries::{Query, serve};
pub(crate) use send::{member_change, send, send_online, window_of};

use entry::GroupEntry;
use plan::{Ctx, Plan};
use views::{Membership, group_state, window};

/// Most users one mention list may name (more are ignored).
const MAX_MENTIONS: usize = 1000;

/// A group op for the owner shard of `conv` (`g:{group}`).
#[derive(Debug)]
pub(crate) struct GroupsOp {
    pub(crate) conv: ConvId,
    pub(crate) op: GroupOp,
    /// Made by the admin REST API ([`admin`], spec [GR-30]): acts with the
    /// owner's rights and adds members without consent. Never set by `route`.
    pub(crate) admin: bool,
}

impl GroupsOp {
    /// A client's op (no admin rights).
    pub(crate) fn new(conv: ConvId, op: GroupOp) -> Self {
        Self { conv, op, admin: false }
    }

    pub(crate) fn owner(&self) -> OwnerKey<'_> {
        OwnerKey::Conv(&self.conv)
    }
}

/// A group request, checked statelessly ([`check`]).
#[derive(Debug)]
pub(crate) enum GroupOp {
    Create {
        req: pb::CreateGroup,
        members: Vec<UserId>,
    },
    Update {
        patch: pb::GroupPatch,
    },
    Dismiss,
    Join {
        reason: String,
    },
    Respond {
        target: UserId,
        accept: bool,
    },
    Invite {
        targets: Vec<UserId>,
    },
    Kick {
        targets: Vec<UserId>,
    },
    Quit,
    Transfer {
        new_owner: UserId,
        quit: bool,
    },
    SetRole {
        target: UserId,
        role: pb::GroupRole,
    },
    SetNickname {
        target: UserId,
        nickname: String,
    },
    Mute {
        target: UserId,
        duration_secs: u64,
    },
    MuteAll {
        muted: bool,
    },
    SetNotify {
        notify: pb::GroupNotify,
    },
    /// Read-only: served after the turn's write.
    Receipt {
        seq: u64,
    },
}

fn role_of(m: &GroupMemberRecord) -> pb::GroupRole {
    pb::GroupRole::try_from(m.role).unwrap_or(pb::GroupRole::Member)
}

fn is_manager(m: &GroupMemberRecord) -> bool {
    matches!(role_of(m), pb::GroupRole::Owner | pb::GroupRole::Admin)
}

fn denied(what: &str) -> Reject {
    Reject::new(ErrorCode::GroupPermissionDenied, format!("your group role may not {what}"))
}

fn not_member(user: &UserId) -> Reject {
    Reject::new(ErrorCode::NotGroupMember, format!("{user} is not a member of the group"))
}

fn corrupt(e: prost::DecodeError) -> Reject {
    Reject::new(ErrorCode::Internal, format!("stored message undecodable: {e}"))
}

fn csv(users: &[UserId]) -> String {
    users.iter().map(UserId::as_str).collect::<Vec<_>>().join(",")
}

fn check_registered(store: &Store, users: &[UserId]) -> Result<(), Reject> {
    for u in users {
        if store.account(u)?.is_none() {
            return Err(Reject::new(ErrorCode::UserNotFound, format!("user {u} is not registered")));
        }
    }
    Ok(())
}

/// Spec [GR-29]: nobody is added to a group, or invited, by a user they
/// blacklisted. Reads the committed blacklist (written by the pair's owner
/// shard): a block committed before this op's read refuses the add; one
/// committed later is ordered after the add, which it does not undo.
fn check_not_blocked_by(store: &Store, actor: &UserId, users: &[UserId]) -> Result<(), Reject> {
    for u in users.iter().filter(|u| *u != actor) {
        if store.rel::<BlockRecord>(u, RelKind::Block, actor)?.is_some() {
            return Err(Reject::new(
                ErrorCode::BlockedByUser,
                format!("{u} has blacklisted you: you cannot add or invite them to a group"),
            ));
        }
    }
    Ok(())
}

fn check_room(info: &GroupRecord, adding: usize) -> Result<(), Reject> {
    if info.member_count as usize + adding > info.max_members as usize {
        return Err(Reject::new(
            ErrorCode::GroupFull,
            format!("the group is full ({} members max)", info.max_members),
        ));
    }
    Ok(())
}

fn reserve_joins(node: &Node, users: &[UserId], t: &mut Turn<Undo>) -> Result<(), Reject> {
    let max = node.config.groups.max_joined;
    for u in users {
        match node.counters.reserve(&node.store, u, Counted::Groups, 1, max)? {
            Some(r) => t.reservation(r),
            None => {
                return Err(Reject::new(
                    ErrorCode::JoinedGroupLimit,
                    format!("{u} already belongs to {max} groups"),
                ));
            }
        }
    }
    Ok(())
}

fn release_joins(node: &Node, users: &[UserId], t: &mut Turn<Undo>) -> Result<(), Reject> {
    for u in users {
        if let Some(r) = node.counters.reserve(&node.store, u, Counted::Groups, -1, usize::MAX)? {
            t.reservation(r);
        }
    }
    Ok(())
}

/// A current or former member's view from the cached entry.
fn cached_state(
    s: &mut Services,
    e: &GroupEntry,
    user: &UserId,
    conv: &ConvId,
) -> Result<pb::ConversationState, Reject> {
    let store = s.node.store.clone();
    let rec = s.groups.uconv_of(&store, conv, user)?;
    let info = e.info.clone().unwrap_or_default();
    let departed;
    let who = match e.members.get(user) {
        Some(m) => Membership::Member(m),
        None => {
            departed = store.group_departed(&e.id, user.as_str())?.ok_or_else(|| {
                Reject::new(ErrorCode::NotParticipant, "you are not a member of this group")
            })?;
            Membership::Departed(&departed)
        }
    };
    let (_, top) = window(&info, who, &rec, e.max_seq);
    let last = if top == e.max_seq {
        e.last.as_ref().and_then(|b| prost::Message::decode(b.as_ref()).ok())
    } else {
        store
            .message(conv, missive_protocol::Seq(top))?
            .and_then(|b| prost::Message::decode(b.as_slice()).ok())
    };
    let mut st = group_state(conv, &info, who, &rec, e.max_seq, last);
    st.update_seq = e.update_seq;
    crate::services::messages::flags::view(s, conv, &mut st)?;
    Ok(st)
}

/// For the message lifecycle (spec section 18): whether `user` is a current
/// member, whether they are the owner or an admin, and their readable window
/// `(min_readable_seq, top)` from the cached entry; a former member reads up
/// to their leave seq.
pub(crate) fn member_window(
    s: &mut Services,
    e: &GroupEntry,
    user: &UserId,
    conv: &ConvId,
) -> Result<(bool, bool, u64, u64), Reject> {
    let (current, manager) = match e.members.get(user) {
        Some(m) => (true, is_manager(m)),
        None => (false, false),
    };
    let st = cached_state(s, e, user, conv)?;
    Ok((current, manager, st.min_readable_seq.max(1), st.max_seq))
}

/// Runs `f` on `conv`'s entry, taken out of the cache (its undo recorded),
/// then puts the entry back, whatever `f` returned.
pub(crate) fn with_entry<R>(
    s: &mut Services,
    conv: &ConvId,
    t: &mut Turn<Undo>,
    f: impl FnOnce(&mut Services, &mut GroupEntry, &mut Turn<Undo>) -> Result<R, Reject>,
) -> Result<R, Reject> {
    let node = std::sync::Arc::clone(&s.node);
    let mut e = s.groups.take(&node.store, conv, node.config.groups.max_members, t)?;
    let r = f(s, &mut e, t);
    s.groups.put(conv.clone(), e);
    r
}

/// Stages one group op (see the module docs).
pub(crate) fn stage(
    s: &mut Services,
    op: ShardOp<GroupsOp>,
    t: &mut Turn<Undo>,
) -> Result<Staged<GroupsOp>, Reject> {
    if matches!(op.op.op, GroupOp::Receipt { .. }) {
        return Ok(Staged::Read(op));
    }
    let conv = op.op.conv.clone();
    let r = with_entry(s, &conv, t, |s, e, t| {
        e.recipients = None;
        run_op(s, &op, &conv, e, t)
    })?;
    Ok(Staged::Done(Answer::Response(r)))
}

/// Decides and stages one management op on the taken-out entry `e`.
fn run_op(
    s: &mut Services,
    op: &ShardOp<GroupsOp>,
    conv: &ConvId,
    e: &mut GroupEntry,
    t: &mut Turn<Undo>,
) -> Result<response::Result, Reject> {
    let gop = &op.op.op;
    if op.op.admin && !admin::allowed(gop) {
        return Err(Reject::new(ErrorCode::Internal, "not an admin group op"));
    }
    let live = e.info.clone().filter(|i| !i.dismissed);
    let info = match (gop, live) {
        (GroupOp::Create { .. }, _) => GroupRecord::default(),
        (_, Some(i)) => i,
        (_, None) => return Err(Reject::new(ErrorCode::GroupNotFound, format!("no group {}", e.id))),
    };
    let mut c = Ctx { s, t, op, conv, e, new_info: info.clone(), info };
    let plan: Plan = match gop {
        GroupOp::Create { req, members } => manage::create(&mut c, req, members)?,
        GroupOp::Update { patch } => manage::update(&mut c, patch)?,
        GroupOp::Dismiss => manage::dismiss(&mut c)?,
        GroupOp::Transfer { new_owner, quit } => manage::transfer(&mut c, new_owner, *quit)?,
        GroupOp::MuteAll { muted } => manage::mute_all(&mut c, *muted)?,
        GroupOp::Join { reason } => membership::join(&mut c, reason)?,
        GroupOp::Respond { target, accept } => membership::respond(&mut c, target, *accept)?,
        GroupOp::Invite { targets } => membership::invite(&mut c, targets)?,
        GroupOp::Kick { targets } => membership::kick(&mut c, targets)?,
        GroupOp::Quit => membership::quit(&mut c)?,
        GroupOp::SetRole { target, role } => member::set_role(&mut c, target, *role)?,
        GroupOp::SetNickname { target, nickname } => member::set_nickname(&mut c, target, nickname)?,
        GroupOp::Mute { target, duration_secs } => member::mute(&mut c, target, *duration_secs)?,
        GroupOp::SetNotify { notify } => member::set_notify(&mut c, *notify)?,
        GroupOp::Receipt { .. } => {
            return Err(Reject::new(ErrorCode::Internal, "a receipt query is a read"));
        }
    };
    plan::finish(c, plan)
}

/// Serves GetGroupReceipt after the turn's write.
pub(crate) fn read(
    s: &mut Services,
    op: ShardOp<GroupsOp>,
    _now_ms: u64,
) -> Result<response::Result, Reject> {
    // Only receipts are staged as reads (see `stage`).
    let GroupOp::Receipt { seq } = op.op.op else {
        return Err(Reject::new(ErrorCode::Internal, "not a group read"));
    };
    send::receipt(s, &op.user, &op.op.conv, seq)
}
