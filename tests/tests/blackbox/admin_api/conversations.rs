//! `conversations` endpoints: list a user's conversations, mark read, delete.

use missive_protocol::pb;
use missive_tests::*;
use serde_json::json;

use super::{api, bad, enc, import, items};

#[test]
fn list_mark_read_and_delete_as_the_user() {
    let b = BrokerProc::start();
    let api = api(&b);
    import(&api, &["alice", "bob", "carol"]);
    let mut bob = b.client_on("bob", "phone", Platform::Ios);
    let mut carol = b.client_on("carol", "phone", Platform::Ios);
    let ab = direct("alice", "bob");
    let ac = direct("alice", "carol");
    for i in 0..3 {
        bob.send_ok(&ab, &format!("b{i}"), "hi");
    }
    carol.send_ok(&ac, "c0", "yo");

    // Alice's list: both conversations, unread counts, paged.
    let all = api.get("/v1/users/alice/conversations").ok();
    let convs = items(&all);
    let ids: Vec<_> = convs.iter().map(|c| c["conv_id"].clone()).collect();
    assert!(ids.contains(&json!(ab)) && ids.contains(&json!(ac)), "{all}");
    let c = convs.iter().find(|c| c["conv_id"] == json!(ab)).expect("ab");
    assert_eq!((c["max_seq"].clone(), c["unread"].clone()), (json!(3), json!(3)), "{all}");
    let p1 = api.get("/v1/users/alice/conversations?limit=1").ok();
    assert_eq!(items(&p1).len(), 1);
    let next = p1["next_cursor"].as_str().expect("cursor").to_owned();
    assert!(!next.is_empty());
    let p2 = api.get(&format!("/v1/users/alice/conversations?limit=1&cursor={next}")).ok();
    assert_eq!(items(&p2).len(), 1);
    assert_ne!(items(&p1)[0]["conv_id"], items(&p2)[0]["conv_id"]);
    bad(&api.get("/v1/users/alice/conversations?cursor=%2A"));
    bad(&api.get("/v1/users/alice/conversations?limit=0"));
    assert!(items(&api.get("/v1/users/nobody/conversations").ok()).is_empty());

    // Mark read, as alice: bob gets the read receipt; the list shows it.
    let mut alice = b.client_on("alice", "phone", Platform::Ios);
    api.post(&format!("/v1/users/alice/conversations/{}/read", enc(&ab)), &json!({ "seq": 2 })).ok();
    bob.wait_push("read receipt", WAIT, |e| match e {
        pb::push::Event::ReadReceipt(r) if r.reader == "alice" && r.read_seq == 2 => Some(()),
        _ => None,
    });
    let c = items(&api.get("/v1/users/alice/conversations").ok())
        .into_iter()
        .find(|c| c["conv_id"] == json!(ab))
        .expect("ab");
    assert_eq!((c["read_seq"].clone(), c["unread"].clone()), (json!(2), json!(1)));
    for body in [json!({}), json!({ "seq": -1 }), json!({ "seq": "2" }), json!({ "seq": 1, "x": 0 })] {
        bad(&api.post(&format!("/v1/users/alice/conversations/{}/read", enc(&ab)), &body));
    }
    // Not a participant; not a conversation id.
    let bc = direct("bob", "carol");
    api.post(&format!("/v1/users/alice/conversations/{}/read", enc(&bc)), &json!({ "seq": 1 }))
        .refused(403, ErrorCode::NotParticipant.as_u32());
    bad(&api.post("/v1/users/alice/conversations/nonsense/read", &json!({ "seq": 1 })));
    api.post(&format!("/v1/users/ghost/conversations/{}/read", enc(&ab)), &json!({ "seq": 1 }))
        .refused(404, ErrorCode::UserNotFound.as_u32());

    // Delete: cleared and hidden for alice (pushed to her device), bob keeps his history.
    api.delete(&format!("/v1/users/alice/conversations/{}", enc(&ab))).ok();
    alice.wait_push("hidden conversation", WAIT, |e| match e {
        pb::push::Event::Conversation(c) if c.conv_id == ab && c.hidden => Some(()),
        _ => None,
    });
    let c = items(&api.get("/v1/users/alice/conversations").ok())
        .into_iter()
        .find(|c| c["conv_id"] == json!(ab))
        .expect("ab");
    assert_eq!(
        (c["hidden"].clone(), c["cleared_seq"].clone(), c["unread"].clone()),
        (json!(true), json!(3), json!(0))
    );
    assert_eq!(bob.pull_all(&ab).len(), 3, "the other side keeps its history");
    bad(&api.delete("/v1/users/alice/conversations/x%3Ay"));
}
