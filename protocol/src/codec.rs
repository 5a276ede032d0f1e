//! Frame codec for stream transports.
//!
//! Wire format: a 4-byte unsigned big-endian payload length `N`, then `N` bytes
//! of a protobuf-encoded [`pb::Frame`](crate::pb::Frame). `N` must be in
//! `1..=max_frame_size`.
//!
//! Invariants:
//! - [`FrameCodec::decode`] returns `Ok(None)` while a frame is incomplete and
//!   consumes nothing in that case;
//! - an oversized length is rejected from the 4 prefix bytes alone, before any
//!   buffer is grown or allocated for the payload;
//! - on error the buffer contents are unspecified: the caller closes the connection.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;

use crate::LENGTH_PREFIX_LEN;
use crate::error::ErrorCode;
use crate::pb::Frame;

/// Why a frame could not be encoded or decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    /// The length prefix (or an encoded frame) exceeds the maximum.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Declared or encoded payload length.
        len: u64,
        /// Configured maximum.
        max: u32,
    },
    /// A zero length prefix: frames are never empty.
    #[error("zero-length frame")]
    Empty,
    /// The payload is not a valid protobuf `Frame`.
    #[error("undecodable frame: {0}")]
    Malformed(#[from] prost::DecodeError),
}

impl CodecError {
    /// The protocol error code the server reports in its `Close` frame.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::TooLarge { .. } => ErrorCode::FrameTooLarge,
            Self::Empty | Self::Malformed(_) => ErrorCode::MalformedFrame,
        }
    }
}

/// Length-prefixed frame codec with a maximum payload size.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max_frame_size: u32,
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new(crate::DEFAULT_MAX_FRAME_SIZE)
    }
}

impl FrameCodec {
    /// A codec accepting payloads of at most `max_frame_size` bytes.
    pub fn new(max_frame_size: u32) -> Self {
        Self { max_frame_size }
    }

    /// The configured maximum payload size.
    pub fn max_frame_size(&self) -> u32 {
        self.max_frame_size
    }

    /// Appends the length prefix and the encoded frame to `dst`.
    pub fn encode(&self, frame: &Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        let len = frame.encoded_len();
        self.check_len(len as u64)?;
        dst.reserve(LENGTH_PREFIX_LEN + len);
        dst.put_u32(len as u32);
        frame.encode(dst).map_err(|_| CodecError::TooLarge { len: len as u64, max: self.max_frame_size })
    }

    /// Encodes one frame into a fresh, shareable buffer (prefix included).
    pub fn encode_to_bytes(&self, frame: &Frame) -> Result<Bytes, CodecError> {
        let mut buf = BytesMut::with_capacity(LENGTH_PREFIX_LEN + frame.encoded_len());
        self.encode(frame, &mut buf)?;
        Ok(buf.freeze())
    }

    /// Splits one complete payload off the front of `src`, without decoding it.
    /// `Ok(None)` means more bytes are needed; nothing is consumed then.
    pub fn split_payload(&self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        if src.len() < LENGTH_PREFIX_LEN {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]);
        self.check_len(u64::from(len))?;
        let total = LENGTH_PREFIX_LEN + len as usize;
        if src.len() < total {
            // Reserve only what the (already bounded) frame still needs.
            src.reserve(total - src.len());
            return Ok(None);
        }
        src.advance(LENGTH_PREFIX_LEN);
        Ok(Some(src.split_to(len as usize).freeze()))
    }

    /// Decodes one frame from the front of `src`. `Ok(None)` means more bytes
    /// are needed; nothing is consumed then.
    pub fn decode(&self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        match self.split_payload(src)? {
            None => Ok(None),
            Some(payload) => self.decode_payload(payload).map(Some),
        }
    }

    /// Decodes an unprefixed payload (one WebSocket binary message = one frame).
    pub fn decode_payload(&self, payload: Bytes) -> Result<Frame, CodecError> {
        self.check_len(payload.len() as u64)?;
        Ok(Frame::decode(payload)?)
    }

    fn check_len(&self, len: u64) -> Result<(), CodecError> {
        if len == 0 {
            return Err(CodecError::Empty);
        }
        if len > u64::from(self.max_frame_size) {
            return Err(CodecError::TooLarge { len, max: self.max_frame_size });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::{self, frame::Body};

    fn ping(nonce: u64) -> Frame {
        Frame { body: Some(Body::Ping(pb::Ping { nonce })) }
    }

    #[test]
    fn round_trip() {
        let codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        codec.encode(&ping(7), &mut buf).expect("encode");
        codec.encode(&ping(8), &mut buf).expect("encode");
        assert_eq!(codec.decode(&mut buf).expect("ok"), Some(ping(7)));
        assert_eq!(codec.decode(&mut buf).expect("ok"), Some(ping(8)));
        assert_eq!(codec.decode(&mut buf).expect("ok"), None);
        assert!(buf.is_empty());
    }

    #[test]
    fn worked_example_bytes() {
        // The byte-level example in spec/PROTOCOL.md: Ping { nonce: 1 }.
        let bytes = FrameCodec::default().encode_to_bytes(&ping(1)).expect("encode");
        assert_eq!(&bytes[..], &[0x00, 0x00, 0x00, 0x04, 0x3a, 0x02, 0x08, 0x01]);
    }

    #[test]
    fn incomplete_frames_consume_nothing() {
        let codec = FrameCodec::default();
        let full = codec.encode_to_bytes(&ping(300)).expect("encode");
        for cut in 0..full.len() {
            let mut buf = BytesMut::from(&full[..cut]);
            assert_eq!(codec.decode(&mut buf).expect("ok"), None, "cut at {cut}");
            assert_eq!(buf.len(), cut);
        }
    }

    #[test]
    fn rejects_4gib_prefix_without_allocating() {
        let codec = FrameCodec::default();
        let mut buf = BytesMut::with_capacity(8);
        buf.put_u32(u32::MAX);
        let cap_before = buf.capacity();
        let err = codec.decode(&mut buf).expect_err("must reject");
        assert_eq!(err, CodecError::TooLarge { len: u64::from(u32::MAX), max: codec.max_frame_size() });
        assert_eq!(err.code(), ErrorCode::FrameTooLarge);
        // No buffer growth happened for the declared 4 GiB payload.
        assert_eq!(buf.capacity(), cap_before);
    }

    #[test]
    fn rejects_length_just_over_max() {
        let codec = FrameCodec::new(16);
        let mut buf = BytesMut::new();
        buf.put_u32(17);
        assert!(matches!(codec.decode(&mut buf), Err(CodecError::TooLarge { len: 17, max: 16 })));
        let mut ok = BytesMut::new();
        ok.put_u32(16);
        assert_eq!(codec.decode(&mut ok).expect("incomplete is fine"), None);
    }

    #[test]
    fn rejects_zero_length_and_garbage() {
        let codec = FrameCodec::default();
        let mut buf = BytesMut::from(&[0u8, 0, 0, 0][..]);
        assert_eq!(codec.decode(&mut buf), Err(CodecError::Empty));
        let mut bad = BytesMut::from(&[0u8, 0, 0, 2, 0xff, 0xff][..]);
        let err = codec.decode(&mut bad).expect_err("garbage");
        assert_eq!(err.code(), ErrorCode::MalformedFrame);
    }

    #[test]
    fn encode_refuses_oversized_frame() {
        let codec = FrameCodec::new(8);
        let frame = Frame {
            body: Some(Body::Close(pb::Close { code: 1, message: "x".repeat(64), retry_after_ms: 0 })),
        };
        let mut buf = BytesMut::new();
        assert!(matches!(codec.encode(&frame, &mut buf), Err(CodecError::TooLarge { .. })));
        assert!(buf.is_empty());
    }

    #[test]
    fn unknown_fields_are_ignored() {
        // A Ping with an extra unknown field 15 (varint 5) still decodes.
        let codec = FrameCodec::default();
        let payload = Bytes::from_static(&[0x3a, 0x04, 0x08, 0x01, 0x78, 0x05]);
        assert_eq!(codec.decode_payload(payload).expect("decodes"), ping(1));
        // An unknown Frame body case (field 99) decodes as a Frame with no body.
        let unknown = Bytes::from_static(&[0x9a, 0x06, 0x00]);
        assert_eq!(codec.decode_payload(unknown).expect("decodes"), Frame { body: None });
    }
}
