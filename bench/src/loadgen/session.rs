//! Logging users in: open one connection per (user, device), send `Hello`,
//! and wait (bounded) until every one got `HelloOk`.
//!
//! Invariants: returns only when every connection is READY, or fails with the
//! number of failures and the first reason (a `Close` code and message, a
//! refused connect, a timeout); frames other than `HelloOk` that arrive before
//! it are handed back to the caller, never dropped.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::bail;
use missive_protocol::pb::frame;

use super::net::{ConnId, Event, Net};
use super::proto;

/// How long logging in may take.
pub(crate) const LOGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Opens and authenticates one connection per `(user, device)`, in order.
/// `early` receives frames that arrived after `HelloOk` during the wait.
pub(crate) fn login_all(
    net: &mut Net,
    addr: SocketAddr,
    secret: &str,
    users: &[(String, String)],
    early: &mut Vec<Event>,
) -> anyhow::Result<Vec<ConnId>> {
    let mut ids = Vec::with_capacity(users.len());
    let first = net_first_id(net, addr, secret, users, &mut ids)?;
    let mut ready = vec![false; users.len()];
    let mut pending = users.len();
    let mut failures: Vec<String> = Vec::new();
    let deadline = Instant::now() + LOGIN_TIMEOUT;
    let mut events = Vec::new();
    while pending > 0 {
        let now = Instant::now();
        if now >= deadline {
            bail!("{pending} of {} connections got no HelloOk within {LOGIN_TIMEOUT:?}", users.len());
        }
        net.poll(Some(deadline - now), &mut events)?;
        for ev in events.drain(..) {
            let Some(i) = ev.conn().checked_sub(first).filter(|&i| i < ready.len()) else {
                early.push(ev);
                continue;
            };
            match ev {
                Event::Frame(_, f) if !ready[i] => match f.body {
                    Some(frame::Body::HelloOk(_)) => {
                        ready[i] = true;
                        pending -= 1;
                    }
                    Some(frame::Body::Close(c)) => failures.push(format!("Close {}: {}", c.code, c.message)),
                    other => failures.push(format!("unexpected frame before HelloOk: {other:?}")),
                },
                Event::Closed(_, reason) if !ready[i] => {
                    failures.push(reason);
                    ready[i] = true; // counted as failed, stop waiting for it
                    pending -= 1;
                }
                other => early.push(other),
            }
        }
        if !failures.is_empty() {
            bail!("{} of {} logins failed; first: {}", failures.len(), users.len(), failures[0]);
        }
    }
    Ok(ids)
}

fn net_first_id(
    net: &mut Net,
    addr: SocketAddr,
    secret: &str,
    users: &[(String, String)],
    ids: &mut Vec<ConnId>,
) -> anyhow::Result<ConnId> {
    for (user, device) in users {
        let id = net.connect(addr, None)?;
        net.send(id, &proto::hello(proto::mint(secret, user)?, device));
        ids.push(id);
    }
    // Connection ids of one Net are consecutive.
    Ok(ids.first().copied().unwrap_or(0))
}
