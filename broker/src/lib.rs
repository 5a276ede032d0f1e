//! Missive broker: wiring only. The path of a request, one folder each:
//!
//! `net` (event loops, connections, framing, mailbox, bridges) → `session`
//! (handshake, login, typed requests) → `route` (ONE exhaustive match:
//! request → local query | owner shard op) → `shard` (the transactional turn
//! engine: save points, one RocksDB batch per turn, effects) → `services`
//! (one folder per service) → `missive_storage` (keyspaces). `node` holds the
//! shared node state (config, store, clock, directory, counters, owner hash).
//! See `docs/ARCHITECTURE.md`.
//!
//! Threads: `workers` event-loop threads ([`net`]), each with its own
//! SO_REUSEPORT listeners, connections and owner shard; plus the caller's
//! thread, which only waits; with `quic` set, one `missive-quic` thread
//! bridges QUIC streams to the TCP listener.
//!
//! Invariants: the library never reads files, flags or environment; it gets a
//! validated [`Config`]. Module dependencies point one way: net → session →
//! route → services → shard → node (frames and error are leaves).

pub mod cli;
pub mod config;
pub mod error;
mod frames;
mod net;
mod node;
mod route;
mod services;
mod session;
mod shard;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::bounded;
use mio::{Poll, Waker};
use missive_storage::{Clock, Durability, StorageError, Store, StoreOptions};
use socket2::{Domain, Protocol, Socket, Type};

pub use config::{Config, DurabilityMode};
pub use error::BrokerError;

use net::{Mesh, WAKER, Worker, admin, http, quic};
use node::Node;

/// Capacity of each worker's inbox channel (messages). Memory: ~100 bytes each.
const INBOX_CAPACITY: usize = 65_536;

/// A running broker.
#[derive(Debug)]
pub struct Broker {
    node: Arc<Node>,
    mesh: Arc<Mesh>,
    threads: Vec<JoinHandle<()>>,
    local_addr: SocketAddr,
    ws_addr: Option<SocketAddr>,
    quic: Option<quic::QuicHandle>,
}

/// The process's open-file limit (soft), for error messages.
pub(crate) fn fd_limit() -> u64 {
    let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // getrlimit only writes into the struct we pass.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) };
    if rc == 0 { rl.rlim_cur } else { 0 }
}

fn listener(addr: SocketAddr) -> Result<std::net::TcpListener, BrokerError> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    sock.set_reuse_port(true)?;
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    sock.listen(1024)?;
    Ok(sock.into())
}

/// A storage error at open: corruption becomes [`BrokerError::Corrupt`] (a
/// clear refusal to start), anything else stays a storage error.
fn corrupt_or(config: &Config, e: StorageError) -> BrokerError {
    if e.is_corruption() {
        BrokerError::Corrupt { dir: config.data_dir.display().to_string(), detail: e.to_string() }
    } else {
        BrokerError::Storage(e)
    }
}

/// Web listeners (one per worker, SO_REUSEPORT), their address, and the web context.
type WebParts = (Vec<std::net::TcpListener>, Option<SocketAddr>, Option<Arc<http::WebCtx>>);

fn web_listeners(
    config: &Config,
    n: usize,
    webtransport: Option<http::WebTransportInfo>,
    store: &Store,
) -> Result<WebParts, BrokerError> {
    let Some(addr) = config.ws else { return Ok((Vec::new(), None, None)) };
    let site = match &config.web.static_dir {
        Some(dir) => http::Site::load(dir)?,
        None => http::Site::default(),
    };
    let first = listener(addr)?;
    let bound = first.local_addr()?;
    let mut ls = vec![first];
    for _ in 1..n {
        ls.push(listener(bound)?);
    }
    let ctx = http::WebCtx {
        site,
        dev_mode: config.web.dev_mode,
        ws_echo: config.web.ws_echo,
        secret: config.secret.clone(),
        webtransport,
        admin: config
            .admin
            .token
            .clone()
            .map(|token| admin::AdminCtx::new(token, config.storage.backup_dir.clone(), store.clone())),
    };
    if ctx.dev_mode {
        tracing::warn!("web.dev_mode is on: the page can mint tokens for any user");
    }
    Ok((ls, Some(bound), Some(Arc::new(ctx))))
}

impl Broker {
    /// Opens storage, binds the listeners and starts the workers.
    pub fn start(config: Config) -> Result<Self, BrokerError> {
        config.validate()?;
        let n = config.worker_count();
        let store = Store::open(
            &config.data_dir,
            &StoreOptions {
                durability: match config.durability {
                    DurabilityMode::Fsync => Durability::Fsync,
                    DurabilityMode::Buffered => Durability::Buffered,
                },
                block_cache_bytes: config.storage.block_cache_mb << 20,
                write_buffer_bytes: config.storage.write_buffer_mb << 20,
                dedup_retention_ms: config.storage.dedup_retention_days.saturating_mul(86_400_000),
                clock: Clock::system(),
            },
        )
        .map_err(|e| corrupt_or(&config, e))?;
        if config.storage.verify_on_open {
            let started = std::time::Instant::now();
            let report = store.verify().map_err(|e| corrupt_or(&config, e))?;
            let entries: u64 = report.families.iter().map(|(_, n)| n).sum();
            tracing::info!(
                entries,
                ms = started.elapsed().as_millis() as u64,
                "storage verified (verify_on_open)"
            );
        }
        let committed_version = store.max_version()?;
        // The first listener resolves port 0; the others share its port.
        let first = listener(config.tcp)?;
        let local_addr = first.local_addr()?;
        let mut listeners = vec![first];
        for _ in 1..n {
            listeners.push(listener(local_addr)?);
        }
        // QUIC bridges to the TCP listener, which queues connections until the workers run.
        let quic = match config.quic {
            Some(addr) => Some(quic::start(&config, addr, local_addr)?),
            None => None,
        };
        let wt = quic.as_ref().map(|q| http::WebTransportInfo {
            url: config.web.webtransport_url.clone(),
            addr: q.addr,
            cert_hash: q.generated.then(|| q.cert_sha256.clone()),
        });
        // On an error below, dropping `quic` stops its thread.
        let (web_listeners, ws_addr, web) = web_listeners(&config, n, wt, &store)?;
        let mut polls = Vec::with_capacity(n);
        let mut wakers = Vec::with_capacity(n);
        let mut senders = Vec::with_capacity(n);
        let mut receivers = Vec::with_capacity(n);
        for _ in 0..n {
            let poll = Poll::new()?;
            wakers.push(Arc::new(Waker::new(poll.registry(), WAKER)?));
            polls.push(poll);
            let (tx, rx) = bounded(INBOX_CAPACITY);
            senders.push(tx);
            receivers.push(rx);
        }
        let node = Arc::new(Node::new(Arc::new(config), store, committed_version, n));
        let mesh = Arc::new(Mesh {
            senders,
            wakers,
            shutdown: AtomicBool::new(false),
            conn_count: AtomicUsize::new(0),
            in_flight_ops: AtomicUsize::new(0),
            web,
        });
        let mut threads = Vec::with_capacity(n);
        let mut web_listeners = web_listeners.into_iter();
        for (idx, ((poll, l), rx)) in polls.into_iter().zip(listeners).zip(receivers).enumerate() {
            let wl = web_listeners.next().map(mio::net::TcpListener::from_std);
            let tcp = mio::net::TcpListener::from_std(l);
            let w = Worker::new(idx, Arc::clone(&node), Arc::clone(&mesh), poll, tcp, wl, rx)?;
            let t = std::thread::Builder::new().name(format!("missive-w{idx}")).spawn(move || w.run())?;
            threads.push(t);
        }
        tracing::info!(%local_addr, ?ws_addr, workers = n, "listening");
        Ok(Self { node, mesh, threads, local_addr, ws_addr, quic })
    }

    /// The bound WebSocket/HTTP address, if `ws` is configured.
    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.ws_addr
    }

    /// The `missive listening tcp=ADDR [ws=ADDR]` line printed on stdout.
    pub fn listening_line(&self) -> String {
        let mut line = format!("missive listening tcp={}", self.local_addr);
        if let Some(a) = self.ws_addr {
            line.push_str(&format!(" ws={a}"));
        }
        if let Some(q) = &self.quic {
            line.push_str(&format!(" quic={} cert_sha256={}", q.addr, q.cert_sha256));
        }
        line
    }

    /// The bound TCP address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Asks every worker to stop: stop accepting and reading, finish and
    /// acknowledge every request already received, send SERVER_SHUTDOWN, flush.
    pub fn shutdown(&self) {
        self.mesh.shutdown.store(true, Ordering::Release);
        for w in &self.mesh.wakers {
            let _ = w.wake();
        }
    }

    /// Waits for the workers to exit, then flushes storage.
    pub fn join(self) -> Result<(), BrokerError> {
        for t in self.threads {
            let _ = t.join();
        }
        if let Some(mut q) = self.quic {
            q.stop();
        }
        self.node.store.flush()?;
        Ok(())
    }
}
