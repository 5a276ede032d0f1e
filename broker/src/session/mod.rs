//! Sessions: the handshake, the login, and then typed requests.
//!
//! Role: the protocol logic of one connection, without sockets. `net` owns
//! the connection and its phase (handshake → logging in → ready) and calls
//! these functions:
//! - [`hello`] checks a `Hello` (version, device, platform, token) and gives
//!   the login op for the user's owner shard, which decides the account checks
//!   and the multi-device policy ([L-3]);
//! - [`hello_ok`] builds the `HelloOk` once the owner said yes;
//! - [`request`] checks a request through `route` and says what to do with
//!   it: answer now (refusals), send an op to an owner shard, or serve a
//!   read-only query ([`serve_query`], run by `net`'s query pool);
//! - [`logout`] is the op telling the owner that a session ended.
//!
//! Invariants: nothing here blocks or writes storage; every request is
//! answered exactly once (now, or by the owner's turn); the request's user
//! is always the authenticated session's, never a field of the request.

use missive_protocol::pb::{self, request::Op};
use missive_protocol::token::{self, Role};
use missive_protocol::{DeviceId, ErrorCode, PROTOCOL_VERSION, UserId};

use crate::error::Reject;
use crate::node::directory::ConnRef;
use crate::node::{Node, OwnerKey};
use crate::route::{self, Caller, Route};
use crate::services::accounts::AccountsOp;
use crate::services::sync::SyncOp;
use crate::services::translate::{self, Found};
use crate::services::{LocalQuery, ServiceOp, serve_local, sync};
use crate::shard::{Origin, Reply, ShardOp};

pub(crate) mod forward;

/// An authenticated session (transport-agnostic state of a connection).
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) user: UserId,
    pub(crate) device: DeviceId,
    pub(crate) platform: pb::Platform,
    pub(crate) role: Role,
    /// When the Hello was accepted: every request of the session was sent
    /// after it ([S-7], `messages::retries`).
    pub(crate) since: std::time::Instant,
}

/// An op for an owner shard: its index and the op.
pub(crate) type Routed = (usize, ShardOp<ServiceOp>);

/// Checks a `Hello`; returns the session to be and the login op for the
/// user's owner shard.
pub(crate) fn hello(
    node: &Node,
    conn: ConnRef,
    h: &pb::Hello,
    now_ms: u64,
) -> Result<(Session, Routed), Reject> {
    if !(h.min_version <= PROTOCOL_VERSION && PROTOCOL_VERSION <= h.max_version) {
        return Err(Reject::new(
            ErrorCode::UnsupportedVersion,
            format!("server speaks protocol {PROTOCOL_VERSION} only"),
        ));
    }
    let device = DeviceId::new(h.device_id.clone())
        .map_err(|e| Reject::new(ErrorCode::InvalidArgument, format!("device_id: {e}")))?;
    let platform = pb::Platform::try_from(h.platform)
        .ok()
        .filter(|p| *p != pb::Platform::Unspecified)
        .ok_or_else(|| Reject::new(ErrorCode::InvalidArgument, "platform must be set"))?;
    if h.client_version.len() > 64 {
        return Err(Reject::new(ErrorCode::InvalidArgument, "client_version longer than 64 bytes"));
    }
    let claims = token::verify(node.config.secret.as_bytes(), &h.token, now_ms / 1000)
        .map_err(|e| Reject::new(e.code(), e.to_string()))?;
    if claims.device.as_ref().is_some_and(|d| d != &device) || claims.platform.is_some_and(|p| p != platform)
    {
        return Err(Reject::new(ErrorCode::TokenDeviceMismatch, "token is restricted to another device"));
    }
    let session =
        Session { user: claims.user, device, platform, role: claims.role, since: std::time::Instant::now() };
    let owner = node.owner(OwnerKey::User(&session.user));
    let op = ShardOp {
        origin: Origin::Login { conn },
        user: session.user.clone(),
        device: session.device.clone(),
        op: ServiceOp::Accounts(AccountsOp::Login {
            platform: session.platform,
            role: session.role,
            issued_at_ms: claims.issued_at_ms,
        }),
    };
    Ok((session, (owner, op)))
}

/// The `HelloOk` of a session the owner accepted.
pub(crate) fn hello_ok(
    node: &Node,
    s: &Session,
    sync_token: String,
    session_id: String,
    now_ms: u64,
) -> pb::HelloOk {
    let l = &node.config.limits;
    pb::HelloOk {
        version: PROTOCOL_VERSION,
        server_time_ms: now_ms,
        session_id,
        user_id: s.user.to_string(),
        sync_token,
        max_frame_size: l.max_frame_size,
        ping_interval_secs: l.ping_interval_secs as u32,
        idle_timeout_secs: l.idle_timeout_secs as u32,
    }
}

/// The op telling `user`'s owner that a session ended (its presence may change).
pub(crate) fn logout(
    node: &Node,
    user: &UserId,
    device: DeviceId,
    conn: ConnRef,
    publish: bool,
    platform: pb::Platform,
) -> Routed {
    let owner = node.owner(OwnerKey::User(user));
    (
        owner,
        ShardOp {
            origin: Origin::Event { conn },
            user: user.clone(),
            device,
            op: ServiceOp::Accounts(AccountsOp::Logout { publish, platform }),
        },
    )
}

/// What to do with one request.
#[derive(Debug)]
pub(crate) struct Dispatch {
    /// Answer now (refusals before routing).
    pub(crate) reply: Option<Reply>,
    /// Send this op to its owner shard (it answers, unless its origin is an event).
    pub(crate) op: Option<Routed>,
    /// Serve this read-only query on the query pool ([`serve_query`]), off the I/O loop.
    pub(crate) query: Option<Query>,
}

/// A read-only request served by the query pool.
#[derive(Debug)]
pub(crate) enum Query {
    /// Answered from committed storage.
    Local(LocalQuery),
    /// A sync page: read from committed storage, then its token is recorded by
    /// the user's owner shard, which answers.
    Sync(pb::SyncRequest),
    /// A translation: a cached one answers at once; otherwise the provider
    /// is called off the pool (`hooks::translate`) and the conversation's
    /// owner shard caches its text and answers.
    Translate(translate::Lookup),
    /// A forward (spec 18.9): the source is read from committed storage,
    /// then the copies go to the destination's owner, which answers.
    Forward(Box<crate::services::messages::forward::ForwardReq>),
}

/// What serving a [`Query`] produced.
#[derive(Debug)]
pub(crate) enum Served {
    /// The answer to send.
    Reply(Reply),
    /// An op for the user's owner shard, which answers the request.
    Op(Routed),
    /// A translation for the provider (answered by `hooks::translate`).
    Translate(translate::Job),
}

/// The bytes a request's answer may take in the connection's write queue:
/// reads that return pages or lists may fill a frame, every other answer is
/// small. `net` reserves this much per request in flight, so that pipelined
/// reads pause the client's input instead of overflowing its write queue.
pub(crate) fn reply_cost(node: &Node, op: &Op) -> u32 {
    let page_like = matches!(
        op,
        Op::Pull(_)
            | Op::History(_)
            | Op::Sync(_)
            | Op::AccountsExist(_)
            | Op::GetProfiles(_)
            | Op::GetPresence(_)
            | Op::ListPresenceSubscriptions(_)
            | Op::ListFriends(_)
            | Op::ListFriendRequests(_)
            | Op::CheckRelations(_)
            | Op::SearchFriends(_)
            | Op::ListBlacklist(_)
            | Op::GetGroups(_)
            | Op::ListGroupApplications(_)
            | Op::ListGroupMembers(_)
            | Op::ListJoinedGroups(_)
            | Op::GetGroupReceipt(_)
            | Op::Forward(_)
            | Op::CreateGroup(_)
            | Op::InviteToGroup(_)
            | Op::Translate(_)
    );
    if page_like { node.config.limits.max_frame_size } else { SMALL_REPLY_COST }
}

/// The write-queue reservation of a request whose answer is small (an ack).
pub(crate) const SMALL_REPLY_COST: u32 = 2048;

/// Checks and routes one request of a ready session; `cost` is its
/// [`reply_cost`], carried with it to whoever answers.
pub(crate) fn request(
    node: &Node,
    s: &Session,
    conn: ConnRef,
    request_id: u64,
    op: Option<Op>,
    cost: u32,
) -> Dispatch {
    let now = |reply: Reply| Dispatch { reply: Some(reply), op: None, query: None };
    let Some(op) = op else {
        return now(Err(Reject::new(ErrorCode::UnknownRequest, "unknown or missing request operation")));
    };
    let caller = Caller { user: &s.user, admin: s.role == Role::Admin, since: Some(s.since) };
    let query = |q: Query| Dispatch { reply: None, op: None, query: Some(q) };
    match route::route(node, caller, op) {
        Err(rej) => now(Err(rej)),
        Ok(Route::Local(q)) => query(Query::Local(q)),
        Ok(Route::Sync(req)) => query(Query::Sync(req)),
        Ok(Route::Translate(l)) => query(Query::Translate(l)),
        Ok(Route::Forward(req)) => query(Query::Forward(req)),
        Ok(Route::Owner(owner, op)) => {
            let op = ShardOp {
                origin: Origin::Request { conn, request_id, cost },
                user: s.user.clone(),
                device: s.device.clone(),
                op,
            };
            Dispatch { reply: None, op: Some((owner, op)), query: None }
        }
    }
}

/// Serves a [`Query`] of `user` (on a query-pool thread: reads committed
/// storage, never writes).
pub(crate) fn serve_query(
    node: &Node,
    user: &UserId,
    device: &DeviceId,
    origin: Origin,
    q: Query,
    now_ms: u64,
) -> Served {
    match q {
        Query::Local(q) => Served::Reply(serve_local(node, user, q)),
        Query::Sync(req) => match sync::serve(node, user, &req, now_ms) {
            Ok(page) => {
                // The device's sync token is recorded by the user's owner, which then answers.
                let owner = node.owner(OwnerKey::User(user));
                let record = ShardOp {
                    origin,
                    user: user.clone(),
                    device: device.clone(),
                    op: ServiceOp::Sync(SyncOp::RecordToken { page: Box::new(page) }),
                };
                Served::Op((owner, record))
            }
            Err(rej) => Served::Reply(Err(rej)),
        },
        Query::Translate(l) => match translate::lookup(node, user, l, now_ms) {
            Ok(Found::Cached(t)) => Served::Reply(Ok(pb::response::Result::Translation(t))),
            Ok(Found::Call(job)) => Served::Translate(job),
            Err(rej) => Served::Reply(Err(rej)),
        },
        Query::Forward(req) => match forward::plan(node, user, &req, now_ms) {
            // The destination's owner stores the copies and answers.
            Ok((owner, op)) => {
                Served::Op((owner, ShardOp { origin, user: user.clone(), device: device.clone(), op }))
            }
            Err(rej) => Served::Reply(Err(rej)),
        },
    }
}
