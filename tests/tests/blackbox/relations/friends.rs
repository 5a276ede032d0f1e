//! Profiles (spec 12.2) and friends (spec 13.1, 13.2, 13.4): profile patches
//! and their validation, profile pushes, the friend request flow under each
//! verification setting, deletes, remarks, paged lists, checks, search, the
//! friend limit, admin import, notifications to every device and the sync
//! feed, and persistence across a restart.
//!
//! Size: over 800 lines because it is one service's whole black-box suite
//! (profiles and friends share their fixtures); splitting profiles out is the
//! natural cut when it grows.

use std::collections::BTreeMap;

use missive_protocol::pb::{self, AddFriendStatus, FriendVerification, Gender, RequestState, push};
use missive_tests::*;

fn verification(c: &mut RawClient, v: FriendVerification) {
    let p = must(
        c.set_profile(pb::ProfilePatch { friend_verification: Some(v as i32), ..Default::default() }),
        "set friend_verification",
    );
    assert_eq!(p.friend_verification, v as i32);
}

fn nickname(n: &str) -> pb::ProfilePatch {
    pb::ProfilePatch { nickname: Some(n.to_owned()), ..Default::default() }
}

fn no_ex() -> BTreeMap<String, String> {
    BTreeMap::new()
}

fn ids(list: &[pb::Relation]) -> Vec<&str> {
    list.iter().map(|r| r.user_id.as_str()).collect()
}

/// (is_friend, peer_has_me, blocked)
fn flags(r: &pb::Relation) -> (bool, bool, bool) {
    (r.is_friend, r.peer_has_me, r.blocked)
}

fn is_relation_with(user: &str) -> impl FnMut(&push::Event) -> bool + '_ {
    move |ev| matches!(ev, push::Event::Relation(r) if r.user_id == user)
}

fn is_profile_of(user: &str) -> impl FnMut(&push::Event) -> bool + '_ {
    move |ev| matches!(ev, push::Event::Profile(p) if p.user_id == user)
}

fn assert_invalid_patch(c: &mut RawClient, patch: pb::ProfilePatch, field: &str) {
    let e = assert_error(c.set_profile(patch), ErrorCode::InvalidArgument, field);
    assert!(
        e.message.to_lowercase().contains(field),
        "the message names the field {field:?}: {:?}",
        e.message
    );
}

// ---------------------------------------------------------------- profiles

#[test]
fn profile_set_get_merge_and_validation() {
    let b = BrokerProc::start();
    let mut alice = b.client("alice", "phone");
    let _bob = b.client("bob", "phone");

    let before = now_ms();
    let p = must(
        alice.set_profile(pb::ProfilePatch {
            nickname: Some("Alice".into()),
            avatar_url: Some("https://img.example/a.png".into()),
            gender: Some(Gender::Female as i32),
            birthday: Some("2000-02-29".into()),
            signature: Some("hello there".into()),
            ex: ex_map(&[("city", "Paris"), ("team", "blue")]),
            friend_verification: Some(FriendVerification::AllowAnyone as i32),
        }),
        "set full profile",
    );
    let after = now_ms();
    assert_eq!(p.user_id, "alice");
    assert_eq!(
        (p.nickname.as_str(), p.avatar_url.as_str(), p.gender, p.birthday.as_str(), p.signature.as_str()),
        ("Alice", "https://img.example/a.png", Gender::Female as i32, "2000-02-29", "hello there")
    );
    assert_eq!(p.ex, ex_map(&[("city", "Paris"), ("team", "blue")]));
    assert_eq!(p.friend_verification, FriendVerification::AllowAnyone as i32);
    assert!(p.updated_ms >= before.saturating_sub(5_000) && p.updated_ms <= after + 5_000, "{p:?}");

    // Unset fields are kept; ex is merged, an empty value removes the key.
    let p2 = must(
        alice.set_profile(pb::ProfilePatch {
            signature: Some(String::new()),
            ex: ex_map(&[("team", ""), ("lang", "fr")]),
            ..Default::default()
        }),
        "patch",
    );
    assert_eq!(p2.nickname, "Alice");
    assert_eq!(p2.avatar_url, "https://img.example/a.png");
    assert_eq!(p2.signature, "", "a set empty signature clears it");
    assert_eq!(p2.ex, ex_map(&[("city", "Paris"), ("lang", "fr")]));
    assert_eq!(p2.friend_verification, FriendVerification::AllowAnyone as i32);
    assert!(p2.updated_ms >= p.updated_ms);

    // Batch get: order of the request, unregistered users left out, an empty
    // profile for a registered user who never set one.
    let got = must(alice.get_profiles(&["bob", "ghost", "alice"]), "get profiles");
    let users: Vec<&str> = got.iter().map(|p| p.user_id.as_str()).collect();
    assert_eq!(users, ["bob", "alice"]);
    assert_eq!(got[0].nickname, "");
    assert_eq!(got[0].updated_ms, 0);
    assert_eq!(got[0].friend_verification, FriendVerification::NeedApproval as i32, "the default");
    assert_eq!(got[1], p2);
    assert_batch_bounds("GetProfiles", 0, |ids| alice.get_profiles(ids).map(|v| v.len()));

    // Bounds: exactly at the limit passes.
    must(alice.set_profile(nickname(&"n".repeat(64))), "nickname of 64 bytes");
    must(alice.set_profile(nickname("Alice")), "back");
    assert_invalid_patch(&mut alice, nickname(&"n".repeat(65)), "nickname");
    assert_invalid_patch(
        &mut alice,
        pb::ProfilePatch { avatar_url: Some("u".repeat(1025)), ..Default::default() },
        "avatar_url",
    );
    assert_invalid_patch(
        &mut alice,
        pb::ProfilePatch { signature: Some("s".repeat(257)), ..Default::default() },
        "signature",
    );
    for bad in ["1900-02-29", "2001-13-01", "2001-04-31", "2001-4-1", "yesterday", "2001-04-01T00"] {
        assert_invalid_patch(
            &mut alice,
            pb::ProfilePatch { birthday: Some(bad.into()), ..Default::default() },
            "birthday",
        );
    }
    assert_invalid_patch(&mut alice, pb::ProfilePatch { gender: Some(9), ..Default::default() }, "gender");
    assert_invalid_patch(
        &mut alice,
        pb::ProfilePatch { friend_verification: Some(7), ..Default::default() },
        "friend_verification",
    );
    assert_invalid_patch(
        &mut alice,
        pb::ProfilePatch { ex: ex_map(&[("", "v")]), ..Default::default() },
        "ex",
    );
    let long_key = "k".repeat(65);
    assert_invalid_patch(
        &mut alice,
        pb::ProfilePatch { ex: ex_map(&[(long_key.as_str(), "v")]), ..Default::default() },
        "ex",
    );
    // The merged map counts: 2 x ~2100 bytes passes alone, not together.
    let big1 = "x".repeat(2100);
    let big2 = "y".repeat(2100);
    must(
        alice.set_profile(pb::ProfilePatch { ex: ex_map(&[("big1", &big1)]), ..Default::default() }),
        "ex 2 KiB",
    );
    assert_invalid_patch(
        &mut alice,
        pb::ProfilePatch { ex: ex_map(&[("big2", &big2)]), ..Default::default() },
        "ex",
    );
    // Replacing the big value keeps the map within bounds.
    must(
        alice.set_profile(pb::ProfilePatch {
            ex: ex_map(&[("big1", ""), ("big2", &big2)]),
            ..Default::default()
        }),
        "swap big values",
    );
    must(
        alice.set_profile(pb::ProfilePatch { birthday: Some(String::new()), ..Default::default() }),
        "clear birthday",
    );

    // A refused patch changed nothing.
    let now = must(alice.get_profiles(&["alice"]), "get")[0].clone();
    assert_eq!(now.nickname, "Alice");
    assert_eq!(now.signature, "");
    assert_eq!(now.birthday, "");
    assert_eq!(now.gender, Gender::Female as i32);
    assert_eq!(now.ex.get("big2").map(String::len), Some(2100));
    assert!(!now.ex.contains_key("big1"));
}

#[test]
fn profile_changes_reach_own_devices_and_users_who_have_the_caller_as_friend() {
    let b = BrokerProc::start();
    let mut admin = b.admin();
    let mut alice_phone = b.client("alice", "phone");
    let mut alice_laptop = b.client("alice", "laptop");
    let mut bob = b.client("bob", "phone");
    let mut carol = b.client("carol", "phone");
    let mut dave = b.client("dave", "phone");
    // Offline devices, each with a sync token from before the change.
    let bob_tablet_token = b.client("bob", "tablet").sync_full("").token;
    let alice_tablet_token = b.client("alice", "tablet").sync_full("").token;
    let carol_token = carol.sync_full("").token;

    must(admin.import_friendship("alice", "bob"), "alice <-> bob");
    must(admin.import_friendship("alice", "dave"), "alice <-> dave");
    // alice removes dave from her list: dave still has alice in his.
    must(alice_phone.delete_friend("dave", false), "alice deletes dave one way");
    for c in [&mut alice_phone, &mut alice_laptop, &mut bob, &mut carol, &mut dave] {
        c.clear_pushes();
    }

    let p = must(alice_phone.set_profile(nickname("Alice A.")), "set nickname");
    for (who, c) in [("alice/laptop", &mut alice_laptop), ("bob", &mut bob), ("dave", &mut dave)] {
        let got = c.expect_profile_push("alice");
        assert_eq!(got, p, "{who} gets the new profile");
    }
    // carol is not a friend; the requesting connection has the response.
    carol.assert_no_push("profile of a non-friend", QUIET, is_profile_of("alice"));
    alice_phone.assert_no_push("own profile on the requesting connection", QUIET, is_profile_of("alice"));

    // The sync feed: alice's and bob's offline devices see the new profile;
    // carol's does not.
    let mut bob_tablet = b.client("bob", "tablet");
    let s = bob_tablet.sync_full(&bob_tablet_token);
    assert_eq!(s.profile("alice"), Some(&p), "friend's offline device: {s:?}");
    let mut alice_tablet = b.client("alice", "tablet");
    let s = alice_tablet.sync_full(&alice_tablet_token);
    assert_eq!(s.profile("alice"), Some(&p), "own offline device: {s:?}");
    let s = carol.sync_full(&carol_token);
    assert!(s.profile("alice").is_none(), "not a friend: {s:?}");

    // From "": the user's own profile.
    let s = alice_tablet.sync_full("");
    assert_eq!(s.profile("alice"), Some(&p), "sync from \"\" carries the own profile: {s:?}");
}

// ---------------------------------------------------------------- requests

#[test]
fn need_approval_request_accept_flow() {
    let b = BrokerProc::start();
    let mut alice = b.client("alice", "phone");
    let mut alice_laptop = b.client("alice", "laptop");
    let mut bob = b.client("bob", "phone");
    let mut bob_pad = b.client("bob", "pad");

    let before = now_ms();
    let r = must(alice.add_friend("bob", "hi, it's alice", "Bobby", ex_map(&[("met", "school")])), "add bob");
    assert_eq!(r.status, AddFriendStatus::Requested as i32, "bob needs approval (the default): {r:?}");
    let rel = r.relation.expect("relation in AddFriendResult");
    assert_eq!(rel.user_id, "bob");
    assert_eq!(flags(&rel), (false, false, false));
    let out = rel.outgoing.clone().expect("outgoing request");
    assert_eq!(
        (out.from_user.as_str(), out.to_user.as_str(), out.message.as_str(), out.state),
        ("alice", "bob", "hi, it's alice", RequestState::Pending as i32)
    );
    assert!(out.created_ms + 5_000 >= before, "{out:?}");
    assert!(rel.incoming.is_none(), "{rel:?}");

    // Bob's devices and alice's other device are told.
    for (who, c) in [("bob/phone", &mut bob), ("bob/pad", &mut bob_pad)] {
        let got = c.expect_relation_push("alice");
        let inc = got.incoming.clone().unwrap_or_else(|| panic!("{who}: no incoming request: {got:?}"));
        assert_eq!(
            (inc.message.as_str(), inc.state),
            ("hi, it's alice", RequestState::Pending as i32),
            "{who}"
        );
        assert!(!got.is_friend, "{who}");
    }
    let got = alice_laptop.expect_relation_push("bob");
    assert_eq!(got.outgoing.as_ref().map(|o| o.state), Some(RequestState::Pending as i32), "{got:?}");

    // Lists.
    let recv = must(bob.list_friend_requests(false, "", 0), "received");
    assert_eq!(recv.requests.len(), 1, "{recv:?}");
    assert_eq!(recv.requests[0], out, "the same request as alice's outgoing");
    assert_eq!(recv.next_cursor, "");
    let sent = must(alice.list_friend_requests(true, "", 0), "sent");
    assert_eq!(sent.requests, vec![out.clone()]);
    assert!(must(alice.list_friend_requests(false, "", 0), "alice received").requests.is_empty());
    assert!(must(bob.list_friend_requests(true, "", 0), "bob sent").requests.is_empty());

    // Not friends yet: no friend entries.
    assert!(alice.friend_ids().is_empty());
    assert!(bob.friend_ids().is_empty());
    // Only the target can respond.
    assert_error(
        alice.respond_friend("bob", true, "", no_ex()),
        ErrorCode::NoPendingRequest,
        "no request from bob",
    );

    // Accept.
    let rel = must(bob.respond_friend("alice", true, "Ally", ex_map(&[("k", "v")])), "accept");
    assert_eq!(rel.user_id, "alice");
    assert_eq!(flags(&rel), (true, true, false));
    assert_eq!(rel.remark, "Ally");
    assert_eq!(rel.ex, ex_map(&[("k", "v")]));
    assert!(rel.friend_since_ms > 0);
    assert_eq!(rel.incoming.as_ref().map(|i| i.state), Some(RequestState::Accepted as i32), "{rel:?}");

    for (who, c) in [("alice/phone", &mut alice), ("alice/laptop", &mut alice_laptop)] {
        let got = c.expect_relation_push_where("bob", |r| r.is_friend);
        assert!(got.peer_has_me, "{who}: {got:?}");
        assert_eq!(got.outgoing.as_ref().map(|o| o.state), Some(RequestState::Accepted as i32), "{who}");
    }
    let got = bob_pad.expect_relation_push_where("alice", |r| r.is_friend);
    assert_eq!(got.remark, "Ally");
    let a = alice.relation("bob");
    assert_eq!(flags(&a), (true, true, false));
    assert_eq!(a.remark, "Bobby", "the remark given with AddFriend applies once the request is accepted");
    assert_eq!(a.ex, ex_map(&[("met", "school")]), "the ex given with AddFriend applies once accepted");
    assert_eq!(alice.friend_ids(), ["bob"]);
    assert_eq!(bob.friend_ids(), ["alice"]);
    let recv = must(bob.list_friend_requests(false, "", 0), "received after accept");
    assert_eq!(recv.requests.len(), 1, "every state is listed: {recv:?}");
    assert_eq!(recv.requests[0].state, RequestState::Accepted as i32);
    assert!(recv.requests[0].handled_ms > 0, "{recv:?}");
    assert_error(
        bob.respond_friend("alice", true, "", no_ex()),
        ErrorCode::NoPendingRequest,
        "already handled",
    );
    assert_error(alice.add_friend_msg("bob", "again"), ErrorCode::AlreadyFriends, "already friends");
}

#[test]
fn need_approval_reject_and_repeated_request() {
    let b = BrokerProc::start();
    let mut carol = b.client("carol", "phone");
    let mut bob = b.client("bob", "phone");

    let r = must(carol.add_friend_msg("bob", "first"), "request");
    assert_eq!(r.status, AddFriendStatus::Requested as i32);
    // A repeated request replaces the previous one.
    let r = must(carol.add_friend_msg("bob", "second"), "repeat");
    assert_eq!(r.status, AddFriendStatus::Requested as i32);
    let recv = must(bob.list_friend_requests(false, "", 0), "received");
    assert_eq!(recv.requests.len(), 1, "the latest request per user: {recv:?}");
    assert_eq!(recv.requests[0].message, "second");
    let rel = must(bob.respond_friend("carol", false, "", no_ex()), "reject");
    assert_eq!(flags(&rel), (false, false, false));
    assert_eq!(rel.incoming.as_ref().map(|i| i.state), Some(RequestState::Rejected as i32), "{rel:?}");
    let got = carol.expect_relation_push_where("bob", |r| {
        r.outgoing.as_ref().is_some_and(|o| o.state == RequestState::Rejected as i32)
    });
    assert!(!got.is_friend && !got.peer_has_me);
    let sent = must(carol.list_friend_requests(true, "", 0), "sent");
    assert_eq!(sent.requests.len(), 1);
    assert_eq!(sent.requests[0].state, RequestState::Rejected as i32);
    assert!(carol.friend_ids().is_empty() && bob.friend_ids().is_empty());
    assert_error(bob.respond_friend("carol", false, "", no_ex()), ErrorCode::NoPendingRequest, "handled");

    // A new request after a rejection is pending again.
    let r = must(carol.add_friend_msg("bob", "third"), "request again");
    assert_eq!(r.status, AddFriendStatus::Requested as i32);
    let recv = must(bob.list_friend_requests(false, "", 0), "received");
    assert_eq!(
        recv.requests.iter().map(|r| (r.message.as_str(), r.state)).collect::<Vec<_>>(),
        vec![("third", RequestState::Pending as i32)]
    );
}

#[test]
fn allow_anyone_adds_both_ways_at_once() {
    let b = BrokerProc::start();
    let mut alice = b.client("alice", "phone");
    let mut bob = b.client("bob", "phone");
    let mut bob2 = b.client("bob", "laptop");
    verification(&mut bob, FriendVerification::AllowAnyone);

    let r = must(alice.add_friend("bob", "hi", "B", no_ex()), "add");
    assert_eq!(r.status, AddFriendStatus::Added as i32);
    let rel = r.relation.expect("relation");
    assert_eq!(flags(&rel), (true, true, false));
    assert_eq!(rel.remark, "B");
    for (who, c) in [("bob/phone", &mut bob), ("bob/laptop", &mut bob2)] {
        let got = c.expect_relation_push_where("alice", |r| r.is_friend);
        assert!(got.peer_has_me, "{who}: {got:?}");
    }
    assert!(must(bob.list_friend_requests(false, "", 0), "received").requests.is_empty(), "no request left");
    assert_eq!(bob.friend_ids(), ["alice"]);
    assert_error(alice.add_friend_msg("bob", "again"), ErrorCode::AlreadyFriends, "again");
    assert_error(bob.add_friend_msg("alice", "me too"), ErrorCode::AlreadyFriends, "the other way");
}

#[test]
fn deny_all_refuses_requests_unless_the_target_already_has_the_caller() {
    let b = BrokerProc::start();
    let mut admin = b.admin();
    let mut alice = b.client("alice", "phone");
    let mut bob = b.client("bob", "phone");
    let mut carol = b.client("carol", "phone");
    verification(&mut bob, FriendVerification::DenyAll);

    assert_error(carol.add_friend_msg("bob", "hi"), ErrorCode::FriendRequestsDenied, "deny all");
    assert!(must(bob.list_friend_requests(false, "", 0), "received").requests.is_empty(), "nothing stored");
    assert!(!carol.relation("bob").is_friend);

    // bob has alice in his list (alice deleted bob one way): alice's add
    // completes the friendship whatever bob's setting.
    must(admin.import_friendship("alice", "bob"), "import");
    must(alice.delete_friend("bob", false), "alice deletes bob one way");
    assert_eq!(flags(&alice.relation("bob")), (false, true, false));
    let r = must(alice.add_friend_msg("bob", "back"), "re-add");
    assert_eq!(r.status, AddFriendStatus::Added as i32, "{r:?}");
    assert_eq!(flags(&alice.relation("bob")), (true, true, false));
}

#[test]
fn crossing_requests_complete_the_friendship() {
    let b = BrokerProc::start();
    let mut alice = b.client("alice", "phone");
    let mut bob = b.client("bob", "phone");
    let r = must(alice.add_friend_msg("bob", "hi bob"), "alice -> bob");
    assert_eq!(r.status, AddFriendStatus::Requested as i32);
    let r = must(bob.add_friend_msg("alice", "hi alice"), "bob -> alice");
    assert_eq!(r.status, AddFriendStatus::Added as i32, "alice has a pending request to bob: {r:?}");
    let rel = r.relation.expect("relation");
    assert_eq!(flags(&rel), (true, true, false));
    assert_eq!(rel.incoming.as_ref().map(|i| i.state), Some(RequestState::Accepted as i32), "{rel:?}");
    let sent = must(alice.list_friend_requests(true, "", 0), "alice sent");
    assert_eq!(sent.requests.len(), 1);
    assert_eq!(sent.requests[0].state, RequestState::Accepted as i32, "the pending request became accepted");
    let got = alice.expect_relation_push_where("bob", |r| r.is_friend);
    assert!(got.peer_has_me);
    assert_eq!(alice.friend_ids(), ["bob"]);
    assert_eq!(bob.friend_ids(), ["alice"]);
}

#[test]
fn add_friend_validation() {
    let b = BrokerProc::start();
    let mut alice = b.client("alice", "phone");
    let _bob = b.client("bob", "phone");
    assert_error(alice.add_friend_msg("alice", "me"), ErrorCode::SelfTarget, "self");
    assert_error(alice.add_friend_msg("ghost", "hi"), ErrorCode::UserNotFound, "unregistered");
    assert_error(alice.add_friend_msg("not valid", "hi"), ErrorCode::InvalidArgument, "invalid id");
    assert_error(alice.add_friend_msg("bob", &"m".repeat(257)), ErrorCode::InvalidArgument, "message");
    assert_error(alice.add_friend("bob", "", &"r".repeat(65), no_ex()), ErrorCode::InvalidArgument, "remark");
    assert_error(alice.add_friend("bob", "", "", ex_map(&[("", "v")])), ErrorCode::InvalidArgument, "ex key");
    let big = "v".repeat(4097);
    assert_error(
        alice.add_friend("bob", "", "", ex_map(&[("k", &big)])),
        ErrorCode::InvalidArgument,
        "ex size",
    );
    assert!(must(alice.list_friend_requests(true, "", 0), "sent").requests.is_empty(), "nothing stored");
    must(alice.add_friend_msg("bob", &"m".repeat(256)), "a message of 256 bytes");
}

// ---------------------------------------------------------------- list

#[test]
fn delete_one_way_and_both_ways_keeps_chat_possible() {
    let b = BrokerProc::start();
    let mut admin = b.admin();
    let mut alice = b.client("alice", "phone");
    let mut bob = b.client("bob", "phone");
    must(admin.import_friendship("alice", "bob"), "import");
    assert_eq!(flags(&bob.expect_relation_push("alice")), (true, true, false), "the import");
    assert_eq!(flags(&alice.expect_relation_push("bob")), (true, true, false), "the import");

    let rel = must(alice.delete_friend("bob", false), "one way");
    assert_eq!(flags(&rel), (false, true, false), "bob still has alice: {rel:?}");
    let got = bob.expect_relation_push("alice");
    assert_eq!(flags(&got), (true, false, false), "bob's view: {got:?}");
    assert_eq!(flags(&bob.relation("alice")), (true, false, false));
    assert!(alice.friend_ids().is_empty());
    assert_eq!(bob.friend_ids(), ["alice"]);
    assert_error(alice.delete_friend("bob", false), ErrorCode::NotFriends, "not in alice's list");
    assert_error(alice.delete_friend("alice", false), ErrorCode::SelfTarget, "self");

    let conv = direct("alice", "bob");
    alice.send_ok(&conv, "a1", "still talking");
    bob.send_ok(&conv, "b1", "yes");

    let rel = must(bob.delete_friend("alice", true), "both ways");
    assert_eq!(flags(&rel), (false, false, false));
    let got = alice.expect_relation_push_where("bob", |r| !r.peer_has_me);
    assert_eq!(flags(&got), (false, false, false));
    assert!(bob.friend_ids().is_empty());
    alice.send_ok(&conv, "a2", "strangers can chat");
    bob.send_ok(&conv, "b2", "indeed");

    // both_sides also removes the caller from a list the target still has.
    must(admin.import_friendship("alice", "bob"), "import again");
    must(bob.delete_friend("alice", false), "bob one way");
    must(alice.delete_friend("bob", true), "alice both ways");
    assert_eq!(flags(&alice.relation("bob")), (false, false, false));
    assert_eq!(flags(&bob.relation("alice")), (false, false, false));
}

#[test]
fn remark_and_ex_per_friend() {
    let b = BrokerProc::start();
    let mut admin = b.admin();
    let mut alice = b.client("alice", "phone");
    let mut alice2 = b.client("alice", "laptop");
    let mut bob = b.client("bob", "phone");
    let _carol = b.client("carol", "phone");
    must(admin.import_friendship("alice", "bob"), "import");
    let bob_token = bob.sync_full("").token;

    let rel = must(alice.update_friend("bob", Some("Bobby"), ex_map(&[("x", "1"), ("y", "2")])), "update");
    assert_eq!(rel.remark, "Bobby");
    assert_eq!(rel.ex, ex_map(&[("x", "1"), ("y", "2")]));
    let got = alice2.expect_relation_push_where("bob", |r| r.remark == "Bobby");
    assert_eq!(got.ex, rel.ex);

    let rel = must(alice.update_friend("bob", None, ex_map(&[("x", ""), ("z", "3")])), "merge ex");
    assert_eq!(rel.remark, "Bobby", "unset remark is kept");
    assert_eq!(rel.ex, ex_map(&[("y", "2"), ("z", "3")]));
    let rel = must(alice.update_friend("bob", Some(""), no_ex()), "clear remark");
    assert_eq!(rel.remark, "");
    assert_eq!(rel.ex, ex_map(&[("y", "2"), ("z", "3")]));

    assert_error(
        alice.update_friend("bob", Some(&"r".repeat(65)), no_ex()),
        ErrorCode::InvalidArgument,
        "remark",
    );
    assert_error(alice.update_friend("carol", Some("C"), no_ex()), ErrorCode::NotFriends, "not a friend");
    assert_error(alice.update_friend("ghost", Some("G"), no_ex()), ErrorCode::UserNotFound, "unregistered");

    // Bob's view did not change: nothing in his feed about alice.
    let s = bob.sync_full(&bob_token);
    assert!(s.relation("alice").is_none(), "alice's remark is hers alone: {s:?}");
    assert_eq!(bob.relation("alice").remark, "");
}

#[test]
fn list_friends_is_paged_in_user_id_order() {
    let cfg = "[relations]\npage_default = 4\npage_max = 6\n";
    let b = BrokerOpts::default().config(cfg).spawn();
    let mut admin = b.admin();
    let mut alice = b.client("alice", "phone");
    let friends: Vec<String> = (1..=9).rev().map(|i| format!("f{i:02}")).collect();
    for f in &friends {
        let mut c = b.client(f, "phone");
        must(c.set_profile(nickname(&format!("Friend {f}"))), "nickname");
        must(admin.import_friendship("alice", f), "import");
    }
    let all: Vec<String> = (1..=9).map(|i| format!("f{i:02}")).collect();

    let p1 = must(alice.list_friends("", 3, true), "page 1");
    assert_eq!(ids(&p1.friends), ["f01", "f02", "f03"]);
    assert!(!p1.next_cursor.is_empty());
    let mut names: Vec<(&str, &str)> =
        p1.profiles.iter().map(|p| (p.user_id.as_str(), p.nickname.as_str())).collect();
    names.sort_unstable();
    assert_eq!(names, [("f01", "Friend f01"), ("f02", "Friend f02"), ("f03", "Friend f03")]);
    assert!(p1.friends.iter().all(|r| r.is_friend && r.peer_has_me), "{p1:?}");
    let p2 = must(alice.list_friends(&p1.next_cursor, 3, false), "page 2");
    assert_eq!(ids(&p2.friends), ["f04", "f05", "f06"]);
    assert!(p2.profiles.is_empty(), "without with_profiles");
    let p3 = must(alice.list_friends(&p2.next_cursor, 5, false), "page 3");
    assert_eq!(ids(&p3.friends), ["f07", "f08", "f09"]);
    assert_eq!(p3.next_cursor, "", "the list is complete");

    // limit 0 = page_default; above page_max = page_max.
    let d = must(alice.list_friends("", 0, false), "default page");
    assert_eq!(ids(&d.friends), ["f01", "f02", "f03", "f04"]);
    let m = must(alice.list_friends("", 100, false), "max page");
    assert_eq!(ids(&m.friends), ["f01", "f02", "f03", "f04", "f05", "f06"]);
    // A cursor is a user id.
    let c = must(alice.list_friends("f05", 10, false), "cursor f05");
    assert_eq!(ids(&c.friends), ["f06", "f07", "f08", "f09"]);
    assert_error(alice.list_friends("not a user id!", 3, false), ErrorCode::InvalidArgument, "bad cursor");
    assert_eq!(alice.friend_ids(), all);
}

#[test]
fn list_friend_requests_is_paged() {
    let b = BrokerProc::start();
    let mut bob = b.client("bob", "phone");
    for i in (1..=5).rev() {
        let mut c = b.client(&format!("r{i}"), "phone");
        must(c.add_friend_msg("bob", &format!("from r{i}")), "request");
    }
    let p1 = must(bob.list_friend_requests(false, "", 2), "page 1");
    let from: Vec<&str> = p1.requests.iter().map(|r| r.from_user.as_str()).collect();
    assert_eq!(from, ["r1", "r2"]);
    let p2 = must(bob.list_friend_requests(false, &p1.next_cursor, 2), "page 2");
    let from: Vec<&str> = p2.requests.iter().map(|r| r.from_user.as_str()).collect();
    assert_eq!(from, ["r3", "r4"]);
    let p3 = must(bob.list_friend_requests(false, &p2.next_cursor, 2), "page 3");
    let from: Vec<&str> = p3.requests.iter().map(|r| r.from_user.as_str()).collect();
    assert_eq!(from, ["r5"]);
    assert_eq!(p3.next_cursor, "");
    assert_error(bob.list_friend_requests(false, "bad cursor!", 2), ErrorCode::InvalidArgument, "bad cursor");
}

#[test]
fn check_relations_one_way_two_way_and_unknown() {
    let b = BrokerProc::start();
    let mut admin = b.admin();
    let mut alice = b.client("alice", "phone");
    let mut carol = b.client("carol", "phone");
    let _bob = b.client("bob", "phone");
    let _dave = b.client("dave", "phone");
    must(admin.import_friendship("alice", "bob"), "alice <-> bob");
    must(admin.import_friendship("alice", "carol"), "alice <-> carol");
    must(carol.delete_friend("alice", false), "carol drops alice");
    must(alice.block("dave"), "alice blocks dave");

    let got = must(alice.check_relations(&["dave", "ghost", "carol", "bob"]), "check");
    assert_eq!(ids(&got), ["dave", "ghost", "carol", "bob"], "request order");
    assert_eq!(flags(&got[0]), (false, false, true), "dave: blocked");
    assert!(got[0].blocked_since_ms > 0);
    assert_eq!(flags(&got[1]), (false, false, false), "ghost: unregistered, empty");
    assert_eq!(flags(&got[2]), (true, false, false), "carol: one way");
    assert_eq!(flags(&got[3]), (true, true, false), "bob: two ways");
    assert!(got[3].friend_since_ms > 0);
    let got = must(carol.check_relations(&["alice"]), "carol's view");
    assert_eq!(flags(&got[0]), (false, true, false));

    assert_batch_bounds("CheckRelations", 100, |ids| alice.check_relations(ids).map(|v| v.len()));
}

#[test]
fn search_friends_by_id_nickname_or_remark() {
    let b = BrokerProc::start();
    let mut admin = b.admin();
    let mut alice = b.client("alice", "phone");
    for (u, nick) in [("bob", "Robert"), ("carol", "Caroline"), ("dave", "Dave"), ("eve", "Bobby")] {
        let mut c = b.client(u, "phone");
        must(c.set_profile(nickname(nick)), "nickname");
    }
    for f in ["bob", "carol", "dave"] {
        must(admin.import_friendship("alice", f), "import");
    }
    must(alice.update_friend("dave", Some("Bobcat"), no_ex()), "remark");

    let r = must(alice.search_friends("bob", 0), "bob");
    assert_eq!(ids(&r.friends), ["bob", "dave"], "id and remark match; eve is no friend");
    assert_eq!(r.next_cursor, "");
    let mut names: Vec<(&str, &str)> =
        r.profiles.iter().map(|p| (p.user_id.as_str(), p.nickname.as_str())).collect();
    names.sort_unstable();
    assert_eq!(names, [("bob", "Robert"), ("dave", "Dave")], "with profiles");
    assert_eq!(ids(&must(alice.search_friends("ROBERT", 0), "nickname").friends), ["bob"]);
    assert_eq!(ids(&must(alice.search_friends("caro", 0), "id and nickname").friends), ["carol"]);
    assert_eq!(ids(&must(alice.search_friends("a", 0), "many").friends), ["carol", "dave"]);
    assert_eq!(ids(&must(alice.search_friends("a", 1), "limit").friends), ["carol"]);
    assert!(must(alice.search_friends("zzz", 0), "none").friends.is_empty());
    assert_error(alice.search_friends("", 0), ErrorCode::InvalidArgument, "empty query");
    assert_error(alice.search_friends(&"q".repeat(65), 0), ErrorCode::InvalidArgument, "query over 64 bytes");
}

// ---------------------------------------------------------------- limits, import

#[test]
fn friend_limit_applies_to_both_sides() {
    let b = BrokerOpts::default().config("[relations]\nmax_friends = 2\n").spawn();
    let mut admin = b.admin();
    let mut alice = b.client("alice", "phone");
    let mut users = std::collections::HashMap::new();
    for u in ["b1", "b2", "b3", "b4", "c1", "c2", "b5"] {
        users.insert(u, b.client(u, "phone"));
    }
    let b3 = users.get_mut("b3").expect("b3");
    verification(b3, FriendVerification::AllowAnyone);
    must(admin.import_friendship("alice", "b1"), "1");
    must(admin.import_friendship("alice", "b2"), "2");

    // The caller's list is full.
    assert_error(alice.add_friend_msg("b3", "hi"), ErrorCode::FriendLimit, "alice full");
    assert_eq!(flags(&alice.relation("b3")), (false, false, false), "nothing changed");
    assert_error(admin.import_friendship("alice", "b3"), ErrorCode::FriendLimit, "import: user_a full");
    assert_error(admin.import_friendship("b3", "alice"), ErrorCode::PeerFriendLimit, "import: user_b full");
    // Accepting a request also adds an entry.
    let b5 = users.get_mut("b5").expect("b5");
    must(b5.add_friend_msg("alice", "hi"), "b5 requests alice");
    assert_error(alice.respond_friend("b5", true, "", no_ex()), ErrorCode::FriendLimit, "accept while full");
    let recv = must(alice.list_friend_requests(false, "", 0), "received");
    assert_eq!(recv.requests[0].state, RequestState::Pending as i32, "the request is still pending");
    // Rejecting needs no room.
    must(alice.respond_friend("b5", false, "", no_ex()), "reject while full");

    // The peer's list is full.
    must(admin.import_friendship("b4", "c1"), "b4 1");
    must(admin.import_friendship("b4", "c2"), "b4 2");
    let b4 = users.get_mut("b4").expect("b4");
    verification(b4, FriendVerification::AllowAnyone);
    must(alice.delete_friend("b2", true), "room for alice");
    assert_error(alice.add_friend_msg("b4", "hi"), ErrorCode::PeerFriendLimit, "b4 full");
    assert_eq!(flags(&alice.relation("b4")), (false, false, false));
    let r = must(alice.add_friend_msg("b3", "hi"), "room again");
    assert_eq!(r.status, AddFriendStatus::Added as i32);
    assert_eq!(alice.friend_ids(), ["b1", "b3"]);
}

#[test]
fn admin_import_friendship() {
    let b = BrokerOpts::default().config("[accounts]\nauto_register = false\n").spawn();
    let mut admin = b.admin();
    must(admin.import_user("alice", None), "alice");
    must(admin.import_user("bob", None), "bob");
    let mut alice = b.client("alice", "phone");
    let mut bob = b.client("bob", "phone");

    must(admin.import_friendship("alice", "bob"), "import");
    let got = alice.expect_relation_push("bob");
    assert_eq!(flags(&got), (true, true, false));
    let got = bob.expect_relation_push("alice");
    assert_eq!(flags(&got), (true, true, false));
    must(admin.import_friendship("bob", "alice"), "already friends: ok");
    assert_eq!(alice.friend_ids(), ["bob"]);
    assert_eq!(bob.friend_ids(), ["alice"]);
    assert_error(admin.import_friendship("alice", "ghost"), ErrorCode::UserNotFound, "unregistered");
    assert_error(admin.import_friendship("bad id", "alice"), ErrorCode::InvalidArgument, "invalid id");
}

// ---------------------------------------------------------------- feed, restart

#[test]
fn relation_changes_reach_every_device_and_the_sync_feed() {
    let b = BrokerProc::start();
    let mut alice = b.client("alice", "phone");
    let mut alice_laptop = b.client("alice", "laptop");
    let mut bob = b.client("bob", "phone");
    verification(&mut bob, FriendVerification::AllowAnyone);
    // Offline devices with a token from before.
    let bob_tablet_token = b.client("bob", "tablet").sync_full("").token;
    let alice_tablet_token = b.client("alice", "tablet").sync_full("").token;

    let r = must(alice.add_friend("bob", "hi", "B", no_ex()), "add");
    assert_eq!(r.status, AddFriendStatus::Added as i32);
    assert_eq!(flags(&alice_laptop.expect_relation_push("bob")), (true, true, false));
    assert_eq!(flags(&bob.expect_relation_push("alice")), (true, true, false));
    alice.assert_no_push("relation on the requesting connection", QUIET, is_relation_with("bob"));

    let mut bob_tablet = b.client("bob", "tablet");
    let s = bob_tablet.sync_full(&bob_tablet_token);
    let rel = s
        .relation("alice")
        .unwrap_or_else(|| panic!("bob's offline device, from {bob_tablet_token:?}: {s:?}"));
    assert_eq!(flags(rel), (true, true, false));
    let mut alice_tablet = b.client("alice", "tablet");
    let s = alice_tablet.sync_full(&alice_tablet_token);
    let rel = s
        .relation("bob")
        .unwrap_or_else(|| panic!("alice's offline device, from {alice_tablet_token:?}: {s:?}"));
    assert_eq!(flags(rel), (true, true, false));
    assert_eq!(rel.remark, "B");

    // Nothing new since: the next sync from that token has no relations.
    let again = alice_tablet.sync_full(&s.token);
    assert!(again.relations.is_empty(), "{again:?}");

    // From "": every relation the user has.
    let mut carol = b.client("carol", "phone");
    must(carol.add_friend_msg("alice", "hello"), "pending request to alice");
    let s = alice_tablet.sync_full("");
    let mut users: Vec<&str> = s.relations.iter().map(|r| r.user_id.as_str()).collect();
    users.sort_unstable();
    users.dedup();
    assert_eq!(users, ["bob", "carol"], "{s:?}");
    assert_eq!(
        s.relation("carol").and_then(|r| r.incoming.as_ref()).map(|i| i.state),
        Some(RequestState::Pending as i32)
    );
}

#[test]
fn friends_requests_remarks_and_profiles_survive_a_restart() {
    let mut b = BrokerProc::start();
    {
        let mut admin = b.admin();
        let mut alice = b.client("alice", "phone");
        let mut bob = b.client("bob", "phone");
        let mut carol = b.client("carol", "phone");
        must(alice.set_profile(nickname("Alice")), "profile");
        must(admin.import_friendship("alice", "bob"), "import");
        must(alice.update_friend("bob", Some("Bobby"), ex_map(&[("k", "v")])), "remark");
        must(bob.delete_friend("alice", false), "bob one way");
        must(carol.add_friend_msg("alice", "hi"), "pending");
    }
    b.restart();
    let mut alice = b.client("alice", "phone");
    let rel = alice.relation("bob");
    assert_eq!(flags(&rel), (true, false, false));
    assert_eq!((rel.remark.as_str(), &rel.ex), ("Bobby", &ex_map(&[("k", "v")])));
    let recv = must(alice.list_friend_requests(false, "", 0), "received");
    assert_eq!(
        recv.requests.iter().map(|r| (r.from_user.as_str(), r.message.as_str(), r.state)).collect::<Vec<_>>(),
        vec![("carol", "hi", RequestState::Pending as i32)]
    );
    assert_eq!(must(alice.get_profiles(&["alice"]), "profile")[0].nickname, "Alice");
    let r = must(alice.respond_friend("carol", true, "", no_ex()), "accept after restart");
    assert_eq!(flags(&r), (true, true, false));
}

#[test]
fn sync_pages_relations_and_profiles_with_the_conversations() {
    // [N-2]: one feed, one `limit` for conversations, relations and profiles.
    let b = BrokerProc::start();
    let mut admin = b.admin();
    let mut alice = b.client("alice", "phone");
    must(alice.set_profile(nickname("Alice")), "own profile");
    for f in ["f1", "f2", "f3"] {
        let _c = b.client(f, "phone");
        must(admin.import_friendship("alice", f), "import");
    }
    must(alice.block("z1"), "block");
    let mut r1 = b.client("r1", "phone");
    must(r1.add_friend_msg("alice", "hi"), "pending request");
    alice.send_ok(&direct("alice", "f1"), "m1", "hello");
    alice.send_ok(&direct("alice", "f2"), "m2", "hello");

    let mut tablet = b.client("alice", "tablet");
    let (mut convs, mut rels, mut profiles) = (Vec::new(), Vec::new(), Vec::new());
    let mut token = String::new();
    for page_no in 0.. {
        assert!(page_no < 100, "sync paging does not end");
        let page = must(tablet.sync(&token, 2), "sync page");
        let items = page.conversations.len() + page.relations.len() + page.profiles.len();
        assert!(items <= 2, "page {page_no} holds {items} items over the limit 2: {page:?}");
        convs.extend(page.conversations.into_iter().map(|c| c.conv_id));
        rels.extend(page.relations);
        profiles.extend(page.profiles.into_iter().map(|p| (p.user_id, p.nickname)));
        token = page.sync_token;
        if !page.more {
            break;
        }
        assert!(items > 0, "more=true with an empty page");
    }
    convs.sort_unstable();
    assert_eq!(convs, [direct("alice", "f1"), direct("alice", "f2")]);
    let mut users: Vec<&str> = rels.iter().map(|r| r.user_id.as_str()).collect();
    users.sort_unstable();
    users.dedup();
    assert_eq!(users, ["f1", "f2", "f3", "r1", "z1"], "every relation once: {rels:?}");
    assert!(rels.iter().any(|r| r.user_id == "z1" && r.blocked), "{rels:?}");
    assert!(profiles.contains(&("alice".to_owned(), "Alice".to_owned())), "own profile: {profiles:?}");
}

#[test]
fn a_sync_from_empty_carries_the_own_profile_even_when_never_set() {
    // [N-2] + 12.2: a sync from "" carries the user's own profile; an unset one is empty. It
    // counts against the page limit, and paging still brings every other item once.
    let b = BrokerProc::start();
    let mut admin = b.admin();
    let _f = b.client("pf1", "phone");
    let mut pa = b.client("pa", "phone");
    must(admin.import_friendship("pa", "pf1"), "import");
    pa.send_ok(&direct("pa", "pf1"), "m1", "hello");

    let first = must(pa.sync("", 0), "sync from empty");
    assert_eq!(first.profiles.len(), 1, "own profile only: {:?}", first.profiles);
    assert_eq!(first.profiles[0].user_id, "pa");
    assert_eq!(first.profiles[0].nickname, "", "never set: empty");
    assert_eq!(first.profiles[0].updated_ms, 0, "never set: {:?}", first.profiles[0]);
    assert_eq!(first.relations.len(), 1, "{first:?}");

    // Limit 1: the first page is the own profile alone; the rest follows.
    let mut tablet = b.client("pa", "tablet");
    let page = must(tablet.sync("", 1), "first page");
    assert_eq!(page.profiles.len(), 1, "{page:?}");
    assert!(page.conversations.is_empty() && page.relations.is_empty(), "{page:?}");
    assert!(page.more, "more follows");
    let (mut convs, mut rels, mut token) = (0, 0, page.sync_token);
    for page_no in 0.. {
        assert!(page_no < 50, "sync paging does not end");
        let page = must(tablet.sync(&token, 1), "next page");
        assert!(page.profiles.is_empty(), "own profile once: {page:?}");
        convs += page.conversations.len();
        rels += page.relations.len();
        token = page.sync_token;
        if !page.more {
            break;
        }
    }
    assert_eq!((convs, rels), (1, 1), "every item once");

    // Set, the profile comes once on a fresh sync (no second copy from the feed).
    must(pa.set_profile(nickname("Pa")), "set");
    let again = must(pa.sync("", 0), "sync from empty");
    let own: Vec<_> = again.profiles.iter().filter(|p| p.user_id == "pa").collect();
    assert_eq!(own.len(), 1, "{:?}", again.profiles);
    assert_eq!(own[0].nickname, "Pa");
}

#[test]
fn relation_requests_check_registration_and_blocks_in_spec_order() {
    let b = BrokerProc::start();
    let mut alice = b.client("alice", "phone");
    let mut bob = b.client("bob", "phone");
    // Both blocked each other: the target's block (4008) is checked first.
    must(alice.block("bob"), "alice blocks bob");
    must(bob.block("alice"), "bob blocks alice");
    assert_error(alice.add_friend_msg("bob", "hi"), ErrorCode::BlockedByUser, "both blocked");
    // Unregistered targets.
    assert_error(alice.delete_friend("ghost", false), ErrorCode::UserNotFound, "delete unregistered");
    assert_error(
        alice.respond_friend("ghost", true, "", no_ex()),
        ErrorCode::UserNotFound,
        "respond unregistered",
    );
    assert_error(alice.respond_friend("alice", true, "", no_ex()), ErrorCode::SelfTarget, "respond self");
    assert_error(alice.update_friend("alice", Some("me"), no_ex()), ErrorCode::SelfTarget, "update self");
    assert_error(alice.unblock("alice"), ErrorCode::SelfTarget, "unblock self");
}
