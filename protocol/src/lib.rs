//! Missive wire protocol v1: the prost types generated from `spec/proto`, the
//! typed request → reply table ([`Call`]), the frame codec, domain
//! identifiers, error codes and access tokens.
//!
//! Role: everything a client or the broker needs to speak the protocol, and
//! nothing else.
//!
//! Invariants:
//! - no I/O, no clock, no storage: callers pass bytes and the current time in;
//! - `spec/proto` is the single source of truth for the schema; `spec/PROTOCOL.md`
//!   documents every frame kind and every [`ErrorCode`] defined here;
//! - decoding never panics and never allocates more than the configured
//!   maximum frame size for one frame.

pub mod call;
pub mod codec;
pub mod error;
pub mod ids;
pub mod token;

/// Types generated from `spec/proto` (package `missive.v1`).
#[allow(missing_docs, unreachable_pub, unused_qualifications, clippy::all, missing_debug_implementations)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/missive.v1.rs"));
}

pub use call::{Call, Invited, UnexpectedReply, request_frame};
pub use codec::{CodecError, FrameCodec};
pub use error::ErrorCode;
pub use ids::{BROADCAST_ALL, ClientMsgId, ConvId, ConvKind, DeviceId, GroupId, IdError, Seq, UserId};

/// Highest protocol major version this crate implements.
pub const PROTOCOL_VERSION: u32 = 1;

/// Default maximum frame size (payload bytes, excluding the 4-byte prefix).
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 1024 * 1024;

/// Width of the length prefix on stream transports (TCP, raw QUIC).
pub const LENGTH_PREFIX_LEN: usize = 4;
