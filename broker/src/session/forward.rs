//! ForwardMessages between two owners (spec 18.9): read the source off the
//! I/O loop, then hand the copies to the destination's owner.
//!
//! Role: [`plan`] runs where read-only queries run (a query-pool thread for
//! a socket, a blocking task for the admin API). It reads the source from
//! committed storage (`messages::forward::read_source`: the caller's
//! readable window from `uconv` and the group records), builds the copies,
//! and routes each copy as the caller's own `SendMessage` through
//! [`route::route`] — so mutes, word lists, content checks and the kind
//! limits of a send hold for a forward — then returns ONE op for the
//! destination's owner, which checks participation, the blacklist and group
//! mutes at the moment of the write and answers the request.
//!
//! Invariants: nothing here writes; the source's owner is never asked (a
//! read of committed state, like sync); every copy goes to one owner (the
//! destination's), so the forward is one op and all or nothing.

use missive_protocol::pb::{self, request::Op};
use missive_protocol::{ErrorCode, UserId};

use crate::error::Reject;
use crate::node::Node;
use crate::route::{self, Caller, Route};
use crate::services::ServiceOp;
use crate::services::messages::MessagesOp;
use crate::services::messages::forward::{self, ForwardReq};

/// The destination owner and its op for a checked forward of `user`.
pub(crate) fn plan(
    node: &Node,
    user: &UserId,
    req: &ForwardReq,
    now_ms: u64,
) -> Result<(usize, ServiceOp), Reject> {
    let src = forward::read_source(node, user, req, now_ms)?;
    let contents = forward::contents(req, src);
    let mut items = Vec::with_capacity(contents.len());
    let mut dest = None;
    for (content, cmid) in contents.into_iter().zip(&req.client_msg_ids) {
        let send = Op::Send(pb::SendMessage {
            conv_id: req.to.to_string(),
            client_msg_id: cmid.as_str().to_owned(),
            content: Some(content),
            flags: None,
            first_attempt: false,
        });
        match route::route(node, Caller { user, admin: false, since: None }, send)? {
            Route::Owner(owner, ServiceOp::Messages(MessagesOp::Send { client_msg_id, content, .. })) => {
                dest = Some(owner);
                items.push((client_msg_id, content));
            }
            _ => return Err(Reject::new(ErrorCode::Internal, "a forwarded copy did not route as a send")),
        }
    }
    let owner = dest.ok_or_else(|| Reject::new(ErrorCode::Internal, "a forward with no copy"))?;
    Ok((owner, ServiceOp::Messages(MessagesOp::Forward { conv: req.to.clone(), items })))
}
