//! `POST /v1/messages` (send as a user) and `POST /v1/messages/notice`.

use missive_protocol::pb;
use missive_tests::api::Api;
use missive_tests::{ErrorCode, RawClient, mint};
use serde_json::{Value, json};

use super::{broker, code, direct, text};

/// Every content kind a client may send, as JSON, with the body it must become.
/// Whether a received body is the one sent.
type BodyCheck = fn(&pb::content::Body) -> bool;

fn kinds() -> Vec<(Value, BodyCheck)> {
    use pb::content::Body;
    vec![
        (
            json!({"text": {"text": "hi"}, "quote": {"seq": 1, "sender": "alice", "preview": "p"},
                   "mentions": {"user_ids": ["bob"]}, "ex": "AAE="}),
            |b| matches!(b, Body::Text(t) if t.text == "hi"),
        ),
        (
            json!({"image": {"url": "https://x/i.png", "thumbnail_url": "https://x/t.png", "width": 10,
                   "height": 20, "size_bytes": 300, "mime_type": "image/png"}}),
            |b| matches!(b, Body::Image(i) if i.width == 10 && i.height == 20),
        ),
        (
            json!({"voice": {"url": "https://x/v.ogg", "duration_ms": 1500}}),
            |b| matches!(b, Body::Voice(v) if v.duration_ms == 1500),
        ),
        (
            json!({"video": {"url": "https://x/v.mp4", "duration_ms": 9000, "width": 640}}),
            |b| matches!(b, Body::Video(v) if v.duration_ms == 9000 && v.width == 640),
        ),
        (
            json!({"file": {"url": "https://x/f.pdf", "name": "f.pdf", "size_bytes": 12}}),
            |b| matches!(b, Body::File(f) if f.name == "f.pdf"),
        ),
        (
            json!({"location": {"latitude": 48.85, "longitude": 2.35, "title": "Paris"}}),
            |b| matches!(b, Body::Location(l) if l.title == "Paris"),
        ),
        (
            json!({"custom": {"type": "card", "data": "aGVsbG8="}}),
            |b| matches!(b, Body::Custom(c) if c.r#type == "card" && c.data == b"hello"),
        ),
        (
            json!({"merged": {"title": "chat", "items": [
                {"sender": "carol", "server_time_ms": 5, "content": {"text": {"text": "old"}}}]}}),
            |b| matches!(b, Body::Merged(m) if m.items.len() == 1),
        ),
    ]
}

#[test]
fn send_as_a_user_every_content_kind_reaches_the_peer() {
    let (b, api) = broker();
    let mut bob = RawClient::login(b.listening.tcp, "bob", "phone");
    let conv = direct("alice", "bob");
    for (i, (content, is)) in kinds().into_iter().enumerate() {
        let ack = api
            .post(
                "/v1/messages",
                &json!({"from": "alice", "to_user_id": "bob", "content": content, "client_msg_id": format!("k{i}")}),
            )
            .ok();
        let seq = i as u64 + 1;
        assert_eq!(ack["conv_id"], conv);
        assert_eq!(ack["seq"], seq);
        assert_eq!(ack["duplicate"], false);
        assert!(
            ack["server_msg_id"].as_u64().is_some_and(|v| v > 0) && ack["server_time_ms"].as_u64().is_some()
        );
        let m = bob.expect_message(&conv, seq);
        assert_eq!(m.sender, "alice");
        let body = m.content.and_then(|c| c.body).expect("body");
        assert!(is(&body), "kind {i}: {body:?}");
    }
    // The first one kept its quote, mentions and ex.
    let first = &bob.pull(&conv, 1, 1, 1).expect("pull").messages[0];
    let c = first.content.as_ref().expect("content");
    assert_eq!(c.quote.as_ref().map(|q| q.seq), Some(1));
    assert_eq!(c.mentions.as_ref().map(|m| m.user_ids.clone()), Some(vec!["bob".to_owned()]));
    assert_eq!(c.ex, vec![0, 1]);
    // Idempotent by client_msg_id; a generated id is fresh each time.
    let again = api
        .post(
            "/v1/messages",
            &json!({"from": "alice", "to_user_id": "bob", "content": text("x"), "client_msg_id": "k0"}),
        )
        .ok();
    assert_eq!((again["seq"].as_u64(), again["duplicate"].as_bool()), (Some(1), Some(true)));
    let n = kinds().len() as u64;
    for k in 1..=2 {
        let a = api
            .post("/v1/messages", &json!({"from": "bob", "to_user_id": "alice", "content": text("y")}))
            .ok();
        assert_eq!(a["seq"], n + k);
        assert_eq!(a["duplicate"], false);
    }
}

#[test]
fn send_as_a_user_to_a_group_checks_membership_and_blacklist() {
    let (b, api) = broker();
    let mut alice = RawClient::login(b.listening.tcp, "alice", "phone");
    let mut bob = RawClient::login(b.listening.tcp, "bob", "phone");
    alice.create_group("team", pb::GroupType::Work, &["bob"], None).expect("create");
    let ack = api
        .post("/v1/messages", &json!({"from": "alice", "group_id": "team", "content": text("hello team")}))
        .ok();
    assert_eq!(ack["conv_id"], "g:team");
    let seq = ack["seq"].as_u64().expect("seq");
    assert_eq!(bob.expect_message("g:team", seq).sender, "alice");
    // carol is not a member: the same refusal as a socket send.
    let socket = RawClient::login(b.listening.tcp, "carol", "phone")
        .send_content(
            "g:team",
            "c1",
            pb::Content {
                body: Some(pb::content::Body::Text(pb::Text { text: "x".into() })),
                ..Default::default()
            },
        )
        .expect_err("not a member");
    let rest = api.post("/v1/messages", &json!({"from": "carol", "group_id": "team", "content": text("x")}));
    rest.refused(403, socket.code);
    assert_eq!(socket.code, code(ErrorCode::NotParticipant));
    // No such group.
    let r = api.post("/v1/messages", &json!({"from": "alice", "group_id": "nope", "content": text("x")}));
    assert!(matches!(r.status, 403 | 404), "{r:?}");
    // bob blacklists alice: her 1:1 sends are refused.
    bob.call(pb::AddToBlacklist { user_id: "alice".into() }).expect("block");
    api.post("/v1/messages", &json!({"from": "alice", "to_user_id": "bob", "content": text("x")}))
        .refused(403, code(ErrorCode::BlockedByUser));
    // A disabled account sends nothing, as over a socket (it cannot log in).
    let mut admin = RawClient::login_admin(b.listening.tcp, "root");
    admin.set_account_disabled("carol", true, "spam").expect("disable");
    api.post("/v1/messages", &json!({"from": "carol", "to_user_id": "bob", "content": text("x")}))
        .refused(403, code(ErrorCode::AccountDisabled));
}

#[test]
fn send_as_a_user_refuses_bad_input_and_bad_credentials() {
    let (b, api) = broker();
    let ok = json!({"from": "alice", "to_user_id": "bob", "content": text("x")});
    let invalid = code(ErrorCode::InvalidArgument);
    let mut bad: Vec<(Value, u16, u32)> = Vec::new();
    let with = |k: &str, v: Value| {
        let mut o = ok.clone();
        o[k] = v;
        o
    };
    let without = |k: &str| {
        let mut o = ok.clone();
        o.as_object_mut().expect("object").remove(k);
        o
    };
    bad.push((without("from"), 400, invalid));
    bad.push((with("from", json!("a b")), 400, invalid));
    bad.push((with("from", json!(7)), 400, invalid));
    bad.push((with("from", json!("x".repeat(65))), 400, invalid));
    bad.push((without("to_user_id"), 400, invalid));
    bad.push((with("to_user_id", json!("alice")), 400, invalid));
    bad.push((with("to_user_id", json!("")), 400, invalid));
    bad.push((with("group_id", json!("team")), 400, invalid));
    bad.push((json!({"from": "alice", "group_id": "a:b", "content": text("x")}), 400, invalid));
    bad.push((without("content"), 400, invalid));
    bad.push((with("content", json!({})), 400, invalid));
    bad.push((with("content", json!({"text": {"text": "a"}, "image": {"url": "u"}})), 400, invalid));
    bad.push((with("content", json!({"txt": {"text": "a"}})), 400, invalid));
    bad.push((with("content", text("")), 400, invalid));
    bad.push((with("content", json!({"custom": {"type": "t", "data": "%%"}})), 400, invalid));
    bad.push((with("content", json!({"text": {"text": "a"}, "ex": "!!"})), 400, invalid));
    bad.push((with("content", json!({"location": {"latitude": 100.0, "longitude": 0.0}})), 400, invalid));
    bad.push((with("content", json!({"system": {"text": "s"}})), 400, code(ErrorCode::UnsupportedContent)));
    bad.push((with("content", json!({"tip": {"kind": "k"}})), 400, code(ErrorCode::UnsupportedContent)));
    bad.push((with("content", text(&"x".repeat(70_000))), 413, code(ErrorCode::ContentTooLarge)));
    bad.push((with("client_msg_id", json!("")), 400, invalid));
    bad.push((with("client_msg_id", json!("x".repeat(65))), 400, invalid));
    bad.push((with("client_msg_id", json!("a\nb")), 400, invalid));
    bad.push((with("extra", json!(1)), 400, invalid));
    bad.push((json!([1, 2]), 400, invalid));
    for (body, status, c) in bad {
        let r = api.post("/v1/messages", &body);
        assert_eq!((r.status, r.body["code"].as_u64()), (status, Some(u64::from(c))), "{body}: {}", r.body);
    }
    // Credentials: none → 401, a user token → 403.
    Api::with_bearer(b.listening.api(), None)
        .post("/v1/messages", &ok)
        .refused(401, code(ErrorCode::TokenInvalid));
    Api::with_bearer(b.listening.api(), Some(mint("alice")))
        .post("/v1/messages", &ok)
        .refused(403, code(ErrorCode::PermissionDenied));
    // Nothing was stored by any refusal.
    let mut bob = RawClient::login(b.listening.tcp, "bob", "phone");
    assert!(bob.pull_all(&direct("alice", "bob")).is_empty());
}

#[test]
fn notice_reaches_each_user_from_the_system_user() {
    let (b, api) = broker();
    let mut online = RawClient::login(b.listening.tcp, "nu1", "phone");
    let r = api
        .post(
            "/v1/messages/notice",
            &json!({"user_ids": ["nu1", "nu2", "system"], "title": "Hi", "text": "maintenance"}),
        )
        .ok();
    let results = r["results"].as_array().expect("results");
    assert_eq!(results.len(), 3);
    for (i, u) in ["nu1", "nu2"].iter().enumerate() {
        assert_eq!(results[i]["user_id"], *u);
        assert_eq!(results[i]["ok"], true, "{}", results[i]);
        assert_eq!(results[i]["ack"]["conv_id"], direct("system", u));
        assert_eq!(results[i]["ack"]["seq"], 1);
    }
    assert_eq!(results[2]["ok"], false);
    assert_eq!(results[2]["code"], code(ErrorCode::SelfTarget));
    let m = online.expect_message(&direct("system", "nu1"), 1);
    assert_eq!(m.sender, "system");
    match m.content.and_then(|c| c.body) {
        Some(pb::content::Body::System(s)) => {
            assert_eq!((s.title.as_str(), s.text.as_str()), ("Hi", "maintenance"))
        }
        other => panic!("not a system notice: {other:?}"),
    }
    // The offline user finds it by sync.
    let mut offline = RawClient::login(b.listening.tcp, "nu2", "phone");
    let s = offline.sync_all("");
    let st = s.conv(&direct("system", "nu2")).expect("notice conversation");
    assert_eq!((st.max_seq, st.unread), (1, 1));
    // The system user's account exists now (created on first use).
    let mut admin = RawClient::login_admin(b.listening.tcp, "root");
    assert!(admin.accounts_exist(&["system"]).expect("exist")[0].exists);
    // A second notice is idempotent by client_msg_id.
    let body = json!({"user_ids": ["nu1"], "text": "again", "client_msg_id": "n-1"});
    let a = api.post("/v1/messages/notice", &body).ok();
    let b2 = api.post("/v1/messages/notice", &body).ok();
    assert_eq!(a["results"][0]["ack"]["seq"], 2);
    assert_eq!(b2["results"][0]["ack"]["seq"], 2);
    assert_eq!(b2["results"][0]["ack"]["duplicate"], true);
}

#[test]
fn notice_refuses_bad_input() {
    let (_b, api) = broker();
    let invalid = code(ErrorCode::InvalidArgument);
    let many: Vec<String> = (0..501).map(|i| format!("u{i}")).collect();
    for body in [
        json!({"user_ids": [], "text": "t"}),
        json!({"user_ids": many, "text": "t"}),
        json!({"user_ids": ["a b"], "text": "t"}),
        json!({"user_ids": ["a"], "text": ""}),
        json!({"user_ids": ["a"]}),
        json!({"text": "t"}),
        json!({"user_ids": ["a"], "text": "t", "title": "x".repeat(257)}),
        json!({"user_ids": ["a"], "text": "t", "client_msg_id": ""}),
        json!({"user_ids": ["a"], "text": "t", "other": 1}),
    ] {
        api.post("/v1/messages/notice", &body).refused(400, invalid);
    }
    api.post("/v1/messages/notice", &json!({"user_ids": ["a"], "text": "x".repeat(70_000)}))
        .refused(413, code(ErrorCode::ContentTooLarge));
    // 500 recipients is the bound, accepted.
    let five_hundred: Vec<String> = (0..500).map(|i| format!("u{i}")).collect();
    let r = api.post("/v1/messages/notice", &json!({"user_ids": five_hundred, "text": "t"})).ok();
    let results = r["results"].as_array().expect("results");
    assert_eq!(results.len(), 500);
    assert!(results.iter().all(|x| x["ok"] == true));
}
