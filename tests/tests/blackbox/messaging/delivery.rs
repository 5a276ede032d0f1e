//! Core messaging: delivery to every device, ordering, idempotent retries,
//! concurrent senders and SendMessage validation.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use missive_protocol::pb::{self, content::Body, push};
use missive_tests::*;
use prost::Message as _;

/// Collects pushes until a Message with `seq` of `conv` arrives; returns every
/// message pushed before it (and it, last).
fn messages_until(c: &mut RawClient, conv: &str, seq: u64) -> Vec<pb::Message> {
    let mut got = Vec::new();
    loop {
        match c.next_push(WAIT) {
            Some(push::Event::Message(m)) => {
                let done = m.conv_id == conv && m.seq == seq;
                got.push(m);
                if done {
                    return got;
                }
            }
            Some(_) => {}
            None => panic!("no pushed message {conv}#{seq} within {WAIT:?}; got {got:?}"),
        }
    }
}

fn seqs(msgs: &[pb::Message]) -> Vec<u64> {
    msgs.iter().map(|m| m.seq).collect()
}

#[test]
fn two_users_three_devices_get_every_message_once() {
    let b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let mut alice_phone = b.client("alice", "phone");
    let mut alice_laptop = b.client("alice", "laptop");
    let mut bob_phone = b.client("bob", "phone");

    let ack1 = alice_phone.send_ok(&conv, "a-1", "hi bob");
    assert_eq!(ack1.seq, 1);
    assert!(ack1.server_msg_id != 0);

    // Bob's device and Alice's other device get it, with the stored fields.
    for (who, c) in [("bob/phone", &mut bob_phone), ("alice/laptop", &mut alice_laptop)] {
        let got = messages_until(c, &conv, 1);
        assert_eq!(got.len(), 1, "{who}: {got:?}");
        let m = &got[0];
        assert_eq!(m.sender, "alice", "{who}");
        assert_eq!(m.sender_device, "phone", "{who}");
        assert_eq!(m.client_msg_id, "a-1", "{who}");
        assert_eq!(text_of(m), "hi bob", "{who}");
        assert_eq!(m.server_msg_id, ack1.server_msg_id, "{who}");
        assert_eq!(m.server_time_ms, ack1.server_time_ms, "{who}");
    }

    // Bob answers: the first message pushed to Alice's phone is Bob's (seq 2):
    // the sending phone never got its own seq 1.
    let ack2 = bob_phone.send_ok(&conv, "b-1", "hi alice");
    assert_eq!(ack2.seq, 2);
    let got = messages_until(&mut alice_phone, &conv, 2);
    assert_eq!(seqs(&got), vec![2], "alice/phone must not receive its own message: {got:?}");
    assert_eq!(got[0].sender, "bob");
    let got = messages_until(&mut alice_laptop, &conv, 2);
    assert_eq!(seqs(&got), vec![2]);

    // Alice's laptop sends: Bob's phone sees seq 3 next (not its own seq 2),
    // Alice's phone sees it as her other device.
    let ack3 = alice_laptop.send_ok(&conv, "l-1", "from the laptop");
    assert_eq!(ack3.seq, 3);
    let got = messages_until(&mut bob_phone, &conv, 3);
    assert_eq!(seqs(&got), vec![3], "bob/phone must not receive its own seq 2: {got:?}");
    let got = messages_until(&mut alice_phone, &conv, 3);
    assert_eq!(seqs(&got), vec![3]);
    assert_eq!(got[0].sender_device, "laptop");

    // Everything is stored once, in order.
    let all = bob_phone.pull_all(&conv);
    assert_dense(&all, 1, 3, "pull");
    let ids: Vec<&str> = all.iter().map(|m| m.client_msg_id.as_str()).collect();
    assert_eq!(ids, ["a-1", "b-1", "l-1"]);
}

#[test]
fn fifty_quick_sends_arrive_in_order_without_duplicates() {
    let b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let mut alice_phone = b.client("alice", "phone");
    let mut alice_laptop = b.client("alice", "laptop");
    let mut bob_phone = b.client("bob", "phone");

    // All 50 in flight at once.
    let acks = alice_phone.send_many(&conv, "q-", 50, 50);
    let ack_seqs: Vec<u64> = acks.iter().map(|a| a.seq).collect();
    assert_eq!(
        ack_seqs,
        (1..=50).collect::<Vec<u64>>(),
        "one connection, one conversation: seqs in request order"
    );
    assert!(acks.iter().all(|a| !a.duplicate));

    // A 51st message is the barrier: everything pushed before it is checked.
    alice_phone.send_ok(&conv, "q-last", "last");
    for (who, c) in [("bob/phone", &mut bob_phone), ("alice/laptop", &mut alice_laptop)] {
        let got = messages_until(c, &conv, 51);
        assert_eq!(seqs(&got), (1..=51).collect::<Vec<u64>>(), "{who}: in order, no gap, no duplicate");
        for (i, m) in got.iter().take(50).enumerate() {
            assert_eq!(m.client_msg_id, format!("q-{i}"), "{who}");
        }
    }
}

#[test]
fn retried_send_is_stored_once() {
    let b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let mut phone = b.client("alice", "phone");
    let mut bob = b.client("bob", "phone");

    let first = phone.send_ok(&conv, "retry-1", "once");
    assert_eq!(first.seq, 1);
    // Same client_msg_id (even with another body): the original ack, duplicate=true.
    let again = phone.send_text(&conv, "retry-1", "once (retry)").expect("retry accepted");
    assert!(again.duplicate, "{again:?}");
    assert_eq!(
        (again.seq, again.server_msg_id, again.server_time_ms),
        (first.seq, first.server_msg_id, first.server_time_ms)
    );
    assert_eq!(again.conv_id, conv);

    let second = phone.send_ok(&conv, "retry-2", "twice");
    assert_eq!(second.seq, 2);

    // A retry after reconnecting (same device) is still a duplicate.
    drop(phone);
    let mut phone = b.client("alice", "phone");
    let again = phone.send_text(&conv, "retry-1", "once").expect("retry after reconnect");
    assert!(again.duplicate);
    assert_eq!(again.seq, 1);

    // The key includes the device: the same client_msg_id from another device is a new message.
    let mut laptop = b.client("alice", "laptop");
    let other = laptop.send_ok(&conv, "retry-1", "laptop's own");
    assert_eq!(other.seq, 3);

    let all = bob.pull_all(&conv);
    assert_dense(&all, 1, 3, "pull");
    assert_eq!(text_of(&all[0]), "once", "the stored body is the first one");
    let keys: Vec<(&str, &str)> =
        all.iter().map(|m| (m.sender_device.as_str(), m.client_msg_id.as_str())).collect();
    assert_eq!(keys, [("phone", "retry-1"), ("phone", "retry-2"), ("laptop", "retry-1")]);

    // Bob got each stored message pushed exactly once (no push for duplicates).
    let got = messages_until(&mut bob, &conv, 3);
    assert_eq!(seqs(&got), vec![1, 2, 3], "{got:?}");
}

/// A SendMessage with `first_attempt` ([S-7]).
fn send_first(c: &mut RawClient, conv: &str, cmid: &str, body: &str) -> pb::SendAck {
    c.call(pb::SendMessage {
        conv_id: conv.to_owned(),
        client_msg_id: cmid.to_owned(),
        content: Some(text(body)),
        flags: None,
        first_attempt: true,
    })
    .expect("first attempt accepted")
}

#[test]
fn first_attempts_skip_no_stored_retry() {
    let mut b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let mut phone = b.client("alice", "phone");

    // A first attempt, then its resend (no promise): stored once.
    let first = send_first(&mut phone, &conv, "f-1", "one");
    assert!(!first.duplicate);
    let again = phone.send_text(&conv, "f-1", "one (resend)").expect("resend");
    assert!(again.duplicate, "a resend finds the first attempt: {again:?}");
    assert_eq!(again.seq, first.seq);

    // An id stored without the promise, then "first" sent with it: the
    // stored key disables the shortcut, so it is still recognised (the
    // order a late first attempt behind its retry would arrive in).
    let retry = phone.send_text(&conv, "f-2", "two").expect("retry first");
    assert!(!retry.duplicate);
    let late = send_first(&mut phone, &conv, "f-2", "two (late first attempt)");
    assert!(late.duplicate, "a first attempt after its stored retry: {late:?}");
    assert_eq!(late.seq, retry.seq);

    // After a restart durable keys still answer resends.
    drop(phone);
    b.restart();
    let mut phone = b.client("alice", "phone");
    let after = phone.send_text(&conv, "f-1", "one").expect("resend after restart");
    assert!(after.duplicate, "{after:?}");
    assert_eq!(after.seq, first.seq);
    let fresh = send_first(&mut phone, &conv, "f-3", "three");
    assert_eq!((fresh.seq, fresh.duplicate), (3, false));
    let mut bob = b.client("bob", "phone");
    let all = bob.pull_all(&conv);
    assert_dense(&all, 1, 3, "pull");
    let ids: Vec<&str> = all.iter().map(|m| m.client_msg_id.as_str()).collect();
    assert_eq!(ids, ["f-1", "f-2", "f-3"], "each id stored once");
}

#[test]
fn eight_concurrent_senders_get_dense_seqs() {
    const PER_SENDER: usize = 30;
    let b = BrokerProc::start();
    let conv = direct("alice", "bob");
    // All eight log in, then all start sending at once (bounded wait, no Barrier
    // that a failed login could leave hanging).
    let ready = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for i in 0..8 {
        let (user, device) = if i < 4 { ("alice", format!("dev-{i}")) } else { ("bob", format!("dev-{i}")) };
        let addr = b.addr;
        let conv = conv.clone();
        let ready = Arc::clone(&ready);
        handles.push(std::thread::spawn(move || {
            let mut c = RawClient::login(addr, user, &device);
            ready.fetch_add(1, Ordering::AcqRel);
            let deadline = Instant::now() + WAIT;
            while ready.load(Ordering::Acquire) < 8 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            let mut acks = Vec::with_capacity(PER_SENDER);
            for k in 0..PER_SENDER {
                let cmid = format!("{device}-{k}");
                acks.push((cmid.clone(), c.send_ok(&conv, &cmid, &cmid).seq));
            }
            (user, device, acks)
        }));
    }
    let mut acked: HashMap<(String, String), u64> = HashMap::new();
    for h in handles {
        let (user, device, acks) = h.join().expect("sender thread");
        let mut last = 0;
        for (cmid, seq) in acks {
            assert!(seq > last, "{user}/{device}: acks of one sender must increase ({last} then {seq})");
            last = seq;
            assert!(acked.insert((device.clone(), cmid), seq).is_none());
        }
    }
    let total = 8 * PER_SENDER;
    let distinct: HashSet<u64> = acked.values().copied().collect();
    assert_eq!(distinct.len(), total, "every ack has its own seq");

    let mut reader = b.client("bob", "reader");
    let all = reader.pull_all(&conv);
    assert_dense(&all, 1, total as u64, "pull after concurrent sends");
    let mut seen = HashSet::new();
    for m in &all {
        let key = (m.sender_device.clone(), m.client_msg_id.clone());
        assert!(seen.insert(key.clone()), "stored twice: {key:?}");
        assert_eq!(acked.get(&key), Some(&m.seq), "stored seq of {key:?} differs from its ack");
        let expected_sender = if m.sender_device.as_str() < "dev-4" { "alice" } else { "bob" };
        assert_eq!(m.sender, expected_sender);
    }
}

#[test]
fn send_validation_errors() {
    // [M-3] at its limit: the text kind's own limit ([MF-6], default 16 KiB) raised to it.
    let b = BrokerOpts::default().config("[messages]\nmax_text_bytes = 65536\n").spawn();
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "phone");
    let mut carol = b.client("carol", "phone");

    assert_error(
        carol.send_text(&conv, "c-1", "let me in"),
        ErrorCode::NotParticipant,
        "send to others' conv",
    );
    assert_error(carol.pull(&conv, 1, 0, 0), ErrorCode::NotParticipant, "pull others' conv");
    assert_error(carol.history(&conv, 0, 0), ErrorCode::NotParticipant, "history of others' conv");
    assert_error(carol.mark_read(&conv, 0), ErrorCode::NotParticipant, "mark others' conv read");

    for bad in ["p:bob:alice", "garbage", "p:alice", "", "p:alice:alice", "x:alice:bob", "p:alice:b b"] {
        assert_error(
            alice.send_text(bad, "a-1", "hi"),
            ErrorCode::InvalidConvId,
            &format!("conv id {bad:?}"),
        );
    }
    for unsupported in ["r:lobby", "c:big:general"] {
        assert_error(
            alice.send_text(unsupported, "a-1", "hi"),
            ErrorCode::UnsupportedConversation,
            &format!("conv {unsupported}"),
        );
    }
    // Groups are served (spec 14): a group the user is not a member of is refused.
    assert_error(alice.send_text("g:x", "a-1", "hi"), ErrorCode::NotParticipant, "conv g:x");

    assert_error(alice.send_text(&conv, "a-1", ""), ErrorCode::InvalidArgument, "empty text");
    assert_error(alice.send_text(&conv, "", "hi"), ErrorCode::InvalidArgument, "empty client_msg_id");
    assert_error(
        alice.send_text(&conv, &"m".repeat(65), "hi"),
        ErrorCode::InvalidArgument,
        "65-byte client_msg_id",
    );
    assert_error(
        alice.send_text(&conv, "a\n1", "hi"),
        ErrorCode::InvalidArgument,
        "control char in client_msg_id",
    );

    let tip = pb::Content {
        body: Some(Body::Tip(pb::Tip {
            kind: "group.member_joined".into(),
            text: "x joined".into(),
            ..Default::default()
        })),
        ..Default::default()
    };
    assert_error(alice.send_content(&conv, "a-tip", tip), ErrorCode::UnsupportedContent, "tip from a client");
    let system = pb::Content {
        body: Some(Body::System(pb::SystemNotice { title: "t".into(), text: "x".into() })),
        ..Default::default()
    };
    assert_error(alice.send_content(&conv, "a-sys", system), ErrorCode::UnsupportedContent, "system notice");
    assert_error(
        alice.send_content(&conv, "a-none", pb::Content::default()),
        ErrorCode::UnsupportedContent,
        "content without body",
    );

    // Size: exactly max_content_bytes (64 KiB, encoded) is accepted, one byte more is not.
    let max = 64 * 1024;
    let mut n = max - 16;
    while text(&"x".repeat(n)).encoded_len() < max {
        n += 1;
    }
    assert_eq!(text(&"x".repeat(n)).encoded_len(), max);
    let ack = alice.send_text(&conv, "a-max", &"x".repeat(n)).expect("content of exactly max_content_bytes");
    assert_eq!(ack.seq, 1, "nothing was stored by the refused sends");
    assert_error(alice.send_text(&conv, "a-over", &"x".repeat(n + 1)), ErrorCode::ContentTooLarge, "max + 1");
    assert_error(
        alice.send_text(&conv, "a-big", &"x".repeat(200 * 1024)),
        ErrorCode::ContentTooLarge,
        "200 KiB",
    );

    // The connection survived every error and nothing else was stored.
    assert_eq!(alice.ping(1).nonce, 1);
    let all = alice.pull_all(&conv);
    assert_dense(&all, 1, 1, "only the accepted message is stored");
    assert_eq!(text_of(&all[0]).len(), n);
}

#[test]
fn every_client_content_kind_round_trips() {
    let b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "phone");
    let mut bob = b.client("bob", "phone");
    let quote = pb::Quote { seq: 1, server_msg_id: 5, sender: "alice".into(), preview: "hi".into() };
    let contents = [
        text("plain"),
        pb::Content {
            body: Some(Body::Image(pb::Image {
                url: "https://x/i.png".into(),
                thumbnail_url: "https://x/t.png".into(),
                width: 640,
                height: 480,
                size_bytes: 12345,
                mime_type: "image/png".into(),
            })),
            quote: Some(quote.clone()),
            ..Default::default()
        },
        pb::Content {
            body: Some(Body::Voice(pb::Voice {
                url: "u".into(),
                duration_ms: 3000,
                size_bytes: 9,
                mime_type: "audio/ogg".into(),
            })),
            ..Default::default()
        },
        pb::Content {
            body: Some(Body::Video(pb::Video {
                url: "v".into(),
                duration_ms: 1,
                width: 2,
                height: 3,
                ..Default::default()
            })),
            ..Default::default()
        },
        pb::Content {
            body: Some(Body::File(pb::File {
                url: "f".into(),
                name: "a.pdf".into(),
                size_bytes: 1,
                mime_type: "application/pdf".into(),
            })),
            ..Default::default()
        },
        pb::Content {
            body: Some(Body::Location(pb::Location {
                latitude: 48.85,
                longitude: 2.35,
                title: "Paris".into(),
                address: "".into(),
            })),
            ..Default::default()
        },
        pb::Content {
            body: Some(Body::Custom(pb::Custom { r#type: "app.card".into(), data: vec![0, 1, 2, 255] })),
            mentions: Some(pb::Mentions { user_ids: vec!["bob".into()], all: false }),
            ex: vec![9, 9, 9],
            ..Default::default()
        },
        pb::Content {
            body: Some(Body::Merged(pb::Merged {
                title: "chat".into(),
                items: vec![pb::MergedItem {
                    sender: "carol".into(),
                    server_time_ms: 1,
                    content: Some(text("old")),
                }],
            })),
            ..Default::default()
        },
    ];
    for (i, c) in contents.iter().enumerate() {
        let ack = alice
            .send_content(&conv, &format!("k-{i}"), c.clone())
            .unwrap_or_else(|e| panic!("kind {i}: {e:?}"));
        assert_eq!(ack.seq, i as u64 + 1);
    }
    let pushed = messages_until(&mut bob, &conv, contents.len() as u64);
    let pulled = bob.pull_all(&conv);
    assert_dense(&pulled, 1, contents.len() as u64, "pull");
    for (i, c) in contents.iter().enumerate() {
        assert_eq!(pushed[i].content.as_ref(), Some(c), "pushed content {i}");
        assert_eq!(pulled[i].content.as_ref(), Some(c), "stored content {i}");
    }
}
