//! Protocol pieces the scenarios share: frame builders, token minting, the
//! run's user naming, and the send-time stamp carried in message text.
//!
//! Requests are built and their replies read through the protocol crate's
//! [`Call`] table ([`missive_protocol::request_frame`], [`reply`]); the
//! frames are then encoded by `Net::send` straight into the connection's
//! reused write buffer.
//!
//! Invariants:
//! - every user id built here is valid (`[A-Za-z0-9_.@-]`, at most 64 bytes)
//!   and unique to one run (a random run prefix), so conversations on a
//!   long-running broker start empty and their seqs start at 1;
//! - a stamped text starts with `<nanoseconds since the process epoch, hex>.`
//!   and is padded with `x` to the requested size; [`parse_stamp`] never
//!   panics on text it did not produce.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use missive_protocol::pb::{self, content, frame, response};
use missive_protocol::token::{self, Claims, Role};
use missive_protocol::{Call, PROTOCOL_VERSION, UserId, request_frame};

/// Lifetime of minted tokens (the longest run is far shorter).
const TOKEN_TTL_SECS: u64 = 6 * 3600;

/// The instant all stamps are measured from (one per process).
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds since the process epoch (monotonic).
pub(crate) fn now_ns() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

/// Unix time in seconds.
pub(crate) fn unix_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A short random prefix that makes this run's user ids unique.
pub(crate) fn run_prefix() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let mix = (u64::from(nanos) ^ (u64::from(std::process::id()) << 32) ^ unix_secs())
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!("lg{:08x}", mix >> 32)
}

/// The direct conversation id of two users (`p:{lower}:{higher}`, bytewise).
pub(crate) fn direct_conv(a: &str, b: &str) -> String {
    if a <= b { format!("p:{a}:{b}") } else { format!("p:{b}:{a}") }
}

/// Mints a user token for `user` with `secret`.
pub(crate) fn mint(secret: &str, user: &str) -> anyhow::Result<String> {
    let now = unix_secs();
    let claims = Claims {
        user: UserId::new(user).with_context(|| format!("user id {user:?}"))?,
        expires_at: now + TOKEN_TTL_SECS,
        // A little in the past: tolerate clock skew with a remote broker.
        issued_at_ms: now.saturating_sub(60) * 1000,
        role: Role::User,
        device: None,
        platform: None,
    };
    Ok(token::mint(secret.as_bytes(), &claims))
}

/// `Hello` for `token` on `device`.
pub(crate) fn hello(token: String, device: &str) -> pb::Frame {
    pb::Frame {
        body: Some(frame::Body::Hello(pb::Hello {
            min_version: PROTOCOL_VERSION,
            max_version: PROTOCOL_VERSION,
            token,
            device_id: device.to_owned(),
            platform: pb::Platform::Linux as i32,
            client_version: concat!("missive-loadgen/", env!("CARGO_PKG_VERSION")).to_owned(),
        })),
    }
}

/// `SendMessage` of a text.
pub(crate) fn send_text(id: u64, conv: &str, client_msg_id: String, text: String) -> pb::Frame {
    request_frame(
        id,
        pb::SendMessage {
            conv_id: conv.to_owned(),
            client_msg_id,
            content: Some(pb::Content {
                body: Some(content::Body::Text(pb::Text { text })),
                ..Default::default()
            }),
            flags: None,
            // loadgen never resends: every id is sent once ([S-7]).
            first_attempt: true,
        },
    )
}

/// A lifecycle request on message `seq` (the `mixed` scenario).
pub(crate) fn lifecycle(id: u64, conv: &str, seq: u64, op: LifeOp) -> pb::Frame {
    let conv_id = conv.to_owned();
    match op {
        LifeOp::React => request_frame(id, pb::React { conv_id, seq, key: "👍".to_owned(), remove: false }),
        LifeOp::Recall => request_frame(id, pb::RecallMessage { conv_id, seq }),
        LifeOp::Edit => request_frame(
            id,
            pb::EditMessage {
                conv_id,
                seq,
                content: Some(pb::Content {
                    body: Some(content::Body::Text(pb::Text { text: "edited".to_owned() })),
                    ..Default::default()
                }),
            },
        ),
    }
}

/// The lifecycle requests of the `mixed` scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LifeOp {
    React,
    Recall,
    Edit,
}

/// `SyncRequest`.
pub(crate) fn sync(id: u64, sync_token: String, limit: u32) -> pb::Frame {
    request_frame(id, pb::SyncRequest { sync_token, limit })
}

/// `PullRequest` for `from..=to`.
pub(crate) fn pull(id: u64, conv: &str, from_seq: u64, to_seq: u64, limit: u32) -> pb::Frame {
    request_frame(id, pb::PullRequest { conv_id: conv.to_owned(), from_seq, to_seq, limit })
}

/// The typed reply of a `Response` to a `C` request, or a short description
/// of what went wrong (`error CODE`, or the unexpected result kind), stable
/// enough to count as an error kind. A success without a result is `ok` ([V-6]).
pub(crate) fn reply<C: Call>(resp: pb::Response) -> Result<C::Reply, String> {
    if let Some(e) = resp.error {
        return Err(format!("error {}", e.code));
    }
    C::reply(resp.result.unwrap_or(response::Result::Ok(pb::Ok {}))).map_err(|e| e.to_string())
}

/// Cumulative `PushAck` for one conversation.
pub(crate) fn push_ack(conv: &str, seq: u64) -> pb::Frame {
    pb::Frame {
        body: Some(frame::Body::PushAck(pb::PushAck {
            delivered: vec![pb::Delivered { conv_id: conv.to_owned(), seq }],
        })),
    }
}

/// `Ping`.
pub(crate) fn ping(nonce: u64) -> pb::Frame {
    pb::Frame { body: Some(frame::Body::Ping(pb::Ping { nonce })) }
}

/// A text of `size` bytes (at least the stamp) that carries `sent_ns`.
pub(crate) fn stamp_text(sent_ns: u64, size: usize) -> String {
    let mut s = format!("{sent_ns:x}.");
    if s.len() < size {
        s.extend(std::iter::repeat_n('x', size - s.len()));
    }
    s
}

/// The send time carried by a stamped text, if it is one.
pub(crate) fn parse_stamp(text: &[u8]) -> Option<u64> {
    let end = text.iter().position(|&b| b == b'.')?;
    u64::from_str_radix(std::str::from_utf8(&text[..end]).ok()?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trips_and_pads() {
        let t = stamp_text(0xdead_beef, 64);
        assert_eq!(t.len(), 64);
        assert_eq!(parse_stamp(t.as_bytes()), Some(0xdead_beef));
        assert_eq!(parse_stamp(b"no stamp"), None);
        assert_eq!(parse_stamp(b"zz.x"), None);
        assert_eq!(parse_stamp(b".x"), None);
        // A size smaller than the stamp keeps the stamp whole.
        assert_eq!(parse_stamp(stamp_text(u64::MAX, 1).as_bytes()), Some(u64::MAX));
    }

    #[test]
    fn replies_are_typed_or_a_countable_error_kind() {
        let ack = pb::SendAck { seq: 4, ..Default::default() };
        let ok = pb::Response { id: 1, error: None, result: Some(response::Result::SendAck(ack.clone())) };
        assert_eq!(reply::<pb::SendMessage>(ok), Ok(ack));
        let refused = pb::Response {
            id: 2,
            error: Some(pb::Error { code: 3002, message: "no".into(), retryable: false, retry_after_ms: 0 }),
            result: None,
        };
        assert_eq!(reply::<pb::SendMessage>(refused), Err("error 3002".to_owned()));
        let wrong = pb::Response { id: 3, error: None, result: None };
        assert_eq!(
            reply::<pb::SendMessage>(wrong),
            Err("SendMessage was answered with a `ok` result, expected `send_ack`".to_owned())
        );
        // The frame builders go through the same table.
        let f = send_text(9, "p:a:b", "1".into(), "t".into());
        let Some(frame::Body::Request(r)) = f.body else { panic!("not a request") };
        assert_eq!(r.id, 9);
        assert_eq!(r.op.as_ref().map(missive_protocol::call::request_name), Some("SendMessage"));
    }

    #[test]
    fn direct_conv_sorts_and_ids_are_valid() {
        assert_eq!(direct_conv("b", "a"), "p:a:b");
        let p = run_prefix();
        assert!(UserId::new(format!("{p}r99999")).is_ok());
        assert!(mint("0123456789abcdef0123", &format!("{p}s1")).is_ok());
    }
}
