//! Reading connections: bytes → frames → session.
//!
//! Role: each readable connection is read (at most [`READ_BUDGET`] bytes and
//! [`FRAME_BUDGET`] frames per turn, for fairness), its frames decoded, and
//! each frame handed to the session logic (`crate::session`): `Hello` starts
//! the login on the user's owner shard, requests are routed, pings answered.
//!
//! Invariants:
//! - while a login is being decided, input stays buffered and is not
//!   decoded, so `HelloOk` is the first frame the client gets;
//! - before the handshake completed a frame may be at most
//!   `limits.max_hello_frame_size` bytes, and the read buffer holds at most
//!   one frame of the current limit (`Conn::read_cap`);
//! - a request counts against `limits.max_in_flight` until it is answered,
//!   whether it waits for an owner shard, the query pool, or its turn in the
//!   connection's query queue; every request counts against
//!   `limits.max_requests_per_sec` (`5003 RATE_LIMITED` beyond it, the
//!   connection stays) and frames that get no reply against
//!   `limits.max_silent_frames_per_sec`.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use missive_protocol::pb::{self, frame};
use missive_protocol::{ErrorCode, UserId};
use tracing::{debug, info, warn};

use super::conn::Phase;
use super::mailbox::WorkerMsg;
use super::query::{self, QueryJob};
use super::{FRAME_BUDGET, READ_BUDGET, Worker};
use crate::error::Reject;
use crate::frames;
use crate::node::clock::now_ms;
use crate::node::directory::ConnRef;
use crate::session;
use crate::shard::{Origin, Reply};

impl Worker {
    pub(super) fn read_all(&mut self) {
        let ids = std::mem::take(&mut self.ready);
        for id in ids {
            if let Some(c) = self.conns.get_mut(&id) {
                c.readable = false;
                self.read_conn(id);
            }
        }
    }

    /// Puts a connection back on the ready list (its read budget ran out).
    pub(super) fn mark_ready(&mut self, id: u64) {
        if let Some(c) = self.conns.get_mut(&id)
            && !c.readable
        {
            c.readable = true;
            self.ready.push(id);
        }
    }

    pub(super) fn read_conn(&mut self, id: u64) {
        let mut total = 0;
        let mut eof = false;
        let mut more = false;
        let mut full = false;
        let limits = &self.node.config.limits;
        {
            let scratch = &mut self.scratch;
            let Some(c) = self.conns.get_mut(&id) else { return };
            let cap = c.read_cap(limits);
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
                    // Never buffer more than one frame's worth undecoded: the
                    // rest stays in the socket, and TCP backpressure reaches the client.
                    let room = cap.saturating_sub(c.rbuf.len()).min(scratch.len());
                    if room == 0 {
                        full = true;
                        break;
                    }
                    match c.sock.read(&mut scratch[..room]) {
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
        } else if full {
            // Reading stopped at the cap: come back once decoding made room.
            // (A login in progress, paused input or a spent frame budget
            // re-arms the connection themselves.)
            let limits = &self.node.config.limits;
            if self.conns.get(&id).is_some_and(|c| c.rbuf.len() < c.read_cap(limits)) {
                self.mark_ready(id);
            }
        }
    }

    pub(super) fn decode_frames(&mut self, id: u64) {
        if self.conns.get(&id).is_some_and(|c| c.web.is_some()) {
            return self.decode_web(id);
        }
        for _ in 0..FRAME_BUDGET {
            let decoded = {
                let limits = &self.node.config.limits;
                let Some(c) = self.conns.get_mut(&id) else { return };
                if c.close_deadline.is_some() || matches!(c.phase, Phase::LoggingIn { .. }) {
                    return;
                }
                let codec = match c.phase {
                    Phase::Ready(_) => {
                        if !c.has_reply_room(limits) {
                            // Resumed by `resume_input` once answers drained.
                            c.paused = true;
                            return;
                        }
                        &self.codec
                    }
                    Phase::Handshake { .. } | Phase::LoggingIn { .. } => &self.hello_codec,
                };
                match codec.split_payload(&mut c.rbuf) {
                    Ok(None) => return,
                    Ok(Some(payload)) => codec.decode_payload(payload),
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

    /// Counts a frame that gets no reply against the connection's budget
    /// (`limits.max_silent_frames_per_sec`, burst twice that); a client over
    /// it is closed with `1012 FLOODING`.
    pub(super) fn count_silent(&mut self, id: u64) {
        let rate = self.node.config.limits.max_silent_frames_per_sec;
        let Some(c) = self.conns.get_mut(&id) else { return };
        if c.silent.take(rate, Instant::now()) {
            return;
        }
        let user = match &c.phase {
            Phase::Ready(s) => s.user.to_string(),
            _ => String::new(),
        };
        warn!(conn = id, peer = %c.peer, %user, rate, "flooding with frames that get no reply: closing");
        self.close(id, ErrorCode::Flooding, "too many frames that get no reply (PushAck, Pong)");
    }

    pub(super) fn on_frame(&mut self, id: u64, frame: pb::Frame) {
        let Some(c) = self.conns.get_mut(&id) else { return };
        c.last_frame = Instant::now();
        let ready = matches!(c.phase, Phase::Ready(_));
        match (frame.body, ready) {
            (Some(frame::Body::Hello(h)), false) => self.on_hello(id, h),
            (Some(frame::Body::Hello(_)), true) => self.close(id, ErrorCode::UnexpectedFrame, "second Hello"),
            (_, false) => self.close(id, ErrorCode::HandshakeRequired, "the first frame must be Hello"),
            (Some(frame::Body::Ping(p)), true) => self.enqueue(id, frames::pong(p.nonce, now_ms())),
            (Some(frame::Body::PushAck(_)), true) => self.count_silent(id),
            (Some(frame::Body::Request(r)), true) => self.on_request(id, r),
            (_, true) => self.close(id, ErrorCode::UnexpectedFrame, "frame kind not accepted from clients"),
        }
    }

    pub(super) fn on_hello(&mut self, id: u64, h: pb::Hello) {
        let conn = ConnRef { worker: self.idx, id };
        let (session, (owner, op)) = match session::hello(&self.node, conn, &h, now_ms()) {
            Ok(s) => s,
            Err(r) => {
                debug!(conn = id, code = %r.code, "handshake refused");
                self.close(id, r.code, &r.message);
                return;
            }
        };
        // The account checks and the login policy run on the user's owner shard ([L-3]).
        let Some(c) = self.conns.get_mut(&id) else { return };
        let deadline = match c.phase {
            Phase::Handshake { deadline } => deadline,
            _ => Instant::now(),
        };
        c.phase = Phase::LoggingIn { deadline, session };
        c.in_flight += 1;
        self.mesh.in_flight_ops.fetch_add(1, Ordering::AcqRel);
        self.send_to(owner, WorkerMsg::Op(Box::new(op)));
    }

    /// The owner shard decided a login: HelloOk (READY) or Close.
    pub(super) fn on_login_done(&mut self, id: u64, user: UserId, result: Result<String, Reject>) {
        self.mesh.in_flight_ops.fetch_sub(1, Ordering::AcqRel);
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
        let ok = session::hello_ok(&self.node, &session, sync_token, session_id, now_ms());
        c.phase = Phase::Ready(session);
        if let Some(w) = c.web.as_mut() {
            w.set_frame_limit(self.node.config.limits.max_frame_size as usize);
        }
        self.enqueue(id, frames::hello_ok(ok));
        // Frames that arrived during the login are decoded now.
        self.mark_ready(id);
    }

    /// Removes an ended session from the directory and, if the user's online
    /// platforms changed, lets the owner shard publish the new presence.
    pub(super) fn end_session(&mut self, user: &UserId, conn: ConnRef) {
        // Also when only a `user.offline` webhook wants to hear of it.
        if let Some((p, changed)) = self.node.directory.remove(user, conn)
            && (changed || (!p.admin && self.node.hooks.any("user.offline")))
        {
            let platform = p.platform;
            let (owner, op) = session::logout(&self.node, user, p.device, conn, changed, platform);
            self.send_to(owner, WorkerMsg::Op(Box::new(op)));
        }
    }

    pub(super) fn on_request(&mut self, id: u64, r: pb::Request) {
        let request_id = r.id;
        let node = Arc::clone(&self.node);
        let Some(c) = self.conns.get_mut(&id) else { return };
        let Phase::Ready(s) = &c.phase else { return };
        if c.in_flight >= node.config.limits.max_in_flight {
            let rej = Reject::new(ErrorCode::TooManyInFlight, "too many requests in flight");
            self.enqueue(id, frames::error(request_id, &rej));
            return;
        }
        let now = Instant::now();
        let rate = node.config.limits.max_requests_per_sec;
        if !c.requests.take(rate, now) {
            let rej = Reject::rate_limited(
                c.requests.retry_after_ms(rate, now),
                "too many requests per second on this connection",
            );
            self.enqueue(id, frames::error(request_id, &rej));
            return;
        }
        let sends = node.config.limits.max_sends_per_sec;
        if matches!(r.op, Some(pb::request::Op::Send(_) | pb::request::Op::Forward(_)))
            && !c.sends.take(sends, now)
        {
            let rej = Reject::rate_limited(
                c.sends.retry_after_ms(sends, now),
                format!("more than {sends} messages per second from this device (limits.max_sends_per_sec)"),
            );
            self.enqueue(id, frames::error(request_id, &rej));
            return;
        }
        let conn = ConnRef { worker: self.idx, id };
        let cost = r.op.as_ref().map_or(session::SMALL_REPLY_COST, |op| session::reply_cost(&node, op));
        let d = session::request(&node, s, conn, request_id, r.op, cost);
        if let Some(query) = d.query {
            let job =
                QueryJob { conn, request_id, cost, user: s.user.clone(), device: s.device.clone(), query };
            c.in_flight += 1;
            c.reserved += cost as usize;
            c.queries.push_back(job);
            if c.queries.len() == 1 {
                self.query_rr.push_back(id);
            }
            self.pump_queries();
        }
        if let Some(reply) = d.reply {
            self.enqueue(id, frames::reply(request_id, reply));
        }
        if let Some((owner, op)) = d.op {
            // Webhooks [WH-5]: a send waits for the app's `before.send` decision
            // on the webhook runtime, never on this loop.
            if crate::hooks::before::applies(&op)
                && node.hooks.any("before.send")
                && let Some(hooks) = self.mesh.hooks.get()
            {
                match hooks.submit(owner, op) {
                    Ok(()) => {
                        if let Some(c) = self.conns.get_mut(&id) {
                            c.in_flight += 1;
                            c.reserved += cost as usize;
                        }
                        self.mesh.in_flight_ops.fetch_add(1, Ordering::AcqRel);
                    }
                    Err(_) => {
                        let rej = Reject::new(ErrorCode::Overloaded, "too many sends wait for before.send");
                        self.enqueue(id, frames::error(request_id, &rej));
                    }
                }
                return;
            }
            if matches!(op.origin, Origin::Request { .. }) {
                if let Some(c) = self.conns.get_mut(&id) {
                    c.in_flight += 1;
                    c.reserved += cost as usize;
                }
                self.mesh.in_flight_ops.fetch_add(1, Ordering::AcqRel);
            }
            self.send_to(owner, WorkerMsg::Op(Box::new(op)));
        }
    }

    /// Hands queued queries to the pool, one per connection in turn, while
    /// this worker has fewer than its share of jobs there.
    pub(super) fn pump_queries(&mut self) {
        let cap = query::jobs_per_worker(&self.node);
        while self.queries_running < cap {
            let Some(id) = self.query_rr.pop_front() else { return };
            let Some(c) = self.conns.get_mut(&id) else { continue };
            let Some(job) = c.queries.pop_front() else { continue };
            if !c.queries.is_empty() {
                self.query_rr.push_back(id);
            }
            self.queries_running += 1;
            self.mesh.in_flight_ops.fetch_add(1, Ordering::AcqRel);
            if self.query_tx.send(job).is_err() {
                // The pool is gone (shutting down): nothing will answer.
                self.queries_running -= 1;
                self.mesh.in_flight_ops.fetch_sub(1, Ordering::AcqRel);
                return;
            }
        }
    }

    /// The pool finished a query of connection `id` (see `WorkerMsg::QueryDone`).
    pub(super) fn on_query_done(&mut self, id: u64, request_id: u64, cost: u32, reply: Option<Box<Reply>>) {
        self.queries_running = self.queries_running.saturating_sub(1);
        if let Some(reply) = reply {
            self.on_reply(id, request_id, cost, *reply);
        }
        self.pump_queries();
    }
}
