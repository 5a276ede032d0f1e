//! The presence service: who is online on which platforms, custom status
//! texts, and subscriptions to other users' presence.
//!
//! Role: subscriptions and the status record are per-user records, written
//! on the user's owner shard; a presence change (login, logout, kick, status)
//! is pushed to the user's subscribers and the user's own devices by
//! [`publish`]. GetPresence and ListPresenceSubscriptions run on the
//! connection's worker from the directory and committed storage ([`serve`]).
//!
//! Invariants: presence is not in the sync feed (it is live state); a user
//! has at most `relations.max_subscriptions` subscriptions; one push goes to
//! at most [`MAX_PRESENCE_FANOUT`] subscribers.

use missive_protocol::pb::{self, push, response};
use missive_protocol::{ErrorCode, UserId};
use missive_storage::{StatusRecord, Store};

use crate::error::Reject;
use crate::frames;
use crate::node::directory::{ConnRef, Directory, Online};
use crate::node::{Node, OwnerKey};
use crate::services::{Services, Undo, checks};
use crate::shard::{Answer, Effect, ShardOp, Staged, Turn, failpoint};

/// Most subscribers one presence change is pushed to.
pub(crate) const MAX_PRESENCE_FANOUT: usize = 100_000;

/// A presence op (owner: the caller).
#[derive(Debug)]
pub(crate) enum PresenceOp {
    Subscribe { targets: Vec<UserId> },
    Unsubscribe { targets: Vec<UserId> },
    SetStatus { text: String },
}

impl PresenceOp {
    pub(crate) fn owner<'a>(&'a self, caller: &'a UserId) -> OwnerKey<'a> {
        OwnerKey::User(caller)
    }
}

/// A read-only presence request.
#[derive(Debug)]
pub(crate) enum Query {
    Get(pb::GetPresence),
    Subscriptions(pb::ListPresenceSubscriptions),
}

/// `user`'s presence from `online` and the stored status.
fn presence_with(store: &Store, user: &UserId, online: Online) -> Result<pb::Presence, Reject> {
    let status = store.status(user)?.unwrap_or_default();
    Ok(pb::Presence {
        user_id: user.to_string(),
        online: !online.platforms.is_empty(),
        platforms: online.platforms.iter().map(|p| *p as i32).collect(),
        status_text: status.text,
        changed_ms: online.changed_ms.max(status.changed_ms),
    })
}

/// `user`'s presence from the directory and the stored status.
pub(crate) fn presence_of(store: &Store, dir: &Directory, user: &UserId) -> Result<pb::Presence, Reject> {
    presence_with(store, user, dir.online(user))
}

/// Pushes `user`'s presence to its subscribers and its own devices (except
/// `exclude`). `status` overrides the stored status and `online` the
/// directory (both as staged by the calling op).
pub(crate) fn publish(
    s: &Services,
    user: &UserId,
    exclude: Option<ConnRef>,
    status: Option<&StatusRecord>,
    online: Option<Online>,
    t: &mut Turn<Undo>,
) -> Result<(), Reject> {
    let store = &s.node.store;
    let online = online.unwrap_or_else(|| s.node.directory.online(user));
    let mut p = presence_with(store, user, online)?;
    if let Some(st) = status {
        p.status_text = st.text.clone();
        p.changed_ms = p.changed_ms.max(st.changed_ms);
    }
    failpoint::check("presence.publish")?;
    let mut users: Vec<UserId> = store
        .subscribers(user, MAX_PRESENCE_FANOUT)?
        .into_iter()
        .filter_map(|s| UserId::new(s).ok())
        .collect();
    users.push(user.clone());
    t.effect(Effect::Fanout { users: users.into(), exclude, frame: frames::push(push::Event::Presence(p)) });
    Ok(())
}

pub(crate) fn stage(
    s: &mut Services,
    op: ShardOp<PresenceOp>,
    t: &mut Turn<Undo>,
) -> Result<Staged<PresenceOp>, Reject> {
    if !t.claim(format!("u\0{}", op.user)) {
        return Ok(Staged::Defer(op));
    }
    let subject = &op.user;
    let store = &s.node.store;
    let res = match &op.op {
        PresenceOp::Subscribe { targets } => {
            let max = s.node.config.relations.max_subscriptions;
            let current = store.subscriptions(subject, max + 1)?;
            let mut added: Vec<&UserId> =
                targets.iter().filter(|u| !current.iter().any(|c| c == u.as_str())).collect();
            added.sort();
            added.dedup();
            if current.len() + added.len() > max {
                return Err(Reject::new(
                    ErrorCode::SubscriptionLimit,
                    format!("at most {max} presence subscriptions ({} now)", current.len()),
                ));
            }
            for u in added {
                t.batch.put_subscription(subject, u, true);
            }
            let dir = &s.node.directory;
            let presences =
                targets.iter().map(|u| presence_of(store, dir, u)).collect::<Result<Vec<_>, _>>()?;
            response::Result::Presence(pb::PresenceList { presences })
        }
        PresenceOp::Unsubscribe { targets } => {
            for u in targets {
                t.batch.put_subscription(subject, u, false);
            }
            response::Result::Ok(pb::Ok {})
        }
        PresenceOp::SetStatus { text } => {
            let rec = StatusRecord { text: text.clone(), changed_ms: t.now_ms };
            t.batch.put_status(subject, &rec);
            publish(s, subject, Some(op.origin.conn()), Some(&rec), None, t)?;
            response::Result::Ok(pb::Ok {})
        }
    };
    Ok(Staged::Done(Answer::Response(res)))
}

/// Serves a read-only presence request.
pub(crate) fn serve(node: &Node, user: &UserId, q: Query) -> Result<response::Result, Reject> {
    let store = &node.store;
    Ok(match q {
        Query::Get(req) => {
            let ids = checks::user_ids(req.user_ids, "user_ids")?;
            let presences =
                ids.iter().map(|u| presence_of(store, &node.directory, u)).collect::<Result<Vec<_>, _>>()?;
            response::Result::Presence(pb::PresenceList { presences })
        }
        Query::Subscriptions(_) => {
            let mut presences = Vec::new();
            for s in store.subscriptions(user, node.config.relations.max_subscriptions)? {
                if let Ok(u) = UserId::new(s) {
                    presences.push(presence_of(store, &node.directory, &u)?);
                }
            }
            response::Result::Presence(pb::PresenceList { presences })
        }
    })
}
