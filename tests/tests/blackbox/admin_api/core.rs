//! Cross-cutting: authorization (none, user token, API key), the rate limit,
//! the audit log of these endpoints, `/v1/stats`, and `GET /openapi.json`
//! being exactly spec/openapi.yaml.

use missive_tests::api::Api;
use missive_tests::*;
use serde_json::{Value, json};

use super::{api, import, items};

const KEY_CONFIG: &str = "[api]\nkeys = [{ name = \"app\", key = \"app-key-0123456789abcdef\" }]\n";

/// One request of every endpoint of this module's tags (method, path, body).
fn endpoints() -> Vec<(&'static str, &'static str, Option<Value>)> {
    vec![
        ("POST", "/v1/users/import", Some(json!({ "users": [{ "user_id": "zed" }] }))),
        ("POST", "/v1/users/query", Some(json!({ "user_ids": ["zed"] }))),
        ("POST", "/v1/users/exists", Some(json!({ "user_ids": ["zed"] }))),
        ("POST", "/v1/users/status", Some(json!({ "user_ids": ["zed"] }))),
        ("PATCH", "/v1/users/zed/profile", Some(json!({ "nickname": "Z" }))),
        ("POST", "/v1/users/zed/disable", Some(json!({}))),
        ("POST", "/v1/users/zed/enable", Some(json!({}))),
        ("POST", "/v1/users/zed/kick", Some(json!({}))),
        ("POST", "/v1/users/zed/revoke-tokens", Some(json!({}))),
        ("GET", "/v1/users/zed/devices", None),
        ("POST", "/v1/users/zed/token", Some(json!({ "ttl_secs": 10 }))),
        ("POST", "/v1/friends/import", Some(json!({ "pairs": [{ "user_a": "zed", "user_b": "yan" }] }))),
        ("POST", "/v1/users/zed/friends", Some(json!({ "user_id": "yan" }))),
        ("GET", "/v1/users/zed/friends", None),
        ("DELETE", "/v1/users/zed/friends/yan", None),
        ("POST", "/v1/users/zed/blacklist", Some(json!({ "user_id": "yan" }))),
        ("GET", "/v1/users/zed/blacklist", None),
        ("POST", "/v1/users/zed/blacklist/check", Some(json!({ "user_ids": ["yan"] }))),
        ("DELETE", "/v1/users/zed/blacklist/yan", None),
        ("GET", "/v1/users/zed/conversations", None),
        ("POST", "/v1/users/zed/conversations/p%3Ayan%3Azed/read", Some(json!({ "seq": 0 }))),
        ("DELETE", "/v1/users/zed/conversations/p%3Ayan%3Azed", None),
        ("GET", "/v1/stats", None),
    ]
}

#[test]
fn every_endpoint_needs_an_admin_credential_and_an_api_key_works() {
    let b = BrokerOpts::default().config(KEY_CONFIG).spawn();
    let addr = b.listening.api();
    let none = Api::with_bearer(addr, None);
    let user = Api::with_bearer(addr, Some(mint("zed")));
    let wrong = Api::with_bearer(addr, Some("not-a-key".into()));
    let key = Api::with_bearer(addr, Some("app-key-0123456789abcdef".into()));
    for (m, p, body) in endpoints() {
        none.call(m, p, body.as_ref()).refused(401, ErrorCode::TokenInvalid.as_u32());
        assert_eq!(wrong.call(m, p, body.as_ref()).status, 401, "{m} {p}");
        user.call(m, p, body.as_ref()).refused(403, ErrorCode::PermissionDenied.as_u32());
    }
    import(&key, &["yan"]);
    for (m, p, body) in endpoints() {
        let a = key.call(m, p, body.as_ref());
        assert!((200..300).contains(&a.status), "{m} {p} with the API key: {} {}", a.status, a.body);
    }
    // Written by the key: the audit log names it, newest first; reads are not audited.
    let audit = api(&b).get("/v1/audit?limit=1000").ok();
    let recs = items(&audit);
    let writes = endpoints().iter().filter(|(m, _, _)| *m != "GET").count() + 1;
    let by_key: Vec<_> = recs.iter().filter(|r| r["who"] == "key:app").collect();
    assert_eq!(by_key.len(), writes, "{audit}");
    assert_eq!(by_key[0]["what"], "DELETE /v1/users/zed/conversations/p%3Ayan%3Azed", "{audit}");
    assert!(by_key.iter().any(|r| r["what"] == "POST /v1/users/zed/kick" && r["status"] == 200), "{audit}");
    assert!(by_key.iter().all(|r| r["at_ms"].as_u64().is_some_and(|t| t > 0)));
    assert!(!recs.iter().any(|r| r["what"].as_str().is_some_and(|w| w.starts_with("GET"))), "{audit}");
    // Refused calls are not audited.
    assert!(!recs.iter().any(|r| r["who"].as_str().is_some_and(|w| w.starts_with("admin:zed"))));
}

#[test]
fn rate_limit_answers_429_with_retry_after() {
    let b = BrokerOpts::default().config("[api]\nmax_requests_per_sec = 2\n").spawn();
    let api = api(&b);
    // Burst 2x the rate: 4 pass at once, then 429 with Retry-After.
    let mut limited = None;
    for _ in 0..10 {
        let a = api.get("/v1/stats");
        if a.status == 429 {
            limited = Some(a);
            break;
        }
        assert_eq!(a.status, 200, "{}", a.body);
    }
    let a = limited.expect("no 429 within 10 requests at 2/s");
    a.refused(429, ErrorCode::RateLimited.as_u32());
    let secs: u64 = a.retry_after.as_deref().and_then(|s| s.parse().ok()).expect("Retry-After seconds");
    assert!((1..=2).contains(&secs), "{secs}");
    // Another credential has its own bucket.
    let other = Api::with_bearer(b.listening.api(), Some(mint_admin("other-admin")));
    assert_eq!(other.get("/v1/stats").status, 200);
}

#[test]
fn stats_count_online_registered_groups_and_messages() {
    let b = BrokerProc::start();
    let api = api(&b);
    let s0 = api.get("/v1/stats").ok();
    assert_eq!(s0["online_users"], 0, "{s0}");
    assert_eq!(s0["messages_total_since_start"], 0, "{s0}");
    import(&api, &["alice", "bob"]);
    let mut a1 = b.client_on("alice", "phone", Platform::Ios);
    let _a2 = b.client_on("alice", "web", Platform::Web);
    let _b1 = b.client_on("bob", "phone", Platform::Android);
    let _admin = b.admin();
    let conv = direct("alice", "bob");
    a1.send_many(&conv, "m", 5, 5);
    let s = api.get("/v1/stats").ok();
    assert_eq!(s["online_users"], 2, "admin sessions are not counted: {s}");
    assert_eq!(s["online_devices"], 3, "{s}");
    assert_eq!(s["online_by_platform"]["ios"], 1, "{s}");
    assert_eq!(s["online_by_platform"]["web"], 1, "{s}");
    assert_eq!(s["online_by_platform"]["android"], 1, "{s}");
    assert_eq!(s["online_by_platform"]["linux"], 0, "{s}");
    assert_eq!(s["messages_total_since_start"], 5, "{s}");
    assert!(s["messages_per_sec"].as_f64().is_some_and(|r| r >= 0.0), "{s}");
    // Storage counts are cached for 10 s: still the first reading's.
    assert_eq!(s["registered_users"], s0["registered_users"], "{s}");
    assert_eq!(s["counted_at_ms"], s0["counted_at_ms"], "{s}");
    assert_eq!(s0["groups"], 0, "{s0}");
    // A refused send is not counted.
    let bad = a1.send_text(&conv, "m0", &"x".repeat(70_000));
    assert!(bad.is_err());
    assert_eq!(api.get("/v1/stats").ok()["messages_total_since_start"], 5);
}

#[test]
fn openapi_json_is_the_committed_spec() {
    let b = BrokerProc::start();
    let served = Api::with_bearer(b.listening.api(), None).get("/openapi.json").ok();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec/openapi.yaml");
    let text = std::fs::read_to_string(&path).expect("spec/openapi.yaml");
    let spec: Value = serde_yaml_ng::from_str(&text).expect("the spec is YAML");
    assert_eq!(served, spec, "GET /openapi.json differs from spec/openapi.yaml");
    // Every route of these tags is documented.
    for (m, p, _) in endpoints() {
        let templ = p
            .replace("/zed/", "/{user_id}/")
            .replace("/v1/users/{user_id}/friends/yan", "/v1/users/{user_id}/friends/{peer_id}")
            .replace("/v1/users/{user_id}/blacklist/yan", "/v1/users/{user_id}/blacklist/{peer_id}")
            .replace("p%3Ayan%3Azed", "{conv_id}");
        let templ = if templ.ends_with("/zed") { templ.replace("/zed", "/{user_id}") } else { templ };
        assert!(spec["paths"][&templ][m.to_lowercase()].is_object(), "{m} {templ} not in the spec");
    }
}
