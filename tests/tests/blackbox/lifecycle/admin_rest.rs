//! The admin REST endpoints of the lifecycle (spec/openapi.yaml, tag
//! `messages`; PROTOCOL.md [RC-1], [DL-3]): recall any message, delete
//! messages for everyone, acting as the system user; bad input and codes.

use missive_protocol::pb::{message_update, push};
use missive_tests::api::Api;
use missive_tests::*;
use serde_json::json;

fn enc(conv: &str) -> String {
    conv.replace(':', "%3A")
}

#[test]
fn admin_recalls_and_deletes_for_everyone() {
    let b = BrokerProc::start();
    let api = Api::new(b.listening.api());
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "phone");
    let mut bob = b.client("bob", "phone");
    let acks = alice.send_many(&conv, "m", 3, 3);
    let r = api
        .post(&format!("/v1/conversations/{}/messages/{}/recall", enc(&conv), acks[0].seq), &json!({}))
        .ok();
    assert_eq!(r["seq"].as_u64(), Some(acks[0].seq));
    assert_eq!(r["recalled_by"].as_str(), Some("system"));
    assert!(r["update_seq"].as_u64().is_some_and(|u| u > 0));
    bob.expect_push("recall by the admin API", WAIT, |e| match e {
        push::Event::MessageUpdate(u) if u.kind == message_update::Kind::Recalled as i32 => Some(()),
        _ => None,
    });
    // Again: 409 / 4202; unknown seq: 404 / 4200; bad ids: 400.
    api.post(&format!("/v1/conversations/{}/messages/{}/recall", enc(&conv), acks[0].seq), &json!({}))
        .refused(409, ErrorCode::MessageRecalled as u32);
    api.post(&format!("/v1/conversations/{}/messages/99/recall", enc(&conv)), &json!({}))
        .refused(404, ErrorCode::MessageNotFound as u32);
    api.post("/v1/conversations/nope/messages/1/recall", &json!({}))
        .refused(400, ErrorCode::InvalidConvId as u32);
    api.post("/v1/conversations/b%3Aall/messages/1/recall", &json!({}))
        .refused(400, ErrorCode::UnsupportedConversation as u32);

    // Delete for everyone in a 1:1 conversation.
    let path = format!("/v1/conversations/{}/messages/delete", enc(&conv));
    api.post(&path, &json!({ "seqs": [acks[1].seq, acks[2].seq] })).ok();
    let all = alice.pull_all(&conv);
    for m in all.iter().filter(|m| m.seq == acks[1].seq || m.seq == acks[2].seq) {
        assert!(m.deleted && m.content.is_none(), "{m:?}");
    }
    api.post(&path, &json!({ "seqs": [] })).refused(400, ErrorCode::InvalidArgument as u32);
    api.post(&path, &json!({ "seqs": [1, 999] })).refused(404, ErrorCode::MessageNotFound as u32);
    let too_many: Vec<u64> = (1..=101).collect();
    api.post(&path, &json!({ "seqs": too_many })).refused(400, ErrorCode::InvalidArgument as u32);
    assert_eq!(api.post(&path, &json!({ "seqs": [1], "extra": 1 })).status, 400);
    // A user's token is not an admin credential.
    let user = Api::with_bearer(b.listening.api(), Some("not-a-token".into()));
    assert_eq!(user.post(&path, &json!({ "seqs": [1] })).status, 401);
}
