//! Read receipts, unread counts and per-user conversation state (pin, mute,
//! hide, clear history, global DND): pushed to the user's other devices, in
//! sync, and persistent across a broker restart.

use missive_protocol::pb::{self, push, request};
use missive_tests::*;

fn receipt(c: &mut RawClient, conv: &str, read_seq: u64) -> pb::ReadReceipt {
    c.expect_push(&format!("ReadReceipt {conv} up to {read_seq}"), WAIT, |e| match e {
        push::Event::ReadReceipt(r) if r.conv_id == conv && r.read_seq == read_seq => Some(r.clone()),
        _ => None,
    })
}

fn state_push(
    c: &mut RawClient,
    what: &str,
    pred: impl Fn(&pb::ConversationState) -> bool,
) -> pb::ConversationState {
    c.expect_push(what, WAIT, |e| match e {
        push::Event::Conversation(s) if pred(s) => Some(s.clone()),
        _ => None,
    })
}

/// A request on `conv` whose response comes from the conversation's owner
/// after every earlier effect on it: a barrier for pushes about `conv`.
fn barrier(c: &mut RawClient, conv: &str) {
    let op = request::Op::Pull(pb::PullRequest {
        conv_id: conv.to_owned(),
        from_seq: u64::MAX,
        to_seq: 0,
        limit: 1,
    });
    let r = c.request(op);
    assert!(outcome(r).is_ok());
}

fn own_state_pushes(c: &RawClient) -> Vec<&push::Event> {
    c.pushes
        .iter()
        .filter_map(|p| p.event.as_ref())
        .filter(|e| {
            matches!(e, push::Event::ReadReceipt(_) | push::Event::Conversation(_) | push::Event::Settings(_))
        })
        .collect()
}

#[test]
fn mark_read_reaches_peer_and_readers_other_devices() {
    let b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let mut alice_phone = b.client("alice", "phone");
    let mut alice_laptop = b.client("alice", "laptop");
    let mut bob_phone = b.client("bob", "phone");
    let mut bob_laptop = b.client("bob", "laptop");

    for i in 0..3 {
        alice_phone.send_ok(&conv, &format!("a-{i}"), "hi");
    }
    let s = bob_phone.sync("", 0).expect("sync").conversations;
    assert_eq!(s.len(), 1);
    assert_eq!((s[0].max_seq, s[0].read_seq, s[0].unread, s[0].peer_read_seq), (3, 0, 3, 3), "{:?}", s[0]);

    // Partial read.
    let st = bob_phone.mark_read(&conv, 2).expect("mark read 2");
    assert_eq!(
        (st.conv_id.as_str(), st.max_seq, st.read_seq, st.unread, st.peer_read_seq),
        (conv.as_str(), 3, 2, 1, 3)
    );
    for c in [&mut alice_phone, &mut alice_laptop, &mut bob_laptop] {
        let r = receipt(c, &conv, 2);
        assert_eq!((r.reader.as_str(), r.reader_device.as_str()), ("bob", "phone"));
    }
    let pushed =
        state_push(&mut bob_laptop, "bob's state after read 2", |s| s.conv_id == conv && s.read_seq == 2);
    assert_eq!((pushed.max_seq, pushed.unread), (3, 1));

    // Read everything (seq 0 = max_seq).
    let st = bob_phone.mark_read(&conv, 0).expect("mark read all");
    assert_eq!((st.read_seq, st.unread), (3, 0));
    receipt(&mut alice_phone, &conv, 3);
    receipt(&mut alice_laptop, &conv, 3);
    receipt(&mut bob_laptop, &conv, 3);
    let pushed =
        state_push(&mut bob_laptop, "bob's state after read all", |s| s.conv_id == conv && s.read_seq == 3);
    assert_eq!(pushed.unread, 0);

    // Backwards and beyond max: read_seq never moves back, is clamped to max_seq.
    assert_eq!(bob_phone.mark_read(&conv, 1).expect("read 1").read_seq, 3);
    assert_eq!(bob_phone.mark_read(&conv, 99).expect("read 99").read_seq, 3);

    // The reading connection got no receipt or state push of its own reads.
    barrier(&mut bob_phone, &conv);
    let own = own_state_pushes(&bob_phone);
    assert!(own.is_empty(), "reader's own connection got {own:?}");

    // Sync views: Alice sees Bob's read position, Bob has nothing unread.
    let a = alice_laptop.sync("", 0).expect("alice sync").conversations;
    assert_eq!((a[0].peer_read_seq, a[0].read_seq, a[0].unread), (3, 3, 0), "{:?}", a[0]);
    let bs = bob_laptop.sync("", 0).expect("bob sync").conversations;
    assert_eq!((bs[0].read_seq, bs[0].unread, bs[0].peer_read_seq), (3, 0, 3), "{:?}", bs[0]);

    // Two more from Alice: Bob has 2 unread; then Bob answers: sending marks read.
    alice_phone.send_ok(&conv, "a-3", "x");
    alice_phone.send_ok(&conv, "a-4", "y");
    let bs = bob_laptop.sync("", 0).expect("bob sync").conversations;
    assert_eq!((bs[0].max_seq, bs[0].read_seq, bs[0].unread), (5, 3, 2), "{:?}", bs[0]);
    let ack = bob_laptop.send_ok(&conv, "b-0", "answer");
    assert_eq!(ack.seq, 6);
    let bs = bob_phone.sync("", 0).expect("bob sync").conversations;
    assert_eq!((bs[0].max_seq, bs[0].read_seq, bs[0].unread), (6, 6, 0), "{:?}", bs[0]);
    let a = alice_phone.sync("", 0).expect("alice sync").conversations;
    assert_eq!((a[0].max_seq, a[0].read_seq, a[0].unread, a[0].peer_read_seq), (6, 5, 1, 6), "{:?}", a[0]);

    // [S-5] no ReadReceipt is pushed for the implicit read of a send.
    alice_phone.expect_push("message 6", WAIT, |e| match e {
        push::Event::Message(m) if m.seq == 6 => Some(()),
        _ => None,
    });
    barrier(&mut alice_phone, &conv);
    let implicit: Vec<_> = alice_phone
        .pushes
        .iter()
        .filter(|p| matches!(&p.event, Some(push::Event::ReadReceipt(r)) if r.read_seq >= 4))
        .collect();
    assert!(implicit.is_empty(), "receipt pushed for an implicit read: {implicit:?}");
}

#[test]
fn flags_sync_to_other_devices_and_survive_restart() {
    let mut b = BrokerProc::start();
    let (ab, ac, ad, ae) =
        (direct("alice", "bob"), direct("alice", "carol"), direct("alice", "dave"), direct("alice", "erin"));
    b.client("bob", "phone").send_many(&ab, "b-", 2, 2);
    b.client("carol", "phone").send_many(&ac, "c-", 1, 1);
    b.client("dave", "phone").send_many(&ad, "d-", 5, 5);
    b.client("erin", "phone").send_many(&ae, "e-", 1, 1);

    let mut phone = b.client("alice", "phone");
    let mut laptop = b.client("alice", "laptop");
    let t0 = now_ms();

    let st = phone.update(&ab, Some(true), None, None).expect("pin");
    assert!(st.pinned && !st.muted && !st.hidden, "{st:?}");
    assert!(
        st.pin_time_ms + 60_000 >= t0 && st.pin_time_ms <= now_ms() + 60_000,
        "pin time {}",
        st.pin_time_ms
    );
    let pin_time = st.pin_time_ms;
    let p = state_push(&mut laptop, "pinned ab", |s| s.conv_id == ab && s.pinned);
    assert_eq!(p.pin_time_ms, pin_time);

    let st = phone.update(&ac, None, Some(true), None).expect("mute");
    assert!(st.muted && !st.pinned);
    state_push(&mut laptop, "muted ac", |s| s.conv_id == ac && s.muted);

    let st = phone.update(&ae, None, None, Some(true)).expect("hide");
    assert!(st.hidden);
    state_push(&mut laptop, "hidden ae", |s| s.conv_id == ae && s.hidden);

    // Unset fields stay unchanged.
    let st = phone.update(&ab, None, Some(true), None).expect("mute ab");
    assert!(st.pinned && st.muted, "{st:?}");
    assert_eq!(st.pin_time_ms, pin_time);
    state_push(&mut laptop, "muted ab", |s| s.conv_id == ab && s.muted && s.pinned);

    let st = phone.clear(&ad, 0).expect("clear all of ad");
    assert_eq!((st.max_seq, st.cleared_seq, st.unread), (5, 5, 0), "{st:?}");
    assert!(st.last_message.is_none(), "cleared last message still returned: {st:?}");
    state_push(&mut laptop, "cleared ad", |s| s.conv_id == ad && s.cleared_seq == 5);

    phone.set_global_dnd(true).expect("dnd on");
    laptop.expect_push("settings dnd on", WAIT, |e| match e {
        push::Event::Settings(s) if s.global_dnd => Some(()),
        _ => None,
    });

    // The peers are unaffected.
    let bob_view = b.client("bob", "tablet").sync("", 0).expect("bob sync").conversations;
    assert!(!bob_view[0].pinned && !bob_view[0].muted, "{:?}", bob_view[0]);
    assert_eq!(b.client("dave", "tablet").pull_all(&ad).len(), 5, "dave keeps his history");

    drop(phone);
    drop(laptop);
    b.terminate();
    b.restart();

    let mut tablet = b.client("alice", "tablet");
    let all = tablet.sync_all("");
    assert_eq!(all.conversations.len(), 4, "{:?}", all.conversations);
    let s = all.conv(&ab).expect("ab");
    assert!(s.pinned && s.muted && !s.hidden);
    assert_eq!(s.pin_time_ms, pin_time);
    let s = all.conv(&ac).expect("ac");
    assert!(s.muted && !s.pinned && !s.hidden);
    let s = all.conv(&ae).expect("ae (hidden conversations are in sync)");
    assert!(s.hidden && !s.pinned && !s.muted);
    let s = all.conv(&ad).expect("ad");
    assert_eq!((s.cleared_seq, s.max_seq, s.unread), (5, 5, 0));
    assert!(s.last_message.is_none());
    assert_eq!(all.settings.as_ref().map(|s| s.global_dnd), Some(true), "global dnd after restart");
    assert!(tablet.pull_all(&ad).is_empty(), "cleared history pulled after restart");

    // A new message un-hides the hidden conversation.
    b.client("erin", "phone").send_ok(&ae, "e-new", "back");
    let page = tablet.sync(&all.token, 0).expect("incremental sync");
    let s = page.conversations.iter().find(|c| c.conv_id == ae).expect("ae changed");
    assert!(!s.hidden, "new message must un-hide: {s:?}");
    assert_eq!(s.max_seq, 2);
}

#[test]
fn new_message_unhides_for_both_participants() {
    let b = BrokerProc::start();
    let conv = direct("alice", "carol");
    let mut alice = b.client("alice", "phone");
    let mut carol = b.client("carol", "phone");
    alice.send_ok(&conv, "a-0", "hi");
    assert!(alice.update(&conv, None, None, Some(true)).expect("alice hides").hidden);
    assert!(carol.update(&conv, None, None, Some(true)).expect("carol hides").hidden);
    let s = alice.sync("", 0).expect("sync").conversations;
    assert!(s[0].hidden);

    // Carol writes: un-hidden for both (Carol by sending, Alice by receiving).
    carol.send_ok(&conv, "c-0", "ping");
    let s = alice.sync("", 0).expect("sync").conversations;
    assert!(!s[0].hidden, "receiver still hidden: {:?}", s[0]);
    let s = carol.sync("", 0).expect("sync").conversations;
    assert!(!s[0].hidden, "sender still hidden: {:?}", s[0]);
    alice.expect_push("carol's message", WAIT, |e| match e {
        push::Event::Message(m) if m.client_msg_id == "c-0" => Some(()),
        _ => None,
    });

    // Hide and unhide explicitly.
    assert!(alice.update(&conv, None, None, Some(true)).expect("hide").hidden);
    assert!(!alice.update(&conv, None, None, Some(false)).expect("unhide").hidden);
}

#[test]
fn cleared_history_is_hidden_from_that_user_only() {
    let b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let mut bob = b.client("bob", "phone");
    bob.send_many(&conv, "b-", 5, 5);
    let mut alice = b.client("alice", "phone");
    let mut laptop = b.client("alice", "laptop");

    let st = alice.clear(&conv, 3).expect("clear up to 3");
    assert_eq!((st.cleared_seq, st.max_seq, st.read_seq, st.unread), (3, 5, 0, 2), "{st:?}");
    assert_eq!(st.last_message.as_ref().map(|m| m.seq), Some(5));
    state_push(&mut laptop, "cleared 3", |s| s.conv_id == conv && s.cleared_seq == 3);

    let p = alice.pull(&conv, 1, 0, 0).expect("pull");
    let seqs: Vec<u64> = p.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [4, 5], "pull below cleared_seq");
    assert_eq!(p.min_readable_seq, 4);
    assert!(!p.more);
    let h = alice.history(&conv, 0, 10).expect("history");
    let seqs: Vec<u64> = h.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [4, 5]);
    assert!(!h.more, "nothing readable below the cleared seq");
    assert_eq!(h.min_readable_seq, 4);
    let h = alice.history(&conv, 4, 10).expect("history below cleared");
    assert!(h.messages.is_empty() && !h.more, "{h:?}");

    // Only forward; beyond max is clamped.
    assert_eq!(alice.clear(&conv, 2).expect("clear 2").cleared_seq, 3);
    let st = alice.clear(&conv, 99).expect("clear 99");
    assert_eq!((st.cleared_seq, st.unread), (5, 0));
    assert!(st.last_message.is_none());
    assert!(alice.pull_all(&conv).is_empty());
    let h = alice.history(&conv, 0, 10).expect("history after full clear");
    assert!(h.messages.is_empty() && !h.more);
    let s = alice.sync("", 0).expect("sync").conversations;
    assert_eq!((s[0].cleared_seq, s[0].unread), (5, 0));
    assert!(s[0].last_message.is_none(), "{:?}", s[0]);

    // Bob's history is intact.
    assert_dense(&bob.pull_all(&conv), 1, 5, "peer history");
    let s = bob.sync("", 0).expect("bob sync").conversations;
    assert_eq!(s[0].cleared_seq, 0);
    assert_eq!(s[0].last_message.as_ref().map(|m| m.seq), Some(5));

    // New messages after the clear are visible.
    bob.send_ok(&conv, "b-new", "after clear");
    let all = alice.pull_all(&conv);
    assert_eq!(all.iter().map(|m| m.seq).collect::<Vec<_>>(), [6]);
    let s = alice.sync("", 0).expect("sync").conversations;
    assert_eq!((s[0].unread, s[0].max_seq), (1, 6));
    assert_eq!(s[0].last_message.as_ref().map(|m| m.client_msg_id.as_str()), Some("b-new"));
}

#[test]
fn global_dnd_pushes_settings_and_syncs() {
    let b = BrokerProc::start();
    let mut phone = b.client("alice", "phone");
    let mut laptop = b.client("alice", "laptop");
    let before = phone.sync("", 0).expect("sync");
    assert_eq!(before.settings.as_ref().map(|s| s.global_dnd), Some(false), "default settings for \"\"");

    phone.set_global_dnd(true).expect("dnd on");
    laptop.expect_push("settings on", WAIT, |e| match e {
        push::Event::Settings(s) if s.global_dnd => Some(()),
        _ => None,
    });
    let since = phone.sync(&before.sync_token, 0).expect("sync since");
    assert_eq!(since.settings.as_ref().map(|s| s.global_dnd), Some(true), "changed settings in sync");
    let again = phone.sync(&since.sync_token, 0).expect("sync again");
    assert!(again.settings.is_none(), "unchanged settings must not be reported: {again:?}");
    let fresh = laptop.sync("", 0).expect("fresh");
    assert_eq!(fresh.settings.as_ref().map(|s| s.global_dnd), Some(true));

    phone.set_global_dnd(false).expect("dnd off");
    laptop.expect_push("settings off", WAIT, |e| match e {
        push::Event::Settings(s) if !s.global_dnd => Some(()),
        _ => None,
    });
    let since = phone.sync(&since.sync_token, 0).expect("sync since");
    assert_eq!(since.settings.as_ref().map(|s| s.global_dnd), Some(false));

    // The setting connection got no settings push of its own change.
    barrier(&mut phone, &direct("alice", "bob"));
    assert_eq!(phone.ping(1).nonce, 1);
    assert!(own_state_pushes(&phone).is_empty(), "{:?}", phone.pushes);
}
