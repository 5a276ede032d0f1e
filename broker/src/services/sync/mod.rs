//! The sync service: conversations (and relations, profiles, settings)
//! changed since a sync token.
//!
//! Role: [`serve`] runs on the connection's own worker and reads only
//! committed state. The page then goes to the user's OWNER shard
//! ([`SyncOp::RecordToken`]), which records its token as the device's last
//! sync token and answers the request with the page after its turn's write:
//! the I/O loop never writes, the device record keeps one writer, and the
//! write is group-committed with the owner's other writes.
//!
//! Invariants: a token encodes a feed version plus a MAC binding it to the
//! user (`node::token`), so another user's token is refused; the returned
//! token never exceeds the version clock's watermark, so no change is skipped.

use missive_protocol::pb;
use missive_protocol::{ConvId, ErrorCode, UserId};
use missive_storage::{DeviceRecord, FeedRecord};
use prost::Message as _;

use crate::error::Reject;
use crate::node::Node;
use crate::node::clock::roam_floor_ms;
use crate::services::conversations::state::state_from_parts;
use crate::services::{Services, Undo, accounts, groups, messages, relations};
use crate::shard::{Answer, ShardOp, Staged, Turn};

/// A sync op for the user's owner shard.
#[derive(Debug)]
pub(crate) enum SyncOp {
    /// Record the page's token as the device's last sync token, then answer
    /// the request with the page (so [Y-8] holds: once the client has the
    /// page, a new session of the device gets its token in `HelloOk`).
    RecordToken { page: Box<pb::SyncResult> },
}

/// Stages a [`SyncOp`] (owner: the user).
pub(crate) fn stage(
    _s: &mut Services,
    op: ShardOp<SyncOp>,
    t: &mut Turn<Undo>,
) -> Result<Staged<SyncOp>, Reject> {
    let SyncOp::RecordToken { page } = op.op;
    let rec = DeviceRecord { sync_token: page.sync_token.clone(), platform: 0, last_login_ms: t.now_ms };
    t.batch.put_device(&op.user, op.device.as_str(), &rec);
    Ok(Staged::Done(Answer::Response(pb::response::Result::Sync(*page))))
}

/// Serves one SyncRequest.
pub(crate) fn serve(
    node: &Node,
    user: &UserId,
    req: &pb::SyncRequest,
    now_ms: u64,
) -> Result<pb::SyncResult, Reject> {
    let (store, clock, key) = (&node.store, &node.clock, &node.token_key);
    let limits = &node.config.limits;
    let floor_ms = roam_floor_ms(now_ms, node.config.history.roam_days);
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
    // [N-2]: a sync from "" carries the user's own profile (never set: an
    // empty one, 12.2) first; it counts against the page's `limit`.
    let fresh = req.sync_token.is_empty();
    let limit = if fresh { limit.saturating_sub(1) } else { limit };
    let mut items = store.feed(user, since, watermark, limit + 1)?;
    // Groups (read diffusion): no feed entry is written per group message;
    // each joined group has one version record moved by every message and
    // tip. Groups whose version is in (since, watermark] join the page, in
    // version order with the feed entries: O(joined groups) reads per sync.
    let cap = node.config.groups.max_joined + 1;
    for g in store.joined_groups(user, "", cap)? {
        let v = store.group_version(&g)?;
        if v > since && v <= watermark {
            items.push((v, FeedRecord { conv_id: format!("g:{g}"), ..Default::default() }));
        }
    }
    // The broadcast conversation (read diffusion, spec [AM-2]): one version
    // record for every user, O(1) per sync.
    let all = ConvId::broadcast_all();
    let v = store.broadcast_version(&all)?;
    if v > since && v <= watermark {
        items.push((v, FeedRecord { conv_id: all.to_string(), ..Default::default() }));
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
    if fresh {
        profiles.push(accounts::profile_view(user, &store.profile(user)?.unwrap_or_default()));
    }
    for (i, (version, item)) in items.iter().enumerate() {
        if item.conv_id.is_empty() {
            // Relation, profile or settings entries are small: no byte check needed.
            last_included = *version;
            if !item.relation_peer.is_empty() {
                if let Ok(peer) = UserId::new(item.relation_peer.as_str()) {
                    relations.push(relations::relation_of(store, user, &peer)?);
                }
            } else if !item.profile_user.is_empty() {
                if fresh && item.profile_user == user.as_str() {
                    // Already first in this page.
                } else if let Ok(subject) = UserId::new(item.profile_user.as_str())
                    && let Some(p) = accounts::profile_of(store, &subject)?
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
            let mut state = groups::views::stored_state(store, user, &conv, floor_ms)?;
            if let Some(m) = state.as_mut().and_then(|s| s.last_message.as_mut()) {
                own_tombstone(store, user, &conv, m)?;
            }
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
        if conv.kind() == missive_protocol::ConvKind::Broadcast {
            let state = messages::broadcast::stored_state(store, user, &conv, floor_ms)?;
            let len = state.encoded_len() + 8;
            if bytes_used + len > byte_budget && i > 0 {
                more = true;
                break;
            }
            bytes_used += len;
            last_included = *version;
            conversations.push(state);
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
                .filter(|m| m.server_time_ms >= floor_ms)
        } else {
            None
        };
        let mut last = last;
        if let Some(m) = last.as_mut() {
            own_tombstone(store, user, &conv, m)?;
        }
        let mut state = state_from_parts(&conv, max_seq, &rec, peer_read, last);
        state.update_seq = store.update_seq(&conv)?;
        messages::flags::view_stored(store, &conv, &mut state)?;
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
    Ok(pb::SyncResult { conversations, settings, sync_token, more, relations, profiles })
}

/// A last message the user deleted for themselves is their tombstone
/// ([DL-2]): one point read per conversation of the page.
fn own_tombstone(
    store: &missive_storage::Store,
    user: &UserId,
    conv: &ConvId,
    m: &mut pb::Message,
) -> Result<(), Reject> {
    if store.is_deleted_for(conv, user, m.seq)? {
        messages::life::tombstone(m);
    }
    Ok(())
}
