//! Sensitive-word lists (spec [SW-1]..[SW-7]): block, replace and flag over
//! TCP, WebSocket and REST; a change applies at once and survives a restart;
//! bad input and auth of the endpoints.

use std::time::{Duration, Instant};

use missive_protocol::pb::{self, push};
use missive_tests::api::Api;
use missive_tests::ws::WsClient;
use missive_tests::*;
use serde_json::json;

const LISTS: &str = "/v1/moderation/word-lists";

/// Three lists: `bad` blocks "badword", `mask` masks "坏词" and "ugly" with
/// "#", `watch` flags "watchme".
fn install_lists(api: &Api) {
    api.put(&format!("{LISTS}/bad"), &json!({"action": "block", "words": ["BadWord"]})).ok();
    api.put(&format!("{LISTS}/mask"), &json!({"action": "replace", "mask": "#", "words": ["坏词", "ugly"]}))
        .ok();
    api.put(&format!("{LISTS}/watch"), &json!({"action": "flag", "words": ["watchme"]})).ok();
}

fn text_push(c: &mut RawClient, conv: &str) -> pb::Message {
    loop {
        match c.next_push(WAIT) {
            Some(push::Event::Message(m)) if m.conv_id == conv => return m,
            Some(_) => {}
            None => panic!("no message push in {conv} within {WAIT:?}"),
        }
    }
}

#[test]
fn block_replace_flag_over_tcp() {
    let b = BrokerProc::start();
    let api = Api::new(b.listening.api());
    install_lists(&api);
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "phone");
    let mut bob = b.client("bob", "phone");

    // Block: refused, the message names the list and not the word; nothing stored.
    let e = assert_error(
        alice.send_text(&conv, "m1", "say ＢＡＤＷＯＲＤ now"),
        ErrorCode::ContentBlocked,
        "block",
    );
    assert!(e.message.contains("bad") && !e.message.to_lowercase().contains("badword"), "{}", e.message);
    // Replace: stored and delivered masked, char by char (Chinese without spaces).
    let ack = alice.send_ok(&conv, "m2", "说坏词了, UGLY!");
    assert_eq!(ack.seq, 1, "the blocked send took no seq");
    let m = text_push(&mut bob, &conv);
    assert_eq!(text_of(&m), "说##了, ####!");
    // Flag: delivered unchanged.
    alice.send_ok(&conv, "m3", "please watchme");
    assert_eq!(text_of(&text_push(&mut bob, &conv)), "please watchme");
    let stored: Vec<String> = bob.pull_all(&conv).iter().map(|m| text_of(m).to_owned()).collect();
    assert_eq!(stored, ["说##了, ####!", "please watchme"]);

    // Other user-set texts: profile, presence status, friend request, group info and nickname.
    let p = must(
        alice.set_profile(pb::ProfilePatch {
            nickname: Some("ugly alice".into()),
            signature: Some("fine".into()),
            ..Default::default()
        }),
        "profile",
    );
    assert_eq!(p.nickname, "#### alice");
    assert_error(
        alice.set_profile(pb::ProfilePatch { signature: Some("badword sig".into()), ..Default::default() }),
        ErrorCode::ContentBlocked,
        "signature",
    );
    must(alice.set_presence_status("ugly day"), "status");
    let pres = must(bob.get_presence(&["alice"]), "presence");
    assert_eq!(presence_of(&pres, "alice").status_text, "#### day");
    assert_error(alice.add_friend_msg("carol", "badword hello"), ErrorCode::ContentBlocked, "friend message");
    let patch = |name: &str| pb::GroupPatch { name: Some(name.into()), ..Default::default() };
    assert_error(
        alice.create_group("g1", pb::GroupType::Work, &["bob"], Some(patch("badword club"))),
        ErrorCode::ContentBlocked,
        "group name",
    );
    let g = must(alice.create_group("g1", pb::GroupType::Work, &["bob"], Some(patch("ugly club"))), "group");
    assert_eq!(g.name, "#### club");
    assert_error(
        alice.call(pb::UpdateGroup {
            group_id: "g1".into(),
            patch: Some(pb::GroupPatch { notice: Some("badword".into()), ..Default::default() }),
        }),
        ErrorCode::ContentBlocked,
        "group notice",
    );
    assert_error(
        bob.call(pb::SetGroupNickname {
            group_id: "g1".into(),
            user_id: String::new(),
            nickname: "badword".into(),
        }),
        ErrorCode::ContentBlocked,
        "group nickname",
    );
    // Group messages too.
    let gconv = gconv("g1");
    assert_error(alice.send_text(&gconv, "g-1", "badword"), ErrorCode::ContentBlocked, "group send");
    alice.send_ok(&gconv, "g-2", "ugly");
    let last = bob.pull_all(&gconv).into_iter().last().expect("group message");
    assert_eq!(text_of(&last), "####");
}

#[test]
fn block_and_replace_over_websocket() {
    let b = BrokerProc::start();
    let api = Api::new(b.listening.api());
    install_lists(&api);
    let conv = direct("wsa", "wsb");
    let mut ws = WsClient::login(b.listening.ws(), "wsa", "browser");
    let req = pb::SendMessage {
        conv_id: conv.clone(),
        client_msg_id: "w1".into(),
        content: Some(text("x badword")),
        flags: None,
        first_attempt: false,
    };
    let e = outcome(ws.request(req)).expect_err("blocked over ws");
    assert_eq!(e.code, ErrorCode::ContentBlocked.as_u32());
    ws.send_ok(&conv, "w2", "ugly 坏词");
    let mut reader = b.client("wsb", "phone");
    let stored: Vec<String> = reader.pull_all(&conv).iter().map(|m| text_of(m).to_owned()).collect();
    assert_eq!(stored, ["#### ##"]);
}

/// The REST surface: list endpoints, the check endpoint, and a REST call
/// routed like a client's (mutes apply to sends made for a user).
#[test]
fn rest_lists_and_check() {
    let b = BrokerProc::start();
    let api = Api::new(b.listening.api());
    install_lists(&api);
    let all = api.get(LISTS).ok();
    let names: Vec<&str> =
        all["items"].as_array().expect("items").iter().filter_map(|l| l["name"].as_str()).collect();
    assert_eq!(names, ["bad", "mask", "watch"]);
    assert_eq!(all["items"][1]["word_count"], 2);
    let one = api.get(&format!("{LISTS}/mask")).ok();
    assert_eq!(one, json!({"name": "mask", "action": "replace", "mask": "#", "words": ["坏词", "ugly"]}));
    let v = api.post("/v1/moderation/check", &json!({"text": "Ｕｇｌｙ watchme"})).ok();
    assert_eq!(v, json!({"blocked": null, "replaced": "#### watchme", "flagged": ["watch"]}));
    let v = api.post("/v1/moderation/check", &json!({"text": "BADWORD ugly"})).ok();
    assert_eq!(v["blocked"], json!({"list": "bad", "word": "BadWord"}));
    let v = api.post("/v1/moderation/check", &json!({"text": "clean"})).ok();
    assert_eq!(v, json!({"blocked": null, "replaced": null, "flagged": []}));
    // Edit: add and remove words; the default mask is "*".
    api.put(&format!("{LISTS}/extra"), &json!({"action": "replace", "words": ["aa", "aa", "bb"]})).ok();
    let l = api.post(&format!("{LISTS}/extra/words"), &json!({"add": ["cc"], "remove": ["aa"]})).ok();
    assert_eq!(l, json!({"name": "extra", "action": "replace", "mask": "*", "words": ["bb", "cc"]}));
    assert_eq!(api.delete(&format!("{LISTS}/extra")).status, 204);
    api.get(&format!("{LISTS}/extra")).refused(404, ErrorCode::InvalidArgument.as_u32());
    api.delete(&format!("{LISTS}/extra")).refused(404, ErrorCode::InvalidArgument.as_u32());
    api.post(&format!("{LISTS}/extra/words"), &json!({"add": ["x"]}))
        .refused(404, ErrorCode::InvalidArgument.as_u32());
}

/// [SW-6]: a change applies to the next request (bounded wait ≤ 1 s) and
/// survives a restart; a deletion too.
#[test]
fn changes_apply_at_once_and_survive_restart() {
    let mut b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "phone");
    alice.send_ok(&conv, "c1", "fresh news");
    Api::new(b.listening.api())
        .put(&format!("{LISTS}/late"), &json!({"action": "block", "words": ["fresh"]}))
        .ok();
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut n = 0;
    loop {
        n += 1;
        match alice.send_text(&conv, &format!("c2-{n}"), "fresh again") {
            Err(e) if e.code == ErrorCode::ContentBlocked.as_u32() => break,
            other => assert!(Instant::now() < deadline, "not blocked within 1 s: {other:?}"),
        }
    }
    b.restart();
    let api = Api::new(b.listening.api());
    let mut alice = b.client("alice", "phone");
    assert_error(alice.send_text(&conv, "c3", "FRESH"), ErrorCode::ContentBlocked, "after restart");
    assert_eq!(api.get(&format!("{LISTS}/late")).ok()["words"], json!(["fresh"]));
    api.post(&format!("{LISTS}/late/words"), &json!({"remove": ["fresh"], "add": ["stale"]})).ok();
    alice.send_ok(&conv, "c4", "fresh");
    assert_error(alice.send_text(&conv, "c5", "stale"), ErrorCode::ContentBlocked, "added word");
    assert_eq!(api.delete(&format!("{LISTS}/late")).status, 204);
    alice.send_ok(&conv, "c6", "stale");
    b.restart();
    let mut alice = b.client("alice", "phone");
    alice.send_ok(&conv, "c7", "stale fresh");
    assert_eq!(Api::new(b.listening.api()).get(LISTS).ok()["items"], json!([]));
}

#[test]
fn bad_input_bounds_and_auth() {
    let b = BrokerOpts::default()
        .config("[filter]\nmax_words_per_list = 3\nmax_lists = 2\nmax_word_bytes = 8\n")
        .spawn();
    let api = Api::new(b.listening.api());
    let bad = ErrorCode::InvalidArgument.as_u32();
    let ok_body = json!({"action": "block", "words": ["a"]});
    for name in ["bad$name", "a%20b", &"x".repeat(65)] {
        api.put(&format!("{LISTS}/{name}"), &ok_body).refused(400, bad);
        api.get(&format!("{LISTS}/{name}")).refused(400, bad);
    }
    for body in [
        json!({"action": "ban", "words": ["a"]}),
        json!({"action": "block"}),
        json!({"action": "block", "words": ["a", "b", "c", "d"]}),
        json!({"action": "block", "words": ["123456789"]}),
        json!({"action": "block", "words": [""]}),
        json!({"action": "block", "words": ["   "]}),
        json!({"action": "block", "words": ["a\u{1}"]}),
        json!({"action": "replace", "mask": "", "words": ["a"]}),
        json!({"action": "replace", "mask": "x".repeat(17), "words": ["a"]}),
        json!({"action": "block", "words": ["a"], "extra": 1}),
        json!("not an object"),
    ] {
        api.put(&format!("{LISTS}/l1"), &body).refused(400, bad);
    }
    api.put(&format!("{LISTS}/l1"), &json!({"action": "block", "words": ["a", "b", "c"]})).ok();
    api.post(&format!("{LISTS}/l1/words"), &json!({"add": ["d"]})).refused(422, bad);
    api.post(&format!("{LISTS}/l1/words"), &json!({})).refused(400, bad);
    api.put(&format!("{LISTS}/l2"), &ok_body).ok();
    api.put(&format!("{LISTS}/l3"), &ok_body).refused(422, bad);
    // Replacing an existing list is not a new list.
    api.put(&format!("{LISTS}/l2"), &json!({"action": "flag", "words": ["z"]})).ok();
    api.post("/v1/moderation/check", &json!({"txt": "a"})).refused(400, bad);
    // Auth: no token, a user token.
    let anon = Api::with_bearer(b.listening.api(), None);
    anon.get(LISTS).refused(401, ErrorCode::TokenInvalid.as_u32());
    anon.put(&format!("{LISTS}/l9"), &ok_body).refused(401, ErrorCode::TokenInvalid.as_u32());
    anon.post("/v1/moderation/check", &json!({"text": "a"})).refused(401, ErrorCode::TokenInvalid.as_u32());
    anon.post("/v1/moderation/mutes", &json!({"user_id": "u", "duration_secs": 5}))
        .refused(401, ErrorCode::TokenInvalid.as_u32());
    let user = Api::with_bearer(b.listening.api(), Some(mint("alice")));
    user.get(LISTS).refused(403, ErrorCode::PermissionDenied.as_u32());
    assert_eq!(api.get(LISTS).ok()["items"].as_array().map(Vec::len), Some(2));
}

/// The filter on REST sends ([SW-3]: every transport and REST): blocked is
/// 422 CONTENT_BLOCKED with nothing stored, replaced is stored masked, and a
/// flagged message is delivered and reported as a `message.flagged` webhook
/// event ([SW-6]) naming the list.
#[test]
fn rest_sends_are_screened_and_flags_become_events() {
    use missive_tests::hook_receiver::{HookAnswer, HookReceiver};
    let b = BrokerProc::start();
    let api = Api::new(b.listening.api());
    install_lists(&api);
    let rx = HookReceiver::start();
    rx.respond(|_| HookAnswer::ok(json!({})));
    api.post(
        "/v1/webhooks",
        &json!({"id": "review", "url": rx.url(), "secret": "review-secret-0123456789",
                "events": ["message.flagged"], "enabled": true}),
    )
    .ok();
    let conv = direct("alice", "bob");
    let send = |id: &str, text: &str| {
        api.post(
            "/v1/messages",
            &json!({"from": "alice", "to_user_id": "bob", "client_msg_id": id, "content": {"text": {"text": text}}}),
        )
    };
    send("r1", "a BADWORD here").refused(422, ErrorCode::ContentBlocked as u32);
    let ack = send("r2", "ugly words").ok();
    assert_eq!(ack["seq"], 1, "the blocked send took no seq: {ack}");
    send("r3", "watchme please").ok();
    let mut bob = b.client("bob", "phone");
    let stored: Vec<String> = bob.pull_all(&conv).iter().map(|m| text_of(m).to_owned()).collect();
    assert_eq!(stored, ["#### words", "watchme please"]);
    let events = rx.wait_until(WAIT, |r| r.iter().any(|e| e.kind() == "message.flagged"));
    let flagged: Vec<_> = events.iter().filter(|e| e.kind() == "message.flagged").collect();
    assert_eq!(flagged.len(), 1, "only the flagged message is reported: {flagged:?}");
    let data = &flagged[0].body["data"];
    assert_eq!(data["conv_id"], conv.as_str());
    assert_eq!(data["seq"], 2);
    assert_eq!(data["lists"], json!(["watch"]));
    assert!(flagged[0].signature_ok("review-secret-0123456789"));

    // Texts the API itself sets are screened too: group name and notice.
    api.post("/v1/users/import", &json!({"users": [{"user_id": "alice"}]})).ok();
    api.post("/v1/groups", &json!({"group_id": "g1", "owner_id": "alice", "info": {"name": "badword club"}}))
        .refused(422, ErrorCode::ContentBlocked as u32);
    let g = api
        .post("/v1/groups", &json!({"group_id": "g1", "owner_id": "alice", "info": {"name": "ugly club"}}))
        .ok();
    assert_eq!(g["name"], "#### club", "{g}");
    api.call("PATCH", "/v1/groups/g1", Some(&json!({"notice": "BadWord"})))
        .refused(422, ErrorCode::ContentBlocked as u32);
}
