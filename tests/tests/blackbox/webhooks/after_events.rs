//! After-events: `after.send` is delivered signed, survives `kill -9`
//! between the ack and its delivery (same event id, delivered after the
//! restart), and a dead endpoint gets exactly `max_attempts` attempts, then
//! a dead letter that a replay delivers.

use std::collections::HashMap;
use std::time::Duration;

use missive_tests::api::Api;
use missive_tests::hook_receiver::{HookAnswer, HookReceiver};
use missive_tests::*;
use serde_json::json;

use super::{HOOK_SECRET, register};

#[test]
fn after_send_is_signed_and_carries_the_message() {
    let b = BrokerOpts::default().spawn();
    let rx = HookReceiver::start();
    rx.respond(|_| HookAnswer::status(204));
    register(&Api::new(b.listening.api()), "after", &rx, &["after.send"]);
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "phone");
    let acks: Vec<_> =
        (0..3).map(|i| alice.send_ok(&conv, &format!("m{i}"), &format!("hello {i}"))).collect();
    let got = rx.wait_until(WAIT, |r| r.iter().filter(|r| r.kind() == "after.send").count() >= 3);
    // Up to max_concurrency deliveries run at once: they may arrive in any order.
    let mut events: Vec<_> = got.iter().filter(|r| r.kind() == "after.send").collect();
    events.sort_by_key(|e| e.event_id().parse::<u64>().expect("numeric id"));
    for (e, ack) in events.iter().zip(&acks) {
        assert!(e.signature_ok(HOOK_SECRET), "{e:#?}");
        assert!(!e.signature_ok("another-secret-value"));
        assert_eq!(e.headers.get("missive-event-id").map(String::as_str), Some(e.event_id()));
        let d = &e.body["data"];
        assert_eq!(d["conv_id"], conv.as_str());
        assert_eq!(d["seq"], ack.seq);
        assert_eq!(d["server_msg_id"], ack.server_msg_id.to_string());
        assert_eq!(d["sender"], "alice");
        assert_eq!(d["device"], "phone");
        assert_eq!(d["content"]["kind"], "text");
    }
    // Event ids increase with the order the messages were stored.
    assert_eq!(
        events.iter().map(|e| e.body["data"]["seq"].as_u64()).collect::<Vec<_>>(),
        [Some(1), Some(2), Some(3)]
    );
}

#[test]
fn after_send_survives_kill9_between_ack_and_delivery() {
    let mut b = BrokerOpts::default()
        .config("[webhooks]\nmax_attempts = 100\nbackoff_base_ms = 20\nbackoff_max_ms = 100\n")
        .spawn();
    let rx = HookReceiver::start();
    // The app server is down (503) at first.
    rx.respond(|_| HookAnswer::status(503));
    register(&Api::new(b.listening.api()), "crash", &rx, &["after.send"]);
    let conv = direct("alice", "bob");
    let ack = b.client("alice", "phone").send_ok(&conv, "m1", "survive");
    let first = rx.wait_until(WAIT, |r| r.iter().any(|r| r.kind() == "after.send"));
    let event_id =
        first.iter().find(|r| r.kind() == "after.send").map(|r| r.event_id().to_owned()).expect("event");
    b.kill9();
    rx.respond(|_| HookAnswer::status(200));
    b.restart();
    let got = rx.wait_until(WAIT, |r| r.iter().any(|r| r.kind() == "after.send" && r.status == 200));
    let delivered: Vec<_> = got.iter().filter(|r| r.kind() == "after.send" && r.status == 200).collect();
    assert_eq!(delivered.len(), 1, "delivered once: {delivered:#?}");
    assert_eq!(delivered[0].event_id(), event_id, "the same event id after the restart");
    assert_eq!(delivered[0].body["data"]["seq"], ack.seq);
    assert_eq!(delivered[0].body["data"]["server_msg_id"], ack.server_msg_id.to_string());
    assert!(delivered[0].signature_ok(HOOK_SECRET));
    // Every attempt before and after the crash carried the same id.
    assert!(got.iter().filter(|r| r.kind() == "after.send").all(|r| r.event_id() == event_id));
}

#[test]
fn dead_endpoint_bounded_retries_then_dead_letter_then_replay() {
    let b = BrokerOpts::default()
        .config(
            "[webhooks]\nmax_attempts = 3\nbackoff_base_ms = 10\nbackoff_max_ms = 50\nmax_concurrency = 2\n",
        )
        .spawn();
    let api = Api::new(b.listening.api());
    let rx = HookReceiver::start();
    rx.respond(|_| HookAnswer::status(500));
    register(&api, "dead", &rx, &["after.send"]);
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "phone");
    for i in 0..4 {
        alice.send_ok(&conv, &format!("m{i}"), "x");
    }
    // Each event: exactly max_attempts attempts, then a dead letter.
    let deadline = std::time::Instant::now() + WAIT;
    let dead = loop {
        let page = api.get("/v1/webhooks/dead/dead-letters").ok();
        if page["items"].as_array().map_or(0, Vec::len) == 4 {
            break page;
        }
        assert!(std::time::Instant::now() < deadline, "no 4 dead letters: {page}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut per_event: HashMap<String, usize> = HashMap::new();
    for r in rx.of_kind("after.send") {
        *per_event.entry(r.event_id().to_owned()).or_default() += 1;
    }
    assert_eq!(per_event.len(), 4);
    assert!(per_event.values().all(|n| *n == 3), "attempts per event: {per_event:?}");
    for item in dead["items"].as_array().expect("items") {
        assert_eq!(item["attempts"], 3);
        assert_eq!(item["last_error"], "HTTP 500");
        assert_eq!(item["event"]["type"], "after.send");
        assert_eq!(item["event_id"], item["event"]["id"]);
    }
    // Paging.
    let p1 = api.get("/v1/webhooks/dead/dead-letters?limit=3").ok();
    assert_eq!(p1["items"].as_array().map(Vec::len), Some(3));
    let cursor = p1["next_cursor"].as_str().expect("cursor").to_owned();
    assert!(!cursor.is_empty());
    let p2 = api.get(&format!("/v1/webhooks/dead/dead-letters?limit=3&cursor={cursor}")).ok();
    assert_eq!(p2["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(p2["next_cursor"], "");
    // No retry storm: nothing more is attempted once dead.
    assert_eq!(rx.of_kind("after.send").len(), 12);
    // Replay one by id, then all.
    rx.respond(|_| HookAnswer::status(200));
    let first = dead["items"][0]["event_id"].as_str().expect("id").to_owned();
    let r = api.post("/v1/webhooks/dead/dead-letters/replay", &json!({ "event_ids": [first] })).ok();
    assert_eq!(r["replayed"], 1);
    rx.wait_until(WAIT, |r| r.iter().any(|r| r.status == 200 && r.event_id() == first));
    let r = api.post("/v1/webhooks/dead/dead-letters/replay", &json!({ "all": true })).ok();
    assert_eq!(r["replayed"], 3);
    let got = rx.wait_until(WAIT, |r| r.iter().filter(|r| r.status == 200).count() >= 4);
    let mut ok: Vec<&str> = got.iter().filter(|r| r.status == 200).map(|r| r.event_id()).collect();
    ok.sort_unstable();
    ok.dedup();
    assert_eq!(ok.len(), 4, "every dead letter delivered after replay");
    assert_eq!(api.get("/v1/webhooks/dead/dead-letters").ok()["items"], json!([]));
}

#[test]
fn presence_relation_and_group_events() {
    let b = BrokerProc::start();
    let rx = HookReceiver::start();
    rx.respond(|_| HookAnswer::status(200));
    register(&Api::new(b.listening.api()), "all", &rx, &["user.*", "friend.*", "blacklist.*", "group.*"]);
    let mut alice = b.client("alice", "phone");
    let mut bob = b.client("bob", "laptop");
    must(alice.add_friend_msg("bob", "hi"), "request");
    must(bob.respond_friend("alice", true, "", Default::default()), "accept");
    must(alice.block("bob"), "block");
    must(alice.unblock("bob"), "unblock");
    must(alice.delete_friend("bob", true), "delete");
    alice.create_group("wg", missive_protocol::pb::GroupType::Work, &["bob"], None).expect("group");
    drop(bob);
    let kinds = [
        "user.online",
        "friend.request",
        "friend.accepted",
        "friend.added",
        "blacklist.added",
        "blacklist.removed",
        "friend.deleted",
        "group.created",
        "user.offline",
    ];
    let got = rx.wait_until(WAIT, |r| kinds.iter().all(|k| r.iter().any(|r| r.kind() == *k)));
    let of = |k: &str| got.iter().find(|r| r.kind() == k).map(|r| r.body["data"].clone()).expect(k);
    assert!(got.iter().any(|r| r.kind() == "user.online" && r.body["data"]["user_id"] == "alice"));
    let off = of("user.offline");
    assert_eq!((off["user_id"].as_str(), off["device"].as_str()), (Some("bob"), Some("laptop")));
    assert_eq!(of("friend.request")["from"], "alice");
    assert_eq!(of("friend.added")["friend_id"], "alice");
    assert_eq!(of("blacklist.added")["blocked_id"], "bob");
    assert_eq!(of("friend.deleted")["both"], true);
    let g = of("group.created");
    assert_eq!(g["group_id"], "wg");
    assert_eq!(g["by"], "alice");
    assert!(got.iter().all(|r| r.signature_ok(HOOK_SECRET)));
    // Event ids are unique.
    let mut ids: Vec<&str> = got.iter().map(|r| r.event_id()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), got.len());
}
