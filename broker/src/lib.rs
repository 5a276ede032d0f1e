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
//! thread, which only waits (and reloads the TLS certificate on SIGHUP,
//! [`Broker::reload_tls`]); `limits.query_threads` query-pool threads
//! (`net::query`) serving read-only requests off the loops; with `quic` set,
//! one `missive-quic` thread bridges QUIC streams to the TCP listener.
//!
//! Invariants: the library never reads files, flags or environment; it gets a
//! validated [`Config`]. Module dependencies point one way: net → session →
//! route → services → shard → node (frames and error are leaves).

mod api;
pub mod cli;
pub mod config;
pub mod error;
pub mod filter;
mod frames;
mod hooks;
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

use net::{Listen, Mesh, WAKER, Worker, admin, admit, http, quic, tls};
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
    tls_addr: Option<SocketAddr>,
    wss_addr: Option<SocketAddr>,
    quic: Option<quic::QuicHandle>,
    api: Option<api::ApiHandle>,
    hooks: hooks::HooksHandle,
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

/// `n` listeners on `addr` (one per worker, SO_REUSEPORT) and the bound
/// address; none when `addr` is unset.
fn listeners(
    addr: Option<SocketAddr>,
    n: usize,
) -> Result<(Vec<std::net::TcpListener>, Option<SocketAddr>), BrokerError> {
    let Some(addr) = addr else { return Ok((Vec::new(), None)) };
    // The first listener resolves port 0; the others share its port.
    let first = listener(addr)?;
    let bound = first.local_addr()?;
    let mut ls = vec![first];
    for _ in 1..n {
        ls.push(listener(bound)?);
    }
    Ok((ls, Some(bound)))
}

/// The web context (routes and files), when `ws` or `wss` is configured.
fn web_ctx(
    config: &Config,
    webtransport: Option<http::WebTransportInfo>,
    store: &Store,
) -> Result<Option<Arc<http::WebCtx>>, BrokerError> {
    if config.ws.is_none() && config.wss.is_none() {
        return Ok(None);
    }
    let site = match &config.web.static_dir {
        Some(dir) => http::Site::load(dir)?,
        None => http::Site::default(),
    };
    let ctx = http::WebCtx {
        site,
        dev_mode: config.web.dev_mode,
        ws_echo: config.web.ws_echo,
        secret: config.secret.clone(),
        webtransport,
        allowed_origins: config.web.allowed_origins.iter().map(|o| o.to_ascii_lowercase()).collect(),
        admin: config
            .admin
            .token
            .clone()
            .map(|token| admin::AdminCtx::new(token, config.storage.backup_dir.clone(), store.clone())),
    };
    if ctx.dev_mode {
        tracing::warn!("web.dev_mode is on: the page can mint tokens for any user");
    }
    Ok(Some(Arc::new(ctx)))
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
                max_wal_bytes: config.storage.max_wal_mb << 20,
                dedup_retention_ms: config.storage.dedup_retention_days.saturating_mul(86_400_000),
                clock: Clock::system(),
                // A new store gets one partition (one WAL) per worker unless set.
                partitions: if config.storage.partitions == 0 { n } else { config.storage.partitions },
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
        // A shard writes one partition (`shard % partitions`): the key of each
        // of its records must hash to it, which holds when the partitions
        // divide the workers (hash % workers % partitions == hash % partitions).
        if !n.is_multiple_of(store.partitions()) {
            return Err(BrokerError::Config(format!(
                "workers = {n}, but the data directory {} has {} storage partitions (fixed when it was created); \
                 fix: set workers to a multiple of {}",
                config.data_dir.display(),
                store.partitions(),
                store.partitions()
            )));
        }
        let committed_version = store.max_version()?;
        let (tcp_listeners, local_addr) = listeners(Some(config.tcp), n)?;
        let local_addr = local_addr.unwrap_or(config.tcp);
        let conn_count = Arc::new(AtomicUsize::new(0));
        let admission = Arc::new(admit::Admission::new(
            Arc::clone(&conn_count),
            config.limits.max_connections,
            config.limits.max_connections_per_ip,
            config.limits.max_handshakes_per_ip_per_sec,
        ));
        // One certificate for TCP-TLS, WSS and QUIC.
        let identity = if config.tcp_tls.is_some() || config.wss.is_some() || config.quic.is_some() {
            Some(tls::Identity::load(&config)?)
        } else {
            None
        };
        let tls_ctx = match &identity {
            Some(id) if config.tcp_tls.is_some() || config.wss.is_some() => {
                Some(Arc::new(tls::TlsCtx::new(&config, id)?))
            }
            _ => None,
        };
        // QUIC bridges to the TCP listener, which queues connections until the workers run.
        let quic = match (config.quic, &identity) {
            (Some(addr), Some(id)) => {
                Some(quic::start(&config, id, addr, local_addr, Arc::clone(&admission))?)
            }
            _ => None,
        };
        let wt = quic.as_ref().map(|q| http::WebTransportInfo {
            url: config.web.webtransport_url.clone(),
            addr: q.addr,
            cert_hash: q.generated.then(|| q.cert_sha256.clone()),
        });
        // On an error below, dropping `quic` stops its thread.
        let web = web_ctx(&config, wt, &store)?;
        let (ws_listeners, ws_addr) = listeners(config.ws, n)?;
        let (tls_listeners, tls_addr) = listeners(config.tcp_tls, n)?;
        let (wss_listeners, wss_addr) = listeners(config.wss, n)?;
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
        node.load_moderation().map_err(BrokerError::Config)?;
        let mesh = Arc::new(Mesh {
            senders,
            wakers,
            shutdown: AtomicBool::new(false),
            conn_count,
            admission,
            tls: tls_ctx,
            in_flight_ops: AtomicUsize::new(0),
            web,
            api: net::mailbox::Replies::default(),
            hooks: std::sync::OnceLock::new(),
        });
        hooks::load(&node)?;
        let (hooks_rt, hooks_handle) = hooks::start(&node, &mesh)?;
        let _ = mesh.hooks.set(hooks_rt);
        let (query_tx, query_rx) = crossbeam_channel::unbounded();
        // The pool ends once the workers (its only job senders) are gone.
        let mut pool = net::query::spawn(&node, &mesh, &query_rx)?;
        drop(query_rx);
        let mut threads = Vec::with_capacity(n);
        let mut per_kind = [tcp_listeners, ws_listeners, tls_listeners, wss_listeners].map(Vec::into_iter);
        for (idx, (poll, rx)) in polls.into_iter().zip(receivers).enumerate() {
            let mut ls: [Option<mio::net::TcpListener>; 4] = [None, None, None, None];
            for kind in Listen::ALL {
                ls[kind as usize] = per_kind[kind as usize].next().map(mio::net::TcpListener::from_std);
            }
            let w = Worker::new(idx, Arc::clone(&node), Arc::clone(&mesh), poll, ls, rx, query_tx.clone())?;
            let t = std::thread::Builder::new().name(format!("missive-w{idx}")).spawn(move || w.run())?;
            threads.push(t);
        }
        drop(query_tx);
        threads.append(&mut pool);
        let api = api::start(&node, &mesh)?;
        tracing::info!(%local_addr, ?ws_addr, ?tls_addr, ?wss_addr, workers = n, "listening");
        Ok(Self {
            node,
            mesh,
            threads,
            local_addr,
            ws_addr,
            tls_addr,
            wss_addr,
            quic,
            api,
            hooks: hooks_handle,
        })
    }

    /// Re-reads the certificate files (`web.tls_cert`, `web.tls_key`; on
    /// SIGHUP): new TLS, WSS and QUIC connections use the new certificate,
    /// open ones keep theirs. Returns the new certificate's SHA-256, or `None`
    /// when the certificate is generated (nothing to reload). On an error the
    /// old certificate stays in use everywhere.
    pub fn reload_tls(&self) -> Result<Option<String>, BrokerError> {
        let id = match &self.mesh.tls {
            Some(t) => t.reload()?,
            None if self.quic.is_some() && self.node.config.web.tls_cert.is_some() => {
                Some(tls::Identity::load(&self.node.config)?)
            }
            None => return Ok(None),
        };
        let Some(id) = id else { return Ok(None) };
        if let Some(q) = &self.quic {
            q.set_identity(&self.node.config, &id)?;
        }
        tracing::info!(cert_sha256 = %id.sha256, "tls: certificate reloaded");
        Ok(Some(id.sha256))
    }

    /// The bound WebSocket/HTTP address, if `ws` is configured.
    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.ws_addr
    }

    /// The `missive listening tcp=ADDR [ws=ADDR] [tcp_tls=ADDR] [wss=ADDR] [quic=ADDR]
    /// [cert_sha256=HEX]` line printed on stdout (`cert_sha256` whenever a TLS or QUIC
    /// listener runs).
    pub fn listening_line(&self) -> String {
        let mut line = format!("missive listening tcp={}", self.local_addr);
        if let Some(a) = self.ws_addr {
            line.push_str(&format!(" ws={a}"));
        }
        if let Some(a) = self.tls_addr {
            line.push_str(&format!(" tcp_tls={a}"));
        }
        if let Some(a) = self.wss_addr {
            line.push_str(&format!(" wss={a}"));
        }
        if let Some(q) = &self.quic {
            line.push_str(&format!(" quic={}", q.addr));
        }
        if let Some(a) = &self.api {
            line.push_str(&format!(" api={}", a.addr));
        }
        let sha = self
            .mesh
            .tls
            .as_ref()
            .map(|t| t.sha256())
            .or_else(|| self.quic.as_ref().map(|q| q.cert_sha256.clone()));
        if let Some(sha) = sha {
            line.push_str(&format!(" cert_sha256={sha}"));
        }
        line
    }

    /// The bound admin REST API address, if `[api] listen` is set.
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api.as_ref().map(|a| a.addr)
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
        if let Some(mut a) = self.api {
            a.stop();
        }
        let mut hooks = self.hooks;
        hooks.stop();
        self.node.store.flush()?;
        Ok(())
    }
}
