//! Builders of encoded server frames. Frames are encoded once and shared
//! (`Bytes`) by every connection they go to.

use bytes::Bytes;
use missive_protocol::pb::{self, frame, push, response};
use missive_protocol::{ErrorCode, FrameCodec};

use crate::error::Reject;

/// Frames the server builds are far below any configured maximum except for
/// message pages, which are bounded by page size × max content size; encode
/// with an unbounded codec so a page never fails to encode.
fn encode(body: frame::Body) -> Bytes {
    let frame = pb::Frame { body: Some(body) };
    match FrameCodec::new(u32::MAX).encode_to_bytes(&frame) {
        Ok(b) => b,
        Err(_) => Bytes::new(),
    }
}

pub(crate) fn response(request_id: u64, result: response::Result) -> Bytes {
    encode(frame::Body::Response(pb::Response { id: request_id, error: None, result: Some(result) }))
}

pub(crate) fn error(request_id: u64, r: &Reject) -> Bytes {
    encode(frame::Body::Response(pb::Response {
        id: request_id,
        error: Some(r.code.with_message(r.message.clone())),
        result: None,
    }))
}

pub(crate) fn push(event: push::Event) -> Bytes {
    encode(frame::Body::Push(pb::Push { event: Some(event) }))
}

pub(crate) fn close(code: ErrorCode, message: &str) -> Bytes {
    encode(frame::Body::Close(pb::Close { code: code.as_u32(), message: message.to_owned() }))
}

pub(crate) fn hello_ok(ok: pb::HelloOk) -> Bytes {
    encode(frame::Body::HelloOk(ok))
}

pub(crate) fn pong(nonce: u64, server_time_ms: u64) -> Bytes {
    encode(frame::Body::Pong(pb::Pong { nonce, server_time_ms }))
}
