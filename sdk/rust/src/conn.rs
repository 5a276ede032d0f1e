//! Low-level connection: one TCP connection to a Missive server.
//!
//! Role: performs the handshake (`Hello` → `HelloOk`), then runs one reader
//! thread that decodes frames and dispatches them: a `Response` to the caller
//! waiting on its request id, a `Pong` to the caller waiting on its nonce, a
//! `Push` to the [`Event`] channel, a `Close` to every waiter (as
//! [`SdkError::Closed`]) and to the event channel. Requests are blocking with
//! a timeout and may be issued from any number of threads at once; they are
//! typed by [`Call`] (`conn.call(pb::PullRequest { .. })` returns
//! `pb::Messages`), the one request vocabulary of the protocol crate.
//!
//! Invariants:
//! - writes go through one mutex, each frame with a single `write_all`; a
//!   failed or timed-out write shuts the socket down (a partial frame would
//!   corrupt the stream), so the connection then ends;
//! - once the connection ended, exactly one [`Event::Closed`] is emitted (the
//!   server's `Close`, else code 0 "connection lost"), every pending request
//!   fails with [`SdkError::Closed`] and new requests fail immediately;
//! - the event channel is bounded ([`EVENT_CHANNEL_CAPACITY`]): when it is full
//!   the reader thread blocks, which stops reading the socket (TCP
//!   backpressure; the server may then close with SLOW_CONSUMER) and also
//!   delays responses, so consume events promptly;
//! - frames from the server are never trusted: nothing here panics on
//!   network input; unknown frame kinds, push events and result cases are
//!   ignored or mapped to errors ([V-3], [V-4], [V-6]).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use crossbeam_channel::{Receiver, RecvTimeoutError, SendTimeoutError, Sender, bounded};
use missive_protocol::pb::{self, frame, push, request, response};
use missive_protocol::{Call, DEFAULT_MAX_FRAME_SIZE, FrameCodec, PROTOCOL_VERSION, request_frame};
use parking_lot::Mutex;
use tracing::debug;

use crate::error::SdkError;

/// Capacity of a connection's event channel.
pub const EVENT_CHANNEL_CAPACITY: usize = 100_000;

/// Smallest inbound frame limit. The client accepts frames up to
/// `max(HelloOk.max_frame_size, this)`: [F-5] promises the server stays within
/// its `max_frame_size`, being lenient here only guards against a server that
/// does not, while still bounding memory per frame.
const MIN_INBOUND_FRAME_LIMIT: u32 = 64 * 1024 * 1024;

/// Default connect, handshake and request timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How to reach and authenticate to a server.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `host:port` of the server's TCP listener.
    pub addr: String,
    /// Access token (JWT, see spec/PROTOCOL.md section 5).
    pub token: String,
    /// Stable id of this installation ([H-2]).
    pub device_id: String,
    /// Platform announced in `Hello`; never `Unspecified`.
    pub platform: pb::Platform,
    /// Free-form client version, at most 64 bytes.
    pub client_version: String,
    /// How long a request (or ping) waits for its answer.
    pub request_timeout: Duration,
    /// How long the TCP connect and, separately, the handshake may take.
    pub connect_timeout: Duration,
}

impl ConnectOptions {
    /// Options with platform Linux, client version `missive-sdk-rust/<version>`
    /// and 10 s timeouts.
    pub fn new(addr: impl Into<String>, token: impl Into<String>, device_id: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            token: token.into(),
            device_id: device_id.into(),
            platform: pb::Platform::Linux,
            client_version: concat!("missive-sdk-rust/", env!("CARGO_PKG_VERSION")).to_owned(),
            request_timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// Something the server sent without being asked, or the end of the connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// `Push{message}`.
    Message(pb::Message),
    /// `Push{read_receipt}`.
    ReadReceipt(pb::ReadReceipt),
    /// `Push{conversation}`.
    Conversation(pb::ConversationState),
    /// `Push{settings}`.
    Settings(pb::UserSettings),
    /// `Push{kicked}`: this session ends; a `Closed` follows.
    Kicked(pb::Kicked),
    /// `Push{profile}`: the user's own or a friend's profile changed.
    Profile(pb::Profile),
    /// `Push{relation}`: the user's relation with someone changed.
    Relation(pb::Relation),
    /// `Push{presence}`: a subscribed user's (or the user's own) presence changed.
    Presence(pb::Presence),
    /// `Push{group_application}`: a join application (to group managers), an
    /// invitation (to the invitee), an application's outcome (to the
    /// applicant) or a declined invitation (to the inviter and the invitee's
    /// other devices). The invitee answers with `pb::RespondGroupApplication`
    /// naming themselves as `user_id` (`accept: false` declines, spec [GR-9a]).
    GroupApplication(pb::GroupApplication),
    /// `Push{message_update}`: a message was recalled, edited, deleted,
    /// reacted to or extended (spec section 18).
    MessageUpdate(pb::MessageUpdate),
    /// `Push{typing}`: someone is typing (transient).
    Typing(pb::TypingEvent),
    /// `Push{delivery_receipt}`: the 1:1 peer received up to a seq.
    DeliveryReceipt(pb::DeliveryReceipt),
    /// The connection ended: the server's `Close{code, message}`, or code 0
    /// when the TCP connection ended without one. Always the last event.
    Closed {
        /// Protocol error code, 0 if there was no `Close` frame.
        code: u32,
        /// Human-readable reason.
        message: String,
    },
}

/// Callers waiting for an answer, and whether the connection has ended.
#[derive(Debug, Default)]
struct Waiters {
    requests: HashMap<u64, Sender<pb::Response>>,
    pongs: HashMap<u64, Sender<pb::Pong>>,
    closed: Option<(u32, String)>,
}

#[derive(Debug)]
struct Shared {
    writer: Mutex<TcpStream>,
    /// A clone of the socket used only to shut it down (never blocks on `writer`).
    ctl: TcpStream,
    waiters: Mutex<Waiters>,
    next_id: AtomicU64,
    shutting_down: AtomicBool,
    epoch: Instant,
    /// Milliseconds after `epoch` when the last frame arrived.
    last_frame_ms: AtomicU64,
}

impl Shared {
    fn touch(&self) {
        self.last_frame_ms.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
        let _ = self.ctl.shutdown(Shutdown::Both);
    }

    fn closed_error(&self) -> SdkError {
        match &self.waiters.lock().closed {
            Some((code, message)) => SdkError::Closed { code: *code, message: message.clone() },
            None => SdkError::Closed { code: 0, message: "connection lost".to_owned() },
        }
    }
}

/// One connection to a Missive server. `Send + Sync`: share it with `Arc`.
pub struct Connection {
    shared: Arc<Shared>,
    events: Receiver<Event>,
    hello_ok: pb::HelloOk,
    /// Outbound codec, bounded by `HelloOk.max_frame_size` ([F-4]).
    codec: FrameCodec,
    request_timeout: Duration,
    peer: SocketAddr,
    reader: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.peer)
            .field("user", &self.hello_ok.user_id)
            .field("session", &self.hello_ok.session_id)
            .field("closed", &self.close_reason())
            .finish()
    }
}

fn open(addr: &str, timeout: Duration) -> Result<TcpStream, SdkError> {
    let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, format!("{addr}: no address to connect to"));
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(SdkError::Io(last))
}

fn nonzero(d: Duration) -> Duration {
    d.max(Duration::from_millis(1))
}

fn body_name(body: &frame::Body) -> &'static str {
    match body {
        frame::Body::Hello(_) => "Hello",
        frame::Body::HelloOk(_) => "HelloOk",
        frame::Body::Request(_) => "Request",
        frame::Body::Response(_) => "Response",
        frame::Body::Push(_) => "Push",
        frame::Body::PushAck(_) => "PushAck",
        frame::Body::Ping(_) => "Ping",
        frame::Body::Pong(_) => "Pong",
        frame::Body::Close(_) => "Close",
    }
}

/// Maps a `Response` to its result; an unset result without error is success ([V-6]).
fn into_result(r: pb::Response) -> Result<response::Result, SdkError> {
    if let Some(e) = r.error {
        return Err(SdkError::Server {
            code: e.code,
            message: e.message,
            retryable: e.retryable,
            retry_after_ms: e.retry_after_ms,
        });
    }
    Ok(r.result.unwrap_or(response::Result::Ok(pb::Ok {})))
}

impl Connection {
    /// Connects, sends `Hello` and waits for `HelloOk`. A `Close` during the
    /// handshake is returned as [`SdkError::Closed`] with the server's code.
    pub fn connect(opts: &ConnectOptions) -> Result<Connection, SdkError> {
        let mut stream = open(&opts.addr, nonzero(opts.connect_timeout))?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(nonzero(opts.request_timeout)))?;
        stream.set_read_timeout(Some(nonzero(opts.connect_timeout)))?;
        let peer = stream.peer_addr()?;
        let hello = pb::Frame {
            body: Some(frame::Body::Hello(pb::Hello {
                min_version: PROTOCOL_VERSION,
                max_version: PROTOCOL_VERSION,
                token: opts.token.clone(),
                device_id: opts.device_id.clone(),
                platform: opts.platform as i32,
                client_version: opts.client_version.clone(),
            })),
        };
        stream.write_all(&FrameCodec::default().encode_to_bytes(&hello)?)?;

        let handshake_codec = FrameCodec::new(MIN_INBOUND_FRAME_LIMIT);
        let deadline = Instant::now() + nonzero(opts.connect_timeout);
        let mut buf = BytesMut::with_capacity(4096);
        let mut scratch = [0u8; 16 * 1024];
        let hello_ok = loop {
            match handshake_codec.decode(&mut buf)? {
                Some(pb::Frame { body: Some(frame::Body::HelloOk(ok)) }) => break ok,
                Some(pb::Frame { body: Some(frame::Body::Close(c)) }) => {
                    return Err(SdkError::Closed { code: c.code, message: c.message });
                }
                Some(pb::Frame { body: None }) => continue,
                Some(pb::Frame { body: Some(other) }) => {
                    return Err(SdkError::Protocol(format!(
                        "expected HelloOk, got {} during the handshake",
                        body_name(&other)
                    )));
                }
                None => {}
            }
            if Instant::now() >= deadline {
                return Err(SdkError::Timeout);
            }
            match stream.read(&mut scratch) {
                Ok(0) => {
                    return Err(SdkError::Closed {
                        code: 0,
                        message: "connection closed during the handshake".to_owned(),
                    });
                }
                Ok(n) => buf.extend_from_slice(&scratch[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Err(SdkError::Timeout);
                }
                Err(e) => return Err(e.into()),
            }
        };
        stream.set_read_timeout(None)?;

        let max = if hello_ok.max_frame_size == 0 { DEFAULT_MAX_FRAME_SIZE } else { hello_ok.max_frame_size };
        let inbound = FrameCodec::new(max.max(MIN_INBOUND_FRAME_LIMIT));
        let reader_sock = stream.try_clone()?;
        let ctl = stream.try_clone()?;
        let epoch = Instant::now();
        let shared = Arc::new(Shared {
            writer: Mutex::new(stream),
            ctl,
            waiters: Mutex::new(Waiters::default()),
            next_id: AtomicU64::new(1),
            shutting_down: AtomicBool::new(false),
            epoch,
            last_frame_ms: AtomicU64::new(0),
        });
        let (tx, rx) = bounded(EVENT_CHANNEL_CAPACITY);
        let reader_shared = Arc::clone(&shared);
        let reader = std::thread::Builder::new()
            .name("missive-sdk-reader".to_owned())
            .spawn(move || reader_loop(reader_sock, buf, inbound, reader_shared, tx))?;
        debug!(%peer, user = %hello_ok.user_id, session = %hello_ok.session_id, "connected");
        Ok(Connection {
            shared,
            events: rx,
            hello_ok,
            codec: FrameCodec::new(max),
            request_timeout: opts.request_timeout,
            peer,
            reader: Some(reader),
        })
    }

    /// The server's handshake answer.
    pub fn hello_ok(&self) -> &pb::HelloOk {
        &self.hello_ok
    }

    /// The authenticated user (`HelloOk.user_id`).
    pub fn user_id(&self) -> &str {
        &self.hello_ok.user_id
    }

    /// The server's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Pushes and the final [`Event::Closed`].
    pub fn events(&self) -> &Receiver<Event> {
        &self.events
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.shared.waiters.lock().closed.is_some()
    }

    /// Why the connection ended (`(code, message)`, code 0 = no `Close` frame).
    pub fn close_reason(&self) -> Option<(u32, String)> {
        self.shared.waiters.lock().closed.clone()
    }

    /// Time since the last frame arrived from the server (or since the handshake).
    pub fn last_frame_age(&self) -> Duration {
        let now = self.shared.epoch.elapsed();
        now.saturating_sub(Duration::from_millis(self.shared.last_frame_ms.load(Ordering::Relaxed)))
    }

    /// Shuts the socket down without waiting; the reader then ends the
    /// connection (pending requests fail, [`Event::Closed`] is emitted).
    pub fn shutdown(&self) {
        self.shared.shutdown();
    }

    /// Shuts the connection down and joins the reader thread.
    pub fn close(self) {
        drop(self);
    }

    fn write_encoded(&self, bytes: &[u8]) -> Result<(), SdkError> {
        let mut w = self.shared.writer.lock();
        if let Err(e) = w.write_all(bytes) {
            // A partial frame would corrupt the stream: end the connection.
            let _ = w.shutdown(Shutdown::Both);
            return Err(e.into());
        }
        Ok(())
    }

    fn write_frame(&self, frame: &pb::Frame) -> Result<(), SdkError> {
        let bytes = self.codec.encode_to_bytes(frame)?;
        self.write_encoded(&bytes)
    }

    /// Sends any frame as is (for tests), bypassing the outbound size check.
    pub fn send_frame_raw(&self, frame: &pb::Frame) -> Result<(), SdkError> {
        let bytes = FrameCodec::new(u32::MAX).encode_to_bytes(frame)?;
        self.write_encoded(&bytes)
    }

    /// Writes raw bytes on the socket (for tests of the server's framing checks).
    pub fn send_bytes_raw(&self, bytes: &[u8]) -> Result<(), SdkError> {
        self.write_encoded(bytes)
    }

    /// Sends a typed request and waits up to the configured request timeout
    /// for its typed reply, e.g. `conn.call(pb::MarkRead { conv_id, seq })`
    /// returns the new `ConversationState`. An error response becomes
    /// [`SdkError::Server`]; a result of another kind [`SdkError::Protocol`].
    /// A raw [`request::Op`] is a `Call` too (reply: the raw result).
    pub fn call<C: Call>(&self, req: C) -> Result<C::Reply, SdkError> {
        self.call_with_timeout(req, self.request_timeout)
    }

    /// [`Connection::call`], waiting up to `timeout` for the response.
    pub fn call_with_timeout<C: Call>(&self, req: C, timeout: Duration) -> Result<C::Reply, SdkError> {
        let result = self.exchange(req.into_op(), timeout)?;
        Ok(C::reply(result)?)
    }

    /// Sends a raw op and waits up to the request timeout (same as
    /// [`Connection::call`] with a [`request::Op`]).
    pub fn request(&self, op: request::Op) -> Result<response::Result, SdkError> {
        self.call(op)
    }

    /// Sends one request and waits up to `timeout` for its response. An error
    /// response becomes [`SdkError::Server`]; a success without a known result
    /// case becomes `response::Result::Ok` ([V-6]).
    fn exchange(&self, op: request::Op, timeout: Duration) -> Result<response::Result, SdkError> {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = bounded(1);
        {
            let mut w = self.shared.waiters.lock();
            if let Some((code, message)) = &w.closed {
                return Err(SdkError::Closed { code: *code, message: message.clone() });
            }
            w.requests.insert(id, tx);
        }
        if let Err(e) = self.write_frame(&request_frame(id, op)) {
            self.shared.waiters.lock().requests.remove(&id);
            return Err(e);
        }
        match rx.recv_timeout(timeout) {
            Ok(resp) => into_result(resp),
            Err(RecvTimeoutError::Timeout) => {
                self.shared.waiters.lock().requests.remove(&id);
                Err(SdkError::Timeout)
            }
            Err(RecvTimeoutError::Disconnected) => Err(self.shared.closed_error()),
        }
    }

    /// Sends `Ping` and waits up to the request timeout for the matching `Pong`.
    pub fn ping(&self) -> Result<pb::Pong, SdkError> {
        let nonce = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = bounded(1);
        {
            let mut w = self.shared.waiters.lock();
            if let Some((code, message)) = &w.closed {
                return Err(SdkError::Closed { code: *code, message: message.clone() });
            }
            w.pongs.insert(nonce, tx);
        }
        let frame = pb::Frame { body: Some(frame::Body::Ping(pb::Ping { nonce })) };
        if let Err(e) = self.write_frame(&frame) {
            self.shared.waiters.lock().pongs.remove(&nonce);
            return Err(e);
        }
        match rx.recv_timeout(self.request_timeout) {
            Ok(p) => Ok(p),
            Err(RecvTimeoutError::Timeout) => {
                self.shared.waiters.lock().pongs.remove(&nonce);
                Err(SdkError::Timeout)
            }
            Err(RecvTimeoutError::Disconnected) => Err(self.shared.closed_error()),
        }
    }

    /// Sends `Ping` without waiting (keep-alive, [K-3]); the `Pong` only
    /// refreshes [`Connection::last_frame_age`].
    pub fn send_ping(&self) -> Result<(), SdkError> {
        let nonce = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        self.write_frame(&pb::Frame { body: Some(frame::Body::Ping(pb::Ping { nonce })) })
    }

    /// Acknowledges delivery: "I hold every message of conv up to seq" ([PA-1]).
    /// An empty list sends nothing.
    pub fn push_ack<S: AsRef<str>>(&self, delivered: &[(S, u64)]) -> Result<(), SdkError> {
        if delivered.is_empty() {
            return Ok(());
        }
        let delivered = delivered
            .iter()
            .map(|(c, seq)| pb::Delivered { conv_id: c.as_ref().to_owned(), seq: *seq })
            .collect();
        self.write_frame(&pb::Frame { body: Some(frame::Body::PushAck(pb::PushAck { delivered })) })
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared.shutdown();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// Delivers an event, waiting while the channel is full unless the
/// connection is being shut down (then the event is dropped).
fn send_event(shared: &Shared, events: &Sender<Event>, mut ev: Event) {
    loop {
        match events.send_timeout(ev, Duration::from_millis(100)) {
            Ok(()) => return,
            Err(SendTimeoutError::Timeout(back)) => {
                if shared.shutting_down.load(Ordering::Acquire) {
                    return;
                }
                ev = back;
            }
            Err(SendTimeoutError::Disconnected(_)) => return,
        }
    }
}

/// Records the end of the connection once: fails every waiter, emits `Closed`.
fn finish(shared: &Shared, events: &Sender<Event>, code: u32, message: String) {
    let first = {
        let mut w = shared.waiters.lock();
        if w.closed.is_some() {
            false
        } else {
            w.closed = Some((code, message.clone()));
            // Dropping the senders wakes every waiter with `Disconnected`.
            w.requests.clear();
            w.pongs.clear();
            true
        }
    };
    if first {
        debug!(code, %message, "connection ended");
        send_event(shared, events, Event::Closed { code, message });
    }
}

fn dispatch(shared: &Shared, events: &Sender<Event>, frame: pb::Frame) {
    match frame.body {
        Some(frame::Body::Response(r)) => {
            let waiter = shared.waiters.lock().requests.remove(&r.id);
            match waiter {
                Some(tx) => {
                    let _ = tx.send(r);
                }
                None => debug!(id = r.id, "response for no waiting request (timed out?)"),
            }
        }
        Some(frame::Body::Push(p)) => {
            let ev = match p.event {
                Some(push::Event::Message(m)) => Event::Message(m),
                Some(push::Event::ReadReceipt(r)) => Event::ReadReceipt(r),
                Some(push::Event::Conversation(c)) => Event::Conversation(c),
                Some(push::Event::Settings(s)) => Event::Settings(s),
                Some(push::Event::Kicked(k)) => Event::Kicked(k),
                Some(push::Event::Profile(p)) => Event::Profile(p),
                Some(push::Event::Relation(r)) => Event::Relation(r),
                Some(push::Event::Presence(p)) => Event::Presence(p),
                Some(push::Event::GroupApplication(a)) => Event::GroupApplication(a),
                Some(push::Event::MessageUpdate(u)) => Event::MessageUpdate(u),
                Some(push::Event::Typing(t)) => Event::Typing(t),
                Some(push::Event::DeliveryReceipt(d)) => Event::DeliveryReceipt(d),
                None => return, // [V-4]
            };
            send_event(shared, events, ev);
        }
        Some(frame::Body::Pong(p)) => {
            if let Some(tx) = shared.waiters.lock().pongs.remove(&p.nonce) {
                let _ = tx.send(p);
            }
        }
        Some(frame::Body::Close(c)) => finish(shared, events, c.code, c.message),
        // [V-3]: anything else from the server is ignored.
        Some(other) => debug!(kind = body_name(&other), "ignoring unexpected frame from server"),
        None => {}
    }
}

fn reader_loop(
    mut sock: TcpStream,
    mut buf: BytesMut,
    codec: FrameCodec,
    shared: Arc<Shared>,
    events: Sender<Event>,
) {
    let mut scratch = vec![0u8; 64 * 1024];
    let lost = |shared: &Shared| {
        let msg = if shared.shutting_down.load(Ordering::Acquire) {
            "connection closed by client"
        } else {
            "connection lost"
        };
        (0u32, msg.to_owned())
    };
    let (code, message) = 'outer: loop {
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    shared.touch();
                    dispatch(&shared, &events, frame);
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = sock.shutdown(Shutdown::Both);
                    break 'outer (0, format!("undecodable frame from server: {e}"));
                }
            }
        }
        match sock.read(&mut scratch) {
            Ok(0) => break lost(&shared),
            Ok(n) => buf.extend_from_slice(&scratch[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                debug!(error = %e, "read failed");
                break lost(&shared);
            }
        }
    };
    finish(&shared, &events, code, message);
}
