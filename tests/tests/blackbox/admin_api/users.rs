//! `users` endpoints: import, query, exists, profile, disable/enable, kick,
//! revoke, status, devices, token.

use missive_protocol::pb;
use missive_tests::*;
use serde_json::json;

use super::{api, bad, import};

const NO_AUTO_REGISTER: &str = "[accounts]\nauto_register = false\n";

#[test]
fn import_then_login_and_per_entry_results() {
    let b = BrokerOpts::default().config(NO_AUTO_REGISTER).spawn();
    let api = api(&b);
    let got = api
        .post(
            "/v1/users/import",
            &json!({ "users": [
                { "user_id": "alice", "profile": { "nickname": "Alice", "gender": "female", "ex": { "k": "v" } } },
                { "user_id": "bad id!" },
                { "user_id": "bob", "profile": { "nickname": "n".repeat(65) } },
                { "user_id": "carol", "profile": { "gender": "robot" } },
                { "user_id": "alice" },
            ]}),
        )
        .ok();
    let r = got["results"].as_array().expect("results").clone();
    assert_eq!(r.len(), 5, "{got}");
    assert_eq!(r[0]["ok"], json!(true), "{got}");
    assert!(r[0].get("code").is_none(), "{got}");
    for (i, code) in [(1, 3000), (2, 3000), (3, 3000), (4, ErrorCode::AccountExists.as_u32())] {
        assert_eq!(r[i]["ok"], json!(false), "{got}");
        assert_eq!(r[i]["code"], json!(code), "entry {i}: {got}");
        assert!(r[i]["message"].as_str().is_some_and(|m| !m.is_empty()), "{got}");
    }
    // The imported user logs in (auto-registration is off); the refused ones do not exist.
    let mut alice = b.client_on("alice", "phone", Platform::Ios);
    assert!(alice.is_alive());
    b.assert_login_refused(&mint("bob"), "phone", Platform::Ios, ErrorCode::AccountNotFound);

    // Batch bounds and bad bodies.
    bad(&api.post("/v1/users/import", &json!({ "users": [] })));
    let many: Vec<_> = (0..101).map(|i| json!({ "user_id": format!("u{i}") })).collect();
    bad(&api.post("/v1/users/import", &json!({ "users": many })));
    bad(&api.post("/v1/users/import", &json!({ "users": [{ "user_id": "x", "extra": 1 }] })));
    bad(&api.post("/v1/users/import", &json!({ "nope": [] })));
    bad(&api.post("/v1/users/import", &json!([1, 2])));

    // Query: account state and profile, in request order; exists.
    let got = api.post("/v1/users/query", &json!({ "user_ids": ["ghost", "alice"] })).ok();
    let u = got["users"].as_array().expect("users");
    assert_eq!(u[0]["user_id"], "ghost");
    assert_eq!(u[0]["exists"], json!(false));
    assert!(u[0].get("profile").is_none());
    assert_eq!(u[1]["exists"], json!(true));
    assert_eq!(u[1]["profile"]["nickname"], "Alice");
    assert_eq!(u[1]["profile"]["gender"], "female");
    assert_eq!(u[1]["profile"]["ex"]["k"], "v");
    assert!(u[1]["created_ms"].as_u64().is_some_and(|t| t > 0));
    bad(&api.post("/v1/users/query", &json!({ "user_ids": [] })));
    bad(&api.post("/v1/users/query", &json!({ "user_ids": ["ok", "not ok"] })));
    let got = api.post("/v1/users/exists", &json!({ "user_ids": ["alice", "ghost"] })).ok();
    assert_eq!(
        got["accounts"],
        json!([
            { "user_id": "alice", "exists": true, "disabled": false },
            { "user_id": "ghost", "exists": false, "disabled": false }
        ])
    );
    let ids: Vec<String> = (0..101).map(|i| format!("u{i}")).collect();
    bad(&api.post("/v1/users/exists", &json!({ "user_ids": ids })));
}

#[test]
fn profile_update_acts_as_the_user_and_is_pushed() {
    let b = BrokerProc::start();
    let api = api(&b);
    import(&api, &["alice"]);
    let mut phone = b.client_on("alice", "phone", Platform::Ios);
    let got = api
        .call(
            "PATCH",
            "/v1/users/alice/profile",
            Some(&json!({ "nickname": "Al", "friend_verification": "deny_all" })),
        )
        .ok();
    assert_eq!(got["nickname"], "Al");
    assert_eq!(got["friend_verification"], "deny_all");
    assert!(got["updated_ms"].as_u64().is_some_and(|t| t > 0));
    let p = phone.wait_push("own profile", WAIT, |e| match e {
        pb::push::Event::Profile(p) => Some(p.clone()),
        _ => None,
    });
    assert_eq!(p.nickname, "Al");
    // Every field validated.
    for body in [
        json!({ "nickname": "n".repeat(65) }),
        json!({ "gender": "x" }),
        json!({ "friend_verification": "maybe" }),
        json!({ "birthday": "2001-02-30" }),
        json!({ "avatar_url": "u".repeat(1025) }),
        json!({ "signature": "s".repeat(257) }),
        json!({ "unknown": 1 }),
        json!({ "nickname": 5 }),
    ] {
        bad(&api.call("PATCH", "/v1/users/alice/profile", Some(&body)));
    }
    api.call("PATCH", "/v1/users/ghost/profile", Some(&json!({ "nickname": "G" })))
        .refused(404, ErrorCode::UserNotFound.as_u32());
    bad(&api.call("PATCH", "/v1/users/bad%20id/profile", Some(&json!({}))));
}

#[test]
fn disable_enable_revoke_and_kick_end_sessions() {
    let mut b = BrokerProc::start();
    let api = api(&b);
    import(&api, &["alice", "bob"]);
    let mut phone = b.client_on("alice", "phone", Platform::Ios);
    let mut web = b.client_on("alice", "browser", Platform::Web);
    let mut bob = b.client_on("bob", "phone", Platform::Android);

    // Kick one device: only that session ends, with Kicked{ADMIN} then Close KICKED.
    let got = api.post("/v1/users/alice/kick", &json!({ "device_ids": ["browser", "nowhere"] })).ok();
    assert_eq!(got["kicked"], json!(["browser"]));
    let k = web.expect_kicked(ErrorCode::Kicked);
    assert_eq!(k.reason, pb::KickReason::Admin as i32, "{k:?}");
    assert!(phone.is_alive());
    let st = api.post("/v1/users/status", &json!({ "user_ids": ["alice", "bob", "ghost"] })).ok();
    assert_eq!(
        st["users"],
        json!([
            { "user_id": "alice", "online": true, "platforms": ["ios"] },
            { "user_id": "bob", "online": true, "platforms": ["android"] },
            { "user_id": "ghost", "online": false, "platforms": [] }
        ])
    );
    // The kicked device may log in again at once.
    let mut web = b.client_on("alice", "browser", Platform::Web);
    // Kick all (empty body).
    let got = api.post("/v1/users/alice/kick", &json!({})).ok();
    assert_eq!(got["kicked"], json!(["browser", "phone"]));
    phone.expect_kicked(ErrorCode::Kicked);
    web.expect_kicked(ErrorCode::Kicked);
    assert!(bob.is_alive(), "other users keep their sessions");
    bad(&api.post("/v1/users/alice/kick", &json!({ "device_ids": ["bad device"] })));
    bad(&api.post("/v1/users/alice/kick", &json!({ "device_ids": "phone" })));
    let many: Vec<String> = (0..101).map(|i| format!("d{i}")).collect();
    bad(&api.post("/v1/users/alice/kick", &json!({ "device_ids": many })));
    api.post("/v1/users/ghost/kick", &json!({})).refused(404, ErrorCode::UserNotFound.as_u32());

    // Disable: sessions end with ACCOUNT_DISABLED, logins refused; enable again.
    let mut phone = b.client_on("alice", "phone", Platform::Ios);
    api.post("/v1/users/alice/disable", &json!({ "reason": "spam" })).ok();
    let k = phone.expect_kicked(ErrorCode::AccountDisabled);
    assert_eq!(k.message, "spam");
    b.assert_login_refused(&mint("alice"), "phone", Platform::Ios, ErrorCode::AccountDisabled);
    bad(&api.post("/v1/users/alice/disable", &json!({ "reason": "r".repeat(257) })));
    bad(&api.post("/v1/users/alice/disable", &json!({ "reason": 1 })));
    api.post("/v1/users/ghost/disable", &json!({})).refused(404, ErrorCode::UserNotFound.as_u32());
    api.post("/v1/users/alice/enable", &json!({})).ok();
    bad(&api.post("/v1/users/alice/enable", &json!({ "x": 1 })));
    let mut phone = b.client_on("alice", "phone", Platform::Ios);

    // Revoke: sessions end with TOKEN_REVOKED; a token minted over REST afterwards works.
    api.post("/v1/users/alice/revoke-tokens", &json!({})).ok();
    // The revocation instant is at most now; a token minted in a later millisecond is valid.
    let revoked_by = now_ms();
    while now_ms() <= revoked_by {
        std::thread::yield_now();
    }
    phone.expect_kicked(ErrorCode::TokenRevoked);
    b.assert_login_refused(&mint("alice"), "phone", Platform::Ios, ErrorCode::TokenRevoked);
    api.post("/v1/users/ghost/revoke-tokens", &json!({})).refused(404, ErrorCode::UserNotFound.as_u32());
    let t = api
        .post("/v1/users/alice/token", &json!({ "ttl_secs": 60, "device_id": "phone", "platform": "ios" }))
        .ok();
    let token = t["token"].as_str().expect("token").to_owned();
    assert!(t["expires_at"].as_u64().is_some_and(|e| e >= now_secs() + 55 && e <= now_secs() + 61), "{t}");
    let (mut c, res) = b.try_login(&token, "phone", Platform::Ios);
    res.unwrap_or_else(|c| panic!("minted token refused: {c:?}"));
    assert!(c.is_alive());
    // The token is bound to its device and platform.
    let (_, res) = b.try_login(&token, "other", Platform::Ios);
    assert!(res.is_err(), "token used on another device");
    b.terminate();
}

#[test]
fn token_and_devices_validate_every_field() {
    let b = BrokerProc::start();
    let api = api(&b);
    import(&api, &["alice"]);
    for body in [
        json!({}),
        json!({ "ttl_secs": 0 }),
        json!({ "ttl_secs": 31_536_001 }),
        json!({ "ttl_secs": -1 }),
        json!({ "ttl_secs": 60, "device_id": "" }),
        json!({ "ttl_secs": 60, "device_id": "a b" }),
        json!({ "ttl_secs": 60, "platform": "unspecified" }),
        json!({ "ttl_secs": 60, "platform": "amiga" }),
        json!({ "ttl_secs": 60, "role": "admin" }),
    ] {
        bad(&api.post("/v1/users/alice/token", &body));
    }
    bad(&api.post("/v1/users/a%20b/token", &json!({ "ttl_secs": 60 })));
    // A token without device or platform: any device.
    let t = api.post("/v1/users/alice/token", &json!({ "ttl_secs": 31_536_000 })).ok();
    let (_c, res) = b.try_login(t["token"].as_str().expect("token"), "laptop", Platform::Linux);
    res.unwrap_or_else(|c| panic!("minted token refused: {c:?}"));

    // Devices: online sessions and known devices (with their last sync).
    let mut phone = b.client_on("alice", "phone", Platform::Ios);
    phone.sync_all("");
    let got = api.get("/v1/users/alice/devices").ok();
    let online: Vec<_> =
        got["online"].as_array().expect("online").iter().map(|d| d["device_id"].clone()).collect();
    assert!(online.contains(&json!("phone")) && online.contains(&json!("laptop")), "{got}");
    let known = got["known"].as_array().expect("known");
    assert!(!known.iter().any(|d| d["device_id"] == "laptop"), "never synced: {got}");
    let ph = known.iter().find(|d| d["device_id"] == "phone").expect("phone known");
    assert!(ph["last_sync_ms"].as_u64().is_some_and(|t| t > 0), "{got}");
    assert!(ph["last_sync_version"].as_u64().is_some(), "{got}");
    assert_eq!(got["truncated"], json!(false));
    api.get("/v1/users/ghost/devices").refused(404, ErrorCode::UserNotFound.as_u32());
    bad(&api.get("/v1/users/a%20b/devices"));
    // Status bounds: 500 ids.
    let ids: Vec<String> = (0..500).map(|i| format!("u{i}")).collect();
    assert_eq!(
        api.post("/v1/users/status", &json!({ "user_ids": ids })).ok()["users"].as_array().map(Vec::len),
        Some(500)
    );
    let ids: Vec<String> = (0..501).map(|i| format!("u{i}")).collect();
    bad(&api.post("/v1/users/status", &json!({ "user_ids": ids })));
    bad(&api.post("/v1/users/status", &json!({ "user_ids": ["bad id"] })));
}
