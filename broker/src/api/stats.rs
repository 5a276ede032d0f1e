//! REST endpoints: stats (spec/openapi.yaml, tag `stats`).
//!
//! Role: `GET /v1/stats`: online users and devices (per platform) from the
//! directory, registered users and groups from storage, messages committed
//! since start and per second from [`crate::node::stats`].
//!
//! Cost: online counts walk the directory (O(online users), read locks); the
//! registered-user and group counts scan the whole `user` and `group` column
//! families (O(records)), so they are cached for [`COUNT_TTL_MS`] (10 s) per
//! node; the message rate is over the last ≥ 5 s of readings.
//!
//! Invariants: a read never blocks an async thread (scans run on the
//! blocking pool); counts are approximate (taken without a global lock).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use missive_protocol::pb;
use missive_protocol::token;
use parking_lot::Mutex;
use serde::Serialize;

use super::blocking;
use super::{Api, ApiResult};
use crate::node::stats::RateWindow;

/// How long the storage counts are reused.
pub(crate) const COUNT_TTL_MS: u64 = 10_000;

/// Per node (by its address): the cached storage counts and the rate window.
#[derive(Debug, Default)]
struct Cached {
    /// (taken at ms, registered users, groups).
    counts: Option<(u64, u64, u64)>,
    rate: RateWindow,
}

static CACHE: LazyLock<Mutex<HashMap<usize, Cached>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

pub(crate) fn routes() -> Router<Arc<Api>> {
    Router::new().route("/v1/stats", get(stats))
}

#[derive(Debug, Serialize)]
struct Stats {
    online_users: u64,
    online_devices: u64,
    online_by_platform: HashMap<&'static str, u64>,
    registered_users: u64,
    groups: u64,
    messages_per_sec: f64,
    messages_total_since_start: u64,
    /// When the registered-user and group counts were taken (unix ms).
    counted_at_ms: u64,
}

async fn stats(State(api): State<Arc<Api>>) -> ApiResult<Json<Stats>> {
    let key = Arc::as_ptr(&api.node) as usize;
    let now = crate::node::clock::now_ms();
    let total = api.node.stats.messages_total();
    let (cached, messages_per_sec) = {
        let mut map = CACHE.lock();
        let c = map.entry(key).or_default();
        let rate = c.rate.sample(now, total);
        (c.counts.filter(|(at, _, _)| now.saturating_sub(*at) < COUNT_TTL_MS), rate)
    };
    let (counted_at_ms, registered_users, groups) = match cached {
        Some(c) => c,
        None => {
            let store = api.node.store.clone();
            let (users, groups) =
                blocking(move || Ok((store.count_accounts()?, store.count_groups()?))).await?;
            let c = (now, users, groups);
            CACHE.lock().entry(key).or_default().counts = Some(c);
            c
        }
    };
    let (online_users, online_devices, by) = api.node.directory.counts();
    let online_by_platform = (1..by.len())
        .filter_map(|i| pb::Platform::try_from(i as i32).ok().map(|p| (token::platform_name(p), by[i])))
        .collect();
    Ok(Json(Stats {
        online_users,
        online_devices,
        online_by_platform,
        registered_users,
        groups,
        messages_per_sec,
        messages_total_since_start: total,
        counted_at_ms,
    }))
}
