//! `before.send`: reject, modify, timeout fail-open / fail-closed, and a
//! slow decision for one sender delays neither another sender's acks nor the
//! order of its own sends.

use std::time::{Duration, Instant};

use missive_protocol::pb;
use missive_tests::api::Api;
use missive_tests::hook_receiver::{HookAnswer, HookReceiver, HookRequest};
use missive_tests::*;
use serde_json::json;

use super::{HOOK_SECRET, register};

fn broker(extra: &str) -> BrokerProc {
    BrokerOpts::default().config(&format!("[webhooks]\n{extra}")).spawn()
}

fn text_of_req(r: &HookRequest) -> String {
    r.body["data"]["content"]["text"].as_str().unwrap_or("").to_owned()
}

#[test]
fn reject_and_modify_decide_what_is_stored() {
    let b = broker("");
    let rx = HookReceiver::start();
    rx.respond(|r| {
        let text = r.body["data"]["content"]["text"].as_str().unwrap_or("");
        if text.contains("spam") {
            HookAnswer::ok(json!({ "action": "reject", "code": 4711, "message": "no spam here" }))
        } else if text.contains("darn") {
            HookAnswer::ok(json!({ "action": "modify", "content": { "text": "d**n" } }))
        } else if text.contains("huge") {
            // An invalid modification (over max_content_bytes) counts as a failure (fail-open).
            HookAnswer::ok(json!({ "action": "modify", "content": { "text": "x".repeat(70_000) } }))
        } else {
            HookAnswer::ok(json!({ "action": "allow" }))
        }
    });
    register(&Api::new(b.listening.api()), "mod", &rx, &["before.send"]);
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "phone");
    let e = alice.send_text(&conv, "m1", "buy spam now").expect_err("rejected");
    assert_eq!(e.code, ErrorCode::RejectedByApp as u32, "{e:?}");
    assert!(e.message.contains("4711") && e.message.contains("no spam here"), "{e:?}");
    assert!(!e.retryable);
    let ack = alice.send_ok(&conv, "m2", "oh darn");
    let ack3 = alice.send_ok(&conv, "m3", "hello");
    let ack4 = alice.send_ok(&conv, "m4", "huge");
    let mut bob = b.client("bob", "phone");
    let msgs = bob.pull_all(&conv);
    let texts: Vec<&str> = msgs.iter().map(text_of).collect();
    assert_eq!(texts, ["d**n", "hello", "huge"], "the rejected message is not stored, the modified one is");
    assert_eq!([ack.seq, ack3.seq, ack4.seq], [1, 2, 3]);
    // The request the app saw: signed, with the sender, device and content.
    let seen = rx.of_kind("before.send");
    assert_eq!(seen.len(), 4);
    assert!(seen.iter().all(|r| r.signature_ok(HOOK_SECRET)), "{seen:#?}");
    assert_eq!(seen[0].body["data"]["sender"], "alice");
    assert_eq!(seen[0].body["data"]["device"], "phone");
    assert_eq!(seen[0].body["data"]["conv_id"], conv.as_str());
    assert_eq!(seen[0].body["data"]["client_msg_id"], "m1");
    assert_eq!(text_of_req(&seen[1]), "oh darn");
    // A group send asks too.
    let g = gconv("g1");
    alice.create_group("g1", pb::GroupType::Work, &["bob"], None).expect("create group");
    let e = alice.send_text(&g, "g1", "spam in a group").expect_err("rejected");
    assert_eq!(e.code, ErrorCode::RejectedByApp as u32);
    alice.send_ok(&g, "g2", "fine");
}

#[test]
fn timeout_fails_open_by_default() {
    let b = broker("before_send_timeout_ms = 200\n");
    let rx = HookReceiver::start();
    rx.respond(|_| {
        HookAnswer::ok(json!({ "action": "reject", "code": 1, "message": "late" }))
            .after(Duration::from_millis(1500))
    });
    register(&Api::new(b.listening.api()), "slow", &rx, &["before.send"]);
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "phone");
    let t = Instant::now();
    let ack = alice.send_ok(&conv, "m1", "hi");
    assert!(t.elapsed() < Duration::from_millis(1400), "waited {:?}", t.elapsed());
    assert_eq!(ack.seq, 1);
}

#[test]
fn timeout_and_errors_fail_closed_when_configured() {
    let b = broker("before_send_timeout_ms = 200\nbefore_send_on_failure = \"closed\"\n");
    let rx = HookReceiver::start();
    rx.respond(|r| {
        if text_of_req(r) == "slow" {
            HookAnswer::ok(json!({ "action": "allow" })).after(Duration::from_millis(1000))
        } else if text_of_req(r) == "500" {
            HookAnswer::status(500)
        } else if text_of_req(r) == "junk" {
            HookAnswer::ok(json!({ "what": "?" }))
        } else {
            HookAnswer::ok(json!({ "action": "allow" }))
        }
    });
    register(&Api::new(b.listening.api()), "closed", &rx, &["before.send"]);
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "phone");
    for (i, t) in ["slow", "500", "junk"].iter().enumerate() {
        let e = alice.send_text(&conv, &format!("f{i}"), t).expect_err("fail-closed");
        assert_eq!(e.code, ErrorCode::WebhookFailed as u32, "{t}: {e:?}");
        assert!(e.retryable);
    }
    let ack = alice.send_ok(&conv, "ok", "fine");
    assert_eq!(ack.seq, 1, "nothing was stored for the refused sends");
}

#[test]
fn a_slow_decision_delays_neither_other_senders_nor_the_order_of_its_own() {
    let b = broker("before_send_timeout_ms = 5000\n");
    let rx = HookReceiver::start();
    rx.respond(|r| {
        let d = if r.body["data"]["sender"] == "slow" { Duration::from_millis(1000) } else { Duration::ZERO };
        HookAnswer::ok(json!({ "action": "allow" })).after(d)
    });
    register(&Api::new(b.listening.api()), "mixed", &rx, &["before.send"]);
    let slow_conv = direct("slow", "x");
    let fast_conv = direct("fast", "y");
    let mut slow = b.client("slow", "phone");
    let mut fast = b.client("fast", "phone");
    let t0 = Instant::now();
    let ids: Vec<u64> = (0..3)
        .map(|i| {
            slow.send_request(pb::SendMessage {
                conv_id: slow_conv.clone(),
                client_msg_id: format!("s{i}"),
                content: Some(text(&format!("s{i}"))),
                flags: None,
                first_attempt: false,
            })
        })
        .collect();
    // Meanwhile another sender's sends are decided and acked at once.
    for i in 0..5 {
        fast.send_ok(&fast_conv, &format!("f{i}"), "quick");
    }
    let fast_done = t0.elapsed();
    assert!(fast_done < Duration::from_millis(900), "fast sender waited {fast_done:?} behind a slow one");
    let mut seqs = Vec::new();
    for id in ids {
        let r = slow.wait_response(id, WAIT);
        match outcome(r) {
            Ok(pb::response::Result::SendAck(a)) => seqs.push(a.seq),
            other => panic!("slow send: {other:?}"),
        }
    }
    assert!(t0.elapsed() >= Duration::from_millis(3000), "the slow sends were decided one after another");
    assert_eq!(seqs, [1, 2, 3], "a sender's messages keep their send order");
    let stored: Vec<String> = slow.pull_all(&slow_conv).iter().map(|m| text_of(m).to_owned()).collect();
    assert_eq!(stored, ["s0", "s1", "s2"]);
}
