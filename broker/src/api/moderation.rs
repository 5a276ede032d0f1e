//! REST endpoints: moderation (spec/openapi.yaml, tag `moderation`; spec
//! section 16).
//!
//! Role: manage the sensitive-word lists (`/v1/moderation/word-lists`), try a
//! text against them (`/v1/moderation/check`) and mute users globally
//! (`/v1/moderation/mutes`). Lists and mutes are this edge's own records
//! (`ops` spaces `words` and `mute`): a change is written to storage, then
//! swapped into `Node::words` / `Node::mutes`, so it applies to the next
//! request on every transport, and survives a restart.
//!
//! Invariants: every field is validated before anything is written (list
//! name 1..=64 of `[A-Za-z0-9_.-]`, words 1..=`filter.max_word_bytes` bytes
//! without control chars and not only whitespace, at most
//! `filter.max_words_per_list` words, at most `filter.max_lists` lists,
//! mask 1..=16 bytes); storage and compiling run off the async threads.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use missive_protocol::ErrorCode;
use serde::{Deserialize, Serialize};

use super::{Api, ApiError, ApiResult, Body, Cursor, Page, Path, Query, page_limit, run_blocking};
use crate::filter::live::ChangeError;
use crate::filter::{Action, DEFAULT_MASK, WordList, valid_list_name};

/// Longest mask, bytes.
const MAX_MASK_BYTES: usize = 16;
/// Longest mute: ten years.
const MAX_MUTE_SECS: u64 = 315_360_000;

pub(crate) fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/v1/moderation/word-lists", get(list_lists))
        .route("/v1/moderation/word-lists/{name}", get(get_list).put(put_list).delete(delete_list))
        .route("/v1/moderation/word-lists/{name}/words", post(edit_words))
        .route("/v1/moderation/check", post(check))
        .route("/v1/moderation/mutes", get(list_mutes).post(set_mute))
}

/// One list in the list of lists.
#[derive(Debug, Serialize)]
struct ListSummary {
    name: String,
    action: Action,
    mask: String,
    word_count: usize,
}

#[derive(Debug, Serialize)]
struct Lists {
    items: Vec<ListSummary>,
}

/// One list, with its words.
#[derive(Debug, Serialize)]
struct ListBody {
    name: String,
    action: Action,
    mask: String,
    words: Vec<String>,
}

impl From<WordList> for ListBody {
    fn from(l: WordList) -> Self {
        Self { name: l.name, action: l.action, mask: l.mask, words: l.words }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PutList {
    action: Action,
    mask: Option<String>,
    words: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EditWords {
    #[serde(default)]
    add: Vec<String>,
    #[serde(default)]
    remove: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckBody {
    text: String,
}

#[derive(Debug, Serialize)]
struct Blocked {
    list: String,
    word: String,
}

#[derive(Debug, Serialize)]
struct VerdictBody {
    blocked: Option<Blocked>,
    replaced: Option<String>,
    flagged: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MuteBody {
    user_id: String,
    duration_secs: u64,
}

#[derive(Debug, Serialize)]
struct Mute {
    user_id: String,
    /// Unix ms; 0 = not muted.
    until_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    cursor: Option<String>,
    limit: Option<u32>,
}

fn name_ok(name: &str) -> ApiResult<()> {
    if valid_list_name(name) {
        Ok(())
    } else {
        Err(ApiError::invalid("name: 1..=64 characters of A-Z a-z 0-9 _ . -"))
    }
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(ErrorCode::InvalidArgument, format!("no word list named \"{name}\""))
}

/// Validates one word.
fn word_ok(api: &Api, w: &str) -> ApiResult<()> {
    let max = api.node.config.filter.max_word_bytes;
    if w.is_empty() || w.len() > max {
        return Err(ApiError::invalid(format!("words: each word is 1..={max} bytes (got {})", w.len())));
    }
    if w.chars().any(char::is_control) {
        return Err(ApiError::invalid("words: a word may not contain control characters"));
    }
    if crate::filter::fold(w).trim().is_empty() {
        return Err(ApiError::invalid("words: a word may not be only whitespace"));
    }
    Ok(())
}

/// Validates `words` and removes duplicates (first one kept).
fn words_ok(api: &Api, words: Vec<String>) -> ApiResult<Vec<String>> {
    let max = api.node.config.filter.max_words_per_list;
    if words.len() > max {
        return Err(ApiError::invalid(format!(
            "words: at most {max} words per list (filter.max_words_per_list), got {}",
            words.len()
        )));
    }
    let mut seen = std::collections::HashSet::with_capacity(words.len());
    let mut out = Vec::with_capacity(words.len());
    for w in words {
        word_ok(api, &w)?;
        if seen.insert(w.clone()) {
            out.push(w);
        }
    }
    Ok(out)
}

fn change_error(name: &str, e: ChangeError) -> ApiError {
    match e {
        ChangeError::NotFound => not_found(name),
        ChangeError::Limit(m) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidArgument, m)
        }
        ChangeError::Storage(e) => e.into(),
    }
}

/// `GET /v1/moderation/word-lists`.
async fn list_lists(State(api): State<Arc<Api>>) -> ApiResult<axum::Json<Lists>> {
    let all = api.node.words.all();
    let items = all
        .lists()
        .iter()
        .map(|l| ListSummary {
            name: l.name.clone(),
            action: l.action,
            mask: l.mask.clone(),
            word_count: l.words.len(),
        })
        .collect();
    Ok(axum::Json(Lists { items }))
}

/// `GET /v1/moderation/word-lists/{name}`.
async fn get_list(State(api): State<Arc<Api>>, Path(name): Path<String>) -> ApiResult<axum::Json<ListBody>> {
    name_ok(&name)?;
    let all = api.node.words.all();
    let l = all.lists().iter().find(|l| l.name == name).ok_or_else(|| not_found(&name))?;
    Ok(axum::Json(l.clone().into()))
}

/// `PUT /v1/moderation/word-lists/{name}`: replaces the whole list.
async fn put_list(
    State(api): State<Arc<Api>>,
    Path(name): Path<String>,
    Body(body): Body<PutList>,
) -> ApiResult<axum::Json<ListBody>> {
    name_ok(&name)?;
    let mask = body.mask.unwrap_or_else(|| DEFAULT_MASK.to_owned());
    if mask.is_empty() || mask.len() > MAX_MASK_BYTES || mask.chars().any(char::is_control) {
        return Err(ApiError::invalid(format!(
            "mask: 1..={MAX_MASK_BYTES} bytes without control characters"
        )));
    }
    let words = words_ok(&api, body.words)?;
    let list = WordList { name: name.clone(), action: body.action, mask, words };
    let max_lists = api.node.config.filter.max_lists;
    let a = Arc::clone(&api);
    let l = list.clone();
    run_blocking(move || a.node.words.put(&a.node.store, l, max_lists))
        .await?
        .map_err(|e| change_error(&name, e))?;
    Ok(axum::Json(list.into()))
}

/// `DELETE /v1/moderation/word-lists/{name}`.
async fn delete_list(State(api): State<Arc<Api>>, Path(name): Path<String>) -> ApiResult<Response> {
    name_ok(&name)?;
    let a = Arc::clone(&api);
    let n = name.clone();
    run_blocking(move || a.node.words.delete(&a.node.store, &n))
        .await?
        .map_err(|e| change_error(&name, e))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /v1/moderation/word-lists/{name}/words`: adds, then removes.
async fn edit_words(
    State(api): State<Arc<Api>>,
    Path(name): Path<String>,
    Body(body): Body<EditWords>,
) -> ApiResult<axum::Json<ListBody>> {
    name_ok(&name)?;
    if body.add.is_empty() && body.remove.is_empty() {
        return Err(ApiError::invalid("add or remove at least one word"));
    }
    let add = words_ok(&api, body.add)?;
    let max = api.node.config.filter.max_words_per_list;
    if body.remove.len() > max {
        return Err(ApiError::invalid(format!("remove: at most {max} words")));
    }
    let a = Arc::clone(&api);
    let n = name.clone();
    let remove = body.remove;
    let list = run_blocking(move || a.node.words.edit(&a.node.store, &n, add, &remove, max))
        .await?
        .map_err(|e| change_error(&name, e))?;
    Ok(axum::Json(list.into()))
}

/// `POST /v1/moderation/check`: the verdict of the lists in use for a text.
async fn check(
    State(api): State<Arc<Api>>,
    Body(body): Body<CheckBody>,
) -> ApiResult<axum::Json<VerdictBody>> {
    let max = api.node.config.limits.max_content_bytes;
    if body.text.len() > max {
        return Err(ApiError::invalid(format!("text: at most {max} bytes")));
    }
    let v = api.node.words.all().check(&body.text);
    Ok(axum::Json(VerdictBody {
        blocked: v.blocked.map(|(list, word)| Blocked { list, word }),
        replaced: v.replaced,
        flagged: v.flagged,
    }))
}

/// `POST /v1/moderation/mutes`: mutes a user for `duration_secs` (0 unmutes).
async fn set_mute(State(api): State<Arc<Api>>, Body(body): Body<MuteBody>) -> ApiResult<axum::Json<Mute>> {
    let user = api.user(&body.user_id, "user_id")?;
    if body.duration_secs > MAX_MUTE_SECS {
        return Err(ApiError::invalid(format!("duration_secs: at most {MAX_MUTE_SECS}")));
    }
    let now = crate::node::clock::now_ms();
    let until_ms = if body.duration_secs == 0 { 0 } else { now + body.duration_secs * 1000 };
    let a = Arc::clone(&api);
    let u = user.as_str().to_owned();
    run_blocking(move || a.node.mutes.set(&a.node.store, &u, until_ms, now)).await??;
    Ok(axum::Json(Mute { user_id: user.as_str().to_owned(), until_ms }))
}

/// `GET /v1/moderation/mutes`: running mutes by user id.
async fn list_mutes(
    State(api): State<Arc<Api>>,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<Page<Mute>>> {
    let limit = page_limit(q.limit)?;
    let after = Cursor::parse(q.cursor.as_deref())?
        .map(|c| {
            String::from_utf8(c.0).map_err(|_| ApiError::invalid("cursor: not a cursor this API returned"))
        })
        .transpose()?;
    let now = crate::node::clock::now_ms();
    let rows = api.node.mutes.page(after.as_deref(), limit + 1, now);
    let more = rows.len() > limit;
    let items: Vec<Mute> =
        rows.into_iter().take(limit).map(|(user_id, until_ms)| Mute { user_id, until_ms }).collect();
    let next_cursor = match items.last() {
        Some(m) if more => Cursor::encode(m.user_id.as_bytes()),
        _ => String::new(),
    };
    Ok(axum::Json(Page { items, next_cursor }))
}
