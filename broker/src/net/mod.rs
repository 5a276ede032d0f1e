//! The network edge: one worker thread per core, each a `mio` event loop
//! that owns its listeners (SO_REUSEPORT), its connections, and its owner
//! shard ([`Engine`]).
//!
//! Files: `conn.rs` (connection state, write queue, close, flush),
//! `read.rs` (read, decode, hand frames to `crate::session`), `mailbox.rs`
//! (messages between workers, emitting effects), `query.rs` (the query pool
//! serving read-only requests off the loops), `web.rs` + `http.rs` +
//! `ws.rs` (the web listener: HTTP, WebSocket), `quic.rs` (the QUIC and
//! WebTransport bridge), `tls.rs` (TLS streams and the shared certificate),
//! `admit.rs` (connection counts: total and per address).
//!
//! A loop turn: poll → accept → read and decode frames (bounded per
//! connection) → drain the inbox (bounded batch) → finish the shard turn
//! whose write completed and start the next (one RocksDB batch; in `fsync`
//! mode written by the worker's writer thread, `writer.rs`) → emit effects →
//! flush every connection with output → timers.
//!
//! Invariants:
//! - nothing blocks except `poll` (and, in `buffered` mode, the one unsynced
//!   storage write per turn); no synced write runs on the loop;
//! - decoding never allocates more than `limits.max_frame_size` per frame
//!   (`limits.max_hello_frame_size` before the handshake), and a connection's
//!   read buffer never holds more than one such frame plus a small slack;
//! - no read-only query runs on the loop: they go to the query pool, and an
//!   owner shard's reads (pull, history) take at most a small time budget per
//!   turn (`shard::READ_TURN_BUDGET`);
//! - the engine gets the turn's time as an argument (`now_ms`).

pub(crate) mod admin;
pub(crate) mod admit;
mod conn;
pub(crate) mod http;
pub(crate) mod mailbox;
pub(crate) mod query;
pub(crate) mod quic;
mod read;
mod routes;
pub(crate) mod tls;
mod web;
mod writer;
pub(crate) mod ws;

use std::collections::{HashMap, VecDeque};
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use crossbeam_channel::{Receiver, Sender};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use missive_protocol::{ConvId, ErrorCode, FrameCodec, UserId};
use tracing::{debug, info, warn};

use crate::config::DurabilityMode;
use crate::frames;
use crate::node::Node;
use crate::node::clock::now_ms;
use crate::services::{ServiceOp, Services};
use crate::shard::{self, Engine, ShardOp, Started};

use conn::{Bucket, Conn, Phase};
pub(crate) use mailbox::WorkerMsg;
use tls::Stream;

/// What the workers share besides the node state: how to reach each other,
/// and the process-wide connection and request counts.
#[derive(Debug)]
pub(crate) struct Mesh {
    pub(crate) senders: Vec<Sender<WorkerMsg>>,
    pub(crate) wakers: Vec<Arc<Waker>>,
    pub(crate) shutdown: AtomicBool,
    /// Open connections across workers and QUIC (for `limits.max_connections`;
    /// the same counter as `admission.total`).
    pub(crate) conn_count: Arc<AtomicUsize>,
    /// Connection counts, total and per address (shared with the QUIC thread).
    pub(crate) admission: Arc<admit::Admission>,
    /// The certificate of the TLS listeners (set when `tcp_tls` or `wss` is configured).
    pub(crate) tls: Option<Arc<tls::TlsCtx>>,
    /// Requests routed to a shard and not yet answered (graceful shutdown waits for 0).
    pub(crate) in_flight_ops: AtomicUsize,
    /// Routes and files of the web listener (set when `ws` is configured).
    pub(crate) web: Option<Arc<http::WebCtx>>,
    /// REST API calls waiting for their owner shard's answer.
    pub(crate) api: mailbox::Replies,
    /// The webhook runtime (`before.send` decisions); set once at start.
    pub(crate) hooks: std::sync::OnceLock<Arc<crate::hooks::Hooks>>,
}

/// Token of the listener.
pub(super) const LISTENER: Token = Token(usize::MAX - 1);
/// Token of the web (WebSocket/HTTP) listener.
pub(super) const WEB_LISTENER: Token = Token(usize::MAX - 2);
/// Token of the TLS listener for native clients.
pub(super) const TLS_LISTENER: Token = Token(usize::MAX - 3);
/// Token of the TLS web (WSS/HTTPS) listener.
pub(super) const WSS_LISTENER: Token = Token(usize::MAX - 4);

/// A worker's listeners: what each accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listen {
    /// Native clients over TCP (and the QUIC bridges).
    Tcp = 0,
    /// HTTP / WebSocket.
    Web = 1,
    /// Native clients over TLS (ALPN `missive/1`).
    Tls = 2,
    /// HTTPS / WebSocket over TLS.
    Wss = 3,
}

impl Listen {
    pub(crate) const ALL: [Listen; 4] = [Listen::Tcp, Listen::Web, Listen::Tls, Listen::Wss];

    fn token(self) -> Token {
        match self {
            Listen::Tcp => LISTENER,
            Listen::Web => WEB_LISTENER,
            Listen::Tls => TLS_LISTENER,
            Listen::Wss => WSS_LISTENER,
        }
    }

    /// HTTP first, then WebSocket framing.
    fn web(self) -> bool {
        matches!(self, Listen::Web | Listen::Wss)
    }

    fn tls(self) -> bool {
        matches!(self, Listen::Tls | Listen::Wss)
    }
}
/// Token of the cross-worker waker.
pub(crate) const WAKER: Token = Token(usize::MAX);
/// Inbox messages handled per turn before the loop services sockets again.
pub(super) const INBOX_BATCH: usize = 4096;
/// Bytes read from one connection per turn (fairness between connections).
pub(super) const READ_BUDGET: usize = 256 * 1024;
/// Bytes written to one connection per turn (fairness: a connection taking
/// megabytes of replies must not delay other connections' frames).
pub(super) const WRITE_BUDGET: usize = 256 * 1024;
/// Frames decoded from one connection per turn.
pub(super) const FRAME_BUDGET: usize = 256;
/// Buffers handed to one `writev`.
pub(super) const MAX_IOV: usize = 64;
/// Messages spilled towards one busy worker before this worker stops reading sockets.
pub(super) const OVERFLOW_PAUSE: usize = 1024;
/// A connection without input for this long releases its empty buffers.
pub(super) const BUFFER_RELEASE_AFTER: Duration = Duration::from_secs(1);
/// How long a closing connection may take to flush its Close frame.
pub(super) const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// One worker thread (see the module docs).
pub(crate) struct Worker {
    idx: usize,
    node: Arc<Node>,
    mesh: Arc<Mesh>,
    poll: Poll,
    /// Indexed by [`Listen`].
    listeners: [Option<TcpListener>; 4],
    accept_paused_until: Option<Instant>,
    conns: HashMap<u64, Conn>,
    next_id: u64,
    inbox: Receiver<WorkerMsg>,
    overflow: Vec<VecDeque<WorkerMsg>>,
    /// Workers sent to since the last `flush_wakes` (woken once per turn).
    wake: Vec<bool>,
    engine: Engine<Services>,
    ops: Vec<ShardOp<ServiceOp>>,
    dirty: Vec<u64>,
    /// Connections that may have unread input (each at most once, see `Conn::readable`).
    ready: Vec<u64>,
    codec: FrameCodec,
    /// The codec before the handshake completed (`limits.max_hello_frame_size`).
    hello_codec: FrameCodec,
    /// Jobs for the query pool (`query.rs`).
    query_tx: Sender<query::QueryJob>,
    /// This worker's jobs in the pool now.
    queries_running: usize,
    /// Connections with queued queries, served round robin.
    query_rr: VecDeque<u64>,
    last_timer: Instant,
    last_fd_warning: Option<Instant>,
    /// One descriptor kept in reserve so that, at the open-file limit, a waiting
    /// connection can still be accepted and told why it is refused.
    spare_fd: Option<std::fs::File>,
    /// Reused read buffer (one per worker, not per connection).
    scratch: Box<[u8]>,
    /// Writes the shard's batches off the loop (`fsync` durability only).
    writer: Option<writer::Writer>,
    /// `PushAck` entries read this turn, highest seq per (conversation,
    /// user): one delivery op each, sent after the reads (`read::flush_acks`).
    acks: HashMap<(ConvId, UserId), read::PendingAck>,
    /// Fan-out routes of large recipient lists (`routes.rs`).
    routes: routes::Routes,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("idx", &self.idx).field("conns", &self.conns.len()).finish()
    }
}

impl Worker {
    pub(crate) fn new(
        idx: usize,
        node: Arc<Node>,
        mesh: Arc<Mesh>,
        poll: Poll,
        mut listeners: [Option<TcpListener>; 4],
        inbox: Receiver<WorkerMsg>,
        query_tx: Sender<query::QueryJob>,
    ) -> io::Result<Self> {
        for kind in Listen::ALL {
            if let Some(l) = listeners[kind as usize].as_mut() {
                poll.registry().register(l, kind.token(), Interest::READABLE)?;
            }
        }
        let engine = Engine::new(idx, Arc::clone(&node), Services::new(idx, Arc::clone(&node)));
        let writer = match node.config.durability {
            DurabilityMode::Fsync => {
                Some(writer::Writer::spawn(idx, node.store.clone(), Arc::clone(&mesh.wakers[idx]))?)
            }
            DurabilityMode::Buffered => None,
        };
        let n = mesh.senders.len();
        let codec = FrameCodec::new(node.config.limits.max_frame_size);
        let hello_codec = FrameCodec::new(node.config.limits.max_hello_frame_size);
        Ok(Self {
            idx,
            node,
            mesh,
            poll,
            listeners,
            accept_paused_until: None,
            conns: HashMap::new(),
            next_id: 1,
            inbox,
            overflow: (0..n).map(|_| VecDeque::new()).collect(),
            wake: vec![false; n],
            engine,
            ops: Vec::new(),
            dirty: Vec::new(),
            ready: Vec::new(),
            codec,
            hello_codec,
            query_tx,
            queries_running: 0,
            query_rr: VecDeque::new(),
            last_timer: Instant::now(),
            last_fd_warning: None,
            spare_fd: std::fs::File::open("/dev/null").ok(),
            scratch: vec![0u8; 64 * 1024].into_boxed_slice(),
            writer,
            acks: HashMap::new(),
            routes: routes::Routes::default(),
        })
    }

    /// Runs until shutdown completes.
    pub(crate) fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut shutdown_started: Option<Instant> = None;
        loop {
            let shard_ready = self.engine.wants_turn(&self.ops);
            let busy = shard_ready
                || !self.dirty.is_empty()
                || !self.inbox.is_empty()
                || !self.ready.is_empty()
                || self.overflow.iter().any(|q| !q.is_empty());
            let timeout = if busy { Duration::ZERO } else { Duration::from_millis(200) };
            self.flush_wakes();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                && e.kind() != io::ErrorKind::Interrupted
            {
                warn!(worker = self.idx, error = %e, "poll failed");
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER | WEB_LISTENER | TLS_LISTENER | WSS_LISTENER => self.accept(),
                    WAKER => {}
                    Token(t) => {
                        let id = t as u64;
                        if let Some(c) = self.conns.get_mut(&id) {
                            if (ev.is_readable() || ev.is_read_closed() || ev.is_error()) && !c.readable {
                                c.readable = true;
                                self.ready.push(id);
                            }
                            if ev.is_writable() && (!c.out.is_empty() || c.sock.wants_write()) {
                                self.dirty.push(id);
                            }
                        }
                    }
                }
            }
            if self.accept_paused_until.is_some_and(|t| Instant::now() >= t) {
                self.accept_paused_until = None;
                self.accept();
            }
            let stopping = self.mesh.shutdown.load(Ordering::Acquire);
            if stopping && shutdown_started.is_none() {
                shutdown_started = Some(Instant::now());
                for mut l in self.listeners.iter_mut().filter_map(Option::take) {
                    let _ = self.poll.registry().deregister(&mut l);
                }
            }
            if !stopping && self.overflow.iter().all(|q| q.len() < OVERFLOW_PAUSE) {
                self.read_all();
            }
            self.flush_acks();
            self.drain_inbox();
            self.retry_overflow();
            self.shard_turn();
            self.flush_dirty();
            if self.last_timer.elapsed() >= Duration::from_millis(500) {
                self.last_timer = Instant::now();
                self.timers();
            }
            if let Some(started) = shutdown_started
                && self.shutdown_step(started)
            {
                break;
            }
        }
        info!(worker = self.idx, "worker stopped");
    }

    /// Ends the shard turn whose write finished, then starts the next one:
    /// its batch goes to the writer thread (`fsync`) or is written here.
    fn shard_turn(&mut self) {
        while let Some(written) = self.writer.as_ref().and_then(|w| w.done.try_recv().ok()) {
            let effects = self.engine.finish_turn(written);
            self.emit(effects);
        }
        if !self.engine.wants_turn(&self.ops) {
            return;
        }
        let ops = std::mem::take(&mut self.ops);
        match self.engine.start_turn(ops, now_ms()) {
            Started::Done(effects) => self.emit(effects),
            Started::Write { batch, after } => {
                // fsync: the writer thread reports back (see the top of this fn);
                // buffered, or a writer that is gone: finish here.
                let written = match &self.writer {
                    Some(w) => match w.submit(batch, after) {
                        Ok(()) => return,
                        Err(r) => {
                            // The thread is gone: no turn in flight will come back.
                            while self.engine.write_in_flight() {
                                let effects = self.engine.finish_turn(Err(r.clone()));
                                self.emit(effects);
                            }
                            return;
                        }
                    },
                    None => shard::write(&self.node.store, batch),
                };
                let effects = self.engine.finish_turn(written);
                self.emit(effects);
            }
        }
    }

    /// Returns true once this worker may exit.
    fn shutdown_step(&mut self, started: Instant) -> bool {
        let quiet = self.mesh.in_flight_ops.load(Ordering::Acquire) == 0
            && !self.engine.write_in_flight()
            && self.ops.is_empty()
            && !self.engine.has_deferred()
            && self.inbox.is_empty()
            && self.overflow.iter().all(VecDeque::is_empty);
        let waited = started.elapsed();
        if (quiet || waited > Duration::from_secs(5))
            && self.conns.values().any(|c| c.close_deadline.is_none())
        {
            let ids: Vec<u64> = self.conns.keys().copied().collect();
            for id in ids {
                self.close(id, ErrorCode::ServerShutdown, "server shutting down");
            }
            self.flush_dirty();
        }
        let closing_done = self.conns.values().all(|c| c.close_deadline.is_some() && c.out.is_empty());
        if (quiet && closing_done) || waited > Duration::from_secs(8) {
            let ids: Vec<u64> = self.conns.keys().copied().collect();
            for id in ids {
                self.drop_conn(id);
            }
            return true;
        }
        false
    }

    fn accept(&mut self) {
        for kind in Listen::ALL {
            self.accept_from(kind);
        }
    }

    /// Accepts from one listener. A connection over `limits.max_connections`
    /// or `limits.max_connections_per_ip` is accepted only to be told why
    /// (Close TOO_MANY_CONNECTIONS, or HTTP 503 on the web listeners).
    fn accept_from(&mut self, kind: Listen) {
        if self.accept_paused_until.is_some() {
            return;
        }
        loop {
            let Some(listener) = self.listeners[kind as usize].as_ref() else { return };
            match listener.accept() {
                Ok((mut sock, peer)) => {
                    let id = self.next_id;
                    self.next_id += 1;
                    let _ = sock.set_nodelay(true);
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    if let Err(e) = self.poll.registry().register(&mut sock, Token(id as usize), interest) {
                        warn!(error = %e, "register failed");
                        continue;
                    }
                    // A QUIC bridge needs no slot: its QUIC connection holds one.
                    let slot = if kind == Listen::Tcp && self.mesh.admission.take_bridge(peer) {
                        Ok(None)
                    } else {
                        self.mesh.admission.admit(peer.ip()).map(Some)
                    };
                    let sock = match (&self.mesh.tls, kind.tls()) {
                        (Some(t), true) => match t.accept(sock, kind.web()) {
                            Ok(s) => s,
                            Err(e) => {
                                warn!(error = %e, "tls session failed");
                                continue;
                            }
                        },
                        _ => Stream::Plain(sock),
                    };
                    let (slot, refused) = match slot {
                        Ok(s) => (s, None),
                        Err(why) => (None, Some(why)),
                    };
                    let deadline =
                        Instant::now() + Duration::from_secs(self.node.config.limits.handshake_timeout_secs);
                    let conn = Conn {
                        sock,
                        peer,
                        rbuf: BytesMut::new(),
                        out: VecDeque::new(),
                        out_bytes: 0,
                        front_partial: false,
                        phase: Phase::Handshake { deadline },
                        last_frame: Instant::now(),
                        in_flight: 0,
                        reserved: 0,
                        paused: false,
                        queries: VecDeque::new(),
                        silent: Bucket::new(
                            self.node.config.limits.max_silent_frames_per_sec,
                            Instant::now(),
                        ),
                        requests: Bucket::new(self.node.config.limits.max_requests_per_sec, Instant::now()),
                        sends: Bucket::new(self.node.config.limits.max_sends_per_sec, Instant::now()),
                        typing: Bucket::new(self.node.config.messages.typing_per_sec, Instant::now()),
                        acked: false,
                        close_deadline: None,
                        readable: true,
                        web: kind.web().then(|| Box::new(web::WebConn::new())),
                        slot,
                    };
                    self.conns.insert(id, conn);
                    self.ready.push(id);
                    debug!(worker = self.idx, conn = id, %peer, "accepted");
                    match refused {
                        Some(why @ admit::Refusal::Rate(ms)) if !kind.web() => {
                            self.close_with(id, frames::close_retry(why.code(), why.message(), ms))
                        }
                        Some(why) => self.close(id, why.code(), why.message()),
                        None => {}
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE / ENFILE: out of file descriptors. Say so clearly, back off.
                    let fd_limit = crate::fd_limit();
                    if self.last_fd_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        self.last_fd_warning = Some(Instant::now());
                        tracing::error!(
                            worker = self.idx,
                            error = %e,
                            open_connections = self.mesh.conn_count.load(Ordering::Relaxed),
                            fd_limit,
                            "cannot accept: open-file limit reached (RLIMIT_NOFILE); raise `ulimit -n` or lower limits.max_connections"
                        );
                    }
                    self.refuse_backlog(kind);
                    self.accept_paused_until = Some(Instant::now() + Duration::from_millis(100));
                    return;
                }
            }
        }
    }

    /// Out of file descriptors: frees the spare descriptor to accept waiting
    /// connections one at a time and tell each `Close{TOO_MANY_CONNECTIONS}`
    /// (a raw TCP frame; WebSocket clients just see the connection close), so
    /// clients in the kernel's backlog fail fast instead of hanging.
    fn refuse_backlog(&mut self, kind: Listen) {
        const MAX_REFUSED_PER_TURN: usize = 64;
        let close =
            frames::close(ErrorCode::TooManyConnections, "server open-file limit reached; retry later");
        for _ in 0..MAX_REFUSED_PER_TURN {
            // Another thread may have taken the slot a previous round freed: try to
            // get the spare back before giving up on refusing for this turn.
            if self.spare_fd.is_none() {
                self.spare_fd = std::fs::File::open("/dev/null").ok();
            }
            let Some(spare) = self.spare_fd.take() else { return };
            drop(spare);
            let accepted = match self.listeners[kind as usize].as_ref().map(|l| l.accept()) {
                Some(Ok((mut sock, _))) => {
                    if kind == Listen::Tcp {
                        let _ = sock.write(&close);
                    }
                    let _ = sock.shutdown(std::net::Shutdown::Both);
                    true
                }
                _ => false,
            };
            self.spare_fd = std::fs::File::open("/dev/null").ok();
            if !accepted {
                return;
            }
        }
    }

    fn timers(&mut self) {
        let now = Instant::now();
        let idle = Duration::from_secs(self.node.config.limits.idle_timeout_secs);
        let mut to_close = Vec::new();
        let mut to_drop = Vec::new();
        // Quiet connections give their buffers back: an idle session costs only its
        // state, not a read buffer or an emptied write queue's capacity.
        for c in self.conns.values_mut() {
            if now.duration_since(c.last_frame) >= BUFFER_RELEASE_AFTER {
                if c.rbuf.is_empty() && c.rbuf.capacity() > 0 {
                    c.rbuf = BytesMut::new();
                }
                if c.out.is_empty() && c.out.capacity() > 0 {
                    c.out = VecDeque::new();
                }
            }
        }
        for (id, c) in &self.conns {
            if let Some(d) = c.close_deadline {
                if now >= d {
                    to_drop.push(*id);
                }
                continue;
            }
            match &c.phase {
                Phase::Handshake { deadline } | Phase::LoggingIn { deadline, .. } if now >= *deadline => {
                    to_close.push((*id, ErrorCode::HandshakeTimeout, "no Hello in time"));
                }
                Phase::Ready(_) if now.duration_since(c.last_frame) >= idle => {
                    to_close.push((*id, ErrorCode::IdleTimeout, "no frame within the idle timeout"));
                }
                _ => {}
            }
        }
        for (id, code, msg) in to_close {
            self.close(id, code, msg);
        }
        for id in to_drop {
            self.drop_conn(id);
        }
    }
}
