//! Per-user services on the user's owner shard: login decisions (account
//! checks, multi-device policies), presence publication, account
//! administration, profiles, presence subscriptions and status.
//!
//! Role: `hash(user)` picks one owner shard; every login of the user and every
//! write of the user's account, profile, status and subscription records runs
//! there, so logins are decided one at a time ([L-3]) and a disable cannot
//! race a login.
//!
//! Invariants: one op per user per turn (the user key is claimed; a second op
//! waits for the next turn), so reads see committed records; a kicked session
//! leaves the directory before the next login is decided; a login's session is
//! added to the directory when decided and removed again if the turn's write
//! fails.

use missive_protocol::pb::{self, push, response};
use missive_protocol::token::Role;
use missive_protocol::{DeviceId, ErrorCode, UserId};
use missive_storage::{AccountRecord, ProfileRecord, StatusRecord};

use crate::checks;
use crate::clock::now_ms;
use crate::config::LoginPolicy;
use crate::directory::{ConnRef, Presence};
use crate::error::Reject;
use crate::frames;
use crate::queries::{presence_of, profile_view};
use crate::shard::{Effect, OpKind, Shard, ShardOp, Turn};

/// Most subscribers one presence change, and most friends one profile change, is pushed to.
pub(crate) const MAX_PRESENCE_FANOUT: usize = 100_000;

/// Platform classes of the `per_class` policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Mobile,
    Pad,
    Desktop,
    Web,
}

fn class(p: pb::Platform) -> Class {
    match p {
        pb::Platform::Ios | pb::Platform::Android => Class::Mobile,
        pb::Platform::Ipad => Class::Pad,
        pb::Platform::Web => Class::Web,
        pb::Platform::Windows | pb::Platform::Mac | pb::Platform::Linux | pb::Platform::Unspecified => {
            Class::Desktop
        }
    }
}

/// The multi-device settings a login is decided with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PolicyParams {
    pub(crate) policy: LoginPolicy,
    pub(crate) web_max: usize,
    pub(crate) max_sessions: usize,
}

/// Which existing sessions (indexes into `existing`, any order) a new login
/// of `device` on `platform` ends, and why (spec 12.3).
pub(crate) fn policy_kicks(
    params: PolicyParams,
    existing: &[Presence],
    device: &DeviceId,
    platform: pb::Platform,
) -> Vec<(usize, pb::KickReason)> {
    let mut order: Vec<usize> = (0..existing.len()).collect();
    order.sort_by_key(|&i| existing[i].since_ms);
    let mut kicks = Vec::new();
    let mut kept = Vec::new();
    for &i in &order {
        let s = &existing[i];
        if &s.device == device {
            kicks.push((i, pb::KickReason::SameDevice));
            continue;
        }
        let conflict = match params.policy {
            LoginPolicy::Single => true,
            LoginPolicy::PerClass => class(s.platform) == class(platform) && class(platform) != Class::Web,
            LoginPolicy::PcWebExclusive => {
                let pc = |c: Class| matches!(c, Class::Desktop | Class::Web);
                pc(class(s.platform)) == pc(class(platform))
            }
            LoginPolicy::Multi => false,
        };
        if conflict {
            kicks.push((i, pb::KickReason::LoginElsewhere));
        } else {
            kept.push(i);
        }
    }
    // Web under per_class: keep the newest web_max - 1 existing web sessions.
    if params.policy == LoginPolicy::PerClass && class(platform) == Class::Web {
        let webs: Vec<usize> =
            kept.iter().copied().filter(|&i| class(existing[i].platform) == Class::Web).collect();
        let excess = (webs.len() + 1).saturating_sub(params.web_max);
        for &i in webs.iter().take(excess) {
            kicks.push((i, pb::KickReason::LoginElsewhere));
            kept.retain(|&k| k != i);
        }
    }
    let excess = (kept.len() + 1).saturating_sub(params.max_sessions);
    for &i in kept.iter().take(excess) {
        kicks.push((i, pb::KickReason::LoginElsewhere));
    }
    kicks
}

fn kick_effect(
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

impl Shard {
    /// Stages one per-user op (see the module docs).
    pub(crate) fn stage_user(&mut self, op: ShardOp, t: &mut Turn) -> Result<(), Reject> {
        let subject = match &op.kind {
            OpKind::ImportUser { target, .. }
            | OpKind::SetDisabled { target, .. }
            | OpKind::RevokeTokens { target } => target.clone(),
            _ => op.user.clone(),
        };
        if !t.claim(format!("u\0{subject}")) {
            t.deferred.push(op);
            return Ok(());
        }
        let reply = match &op.kind {
            OpKind::Login { platform, role, issued_at } => {
                self.stage_login(&op, *platform, *role, *issued_at, t)?;
                return Ok(());
            }
            OpKind::Logout => {
                self.push_presence(&subject, None, None, t)?;
                return Ok(());
            }
            OpKind::ImportUser { patch, .. } => self.stage_import(&subject, patch, t)?,
            OpKind::SetDisabled { disabled, reason, .. } => {
                let mut acct = self.account_of(&subject)?;
                acct.disabled = *disabled;
                acct.disabled_reason = if *disabled { reason.clone() } else { String::new() };
                t.batch.put_account(&subject, &acct);
                if *disabled {
                    let msg = if reason.is_empty() { "account disabled" } else { reason.as_str() };
                    self.kick_all(
                        &subject,
                        pb::KickReason::AccountDisabled,
                        ErrorCode::AccountDisabled,
                        msg,
                        t,
                    )?;
                }
                response::Result::Ok(pb::Ok {})
            }
            OpKind::RevokeTokens { .. } => {
                let mut acct = self.account_of(&subject)?;
                acct.revoked_through_s = now_ms() / 1000;
                t.batch.put_account(&subject, &acct);
                self.kick_all(
                    &subject,
                    pb::KickReason::TokensRevoked,
                    ErrorCode::TokenRevoked,
                    "tokens revoked",
                    t,
                )?;
                response::Result::Ok(pb::Ok {})
            }
            OpKind::SetProfile { patch } => self.stage_profile(&op, patch, t)?,
            OpKind::Subscribe { targets } => {
                let max = self.config.relations.max_subscriptions;
                let current = self.store.subscriptions(&subject, max + 1)?;
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
                    t.batch.put_subscription(&subject, u, true);
                }
                let dir = &self.shared.directory;
                let presences = targets
                    .iter()
                    .map(|u| presence_of(&self.store, dir, u))
                    .collect::<Result<Vec<_>, _>>()?;
                response::Result::Presence(pb::PresenceList { presences })
            }
            OpKind::Unsubscribe { targets } => {
                for u in targets {
                    t.batch.put_subscription(&subject, u, false);
                }
                response::Result::Ok(pb::Ok {})
            }
            OpKind::SetStatus { text } => {
                let rec = StatusRecord { text: text.clone(), changed_ms: now_ms() };
                t.batch.put_status(&subject, &rec);
                self.push_presence(&subject, Some(op.origin), Some(&rec), t)?;
                response::Result::Ok(pb::Ok {})
            }
            _ => return Err(Reject::new(ErrorCode::Internal, "not a per-user op")),
        };
        t.effects.push(Effect::Reply {
            conn: op.origin,
            request_id: op.request_id,
            frame: frames::response(op.request_id, reply),
        });
        Ok(())
    }

    fn account_of(&self, user: &UserId) -> Result<AccountRecord, Reject> {
        self.store
            .account(user)?
            .ok_or_else(|| Reject::new(ErrorCode::UserNotFound, format!("user {user} is not registered")))
    }

    fn stage_login(
        &mut self,
        op: &ShardOp,
        platform: pb::Platform,
        role: Role,
        issued_at: u64,
        t: &mut Turn,
    ) -> Result<(), Reject> {
        let user = &op.user;
        let dir = &self.shared.directory;
        let admin = role == Role::Admin;
        if !admin {
            match self.store.account(user)? {
                None if self.config.accounts.auto_register => {
                    t.batch.put_account(user, &AccountRecord { created_ms: now_ms(), ..Default::default() });
                }
                None => {
                    return Err(Reject::new(ErrorCode::AccountNotFound, "account not registered"));
                }
                Some(a) if a.disabled => {
                    let msg = if a.disabled_reason.is_empty() {
                        "account disabled".to_owned()
                    } else {
                        a.disabled_reason
                    };
                    return Err(Reject::new(ErrorCode::AccountDisabled, msg));
                }
                Some(a) if a.revoked_through_s != 0 && issued_at <= a.revoked_through_s => {
                    return Err(Reject::new(
                        ErrorCode::TokenRevoked,
                        "token revoked; log in with a new token",
                    ));
                }
                Some(_) => {}
            }
        }
        let before = dir.online(user).platforms;
        // Admin sessions are exempt from the policies (spec section 12).
        let existing: Vec<Presence> = dir.sessions(user).into_iter().filter(|s| !s.admin).collect();
        let a = &self.config.accounts;
        let params = PolicyParams {
            policy: if admin { LoginPolicy::Multi } else { a.login_policy },
            web_max: a.web_max_sessions,
            max_sessions: a.max_sessions_per_user,
        };
        for (i, reason) in policy_kicks(params, &existing, &op.device, platform) {
            let s = &existing[i];
            dir.remove(user, s.conn);
            let msg = match reason {
                pb::KickReason::SameDevice => "this device logged in again",
                _ => "logged in on another device",
            };
            t.effects.push(kick_effect(s.conn, reason, ErrorCode::Kicked, msg, Some((&op.device, platform))));
        }
        dir.add(
            user,
            Presence { conn: op.origin, device: op.device.clone(), platform, since_ms: now_ms(), admin },
        );
        t.added_sessions.push((user.clone(), op.origin));
        let sync_token =
            self.store.device(user, op.device.as_str())?.map(|d| d.sync_token).unwrap_or_default();
        t.effects.push(Effect::LoginDone { conn: op.origin, user: user.clone(), result: Ok(sync_token) });
        if !admin && dir.online(user).platforms != before {
            self.push_presence(user, Some(op.origin), None, t)?;
        }
        Ok(())
    }

    /// Ends every session of `user` with `Kicked{reason}` then `Close{code}`.
    fn kick_all(
        &mut self,
        user: &UserId,
        reason: pb::KickReason,
        code: ErrorCode,
        message: &str,
        t: &mut Turn,
    ) -> Result<(), Reject> {
        let dir = &self.shared.directory;
        let sessions = dir.sessions(user);
        if sessions.is_empty() {
            return Ok(());
        }
        for s in sessions {
            dir.remove(user, s.conn);
            t.effects.push(kick_effect(s.conn, reason, code, message, None));
        }
        self.push_presence(user, None, None, t)
    }

    /// Pushes `user`'s current presence to its subscribers and its own devices
    /// (except `exclude`). `status` overrides the stored status (staged now).
    fn push_presence(
        &self,
        user: &UserId,
        exclude: Option<ConnRef>,
        status: Option<&StatusRecord>,
        t: &mut Turn,
    ) -> Result<(), Reject> {
        let mut p = presence_of(&self.store, &self.shared.directory, user)?;
        if let Some(s) = status {
            p.status_text = s.text.clone();
            p.changed_ms = p.changed_ms.max(s.changed_ms);
        }
        let mut users: Vec<UserId> = self
            .store
            .subscribers(user, MAX_PRESENCE_FANOUT)?
            .into_iter()
            .filter_map(|s| UserId::new(s).ok())
            .collect();
        users.push(user.clone());
        t.effects.push(Effect::Fanout {
            users: users.into(),
            exclude,
            frame: frames::push(push::Event::Presence(p)),
        });
        Ok(())
    }

    fn stage_import(
        &mut self,
        user: &UserId,
        patch: &pb::ProfilePatch,
        t: &mut Turn,
    ) -> Result<response::Result, Reject> {
        if self.store.account(user)?.is_some() {
            return Err(Reject::new(ErrorCode::AccountExists, format!("user {user} is already registered")));
        }
        let now = now_ms();
        t.batch.put_account(user, &AccountRecord { created_ms: now, ..Default::default() });
        let mut rec = ProfileRecord::default();
        if apply_patch(&mut rec, patch, &self.config.relations)? {
            rec.updated_ms = now;
            rec.feed_version = self.clock.alloc(&mut t.versions);
            t.batch.put_profile(user, 0, &rec);
        }
        Ok(response::Result::Profile(profile_view(user, &rec)))
    }

    fn stage_profile(
        &mut self,
        op: &ShardOp,
        patch: &pb::ProfilePatch,
        t: &mut Turn,
    ) -> Result<response::Result, Reject> {
        let user = &op.user;
        let mut rec = self.store.profile(user)?.unwrap_or_default();
        let old = rec.feed_version;
        if !apply_patch(&mut rec, patch, &self.config.relations)? {
            return Ok(response::Result::Profile(profile_view(user, &rec)));
        }
        rec.updated_ms = now_ms();
        rec.feed_version = self.clock.alloc(&mut t.versions);
        t.batch.put_profile(user, old, &rec);
        // Users who list the caller as a friend see the change in their feeds, and live.
        let mut users = Vec::new();
        for (peer, _) in
            self.store.rel_page(user, missive_storage::RelKind::FriendOf, "", MAX_PRESENCE_FANOUT)?
        {
            let Ok(friend) = UserId::new(peer) else { continue };
            let old = self.store.profile_feed_version(&friend, user)?;
            let v = self.clock.alloc(&mut t.versions);
            t.batch.move_profile_feed(&friend, user, old, v);
            users.push(friend);
        }
        users.push(user.clone());
        let view = profile_view(user, &rec);
        t.effects.push(Effect::Fanout {
            users: users.into(),
            exclude: Some(op.origin),
            frame: frames::push(push::Event::Profile(view.clone())),
        });
        Ok(response::Result::Profile(view))
    }
}

/// Applies a (checked) patch; returns whether anything changed.
fn apply_patch(
    rec: &mut ProfileRecord,
    p: &pb::ProfilePatch,
    r: &crate::config::Relations,
) -> Result<bool, Reject> {
    let before = rec.clone();
    if let Some(v) = &p.nickname {
        rec.nickname = v.clone();
    }
    if let Some(v) = &p.avatar_url {
        rec.avatar_url = v.clone();
    }
    if let Some(v) = p.gender {
        rec.gender = v;
    }
    if let Some(v) = &p.birthday {
        rec.birthday = v.clone();
    }
    if let Some(v) = &p.signature {
        rec.signature = v.clone();
    }
    if let Some(v) = p.friend_verification {
        rec.friend_verification = v;
    }
    checks::merge_ex(&mut rec.ex, &p.ex, r, "ex")?;
    Ok(*rec != before)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: u64, device: &str, platform: pb::Platform) -> Presence {
        Presence {
            conn: ConnRef { worker: 0, id },
            device: DeviceId::new(device).expect("valid"),
            platform,
            since_ms: id,
            admin: false,
        }
    }

    fn kicked(policy: LoginPolicy, existing: &[Presence], device: &str, platform: pb::Platform) -> Vec<u64> {
        let params = PolicyParams { policy, web_max: 2, max_sessions: 5 };
        let mut ids: Vec<u64> =
            policy_kicks(params, existing, &DeviceId::new(device).expect("valid"), platform)
                .into_iter()
                .map(|(i, _)| existing[i].conn.id)
                .collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn policies_pick_the_documented_sessions() {
        use pb::Platform::*;
        let s = [session(1, "a", Ios), session(2, "b", Windows), session(3, "c", Web), session(4, "d", Ipad)];
        assert_eq!(kicked(LoginPolicy::Multi, &s, "e", Android), Vec::<u64>::new());
        assert_eq!(kicked(LoginPolicy::Single, &s, "e", Android), vec![1, 2, 3, 4]);
        assert_eq!(kicked(LoginPolicy::PerClass, &s, "e", Android), vec![1]);
        assert_eq!(kicked(LoginPolicy::PerClass, &s, "e", Mac), vec![2]);
        assert_eq!(kicked(LoginPolicy::PerClass, &s, "e", Ipad), vec![4]);
        assert_eq!(kicked(LoginPolicy::PerClass, &s, "e", Web), Vec::<u64>::new());
        assert_eq!(kicked(LoginPolicy::PcWebExclusive, &s, "e", Linux), vec![2, 3]);
        assert_eq!(kicked(LoginPolicy::PcWebExclusive, &s, "e", Android), vec![1, 4]);
        // Same device always; web beyond web_max (2) kicks the oldest web session.
        assert_eq!(kicked(LoginPolicy::Multi, &s, "c", Web), vec![3]);
        let webs = [session(1, "a", Web), session(2, "b", Web)];
        assert_eq!(kicked(LoginPolicy::PerClass, &webs, "c", Web), vec![1]);
        // max_sessions (5) kicks the oldest beyond.
        let many: Vec<Presence> = (1..=5).map(|i| session(i, &format!("d{i}"), Linux)).collect();
        assert_eq!(kicked(LoginPolicy::Multi, &many, "x", Linux), vec![1]);
    }
}
