//! The mailbox: messages between workers, and emitting a turn's effects.
//!
//! Role: [`WorkerMsg`] is everything one worker tells another (an op for its
//! owner shard, a reply, a push, a login decision, a kick); [`Replies`] holds
//! the REST API's calls waiting for an owner shard (`crate::api`). Sends go through
//! bounded crossbeam channels plus a `mio::Waker`, woken once per destination
//! per loop turn.
//!
//! Invariants: a full channel spills into a FIFO per destination (order kept);
//! while a FIFO is long the worker stops reading sockets (TCP backpressure)
//! but keeps draining its own inbox, so workers can never deadlock; messages
//! between two workers stay in order, so pushes of one conversation reach a
//! connection in seq order.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use crossbeam_channel::TrySendError;
use missive_protocol::{ErrorCode, UserId};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::conn::Phase;
use super::routes;
use super::{INBOX_BATCH, Worker};
use crate::error::Reject;
use crate::frames;
use crate::node::directory::ConnRef;
use crate::services::ServiceOp;
use crate::shard::{Effect, Reply, ShardOp};

/// Calls waiting for their owner shard's answer: ticket → oneshot.
#[derive(Debug, Default)]
pub(crate) struct Replies {
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
}

impl Replies {
    pub(crate) fn register(&self) -> (u64, oneshot::Receiver<Reply>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().insert(id, tx);
        (id, rx)
    }

    pub(crate) fn forget(&self, id: u64) {
        self.waiting.lock().remove(&id);
    }

    /// Delivers the answer of call `id` (called by the worker that emits it).
    pub(crate) fn complete(&self, id: u64, reply: Reply) {
        if let Some(tx) = self.waiting.lock().remove(&id) {
            let _ = tx.send(reply);
        }
    }
}

/// A message between workers.
#[derive(Debug)]
pub(crate) enum WorkerMsg {
    /// A request for the receiving worker's owner shard (boxed: ops are large,
    /// replies and pushes are the common case and stay small).
    Op(Box<ShardOp<ServiceOp>>),
    /// The answer to request `request_id` of the receiving worker's connection
    /// `conn`, still typed (encoded by the receiving worker); `cost` is the
    /// write-queue space the connection reserved for it.
    Reply { conn: u64, request_id: u64, cost: u32, reply: Box<Reply> },
    /// The query pool finished a job of connection `conn`: with its answer, or
    /// `None` when the answer comes from an owner shard (sync).
    QueryDone { conn: u64, request_id: u64, cost: u32, reply: Option<Box<Reply>> },
    /// A push to the receiving worker's connection `conn`.
    Push { conn: u64, frame: Bytes },
    /// One frame pushed to several of the receiving worker's connections (a
    /// fan-out: one channel message per worker, not one per delivery; at most
    /// the pushing conversation's member count), except `skip` (the sender's
    /// own connection when the list is a shared route, `routes.rs`).
    PushMany { conns: Arc<[u64]>, skip: Option<u64>, frame: Bytes },
    /// The owner shard decided the login of connection `conn`.
    LoginDone { conn: u64, user: UserId, result: Result<String, Reject> },
    /// End connection `conn`: push `frame` (a `Kicked`), then Close{code, message}.
    Kick { conn: u64, frame: Bytes, code: ErrorCode, message: String },
}

impl Worker {
    pub(super) fn send_to(&mut self, worker: usize, msg: WorkerMsg) {
        if worker == self.idx {
            match msg {
                WorkerMsg::Op(op) => self.ops.push(*op),
                WorkerMsg::Reply { conn, request_id, cost, reply } => {
                    self.on_reply(conn, request_id, cost, *reply)
                }
                WorkerMsg::QueryDone { conn, request_id, cost, reply } => {
                    self.on_query_done(conn, request_id, cost, reply)
                }
                WorkerMsg::Push { conn, frame } => self.push(conn, frame),
                WorkerMsg::PushMany { conns, skip, frame } => self.push_many(&conns, skip, &frame),
                WorkerMsg::LoginDone { conn, user, result } => self.on_login_done(conn, user, result),
                WorkerMsg::Kick { conn, frame, code, message } => self.kick(conn, frame, code, &message),
            }
            return;
        }
        if !self.overflow[worker].is_empty() {
            self.overflow[worker].push_back(msg);
            return;
        }
        match self.mesh.senders[worker].try_send(msg) {
            Ok(()) => self.wake[worker] = true,
            Err(TrySendError::Full(m)) | Err(TrySendError::Disconnected(m)) => {
                self.overflow[worker].push_back(m);
            }
        }
    }

    /// Wakes every worker this one sent to since the last call: one eventfd
    /// write per destination per loop turn, not one per message.
    pub(super) fn flush_wakes(&mut self) {
        for (w, pending) in self.wake.iter_mut().enumerate() {
            if std::mem::take(pending) {
                let _ = self.mesh.wakers[w].wake();
            }
        }
    }

    pub(super) fn retry_overflow(&mut self) {
        for w in 0..self.overflow.len() {
            let mut sent = false;
            while let Some(m) = self.overflow[w].pop_front() {
                match self.mesh.senders[w].try_send(m) {
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

    pub(super) fn drain_inbox(&mut self) {
        for _ in 0..INBOX_BATCH {
            match self.inbox.try_recv() {
                Ok(WorkerMsg::Op(op)) => self.ops.push(*op),
                Ok(WorkerMsg::Reply { conn, request_id, cost, reply }) => {
                    self.on_reply(conn, request_id, cost, *reply)
                }
                Ok(WorkerMsg::QueryDone { conn, request_id, cost, reply }) => {
                    self.on_query_done(conn, request_id, cost, reply)
                }
                Ok(WorkerMsg::Push { conn, frame }) => self.push(conn, frame),
                Ok(WorkerMsg::PushMany { conns, skip, frame }) => self.push_many(&conns, skip, &frame),
                Ok(WorkerMsg::LoginDone { conn, user, result }) => self.on_login_done(conn, user, result),
                Ok(WorkerMsg::Kick { conn, frame, code, message }) => self.kick(conn, frame, code, &message),
                Err(_) => return,
            }
        }
    }

    /// An owner shard (or the query pool) answered a request of connection
    /// `id`: encode it here, at the edge, and release its in-flight slot and
    /// its reserved write-queue space.
    pub(super) fn on_reply(&mut self, id: u64, request_id: u64, cost: u32, reply: Reply) {
        self.mesh.in_flight_ops.fetch_sub(1, Ordering::AcqRel);
        if let Some(c) = self.conns.get_mut(&id) {
            c.in_flight = c.in_flight.saturating_sub(1);
            c.reserved = c.reserved.saturating_sub(cost as usize);
        }
        self.enqueue(id, frames::reply(request_id, reply));
        self.resume_input(id);
    }

    pub(super) fn emit(&mut self, effects: Vec<Effect>) {
        for e in effects {
            match e {
                Effect::Reply { conn, reply, .. } if conn.worker == crate::api::API_WORKER => {
                    self.mesh.api.complete(conn.id, *reply)
                }
                Effect::Reply { conn, request_id, cost, reply } => {
                    self.send_to(conn.worker, WorkerMsg::Reply { conn: conn.id, request_id, cost, reply })
                }
                Effect::Fanout { users, exclude, frame } if users.len() >= routes::MIN_USERS => {
                    // A large list the services reuse: its cached route.
                    let groups = self.routes.route(&self.node.directory, &users).groups.clone();
                    for (worker, conns) in groups {
                        let skip = exclude.filter(|c| c.worker == worker).map(|c| c.id);
                        self.send_to(worker, WorkerMsg::PushMany { conns, skip, frame: frame.clone() });
                    }
                }
                Effect::Fanout { users, exclude, frame } => {
                    let targets = routes::targets(&self.node.directory, &users, exclude);
                    self.push_to(targets, frame);
                }
                Effect::FanoutAll { frame } => {
                    let mut targets = Vec::new();
                    self.node.directory.for_each_online(|p| targets.push(p.conn));
                    self.push_to(targets, frame);
                }
                Effect::Kick { conn, frame, code, message } => {
                    self.send_to(conn.worker, WorkerMsg::Kick { conn: conn.id, frame, code, message })
                }
                Effect::LoginDone { conn, user, result } => {
                    self.send_to(conn.worker, WorkerMsg::LoginDone { conn: conn.id, user, result })
                }
                Effect::Forward { owner, op } => self.send_to(owner, WorkerMsg::Op(op)),
                // The engine applies directory changes itself, after the write.
                Effect::SessionAdd { .. } | Effect::SessionRemove { .. } => {}
            }
        }
    }

    /// Sends `frame` to every connection in `targets`: a few one by one, more
    /// as one [`WorkerMsg::PushMany`] per worker.
    fn push_to(&mut self, targets: Vec<ConnRef>, frame: Bytes) {
        const ONE_BY_ONE: usize = 4;
        if targets.len() <= ONE_BY_ONE {
            for c in targets {
                self.send_to(c.worker, WorkerMsg::Push { conn: c.id, frame: frame.clone() });
            }
            return;
        }
        for (worker, ids) in routes::by_worker(targets) {
            self.send_to(
                worker,
                WorkerMsg::PushMany { conns: Arc::from(ids), skip: None, frame: frame.clone() },
            );
        }
    }

    /// [`Worker::push`] of one frame to several local connections, except `skip`.
    pub(super) fn push_many(&mut self, conns: &[u64], skip: Option<u64>, frame: &Bytes) {
        for &id in conns {
            if Some(id) != skip {
                self.push(id, frame.clone());
            }
        }
    }

    /// Queues a push for a READY connection (dropped during the handshake:
    /// HelloOk must come first, and sync recovers anything missed, [PU-1]).
    pub(super) fn push(&mut self, id: u64, frame: Bytes) {
        if self.conns.get(&id).is_some_and(|c| matches!(c.phase, Phase::Ready(_))) {
            self.enqueue(id, frame);
        }
    }

    /// Ends a session: the `Kicked` push, then Close.
    pub(super) fn kick(&mut self, id: u64, frame: Bytes, code: ErrorCode, message: &str) {
        self.push(id, frame);
        self.close(id, code, message);
    }
}
