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
//! - TLS: the certificate shared with the TCP-TLS and WSS listeners
//!   ([`super::tls::Identity`]: the configured one, or a generated self-signed
//!   ECDSA P-256 development certificate valid for 13 days, WebTransport's
//!   `serverCertificateHashes` accepting at most 14), whose SHA-256 is
//!   reported (and offered to pages by `/api/info` only for the generated
//!   one); [`QuicHandle::set_identity`] swaps it for new connections (SIGHUP);
//! - admission: every QUIC connection takes a slot in the connection counts
//!   ([`super::admit`]: `limits.max_connections` and
//!   `limits.max_connections_per_ip`, with the client's address) when it
//!   arrives, and keeps it until it ends; over a limit the connection is
//!   refused (QUIC `CONNECTION_REFUSED`) before any TLS work. The loopback
//!   bridge it opens is announced so the worker does not count it again;
//! - handshake timeout: a connection must open its session stream (raw) or
//!   its WebTransport session and stream within
//!   `limits.handshake_timeout_secs` of arriving, or it is closed with
//!   [`HANDSHAKE_TIMEOUT`] (keep-alives do not extend it); the worker's own
//!   handshake timeout then covers Hello on the bridged stream.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::time::{Instant, timeout_at};

use super::admit::Admission;
use super::tls::{ALPN, Identity};
use crate::config::Config;
use crate::error::BrokerError;

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
/// Application error code closing a connection that opened no session stream
/// within the handshake timeout.
pub(crate) const HANDSHAKE_TIMEOUT: u32 = 0x11;

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

fn server_config(config: &Config, id: &Identity) -> Result<quinn::ServerConfig, BrokerError> {
    let tls = id.server_config(&[&rustls::version::TLS13], &[ALPN, H3_ALPN])?;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| cfg_err("tls", e))?;
    let mut sc = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut tc = quinn::TransportConfig::default();
    tc.max_concurrent_bidi_streams(MAX_BIDI.into());
    tc.max_concurrent_uni_streams(MAX_UNI.into());
    let idle = Duration::from_secs(config.limits.idle_timeout_secs + 5);
    tc.max_idle_timeout(Some(idle.try_into().map_err(|e| cfg_err("idle timeout", e))?));
    sc.transport_config(Arc::new(tc));
    Ok(sc)
}

/// What every QUIC session task needs.
#[derive(Debug)]
struct Ctx {
    /// The TCP listener sessions are bridged to.
    tcp: SocketAddr,
    admission: Arc<Admission>,
    handshake_timeout: Duration,
    /// `web.allowed_origins`, lowercased (empty: any origin).
    allowed_origins: Vec<String>,
}

impl Ctx {
    fn origin_allowed(&self, origin: Option<&str>) -> bool {
        super::http::origin_allowed(&self.allowed_origins, origin)
    }
}

/// Binds the UDP socket and starts the QUIC thread; sessions go to `tcp`.
pub(crate) fn start(
    config: &Config,
    id: &Identity,
    addr: SocketAddr,
    tcp: SocketAddr,
    admission: Arc<Admission>,
) -> Result<QuicHandle, BrokerError> {
    let sc = server_config(config, id)?;
    let (cert_sha256, generated) = (id.sha256.clone(), id.generated);
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
    let ctx = Arc::new(Ctx {
        tcp: target,
        admission,
        handshake_timeout: Duration::from_secs(config.limits.handshake_timeout_secs),
        allowed_origins: config.web.allowed_origins.iter().map(|o| o.to_ascii_lowercase()).collect(),
    });
    let thread = std::thread::Builder::new().name("missive-quic".into()).spawn(move || {
        rt.block_on(async move {
            while let Some(incoming) = ep.accept().await {
                tokio::spawn(serve(incoming, Arc::clone(&ctx)));
            }
            let _ = tokio::time::timeout(Duration::from_secs(2), ep.wait_idle()).await;
        });
    })?;
    tracing::info!(%bound, %cert_sha256, "quic listening");
    Ok(QuicHandle { addr: bound, cert_sha256, generated, endpoint, thread: Some(thread) })
}

async fn serve(incoming: quinn::Incoming, ctx: Arc<Ctx>) {
    // Counted from the first packet to the end of the connection.
    let _slot = match ctx.admission.admit(incoming.remote_address().ip()) {
        Ok(slot) => slot,
        Err(_) => {
            incoming.refuse();
            return;
        }
    };
    let deadline = Instant::now() + ctx.handshake_timeout;
    let mut connecting = match incoming.accept() {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, "quic: incoming connection failed");
            return;
        }
    };
    let alpn = match timeout_at(deadline, connecting.handshake_data()).await {
        Ok(Ok(data)) => data.downcast::<quinn::crypto::rustls::HandshakeData>().ok().and_then(|h| h.protocol),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "quic handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!("quic: handshake timeout");
            return;
        }
    };
    if alpn.as_deref() == Some(H3_ALPN) {
        serve_webtransport(connecting, &ctx, deadline).await;
    } else {
        serve_raw(connecting, &ctx, deadline).await;
    }
}

/// Raw QUIC: the first bidirectional stream is the session.
async fn serve_raw(connecting: quinn::Connecting, ctx: &Ctx, deadline: Instant) {
    let conn = match timeout_at(deadline, connecting).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "quic handshake failed");
            return;
        }
        Err(_) => return,
    };
    let (mut send, mut recv) = match timeout_at(deadline, conn.accept_bi()).await {
        Ok(Ok(s)) => s,
        Ok(Err(_)) => return,
        Err(_) => {
            tracing::debug!(peer = %conn.remote_address(), "quic: no stream within the handshake timeout");
            conn.close(HANDSHAKE_TIMEOUT.into(), b"no stream within the handshake timeout");
            return;
        }
    };
    tokio::select! {
        () = bridge(&mut send, &mut recv, ctx) => conn.close(0u32.into(), b"session ended"),
        () = second_stream(&conn) => conn.close(STREAM_LIMIT.into(), b"one stream per connection"),
    }
}

/// WebTransport: an HTTP/3 extended CONNECT to [`WT_PATH`], then the first
/// bidirectional stream of the session is the session.
async fn serve_webtransport(connecting: quinn::Connecting, ctx: &Ctx, deadline: Instant) {
    let incoming = wtransport::endpoint::IncomingSessionFuture::with_quic_connecting(connecting);
    let request = match timeout_at(deadline, incoming).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "webtransport: no session");
            return;
        }
        // Dropping the future closes the connection.
        Err(_) => {
            tracing::debug!("webtransport: no session within the handshake timeout");
            return;
        }
    };
    if request.path() != WT_PATH {
        request.not_found().await;
        return;
    }
    if !ctx.origin_allowed(request.origin()) {
        tracing::debug!(origin = ?request.origin(), "webtransport: origin refused");
        request.forbidden().await;
        return;
    }
    let session = match timeout_at(deadline, request.accept()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "webtransport: session failed");
            return;
        }
        Err(_) => return,
    };
    let (mut send, mut recv) = match timeout_at(deadline, session.accept_bi()).await {
        Ok(Ok(s)) => s,
        Ok(Err(_)) => return,
        Err(_) => {
            tracing::debug!("webtransport: no stream within the handshake timeout");
            session.close(HANDSHAKE_TIMEOUT.into(), b"no stream within the handshake timeout");
            return;
        }
    };
    tokio::select! {
        () = bridge(send.quic_stream_mut(), recv.quic_stream_mut(), ctx) => {
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

/// Connects to the TCP listener from a loopback port announced to the
/// workers first (the QUIC connection already holds the admission slot).
async fn connect_bridge(ctx: &Ctx) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    let (sock, any) = if ctx.tcp.is_ipv4() {
        (tokio::net::TcpSocket::new_v4()?, SocketAddr::from(([127, 0, 0, 1], 0)))
    } else {
        (tokio::net::TcpSocket::new_v6()?, SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0)))
    };
    sock.bind(any)?;
    let local = sock.local_addr()?;
    ctx.admission.announce_bridge(local);
    match sock.connect(ctx.tcp).await {
        Ok(s) => Ok((s, local)),
        Err(e) => {
            ctx.admission.forget_bridge(local);
            Err(e)
        }
    }
}

async fn bridge(send: &mut quinn::SendStream, recv: &mut quinn::RecvStream, ctx: &Ctx) {
    let (sock, local) = match connect_bridge(ctx).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "quic: cannot reach the TCP listener");
            let _ = send.reset(1u32.into());
            return;
        }
    };
    run_bridge(send, recv, sock).await;
    // The worker took the announcement when it accepted; this covers a
    // connection it never accepted.
    ctx.admission.forget_bridge(local);
}

async fn run_bridge(send: &mut quinn::SendStream, recv: &mut quinn::RecvStream, sock: tokio::net::TcpStream) {
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
    /// New connections use `id` from now on; open ones keep their certificate.
    pub(crate) fn set_identity(&self, config: &Config, id: &Identity) -> Result<(), BrokerError> {
        self.endpoint.set_server_config(Some(server_config(config, id)?));
        Ok(())
    }

    /// Stops accepting and closes every QUIC connection; waits for the thread
    /// (idempotent; also done on drop).
    pub(crate) fn stop(&mut self) {
        self.endpoint.close(0u32.into(), b"server shutting down");
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
