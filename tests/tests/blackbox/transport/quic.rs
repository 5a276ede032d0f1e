//! Raw QUIC (spec/PROTOCOL.md 2.3): a native client on the Rust SDK over QUIC,
//! a TCP client and a WebSocket client (the browser's transport; the real
//! browser runs in sdk/web/e2e) exchange messages through one broker.

use missive_protocol::pb;
use missive_sdk::quic::{self, Trust};
use missive_sdk::{ConnectOptions, Event};
use missive_tests::ws::WsClient;
use missive_tests::*;

fn quic_broker() -> BrokerProc {
    BrokerOpts::default().config("quic = \"127.0.0.1:0\"\n").spawn()
}

#[test]
fn quic_tcp_and_websocket_clients_exchange_messages() {
    let b = quic_broker();
    let quic_addr = b.listening.quic.expect("broker printed quic=");
    let hash = b.listening.fields.get("cert_sha256").expect("broker printed cert_sha256=").clone();
    assert_eq!(hash.len(), 64, "hex SHA-256");

    let opts = ConnectOptions::new("unused", mint("carol"), "phone");
    let carol = quic::connect(&opts, quic_addr, &Trust::Sha256(hash.clone())).expect("QUIC session");
    assert_eq!(carol.user_id(), "carol");
    let mut dave_tcp = b.client("dave", "laptop");
    let mut erin_web = WsClient::login(b.listening.ws(), "erin", "browser");

    // QUIC -> TCP and QUIC -> WebSocket.
    for (peer, text) in [("dave", "hi dave over quic"), ("erin", "hi erin over quic")] {
        let conv = direct("carol", peer);
        let res = carol.request(pb::request::Op::Send(pb::SendMessage {
            conv_id: conv.clone(),
            client_msg_id: format!("q-{peer}"),
            content: Some(text_content(text)),
            flags: None,
            first_attempt: false,
        }));
        assert!(matches!(res, Ok(pb::response::Result::SendAck(ref a)) if a.seq == 1), "{res:?}");
    }
    let m = dave_tcp.next_message_push(WAIT).expect("TCP client gets the QUIC message");
    assert_eq!((m.sender.as_str(), text_of(&m)), ("carol", "hi dave over quic"));
    let m = erin_web.next_message_push(WAIT).expect("WebSocket client gets the QUIC message");
    assert_eq!(text_of(&m), "hi erin over quic");

    // TCP -> QUIC and WebSocket -> QUIC.
    dave_tcp.send_ok(&direct("carol", "dave"), "d-1", "hello carol from tcp");
    erin_web.send_ok(&direct("carol", "erin"), "e-1", "hello carol from the browser");
    let mut got = Vec::new();
    while got.len() < 2 {
        if let Event::Message(m) = carol.events().recv_timeout(WAIT).expect("push over QUIC") {
            got.push((m.sender.clone(), text_of(&m).to_owned()));
        }
    }
    got.sort();
    assert_eq!(
        got,
        vec![
            ("dave".to_owned(), "hello carol from tcp".to_owned()),
            ("erin".to_owned(), "hello carol from the browser".to_owned())
        ]
    );
    carol.close();
}

#[test]
fn quic_rejects_a_wrong_certificate_pin_and_keeps_tcp_rules() {
    let b = quic_broker();
    let quic_addr = b.listening.quic.expect("quic");
    let opts = ConnectOptions::new("unused", mint("frank"), "phone");
    let wrong = Trust::Sha256("00".repeat(32));
    assert!(quic::connect(&opts, quic_addr, &wrong).is_err(), "a wrong pin must fail the TLS handshake");

    // A bad token over QUIC gets the same Close as over TCP.
    let hash = b.listening.fields.get("cert_sha256").expect("hash").clone();
    let bad = ConnectOptions::new("unused", "not-a-token", "phone");
    match quic::connect(&bad, quic_addr, &Trust::Sha256(hash)) {
        Err(missive_sdk::SdkError::Closed { code, .. }) => assert_eq!(code, ErrorCode::TokenInvalid.as_u32()),
        other => panic!("expected Closed TOKEN_INVALID, got {other:?}"),
    }
}

fn text_content(s: &str) -> pb::Content {
    text(s)
}
