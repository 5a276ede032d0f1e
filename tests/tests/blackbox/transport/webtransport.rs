//! WebTransport (spec/PROTOCOL.md 2.3, [QU-5]–[QU-8]) and the one-stream rule
//! of raw QUIC ([QU-2]): a WebTransport session at `/wt` carries the same
//! length-prefixed protocol as TCP, `/api/info` tells pages where it is, other
//! paths are refused, and a second stream closes the connection with 0x10.
//! The browser side (Chromium's WebTransport) runs in sdk/web/e2e.

use std::io::{Read, Write};
use std::net::TcpStream;

use missive_tests::wt::{self, WtOutcome};
use missive_tests::*;

fn quic_broker() -> BrokerProc {
    BrokerOpts::default().config("quic = \"127.0.0.1:0\"\n").spawn()
}

/// GET /api/info on the web listener, parsed.
fn api_info(b: &BrokerProc) -> serde_json::Value {
    let mut s = TcpStream::connect(b.listening.ws()).expect("connect http");
    s.write_all(b"GET /api/info HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("write");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b).expect("http body");
    serde_json::from_str(body).expect("json")
}

fn hash(b: &BrokerProc) -> String {
    b.listening.fields.get("cert_sha256").expect("broker printed cert_sha256=").clone()
}

#[test]
fn webtransport_session_speaks_the_protocol_with_tcp_clients() {
    let b = quic_broker();
    let quic = b.listening.quic.expect("quic=");
    let info = api_info(&b);
    let url = format!("https://127.0.0.1:{}/wt", quic.port());
    assert_eq!(info["webtransport"], url.as_str(), "{info}");
    assert_eq!(info["certHash"], hash(&b).as_str(), "the generated certificate's hash is offered");

    let local = wt::open_session(&url, &hash(&b));
    let mut web = RawClient::connect(local);
    let ok = web.hello(&mint("wendy"), "browser", Platform::Web).expect("HelloOk over WebTransport");
    assert_eq!(ok.user_id, "wendy");
    let mut tcp = b.client("tom", "laptop");

    let ack = web.send_ok(&direct("tom", "wendy"), "w-1", "hi tom, from WebTransport");
    assert_eq!(ack.seq, 1);
    let m = tcp.next_message_push(WAIT).expect("TCP client gets the WebTransport message");
    assert_eq!((m.sender.as_str(), text_of(&m)), ("wendy", "hi tom, from WebTransport"));

    tcp.send_ok(&direct("tom", "wendy"), "t-1", "hello wendy");
    let m = web.next_message_push(WAIT).expect("push over WebTransport");
    assert_eq!((m.sender.as_str(), text_of(&m)), ("tom", "hello wendy"));
    // Same session rules as TCP: history and a retried client_msg_id.
    let again = web.send_text(&direct("tom", "wendy"), "w-1", "hi tom, from WebTransport").expect("retry");
    assert!(again.duplicate && again.seq == 1, "a retry is acked as the original: {again:?}");
    let hist = web.history(&direct("tom", "wendy"), 0, 10).expect("history");
    assert_eq!(hist.messages.len(), 2);
}

#[test]
fn webtransport_refuses_other_paths_and_second_streams() {
    let b = quic_broker();
    let quic = b.listening.quic.expect("quic=");
    let h = hash(&b);
    let base = format!("https://127.0.0.1:{}", quic.port());
    assert_eq!(wt::wt_outcome(&format!("{base}/nope"), &h, 0, 0), WtOutcome::Rejected);
    // The transport limits leave a WebTransport client no second bidirectional
    // stream (it would stay blocked); a unidirectional one closes the session.
    assert_eq!(
        wt::wt_outcome(&format!("{base}/wt"), &h, 1, 1),
        WtOutcome::ClosedWith(0x10, "one stream per session".into())
    );
    assert_eq!(wt::raw_second_stream(quic, &h), Some(0x10), "raw QUIC allows one stream");
    // A session that opens its stream and says nothing is closed by the
    // handshake timeout like any TCP connection (not left open forever).
    assert_eq!(
        wt::wt_outcome(&format!("{base}/wt"), &h, 1, 0),
        WtOutcome::ClosedWith(0, "session ended".into())
    );
}

#[test]
fn a_wrong_certificate_hash_fails_the_webtransport_handshake() {
    let b = quic_broker();
    let quic = b.listening.quic.expect("quic=");
    let outcome = wt::wt_outcome(&format!("https://127.0.0.1:{}/wt", quic.port()), &"00".repeat(32), 0, 0);
    assert!(matches!(outcome, WtOutcome::Other(_)), "{outcome:?}");
}
