//! Group policy rules of issue 14: the blacklist is not bypassed through a
//! group ([GR-29], [B-2]), and a closed group (`NOBODY`) admits nobody, not
//! even by a pending invitation or an earlier application ([GR-6], [GR-9]).

use missive_protocol::pb::{self, request::Op, response};
use missive_tests::*;

fn invite(c: &mut RawClient, g: &str, users: &[&str]) -> Result<response::Result, pb::Error> {
    c.call(Op::InviteToGroup(pb::InviteToGroup {
        group_id: g.to_owned(),
        user_ids: users.iter().map(|u| (*u).to_owned()).collect(),
    }))
}

fn join(c: &mut RawClient, g: &str) -> Result<response::Result, pb::Error> {
    c.call(Op::JoinGroup(pb::JoinGroup { group_id: g.to_owned(), reason: "hi".into() }))
}

fn respond(c: &mut RawClient, g: &str, user: &str, accept: bool) -> Result<response::Result, pb::Error> {
    c.call(Op::RespondGroupApplication(pb::RespondGroupApplication {
        group_id: g.to_owned(),
        user_id: user.to_owned(),
        accept,
    }))
}

fn set_join_mode(c: &mut RawClient, g: &str, mode: pb::JoinMode) {
    let patch = pb::GroupPatch { join_mode: Some(mode as i32), ..Default::default() };
    must(
        c.call(Op::UpdateGroup(pb::UpdateGroup { group_id: g.to_owned(), patch: Some(patch) })),
        "join mode",
    );
}

fn member_ids(c: &mut RawClient, g: &str) -> Vec<String> {
    match c.call(Op::ListGroupMembers(pb::ListGroupMembers { group_id: g.to_owned(), ..Default::default() }))
    {
        Ok(response::Result::GroupMembers(m)) => m.members.into_iter().map(|m| m.user_id).collect(),
        other => panic!("ListGroupMembers {g}: {other:?}"),
    }
}

fn joined_groups(c: &mut RawClient) -> Vec<String> {
    match c.call(Op::ListJoinedGroups(pb::ListJoinedGroups::default())) {
        Ok(response::Result::JoinedGroups(j)) => j.groups.into_iter().map(|g| g.group_id).collect(),
        other => panic!("ListJoinedGroups: {other:?}"),
    }
}

/// [GR-29]: mallory, blacklisted by bob, cannot put bob into a group, by
/// creating one or by inviting, with or without the invitee's consent; the
/// request is all-or-nothing. A third user may add both; then mallory's group
/// messages reach bob like any member's (the spec's choice, as on mainstream
/// platforms).
#[test]
fn a_blacklisted_user_cannot_add_the_blocker_to_a_group() {
    let b = BrokerProc::start();
    let mut bob = b.client("bob", "phone");
    let mut mallory = b.client("mallory", "phone");
    let mut carol = b.client("carol", "phone");
    let _dave = b.client("dave", "phone");
    must(bob.block("mallory"), "bob blocks mallory");

    // CreateGroup with bob among the members: refused, nothing created.
    let e = assert_error(
        mallory.create_group("m1", pb::GroupType::Work, &["carol", "bob"], None),
        ErrorCode::BlockedByUser,
        "create with the blocker as a member",
    );
    assert!(e.message.contains("bob"), "the error names the user: {e:?}");
    must(mallory.create_group("m1", pb::GroupType::Work, &["carol"], None), "the id is still free");
    assert_eq!(member_ids(&mut mallory, "m1"), ["carol", "mallory"]);

    // InviteToGroup naming bob: refused, nobody of the list is invited.
    assert_error(invite(&mut mallory, "m1", &["bob"]), ErrorCode::BlockedByUser, "invite the blocker");
    assert_error(
        invite(&mut mallory, "m1", &["dave", "bob"]),
        ErrorCode::BlockedByUser,
        "invite a list with him",
    );
    assert_eq!(member_ids(&mut mallory, "m1"), ["carol", "mallory"], "all-or-nothing");

    // With invitee consent, no invitation is stored either: bob cannot join by one.
    let patch = pb::GroupPatch { invitee_consent: Some(true), ..Default::default() };
    must(
        mallory.call(Op::UpdateGroup(pb::UpdateGroup { group_id: "m1".into(), patch: Some(patch) })),
        "consent",
    );
    assert_error(invite(&mut mallory, "m1", &["bob"]), ErrorCode::BlockedByUser, "invitation to the blocker");
    assert_error(join(&mut bob, "m1"), ErrorCode::JoinDenied, "no invitation was stored (INVITE_ONLY)");
    assert!(joined_groups(&mut bob).is_empty(), "bob is in none of mallory's groups");

    // Not covered by the block: a third user adds both; bob invites mallory.
    let g = gconv("c1");
    must(carol.create_group("c1", pb::GroupType::Work, &["bob", "mallory"], None), "carol adds both");
    let ack = must(mallory.send_text(&g, "m-1", "hello group"), "mallory sends in carol's group");
    assert_eq!(
        bob.expect_message(&g, ack.seq).sender,
        "mallory",
        "group messages are not filtered ([GR-29])"
    );
    must(invite(&mut carol, "m1", &["bob"]), "carol may invite bob into mallory's group");
    must(
        bob.create_group("b1", pb::GroupType::Work, &["mallory"], None),
        "the blocker may add the blocked user",
    );
    // The one-to-one conversation stays closed to mallory ([B-2]).
    assert_error(
        mallory.send_text(&direct("bob", "mallory"), "m-2", "hi"),
        ErrorCode::BlockedByUser,
        "direct message",
    );

    // Once bob unblocks her, mallory may add him.
    must(bob.unblock("mallory"), "unblock");
    must(mallory.create_group("m2", pb::GroupType::Work, &["bob"], None), "create after unblock");
    assert!(member_ids(&mut mallory, "m2").contains(&"bob".to_owned()));
}

/// [GR-6], [GR-9]: `NOBODY` suspends pending invitations and applications;
/// they admit again when the group reopens.
#[test]
fn a_closed_group_admits_nobody_even_by_invitation_or_application() {
    let b = BrokerProc::start();
    let mut owner = b.client("owner", "phone");
    let mut bob = b.client("bob", "phone");
    let mut carol = b.client("carol", "phone");

    let consent = pb::GroupPatch { invitee_consent: Some(true), ..Default::default() };
    must(owner.create_group("g", pb::GroupType::Work, &[], Some(consent)), "create");
    must(invite(&mut owner, "g", &["bob"]), "invite bob (pending: consent needed)");
    set_join_mode(&mut owner, "g", pb::JoinMode::Nobody);
    assert_error(join(&mut bob, "g"), ErrorCode::JoinDenied, "accepting an invitation under NOBODY");
    assert_eq!(member_ids(&mut owner, "g"), ["owner"], "bob did not join");

    // An application made under APPROVAL cannot be accepted once the group is closed.
    set_join_mode(&mut owner, "g", pb::JoinMode::Approval);
    match join(&mut carol, "g") {
        Ok(response::Result::JoinGroup(j)) => assert_eq!(j.status, pb::JoinStatus::Applied as i32),
        other => panic!("carol applies: {other:?}"),
    }
    set_join_mode(&mut owner, "g", pb::JoinMode::Nobody);
    assert_error(respond(&mut owner, "g", "carol", true), ErrorCode::JoinDenied, "approve under NOBODY");
    assert_eq!(member_ids(&mut owner, "g"), ["owner"], "carol did not join");

    // Reopened: the pending invitation and application admit again.
    set_join_mode(&mut owner, "g", pb::JoinMode::Approval);
    match join(&mut bob, "g") {
        Ok(response::Result::JoinGroup(j)) => assert_eq!(j.status, pb::JoinStatus::Joined as i32),
        other => panic!("bob joins by his invitation once reopened: {other:?}"),
    }
    must(respond(&mut owner, "g", "carol", true), "approve carol once reopened");
    assert_eq!(member_ids(&mut owner, "g"), ["bob", "carol", "owner"]);
    // Rejecting stays possible under NOBODY.
    let mut dave = b.client("dave", "phone");
    must(join(&mut dave, "g"), "dave applies");
    set_join_mode(&mut owner, "g", pb::JoinMode::Nobody);
    must(respond(&mut owner, "g", "dave", false), "reject under NOBODY");
}
