//! The admin REST API, tag `messages` (spec/openapi.yaml, PROTOCOL.md
//! [AM-1], [AM-2]): send as a user, system notices, broadcast to every user
//! (read diffusion: stored once), NDJSON history export and the import of
//! historical messages with their original senders and times.

mod broadcast;
mod export_import;
mod send;

use missive_tests::api::Api;
use missive_tests::{BrokerProc, ErrorCode};
use serde_json::{Value, json};

/// A broker and an admin REST client on it.
fn broker() -> (BrokerProc, Api) {
    let b = BrokerProc::start();
    let api = Api::new(b.listening.api());
    (b, api)
}

fn text(s: &str) -> Value {
    json!({ "text": { "text": s } })
}

fn code(c: ErrorCode) -> u32 {
    c as u32
}

/// `p:{a}:{b}` in ascending order.
fn direct(a: &str, b: &str) -> String {
    if a < b { format!("p:{a}:{b}") } else { format!("p:{b}:{a}") }
}
