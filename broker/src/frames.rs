//! Builders of encoded server frames. Frames are encoded once and shared
//! (`Bytes`) by every connection they go to.
//!
//! Invariant: a builder never returns bytes that are not a whole frame. A
//! frame the codec refuses (only a payload over 4 GiB could be) is logged and
//! replaced by a small frame that says so: an INTERNAL error for a response,
//! an empty push (ignored by clients, [V-4]) for a push.

use bytes::Bytes;
use missive_protocol::pb::{self, frame, push, response};
use missive_protocol::{ErrorCode, FrameCodec};

use crate::error::Reject;

/// Server frames are bounded by the configured limits except for message
/// pages, which are bounded by page size × max content size; encode with an
/// unbounded codec so a page never fails to encode.
fn try_encode(body: frame::Body) -> Result<Bytes, missive_protocol::CodecError> {
    FrameCodec::new(u32::MAX).encode_to_bytes(&pb::Frame { body: Some(body) })
}

/// Encodes a frame the codec cannot refuse (small, fixed-size fields only).
fn encode_small(body: frame::Body) -> Bytes {
    match try_encode(body) {
        Ok(b) => b,
        Err(e) => {
            // Unreachable for these frames; never put a partial frame on the wire.
            tracing::error!(error = %e, "small frame failed to encode");
            Bytes::from_static(&[0, 0, 0, 0])
        }
    }
}

pub(crate) fn response(request_id: u64, result: response::Result) -> Bytes {
    match try_encode(frame::Body::Response(pb::Response {
        id: request_id,
        error: None,
        result: Some(result),
    })) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, request_id, "response failed to encode");
            error(request_id, &Reject::new(ErrorCode::Internal, "response too large to encode"))
        }
    }
}

pub(crate) fn error(request_id: u64, r: &Reject) -> Bytes {
    encode_small(frame::Body::Response(pb::Response {
        id: request_id,
        error: Some(pb::Error {
            retry_after_ms: r.retry_after_ms.unwrap_or(0),
            ..r.code.with_message(r.message.clone())
        }),
        result: None,
    }))
}

/// The frame of a typed reply.
pub(crate) fn reply(request_id: u64, reply: Result<response::Result, Reject>) -> Bytes {
    match reply {
        Ok(res) => response(request_id, res),
        Err(r) => error(request_id, &r),
    }
}

/// `Push{message}` built around the message's stored encoding: the bytes
/// `push(push::Event::Message(m))` gives for the message `encoded` decodes
/// to, without building, cloning or encoding the message again (a send
/// encodes its message once, for the log and every push: issue #17).
pub(crate) fn push_message(encoded: &[u8]) -> Bytes {
    use bytes::{BufMut, BytesMut};
    use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};
    // Frame.push = 5 (LEN) { Push.message = 1 (LEN) { encoded } }; 1-byte keys.
    let push_len = 1 + encoded_len_varint(encoded.len() as u64) + encoded.len();
    let frame_len = 1 + encoded_len_varint(push_len as u64) + push_len;
    let Ok(prefix) = u32::try_from(frame_len) else {
        tracing::error!(len = frame_len, "push failed to encode; sending an empty push");
        return encode_small(frame::Body::Push(pb::Push { event: None }));
    };
    let mut buf = BytesMut::with_capacity(4 + frame_len);
    buf.put_u32(prefix);
    encode_key(5, WireType::LengthDelimited, &mut buf);
    encode_varint(push_len as u64, &mut buf);
    encode_key(1, WireType::LengthDelimited, &mut buf);
    encode_varint(encoded.len() as u64, &mut buf);
    buf.put_slice(encoded);
    buf.freeze()
}

pub(crate) fn push(event: push::Event) -> Bytes {
    match try_encode(frame::Body::Push(pb::Push { event: Some(event) })) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "push failed to encode; sending an empty push");
            encode_small(frame::Body::Push(pb::Push { event: None }))
        }
    }
}

pub(crate) fn close(code: ErrorCode, message: &str) -> Bytes {
    close_retry(code, message, 0)
}

/// A Close telling the client to wait `retry_after_ms` before reconnecting (0 = unset).
pub(crate) fn close_retry(code: ErrorCode, message: &str, retry_after_ms: u64) -> Bytes {
    encode_small(frame::Body::Close(pb::Close {
        code: code.as_u32(),
        message: message.to_owned(),
        retry_after_ms,
    }))
}

pub(crate) fn hello_ok(ok: pb::HelloOk) -> Bytes {
    encode_small(frame::Body::HelloOk(ok))
}

pub(crate) fn pong(nonce: u64, server_time_ms: u64) -> Bytes {
    encode_small(frame::Body::Pong(pb::Pong { nonce, server_time_ms }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every builder returns one whole frame that decodes to what was built.
    #[test]
    fn every_builder_returns_a_whole_decodable_frame() {
        let codec = FrameCodec::new(1 << 20);
        let decode = |b: Bytes| {
            let mut buf = bytes::BytesMut::from(&b[..]);
            let f = codec.decode(&mut buf).expect("valid frame").expect("whole frame");
            assert!(buf.is_empty(), "exactly one frame");
            f.body.expect("a body")
        };
        let ok = response::Result::Ok(pb::Ok {});
        assert!(
            matches!(decode(response(7, ok.clone())), frame::Body::Response(r) if r.id == 7 && r.result == Some(ok))
        );
        let rej = Reject::new(ErrorCode::Storage, "nothing was changed");
        match decode(reply(8, Err(rej))) {
            frame::Body::Response(r) => {
                assert_eq!(r.id, 8);
                assert_eq!(r.error.map(|e| e.code), Some(ErrorCode::Storage.as_u32()));
            }
            other => panic!("expected a response, got {other:?}"),
        }
        let ev = push::Event::Settings(pb::UserSettings { global_dnd: true });
        assert!(matches!(decode(push(ev)), frame::Body::Push(p) if p.event.is_some()));
        assert!(
            matches!(decode(close(ErrorCode::SlowConsumer, "bye")), frame::Body::Close(c) if c.code == ErrorCode::SlowConsumer.as_u32())
        );
        assert!(matches!(decode(pong(3, 4)), frame::Body::Pong(p) if p.nonce == 3));
    }
}
