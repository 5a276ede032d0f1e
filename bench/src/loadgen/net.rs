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

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use missive_protocol::{CodecError, FrameCodec};

use super::wire::PUSH_TAG;
use missive_protocol::pb;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

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
        })
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
        self.conns.push(Some(Conn {
            sock: stream,
            rbuf: BytesMut::new(),
            wbuf: BytesMut::new(),
            connected: false,
            dirty: false,
        }));
        self.open += 1;
        Ok(id)
    }

    /// Queues `frame` on connection `id` (ignored if it is closed).
    pub(crate) fn send(&mut self, id: ConnId, frame: &pb::Frame) {
        let Some(Some(c)) = self.conns.get_mut(id) else { return };
        if let Err(e) = self.codec.encode(frame, &mut c.wbuf) {
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
        loop {
            match c.sock.read(&mut self.scratch) {
                Ok(0) => {
                    decode_all(&self.codec, self.raw_pushes, id, &mut c.rbuf, out)?;
                    return Err("closed by the server".to_owned());
                }
                Ok(n) => {
                    c.rbuf.extend_from_slice(&self.scratch[..n]);
                    decode_all(&self.codec, self.raw_pushes, id, &mut c.rbuf, out)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }
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
