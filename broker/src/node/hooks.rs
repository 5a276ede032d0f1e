//! The webhook endpoints' live snapshot and the after-event id generator.
//!
//! Role: shards (staging after-events), the I/O edge (deciding whether a send
//! needs a `before.send` decision) and the dispatcher read which enabled
//! endpoint subscribes to which event here, without I/O. The API edge is the
//! only writer: it stores an endpoint in `ops/hook` first, then replaces the
//! snapshot ([`Registry::set`]).
//!
//! Invariants: readers get an immutable `Arc` snapshot (one short read lock);
//! event ids are unique and increasing within a node run and across restarts
//! (`ms << 20 | counter`, never below the last id handed out), so a receiver
//! can deduplicate by id and an endpoint's outbox reads in event order.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

/// Every event name an endpoint may subscribe to (patterns: `*`, `friend.*`, ...).
pub(crate) const EVENTS: &[&str] = &[
    "before.send",
    "after.send",
    "user.online",
    "user.offline",
    "friend.request",
    "friend.accepted",
    "friend.declined",
    "friend.added",
    "friend.deleted",
    "blacklist.added",
    "blacklist.removed",
    "group.created",
    "group.info_changed",
    "group.member_joined",
    "group.member_left",
    "group.member_kicked",
    "group.role_changed",
    "group.muted",
    "group.transferred",
    "group.dismissed",
    "message.flagged",
];

/// One webhook endpoint, as stored (JSON in `ops/hook`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) id: String,
    pub(crate) url: String,
    pub(crate) secret: String,
    pub(crate) events: Vec<String>,
    pub(crate) enabled: bool,
    /// Unix ms of creation / last update.
    #[serde(default)]
    pub(crate) created_ms: u64,
    #[serde(default)]
    pub(crate) updated_ms: u64,
}

/// Whether pattern `p` (an event name, `prefix.*` or `*`) covers `event`.
pub(crate) fn pattern_matches(p: &str, event: &str) -> bool {
    if event == "before.send" {
        // before.send changes how sends are processed: only its own name
        // subscribes to it, never `*` or `before.*`.
        return p == event;
    }
    if p == "*" {
        return true;
    }
    match p.strip_suffix(".*") {
        Some(prefix) => event.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('.')),
        None => p == event,
    }
}

/// Whether `p` is a valid subscription pattern.
pub(crate) fn pattern_valid(p: &str) -> bool {
    p == "*" || EVENTS.iter().any(|e| pattern_matches(p, e) && (p == *e || p.ends_with(".*")))
}

impl Endpoint {
    /// Enabled and subscribed to `event`.
    pub(crate) fn wants(&self, event: &str) -> bool {
        self.enabled && self.events.iter().any(|p| pattern_matches(p, event))
    }
}

/// The live set of endpoints, sorted by id.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    endpoints: RwLock<Arc<Vec<Arc<Endpoint>>>>,
    /// Whether any endpoint is enabled: every message and send asks, and
    /// without webhooks the answer is one atomic load, no lock.
    active: AtomicBool,
    last_event_id: AtomicU64,
}

impl Registry {
    /// The current snapshot.
    pub(crate) fn snapshot(&self) -> Arc<Vec<Arc<Endpoint>>> {
        Arc::clone(&self.endpoints.read())
    }

    /// Replaces the snapshot (the API edge, after the store write; at start).
    pub(crate) fn set(&self, mut all: Vec<Arc<Endpoint>>) {
        all.sort_by(|a, b| a.id.cmp(&b.id));
        let active = all.iter().any(|e| e.enabled);
        *self.endpoints.write() = Arc::new(all);
        self.active.store(active, Ordering::Release);
    }

    /// Ids of the endpoints that want `event` (empty: stage nothing).
    pub(crate) fn subscribers(&self, event: &str) -> Vec<Arc<Endpoint>> {
        if !self.active.load(Ordering::Acquire) {
            return Vec::new();
        }
        self.endpoints.read().iter().filter(|e| e.wants(event)).cloned().collect()
    }

    /// Whether any enabled endpoint wants `event`.
    pub(crate) fn any(&self, event: &str) -> bool {
        if !self.active.load(Ordering::Acquire) {
            return false;
        }
        self.endpoints.read().iter().any(|e| e.wants(event))
    }

    /// Raises the last event id handed out to at least `id` (at start: the
    /// largest id still in an outbox or dead-letter list, so a clock that
    /// stepped back across a restart never reuses a pending event's id).
    pub(crate) fn seed_event_id(&self, id: u64) {
        self.last_event_id.fetch_max(id, Ordering::AcqRel);
    }

    /// A new event id at `now_ms`: `now_ms << 20 | counter`, increasing.
    pub(crate) fn next_event_id(&self, now_ms: u64) -> u64 {
        let base = (now_ms & ((1 << 44) - 1)) << 20;
        let mut cur = self.last_event_id.load(Ordering::Relaxed);
        loop {
            let next = if base > cur { base } else { cur + 1 };
            match self.last_event_id.compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return next,
                Err(v) => cur = v,
            }
        }
    }
}

/// The outbox / dead-letter id of event `event_id` for `endpoint`.
pub(crate) fn record_id(endpoint: &str, event_id: u64) -> Vec<u8> {
    let mut id = Vec::with_capacity(endpoint.len() + 9);
    id.extend_from_slice(endpoint.as_bytes());
    id.push(0);
    id.extend_from_slice(&event_id.to_be_bytes());
    id
}

/// The event id of an outbox / dead-letter id.
pub(crate) fn event_id_of(record_id: &[u8]) -> Option<u64> {
    let tail = record_id.len().checked_sub(8).map(|n| &record_id[n..])?;
    Some(u64::from_be_bytes(tail.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(pattern_matches("*", "after.send"));
        assert!(!pattern_matches("*", "before.send"));
        assert!(pattern_matches("friend.*", "friend.added"));
        assert!(!pattern_matches("friend.*", "friendx.added"));
        assert!(!pattern_matches("group.*", "after.send"));
        assert!(pattern_valid("group.*"));
        assert!(pattern_valid("before.send"));
        assert!(pattern_valid("*"));
        assert!(!pattern_valid("nope.*"));
        assert!(!pattern_valid("group"));
        assert!(!pattern_valid(""));
    }

    #[test]
    fn event_ids_increase() {
        let r = Registry::default();
        let a = r.next_event_id(1000);
        let b = r.next_event_id(1000);
        let c = r.next_event_id(999);
        assert!(a < b && b < c);
        assert_eq!(a, 1000 << 20);
        let id = record_id("h1", 42);
        assert_eq!(event_id_of(&id), Some(42));
    }

    /// After a restart with the clock stepped back, ids continue above the
    /// largest pending one.
    #[test]
    fn seeded_ids_continue_above_pending_ones() {
        let r = Registry::default();
        r.seed_event_id(5000 << 20);
        r.seed_event_id(10);
        assert_eq!(r.next_event_id(1000), (5000 << 20) + 1);
    }
}
