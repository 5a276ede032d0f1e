//! Typing indicators (spec 18.6, [TY-1]..[TY-6]): pushed to the other
//! participants' online devices, never to the typer's own connection, only in
//! small groups, rate limited per connection, and never stored.

use std::path::Path;
use std::time::Duration;

use missive_protocol::pb::{self, push};
use missive_tests::*;

fn typing(c: &mut RawClient, conv: &str, on: bool) -> Result<(), pb::Error> {
    c.call(pb::Typing { conv_id: conv.to_owned(), typing: on })
}

fn typing_push(c: &mut RawClient, conv: &str, from: &str, on: bool) -> pb::TypingEvent {
    c.wait_push(&format!("typing {on} of {from} in {conv}"), WAIT, |e| match e {
        push::Event::Typing(t) if t.conv_id == conv && t.user_id == from && t.typing == on => Some(t.clone()),
        _ => None,
    })
}

fn no_typing(c: &mut RawClient, what: &str, window: Duration) {
    c.assert_no_push(what, window, |e| matches!(e, push::Event::Typing(_)));
}

/// Bytes of the RocksDB write-ahead logs (`*.log`) under `dir`.
fn wal_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).expect("data dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            total += wal_bytes(&p);
        } else if p.extension().is_some_and(|x| x == "log") {
            total += e.metadata().map(|m| m.len()).unwrap_or(0);
        }
    }
    total
}

#[test]
fn typing_reaches_the_peer_not_the_typer() {
    let b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "phone");
    let mut alice2 = b.client("alice", "laptop");
    let mut bob = b.client("bob", "phone");
    let mut bob2 = b.client("bob", "laptop");
    typing(&mut alice, &conv, true).expect("typing");
    for c in [&mut bob, &mut bob2] {
        let t = typing_push(c, &conv, "alice", true);
        assert_eq!(t.device_id, "phone");
    }
    typing(&mut alice, &conv, false).expect("stopped");
    typing_push(&mut bob, &conv, "alice", false);
    // Neither the typing connection nor the typer's other devices get it.
    no_typing(&mut alice, "typer's own connection", Duration::from_millis(300));
    no_typing(&mut alice2, "typer's other device", Duration::from_millis(100));
    // Bob answers: Alice's devices see Bob typing.
    typing(&mut bob2, &conv, true).expect("bob typing");
    typing_push(&mut alice, &conv, "bob", true);
    typing_push(&mut alice2, &conv, "bob", true);
}

#[test]
fn typing_bad_input_and_permissions() {
    // Many requests from one connection: lift the rate limit (beyond it every
    // typing request is answered ok, [TY-5]).
    let b = BrokerProc::spawn_with(BrokerOpts::default().config("[messages]\ntyping_per_sec = 100\n"));
    let mut carol = b.client("carol", "d");
    let mut alice = b.client("alice", "d");
    assert_error(typing(&mut carol, &direct("alice", "bob"), true), ErrorCode::NotParticipant, "outsider");
    for bad in ["", "p:alice", "x:1", "p:alice:alice:bob"] {
        assert_error(typing(&mut alice, bad, true), ErrorCode::InvalidConvId, &format!("conv id {bad:?}"));
    }
    assert_error(typing(&mut alice, "b:all", true), ErrorCode::UnsupportedConversation, "broadcast");
    // A group the caller is not in (or that does not exist).
    assert_error(typing(&mut alice, &gconv("nope"), true), ErrorCode::NotParticipant, "no such group");
    let mut owner = b.client("owner", "d");
    let mut bob = b.client("bob", "d");
    owner.create_group("g1", pb::GroupType::Work, &["bob"], None).expect("create");
    assert_error(typing(&mut alice, &gconv("g1"), true), ErrorCode::NotParticipant, "not a member");
    // A blacklisted typer: answered, not shown to the peer who blocked it.
    bob.call(pb::AddToBlacklist { user_id: "alice".into() }).expect("block");
    typing(&mut alice, &direct("alice", "bob"), true).expect("answered");
    no_typing(&mut bob, "typing of a blocked user", Duration::from_millis(300));
}

#[test]
fn typing_in_groups_only_up_to_the_size_limit() {
    let b = BrokerProc::spawn_with(BrokerOpts::default().config("[messages]\ntyping_max_members = 3\n"));
    let mut owner = b.client("owner", "d");
    let mut m1 = b.client("m1", "d");
    let mut m2 = b.client("m2", "d");
    drop(b.client("m3", "d"));
    owner.create_group("small", pb::GroupType::Work, &["m1", "m2"], None).expect("create");
    owner.create_group("big", pb::GroupType::Work, &["m1", "m2", "m3"], None).expect("create");
    typing(&mut m1, &gconv("small"), true).expect("typing");
    typing_push(&mut owner, &gconv("small"), "m1", true);
    typing_push(&mut m2, &gconv("small"), "m1", true);
    no_typing(&mut m1, "typer in its group", Duration::from_millis(200));
    // Four members > typing_max_members: answered ok, nothing pushed.
    typing(&mut m1, &gconv("big"), true).expect("typing in a big group is answered");
    no_typing(&mut owner, "typing in a big group", Duration::from_millis(300));
    no_typing(&mut m2, "typing in a big group", Duration::from_millis(100));
}

#[test]
fn typing_is_rate_limited_per_connection() {
    // 1/s, burst 2: of 6 quick requests, 2 are pushed (3 if a token refills meanwhile).
    let b = BrokerProc::spawn_with(BrokerOpts::default().config("[messages]\ntyping_per_sec = 1\n"));
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "d");
    let mut bob = b.client("bob", "d");
    for _ in 0..6 {
        typing(&mut alice, &conv, true).expect("every typing request is answered ok");
    }
    let mut got = 0;
    while bob
        .try_wait_push(Duration::from_millis(300), |e| matches!(e, push::Event::Typing(_)).then_some(()))
        .is_some()
    {
        got += 1;
    }
    assert!((2..=3).contains(&got), "{got} typing pushes for 6 requests at 1/s burst 2");
}

#[test]
fn typing_is_never_stored() {
    // 60 typing requests in a burst: lift the per-connection rate limit.
    let mut b = BrokerProc::spawn_with(BrokerOpts::default().config("[messages]\ntyping_per_sec = 100\n"));
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "d");
    let mut bob = b.client("bob", "d");
    let token = bob.sync_all("").token;
    let data = b.root().join("data");
    let before = wal_bytes(&data);
    for i in 0..40 {
        typing(&mut alice, &conv, i % 2 == 0).expect("typing");
        typing_push(&mut bob, &conv, "alice", i % 2 == 0);
    }
    let mut owner = b.client("owner", "d");
    owner.create_group("g", pb::GroupType::Work, &["alice"], None).expect("create");
    let group_tok = alice.sync_all("").token;
    let wal_mid = wal_bytes(&data);
    for _ in 0..20 {
        typing(&mut alice, &gconv("g"), true).expect("typing in a group");
    }
    typing_push(&mut owner, &gconv("g"), "alice", true);
    // Nothing was written for 40 + 20 typing requests (the WAL did not grow
    // between the group's creation and now, nor before it).
    assert_eq!(wal_bytes(&data), wal_mid, "typing in a group wrote to the WAL");
    assert!(wal_mid > before, "the group's creation is in the WAL (the measure works)");
    drop((alice, bob, owner));
    b.restart();
    let mut bob = b.client("bob", "d");
    let page = bob.sync_all(&token);
    assert!(page.conversations.is_empty(), "typing moved bob's sync feed: {:?}", page.conversations);
    let all = bob.sync_all("");
    assert!(all.conv(&conv).is_none(), "typing created a conversation: {:?}", all.conversations);
    assert!(bob.pull(&conv, 1, 0, 10).expect("pull").messages.is_empty());
    let mut alice = b.client("alice", "d");
    let after = alice.sync_all(&group_tok);
    assert!(after.conversations.is_empty(), "typing moved the group's version: {:?}", after.conversations);
}
