//! `/v1/webhooks`: create, list, get, update, delete; every field's bad
//! input; authorization.

use missive_tests::api::Api;
use missive_tests::hook_receiver::HookReceiver;
use missive_tests::*;
use serde_json::json;

use super::HOOK_SECRET;

#[test]
fn crud_and_bad_input() {
    let b = BrokerProc::start();
    let api = Api::new(b.listening.api());
    let rx = HookReceiver::start();
    let good =
        json!({ "id": "app-1", "url": rx.url(), "secret": HOOK_SECRET, "events": ["after.send", "group.*"] });
    let created = api.post("/v1/webhooks", &good).ok();
    assert_eq!(created["id"], "app-1");
    assert_eq!(created["enabled"], true);
    assert!(created.get("secret").is_none(), "the secret is never returned");
    api.post("/v1/webhooks", &good).refused(409, 3000);
    let list = api.get("/v1/webhooks").ok();
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    let got = api.get("/v1/webhooks/app-1").ok();
    assert_eq!(got["events"], json!(["after.send", "group.*"]));
    let upd = api.put("/v1/webhooks/app-1", &json!({ "enabled": false, "events": ["*"] })).ok();
    assert_eq!(upd["enabled"], false);
    assert_eq!(upd["events"], json!(["*"]));
    assert_eq!(upd["url"], rx.url());
    api.get("/v1/webhooks/nope").refused(404, 3000);
    api.put("/v1/webhooks/nope", &json!({ "enabled": true })).refused(404, 3000);
    api.get("/v1/webhooks/nope/dead-letters").refused(404, 3000);
    // Bad input, field by field.
    let with = |k: &str, v: serde_json::Value| {
        let mut b = good.clone();
        b["id"] = json!("app-2");
        b[k] = v;
        b
    };
    for body in [
        with("id", json!("")),
        with("id", json!("has space")),
        with("id", json!("x".repeat(65))),
        with("url", json!("ftp://example.com/")),
        with("url", json!("not a url")),
        with("secret", json!("short")),
        with("events", json!([])),
        with("events", json!(["no.such.event"])),
        with("events", json!(["group"])),
        with("enabled", json!("yes")),
        with("extra", json!(1)),
    ] {
        api.post("/v1/webhooks", &body).refused(400, 3000);
    }
    api.put("/v1/webhooks/app-1", &json!({ "url": "gopher://x" })).refused(400, 3000);
    api.put("/v1/webhooks/app-1", &json!({ "secret": "short" })).refused(400, 3000);
    api.put("/v1/webhooks/app-1", &json!({ "bogus": 1 })).refused(400, 3000);
    api.get("/v1/webhooks/app-1/dead-letters?limit=0").refused(400, 3000);
    api.get("/v1/webhooks/app-1/dead-letters?cursor=***").refused(400, 3000);
    api.post("/v1/webhooks/app-1/dead-letters/replay", &json!({})).refused(400, 3000);
    api.post("/v1/webhooks/app-1/dead-letters/replay", &json!({ "all": true, "event_ids": ["1"] }))
        .refused(400, 3000);
    api.post("/v1/webhooks/app-1/dead-letters/replay", &json!({ "event_ids": ["abc"] })).refused(400, 3000);
    let r = api.post("/v1/webhooks/app-1/dead-letters/replay", &json!({ "event_ids": ["12345"] })).ok();
    assert_eq!(r["replayed"], 0);
    // Delete.
    assert_eq!(api.delete("/v1/webhooks/app-1").ok()["deleted"], true);
    api.delete("/v1/webhooks/app-1").refused(404, 3000);
    assert_eq!(api.get("/v1/webhooks").ok()["items"], json!([]));
}

#[test]
fn only_admins_manage_webhooks() {
    let b = BrokerProc::start();
    let addr = b.listening.api();
    Api::with_bearer(addr, None).get("/v1/webhooks").refused(401, ErrorCode::TokenInvalid as u32);
    let user = Api::with_bearer(addr, Some(mint("alice")));
    user.get("/v1/webhooks").refused(403, ErrorCode::PermissionDenied as u32);
    user.post(
        "/v1/webhooks",
        &json!({ "id": "x", "url": "http://127.0.0.1:1/", "secret": HOOK_SECRET, "events": ["*"] }),
    )
    .refused(403, ErrorCode::PermissionDenied as u32);
    assert_eq!(Api::new(addr).get("/v1/webhooks").ok()["items"], json!([]));
}
