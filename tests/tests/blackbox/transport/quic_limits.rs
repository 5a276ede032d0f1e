//! QUIC admission (spec/PROTOCOL.md 2.3): connections that finish TLS but
//! never open their session stream are closed at the handshake timeout
//! (keep-alives do not help), and QUIC connections count toward
//! `limits.max_connections` from the moment they arrive.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use missive_sdk::quic::Trust;
use missive_tests::wt::{WtOutcome, wt_outcome};
use missive_tests::*;

/// Application code of a connection closed at the handshake timeout.
const HANDSHAKE_TIMEOUT: u64 = 0x11;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime")
}

/// A quinn client endpoint pinning `hash`, with keep-alives every 300 ms if asked.
fn endpoint(hash: &str, keep_alive: bool) -> (quinn::Endpoint, String) {
    let (mut cc, name) =
        missive_sdk::quic::client_config(&Trust::Sha256(hash.to_owned())).expect("client config");
    if keep_alive {
        let mut tc = quinn::TransportConfig::default();
        tc.keep_alive_interval(Some(Duration::from_millis(300)));
        cc.transport_config(Arc::new(tc));
    }
    let mut ep = quinn::Endpoint::client(([127, 0, 0, 1], 0).into()).expect("client endpoint");
    ep.set_default_client_config(cc);
    (ep, name)
}

#[test]
fn silent_quic_connections_close_at_the_handshake_timeout() {
    let toml = "quic = \"127.0.0.1:0\"\n[limits]\nhandshake_timeout_secs = 2\n";
    let b = BrokerOpts::default().config(toml).spawn();
    let server = b.listening.quic.expect("quic");
    let hash = b.listening.fields.get("cert_sha256").expect("hash").clone();
    const N: usize = 40;
    let codes = runtime().block_on(async {
        let (quiet, name) = endpoint(&hash, false);
        let (chatty, _) = endpoint(&hash, true);
        let mut conns = Vec::new();
        for i in 0..N {
            let ep = if i % 2 == 0 { &quiet } else { &chatty };
            let c = tokio::time::timeout(WAIT, ep.connect(server, &name).expect("connect"))
                .await
                .expect("handshake in time")
                .expect("TLS handshake completes");
            conns.push(c);
        }
        let mut codes = Vec::new();
        for c in &conns {
            // Bounded: the server must close them, keep-alives or not.
            match tokio::time::timeout(WAIT, c.closed()).await {
                Ok(quinn::ConnectionError::ApplicationClosed(a)) => codes.push(a.error_code.into_inner()),
                other => panic!("expected the server to close the connection, got {other:?}"),
            }
        }
        codes
    });
    assert_eq!(
        codes,
        vec![HANDSHAKE_TIMEOUT; N],
        "every silent connection is closed at the handshake timeout"
    );

    // A WebTransport session without a stream too.
    let url = format!("https://127.0.0.1:{}/wt", server.port());
    match wt_outcome(&url, &hash, 0, 0) {
        WtOutcome::ClosedWith(code, _) => assert_eq!(code, HANDSHAKE_TIMEOUT),
        other => panic!("a WebTransport session without a stream must be closed, got {other:?}"),
    }
    // The broker still serves QUIC sessions.
    let opts = missive_sdk::ConnectOptions::new("unused", mint("alice"), "phone");
    let c = missive_sdk::quic::connect(&opts, server, &Trust::Sha256(hash)).expect("QUIC session");
    c.close();
}

#[test]
fn quic_connections_count_toward_max_connections() {
    let toml = "quic = \"127.0.0.1:0\"\n[limits]\nmax_connections = 3\nhandshake_timeout_secs = 30\n";
    let b = BrokerOpts::default().config(toml).spawn();
    let server: SocketAddr = b.listening.quic.expect("quic");
    let hash = b.listening.fields.get("cert_sha256").expect("hash").clone();
    let rt = runtime();
    let _in_runtime = rt.enter();
    let (ep, name) = endpoint(&hash, true);
    let mut held = rt.block_on(async {
        let mut held = Vec::new();
        for _ in 0..3 {
            let c = tokio::time::timeout(WAIT, ep.connect(server, &name).expect("connect"))
                .await
                .expect("in time")
                .expect("within the limit");
            held.push(c);
        }
        held
    });
    // Three silent QUIC connections fill the limit: a fourth QUIC connection
    // and a TCP connection are refused.
    let refused = rt.block_on(async {
        let c = ep.connect(server, &name).expect("connect");
        tokio::time::timeout(WAIT, c).await.expect("answered in time")
    });
    match refused {
        Err(quinn::ConnectionError::ConnectionClosed(c)) => {
            assert_eq!(c.error_code, quinn::TransportErrorCode::CONNECTION_REFUSED, "{c:?}")
        }
        other => panic!("expected CONNECTION_REFUSED, got {other:?}"),
    }
    let mut tcp = RawClient::connect(b.addr);
    tcp.expect_close_code(ErrorCode::TooManyConnections);

    // Closing one gives its slot back.
    let gone = held.pop().expect("a held connection");
    gone.close(0u32.into(), b"bye");
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let mut c = RawClient::connect(b.addr);
        match c.hello(&mint("bob"), "laptop", Platform::Linux) {
            Ok(_) => break,
            Err(close) => assert_eq!(close.code, ErrorCode::TooManyConnections.as_u32()),
        }
        assert!(std::time::Instant::now() < deadline, "the closed QUIC connection kept its slot");
        // The pause drives the client's QUIC endpoint (its CONNECTION_CLOSE goes out).
        rt.block_on(tokio::time::sleep(Duration::from_millis(50)));
    }
    drop(held);
}
