//! `POST /v1/messages/import` (historical messages with their original
//! senders and times, spec [AM-1]) and `GET /v1/conversations/{id}/messages`
//! (NDJSON export).

use missive_protocol::pb;
use missive_tests::ErrorCode;
use missive_tests::RawClient;
use serde_json::{Value, json};

use super::{broker, code, direct, text};

/// 2020-01-01T00:00:00Z and a minute apart.
const T0: u64 = 1_577_836_800_000;

fn item(from: &str, i: u64, body: &str) -> Value {
    json!({"from": from, "time_ms": T0 + i * 60_000, "content": text(body), "client_msg_id": format!("old-{i}")})
}

/// The acceptance test: "Import keeps original times and senders".
#[test]
fn import_keeps_original_times_and_senders() {
    let (b, api) = broker();
    let conv = direct("alice", "bob");
    let items = vec![item("alice", 0, "first"), item("bob", 1, "second"), item("alice", 2, "third")];
    let r = api.post("/v1/messages/import", &json!({"conv_id": conv, "messages": items})).ok();
    let results = r["results"].as_array().expect("results");
    for (i, x) in results.iter().enumerate() {
        assert_eq!(x["index"], i);
        assert_eq!(x["ok"], true, "{x}");
        assert_eq!(x["ack"]["seq"], i + 1);
        assert_eq!(x["ack"]["server_time_ms"], T0 + i as u64 * 60_000);
        assert_eq!(x["ack"]["duplicate"], false);
    }
    let want = [("alice", "first"), ("bob", "second"), ("alice", "third")];
    // Over a socket: pull and history.
    let mut bob = RawClient::login(b.listening.tcp, "bob", "phone");
    let pulled = bob.pull_all(&conv);
    let hist = bob.history(&conv, 0, 100).expect("history").messages;
    for msgs in [&pulled, &hist] {
        assert_eq!(msgs.len(), 3);
        for (i, m) in msgs.iter().enumerate() {
            assert_eq!(m.seq, i as u64 + 1);
            assert_eq!(m.sender, want[i].0);
            assert_eq!(m.server_time_ms, T0 + i as u64 * 60_000);
            assert!(matches!(&m.content.as_ref().and_then(|c| c.body.clone()),
                Some(pb::content::Body::Text(t)) if t.text == want[i].1));
        }
    }
    // Over REST: the NDJSON export.
    let e = api.get_text(&format!("/v1/conversations/{conv}/messages"));
    assert_eq!(e.status, 200);
    assert_eq!(e.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(e.header("missive-next-after-seq"), Some("3"));
    assert_eq!(e.header("missive-more"), Some("false"));
    let lines = e.ndjson();
    assert_eq!(lines.len(), 3);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["conv_id"], conv);
        assert_eq!(l["seq"], i + 1);
        assert_eq!(l["sender"], want[i].0);
        assert_eq!(l["server_time_ms"], T0 + i as u64 * 60_000);
        assert_eq!(l["content"], text(want[i].1));
        assert_eq!(l["client_msg_id"], format!("old-{i}"));
    }
    // Idempotent: the same import again stores nothing new.
    let items = vec![item("alice", 0, "first"), item("bob", 1, "second"), item("alice", 2, "third")];
    let again = api.post("/v1/messages/import", &json!({"conv_id": conv, "messages": items})).ok();
    for (i, x) in again["results"].as_array().expect("results").iter().enumerate() {
        assert_eq!(
            (x["ack"]["seq"].as_u64(), x["ack"]["duplicate"].as_bool()),
            (Some(i as u64 + 1), Some(true))
        );
        assert_eq!(x["ack"]["server_time_ms"], T0 + i as u64 * 60_000);
    }
    assert_eq!(bob.pull_all(&conv).len(), 3);
    // New messages continue the log after the imported ones.
    let ack =
        api.post("/v1/messages", &json!({"from": "bob", "to_user_id": "alice", "content": text("now")})).ok();
    assert_eq!(ack["seq"], 4);
    assert!(ack["server_time_ms"].as_u64().is_some_and(|t| t > T0 + 86_400_000));
}

#[test]
fn import_into_a_group_needs_members() {
    let (b, api) = broker();
    let mut alice = RawClient::login(b.listening.tcp, "alice", "phone");
    let _bob = RawClient::login(b.listening.tcp, "bob", "phone");
    alice.create_group("team", pb::GroupType::Work, &["bob"], None).expect("create");
    let r = api
        .post(
            "/v1/messages/import",
            &json!({"conv_id": "g:team", "messages": [item("bob", 0, "a"), item("carol", 1, "b")]}),
        )
        .ok();
    assert_eq!(r["results"][0]["ok"], true);
    assert_eq!(r["results"][1]["ok"], false);
    assert_eq!(r["results"][1]["code"], code(ErrorCode::NotParticipant));
    let seq = r["results"][0]["ack"]["seq"].as_u64().expect("seq");
    let m = alice.pull("g:team", seq, seq, 1).expect("pull").messages;
    assert_eq!((m[0].sender.as_str(), m[0].server_time_ms), ("bob", T0));
}

#[test]
fn import_refuses_bad_input() {
    let (_b, api) = broker();
    let conv = direct("alice", "bob");
    let invalid = code(ErrorCode::InvalidArgument);
    let with_item = |k: &str, v: Value| {
        let mut it = item("alice", 0, "x");
        if v.is_null() {
            it.as_object_mut().expect("object").remove(k);
        } else {
            it[k] = v;
        }
        json!({"conv_id": conv, "messages": [it]})
    };
    let too_many: Vec<Value> = (0..101).map(|i| item("alice", i, "x")).collect();
    let cases: Vec<(Value, u16, u32)> = vec![
        (json!({"messages": [item("alice", 0, "x")]}), 400, invalid),
        (
            json!({"conv_id": "p:b:a", "messages": [item("alice", 0, "x")]}),
            400,
            code(ErrorCode::InvalidConvId),
        ),
        (
            json!({"conv_id": "b:all", "messages": [item("alice", 0, "x")]}),
            400,
            code(ErrorCode::UnsupportedConversation),
        ),
        (
            json!({"conv_id": "r:room", "messages": [item("alice", 0, "x")]}),
            400,
            code(ErrorCode::UnsupportedConversation),
        ),
        (json!({"conv_id": conv, "messages": []}), 400, invalid),
        (json!({"conv_id": conv, "messages": too_many}), 400, invalid),
        (json!({"conv_id": conv}), 400, invalid),
        (with_item("from", json!("carol")), 403, code(ErrorCode::NotParticipant)),
        (with_item("from", json!("a b")), 400, invalid),
        (with_item("from", Value::Null), 400, invalid),
        (with_item("time_ms", json!(0)), 400, invalid),
        (with_item("time_ms", json!(u64::MAX)), 400, invalid),
        (with_item("time_ms", json!(-1)), 400, invalid),
        (with_item("time_ms", Value::Null), 400, invalid),
        (with_item("client_msg_id", Value::Null), 400, invalid),
        (with_item("client_msg_id", json!("")), 400, invalid),
        (with_item("content", json!({})), 400, invalid),
        (with_item("content", Value::Null), 400, invalid),
        (with_item("content", text(&"x".repeat(70_000))), 413, code(ErrorCode::ContentTooLarge)),
        (with_item("extra", json!(1)), 400, invalid),
    ];
    for (body, status, c) in cases {
        let r = api.post("/v1/messages/import", &body);
        assert_eq!((r.status, r.body["code"].as_u64()), (status, Some(u64::from(c))), "{body}: {}", r.body);
    }
    // Nothing was stored.
    assert_eq!(api.get_text(&format!("/v1/conversations/{conv}/messages")).text, "");
}

#[test]
fn export_pages_and_refuses_bad_input() {
    let (_b, api) = broker();
    let conv = direct("alice", "bob");
    let items: Vec<Value> = (0..5).map(|i| item(if i % 2 == 0 { "alice" } else { "bob" }, i, "m")).collect();
    api.post("/v1/messages/import", &json!({"conv_id": conv, "messages": items})).ok();
    let mut seqs = Vec::new();
    let mut after = 0;
    loop {
        let p = api.get_text(&format!("/v1/conversations/{conv}/messages?after_seq={after}&limit=2"));
        assert_eq!(p.status, 200);
        seqs.extend(p.ndjson().iter().map(|l| l["seq"].as_u64().expect("seq")));
        after = p.header("missive-next-after-seq").expect("next").parse().expect("number");
        if p.header("missive-more") == Some("false") {
            break;
        }
        assert!(seqs.len() <= 5, "paging does not end");
    }
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    // An unknown conversation is an empty export.
    let e = api.get_text("/v1/conversations/p:x:y/messages?after_seq=7");
    assert_eq!((e.status, e.text.as_str(), e.header("missive-next-after-seq")), (200, "", Some("7")));
    let invalid = code(ErrorCode::InvalidArgument);
    for (path, c) in [
        ("/v1/conversations/nope/messages".to_owned(), code(ErrorCode::InvalidConvId)),
        ("/v1/conversations/p:b:a/messages".to_owned(), code(ErrorCode::InvalidConvId)),
        (format!("/v1/conversations/{conv}/messages?limit=0"), invalid),
        (format!("/v1/conversations/{conv}/messages?limit=1001"), invalid),
        (format!("/v1/conversations/{conv}/messages?after_seq=-1"), invalid),
        (format!("/v1/conversations/{conv}/messages?after_seq=x"), invalid),
        (format!("/v1/conversations/{conv}/messages?other=1"), invalid),
    ] {
        api.get(&path).refused(400, c);
    }
}
