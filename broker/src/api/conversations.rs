//! REST endpoints: conversations (spec/openapi.yaml, tag `conversations`).
//!
//! Role: a user's conversation list (their `uconv` records, read from
//! committed storage), mark read and delete (hide + clear history) acting as
//! the user, so the same checks and pushes apply as for the user's devices.
//!
//! Invariants: the list is in conversation-id order, paged by an opaque
//! cursor (the last conversation id); `conv_id` path segments arrive
//! percent-decoded (`p%3Aa%3Ab` is `p:a:b`) and are validated by the protocol
//! checks (400 INVALID_CONV_ID).

use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use missive_protocol::ConvId;
use missive_protocol::pb::{self, request::Op};
use serde::{Deserialize, Serialize};

use super::blocking;
use super::relations::ListQuery;
use super::users::{Empty, registered};
use super::{Api, ApiError, ApiResult, Body, Cursor, Page, Path, Query, expect_ok, page_limit};

pub(crate) fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/v1/users/{user_id}/conversations", get(list))
        .route("/v1/users/{user_id}/conversations/{conv_id}", axum::routing::delete(remove))
        .route("/v1/users/{user_id}/conversations/{conv_id}/read", post(mark_read))
}

#[derive(Debug, Serialize)]
struct ConvJson {
    conv_id: String,
    /// Highest seq in the conversation's log.
    max_seq: u64,
    read_seq: u64,
    cleared_seq: u64,
    /// `max_seq - max(read_seq, cleared_seq)`.
    unread: u64,
    pinned: bool,
    muted: bool,
    hidden: bool,
    mention_seq: u64,
}

/// `GET /v1/users/{user_id}/conversations`: the user's conversation records.
async fn list(
    State(api): State<Arc<Api>>,
    Path(user_id): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Page<ConvJson>>> {
    let user = api.user(&user_id, "user_id")?;
    let limit = page_limit(q.limit)?;
    let after = match Cursor::parse(q.cursor.as_deref())? {
        None => String::new(),
        Some(c) => String::from_utf8(c.0)
            .ok()
            .filter(|s| ConvId::parse(s).is_ok())
            .ok_or_else(|| ApiError::invalid("cursor: not a cursor this API returned"))?,
    };
    let store = api.node.store.clone();
    let (items, next) = blocking(move || {
        let mut rows = store.user_convs(&user, &after, limit + 1)?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = if more {
            rows.last().map(|(c, _)| Cursor::encode(c.as_bytes())).unwrap_or_default()
        } else {
            String::new()
        };
        let mut items = Vec::with_capacity(rows.len());
        for (conv_id, r) in rows {
            let max_seq = match ConvId::parse(&conv_id) {
                Ok(c) => store.max_seq(&c)?.0,
                Err(_) => 0,
            };
            items.push(ConvJson {
                conv_id,
                max_seq,
                read_seq: r.read_seq,
                cleared_seq: r.cleared_seq,
                unread: max_seq.saturating_sub(r.read_seq.max(r.cleared_seq)),
                pinned: r.pinned,
                muted: r.muted,
                hidden: r.hidden,
                mention_seq: r.mention_seq,
            });
        }
        Ok((items, next))
    })
    .await?;
    Ok(Json(Page { items, next_cursor: next }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadBody {
    seq: u64,
}

/// `POST /v1/users/{user_id}/conversations/{conv_id}/read`: as the user (MarkRead).
async fn mark_read(
    State(api): State<Arc<Api>>,
    Path((user_id, conv_id)): Path<(String, String)>,
    Body(b): Body<ReadBody>,
) -> ApiResult<Json<Empty>> {
    let user = api.user(&user_id, "user_id")?;
    registered(&api, &user).await?;
    expect_ok(api.call(&user, false, Op::MarkRead(pb::MarkRead { conv_id, seq: b.seq })).await)?;
    Ok(Json(Empty {}))
}

/// `DELETE /v1/users/{user_id}/conversations/{conv_id}`: as the user, clears
/// the history up to the latest message, then hides the conversation (a new
/// message shows it again).
async fn remove(
    State(api): State<Arc<Api>>,
    Path((user_id, conv_id)): Path<(String, String)>,
) -> ApiResult<Json<Empty>> {
    let user = api.user(&user_id, "user_id")?;
    registered(&api, &user).await?;
    let clear = Op::ClearHistory(pb::ClearHistory { conv_id: conv_id.clone(), up_to_seq: 0 });
    expect_ok(api.call(&user, false, clear).await)?;
    let hide = Op::UpdateConversation(pb::UpdateConversation {
        conv_id,
        pinned: None,
        muted: None,
        hidden: Some(true),
    });
    expect_ok(api.call(&user, false, hide).await)?;
    Ok(Json(Empty {}))
}
