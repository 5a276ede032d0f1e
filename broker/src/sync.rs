//! The sync service: conversations changed since a sync token.
//!
//! Runs on the connection's own worker and reads only committed state from
//! storage. A token encodes a feed version plus a MAC binding it to the user,
//! so a token of another user (or garbage) is refused. The returned token never
//! exceeds the [`VersionClock`](crate::clock::VersionClock) watermark, so no change is ever skipped.

use hmac::{Hmac, Mac};
use missive_protocol::pb;
use missive_protocol::{ConvId, DeviceId, ErrorCode, UserId};
use missive_storage::{DeviceRecord, FeedRecord};
use prost::Message as _;
use sha2::Sha256;

use crate::Shared;
use crate::clock::{now_ms, roam_floor_ms};
use crate::error::Reject;
use crate::queries::{profile_of, relation_of};
use crate::shard::state_from_parts;

/// Key for sync-token MACs, derived from the shared secret.
#[derive(Clone)]
pub(crate) struct TokenKey([u8; 32]);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    pub(crate) fn derive(secret: &str) -> Self {
        let mut m = mac_with(secret.as_bytes());
        m.update(b"missive sync token key v1");
        let mut out = [0u8; 32];
        out.copy_from_slice(&m.finalize().into_bytes());
        Self(out)
    }

    fn tag(&self, user: &UserId, version: u64) -> String {
        let mut m = mac_with(&self.0);
        m.update(user.as_str().as_bytes());
        m.update(&version.to_be_bytes());
        hex::encode(&m.finalize().into_bytes()[..8])
    }

    /// Formats a token: `{version}.{tag}`.
    pub(crate) fn make(&self, user: &UserId, version: u64) -> String {
        format!("{version}.{}", self.tag(user, version))
    }

    /// Parses a token of `user`; "" is version 0.
    pub(crate) fn parse(&self, user: &UserId, token: &str) -> Result<u64, Reject> {
        if token.is_empty() {
            return Ok(0);
        }
        let bad = || {
            Reject::new(ErrorCode::InvalidSyncToken, "sync token not issued for this user; sync from \"\"")
        };
        let (v, tag) = token.split_once('.').ok_or_else(bad)?;
        let version: u64 = v.parse().map_err(|_| bad())?;
        if self.tag(user, version) != tag {
            return Err(bad());
        }
        Ok(version)
    }
}

fn mac_with(key: &[u8]) -> Hmac<Sha256> {
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts any key length"),
    }
}

/// Serves one SyncRequest.
pub(crate) fn serve(
    shared: &Shared,
    user: &UserId,
    device: &DeviceId,
    req: &pb::SyncRequest,
) -> Result<pb::SyncResult, Reject> {
    let (store, clock, key) = (&shared.store, &shared.clock, &shared.token_key);
    let limits = &shared.config.limits;
    let roam_days = shared.config.history.roam_days;
    let since = key.parse(user, &req.sync_token)?;
    let limit =
        if req.limit == 0 { limits.sync_page_default } else { req.limit.min(limits.sync_page_max) } as usize;
    let watermark = clock.watermark();
    if since > watermark {
        return Err(Reject::new(
            ErrorCode::InvalidSyncToken,
            "sync token is ahead of the server; sync from \"\"",
        ));
    }
    let mut items = store.feed(user, since, watermark, limit + 1)?;
    // Groups (read diffusion): no feed entry is written per group message;
    // each joined group has one version record moved by every message and
    // tip. Groups whose version is in (since, watermark] join the page, in
    // version order with the feed entries: O(joined groups) reads per sync.
    let cap = shared.config.groups.max_joined + 1;
    for g in store.joined_groups(user, "", cap)? {
        let v = store.group_version(&g)?;
        if v > since && v <= watermark {
            items.push((v, FeedRecord { conv_id: format!("g:{g}"), ..Default::default() }));
        }
    }
    items.sort_by_key(|(v, _)| *v);
    let mut seen = std::collections::HashSet::new();
    items.retain(|(_, r)| r.conv_id.is_empty() || seen.insert(r.conv_id.clone()));
    let mut more = items.len() > limit;
    items.truncate(limit);
    // A page also stops before its frame could exceed the frame limit (each
    // state carries a last message of up to max_content_bytes).
    let byte_budget = (limits.max_frame_size as usize).saturating_sub(64 * 1024);
    let mut bytes_used = 0;
    let mut last_included = since;
    let mut conversations = Vec::with_capacity(items.len());
    let mut settings = None;
    let mut relations = Vec::new();
    let mut profiles = Vec::new();
    for (i, (version, item)) in items.iter().enumerate() {
        if item.conv_id.is_empty() {
            // Relation, profile or settings entries are small: no byte check needed.
            last_included = *version;
            if !item.relation_peer.is_empty() {
                if let Ok(peer) = UserId::new(item.relation_peer.as_str()) {
                    relations.push(relation_of(store, user, &peer)?);
                }
            } else if !item.profile_user.is_empty() {
                if let Ok(subject) = UserId::new(item.profile_user.as_str())
                    && let Some(p) = profile_of(store, &subject)?
                {
                    profiles.push(p);
                }
            } else {
                settings = Some(pb::UserSettings { global_dnd: store.settings(user)?.global_dnd });
            }
            continue;
        }
        let Ok(conv) = ConvId::parse(&item.conv_id) else {
            last_included = *version;
            continue;
        };
        if conv.kind() == missive_protocol::ConvKind::Group {
            let state = crate::groups::stored_state(store, user, &conv, roam_floor_ms(roam_days))?;
            let len = state.as_ref().map_or(0, |s| s.encoded_len() + 8);
            if bytes_used + len > byte_budget && i > 0 {
                more = true;
                break;
            }
            bytes_used += len;
            last_included = *version;
            conversations.extend(state);
            continue;
        }
        let rec = store.user_conv(user, &conv)?.unwrap_or_default();
        let max_seq = store.max_seq(&conv)?.0;
        let peer_read = match conv.peer_of(user) {
            Some(peer) => store.user_conv(&peer, &conv)?.map(|r| r.read_seq).unwrap_or(0),
            None => 0,
        };
        let last = if max_seq > rec.cleared_seq {
            store
                .message(&conv, missive_protocol::Seq(max_seq))?
                .and_then(|b| pb::Message::decode(b.as_slice()).ok())
                .filter(|m| m.server_time_ms >= roam_floor_ms(roam_days))
        } else {
            None
        };
        let state = state_from_parts(&conv, max_seq, &rec, peer_read, last);
        let len = state.encoded_len() + 8;
        if bytes_used + len > byte_budget && i > 0 {
            more = true;
            break;
        }
        bytes_used += len;
        last_included = *version;
        conversations.push(state);
    }
    let upto = if more { last_included } else { watermark };
    if req.sync_token.is_empty() && settings.is_none() {
        settings = Some(pb::UserSettings { global_dnd: store.settings(user)?.global_dnd });
    }
    let sync_token = key.make(user, upto);
    let mut b = store.batch();
    b.put_device(
        user,
        device.as_str(),
        &DeviceRecord { sync_token: sync_token.clone(), platform: 0, last_login_ms: now_ms() },
    );
    store.write(b)?;
    Ok(pb::SyncResult { conversations, settings, sync_token, more, relations, profiles })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_bind_user_and_version() {
        let k = TokenKey::derive("0123456789abcdef");
        let alice = UserId::new("alice").expect("valid");
        let bob = UserId::new("bob").expect("valid");
        let t = k.make(&alice, 42);
        assert_eq!(k.parse(&alice, &t).map_err(|r| r.code), Ok(42));
        assert_eq!(k.parse(&bob, &t).map_err(|r| r.code), Err(ErrorCode::InvalidSyncToken));
        assert_eq!(k.parse(&alice, "").map_err(|r| r.code), Ok(0));
        assert_eq!(k.parse(&alice, "43.deadbeef").map_err(|r| r.code), Err(ErrorCode::InvalidSyncToken));
        assert_eq!(k.parse(&alice, "junk").map_err(|r| r.code), Err(ErrorCode::InvalidSyncToken));
    }
}
