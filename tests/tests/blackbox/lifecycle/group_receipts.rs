//! Group read receipts at the default `groups.receipt_max_members` (1 000,
//! spec [GR-23]): the read and unread lists and counts are exact after some
//! members mark read, and the answer reads the members' records in one
//! batch (the time is printed, not asserted).

use std::collections::BTreeSet;
use std::time::Instant;

use missive_protocol::pb::{self, request::Op};
use missive_tests::*;

const MEMBERS: usize = 1_000;
const READERS: usize = 25;

fn receipt(c: &mut RawClient, group: &str, seq: u64) -> Result<pb::GroupReceipt, pb::Error> {
    c.call(pb::GetGroupReceipt { group_id: group.to_owned(), seq })
}

#[test]
fn group_receipt_of_a_thousand_members_is_exact() {
    let b = BrokerProc::spawn_with(BrokerOpts::default().durability("buffered"));
    let mut admin = RawClient::login_admin(b.addr, "ops");
    let imported: Vec<String> = (0..MEMBERS - 1).map(|i| format!("u{i:04}")).collect();
    admin.import_users(&imported);
    let mut owner = b.client("owner", "d");
    let g = "thousand";
    let conv = gconv(g);
    owner.create_group(g, pb::GroupType::Work, &[], None).expect("create");
    let invites: Vec<Op> = imported
        .chunks(100)
        .map(|c| Op::InviteToGroup(pb::InviteToGroup { group_id: g.to_owned(), user_ids: c.to_vec() }))
        .collect();
    owner.call_all_ok(invites, 8);
    let seq = owner.send_ok(&conv, "m", "please read").seq;
    // Nobody read yet: every member but the sender is unread.
    let r = receipt(&mut owner, g, seq).expect("receipt");
    assert_eq!((r.read_count as usize, r.unread_count as usize), (0, MEMBERS - 1));
    // READERS members mark read (one of them only up to an earlier seq).
    let readers: Vec<&String> = imported.iter().step_by(40).take(READERS).collect();
    for (i, u) in readers.iter().enumerate() {
        let mut c = b.client(u, "d");
        let up_to = if i == 0 { seq - 1 } else { seq };
        c.mark_read(&conv, up_to).expect("mark read");
    }
    let started = Instant::now();
    let r = receipt(&mut owner, g, seq).expect("receipt");
    let took = started.elapsed();
    println!("GetGroupReceipt of {MEMBERS} members after {READERS} reads: {took:?}");
    let read: BTreeSet<String> = r.read.iter().cloned().collect();
    let want: BTreeSet<String> = readers.iter().skip(1).map(|u| (*u).clone()).collect();
    assert_eq!(read, want);
    assert_eq!((r.read_count as usize, r.unread_count as usize), (READERS - 1, MEMBERS - READERS));
    assert_eq!(r.unread.len(), MEMBERS - READERS);
    let unread: BTreeSet<&String> = r.unread.iter().collect();
    assert!(unread.contains(readers[0]) && !unread.contains(&"owner".to_owned()));
    assert!(read.iter().all(|u| !unread.contains(u)));
    // A member asks too (served from the cache now), and an earlier seq
    // counts the first reader as read.
    let mut m = b.client(&imported[7], "d");
    let r2 = receipt(&mut m, g, seq).expect("member's receipt");
    assert_eq!(r2.read_count as usize, READERS - 1);
    let r3 = receipt(&mut owner, g, seq - 1).expect("earlier seq");
    assert!(r3.read.contains(readers[0]));
    // One more member is over the limit.
    admin.import_users(&["extra".to_owned()]);
    owner.call(pb::InviteToGroup { group_id: g.to_owned(), user_ids: vec!["extra".into()] }).expect("invite");
    assert_error(receipt(&mut owner, g, seq), ErrorCode::ReceiptGroupTooLarge, "1 001 members");
}
