//! Blacklist (spec 13.3, [N-1]): add / remove / list / check, blocked
//! messages and friend requests (4008), IN_YOUR_BLACKLIST (4009), friendship
//! records kept, BLACKLIST_LIMIT (4010), and the blocked user is not told.

use missive_protocol::pb::{self, FriendVerification, push};
use missive_tests::*;

fn blocked_ids(list: &pb::Blacklist) -> Vec<&str> {
    list.users.iter().map(|u| u.user_id.as_str()).collect()
}

#[test]
fn add_remove_list_and_check() {
    let b = BrokerProc::start();
    let mut alice = b.client("alice", "phone");
    let mut alice2 = b.client("alice", "laptop");
    let _bob = b.client("bob", "phone");

    let before = now_ms();
    let rel = must(alice.block("bob"), "block bob");
    assert_eq!(rel.user_id, "bob");
    assert!(rel.blocked, "{rel:?}");
    assert!(rel.blocked_since_ms + 5_000 >= before, "{rel:?}");
    let got = alice2.expect_relation_push("bob");
    assert!(got.blocked, "alice's other device is told: {got:?}");
    let again = must(alice.block("bob"), "block twice (idempotent)");
    assert!(again.blocked);

    // Unregistered users may be blocked.
    must(alice.block("ghost"), "block an unregistered user");
    assert_error(alice.block("alice"), ErrorCode::SelfTarget, "self");
    assert_error(alice.block("not valid"), ErrorCode::InvalidArgument, "invalid id");

    let list = must(alice.list_blacklist("", 0), "list");
    assert_eq!(blocked_ids(&list), ["bob", "ghost"]);
    assert!(list.users.iter().all(|u| u.since_ms > 0), "{list:?}");
    assert_eq!(list.next_cursor, "");
    assert!(alice.relation("bob").blocked);
    assert!(alice.relation("ghost").blocked);

    let rel = must(alice.unblock("bob"), "unblock");
    assert!(!rel.blocked, "{rel:?}");
    let got = alice2.expect_relation_push_where("bob", |r| !r.blocked);
    assert!(!got.blocked);
    must(alice.unblock("bob"), "unblock twice (idempotent)");
    assert_eq!(blocked_ids(&must(alice.list_blacklist("", 0), "list")), ["ghost"]);
    assert!(!alice.relation("bob").blocked);
}

#[test]
fn blacklist_is_paged() {
    let b = BrokerProc::start();
    let mut alice = b.client("alice", "phone");
    for u in ["u5", "u3", "u1", "u4", "u2"] {
        must(alice.block(u), "block");
    }
    let p1 = must(alice.list_blacklist("", 2), "page 1");
    assert_eq!(blocked_ids(&p1), ["u1", "u2"]);
    let p2 = must(alice.list_blacklist(&p1.next_cursor, 2), "page 2");
    assert_eq!(blocked_ids(&p2), ["u3", "u4"]);
    let p3 = must(alice.list_blacklist(&p2.next_cursor, 2), "page 3");
    assert_eq!(blocked_ids(&p3), ["u5"]);
    assert_eq!(p3.next_cursor, "");
    assert_eq!(blocked_ids(&must(alice.list_blacklist("u2", 10), "cursor u2")), ["u3", "u4", "u5"]);
    assert_error(alice.list_blacklist("bad cursor!", 2), ErrorCode::InvalidArgument, "bad cursor");
}

#[test]
fn blocked_user_cannot_message_the_blocker_who_still_can() {
    let b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "phone");
    let mut bob = b.client("bob", "phone");
    bob.send_ok(&conv, "b0", "before the block");

    must(alice.block("bob"), "block");
    assert_error(bob.send_text(&conv, "b1", "blocked?"), ErrorCode::BlockedByUser, "bob -> alice");
    let ack = alice.send_ok(&conv, "a1", "I can still talk");
    let m = bob.next_message_push(WAIT).expect("bob receives alice's message");
    assert_eq!((m.seq, m.sender.as_str()), (ack.seq, "alice"));
    // Nothing of bob's was stored.
    let all = alice.pull_all(&conv);
    assert_dense(&all, 1, 2, "conversation");
    assert_eq!(text_of(&all[1]), "I can still talk");

    must(alice.unblock("bob"), "unblock");
    let ack = bob.send_ok(&conv, "b1", "thanks");
    assert_eq!(ack.seq, 3);
}

#[test]
fn blocked_friend_requests_and_in_your_blacklist() {
    let b = BrokerProc::start();
    let mut alice = b.client("alice", "phone");
    let mut bob = b.client("bob", "phone");
    must(
        alice.set_profile(pb::ProfilePatch {
            friend_verification: Some(FriendVerification::AllowAnyone as i32),
            ..Default::default()
        }),
        "alice allows anyone",
    );
    must(alice.block("bob"), "block");
    assert_error(bob.add_friend_msg("alice", "hi"), ErrorCode::BlockedByUser, "blocked request");
    assert_error(alice.add_friend_msg("bob", "hi"), ErrorCode::InYourBlacklist, "request to a blocked user");
    assert!(must(alice.list_friend_requests(false, "", 0), "received").requests.is_empty());
    assert!(must(bob.list_friend_requests(false, "", 0), "received").requests.is_empty());
    assert!(!alice.relation("bob").is_friend && !bob.relation("alice").is_friend);

    must(alice.unblock("bob"), "unblock");
    let r = must(bob.add_friend_msg("alice", "hi again"), "request after unblock");
    assert_eq!(r.status, pb::AddFriendStatus::Added as i32);
}

#[test]
fn block_keeps_the_friendship_record() {
    let b = BrokerProc::start();
    let mut admin = b.admin();
    let mut alice = b.client("alice", "phone");
    let mut bob = b.client("bob", "phone");
    must(admin.import_friendship("alice", "bob"), "friends");

    must(alice.block("bob"), "block a friend");
    let a = alice.relation("bob");
    assert_eq!((a.is_friend, a.peer_has_me, a.blocked), (true, true, true), "{a:?}");
    let v = bob.relation("alice");
    assert_eq!((v.is_friend, v.peer_has_me, v.blocked), (true, true, false), "{v:?}");
    assert_eq!(alice.friend_ids(), ["bob"]);
    assert_eq!(bob.friend_ids(), ["alice"]);
    // Still blocked for messages although friends.
    assert_error(
        bob.send_text(&direct("alice", "bob"), "b1", "hi"),
        ErrorCode::BlockedByUser,
        "friend blocked",
    );
    // Friend operations keep working for the blocker.
    must(alice.update_friend("bob", Some("Blocked Bob"), ex_map(&[])), "remark");
    assert!(alice.relation("bob").blocked);
}

#[test]
fn blacklist_limit() {
    let b = BrokerOpts::default().config("[relations]\nmax_blacklist = 2\n").spawn();
    let mut alice = b.client("alice", "phone");
    must(alice.block("u1"), "1");
    must(alice.block("u2"), "2");
    assert_error(alice.block("u3"), ErrorCode::BlacklistLimit, "third");
    assert_eq!(blocked_ids(&must(alice.list_blacklist("", 0), "list")), ["u1", "u2"]);
    must(alice.block("u1"), "blocking a blocked user again at the limit (idempotent)");
    must(alice.unblock("u2"), "make room");
    must(alice.block("u3"), "room again");
    assert_eq!(blocked_ids(&must(alice.list_blacklist("", 0), "list")), ["u1", "u3"]);
}

#[test]
fn the_blocked_user_is_not_told() {
    let b = BrokerProc::start();
    let mut alice = b.client("alice", "phone");
    let mut bob = b.client("bob", "phone");
    let bob_token = bob.sync_full("").token;
    let alice_tablet_token = b.client("alice", "tablet").sync_full("").token;

    must(alice.block("bob"), "block");
    // Barrier: alice then messages bob; any relation push would come first.
    let conv = direct("alice", "bob");
    alice.send_ok(&conv, "a1", "hello");
    bob.next_message_push(WAIT).expect("bob gets the message");
    bob.assert_no_push("relation push to the blocked user", QUIET, |ev| {
        matches!(ev, push::Event::Relation(_))
    });
    let s = bob.sync_full(&bob_token);
    assert!(s.relation("alice").is_none(), "the block is not in bob's feed: {s:?}");
    let v = bob.relation("alice");
    assert!(!v.blocked && !v.is_friend && !v.peer_has_me, "bob's view is unchanged: {v:?}");

    // The blocker's offline device learns it from the sync feed.
    let mut tablet = b.client("alice", "tablet");
    let s = tablet.sync_full(&alice_tablet_token);
    let r = s
        .relation("bob")
        .unwrap_or_else(|| panic!("alice's feed from {alice_tablet_token:?} lacks the block: {s:?}"));
    assert!(r.blocked);
}

#[test]
fn blacklist_survives_a_restart() {
    let mut b = BrokerProc::start();
    {
        let mut alice = b.client("alice", "phone");
        let _bob = b.client("bob", "phone");
        must(alice.block("bob"), "block");
    }
    b.restart();
    let mut bob = b.client("bob", "phone");
    assert_error(
        bob.send_text(&direct("alice", "bob"), "b1", "hi"),
        ErrorCode::BlockedByUser,
        "after restart",
    );
    let mut alice = b.client("alice", "phone");
    assert_eq!(blocked_ids(&must(alice.list_blacklist("", 0), "list")), ["bob"]);
}
