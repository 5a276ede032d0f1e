//! Groups on the owner shard: management, roles and permissions, membership,
//! mute, group messages by read diffusion, tips, mentions and receipts.
//!
//! Role: every record of group g (info, members, departed members,
//! applications, the members' joined-groups index entries) is written only by
//! the owner shard of the conversation `g:{g}`, which also owns g's message
//! log. Permission checks, membership changes and sends are therefore
//! serialized, and each check happens at the moment of the write.
//!
//! Read diffusion: a group message is stored once (`msg` keyspace); nothing is
//! written per member for it. The shard caches each group in use
//! ([`GroupEntry`]: info, member list, max seq, the members' `uconv` records it
//! touched). A member's `uconv` record (read seq, cleared seq, flags, mention
//! seq) is written only when that member acts or is mentioned. Sync finds
//! groups with news through the per-group version record (`group/{g}/v`),
//! moved to a new feed version by every message and tip.
//!
//! Invariants:
//! - every op checks everything before it changes the cached entry, so a
//!   refused op leaves no trace; a failed write drops the entry (reload);
//! - every membership or info change appends a server-generated `Tip` to the
//!   group log, pushed to the members (and to removed members) like a message;
//! - a member's readable window is `join_seq..` (history visibility FROM_JOIN)
//!   and ends at `leave_seq` once the member left;
//! - joined-group counts change only through counter reservations.

use bytes::Bytes;
use missive_protocol::pb::{self, push, response};
use missive_protocol::{ConvId, ErrorCode, GroupId, Seq, UserId};
use missive_storage::{
    GroupApplicationRecord, GroupDepartedRecord, GroupMemberRecord, GroupRecord, Store, UserConvRecord,
};
use prost::Message as _;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::checks;
use crate::clock::now_ms;
use crate::counters::Counted;
use crate::error::Reject;
use crate::frames;
use crate::shard::{Effect, OpKind, Shard, ShardOp, Turn};

/// Most users one mention list may name (more are ignored).
const MAX_MENTIONS: usize = 1000;

/// A group request, checked statelessly, for the group's owner shard.
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

/// Cached committed (or, while staging, staged) state of one group.
#[derive(Debug, Clone)]
pub(crate) struct GroupEntry {
    /// `None`: no such group.
    info: Option<GroupRecord>,
    members: BTreeMap<UserId, GroupMemberRecord>,
    /// `uconv` records of members this shard read or wrote (committed or staged).
    uconv: HashMap<UserId, UserConvRecord>,
    max_seq: u64,
    /// Encoded message at `max_seq`.
    last: Option<Bytes>,
    /// Members whose devices get messages pushed; rebuilt after any group op
    /// (the only writer of membership and notify settings).
    recipients: Option<Arc<[UserId]>>,
}

/// A user's relation to a group, for their view of its conversation.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Membership<'a> {
    Member(&'a GroupMemberRecord),
    Departed(&'a GroupDepartedRecord),
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

/// The conversation id of a group.
pub(crate) fn group_conv(group: &str) -> Result<ConvId, Reject> {
    ConvId::parse(&format!("g:{group}")).map_err(|e| checks::invalid(format!("group_id: {e}")))
}

/// The group id of a group conversation (only `g:` conversations reach here).
fn group_of(conv: &ConvId) -> Result<GroupId, Reject> {
    conv.group_id().ok_or_else(|| Reject::new(ErrorCode::Internal, format!("{conv} is not a group")))
}

/// The wire info of a group.
pub(crate) fn info_view(group: &str, r: &GroupRecord) -> pb::GroupInfo {
    pb::GroupInfo {
        group_id: group.to_owned(),
        r#type: r.group_type,
        name: r.name.clone(),
        avatar_url: r.avatar_url.clone(),
        introduction: r.introduction.clone(),
        notice: r.notice.clone(),
        ex: r.ex.clone(),
        join_mode: r.join_mode,
        invite_mode: r.invite_mode,
        invitee_consent: r.invitee_consent,
        edit_mode: r.edit_mode,
        history_visibility: r.history_visibility,
        owner: r.owner.clone(),
        member_count: r.member_count,
        max_members: r.max_members,
        mute_all: r.mute_all,
        created_ms: r.created_ms,
        updated_ms: r.updated_ms,
        dismissed: r.dismissed,
    }
}

/// The wire view of a member.
pub(crate) fn member_view(group: &str, user: &str, m: &GroupMemberRecord) -> pb::GroupMember {
    pb::GroupMember {
        group_id: group.to_owned(),
        user_id: user.to_owned(),
        role: m.role,
        join_ms: m.join_ms,
        join_seq: m.join_seq,
        nickname: m.nickname.clone(),
        mute_until_ms: m.mute_until_ms,
        notify: m.notify,
    }
}

/// The wire view of an application.
pub(crate) fn application_view(group: &str, user: &str, a: &GroupApplicationRecord) -> pb::GroupApplication {
    pb::GroupApplication {
        group_id: group.to_owned(),
        user_id: user.to_owned(),
        reason: a.reason.clone(),
        inviter: a.inviter.clone(),
        state: a.state,
        created_ms: a.created_ms,
        handled_ms: a.handled_ms,
        handled_by: a.handled_by.clone(),
    }
}

/// A member's readable window: (lowest readable seq, highest visible seq).
pub(crate) fn window(
    info: &GroupRecord,
    who: Membership<'_>,
    rec: &UserConvRecord,
    max_seq: u64,
) -> (u64, u64) {
    let full = info.history_visibility == pb::HistoryVisibility::Full as i32;
    let (join_seq, top) = match who {
        Membership::Member(m) => (m.join_seq, max_seq),
        Membership::Departed(d) => (d.join_seq, max_seq.min(d.leave_seq)),
    };
    let floor = if full { 1 } else { join_seq.max(1) };
    ((rec.cleared_seq + 1).max(floor), top)
}

/// `user`'s view of the group conversation (shared with sync).
pub(crate) fn group_state(
    conv: &ConvId,
    info: &GroupRecord,
    who: Membership<'_>,
    rec: &UserConvRecord,
    max_seq: u64,
    last_message: Option<pb::Message>,
) -> pb::ConversationState {
    let (min_readable, top) = window(info, who, rec, max_seq);
    let read_floor = rec.read_seq.max(min_readable - 1);
    let all = if info.all_mention_seq >= min_readable { info.all_mention_seq } else { 0 };
    let mention = rec.mention_seq.max(all);
    let notify = match who {
        Membership::Member(m) => m.notify,
        Membership::Departed(_) => 0,
    };
    pb::ConversationState {
        conv_id: conv.to_string(),
        max_seq: top,
        read_seq: rec.read_seq,
        unread: top.saturating_sub(read_floor),
        cleared_seq: rec.cleared_seq,
        pinned: rec.pinned,
        muted: rec.muted,
        hidden: rec.hidden && top <= rec.hidden_seq,
        last_message: last_message.filter(|m| m.seq >= min_readable && m.seq <= top),
        peer_read_seq: 0,
        pin_time_ms: rec.pin_time_ms,
        mentioned: mention > read_floor && mention <= top,
        group_notify: notify,
        min_readable_seq: min_readable,
    }
}

/// `user`'s view of group conversation `conv` from storage (sync); `None` if
/// the user never belonged to the group.
pub(crate) fn stored_state(
    store: &Store,
    user: &UserId,
    conv: &ConvId,
    floor_ms: u64,
) -> Result<Option<pb::ConversationState>, Reject> {
    let Some(group) = conv.group_id() else { return Ok(None) };
    let group = &group;
    let Some(info) = store.group(group)? else { return Ok(None) };
    let member = store.group_member(group, user.as_str())?;
    let departed = if member.is_none() { store.group_departed(group, user.as_str())? } else { None };
    let who = match (&member, &departed) {
        (Some(m), _) => Membership::Member(m),
        (None, Some(d)) => Membership::Departed(d),
        (None, None) => return Ok(None),
    };
    let rec = store.user_conv(user, conv)?.unwrap_or_default();
    let max_seq = store.max_seq(conv)?.0;
    let (_, top) = window(&info, who, &rec, max_seq);
    let last = match store.message(conv, Seq(top))? {
        Some(b) => Some(pb::Message::decode(b.as_slice()).map_err(corrupt)?),
        None => None,
    }
    .filter(|m| m.server_time_ms >= floor_ms);
    Ok(Some(group_state(conv, &info, who, &rec, max_seq, last)))
}

/// The defaults of a group type: (join, invite, edit).
fn type_defaults(t: pb::GroupType) -> (pb::JoinMode, pb::InviteMode, pb::EditMode) {
    match t {
        pb::GroupType::Public => (pb::JoinMode::Approval, pb::InviteMode::Admins, pb::EditMode::Admins),
        _ => (pb::JoinMode::InviteOnly, pb::InviteMode::AnyMember, pb::EditMode::Everyone),
    }
}

fn csv(users: &[UserId]) -> String {
    users.iter().map(UserId::as_str).collect::<Vec<_>>().join(",")
}

/// What one staged group op produced.
struct Outcome {
    result: response::Result,
    /// Tip to append (kind, params), pushed to members and `extra`.
    tip: Option<(String, BTreeMap<String, String>)>,
    extra: Vec<UserId>,
}

impl Outcome {
    fn reply(result: response::Result) -> Self {
        Self { result, tip: None, extra: Vec::new() }
    }
    fn with_tip(result: response::Result, kind: &str, params: &[(&str, String)]) -> Self {
        let params = params.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        Self { result, tip: Some((kind.to_owned(), params)), extra: Vec::new() }
    }
}

/// Stages a changed member record (storage and cache); returns its wire view.
fn store_member(
    e: &mut GroupEntry,
    t: &mut Turn,
    group: &GroupId,
    user: &UserId,
    m: GroupMemberRecord,
) -> pb::GroupMember {
    let view = member_view(group.as_str(), user.as_str(), &m);
    t.batch.put_group_member(group, user, Some(&m));
    e.members.insert(user.clone(), m);
    view
}

/// Membership changes staged by an op, applied once its tip's seq is known.
#[derive(Default)]
struct Changes {
    join: Vec<(UserId, pb::GroupRole)>,
    leave: Vec<UserId>,
}

impl Shard {
    /// The cached entry of `conv` (loaded on first use).
    fn group_entry(&mut self, conv: &ConvId) -> Result<GroupEntry, Reject> {
        if let Some(e) = self.groups.remove(conv) {
            return Ok(e);
        }
        let group = &group_of(conv)?;
        let info = self.store.group(group)?;
        let mut members = BTreeMap::new();
        if info.as_ref().is_some_and(|i| !i.dismissed) {
            let cap = self.config.groups.max_members as usize + 1;
            for (u, m) in self.store.group_members(group, "", cap)? {
                if let Ok(u) = UserId::new(u) {
                    members.insert(u, m);
                }
            }
        }
        let max_seq = self.store.max_seq(conv)?.0;
        let last = if max_seq > 0 { self.store.message(conv, Seq(max_seq))?.map(Bytes::from) } else { None };
        Ok(GroupEntry { info, members, uconv: HashMap::new(), max_seq, last, recipients: None })
    }

    fn put_group_entry(&mut self, conv: ConvId, e: GroupEntry) {
        let cap = self.config.groups.cache_entries;
        if self.groups.len() >= cap {
            let drop_n = self.groups.len() - cap * 9 / 10 + 1;
            let victims: Vec<ConvId> = self.groups.keys().take(drop_n).cloned().collect();
            for v in victims {
                self.groups.remove(&v);
            }
        }
        self.groups.insert(conv, e);
    }

    /// Drops cached groups touched by a failed turn.
    pub(crate) fn drop_groups(&mut self, touched: &[ConvId]) {
        for c in touched {
            self.groups.remove(c);
        }
    }

    fn uconv_of(&self, e: &mut GroupEntry, user: &UserId, conv: &ConvId) -> Result<UserConvRecord, Reject> {
        if let Some(r) = e.uconv.get(user) {
            return Ok(r.clone());
        }
        let r = self.store.user_conv(user, conv)?.unwrap_or_default();
        e.uconv.insert(user.clone(), r.clone());
        Ok(r)
    }

    /// Writes `user`'s record; `bump` moves its feed entry (their sync sees it).
    fn write_uconv(
        &self,
        e: &mut GroupEntry,
        t: &mut Turn,
        user: &UserId,
        conv: &ConvId,
        mut rec: UserConvRecord,
        bump: bool,
    ) {
        let old = rec.feed_version;
        if bump {
            rec.feed_version = self.clock.alloc(&mut t.versions);
        }
        t.batch.put_user_conv(user, conv, old, &rec);
        e.uconv.insert(user.clone(), rec);
    }

    /// Appends a message to the group log: seq, version record, cache.
    fn append(
        &mut self,
        e: &mut GroupEntry,
        t: &mut Turn,
        conv: &ConvId,
        mut msg: pb::Message,
    ) -> pb::Message {
        let now = now_ms();
        msg.seq = e.max_seq + 1;
        msg.server_msg_id = self.ids.next(now);
        msg.server_time_ms = now;
        msg.conv_id = conv.to_string();
        let encoded = Bytes::from(msg.encode_to_vec());
        t.batch.put_message(conv, Seq(msg.seq), &encoded);
        let v = self.clock.alloc(&mut t.versions);
        if let Some(g) = conv.group_id() {
            t.batch.put_group_version(&g, v);
        }
        e.max_seq = msg.seq;
        e.last = Some(encoded);
        msg
    }

    /// Users whose devices get a group message pushed (cached until the next group op).
    fn recipients(e: &mut GroupEntry) -> Arc<[UserId]> {
        let members = &e.members;
        let list = e.recipients.get_or_insert_with(|| {
            members
                .iter()
                .filter(|(_, m)| m.notify != pb::GroupNotify::Block as i32)
                .map(|(u, _)| u.clone())
                .collect()
        });
        Arc::clone(list)
    }

    /// A member's view from the cached entry.
    fn cached_state(
        &self,
        e: &mut GroupEntry,
        user: &UserId,
        conv: &ConvId,
    ) -> Result<pb::ConversationState, Reject> {
        let rec = self.uconv_of(e, user, conv)?;
        let group = &group_of(conv)?;
        let info = e.info.clone().unwrap_or_default();
        let departed;
        let who = match e.members.get(user) {
            Some(m) => Membership::Member(m),
            None => {
                departed = self.store.group_departed(group, user.as_str())?.ok_or_else(|| {
                    Reject::new(ErrorCode::NotParticipant, "you are not a member of this group")
                })?;
                Membership::Departed(&departed)
            }
        };
        let (_, top) = window(&info, who, &rec, e.max_seq);
        let last = if top == e.max_seq {
            e.last.as_ref().and_then(|b| pb::Message::decode(b.as_ref()).ok())
        } else {
            self.store.message(conv, Seq(top))?.and_then(|b| pb::Message::decode(b.as_slice()).ok())
        };
        Ok(group_state(conv, &info, who, &rec, e.max_seq, last))
    }

    /// SendMessage to a group conversation.
    pub(crate) fn stage_group_send(
        &mut self,
        op: &ShardOp,
        conv: &ConvId,
        msg: pb::Message,
        t: &mut Turn,
    ) -> Result<pb::SendAck, Reject> {
        let mut e = self.group_entry(conv)?;
        let r = self.group_send_inner(op, conv, msg, &mut e, t);
        self.put_group_entry(conv.clone(), e);
        r
    }

    fn group_send_inner(
        &mut self,
        op: &ShardOp,
        conv: &ConvId,
        msg: pb::Message,
        e: &mut GroupEntry,
        t: &mut Turn,
    ) -> Result<pb::SendAck, Reject> {
        let now = now_ms();
        let Some(me) = e.members.get(&op.user) else {
            return Err(Reject::new(ErrorCode::NotParticipant, "you are not a member of this group"));
        };
        if me.mute_until_ms > now {
            return Err(Reject::new(
                ErrorCode::MemberMuted,
                format!("you are muted in this group until {} (unix ms)", me.mute_until_ms),
            ));
        }
        if e.info.as_ref().is_some_and(|i| i.mute_all) && !is_manager(me) {
            return Err(Reject::new(
                ErrorCode::GroupMuted,
                "the group is muted: only the owner and admins may send",
            ));
        }
        let mentions = msg.content.as_ref().and_then(|c| c.mentions.clone()).unwrap_or_default();
        let msg = self.append(e, t, conv, msg);
        let seq = msg.seq;
        t.touched.push(conv.clone());
        // The sender has read up to its own message.
        let mut rec = self.uconv_of(e, &op.user, conv)?;
        rec.read_seq = rec.read_seq.max(seq);
        self.write_uconv(e, t, &op.user, conv, rec, false);
        if mentions.all
            && let Some(i) = e.info.as_mut()
        {
            i.all_mention_seq = seq;
            t.batch.put_group(&group_of(conv)?, i);
        }
        let mut named: Vec<UserId> = mentions
            .user_ids
            .iter()
            .take(MAX_MENTIONS)
            .filter_map(|u| UserId::new(u.as_str()).ok())
            .collect();
        named.sort();
        named.dedup();
        for u in named {
            if u == op.user || !e.members.contains_key(&u) {
                continue;
            }
            let mut rec = self.uconv_of(e, &u, conv)?;
            rec.mention_seq = seq;
            self.write_uconv(e, t, &u, conv, rec, true);
        }
        t.effects.push(Effect::Fanout {
            users: Self::recipients(e),
            exclude: Some(op.origin),
            frame: frames::push(push::Event::Message(msg.clone())),
        });
        Ok(pb::SendAck {
            conv_id: conv.to_string(),
            seq,
            server_msg_id: msg.server_msg_id,
            server_time_ms: msg.server_time_ms,
            duplicate: false,
        })
    }

    /// MarkRead, UpdateConversation or ClearHistory on a group conversation.
    pub(crate) fn stage_group_member_change(
        &mut self,
        op: &ShardOp,
        conv: &ConvId,
        t: &mut Turn,
        change: impl FnOnce(&mut UserConvRecord, u64),
        receipt: bool,
    ) -> Result<(), Reject> {
        let mut e = self.group_entry(conv)?;
        let r = self.group_member_change_inner(op, conv, t, change, receipt, &mut e);
        self.put_group_entry(conv.clone(), e);
        r
    }

    fn group_member_change_inner(
        &mut self,
        op: &ShardOp,
        conv: &ConvId,
        t: &mut Turn,
        change: impl FnOnce(&mut UserConvRecord, u64),
        receipt: bool,
        e: &mut GroupEntry,
    ) -> Result<(), Reject> {
        // Current or former member (cached_state refuses anyone else).
        let before_state = self.cached_state(e, &op.user, conv)?;
        let before = self.uconv_of(e, &op.user, conv)?;
        let mut rec = before.clone();
        change(&mut rec, before_state.max_seq);
        if rec.hidden && !before.hidden {
            rec.hidden_seq = e.max_seq;
        }
        let changed = rec != before;
        if changed {
            self.write_uconv(e, t, &op.user, conv, rec.clone(), true);
            t.touched.push(conv.clone());
        }
        let state = self.cached_state(e, &op.user, conv)?;
        if changed {
            t.effects.push(Effect::Fanout {
                users: vec![op.user.clone()].into(),
                exclude: Some(op.origin),
                frame: frames::push(push::Event::Conversation(state.clone())),
            });
            if receipt && rec.read_seq > before.read_seq {
                let small =
                    e.info.as_ref().is_some_and(|i| i.member_count <= self.config.groups.receipt_max_members);
                let users = if small { e.members.keys().cloned().collect() } else { vec![op.user.clone()] };
                let r = pb::ReadReceipt {
                    conv_id: conv.to_string(),
                    reader: op.user.to_string(),
                    read_seq: rec.read_seq,
                    reader_device: op.device.to_string(),
                };
                t.effects.push(Effect::Fanout {
                    users: users.into(),
                    exclude: Some(op.origin),
                    frame: frames::push(push::Event::ReadReceipt(r)),
                });
            }
        }
        t.effects.push(Effect::Reply {
            conn: op.origin,
            request_id: op.request_id,
            frame: frames::response(op.request_id, response::Result::Conversation(state)),
        });
        Ok(())
    }

    /// Pull or history on a group conversation: the caller's readable window.
    pub(crate) fn group_window(&mut self, user: &UserId, conv: &ConvId) -> Result<(u64, u64), Reject> {
        let mut e = self.group_entry(conv)?;
        let r = self.cached_state(&mut e, user, conv);
        self.put_group_entry(conv.clone(), e);
        let s = r?;
        Ok((s.min_readable_seq, s.max_seq))
    }

    /// GetGroupReceipt (after the turn's write).
    pub(crate) fn group_receipt(
        &mut self,
        user: &UserId,
        conv: &ConvId,
        seq: u64,
    ) -> Result<response::Result, Reject> {
        let mut e = self.group_entry(conv)?;
        let r = self.group_receipt_inner(user, conv, seq, &mut e);
        self.put_group_entry(conv.clone(), e);
        r
    }

    fn group_receipt_inner(
        &mut self,
        user: &UserId,
        conv: &ConvId,
        seq: u64,
        e: &mut GroupEntry,
    ) -> Result<response::Result, Reject> {
        let Some(info) = e.info.clone().filter(|i| !i.dismissed) else {
            return Err(Reject::new(ErrorCode::GroupNotFound, "no such group"));
        };
        if !e.members.contains_key(user) {
            return Err(not_member(user));
        }
        let limit = self.config.groups.receipt_max_members;
        if info.member_count > limit {
            return Err(Reject::new(
                ErrorCode::ReceiptGroupTooLarge,
                format!("group receipts are kept for groups of at most {limit} members"),
            ));
        }
        if seq == 0 || seq > e.max_seq {
            return Err(checks::invalid(format!("seq: must be within 1..={}", e.max_seq)));
        }
        let sender = match self.store.message(conv, Seq(seq))? {
            Some(b) => pb::Message::decode(b.as_slice()).map_err(corrupt)?.sender,
            None => String::new(),
        };
        let full = info.history_visibility == pb::HistoryVisibility::Full as i32;
        let candidates: Vec<UserId> = e
            .members
            .iter()
            .filter(|(u, m)| u.as_str() != sender && (full || m.join_seq <= seq))
            .map(|(u, _)| u.clone())
            .collect();
        let (mut read, mut unread) = (Vec::new(), Vec::new());
        for u in candidates {
            let rec = self.uconv_of(e, &u, conv)?;
            if rec.read_seq >= seq { read.push(u.to_string()) } else { unread.push(u.to_string()) }
        }
        Ok(response::Result::GroupReceipt(pb::GroupReceipt {
            group_id: conv.as_str().trim_start_matches("g:").to_owned(),
            seq,
            read_count: read.len() as u32,
            unread_count: unread.len() as u32,
            read,
            unread,
        }))
    }

    /// Stages one group management op (see the module docs).
    pub(crate) fn stage_group(&mut self, op: ShardOp, t: &mut Turn) -> Result<(), Reject> {
        let OpKind::Group { conv, op: gop } = &op.kind else {
            return Err(Reject::new(ErrorCode::Internal, "not a group op"));
        };
        if matches!(gop, GroupOp::Receipt { .. }) {
            t.reads.push(op);
            return Ok(());
        }
        let conv = conv.clone();
        let mut e = self.group_entry(&conv)?;
        e.recipients = None;
        let snapshot_len = t.reservations.len();
        let r = self.group_op(&op, &conv, gop, &mut e, t);
        if r.is_err() {
            // Nothing was staged; undo reservations made by the refused op.
            for res in t.reservations.drain(snapshot_len..) {
                self.shared.counters.settle(res, false);
            }
        }
        self.put_group_entry(conv, e);
        r
    }

    fn reserve_joins(&self, users: &[UserId], t: &mut Turn) -> Result<(), Reject> {
        let max = self.config.groups.max_joined;
        for u in users {
            match self.shared.counters.reserve(&self.store, u, Counted::Groups, 1, max)? {
                Some(r) => t.reservations.push(r),
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

    fn release_joins(&self, users: &[UserId], t: &mut Turn) -> Result<(), Reject> {
        for u in users {
            if let Some(r) = self.shared.counters.reserve(&self.store, u, Counted::Groups, -1, usize::MAX)? {
                t.reservations.push(r);
            }
        }
        Ok(())
    }

    fn check_registered(&self, users: &[UserId]) -> Result<(), Reject> {
        for u in users {
            if self.store.account(u)?.is_none() {
                return Err(Reject::new(ErrorCode::UserNotFound, format!("user {u} is not registered")));
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

    #[allow(clippy::too_many_lines)]
    fn group_op(
        &mut self,
        op: &ShardOp,
        conv: &ConvId,
        gop: &GroupOp,
        e: &mut GroupEntry,
        t: &mut Turn,
    ) -> Result<(), Reject> {
        let group = group_of(conv)?;
        let now = now_ms();
        let me = &op.user;
        let mut changes = Changes::default();
        let mut app_updates: Vec<(UserId, Option<GroupApplicationRecord>)> = Vec::new();
        let mut pushes: Vec<(Vec<UserId>, push::Event)> = Vec::new();
        let mut state_reply = false;
        if let GroupOp::Create { req, members } = gop {
            if e.info.is_some() {
                return Err(Reject::new(ErrorCode::GroupExists, format!("group {group} already exists")));
            }
            let gt = match pb::GroupType::try_from(req.r#type) {
                Ok(pb::GroupType::Unspecified) | Ok(pb::GroupType::Work) => pb::GroupType::Work,
                Ok(pb::GroupType::Public) => pb::GroupType::Public,
                _ => return Err(checks::invalid("type: only WORK and PUBLIC groups are served")),
            };
            let limit = self.config.groups.max_members;
            let max_members = if req.max_members == 0 { limit } else { req.max_members };
            if max_members > limit || max_members < 2 {
                return Err(checks::invalid(format!("max_members: 2..={limit}")));
            }
            let (j, i, ed) = type_defaults(gt);
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
            apply_patch(
                &mut info,
                req.info.as_ref().unwrap_or(&pb::GroupPatch::default()),
                &self.config.relations,
            )?;
            let mut all = vec![me.clone()];
            all.extend(members.iter().filter(|u| *u != me).cloned());
            all.sort();
            all.dedup();
            Self::check_room(&info, all.len())?;
            self.check_registered(&all)?;
            self.reserve_joins(&all, t)?;
            e.info = Some(info);
            e.members.clear();
            for u in all {
                let role = if &u == me { pb::GroupRole::Owner } else { pb::GroupRole::Member };
                changes.join.push((u, role));
            }
            let names = csv(&changes.join.iter().map(|(u, _)| u.clone()).collect::<Vec<_>>());
            let out = Outcome::with_tip(
                response::Result::Ok(pb::Ok {}),
                "group.created",
                &[("owner", me.to_string()), ("members", names)],
            );
            return self.finish(op, conv, &group, e, t, out, changes, app_updates, pushes, true, false);
        }
        let Some(info) = e.info.clone().filter(|i| !i.dismissed) else {
            return Err(Reject::new(ErrorCode::GroupNotFound, format!("no group {group}")));
        };
        let mine = e.members.get(me).cloned();
        let need_member = || mine.clone().ok_or_else(|| not_member(me));
        let target_member = |u: &UserId| e.members.get(u).cloned().ok_or_else(|| not_member(u));
        let info_reply = |i: &GroupRecord| response::Result::Group(info_view(group.as_str(), i));
        let mut new_info = info.clone();
        let out = match gop {
            GroupOp::Create { .. } | GroupOp::Receipt { .. } => {
                return Err(Reject::new(ErrorCode::Internal, "handled above"));
            }
            GroupOp::Update { patch } => {
                let m = need_member()?;
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
                if edits && info.edit_mode != pb::EditMode::Everyone as i32 && !is_manager(&m) {
                    return Err(denied("edit the group info"));
                }
                if settings && !is_manager(&m) {
                    return Err(denied("change the group settings"));
                }
                apply_patch(&mut new_info, patch, &self.config.relations)?;
                new_info.updated_ms = now;
                Outcome::with_tip(info_reply(&new_info), "group.info_updated", &[("by", me.to_string())])
            }
            GroupOp::Dismiss => {
                let m = need_member()?;
                if role_of(&m) != pb::GroupRole::Owner {
                    return Err(denied("dismiss the group (owner only)"));
                }
                new_info.dismissed = true;
                changes.leave = e.members.keys().cloned().collect();
                Outcome::with_tip(
                    response::Result::Ok(pb::Ok {}),
                    "group.dismissed",
                    &[("by", me.to_string())],
                )
            }
            GroupOp::Join { reason } => {
                if mine.is_some() {
                    return Err(Reject::new(ErrorCode::AlreadyGroupMember, "you are already a member"));
                }
                let prior = self.store.group_application(&group, me.as_str())?;
                let invited = prior.as_ref().is_some_and(|a| {
                    !a.inviter.is_empty() && a.state == pb::ApplicationState::Pending as i32
                });
                let mode = pb::JoinMode::try_from(info.join_mode).unwrap_or(pb::JoinMode::Nobody);
                if invited || mode == pb::JoinMode::Anyone {
                    Self::check_room(&info, 1)?;
                    self.reserve_joins(std::slice::from_ref(me), t)?;
                    if let Some(mut a) = prior.filter(|_| invited) {
                        a.state = pb::ApplicationState::Accepted as i32;
                        a.handled_ms = now;
                        a.handled_by = me.to_string();
                        app_updates.push((me.clone(), Some(a)));
                    }
                    changes.join.push((me.clone(), pb::GroupRole::Member));
                    Outcome::with_tip(
                        response::Result::JoinGroup(pb::JoinGroupResult {
                            status: pb::JoinStatus::Joined as i32,
                            group: None,
                        }),
                        "group.member_joined",
                        &[("user", me.to_string())],
                    )
                } else if mode == pb::JoinMode::Approval {
                    let a = GroupApplicationRecord {
                        reason: reason.clone(),
                        state: pb::ApplicationState::Pending as i32,
                        created_ms: now,
                        ..Default::default()
                    };
                    let managers: Vec<UserId> =
                        e.members.iter().filter(|(_, m)| is_manager(m)).map(|(u, _)| u.clone()).collect();
                    pushes.push((
                        managers,
                        push::Event::GroupApplication(application_view(group.as_str(), me.as_str(), &a)),
                    ));
                    app_updates.push((me.clone(), Some(a)));
                    Outcome::reply(response::Result::JoinGroup(pb::JoinGroupResult {
                        status: pb::JoinStatus::Applied as i32,
                        group: None,
                    }))
                } else {
                    return Err(Reject::new(ErrorCode::JoinDenied, "this group does not take join requests"));
                }
            }
            GroupOp::Respond { target, accept } => {
                let m = need_member()?;
                if !is_manager(&m) {
                    return Err(denied("handle applications"));
                }
                let Some(mut a) = self
                    .store
                    .group_application(&group, target.as_str())?
                    .filter(|a| a.inviter.is_empty() && a.state == pb::ApplicationState::Pending as i32)
                else {
                    return Err(Reject::new(
                        ErrorCode::NoPendingApplication,
                        format!("no pending application from {target}"),
                    ));
                };
                a.handled_ms = now;
                a.handled_by = me.to_string();
                let joins = *accept && !e.members.contains_key(target);
                if joins {
                    Self::check_room(&info, 1)?;
                    self.reserve_joins(std::slice::from_ref(target), t)?;
                    changes.join.push((target.clone(), pb::GroupRole::Member));
                }
                a.state =
                    if *accept { pb::ApplicationState::Accepted } else { pb::ApplicationState::Rejected }
                        as i32;
                pushes.push((
                    vec![target.clone()],
                    push::Event::GroupApplication(application_view(group.as_str(), target.as_str(), &a)),
                ));
                app_updates.push((target.clone(), Some(a)));
                if joins {
                    Outcome::with_tip(
                        response::Result::Ok(pb::Ok {}),
                        "group.member_joined",
                        &[("user", target.to_string()), ("approved_by", me.to_string())],
                    )
                } else {
                    Outcome::reply(response::Result::Ok(pb::Ok {}))
                }
            }
            GroupOp::Invite { targets } => {
                let m = need_member()?;
                if info.join_mode == pb::JoinMode::Nobody as i32 {
                    return Err(Reject::new(ErrorCode::JoinDenied, "the group is closed to new members"));
                }
                if info.invite_mode == pb::InviteMode::Admins as i32 && !is_manager(&m) {
                    return Err(denied("invite (admins only)"));
                }
                let mut new: Vec<UserId> =
                    targets.iter().filter(|u| !e.members.contains_key(*u)).cloned().collect();
                new.sort();
                new.dedup();
                if new.is_empty() {
                    return Err(Reject::new(
                        ErrorCode::AlreadyGroupMember,
                        "every invited user is already a member",
                    ));
                }
                self.check_registered(&new)?;
                if info.invitee_consent {
                    for u in &new {
                        let a = GroupApplicationRecord {
                            inviter: me.to_string(),
                            state: pb::ApplicationState::Pending as i32,
                            created_ms: now,
                            ..Default::default()
                        };
                        pushes.push((
                            vec![u.clone()],
                            push::Event::GroupApplication(application_view(group.as_str(), u.as_str(), &a)),
                        ));
                        app_updates.push((u.clone(), Some(a)));
                    }
                    Outcome::reply(info_reply(&info))
                } else {
                    Self::check_room(&info, new.len())?;
                    self.reserve_joins(&new, t)?;
                    let names = csv(&new);
                    for u in new {
                        changes.join.push((u, pb::GroupRole::Member));
                    }
                    Outcome::with_tip(
                        response::Result::Ok(pb::Ok {}),
                        "group.members_invited",
                        &[("by", me.to_string()), ("users", names)],
                    )
                }
            }
            GroupOp::Kick { targets } => {
                let m = need_member()?;
                let my_role = role_of(&m);
                if my_role == pb::GroupRole::Member {
                    return Err(denied("remove members"));
                }
                let mut out: Vec<UserId> = targets.clone();
                out.sort();
                out.dedup();
                for u in &out {
                    if u == me {
                        return Err(Reject::new(ErrorCode::SelfTarget, "use QuitGroup to leave"));
                    }
                    let tm = target_member(u)?;
                    if my_role == pb::GroupRole::Admin && role_of(&tm) != pb::GroupRole::Member {
                        return Err(denied("remove the owner or another admin"));
                    }
                }
                let names = csv(&out);
                changes.leave = out;
                Outcome::with_tip(
                    response::Result::Ok(pb::Ok {}),
                    "group.members_kicked",
                    &[("by", me.to_string()), ("users", names)],
                )
            }
            GroupOp::Quit => {
                let m = need_member()?;
                if role_of(&m) == pb::GroupRole::Owner {
                    return Err(Reject::new(
                        ErrorCode::OwnerCannotQuit,
                        "transfer the group or dismiss it first",
                    ));
                }
                changes.leave.push(me.clone());
                Outcome::with_tip(
                    response::Result::Ok(pb::Ok {}),
                    "group.member_quit",
                    &[("user", me.to_string())],
                )
            }
            GroupOp::Transfer { new_owner, quit } => {
                let m = need_member()?;
                if role_of(&m) != pb::GroupRole::Owner {
                    return Err(denied("transfer the group (owner only)"));
                }
                if new_owner == me {
                    return Err(Reject::new(ErrorCode::SelfTarget, "name another member"));
                }
                target_member(new_owner)?;
                new_info.owner = new_owner.to_string();
                if *quit {
                    changes.leave.push(me.clone());
                }
                Outcome::with_tip(
                    info_reply(&new_info),
                    "group.owner_transferred",
                    &[("from", me.to_string()), ("to", new_owner.to_string()), ("quit", quit.to_string())],
                )
            }
            GroupOp::SetRole { target, role } => {
                let m = need_member()?;
                if role_of(&m) != pb::GroupRole::Owner {
                    return Err(denied("set admins (owner only)"));
                }
                if target == me {
                    return Err(Reject::new(
                        ErrorCode::SelfTarget,
                        "the owner's role changes by TransferGroup",
                    ));
                }
                if !matches!(role, pb::GroupRole::Admin | pb::GroupRole::Member) {
                    return Err(checks::invalid("role: ADMIN or MEMBER"));
                }
                let mut tm = target_member(target)?;
                tm.role = *role as i32;
                let view = store_member(e, t, &group, target, tm);
                Outcome::with_tip(
                    response::Result::GroupMember(view),
                    "group.role_changed",
                    &[
                        ("user", target.to_string()),
                        ("role", role.as_str_name().to_owned()),
                        ("by", me.to_string()),
                    ],
                )
            }
            GroupOp::SetNickname { target, nickname } => {
                let m = need_member()?;
                let mut tm = target_member(target)?;
                let allowed = target == me
                    || role_of(&m) == pb::GroupRole::Owner
                    || (role_of(&m) == pb::GroupRole::Admin && role_of(&tm) == pb::GroupRole::Member);
                if !allowed {
                    return Err(denied("change this member's group nickname"));
                }
                tm.nickname = nickname.clone();
                let view = store_member(e, t, &group, target, tm);
                Outcome::with_tip(
                    response::Result::GroupMember(view),
                    "group.nickname_changed",
                    &[("user", target.to_string()), ("nickname", nickname.clone()), ("by", me.to_string())],
                )
            }
            GroupOp::Mute { target, duration_secs } => {
                let m = need_member()?;
                if !is_manager(&m) {
                    return Err(denied("mute members"));
                }
                if target == me {
                    return Err(Reject::new(ErrorCode::SelfTarget, "name another member"));
                }
                let mut tm = target_member(target)?;
                if role_of(&m) == pb::GroupRole::Admin && role_of(&tm) != pb::GroupRole::Member {
                    return Err(denied("mute the owner or another admin"));
                }
                tm.mute_until_ms = if *duration_secs == 0 {
                    0
                } else {
                    now.saturating_add(duration_secs.saturating_mul(1000))
                };
                let view = store_member(e, t, &group, target, tm);
                let until = view.mute_until_ms.to_string();
                Outcome::with_tip(
                    response::Result::GroupMember(view),
                    "group.member_muted",
                    &[("user", target.to_string()), ("until_ms", until), ("by", me.to_string())],
                )
            }
            GroupOp::MuteAll { muted } => {
                let m = need_member()?;
                if !is_manager(&m) {
                    return Err(denied("mute the group"));
                }
                new_info.mute_all = *muted;
                new_info.updated_ms = now;
                Outcome::with_tip(
                    info_reply(&new_info),
                    "group.mute_all",
                    &[("muted", muted.to_string()), ("by", me.to_string())],
                )
            }
            GroupOp::SetNotify { notify } => {
                let mut m = need_member()?;
                m.notify = *notify as i32;
                e.members.insert(me.clone(), m.clone());
                t.batch.put_group_member(&group, me, Some(&m));
                let rec = self.uconv_of(e, me, conv)?;
                self.write_uconv(e, t, me, conv, rec, true);
                state_reply = true;
                Outcome::reply(response::Result::Ok(pb::Ok {}))
            }
        };
        if new_info != info {
            e.info = Some(new_info);
        }
        self.finish(op, conv, &group, e, t, out, changes, app_updates, pushes, false, state_reply)
    }

    /// Applies an op's staged outcome: tip, membership, records, effects.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &mut self,
        op: &ShardOp,
        conv: &ConvId,
        group: &GroupId,
        e: &mut GroupEntry,
        t: &mut Turn,
        out: Outcome,
        changes: Changes,
        app_updates: Vec<(UserId, Option<GroupApplicationRecord>)>,
        pushes: Vec<(Vec<UserId>, push::Event)>,
        created: bool,
        state_reply: bool,
    ) -> Result<(), Reject> {
        let now = now_ms();
        t.touched.push(conv.clone());
        let mut result = out.result;
        let mut extra = out.extra;
        if let Some((kind, params)) = out.tip {
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
            let tip = self.append(e, t, conv, tip);
            let seq = tip.seq;
            let leaving: Vec<UserId> =
                changes.leave.iter().filter(|u| e.members.contains_key(*u)).cloned().collect();
            self.release_joins(&leaving, t)?;
            for u in &leaving {
                let Some(m) = e.members.remove(u) else { continue };
                t.batch.put_group_member(group, u, None);
                let d = GroupDepartedRecord { join_seq: m.join_seq, leave_seq: seq, left_ms: now };
                t.batch.put_group_departed(group, u, Some(&d));
                let rec = self.uconv_of(e, u, conv)?;
                self.write_uconv(e, t, u, conv, rec, true);
                extra.push(u.clone());
            }
            for (u, role) in &changes.join {
                let m = GroupMemberRecord {
                    role: *role as i32,
                    join_ms: now,
                    join_seq: seq,
                    ..Default::default()
                };
                t.batch.put_group_member(group, u, Some(&m));
                t.batch.put_group_departed(group, u, None);
                e.members.insert(u.clone(), m);
                let rec = self.uconv_of(e, u, conv)?;
                self.write_uconv(e, t, u, conv, rec, true);
            }
            // Ownership follows the info record.
            if let Some(i) = e.info.as_mut() {
                let owner = i.owner.clone();
                if let Ok(o) = UserId::new(owner)
                    && let Some(m) = e.members.get_mut(&o)
                    && m.role != pb::GroupRole::Owner as i32
                {
                    m.role = pb::GroupRole::Owner as i32;
                    t.batch.put_group_member(group, &o, Some(m));
                    if let Some(old) =
                        e.members.iter_mut().find(|(u, m)| **u != o && m.role == pb::GroupRole::Owner as i32)
                    {
                        old.1.role = pb::GroupRole::Member as i32;
                        t.batch.put_group_member(group, old.0, Some(old.1));
                    }
                }
                i.member_count = e.members.len() as u32;
                if i.dismissed {
                    i.member_count = 0;
                }
            }
            let mut users = Self::recipients(e).to_vec();
            users.extend(extra);
            t.effects.push(Effect::Fanout {
                users: users.into(),
                exclude: None,
                frame: frames::push(push::Event::Message(tip)),
            });
        }
        if let Some(i) = e.info.as_ref() {
            t.batch.put_group(group, i);
            if created {
                result = response::Result::Group(info_view(group.as_str(), i));
            }
            if let response::Result::Group(g) = &mut result {
                *g = info_view(group.as_str(), i);
            }
            if let response::Result::JoinGroup(j) = &mut result {
                j.group = Some(info_view(group.as_str(), i));
            }
        }
        for (u, a) in app_updates {
            t.batch.put_group_application(group, &u, a.as_ref());
        }
        for (users, ev) in pushes {
            t.effects.push(Effect::Fanout {
                users: users.into(),
                exclude: Some(op.origin),
                frame: frames::push(ev),
            });
        }
        if state_reply {
            let s = self.cached_state(e, &op.user, conv)?;
            t.effects.push(Effect::Fanout {
                users: vec![op.user.clone()].into(),
                exclude: Some(op.origin),
                frame: frames::push(push::Event::Conversation(s.clone())),
            });
            result = response::Result::Conversation(s);
        }
        t.effects.push(Effect::Reply {
            conn: op.origin,
            request_id: op.request_id,
            frame: frames::response(op.request_id, result),
        });
        Ok(())
    }
}

/// Applies a checked patch to a group record.
fn apply_patch(i: &mut GroupRecord, p: &pb::GroupPatch, r: &crate::config::Relations) -> Result<(), Reject> {
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

/// Stateless checks of a group request (connection worker): the group's
/// conversation and the op, or the request back when it is not a group op.
pub(crate) fn check(
    shared: &crate::Shared,
    caller: &UserId,
    op: pb::request::Op,
) -> Result<Result<(ConvId, GroupOp), pb::request::Op>, Reject> {
    use pb::request::Op;
    let r = &shared.config.relations;
    let name_bytes = r.max_name_bytes;
    let patch_ok = |p: &pb::GroupPatch| -> Result<(), Reject> {
        if let Some(v) = &p.name {
            checks::text(v, name_bytes, "name")?;
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
    };
    let user = |s: String, f: &str| checks::user_id(s, f);
    let conv = |g: &str| group_conv(g);
    Ok(Ok(match op {
        Op::CreateGroup(mut req) => {
            if req.group_id.is_empty() {
                req.group_id = format!("g{:016x}", rand::random::<u64>());
            }
            let c = conv(&req.group_id)?;
            if let Some(p) = &req.info {
                patch_ok(p)?;
            }
            let members = if req.member_ids.is_empty() {
                Vec::new()
            } else {
                checks::user_ids(std::mem::take(&mut req.member_ids), "member_ids")?
            };
            (c, GroupOp::Create { req, members })
        }
        Op::UpdateGroup(req) => {
            let patch = req.patch.unwrap_or_default();
            patch_ok(&patch)?;
            (conv(&req.group_id)?, GroupOp::Update { patch })
        }
        Op::DismissGroup(req) => (conv(&req.group_id)?, GroupOp::Dismiss),
        Op::JoinGroup(req) => {
            checks::text(&req.reason, r.max_text_bytes, "reason")?;
            (conv(&req.group_id)?, GroupOp::Join { reason: req.reason })
        }
        Op::RespondGroupApplication(req) => (
            conv(&req.group_id)?,
            GroupOp::Respond { target: user(req.user_id, "user_id")?, accept: req.accept },
        ),
        Op::InviteToGroup(req) => {
            (conv(&req.group_id)?, GroupOp::Invite { targets: checks::user_ids(req.user_ids, "user_ids")? })
        }
        Op::KickFromGroup(req) => {
            (conv(&req.group_id)?, GroupOp::Kick { targets: checks::user_ids(req.user_ids, "user_ids")? })
        }
        Op::QuitGroup(req) => (conv(&req.group_id)?, GroupOp::Quit),
        Op::TransferGroup(req) => (
            conv(&req.group_id)?,
            GroupOp::Transfer { new_owner: user(req.new_owner, "new_owner")?, quit: req.quit },
        ),
        Op::SetGroupRole(req) => {
            let role =
                pb::GroupRole::try_from(req.role).map_err(|_| checks::invalid("role: undefined value"))?;
            (conv(&req.group_id)?, GroupOp::SetRole { target: user(req.user_id, "user_id")?, role })
        }
        Op::SetGroupNickname(req) => {
            checks::text(&req.nickname, name_bytes, "nickname")?;
            let c = conv(&req.group_id)?;
            let target = if req.user_id.is_empty() { caller.clone() } else { user(req.user_id, "user_id")? };
            (c, GroupOp::SetNickname { target, nickname: req.nickname })
        }
        Op::MuteGroupMember(req) => {
            if req.duration_secs > 10 * 365 * 86_400 {
                return Err(checks::invalid("duration_secs: at most 10 years"));
            }
            (
                conv(&req.group_id)?,
                GroupOp::Mute { target: user(req.user_id, "user_id")?, duration_secs: req.duration_secs },
            )
        }
        Op::MuteGroupAll(req) => (conv(&req.group_id)?, GroupOp::MuteAll { muted: req.muted }),
        Op::SetGroupNotify(req) => {
            let notify = pb::GroupNotify::try_from(req.notify)
                .map_err(|_| checks::invalid("notify: undefined value"))?;
            (conv(&req.group_id)?, GroupOp::SetNotify { notify })
        }
        Op::GetGroupReceipt(req) => (conv(&req.group_id)?, GroupOp::Receipt { seq: req.seq }),
        other => return Ok(Err(other)),
    }))
}

/// Whether `op` is a read-only group request served by [`serve_query`].
pub(crate) fn is_query(op: &pb::request::Op) -> bool {
    use pb::request::Op;
    matches!(
        op,
        Op::GetGroups(_) | Op::ListGroupMembers(_) | Op::ListJoinedGroups(_) | Op::ListGroupApplications(_)
    )
}

fn group_id(s: &str) -> Result<GroupId, Reject> {
    group_of(&group_conv(s)?)
}

fn live_group(store: &Store, g: &GroupId) -> Result<GroupRecord, Reject> {
    store
        .group(g)?
        .filter(|i| !i.dismissed)
        .ok_or_else(|| Reject::new(ErrorCode::GroupNotFound, format!("no group {g}")))
}

/// Serves a read-only group request on the connection's worker, from
/// committed storage (like the relation queries).
pub(crate) fn serve_query(
    shared: &crate::Shared,
    user: &UserId,
    op: pb::request::Op,
) -> Result<response::Result, Reject> {
    use pb::request::Op;
    let store = &shared.store;
    let r = &shared.config.relations;
    let page = |limit: u32| checks::page(limit, r);
    let cut = |rows: Vec<GroupId>, limit: usize| checks::cut_page(rows, limit, |g| g.as_str());
    Ok(match op {
        Op::GetGroups(req) => {
            if req.group_ids.is_empty() || req.group_ids.len() > checks::MAX_BATCH_IDS {
                return Err(checks::invalid("group_ids: 1..=100 ids required"));
            }
            let mut groups = Vec::new();
            for g in req.group_ids {
                let g = group_id(&g)?;
                if let Some(i) = store.group(&g)? {
                    groups.push(info_view(g.as_str(), &i));
                }
            }
            response::Result::Groups(pb::Groups { groups })
        }
        Op::ListGroupMembers(req) => {
            let g = group_id(&req.group_id)?;
            checks::cursor(&req.cursor)?;
            let info = live_group(store, &g)?;
            if store.group_member(&g, user.as_str())?.is_none() {
                return Err(not_member(user));
            }
            let limit = page(req.limit);
            let (rows, next_cursor) =
                checks::cut_page(store.group_members(&g, &req.cursor, limit + 1)?, limit, |(u, _)| {
                    u.as_str()
                });
            let members = rows.iter().map(|(u, m)| member_view(g.as_str(), u, m)).collect();
            response::Result::GroupMembers(pb::GroupMembers {
                members,
                next_cursor,
                member_count: info.member_count,
            })
        }
        Op::ListJoinedGroups(req) => {
            if !req.cursor.is_empty() {
                group_id(&req.cursor)?;
            }
            let limit = page(req.limit);
            let (rows, next_cursor) = cut(store.joined_groups(user, &req.cursor, limit + 1)?, limit);
            let mut groups = Vec::with_capacity(rows.len());
            for g in rows {
                if let Some(i) = store.group(&g)? {
                    groups.push(info_view(g.as_str(), &i));
                }
            }
            let total = store.joined_count(user)? as u32;
            response::Result::JoinedGroups(pb::JoinedGroups { groups, next_cursor, total })
        }
        Op::ListGroupApplications(req) => {
            let limit = page(req.limit);
            let mut applications = Vec::new();
            let next_cursor;
            if req.outgoing {
                if !req.cursor.is_empty() {
                    group_id(&req.cursor)?;
                }
                let (rows, next) = cut(store.user_group_applications(user, &req.cursor, limit + 1)?, limit);
                next_cursor = next;
                for g in rows {
                    if let Some(a) = store.group_application(&g, user.as_str())? {
                        applications.push(application_view(g.as_str(), user.as_str(), &a));
                    }
                }
            } else {
                let g = group_id(&req.group_id)?;
                checks::cursor(&req.cursor)?;
                live_group(store, &g)?;
                let Some(m) = store.group_member(&g, user.as_str())? else { return Err(not_member(user)) };
                if !is_manager(&m) {
                    return Err(denied("list applications"));
                }
                let (rows, next) = checks::cut_page(
                    store.group_applications(&g, &req.cursor, limit + 1)?,
                    limit,
                    |(u, _)| u.as_str(),
                );
                next_cursor = next;
                applications = rows.iter().map(|(u, a)| application_view(g.as_str(), u, a)).collect();
            }
            response::Result::GroupApplications(pb::GroupApplications { applications, next_cursor })
        }
        _ => return Err(Reject::new(ErrorCode::Internal, "not a group query")),
    })
}
