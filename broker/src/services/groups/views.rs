//! Wire views of groups and a member's view of the group conversation.
//!
//! Role: pure functions from records to `pb` types, shared by the owner
//! shard (cached records) and sync and the queries (stored records).
//!
//! Invariant: a member's readable window is `join_seq..` (history visibility
//! FROM_JOIN, or `1..` with FULL) and ends at `leave_seq` once the member left.

use missive_protocol::pb;
use missive_protocol::{ConvId, GroupId, Seq, UserId};
use missive_storage::{
    GroupApplicationRecord, GroupDepartedRecord, GroupMemberRecord, GroupRecord, Store, UserConvRecord,
};
use prost::Message as _;

use crate::error::Reject;

use super::corrupt;

/// A user's relation to a group, for their view of its conversation.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Membership<'a> {
    Member(&'a GroupMemberRecord),
    Departed(&'a GroupDepartedRecord),
}

/// The wire info of a group.
pub(crate) fn info_view(group: &GroupId, r: &GroupRecord) -> pb::GroupInfo {
    pb::GroupInfo {
        group_id: group.to_string(),
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
pub(crate) fn member_view(group: &GroupId, user: &str, m: &GroupMemberRecord) -> pb::GroupMember {
    pb::GroupMember {
        group_id: group.to_string(),
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
pub(crate) fn application_view(
    group: &GroupId,
    user: &str,
    a: &GroupApplicationRecord,
) -> pb::GroupApplication {
    pb::GroupApplication {
        group_id: group.to_string(),
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
        update_seq: 0,
        peer_delivered_seq: 0,
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
    let Some(info) = store.group(&group)? else { return Ok(None) };
    let member = store.group_member(&group, user.as_str())?;
    let departed = if member.is_none() { store.group_departed(&group, user.as_str())? } else { None };
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
    let mut st = group_state(conv, &info, who, &rec, max_seq, last);
    st.update_seq = store.update_seq(conv)?;
    crate::services::messages::flags::view_stored(store, conv, &mut st)?;
    Ok(Some(st))
}
