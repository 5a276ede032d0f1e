//! TLS (spec/PROTOCOL.md 2.4): the `tcp_tls` listener (ALPN `missive/1`), WSS
//! on the `wss` listener, certificate reload on SIGHUP, the Origin allow-list
//! for WebSocket and WebTransport, and the per-address connection cap across
//! TCP, TLS, WebSocket and QUIC.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use missive_protocol::pb::{self, frame};
use missive_sdk::tls::{self as sdk_tls, Trust};
use missive_sdk::{ConnectOptions, Event};
use missive_tests::tls::{TestCert, tls_connect, write_cert};
use missive_tests::ws::{WsClient, WsStream};
use missive_tests::wt::{WtOutcome, wt_outcome_from};
use missive_tests::*;
use prost::Message as _;

const ALPN: &[u8] = b"missive/1";

/// A broker with the TLS and WSS listeners on `cert` (written in a temp dir
/// that lives as long as the returned guard), plus `extra` TOML.
fn tls_broker(extra_top: &str, extra_web: &str) -> (BrokerProc, TestCert, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("cert dir");
    let cert = write_cert(dir.path());
    let toml = format!(
        "tcp_tls = \"127.0.0.1:0\"\nwss = \"127.0.0.1:0\"\n{extra_top}\n[web]\n{}{extra_web}",
        cert.web_toml()
    );
    let b = BrokerOpts::default().config(&toml).spawn();
    (b, cert, dir)
}

fn addr(b: &BrokerProc, key: &str) -> SocketAddr {
    b.listening
        .fields
        .get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("broker printed no {key}="))
}

fn sdk_connect(
    at: SocketAddr,
    user: &str,
    sha256: &str,
) -> Result<missive_sdk::Connection, missive_sdk::SdkError> {
    let opts = ConnectOptions::new(at.to_string(), mint(user), "phone");
    sdk_tls::connect(&opts, &Trust::Sha256(sha256.to_owned()))
}

#[test]
fn tls_clients_exchange_messages_with_tcp_clients() {
    let (b, cert, _dir) = tls_broker("", "");
    let tls_addr = addr(&b, "tcp_tls");
    assert_eq!(
        b.listening.fields.get("cert_sha256"),
        Some(&cert.sha256),
        "the configured certificate is used"
    );

    // The negotiated protocol is missive/1.
    let raw = tls_connect(tls_addr, &cert.sha256, &[ALPN]).expect("TLS handshake");
    assert_eq!(raw.conn.alpn_protocol(), Some(ALPN));
    drop(raw);

    let alice = sdk_connect(tls_addr, "alice", &cert.sha256).expect("TLS session");
    let mut bob = b.client("bob", "laptop");
    let conv = direct("alice", "bob");
    let res = alice.request(pb::request::Op::Send(pb::SendMessage {
        conv_id: conv.clone(),
        client_msg_id: "t-1".into(),
        content: Some(text("hi bob over tls")),
        flags: None,
        first_attempt: false,
    }));
    assert!(matches!(res, Ok(pb::response::Result::SendAck(ref a)) if a.seq == 1), "{res:?}");
    let m = bob.next_message_push(WAIT).expect("the TCP client gets the TLS message");
    assert_eq!(text_of(&m), "hi bob over tls");
    bob.send_ok(&conv, "t-2", "hi alice over tcp");
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match alice.events().recv_timeout(left).expect("push over TLS") {
            Event::Message(m) => {
                assert_eq!((m.seq, text_of(&m)), (2, "hi alice over tcp"));
                break;
            }
            _ => continue,
        }
    }
    alice.close();
}

#[test]
fn tls_listener_refuses_wrong_alpn_no_alpn_and_plaintext() {
    let (b, cert, _dir) = tls_broker("", "");
    let tls_addr = addr(&b, "tcp_tls");

    // Another protocol: the handshake fails with the no_application_protocol alert.
    let err = tls_connect(tls_addr, &cert.sha256, &[b"h2"]).expect_err("wrong ALPN must fail");
    assert!(format!("{err:?}").contains("NoApplicationProtocol"), "{err:?}");

    // No ALPN: the server ends the session (close_notify) before any frame.
    let mut s = tls_connect(tls_addr, &cert.sha256, &[]).expect("handshake without ALPN completes");
    let hello = frame_of(frame::Body::Hello(hello_msg(&mint("carol"), "phone", Platform::Linux)));
    let mut wire = (hello.encoded_len() as u32).to_be_bytes().to_vec();
    wire.extend_from_slice(&hello.encode_to_vec());
    let _ = s.write_all(&wire);
    let mut buf = [0u8; 64];
    assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)), "no ALPN: no HelloOk, the session ends");

    // Plaintext protocol bytes on the TLS port: a TLS alert (content type 21) or a close, never a frame.
    let mut p = TcpStream::connect(tls_addr).expect("connect");
    p.set_read_timeout(Some(WAIT)).expect("timeout");
    p.write_all(&wire).expect("write");
    let mut got = Vec::new();
    let _ = p.read_to_end(&mut got);
    assert!(got.is_empty() || got[0] == 21, "plaintext gets an alert or a close, got {got:?}");

    // The listener still serves proper clients.
    let c = sdk_connect(tls_addr, "carol", &cert.sha256).expect("TLS session after the refusals");
    c.close();
}

#[test]
fn wss_client_does_a_round_trip() {
    let (b, cert, _dir) = tls_broker("", "");
    let wss = addr(&b, "wss");
    let s = tls_connect(wss, &cert.sha256, &[b"http/1.1"]).expect("TLS handshake on wss");
    let mut erin = WsClient::upgrade(WsStream::Tls(s), "localhost", None).expect("upgrade over TLS");
    erin.hello(&mint("erin"), "browser", Platform::Web).expect("HelloOk over WSS");
    let mut dave = b.client("dave", "laptop");
    erin.send_ok(&direct("dave", "erin"), "w-1", "hello over wss");
    let m = dave.next_message_push(WAIT).expect("TCP client gets the WSS message");
    assert_eq!(text_of(&m), "hello over wss");
    dave.send_ok(&direct("dave", "erin"), "w-2", "and back");
    let m = erin.next_message_push(WAIT).expect("WSS client gets the reply");
    assert_eq!(text_of(&m), "and back");
}

#[test]
fn sighup_reloads_the_certificate_for_new_connections() {
    let (b, old, dir) = tls_broker("", "");
    let tls_addr = addr(&b, "tcp_tls");
    let kept = sdk_connect(tls_addr, "frank", &old.sha256).expect("session on the old certificate");

    let new = write_cert(dir.path());
    assert_ne!(new.sha256, old.sha256);
    b.hup();
    let line = format!("missive tls reloaded cert_sha256={}", new.sha256);
    let deadline = Instant::now() + WAIT;
    while !b.log().contains(&line) {
        assert!(Instant::now() < deadline, "no reload line after SIGHUP; log:\n{}", b.log());
        std::thread::sleep(Duration::from_millis(20));
    }

    let fresh = sdk_connect(tls_addr, "grace", &new.sha256).expect("a client pinning the new certificate");
    assert!(sdk_connect(tls_addr, "heidi", &old.sha256).is_err(), "the old certificate is no longer served");
    let s =
        tls_connect(addr(&b, "wss"), &new.sha256, &[b"http/1.1"]).expect("WSS serves the new certificate");
    drop(s);
    // The open session keeps working on its certificate.
    kept.ping().expect("the old session is still served");
    fresh.close();
    kept.close();
}

#[test]
fn websocket_origin_allow_list() {
    let (b, cert, _dir) = tls_broker("", "allowed_origins = [\"https://chat.example.com\"]\n");
    let ws = b.listening.ws();
    let plain = || WsStream::Plain(TcpStream::connect(ws).expect("connect ws"));
    let refused = WsClient::upgrade(plain(), "localhost", Some("https://evil.example")).err();
    assert_eq!(refused, Some(403), "a page from another origin is refused");
    let mut ok =
        WsClient::upgrade(plain(), "localhost", Some("https://CHAT.example.com")).expect("listed origin");
    ok.hello(&mint("ivan"), "browser", Platform::Web).expect("HelloOk");
    WsClient::upgrade(plain(), "localhost", None).expect("no Origin: not a browser, accepted");
    // The same list applies to WSS.
    let s = tls_connect(addr(&b, "wss"), &cert.sha256, &[b"http/1.1"]).expect("tls");
    assert_eq!(
        WsClient::upgrade(WsStream::Tls(s), "localhost", Some("https://evil.example")).err(),
        Some(403)
    );
}

#[test]
fn webtransport_origin_allow_list() {
    let toml = "quic = \"127.0.0.1:0\"\n[limits]\nhandshake_timeout_secs = 2\n[web]\n\
                allowed_origins = [\"https://chat.example.com\"]\n";
    let b = BrokerOpts::default().config(toml).spawn();
    let quic = b.listening.quic.expect("quic");
    let hash = b.listening.fields.get("cert_sha256").expect("hash").clone();
    let url = format!("https://127.0.0.1:{}/wt", quic.port());
    assert_eq!(wt_outcome_from(&url, &hash, Some("https://evil.example"), 0, 0), WtOutcome::Rejected);
    // A listed origin gets its session (then, with no stream, the handshake timeout closes it).
    match wt_outcome_from(&url, &hash, Some("https://chat.example.com"), 0, 0) {
        WtOutcome::ClosedWith(code, _) => assert_eq!(code, 0x11, "closed at the handshake timeout"),
        other => panic!("a listed origin must be accepted, got {other:?}"),
    }
}

#[test]
fn per_address_cap_counts_tcp_tls_web_and_quic() {
    let (b, cert, _dir) = tls_broker(
        "quic = \"127.0.0.1:0\"\n[limits]\nmax_connections_per_ip = 3\nhandshake_timeout_secs = 30\n",
        "",
    );
    let quic_addr = b.listening.quic.expect("quic");
    let mut tcp = b.client("judy", "a");
    let tls = sdk_connect(addr(&b, "tcp_tls"), "judy", &cert.sha256).expect("second connection (TLS)");
    // The QUIC session is one connection: its loopback bridge is not counted again.
    let opts = ConnectOptions::new("unused", mint("judy"), "c");
    let quic = missive_sdk::quic::connect(&opts, quic_addr, &Trust::Sha256(cert.sha256.clone()))
        .expect("third connection (QUIC)");

    // A fourth, on any transport, is refused with a clear reason.
    let mut c4 = RawClient::connect(b.addr);
    let close = c4.expect_close_code(ErrorCode::TooManyConnections);
    assert!(close.message.contains("this address"), "{close:?}");
    let mut w = TcpStream::connect(b.listening.ws()).expect("connect web");
    w.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut resp = Vec::new();
    let _ = w.read_to_end(&mut resp);
    assert!(resp.starts_with(b"HTTP/1.1 503"), "the web listener refuses with 503: {resp:?}");
    assert!(
        sdk_connect(addr(&b, "tcp_tls"), "judy", &cert.sha256).is_err(),
        "the TLS listener refuses the fourth connection"
    );
    let opts = ConnectOptions::new("unused", mint("judy"), "d");
    assert!(
        missive_sdk::quic::connect(&opts, quic_addr, &Trust::Sha256(cert.sha256.clone())).is_err(),
        "QUIC refuses the fourth connection"
    );
    assert!(
        b.log_handle().wait_for("limits.max_connections_per_ip", Duration::from_secs(5)),
        "the refusal is logged"
    );

    // A slot comes back when a connection ends.
    tls.close();
    let deadline = Instant::now() + WAIT;
    loop {
        let mut c = RawClient::connect(b.addr);
        match c.hello(&mint("judy"), "e", Platform::Linux) {
            Ok(_) => break,
            Err(close) => assert_eq!(close.code, ErrorCode::TooManyConnections.as_u32()),
        }
        assert!(Instant::now() < deadline, "no slot came back after a connection closed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(tcp.is_alive());
    quic.close();
}
