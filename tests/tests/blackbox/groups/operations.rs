//! Groups (spec section "Groups"): roles × operations allowed and refused with
//! their codes, join and invite modes, mute, transfer, dismiss, kicked members
//! losing access, late-joiner history, mentions, receipts, notify settings, sync.

use std::time::Duration;

use missive_protocol::pb::{self, request::Op, response};
use missive_tests::*;

fn gid(g: &str) -> String {
    g.to_owned()
}

fn invite(c: &mut RawClient, g: &str, users: &[&str]) -> Result<response::Result, pb::Error> {
    c.call(Op::InviteToGroup(pb::InviteToGroup {
        group_id: gid(g),
        user_ids: users.iter().map(|u| (*u).to_owned()).collect(),
    }))
}

fn kick(c: &mut RawClient, g: &str, user: &str) -> Result<response::Result, pb::Error> {
    c.call(Op::KickFromGroup(pb::KickFromGroup { group_id: gid(g), user_ids: vec![user.to_owned()] }))
}

fn set_role(
    c: &mut RawClient,
    g: &str,
    user: &str,
    role: pb::GroupRole,
) -> Result<response::Result, pb::Error> {
    c.call(Op::SetGroupRole(pb::SetGroupRole {
        group_id: gid(g),
        user_id: user.to_owned(),
        role: role as i32,
    }))
}

fn mute(c: &mut RawClient, g: &str, user: &str, secs: u64) -> Result<response::Result, pb::Error> {
    c.call(Op::MuteGroupMember(pb::MuteGroupMember {
        group_id: gid(g),
        user_id: user.to_owned(),
        duration_secs: secs,
    }))
}

fn nickname(c: &mut RawClient, g: &str, user: &str, nick: &str) -> Result<response::Result, pb::Error> {
    c.call(Op::SetGroupNickname(pb::SetGroupNickname {
        group_id: gid(g),
        user_id: user.to_owned(),
        nickname: nick.to_owned(),
    }))
}

fn update(c: &mut RawClient, g: &str, patch: pb::GroupPatch) -> Result<response::Result, pb::Error> {
    c.call(Op::UpdateGroup(pb::UpdateGroup { group_id: gid(g), patch: Some(patch) }))
}

fn join(c: &mut RawClient, g: &str) -> Result<response::Result, pb::Error> {
    c.call(Op::JoinGroup(pb::JoinGroup { group_id: gid(g), reason: "let me in".into() }))
}

fn respond(c: &mut RawClient, g: &str, user: &str, accept: bool) -> Result<response::Result, pb::Error> {
    c.call(Op::RespondGroupApplication(pb::RespondGroupApplication {
        group_id: gid(g),
        user_id: user.to_owned(),
        accept,
    }))
}

fn members(c: &mut RawClient, g: &str) -> Vec<pb::GroupMember> {
    match c.call(Op::ListGroupMembers(pb::ListGroupMembers {
        group_id: gid(g),
        cursor: String::new(),
        limit: 0,
    })) {
        Ok(response::Result::GroupMembers(m)) => m.members,
        other => panic!("ListGroupMembers: {other:?}"),
    }
}

fn info(c: &mut RawClient, g: &str) -> pb::GroupInfo {
    match c.call(Op::GetGroups(pb::GetGroups { group_ids: vec![gid(g)] })) {
        Ok(response::Result::Groups(mut gs)) => gs.groups.pop().expect("group known"),
        other => panic!("GetGroups: {other:?}"),
    }
}

fn role_of(c: &mut RawClient, g: &str, user: &str) -> Option<i32> {
    members(c, g).into_iter().find(|m| m.user_id == user).map(|m| m.role)
}

fn tip_kind(m: &pb::Message) -> &str {
    match m.content.as_ref().and_then(|c| c.body.as_ref()) {
        Some(pb::content::Body::Tip(t)) => t.kind.as_str(),
        _ => "",
    }
}

/// owner o, admin a, a2, members m and m2, outsider x in a WORK group "w".
fn setup(b: &BrokerProc) -> [RawClient; 6] {
    let mut o = b.client("o", "d");
    let a = b.client("a", "d");
    let a2 = b.client("a2", "d");
    let m = b.client("m", "d");
    let m2 = b.client("m2", "d");
    let x = b.client("x", "d");
    let g = o.create_group("w", pb::GroupType::Work, &["a", "a2", "m", "m2"], None).expect("create");
    assert_eq!((g.owner.as_str(), g.member_count), ("o", 5));
    assert_eq!(g.join_mode, pb::JoinMode::InviteOnly as i32);
    set_role(&mut o, "w", "a", pb::GroupRole::Admin).expect("owner sets admin");
    set_role(&mut o, "w", "a2", pb::GroupRole::Admin).expect("owner sets admin");
    [o, a, a2, m, m2, x]
}

#[test]
fn role_permission_matrix() {
    let b = BrokerProc::start();
    let [mut o, mut a, _a2, mut m, _m2, mut x] = setup(&b);
    let denied = ErrorCode::GroupPermissionDenied;
    // Roles: only the owner sets or unsets admins.
    assert_error(set_role(&mut a, "w", "m", pb::GroupRole::Admin), denied, "admin sets admin");
    assert_error(set_role(&mut m, "w", "m2", pb::GroupRole::Admin), denied, "member sets admin");
    assert_error(set_role(&mut x, "w", "m", pb::GroupRole::Admin), ErrorCode::NotGroupMember, "outsider");
    set_role(&mut o, "w", "a2", pb::GroupRole::Member).expect("owner unsets admin");
    assert_eq!(role_of(&mut o, "w", "a2"), Some(pb::GroupRole::Member as i32));
    set_role(&mut o, "w", "a2", pb::GroupRole::Admin).expect("owner sets admin again");
    // Kick: an admin cannot kick the owner or another admin; members cannot kick.
    assert_error(kick(&mut a, "w", "o"), denied, "admin kicks owner");
    assert_error(kick(&mut a, "w", "a2"), denied, "admin kicks admin");
    assert_error(kick(&mut m, "w", "m2"), denied, "member kicks member");
    assert_error(kick(&mut x, "w", "m2"), ErrorCode::NotGroupMember, "outsider kicks");
    assert_error(kick(&mut o, "w", "x"), ErrorCode::NotGroupMember, "kick a non-member");
    kick(&mut a, "w", "m2").expect("admin kicks member");
    kick(&mut o, "w", "a2").expect("owner kicks admin");
    // Mute: owner/admins; an admin cannot mute the owner or admins.
    assert_error(mute(&mut a, "w", "o", 60), denied, "admin mutes owner");
    assert_error(mute(&mut m, "w", "a", 60), denied, "member mutes");
    mute(&mut o, "w", "a", 60).expect("owner mutes admin");
    mute(&mut o, "w", "a", 0).expect("owner unmutes admin");
    // Nicknames: owner anyone's, admin ordinary members', everyone their own.
    nickname(&mut o, "w", "a", "boss2").expect("owner renames admin");
    nickname(&mut a, "w", "m", "mm").expect("admin renames member");
    assert_error(nickname(&mut a, "w", "o", "x"), denied, "admin renames owner");
    assert_error(nickname(&mut m, "w", "a", "x"), denied, "member renames admin");
    nickname(&mut m, "w", "", "me").expect("member renames self");
    let ms = members(&mut o, "w");
    assert_eq!(ms.iter().find(|x| x.user_id == "m").map(|x| x.nickname.as_str()), Some("me"));
    // Info: WORK lets every member edit info; settings need owner/admin.
    update(&mut m, "w", pb::GroupPatch { name: Some("renamed".into()), ..Default::default() })
        .expect("member edits");
    assert_error(
        update(
            &mut m,
            "w",
            pb::GroupPatch { join_mode: Some(pb::JoinMode::Anyone as i32), ..Default::default() },
        ),
        denied,
        "member changes join mode",
    );
    update(
        &mut a,
        "w",
        pb::GroupPatch { edit_mode: Some(pb::EditMode::Admins as i32), ..Default::default() },
    )
    .expect("admin changes settings");
    assert_error(
        update(&mut m, "w", pb::GroupPatch { notice: Some("n".into()), ..Default::default() }),
        denied,
        "member edits after EDIT_MODE_ADMINS",
    );
    // Invite: WORK any member; after INVITE_MODE_ADMINS only admins.
    invite(&mut m, "w", &["x"]).expect("member invites in a WORK group");
    assert_error(invite(&mut m, "w", &["x"]), ErrorCode::AlreadyGroupMember, "invite a member");
    update(
        &mut o,
        "w",
        pb::GroupPatch { invite_mode: Some(pb::InviteMode::Admins as i32), ..Default::default() },
    )
    .expect("owner sets invite mode");
    assert_error(invite(&mut m, "w", &["m2"]), denied, "member invites with INVITE_MODE_ADMINS");
    assert_error(invite(&mut a, "w", &["nobody-registered"]), ErrorCode::UserNotFound, "unregistered");
    invite(&mut a, "w", &["m2"]).expect("admin invites");
    // Dismiss: owner only.
    assert_error(c_dismiss(&mut a, "w"), denied, "admin dismisses");
    assert_error(c_dismiss(&mut m, "w"), denied, "member dismisses");
    assert_eq!(info(&mut x, "w").name, "renamed", "public info readable");
}

fn c_dismiss(c: &mut RawClient, g: &str) -> Result<response::Result, pb::Error> {
    c.call(Op::DismissGroup(pb::DismissGroup { group_id: gid(g) }))
}

fn quit(c: &mut RawClient, g: &str) -> Result<response::Result, pb::Error> {
    c.call(Op::QuitGroup(pb::QuitGroup { group_id: gid(g) }))
}

fn transfer(c: &mut RawClient, g: &str, to: &str, q: bool) -> Result<response::Result, pb::Error> {
    c.call(Op::TransferGroup(pb::TransferGroup { group_id: gid(g), new_owner: to.to_owned(), quit: q }))
}

#[test]
fn quit_transfer_dismiss_and_lost_access() {
    let b = BrokerProc::start();
    let [mut o, mut a, mut a2, mut m, mut m2, _x] = setup(&b);
    let conv = gconv("w");
    assert_error(quit(&mut o, "w"), ErrorCode::OwnerCannotQuit, "owner quits");
    assert_error(transfer(&mut a, "w", "m", false), ErrorCode::GroupPermissionDenied, "admin transfers");
    assert_error(transfer(&mut o, "w", "o", false), ErrorCode::SelfTarget, "transfer to self");
    // Transfer without quit: o becomes a member.
    transfer(&mut o, "w", "a", false).expect("transfer");
    assert_eq!(info(&mut m, "w").owner, "a");
    assert_eq!(role_of(&mut m, "w", "o"), Some(pb::GroupRole::Member as i32));
    assert_eq!(role_of(&mut m, "w", "a"), Some(pb::GroupRole::Owner as i32));
    // Transfer with quit: a leaves, m2 owns.
    transfer(&mut a, "w", "m2", true).expect("transfer and quit");
    assert_eq!(role_of(&mut m, "w", "a"), None);
    assert_eq!(info(&mut m, "w").owner, "m2");
    // Kicked member loses access: no send, reads stop at the kick tip.
    m.send_ok(&conv, "before", "before kick");
    kick(&mut m2, "w", "m").expect("owner kicks m");
    let kicked_tip = m.expect_push("kick tip", WAIT, |e| match e {
        pb::push::Event::Message(msg) if tip_kind(msg) == "group.members_kicked" => Some(msg.clone()),
        _ => None,
    });
    m2.send_ok(&conv, "after", "after kick");
    assert_error(m.send_text(&conv, "x1", "nope"), ErrorCode::NotParticipant, "kicked member sends");
    let page = m.pull(&conv, 1, 0, 100).expect("former member pulls");
    assert_eq!(page.max_seq, kicked_tip.seq, "reads stop at the leave seq");
    assert!(page.messages.iter().all(|x| x.seq <= kicked_tip.seq));
    let sync = m.sync_all("");
    let st = sync.conv(&conv).expect("departed group in sync");
    assert_eq!(st.max_seq, kicked_tip.seq);
    // Quit: a2 (admin) quits.
    quit(&mut a2, "w").expect("quit");
    assert_error(a2.send_text(&conv, "y", "nope"), ErrorCode::NotParticipant, "quit member sends");
    // Dismiss by the owner: every member loses the group.
    c_dismiss(&mut m2, "w").expect("owner dismisses");
    o.expect_push("dismiss tip", WAIT, |e| match e {
        pb::push::Event::Message(msg) if tip_kind(msg) == "group.dismissed" => Some(()),
        _ => None,
    });
    assert_error(o.send_text(&conv, "z", "gone"), ErrorCode::NotParticipant, "send after dismiss");
    assert_error(join(&mut o, "w"), ErrorCode::GroupNotFound, "join a dismissed group");
    assert!(info(&mut o, "w").dismissed);
    match o.call(Op::ListJoinedGroups(pb::ListJoinedGroups::default())) {
        Ok(response::Result::JoinedGroups(j)) => assert_eq!(j.total, 0),
        other => panic!("{other:?}"),
    }
}

#[test]
fn mute_member_and_mute_all() {
    let b = BrokerProc::start();
    let [mut o, mut a, _a2, mut m, _m2, _x] = setup(&b);
    let conv = gconv("w");
    mute(&mut a, "w", "m", 3600).expect("admin mutes member");
    assert_error(m.send_text(&conv, "m1", "hi"), ErrorCode::MemberMuted, "muted member sends");
    mute(&mut a, "w", "m", 0).expect("unmute");
    m.send_ok(&conv, "m2", "hi again");
    assert_error(
        m.call(Op::MuteGroupAll(pb::MuteGroupAll { group_id: gid("w"), muted: true })),
        ErrorCode::GroupPermissionDenied,
        "member mutes all",
    );
    a.call(Op::MuteGroupAll(pb::MuteGroupAll { group_id: gid("w"), muted: true })).expect("admin mutes all");
    assert_error(m.send_text(&conv, "m3", "hi"), ErrorCode::GroupMuted, "member under mute-all");
    a.send_ok(&conv, "a1", "admins still speak");
    o.send_ok(&conv, "o1", "owner too");
    o.call(Op::MuteGroupAll(pb::MuteGroupAll { group_id: gid("w"), muted: false })).expect("unmute all");
    m.send_ok(&conv, "m4", "free");
}

#[test]
fn join_and_invite_modes() {
    let b = BrokerProc::start();
    let mut o = b.client("o", "d");
    let mut a = b.client("a", "d");
    let mut m = b.client("m", "d");
    let mut p = b.client("p", "d");
    let mut q = b.client("q", "d");
    // PUBLIC: join by application, approved by owner/admins.
    let g = o.create_group("pub", pb::GroupType::Public, &["a", "m"], None).expect("create");
    assert_eq!(g.join_mode, pb::JoinMode::Approval as i32);
    set_role(&mut o, "pub", "a", pb::GroupRole::Admin).expect("admin");
    assert_error(invite(&mut m, "pub", &["p"]), ErrorCode::GroupPermissionDenied, "member invites in PUBLIC");
    assert_error(
        update(&mut m, "pub", pb::GroupPatch { name: Some("x".into()), ..Default::default() }),
        ErrorCode::GroupPermissionDenied,
        "member edits PUBLIC info",
    );
    match join(&mut p, "pub") {
        Ok(response::Result::JoinGroup(j)) => assert_eq!(j.status, pb::JoinStatus::Applied as i32),
        other => panic!("{other:?}"),
    }
    a.expect_push("application push", WAIT, |e| match e {
        pb::push::Event::GroupApplication(x) if x.user_id == "p" => Some(()),
        _ => None,
    });
    match a.call(Op::ListGroupApplications(pb::ListGroupApplications {
        group_id: gid("pub"),
        ..Default::default()
    })) {
        Ok(response::Result::GroupApplications(l)) => assert_eq!(l.applications.len(), 1),
        other => panic!("{other:?}"),
    }
    assert_error(
        m.call(Op::ListGroupApplications(pb::ListGroupApplications {
            group_id: gid("pub"),
            ..Default::default()
        })),
        ErrorCode::GroupPermissionDenied,
        "member lists applications",
    );
    match p
        .call(Op::ListGroupApplications(pb::ListGroupApplications { outgoing: true, ..Default::default() }))
    {
        Ok(response::Result::GroupApplications(l)) => assert_eq!(l.applications[0].group_id, "pub"),
        other => panic!("{other:?}"),
    }
    assert_error(respond(&mut m, "pub", "p", true), ErrorCode::GroupPermissionDenied, "member approves");
    assert_error(respond(&mut a, "pub", "q", true), ErrorCode::NoPendingApplication, "no application");
    respond(&mut a, "pub", "p", true).expect("admin approves");
    assert!(role_of(&mut o, "pub", "p").is_some());
    assert_error(join(&mut p, "pub"), ErrorCode::AlreadyGroupMember, "join twice");
    join(&mut q, "pub").expect("q applies");
    respond(&mut o, "pub", "q", false).expect("owner rejects");
    assert!(role_of(&mut o, "pub", "q").is_none());
    assert_error(respond(&mut o, "pub", "q", true), ErrorCode::NoPendingApplication, "already handled");
    // ANYONE: direct join.
    update(
        &mut o,
        "pub",
        pb::GroupPatch { join_mode: Some(pb::JoinMode::Anyone as i32), ..Default::default() },
    )
    .expect("anyone");
    match join(&mut q, "pub") {
        Ok(response::Result::JoinGroup(j)) => assert_eq!(j.status, pb::JoinStatus::Joined as i32),
        other => panic!("{other:?}"),
    }
    // NOBODY: no join, no invite.
    o.create_group(
        "closed",
        pb::GroupType::Work,
        &[],
        Some(pb::GroupPatch { join_mode: Some(pb::JoinMode::Nobody as i32), ..Default::default() }),
    )
    .expect("create closed");
    assert_error(join(&mut p, "closed"), ErrorCode::JoinDenied, "join NOBODY");
    assert_error(invite(&mut o, "closed", &["p"]), ErrorCode::JoinDenied, "invite NOBODY");
    // INVITE_ONLY (WORK default) with invitee consent: the invitee accepts by JoinGroup.
    o.create_group(
        "inv",
        pb::GroupType::Work,
        &[],
        Some(pb::GroupPatch { invitee_consent: Some(true), ..Default::default() }),
    )
    .expect("create inv");
    assert_error(join(&mut p, "inv"), ErrorCode::JoinDenied, "join INVITE_ONLY uninvited");
    invite(&mut o, "inv", &["p"]).expect("invite with consent");
    p.expect_push("invitation", WAIT, |e| match e {
        pb::push::Event::GroupApplication(x) if x.group_id == "inv" && x.inviter == "o" => Some(()),
        _ => None,
    });
    assert!(role_of(&mut o, "inv", "p").is_none(), "not a member before consenting");
    join(&mut p, "inv").expect("consent");
    assert!(role_of(&mut o, "inv", "p").is_some());
    // Group full.
    let mut small = pb::CreateGroup { group_id: "small".into(), max_members: 2, ..Default::default() };
    small.member_ids = vec!["a".into()];
    o.call(Op::CreateGroup(small)).expect("create small");
    assert_error(invite(&mut o, "small", &["m"]), ErrorCode::GroupFull, "full");
    assert_error(o.create_group("small", pb::GroupType::Work, &[], None), ErrorCode::GroupExists, "exists");
    match p.call(Op::ListJoinedGroups(pb::ListJoinedGroups::default())) {
        Ok(response::Result::JoinedGroups(j)) => {
            assert_eq!(j.total, 2);
            assert_eq!(j.groups.iter().map(|g| g.group_id.as_str()).collect::<Vec<_>>(), vec!["inv", "pub"]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn messages_history_mentions_receipts_notify_and_sync() {
    let b = BrokerProc::start();
    let mut o = b.client("o", "d");
    let mut o2 = b.client("o", "d2");
    let mut m = b.client("m", "d");
    let mut s = b.client("s", "d");
    let mut late = b.client("late", "d");
    let conv = gconv("chat");
    o.create_group("chat", pb::GroupType::Work, &["m", "s"], None).expect("create");
    let ack = o.send_ok(&conv, "c1", "hello group");
    // Delivered to every online member device, including the sender's other device.
    assert_eq!(m.expect_message(&conv, ack.seq).sender, "o");
    o2.expect_message(&conv, ack.seq);
    // Notification setting BLOCK: not pushed, still readable.
    match s.call(Op::SetGroupNotify(pb::SetGroupNotify {
        group_id: gid("chat"),
        notify: pb::GroupNotify::Block as i32,
    })) {
        Ok(response::Result::Conversation(c)) => assert_eq!(c.group_notify, pb::GroupNotify::Block as i32),
        other => panic!("{other:?}"),
    }
    // Mention of m.
    let mut content = text("@m look");
    content.mentions = Some(pb::Mentions { user_ids: vec!["m".into()], all: false });
    let a2 = o.send_content(&conv, "c2", content).expect("mention send");
    m.expect_message(&conv, a2.seq);
    while let Some(msg) = s.next_message_push(Duration::from_millis(300)) {
        assert!(msg.seq < a2.seq, "blocked member got a push of a later message: {msg:?}");
    }
    let st = m.sync_all("").conv(&conv).cloned().expect("group in sync");
    assert!(st.mentioned && st.unread >= 2, "{st:?}");
    let ss = s.sync_all("").conv(&conv).cloned().expect("group in s's sync");
    assert!(!ss.mentioned && ss.unread >= 2);
    // Receipts: nobody read c2 yet except the sender.
    let receipt = |c: &mut RawClient, seq| match c
        .call(Op::GetGroupReceipt(pb::GetGroupReceipt { group_id: gid("chat"), seq }))
    {
        Ok(response::Result::GroupReceipt(r)) => r,
        other => panic!("{other:?}"),
    };
    let r = receipt(&mut o, a2.seq);
    assert_eq!((r.read_count, r.unread, r.read.len()), (0, vec!["m".to_owned(), "s".to_owned()], 0));
    let st = m.mark_read(&conv, 0).expect("mark read");
    assert!(!st.mentioned && st.unread == 0, "{st:?}");
    o.expect_push("receipt push", WAIT, |e| match e {
        pb::push::Event::ReadReceipt(r) if r.reader == "m" => Some(()),
        _ => None,
    });
    let r = receipt(&mut o, a2.seq);
    assert_eq!((r.read, r.unread), (vec!["m".to_owned()], vec!["s".to_owned()]));
    // Late joiner sees history from the join tip on (default visibility).
    invite(&mut o, "chat", &["late"]).expect("invite late");
    let sync = late.sync_all("");
    let st = sync.conv(&conv).cloned().expect("late's sync includes the group");
    assert!(st.min_readable_seq > a2.seq, "{st:?}");
    let page = late.pull(&conv, 1, 0, 100).expect("late pulls");
    assert!(page.messages.iter().all(|x| x.seq >= st.min_readable_seq));
    assert_eq!(tip_kind(&page.messages[0]), "group.members_invited");
    assert_error(
        late.call(Op::GetGroupReceipt(pb::GetGroupReceipt { group_id: gid("chat"), seq: 99 })),
        ErrorCode::InvalidArgument,
        "seq beyond",
    );
    // Incremental sync of m reports the group after a new message only.
    let t = m.sync_all("").token;
    let a3 = late.send_ok(&conv, "l1", "hi from late");
    m.expect_message(&conv, a3.seq);
    let inc = m.sync_all(&t);
    assert_eq!(inc.conv(&conv).map(|c| (c.max_seq, c.unread)), Some((a3.seq, 2)), "tip + message unread");
    let again = m.sync_all(&inc.token);
    assert!(again.conv(&conv).is_none(), "no change, no entry");
    // Outsiders cannot read.
    let mut x = b.client("x", "d");
    assert_error(x.pull(&conv, 1, 0, 10), ErrorCode::NotParticipant, "outsider pulls");
    assert_error(x.send_text(&conv, "x", "x"), ErrorCode::NotParticipant, "outsider sends");
}

/// Invariant 3 in a group: a resent SendMessage (same device, same
/// client_msg_id) is stored once, gets the original ack back and is pushed once.
#[test]
fn group_retry_is_stored_and_pushed_once() {
    let b = BrokerProc::start();
    let [mut o, _a, _a2, mut m, _m2, _x] = setup(&b);
    let conv = gconv("w");
    let first = o.send_ok(&conv, "retry-1", "hello");
    let again = o.send_text(&conv, "retry-1", "hello").expect("resend");
    assert!(again.duplicate, "{again:?}");
    assert_eq!((again.seq, again.server_msg_id), (first.seq, first.server_msg_id));
    let seq = first.seq;
    m.expect_push("the message", WAIT, |e| match e {
        pb::push::Event::Message(msg) if msg.seq == seq => Some(()),
        _ => None,
    });
    m.assert_no_push(
        "a second copy",
        Duration::from_millis(300),
        |e| matches!(e, pb::push::Event::Message(msg) if msg.client_msg_id == "retry-1"),
    );
    let page = m.pull(&conv, 1, 0, 100).expect("pull");
    let copies = page.messages.iter().filter(|x| x.client_msg_id == "retry-1").count();
    assert_eq!(copies, 1, "stored once: {page:?}");
    assert_eq!(page.max_seq, seq, "nothing appended by the resend");
}
