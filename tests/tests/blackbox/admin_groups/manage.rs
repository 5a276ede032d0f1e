//! Auth on every group endpoint; create, info (batch), update and dismiss,
//! with bad input of every field ([GR-30], spec/openapi.yaml tag `groups`).

use missive_protocol::pb;
use missive_tests::api::Api;
use missive_tests::*;
use serde_json::{Value, json};

use super::{SYSTEM, code, create, expect_tip, import, members_seen_by, role_in, start, tip};

/// Every group endpoint: (method, path, body).
fn endpoints() -> Vec<(&'static str, &'static str, Option<Value>)> {
    vec![
        ("POST", "/v1/groups", Some(json!({ "owner_id": "o" }))),
        ("GET", "/v1/groups", None),
        ("POST", "/v1/groups/query", Some(json!({ "group_ids": ["g"] }))),
        ("PATCH", "/v1/groups/g", Some(json!({ "name": "x" }))),
        ("DELETE", "/v1/groups/g", None),
        ("POST", "/v1/groups/g/members", Some(json!({ "user_ids": ["u"] }))),
        ("GET", "/v1/groups/g/members", None),
        ("POST", "/v1/groups/g/members/remove", Some(json!({ "user_ids": ["u"] }))),
        ("PUT", "/v1/groups/g/members/u/role", Some(json!({ "role": "admin" }))),
        ("POST", "/v1/groups/g/members/u/mute", Some(json!({ "duration_secs": 60 }))),
        ("POST", "/v1/groups/g/mute", Some(json!({ "mute_all": true }))),
        ("POST", "/v1/groups/g/transfer", Some(json!({ "new_owner_id": "u" }))),
        ("GET", "/v1/users/u/groups", None),
    ]
}

#[test]
fn every_group_endpoint_needs_an_admin_credential() {
    let (b, _) = start();
    let anonymous = Api::with_bearer(b.listening.api(), None);
    let user = Api::with_bearer(b.listening.api(), Some(mint("o")));
    let garbage = Api::with_bearer(b.listening.api(), Some("not-a-token".into()));
    for (method, path, body) in endpoints() {
        let what = format!("{method} {path}");
        let a = anonymous.call(method, path, body.as_ref());
        assert_eq!(a.status, 401, "{what} without a token: {}", a.body);
        a.refused(401, code(ErrorCode::TokenInvalid));
        let a = garbage.call(method, path, body.as_ref());
        assert_eq!(a.status, 401, "{what} with a bad token: {}", a.body);
        user.call(method, path, body.as_ref()).refused(403, code(ErrorCode::PermissionDenied));
    }
}

#[test]
fn create_with_owner_and_members_reaches_the_members_without_consent() {
    let (b, api) = start();
    let mut o = b.client("o", "d");
    let mut m1 = b.client("m1", "d");
    import(&b, &["m2", "m3"]);
    // m3 blacklisted the owner: a client's CreateGroup would refuse them
    // ([GR-29]), the admin adds them anyway ([GR-30]).
    let mut m3 = b.client("m3", "d");
    must(m3.call(pb::AddToBlacklist { user_id: "o".into() }), "m3 blocks o");
    let g = create(
        &api,
        "team",
        "o",
        &["m1", "m2", "m3", "o", "m1"],
        json!({
            "type": "public",
            "max_members": 50,
            "info": { "name": "Team", "notice": "hello", "ex": { "k": "v" }, "invitee_consent": true },
        }),
    );
    assert_eq!(g["group_id"], "team");
    assert_eq!(g["owner_id"], "o");
    assert_eq!(g["type"], "public");
    assert_eq!(g["join_mode"], "approval", "a PUBLIC group's default");
    assert_eq!(g["invite_mode"], "admins");
    assert_eq!(g["edit_mode"], "admins");
    assert_eq!(g["history_visibility"], "from_join");
    assert_eq!(g["invitee_consent"], true);
    assert_eq!(g["name"], "Team");
    assert_eq!(g["notice"], "hello");
    assert_eq!(g["ex"]["k"], "v");
    assert_eq!(g["member_count"], 4, "duplicates and the owner count once");
    assert_eq!(g["max_members"], 50);
    assert_eq!(g["mute_all"], false);
    assert_eq!(g["dismissed"], false);
    assert!(g["created_ms"].as_u64().is_some_and(|t| t > 0));
    // Members see the created tip, sent by the owner.
    let t = expect_tip(&mut m1, "team", "group.created");
    assert_eq!(t.sender, "o");
    assert_eq!(tip(&t).map(|(_, p)| p["owner"].as_str()), Some("o"));
    expect_tip(&mut m3, "team", "group.created");
    let list = must(members_seen_by(&mut o, "team"), "owner lists members");
    assert_eq!(list.len(), 4);
    assert_eq!(role_in(&list, "o"), Some(pb::GroupRole::Owner));
    assert_eq!(role_in(&list, "m3"), Some(pb::GroupRole::Member));
    // Defaults: a server-chosen id, a WORK group.
    let g2 = api.post("/v1/groups", &json!({ "owner_id": "m1" })).ok();
    let id = g2["group_id"].as_str().expect("id").to_owned();
    assert!(!id.is_empty());
    assert_eq!((g2["type"].as_str(), g2["join_mode"].as_str()), (Some("work"), Some("invite_only")));
    assert_eq!(g2["member_count"], 1);
    // Refusals: an existing id, unregistered users (and nothing is created).
    api.post("/v1/groups", &json!({ "group_id": "team", "owner_id": "o" }))
        .refused(409, code(ErrorCode::GroupExists));
    api.post("/v1/groups", &json!({ "group_id": "ghost-team", "owner_id": "nobody" }))
        .refused(404, code(ErrorCode::UserNotFound));
    api.post(
        "/v1/groups",
        &json!({ "group_id": "ghost-team", "owner_id": "o", "member_ids": ["m1", "nobody"] }),
    )
    .refused(404, code(ErrorCode::UserNotFound));
    let q = api.post("/v1/groups/query", &json!({ "group_ids": ["ghost-team"] })).ok();
    assert_eq!(q["groups"].as_array().map(Vec::len), Some(0), "nothing created: {q}");
    // Group full: 3 members into max_members 2.
    api.post("/v1/groups", &json!({ "owner_id": "o", "member_ids": ["m1", "m2"], "max_members": 2 }))
        .refused(422, code(ErrorCode::GroupFull));
}

#[test]
fn create_refuses_bad_input_in_every_field() {
    let (b, api) = start();
    import(&b, &["o", "m"]);
    let long = "x".repeat(65);
    let many: Vec<String> = (0..501).map(|i| format!("u{i}")).collect();
    let bad = [
        json!({}),
        json!({ "owner_id": "" }),
        json!({ "owner_id": "bad id" }),
        json!({ "owner_id": 7 }),
        json!({ "owner_id": "o", "group_id": "bad/id" }),
        json!({ "owner_id": "o", "group_id": long }),
        json!({ "owner_id": "o", "type": "meeting" }),
        json!({ "owner_id": "o", "type": 1 }),
        json!({ "owner_id": "o", "member_ids": many }),
        json!({ "owner_id": "o", "member_ids": ["m", "not valid"] }),
        json!({ "owner_id": "o", "member_ids": "m" }),
        json!({ "owner_id": "o", "max_members": 1 }),
        json!({ "owner_id": "o", "max_members": 0 }),
        json!({ "owner_id": "o", "max_members": 10_000_000 }),
        json!({ "owner_id": "o", "max_members": -1 }),
        json!({ "owner_id": "o", "info": { "name": long } }),
        json!({ "owner_id": "o", "info": { "name": "a\u{0007}b" } }),
        json!({ "owner_id": "o", "info": { "avatar_url": "u".repeat(1025) } }),
        json!({ "owner_id": "o", "info": { "introduction": "i".repeat(1025) } }),
        json!({ "owner_id": "o", "info": { "notice": "n".repeat(1025) } }),
        json!({ "owner_id": "o", "info": { "ex": { "": "v" } } }),
        json!({ "owner_id": "o", "info": { "ex": { "k": "v".repeat(4097) } } }),
        json!({ "owner_id": "o", "info": { "join_mode": "sometimes" } }),
        json!({ "owner_id": "o", "info": { "invite_mode": "everyone" } }),
        json!({ "owner_id": "o", "info": { "edit_mode": "owner" } }),
        json!({ "owner_id": "o", "info": { "history_visibility": "never" } }),
        json!({ "owner_id": "o", "info": { "invitee_consent": "yes" } }),
        json!({ "owner_id": "o", "info": { "colour": "red" } }),
        json!({ "owner_id": "o", "unknown": 1 }),
        json!([]),
    ];
    for body in bad {
        api.post("/v1/groups", &body).refused(400, code(ErrorCode::InvalidArgument));
    }
    let all = api.get("/v1/groups").ok();
    assert_eq!(all["items"].as_array().map(Vec::len), Some(0), "nothing created: {all}");
}

#[test]
fn info_update_and_dismiss_are_seen_by_members() {
    let (b, api) = start();
    let mut o = b.client("o", "d");
    let mut m = b.client("m", "d");
    create(&api, "team", "o", &["m"], json!({ "type": "public" }));
    create(&api, "other", "m", &[], json!({}));
    // Info, batch: unknown ids are left out.
    let q = api.post("/v1/groups/query", &json!({ "group_ids": ["team", "nope", "other"] })).ok();
    let ids: Vec<&str> =
        q["groups"].as_array().expect("groups").iter().filter_map(|g| g["group_id"].as_str()).collect();
    assert_eq!(ids, ["team", "other"]);
    let too_many: Vec<String> = (0..101).map(|i| format!("g{i}")).collect();
    for body in [
        json!({}),
        json!({ "group_ids": [] }),
        json!({ "group_ids": too_many }),
        json!({ "group_ids": ["a b"] }),
        json!({ "group_ids": ["g"], "x": 1 }),
    ] {
        api.post("/v1/groups/query", &body).refused(400, code(ErrorCode::InvalidArgument));
    }
    // Update: info and settings of a PUBLIC group (admins-only edits) by the operator.
    let g = api
        .call(
            "PATCH",
            "/v1/groups/team",
            Some(&json!({
                "name": "Renamed", "notice": "read me", "join_mode": "anyone", "edit_mode": "everyone",
                "invite_mode": "any_member", "history_visibility": "full", "invitee_consent": false,
                "ex": { "a": "1" }, "avatar_url": "https://example.com/a.png", "introduction": "intro",
            })),
        )
        .ok();
    assert_eq!((g["name"].as_str(), g["join_mode"].as_str()), (Some("Renamed"), Some("anyone")));
    assert_eq!((g["edit_mode"].as_str(), g["history_visibility"].as_str()), (Some("everyone"), Some("full")));
    assert_eq!(g["invite_mode"], "any_member");
    let t = expect_tip(&mut m, "team", "group.info_updated");
    assert_eq!(t.sender, SYSTEM, "the operator sends the tip");
    assert_eq!(tip(&t).map(|(_, p)| p["by"].as_str()), Some(SYSTEM));
    let seen = must(m.call(pb::GetGroups { group_ids: vec!["team".into()] }), "GetGroups");
    assert_eq!(seen.groups[0].name, "Renamed");
    assert_eq!(seen.groups[0].notice, "read me");
    // Update refusals.
    for body in [
        json!({}),
        json!({ "name": "x".repeat(65) }),
        json!({ "join_mode": "all" }),
        json!({ "owner_id": "m" }),
        json!({ "ex": { "": "x" } }),
        json!("name"),
    ] {
        api.call("PATCH", "/v1/groups/team", Some(&body)).refused(400, code(ErrorCode::InvalidArgument));
    }
    api.call("PATCH", "/v1/groups/bad%20id", Some(&json!({ "name": "x" })))
        .refused(400, code(ErrorCode::InvalidArgument));
    api.call("PATCH", "/v1/groups/nope", Some(&json!({ "name": "x" })))
        .refused(404, code(ErrorCode::GroupNotFound));
    // Dismiss.
    let d = api.delete("/v1/groups/team");
    assert_eq!(d.status, 204, "{}", d.body);
    let t = expect_tip(&mut m, "team", "group.dismissed");
    assert_eq!(t.sender, SYSTEM);
    expect_tip(&mut o, "team", "group.dismissed");
    assert_error(members_seen_by(&mut m, "team"), ErrorCode::GroupNotFound, "members of a dismissed group");
    let q = api.post("/v1/groups/query", &json!({ "group_ids": ["team"] })).ok();
    assert_eq!(
        (q["groups"][0]["dismissed"].as_bool(), q["groups"][0]["member_count"].as_u64()),
        (Some(true), Some(0))
    );
    api.delete("/v1/groups/team").refused(404, code(ErrorCode::GroupNotFound));
    api.call("PATCH", "/v1/groups/team", Some(&json!({ "name": "x" })))
        .refused(404, code(ErrorCode::GroupNotFound));
    api.get("/v1/groups/team/members").refused(404, code(ErrorCode::GroupNotFound));
    api.delete("/v1/groups/bad%20id").refused(400, code(ErrorCode::InvalidArgument));
    // Every write is audited.
    let audit = api.get("/v1/audit?limit=100").ok();
    let whats: Vec<&str> =
        audit["items"].as_array().expect("items").iter().filter_map(|r| r["what"].as_str()).collect();
    assert!(whats.contains(&"DELETE /v1/groups/team"), "{whats:?}");
    assert!(whats.contains(&"PATCH /v1/groups/team"), "{whats:?}");
}

/// Ids that are also words of the routes: a group named `query` and a user
/// named `remove` are managed like any other.
#[test]
fn ids_that_are_route_words_are_served() {
    let (b, api) = start();
    import(&b, &["o", "remove"]);
    create(&api, "query", "o", &["remove"], json!({}));
    let m = api.put("/v1/groups/query/members/remove/role", &json!({ "role": "admin" })).ok();
    assert_eq!(m["role"], "admin");
    api.post("/v1/groups/query/members/remove/mute", &json!({ "duration_secs": 5 })).ok();
    let g = api.call("PATCH", "/v1/groups/query", Some(&json!({ "name": "Q" }))).ok();
    assert_eq!(g["name"], "Q");
    let g = api.post("/v1/groups/query/members/remove", &json!({ "user_ids": ["remove"] })).ok();
    assert_eq!(g["member_count"], 1);
    assert_eq!(api.delete("/v1/groups/query").status, 204);
    api.delete("/v1/groups/query").refused(404, code(ErrorCode::GroupNotFound));
}
