//! A 5 000-member group (issue #6 acceptance): a message is stored once
//! (storage growth does not scale with the member count), every online member
//! device receives it, and offline members get it by sync and pull. Bounded:
//! a few real connections plus thousands of imported (offline) members.

use std::time::Duration;

use missive_protocol::pb::{self, request::Op};
use missive_tests::*;

const MEMBERS: usize = 5_000;
const MESSAGES: u64 = 20;

#[test]
fn five_thousand_member_group_stores_once_and_delivers() {
    let b = BrokerProc::spawn_with(BrokerOpts::default().durability("buffered"));
    let mut admin = RawClient::login_admin(b.addr, "ops");
    let imported: Vec<String> = (0..MEMBERS - 4).map(|i| format!("u{i:05}")).collect();
    admin.import_users(&imported);
    let mut owner = b.client("owner", "d1");
    let mut owner2 = b.client("owner", "d2");
    let mut on1 = b.client("on1", "d");
    let mut on2 = b.client("on2", "d");
    let mut off = b.client("off", "d");
    drop(off);
    let g = "big";
    let conv = gconv(g);
    owner.create_group(g, pb::GroupType::Work, &["on1", "on2", "off"], None).expect("create");
    let invites: Vec<Op> = imported
        .chunks(100)
        .map(|c| Op::InviteToGroup(pb::InviteToGroup { group_id: g.to_owned(), user_ids: c.to_vec() }))
        .collect();
    owner.call_all_ok(invites, 8);
    let info = match owner.call(Op::GetGroups(pb::GetGroups { group_ids: vec![g.to_owned()] })) {
        Ok(pb::response::Result::Groups(gs)) => gs.groups[0].clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(info.member_count as usize, MEMBERS);
    let first = owner.send_ok(&conv, "warm", "warm up");
    for c in [&mut owner2, &mut on1, &mut on2] {
        c.expect_message(&conv, first.seq);
    }
    // Storage: MESSAGES messages to 5 000 members. Writing anything per member
    // per message would add >= MESSAGES * MEMBERS * 30 bytes (3 MB); one stored
    // copy adds a few hundred bytes each.
    let before = dir_bytes(b.root());
    let acks = owner.send_many(&conv, "m", MESSAGES as usize, 8);
    let last = acks.last().expect("acks").seq;
    let grown = dir_bytes(b.root()).saturating_sub(before);
    assert!(grown < 256 * 1024, "storage grew {grown} bytes for {MESSAGES} messages to {MEMBERS} members");
    // Every online member device receives every message.
    for c in [&mut owner2, &mut on1, &mut on2] {
        c.expect_message(&conv, last);
    }
    // An offline member catches up by sync and pull.
    off = b.client("off", "d");
    let st = off.sync_all("").conv(&conv).cloned().expect("group in the offline member's sync");
    assert_eq!(st.max_seq, last);
    assert!(st.unread >= MESSAGES, "{st:?}");
    let msgs = off.pull_all_from(&conv, st.min_readable_seq);
    assert_eq!(msgs.last().map(|m| m.seq), Some(last));
    // An imported member who never connected also syncs it.
    let mut u = b.client("u00042", "d");
    let st = u.sync_all("").conv(&conv).cloned().expect("group in an imported member's sync");
    assert_eq!(st.max_seq, last);
}

/// Pushes to a group of 40 (large enough for the workers' cached fan-out
/// routes, `net/routes.rs`) follow sessions as they come and go: a device
/// that logs in after a message gets the next one, a device that reconnects
/// gets it on its new connection, the sender's own connection never gets
/// its own message, and its other device does.
#[test]
fn large_group_pushes_follow_sessions_that_come_and_go() {
    let b = BrokerProc::spawn_with(BrokerOpts::default().durability("buffered"));
    let mut admin = RawClient::login_admin(b.addr, "ops");
    let imported: Vec<String> = (0..36).map(|i| format!("r{i:02}")).collect();
    admin.import_users(&imported);
    let mut owner = b.client("owner", "d1");
    let mut owner2 = b.client("owner", "d2");
    let mut a = b.client("ra", "d");
    let mut bob = b.client("rb", "d1");
    let g = "routes";
    let conv = gconv(g);
    let mut members: Vec<&str> = imported.iter().map(String::as_str).collect();
    members.extend(["ra", "rb"]);
    owner.create_group(g, pb::GroupType::Work, &members, None).expect("create");
    let is_msg = |conv: &str, seq: u64| {
        let conv = conv.to_owned();
        move |e: &pb::push::Event| matches!(e, pb::push::Event::Message(m) if m.conv_id == conv && m.seq == seq)
    };

    let m1 = owner.send_ok(&conv, "m1", "one").seq;
    for c in [&mut owner2, &mut a, &mut bob] {
        c.expect_message(&conv, m1);
    }
    owner.assert_no_push("the sender's own message", Duration::from_millis(200), is_msg(&conv, m1));

    // A second device of a member logs in: the next message reaches it.
    let mut bob2 = b.client("rb", "d2");
    let m2 = owner.send_ok(&conv, "m2", "two").seq;
    for c in [&mut owner2, &mut a, &mut bob, &mut bob2] {
        c.expect_message(&conv, m2);
    }

    // A member's only device reconnects: the new connection gets the next one.
    drop(a);
    let mut a = b.client("ra", "d");
    let m3 = owner.send_ok(&conv, "m3", "three").seq;
    for c in [&mut owner2, &mut a, &mut bob, &mut bob2] {
        c.expect_message(&conv, m3);
    }

    // The other device sends: the first one receives, the sender does not.
    let m4 = owner2.send_ok(&conv, "m4", "four").seq;
    for c in [&mut owner, &mut a, &mut bob2] {
        c.expect_message(&conv, m4);
    }
    owner2.assert_no_push("the sender's own message", Duration::from_millis(200), is_msg(&conv, m4));
}
