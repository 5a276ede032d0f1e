//! One worker thread: a `mio` event loop that owns its listener (SO_REUSEPORT),
//! its connections, and the owner shard of its conversations.
//!
//! A loop turn: poll → accept → read and decode frames (bounded per
//! connection) → drain the inbox (bounded batch) → run the shard turn (one
//! RocksDB write) → emit effects → flush every connection with output →
//! timers.
//!
//! Invariants:
//! - nothing blocks except `poll` and the one storage write per turn;
//! - cross-worker messages go through bounded crossbeam channels plus a
//!   `mio::Waker`; a full channel spills into a local FIFO per destination
//!   (order kept) and, while it is non-empty, this worker stops reading
//!   sockets (TCP backpressure) but keeps draining its own inbox, so workers
//!   can never deadlock on each other;
//! - a connection's queued output is bounded by `limits.write_queue_bytes`; a
//!   client that does not read is closed with SLOW_CONSUMER (it re-syncs, nothing
//!   is lost);
//! - decoding never allocates more than `limits.max_frame_size` per frame.

use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use crossbeam_channel::{Receiver, TrySendError};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use missive_protocol::pb::{self, frame, request};
use missive_protocol::token::{self, Role};
use missive_protocol::{
    ClientMsgId, ConvId, ConvKind, DeviceId, ErrorCode, FrameCodec, PROTOCOL_VERSION, UserId,
};
use prost::Message as _;
use tracing::{debug, info, warn};

use crate::Shared;
use crate::clock::now_ms;
use crate::directory::ConnRef;
use crate::error::Reject;
use crate::frames;
use crate::shard::{Effect, OpKind, Shard, ShardOp};

mod web;

/// Token of the listener.
const LISTENER: Token = Token(usize::MAX - 1);
/// Token of the web (WebSocket/HTTP) listener.
const WEB_LISTENER: Token = Token(usize::MAX - 2);
/// Token of the cross-worker waker.
pub(crate) const WAKER: Token = Token(usize::MAX);
/// Inbox messages handled per turn before the loop services sockets again.
const INBOX_BATCH: usize = 4096;
/// Bytes read from one connection per turn (fairness between connections).
const READ_BUDGET: usize = 256 * 1024;
/// Frames decoded from one connection per turn.
const FRAME_BUDGET: usize = 256;
/// Buffers handed to one `writev`.
const MAX_IOV: usize = 64;
/// Messages spilled towards one busy worker before this worker stops reading sockets.
const OVERFLOW_PAUSE: usize = 1024;
/// A connection without input for this long releases its empty buffers.
const BUFFER_RELEASE_AFTER: Duration = Duration::from_secs(1);
/// How long a closing connection may take to flush its Close frame.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// A message between workers.
#[derive(Debug)]
pub(crate) enum WorkerMsg {
    /// A request for the receiving worker's owner shard (boxed: ops are large,
    /// replies and pushes are the common case and stay small).
    Op(Box<ShardOp>),
    /// A response to a request of the receiving worker's connection `conn`.
    Reply { conn: u64, frame: Bytes },
    /// A push to the receiving worker's connection `conn`.
    Push { conn: u64, frame: Bytes },
    /// The owner shard decided the login of connection `conn`.
    LoginDone { conn: u64, user: UserId, result: Result<String, Reject> },
    /// End connection `conn`: push `frame` (a `Kicked`), then Close{code, message}.
    Kick { conn: u64, frame: Bytes, code: ErrorCode, message: String },
}

/// An authenticated session (transport-agnostic state of a connection).
#[derive(Debug)]
struct Session {
    user: UserId,
    device: DeviceId,
    platform: pb::Platform,
    role: Role,
}

#[derive(Debug)]
enum Phase {
    /// Waiting for Hello until the deadline.
    Handshake {
        deadline: Instant,
    },
    /// Hello passed the token checks; the user's owner shard decides the
    /// login. Input is not decoded meanwhile (it stays buffered) and pushes
    /// are dropped, so HelloOk is the first frame the client gets.
    LoggingIn {
        deadline: Instant,
        session: Session,
    },
    Ready(Session),
}

#[derive(Debug)]
struct Conn {
    sock: TcpStream,
    peer: SocketAddr,
    rbuf: BytesMut,
    /// Encoded frames not yet written; `out_bytes` is their total size.
    out: VecDeque<Bytes>,
    out_bytes: usize,
    /// The front of `out` has been partly written: it must be finished before
    /// anything else goes on the wire, or the stream would be cut mid-frame.
    front_partial: bool,
    phase: Phase,
    last_frame: Instant,
    /// Requests sent to shards and not yet answered.
    in_flight: usize,
    /// Set once a Close is queued: flush, then drop by `close_deadline`.
    close_deadline: Option<Instant>,
    /// Queued in the worker's `ready` list (there may be unread bytes).
    readable: bool,
    /// Set for connections of the web listener (HTTP, then WebSocket framing).
    web: Option<Box<web::WebConn>>,
}

pub(crate) struct Worker {
    idx: usize,
    shared: Arc<Shared>,
    poll: Poll,
    listener: Option<TcpListener>,
    web_listener: Option<TcpListener>,
    accept_paused_until: Option<Instant>,
    conns: HashMap<u64, Conn>,
    next_id: u64,
    inbox: Receiver<WorkerMsg>,
    overflow: Vec<VecDeque<WorkerMsg>>,
    /// Workers sent to since the last `flush_wakes` (woken once per turn).
    wake: Vec<bool>,
    shard: Shard,
    ops: Vec<ShardOp>,
    dirty: Vec<u64>,
    /// Connections that may have unread input (each at most once, see `Conn::readable`).
    ready: Vec<u64>,
    codec: FrameCodec,
    last_timer: Instant,
    last_fd_warning: Option<Instant>,
    /// One descriptor kept in reserve so that, at the open-file limit, a waiting
    /// connection can still be accepted and told why it is refused.
    spare_fd: Option<std::fs::File>,
    /// Reused read buffer (one per worker, not per connection).
    scratch: Box<[u8]>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("idx", &self.idx).field("conns", &self.conns.len()).finish()
    }
}

/// Owner shard of a routing key: a conversation id, or `(USER_TAG, user id)`
/// for per-user state. No allocation: the key is hashed in place.
pub(crate) fn owner_of(key: impl std::hash::Hash, workers: usize) -> usize {
    use std::hash::Hasher;
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() as usize) % workers
}

/// Tag that keeps per-user routing keys apart from conversation ids.
pub(crate) const USER_TAG: u8 = b'u';

impl Worker {
    pub(crate) fn new(
        idx: usize,
        shared: Arc<Shared>,
        poll: Poll,
        listener: TcpListener,
        web_listener: Option<TcpListener>,
        inbox: Receiver<WorkerMsg>,
    ) -> io::Result<Self> {
        let mut listener = listener;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let mut web_listener = web_listener;
        if let Some(l) = web_listener.as_mut() {
            poll.registry().register(l, WEB_LISTENER, Interest::READABLE)?;
        }
        let shard = Shard::new(idx, Arc::clone(&shared));
        let n = shared.senders.len();
        let codec = FrameCodec::new(shared.config.limits.max_frame_size);
        Ok(Self {
            idx,
            shared,
            poll,
            listener: Some(listener),
            web_listener,
            accept_paused_until: None,
            conns: HashMap::new(),
            next_id: 1,
            inbox,
            overflow: (0..n).map(|_| VecDeque::new()).collect(),
            wake: vec![false; n],
            shard,
            ops: Vec::new(),
            dirty: Vec::new(),
            ready: Vec::new(),
            codec,
            last_timer: Instant::now(),
            last_fd_warning: None,
            spare_fd: std::fs::File::open("/dev/null").ok(),
            scratch: vec![0u8; 64 * 1024].into_boxed_slice(),
        })
    }

    /// Runs until shutdown completes.
    pub(crate) fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut shutdown_started: Option<Instant> = None;
        loop {
            let busy = !self.ops.is_empty()
                || self.shard.has_deferred()
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
                    LISTENER | WEB_LISTENER => self.accept(),
                    WAKER => {}
                    Token(t) => {
                        let id = t as u64;
                        if let Some(c) = self.conns.get_mut(&id) {
                            if (ev.is_readable() || ev.is_read_closed() || ev.is_error()) && !c.readable {
                                c.readable = true;
                                self.ready.push(id);
                            }
                            if ev.is_writable() && !c.out.is_empty() {
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
            let stopping = self.shared.shutdown.load(Ordering::Acquire);
            if stopping && shutdown_started.is_none() {
                shutdown_started = Some(Instant::now());
                for mut l in [self.listener.take(), self.web_listener.take()].into_iter().flatten() {
                    let _ = self.poll.registry().deregister(&mut l);
                }
            }
            if !stopping && self.overflow.iter().all(|q| q.len() < OVERFLOW_PAUSE) {
                self.read_all();
            }
            self.drain_inbox();
            self.retry_overflow();
            let ops = std::mem::take(&mut self.ops);
            let effects = self.shard.run_turn(ops);
            self.emit(effects);
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

    /// Returns true once this worker may exit.
    fn shutdown_step(&mut self, started: Instant) -> bool {
        let quiet = self.shared.in_flight_ops.load(Ordering::Acquire) == 0
            && self.ops.is_empty()
            && !self.shard.has_deferred()
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
        self.accept_from(false);
        self.accept_from(true);
    }

    /// Accepts from the TCP listener, or (`web`) from the web listener.
    fn accept_from(&mut self, web: bool) {
        if self.accept_paused_until.is_some() {
            return;
        }
        loop {
            let listener = if web { self.web_listener.as_ref() } else { self.listener.as_ref() };
            let Some(listener) = listener else { return };
            match listener.accept() {
                Ok((mut sock, peer)) => {
                    let limit = self.shared.config.limits.max_connections;
                    let id = self.next_id;
                    self.next_id += 1;
                    let _ = sock.set_nodelay(true);
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    if let Err(e) = self.poll.registry().register(&mut sock, Token(id as usize), interest) {
                        warn!(error = %e, "register failed");
                        continue;
                    }
                    let deadline = Instant::now()
                        + Duration::from_secs(self.shared.config.limits.handshake_timeout_secs);
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
                        close_deadline: None,
                        readable: true,
                        web: web.then(|| Box::new(web::WebConn::new())),
                    };
                    self.conns.insert(id, conn);
                    self.ready.push(id);
                    let total = self.shared.conn_count.fetch_add(1, Ordering::AcqRel) + 1;
                    debug!(worker = self.idx, conn = id, %peer, "accepted");
                    if total > limit {
                        self.close(id, ErrorCode::TooManyConnections, "server connection limit reached");
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
                            open_connections = self.shared.conn_count.load(Ordering::Relaxed),
                            fd_limit,
                            "cannot accept: open-file limit reached (RLIMIT_NOFILE); raise `ulimit -n` or lower limits.max_connections"
                        );
                    }
                    self.refuse_backlog(web);
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
    fn refuse_backlog(&mut self, web: bool) {
        const MAX_REFUSED_PER_TURN: usize = 64;
        let close =
            frames::close(ErrorCode::TooManyConnections, "server open-file limit reached; retry later");
        for _ in 0..MAX_REFUSED_PER_TURN {
            let Some(spare) = self.spare_fd.take() else { return };
            drop(spare);
            let listener = if web { self.web_listener.as_ref() } else { self.listener.as_ref() };
            let accepted = match listener.map(|l| l.accept()) {
                Some(Ok((mut sock, _))) => {
                    if !web {
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

    fn read_all(&mut self) {
        let ids = std::mem::take(&mut self.ready);
        for id in ids {
            if let Some(c) = self.conns.get_mut(&id) {
                c.readable = false;
                self.read_conn(id);
            }
        }
    }

    /// Puts a connection back on the ready list (its read budget ran out).
    fn mark_ready(&mut self, id: u64) {
        if let Some(c) = self.conns.get_mut(&id)
            && !c.readable
        {
            c.readable = true;
            self.ready.push(id);
        }
    }

    fn read_conn(&mut self, id: u64) {
        let mut total = 0;
        let mut eof = false;
        let mut more = false;
        {
            let scratch = &mut self.scratch;
            let Some(c) = self.conns.get_mut(&id) else { return };
            if c.close_deadline.is_some() {
                // Discard input of a closing connection.
                let mut sink = [0u8; 4096];
                while let Ok(n) = c.sock.read(&mut sink) {
                    if n == 0 {
                        eof = true;
                        break;
                    }
                }
            } else {
                loop {
                    if total >= READ_BUDGET {
                        more = true;
                        break;
                    }
                    match c.sock.read(&mut scratch[..]) {
                        Ok(0) => {
                            eof = true;
                            break;
                        }
                        Ok(n) => {
                            c.rbuf.extend_from_slice(&scratch[..n]);
                            total += n;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(_) => {
                            eof = true;
                            break;
                        }
                    }
                }
            }
        }
        self.decode_frames(id);
        if eof {
            self.drop_conn(id);
        } else if more {
            self.mark_ready(id);
        }
    }

    fn decode_frames(&mut self, id: u64) {
        if self.conns.get(&id).is_some_and(|c| c.web.is_some()) {
            return self.decode_web(id);
        }
        for _ in 0..FRAME_BUDGET {
            let decoded = {
                let Some(c) = self.conns.get_mut(&id) else { return };
                if c.close_deadline.is_some() || matches!(c.phase, Phase::LoggingIn { .. }) {
                    return;
                }
                match self.codec.split_payload(&mut c.rbuf) {
                    Ok(None) => return,
                    Ok(Some(payload)) => self.codec.decode_payload(payload),
                    Err(e) => Err(e),
                }
            };
            match decoded {
                Ok(frame) => self.on_frame(id, frame),
                Err(e) => {
                    debug!(conn = id, error = %e, "bad frame");
                    self.close(id, e.code(), &e.to_string());
                    return;
                }
            }
        }
        // Budget used up: come back next turn even without a new event.
        self.mark_ready(id);
    }

    fn on_frame(&mut self, id: u64, frame: pb::Frame) {
        let Some(c) = self.conns.get_mut(&id) else { return };
        c.last_frame = Instant::now();
        let ready = matches!(c.phase, Phase::Ready(_));
        match (frame.body, ready) {
            (Some(frame::Body::Hello(h)), false) => self.on_hello(id, h),
            (Some(frame::Body::Hello(_)), true) => self.close(id, ErrorCode::UnexpectedFrame, "second Hello"),
            (_, false) => self.close(id, ErrorCode::HandshakeRequired, "the first frame must be Hello"),
            (Some(frame::Body::Ping(p)), true) => self.enqueue(id, frames::pong(p.nonce, now_ms())),
            (Some(frame::Body::PushAck(_)), true) => {}
            (Some(frame::Body::Request(r)), true) => self.on_request(id, r),
            (_, true) => self.close(id, ErrorCode::UnexpectedFrame, "frame kind not accepted from clients"),
        }
    }

    fn on_hello(&mut self, id: u64, h: pb::Hello) {
        let shared = Arc::clone(&self.shared);
        let result = (|| -> Result<(Session, u64), Reject> {
            if !(h.min_version <= PROTOCOL_VERSION && PROTOCOL_VERSION <= h.max_version) {
                return Err(Reject::new(
                    ErrorCode::UnsupportedVersion,
                    format!("server speaks protocol {PROTOCOL_VERSION} only"),
                ));
            }
            let device = DeviceId::new(h.device_id.clone())
                .map_err(|e| Reject::new(ErrorCode::InvalidArgument, format!("device_id: {e}")))?;
            let platform = pb::Platform::try_from(h.platform)
                .ok()
                .filter(|p| *p != pb::Platform::Unspecified)
                .ok_or_else(|| Reject::new(ErrorCode::InvalidArgument, "platform must be set"))?;
            if h.client_version.len() > 64 {
                return Err(Reject::new(ErrorCode::InvalidArgument, "client_version longer than 64 bytes"));
            }
            let claims = token::verify(shared.config.secret.as_bytes(), &h.token, now_ms() / 1000)
                .map_err(|e| Reject::new(e.code(), e.to_string()))?;
            if claims.device.as_ref().is_some_and(|d| d != &device)
                || claims.platform.is_some_and(|p| p != platform)
            {
                return Err(Reject::new(
                    ErrorCode::TokenDeviceMismatch,
                    "token is restricted to another device",
                ));
            }
            Ok((Session { user: claims.user, device, platform, role: claims.role }, claims.issued_at))
        })();
        let (session, issued_at) = match result {
            Ok(s) => s,
            Err(r) => {
                debug!(conn = id, code = %r.code, "handshake refused");
                self.close(id, r.code, &r.message);
                return;
            }
        };
        // The account checks and the login policy run on the user's owner shard ([L-3]).
        let owner = owner_of((USER_TAG, session.user.as_str()), shared.senders.len());
        let op = ShardOp {
            origin: ConnRef { worker: self.idx, id },
            request_id: 0,
            user: session.user.clone(),
            device: session.device.clone(),
            kind: OpKind::Login { platform: session.platform, role: session.role, issued_at },
        };
        let Some(c) = self.conns.get_mut(&id) else { return };
        let deadline = match c.phase {
            Phase::Handshake { deadline } => deadline,
            _ => Instant::now(),
        };
        c.phase = Phase::LoggingIn { deadline, session };
        c.in_flight += 1;
        shared.in_flight_ops.fetch_add(1, Ordering::AcqRel);
        self.send_to(owner, WorkerMsg::Op(Box::new(op)));
    }

    /// The owner shard decided a login: HelloOk (READY) or Close.
    fn on_login_done(&mut self, id: u64, user: UserId, result: Result<String, Reject>) {
        self.shared.in_flight_ops.fetch_sub(1, Ordering::AcqRel);
        let conn = ConnRef { worker: self.idx, id };
        let alive = self.conns.get(&id).is_some_and(|c| c.close_deadline.is_none());
        let Some(c) = self.conns.get_mut(&id).filter(|_| alive) else {
            // The connection ended while the login was decided: undo its session.
            if result.is_ok() {
                self.end_session(&user, conn);
            }
            return;
        };
        c.in_flight = c.in_flight.saturating_sub(1);
        let sync_token = match result {
            Ok(t) => t,
            Err(r) => {
                debug!(conn = id, code = %r.code, "login refused");
                self.close(id, r.code, &r.message);
                return;
            }
        };
        let session = match std::mem::replace(&mut c.phase, Phase::Handshake { deadline: Instant::now() }) {
            Phase::LoggingIn { session, .. } => session,
            other => {
                c.phase = other;
                return;
            }
        };
        let session_id = format!("{:016x}{:016x}", rand::random::<u64>(), id);
        info!(worker = self.idx, conn = id, user = %session.user, device = %session.device, "session ready");
        let l = &self.shared.config.limits;
        let ok = pb::HelloOk {
            version: PROTOCOL_VERSION,
            server_time_ms: now_ms(),
            session_id,
            user_id: session.user.to_string(),
            sync_token,
            max_frame_size: l.max_frame_size,
            ping_interval_secs: l.ping_interval_secs as u32,
            idle_timeout_secs: l.idle_timeout_secs as u32,
        };
        c.phase = Phase::Ready(session);
        self.enqueue(id, frames::hello_ok(ok));
        // Frames that arrived during the login are decoded now.
        self.mark_ready(id);
    }

    /// Removes an ended session from the directory and, if the user's online
    /// platforms changed, lets the owner shard publish the new presence.
    fn end_session(&mut self, user: &UserId, conn: ConnRef) {
        if let Some((p, changed)) = self.shared.directory.remove(user, conn)
            && changed
        {
            let owner = owner_of((USER_TAG, user.as_str()), self.shared.senders.len());
            let op = ShardOp {
                origin: conn,
                request_id: 0,
                user: user.clone(),
                device: p.device,
                kind: OpKind::Logout,
            };
            self.send_to(owner, WorkerMsg::Op(Box::new(op)));
        }
    }

    fn on_request(&mut self, id: u64, r: pb::Request) {
        let request_id = r.id;
        let shared = Arc::clone(&self.shared);
        let Some(c) = self.conns.get_mut(&id) else { return };
        let Phase::Ready(s) = &c.phase else { return };
        if c.in_flight >= shared.config.limits.max_in_flight {
            let rej = Reject::new(ErrorCode::TooManyInFlight, "too many requests in flight");
            self.enqueue(id, frames::error(request_id, &rej));
            return;
        }
        let (user, device, admin) = (s.user.clone(), s.device.clone(), s.role == Role::Admin);
        let routed = match r.op {
            None => Err(Reject::new(ErrorCode::UnknownRequest, "unknown or missing request operation")),
            Some(op) if crate::groups::is_query(&op) => {
                let frame = match crate::groups::serve_query(&shared, &user, op) {
                    Ok(res) => frames::response(request_id, res),
                    Err(rej) => frames::error(request_id, &rej),
                };
                self.enqueue(id, frame);
                return;
            }
            Some(op) if crate::queries::is_query(&op) => {
                let frame = match crate::queries::serve(&shared, &user, op) {
                    Ok(res) => frames::response(request_id, res),
                    Err(rej) => frames::error(request_id, &rej),
                };
                self.enqueue(id, frame);
                return;
            }
            Some(request::Op::Sync(req)) => {
                let res = crate::sync::serve(&shared, &user, &device, &req);
                let frame = match res {
                    Ok(r) => frames::response(request_id, pb::response::Result::Sync(r)),
                    Err(rej) => frames::error(request_id, &rej),
                };
                self.enqueue(id, frame);
                return;
            }
            Some(op) => self.validate(&user, admin, op),
        };
        match routed {
            Err(rej) => self.enqueue(id, frames::error(request_id, &rej)),
            Ok((owner, kind)) => {
                if let Some(c) = self.conns.get_mut(&id) {
                    c.in_flight += 1;
                }
                shared.in_flight_ops.fetch_add(1, Ordering::AcqRel);
                let op = ShardOp { origin: ConnRef { worker: self.idx, id }, request_id, user, device, kind };
                self.send_to(owner, WorkerMsg::Op(Box::new(op)));
            }
        }
    }

    /// Stateless checks done before routing; returns the owner shard and the op.
    fn validate(&self, user: &UserId, admin: bool, op: request::Op) -> Result<(usize, OpKind), Reject> {
        let workers = self.shared.senders.len();
        let op = match crate::route::user_op(&self.shared, user, admin, op)? {
            crate::route::Routed::Owner(owner, kind) => return Ok((owner, kind)),
            crate::route::Routed::Conversation(op) => op,
        };
        let op = match crate::groups::check(&self.shared, user, op)? {
            Ok((conv, gop)) => {
                return Ok((owner_of(conv.as_str(), workers), OpKind::Group { conv, op: gop }));
            }
            Err(op) => op,
        };
        let conv_of = |s: &str| -> Result<ConvId, Reject> {
            let conv = ConvId::parse(s).map_err(|e| Reject::new(ErrorCode::InvalidConvId, e.to_string()))?;
            if conv.kind() == ConvKind::Group {
                // Membership is checked by the group's owner shard, at the moment of the op.
                return Ok(conv);
            }
            if conv.kind() != ConvKind::Direct {
                return Err(Reject::new(
                    ErrorCode::UnsupportedConversation,
                    "only p: and g: conversations are served",
                ));
            }
            if conv.peer_of(user).is_none() {
                return Err(Reject::new(
                    ErrorCode::NotParticipant,
                    "you are not a participant of this conversation",
                ));
            }
            Ok(conv)
        };
        let kind = match op {
            request::Op::Send(m) => {
                let conv = conv_of(&m.conv_id)?;
                let client_msg_id = ClientMsgId::new(m.client_msg_id)
                    .map_err(|e| Reject::new(ErrorCode::InvalidArgument, e.to_string()))?;
                let content =
                    m.content.ok_or_else(|| Reject::new(ErrorCode::UnsupportedContent, "content missing"))?;
                check_content(&content, self.shared.config.limits.max_content_bytes)?;
                OpKind::Send { conv, client_msg_id, content }
            }
            request::Op::Pull(req) => OpKind::Pull { conv: conv_of(&req.conv_id)?, req },
            request::Op::History(req) => OpKind::History { conv: conv_of(&req.conv_id)?, req },
            request::Op::MarkRead(req) => OpKind::MarkRead { conv: conv_of(&req.conv_id)?, seq: req.seq },
            request::Op::UpdateConversation(req) => {
                if req.pinned.is_none() && req.muted.is_none() && req.hidden.is_none() {
                    return Err(Reject::new(ErrorCode::InvalidArgument, "nothing to update"));
                }
                OpKind::Update { conv: conv_of(&req.conv_id)?, req }
            }
            request::Op::ClearHistory(req) => {
                OpKind::Clear { conv: conv_of(&req.conv_id)?, up_to: req.up_to_seq }
            }
            request::Op::SetGlobalDnd(req) => {
                return Ok((
                    owner_of((USER_TAG, user.as_str()), workers),
                    OpKind::GlobalDnd { enabled: req.enabled },
                ));
            }
            request::Op::Sync(_) => return Err(Reject::new(ErrorCode::Internal, "sync is served locally")),
            _ => return Err(Reject::new(ErrorCode::Internal, "request routed elsewhere")),
        };
        let conv = match &kind {
            OpKind::Send { conv, .. }
            | OpKind::Pull { conv, .. }
            | OpKind::History { conv, .. }
            | OpKind::MarkRead { conv, .. }
            | OpKind::Update { conv, .. }
            | OpKind::Clear { conv, .. } => conv,
            _ => return Err(Reject::new(ErrorCode::Internal, "routed above")),
        };
        Ok((owner_of(conv.as_str(), workers), kind))
    }

    fn send_to(&mut self, worker: usize, msg: WorkerMsg) {
        if worker == self.idx {
            match msg {
                WorkerMsg::Op(op) => self.ops.push(*op),
                WorkerMsg::Reply { conn, frame } => self.on_reply(conn, frame),
                WorkerMsg::Push { conn, frame } => self.push(conn, frame),
                WorkerMsg::LoginDone { conn, user, result } => self.on_login_done(conn, user, result),
                WorkerMsg::Kick { conn, frame, code, message } => self.kick(conn, frame, code, &message),
            }
            return;
        }
        if !self.overflow[worker].is_empty() {
            self.overflow[worker].push_back(msg);
            return;
        }
        match self.shared.senders[worker].try_send(msg) {
            Ok(()) => self.wake[worker] = true,
            Err(TrySendError::Full(m)) | Err(TrySendError::Disconnected(m)) => {
                self.overflow[worker].push_back(m);
            }
        }
    }

    /// Wakes every worker this one sent to since the last call: one eventfd
    /// write per destination per loop turn, not one per message.
    fn flush_wakes(&mut self) {
        for (w, pending) in self.wake.iter_mut().enumerate() {
            if std::mem::take(pending) {
                let _ = self.shared.wakers[w].wake();
            }
        }
    }

    fn retry_overflow(&mut self) {
        for w in 0..self.overflow.len() {
            let mut sent = false;
            while let Some(m) = self.overflow[w].pop_front() {
                match self.shared.senders[w].try_send(m) {
                    Ok(()) => sent = true,
                    Err(TrySendError::Full(m)) | Err(TrySendError::Disconnected(m)) => {
                        self.overflow[w].push_front(m);
                        break;
                    }
                }
            }
            if sent {
                self.wake[w] = true;
            }
        }
    }

    fn drain_inbox(&mut self) {
        for _ in 0..INBOX_BATCH {
            match self.inbox.try_recv() {
                Ok(WorkerMsg::Op(op)) => self.ops.push(*op),
                Ok(WorkerMsg::Reply { conn, frame }) => self.on_reply(conn, frame),
                Ok(WorkerMsg::Push { conn, frame }) => self.push(conn, frame),
                Ok(WorkerMsg::LoginDone { conn, user, result }) => self.on_login_done(conn, user, result),
                Ok(WorkerMsg::Kick { conn, frame, code, message }) => self.kick(conn, frame, code, &message),
                Err(_) => return,
            }
        }
    }

    fn on_reply(&mut self, id: u64, frame: Bytes) {
        self.shared.in_flight_ops.fetch_sub(1, Ordering::AcqRel);
        if let Some(c) = self.conns.get_mut(&id) {
            c.in_flight = c.in_flight.saturating_sub(1);
        }
        self.enqueue(id, frame);
    }

    fn emit(&mut self, effects: Vec<Effect>) {
        for e in effects {
            match e {
                Effect::Reply { conn, frame, .. } => {
                    self.send_to(conn.worker, WorkerMsg::Reply { conn: conn.id, frame })
                }
                Effect::Fanout { users, exclude, frame } => {
                    let mut targets = Vec::new();
                    for u in users.iter() {
                        self.shared.directory.for_each_session(u, |p| {
                            if Some(p.conn) != exclude {
                                targets.push(p.conn);
                            }
                        });
                    }
                    for c in targets {
                        self.send_to(c.worker, WorkerMsg::Push { conn: c.id, frame: frame.clone() });
                    }
                }
                Effect::Kick { conn, frame, code, message } => {
                    self.send_to(conn.worker, WorkerMsg::Kick { conn: conn.id, frame, code, message })
                }
                Effect::LoginDone { conn, user, result } => {
                    self.send_to(conn.worker, WorkerMsg::LoginDone { conn: conn.id, user, result })
                }
            }
        }
    }

    /// Queues a push for a READY connection (dropped during the handshake:
    /// HelloOk must come first, and sync recovers anything missed, [PU-1]).
    fn push(&mut self, id: u64, frame: Bytes) {
        if self.conns.get(&id).is_some_and(|c| matches!(c.phase, Phase::Ready(_))) {
            self.enqueue(id, frame);
        }
    }

    /// Ends a session: the `Kicked` push, then Close.
    fn kick(&mut self, id: u64, frame: Bytes, code: ErrorCode, message: &str) {
        self.push(id, frame);
        self.close(id, code, message);
    }

    /// Queues an encoded frame for a local connection.
    fn enqueue(&mut self, id: u64, frame: Bytes) {
        let Some(c) = self.conns.get(&id) else { return };
        let frame = match &c.web {
            Some(w) if w.is_ws() => crate::ws::wrap(&frame),
            _ => frame,
        };
        self.enqueue_raw(id, frame);
    }

    /// Queues bytes exactly as they go on the wire.
    fn enqueue_raw(&mut self, id: u64, frame: Bytes) {
        let limit = self.shared.config.limits.write_queue_bytes;
        let Some(c) = self.conns.get_mut(&id) else { return };
        if c.close_deadline.is_some() {
            return;
        }
        if c.out_bytes + frame.len() > limit {
            warn!(conn = id, peer = %c.peer, queued = c.out_bytes, "slow consumer: closing");
            // Drop whole queued frames, but keep a partly written one so the
            // Close frame starts on a frame boundary.
            let keep = if c.front_partial { c.out.pop_front() } else { None };
            c.out.clear();
            c.out_bytes = 0;
            if let Some(front) = keep {
                c.out_bytes = front.len();
                c.out.push_back(front);
            }
            self.close(id, ErrorCode::SlowConsumer, "write queue overflow; reconnect and sync");
            return;
        }
        if c.out.is_empty() {
            self.dirty.push(id);
        }
        c.out_bytes += frame.len();
        c.out.push_back(frame);
    }

    /// Queues a Close frame; the connection is dropped once it is flushed.
    fn close(&mut self, id: u64, code: ErrorCode, message: &str) {
        let Some(c) = self.conns.get(&id) else { return };
        let frame = match &c.web {
            None => frames::close(code, message),
            Some(w) => w.close_bytes(code, message),
        };
        self.close_with(id, frame);
    }

    /// Queues `frame` (wire bytes) as the last output; the connection is
    /// dropped once it is flushed.
    fn close_with(&mut self, id: u64, frame: Bytes) {
        let Some(c) = self.conns.get_mut(&id) else { return };
        if c.close_deadline.is_some() {
            return;
        }
        if c.out.is_empty() {
            self.dirty.push(id);
        }
        c.out_bytes += frame.len();
        c.out.push_back(frame);
        c.close_deadline = Some(Instant::now() + CLOSE_LINGER);
        if let Phase::Ready(s) = &c.phase {
            let user = s.user.clone();
            self.end_session(&user, ConnRef { worker: self.idx, id });
        }
    }

    fn flush_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for id in dirty {
            let Some(c) = self.conns.get_mut(&id) else { continue };
            let mut failed = false;
            while !c.out.is_empty() {
                let mut iov = [IoSlice::new(&[]); MAX_IOV];
                let n_iov = c.out.iter().zip(iov.iter_mut()).map(|(b, slot)| *slot = IoSlice::new(b)).count();
                match c.sock.write_vectored(&iov[..n_iov]) {
                    Ok(0) => {
                        failed = true;
                        break;
                    }
                    Ok(mut n) => {
                        c.out_bytes -= n;
                        while n > 0 {
                            let Some(front) = c.out.front_mut() else { break };
                            if n >= front.len() {
                                n -= front.len();
                                c.out.pop_front();
                                c.front_partial = false;
                            } else {
                                front.advance(n);
                                c.front_partial = true;
                                n = 0;
                            }
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            let done_closing = c.close_deadline.is_some() && c.out.is_empty();
            if failed || done_closing {
                self.drop_conn(id);
            }
        }
    }

    fn drop_conn(&mut self, id: u64) {
        let Some(mut c) = self.conns.remove(&id) else { return };
        let _ = self.poll.registry().deregister(&mut c.sock);
        let _ = c.sock.shutdown(std::net::Shutdown::Both);
        self.shared.conn_count.fetch_sub(1, Ordering::AcqRel);
        if let Phase::Ready(s) = &c.phase {
            debug!(conn = id, user = %s.user, "closed");
            let user = s.user.clone();
            self.end_session(&user, ConnRef { worker: self.idx, id });
        }
    }

    fn timers(&mut self) {
        let now = Instant::now();
        let idle = Duration::from_secs(self.shared.config.limits.idle_timeout_secs);
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

/// Content checks: a known body the client may send, non-empty text, size.
fn check_content(content: &pb::Content, max_bytes: usize) -> Result<(), Reject> {
    use pb::content::Body;
    match &content.body {
        None => return Err(Reject::new(ErrorCode::UnsupportedContent, "content has no known body")),
        Some(Body::Tip(_)) | Some(Body::System(_)) => {
            return Err(Reject::new(
                ErrorCode::UnsupportedContent,
                "tip and system content are server-generated",
            ));
        }
        Some(Body::Text(t)) if t.text.is_empty() => {
            return Err(Reject::new(ErrorCode::InvalidArgument, "text is empty"));
        }
        Some(_) => {}
    }
    let len = content.encoded_len();
    if len > max_bytes {
        return Err(Reject::new(
            ErrorCode::ContentTooLarge,
            format!("content is {len} bytes, max {max_bytes}"),
        ));
    }
    Ok(())
}
