//! The op: one request (or internal event) on its way to its owner shard.
//!
//! Role: [`ShardOp`] is the unit the engine stages. It carries who asked
//! ([`Origin`]: where the answer goes and in which form), the acting user and
//! device, and the service op itself (`O`, the services' op enum). This file,
//! [`super::effect`] and `net::mailbox` are the whole vocabulary between the
//! I/O edge and the shards: the seam a cluster will later carry over NATS.
//!
//! Invariants: every op gets exactly one answer of the kind its origin asks
//! for (a reply, a login decision, or none), whatever happens while staging.

use missive_protocol::{DeviceId, UserId};

use crate::node::directory::ConnRef;

/// Who is waiting for an op, and for what kind of answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A client request: answered with a `Response` carrying `request_id`.
    /// `cost` is the write-queue space its connection reserved for the answer
    /// (`session::reply_cost`), released when the answer arrives.
    Request { conn: ConnRef, request_id: u64, cost: u32 },
    /// A handshake: answered with a login decision (`HelloOk` or `Close`).
    Login { conn: ConnRef },
    /// An internal event (a session ended, a sync token to record): no answer.
    /// `conn` is the connection it concerns.
    Event { conn: ConnRef },
}

impl Origin {
    /// The connection the op came from (pushes caused by it skip it).
    pub(crate) fn conn(&self) -> ConnRef {
        match *self {
            Origin::Request { conn, .. } | Origin::Login { conn } | Origin::Event { conn } => conn,
        }
    }
}

/// A routed op for its owner shard.
#[derive(Debug)]
pub(crate) struct ShardOp<O> {
    pub(crate) origin: Origin,
    /// The acting user (for admin ops, the admin; the subject is in `op`).
    pub(crate) user: UserId,
    pub(crate) device: DeviceId,
    pub(crate) op: O,
}

impl<O> ShardOp<O> {
    /// The same op with its service op wrapped by `f`.
    pub(crate) fn map<P>(self, f: impl FnOnce(O) -> P) -> ShardOp<P> {
        ShardOp { origin: self.origin, user: self.user, device: self.device, op: f(self.op) }
    }
}
