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
//!   it: answer now (local queries, sync, refusals) and/or send an op to an
//!   owner shard;
//! - [`logout`] is the op telling the owner that a session ended.
//!
//! Invariants: nothing here blocks or writes storage; every request is
//! answered exactly once (now, or by the owner's turn); the request's user
//! is always the authenticated session's, never a field of the request.

use missive_protocol::pb;
use missive_protocol::token::{self, Role};
use missive_protocol::{DeviceId, ErrorCode, PROTOCOL_VERSION, UserId};

use crate::error::Reject;
use crate::node::directory::ConnRef;
use crate::node::{Node, OwnerKey};
use crate::route::{self, Caller, Route};
use crate::services::accounts::AccountsOp;
use crate::services::sync::SyncOp;
use crate::services::{ServiceOp, serve_local, sync};
use crate::shard::{Origin, Reply, ShardOp};

/// An authenticated session (transport-agnostic state of a connection).
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) user: UserId,
    pub(crate) device: DeviceId,
    pub(crate) platform: pb::Platform,
    pub(crate) role: Role,
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
    let session = Session { user: claims.user, device, platform, role: claims.role };
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
pub(crate) fn logout(node: &Node, user: &UserId, device: DeviceId, conn: ConnRef) -> Routed {
    let owner = node.owner(OwnerKey::User(user));
    (
        owner,
        ShardOp {
            origin: Origin::Event { conn },
            user: user.clone(),
            device,
            op: ServiceOp::Accounts(AccountsOp::Logout),
        },
    )
}

/// What to do with one request.
#[derive(Debug)]
pub(crate) struct Dispatch {
    /// Answer now (local queries, sync, refusals before routing).
    pub(crate) reply: Option<Reply>,
    /// Send this op to its owner shard (it answers, unless its origin is an event).
    pub(crate) op: Option<Routed>,
}

/// Checks and routes one request of a ready session.
pub(crate) fn request(node: &Node, s: &Session, conn: ConnRef, r: pb::Request, now_ms: u64) -> Dispatch {
    let now = |reply: Reply| Dispatch { reply: Some(reply), op: None };
    let Some(op) = r.op else {
        return now(Err(Reject::new(ErrorCode::UnknownRequest, "unknown or missing request operation")));
    };
    let caller = Caller { user: &s.user, admin: s.role == Role::Admin };
    match route::route(node, caller, op) {
        Err(rej) => now(Err(rej)),
        Ok(Route::Local(q)) => now(serve_local(node, &s.user, q)),
        Ok(Route::Sync(req)) => match sync::serve(node, &s.user, &req, now_ms) {
            Ok(page) => {
                // The device's sync token is recorded by the user's owner, which then answers.
                let owner = node.owner(OwnerKey::User(&s.user));
                let record = ShardOp {
                    origin: Origin::Request { conn, request_id: r.id },
                    user: s.user.clone(),
                    device: s.device.clone(),
                    op: ServiceOp::Sync(SyncOp::RecordToken { page: Box::new(page) }),
                };
                Dispatch { reply: None, op: Some((owner, record)) }
            }
            Err(rej) => now(Err(rej)),
        },
        Ok(Route::Owner(owner, op)) => {
            let op = ShardOp {
                origin: Origin::Request { conn, request_id: r.id },
                user: s.user.clone(),
                device: s.device.clone(),
                op,
            };
            Dispatch { reply: None, op: Some((owner, op)) }
        }
    }
}
