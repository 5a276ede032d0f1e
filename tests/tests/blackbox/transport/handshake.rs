//! Connection, framing and handshake: the Foundation acceptance list.
//! Every test starts its own broker on 127.0.0.1:0 with RocksDB in a temp dir.

use std::time::Duration;

use missive_protocol::pb::{self, frame, request};
use missive_tests::*;

/// Short handshake and idle timeouts (still generous for a loaded machine).
const SHORT_TIMEOUTS: &str =
    "[limits]\nhandshake_timeout_secs = 2\nidle_timeout_secs = 3\nping_interval_secs = 1\n";

/// Asserts `close` carries `code` (with a readable message).
fn assert_close(close: &pb::Close, code: ErrorCode) {
    assert_eq!(
        close.code,
        code.as_u32(),
        "expected Close {code}, got {} ({:?}) {:?}",
        close.code,
        ErrorCode::from_u32(close.code),
        close.message
    );
}

/// Hello is refused with Close{code} and the server then closes the connection.
fn assert_hello_refused(b: &BrokerProc, h: pb::Hello, code: ErrorCode) {
    let mut c = b.connect();
    match c.hello_frame(h) {
        Ok(ok) => panic!("hello accepted, expected Close {code}: {ok:?}"),
        Err(close) => assert_close(&close, code),
    }
    assert!(c.expect_closed(WAIT).is_some(), "close frame recorded");
    assert!(c.is_eof());
}

#[test]
fn hello_ok_fields_and_ping_pong() {
    let b = BrokerProc::start();
    let before = now_ms();
    let mut c = b.connect();
    let ok = c.hello(&mint("alice"), "phone", Platform::Ios).expect("hello accepted");
    let after = now_ms();
    assert_eq!(ok.version, 1);
    assert_eq!(ok.user_id, "alice");
    assert!(!ok.session_id.is_empty(), "session id set");
    assert_eq!(ok.sync_token, "", "a device never seen has no sync token");
    assert_eq!(ok.max_frame_size, 1024 * 1024);
    assert_eq!(ok.ping_interval_secs, 30);
    assert_eq!(ok.idle_timeout_secs, 90);
    // Same machine: the server clock is our clock (allow generous skew for scheduling).
    assert!(
        ok.server_time_ms + 60_000 >= before && ok.server_time_ms <= after + 60_000,
        "server time {ok:?}"
    );

    for nonce in [0u64, 1, 42, u64::MAX] {
        let t0 = now_ms();
        let pong = c.ping(nonce);
        assert_eq!(pong.nonce, nonce);
        assert!(pong.server_time_ms + 60_000 >= t0 && pong.server_time_ms <= now_ms() + 60_000, "{pong:?}");
    }

    // A second session gets another session id.
    let mut c2 = b.connect();
    let ok2 = c2.hello(&mint("alice"), "laptop", Platform::Linux).expect("hello accepted");
    assert_ne!(ok2.session_id, ok.session_id);
}

#[test]
fn worked_example_ping_bytes_get_a_pong() {
    // spec: Ping{nonce:1} = 00 00 00 04 3a 02 08 01
    let b = BrokerProc::start();
    let mut c = b.connect();
    c.hello(&mint("alice"), "phone", Platform::Linux).expect("hello");
    c.send_bytes(&[0x00, 0x00, 0x00, 0x04, 0x3a, 0x02, 0x08, 0x01]);
    match c.recv_frame(WAIT) {
        Some(pb::Frame { body: Some(frame::Body::Pong(p)) }) => assert_eq!(p.nonce, 1),
        other => panic!("expected Pong, got {other:?}"),
    }
}

#[test]
fn forged_token_is_token_invalid() {
    let b = BrokerProc::start();
    let forged = mint_with("another-secret-not-the-brokers-0000", "alice", 3600, None, None);
    assert_hello_refused(&b, hello_msg(&forged, "phone", Platform::Linux), ErrorCode::TokenInvalid);
    // Garbage is invalid too.
    assert_hello_refused(&b, hello_msg("not.a.jwt", "phone", Platform::Linux), ErrorCode::TokenInvalid);
    assert_hello_refused(&b, hello_msg("", "phone", Platform::Linux), ErrorCode::TokenInvalid);
}

#[test]
fn expired_token_is_token_expired() {
    let b = BrokerProc::start();
    let expired = mint_with(SECRET, "alice", -60, None, None);
    assert_hello_refused(&b, hello_msg(&expired, "phone", Platform::Linux), ErrorCode::TokenExpired);
}

#[test]
fn device_restricted_token_on_another_device_is_mismatch() {
    let b = BrokerProc::start();
    let t = mint_with(SECRET, "alice", 3600, Some("device-x"), None);
    assert_hello_refused(&b, hello_msg(&t, "device-y", Platform::Linux), ErrorCode::TokenDeviceMismatch);
    // Platform restriction as well.
    let t = mint_with(SECRET, "alice", 3600, None, Some(Platform::Ios));
    assert_hello_refused(&b, hello_msg(&t, "device-x", Platform::Android), ErrorCode::TokenDeviceMismatch);
    // The right device and platform are accepted (the test above can fail for the right reason only).
    let t = mint_with(SECRET, "alice", 3600, Some("device-x"), Some(Platform::Ios));
    let mut c = b.connect();
    let ok = c.hello(&t, "device-x", Platform::Ios).expect("restricted token on its own device");
    assert_eq!(ok.user_id, "alice");
    c.ping(7);
}

#[test]
fn unsupported_version_range_is_refused() {
    let b = BrokerProc::start();
    let mut h = hello_msg(&mint("alice"), "phone", Platform::Linux);
    h.min_version = 2;
    h.max_version = 3;
    assert_hello_refused(&b, h, ErrorCode::UnsupportedVersion);
    let mut h = hello_msg(&mint("alice"), "phone", Platform::Linux);
    h.min_version = 0;
    h.max_version = 0;
    assert_hello_refused(&b, h, ErrorCode::UnsupportedVersion);
    // A range containing 1 is accepted and negotiates 1.
    let mut h = hello_msg(&mint("alice"), "phone", Platform::Linux);
    h.min_version = 1;
    h.max_version = 5;
    let ok = b.connect().hello_frame(h).expect("range 1..=5 accepted");
    assert_eq!(ok.version, 1);
}

#[test]
fn invalid_device_or_platform_is_invalid_argument() {
    let b = BrokerProc::start();
    assert_hello_refused(&b, hello_msg(&mint("alice"), "", Platform::Linux), ErrorCode::InvalidArgument);
    assert_hello_refused(
        &b,
        hello_msg(&mint("alice"), "bad device", Platform::Linux),
        ErrorCode::InvalidArgument,
    );
    assert_hello_refused(
        &b,
        hello_msg(&mint("alice"), &"d".repeat(65), Platform::Linux),
        ErrorCode::InvalidArgument,
    );
    assert_hello_refused(
        &b,
        hello_msg(&mint("alice"), "phone", Platform::Unspecified),
        ErrorCode::InvalidArgument,
    );
    let mut h = hello_msg(&mint("alice"), "phone", Platform::Linux);
    h.client_version = "v".repeat(65);
    assert_hello_refused(&b, h, ErrorCode::InvalidArgument);
}

#[test]
fn request_before_hello_is_handshake_required() {
    let b = BrokerProc::start();
    let mut c = b.connect();
    c.send_frame(&frame_of(frame::Body::Request(pb::Request {
        id: 1,
        op: Some(request::Op::Sync(pb::SyncRequest::default())),
    })));
    c.expect_close_code(ErrorCode::HandshakeRequired);
    // A Ping before Hello as well.
    let mut c = b.connect();
    c.send_frame(&frame_of(frame::Body::Ping(pb::Ping { nonce: 1 })));
    c.expect_close_code(ErrorCode::HandshakeRequired);
}

#[test]
fn malformed_frame_closes_only_that_connection() {
    let b = BrokerProc::start();
    let mut other = b.client("bob", "phone");
    let mut c = b.client("alice", "phone");
    // Length 2, payload ff ff: an unterminated varint tag.
    c.send_bytes(&[0, 0, 0, 2, 0xff, 0xff]);
    c.expect_close_code(ErrorCode::MalformedFrame);
    // The other connection is unaffected.
    assert_eq!(other.ping(99).nonce, 99);
    let conv = direct("alice", "bob");
    other.send_ok(&conv, "after-malformed", "still here");
    // Malformed before the handshake too.
    let mut c = b.connect();
    c.send_bytes(&[0, 0, 0, 3, 0x0a, 0x05, 0x01]);
    c.expect_close_code(ErrorCode::MalformedFrame);
    assert_eq!(other.ping(100).nonce, 100);
}

#[test]
fn oversized_length_prefix_is_frame_too_large() {
    let b = BrokerProc::start();
    let mut keep = b.client("bob", "phone");
    for prefix in [u32::MAX, 1024 * 1024 + 1] {
        let mut c = b.client("alice", "phone");
        // Only the prefix and a few bytes (one write): the server must not wait for the payload.
        let mut bytes = prefix.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0x3a, 0x02]);
        c.send_bytes(&bytes);
        c.expect_close_code(ErrorCode::FrameTooLarge);
    }
    // Before the handshake as well.
    let mut c = b.connect();
    c.send_bytes(&u32::MAX.to_be_bytes());
    c.expect_close_code(ErrorCode::FrameTooLarge);
    assert_eq!(keep.ping(5).nonce, 5);
}

#[test]
fn zero_length_frame_is_malformed() {
    let b = BrokerProc::start();
    let mut c = b.client("alice", "phone");
    c.send_bytes(&[0, 0, 0, 0]);
    c.expect_close_code(ErrorCode::MalformedFrame);
}

#[test]
fn handshake_and_idle_timeouts() {
    let b = BrokerOpts::default().config(SHORT_TIMEOUTS).spawn();
    // No Hello at all.
    let mut silent = b.connect();
    silent.expect_close_code(ErrorCode::HandshakeTimeout);
    // A client that says Hello in time is accepted and told the configured values.
    let mut c = b.connect();
    let ok = c.hello(&mint("alice"), "phone", Platform::Linux).expect("hello in time");
    assert_eq!(ok.idle_timeout_secs, 3);
    assert_eq!(ok.ping_interval_secs, 1);
    // Then it goes quiet: idle timeout.
    c.expect_close_code(ErrorCode::IdleTimeout);
}

#[test]
fn keepalive_pings_prevent_idle_timeout() {
    let b = BrokerOpts::default().config(SHORT_TIMEOUTS).spawn();
    let mut c = b.client("alice", "phone");
    // Stay active for ~7 s (over two idle periods) by pinging every ~300 ms.
    for i in 0..22 {
        assert_eq!(c.ping(i).nonce, i);
        assert!(c.recv_frame(Duration::from_millis(300)).is_none(), "nothing unsolicited expected");
        assert!(!c.is_eof(), "closed despite pings");
    }
    assert!(c.close.is_none(), "closed despite pings: {:?}", c.close);
}

#[test]
fn unknown_request_op_keeps_connection_open() {
    let b = BrokerProc::start();
    let mut c = b.client("alice", "phone");
    c.send_frame(&frame_of(frame::Body::Request(pb::Request { id: 77, op: None })));
    let r = c.wait_response(77, WAIT);
    assert_error(outcome(r), ErrorCode::UnknownRequest, "request without op");
    // An op number this server does not know (field 99 of Request) is the same.
    // Request{id: 78, field 99: empty message} inside Frame.request (field 3).
    let request = [0x08, 78, 0x9a, 0x06, 0x00];
    let mut payload = vec![0x1a, request.len() as u8];
    payload.extend_from_slice(&request);
    let mut bytes = (payload.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(&payload);
    c.send_bytes(&bytes);
    let r = c.wait_response(78, WAIT);
    assert_error(outcome(r), ErrorCode::UnknownRequest, "request with an unknown op");
    // Still open and usable.
    assert_eq!(c.ping(3).nonce, 3);
    let s = c.sync("", 0).expect("sync after unknown op");
    assert!(s.conversations.is_empty());
}

#[test]
fn second_hello_and_client_only_violations_are_unexpected_frame() {
    let b = BrokerProc::start();
    let mut c = b.client("alice", "phone");
    c.send_frame(&frame_of(frame::Body::Hello(hello_msg(&mint("alice"), "phone", Platform::Linux))));
    c.expect_close_code(ErrorCode::UnexpectedFrame);

    // A server-only frame kind from a client.
    let mut c = b.client("alice", "phone");
    c.send_frame(&frame_of(frame::Body::Pong(pb::Pong { nonce: 1, server_time_ms: 1 })));
    c.expect_close_code(ErrorCode::UnexpectedFrame);

    // A Frame with no body (an unknown body case, field 99).
    let mut c = b.client("alice", "phone");
    c.send_bytes(&[0, 0, 0, 3, 0x9a, 0x06, 0x00]);
    c.expect_close_code(ErrorCode::UnexpectedFrame);
}

#[test]
fn push_ack_is_accepted_silently() {
    let b = BrokerProc::start();
    let mut c = b.client("alice", "phone");
    c.send_frame(&frame_of(frame::Body::PushAck(pb::PushAck {
        delivered: vec![pb::Delivered { conv_id: direct("alice", "bob"), seq: 3 }],
    })));
    assert_eq!(c.ping(11).nonce, 11);
    assert!(c.close.is_none());
}

#[test]
fn hello_checks_run_in_the_specified_order() {
    let b = BrokerProc::start();
    let forged_expired = mint_with("another-secret-not-the-brokers-0000", "alice", -60, None, None);
    let expired_restricted = mint_with(SECRET, "alice", -60, Some("device-x"), None);
    // 1 version before 2 device id.
    let mut h = hello_msg(&forged_expired, "bad device", Platform::Unspecified);
    h.min_version = 2;
    h.max_version = 2;
    assert_hello_refused(&b, h, ErrorCode::UnsupportedVersion);
    // 2 device id before 5 token.
    assert_hello_refused(
        &b,
        hello_msg(&forged_expired, "bad device", Platform::Linux),
        ErrorCode::InvalidArgument,
    );
    // 3 platform before 5 token.
    assert_hello_refused(
        &b,
        hello_msg(&forged_expired, "phone", Platform::Unspecified),
        ErrorCode::InvalidArgument,
    );
    // 5 signature before 6 expiry.
    assert_hello_refused(&b, hello_msg(&forged_expired, "phone", Platform::Linux), ErrorCode::TokenInvalid);
    // 6 expiry before 7 device restriction.
    assert_hello_refused(
        &b,
        hello_msg(&expired_restricted, "device-y", Platform::Linux),
        ErrorCode::TokenExpired,
    );
}

#[test]
fn frames_after_an_accepted_hello_are_handled_in_ready() {
    // [C-4]/[F-3]: Hello, Ping and a Request in one write; the Ping is answered, not refused.
    let b = BrokerProc::start();
    let mut c = b.connect();
    let codec = missive_protocol::FrameCodec::default();
    let mut bytes = Vec::new();
    for f in [
        frame_of(frame::Body::Hello(hello_msg(&mint("alice"), "phone", Platform::Linux))),
        frame_of(frame::Body::Ping(pb::Ping { nonce: 5 })),
        frame_of(frame::Body::Request(pb::Request {
            id: 9,
            op: Some(request::Op::Sync(pb::SyncRequest::default())),
        })),
    ] {
        bytes.extend_from_slice(&codec.encode_to_bytes(&f).expect("encode"));
    }
    c.send_bytes(&bytes);
    match c.recv_frame(WAIT) {
        Some(pb::Frame { body: Some(frame::Body::HelloOk(ok)) }) => assert_eq!(ok.user_id, "alice"),
        other => panic!("expected HelloOk first, got {other:?}"),
    }
    assert_eq!(c.ping(6).nonce, 6, "connection usable");
    let r = c.wait_response(9, WAIT);
    assert!(outcome(r).is_ok(), "pipelined sync answered");
    // The Pong for nonce 5 arrived too (kept while waiting).
    assert_eq!(c.ping(7).nonce, 7);
}

#[test]
fn frames_split_across_writes_are_reassembled() {
    let b = BrokerProc::start();
    let mut c = b.client("alice", "phone");
    let codec = missive_protocol::FrameCodec::default();
    let ping = codec.encode_to_bytes(&frame_of(frame::Body::Ping(pb::Ping { nonce: 300 }))).expect("encode");
    let (last, head) = ping.split_last().expect("non-empty");
    for byte in head {
        c.send_bytes(&[*byte]);
        // Separate segments; and nothing may be answered before the frame is complete.
        if let Some(f) = c.recv_frame(Duration::from_millis(10)) {
            panic!("answer to an incomplete frame: {f:?}");
        }
    }
    c.send_bytes(&[*last]);
    match c.recv_frame(WAIT) {
        Some(pb::Frame { body: Some(frame::Body::Pong(p)) }) => assert_eq!(p.nonce, 300),
        other => panic!("expected Pong, got {other:?}"),
    }
}

#[test]
fn close_frame_from_client_is_unexpected() {
    let b = BrokerProc::start();
    let mut c = b.client("alice", "phone");
    c.send_frame(&frame_of(frame::Body::Close(pb::Close {
        code: 1000,
        message: "bye".into(),
        retry_after_ms: 0,
    })));
    c.expect_close_code(ErrorCode::UnexpectedFrame);
    // In CONNECTED, any non-Hello kind is HANDSHAKE_REQUIRED, including an unknown body.
    let mut c = b.connect();
    c.send_bytes(&[0, 0, 0, 3, 0x9a, 0x06, 0x00]);
    c.expect_close_code(ErrorCode::HandshakeRequired);
}
