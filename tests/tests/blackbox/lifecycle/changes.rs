//! Recall, edit and delete (spec 18.1..18.3) against the real broker, with
//! the update log ([UP-1]..[UP-5]) as an offline device sees it: sync shows
//! `update_seq` moving, `PullUpdates` returns the current forms, history of a
//! fresh device shows tombstones. Also reactions and extensions through the
//! same core (18.4, 18.5), and ClearAllMessages.

use std::time::Duration;

use missive_protocol::ErrorCode;
use missive_protocol::pb::{self, message_update, push, request::Op, response};
use missive_tests::*;

fn recall(c: &mut RawClient, conv: &str, seq: u64) -> Result<pb::Message, pb::Error> {
    c.call(pb::RecallMessage { conv_id: conv.to_owned(), seq })
}

fn edit(c: &mut RawClient, conv: &str, seq: u64, body: &str) -> Result<pb::Message, pb::Error> {
    c.call(pb::EditMessage { conv_id: conv.to_owned(), seq, content: Some(text(body)) })
}

fn delete(
    c: &mut RawClient,
    conv: &str,
    seqs: &[u64],
    everyone: bool,
) -> Result<response::Result, pb::Error> {
    c.call(Op::DeleteMessages(pb::DeleteMessages {
        conv_id: conv.to_owned(),
        seqs: seqs.to_vec(),
        for_everyone: everyone,
    }))
}

fn updates(c: &mut RawClient, conv: &str, after: u64) -> pb::MessageUpdates {
    must(
        c.call(pb::PullUpdates { conv_id: conv.to_owned(), after_update_seq: after, limit: 0 }),
        "PullUpdates",
    )
}

fn update_push(c: &mut RawClient, conv: &str, seq: u64, kind: message_update::Kind) -> pb::MessageUpdate {
    c.expect_push(&format!("MessageUpdate {kind:?} {conv}#{seq}"), WAIT, |e| match e {
        push::Event::MessageUpdate(u) if u.conv_id == conv && u.seq == seq && u.kind == kind as i32 => {
            Some(u.clone())
        }
        _ => None,
    })
}

fn tip_push(c: &mut RawClient, conv: &str) -> pb::Message {
    c.expect_push(&format!("recall tip in {conv}"), WAIT, |e| match e {
        push::Event::Message(m) if m.conv_id == conv && is_recall_tip(m) => Some(m.clone()),
        _ => None,
    })
}

fn is_recall_tip(m: &pb::Message) -> bool {
    matches!(
        m.content.as_ref().and_then(|c| c.body.as_ref()),
        Some(pb::content::Body::Tip(t)) if t.kind == "message.recalled"
    )
}

fn group(owner: &mut RawClient, id: &str, members: &[&str]) -> String {
    owner.create_group(id, pb::GroupType::Work, members, None).expect("create group");
    gconv(id)
}

fn set_admin(owner: &mut RawClient, g: &str, user: &str) {
    must(
        owner.call(Op::SetGroupRole(pb::SetGroupRole {
            group_id: g.to_owned(),
            user_id: user.to_owned(),
            role: pb::GroupRole::Admin as i32,
        })),
        "SetGroupRole",
    );
}

#[test]
fn sender_recalls_peer_sees_push_tip_and_pull() {
    let b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "phone");
    let mut bob = b.client("bob", "phone");
    let ack = alice.send_ok(&conv, "m1", "oops");
    bob.expect_message(&conv, ack.seq);

    let m = must(recall(&mut alice, &conv, ack.seq), "recall");
    assert!(m.content.is_none(), "the answer is the recalled form: {m:?}");
    assert_eq!(m.recalled.as_ref().map(|r| r.by.as_str()), Some("alice"));
    assert!(m.update_seq > 0);
    assert_eq!((m.seq, m.sender.as_str()), (ack.seq, "alice"), "ids and sender kept");

    let u = update_push(&mut bob, &conv, ack.seq, message_update::Kind::Recalled);
    assert_eq!(u.by, "alice");
    assert!(u.message.as_ref().is_some_and(|m| m.recalled.is_some() && m.content.is_none()));
    let tip = tip_push(&mut bob, &conv);
    assert_eq!(tip.seq, ack.seq + 1, "the tip is the next message of the conversation");
    assert!(tip.flags.as_ref().is_some_and(|f| f.no_unread), "the tip is stored no_unread: {tip:?}");
    let t = match tip.content.as_ref().and_then(|c| c.body.as_ref()) {
        Some(pb::content::Body::Tip(t)) => t.clone(),
        other => panic!("tip body {other:?}"),
    };
    assert_eq!(t.params.get("by").map(String::as_str), Some("alice"));
    assert_eq!(t.params.get("seq").map(String::as_str), Some(ack.seq.to_string().as_str()));

    // Every read returns the recalled form; seqs stay dense.
    let all = bob.pull_all(&conv);
    assert_dense(&all, 1, ack.seq + 1, "pull after recall");
    assert!(all[0].content.is_none() && all[0].recalled.is_some(), "{:?}", all[0]);
    let h = must(bob.history(&conv, 0, 10), "history");
    assert!(h.messages.iter().any(|m| m.seq == ack.seq && m.recalled.is_some() && m.content.is_none()));

    // A recall of a recalled message: 4202; edit, react too.
    assert_error(recall(&mut alice, &conv, ack.seq), ErrorCode::MessageRecalled, "recall twice");
    assert_error(
        alice.call(pb::React { conv_id: conv.clone(), seq: ack.seq, key: "+1".into(), remove: false }),
        ErrorCode::MessageRecalled,
        "react to a recalled message",
    );
    // The peer may not recall alice's message in a 1:1 conversation.
    let ack2 = alice.send_ok(&conv, "m2", "second");
    assert_error(recall(&mut bob, &conv, ack2.seq), ErrorCode::NotMessageSender, "peer recalls");
    // Unknown seqs.
    assert_error(recall(&mut alice, &conv, 999), ErrorCode::MessageNotFound, "above max_seq");
    assert_error(recall(&mut alice, &conv, 0), ErrorCode::MessageNotFound, "seq 0");
    // A seq of another conversation is out of this one's range.
    let other = direct("alice", "carol");
    let mut carol = b.client("carol", "phone");
    for i in 0..5 {
        carol.send_ok(&other, &format!("c{i}"), "x");
    }
    assert_error(recall(&mut alice, &conv, 5), ErrorCode::MessageNotFound, "another conversation's seq");
    // Not a participant.
    let mut eve = b.client("eve", "phone");
    assert_error(recall(&mut eve, &conv, ack2.seq), ErrorCode::NotParticipant, "outsider");
}

#[test]
fn recall_window_and_group_roles() {
    let b = BrokerOpts::default().config("[messages]\nrecall_window_secs = 2\n").spawn();
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "phone");
    let mut bob = b.client("bob", "phone");
    let old = alice.send_ok(&conv, "old", "old");
    let mut carol = b.client("carol", "phone");
    let mut dan = b.client("dan", "phone");
    let g = group(&mut alice, "g1", &["bob", "carol", "dan"]);
    set_admin(&mut alice, "g1", "carol");
    let by_bob = bob.send_ok(&g, "b1", "bob's");
    let by_dan = dan.send_ok(&g, "d1", "dan's");
    std::thread::sleep(Duration::from_millis(2600));
    assert_error(recall(&mut alice, &conv, old.seq), ErrorCode::TimeLimitExceeded, "after the window");
    assert_error(recall(&mut bob, &g, by_bob.seq), ErrorCode::TimeLimitExceeded, "member after the window");
    // A plain member may not recall another's message.
    assert_error(
        recall(&mut dan, &g, by_bob.seq),
        ErrorCode::GroupPermissionDenied,
        "member recalls another's",
    );
    // A group admin may, whatever the window.
    let m = must(recall(&mut carol, &g, by_bob.seq), "admin recalls");
    assert_eq!(m.recalled.as_ref().map(|r| r.by.as_str()), Some("carol"));
    update_push(&mut dan, &g, by_bob.seq, message_update::Kind::Recalled);
    let tip = tip_push(&mut dan, &g);
    assert_eq!(tip.sender, "carol");
    // And the owner.
    must(recall(&mut alice, &g, by_dan.seq), "owner recalls");
    assert_error(recall(&mut alice, &g, by_dan.seq), ErrorCode::MessageRecalled, "twice");
    // A fresh send is within the window.
    let fresh = dan.send_ok(&g, "d2", "new");
    must(recall(&mut dan, &g, fresh.seq), "own message within the window");
}

#[test]
fn offline_device_learns_recall_and_edit_by_sync_and_pull_updates() {
    let b = BrokerOpts::default().config("[messages]\nedit_direct = true\n").spawn();
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "phone");
    let mut bob = b.client("bob", "phone");
    let a1 = alice.send_ok(&conv, "a1", "to recall");
    let a2 = alice.send_ok(&conv, "a2", "to edit");
    let first = bob.sync_all("");
    let st = first.conv(&conv).expect("conversation in sync");
    assert_eq!(st.update_seq, 0, "nothing changed yet");
    drop(bob);

    must(recall(&mut alice, &conv, a1.seq), "recall");
    let e = must(edit(&mut alice, &conv, a2.seq, "edited"), "edit");
    assert_eq!(e.edit_version, 1);
    assert!(e.edited_at_ms > 0);
    assert_eq!(text_of(&e), "edited");

    // Bob's device comes back: its sync finds the conversation with a higher update_seq.
    let mut bob = b.client("bob", "phone");
    let later = bob.sync_all(&first.token);
    let st = later.conv(&conv).expect("conversation moved by the changes");
    assert!(st.update_seq >= e.update_seq, "update_seq {} < {}", st.update_seq, e.update_seq);
    let u = updates(&mut bob, &conv, 0);
    assert!(!u.more);
    assert_eq!(u.update_seq, st.update_seq);
    let r = u.messages.iter().find(|m| m.seq == a1.seq).expect("recalled message in PullUpdates");
    assert!(r.recalled.is_some() && r.content.is_none());
    let ed = u.messages.iter().find(|m| m.seq == a2.seq).expect("edited message in PullUpdates");
    assert_eq!((text_of(ed), ed.edit_version), ("edited", 1));
    // Nothing after the latest.
    assert!(updates(&mut bob, &conv, u.update_seq).messages.is_empty());
    // A second device's pull returns the current forms too.
    let mut bob2 = b.client("bob", "laptop");
    let all = bob2.pull_all(&conv);
    assert!(all.iter().any(|m| m.seq == a2.seq && text_of(m) == "edited" && m.edit_version == 1));
}

#[test]
fn edit_rules() {
    // Off by default (both kinds).
    let b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "phone");
    let a = alice.send_ok(&conv, "a", "x");
    assert_error(edit(&mut alice, &conv, a.seq, "y"), ErrorCode::EditNotAllowed, "edit disabled by default");
    drop(b);

    let b = BrokerOpts::default().config("[messages]\nedit_direct = true\nedit_window_secs = 3\n").spawn();
    let mut alice = b.client("alice", "phone");
    let mut bob = b.client("bob", "phone");
    let a = alice.send_ok(&conv, "a", "x");
    let bm = bob.send_ok(&conv, "b", "bob's");
    assert_error(edit(&mut alice, &conv, bm.seq, "mine now"), ErrorCode::NotMessageSender, "someone else's");
    assert_error(edit(&mut alice, &conv, a.seq, ""), ErrorCode::InvalidArgument, "empty text");
    let custom = pb::Content {
        body: Some(pb::content::Body::Custom(pb::Custom { r#type: "card".into(), data: b"{}".to_vec() })),
        ..Default::default()
    };
    assert_error(
        alice.call(pb::EditMessage { conv_id: conv.clone(), seq: a.seq, content: Some(custom) }),
        ErrorCode::EditNotAllowed,
        "another body kind",
    );
    let e = must(edit(&mut alice, &conv, a.seq, "y"), "edit");
    assert_eq!(e.edit_version, 1);
    let u = update_push(&mut bob, &conv, a.seq, message_update::Kind::Edited);
    assert_eq!(u.message.as_ref().map(text_of), Some("y"));
    let e = must(edit(&mut alice, &conv, a.seq, "z"), "edit again");
    assert_eq!(e.edit_version, 2);
    // Groups stay off (edit_group = false).
    let g = group(&mut alice, "g", &["bob"]);
    let ga = alice.send_ok(&g, "ga", "x");
    assert_error(edit(&mut alice, &g, ga.seq, "y"), ErrorCode::EditNotAllowed, "edit_group off");
    std::thread::sleep(Duration::from_millis(3600));
    assert_error(edit(&mut alice, &conv, a.seq, "late"), ErrorCode::TimeLimitExceeded, "after the window");
}

#[test]
fn delete_for_me_follows_the_user_to_new_devices() {
    let b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "phone");
    let mut alice2 = b.client("alice", "laptop");
    let mut bob = b.client("bob", "phone");
    let acks = alice.send_many(&conv, "m", 3, 3);
    assert_error(delete(&mut alice, &conv, &[], false), ErrorCode::InvalidArgument, "no seqs");
    assert_error(
        delete(&mut alice, &conv, &[acks[0].seq, 99], false),
        ErrorCode::MessageNotFound,
        "one unknown",
    );
    // Refused as a whole: nothing deleted.
    assert!(alice.pull_all(&conv).iter().all(|m| !m.deleted));

    must(delete(&mut alice, &conv, &[acks[0].seq, acks[1].seq], false), "delete for me");
    let u = update_push(&mut alice2, &conv, acks[0].seq, message_update::Kind::DeletedForMe);
    assert!(u.message.as_ref().is_some_and(|m| m.deleted));
    bob.assert_no_push("no update for the peer", QUIET, |e| matches!(e, push::Event::MessageUpdate(_)));
    // Idempotent retry.
    must(delete(&mut alice, &conv, &[acks[0].seq], false), "retry");

    // A fresh device of alice: history and pull show tombstones; PullUpdates too.
    let mut fresh = b.client("alice", "tablet");
    let h = must(fresh.history(&conv, 0, 10), "history");
    for m in &h.messages {
        let gone = m.seq == acks[0].seq || m.seq == acks[1].seq;
        assert_eq!(m.deleted, gone, "seq {} deleted={}", m.seq, m.deleted);
        assert_eq!(m.content.is_none(), gone);
    }
    let u = updates(&mut fresh, &conv, 0);
    assert_eq!(u.messages.iter().filter(|m| m.deleted).count(), 2, "{u:?}");
    // Bob still has everything; his PullUpdates returns nothing of alice's deletions.
    assert!(bob.pull_all(&conv).iter().all(|m| !m.deleted && m.content.is_some()));
    assert!(updates(&mut bob, &conv, 0).messages.is_empty(), "[UP-5]");
    // A deleted-for-me message cannot be named by alice any more.
    assert_error(recall(&mut alice, &conv, acks[0].seq), ErrorCode::MessageNotFound, "recall deleted");
    // The last message deleted for alice: her sync shows its tombstone, bob's the message.
    must(delete(&mut alice, &conv, &[acks[2].seq], false), "delete the last one");
    let st = fresh.sync_all("");
    let last = st.conv(&conv).and_then(|c| c.last_message.clone()).expect("last message in sync");
    assert!(last.seq == acks[2].seq && last.deleted && last.content.is_none(), "{last:?}");
    let st = bob.sync_all("");
    let last = st.conv(&conv).and_then(|c| c.last_message.clone()).expect("bob's last message");
    assert!(!last.deleted && last.content.is_some(), "{last:?}");
}

#[test]
fn delete_for_everyone_by_owner_or_admin_only() {
    let b = BrokerProc::start();
    let mut owner = b.client("olga", "phone");
    let mut bob = b.client("bob", "phone");
    let mut carol = b.client("carol", "phone");
    let g = group(&mut owner, "gd", &["bob", "carol"]);
    let m1 = bob.send_ok(&g, "b1", "spam");
    let m2 = bob.send_ok(&g, "b2", "more spam");
    assert_error(delete(&mut bob, &g, &[m1.seq], true), ErrorCode::GroupPermissionDenied, "member");
    must(delete(&mut owner, &g, &[m1.seq], true), "owner deletes for everyone");
    let u = update_push(&mut carol, &g, m1.seq, message_update::Kind::Deleted);
    assert_eq!(u.by, "olga");
    set_admin(&mut owner, "gd", "carol");
    must(delete(&mut carol, &g, &[m2.seq], true), "admin deletes for everyone");
    let all = bob.pull_all(&g);
    for m in all.iter().filter(|m| m.seq == m1.seq || m.seq == m2.seq) {
        assert!(m.deleted && m.content.is_none(), "{m:?}");
    }
    assert_error(recall(&mut bob, &g, m1.seq), ErrorCode::MessageRecalled, "recall a deleted message");
    // 1:1: nobody but the admin API.
    let conv = direct("bob", "carol");
    let d = bob.send_ok(&conv, "d", "x");
    assert_error(delete(&mut bob, &conv, &[d.seq], true), ErrorCode::PermissionDenied, "1:1 for everyone");
}

#[test]
fn clear_all_messages_clears_every_conversation() {
    let b = BrokerProc::start();
    let mut alice = b.client("alice", "phone");
    let mut bob = b.client("bob", "phone");
    let c1 = direct("alice", "bob");
    let c2 = direct("alice", "carol");
    alice.send_many(&c1, "x", 3, 3);
    alice.send_many(&c2, "y", 2, 2);
    let g = group(&mut alice, "gc", &["bob"]);
    bob.send_ok(&g, "g1", "hello");
    must(alice.call(pb::ClearAllMessages {}), "ClearAllMessages");
    for conv in [&c1, &c2, &g] {
        let h = must(alice.history(conv, 0, 10), "history");
        assert!(h.messages.is_empty(), "{conv} still shows {:?}", h.messages);
    }
    // The peer keeps everything; new messages show again.
    assert_eq!(bob.pull_all(&c1).len(), 3);
    let n = bob.send_ok(&c1, "after", "new");
    let h = must(alice.history(&c1, 0, 10), "history");
    assert_eq!(h.messages.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![n.seq]);
    // A user with no conversation: ok.
    let mut lone = b.client("lone", "phone");
    must(lone.call(pb::ClearAllMessages {}), "nothing to clear");
}

#[test]
fn reactions_and_extensions_through_the_core() {
    let b = BrokerProc::start();
    let mut owner = b.client("olga", "phone");
    let mut bob = b.client("bob", "phone");
    let mut carol = b.client("carol", "phone");
    let g = group(&mut owner, "gr", &["bob", "carol"]);
    let m = owner.send_ok(&g, "m", "vote");
    let r = must(
        bob.call(pb::React { conv_id: g.clone(), seq: m.seq, key: "+1".into(), remove: false }),
        "react",
    );
    assert_eq!(r.reactions.len(), 1);
    assert_eq!((r.reactions[0].count, r.reactions[0].me), (1, true));
    let u = update_push(&mut carol, &g, m.seq, message_update::Kind::Reactions);
    assert_eq!(u.by, "bob");
    let r = must(
        carol.call(pb::React { conv_id: g.clone(), seq: m.seq, key: "+1".into(), remove: false }),
        "react",
    );
    assert_eq!((r.reactions[0].count, r.reactions[0].me), (2, true));
    // Idempotent; bad keys; limits of the request.
    let again = must(
        carol.call(pb::React { conv_id: g.clone(), seq: m.seq, key: "+1".into(), remove: false }),
        "again",
    );
    assert_eq!(again.reactions[0].count, 2);
    assert_error(
        carol.call(pb::React { conv_id: g.clone(), seq: m.seq, key: String::new(), remove: false }),
        ErrorCode::InvalidArgument,
        "empty key",
    );
    assert_error(
        carol.call(pb::React { conv_id: g.clone(), seq: 999, key: "x".into(), remove: false }),
        ErrorCode::MessageNotFound,
        "unknown seq",
    );
    // Extensions with compare-and-set.
    let set = ex_map(&[("state", "open")]);
    let x = must(
        owner.call(pb::SetExtensions {
            conv_id: g.clone(),
            seq: m.seq,
            set: set.clone(),
            remove: vec![],
            if_version: Some(0),
        }),
        "set extensions",
    );
    assert_eq!(x.version, 1);
    assert_error(
        bob.call(pb::SetExtensions {
            conv_id: g.clone(),
            seq: m.seq,
            set,
            remove: vec![],
            if_version: Some(0),
        }),
        ErrorCode::ExtensionConflict,
        "stale version",
    );
    // Pull shows both; then a recall drops them.
    let pulled = bob.pull_all(&g);
    let pm = pulled.iter().find(|p| p.seq == m.seq).expect("message");
    assert_eq!(pm.reactions.first().map(|r| (r.count, r.me)), Some((2, true)));
    assert_eq!(pm.extensions.get("state").map(|v| v.value.as_str()), Some("open"));
    must(recall(&mut owner, &g, m.seq), "recall");
    let pulled = bob.pull_all(&g);
    let pm = pulled.iter().find(|p| p.seq == m.seq).expect("message");
    assert!(pm.reactions.is_empty() && pm.extensions.is_empty(), "{pm:?}");
    let users = must(
        bob.call(pb::ListReactionUsers {
            conv_id: g.clone(),
            seq: m.seq,
            key: "+1".into(),
            cursor: String::new(),
            limit: 0,
        }),
        "ListReactionUsers",
    );
    assert!(users.users.is_empty() && users.total == 0, "{users:?}");
}
