//! A minimal synchronous protocol client over WebSocket, for black-box tests of
//! the broker's web listener.
//!
//! Role: speaks the protocol through an independent WebSocket implementation
//! (tungstenite's client), so the broker's own framing code is checked
//! against someone else's; plus [`http_get`] for the plain HTTP routes.
//!
//! Invariants: every wait is bounded; one binary message is one frame; text
//! messages, WebSocket Close frames and EOF are surfaced as [`WsRecv`]
//! variants instead of being hidden, so tests can assert on them.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use missive_protocol::Call;
use missive_protocol::pb::{self, frame};
use prost::Message as _;
use tungstenite::protocol::{CloseFrame, WebSocket};
use tungstenite::{Bytes, Message};

use crate::{Platform, WAIT, frame_of, hello_msg, mint};

/// What one wait on a [`WsClient`] returned.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // test helper; frames are consumed at once
pub enum WsRecv {
    /// A protocol frame (one binary message).
    Frame(pb::Frame),
    /// The server's WebSocket Close (code and reason), if any.
    WsClose(Option<CloseFrame>),
    /// A text message (never sent by a correct server).
    Text(String),
    /// Nothing within the timeout.
    Timeout,
    /// The connection ended without a Close frame.
    Eof,
}

/// The socket under a [`WsClient`]: plain TCP, or TLS (`wss`).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per test client
pub enum WsStream {
    /// `ws://`.
    Plain(TcpStream),
    /// `wss://` (rustls client).
    Tls(rustls::StreamOwned<rustls::ClientConnection, TcpStream>),
}

impl WsStream {
    fn tcp(&self) -> &TcpStream {
        match self {
            WsStream::Plain(s) => s,
            WsStream::Tls(t) => t.get_ref(),
        }
    }
}

impl Read for WsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            WsStream::Plain(s) => s.read(buf),
            WsStream::Tls(t) => t.read(buf),
        }
    }
}

impl Write for WsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            WsStream::Plain(s) => s.write(buf),
            WsStream::Tls(t) => t.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            WsStream::Plain(s) => s.flush(),
            WsStream::Tls(t) => t.flush(),
        }
    }
}

/// One WebSocket connection to `ws://ADDR/ws` (or `wss://`, [`WsClient::upgrade`]).
pub struct WsClient {
    ws: WebSocket<WsStream>,
    next_id: u64,
    /// Pushes received while waiting for something else.
    pub pushes: VecDeque<pb::Push>,
    /// The protocol Close frame, once one arrived.
    pub close: Option<pb::Close>,
}

impl std::fmt::Debug for WsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsClient").field("pushes", &self.pushes.len()).field("close", &self.close).finish()
    }
}

impl WsClient {
    /// Expects a protocol Close with `code`, then the WebSocket Close with
    /// `ws_code` ([W-6]).
    pub fn expect_closes(&mut self, code: crate::ErrorCode, ws_code: u16) {
        match self.recv(WAIT) {
            WsRecv::Frame(pb::Frame { body: Some(frame::Body::Close(cl)) }) => {
                assert_eq!(cl.code, code.as_u32(), "protocol close {cl:?}")
            }
            other => panic!("expected protocol Close {code:?}, got {other:?}"),
        }
        match self.recv(WAIT) {
            WsRecv::WsClose(Some(f)) => {
                assert_eq!(u16::from(f.code), ws_code, "[W-6] status for {code:?}: {f:?}")
            }
            other => panic!("expected WebSocket Close {ws_code}, got {other:?}"),
        }
    }

    /// Connects and upgrades (no Hello sent).
    pub fn connect(addr: SocketAddr) -> Self {
        Self::connect_path(addr, "/ws")
    }

    /// Connects and upgrades on `path`.
    pub fn connect_path(addr: SocketAddr, path: &str) -> Self {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect ws listener");
        stream.set_nodelay(true).expect("nodelay");
        stream.set_read_timeout(Some(WAIT)).expect("read timeout");
        let url = format!("ws://{addr}{path}");
        let (ws, resp) =
            tungstenite::client::client(url, WsStream::Plain(stream)).expect("websocket upgrade");
        assert_eq!(resp.status().as_u16(), 101);
        Self { ws, next_id: 1, pushes: VecDeque::new(), close: None }
    }

    /// Upgrades `stream` at `/ws`, sending `origin` as the `Origin` header if
    /// given; `Err(status)` if the server answered with an HTTP status instead.
    pub fn upgrade(stream: WsStream, host: &str, origin: Option<&str>) -> Result<Self, u16> {
        use tungstenite::client::IntoClientRequest;
        stream.tcp().set_read_timeout(Some(WAIT)).expect("read timeout");
        let mut req = format!("ws://{host}/ws").into_client_request().expect("request");
        if let Some(o) = origin {
            req.headers_mut().insert("Origin", o.parse().expect("header value"));
        }
        match tungstenite::client::client(req, stream) {
            Ok((ws, resp)) => {
                assert_eq!(resp.status().as_u16(), 101);
                Ok(Self { ws, next_id: 1, pushes: VecDeque::new(), close: None })
            }
            Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
                Err(resp.status().as_u16())
            }
            Err(e) => panic!("websocket upgrade failed: {e}"),
        }
    }

    /// Connects and completes the handshake for `user` on `device` (platform Web).
    pub fn login(addr: SocketAddr, user: &str, device: &str) -> Self {
        let mut c = Self::connect(addr);
        c.hello(&mint(user), device, Platform::Web).expect("HelloOk over WebSocket");
        c
    }

    /// A second handle on the underlying socket (e.g. to write raw
    /// WebSocket frames from another thread).
    pub fn stream_clone(&self) -> TcpStream {
        self.ws.get_ref().tcp().try_clone().expect("clone the WebSocket's socket")
    }

    /// Sends one message as is.
    pub fn send_message(&mut self, m: Message) -> Result<(), Box<tungstenite::Error>> {
        self.ws.send(m).map_err(Box::new)
    }

    /// Sends one protocol frame as one binary message.
    pub fn send_frame(&mut self, f: &pb::Frame) {
        self.send_message(Message::Binary(Bytes::from(f.encode_to_vec()))).expect("send ws frame");
    }

    /// Waits for the next thing the server sends.
    pub fn recv(&mut self, timeout: Duration) -> WsRecv {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return WsRecv::Timeout;
            }
            self.ws.get_mut().tcp().set_read_timeout(Some(left)).expect("read timeout");
            match self.ws.read() {
                Ok(Message::Binary(b)) => {
                    let f = pb::Frame::decode(b).expect("server sent an undecodable frame");
                    if let Some(frame::Body::Close(c)) = &f.body {
                        self.close = Some(c.clone());
                    }
                    return WsRecv::Frame(f);
                }
                Ok(Message::Text(t)) => return WsRecv::Text(t.to_string()),
                Ok(Message::Close(c)) => return WsRecv::WsClose(c),
                Ok(_) => {} // ping (answered by tungstenite), pong, raw frame
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Err(_) => return WsRecv::Eof,
            }
        }
    }

    /// The next protocol frame, or `None` on timeout, close or EOF.
    pub fn recv_frame(&mut self, timeout: Duration) -> Option<pb::Frame> {
        match self.recv(timeout) {
            WsRecv::Frame(f) => Some(f),
            _ => None,
        }
    }

    /// Sends Hello and waits for HelloOk (`Ok`) or Close (`Err`).
    pub fn hello(&mut self, token: &str, device: &str, platform: Platform) -> Result<pb::HelloOk, pb::Close> {
        self.send_frame(&frame_of(frame::Body::Hello(hello_msg(token, device, platform))));
        match self.recv_frame(WAIT).and_then(|f| f.body) {
            Some(frame::Body::HelloOk(ok)) => Ok(ok),
            Some(frame::Body::Close(c)) => Err(c),
            other => panic!("expected HelloOk or Close, got {other:?}"),
        }
    }

    /// Sends a request and returns its id.
    pub fn send_request<C: Call>(&mut self, req: C) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send_frame(&missive_protocol::request_frame(id, req));
        id
    }

    /// Sends a request and waits for its response (pushes meanwhile are kept).
    pub fn request<C: Call>(&mut self, req: C) -> pb::Response {
        let id = self.send_request(req);
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv_frame(left).and_then(|f| f.body) {
                Some(frame::Body::Response(r)) if r.id == id => return r,
                Some(frame::Body::Push(p)) => self.pushes.push_back(p),
                Some(_) => {}
                None => panic!("no response to request {id} within {WAIT:?}"),
            }
        }
    }

    /// The next pushed event (queued ones first).
    pub fn next_push(&mut self, timeout: Duration) -> Option<pb::push::Event> {
        if let Some(p) = self.pushes.pop_front() {
            return p.event;
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv_frame(left)?.body {
                Some(frame::Body::Push(p)) => return p.event,
                _ => continue,
            }
        }
    }

    /// The next pushed message, skipping other pushes.
    pub fn next_message_push(&mut self, timeout: Duration) -> Option<pb::Message> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if let pb::push::Event::Message(m) = self.next_push(left)? {
                return Some(m);
            }
        }
    }

    /// Sends a text message and waits for its ack.
    pub fn send_ok(&mut self, conv: &str, client_msg_id: &str, body: &str) -> pb::SendAck {
        let req = pb::SendMessage {
            conv_id: conv.to_owned(),
            client_msg_id: client_msg_id.to_owned(),
            content: Some(crate::text(body)),
            flags: None,
            first_attempt: false,
        };
        match crate::outcome(self.request(req)).map(pb::SendMessage::reply) {
            Ok(Ok(a)) => a,
            other => panic!("send over ws failed: {other:?}"),
        }
    }
}

/// A plain HTTP/1.1 GET; returns (status, headers, body). Bounded by [`WAIT`].
pub fn http_get(addr: SocketAddr, target: &str) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect http");
    s.set_read_timeout(Some(WAIT)).expect("read timeout");
    write!(s, "GET {target} HTTP/1.1\r\nHost: {addr}\r\n\r\n").expect("write request");
    let mut all = Vec::new();
    s.read_to_end(&mut all).expect("read response (server closes after it)");
    let split = all.windows(4).position(|w| w == b"\r\n\r\n").expect("response head");
    let head = String::from_utf8_lossy(&all[..split]).into_owned();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status code");
    (status, head, all[split + 4..].to_vec())
}
