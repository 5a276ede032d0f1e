//! WebTransport and raw-QUIC probes for the black-box tests.
//!
//! Role: [`open_session`] opens a WebTransport session (HTTP/3 over QUIC, via
//! the `wtransport` client, the server certificate pinned by its SHA-256 the
//! way browsers use `serverCertificateHashes`) and its one bidirectional
//! stream, and exposes that stream as a loopback TCP socket, so a
//! [`crate::RawClient`] speaks the length-prefixed protocol over WebTransport
//! exactly as it does over TCP. [`wt_outcome`] and [`raw_second_stream`]
//! probe refusals (wrong path, a second stream).
//!
//! Invariants: every wait is bounded (connect, accept, and the probes use
//! [`crate::WAIT`]); each session runs on its own thread with a
//! single-threaded tokio runtime that ends when either side closes.

use std::net::{SocketAddr, TcpListener};

use wtransport::endpoint::endpoint_side::Client;
use wtransport::tls::Sha256Digest;
use wtransport::{ClientConfig, Endpoint};

use crate::WAIT;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime")
}

fn endpoint(hash_hex: &str) -> Endpoint<Client> {
    let bytes: [u8; 32] =
        hex::decode(hash_hex).expect("hex certificate hash").try_into().expect("a SHA-256 is 32 bytes");
    let config = ClientConfig::builder()
        .with_bind_default()
        .with_server_certificate_hashes([Sha256Digest::new(bytes)])
        .build();
    Endpoint::client(config).expect("wtransport client endpoint")
}

/// Opens a WebTransport session at `url` and its bidirectional stream; returns
/// a loopback address whose first accepted TCP connection is piped to it.
pub fn open_session(url: &str, hash_hex: &str) -> SocketAddr {
    let local = TcpListener::bind(("127.0.0.1", 0)).expect("bind loopback");
    let addr = local.local_addr().expect("local addr");
    local.set_nonblocking(true).expect("nonblocking");
    let rt = runtime();
    let (session, send, recv) = rt.block_on(async {
        let ep = endpoint(hash_hex);
        let session = tokio::time::timeout(WAIT, ep.connect(url))
            .await
            .expect("WebTransport connect timed out")
            .expect("WebTransport session");
        let opening = session.open_bi().await.expect("open stream");
        let (send, recv) = opening.await.expect("stream opened");
        (session, send, recv)
    });
    std::thread::spawn(move || {
        rt.block_on(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(local) else { return };
            let Ok(Ok((sock, _))) = tokio::time::timeout(WAIT, listener.accept()).await else { return };
            let (mut r, mut w) = sock.into_split();
            let (mut send, mut recv) = (send, recv);
            let up = async {
                let _ = tokio::io::copy(&mut r, &mut send).await;
                let _ = send.finish().await;
            };
            let down = async {
                let _ = tokio::io::copy(&mut recv, &mut w).await;
                let _ = tokio::io::AsyncWriteExt::shutdown(&mut w).await;
            };
            tokio::join!(up, down);
            session.close(0u32.into(), b"done");
        });
    });
    addr
}

/// How a WebTransport attempt at `url` ended.
#[derive(Debug, PartialEq, Eq)]
pub enum WtOutcome {
    /// The server refused the session (e.g. 404 for a wrong path).
    Rejected,
    /// The session was accepted; after opening `streams` streams (one byte
    /// each) the server closed it with this application code and reason.
    ClosedWith(u64, String),
    /// The session stayed open for [`crate::WAIT`].
    StillOpen,
    /// Anything else, described.
    Other(String),
}

/// Connects to `url`; if accepted, opens `bidi` bidirectional streams and
/// then `uni` unidirectional ones, writes one byte on each, and waits for the
/// server to close the session.
pub fn wt_outcome(url: &str, hash_hex: &str, bidi: usize, uni: usize) -> WtOutcome {
    wt_outcome_from(url, hash_hex, None, bidi, uni)
}

/// [`wt_outcome`] with an `Origin` header (as a browser page sends it).
pub fn wt_outcome_from(
    url: &str,
    hash_hex: &str,
    origin: Option<&str>,
    bidi: usize,
    uni: usize,
) -> WtOutcome {
    runtime().block_on(async {
        let ep = endpoint(hash_hex);
        let mut opts = wtransport::endpoint::ConnectOptions::builder(url);
        if let Some(o) = origin {
            opts = opts.add_header("origin", o);
        }
        let session = match tokio::time::timeout(WAIT, ep.connect(opts.build())).await {
            Err(_) => return WtOutcome::Other("connect timed out".into()),
            Ok(Err(wtransport::error::ConnectingError::SessionRejected)) => return WtOutcome::Rejected,
            Ok(Err(e)) => return WtOutcome::Other(e.to_string()),
            Ok(Ok(s)) => s,
        };
        let mut kept = Vec::new();
        for _ in 0..bidi {
            let Ok(opening) = session.open_bi().await else { break };
            let Ok((mut send, recv)) = opening.await else { break };
            // The first byte of a length prefix: announces the stream to the server.
            let _ = send.write_all(&[0]).await;
            kept.push((send, Some(recv)));
        }
        for _ in 0..uni {
            let Ok(opening) = session.open_uni().await else { break };
            let Ok(mut send) = opening.await else { break };
            let _ = send.write_all(&[0]).await;
            kept.push((send, None));
        }
        match tokio::time::timeout(WAIT, session.closed()).await {
            Err(_) => WtOutcome::StillOpen,
            Ok(wtransport::error::ConnectionError::ApplicationClosed(c)) => {
                WtOutcome::ClosedWith(c.code().into_inner(), String::from_utf8_lossy(c.reason()).into_owned())
            }
            Ok(e) => WtOutcome::Other(e.to_string()),
        }
    })
}

/// Raw QUIC (ALPN `missive/1`): opens two bidirectional streams, one byte on
/// each, and returns the application code the server closed the connection
/// with (`None`: not closed within [`crate::WAIT`] or closed otherwise).
pub fn raw_second_stream(server: SocketAddr, hash_hex: &str) -> Option<u64> {
    let (cc, name) = missive_sdk::quic::client_config(&missive_sdk::quic::Trust::Sha256(hash_hex.to_owned()))
        .expect("client config");
    runtime().block_on(async {
        let mut ep = quinn::Endpoint::client(([127, 0, 0, 1], 0).into()).ok()?;
        ep.set_default_client_config(cc);
        let conn = tokio::time::timeout(WAIT, ep.connect(server, &name).ok()?).await.ok()?.ok()?;
        let mut kept = Vec::new();
        for _ in 0..2 {
            let (mut send, recv) = conn.open_bi().await.ok()?;
            send.write_all(&[0]).await.ok()?;
            kept.push((send, recv));
        }
        match tokio::time::timeout(WAIT, conn.closed()).await {
            Ok(quinn::ConnectionError::ApplicationClosed(c)) => Some(c.error_code.into_inner()),
            _ => None,
        }
    })
}
