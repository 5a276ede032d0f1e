//! `relations` endpoints: friend import and admin add (no verification),
//! delete, list; blacklist add, remove, list, check.

use missive_protocol::pb;
use missive_tests::*;
use serde_json::json;

use super::{api, bad, import, items};

#[test]
fn friend_import_add_list_and_delete() {
    let b = BrokerProc::start();
    let api = api(&b);
    import(&api, &["alice", "bob", "carol", "dave"]);
    let mut alice = b.client_on("alice", "phone", Platform::Ios);

    let got = api
        .post(
            "/v1/friends/import",
            &json!({ "pairs": [
                { "user_a": "alice", "user_b": "bob" },
                { "user_a": "alice", "user_b": "alice" },
                { "user_a": "alice", "user_b": "bad id" },
                { "user_a": "alice", "user_b": "carol" },
            ]}),
        )
        .ok();
    let r = got["results"].as_array().expect("results");
    assert_eq!(
        r.iter().map(|x| x["ok"].clone()).collect::<Vec<_>>(),
        vec![json!(true), json!(false), json!(false), json!(true)]
    );
    assert_eq!(r[1]["code"], json!(ErrorCode::SelfTarget.as_u32()), "{got}");
    assert_eq!(r[2]["code"], json!(3000), "{got}");
    // Visible to the user's own client, pushed and listed.
    alice.wait_push("relation with bob", WAIT, |e| match e {
        pb::push::Event::Relation(r) if r.user_id == "bob" && r.is_friend => Some(()),
        _ => None,
    });
    assert_eq!(alice.friend_ids(), vec!["bob".to_owned(), "carol".to_owned()]);

    // Admin add: both ways at once, whatever the peer's verification setting.
    api.call("PATCH", "/v1/users/dave/profile", Some(&json!({ "friend_verification": "deny_all" }))).ok();
    api.post("/v1/users/alice/friends", &json!({ "user_id": "dave" })).ok();
    let mut dave = b.client_on("dave", "phone", Platform::Ios);
    assert_eq!(dave.friend_ids(), vec!["alice".to_owned()]);
    bad(&api.post("/v1/users/alice/friends", &json!({ "user_id": "alice" })));
    bad(&api.post("/v1/users/alice/friends", &json!({ "user_id": "no way" })));
    bad(&api.post("/v1/users/alice/friends", &json!({})));
    bad(&api.post("/v1/users/alice/friends", &json!({ "user_id": "bob", "x": 1 })));
    bad(&api.post("/v1/friends/import", &json!({ "pairs": [] })));
    let many: Vec<_> = (0..101).map(|i| json!({ "user_a": "alice", "user_b": format!("u{i}") })).collect();
    bad(&api.post("/v1/friends/import", &json!({ "pairs": many })));
    bad(&api.post("/v1/friends/import", &json!({ "pairs": [{ "user_a": "alice" }] })));

    // List, paged with opaque cursors.
    let p1 = api.get("/v1/users/alice/friends?limit=2").ok();
    let ids: Vec<_> = items(&p1).iter().map(|f| f["user_id"].clone()).collect();
    assert_eq!(ids, vec![json!("bob"), json!("carol")]);
    assert_eq!(items(&p1)[0]["peer_has_me"], json!(true));
    let next = p1["next_cursor"].as_str().expect("cursor").to_owned();
    assert!(!next.is_empty());
    let p2 = api.get(&format!("/v1/users/alice/friends?limit=2&cursor={next}")).ok();
    assert_eq!(items(&p2).iter().map(|f| f["user_id"].clone()).collect::<Vec<_>>(), vec![json!("dave")]);
    assert_eq!(p2["next_cursor"], "");
    bad(&api.get("/v1/users/alice/friends?limit=0"));
    bad(&api.get("/v1/users/alice/friends?limit=1001"));
    bad(&api.get("/v1/users/alice/friends?limit=x"));
    bad(&api.get("/v1/users/alice/friends?cursor=!!"));
    bad(&api.get("/v1/users/alice/friends?what=1"));

    // Delete: both sides by default; one side with both_sides=false.
    api.delete("/v1/users/alice/friends/bob").ok();
    let mut bob = b.client_on("bob", "phone", Platform::Ios);
    assert!(bob.friend_ids().is_empty());
    api.delete("/v1/users/alice/friends/carol?both_sides=false").ok();
    let mut carol = b.client_on("carol", "phone", Platform::Ios);
    assert_eq!(carol.friend_ids(), vec!["alice".to_owned()], "one side only");
    assert_eq!(alice.friend_ids(), vec!["dave".to_owned()]);
    api.delete("/v1/users/alice/friends/bob").refused(409, ErrorCode::NotFriends.as_u32());
    bad(&api.delete("/v1/users/alice/friends/bad%20id"));
    bad(&api.delete("/v1/users/alice/friends/dave?both_sides=maybe"));
    api.delete("/v1/users/ghost/friends/bob").refused(404, ErrorCode::UserNotFound.as_u32());
}

#[test]
fn blacklist_add_check_list_and_remove() {
    let b = BrokerProc::start();
    let api = api(&b);
    import(&api, &["alice", "bob", "carol", "check"]);
    let mut bob = b.client_on("bob", "phone", Platform::Ios);
    api.post("/v1/users/alice/blacklist", &json!({ "user_id": "bob" })).ok();
    api.post("/v1/users/alice/blacklist", &json!({ "user_id": "check" })).ok();
    // The block is enforced for bob's sends.
    let err = bob.send_text(&direct("alice", "bob"), "m1", "hi").expect_err("blocked");
    assert_eq!(err.code, ErrorCode::BlockedByUser.as_u32(), "{err:?}");

    let got = api.post("/v1/users/alice/blacklist/check", &json!({ "user_ids": ["bob", "carol"] })).ok();
    let r = got["results"].as_array().expect("results");
    assert_eq!((r[0]["user_id"].clone(), r[0]["blocked"].clone()), (json!("bob"), json!(true)));
    assert!(r[0]["blocked_since_ms"].as_u64().is_some_and(|t| t > 0));
    assert_eq!((r[1]["user_id"].clone(), r[1]["blocked"].clone()), (json!("carol"), json!(false)));
    bad(&api.post("/v1/users/alice/blacklist/check", &json!({ "user_ids": [] })));
    bad(&api.post("/v1/users/alice/blacklist/check", &json!({ "user_ids": ["bad id"] })));

    let p = api.get("/v1/users/alice/blacklist?limit=1").ok();
    assert_eq!(items(&p)[0]["user_id"], "bob");
    let next = p["next_cursor"].as_str().expect("cursor").to_owned();
    let p = api.get(&format!("/v1/users/alice/blacklist?cursor={next}")).ok();
    assert_eq!(items(&p).iter().map(|x| x["user_id"].clone()).collect::<Vec<_>>(), vec![json!("check")]);

    // Remove, including the peer whose id is the `check` route's name.
    api.delete("/v1/users/alice/blacklist/bob").ok();
    api.delete("/v1/users/alice/blacklist/check").ok();
    assert!(items(&api.get("/v1/users/alice/blacklist").ok()).is_empty());
    bob.send_ok(&direct("alice", "bob"), "m2", "hi again");

    bad(&api.post("/v1/users/alice/blacklist", &json!({ "user_id": "alice" })));
    bad(&api.post("/v1/users/alice/blacklist", &json!({ "user_id": "" })));
    bad(&api.post("/v1/users/alice/blacklist", &json!({ "peer": "bob" })));
    bad(&api.delete("/v1/users/alice/blacklist/bad%20id"));
    api.post("/v1/users/ghost/blacklist", &json!({ "user_id": "bob" }))
        .refused(404, ErrorCode::UserNotFound.as_u32());
}
