//! ForwardMessages (spec 18.9, [FW-1]..[FW-8]): one by one and merged, the
//! server copies content, retries deduplicated per message, the source
//! window (participant, cleared history, join floor, no_history), the
//! destination's send checks, and bad input.

use missive_protocol::ErrorCode;
use missive_protocol::pb::{self, response};
use missive_tests::*;

fn fwd(
    c: &mut RawClient,
    from: &str,
    seqs: &[u64],
    to: &str,
    merged: bool,
    title: &str,
    cmid: &str,
) -> Result<pb::ForwardResult, pb::Error> {
    c.call(pb::ForwardMessages {
        from_conv_id: from.to_owned(),
        seqs: seqs.to_vec(),
        to_conv_id: to.to_owned(),
        merged,
        title: title.to_owned(),
        client_msg_id: cmid.to_owned(),
    })
}

fn quoted(body: &str) -> pb::Content {
    pb::Content {
        quote: Some(pb::Quote { seq: 1, ..Default::default() }),
        mentions: Some(pb::Mentions { user_ids: vec!["bob".into()], all: false }),
        ex: b"app-ex".to_vec(),
        ..text(body)
    }
}

#[test]
fn forward_one_by_one_copies_content_and_retries_per_message() {
    let b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "phone");
    let mut bob = b.client("bob", "phone");
    alice.send_ok(&conv, "a1", "first");
    bob.send_ok(&conv, "b2", "second");
    must(alice.send_content(&conv, "a3", quoted("third")), "quoted");
    let mut carol = b.client("carol", "phone");
    let g = must(alice.create_group("fw", pb::GroupType::Work, &["carol"], None), "create");
    let gc = gconv(&g.group_id);
    let max_before = carol.pull(&gc, 1, 0, 0).expect("pull").max_seq;

    let r = must(fwd(&mut alice, &conv, &[3, 1, 2], &gc, false, "", "f1"), "forward");
    assert_eq!(r.acks.len(), 3);
    let seqs: Vec<u64> = r.acks.iter().map(|a| a.seq).collect();
    assert_eq!(seqs, vec![max_before + 1, max_before + 2, max_before + 3]);
    assert!(r.acks.iter().all(|a| !a.duplicate && a.conv_id == gc));
    let m = carol.expect_message(&gc, max_before + 1);
    assert_eq!((text_of(&m), m.sender.as_str(), m.client_msg_id.as_str()), ("third", "alice", "f1:0"));
    let c = m.content.expect("content");
    assert!(c.quote.is_none() && c.mentions.is_none(), "quote and mentions dropped: {c:?}");
    assert_eq!(c.ex, b"app-ex".to_vec());
    let pulled = carol.pull_all(&gc);
    let texts: Vec<&str> = pulled.iter().filter(|m| m.seq > max_before).map(text_of).collect();
    assert_eq!(texts, vec!["third", "first", "second"]);
    assert!(pulled.iter().all(|m| m.flags.is_none()));

    // A retry is deduplicated message by message.
    let again = must(fwd(&mut alice, &conv, &[3, 1, 2], &gc, false, "", "f1"), "retry");
    assert_eq!(again.acks.iter().map(|a| a.seq).collect::<Vec<_>>(), seqs);
    assert!(again.acks.iter().all(|a| a.duplicate));

    // Same conversation: allowed.
    let r = must(fwd(&mut bob, &conv, &[1], &conv, false, "", "self"), "same conv");
    assert_eq!(r.acks[0].seq, 4);
    assert_eq!(text_of(&alice.expect_message(&conv, 4)), "first");
}

#[test]
fn forward_merged_builds_one_bubble() {
    let b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "phone");
    let mut bob = b.client("bob", "phone");
    for i in 1..=11 {
        let who = if i % 2 == 0 { &mut bob } else { &mut alice };
        who.send_ok(&conv, &format!("m{i}"), &format!("text {i}"));
    }
    let to = direct("alice", "dave");
    let mut dave = b.client("dave", "phone");
    let r = must(fwd(&mut alice, &conv, &[2, 1, 3], &to, true, "Chat with bob", "mg"), "merged");
    assert_eq!(r.acks.len(), 1);
    let m = dave.expect_message(&to, r.acks[0].seq);
    assert_eq!(m.client_msg_id, "mg");
    let Some(pb::content::Body::Merged(mg)) = m.content.and_then(|c| c.body) else { panic!("not merged") };
    assert_eq!(mg.title, "Chat with bob");
    let items: Vec<(String, String)> = mg
        .items
        .iter()
        .map(|i| {
            (
                i.sender.clone(),
                match i.content.as_ref().and_then(|c| c.body.as_ref()) {
                    Some(pb::content::Body::Text(t)) => t.text.clone(),
                    _ => String::new(),
                },
            )
        })
        .collect();
    assert_eq!(
        items,
        vec![
            ("bob".into(), "text 2".into()),
            ("alice".into(), "text 1".into()),
            ("alice".into(), "text 3".into())
        ]
    );
    assert!(mg.items.iter().all(|i| i.server_time_ms > 0));
    let dup = must(fwd(&mut alice, &conv, &[2, 1, 3], &to, true, "Chat with bob", "mg"), "retry");
    assert!(dup.acks[0].duplicate && dup.acks[0].seq == r.acks[0].seq);

    // At most 10 merged; 10 is fine.
    let eleven: Vec<u64> = (1..=11).collect();
    assert_error(
        fwd(&mut alice, &conv, &eleven, &to, true, "", "m11"),
        ErrorCode::InvalidArgument,
        "11 merged",
    );
    must(fwd(&mut alice, &conv, &eleven[..10], &to, true, "", "m10"), "10 merged");

    // Nesting [M-5]: merged of (merged of merged) is too deep.
    let inner = r.acks[0].seq; // a merged message in p:alice:dave
    let lvl2 = must(fwd(&mut alice, &to, &[inner], &to, true, "", "lvl2"), "2 levels");
    assert_error(
        fwd(&mut alice, &to, &[lvl2.acks[0].seq], &to, true, "", "lvl3"),
        ErrorCode::ContentTooDeep,
        "3 levels",
    );
}

#[test]
fn forward_checks_the_source_window() {
    let b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "phone");
    let mut bob = b.client("bob", "phone");
    let mut carol = b.client("carol", "phone");
    for i in 1..=3 {
        alice.send_ok(&conv, &format!("m{i}"), &format!("t{i}"));
    }
    let to = direct("bob", "carol");
    // Not a participant of the source.
    assert_error(fwd(&mut carol, &conv, &[1], &to, false, "", "x"), ErrorCode::NotParticipant, "outsider");
    // Unknown seq and seq 0.
    assert_error(fwd(&mut bob, &conv, &[99], &to, false, "", "x"), ErrorCode::MessageNotFound, "unknown");
    assert_error(fwd(&mut bob, &conv, &[1, 0], &to, false, "", "x"), ErrorCode::MessageNotFound, "seq 0");
    // Cleared history.
    bob.clear(&conv, 2).expect("clear");
    let e = assert_error(
        fwd(&mut bob, &conv, &[3, 2], &to, false, "", "x"),
        ErrorCode::MessageNotFound,
        "cleared",
    );
    assert!(e.message.contains("seq 2"), "{}", e.message);
    must(fwd(&mut bob, &conv, &[3], &to, false, "", "ok3"), "readable");
    // alice did not clear: she may forward seq 1.
    must(fwd(&mut alice, &conv, &[1], &direct("alice", "carol"), false, "", "ok1"), "alice seq 1");

    // A read no_history message is not readable any more; an unread one is.
    let nh = pb::MessageFlags { no_history: true, ..Default::default() };
    let ack = must(
        alice.call(pb::SendMessage {
            conv_id: conv.clone(),
            client_msg_id: "nh".into(),
            content: Some(text("secret")),
            flags: Some(nh),
            first_attempt: false,
        }),
        "nh",
    );
    must(fwd(&mut bob, &conv, &[ack.seq], &to, false, "", "nh-unread"), "unread no_history");
    assert_error(
        fwd(&mut alice, &conv, &[ack.seq], &to, false, "", "x"),
        ErrorCode::NotParticipant,
        "alice not in bob:carol",
    );
    bob.mark_read(&conv, 0).expect("read");
    assert_error(
        fwd(&mut bob, &conv, &[ack.seq], &to, false, "", "nh-read"),
        ErrorCode::MessageNotFound,
        "read no_history",
    );

    // Groups: the join floor (FROM_JOIN) and outsiders.
    let g = must(alice.create_group("win", pb::GroupType::Work, &["bob"], None), "create");
    let gc = gconv(&g.group_id);
    alice.send_ok(&gc, "g1", "before dave");
    let mut dave = b.client("dave", "phone");
    must(
        alice.call(pb::InviteToGroup { group_id: g.group_id.clone(), user_ids: vec!["dave".into()] }),
        "invite",
    );
    let after = alice.send_ok(&gc, "g2", "after dave");
    let early = after.seq - 2; // "before dave"
    let to_dave = direct("bob", "dave");
    assert_error(
        fwd(&mut dave, &gc, &[early], &to_dave, false, "", "x"),
        ErrorCode::MessageNotFound,
        "before join",
    );
    must(fwd(&mut dave, &gc, &[after.seq], &to_dave, false, "", "ok"), "after join");
    assert_error(
        fwd(&mut carol, &gc, &[after.seq], &to, false, "", "x"),
        ErrorCode::NotParticipant,
        "not a member",
    );
}

#[test]
fn forward_applies_the_destination_send_checks() {
    let opts = BrokerOpts::default()
        .config("[messages]\nmax_merged_bytes = 200\nallowed_kinds_group = [\"text\", \"merged\"]\n");
    let b = opts.spawn();
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "phone");
    let mut bob = b.client("bob", "phone");
    for i in 1..=3 {
        alice.send_ok(&conv, &format!("m{i}"), &"x".repeat(90));
    }
    // The recipient blacklisted the forwarder: nothing stored.
    let mut eve = b.client("eve", "phone");
    must(eve.call(pb::AddToBlacklist { user_id: "alice".into() }), "block");
    let to_eve = direct("alice", "eve");
    assert_error(
        fwd(&mut alice, &conv, &[1, 2], &to_eve, false, "", "b"),
        ErrorCode::BlockedByUser,
        "blocked",
    );
    assert_eq!(eve.pull(&to_eve, 1, 0, 0).expect("pull").max_seq, 0, "all or nothing");
    // Not a member of the destination group.
    let _carol = b.client("carol", "phone");
    let g = must(bob.create_group("dst", pb::GroupType::Work, &["carol"], None), "create");
    let gc = gconv(&g.group_id);
    assert_error(
        fwd(&mut alice, &conv, &[1], &gc, false, "", "n"),
        ErrorCode::NotParticipant,
        "not a member of B",
    );
    // The merged result's size limit ([MF-6]).
    let e = assert_error(
        fwd(&mut bob, &conv, &[1, 2, 3], &gc, true, "t", "big"),
        ErrorCode::ContentKindNotAllowed,
        "merged too big",
    );
    assert!(e.message.contains("merged"), "{}", e.message);
    must(fwd(&mut bob, &conv, &[1], &gc, true, "t", "small"), "one item fits");
    // A tip cannot be forwarded (3004).
    let tip_seq = 1; // the group's creation tip
    assert_error(
        fwd(&mut bob, &gc, &[tip_seq], &conv, false, "", "tip"),
        ErrorCode::UnsupportedContent,
        "tip",
    );
    // Broadcast destinations are the admin API's.
    assert_error(
        fwd(&mut alice, &conv, &[1], "b:all", false, "", "bc"),
        ErrorCode::PermissionDenied,
        "broadcast",
    );
}

#[test]
fn forward_bad_input() {
    let b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "phone");
    alice.send_ok(&conv, "m1", "one");
    let to = direct("alice", "carol");
    let inv = ErrorCode::InvalidArgument;
    assert_error(fwd(&mut alice, &conv, &[], &to, false, "", "e"), inv, "empty seqs");
    let many: Vec<u64> = (1..=101).collect();
    assert_error(fwd(&mut alice, &conv, &many, &to, false, "", "e"), inv, "101 seqs");
    assert_error(fwd(&mut alice, &conv, &[1, 1], &to, false, "", "e"), inv, "twice");
    assert_error(fwd(&mut alice, &conv, &[1], &to, false, "title", "e"), inv, "title one by one");
    assert_error(fwd(&mut alice, &conv, &[1], &to, false, "", ""), inv, "empty client_msg_id");
    assert_error(fwd(&mut alice, &conv, &[1], &to, false, "", &"c".repeat(63)), inv, "id:0 too long");
    must(fwd(&mut alice, &conv, &[1], &to, true, "", &"c".repeat(64)), "merged id of 64 bytes");
    assert_error(fwd(&mut alice, "nope", &[1], &to, false, "", "e"), ErrorCode::InvalidConvId, "bad from");
    assert_error(fwd(&mut alice, &conv, &[1], "p:x", false, "", "e"), ErrorCode::InvalidConvId, "bad to");
    assert_error(
        fwd(&mut alice, &conv, &[1], &direct("bob", "carol"), false, "", "e"),
        ErrorCode::NotParticipant,
        "to not mine",
    );
    // Through the admin API's call path too (a forward is not admin-only): unchanged answer kinds.
    let r = alice.request(pb::request::Op::Forward(pb::ForwardMessages {
        from_conv_id: conv.clone(),
        seqs: vec![1],
        to_conv_id: to.clone(),
        merged: false,
        title: String::new(),
        client_msg_id: "kind".into(),
    }));
    assert!(matches!(outcome(r), Ok(response::Result::Forward(_))));
}

#[test]
fn rust_sdk_send_with_flags_and_forward() {
    use missive_sdk::{Client, ClientEvent, ConnectOptions, LocalState, text_content};
    let b = BrokerProc::start();
    let connect = |user: &str| {
        Client::connect(ConnectOptions::new(b.addr.to_string(), mint(user), "sdk"), LocalState::default())
            .unwrap_or_else(|e| panic!("connect {user}: {e}"))
    };
    let alice = connect("alice");
    let bob = connect("bob");
    let conv = direct("alice", "bob");
    let online = pb::MessageFlags { online_only: true, ..Default::default() };
    let ack = alice.send_with_flags(&conv, text_content("live"), online).expect("online_only");
    assert_eq!(ack.seq, 0);
    let deadline = std::time::Instant::now() + WAIT;
    let got = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match bob.events().recv_timeout(left) {
            Ok(ClientEvent::Message(m)) if m.seq == 0 => break m,
            Ok(_) => {}
            Err(e) => panic!("no online_only message event: {e}"),
        }
    };
    assert_eq!(text_of(&got), "live");
    let nu = pb::MessageFlags { no_unread: true, ..Default::default() };
    assert_eq!(alice.send_with_flags(&conv, text_content("quiet"), nu).expect("no_unread").seq, 1);
    assert_eq!(alice.send_text(&conv, "loud").expect("send").seq, 2);
    let r = alice.forward(&conv, &[1, 2], &direct("alice", "carol"), false, "").expect("forward");
    assert_eq!(r.acks.iter().map(|a| a.seq).collect::<Vec<_>>(), vec![1, 2]);
    let r = alice.forward(&conv, &[1, 2], &direct("alice", "carol"), true, "both").expect("merged");
    assert_eq!(r.acks[0].seq, 3);
    assert!(alice.forward(&conv, &[], &direct("alice", "carol"), false, "").is_err(), "empty seqs");
}
