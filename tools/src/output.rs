//! Rendering of protocol values for `missivectl`: JSON objects (one per
//! line with `--json`) and human-readable lines.
//!
//! Invariants: JSON field names are stable (scripts parse them); human output
//! may change. Times are UTC RFC 3339 with milliseconds.

use missive_protocol::token::platform_name;
use missive_sdk::pb::{self, content::Body};
use serde_json::{Value, json};

/// Unix milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
pub(crate) fn rfc3339_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        ms % 1000
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The text of a message, or a placeholder such as `[image]` for other kinds.
pub(crate) fn content_text(content: Option<&pb::Content>) -> String {
    let Some(body) = content.and_then(|c| c.body.as_ref()) else {
        return "[unsupported]".to_owned();
    };
    match body {
        Body::Text(t) => t.text.clone(),
        Body::Image(_) => "[image]".to_owned(),
        Body::Voice(_) => "[voice]".to_owned(),
        Body::Video(_) => "[video]".to_owned(),
        Body::File(f) => format!("[file {}]", f.name),
        Body::Location(_) => "[location]".to_owned(),
        Body::Custom(c) => format!("[custom {}]", c.r#type),
        Body::Merged(_) => "[merged]".to_owned(),
        Body::Tip(t) => format!("[tip] {}", t.text),
        Body::System(s) => format!("[system] {}", s.text),
    }
}

/// `{"conv","seq","from","text","server_time_ms"}`.
pub(crate) fn message_json(m: &pb::Message) -> Value {
    json!({
        "conv": m.conv_id,
        "seq": m.seq,
        "from": m.sender,
        "text": content_text(m.content.as_ref()),
        "server_time_ms": m.server_time_ms,
    })
}

/// `2026-01-02T03:04:05.678Z p:alice:bob #3 alice: hi`.
pub(crate) fn message_line(m: &pb::Message) -> String {
    format!(
        "{} {} #{} {}: {}",
        rfc3339_ms(m.server_time_ms),
        m.conv_id,
        m.seq,
        m.sender,
        content_text(m.content.as_ref())
    )
}

/// A conversation state as a JSON object.
pub(crate) fn state_json(s: &pb::ConversationState) -> Value {
    json!({
        "conv": s.conv_id,
        "max_seq": s.max_seq,
        "read_seq": s.read_seq,
        "unread": s.unread,
        "cleared_seq": s.cleared_seq,
        "pinned": s.pinned,
        "muted": s.muted,
        "hidden": s.hidden,
        "peer_read_seq": s.peer_read_seq,
        "pin_time_ms": s.pin_time_ms,
        "last_seq": s.last_message.as_ref().map(|m| m.seq),
    })
}

/// One human-readable line for a conversation state.
pub(crate) fn state_line(s: &pb::ConversationState) -> String {
    let mut flags = Vec::new();
    for (on, name) in [(s.pinned, "pinned"), (s.muted, "muted"), (s.hidden, "hidden")] {
        if on {
            flags.push(name);
        }
    }
    format!(
        "{}: max_seq {}, read_seq {}, unread {}, peer_read_seq {}, cleared_seq {}{}",
        s.conv_id,
        s.max_seq,
        s.read_seq,
        s.unread,
        s.peer_read_seq,
        s.cleared_seq,
        if flags.is_empty() { String::new() } else { format!(" [{}]", flags.join(", ")) }
    )
}

// ------------------------------------------------- accounts and relations

/// The lowercase proto name of an enum value without its prefix
/// (`GENDER_FEMALE` → `female`), `unknown(N)` for values this version lacks.
fn enum_name(v: i32, proto_name: Option<&str>, prefix: &str) -> String {
    match proto_name {
        Some(n) => n.trim_start_matches(prefix).to_lowercase(),
        None => format!("unknown({v})"),
    }
}

/// `unspecified`, `male`, `female`, `other`.
pub(crate) fn gender_name(v: i32) -> String {
    enum_name(v, pb::Gender::try_from(v).ok().map(|e| e.as_str_name()), "GENDER_")
}

/// `need_approval`, `allow_anyone`, `deny_all`.
pub(crate) fn verification_name(v: i32) -> String {
    enum_name(v, pb::FriendVerification::try_from(v).ok().map(|e| e.as_str_name()), "FRIEND_VERIFICATION_")
}

/// `none`, `pending`, `accepted`, `rejected`.
pub(crate) fn request_state_name(v: i32) -> String {
    enum_name(v, pb::RequestState::try_from(v).ok().map(|e| e.as_str_name()), "REQUEST_STATE_")
}

/// `added`, `requested` (`unspecified`).
pub(crate) fn add_status_name(v: i32) -> String {
    enum_name(v, pb::AddFriendStatus::try_from(v).ok().map(|e| e.as_str_name()), "ADD_FRIEND_STATUS_")
}

/// Lowercase names of platform values (as in tokens: `ios`, `web`, …).
pub(crate) fn platform_names(values: &[i32]) -> Vec<String> {
    values
        .iter()
        .map(|&v| match pb::Platform::try_from(v) {
            Ok(p) => platform_name(p).to_owned(),
            Err(_) => format!("unknown({v})"),
        })
        .collect()
}

/// `{"user","nickname","avatar_url","gender","birthday","signature","ex",
/// "friend_verification","updated_ms"}`.
pub(crate) fn profile_json(p: &pb::Profile) -> Value {
    json!({
        "user": p.user_id,
        "nickname": p.nickname,
        "avatar_url": p.avatar_url,
        "gender": gender_name(p.gender),
        "birthday": p.birthday,
        "signature": p.signature,
        "ex": p.ex,
        "friend_verification": verification_name(p.friend_verification),
        "updated_ms": p.updated_ms,
    })
}

/// `alice "Alice" (female, 2000-02-29) friends: need_approval`.
pub(crate) fn profile_line(p: &pb::Profile) -> String {
    let mut details = vec![gender_name(p.gender)];
    if !p.birthday.is_empty() {
        details.push(p.birthday.clone());
    }
    let mut line = format!("{} {:?} ({})", p.user_id, p.nickname, details.join(", "));
    if !p.signature.is_empty() {
        line.push_str(&format!(" {:?}", p.signature));
    }
    line.push_str(&format!(" friends: {}", verification_name(p.friend_verification)));
    for (k, v) in &p.ex {
        line.push_str(&format!(" {k}={v}"));
    }
    line
}

/// `{"from","to","message","state","created_ms","handled_ms"}`.
pub(crate) fn request_json(r: &pb::FriendRequest) -> Value {
    json!({
        "from": r.from_user,
        "to": r.to_user,
        "message": r.message,
        "state": request_state_name(r.state),
        "created_ms": r.created_ms,
        "handled_ms": r.handled_ms,
    })
}

/// `alice -> bob [pending] "hi"`.
pub(crate) fn request_line(r: &pb::FriendRequest) -> String {
    format!("{} -> {} [{}] {:?}", r.from_user, r.to_user, request_state_name(r.state), r.message)
}

/// The caller's view of a relation as a JSON object; requests are `null` when absent.
pub(crate) fn relation_json(r: &pb::Relation) -> Value {
    json!({
        "user": r.user_id,
        "is_friend": r.is_friend,
        "peer_has_me": r.peer_has_me,
        "blocked": r.blocked,
        "remark": r.remark,
        "ex": r.ex,
        "friend_since_ms": r.friend_since_ms,
        "blocked_since_ms": r.blocked_since_ms,
        "incoming": r.incoming.as_ref().map(request_json),
        "outgoing": r.outgoing.as_ref().map(request_json),
    })
}

/// `bob: friends both ways, remark "Bobby" [blocked]`.
pub(crate) fn relation_line(r: &pb::Relation) -> String {
    let kind = match (r.is_friend, r.peer_has_me) {
        (true, true) => "friends both ways",
        (true, false) => "in your list only",
        (false, true) => "you are in their list only",
        (false, false) => "not friends",
    };
    let mut line = format!("{}: {kind}", r.user_id);
    if !r.remark.is_empty() {
        line.push_str(&format!(", remark {:?}", r.remark));
    }
    if r.blocked {
        line.push_str(" [blocked]");
    }
    for (what, req) in [("incoming", &r.incoming), ("outgoing", &r.outgoing)] {
        if let Some(req) = req {
            line.push_str(&format!(", {what} request {}", request_state_name(req.state)));
        }
    }
    line
}

/// `{"user","online","platforms","status_text","changed_ms"}`.
pub(crate) fn presence_json(p: &pb::Presence) -> Value {
    json!({
        "user": p.user_id,
        "online": p.online,
        "platforms": platform_names(&p.platforms),
        "status_text": p.status_text,
        "changed_ms": p.changed_ms,
    })
}

/// `alice: online on ios, web "in a meeting"` / `bob: offline`.
pub(crate) fn presence_line(p: &pb::Presence) -> String {
    let mut line = if p.online {
        format!("{}: online on {}", p.user_id, platform_names(&p.platforms).join(", "))
    } else {
        format!("{}: offline", p.user_id)
    };
    if !p.status_text.is_empty() {
        line.push_str(&format!(" {:?}", p.status_text));
    }
    line
}

// ---------------------------------------------------------------- groups

/// Defines `fn name(v: i32) -> String` for a proto enum: its lowercase value
/// names without `prefix`, as [`enum_name`].
macro_rules! enum_names {
    ($($(#[$doc:meta])* $f:ident: $t:ident, $prefix:literal;)*) => {$(
        $(#[$doc])*
        pub(crate) fn $f(v: i32) -> String {
            enum_name(v, pb::$t::try_from(v).ok().map(|e| e.as_str_name()), $prefix)
        }
    )*};
}

enum_names! {
    /// `work`, `public` (`meeting`, `live` reserved).
    group_type_name: GroupType, "GROUP_TYPE_";
    /// `anyone`, `approval`, `invite_only`, `nobody`.
    join_mode_name: JoinMode, "JOIN_MODE_";
    /// `any_member`, `admins`.
    invite_mode_name: InviteMode, "INVITE_MODE_";
    /// `admins`, `everyone`.
    edit_mode_name: EditMode, "EDIT_MODE_";
    /// `from_join`, `full`.
    history_visibility_name: HistoryVisibility, "HISTORY_VISIBILITY_";
    /// `member`, `admin`, `owner`.
    group_role_name: GroupRole, "GROUP_ROLE_";
    /// `notify`, `silent`, `block`.
    group_notify_name: GroupNotify, "GROUP_NOTIFY_";
    /// `joined`, `applied`.
    join_status_name: JoinStatus, "JOIN_STATUS_";
}

/// `{"group","type","name","avatar_url","introduction","notice","ex","join_mode",
/// "invite_mode","invitee_consent","edit_mode","history_visibility","owner",
/// "member_count","max_members","mute_all","created_ms","updated_ms","dismissed"}`.
pub(crate) fn group_json(g: &pb::GroupInfo) -> Value {
    json!({
        "group": g.group_id,
        "type": group_type_name(g.r#type),
        "name": g.name,
        "avatar_url": g.avatar_url,
        "introduction": g.introduction,
        "notice": g.notice,
        "ex": g.ex,
        "join_mode": join_mode_name(g.join_mode),
        "invite_mode": invite_mode_name(g.invite_mode),
        "invitee_consent": g.invitee_consent,
        "edit_mode": edit_mode_name(g.edit_mode),
        "history_visibility": history_visibility_name(g.history_visibility),
        "owner": g.owner,
        "member_count": g.member_count,
        "max_members": g.max_members,
        "mute_all": g.mute_all,
        "created_ms": g.created_ms,
        "updated_ms": g.updated_ms,
        "dismissed": g.dismissed,
    })
}

/// `team "Team" (work, owner alice, 3/500 members, join invite_only) [muted]`.
pub(crate) fn group_line(g: &pb::GroupInfo) -> String {
    let mut line = format!(
        "{} {:?} ({}, owner {}, {}/{} members, join {})",
        g.group_id,
        g.name,
        group_type_name(g.r#type),
        g.owner,
        g.member_count,
        g.max_members,
        join_mode_name(g.join_mode)
    );
    for (on, flag) in [(g.mute_all, " [muted]"), (g.dismissed, " [dismissed]")] {
        if on {
            line.push_str(flag);
        }
    }
    line
}

/// `{"group","user","role","nickname","join_ms","join_seq","mute_until_ms","notify"}`.
pub(crate) fn member_json(m: &pb::GroupMember) -> Value {
    json!({
        "group": m.group_id,
        "user": m.user_id,
        "role": group_role_name(m.role),
        "nickname": m.nickname,
        "join_ms": m.join_ms,
        "join_seq": m.join_seq,
        "mute_until_ms": m.mute_until_ms,
        "notify": group_notify_name(m.notify),
    })
}

/// `bob admin "Bobby" joined at #3 [muted until 2026-01-02T03:04:05.678Z]`.
pub(crate) fn member_line(m: &pb::GroupMember) -> String {
    let mut line = format!("{} {}", m.user_id, group_role_name(m.role));
    if !m.nickname.is_empty() {
        line.push_str(&format!(" {:?}", m.nickname));
    }
    line.push_str(&format!(" joined at #{}", m.join_seq));
    if m.mute_until_ms != 0 {
        line.push_str(&format!(" [muted until {}]", rfc3339_ms(m.mute_until_ms)));
    }
    line
}

/// `{"conv","seq","server_msg_id","server_time_ms","duplicate"}`.
pub(crate) fn ack_json(a: &pb::SendAck) -> Value {
    json!({
        "conv": a.conv_id,
        "seq": a.seq,
        "server_msg_id": a.server_msg_id,
        "server_time_ms": a.server_time_ms,
        "duplicate": a.duplicate,
    })
}

/// `sent to g:team seq 4 server_msg_id 9 at 2026-01-02T03:04:05.678Z`.
pub(crate) fn ack_line(a: &pb::SendAck) -> String {
    format!(
        "sent to {} seq {} server_msg_id {} at {}{}",
        a.conv_id,
        a.seq,
        a.server_msg_id,
        rfc3339_ms(a.server_time_ms),
        if a.duplicate { " (duplicate)" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn renders_relations_and_presence() {
        let p = pb::Presence {
            user_id: "alice".into(),
            online: true,
            platforms: vec![pb::Platform::Ios as i32, pb::Platform::Web as i32],
            status_text: "busy".into(),
            changed_ms: 5,
        };
        assert_eq!(presence_json(&p)["platforms"], json!(["ios", "web"]));
        assert_eq!(presence_line(&p), "alice: online on ios, web \"busy\"");
        let r = pb::Relation {
            user_id: "bob".into(),
            is_friend: true,
            peer_has_me: true,
            outgoing: Some(pb::FriendRequest {
                state: pb::RequestState::Accepted as i32,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(relation_line(&r), "bob: friends both ways, outgoing request accepted");
        assert_eq!(relation_json(&r)["incoming"], Value::Null);
        assert_eq!(relation_json(&r)["outgoing"]["state"], "accepted");
        assert_eq!(gender_name(9), "unknown(9)");
        assert_eq!(gender_name(pb::Gender::Female as i32), "female");
        assert_eq!(verification_name(pb::FriendVerification::AllowAnyone as i32), "allow_anyone");
        assert_eq!(add_status_name(pb::AddFriendStatus::Requested as i32), "requested");
    }

    #[test]
    fn renders_groups() {
        let g = pb::GroupInfo {
            group_id: "team".into(),
            r#type: pb::GroupType::Public as i32,
            name: "Team".into(),
            join_mode: pb::JoinMode::InviteOnly as i32,
            owner: "alice".into(),
            member_count: 3,
            max_members: 500,
            mute_all: true,
            ..Default::default()
        };
        assert_eq!(
            group_line(&g),
            "team \"Team\" (public, owner alice, 3/500 members, join invite_only) [muted]"
        );
        let v = group_json(&g);
        assert_eq!((v["type"].as_str(), v["join_mode"].as_str()), (Some("public"), Some("invite_only")));
        assert_eq!(v["history_visibility"], "from_join");
        let m = pb::GroupMember {
            user_id: "bob".into(),
            role: pb::GroupRole::Admin as i32,
            join_seq: 3,
            ..Default::default()
        };
        assert_eq!(member_line(&m), "bob admin joined at #3");
        assert_eq!(
            (member_json(&m)["role"].as_str(), member_json(&m)["notify"].as_str()),
            (Some("admin"), Some("notify"))
        );
        assert_eq!(join_status_name(pb::JoinStatus::Applied as i32), "applied");
    }

    #[test]
    fn renders_content() {
        assert_eq!(content_text(Some(&missive_sdk::text_content("hi"))), "hi");
        let img = pb::Content { body: Some(Body::Image(pb::Image::default())), ..Default::default() };
        assert_eq!(content_text(Some(&img)), "[image]");
        assert_eq!(content_text(None), "[unsupported]");
    }
}
