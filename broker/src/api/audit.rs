//! The audit log: one record per successful admin write (who, what, when).
//!
//! Records live in the `ops` family, space `audit`, id `ms:be64 ‖ n:be32`
//! (time, then a process-wide counter), so they read back in time order.
//! `GET /v1/audit` pages them newest first.
//!
//! Invariants: the API edge is the only writer; a record is written before
//! the call's answer is returned; records are never rewritten.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use missive_storage::{OpsSpace, Store};
use serde::{Deserialize, Serialize};

use super::{Api, ApiResult, Cursor, Page, Query, page_limit};

/// The audit log's writer.
#[derive(Debug, Clone)]
pub(crate) struct AuditLog {
    store: Store,
    counter: Arc<AtomicU32>,
}

/// One audit record.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct AuditRecord {
    /// Unix ms.
    pub(crate) at_ms: u64,
    /// `key:NAME` or `admin:USER`.
    pub(crate) who: String,
    /// `METHOD /path?query`.
    pub(crate) what: String,
    /// The HTTP status returned.
    pub(crate) status: u16,
}

impl AuditLog {
    pub(crate) fn new(store: Store) -> Self {
        Self { store, counter: Arc::new(AtomicU32::new(0)) }
    }

    /// Appends one record (a small synchronous write: call off async threads).
    pub(crate) fn append(
        &self,
        who: &str,
        what: &str,
        status: u16,
    ) -> Result<(), missive_storage::StorageError> {
        let at_ms = crate::node::clock::now_ms();
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut id = at_ms.to_be_bytes().to_vec();
        id.extend_from_slice(&n.to_be_bytes());
        let rec = AuditRecord { at_ms, who: who.to_owned(), what: truncate(what, 2048), status };
        let value = serde_json::to_vec(&rec).unwrap_or_default();
        let mut b = self.store.batch();
        b.put_ops(OpsSpace::Audit, &id, &value);
        self.store.write(b)
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    cursor: Option<String>,
    limit: Option<u32>,
}

pub(crate) fn routes() -> Router<Arc<Api>> {
    Router::new().route("/v1/audit", get(list))
}

/// `GET /v1/audit`: newest first.
async fn list(
    State(api): State<Arc<Api>>,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<AuditRecord>>> {
    let limit = page_limit(q.limit)?;
    let before = Cursor::parse(q.cursor.as_deref())?;
    let store = api.node.store.clone();
    let rows = super::storage(move || {
        store.ops_scan_rev(OpsSpace::Audit, before.as_ref().map(|c| c.0.as_slice()), limit + 1)
    })
    .await?;
    let more = rows.len() > limit;
    let mut items = Vec::with_capacity(limit);
    let mut last = Vec::new();
    for (id, v) in rows.into_iter().take(limit) {
        if let Ok(r) = serde_json::from_slice::<AuditRecord>(&v) {
            items.push(r);
        }
        last = id;
    }
    let next_cursor = if more { Cursor::encode(&last) } else { String::new() };
    Ok(axum::Json(Page { items, next_cursor }))
}
