//! The translate service: `TranslateMessage` (spec 18.10, [TR-1]..[TR-9]).
//!
//! Role, in three places, none of which waits for HTTP on a worker:
//! 1. [`check`] (route): the language tag and the conversation id; no
//!    provider configured → `4208`;
//! 2. [`lookup`] (query pool, committed storage): the caller may read the
//!    message (participant, readable window), it is a text that was not
//!    recalled or deleted; a cached translation of its current form
//!    (same `edit_version`) answers at once (`cached = true`); otherwise a
//!    [`Job`] goes to the provider (`hooks::translate`, on the webhook
//!    runtime);
//! 3. [`stage`] (the conversation's owner shard): the provider's text is
//!    stored in the cache (`ops/tr`) in the owner's turn and the request is
//!    answered after that write (`cached = false`).
//!
//! Invariants: the cache has one record per (conversation, seq, language),
//! written only by the conversation's owner shard, holding the
//! `edit_version` it translated: an edit makes it stale (a miss), and the
//! next translation overwrites it. A provider failure caches nothing.

use missive_protocol::pb::{self, content, response};
use missive_protocol::{ConvId, ConvKind, ErrorCode, Seq, UserId};
use missive_storage::{OpsSpace, Store};
use prost::Message as _;
use serde::{Deserialize, Serialize};

use crate::error::Reject;
use crate::node::clock::roam_floor_ms;
use crate::node::{Node, OwnerKey};
use crate::services::{Services, Undo, checks, groups, messages};
use crate::shard::{Answer, ShardOp, Staged, Turn};

/// Longest language tag, bytes ([TR-1]).
pub(crate) const MAX_LANGUAGE_BYTES: usize = 16;

/// A checked `TranslateMessage` (served by the query pool).
#[derive(Debug, Clone)]
pub(crate) struct Lookup {
    pub(crate) conv: ConvId,
    pub(crate) seq: u64,
    pub(crate) language: String,
}

/// A translation the provider must make.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub(crate) conv: ConvId,
    pub(crate) seq: u64,
    pub(crate) language: String,
    /// The message's `edit_version` whose text this is.
    pub(crate) edit_version: u32,
    pub(crate) text: String,
}

/// What [`lookup`] found.
#[derive(Debug)]
pub(crate) enum Found {
    Cached(pb::Translation),
    Call(Job),
}

/// The owner op: store the provider's translation and answer with it.
#[derive(Debug)]
pub(crate) struct TranslateOp {
    pub(crate) job: Job,
    pub(crate) translated: String,
}

impl TranslateOp {
    pub(crate) fn owner(&self) -> OwnerKey<'_> {
        OwnerKey::Conv(&self.job.conv)
    }
}

/// The cached record (`ops/tr` value).
#[derive(Debug, Serialize, Deserialize)]
struct Cached {
    /// The `edit_version` of the message that was translated.
    v: u32,
    text: String,
}

/// `conv 00 seq:be64 ‖ language`.
fn cache_id(conv: &ConvId, seq: u64, language: &str) -> Vec<u8> {
    let mut id = Vec::with_capacity(conv.as_str().len() + 9 + language.len());
    id.extend_from_slice(conv.as_str().as_bytes());
    id.push(0);
    id.extend_from_slice(&seq.to_be_bytes());
    id.extend_from_slice(language.as_bytes());
    id
}

/// Most cached languages of one message removed with it ([TR-4]); a message
/// has one entry per language ever asked for, far fewer in practice.
const FORGET_MAX: usize = 1024;

/// Removes the cached translations of (`conv`, `seq`): a recall or a delete
/// for everyone takes them with the content ([TR-4]).
pub(crate) fn forget(store: &Store, conv: &ConvId, seq: u64, t: &mut Turn<Undo>) -> Result<(), Reject> {
    let prefix = cache_id(conv, seq, "");
    for (id, _) in store.ops_scan(OpsSpace::Translation, &prefix, None, FORGET_MAX)? {
        t.batch.delete_ops(OpsSpace::Translation, &id);
    }
    Ok(())
}

/// Route-side checks of `TranslateMessage` ([TR-1], [TR-2]).
pub(crate) fn check(node: &Node, user: &UserId, req: pb::TranslateMessage) -> Result<Lookup, Reject> {
    let lang = &req.language;
    if lang.is_empty()
        || lang.len() > MAX_LANGUAGE_BYTES
        || !lang.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(checks::invalid(format!(
            "language: 1..={MAX_LANGUAGE_BYTES} bytes of A-Z, a-z, 0-9 and '-' (e.g. \"en\", \"zh-Hans\")"
        )));
    }
    let conv = checks::conversation(user, &req.conv_id)?;
    if node.config.translate.url.is_none() {
        return Err(Reject::new(
            ErrorCode::TranslationDisabled,
            "translation is off on this server (no translate.url)",
        ));
    }
    Ok(Lookup { conv, seq: req.seq, language: req.language })
}

fn not_found(seq: u64) -> Reject {
    Reject::new(ErrorCode::MessageNotFound, format!("no message {seq} you may read in this conversation"))
}

/// The caller's readable window of `conv`: (lowest, highest) readable seq.
fn window(store: &Store, user: &UserId, conv: &ConvId) -> Result<(u64, u64), Reject> {
    match conv.kind() {
        ConvKind::Group => {
            let not_participant =
                || Reject::new(ErrorCode::NotParticipant, "you are not a member of this group");
            let group = conv.group_id().ok_or_else(not_participant)?;
            let info = store.group(&group)?.ok_or_else(not_participant)?;
            let member = store.group_member(&group, user.as_str())?;
            let departed = if member.is_none() { store.group_departed(&group, user.as_str())? } else { None };
            let who = match (&member, &departed) {
                (Some(m), _) => groups::views::Membership::Member(m),
                (None, Some(d)) => groups::views::Membership::Departed(d),
                (None, None) => return Err(not_participant()),
            };
            let rec = store.user_conv(user, conv)?.unwrap_or_default();
            let max_seq = store.max_seq(conv)?.0;
            Ok(groups::views::window(&info, who, &rec, max_seq))
        }
        ConvKind::Broadcast => {
            let (max, min) = messages::broadcast::window(store, user, conv)?;
            Ok((min, max))
        }
        _ => {
            // The route checked that the caller is in the `p:` id.
            let rec = store.user_conv(user, conv)?.unwrap_or_default();
            Ok((rec.cleared_seq + 1, store.max_seq(conv)?.0))
        }
    }
}

/// Serves a [`Lookup`] of `user` from committed storage (query pool).
pub(crate) fn lookup(node: &Node, user: &UserId, l: Lookup, now_ms: u64) -> Result<Found, Reject> {
    let store = &node.store;
    let (min, max) = window(store, user, &l.conv)?;
    if l.seq == 0 || l.seq < min || l.seq > max {
        return Err(not_found(l.seq));
    }
    let Some(bytes) = store.message(&l.conv, Seq(l.seq))? else { return Err(not_found(l.seq)) };
    let m = pb::Message::decode(bytes.as_slice())
        .map_err(|e| Reject::new(ErrorCode::Internal, format!("stored message undecodable: {e}")))?;
    if m.server_time_ms < roam_floor_ms(now_ms, node.config.history.roam_days) {
        return Err(not_found(l.seq));
    }
    if m.recalled.is_some() || m.deleted {
        return Err(Reject::new(ErrorCode::MessageRecalled, "the message was recalled or deleted"));
    }
    let text = match m.content.and_then(|c| c.body) {
        Some(content::Body::Text(t)) => t.text,
        _ => {
            return Err(Reject::new(ErrorCode::UnsupportedContent, "only text messages can be translated"));
        }
    };
    let id = cache_id(&l.conv, l.seq, &l.language);
    if let Some(raw) = store.ops_get(OpsSpace::Translation, &id)?
        && let Ok(c) = serde_json::from_slice::<Cached>(&raw)
        && c.v == m.edit_version
    {
        return Ok(Found::Cached(pb::Translation {
            conv_id: l.conv.to_string(),
            seq: l.seq,
            language: l.language,
            text: c.text,
            cached: true,
        }));
    }
    Ok(Found::Call(Job {
        conv: l.conv,
        seq: l.seq,
        language: l.language,
        edit_version: m.edit_version,
        text,
    }))
}

/// Stores the provider's translation (owner shard) and answers with it.
pub(crate) fn stage(
    _s: &mut Services,
    op: ShardOp<TranslateOp>,
    t: &mut Turn<Undo>,
) -> Result<Staged<TranslateOp>, Reject> {
    let TranslateOp { job, translated } = &op.op;
    let rec = Cached { v: job.edit_version, text: translated.clone() };
    let value = serde_json::to_vec(&rec).map_err(|e| Reject::new(ErrorCode::Internal, e.to_string()))?;
    t.batch.put_ops(OpsSpace::Translation, &cache_id(&job.conv, job.seq, &job.language), &value);
    Ok(Staged::Done(Answer::Response(response::Result::Translation(pb::Translation {
        conv_id: job.conv.to_string(),
        seq: job.seq,
        language: job.language.clone(),
        text: translated.clone(),
        cached: false,
    }))))
}
