//! REST endpoints: relations (spec/openapi.yaml, tag `relations`).
//!
//! Role: friends (import, admin add, delete, list) and blacklists (add,
//! remove, list, check). Admin adds are the protocol's `ImportFriendship`
//! (no verification, limits apply); everything else acts as the user, so it
//! passes the same checks and pushes as the user's own request.
//!
//! Invariants: ids are validated before any call (400); a delete removes the
//! friendship on both sides unless `both_sides=false`; list cursors are the
//! protocol's cursors (the last user id of the page) wrapped as opaque
//! base64url strings.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::{delete, post};
use axum::{Json, Router};
use missive_protocol::pb::{self, request::Op, response};
use serde::{Deserialize, Serialize};

use super::users::{Empty, UserIdsBody, registered, unexpected, user_ids};
use super::{Api, ApiError, ApiResult, Body, Cursor, Page, Path, Query, expect_ok, page_limit};

/// Most pairs per import call.
pub(crate) const MAX_PAIRS: usize = 100;

pub(crate) fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/v1/friends/import", post(import))
        .route("/v1/users/{user_id}/friends", post(add).get(list_friends))
        .route("/v1/users/{user_id}/friends/{peer_id}", delete(delete_friend))
        .route("/v1/users/{user_id}/blacklist", post(block).get(list_blacklist))
        .route("/v1/users/{user_id}/blacklist/check", post(check).delete(unblock_check))
        .route("/v1/users/{user_id}/blacklist/{peer_id}", delete(unblock))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportBody {
    pairs: Vec<Pair>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Pair {
    user_a: String,
    user_b: String,
}

#[derive(Debug, Serialize)]
struct PairResult {
    user_a: String,
    user_b: String,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

#[derive(Debug, Serialize)]
struct PairResults {
    results: Vec<PairResult>,
}

async fn import_pair(api: &Api, a: String, b: String) -> ApiResult<()> {
    let system = api.system_user()?;
    expect_ok(
        api.call(&system, true, Op::ImportFriendship(pb::ImportFriendship { user_a: a, user_b: b })).await,
    )
    .map(|_| ())
}

/// `POST /v1/friends/import`: one result per pair, in order; a failing pair
/// does not stop the others.
async fn import(State(api): State<Arc<Api>>, Body(b): Body<ImportBody>) -> ApiResult<Json<PairResults>> {
    if b.pairs.is_empty() || b.pairs.len() > MAX_PAIRS {
        return Err(ApiError::invalid(format!(
            "pairs: 1..={MAX_PAIRS} entries required, got {}",
            b.pairs.len()
        )));
    }
    let mut results = Vec::with_capacity(b.pairs.len());
    for p in b.pairs {
        let r = import_pair(&api, p.user_a.clone(), p.user_b.clone()).await;
        let (ok, code, message) = match r {
            Ok(()) => (true, None, None),
            Err(e) => (false, Some(e.code as u32), Some(e.message)),
        };
        results.push(PairResult { user_a: p.user_a, user_b: p.user_b, ok, code, message });
    }
    Ok(Json(PairResults { results }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerBody {
    user_id: String,
}

/// `POST /v1/users/{user_id}/friends`: admin add, both ways, no verification.
async fn add(
    State(api): State<Arc<Api>>,
    Path(user_id): Path<String>,
    Body(b): Body<PeerBody>,
) -> ApiResult<Json<Empty>> {
    let user = api.user(&user_id, "user_id")?;
    let peer = api.user(&b.user_id, "body user_id")?;
    import_pair(&api, user.to_string(), peer.to_string()).await?;
    Ok(Json(Empty {}))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteQuery {
    both_sides: Option<bool>,
}

/// `DELETE /v1/users/{user_id}/friends/{peer_id}`: as the user; both sides
/// unless `both_sides=false`.
async fn delete_friend(
    State(api): State<Arc<Api>>,
    Path((user_id, peer_id)): Path<(String, String)>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<Json<Empty>> {
    let user = api.user(&user_id, "user_id")?;
    let peer = api.user(&peer_id, "peer_id")?;
    registered(&api, &user).await?;
    let op = Op::DeleteFriend(pb::DeleteFriend {
        user_id: peer.to_string(),
        both_sides: q.both_sides.unwrap_or(true),
    });
    expect_ok(api.call(&user, false, op).await)?;
    Ok(Json(Empty {}))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    pub(crate) cursor: Option<String>,
    pub(crate) limit: Option<u32>,
}

/// The protocol cursor (a user id, "" = start) inside an API cursor.
fn proto_cursor(c: Option<&str>) -> ApiResult<String> {
    match Cursor::parse(c)? {
        None => Ok(String::new()),
        Some(c) => {
            String::from_utf8(c.0).map_err(|_| ApiError::invalid("cursor: not a cursor this API returned"))
        }
    }
}

fn api_cursor(next: &str) -> String {
    if next.is_empty() { String::new() } else { Cursor::encode(next.as_bytes()) }
}

#[derive(Debug, Serialize)]
struct FriendJson {
    user_id: String,
    peer_has_me: bool,
    blocked: bool,
    remark: String,
    ex: BTreeMap<String, String>,
    friend_since_ms: u64,
}

/// `GET /v1/users/{user_id}/friends`: as the user (ListFriends).
async fn list_friends(
    State(api): State<Arc<Api>>,
    Path(user_id): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Page<FriendJson>>> {
    let user = api.user(&user_id, "user_id")?;
    let limit = page_limit(q.limit)? as u32;
    let cursor = proto_cursor(q.cursor.as_deref())?;
    let op = Op::ListFriends(pb::ListFriends { cursor, limit, with_profiles: false });
    match expect_ok(api.call(&user, false, op).await)? {
        response::Result::Friends(f) => Ok(Json(Page {
            items: f
                .friends
                .into_iter()
                .map(|r| FriendJson {
                    user_id: r.user_id,
                    peer_has_me: r.peer_has_me,
                    blocked: r.blocked,
                    remark: r.remark,
                    ex: r.ex.into_iter().collect(),
                    friend_since_ms: r.friend_since_ms,
                })
                .collect(),
            next_cursor: api_cursor(&f.next_cursor),
        })),
        _ => Err(unexpected()),
    }
}

/// `POST /v1/users/{user_id}/blacklist`: as the user (AddToBlacklist).
async fn block(
    State(api): State<Arc<Api>>,
    Path(user_id): Path<String>,
    Body(b): Body<PeerBody>,
) -> ApiResult<Json<Empty>> {
    let user = api.user(&user_id, "user_id")?;
    let peer = api.user(&b.user_id, "body user_id")?;
    registered(&api, &user).await?;
    expect_ok(
        api.call(&user, false, Op::AddToBlacklist(pb::AddToBlacklist { user_id: peer.to_string() })).await,
    )?;
    Ok(Json(Empty {}))
}

/// `DELETE /v1/users/{user_id}/blacklist/{peer_id}`: as the user.
async fn unblock(
    State(api): State<Arc<Api>>,
    Path((user_id, peer_id)): Path<(String, String)>,
) -> ApiResult<Json<Empty>> {
    let user = api.user(&user_id, "user_id")?;
    let peer = api.user(&peer_id, "peer_id")?;
    registered(&api, &user).await?;
    let op = Op::RemoveFromBlacklist(pb::RemoveFromBlacklist { user_id: peer.to_string() });
    expect_ok(api.call(&user, false, op).await)?;
    Ok(Json(Empty {}))
}

/// `DELETE /v1/users/{user_id}/blacklist/check`: the route of the check
/// shadows the peer named `check`; this is its unblock.
async fn unblock_check(State(api): State<Arc<Api>>, Path(user_id): Path<String>) -> ApiResult<Json<Empty>> {
    unblock(State(api), Path((user_id, "check".to_owned()))).await
}

#[derive(Debug, Serialize)]
struct BlockedJson {
    user_id: String,
    since_ms: u64,
}

/// `GET /v1/users/{user_id}/blacklist`: as the user (ListBlacklist).
async fn list_blacklist(
    State(api): State<Arc<Api>>,
    Path(user_id): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Page<BlockedJson>>> {
    let user = api.user(&user_id, "user_id")?;
    let limit = page_limit(q.limit)? as u32;
    let cursor = proto_cursor(q.cursor.as_deref())?;
    match expect_ok(api.call(&user, false, Op::ListBlacklist(pb::ListBlacklist { cursor, limit })).await)? {
        response::Result::Blacklist(b) => Ok(Json(Page {
            items: b
                .users
                .into_iter()
                .map(|u| BlockedJson { user_id: u.user_id, since_ms: u.since_ms })
                .collect(),
            next_cursor: api_cursor(&b.next_cursor),
        })),
        _ => Err(unexpected()),
    }
}

#[derive(Debug, Serialize)]
struct CheckEntry {
    user_id: String,
    blocked: bool,
    blocked_since_ms: u64,
}

#[derive(Debug, Serialize)]
struct CheckAnswer {
    results: Vec<CheckEntry>,
}

/// `POST /v1/users/{user_id}/blacklist/check`: whether the user blocked each id.
async fn check(
    State(api): State<Arc<Api>>,
    Path(user_id): Path<String>,
    Body(b): Body<UserIdsBody>,
) -> ApiResult<Json<CheckAnswer>> {
    let user = api.user(&user_id, "user_id")?;
    user_ids(&api, &b.user_ids, super::users::MAX_BATCH, "user_ids")?;
    match expect_ok(
        api.call(&user, false, Op::CheckRelations(pb::CheckRelations { user_ids: b.user_ids })).await,
    )? {
        response::Result::Relations(r) => Ok(Json(CheckAnswer {
            results: r
                .relations
                .into_iter()
                .map(|r| CheckEntry {
                    user_id: r.user_id,
                    blocked: r.blocked,
                    blocked_since_ms: r.blocked_since_ms,
                })
                .collect(),
        })),
        _ => Err(unexpected()),
    }
}
