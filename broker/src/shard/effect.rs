//! Effects: what a turn asks the edge to do once its batch is durable.
//!
//! Role: services never touch sockets, the online directory or counters'
//! settlements directly while staging; they describe it as an [`Effect`]. The
//! engine applies directory changes itself right after a successful write and
//! hands the rest to the worker (`net`), which encodes replies and routes
//! pushes.
//!
//! Invariants: replies stay typed (`response::Result` or a [`Reject`]) until
//! the connection's worker encodes them; a push is encoded once
//! (pre-encoded [`Bytes`], shared by every connection it goes to).

use std::sync::Arc;

use bytes::Bytes;
use missive_protocol::pb::response;
use missive_protocol::{ErrorCode, UserId};

use crate::error::Reject;
use crate::node::directory::{ConnRef, Presence};

/// A typed answer to one request.
pub(crate) type Reply = Result<response::Result, Reject>;

/// Something to do once the turn's batch is durable.
#[derive(Debug)]
pub(crate) enum Effect {
    /// Answer a request.
    /// (boxed: the reply is large; the box travels on to the connection's worker as is)
    Reply { conn: ConnRef, request_id: u64, cost: u32, reply: Box<Reply> },
    /// Deliver a push to every online device of `users`, except `exclude`
    /// (shared: a group's recipient list is built once, not per message).
    Fanout { users: Arc<[UserId]>, exclude: Option<ConnRef>, frame: Bytes },
    /// Deliver a push to every online session of the node (a broadcast
    /// message, spec [AM-2]): one directory walk, the frame shared.
    FanoutAll { frame: Bytes },
    /// End a session: push `frame` (a `Kicked`), then Close{code, message}.
    Kick { conn: ConnRef, frame: Bytes, code: ErrorCode, message: String },
    /// Finish a handshake: HelloOk with this sync token, or Close with the reject.
    LoginDone { conn: ConnRef, user: UserId, result: Result<String, Reject> },
    /// Add a session to the online directory (applied by the engine after the write).
    SessionAdd { user: UserId, presence: Presence },
    /// Remove a session from the online directory (applied by the engine after the write).
    SessionRemove { user: UserId, conn: ConnRef },
    /// Hand an op on to shard `owner` once the turn is durable (a request
    /// served by a chain of owners, e.g. ClearAllMessages); the op keeps its
    /// origin, so the last owner of the chain answers it. If the write
    /// fails, the op's request is answered with the failure instead.
    Forward { owner: usize, op: Box<super::ShardOp<crate::services::ServiceOp>> },
}
