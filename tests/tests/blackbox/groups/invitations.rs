//! Invitations waiting for consent ([GR-10]) answered by their invitee with
//! `RespondGroupApplication` naming themselves ([GR-9a]): declining (state,
//! pushes, listings, a later `JoinGroup` as if never invited), accepting (as
//! `JoinGroup`), the refusals around someone else's invitation, and the
//! outcome surviving a restart.

use std::time::Duration;

use missive_protocol::pb::{self, request::Op, response};
use missive_tests::*;

/// How long a push that must not come is waited for.
const QUIET: Duration = Duration::from_millis(400);

fn consent() -> Option<pb::GroupPatch> {
    Some(pb::GroupPatch { invitee_consent: Some(true), ..Default::default() })
}

fn invite(c: &mut RawClient, g: &str, users: &[&str]) -> Result<response::Result, pb::Error> {
    c.call(Op::InviteToGroup(pb::InviteToGroup {
        group_id: g.to_owned(),
        user_ids: users.iter().map(|u| (*u).to_owned()).collect(),
    }))
}

fn respond(c: &mut RawClient, g: &str, user: &str, accept: bool) -> Result<(), pb::Error> {
    c.call(pb::RespondGroupApplication { group_id: g.to_owned(), user_id: user.to_owned(), accept })
}

fn join(c: &mut RawClient, g: &str) -> Result<pb::JoinGroupResult, pb::Error> {
    c.call(pb::JoinGroup { group_id: g.to_owned(), reason: "hi".into() })
}

fn set_join_mode(c: &mut RawClient, g: &str, mode: pb::JoinMode) {
    let patch = pb::GroupPatch { join_mode: Some(mode as i32), ..Default::default() };
    must(c.call(pb::UpdateGroup { group_id: g.to_owned(), patch: Some(patch) }), "join mode");
}

fn member_ids(c: &mut RawClient, g: &str) -> Vec<String> {
    let req = pb::ListGroupMembers { group_id: g.to_owned(), ..Default::default() };
    must(c.call(req), "members").members.into_iter().map(|m| m.user_id).collect()
}

/// The caller's own applications and invitations ([GR-27] `outgoing`).
fn outgoing(c: &mut RawClient) -> Vec<pb::GroupApplication> {
    let req = pb::ListGroupApplications { outgoing: true, ..Default::default() };
    must(c.call(req), "outgoing applications").applications
}

/// The applications and invitations of `g` (owner/admins).
fn received(c: &mut RawClient, g: &str) -> Vec<pb::GroupApplication> {
    let req = pb::ListGroupApplications { group_id: g.to_owned(), ..Default::default() };
    must(c.call(req), "received applications").applications
}

fn own(c: &mut RawClient, g: &str) -> pb::GroupApplication {
    outgoing(c).into_iter().find(|a| a.group_id == g).unwrap_or_else(|| panic!("no record for {g}"))
}

/// The next `Push{group_application}` about `user` in `g` (others stay queued).
fn application_push(c: &mut RawClient, g: &str, user: &str) -> pb::GroupApplication {
    c.wait_push(&format!("group_application {g}/{user}"), WAIT, |ev| match ev {
        pb::push::Event::GroupApplication(a) if a.group_id == g && a.user_id == user => Some(a.clone()),
        _ => None,
    })
}

fn no_application_push(c: &mut RawClient, g: &str, what: &str) {
    c.assert_no_push(what, QUIET, |ev| matches!(ev, pb::push::Event::GroupApplication(a) if a.group_id == g));
}

const PENDING: i32 = pb::ApplicationState::Pending as i32;
const ACCEPTED: i32 = pb::ApplicationState::Accepted as i32;
const REJECTED: i32 = pb::ApplicationState::Rejected as i32;

/// bob declines carol's invitation from his phone: REJECTED, handled by bob;
/// carol (the inviter) and bob's laptop are pushed the outcome, the phone that
/// declined and the owner (who was not pushed the invitation either) are not;
/// both listings show it handled; declining or accepting again is 4108; a
/// later JoinGroup follows the join mode as if bob had never been invited.
#[test]
fn an_invitee_declines_an_invitation() {
    let b = BrokerProc::start();
    let mut owner = b.client("owner", "phone");
    let mut carol = b.client("carol", "phone");
    let mut phone = b.client("bob", "phone");
    let mut laptop = b.client("bob", "laptop");
    must(owner.create_group("g", pb::GroupType::Work, &["carol"], consent()), "create");

    must(invite(&mut carol, "g", &["bob"]), "carol invites bob");
    let inv = application_push(&mut phone, "g", "bob");
    assert_eq!((inv.inviter.as_str(), inv.state), ("carol", PENDING), "{inv:?}");
    application_push(&mut laptop, "g", "bob");

    must(respond(&mut phone, "g", "bob", false), "bob declines");
    for (c, who) in [(&mut carol, "the inviter"), (&mut laptop, "bob's other device")] {
        let a = application_push(c, "g", "bob");
        assert_eq!(
            (a.state, a.inviter.as_str(), a.handled_by.as_str()),
            (REJECTED, "carol", "bob"),
            "{who}: {a:?}"
        );
        assert!(a.handled_ms >= a.created_ms && a.handled_ms > 0, "{who}: {a:?}");
    }
    no_application_push(&mut phone, "g", "the declining connection");
    no_application_push(&mut owner, "g", "the owner ([GR-8]: invitations are not pushed to managers)");
    assert_eq!(member_ids(&mut owner, "g"), ["carol", "owner"], "nobody joined");

    let mine = own(&mut phone, "g");
    assert_eq!((mine.state, mine.handled_by.as_str(), mine.inviter.as_str()), (REJECTED, "bob", "carol"));
    let theirs = received(&mut owner, "g");
    assert_eq!(theirs.len(), 1, "{theirs:?}");
    assert_eq!((theirs[0].user_id.as_str(), theirs[0].state), ("bob", REJECTED));

    // Answered once: nothing is pending any more.
    assert_error(respond(&mut phone, "g", "bob", false), ErrorCode::NoPendingApplication, "decline twice");
    assert_error(respond(&mut laptop, "g", "bob", true), ErrorCode::NoPendingApplication, "accept after");
    assert_eq!(own(&mut phone, "g").state, REJECTED, "a refused answer changes nothing");

    // JoinGroup as if never invited: INVITE_ONLY refuses, APPROVAL applies.
    assert_error(join(&mut phone, "g"), ErrorCode::JoinDenied, "join INVITE_ONLY after declining");
    set_join_mode(&mut owner, "g", pb::JoinMode::Approval);
    let j = must(join(&mut phone, "g"), "apply after declining");
    assert_eq!(j.status, pb::JoinStatus::Applied as i32);
    let app = application_push(&mut owner, "g", "bob");
    assert_eq!((app.state, app.inviter.as_str()), (PENDING, ""), "a fresh application: {app:?}");
    // His own application is not his to answer ([GR-9a] covers invitations only).
    assert_error(respond(&mut phone, "g", "bob", true), ErrorCode::NoPendingApplication, "self-approval");
    assert_eq!(own(&mut phone, "g").state, PENDING, "the application still waits");
    must(respond(&mut owner, "g", "bob", true), "the owner approves it");
    assert_eq!(member_ids(&mut owner, "g"), ["bob", "carol", "owner"]);

    // ANYONE: a declined invitation does not stand in the way of joining directly.
    let mut dave = b.client("dave", "phone");
    must(owner.create_group("open", pb::GroupType::Work, &[], consent()), "create open");
    must(invite(&mut owner, "open", &["dave"]), "invite dave");
    must(respond(&mut dave, "open", "dave", false), "dave declines");
    let a = application_push(&mut owner, "open", "dave");
    assert_eq!((a.state, a.handled_by.as_str()), (REJECTED, "dave"), "the owner as inviter: {a:?}");
    set_join_mode(&mut owner, "open", pb::JoinMode::Anyone);
    assert_eq!(must(join(&mut dave, "open"), "join").status, pb::JoinStatus::Joined as i32);
    // A new invitation can follow a declined one.
    let mut erin = b.client("erin", "phone");
    must(owner.create_group("again", pb::GroupType::Work, &[], consent()), "create again");
    must(invite(&mut owner, "again", &["erin"]), "invite erin");
    must(respond(&mut erin, "again", "erin", false), "erin declines");
    must(invite(&mut owner, "again", &["erin"]), "invite erin again");
    assert_eq!(own(&mut erin, "again").state, PENDING, "pending again");
    must(respond(&mut erin, "again", "erin", true), "erin accepts the new one");
    assert_eq!(member_ids(&mut owner, "again"), ["erin", "owner"]);
}

/// Accepting with RespondGroupApplication is JoinGroup on the invitation:
/// bob joins with the tip `group.member_joined` (no `approved_by`), the
/// invitation is ACCEPTED and handled by bob; answering again is 4108; under
/// NOBODY accepting is 4107 and the invitation stays pending, declining works.
#[test]
fn an_invitee_accepts_an_invitation_by_responding() {
    let b = BrokerProc::start();
    let mut owner = b.client("owner", "phone");
    let mut bob = b.client("bob", "phone");
    let mut carol = b.client("carol", "phone");
    let conv = gconv("g");
    must(owner.create_group("g", pb::GroupType::Work, &[], consent()), "create");
    must(invite(&mut owner, "g", &["bob", "carol"]), "invite bob and carol");

    must(respond(&mut bob, "g", "bob", true), "bob accepts");
    let tip = owner.expect_push("member_joined tip", WAIT, |ev| match ev {
        pb::push::Event::Message(m) if m.conv_id == conv => match m.content.as_ref()?.body.as_ref()? {
            pb::content::Body::Tip(t) if t.kind == "group.member_joined" => {
                Some((m.sender.clone(), t.clone()))
            }
            _ => None,
        },
        _ => None,
    });
    assert_eq!(tip.0, "bob", "the joiner sends the tip");
    assert_eq!(tip.1.params.get("user").map(String::as_str), Some("bob"), "{tip:?}");
    assert!(!tip.1.params.contains_key("approved_by"), "joined by invitation, not approval: {tip:?}");
    assert_eq!(member_ids(&mut owner, "g"), ["bob", "owner"]);
    let mine = own(&mut bob, "g");
    assert_eq!((mine.state, mine.handled_by.as_str()), (ACCEPTED, "bob"));
    assert_error(respond(&mut bob, "g", "bob", true), ErrorCode::NoPendingApplication, "accept twice");
    assert_error(respond(&mut bob, "g", "bob", false), ErrorCode::NoPendingApplication, "decline after");
    assert_error(join(&mut bob, "g"), ErrorCode::AlreadyGroupMember, "JoinGroup after");

    // A closed group admits nobody, even by an answer ([GR-6]); declining stays possible.
    set_join_mode(&mut owner, "g", pb::JoinMode::Nobody);
    assert_error(respond(&mut carol, "g", "carol", true), ErrorCode::JoinDenied, "accept under NOBODY");
    assert_eq!(own(&mut carol, "g").state, PENDING, "the invitation stays pending");
    must(respond(&mut carol, "g", "carol", false), "decline under NOBODY");
    assert_eq!(own(&mut carol, "g").state, REJECTED);
    assert_eq!(member_ids(&mut owner, "g"), ["bob", "owner"]);
}

/// Someone else's invitation: a non-member gets 4102, a member without the
/// role (the inviter included) 4104, the owner and an admin 4108 (an
/// invitation is the invitee's to answer, [GR-9]); nothing changes. A user
/// with nothing pending gets 4108.
#[test]
fn only_the_invitee_answers_an_invitation() {
    let b = BrokerProc::start();
    let mut owner = b.client("owner", "phone");
    let mut admin = b.client("admin", "phone");
    let mut carol = b.client("carol", "phone");
    let mut bob = b.client("bob", "phone");
    let mut dave = b.client("dave", "phone");
    must(owner.create_group("g", pb::GroupType::Work, &["admin", "carol"], consent()), "create");
    must(
        owner.call(pb::SetGroupRole {
            group_id: "g".into(),
            user_id: "admin".into(),
            role: pb::GroupRole::Admin as i32,
        }),
        "admin role",
    );
    must(invite(&mut carol, "g", &["bob"]), "carol invites bob");
    application_push(&mut bob, "g", "bob");

    for accept in [true, false] {
        assert_error(respond(&mut dave, "g", "bob", accept), ErrorCode::NotGroupMember, "an outsider");
        assert_error(
            respond(&mut carol, "g", "bob", accept),
            ErrorCode::GroupPermissionDenied,
            "the inviter, an ordinary member",
        );
        let e =
            assert_error(respond(&mut owner, "g", "bob", accept), ErrorCode::NoPendingApplication, "owner");
        assert!(e.message.contains("invitee"), "the message says whose it is: {e:?}");
        assert_error(respond(&mut admin, "g", "bob", accept), ErrorCode::NoPendingApplication, "an admin");
    }
    assert_error(respond(&mut dave, "g", "dave", false), ErrorCode::NoPendingApplication, "nothing pending");
    assert_error(respond(&mut owner, "g", "owner", true), ErrorCode::NoPendingApplication, "owner, self");
    assert_error(respond(&mut bob, "nope", "bob", false), ErrorCode::GroupNotFound, "unknown group");
    no_application_push(&mut bob, "g", "no answer was stored");
    assert_eq!(own(&mut bob, "g").state, PENDING, "still bob's to answer");
    assert_eq!(member_ids(&mut owner, "g"), ["admin", "carol", "owner"]);
    must(respond(&mut bob, "g", "bob", false), "bob declines");
}

/// A decline and an accept stored before a restart stay answered after it;
/// an invitation stored before it is answered after it.
#[test]
fn answers_to_invitations_survive_a_restart() {
    let mut b = BrokerProc::start();
    {
        let mut owner = b.client("owner", "phone");
        let mut bob = b.client("bob", "phone");
        let _carol = b.client("carol", "phone");
        let _dave = b.client("dave", "phone");
        must(owner.create_group("g", pb::GroupType::Work, &[], consent()), "create");
        must(invite(&mut owner, "g", &["bob", "carol", "dave"]), "invite");
        must(respond(&mut bob, "g", "bob", false), "bob declines");
        let mut carol = b.client("carol", "laptop");
        must(respond(&mut carol, "g", "carol", true), "carol accepts");
    }
    b.restart();
    let mut owner = b.client("owner", "phone");
    let mut bob = b.client("bob", "phone");
    let mut carol = b.client("carol", "phone");
    let mut dave = b.client("dave", "phone");
    let bob_rec = own(&mut bob, "g");
    assert_eq!((bob_rec.state, bob_rec.handled_by.as_str()), (REJECTED, "bob"));
    assert_eq!(own(&mut carol, "g").state, ACCEPTED);
    assert_eq!(own(&mut dave, "g").state, PENDING);
    assert_error(respond(&mut bob, "g", "bob", true), ErrorCode::NoPendingApplication, "after restart");
    assert_eq!(member_ids(&mut owner, "g"), ["carol", "owner"]);
    must(respond(&mut dave, "g", "dave", false), "dave declines after the restart");
    let a = application_push(&mut owner, "g", "dave");
    assert_eq!(a.state, REJECTED);

    b.restart();
    let mut owner = b.client("owner", "phone");
    let mut dave = b.client("dave", "phone");
    assert_eq!(own(&mut dave, "g").state, REJECTED);
    let states: Vec<(String, i32)> =
        received(&mut owner, "g").into_iter().map(|a| (a.user_id, a.state)).collect();
    assert_eq!(
        states,
        [("bob".to_owned(), REJECTED), ("carol".to_owned(), ACCEPTED), ("dave".to_owned(), REJECTED)]
    );
}
