//! Connections: their state, the bounded write queue, closing and flushing.
//!
//! Role: a [`Conn`] is one accepted socket (TCP, or the web listener's
//! HTTP/WebSocket) with its read buffer, its queue of encoded frames and its
//! [`Phase`]. Output is queued here and written with `writev` once per turn.
//!
//! Invariants:
//! - a connection's queued output is bounded by `limits.write_queue_bytes`; a
//!   client that does not read is closed with SLOW_CONSUMER (it re-syncs,
//!   nothing is lost), and a partly written frame is finished first so the
//!   Close starts on a frame boundary;
//! - a connection that queued its Close is dropped once flushed (or after
//!   [`CLOSE_LINGER`]), and its session leaves the directory at once;
//! - input is decoded only while the write queue plus the space reserved for
//!   the answers in flight leaves room for one more frame-sized answer, so a
//!   client that pipelines reads while reading its socket is slowed down
//!   (TCP backpressure), never closed as a slow consumer;
//! - the read buffer holds at most [`Conn::read_cap`] bytes: reading stops
//!   while that much is undecoded.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::net::SocketAddr;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use missive_protocol::ErrorCode;
use tracing::{debug, warn};

use super::admit::Slot;
use super::query::QueryJob;
use super::tls::Stream;
use super::{CLOSE_LINGER, MAX_IOV, WRITE_BUDGET, Worker};
use crate::frames;
use crate::node::directory::ConnRef;
use crate::session::Session;

#[derive(Debug)]
pub(super) enum Phase {
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
pub(super) struct Conn {
    /// Plain TCP, or TCP carrying TLS (`tls.rs`).
    pub(super) sock: Stream,
    pub(super) peer: SocketAddr,
    pub(super) rbuf: BytesMut,
    /// Encoded frames not yet written; `out_bytes` is their total size.
    pub(super) out: VecDeque<Bytes>,
    pub(super) out_bytes: usize,
    /// The front of `out` has been partly written: it must be finished before
    /// anything else goes on the wire, or the stream would be cut mid-frame.
    pub(super) front_partial: bool,
    pub(super) phase: Phase,
    pub(super) last_frame: Instant,
    /// Requests not yet answered (at an owner shard, in the query pool, or
    /// queued in `queries`).
    pub(super) in_flight: usize,
    /// Write-queue bytes reserved for the answers of requests in flight
    /// (`session::reply_cost` each).
    pub(super) reserved: usize,
    /// Input decoding stopped because the write queue plus the reservations
    /// left no room for another answer; resumed by [`Worker::resume_input`].
    pub(super) paused: bool,
    /// Read-only queries waiting for a query-pool slot, oldest first.
    pub(super) queries: VecDeque<QueryJob>,
    /// Frames that get no reply ([`Worker::count_silent`]).
    pub(super) silent: Bucket,
    /// Message sends (`limits.max_sends_per_sec`).
    pub(super) sends: Bucket,
    /// Requests (`limits.max_requests_per_sec`).
    pub(super) requests: Bucket,
    /// Typing requests (`messages.typing_per_sec`): beyond, answered but not pushed.
    pub(super) typing: Bucket,
    /// `PushAck` entries of this connection wait in the worker's ack map
    /// (flushed before its next request, so its frames keep their order).
    pub(super) acked: bool,
    /// Set once a Close is queued: flush, then drop by `close_deadline`.
    pub(super) close_deadline: Option<Instant>,
    /// Queued in the worker's `ready` list (there may be unread bytes).
    pub(super) readable: bool,
    /// Set for connections of the web listener (HTTP, then WebSocket framing).
    pub(super) web: Option<Box<super::web::WebConn>>,
    /// This connection's place in the connection counts (`admit.rs`); `None`
    /// for a refused connection and for a QUIC bridge (its QUIC connection
    /// holds the slot). Held for its `Drop`, which gives the count back.
    #[expect(dead_code, reason = "held for its Drop")]
    pub(super) slot: Option<Slot>,
}

impl Conn {
    /// The largest frame payload this connection may send now: the small
    /// Hello limit until the handshake completed, then `max_frame_size`.
    pub(super) fn frame_limit(&self, l: &crate::config::Limits) -> usize {
        match self.phase {
            Phase::Ready(_) => l.max_frame_size as usize,
            Phase::Handshake { .. } | Phase::LoggingIn { .. } => l.max_hello_frame_size as usize,
        }
    }

    /// Bytes the read buffer may hold: one whole frame of the current limit
    /// plus room for framing and an HTTP request head.
    pub(super) fn read_cap(&self, l: &crate::config::Limits) -> usize {
        self.frame_limit(l) + READ_CAP_SLACK
    }

    /// Whether another request may be decoded: the queued output, the space
    /// reserved for answers in flight, and one more frame-sized answer fit in
    /// the write queue.
    pub(super) fn has_reply_room(&self, l: &crate::config::Limits) -> bool {
        self.out_bytes + self.reserved + l.max_frame_size as usize <= l.write_queue_bytes
    }
}

/// A token bucket: `rate` tokens per second, at most `2 × rate` saved up.
#[derive(Debug)]
pub(super) struct Bucket {
    tokens: u64,
    at: Instant,
}

impl Bucket {
    /// A full bucket for `rate` per second.
    pub(super) fn new(rate: u32, now: Instant) -> Self {
        Self { tokens: u64::from(rate) * 2, at: now }
    }

    /// Takes one token if there is one (refilled for the time since the last refill).
    pub(super) fn take(&mut self, rate: u32, now: Instant) -> bool {
        let refill = now.duration_since(self.at).as_millis() * u128::from(rate) / 1000;
        if refill > 0 {
            self.tokens = (u128::from(self.tokens) + refill).min(u128::from(rate) * 2) as u64;
            self.at = now;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }

    /// After a refused [`Bucket::take`]: ms until the next token (at least 1).
    pub(super) fn retry_after_ms(&self, rate: u32, now: Instant) -> u64 {
        let per_token = 1000u64.div_ceil(u64::from(rate.max(1)));
        let waited = now.duration_since(self.at).as_millis() as u64;
        per_token.saturating_sub(waited).max(1)
    }
}

/// Read-buffer room beyond one frame (length prefix or WebSocket header,
/// and an HTTP request head of up to `http::MAX_HEAD` bytes).
const READ_CAP_SLACK: usize = 16 * 1024;

impl Worker {
    /// Decoding of `id` may continue if it was paused and there is room again.
    pub(super) fn resume_input(&mut self, id: u64) {
        let limits = &self.node.config.limits;
        if let Some(c) = self.conns.get_mut(&id)
            && c.paused
            && c.has_reply_room(limits)
        {
            c.paused = false;
            self.mark_ready(id);
        }
    }

    pub(super) fn enqueue(&mut self, id: u64, frame: Bytes) {
        let Some(c) = self.conns.get(&id) else { return };
        let frame = match &c.web {
            Some(w) if w.is_ws() => super::ws::wrap(&frame),
            _ => frame,
        };
        self.enqueue_raw(id, frame);
    }

    /// Queues bytes exactly as they go on the wire.
    pub(super) fn enqueue_raw(&mut self, id: u64, frame: Bytes) {
        let limit = self.node.config.limits.write_queue_bytes;
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
    pub(super) fn close(&mut self, id: u64, code: ErrorCode, message: &str) {
        let Some(c) = self.conns.get(&id) else { return };
        let frame = match &c.web {
            None => frames::close(code, message),
            Some(w) => w.close_bytes(code, message),
        };
        self.close_with(id, frame);
    }

    /// Queues `frame` (wire bytes) as the last output; the connection is
    /// dropped once it is flushed.
    pub(super) fn close_with(&mut self, id: u64, frame: Bytes) {
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

    pub(super) fn flush_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        let mut again = Vec::new();
        for id in dirty {
            let Some(c) = self.conns.get_mut(&id) else { continue };
            let mut failed = false;
            let mut blocked = false;
            let mut written = 0;
            while !c.out.is_empty() && written < WRITE_BUDGET {
                let mut iov = [IoSlice::new(&[]); MAX_IOV];
                // At most the rest of this turn's budget, so one connection's
                // large replies cannot hold the loop (and everyone's pongs) for long.
                let mut room = WRITE_BUDGET - written;
                let mut n_iov = 0;
                for (b, slot) in c.out.iter().zip(iov.iter_mut()) {
                    if room == 0 {
                        break;
                    }
                    let take = b.len().min(room);
                    *slot = IoSlice::new(&b[..take]);
                    room -= take;
                    n_iov += 1;
                }
                match c.sock.write_vectored(&iov[..n_iov]) {
                    Ok(0) => {
                        failed = true;
                        break;
                    }
                    Ok(mut n) => {
                        written += n;
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
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        blocked = true;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            if !failed && !blocked && !c.out.is_empty() {
                // Budget used up, the socket still takes data: next turn.
                again.push(id);
            }
            // TLS: encrypted bytes may still wait for the socket.
            if !failed && let Err(e) = c.sock.flush() {
                failed = e.kind() != io::ErrorKind::WouldBlock;
            }
            let done_closing = c.close_deadline.is_some() && c.out.is_empty() && !c.sock.wants_write();
            if failed || done_closing {
                self.drop_conn(id);
            } else if c.paused {
                self.resume_input(id);
            }
        }
        self.dirty.extend(again);
    }

    pub(super) fn drop_conn(&mut self, id: u64) {
        let Some(mut c) = self.conns.remove(&id) else { return };
        let _ = self.poll.registry().deregister(&mut c.sock);
        let _ = c.sock.shutdown(std::net::Shutdown::Both);
        if let Phase::Ready(s) = &c.phase {
            debug!(conn = id, user = %s.user, "closed");
            let user = s.user.clone();
            self.end_session(&user, ConnRef { worker: self.idx, id });
        }
    }
}
