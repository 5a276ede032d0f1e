//! REST endpoints: webhooks (spec/openapi.yaml, tag `webhooks`).
//!
//! Endpoints are stored in `ops/hook` (JSON, id = endpoint id) and mirrored
//! into the node's live registry (`Node::hooks`) after every write, so shards
//! and the I/O edge see a change at once without I/O. Dead letters are read
//! from `ops/dead`; replay moves them back to `ops/outbox` (attempts reset)
//! in one batch per page.
//!
//! Invariants: writes are serialized (one async mutex), store first, then the
//! registry; the secret is write-only (never returned); every field is
//! validated (400), at most [`MAX_ENDPOINTS`] endpoints (422).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use missive_protocol::ErrorCode;
use missive_storage::OpsSpace;
use serde::{Deserialize, Serialize};

use super::{Api, ApiError, ApiResult, Body, Cursor, Page, Path, Query, page_limit, storage};
use crate::hooks::MAX_ENDPOINTS;
use crate::node::hooks::{Endpoint, event_id_of, pattern_valid, record_id};
use crate::services::events::OutboxRecord;

/// Serializes endpoint writes (create/update/delete, replay).
static WRITES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Most subscription patterns per endpoint.
const MAX_EVENTS: usize = 32;
/// Most event ids per replay call.
const MAX_REPLAY_IDS: usize = 1000;
/// Most dead letters one `all` replay moves.
const MAX_REPLAY_ALL: usize = 100_000;

pub(crate) fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/v1/webhooks", post(create).get(list))
        .route("/v1/webhooks/{id}", get(get_one).put(update).delete(remove))
        .route("/v1/webhooks/{id}/dead-letters", get(dead_letters))
        .route("/v1/webhooks/{id}/dead-letters/replay", post(replay))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    id: String,
    url: String,
    secret: String,
    events: Vec<String>,
    #[serde(default = "yes")]
    enabled: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    url: Option<String>,
    secret: Option<String>,
    events: Option<Vec<String>>,
    enabled: Option<bool>,
}

/// An endpoint as returned (no secret).
#[derive(Debug, Serialize)]
struct EndpointView {
    id: String,
    url: String,
    events: Vec<String>,
    enabled: bool,
    created_ms: u64,
    updated_ms: u64,
}

impl From<&Endpoint> for EndpointView {
    fn from(e: &Endpoint) -> Self {
        Self {
            id: e.id.clone(),
            url: e.url.clone(),
            events: e.events.clone(),
            enabled: e.enabled,
            created_ms: e.created_ms,
            updated_ms: e.updated_ms,
        }
    }
}

#[derive(Debug, Serialize)]
struct Items<T> {
    items: Vec<T>,
}

fn check_id(id: &str) -> ApiResult<()> {
    if id.is_empty()
        || id.len() > 64
        || !id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(ApiError::invalid("id: 1..=64 characters of A-Z a-z 0-9 _ . -"));
    }
    Ok(())
}

fn check_url(url: &str) -> ApiResult<()> {
    if url.len() > 2048 {
        return Err(ApiError::invalid("url: at most 2048 bytes"));
    }
    match reqwest::Url::parse(url) {
        Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host_str().is_some() => Ok(()),
        _ => Err(ApiError::invalid("url: an absolute http:// or https:// URL")),
    }
}

fn check_secret(secret: &str) -> ApiResult<()> {
    if secret.len() < 16 || secret.len() > 256 {
        return Err(ApiError::invalid("secret: 16..=256 bytes"));
    }
    Ok(())
}

fn check_events(events: &[String]) -> ApiResult<()> {
    if events.is_empty() || events.len() > MAX_EVENTS {
        return Err(ApiError::invalid(format!("events: 1..={MAX_EVENTS} event names or patterns")));
    }
    if let Some(bad) = events.iter().find(|e| !pattern_valid(e)) {
        return Err(ApiError::invalid(format!("events: unknown event or pattern {bad:?}")));
    }
    Ok(())
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(ErrorCode::InvalidArgument, format!("no webhook endpoint {id:?}"))
}

async fn read(api: &Api, id: &str) -> ApiResult<Option<Endpoint>> {
    let store = api.node.store.clone();
    let key = id.as_bytes().to_vec();
    let v = storage(move || store.ops_get(OpsSpace::Hook, &key)).await?;
    Ok(v.and_then(|v| serde_json::from_slice(&v).ok()))
}

async fn save(api: &Api, e: &Endpoint) -> ApiResult<()> {
    let store = api.node.store.clone();
    let key = e.id.as_bytes().to_vec();
    let value = serde_json::to_vec(e).map_err(|_| ApiError::invalid("endpoint does not encode"))?;
    storage(move || {
        let mut b = store.batch();
        b.put_ops(OpsSpace::Hook, &key, &value);
        store.write(b)
    })
    .await?;
    reload(api).await
}

async fn reload(api: &Api) -> ApiResult<()> {
    let node = Arc::clone(&api.node);
    tokio::task::spawn_blocking(move || crate::hooks::load(&node))
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, "task failed"))?
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Storage, e.to_string()))
}

/// `POST /v1/webhooks`.
async fn create(
    State(api): State<Arc<Api>>,
    Body(b): Body<CreateBody>,
) -> ApiResult<(StatusCode, axum::Json<EndpointView>)> {
    check_id(&b.id)?;
    check_url(&b.url)?;
    check_secret(&b.secret)?;
    check_events(&b.events)?;
    let _w = WRITES.lock().await;
    if read(&api, &b.id).await?.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::InvalidArgument,
            format!("webhook endpoint {:?} exists; PUT to change it", b.id),
        ));
    }
    if api.node.hooks.snapshot().len() >= MAX_ENDPOINTS {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidArgument,
            format!("at most {MAX_ENDPOINTS} webhook endpoints"),
        ));
    }
    let now = crate::node::clock::now_ms();
    let e = Endpoint {
        id: b.id,
        url: b.url,
        secret: b.secret,
        events: b.events,
        enabled: b.enabled,
        created_ms: now,
        updated_ms: now,
    };
    purge(&api, &e.id).await?;
    save(&api, &e).await?;
    Ok((StatusCode::CREATED, axum::Json(EndpointView::from(&e))))
}

/// Deletes every outbox record and dead letter of endpoint `id`, a page at a
/// time. Run after a delete and before a create of the same id, so events of
/// an earlier endpoint of that id (a delivery that failed after the delete,
/// or a turn staged just before it) never reach a new one.
async fn purge(api: &Api, id: &str) -> ApiResult<()> {
    let mut prefix = id.as_bytes().to_vec();
    prefix.push(0);
    for space in [OpsSpace::Outbox, OpsSpace::Dead] {
        loop {
            let store = api.node.store.clone();
            let p = prefix.clone();
            let n = storage(move || {
                let rows = store.ops_scan(space, &p, None, 1000)?;
                let n = rows.len();
                // Each record is deleted in the partition holding it (the
                // shard that staged the event).
                let mut batches = store.batch_per_partition();
                for (k, _) in rows {
                    batches[store.ops_partition(space, &k)?].delete_ops(space, &k);
                }
                store.write_each(batches)?;
                Ok(n)
            })
            .await?;
            if n < 1000 {
                break;
            }
        }
    }
    Ok(())
}

/// `GET /v1/webhooks`.
async fn list(State(api): State<Arc<Api>>) -> axum::Json<Items<EndpointView>> {
    let snap = api.node.hooks.snapshot();
    axum::Json(Items { items: snap.iter().map(|e| EndpointView::from(&**e)).collect() })
}

/// `GET /v1/webhooks/{id}`.
async fn get_one(State(api): State<Arc<Api>>, Path(id): Path<String>) -> ApiResult<axum::Json<EndpointView>> {
    check_id(&id)?;
    let e = read(&api, &id).await?.ok_or_else(|| not_found(&id))?;
    Ok(axum::Json(EndpointView::from(&e)))
}

/// `PUT /v1/webhooks/{id}`: changes the given fields.
async fn update(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    Body(b): Body<UpdateBody>,
) -> ApiResult<axum::Json<EndpointView>> {
    check_id(&id)?;
    if let Some(u) = &b.url {
        check_url(u)?;
    }
    if let Some(s) = &b.secret {
        check_secret(s)?;
    }
    if let Some(ev) = &b.events {
        check_events(ev)?;
    }
    let _w = WRITES.lock().await;
    let mut e = read(&api, &id).await?.ok_or_else(|| not_found(&id))?;
    if let Some(u) = b.url {
        e.url = u;
    }
    if let Some(s) = b.secret {
        e.secret = s;
    }
    if let Some(ev) = b.events {
        e.events = ev;
    }
    if let Some(en) = b.enabled {
        e.enabled = en;
    }
    e.updated_ms = crate::node::clock::now_ms();
    save(&api, &e).await?;
    Ok(axum::Json(EndpointView::from(&e)))
}

#[derive(Debug, Serialize)]
struct Deleted {
    deleted: bool,
}

/// `DELETE /v1/webhooks/{id}`: the endpoint, its pending events and its dead letters.
async fn remove(State(api): State<Arc<Api>>, Path(id): Path<String>) -> ApiResult<axum::Json<Deleted>> {
    check_id(&id)?;
    let _w = WRITES.lock().await;
    if read(&api, &id).await?.is_none() {
        return Err(not_found(&id));
    }
    let store = api.node.store.clone();
    let key = id.as_bytes().to_vec();
    storage(move || {
        let mut b = store.batch();
        b.delete_ops(OpsSpace::Hook, &key);
        store.write(b)
    })
    .await?;
    reload(&api).await?;
    // Then its records (the dispatcher no longer reads them).
    purge(&api, &id).await?;
    Ok(axum::Json(Deleted { deleted: true }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    cursor: Option<String>,
    limit: Option<u32>,
}

/// One dead letter.
#[derive(Debug, Serialize)]
struct DeadLetter {
    event_id: String,
    event: serde_json::Value,
    attempts: u32,
    last_error: String,
    last_attempt_ms: u64,
}

/// `GET /v1/webhooks/{id}/dead-letters`: oldest event first.
async fn dead_letters(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<Page<DeadLetter>>> {
    check_id(&id)?;
    let limit = page_limit(q.limit)?;
    let after = Cursor::parse(q.cursor.as_deref())?;
    if read(&api, &id).await?.is_none() {
        return Err(not_found(&id));
    }
    let mut prefix = id.as_bytes().to_vec();
    prefix.push(0);
    let store = api.node.store.clone();
    let rows = storage(move || {
        store.ops_scan(OpsSpace::Dead, &prefix, after.as_ref().map(|c| c.0.as_slice()), limit + 1)
    })
    .await?;
    let more = rows.len() > limit;
    let mut items = Vec::with_capacity(limit.min(rows.len()));
    let mut last = Vec::new();
    for (k, v) in rows.into_iter().take(limit) {
        if let (Some(eid), Ok(r)) = (event_id_of(&k), serde_json::from_slice::<OutboxRecord>(&v)) {
            items.push(DeadLetter {
                event_id: eid.to_string(),
                event: r.event,
                attempts: r.attempts,
                last_error: r.last_error,
                last_attempt_ms: r.last_attempt_ms,
            });
        }
        last = k;
    }
    let next_cursor = if more { Cursor::encode(&last) } else { String::new() };
    Ok(axum::Json(Page { items, next_cursor }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    #[serde(default)]
    event_ids: Vec<String>,
    #[serde(default)]
    all: bool,
}

#[derive(Debug, Serialize)]
struct Replayed {
    replayed: usize,
}

/// Moves dead letters `ids` (or every dead letter) back to the outbox.
fn move_back(
    store: &missive_storage::Store,
    rows: Vec<(Vec<u8>, Vec<u8>)>,
) -> Result<usize, missive_storage::StorageError> {
    // Each letter moves within the partition holding it, one batch per partition.
    let mut batches = store.batch_per_partition();
    let mut n = 0;
    for (k, v) in rows {
        let b = &mut batches[store.ops_partition(OpsSpace::Dead, &k)?];
        // A record this version cannot read moves back as it is (never left
        // behind, so a replay of everything always makes progress).
        let value = match serde_json::from_slice::<OutboxRecord>(&v) {
            Ok(mut r) => {
                r.attempts = 0;
                r.last_error.clear();
                serde_json::to_vec(&r).unwrap_or(v)
            }
            Err(_) => v,
        };
        b.delete_ops(OpsSpace::Dead, &k);
        b.put_ops(OpsSpace::Outbox, &k, &value);
        n += 1;
    }
    store.write_each(batches)?;
    Ok(n)
}

/// `POST /v1/webhooks/{id}/dead-letters/replay`.
async fn replay(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    Body(b): Body<ReplayBody>,
) -> ApiResult<axum::Json<Replayed>> {
    check_id(&id)?;
    if b.all != b.event_ids.is_empty() {
        return Err(ApiError::invalid("give either event_ids (1..=1000) or all: true"));
    }
    if b.event_ids.len() > MAX_REPLAY_IDS {
        return Err(ApiError::invalid(format!("event_ids: at most {MAX_REPLAY_IDS}")));
    }
    let mut ids = Vec::with_capacity(b.event_ids.len());
    for e in &b.event_ids {
        let n: u64 =
            e.parse().map_err(|_| ApiError::invalid(format!("event_ids: {e:?} is not an event id")))?;
        ids.push(record_id(&id, n));
    }
    let _w = WRITES.lock().await;
    if read(&api, &id).await?.is_none() {
        return Err(not_found(&id));
    }
    let store = api.node.store.clone();
    let replayed = if b.all {
        let mut prefix = id.as_bytes().to_vec();
        prefix.push(0);
        storage(move || {
            let mut total = 0;
            while total < MAX_REPLAY_ALL {
                let rows = store.ops_scan(OpsSpace::Dead, &prefix, None, 1000)?;
                if rows.is_empty() {
                    break;
                }
                let moved = move_back(&store, rows)?;
                if moved == 0 {
                    break;
                }
                total += moved;
            }
            Ok(total)
        })
        .await?
    } else {
        storage(move || {
            let mut rows = Vec::new();
            for k in ids {
                if let Some(v) = store.ops_get(OpsSpace::Dead, &k)? {
                    rows.push((k, v));
                }
            }
            move_back(&store, rows)
        })
        .await?
    };
    Ok(axum::Json(Replayed { replayed }))
}
