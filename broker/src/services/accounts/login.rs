//! Login decisions and kicks on the user's owner shard.
//!
//! Invariants: the directory is only read here; the new session and the
//! kicked ones are [`Effect::SessionAdd`] / [`Effect::SessionRemove`], applied
//! after the turn's write, so a login that fails at any point (account read,
//! sync-token read, presence publication, the write) leaves no ghost session
//! and answers exactly once.

use missive_protocol::pb::{self, push};
use missive_protocol::token::Role;
use missive_protocol::{DeviceId, ErrorCode, UserId};
use missive_storage::AccountRecord;

use crate::config::LoginPolicy;
use crate::error::Reject;
use crate::frames;
use crate::node::directory::{ConnRef, Online, Presence};
use crate::services::accounts::AccountsOp;
use crate::services::accounts::policy::{PolicyParams, policy_kicks};
use crate::services::{Services, Undo, presence};
use crate::shard::{Effect, ShardOp, Turn, failpoint};

pub(super) fn kick_effect(
    conn: ConnRef,
    reason: pb::KickReason,
    code: ErrorCode,
    message: &str,
    by: Option<(&DeviceId, pb::Platform)>,
) -> Effect {
    let kicked = pb::Kicked {
        reason: reason as i32,
        message: message.to_owned(),
        by_platform: by.map_or(0, |(_, p)| p as i32),
        by_device: by.map(|(d, _)| d.to_string()).unwrap_or_default(),
    };
    Effect::Kick { conn, frame: frames::push(push::Event::Kicked(kicked)), code, message: message.to_owned() }
}

/// The online platforms of `sessions` (admin sessions are not presence).
fn platforms_of<'a>(sessions: impl Iterator<Item = &'a Presence>) -> Vec<pb::Platform> {
    let mut p: Vec<pb::Platform> = sessions.filter(|s| !s.admin).map(|s| s.platform).collect();
    p.sort_unstable_by_key(|p| *p as i32);
    p.dedup();
    p
}

/// Decides a login; returns the device's stored sync token.
pub(super) fn stage_login(
    s: &mut Services,
    op: &ShardOp<AccountsOp>,
    platform: pb::Platform,
    role: Role,
    issued_at_ms: u64,
    t: &mut Turn<Undo>,
) -> Result<String, Reject> {
    let user = &op.user;
    let node = std::sync::Arc::clone(&s.node);
    let admin = role == Role::Admin;
    if !admin {
        match node.store.account(user)? {
            None if node.config.accounts.auto_register => {
                t.batch.put_account(user, &AccountRecord { created_ms: t.now_ms, ..Default::default() });
            }
            None => return Err(Reject::new(ErrorCode::AccountNotFound, "account not registered")),
            Some(a) if a.disabled => {
                let msg = if a.disabled_reason.is_empty() {
                    "account disabled".to_owned()
                } else {
                    a.disabled_reason
                };
                return Err(Reject::new(ErrorCode::AccountDisabled, msg));
            }
            Some(a) if a.revoked(issued_at_ms) => {
                return Err(Reject::new(ErrorCode::TokenRevoked, "token revoked; log in with a new token"));
            }
            Some(_) => {}
        }
    }
    let all = node.directory.sessions(user);
    let before = platforms_of(all.iter());
    // Admin sessions are exempt from the policies (spec section 12).
    let existing: Vec<Presence> = all.iter().filter(|s| !s.admin).cloned().collect();
    let a = &node.config.accounts;
    let params = PolicyParams {
        policy: if admin { LoginPolicy::Multi } else { a.login_policy },
        web_max: a.web_max_sessions,
        max_sessions: a.max_sessions_per_user,
    };
    let mut kicked = Vec::new();
    for (i, reason) in policy_kicks(params, &existing, &op.device, platform) {
        let victim = &existing[i];
        let msg = match reason {
            pb::KickReason::SameDevice => "this device logged in again",
            _ => "logged in on another device",
        };
        t.effect(Effect::SessionRemove { user: user.clone(), conn: victim.conn });
        t.effect(kick_effect(victim.conn, reason, ErrorCode::Kicked, msg, Some((&op.device, platform))));
        kicked.push(victim.conn);
    }
    let conn = op.origin.conn();
    let session = Presence { conn, device: op.device.clone(), platform, since_ms: t.now_ms, admin };
    let after_sessions: Vec<&Presence> =
        all.iter().filter(|s| !kicked.contains(&s.conn)).chain(std::iter::once(&session)).collect();
    let after = platforms_of(after_sessions.into_iter());
    t.effect(Effect::SessionAdd { user: user.clone(), presence: session });
    if !admin {
        let (now, dev) = (t.now_ms, op.device.as_str());
        for victim in existing.iter().filter(|v| kicked.contains(&v.conn)) {
            let (vd, vp) = (victim.device.as_str(), victim.platform.as_str_name());
            crate::services::events::emit(
                &node,
                t,
                "user.offline",
                || serde_json::json!({ "user_id": user.as_str(), "device": vd, "platform": vp, "reason": "kicked" }),
            );
        }
        crate::services::events::emit(
            &node,
            t,
            "user.online",
            || serde_json::json!({ "user_id": user.as_str(), "device": dev, "platform": platform.as_str_name(), "since_ms": now }),
        );
    }
    failpoint::check("accounts.login.after_session_add")?;
    let sync_token = node.store.device(user, op.device.as_str())?.map(|d| d.sync_token).unwrap_or_default();
    if !admin && after != before {
        let online = Online { platforms: after, changed_ms: t.now_ms };
        presence::publish(s, user, Some(conn), None, Some(online), t)?;
    }
    Ok(sync_token)
}

/// Ends every session of `user` with `Kicked{reason}` then `Close{code}`.
pub(super) fn kick_all(
    s: &mut Services,
    user: &UserId,
    reason: pb::KickReason,
    code: ErrorCode,
    message: &str,
    t: &mut Turn<Undo>,
) -> Result<(), Reject> {
    let sessions = s.node.directory.sessions(user);
    if sessions.is_empty() {
        return Ok(());
    }
    for session in sessions {
        if !session.admin {
            let (d, p) = (session.device.as_str(), session.platform.as_str_name());
            crate::services::events::emit(
                &s.node,
                t,
                "user.offline",
                || serde_json::json!({ "user_id": user.as_str(), "device": d, "platform": p, "reason": "kicked" }),
            );
        }
        t.effect(Effect::SessionRemove { user: user.clone(), conn: session.conn });
        t.effect(kick_effect(session.conn, reason, code, message, None));
    }
    // Offline: no platform set, so no change time (as the directory reports it).
    presence::publish(s, user, None, None, Some(Online::default()), t)
}

/// Ends the sessions of `user` on `devices` (every session when empty) with
/// `Kicked{ADMIN}` then `Close{KICKED}` ([A-7]); admin-token sessions are
/// kicked too. Publishes the new presence when the platform set changes.
pub(super) fn kick_some(
    s: &mut Services,
    user: &UserId,
    devices: &[DeviceId],
    t: &mut Turn<Undo>,
) -> Result<(), Reject> {
    let all = s.node.directory.sessions(user);
    let before = platforms_of(all.iter());
    let mut kept = Vec::new();
    let mut kicked = false;
    for session in all {
        if devices.is_empty() || devices.contains(&session.device) {
            if !session.admin {
                let (d, p) = (session.device.as_str(), session.platform.as_str_name());
                crate::services::events::emit(
                    &s.node,
                    t,
                    "user.offline",
                    || serde_json::json!({ "user_id": user.as_str(), "device": d, "platform": p, "reason": "kicked" }),
                );
            }
            t.effect(Effect::SessionRemove { user: user.clone(), conn: session.conn });
            t.effect(kick_effect(
                session.conn,
                pb::KickReason::Admin,
                ErrorCode::Kicked,
                "kicked by the administrator",
                None,
            ));
            kicked = true;
        } else {
            kept.push(session);
        }
    }
    let after = platforms_of(kept.iter());
    if kicked && after != before {
        let changed_ms = if after.is_empty() { 0 } else { t.now_ms };
        presence::publish(s, user, None, None, Some(Online { platforms: after, changed_ms }), t)?;
    }
    Ok(())
}
