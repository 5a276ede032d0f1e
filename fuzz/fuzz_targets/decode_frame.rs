//! Fuzzes everything that decodes untrusted bytes from a client: the length-prefixed
//! stream codec, the unprefixed (WebSocket) payload decoder and the token verifier.
//!
//! Invariant under test: none of them panics, hangs or over-allocates on any input, and
//! `decode` makes progress on every frame it returns.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use missive_protocol::{FrameCodec, token};

/// Small enough that libFuzzer reaches the oversized-prefix path, big enough for real frames.
const MAX_FRAME: u32 = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let codec = FrameCodec::new(MAX_FRAME);

    // Stream transport: decode frames until the codec wants more bytes or rejects the input.
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.len();
        match codec.decode(&mut buf) {
            Ok(Some(frame)) => {
                assert!(buf.len() < before, "decode returned a frame without consuming input");
                reencode_is_stable(&codec, &frame);
            }
            Ok(None) => {
                assert_eq!(buf.len(), before, "Ok(None) must consume nothing");
                break;
            }
            Err(_) => break,
        }
    }

    // WebSocket transport: the whole input is one unprefixed payload.
    if let Ok(frame) = codec.decode_payload(Bytes::copy_from_slice(data)) {
        reencode_is_stable(&codec, &frame);
    }

    // Hello.token arrives as a protobuf string; feed it arbitrary (lossy UTF-8) text.
    let _ = token::verify(b"k", &String::from_utf8_lossy(data), 0);
});

/// encode(decode(encode(f))) == encode(f): the canonical encoding of a decoded frame is a
/// fixed point. Compared as bytes, not with `==`, because frames may carry NaN doubles.
fn reencode_is_stable(codec: &FrameCodec, frame: &missive_protocol::pb::Frame) {
    // A frame can re-encode larger than it arrived (e.g. defaults filled into map entries).
    let Ok(first) = codec.encode_to_bytes(frame) else { return };
    let mut again = BytesMut::from(&first[..]);
    let decoded = codec
        .decode(&mut again)
        .expect("a frame we encoded must decode")
        .expect("a frame we encoded is complete");
    let second = codec.encode_to_bytes(&decoded).expect("same frame, same size");
    assert_eq!(first, second, "re-encoding a decoded frame is not stable");
}
