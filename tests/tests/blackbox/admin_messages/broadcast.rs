//! `POST /v1/messages/broadcast`: one message in `b:all`, stored once, which
//! every user syncs (read diffusion, spec [AM-2]).

use std::time::{Duration, Instant};

use missive_protocol::pb;
use missive_tests::{ErrorCode, RawClient};
use serde_json::json;

use super::{broker, code, text};

const ALL: &str = "b:all";

/// The acceptance test: "Broadcast to 10 000 users stores one message".
#[test]
fn broadcast_to_10000_users_stores_one_message() {
    let (b, api) = broker();
    let tcp = b.listening.tcp;
    let users: Vec<String> = (0..10_000).map(|i| format!("bu{i:05}")).collect();
    let started = Instant::now();
    RawClient::login_admin(tcp, "root").import_users(&users);
    assert!(started.elapsed() < Duration::from_secs(120), "import took {:?}", started.elapsed());
    // Three users online before the broadcast; one offline until after it.
    let mut online: Vec<RawClient> =
        ["bu00000", "bu04999", "bu09999"].iter().map(|u| RawClient::login(tcp, u, "phone")).collect();
    let tokens: Vec<String> = online.iter_mut().map(|c| c.sync_all("").token).collect();
    let ack = api
        .post(
            "/v1/messages/broadcast",
            &json!({"content": {"system": {"title": "News", "text": "v2 is out"}}}),
        )
        .ok();
    assert_eq!((ack["conv_id"].as_str(), ack["seq"].as_u64()), (Some(ALL), Some(1)));
    for (c, token) in online.iter_mut().zip(&tokens) {
        let m = c.expect_message(ALL, 1);
        assert_eq!(m.sender, "system");
        assert!(
            matches!(m.content.and_then(|c| c.body), Some(pb::content::Body::System(s)) if s.text == "v2 is out")
        );
        // An incremental sync finds it too: one conversation state, unread 1.
        let s = c.sync_all(token);
        let st = s.conv(ALL).expect("b:all in the incremental sync");
        assert_eq!((st.max_seq, st.unread, st.read_seq), (1, 1, 0));
    }
    // Stored once: the log holds exactly one message, for every reader.
    let mut late = RawClient::login(tcp, "bu01234", "laptop");
    let s = late.sync_all("");
    let st = s.conv(ALL).expect("b:all in a full sync");
    assert_eq!((st.max_seq, st.unread), (1, 1));
    assert_eq!(st.last_message.as_ref().map(|m| m.seq), Some(1));
    let history = late.history(ALL, 0, 100).expect("history");
    assert_eq!(history.messages.len(), 1);
    assert_eq!(history.max_seq, 1);
    assert_eq!(late.pull_all(ALL).len(), 1);
    let export = api.get_text("/v1/conversations/b:all/messages?limit=1000");
    assert_eq!(export.status, 200);
    assert_eq!(export.ndjson().len(), 1);
    // Read state is per user and written only when the user acts.
    let read = late.mark_read(ALL, 1).expect("mark read");
    assert_eq!((read.read_seq, read.unread), (1, 0));
    let mut other_device = RawClient::login(tcp, "bu01234", "tablet");
    assert_eq!(other_device.sync_all("").conv(ALL).map(|c| c.unread), Some(0));
    let mut someone = RawClient::login(tcp, "bu07777", "phone");
    assert_eq!(someone.sync_all("").conv(ALL).map(|c| c.unread), Some(1));
    // A sync after everything finds no change in b:all until the next broadcast.
    let token = someone.sync_all("").token;
    assert!(someone.sync_all(&token).conv(ALL).is_none());
    let second = api.post("/v1/messages/broadcast", &json!({"content": text("second")})).ok();
    assert_eq!(second["seq"], 2);
    let st = someone.sync_all(&token).conv(ALL).cloned().expect("changed");
    assert_eq!((st.max_seq, st.unread), (2, 2));
    assert_eq!(late.history(ALL, 0, 100).expect("history").messages.len(), 2);
}

#[test]
fn broadcast_conversation_is_read_only_for_clients() {
    let (b, api) = broker();
    let mut alice = RawClient::login(b.listening.tcp, "alice", "phone");
    let content = pb::Content {
        body: Some(pb::content::Body::Text(pb::Text { text: "x".into() })),
        ..Default::default()
    };
    let e = alice.send_content(ALL, "m1", content.clone()).expect_err("clients cannot post");
    assert_eq!(e.code, code(ErrorCode::PermissionDenied));
    let e = alice.send_content("b:other", "m1", content).expect_err("one broadcast conversation");
    assert_eq!(e.code, code(ErrorCode::UnsupportedConversation));
    // Empty before any broadcast, and not in a sync.
    assert!(alice.pull_all(ALL).is_empty());
    assert!(alice.sync_all("").conv(ALL).is_none());
    // Pin and clear work like any conversation.
    api.post("/v1/messages/broadcast", &json!({"content": text("one"), "client_msg_id": "b1"})).ok();
    let dup =
        api.post("/v1/messages/broadcast", &json!({"content": text("one"), "client_msg_id": "b1"})).ok();
    assert_eq!((dup["seq"].as_u64(), dup["duplicate"].as_bool()), (Some(1), Some(true)));
    let st = alice.update(ALL, Some(true), None, None).expect("pin");
    assert!(st.pinned);
    let st = alice.clear(ALL, 0).expect("clear");
    assert_eq!((st.cleared_seq, st.unread), (1, 0));
    assert!(alice.pull_all(ALL).is_empty(), "cleared messages are not readable");
}

#[test]
fn broadcast_refuses_bad_input() {
    let (_b, api) = broker();
    let invalid = code(ErrorCode::InvalidArgument);
    for body in [
        json!({}),
        json!({"content": {}}),
        json!({"content": text("")}),
        json!({"content": text("x"), "client_msg_id": ""}),
        json!({"content": text("x"), "other": true}),
        json!({"content": {"text": {"text": "a"}, "system": {"text": "b"}}}),
    ] {
        api.post("/v1/messages/broadcast", &body).refused(400, invalid);
    }
    api.post("/v1/messages/broadcast", &json!({"content": text(&"x".repeat(70_000))}))
        .refused(413, code(ErrorCode::ContentTooLarge));
}
