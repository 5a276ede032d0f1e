//! [`RawClient`]: a minimal synchronous protocol client over one TCP connection.
//!
//! Role: frames in and out (raw bytes too, for framing tests), the handshake
//! (`hello`), requests with response matching by id and pipelining, pings,
//! and the expected end of a connection (`expect_closed`, `expect_close_code`).
//! Frames that arrive while waiting for something else are kept: pushes in
//! [`RawClient::pushes`], responses and pongs until asked for.
//!
//! The typed helpers of each request group live in the submodules, one per
//! service (they are all `impl RawClient` blocks, so a test just calls
//! `client.send_ok(..)`, `client.add_friend(..)`, ...):
//! `messages` (send, pull, history), `conversations` (read marks, pin/mute/hide,
//! clear, DND), `sync` (paged sync), `accounts` (import, disable, revoke,
//! profiles), `presence`, `relations` (friends, blacklist), `groups`, and
//! `pushes` (waits for a given push, kicks).
//!
//! Invariants: only `missive_protocol` is used (codec, prost types), never the
//! SDK or the broker; every wait is bounded; a frame the server sends that
//! does not decode, or two responses to one request id, is a test failure.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use missive_protocol::pb::{self, frame, request, response};
use missive_protocol::{Call, FrameCodec};

use crate::{ErrorCode, Platform, WAIT, frame_of, hello_msg, mint, mint_admin};

mod accounts;
mod conversations;
mod groups;
mod messages;
mod presence;
mod pushes;
mod relations;
mod sync;

pub use sync::{SyncAll, SyncFull};

/// Largest frame the test client accepts from the server. Larger than the
/// broker's `max_frame_size` on purpose: message pages are built by the server
/// and only bounded by page size × content size.
const CLIENT_MAX_FRAME: u32 = 256 * 1024 * 1024;

/// Outcome of one read attempt.
// Short-lived return value matched by value in tests; boxing would only hurt matching.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Recv {
    /// A complete frame.
    Frame(pb::Frame),
    /// Nothing complete arrived within the timeout; the connection is open.
    Timeout,
    /// The server closed the connection (EOF or reset) and no complete frame is buffered.
    Eof,
}

/// A minimal synchronous protocol client over one TCP connection.
pub struct RawClient {
    stream: TcpStream,
    codec: FrameCodec,
    rbuf: BytesMut,
    eof: bool,
    next_id: u64,
    /// Pushes received and not yet consumed, oldest first.
    pub pushes: VecDeque<pb::Push>,
    /// Responses received for other request ids than the one being waited for.
    responses: HashMap<u64, pb::Response>,
    /// Pongs received while waiting for something else.
    pongs: VecDeque<pb::Pong>,
    /// The Close frame, once one arrived.
    pub close: Option<pb::Close>,
    /// The HelloOk, once the handshake succeeded.
    pub hello_ok: Option<pb::HelloOk>,
    /// Payload length of the last frame received.
    pub last_frame_len: usize,
    /// Largest payload length received on this connection.
    pub max_frame_len: usize,
}

impl std::fmt::Debug for RawClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawClient")
            .field("local", &self.stream.local_addr().ok())
            .field("eof", &self.eof)
            .field("pushes", &self.pushes.len())
            .field("close", &self.close)
            .finish()
    }
}

/// A `Response` split into its outcome.
pub fn outcome(r: pb::Response) -> Result<response::Result, pb::Error> {
    match (r.error, r.result) {
        (Some(e), _) => Err(e),
        (None, Some(res)) => Ok(res),
        (None, None) => panic!("response {} has neither error nor result", r.id),
    }
}

impl RawClient {
    /// Opens a TCP connection (no Hello sent).
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect to broker");
        Self::from_stream(stream)
    }

    /// Opens a TCP connection whose receive buffer is `rcvbuf` bytes (set before
    /// connecting, so the TCP window stays small): used to play a slow consumer.
    pub fn connect_small_rcvbuf(addr: SocketAddr, rcvbuf: usize) -> Self {
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, Some(socket2::Protocol::TCP))
                .expect("socket");
        sock.set_recv_buffer_size(rcvbuf).expect("SO_RCVBUF");
        sock.connect_timeout(&addr.into(), Duration::from_secs(10)).expect("connect to broker");
        Self::from_stream(sock.into())
    }

    fn from_stream(stream: TcpStream) -> Self {
        stream.set_nodelay(true).expect("nodelay");
        Self {
            stream,
            codec: FrameCodec::new(CLIENT_MAX_FRAME),
            rbuf: BytesMut::with_capacity(64 * 1024),
            eof: false,
            next_id: 1,
            pushes: VecDeque::new(),
            responses: HashMap::new(),
            pongs: VecDeque::new(),
            close: None,
            hello_ok: None,
            last_frame_len: 0,
            max_frame_len: 0,
        }
    }

    /// Connects and completes the handshake for `user` on `device` (Linux);
    /// panics if the server refuses.
    pub fn login(addr: SocketAddr, user: &str, device: &str) -> Self {
        let mut c = Self::connect(addr);
        if let Err(close) = c.hello(&mint(user), device, Platform::Linux) {
            panic!("hello as {user}/{device} refused: {close:?}");
        }
        c
    }

    /// The local socket address (for diagnostics).
    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().expect("local addr")
    }

    /// A second handle on the socket (e.g. for a thread that only writes).
    pub fn stream_clone(&self) -> TcpStream {
        self.stream.try_clone().expect("clone the client socket")
    }

    /// Writes raw bytes.
    pub fn try_send_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Writes raw bytes; panics on an I/O error.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.try_send_bytes(bytes).expect("write to broker");
    }

    /// Encodes and writes one frame.
    pub fn try_send_frame(&mut self, f: &pb::Frame) -> io::Result<()> {
        let bytes = self.codec.encode_to_bytes(f).expect("encode frame");
        self.try_send_bytes(&bytes)
    }

    /// Encodes and writes one frame; panics on an I/O error.
    pub fn send_frame(&mut self, f: &pb::Frame) {
        self.try_send_frame(f).expect("write frame to broker");
    }

    /// Reads until one complete frame is buffered, the timeout passes or EOF.
    pub fn recv(&mut self, timeout: Duration) -> Recv {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 64 * 1024];
        loop {
            let prefix = (self.rbuf.len() >= 4)
                .then(|| u32::from_be_bytes([self.rbuf[0], self.rbuf[1], self.rbuf[2], self.rbuf[3]]));
            match self.codec.decode(&mut self.rbuf) {
                Ok(Some(f)) => {
                    let len = prefix.unwrap_or(0) as usize;
                    self.last_frame_len = len;
                    self.max_frame_len = self.max_frame_len.max(len);
                    if let Some(frame::Body::Close(c)) = &f.body {
                        self.close = Some(c.clone());
                    }
                    return Recv::Frame(f);
                }
                Ok(None) => {}
                Err(e) => panic!("server sent an undecodable frame: {e}"),
            }
            if self.eof {
                return Recv::Eof;
            }
            let now = Instant::now();
            if now >= deadline {
                return Recv::Timeout;
            }
            let left = (deadline - now).max(Duration::from_millis(1));
            self.stream.set_read_timeout(Some(left)).expect("set_read_timeout");
            match self.stream.read(&mut buf) {
                Ok(0) => self.eof = true,
                Ok(n) => self.rbuf.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => self.eof = true, // reset / aborted: the server is gone
            }
        }
    }

    /// The next frame, or `None` on timeout or EOF (see [`RawClient::is_eof`]).
    pub fn recv_frame(&mut self, timeout: Duration) -> Option<pb::Frame> {
        match self.recv(timeout) {
            Recv::Frame(f) => Some(f),
            Recv::Timeout | Recv::Eof => None,
        }
    }

    /// Bytes of an incomplete frame currently buffered (after EOF: the
    /// connection ended in the middle of a frame).
    pub fn partial_bytes(&self) -> usize {
        self.rbuf.len()
    }

    /// The bytes of an incomplete frame currently buffered.
    pub fn partial_data(&self) -> &[u8] {
        &self.rbuf
    }

    /// Whether the server closed the connection (all buffered frames may not be consumed yet).
    pub fn is_eof(&self) -> bool {
        self.eof
    }

    /// Sends Hello (versions 1..=1) and waits for HelloOk (`Ok`) or Close (`Err`).
    pub fn hello(&mut self, token: &str, device: &str, platform: Platform) -> Result<pb::HelloOk, pb::Close> {
        self.hello_frame(hello_msg(token, device, platform))
    }

    /// Sends the given Hello and waits for HelloOk (`Ok`) or Close (`Err`).
    pub fn hello_frame(&mut self, h: pb::Hello) -> Result<pb::HelloOk, pb::Close> {
        self.send_frame(&frame_of(frame::Body::Hello(h)));
        match self.recv(WAIT) {
            Recv::Frame(pb::Frame { body: Some(frame::Body::HelloOk(ok)) }) => {
                self.hello_ok = Some(ok.clone());
                Ok(ok)
            }
            Recv::Frame(pb::Frame { body: Some(frame::Body::Close(c)) }) => Err(c),
            other => panic!("expected HelloOk or Close after Hello, got {other:?}"),
        }
    }

    /// Allocates a request id.
    pub fn next_request_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Sends a request without waiting; returns its id (pipelining).
    pub fn try_send_request<C: Call>(&mut self, req: C) -> io::Result<u64> {
        let id = self.next_request_id();
        self.try_send_frame(&missive_protocol::request_frame(id, req))?;
        Ok(id)
    }

    /// Sends a request without waiting; returns its id (pipelining).
    pub fn send_request<C: Call>(&mut self, req: C) -> u64 {
        self.try_send_request(req).expect("write request")
    }

    /// Handles one non-response frame that arrived while waiting.
    fn stash(&mut self, f: pb::Frame) {
        match f.body {
            Some(frame::Body::Push(p)) => self.pushes.push_back(p),
            Some(frame::Body::Response(r)) => {
                let id = r.id;
                if self.responses.insert(id, r).is_some() {
                    panic!("two responses for request id {id}");
                }
            }
            Some(frame::Body::Pong(p)) => self.pongs.push_back(p),
            Some(frame::Body::Close(c)) => self.close = Some(c),
            other => panic!("unexpected frame from server: {other:?}"),
        }
    }

    /// Waits for the Response to request `id`, keeping pushes and other
    /// responses that arrive meanwhile. Panics on timeout, Close or EOF.
    pub fn wait_response(&mut self, id: u64, timeout: Duration) -> pb::Response {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self.responses.remove(&id) {
                return r;
            }
            if let Some(c) = &self.close {
                panic!("connection closed by the server while waiting for response {id}: {c:?}");
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Recv::Frame(f) => self.stash(f),
                Recv::Timeout => panic!("no response to request {id} within {timeout:?}"),
                Recv::Eof => panic!("connection closed (EOF) while waiting for response {id}"),
            }
        }
    }

    /// Waits for the response of any request, keeping pushes meanwhile. `None`
    /// on timeout or EOF.
    pub fn next_response(&mut self, timeout: Duration) -> Option<pb::Response> {
        if let Some(id) = self.responses.keys().next().copied() {
            return self.responses.remove(&id);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Recv::Frame(pb::Frame { body: Some(frame::Body::Response(r)) }) => return Some(r),
                Recv::Frame(f) => self.stash(f),
                Recv::Timeout | Recv::Eof => return None,
            }
        }
    }

    /// Sends a request and waits (bounded by [`WAIT`]) for its response.
    pub fn request<C: Call>(&mut self, req: C) -> pb::Response {
        let id = self.send_request(req);
        let r = self.wait_response(id, WAIT);
        assert_eq!(r.id, id);
        r
    }

    /// Sends Ping{nonce} and waits for the matching Pong (pushes are kept).
    pub fn ping(&mut self, nonce: u64) -> pb::Pong {
        self.send_frame(&frame_of(frame::Body::Ping(pb::Ping { nonce })));
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(pos) = self.pongs.iter().position(|p| p.nonce == nonce) {
                return self.pongs.remove(pos).expect("pong at position");
            }
            if let Some(c) = &self.close {
                panic!("connection closed by the server while waiting for pong {nonce}: {c:?}");
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Recv::Frame(f) => self.stash(f),
                Recv::Timeout => panic!("no pong for nonce {nonce} within {WAIT:?}"),
                Recv::Eof => panic!("connection closed (EOF) while waiting for pong {nonce}"),
            }
        }
    }

    /// Reads until the server closes the connection; returns the Close frame
    /// if one arrived (before or during this call). Panics if the connection
    /// is still open after `timeout`. Pushes read meanwhile are dropped.
    pub fn expect_closed(&mut self, timeout: Duration) -> Option<pb::Close> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Recv::Frame(pb::Frame { body: Some(frame::Body::Close(c)) }) => self.close = Some(c),
                Recv::Frame(_) => {}
                Recv::Eof => return self.close.clone(),
                Recv::Timeout => {
                    panic!("connection still open after {timeout:?} (close frame so far: {:?})", self.close)
                }
            }
        }
    }

    /// Asserts the server sends Close{code} and then closes the connection.
    pub fn expect_close_code(&mut self, code: ErrorCode) -> pb::Close {
        match self.expect_closed(WAIT) {
            Some(c) => {
                assert_eq!(
                    c.code,
                    code.as_u32(),
                    "expected Close {code}, got Close {} {:?} ({:?})",
                    c.code,
                    c.message,
                    ErrorCode::from_u32(c.code)
                );
                c
            }
            None => panic!("connection closed without a Close frame; expected Close {code}"),
        }
    }

    /// Connects as an admin session.
    pub fn login_admin(addr: SocketAddr, user: &str) -> Self {
        let mut c = Self::connect(addr);
        if let Err(close) = c.hello(&mint_admin(user), "admin-dev", Platform::Linux) {
            panic!("admin hello refused: {close:?}");
        }
        c
    }

    /// Any request, split into its typed reply or error; panics on a result
    /// of another kind ([`Call::reply`]). A raw `request::Op` gets the raw result.
    pub fn call<C: Call>(&mut self, req: C) -> Result<C::Reply, pb::Error> {
        let result = outcome(self.request(req))?;
        Ok(C::reply(result).unwrap_or_else(|e| panic!("{e}")))
    }

    /// Sends every op pipelined (up to `window` in flight); panics on any error.
    pub fn call_all_ok(&mut self, ops: Vec<request::Op>, window: usize) {
        let mut pending = 0;
        let mut ops = ops.into_iter();
        loop {
            while pending < window {
                let Some(op) = ops.next() else { break };
                self.send_request(op);
                pending += 1;
            }
            if pending == 0 {
                return;
            }
            let r = self.next_response(WAIT).expect("a response to a pipelined request");
            if let Err(e) = outcome(r) {
                panic!("pipelined request failed: {e:?}");
            }
            pending -= 1;
        }
    }

    /// Whether the connection is still up: a Ping gets its Pong before a
    /// Close or EOF (queued pushes are kept).
    pub fn is_alive(&mut self) -> bool {
        if self.close.is_some() || self.eof {
            return false;
        }
        let nonce = 0x5EED_0000_0000 + self.next_request_id();
        if self.try_send_frame(&frame_of(frame::Body::Ping(pb::Ping { nonce }))).is_err() {
            return false;
        }
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(pos) = self.pongs.iter().position(|p| p.nonce == nonce) {
                self.pongs.remove(pos);
                return self.close.is_none();
            }
            if self.close.is_some() {
                return false;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Recv::Frame(f) => self.stash(f),
                Recv::Timeout => panic!("no pong and no close within {WAIT:?}"),
                Recv::Eof => return false,
            }
        }
    }

    // ---- typed results (used by the request groups) ----------------
}

fn strings(users: &[&str]) -> Vec<String> {
    users.iter().map(|u| (*u).to_owned()).collect()
}
