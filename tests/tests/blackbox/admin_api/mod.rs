//! The admin REST API (issue #15): users, relations, conversations and stats
//! endpoints, their authorization, rate limit and audit log, and the OpenAPI
//! document. Every effect is checked where a client sees it (a socket
//! client), not only in the REST answer.

mod conversations;
mod core;
mod relations;
mod users;

use missive_tests::api::{Api, ApiAnswer};
use missive_tests::*;
use serde_json::{Value, json};

/// An admin-token REST client of `b`.
pub(super) fn api(b: &BrokerProc) -> Api {
    Api::new(b.listening.api())
}

/// Imports `users` (no profile) and asserts each is `ok`.
pub(super) fn import(api: &Api, users: &[&str]) {
    let body = json!({ "users": users.iter().map(|u| json!({ "user_id": u })).collect::<Vec<_>>() });
    let got = api.post("/v1/users/import", &body).ok();
    for r in got["results"].as_array().expect("results") {
        assert_eq!(r["ok"], json!(true), "{r}");
    }
}

/// Asserts a 400 INVALID_ARGUMENT (or another 400 code) with a JSON error.
#[track_caller]
pub(super) fn bad(a: &ApiAnswer) {
    assert_eq!(a.status, 400, "expected 400; body {}", a.body);
    assert!(a.body["code"].as_u64().is_some() && a.body["message"].as_str().is_some(), "{}", a.body);
}

/// Percent-encodes a conversation id for a path segment.
pub(super) fn enc(conv: &str) -> String {
    conv.replace(':', "%3A")
}

/// The `items` of a page.
pub(super) fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}
