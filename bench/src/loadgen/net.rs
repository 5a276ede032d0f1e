//! Many non-blocking client connections driven by one `mio` event loop.
//!
//! Role: the generator's transport. A scenario thread owns one [`Net`],
//! opens connections on it (optionally from a chosen 127.0.0.x source
//! address), queues frames with [`Net::send`] and collects decoded frames and
//! closes with [`Net::poll`]. No threads, no locks: one `Net` per thread.
//!
//! Invariants:
//! - a frame queued with `send` is written in order, whole, before any later
//!   frame of the same connection (the queue is one byte buffer per connection);
//! - queued output is flushed at the start of every `poll`, so a scenario that
//!   queues frames and then polls never waits a poll timeout before they leave;
//! - each connection produces at most one [`Event::Closed`], after every frame
//!   decoded from it; its file descriptor is released at that point;
//! - a malformed frame from the server closes that connection (reported as a
//!   close reason), it never panics the generator;
//! - a `poll` timeout below [`FINE_TIMEOUT`] is honoured to the microsecond
//!   (a one-shot timerfd), not rounded up to epoll's millisecond, so an
//!   open-loop sender can keep a smooth schedule at 10 000+ sends per second.
//! - with [`use_websocket`] every connection speaks WebSocket (spec 2.2): an
//!   HTTP upgrade on `GET /ws` first, then one masked binary message per frame
//!   (no length prefix); the server's messages are unmasked binary messages.
//! - a [`Net::new_raw`] loop carries bytes, not Missive frames (the NATS
//!   comparator's text protocol): [`Net::send_bytes`] queues them, a read
//!   reports [`Event::Readable`] once and leaves the bytes in the connection's
//!   buffer for the caller to parse in place ([`Net::read_buf`]), without
//!   allocating; a connection the server closes with unread bytes names them
//!   in its close reason.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use missive_protocol::{CodecError, FrameCodec};

use super::wire::PUSH_TAG;
use missive_protocol::pb;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Whether new [`Net`]s speak WebSocket (`--transport ws`); set once at start.
static WEBSOCKET: AtomicBool = AtomicBool::new(false);

/// Makes every [`Net`] created from now on use WebSocket connections.
pub(crate) fn use_websocket() {
    WEBSOCKET.store(true, Ordering::Relaxed);
}

/// The client's masking key. RFC 6455 wants it unpredictable to defend
/// proxies against cache poisoning; a load generator on loopback has none.
const WS_MASK: [u8; 4] = [0x6d, 0x69, 0x73, 0x76];

/// Index of a connection in its [`Net`].
pub(crate) type ConnId = usize;

/// Largest frame accepted from the server: pull pages are bounded by page
/// size × content size, not by the broker's `max_frame_size`.
const CLIENT_MAX_FRAME: u32 = 64 * 1024 * 1024;

/// Bytes read per `read` call.
const READ_CHUNK: usize = 64 * 1024;

/// Timeouts shorter than this use the timerfd (epoll only has milliseconds).
const FINE_TIMEOUT: Duration = Duration::from_millis(3);

/// Token of the timerfd (connections use their index).
const TIMER: Token = Token(usize::MAX);

/// Something that happened on a connection.
// Frames are the common case and live in a reused Vec: boxing them would add
// one allocation per frame to save space only on the rare `Closed`.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Event {
    /// A decoded frame from the server (including `HelloOk` and `Close`).
    Frame(ConnId, pb::Frame),
    /// With [`Net::raw_pushes`]: the undecoded payload of a `Push` frame, to be
    /// read with `wire::push_message` (or decoded by the caller).
    Push(ConnId, Bytes),
    /// The connection is gone (peer closed, I/O or protocol error); the reason
    /// is human-readable. Emitted once per connection.
    Closed(ConnId, String),
    /// Raw loops ([`Net::new_raw`]) only: new bytes are in the connection's
    /// read buffer ([`Net::read_buf`]).
    Readable(ConnId),
}

impl Event {
    /// The connection this event is about.
    pub(crate) fn conn(&self) -> ConnId {
        match self {
            Self::Frame(id, _) | Self::Push(id, _) | Self::Closed(id, _) | Self::Readable(id) => *id,
        }
    }
}

#[derive(Debug)]
struct Conn {
    sock: TcpStream,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// The TCP handshake completed.
    connected: bool,
    /// In the dirty list (has queued output to try).
    dirty: bool,
    /// WebSocket only: the server's `101 Switching Protocols` was read.
    upgraded: bool,
}

/// One event loop and its connections.
#[derive(Debug)]
pub(crate) struct Net {
    poll: Poll,
    events: Events,
    /// `None` once closed (the descriptor is released).
    conns: Vec<Option<Conn>>,
    codec: FrameCodec,
    dirty: Vec<ConnId>,
    scratch: Vec<u8>,
    open: usize,
    /// Closes found while flushing, reported by the next `poll`.
    pending_closed: Vec<(ConnId, String)>,
    /// Reused list of (connection, readable, writable) of one poll.
    ready: Vec<(ConnId, bool, bool)>,
    timer: Timer,
    raw_pushes: bool,
    /// Connections speak WebSocket.
    ws: bool,
    /// Reused encoding buffer for WebSocket frames.
    ws_scratch: BytesMut,
    /// Bytes, not frames ([`Net::new_raw`]).
    raw: bool,
}

impl Net {
    /// An empty event loop.
    pub(crate) fn new() -> io::Result<Self> {
        let poll = Poll::new()?;
        let timer = Timer::new()?;
        poll.registry().register(&mut SourceFd(&timer.file.as_raw_fd()), TIMER, Interest::READABLE)?;
        Ok(Self {
            poll,
            timer,
            events: Events::with_capacity(4096),
            conns: Vec::new(),
            codec: FrameCodec::new(CLIENT_MAX_FRAME),
            dirty: Vec::new(),
            scratch: vec![0; READ_CHUNK],
            open: 0,
            pending_closed: Vec::new(),
            ready: Vec::new(),
            raw_pushes: false,
            ws: WEBSOCKET.load(Ordering::Relaxed),
            ws_scratch: BytesMut::new(),
            raw: false,
        })
    }

    /// An empty event loop whose connections carry plain bytes over TCP
    /// ([`Net::send_bytes`], [`Event::Readable`], [`Net::read_buf`]).
    pub(crate) fn new_raw() -> io::Result<Self> {
        let mut net = Self::new()?;
        net.ws = false;
        net.raw = true;
        Ok(net)
    }

    /// Raw loops: queues `bytes` on connection `id` (ignored if it is closed).
    pub(crate) fn send_bytes(&mut self, id: ConnId, bytes: &[u8]) {
        let Some(Some(c)) = self.conns.get_mut(id) else { return };
        c.wbuf.extend_from_slice(bytes);
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(id);
        }
    }

    /// Raw loops: the bytes received on `id` and not yet consumed (the caller
    /// advances past what it parsed). None once the connection is closed.
    pub(crate) fn read_buf(&mut self, id: ConnId) -> Option<&mut BytesMut> {
        match self.conns.get_mut(id) {
            Some(Some(c)) => Some(&mut c.rbuf),
            _ => None,
        }
    }

    /// Starts a non-blocking connect to `addr`, from `source` (port chosen by
    /// the kernel) if given. Frames may be queued at once; they leave when the
    /// TCP handshake completes. Errors here are local (e.g. out of file
    /// descriptors or ports); a refused connection shows up as `Event::Closed`.
    pub(crate) fn connect(&mut self, addr: SocketAddr, source: Option<IpAddr>) -> io::Result<ConnId> {
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        sock.set_nonblocking(true)?;
        sock.set_tcp_nodelay(true)?;
        if let Some(ip) = source {
            sock.bind(&SockAddr::from(SocketAddr::new(ip, 0)))?;
        }
        match sock.connect(&SockAddr::from(addr)) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        let mut stream = TcpStream::from_std(std::net::TcpStream::from(sock));
        let id = self.conns.len();
        self.poll.registry().register(&mut stream, Token(id), Interest::READABLE | Interest::WRITABLE)?;
        let mut wbuf = BytesMut::new();
        if self.ws {
            let req = format!(
                "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            );
            wbuf.extend_from_slice(req.as_bytes());
        }
        self.conns.push(Some(Conn {
            sock: stream,
            rbuf: BytesMut::new(),
            wbuf,
            connected: false,
            dirty: false,
            upgraded: false,
        }));
        self.open += 1;
        Ok(id)
    }

    /// Queues `frame` on connection `id` (ignored if it is closed).
    pub(crate) fn send(&mut self, id: ConnId, frame: &pb::Frame) {
        let Some(Some(c)) = self.conns.get_mut(id) else { return };
        if self.ws {
            self.ws_scratch.clear();
            if let Err(e) = self.codec.encode(frame, &mut self.ws_scratch) {
                self.pending_closed.push((id, format!("generator built an unencodable frame: {e}")));
                return;
            }
            ws_message(&self.ws_scratch[4..], &mut c.wbuf);
        } else if let Err(e) = self.codec.encode(frame, &mut c.wbuf) {
            // Only an oversized frame can fail; scenarios never build one.
            self.pending_closed.push((id, format!("generator built an unencodable frame: {e}")));
            return;
        }
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(id);
        }
    }

    /// Hands `Push` frames over undecoded ([`Event::Push`]): receivers of
    /// bulk traffic read them without allocating.
    pub(crate) fn raw_pushes(&mut self, on: bool) {
        self.raw_pushes = on;
    }

    /// Whether connection `id` is still open.
    pub(crate) fn is_open(&self, id: ConnId) -> bool {
        matches!(self.conns.get(id), Some(Some(_)))
    }

    /// Connections currently open.
    pub(crate) fn open_count(&self) -> usize {
        self.open
    }

    /// Closes connection `id` (no event is reported for it).
    pub(crate) fn close(&mut self, id: ConnId) {
        if let Some(slot) = self.conns.get_mut(id)
            && let Some(mut c) = slot.take()
        {
            let _ = self.poll.registry().deregister(&mut c.sock);
            self.open -= 1;
        }
    }

    /// Flushes queued output, waits up to `timeout` for socket events, and
    /// appends what happened to `out`.
    pub(crate) fn poll(&mut self, timeout: Option<Duration>, out: &mut Vec<Event>) -> io::Result<()> {
        self.flush();
        let mut timeout = if self.pending_closed.is_empty() { timeout } else { Some(Duration::ZERO) };
        let fine = timeout.filter(|t| !t.is_zero() && *t < FINE_TIMEOUT);
        if let Some(t) = fine {
            self.timer.arm(t)?;
            // The timer wakes us; the epoll timeout is only a safety net.
            timeout = Some(FINE_TIMEOUT);
        }
        let polled = self.poll.poll(&mut self.events, timeout);
        if fine.is_some() {
            self.timer.disarm()?;
        }
        match polled {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        let mut ready = std::mem::take(&mut self.ready);
        ready.clear();
        ready.extend(
            self.events
                .iter()
                .filter(|e| e.token() != TIMER)
                .map(|e| (e.token().0, e.is_readable() || e.is_read_closed(), e.is_writable())),
        );
        for &(id, readable, writable) in &ready {
            if writable && let Err(reason) = self.on_writable(id) {
                self.finish(id, reason, out);
                continue;
            }
            if readable && let Err(reason) = self.on_readable(id, out) {
                self.finish(id, reason, out);
            }
        }
        self.ready = ready;
        for (id, reason) in std::mem::take(&mut self.pending_closed) {
            self.finish(id, reason, out);
        }
        Ok(())
    }

    fn finish(&mut self, id: ConnId, reason: String, out: &mut Vec<Event>) {
        if self.is_open(id) {
            self.close(id);
            out.push(Event::Closed(id, reason));
        }
    }

    fn flush(&mut self) {
        for id in std::mem::take(&mut self.dirty) {
            let Some(Some(c)) = self.conns.get_mut(id) else { continue };
            c.dirty = false;
            if let Err(reason) = write_out(c) {
                self.pending_closed.push((id, reason));
            }
        }
    }

    fn on_writable(&mut self, id: ConnId) -> Result<(), String> {
        let Some(Some(c)) = self.conns.get_mut(id) else { return Ok(()) };
        if !c.connected {
            if let Ok(Some(e)) | Err(e) = c.sock.take_error() {
                return Err(format!("connect: {e}"));
            }
            match c.sock.peer_addr() {
                Ok(_) => c.connected = true,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(format!("connect: {e}")),
            }
        }
        write_out(c)
    }

    fn on_readable(&mut self, id: ConnId, out: &mut Vec<Event>) -> Result<(), String> {
        let Some(Some(c)) = self.conns.get_mut(id) else { return Ok(()) };
        let raw = self.raw;
        let mut got = false;
        loop {
            match c.sock.read(&mut self.scratch) {
                Ok(0) if raw => return Err(raw_close_reason(&c.rbuf)),
                Ok(0) => {
                    decode_any(&self.codec, self.raw_pushes, self.ws, id, c, out)?;
                    return Err("closed by the server".to_owned());
                }
                Ok(n) => {
                    c.rbuf.extend_from_slice(&self.scratch[..n]);
                    if raw {
                        got = true;
                    } else {
                        decode_any(&self.codec, self.raw_pushes, self.ws, id, c, out)?;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if got {
                        out.push(Event::Readable(id));
                    }
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }
}

/// Why a raw connection ended: closed by the server, and what it had sent
/// that was not consumed (e.g. a NATS `-ERR` line), cut to 200 bytes.
fn raw_close_reason(unread: &[u8]) -> String {
    if unread.is_empty() {
        return "closed by the server".to_owned();
    }
    let tail = String::from_utf8_lossy(&unread[..unread.len().min(200)]);
    format!("closed by the server; unread: {}", tail.trim_end())
}

/// Appends one masked binary WebSocket message carrying `payload` to `out`.
fn ws_message(payload: &[u8], out: &mut BytesMut) {
    out.extend_from_slice(&[0x82]);
    let n = payload.len();
    if n < 126 {
        out.extend_from_slice(&[0x80 | n as u8]);
    } else if n <= usize::from(u16::MAX) {
        out.extend_from_slice(&[0x80 | 126]);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.extend_from_slice(&[0x80 | 127]);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    out.extend_from_slice(&WS_MASK);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ WS_MASK[i % 4]));
}

/// Decodes what the connection has buffered, for either transport.
fn decode_any(
    codec: &FrameCodec,
    raw_pushes: bool,
    ws: bool,
    id: ConnId,
    c: &mut Conn,
    out: &mut Vec<Event>,
) -> Result<(), String> {
    if !ws {
        return decode_all(codec, raw_pushes, id, &mut c.rbuf, out);
    }
    if !c.upgraded {
        let Some(end) = c.rbuf.windows(4).position(|w| w == b"\r\n\r\n") else {
            if c.rbuf.len() > 16 * 1024 {
                return Err("WebSocket upgrade response too long".to_owned());
            }
            return Ok(());
        };
        if !c.rbuf.starts_with(b"HTTP/1.1 101") {
            let head = String::from_utf8_lossy(&c.rbuf[..end]).into_owned();
            return Err(format!("WebSocket upgrade refused: {head}"));
        }
        c.rbuf.advance(end + 4);
        c.upgraded = true;
    }
    let bad = |e: CodecError| format!("bad frame from the server: {e}");
    loop {
        let Some((opcode, header, len)) = ws_header(&c.rbuf)? else { return Ok(()) };
        if c.rbuf.len() < header + len {
            return Ok(());
        }
        c.rbuf.advance(header);
        let payload = c.rbuf.split_to(len).freeze();
        match opcode {
            0x2 if raw_pushes && payload.first() == Some(&PUSH_TAG) => out.push(Event::Push(id, payload)),
            0x2 => out.push(Event::Frame(id, codec.decode_payload(payload).map_err(bad)?)),
            0x8 => return Err("WebSocket closed by the server".to_owned()),
            0x9 | 0xA => {}
            other => return Err(format!("unexpected WebSocket opcode {other:#x}")),
        }
    }
}

/// Parses a server WebSocket frame header: (opcode, header length, payload
/// length), or `None` until enough bytes arrived. Fragmented and masked
/// server frames are refused (the broker sends neither).
fn ws_header(b: &[u8]) -> Result<Option<(u8, usize, usize)>, String> {
    if b.len() < 2 {
        return Ok(None);
    }
    if b[0] & 0x80 == 0 || b[1] & 0x80 != 0 {
        return Err("fragmented or masked WebSocket frame from the server".to_owned());
    }
    let opcode = b[0] & 0x0f;
    let (header, len) = match b[1] & 0x7f {
        126 if b.len() >= 4 => (4, usize::from(u16::from_be_bytes([b[2], b[3]]))),
        127 if b.len() >= 10 => {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[2..10]);
            (10, usize::try_from(u64::from_be_bytes(a)).map_err(|_| "WebSocket frame too long".to_owned())?)
        }
        126 | 127 => return Ok(None),
        n => (2, usize::from(n)),
    };
    if len > CLIENT_MAX_FRAME as usize {
        return Err(format!("WebSocket message of {len} bytes"));
    }
    Ok(Some((opcode, header, len)))
}

fn decode_all(
    codec: &FrameCodec,
    raw_pushes: bool,
    id: ConnId,
    rbuf: &mut BytesMut,
    out: &mut Vec<Event>,
) -> Result<(), String> {
    let bad = |e: CodecError| format!("bad frame from the server: {e}");
    loop {
        match codec.split_payload(rbuf).map_err(bad)? {
            None => return Ok(()),
            Some(p) if raw_pushes && p.first() == Some(&PUSH_TAG) => out.push(Event::Push(id, p)),
            Some(p) => out.push(Event::Frame(id, codec.decode_payload(p).map_err(bad)?)),
        }
    }
}

/// Writes as much queued output as the socket takes.
fn write_out(c: &mut Conn) -> Result<(), String> {
    if !c.connected {
        return Ok(());
    }
    while !c.wbuf.is_empty() {
        match c.sock.write(&c.wbuf) {
            Ok(0) => return Err("write returned 0".to_owned()),
            Ok(n) => c.wbuf.advance(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("write: {e}")),
        }
    }
    Ok(())
}

/// A one-shot monotonic timerfd, for sub-millisecond poll timeouts.
#[derive(Debug)]
struct Timer {
    file: File,
}

impl Timer {
    fn new() -> io::Result<Self> {
        // SAFETY: timerfd_create takes no pointers; a non-negative result is a
        // fresh descriptor that nothing else owns, so OwnedFd may take it.
        #[allow(unsafe_code)]
        let file = unsafe {
            let fd = libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            File::from(OwnedFd::from_raw_fd(fd))
        };
        Ok(Self { file })
    }

    /// Fires once, `after` from now (a zero duration disarms).
    fn arm(&self, after: Duration) -> io::Result<()> {
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec {
                tv_sec: after.as_secs() as libc::time_t,
                tv_nsec: libc::c_long::from(after.subsec_nanos() as i32),
            },
        };
        // SAFETY: `spec` is a valid itimerspec that outlives the call; the old
        // value pointer may be null; the descriptor is owned by `self.file`.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::timerfd_settime(self.file.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }

    /// Disarms and consumes a pending expiry, so the next `arm` starts clean.
    fn disarm(&mut self) -> io::Result<()> {
        self.arm(Duration::ZERO)?;
        let mut buf = [0u8; 8];
        match self.file.read(&mut buf) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn websocket_messages_are_masked_and_headers_parse() {
        for n in [0usize, 125, 126, 65_535, 65_536] {
            let payload: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let mut out = BytesMut::new();
            ws_message(&payload, &mut out);
            assert_eq!(out[0], 0x82, "FIN + binary");
            assert_ne!(out[1] & 0x80, 0, "client frames are masked");
            // The same header unmasked, as a server would send it, parses back.
            let mut server = out.clone();
            server[1] &= 0x7f;
            let header = match n {
                0..=125 => 2,
                126..=65_535 => 4,
                _ => 10,
            };
            assert_eq!(ws_header(&server).ok().flatten(), Some((2, header, n)));
            let masked = &out[header + 4..];
            let unmasked: Vec<u8> = masked.iter().enumerate().map(|(i, b)| b ^ WS_MASK[i % 4]).collect();
            assert_eq!(unmasked, payload);
        }
        assert_eq!(ws_header(&[0x82]).ok().flatten(), None, "incomplete");
        assert!(ws_header(&[0x02, 0x01]).is_err(), "fragments are refused");
        assert!(ws_header(&[0x82, 0x81]).is_err(), "masked server frames are refused");
    }
    use super::*;
    use std::time::Instant;

    #[test]
    fn sub_millisecond_timeouts_are_honoured() {
        let mut net = Net::new().expect("net");
        let mut out = Vec::new();
        // epoll alone rounds 200 us up to 1 ms, every time. The fastest of a
        // few tries is robust against a loaded machine.
        let fastest = (0..50)
            .map(|_| {
                let t0 = Instant::now();
                net.poll(Some(Duration::from_micros(200)), &mut out).expect("poll");
                t0.elapsed()
            })
            .min()
            .expect("50 tries");
        assert!(fastest >= Duration::from_micros(200), "woke early: {fastest:?}");
        assert!(
            fastest < Duration::from_micros(950),
            "timeout rounded up to epoll's millisecond: {fastest:?}"
        );
        assert!(out.is_empty());
    }
}
