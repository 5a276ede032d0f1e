//! Rate limits (issue #15, item 5): sends per device, handshakes per address,
//! requests per API credential — over TCP, WebSocket and REST alike. A
//! refusal carries `RATE_LIMITED` with `retry_after_ms` over the protocol
//! and 429 with `Retry-After` over REST; nothing refused is stored.
//!
//! Every loop is bounded in count; waits are the broker's own retry-after.

use std::time::Duration;

use missive_protocol::pb::{self, frame};
use missive_tests::api::Api;
use missive_tests::ws::WsClient;
use missive_tests::*;

/// 5 sends per second per device, burst 10 (the production default).
const FIVE_PER_SEC: &str = "[limits]\nmax_sends_per_sec = 5\n";

/// Pipelines `n` sends and returns (acked seqs, refusals).
fn burst(c: &mut RawClient, conv: &str, prefix: &str, n: usize) -> (Vec<u64>, Vec<pb::Error>) {
    let ids: Vec<u64> = (0..n)
        .map(|i| {
            c.send_request(pb::SendMessage {
                conv_id: conv.to_owned(),
                client_msg_id: format!("{prefix}{i}"),
                content: Some(text(&format!("{prefix}{i}"))),
                flags: None,
                first_attempt: false,
            })
        })
        .collect();
    let (mut acked, mut refused) = (Vec::new(), Vec::new());
    for id in ids {
        let r = c.wait_response(id, WAIT);
        match outcome(r) {
            Ok(pb::response::Result::SendAck(a)) => acked.push(a.seq),
            Ok(other) => panic!("unexpected result {other:?}"),
            Err(e) => refused.push(e),
        }
    }
    (acked, refused)
}

fn assert_rate_limited(e: &pb::Error, max_ms: u64) {
    assert_eq!(e.code, ErrorCode::RateLimited as u32, "{e:?}");
    assert!(e.retryable, "RATE_LIMITED is retryable: {e:?}");
    assert!((1..=max_ms).contains(&e.retry_after_ms), "retry_after_ms within 1..={max_ms}: {e:?}");
    assert!(e.message.contains("max_sends_per_sec"), "names the limit: {e:?}");
}

#[test]
fn sends_per_device_are_limited_over_tcp_and_nothing_refused_is_stored() {
    let b = BrokerOpts::default().config(FIVE_PER_SEC).spawn();
    let mut alice = RawClient::login(b.addr, "alice", "phone");
    let conv = direct("alice", "bob");
    let (acked, refused) = burst(&mut alice, &conv, "m", 20);
    assert!((10..=11).contains(&acked.len()), "the burst (2 x 5) passes, the rest is refused: {acked:?}");
    assert_eq!(acked.len() + refused.len(), 20);
    for e in &refused {
        assert_rate_limited(e, 200);
    }
    // Refused sends left no trace: the log holds exactly the acked ones, densely.
    let log = alice.pull_all(&conv);
    assert_eq!(log.len(), acked.len(), "only acked sends are stored");
    assert_dense(&log, 1, acked.len() as u64, "the log after a throttled burst");

    // After the advised wait, the device may send again.
    std::thread::sleep(Duration::from_millis(refused[0].retry_after_ms + 250));
    alice.send_ok(&conv, "after-wait", "after the wait");

    // Another device of the same user has its own budget.
    let mut tablet = RawClient::login(b.addr, "alice", "tablet");
    let (acked2, _) = burst(&mut tablet, &conv, "t", 5);
    assert_eq!(acked2.len(), 5, "a second device is not throttled by the first");
}

#[test]
fn sends_per_device_are_limited_over_websocket() {
    let b = BrokerOpts::default().config(FIVE_PER_SEC).spawn();
    let mut ws = WsClient::login(b.listening.ws(), "carol", "web");
    let conv = direct("carol", "dave");
    let ids: Vec<u64> = (0..16)
        .map(|i| {
            ws.send_request(pb::SendMessage {
                conv_id: conv.clone(),
                client_msg_id: format!("w{i}"),
                content: Some(text("hi")),
                flags: None,
                first_attempt: false,
            })
        })
        .collect();
    // Refusals are answered at once, accepted sends after their write: match by id.
    let mut pending: std::collections::HashSet<u64> = ids.into_iter().collect();
    let mut refused = 0;
    while !pending.is_empty() {
        let r = match ws.recv_frame(WAIT).and_then(|f| f.body) {
            Some(frame::Body::Response(r)) => r,
            Some(_) => continue,
            None => panic!("no response to {pending:?}"),
        };
        assert!(pending.remove(&r.id), "one answer per request: {}", r.id);
        if let Err(e) = outcome(r) {
            assert_rate_limited(&e, 200);
            refused += 1;
        }
    }
    assert!((5..=6).contains(&refused), "16 sends, burst 10: {refused} refused");
}

#[test]
fn handshakes_per_address_are_limited_with_a_retry_after() {
    let b = BrokerOpts::default().config("[limits]\nmax_handshakes_per_ip_per_sec = 2\n").spawn();
    // Burst: twice the rate.
    let mut open: Vec<RawClient> =
        (0..4).map(|i| RawClient::login(b.addr, "erin", &format!("d{i}"))).collect();
    let mut refused = RawClient::connect(b.addr);
    let close = refused.expect_close_code(ErrorCode::RateLimited);
    assert!((1..=1000).contains(&close.retry_after_ms), "Close carries retry_after_ms: {close:?}");
    // Connections already open are not affected.
    assert!(open.iter_mut().all(|c| c.is_alive()));
    std::thread::sleep(Duration::from_millis(close.retry_after_ms + 250));
    let _late = RawClient::login(b.addr, "erin", "late");
}

#[test]
fn requests_per_session_carry_a_retry_after() {
    let b = BrokerOpts::default().config("[limits]\nmax_requests_per_sec = 2\n").spawn();
    let mut c = RawClient::login(b.addr, "frank", "phone");
    let ids: Vec<u64> =
        (0..8).map(|_| c.send_request(pb::GetPresence { user_ids: vec!["frank".into()] })).collect();
    let errors: Vec<pb::Error> =
        ids.into_iter().filter_map(|id| outcome(c.wait_response(id, WAIT)).err()).collect();
    assert!(!errors.is_empty(), "8 requests against a burst of 4");
    for e in errors {
        assert_eq!(e.code, ErrorCode::RateLimited as u32);
        assert!((1..=500).contains(&e.retry_after_ms), "{e:?}");
    }
}

#[test]
fn rest_requests_per_credential_get_429_with_retry_after() {
    let b = BrokerOpts::default()
        .config("[api]\nmax_requests_per_sec = 2\nkeys = [{ name = \"app\", key = \"app-key-0123456789abcdef\" }]\n")
        .spawn();
    let api = Api::with_bearer(b.listening.api(), Some("app-key-0123456789abcdef".into()));
    let answers: Vec<_> = (0..8).map(|_| api.get("/v1/audit")).collect();
    let limited: Vec<_> = answers.iter().filter(|a| a.status == 429).collect();
    assert!(!limited.is_empty(), "8 requests against a burst of 4: {answers:?}");
    for a in limited {
        a.refused(429, ErrorCode::RateLimited as u32);
        let secs: u64 = a.retry_after.as_deref().and_then(|v| v.parse().ok()).expect("Retry-After seconds");
        assert!((1..=2).contains(&secs), "{a:?}");
    }
    // Another credential has its own bucket.
    assert_eq!(Api::new(b.listening.api()).get("/v1/audit").status, 200);
}

/// The REST listener holds at most `api.max_connections` connections,
/// authenticated or not: one more is not served until another closes.
#[test]
fn rest_connections_are_bounded() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let b = BrokerOpts::default().config("[api]\nmax_connections = 2\n").spawn();
    let addr = b.listening.api();
    let idle: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).expect("connect")).collect();
    let mut third = TcpStream::connect(addr).expect("the kernel backlog accepts the TCP connection");
    third.write_all(b"GET /healthz HTTP/1.1\r\nHost: api\r\n\r\n").expect("write");
    third.set_read_timeout(Some(Duration::from_millis(700))).expect("timeout");
    let mut buf = [0u8; 256];
    assert!(third.read(&mut buf).is_err(), "a third connection is not served while two are open");
    drop(idle);
    third.set_read_timeout(Some(WAIT)).expect("timeout");
    let n = third.read(&mut buf).expect("served once a connection closed");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
}
