//! Builders and readers of protocol values used by many tests.
//!
//! Role: conversation ids ([`direct`], [`gconv`]), text contents, frames, the
//! Hello the harness sends, string maps and presence platforms.
//!
//! Invariants: pure functions of their arguments; no I/O.

use std::collections::BTreeMap;

use missive_protocol::pb::{self, frame};

use crate::Platform;

/// The direct conversation id between two users (order does not matter).
pub fn direct(a: &str, b: &str) -> String {
    assert_ne!(a, b, "a direct conversation needs two distinct users");
    if a < b { format!("p:{a}:{b}") } else { format!("p:{b}:{a}") }
}

/// A text content.
pub fn text(s: &str) -> pb::Content {
    pb::Content { body: Some(pb::content::Body::Text(pb::Text { text: s.to_owned() })), ..Default::default() }
}

/// The text of a message, "" if it is not a text message.
pub fn text_of(m: &pb::Message) -> &str {
    match m.content.as_ref().and_then(|c| c.body.as_ref()) {
        Some(pb::content::Body::Text(t)) => &t.text,
        _ => "",
    }
}

/// Wraps a frame body.
pub fn frame_of(body: frame::Body) -> pb::Frame {
    pb::Frame { body: Some(body) }
}

/// The Hello the harness sends: versions 1..=1, the given token, device and platform.
pub fn hello_msg(token: &str, device: &str, platform: Platform) -> pb::Hello {
    pb::Hello {
        min_version: 1,
        max_version: 1,
        token: token.to_owned(),
        device_id: device.to_owned(),
        platform: platform as i32,
        client_version: "missive-tests/0.1".to_owned(),
    }
}

/// A string map (profile / friend `ex`) from pairs.
pub fn ex_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// The platforms of a presence as enum values.
pub fn platforms_of(p: &pb::Presence) -> Vec<Platform> {
    p.platforms.iter().map(|&v| Platform::try_from(v).unwrap_or(Platform::Unspecified)).collect()
}

/// The conversation id of a group.
pub fn gconv(group: &str) -> String {
    format!("g:{group}")
}
