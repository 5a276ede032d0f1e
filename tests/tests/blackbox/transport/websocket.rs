//! The WebSocket/HTTP listener, black-box over loopback: WebSocket clients are
//! protocol sessions like TCP ones (spec/PROTOCOL.md section 2.2), framing
//! violations close with the documented codes, limits and timeouts apply,
//! and the plain HTTP routes answer.

use std::time::Duration;

use missive_protocol::pb::{self, frame, push};
use missive_tests::ws::{WsClient, WsRecv, http_get};
use missive_tests::*;
use tungstenite::{Bytes, Message};

#[test]
fn websocket_and_tcp_clients_exchange_messages() {
    let b = BrokerProc::start();
    let ws = b.listening.ws();
    let conv = direct("alice", "bob");
    let mut alice = WsClient::login(ws, "alice", "browser");
    let mut alice_tcp = b.client("alice", "laptop");
    let mut bob = b.client("bob", "phone");

    let ack = alice.send_ok(&conv, "w-1", "hello from the browser");
    assert_eq!(ack.seq, 1);
    let m = bob.next_message_push(WAIT).expect("bob gets the ws message");
    assert_eq!((m.seq, text_of(&m)), (1, "hello from the browser"));
    let m = alice_tcp.next_message_push(WAIT).expect("alice's other device gets it");
    assert_eq!(m.sender_device, "browser");

    bob.send_ok(&conv, "b-1", "hi browser");
    let m = alice.next_message_push(WAIT).expect("ws client gets bob's message");
    assert_eq!((m.seq, text_of(&m), m.sender.as_str()), (2, "hi browser", "bob"));

    // Pipelined requests over one WebSocket: every ack, in order.
    let ids: Vec<u64> = (0..50)
        .map(|i| {
            alice.send_request(pb::request::Op::Send(pb::SendMessage {
                conv_id: conv.clone(),
                client_msg_id: format!("p-{i}"),
                content: Some(text(&format!("burst {i}"))),
                flags: None,
                first_attempt: false,
            }))
        })
        .collect();
    let mut seqs = Vec::new();
    while seqs.len() < ids.len() {
        match alice.recv_frame(WAIT).and_then(|f| f.body) {
            Some(frame::Body::Response(r)) => match outcome(r) {
                Ok(pb::response::Result::SendAck(a)) => seqs.push(a.seq),
                other => panic!("{other:?}"),
            },
            Some(_) => {}
            None => panic!("missing acks: got {}", seqs.len()),
        }
    }
    assert_eq!(seqs, (3..53).collect::<Vec<u64>>());
    let h = bob.history(&conv, 0, 100).expect("history");
    assert_eq!(h.messages.len(), 52);

    // Ping/Pong of the protocol and WebSocket pings both answered.
    alice.send_frame(&frame_of(frame::Body::Ping(pb::Ping { nonce: 77 })));
    alice.send_message(Message::Ping(Bytes::from_static(b"ws-ping"))).expect("ws ping");
    loop {
        match alice.recv_frame(WAIT).and_then(|f| f.body) {
            Some(frame::Body::Pong(p)) => {
                assert_eq!(p.nonce, 77);
                break;
            }
            Some(_) => {}
            None => panic!("no Pong"),
        }
    }
    // A read receipt from bob reaches the WebSocket client.
    bob.mark_read(&conv, 52).expect("mark read");
    let got = loop {
        match alice.next_push(WAIT) {
            Some(push::Event::ReadReceipt(r)) => break r,
            Some(_) => {}
            None => panic!("no read receipt over ws"),
        }
    };
    assert_eq!((got.reader.as_str(), got.read_seq), ("bob", 52));
}

#[test]
fn framing_violations_close_with_documented_codes() {
    let b = BrokerProc::start();
    let ws = b.listening.ws();

    // A text message: protocol MALFORMED_FRAME, then WebSocket 1003.
    let mut c = WsClient::login(ws, "carol", "d1");
    c.send_message(Message::Text("hello".into())).expect("send text");
    c.expect_closes(ErrorCode::MalformedFrame, 1003);

    // Undecodable binary payload: MALFORMED_FRAME (before Hello too).
    let mut c = WsClient::connect(ws);
    c.send_message(Message::Binary(Bytes::from_static(&[0xFF, 0xFF, 0xFF]))).expect("send");
    c.expect_closes(ErrorCode::MalformedFrame, 1008);

    // An empty binary message is an empty frame: MALFORMED_FRAME ([F-7]).
    let mut c = WsClient::connect(ws);
    c.send_message(Message::Binary(Bytes::new())).expect("send");
    c.expect_closes(ErrorCode::MalformedFrame, 1008);

    // Over max_frame_size (default 1 MiB): FRAME_TOO_LARGE, then 1009.
    let mut c = WsClient::login(ws, "carol", "d2");
    let _ = c.send_message(Message::Binary(Bytes::from(vec![0u8; 1024 * 1024 + 1])));
    c.expect_closes(ErrorCode::FrameTooLarge, 1009);

    // First frame not Hello: HANDSHAKE_REQUIRED, like TCP.
    let mut c = WsClient::connect(ws);
    c.send_frame(&frame_of(frame::Body::Ping(pb::Ping { nonce: 1 })));
    c.expect_closes(ErrorCode::HandshakeRequired, 1008);

    // A bad token: the protocol code, then 1008.
    let mut c = WsClient::connect(ws);
    let close = c.hello("not-a-token", "d3", Platform::Web).expect_err("refused");
    assert_eq!(close.code, ErrorCode::TokenInvalid.as_u32());
    assert!(matches!(c.recv(WAIT), WsRecv::WsClose(Some(f)) if u16::from(f.code) == 1008));
}

#[test]
fn handshake_timeout_covers_the_upgrade_and_hello() {
    let b = BrokerOpts::default().config("[limits]\nhandshake_timeout_secs = 1\n").spawn();
    let ws = b.listening.ws();
    // Upgraded but no Hello.
    let mut c = WsClient::connect(ws);
    c.expect_closes(ErrorCode::HandshakeTimeout, 1008);
    // Not even an HTTP request: 408 and close.
    let mut s = std::net::TcpStream::connect(ws).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut all = Vec::new();
    std::io::Read::read_to_end(&mut s, &mut all).expect("server closes");
    assert!(all.starts_with(b"HTTP/1.1 408"), "{}", String::from_utf8_lossy(&all));
}

#[test]
fn server_shutdown_reaches_websocket_sessions() {
    let mut b = BrokerProc::start();
    let mut c = WsClient::login(b.listening.ws(), "dave", "d");
    b.terminate();
    c.expect_closes(ErrorCode::ServerShutdown, 1001);
}

#[test]
fn http_routes() {
    let b = BrokerProc::start();
    let ws = b.listening.ws();
    let (status, head, body) = http_get(ws, "/api/info");
    assert_eq!(status, 200, "{head}");
    let info: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(info["dev"], false);
    assert_eq!(info["ws"], "/ws");
    assert_eq!(http_get(ws, "/api/dev-token?user=eve").0, 404, "dev tokens only in dev mode");
    assert_eq!(http_get(ws, "/ws").0, 426, "plain GET on /ws");
    assert_eq!(http_get(ws, "/echo").0, 404, "echo endpoint off by default");
    assert_eq!(http_get(ws, "/nope.html").0, 404);
}

#[test]
fn static_files_and_dev_tokens_in_dev_mode() {
    let site = tempfile::tempdir().expect("tmp");
    std::fs::write(site.path().join("index.html"), "<title>Missive</title>").expect("write");
    std::fs::create_dir(site.path().join("assets")).expect("mkdir");
    std::fs::write(site.path().join("assets/app.js"), "console.log(1)").expect("write");
    let cfg = format!("[web]\ndev_mode = true\nstatic_dir = {:?}\n", site.path().display().to_string());
    let b = BrokerOpts::default().config(&cfg).spawn();
    let ws = b.listening.ws();
    let (status, head, body) = http_get(ws, "/");
    assert_eq!(status, 200);
    assert!(head.contains("text/html"), "{head}");
    assert_eq!(body, b"<title>Missive</title>");
    let (status, head, _) = http_get(ws, "/assets/app.js");
    assert_eq!(status, 200);
    assert!(head.contains("text/javascript"), "{head}");
    assert_eq!(http_get(ws, "/assets/../index.html").0, 404, "no path tricks");

    let (status, _, body) = http_get(ws, "/api/dev-token?user=frank");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let token = v["token"].as_str().expect("token");
    let mut c = WsClient::connect(ws);
    let ok = c.hello(token, "web-1", Platform::Web).expect("dev token accepted");
    assert_eq!(ok.user_id, "frank");
    assert!(matches!(c.recv(Duration::from_millis(200)), WsRecv::Timeout), "session stays open");
}
