//! Missive broker: listeners, thread-per-core event loops, sessions, routing
//! and the conversation services.
//!
//! Threads: `workers` event-loop threads ([`worker`]), each with its own
//! SO_REUSEPORT listener, connections and owner shard ([`shard`]); plus the
//! caller's thread, which only waits. See `docs/ARCHITECTURE.md`. With `ws`
//! set, each worker also owns a SO_REUSEPORT web listener (HTTP + WebSocket
//! framed in the worker, [`ws`], [`http`]); with `quic` set, one `missive-quic`
//! thread bridges QUIC streams to the TCP listener ([`quic`]).
//!
//! Invariants: the library never reads files, flags or environment; it gets a
//! validated [`Config`]. Shared state ([`Shared`]) is read-mostly: the online
//! directory (sharded locks), the version clock (one short lock per batch),
//! channel senders and wakers.

mod accounts;
mod checks;
pub mod cli;
mod clock;
pub mod config;
mod counters;
mod directory;
pub mod error;
mod frames;
mod groups;
mod http;
mod queries;
mod quic;
mod relations;
mod route;
mod shard;
mod sync;
mod worker;
mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::{Sender, bounded};
use mio::{Poll, Waker};
use missive_storage::{Durability, Store, StoreOptions};
use socket2::{Domain, Protocol, Socket, Type};

pub use config::{Config, DurabilityMode};
pub use error::BrokerError;

use clock::VersionClock;
use directory::Directory;
use worker::{WAKER, Worker, WorkerMsg};

/// Capacity of each worker's inbox channel (messages). Memory: ~100 bytes each.
const INBOX_CAPACITY: usize = 65_536;

/// State shared by every worker.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Arc<Config>,
    pub(crate) store: Store,
    pub(crate) clock: Arc<VersionClock>,
    pub(crate) directory: Directory,
    pub(crate) senders: Vec<Sender<WorkerMsg>>,
    pub(crate) wakers: Vec<Arc<Waker>>,
    pub(crate) shutdown: AtomicBool,
    /// Open connections across workers (for `limits.max_connections`).
    pub(crate) conn_count: AtomicUsize,
    /// Requests routed to a shard and not yet answered (graceful shutdown waits for 0).
    pub(crate) in_flight_ops: AtomicUsize,
    pub(crate) token_key: sync::TokenKey,
    /// Friend and blacklist counts behind the relation limits.
    pub(crate) counters: counters::Counters,
    /// Routes and files of the web listener (set when `ws` is configured).
    pub(crate) web: Option<Arc<http::WebCtx>>,
}

/// A running broker.
#[derive(Debug)]
pub struct Broker {
    shared: Arc<Shared>,
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

/// Web listeners (one per worker, SO_REUSEPORT), their address, and the web context.
type WebParts = (Vec<std::net::TcpListener>, Option<SocketAddr>, Option<Arc<http::WebCtx>>);

fn web_listeners(
    config: &Config,
    n: usize,
    webtransport: Option<http::WebTransportInfo>,
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
            },
        )?;
        let clock = Arc::new(VersionClock::new(store.max_version()?));
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
        let (web_listeners, ws_addr, web) = web_listeners(&config, n, wt)?;
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
        let token_key = sync::TokenKey::derive(&config.secret);
        let shared = Arc::new(Shared {
            config: Arc::new(config),
            store,
            clock,
            directory: Directory::new(),
            senders,
            wakers,
            shutdown: AtomicBool::new(false),
            conn_count: AtomicUsize::new(0),
            in_flight_ops: AtomicUsize::new(0),
            token_key,
            counters: counters::Counters::new(),
            web,
        });
        let mut threads = Vec::with_capacity(n);
        let mut web_listeners = web_listeners.into_iter();
        for (idx, ((poll, l), rx)) in polls.into_iter().zip(listeners).zip(receivers).enumerate() {
            let wl = web_listeners.next().map(mio::net::TcpListener::from_std);
            let w = Worker::new(idx, Arc::clone(&shared), poll, mio::net::TcpListener::from_std(l), wl, rx)?;
            let t = std::thread::Builder::new().name(format!("missive-w{idx}")).spawn(move || w.run())?;
            threads.push(t);
        }
        tracing::info!(%local_addr, ?ws_addr, workers = n, "listening");
        Ok(Self { shared, threads, local_addr, ws_addr, quic })
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
        self.shared.shutdown.store(true, Ordering::Release);
        for w in &self.shared.wakers {
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
        self.shared.store.flush()?;
        Ok(())
    }
}
