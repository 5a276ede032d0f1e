//! Rendering of protocol values for `missivectl`: JSON objects (one per
//! line with `--json`) and human-readable lines.
//!
//! Invariants: JSON field names are stable (scripts parse them); human output
//! may change. Times are UTC RFC 3339 with milliseconds.

use missive_sdk::pb::{self, content::Body};
use serde_json::{Value, json};

/// Unix milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
pub(crate) fn rfc3339_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        ms % 1000
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The text of a message, or a placeholder such as `[image]` for other kinds.
pub(crate) fn content_text(content: Option<&pb::Content>) -> String {
    let Some(body) = content.and_then(|c| c.body.as_ref()) else {
        return "[unsupported]".to_owned();
    };
    match body {
        Body::Text(t) => t.text.clone(),
        Body::Image(_) => "[image]".to_owned(),
        Body::Voice(_) => "[voice]".to_owned(),
        Body::Video(_) => "[video]".to_owned(),
        Body::File(f) => format!("[file {}]", f.name),
        Body::Location(_) => "[location]".to_owned(),
        Body::Custom(c) => format!("[custom {}]", c.r#type),
        Body::Merged(_) => "[merged]".to_owned(),
        Body::Tip(t) => format!("[tip] {}", t.text),
        Body::System(s) => format!("[system] {}", s.text),
    }
}

/// `{"conv","seq","from","text","server_time_ms"}`.
pub(crate) fn message_json(m: &pb::Message) -> Value {
    json!({
        "conv": m.conv_id,
        "seq": m.seq,
        "from": m.sender,
        "text": content_text(m.content.as_ref()),
        "server_time_ms": m.server_time_ms,
    })
}

/// `2026-01-02T03:04:05.678Z p:alice:bob #3 alice: hi`.
pub(crate) fn message_line(m: &pb::Message) -> String {
    format!(
        "{} {} #{} {}: {}",
        rfc3339_ms(m.server_time_ms),
        m.conv_id,
        m.seq,
        m.sender,
        content_text(m.content.as_ref())
    )
}

/// A conversation state as a JSON object.
pub(crate) fn state_json(s: &pb::ConversationState) -> Value {
    json!({
        "conv": s.conv_id,
        "max_seq": s.max_seq,
        "read_seq": s.read_seq,
        "unread": s.unread,
        "cleared_seq": s.cleared_seq,
        "pinned": s.pinned,
        "muted": s.muted,
        "hidden": s.hidden,
        "peer_read_seq": s.peer_read_seq,
        "pin_time_ms": s.pin_time_ms,
        "last_seq": s.last_message.as_ref().map(|m| m.seq),
    })
}

/// One human-readable line for a conversation state.
pub(crate) fn state_line(s: &pb::ConversationState) -> String {
    let mut flags = Vec::new();
    for (on, name) in [(s.pinned, "pinned"), (s.muted, "muted"), (s.hidden, "hidden")] {
        if on {
            flags.push(name);
        }
    }
    format!(
        "{}: max_seq {}, read_seq {}, unread {}, peer_read_seq {}, cleared_seq {}{}",
        s.conv_id,
        s.max_seq,
        s.read_seq,
        s.unread,
        s.peer_read_seq,
        s.cleared_seq,
        if flags.is_empty() { String::new() } else { format!(" [{}]", flags.join(", ")) }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn renders_content() {
        assert_eq!(content_text(Some(&missive_sdk::text_content("hi"))), "hi");
        let img = pb::Content { body: Some(Body::Image(pb::Image::default())), ..Default::default() };
        assert_eq!(content_text(Some(&img)), "[image]");
        assert_eq!(content_text(None), "[unsupported]");
    }
}
