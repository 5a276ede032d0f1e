//! Delivery receipts (spec 18.7, [DR-1]..[DR-7]): a device's `PushAck` in a
//! 1:1 conversation tells the sender, by push and by sync, that the peer
//! holds the messages; it only moves forward, never above max_seq, only for
//! participants; MarkRead implies delivered.

use std::time::Duration;

use missive_protocol::pb::{self, frame, push};
use missive_tests::*;

fn ack(c: &mut RawClient, entries: &[(&str, u64)]) {
    let delivered =
        entries.iter().map(|(c, s)| pb::Delivered { conv_id: (*c).to_owned(), seq: *s }).collect();
    c.send_frame(&frame_of(frame::Body::PushAck(pb::PushAck { delivered })));
}

fn receipt(c: &mut RawClient, conv: &str, seq: u64) -> pb::DeliveryReceipt {
    c.wait_push(&format!("delivery receipt {conv} up to {seq}"), WAIT, |e| match e {
        push::Event::DeliveryReceipt(d) if d.conv_id == conv && d.delivered_seq == seq => Some(d.clone()),
        _ => None,
    })
}

fn no_receipt(c: &mut RawClient, what: &str, window: Duration) {
    c.assert_no_push(what, window, |e| matches!(e, push::Event::DeliveryReceipt(_)));
}

/// A request answered by the conversation's owner after everything routed
/// to it before (a barrier for PushAcks from the same connection).
fn barrier(c: &mut RawClient, conv: &str) {
    c.pull(conv, u64::MAX, 0, 1).expect("barrier pull");
}

#[test]
fn push_ack_tells_the_sender_by_push_and_sync() {
    let b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "phone");
    let mut alice2 = b.client("alice", "laptop");
    let mut bob = b.client("bob", "phone");
    for i in 0..3 {
        alice.send_ok(&conv, &format!("m{i}"), "hi");
    }
    bob.expect_message(&conv, 3);
    ack(&mut bob, &[(&conv, 2)]);
    for c in [&mut alice, &mut alice2] {
        let r = receipt(c, &conv, 2);
        assert_eq!(r.user_id, "bob");
    }
    // The acking user is not told about its own ack.
    barrier(&mut bob, &conv);
    no_receipt(&mut bob, "own ack", Duration::from_millis(200));
    // Backwards, equal and zero acks move nothing; above max_seq is clamped.
    ack(&mut bob, &[(&conv, 1), (&conv, 2), (&conv, 0)]);
    barrier(&mut bob, &conv);
    no_receipt(&mut alice, "an ack that moves nothing", Duration::from_millis(300));
    ack(&mut bob, &[(&conv, 99)]);
    receipt(&mut alice, &conv, 3);
    // Sync and MarkRead answers carry it for the sender, not for the receiver.
    let a = alice2.sync_all("").conv(&conv).cloned().expect("alice's conversation");
    assert_eq!(a.peer_delivered_seq, 3, "{a:?}");
    let s = bob.sync_all("").conv(&conv).cloned().expect("bob's conversation");
    assert_eq!(s.peer_delivered_seq, 0, "alice acked nothing: {s:?}");
    let st = alice.mark_read(&conv, 0).expect("mark read");
    assert_eq!(st.peer_delivered_seq, 3);
}

#[test]
fn an_offline_sender_learns_it_by_sync_and_restart_keeps_it() {
    let mut b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "phone");
    let mut bob = b.client("bob", "phone");
    alice.send_ok(&conv, "m0", "one");
    alice.send_ok(&conv, "m1", "two");
    let token = alice.sync_all("").token;
    drop(alice);
    bob.expect_message(&conv, 2);
    ack(&mut bob, &[(&conv, 2)]);
    barrier(&mut bob, &conv);
    drop(bob);
    b.restart();
    let mut alice = b.client("alice", "phone");
    let page = alice.sync_all(&token);
    let st = page.conv(&conv).cloned().expect("the receipt moved alice's feed entry");
    assert_eq!((st.peer_delivered_seq, st.peer_read_seq), (2, 0), "{st:?}");
}

#[test]
fn bad_ack_entries_are_ignored() {
    let b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "d");
    let mut bob = b.client("bob", "d");
    let mut carol = b.client("carol", "d");
    alice.send_ok(&conv, "m0", "x");
    let mut owner = b.client("owner", "d");
    owner.create_group("g", pb::GroupType::Work, &["bob"], None).expect("create");
    // An outsider's ack, bad ids, a group and the broadcast conversation:
    // nothing is recorded, nothing pushed, the connections stay open.
    ack(&mut carol, &[(&conv, 1)]);
    ack(
        &mut bob,
        &[("nonsense", 1), ("p:bob", 1), (&gconv("g"), 5), ("b:all", 1), (&direct("bob", "carol"), 1)],
    );
    barrier(&mut bob, &conv);
    barrier(&mut carol, &direct("carol", "dave"));
    no_receipt(&mut alice, "bad acks", Duration::from_millis(300));
    no_receipt(&mut owner, "a group ack", Duration::from_millis(50));
    assert!(carol.is_alive() && bob.is_alive());
    let st = alice.sync_all("").conv(&conv).cloned().expect("conv");
    assert_eq!(st.peer_delivered_seq, 0);
    // A good entry in the same frame as bad ones still counts.
    ack(&mut bob, &[("nonsense", 1), (&conv, 1)]);
    receipt(&mut alice, &conv, 1);
}

#[test]
fn mark_read_implies_delivered() {
    let b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "d");
    let mut bob = b.client("bob", "d");
    for i in 0..4 {
        alice.send_ok(&conv, &format!("m{i}"), "x");
    }
    bob.mark_read(&conv, 3).expect("read 3");
    let st = alice.sync_all("").conv(&conv).cloned().expect("conv");
    assert_eq!((st.peer_read_seq, st.peer_delivered_seq), (3, 3), "{st:?}");
    // A later ack below the read seq moves nothing; above it moves on.
    ack(&mut bob, &[(&conv, 2)]);
    ack(&mut bob, &[(&conv, 4)]);
    receipt(&mut alice, &conv, 4);
}

#[test]
fn receipts_off_records_nothing() {
    let b = BrokerProc::spawn_with(BrokerOpts::default().config("[messages]\ndelivery_receipts = false\n"));
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "d");
    let mut bob = b.client("bob", "d");
    alice.send_ok(&conv, "m0", "x");
    ack(&mut bob, &[(&conv, 1)]);
    barrier(&mut bob, &conv);
    no_receipt(&mut alice, "receipts off", Duration::from_millis(300));
    bob.mark_read(&conv, 1).expect("read");
    let st = alice.sync_all("").conv(&conv).cloned().expect("conv");
    assert_eq!((st.peer_read_seq, st.peer_delivered_seq), (1, 0), "{st:?}");
}
