//! Global mutes (spec [SW-8]): a muted user's sends (1:1 and group) are
//! refused with 2008 USER_MUTED until the mute ends or is lifted; mutes are
//! listed, stored and survive a restart.

use std::time::{Duration, Instant};

use missive_protocol::pb;
use missive_tests::api::Api;
use missive_tests::*;
use serde_json::json;

const MUTES: &str = "/v1/moderation/mutes";

#[test]
fn mute_refuses_sends_until_it_ends_or_is_lifted() {
    let mut b = BrokerProc::start();
    let api = Api::new(b.listening.api());
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "phone");
    let mut bob = b.client("bob", "phone");
    must(alice.create_group("mg", pb::GroupType::Work, &["bob"], None), "group");

    let m = api.post(MUTES, &json!({"user_id": "alice", "duration_secs": 3600})).ok();
    assert_eq!(m["user_id"], "alice");
    assert!(m["until_ms"].as_u64().is_some_and(|u| u > 0));
    let e = assert_error(alice.send_text(&conv, "m1", "hi"), ErrorCode::UserMuted, "1:1");
    assert!(e.message.contains("until"), "{}", e.message);
    assert_error(alice.send_text(&gconv("mg"), "m2", "hi"), ErrorCode::UserMuted, "group");
    // Only the muted user; other requests still work.
    bob.send_ok(&conv, "b1", "hello");
    must(alice.set_presence_status("quiet"), "status while muted");
    let page = api.get(MUTES).ok();
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["items"][0]["user_id"], "alice");

    // Survives a restart.
    b.restart();
    let api = Api::new(b.listening.api());
    let mut alice = b.client("alice", "phone");
    assert_error(alice.send_text(&conv, "m3", "hi"), ErrorCode::UserMuted, "after restart");
    // Lifted: 0 unmutes at once.
    assert_eq!(api.post(MUTES, &json!({"user_id": "alice", "duration_secs": 0})).ok()["until_ms"], 0);
    alice.send_ok(&conv, "m4", "back");
    assert_eq!(api.get(MUTES).ok()["items"], json!([]));

    // Expiry by time: a 1 s mute ends by itself (bounded wait).
    api.post(MUTES, &json!({"user_id": "alice", "duration_secs": 1})).ok();
    assert_error(alice.send_text(&conv, "m5", "hi"), ErrorCode::UserMuted, "short mute");
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut n = 0;
    loop {
        n += 1;
        match alice.send_text(&conv, &format!("m6-{n}"), "hi") {
            Ok(_) => break,
            Err(e) => {
                assert_eq!(e.code, ErrorCode::UserMuted.as_u32());
                assert!(Instant::now() < deadline, "the 1 s mute did not end within 3 s");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    assert_eq!(api.get(MUTES).ok()["items"], json!([]));
}

#[test]
fn mutes_page_and_bad_input() {
    let b = BrokerProc::start();
    let api = Api::new(b.listening.api());
    for u in ["u1", "u2", "u3"] {
        api.post(MUTES, &json!({"user_id": u, "duration_secs": 600})).ok();
    }
    let p1 = api.get(&format!("{MUTES}?limit=2")).ok();
    assert_eq!(p1["items"].as_array().map(Vec::len), Some(2));
    let cursor = p1["next_cursor"].as_str().expect("cursor").to_owned();
    assert!(!cursor.is_empty());
    let p2 = api.get(&format!("{MUTES}?limit=2&cursor={cursor}")).ok();
    assert_eq!(p2["items"][0]["user_id"], "u3");
    assert_eq!(p2["next_cursor"], "");
    let bad = ErrorCode::InvalidArgument.as_u32();
    api.get(&format!("{MUTES}?limit=0")).refused(400, bad);
    api.get(&format!("{MUTES}?cursor=***")).refused(400, bad);
    for body in [
        json!({"user_id": "", "duration_secs": 5}),
        json!({"user_id": "u1"}),
        json!({"user_id": "u1", "duration_secs": -1}),
        json!({"user_id": "u1", "duration_secs": 315_360_001u64}),
        json!({"user_id": "u1", "duration_secs": 5, "x": 1}),
    ] {
        api.post(MUTES, &body).refused(400, bad);
    }
}
