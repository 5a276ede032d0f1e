//! Membership by the admin API ([GR-30]): adds without consent (approval,
//! consent and closed groups alike), removals, roles, mute of a member and
//! of the whole group, transfer; every change seen by members over sockets.

use missive_protocol::pb::{self, request::Op};
use missive_tests::*;
use serde_json::json;

use super::{SYSTEM, code, create, expect_tip, import, members_seen_by, role_in, start, tip};

#[test]
fn add_members_without_consent_into_approval_and_closed_groups() {
    let (b, api) = start();
    let mut o = b.client("o", "d");
    let mut x = b.client("x", "d");
    let mut y = b.client("y", "d");
    import(&b, &["z", "w"]);
    // x blacklisted the owner: no matter, the operator adds ([GR-30]).
    must(x.call(pb::AddToBlacklist { user_id: "o".into() }), "x blocks o");
    create(&api, "pub", "o", &[], json!({ "type": "public", "info": { "invitee_consent": true } }));
    // A client needs approval to join.
    let joined = must(y.call(pb::JoinGroup { group_id: "pub".into(), reason: "hi".into() }), "y applies");
    assert_eq!(joined.status, pb::JoinStatus::Applied as i32);
    let g = api.post("/v1/groups/pub/members", &json!({ "user_ids": ["x", "y", "x"] })).ok();
    assert_eq!(g["member_count"], 3);
    let t = expect_tip(&mut x, "pub", "group.members_invited");
    assert_eq!(t.sender, SYSTEM);
    let params = tip(&t).map(|(_, p)| p.clone()).expect("params");
    assert_eq!((params["by"].as_str(), params["users"].as_str()), (SYSTEM, "x,y"));
    expect_tip(&mut o, "pub", "group.members_invited");
    let list = must(members_seen_by(&mut y, "pub"), "y is a member now");
    assert_eq!(role_in(&list, "x"), Some(pb::GroupRole::Member));
    assert_eq!(role_in(&list, "o"), Some(pb::GroupRole::Owner));
    // A closed group (NOBODY) still takes the operator's adds.
    api.call("PATCH", "/v1/groups/pub", Some(&json!({ "join_mode": "nobody" }))).ok();
    let g = api.post("/v1/groups/pub/members", &json!({ "user_ids": ["z"] })).ok();
    assert_eq!(g["member_count"], 4);
    // Refusals: all members already, unregistered (nobody added), bounds, full.
    api.post("/v1/groups/pub/members", &json!({ "user_ids": ["x", "z"] }))
        .refused(409, code(ErrorCode::AlreadyGroupMember));
    api.post("/v1/groups/pub/members", &json!({ "user_ids": ["w", "ghost"] }))
        .refused(404, code(ErrorCode::UserNotFound));
    api.post("/v1/groups/nope/members", &json!({ "user_ids": ["w"] }))
        .refused(404, code(ErrorCode::GroupNotFound));
    let many: Vec<String> = (0..501).map(|i| format!("u{i}")).collect();
    for body in [
        json!({}),
        json!({ "user_ids": [] }),
        json!({ "user_ids": many }),
        json!({ "user_ids": ["a b"] }),
        json!({ "user_ids": ["w"], "x": 1 }),
    ] {
        api.post("/v1/groups/pub/members", &body).refused(400, code(ErrorCode::InvalidArgument));
    }
    api.post("/v1/groups/bad%20id/members", &json!({ "user_ids": ["w"] }))
        .refused(400, code(ErrorCode::InvalidArgument));
    let members = api.get("/v1/groups/pub/members").ok();
    assert_eq!(members["member_count"], 4, "w was not added: {members}");
    create(&api, "small", "o", &["x"], json!({ "max_members": 2 }));
    api.post("/v1/groups/small/members", &json!({ "user_ids": ["y"] }))
        .refused(422, code(ErrorCode::GroupFull));
}

#[test]
fn remove_members_all_or_nothing_and_never_the_owner() {
    let (b, api) = start();
    let mut o = b.client("o", "d");
    let mut m1 = b.client("m1", "d");
    let mut m2 = b.client("m2", "d");
    import(&b, &["m3", "out"]);
    create(&api, "team", "o", &["m1", "m2", "m3"], json!({}));
    let g = api.post("/v1/groups/team/members/remove", &json!({ "user_ids": ["m1", "m3"] })).ok();
    assert_eq!(g["member_count"], 2);
    let t = expect_tip(&mut m1, "team", "group.members_kicked");
    assert_eq!(t.sender, SYSTEM);
    assert_eq!(tip(&t).map(|(_, p)| p["users"].clone()), Some("m1,m3".to_owned()));
    expect_tip(&mut m2, "team", "group.members_kicked");
    assert_error(members_seen_by(&mut m1, "team"), ErrorCode::NotGroupMember, "m1 was removed");
    assert_error(
        m1.send_text(&gconv("team"), "c1", "hi"),
        ErrorCode::NotParticipant,
        "a removed member sends",
    );
    // All or nothing: the owner (4104) or a non-member (4102) in the list removes nobody.
    api.post("/v1/groups/team/members/remove", &json!({ "user_ids": ["m2", "o"] }))
        .refused(403, code(ErrorCode::GroupPermissionDenied));
    api.post("/v1/groups/team/members/remove", &json!({ "user_ids": ["m2", "out"] }))
        .refused(403, code(ErrorCode::NotGroupMember));
    let list = must(members_seen_by(&mut o, "team"), "members");
    assert_eq!(list.iter().map(|m| m.user_id.as_str()).collect::<Vec<_>>(), ["m2", "o"]);
    for body in
        [json!({}), json!({ "user_ids": [] }), json!({ "user_ids": [""] }), json!({ "user_ids": "m2" })]
    {
        api.post("/v1/groups/team/members/remove", &body).refused(400, code(ErrorCode::InvalidArgument));
    }
    api.post("/v1/groups/nope/members/remove", &json!({ "user_ids": ["m2"] }))
        .refused(404, code(ErrorCode::GroupNotFound));
}

#[test]
fn roles_are_set_by_the_operator_and_take_effect() {
    let (b, api) = start();
    let mut o = b.client("o", "d");
    let mut m1 = b.client("m1", "d");
    let mut m2 = b.client("m2", "d");
    import(&b, &["out"]);
    create(&api, "team", "o", &["m1", "m2"], json!({}));
    // A member may not kick; once admin, they may.
    assert_error(
        m1.call(Op::KickFromGroup(pb::KickFromGroup {
            group_id: "team".into(),
            user_ids: vec!["m2".into()],
        })),
        ErrorCode::GroupPermissionDenied,
        "a member kicks",
    );
    let m = api.put("/v1/groups/team/members/m1/role", &json!({ "role": "admin" })).ok();
    assert_eq!((m["user_id"].as_str(), m["role"].as_str()), (Some("m1"), Some("admin")));
    assert_eq!(m["group_id"], "team");
    let t = expect_tip(&mut m2, "team", "group.role_changed");
    assert_eq!(t.sender, SYSTEM);
    let list = must(members_seen_by(&mut o, "team"), "members");
    assert_eq!(role_in(&list, "m1"), Some(pb::GroupRole::Admin));
    must(
        m1.call(Op::KickFromGroup(pb::KickFromGroup {
            group_id: "team".into(),
            user_ids: vec!["m2".into()],
        })),
        "an admin kicks",
    );
    let m = api.put("/v1/groups/team/members/m1/role", &json!({ "role": "member" })).ok();
    assert_eq!(m["role"], "member");
    // Refusals.
    api.put("/v1/groups/team/members/o/role", &json!({ "role": "admin" }))
        .refused(403, code(ErrorCode::GroupPermissionDenied));
    api.put("/v1/groups/team/members/out/role", &json!({ "role": "admin" }))
        .refused(403, code(ErrorCode::NotGroupMember));
    api.put("/v1/groups/nope/members/m1/role", &json!({ "role": "admin" }))
        .refused(404, code(ErrorCode::GroupNotFound));
    for body in [
        json!({}),
        json!({ "role": "owner" }),
        json!({ "role": "ADMIN" }),
        json!({ "role": 2 }),
        json!({ "role": "admin", "x": 1 }),
    ] {
        api.put("/v1/groups/team/members/m1/role", &body).refused(400, code(ErrorCode::InvalidArgument));
    }
    api.put("/v1/groups/team/members/bad%20id/role", &json!({ "role": "admin" }))
        .refused(400, code(ErrorCode::InvalidArgument));
    api.put("/v1/groups/bad%20id/members/m1/role", &json!({ "role": "admin" }))
        .refused(400, code(ErrorCode::InvalidArgument));
}

#[test]
fn mute_a_member_or_the_whole_group_blocks_their_sends() {
    let (b, api) = start();
    let mut o = b.client("o", "d");
    let mut m1 = b.client("m1", "d");
    let mut m2 = b.client("m2", "d");
    create(&api, "team", "o", &["m1", "m2"], json!({}));
    let conv = gconv("team");
    let before = now_ms();
    let m = api.post("/v1/groups/team/members/m1/mute", &json!({ "duration_secs": 3600 })).ok();
    let until = m["mute_until_ms"].as_u64().expect("until");
    assert!(until >= before + 3_599_000, "{m}");
    let t = expect_tip(&mut m2, "team", "group.member_muted");
    assert_eq!(tip(&t).map(|(_, p)| p["by"].clone()), Some(SYSTEM.to_owned()));
    assert_error(m1.send_text(&conv, "c1", "hi"), ErrorCode::MemberMuted, "a muted member sends");
    m2.send_ok(&conv, "c2", "others still send");
    let m = api.post("/v1/groups/team/members/m1/mute", &json!({ "duration_secs": 0 })).ok();
    assert_eq!(m["mute_until_ms"], 0);
    m1.send_ok(&conv, "c3", "unmuted");
    // Mute all: ordinary members are refused, the owner still sends.
    let g = api.post("/v1/groups/team/mute", &json!({ "mute_all": true })).ok();
    assert_eq!(g["mute_all"], true);
    expect_tip(&mut m2, "team", "group.mute_all");
    assert_error(m2.send_text(&conv, "c4", "hi"), ErrorCode::GroupMuted, "a member under mute-all");
    o.send_ok(&conv, "c5", "the owner sends");
    let g = api.post("/v1/groups/team/mute", &json!({ "mute_all": false })).ok();
    assert_eq!(g["mute_all"], false);
    m2.send_ok(&conv, "c6", "unmuted group");
    // Refusals.
    api.post("/v1/groups/team/members/o/mute", &json!({ "duration_secs": 60 }))
        .refused(403, code(ErrorCode::GroupPermissionDenied));
    api.post("/v1/groups/team/members/nobody/mute", &json!({ "duration_secs": 60 }))
        .refused(403, code(ErrorCode::NotGroupMember));
    api.post("/v1/groups/nope/members/m1/mute", &json!({ "duration_secs": 60 }))
        .refused(404, code(ErrorCode::GroupNotFound));
    api.post("/v1/groups/nope/mute", &json!({ "mute_all": true }))
        .refused(404, code(ErrorCode::GroupNotFound));
    for body in [
        json!({}),
        json!({ "duration_secs": -1 }),
        json!({ "duration_secs": 315_360_001u64 }),
        json!({ "duration_secs": "60" }),
    ] {
        api.post("/v1/groups/team/members/m1/mute", &body).refused(400, code(ErrorCode::InvalidArgument));
    }
    for body in [json!({}), json!({ "mute_all": "yes" }), json!({ "mute_all": true, "x": 1 })] {
        api.post("/v1/groups/team/mute", &body).refused(400, code(ErrorCode::InvalidArgument));
    }
}

#[test]
fn transfer_makes_a_member_the_owner() {
    let (b, api) = start();
    let mut o = b.client("o", "d");
    let mut m1 = b.client("m1", "d");
    import(&b, &["out"]);
    create(&api, "team", "o", &["m1"], json!({}));
    let g = api.post("/v1/groups/team/transfer", &json!({ "new_owner_id": "m1" })).ok();
    assert_eq!((g["owner_id"].as_str(), g["member_count"].as_u64()), (Some("m1"), Some(2)));
    let t = expect_tip(&mut o, "team", "group.owner_transferred");
    let params = tip(&t).map(|(_, p)| p.clone()).expect("params");
    assert_eq!((params["from"].as_str(), params["to"].as_str(), params["by"].as_str()), ("o", "m1", SYSTEM));
    let list = must(members_seen_by(&mut m1, "team"), "members");
    assert_eq!(role_in(&list, "m1"), Some(pb::GroupRole::Owner));
    assert_eq!(role_in(&list, "o"), Some(pb::GroupRole::Member));
    // The new owner has the owner's rights over the socket; the old one lost them.
    assert_error(
        o.call(Op::DismissGroup(pb::DismissGroup { group_id: "team".into() })),
        ErrorCode::GroupPermissionDenied,
        "the former owner dismisses",
    );
    must(
        m1.call(Op::SetGroupRole(pb::SetGroupRole {
            group_id: "team".into(),
            user_id: "o".into(),
            role: pb::GroupRole::Admin as i32,
        })),
        "the new owner sets an admin",
    );
    // Refusals.
    api.post("/v1/groups/team/transfer", &json!({ "new_owner_id": "m1" }))
        .refused(400, code(ErrorCode::SelfTarget));
    api.post("/v1/groups/team/transfer", &json!({ "new_owner_id": "out" }))
        .refused(403, code(ErrorCode::NotGroupMember));
    api.post("/v1/groups/nope/transfer", &json!({ "new_owner_id": "m1" }))
        .refused(404, code(ErrorCode::GroupNotFound));
    for body in [
        json!({}),
        json!({ "new_owner_id": "" }),
        json!({ "new_owner_id": "a b" }),
        json!({ "new_owner_id": "o", "quit": true }),
    ] {
        api.post("/v1/groups/team/transfer", &body).refused(400, code(ErrorCode::InvalidArgument));
    }
}
