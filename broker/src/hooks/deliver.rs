//! The after-event dispatcher: outbox → signed POST → delete, retry or dead letter.
//!
//! One task per enabled endpoint. Each pass reads at most [`WINDOW`] outbox
//! records of the endpoint, in event-id order, and starts a delivery for
//! every record that is neither in flight nor waiting for its retry time,
//! while a permit of the endpoint's semaphore (`webhooks.max_concurrency`)
//! is free. A pass runs every [`POLL`] or as soon as a delivery finishes.
//!
//! Invariants:
//! - memory per endpoint is bounded by the window (never the whole outbox);
//! - an event is delivered at least once: its record is deleted only after a
//!   2xx, and a record read by a pass that began before its deletion is not
//!   sent again (the `done` set is kept until a later pass starts);
//! - attempts per event ≤ `max_attempts`; each failure is persisted in the
//!   record before the next attempt may start, and the retry waits a delay
//!   drawn uniformly from [0, min(backoff_max, backoff_base · 2^(n−1))]
//!   (full jitter); the last failure moves the record to `dead` in one batch.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use missive_storage::OpsSpace;
use parking_lot::Mutex;
use rand::Rng as _;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;

use crate::node::hooks::{Endpoint, event_id_of};
use crate::services::events::OutboxRecord;

use super::{Hooks, signed_request};

/// Outbox records read per pass and endpoint.
pub(crate) const WINDOW: usize = 256;
/// Longest pause between passes.
pub(crate) const POLL: Duration = Duration::from_millis(50);

/// What one endpoint's deliveries share across restarts of its loop (an
/// update restarts it): the concurrency permits and the in-flight / attempt
/// state, so attempts still running from before an update count against the
/// cap and are not started a second time.
#[derive(Debug, Clone)]
struct Shared {
    sem: Arc<Semaphore>,
    state: Arc<Mutex<State>>,
}

/// Runs the dispatcher: keeps one task per enabled endpoint of the registry.
pub(crate) async fn run(h: Arc<Hooks>) {
    let mut tasks: HashMap<String, (Arc<Endpoint>, JoinHandle<()>)> = HashMap::new();
    // Keyed by (id, created_ms): a deleted and re-created endpoint starts afresh.
    let mut shared: HashMap<(String, u64), Shared> = HashMap::new();
    loop {
        let snap = h.node.hooks.snapshot();
        tasks.retain(|id, (ep, task)| {
            let keep = snap.iter().any(|e| e.id == *id && e.enabled && **e == **ep) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        shared.retain(|(id, created), _| snap.iter().any(|e| e.id == *id && e.created_ms == *created));
        for ep in snap.iter().filter(|e| e.enabled) {
            if !tasks.contains_key(&ep.id) {
                let sh = shared
                    .entry((ep.id.clone(), ep.created_ms))
                    .or_insert_with(|| Shared {
                        sem: Arc::new(Semaphore::new(h.node.config.webhooks.max_concurrency)),
                        state: Arc::new(Mutex::new(State::default())),
                    })
                    .clone();
                let task = tokio::spawn(endpoint_loop(Arc::clone(&h), Arc::clone(ep), sh));
                tasks.insert(ep.id.clone(), (Arc::clone(ep), task));
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[derive(Debug, Default)]
struct State {
    /// Pass counter (a pass reads the outbox after incrementing it).
    pass: u64,
    in_flight: HashSet<u64>,
    /// Delivered or dead events → the pass during which that happened.
    done: HashMap<u64, u64>,
    retry_at: HashMap<u64, Instant>,
    attempts: HashMap<u64, u32>,
}

/// The retry delay after `attempts` failures: full jitter.
pub(crate) fn backoff(base_ms: u64, max_ms: u64, attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(40);
    let cap = base_ms.saturating_mul(1u64 << exp).min(max_ms);
    Duration::from_millis(rand::rng().random_range(0..=cap))
}

async fn endpoint_loop(h: Arc<Hooks>, ep: Arc<Endpoint>, shared: Shared) {
    let Shared { sem, state } = shared;
    let wake = Arc::new(Notify::new());
    let mut prefix = ep.id.as_bytes().to_vec();
    prefix.push(0);
    loop {
        let pass = {
            let mut s = state.lock();
            s.pass += 1;
            s.pass
        };
        let store = h.node.store.clone();
        let p = prefix.clone();
        let rows =
            match tokio::task::spawn_blocking(move || store.ops_scan(OpsSpace::Outbox, &p, None, WINDOW))
                .await
            {
                Ok(Ok(rows)) => rows,
                _ => {
                    tracing::warn!(endpoint = %ep.id, "webhooks: outbox scan failed");
                    Vec::new()
                }
            };
        let now = Instant::now();
        let mut next = now + POLL;
        {
            let mut s = state.lock();
            // Backoffs of events outside a full window are kept (they come back into
            // it later), up to a bound; a partial window saw every record.
            let whole = rows.len() < WINDOW;
            if whole || s.retry_at.len() > 4 * WINDOW {
                let seen: HashSet<u64> = rows.iter().filter_map(|(id, _)| event_id_of(id)).collect();
                s.retry_at.retain(|id, _| seen.contains(id));
            }
            for (id, value) in rows {
                let Some(event_id) = event_id_of(&id) else { continue };
                if s.in_flight.contains(&event_id) || s.done.contains_key(&event_id) {
                    continue;
                }
                if let Some(at) = s.retry_at.get(&event_id)
                    && *at > now
                {
                    next = next.min(*at);
                    continue;
                }
                let Ok(permit) = Arc::clone(&sem).try_acquire_owned() else { break };
                s.in_flight.insert(event_id);
                let known = s.attempts.get(&event_id).copied().unwrap_or(0);
                let (h2, ep2, st, wk) =
                    (Arc::clone(&h), Arc::clone(&ep), Arc::clone(&state), Arc::clone(&wake));
                tokio::spawn(async move {
                    attempt(&h2, &ep2, id, event_id, value, known, &st).await;
                    drop(permit);
                    wk.notify_one();
                });
            }
            // Completed before this pass read the outbox: no longer visible.
            s.done.retain(|_, at| *at >= pass);
        }
        tokio::select! {
            _ = tokio::time::sleep_until(next.into()) => {}
            _ = wake.notified() => {}
        }
    }
}

/// Whether `ep` (this generation of it) is still a registered endpoint.
fn still_registered(h: &Hooks, ep: &Endpoint) -> bool {
    h.node.hooks.snapshot().iter().any(|e| e.id == ep.id && e.created_ms == ep.created_ms)
}

/// One delivery attempt of one record.
async fn attempt(
    h: &Hooks,
    ep: &Endpoint,
    id: Vec<u8>,
    event_id: u64,
    value: Vec<u8>,
    known_attempts: u32,
    state: &Mutex<State>,
) {
    let cfg = &h.node.config.webhooks;
    let rec: Option<OutboxRecord> = serde_json::from_slice(&value).ok();
    let (result, mut rec) = match rec {
        Some(rec) => {
            let body = serde_json::to_vec(&rec.event).unwrap_or_default();
            let eid = rec.event.get("id").and_then(|v| v.as_str()).unwrap_or("").to_owned();
            let kind = rec.event.get("type").and_then(|v| v.as_str()).unwrap_or("").to_owned();
            let sent = signed_request(&h.client, ep, &eid, &kind, body, cfg.replay_window_secs).send().await;
            let result = match sent {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(format!("HTTP {}", r.status().as_u16())),
                Err(e) => {
                    Err(if e.is_timeout() { "timeout".to_owned() } else { format!("request failed: {e}") })
                }
            };
            (result, rec)
        }
        None => (
            Err("unreadable outbox record".to_owned()),
            OutboxRecord {
                event: serde_json::Value::Null,
                attempts: cfg.max_attempts,
                last_error: String::new(),
                last_attempt_ms: 0,
            },
        ),
    };
    let store = h.node.store.clone();
    let max = cfg.max_attempts;
    match result {
        Ok(()) => {
            let id2 = id.clone();
            let written = tokio::task::spawn_blocking(move || {
                // The record lives in the partition of the shard that staged it.
                let mut b = store.batch_in(store.ops_partition(OpsSpace::Outbox, &id2)?);
                b.delete_ops(OpsSpace::Outbox, &id2);
                store.write(b)
            })
            .await;
            let mut s = state.lock();
            s.in_flight.remove(&event_id);
            s.attempts.remove(&event_id);
            if matches!(written, Ok(Ok(()))) {
                let pass = s.pass;
                s.done.insert(event_id, pass);
            }
        }
        Err(_) if !still_registered(h, ep) => {
            // The endpoint was deleted (or re-created) meanwhile: its records
            // are purged; writing this one back would resurrect it.
            let mut s = state.lock();
            s.in_flight.remove(&event_id);
            s.attempts.remove(&event_id);
        }
        Err(err) => {
            rec.attempts = rec.attempts.max(known_attempts).saturating_add(1);
            rec.last_error = err;
            rec.last_attempt_ms = crate::node::clock::now_ms();
            let dead = rec.attempts >= max;
            let attempts = rec.attempts;
            let value = serde_json::to_vec(&rec).unwrap_or_default();
            let id2 = id.clone();
            let written = tokio::task::spawn_blocking(move || {
                // Where the record lives: the dead letter joins it there, atomically.
                let mut b = store.batch_in(store.ops_partition(OpsSpace::Outbox, &id2)?);
                if dead {
                    b.delete_ops(OpsSpace::Outbox, &id2);
                    b.put_ops(OpsSpace::Dead, &id2, &value);
                } else {
                    b.put_ops(OpsSpace::Outbox, &id2, &value);
                }
                store.write(b)
            })
            .await;
            if dead {
                tracing::warn!(endpoint = %ep.id, event_id, attempts, "webhooks: event moved to dead letters");
            }
            let mut s = state.lock();
            s.in_flight.remove(&event_id);
            if dead && matches!(written, Ok(Ok(()))) {
                s.attempts.remove(&event_id);
                s.retry_at.remove(&event_id);
                let pass = s.pass;
                s.done.insert(event_id, pass);
            } else {
                s.attempts.insert(event_id, attempts);
                s.retry_at.insert(
                    event_id,
                    Instant::now() + backoff(cfg.backoff_base_ms, cfg.backoff_max_ms, attempts),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_full_jitter() {
        for n in 1..50 {
            let d = backoff(100, 1000, n).as_millis() as u64;
            let cap = (100u64 << (n - 1).min(40)).min(1000);
            assert!(d <= cap, "{n}: {d} > {cap}");
        }
        // Full jitter: the draws spread over [0, cap].
        let draws: Vec<u64> = (0..200).map(|_| backoff(100, 10_000, 5).as_millis() as u64).collect();
        assert!(draws.iter().any(|d| *d < 400) && draws.iter().any(|d| *d > 1200));
    }
}
