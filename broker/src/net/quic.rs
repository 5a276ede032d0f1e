//! QUIC listener (quinn, rustls with ring): raw QUIC for native clients and
//! WebTransport (HTTP/3, via `wtransport`) for browsers, on one UDP port.
//!
//! Role: one `missive-quic` thread runs a single-threaded tokio runtime with a
//! quinn endpoint (TLS 1.3) offering two ALPNs. `missive/1` is raw QUIC: the
//! connection carries exactly one bidirectional stream. `h3` is WebTransport:
//! an extended CONNECT to [`WT_PATH`] opens a session that carries exactly one
//! bidirectional stream. Either stream carries the TCP byte stream unchanged:
//! length-prefixed frames (spec/PROTOCOL.md 2.3), and is bridged to the
//! broker's own TCP listener over loopback, so the mio workers run the session
//! with every TCP rule (handshake, limits, idle timeout, SLOW_CONSUMER,
//! shutdown).
//!
//! Invariants:
//! - bounded memory per session: the two copy loops use fixed 8 KiB buffers,
//!   and backpressure flows through (a client that does not read stalls the
//!   loopback socket, and the worker closes it as a slow consumer);
//! - one session stream per connection (raw) or per WebTransport session: a
//!   second stream closes the connection with [`STREAM_LIMIT`]; the transport
//!   limits ([`MAX_BIDI`], [`MAX_UNI`]) admit only what HTTP/3 needs besides;
//! - when either side ends, the other is shut down for writing, so a
//!   server `Close` reaches the client before the stream finishes, and then
//!   the connection (or WebTransport session) is closed;
//! - TLS: the configured certificate, or a generated self-signed ECDSA P-256
//!   development certificate valid for 13 days (WebTransport's
//!   `serverCertificateHashes` accepts at most 14), whose SHA-256 is reported
//!   (and offered to pages by `/api/info` only for the generated one).

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::error::BrokerError;

/// ALPN protocol id of raw Missive over QUIC.
pub(crate) const ALPN: &[u8] = b"missive/1";
/// ALPN of HTTP/3, which carries WebTransport.
const H3_ALPN: &[u8] = b"h3";
/// Path of the WebTransport session (`https://HOST:PORT/wt`).
pub(crate) const WT_PATH: &str = "/wt";
/// Client bidirectional streams: raw uses one; WebTransport the CONNECT
/// request stream plus the session stream.
const MAX_BIDI: u32 = 2;
/// Client unidirectional streams: HTTP/3's control, QPACK encoder and decoder.
const MAX_UNI: u32 = 3;
/// Application error code closing a connection that opened a second stream.
pub(crate) const STREAM_LIMIT: u32 = 0x10;
/// Lifetime of the generated development certificate.
const DEV_CERT_DAYS: i64 = 13;

/// A running QUIC listener.
#[derive(Debug)]
pub(crate) struct QuicHandle {
    pub(crate) addr: SocketAddr,
    /// Hex SHA-256 of the leaf certificate (DER).
    pub(crate) cert_sha256: String,
    /// The certificate was generated (development), not configured.
    pub(crate) generated: bool,
    endpoint: quinn::Endpoint,
    thread: Option<JoinHandle<()>>,
}

fn cfg_err(what: &str, e: impl std::fmt::Display) -> BrokerError {
    BrokerError::Config(format!("quic: {what}: {e}"))
}

/// The certificate chain and key: from `web.tls_cert`/`tls_key`, or generated.
/// A certificate chain, its key, and whether it was generated.
type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, bool);

fn certificate(config: &Config) -> Result<Identity, BrokerError> {
    if let (Some(cert), Some(key)) = (&config.web.tls_cert, &config.web.tls_key) {
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| cfg_err("reading tls_cert", e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| cfg_err("parsing tls_cert", e))?;
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| cfg_err("reading tls_key", e))?;
        return Ok((chain, key, false));
    }
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .map_err(|e| cfg_err("certificate params", e))?;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(DEV_CERT_DAYS);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| cfg_err("key", e))?;
    let cert = params.self_signed(&key).map_err(|e| cfg_err("self-signed certificate", e))?;
    tracing::warn!(
        "quic: using a generated self-signed development certificate (valid {DEV_CERT_DAYS} days)"
    );
    Ok((vec![cert.der().clone()], PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())), true))
}

fn server_config(config: &Config) -> Result<(quinn::ServerConfig, String, bool), BrokerError> {
    let (chain, key, generated) = certificate(config)?;
    let hash = chain.first().map(|c| hex::encode(Sha256::digest(c.as_ref()))).unwrap_or_default();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| cfg_err("tls versions", e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| cfg_err("certificate", e))?;
    tls.alpn_protocols = vec![ALPN.to_vec(), H3_ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| cfg_err("tls", e))?;
    let mut sc = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut tc = quinn::TransportConfig::default();
    tc.max_concurrent_bidi_streams(MAX_BIDI.into());
    tc.max_concurrent_uni_streams(MAX_UNI.into());
    let idle = Duration::from_secs(config.limits.idle_timeout_secs + 5);
    tc.max_idle_timeout(Some(idle.try_into().map_err(|e| cfg_err("idle timeout", e))?));
    sc.transport_config(Arc::new(tc));
    Ok((sc, hash, generated))
}

/// Binds the UDP socket and starts the QUIC thread; sessions go to `tcp`.
pub(crate) fn start(config: &Config, addr: SocketAddr, tcp: SocketAddr) -> Result<QuicHandle, BrokerError> {
    let (sc, cert_sha256, generated) = server_config(config)?;
    let socket = UdpSocket::bind(addr)?;
    let bound = socket.local_addr()?;
    // Bridge to the TCP listener over loopback when it is bound to a wildcard.
    let target = if tcp.ip().is_unspecified() {
        SocketAddr::new(
            if tcp.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() },
            tcp.port(),
        )
    } else {
        tcp
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let endpoint = {
        let _guard = rt.enter();
        quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(sc),
            socket,
            Arc::new(quinn::TokioRuntime),
        )?
    };
    let ep = endpoint.clone();
    let thread = std::thread::Builder::new().name("missive-quic".into()).spawn(move || {
        rt.block_on(async move {
            while let Some(incoming) = ep.accept().await {
                tokio::spawn(serve(incoming, target));
            }
            let _ = tokio::time::timeout(Duration::from_secs(2), ep.wait_idle()).await;
        });
    })?;
    tracing::info!(%bound, %cert_sha256, "quic listening");
    Ok(QuicHandle { addr: bound, cert_sha256, generated, endpoint, thread: Some(thread) })
}

async fn serve(incoming: quinn::Incoming, tcp: SocketAddr) {
    let mut connecting = match incoming.accept() {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, "quic: incoming connection failed");
            return;
        }
    };
    let alpn = match connecting.handshake_data().await {
        Ok(data) => data.downcast::<quinn::crypto::rustls::HandshakeData>().ok().and_then(|h| h.protocol),
        Err(e) => {
            tracing::debug!(error = %e, "quic handshake failed");
            return;
        }
    };
    if alpn.as_deref() == Some(H3_ALPN) {
        serve_webtransport(connecting, tcp).await;
    } else {
        serve_raw(connecting, tcp).await;
    }
}

/// Raw QUIC: the first bidirectional stream is the session.
async fn serve_raw(connecting: quinn::Connecting, tcp: SocketAddr) {
    let conn = match connecting.await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, "quic handshake failed");
            return;
        }
    };
    let Ok((mut send, mut recv)) = conn.accept_bi().await else { return };
    tokio::select! {
        () = bridge(&mut send, &mut recv, tcp) => conn.close(0u32.into(), b"session ended"),
        () = second_stream(&conn) => conn.close(STREAM_LIMIT.into(), b"one stream per connection"),
    }
}

/// WebTransport: an HTTP/3 extended CONNECT to [`WT_PATH`], then the first
/// bidirectional stream of the session is the session.
async fn serve_webtransport(connecting: quinn::Connecting, tcp: SocketAddr) {
    let request = match wtransport::endpoint::IncomingSessionFuture::with_quic_connecting(connecting).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, "webtransport: no session");
            return;
        }
    };
    if request.path() != WT_PATH {
        request.not_found().await;
        return;
    }
    let session = match request.accept().await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(error = %e, "webtransport: session failed");
            return;
        }
    };
    let Ok((mut send, mut recv)) = session.accept_bi().await else { return };
    tokio::select! {
        () = bridge(send.quic_stream_mut(), recv.quic_stream_mut(), tcp) => {
            session.close(0u32.into(), b"session ended");
        }
        () = wt_second_stream(&session) => {
            session.close(STREAM_LIMIT.into(), b"one stream per session");
        }
    }
}

/// Resolves when the peer opens another stream (or the connection ends).
async fn second_stream(conn: &quinn::Connection) {
    tokio::select! {
        _ = conn.accept_bi() => {}
        _ = conn.accept_uni() => {}
    }
}

/// [`second_stream`] inside a WebTransport session.
async fn wt_second_stream(session: &wtransport::Connection) {
    tokio::select! {
        _ = session.accept_bi() => {}
        _ = session.accept_uni() => {}
    }
}

async fn bridge(send: &mut quinn::SendStream, recv: &mut quinn::RecvStream, tcp: SocketAddr) {
    let sock = match tokio::net::TcpStream::connect(tcp).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "quic: cannot reach the TCP listener");
            let _ = send.reset(1u32.into());
            return;
        }
    };
    let _ = sock.set_nodelay(true);
    let (mut r, mut w) = sock.into_split();
    let up = async {
        let _ = tokio::io::copy(recv, &mut w).await;
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut w).await;
    };
    let down = async {
        let _ = tokio::io::copy(&mut r, send).await;
        let _ = send.finish();
        let _ = send.stopped().await;
    };
    tokio::pin!(up, down);
    // The session is over when the broker's side ends (its `Close` was
    // delivered), even if the client never finishes its half.
    tokio::select! {
        () = &mut up => down.await,
        () = &mut down => {}
    }
}

impl Drop for QuicHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

impl QuicHandle {
    /// Stops accepting and closes every QUIC connection; waits for the thread
    /// (idempotent; also done on drop).
    pub(crate) fn stop(&mut self) {
        self.endpoint.close(0u32.into(), b"server shutting down");
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
