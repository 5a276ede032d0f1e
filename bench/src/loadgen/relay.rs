//! `--transport quic`: an in-process relay from loopback TCP to the broker's
//! raw QUIC listener.
//!
//! Role: the scenarios keep their mio [`Net`](super::net::Net) and its
//! length-prefixed TCP frames; they connect to [`Relay::addr`] (a loopback
//! TCP listener) instead of the broker. For every accepted TCP connection the
//! relay opens one QUIC connection to the broker (TLS 1.3, ALPN `missive/1`,
//! the certificate pinned by its SHA-256), opens its one bidirectional stream,
//! and copies bytes both ways: raw QUIC carries exactly the TCP byte stream
//! (spec/PROTOCOL.md 2.3). The relay runs on `--quic-threads` threads, each a
//! single-threaded tokio runtime with one quinn client endpoint (one UDP
//! socket) shared by the connections that thread accepted.
//!
//! What QUIC numbers measure: the generator's connections go through this
//! relay, whose CPU (TLS, QUIC, the extra loopback hop) is spent in the
//! loadgen process on the same machine as the broker; and the broker itself
//! bridges each QUIC stream to its own TCP listener over loopback
//! (`broker/src/quic.rs`). So QUIC rows compare whole paths, relays included,
//! with TCP and WebSocket, not QUIC's cost alone.
//!
//! Invariants:
//! - one QUIC connection and one stream per accepted TCP connection, never
//!   shared, so per-connection order and the broker's per-session rules are
//!   exactly those of TCP;
//! - bounded memory per connection: the two copy loops (the SDK's
//!   `quic::pipe`) use fixed 8 KiB buffers, and backpressure flows through (a
//!   side that does not read stalls the other);
//! - the end of either direction is passed on (TCP end of file finishes the
//!   QUIC stream, the stream's end shuts the TCP socket down for writing), so
//!   a server `Close` reaches the generator before its connection ends;
//! - a QUIC connection that cannot be opened closes its TCP connection (the
//!   scenario sees a refused login) and is counted in [`Relay::stop`]'s result;
//! - [`Relay::stop`] (or `Drop`) closes every endpoint and joins every
//!   thread, bounded by [`STOP_TIMEOUT`] of draining.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, anyhow};
use missive_sdk::quic::{Trust, client_config, pipe};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// How long a QUIC handshake (and opening the stream) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long stopping waits for endpoints to drain (close frames sent).
const STOP_TIMEOUT: Duration = Duration::from_secs(2);
/// Failures printed on stderr as they happen (all are counted).
const PRINTED_FAILURES: u64 = 3;

/// Counts shared by the relay threads.
#[derive(Debug, Default)]
struct Stats {
    /// QUIC sessions opened (stream included).
    opened: AtomicU64,
    /// Accepted TCP connections whose QUIC session could not be opened.
    failed: AtomicU64,
    /// The first failure's reason.
    first_failure: Mutex<Option<String>>,
}

impl Stats {
    fn fail(&self, what: String) {
        let n = self.failed.fetch_add(1, Ordering::Relaxed);
        if n < PRINTED_FAILURES {
            eprintln!("loadgen: quic relay: {what}");
        }
        if let Ok(mut first) = self.first_failure.lock() {
            first.get_or_insert(what);
        }
    }
}

/// What the relay did, for the report.
#[derive(Debug)]
pub(crate) struct RelayOutcome {
    /// QUIC sessions opened.
    pub(crate) opened: u64,
    /// Sessions that could not be opened (0 in a good run).
    pub(crate) failed: u64,
    /// The first failure's reason, if any.
    pub(crate) first_failure: Option<String>,
}

impl RelayOutcome {
    /// A problem for the report if any session could not be opened.
    pub(crate) fn problem(&self) -> Option<String> {
        (self.failed > 0).then(|| {
            let first = self.first_failure.as_deref().unwrap_or("");
            format!("{} QUIC sessions could not be opened; first: {first}", self.failed)
        })
    }
}

#[derive(Debug)]
struct Worker {
    endpoint: quinn::Endpoint,
    stop: Arc<Notify>,
    thread: Option<JoinHandle<()>>,
}

/// The running relay: a loopback TCP listener and its QUIC threads.
#[derive(Debug)]
pub(crate) struct Relay {
    addr: SocketAddr,
    workers: Vec<Worker>,
    stats: Arc<Stats>,
}

impl Relay {
    /// Starts `threads` relay threads towards the broker's QUIC listener at
    /// `server`, whose certificate has SHA-256 `cert_sha256` (hex).
    pub(crate) fn start(server: SocketAddr, cert_sha256: &str, threads: usize) -> anyhow::Result<Self> {
        let (mut config, name) = client_config(&Trust::Sha256(cert_sha256.to_owned()))
            .map_err(|e| anyhow!("QUIC client configuration: {e}"))?;
        let mut transport = quinn::TransportConfig::default();
        // The broker's idle timeout governs (an unset side defers to the other).
        transport.max_idle_timeout(None);
        // The broker never opens streams towards a client.
        transport.max_concurrent_bidi_streams(0u32.into());
        transport.max_concurrent_uni_streams(0u32.into());
        config.transport_config(Arc::new(transport));
        let listener =
            std::net::TcpListener::bind(("127.0.0.1", 0)).context("binding the QUIC relay's TCP listener")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let name: Arc<str> = name.into();
        let stats = Arc::new(Stats::default());
        let mut relay = Self { addr, workers: Vec::new(), stats: Arc::clone(&stats) };
        let bind: SocketAddr =
            if server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
        for i in 0..threads.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting a QUIC relay runtime")?;
            let mut endpoint = {
                let _guard = rt.enter();
                quinn::Endpoint::client(bind).context("binding a QUIC client endpoint")?
            };
            endpoint.set_default_client_config(config.clone());
            // Every thread accepts from the same listening socket.
            let listener = listener.try_clone()?;
            let stop = Arc::new(Notify::new());
            let (ep, st, name, stats) =
                (endpoint.clone(), Arc::clone(&stop), Arc::clone(&name), Arc::clone(&stats));
            let thread = std::thread::Builder::new()
                .name(format!("loadgen-quic-{i}"))
                .spawn(move || rt.block_on(accept_loop(listener, ep, server, name, stats, st)))
                .context("starting a QUIC relay thread")?;
            relay.workers.push(Worker { endpoint, stop, thread: Some(thread) });
        }
        Ok(relay)
    }

    /// Where the generator's TCP connections go.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every QUIC connection, joins the threads, and says what happened.
    pub(crate) fn stop(mut self) -> RelayOutcome {
        self.shutdown();
        let first_failure = self.stats.first_failure.lock().ok().and_then(|mut f| f.take());
        RelayOutcome {
            opened: self.stats.opened.load(Ordering::Relaxed),
            failed: self.stats.failed.load(Ordering::Relaxed),
            first_failure,
        }
    }

    fn shutdown(&mut self) {
        for w in &self.workers {
            w.endpoint.close(0u32.into(), b"loadgen done");
            w.stop.notify_one();
        }
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One relay thread: accepts until told to stop, then drains its endpoint.
async fn accept_loop(
    listener: std::net::TcpListener,
    endpoint: quinn::Endpoint,
    server: SocketAddr,
    name: Arc<str>,
    stats: Arc<Stats>,
    stop: Arc<Notify>,
) {
    match TcpListener::from_std(listener) {
        Ok(listener) => loop {
            tokio::select! {
                () = stop.notified() => break,
                accepted = listener.accept() => match accepted {
                    Ok((sock, _)) => {
                        let (ep, name, stats) = (endpoint.clone(), Arc::clone(&name), Arc::clone(&stats));
                        tokio::spawn(relay_one(sock, ep, server, name, stats));
                    }
                    Err(e) => {
                        stats.fail(format!("accept: {e}"));
                        // Out of descriptors, most likely: let connections end.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
            }
        },
        Err(e) => stats.fail(format!("relay listener: {e}")),
    }
    let _ = tokio::time::timeout(STOP_TIMEOUT, endpoint.wait_idle()).await;
}

/// Relays one generator connection over its own QUIC connection.
async fn relay_one(
    sock: TcpStream,
    endpoint: quinn::Endpoint,
    server: SocketAddr,
    name: Arc<str>,
    stats: Arc<Stats>,
) {
    let opened = async {
        let conn = endpoint.connect(server, &name).map_err(|e| format!("QUIC connect: {e}"))?.await;
        let conn = conn.map_err(|e| format!("QUIC handshake with {server}: {e}"))?;
        let (send, recv) = conn.open_bi().await.map_err(|e| format!("QUIC stream: {e}"))?;
        Ok::<_, String>((conn, send, recv))
    };
    let (conn, send, recv) = match tokio::time::timeout(CONNECT_TIMEOUT, opened).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return stats.fail(e),
        Err(_) => return stats.fail(format!("QUIC handshake with {server} timed out")),
    };
    stats.opened.fetch_add(1, Ordering::Relaxed);
    pipe(sock, send, recv).await;
    conn.close(0u32.into(), b"done");
}
