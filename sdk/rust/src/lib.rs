//! Missive native client SDK for Rust: blocking, thread-based, no async runtime.
//!
//! Role: speak protocol v1 (spec/PROTOCOL.md) over TCP on behalf of an
//! application (or over TLS with feature `tls`, raw QUIC with feature `quic`).
//! - [`Connection`] (module [`conn`]) is one TCP connection: handshake, a
//!   reader thread, blocking typed requests with timeouts
//!   ([`Connection::call`] with any [`Call`], e.g. `pb::MarkRead`) and a
//!   bounded channel of pushed [`Event`]s.
//! - [`Client`] (module [`client`]) is the resilient layer an app uses:
//!   reconnects with backoff, resumes from the stored sync token, fills gaps
//!   so messages arrive in seq order exactly once per [`LocalState`], and
//!   resends unacknowledged messages with the same `client_msg_id`.
//!
//! Invariants:
//! - no panics on network input (no `unwrap`/`expect` on decoded data);
//! - every failure is an [`SdkError`]; server codes are kept numerically;
//! - sync tokens are opaque: stored and echoed, never parsed ([Y-7]).

pub mod client;
pub mod conn;
pub mod error;
pub mod lifecycle;
#[cfg(feature = "quic")]
pub mod quic;
#[cfg(feature = "tls")]
pub mod tls;

pub use client::{Client, ClientConfig, ClientEvent, Dial, LocalState};
pub use conn::{ConnectOptions, Connection, EVENT_CHANNEL_CAPACITY, Event};
pub use error::{SdkError, close_code_retryable, code_name};
pub use missive_protocol::pb;
pub use missive_protocol::{Call, Invited, UnexpectedReply};

use missive_protocol::{ConvId, UserId};

/// The one-to-one conversation id of users `a` and `b`: `p:{min}:{max}`
/// (bytewise order, [I-6]). Ids are not validated here beyond what
/// [`ConvId::direct`] does for valid ids; the server rejects malformed ones
/// with `3001 INVALID_CONV_ID`.
pub fn direct_conv(a: &str, b: &str) -> String {
    if let (Ok(ua), Ok(ub)) = (UserId::new(a), UserId::new(b))
        && let Ok(c) = ConvId::direct(&ua, &ub)
    {
        return c.as_str().to_owned();
    }
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    format!("p:{lo}:{hi}")
}

/// A fresh random client message id (32 lowercase hex characters).
pub fn new_client_msg_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// `Content` with a text body.
pub fn text_content(text: &str) -> pb::Content {
    pb::Content {
        body: Some(pb::content::Body::Text(pb::Text { text: text.to_owned() })),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_conv_sorts() {
        assert_eq!(direct_conv("bob", "alice"), "p:alice:bob");
        assert_eq!(direct_conv("alice", "bob"), "p:alice:bob");
        assert_eq!(direct_conv("bob", "Alice"), "p:Alice:bob");
    }

    #[test]
    fn client_msg_ids_are_valid_and_distinct() {
        let a = new_client_msg_id();
        assert_eq!(a.len(), 32);
        assert!(missive_protocol::ClientMsgId::new(a.clone()).is_ok());
        assert_ne!(a, new_client_msg_id());
    }
}
