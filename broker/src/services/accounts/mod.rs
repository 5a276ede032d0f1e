//! The accounts service: logins (account checks and multi-device policies),
//! session ends, account administration (including the admin API's Kick,
//! ) and profiles.
//!
//! Role: `hash(user)` picks one owner shard ([`OwnerKey::User`]); every login
//! of the user and every write of the user's account and profile records runs
//! there, so logins are decided one at a time ([L-3]) and a disable cannot
//! race a login. Read-only account queries (AccountsExist, GetProfiles) run on
//! the connection's worker ([`serve`]).
//!
//! Invariants: one op per user per turn (the user key is claimed; a second op
//! waits for the next turn), so reads see committed records and the directory
//! as the previous turn left it. Directory changes (a login's session, kicked
//! sessions) are effects, applied only after the turn's write: a refused or
//! failed login leaves no session behind.

mod login;
pub(crate) mod policy;
mod profile;

use missive_protocol::pb::{self, response};
use missive_protocol::token::Role;
use missive_protocol::{ErrorCode, UserId};
use missive_storage::{AccountRecord, ProfileRecord, Store};

use crate::error::Reject;
use crate::node::{Node, OwnerKey};
use crate::services::{Services, Undo, checks, presence};
use crate::shard::{Answer, ShardOp, Staged, Turn};

/// Most friends one profile change is pushed to (and their feeds moved).
pub(crate) const MAX_PROFILE_FANOUT: usize = 100_000;

/// An accounts op (owner: the subject user).
#[derive(Debug)]
pub(crate) enum AccountsOp {
    /// A handshake passed the token checks; decide the account checks and the login policy.
    Login {
        platform: pb::Platform,
        role: Role,
        /// The token's `iat`, unix ms ([A-5]).
        issued_at_ms: u64,
    },
    /// A session of the user ended (no answer; the origin is the ended
    /// connection). `publish`: its online platforms changed; `platform`: the
    /// ended session's (for the `user.offline` webhook event).
    Logout {
        publish: bool,
        platform: pb::Platform,
    },
    /// Admin ops: `target` is the subject (and routing key); the op's user is the admin.
    ImportUser {
        target: UserId,
        patch: pb::ProfilePatch,
    },
    SetDisabled {
        target: UserId,
        disabled: bool,
        reason: String,
    },
    RevokeTokens {
        target: UserId,
    },
    /// Ends the named live sessions of `target` (all when `devices` is empty)
    /// with `Kicked{ADMIN}` then Close KICKED ([A-7]); the account is unchanged.
    Kick {
        target: UserId,
        devices: Vec<missive_protocol::DeviceId>,
    },
    SetProfile {
        patch: pb::ProfilePatch,
    },
}

impl AccountsOp {
    /// The subject user: the admin op's target, else the caller.
    pub(crate) fn subject<'a>(&'a self, caller: &'a UserId) -> &'a UserId {
        match self {
            Self::ImportUser { target, .. }
            | Self::SetDisabled { target, .. }
            | Self::RevokeTokens { target }
            | Self::Kick { target, .. } => target,
            Self::Login { .. } | Self::Logout { .. } | Self::SetProfile { .. } => caller,
        }
    }

    pub(crate) fn owner<'a>(&'a self, caller: &'a UserId) -> OwnerKey<'a> {
        OwnerKey::User(self.subject(caller))
    }
}

/// A read-only accounts request.
#[derive(Debug)]
pub(crate) enum Query {
    Exist(pb::AccountsExist),
    Profiles(pb::GetProfiles),
}

pub(crate) fn stage(
    s: &mut Services,
    op: ShardOp<AccountsOp>,
    t: &mut Turn<Undo>,
) -> Result<Staged<AccountsOp>, Reject> {
    let subject = op.op.subject(&op.user).clone();
    if !t.claim(format!("u\0{subject}")) {
        return Ok(Staged::Defer(op));
    }
    let res = match &op.op {
        AccountsOp::Login { platform, role, issued_at_ms } => {
            let token = login::stage_login(s, &op, *platform, *role, *issued_at_ms, t)?;
            return Ok(Staged::Done(Answer::LoginOk(token)));
        }
        AccountsOp::Logout { publish, platform } => {
            if *publish {
                presence::publish(s, &subject, None, None, None, t)?;
            }
            let (dev, p) = (op.device.as_str(), platform.as_str_name());
            crate::services::events::emit(
                &s.node,
                t,
                "user.offline",
                || serde_json::json!({ "user_id": subject.as_str(), "device": dev, "platform": p, "reason": "disconnected" }),
            );
            return Ok(Staged::Done(Answer::None));
        }
        AccountsOp::ImportUser { patch, .. } => profile::stage_import(s, &subject, patch, t)?,
        AccountsOp::SetDisabled { disabled, reason, .. } => {
            let mut acct = account_of(&s.node.store, &subject)?;
            acct.disabled = *disabled;
            acct.disabled_reason = if *disabled { reason.clone() } else { String::new() };
            t.batch.put_account(&subject, &acct);
            if *disabled {
                let msg = if reason.is_empty() { "account disabled" } else { reason.as_str() };
                login::kick_all(
                    s,
                    &subject,
                    pb::KickReason::AccountDisabled,
                    ErrorCode::AccountDisabled,
                    msg,
                    t,
                )?;
            }
            response::Result::Ok(pb::Ok {})
        }
        AccountsOp::RevokeTokens { .. } => {
            let mut acct = account_of(&s.node.store, &subject)?;
            acct.revoked_at_ms = t.now_ms;
            // Kept for readers of the older record: the same cut, in seconds.
            acct.revoked_through_s = t.now_ms / 1000;
            t.batch.put_account(&subject, &acct);
            login::kick_all(
                s,
                &subject,
                pb::KickReason::TokensRevoked,
                ErrorCode::TokenRevoked,
                "tokens revoked",
                t,
            )?;
            response::Result::Ok(pb::Ok {})
        }
        AccountsOp::Kick { devices, .. } => {
            login::kick_some(s, &subject, devices, t)?;
            response::Result::Ok(pb::Ok {})
        }
        AccountsOp::SetProfile { patch } => profile::stage_profile(s, &op, patch, t)?,
    };
    Ok(Staged::Done(Answer::Response(res)))
}

fn account_of(store: &Store, user: &UserId) -> Result<AccountRecord, Reject> {
    store
        .account(user)?
        .ok_or_else(|| Reject::new(ErrorCode::UserNotFound, format!("user {user} is not registered")))
}

/// The wire profile of `user` from its record.
pub(crate) fn profile_view(user: &UserId, r: &ProfileRecord) -> pb::Profile {
    pb::Profile {
        user_id: user.to_string(),
        nickname: r.nickname.clone(),
        avatar_url: r.avatar_url.clone(),
        gender: r.gender,
        birthday: r.birthday.clone(),
        signature: r.signature.clone(),
        ex: r.ex.clone(),
        friend_verification: r.friend_verification,
        updated_ms: r.updated_ms,
    }
}

/// The profile of a registered user (empty if never set); `None` if unregistered.
pub(crate) fn profile_of(store: &Store, user: &UserId) -> Result<Option<pb::Profile>, Reject> {
    if store.account(user)?.is_none() {
        return Ok(None);
    }
    Ok(Some(profile_view(user, &store.profile(user)?.unwrap_or_default())))
}

/// Serves a read-only accounts request from committed storage.
pub(crate) fn serve(node: &Node, q: Query) -> Result<response::Result, Reject> {
    let store = &node.store;
    Ok(match q {
        Query::Exist(req) => {
            let mut accounts = Vec::new();
            for u in checks::user_ids(req.user_ids, "user_ids")? {
                let a = store.account(&u)?;
                accounts.push(pb::AccountStatus {
                    user_id: u.to_string(),
                    exists: a.is_some(),
                    disabled: a.is_some_and(|a| a.disabled),
                });
            }
            response::Result::Accounts(pb::AccountsExistResult { accounts })
        }
        Query::Profiles(req) => {
            let mut profiles = Vec::new();
            for u in checks::user_ids(req.user_ids, "user_ids")? {
                profiles.extend(profile_of(store, &u)?);
            }
            response::Result::Profiles(pb::Profiles { profiles })
        }
    })
}
