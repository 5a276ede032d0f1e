//! Raw QUIC transport (feature `quic`): one QUIC connection with one
//! bidirectional stream per session, carrying the same length-prefixed frames
//! as TCP (spec/PROTOCOL.md 2.3), ALPN `missive/1`, TLS 1.3 via rustls (ring).
//!
//! Role: [`connect`] opens the QUIC session and hands it to the ordinary
//! [`Connection`] through a private loopback socket served by a background
//! thread (`missive-quic-client`, a single-threaded tokio runtime), so every
//! SDK feature (requests, pushes, the resilient `Client`) works unchanged.
//!
//! Invariants: the loopback listener accepts exactly one connection and then
//! closes, and only from the local `Connection`; the server's certificate is
//! checked either against the system-independent pin [`Trust::Sha256`] (the
//! hash the broker prints for its development certificate) or against the
//! given roots; when either side ends, the other is shut down.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use crate::client::Dial;
use crate::conn::{ConnectOptions, Connection};
use crate::error::SdkError;
pub use crate::tls::{ALPN, Trust};

/// The quinn client configuration for `trust` (TLS 1.3, ALPN `missive/1`) and
/// the server name to connect with; for callers that drive quinn themselves.
pub fn client_config(trust: &Trust) -> Result<(quinn::ClientConfig, String), SdkError> {
    let (tls, name) = crate::tls::rustls_config(trust, &[&rustls::version::TLS13])?;
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| SdkError::Protocol(format!("tls: {e}")))?;
    Ok((quinn::ClientConfig::new(Arc::new(crypto)), name))
}

/// Connects to the broker's QUIC listener at `server` and performs the
/// handshake of `opts` (whose `addr` is ignored).
pub fn connect(opts: &ConnectOptions, server: SocketAddr, trust: &Trust) -> Result<Connection, SdkError> {
    let (cc, name) = client_config(trust)?;
    let local = TcpListener::bind(("127.0.0.1", 0))?;
    let local_addr = local.local_addr()?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let timeout = opts.connect_timeout;
    // Open the QUIC session first so a refusal is reported here, synchronously.
    let (endpoint, conn, send, recv) = rt.block_on(async {
        let bind: SocketAddr =
            if server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
        let mut endpoint = quinn::Endpoint::client(bind)?;
        endpoint.set_default_client_config(cc);
        let connecting =
            endpoint.connect(server, &name).map_err(|e| SdkError::Protocol(format!("quic: {e}")))?;
        let conn = tokio::time::timeout(timeout, connecting)
            .await
            .map_err(|_| SdkError::Timeout)?
            .map_err(|e| SdkError::Protocol(format!("quic: {e}")))?;
        let (send, recv) =
            conn.open_bi().await.map_err(|e| SdkError::Protocol(format!("quic stream: {e}")))?;
        Ok::<_, SdkError>((endpoint, conn, send, recv))
    })?;
    local.set_nonblocking(true)?;
    std::thread::Builder::new().name("missive-quic-client".into()).spawn(move || {
        rt.block_on(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(local) else { return };
            let accepted = tokio::time::timeout(Duration::from_secs(30), listener.accept()).await;
            drop(listener);
            if let Ok(Ok((sock, _))) = accepted {
                pipe(sock, send, recv).await;
            }
            conn.close(0u32.into(), b"done");
            let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
        });
    })?;
    let mut o = opts.clone();
    o.addr = local_addr.to_string();
    Connection::connect(&o)
}

/// A [`Dial`] that opens every connection of a [`crate::Client`] over raw
/// QUIC to `server` (see [`connect`]).
pub fn dialer(server: SocketAddr, trust: Trust) -> Dial {
    Dial::new(move |opts| connect(opts, server, &trust))
}

/// Copies bytes both ways between a local TCP socket and one QUIC stream
/// (TCP_NODELAY, fixed 8 KiB buffers) until both directions ended; the end of
/// either direction is passed on (TCP end of file finishes the QUIC stream, the
/// stream's end shuts the TCP socket down for writing). For callers that relay
/// TCP connections themselves (loadgen).
pub async fn pipe(sock: tokio::net::TcpStream, mut send: quinn::SendStream, mut recv: quinn::RecvStream) {
    let _ = sock.set_nodelay(true);
    let (mut r, mut w) = sock.into_split();
    let up = async {
        let _ = tokio::io::copy(&mut r, &mut send).await;
        let _ = send.finish();
    };
    let down = async {
        let _ = tokio::io::copy(&mut recv, &mut w).await;
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut w).await;
    };
    tokio::join!(up, down);
}
