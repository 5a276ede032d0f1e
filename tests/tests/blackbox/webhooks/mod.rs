//! Webhooks (issue #15 item 3): `before.send` decisions, after-events
//! (at least once, across `kill -9`), retries, dead letters and replay, the
//! signature, and the `/v1/webhooks` endpoints. Every test runs a real HTTP
//! receiver on loopback (`missive_tests::hook_receiver`).

mod after_events;
mod before_send;
mod endpoints;

use missive_tests::api::Api;
use missive_tests::hook_receiver::HookReceiver;
use serde_json::json;

/// The secret every test endpoint is registered with.
pub(crate) const HOOK_SECRET: &str = "test-secret-0123456789";

/// Registers endpoint `id` of `rx` for `events`.
pub(crate) fn register(api: &Api, id: &str, rx: &HookReceiver, events: &[&str]) {
    api.post(
        "/v1/webhooks",
        &json!({ "id": id, "url": rx.url(), "secret": HOOK_SECRET, "events": events, "enabled": true }),
    )
    .ok();
}
