//! `dedup`: idempotency keys of sends. Key
//! `conv 00 sender 00 device 00 client_msg_id`, value [`DedupRecord`].
//!
//! Invariants:
//! - Written in the same batch as the message it acknowledges, so a stored
//!   message always has its dedup record and a retry finds it.
//! - Read by point lookups only (most of them miss: the engine keeps a
//!   whole-key filter for that).
//! - Retention (spec [I-2]): a record whose `server_time_ms` is at least
//!   `dedup_retention_ms` before "now" is *expired*. An expired record reads
//!   as absent ([`Store::dedup`], at the caller's time) whether or not compaction has
//!   dropped it yet, and the compaction filter ([`ExpiryFilterFactory`], at
//!   the store's [`Clock`]) drops exactly the expired ones, so what a retry sees never depends on
//!   when compaction ran. A record the filter cannot decode is kept (reads
//!   report it as corrupt). A key rewritten after expiry (a late retry) has
//!   a younger record above the old one; if a compaction drops the old one
//!   first nothing changes, and an older record can never shadow a younger
//!   one's answer because any record older than an unexpired one that a
//!   read could surface is itself expired.

use std::ffi::{CStr, CString};

use missive_protocol::ConvId;
use prost::Message as _;
use rocksdb::CompactionDecision;
use rocksdb::compaction_filter::CompactionFilter;
use rocksdb::compaction_filter_factory::{CompactionFilterContext, CompactionFilterFactory};

use crate::Result;
use crate::batch::Batch;
use crate::engine::{Cf, Clock};
use crate::keys;
use crate::records::DedupRecord;
use crate::store::Store;

/// Whether a record stored at `server_time_ms` is past a retention of
/// `retention_ms` (0 = forever) at `now_ms`.
pub(crate) fn expired(server_time_ms: u64, retention_ms: u64, now_ms: u64) -> bool {
    retention_ms > 0 && server_time_ms.saturating_add(retention_ms) <= now_ms
}

/// Makes one [`ExpiryFilter`] per compaction, with that compaction's "now".
pub(crate) struct ExpiryFilterFactory {
    retention_ms: u64,
    clock: Clock,
    name: CString,
}

impl ExpiryFilterFactory {
    pub(crate) fn new(retention_ms: u64, clock: Clock) -> Self {
        Self { retention_ms, clock, name: c"missive.dedup_expiry.v1".to_owned() }
    }
}

impl CompactionFilterFactory for ExpiryFilterFactory {
    type Filter = ExpiryFilter;

    fn create(&mut self, _context: CompactionFilterContext) -> ExpiryFilter {
        ExpiryFilter { retention_ms: self.retention_ms, now_ms: self.clock.now_ms(), name: self.name.clone() }
    }

    fn name(&self) -> &CStr {
        &self.name
    }
}

/// Drops expired dedup records during one compaction.
pub(crate) struct ExpiryFilter {
    retention_ms: u64,
    /// Read once when the compaction starts.
    now_ms: u64,
    name: CString,
}

impl CompactionFilter for ExpiryFilter {
    fn filter(&mut self, _level: u32, _key: &[u8], value: &[u8]) -> CompactionDecision {
        match DedupRecord::decode(value) {
            Ok(r) if expired(r.stamped_ms(), self.retention_ms, self.now_ms) => CompactionDecision::Remove,
            _ => CompactionDecision::Keep,
        }
    }

    fn name(&self) -> &CStr {
        &self.name
    }
}

/// Appends the key `conv 00 sender 00 device 00 client_msg_id`.
fn key(out: &mut Vec<u8>, conv: &ConvId, sender: &str, device: &str, client_msg_id: &str) {
    keys::part(out, conv.as_str().as_bytes());
    keys::part(out, sender.as_bytes());
    keys::part(out, device.as_bytes());
    out.extend_from_slice(client_msg_id.as_bytes());
}

/// The stored key of an idempotency key, built once by a caller that looks
/// it up ([`Store::dedup_by_key`]) and then records it ([`Batch::put_dedup_by_key`]).
pub fn dedup_key(conv: &ConvId, sender: &str, device: &str, client_msg_id: &str) -> Vec<u8> {
    keys::owned(|k| key(k, conv, sender, device, client_msg_id))
}

impl Store {
    /// [`Store::dedup`] by a key from [`dedup_key`].
    pub fn dedup_by_key(&self, key: &[u8], now_ms: u64) -> Result<Option<DedupRecord>> {
        let rec: Option<DedupRecord> = self.get_decoded(Cf::Dedup, key)?;
        let retention = self.dedup_retention_ms();
        Ok(rec.filter(|r| !expired(r.stamped_ms(), retention, now_ms)))
    }

    /// The ack recorded for an idempotency key, if that send was stored and
    /// its record is not past the retention window at `now_ms` (the caller's
    /// clock: the engine's turn time). An expired record reads as absent even
    /// before compaction drops it.
    pub fn dedup(
        &self,
        conv: &ConvId,
        sender: &str,
        device: &str,
        client_msg_id: &str,
        now_ms: u64,
    ) -> Result<Option<DedupRecord>> {
        self.dedup_by_key(&dedup_key(conv, sender, device, client_msg_id), now_ms)
    }
}

impl Batch {
    /// Records the ack of an idempotency key.
    pub fn put_dedup(
        &mut self,
        conv: &ConvId,
        sender: &str,
        device: &str,
        client_msg_id: &str,
        rec: &DedupRecord,
    ) {
        self.put_record(Cf::Dedup, |k| key(k, conv, sender, device, client_msg_id), rec);
    }

    /// Records the ack of a key from [`dedup_key`].
    pub fn put_dedup_by_key(&mut self, key: &[u8], rec: &DedupRecord) {
        self.put_record(Cf::Dedup, |k| k.extend_from_slice(key), rec);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Durability, StoreOptions};

    #[test]
    fn components_are_separated() {
        let c = ConvId::parse("p:a:b").expect("valid");
        let k = |s, d, m| keys::owned(|k| key(k, &c, s, d, m));
        assert_ne!(k("a", "bc", "d"), k("ab", "c", "d"));
        assert_eq!(k("a", "d1", "m-1"), b"p:a:b\0a\0d1\0m-1");
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().expect("tmp");
        let s =
            Store::open(dir.path(), &StoreOptions { durability: Durability::Buffered, ..Default::default() })
                .expect("open");
        let c = ConvId::parse("p:a:b").expect("valid");
        let rec = DedupRecord { seq: 5, server_msg_id: 77, server_time_ms: 1, stored_ms: 0 };
        let mut b = s.batch();
        b.put_dedup(&c, "a", "d1", "m-1", &rec);
        s.write(b).expect("write");
        assert_eq!(s.dedup(&c, "a", "d1", "m-1", 0).expect("get"), Some(rec));
        assert_eq!(s.dedup(&c, "a", "d2", "m-1", 0).expect("get"), None);
    }

    #[test]
    fn expiry_boundary() {
        assert!(!expired(1_000, 0, u64::MAX), "0 = forever");
        assert!(!expired(1_000, 500, 1_499));
        assert!(expired(1_000, 500, 1_500));
        assert!(!expired(u64::MAX - 1, 500, u64::MAX - 1), "no overflow");
    }

    /// With a fake clock: a record inside the window is honoured; past it, it
    /// reads as absent at once, and a compaction removes it from disk, while
    /// a younger record survives both.
    #[test]
    fn retention_with_a_fake_clock() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU64, Ordering};

        const DAY: u64 = 86_400_000;
        let now = Arc::new(AtomicU64::new(100 * DAY));
        let n2 = Arc::clone(&now);
        let dir = tempfile::tempdir().expect("tmp");
        let opts = StoreOptions {
            durability: Durability::Buffered,
            dedup_retention_ms: 7 * DAY,
            clock: Clock::from_fn(move || n2.load(Ordering::SeqCst)),
            ..Default::default()
        };
        let s = Store::open(dir.path(), &opts).expect("open");
        let c = ConvId::parse("p:a:b").expect("valid");
        let old = DedupRecord { seq: 1, server_msg_id: 1, server_time_ms: 100 * DAY, stored_ms: 0 };
        let young = DedupRecord { seq: 2, server_msg_id: 2, server_time_ms: 105 * DAY, stored_ms: 0 };
        let mut b = s.batch();
        b.put_dedup(&c, "a", "d1", "old", &old);
        b.put_dedup(&c, "a", "d1", "young", &young);
        s.write(b).expect("write");
        s.flush().expect("flush");

        now.store(107 * DAY - 1, Ordering::SeqCst);
        assert_eq!(
            s.dedup(&c, "a", "d1", "old", now.load(Ordering::SeqCst)).expect("get"),
            Some(old.clone()),
            "inside the window"
        );

        now.store(107 * DAY, Ordering::SeqCst);
        assert_eq!(
            s.dedup(&c, "a", "d1", "old", now.load(Ordering::SeqCst)).expect("get"),
            None,
            "expired reads as absent"
        );
        let raw = |id: &str| s.get(Cf::Dedup, &keys::owned(|k| key(k, &c, "a", "d1", id))).expect("raw");
        assert!(raw("old").is_some(), "not compacted yet: still on disk");

        s.compact_all().expect("compact");
        assert!(raw("old").is_none(), "compaction dropped the expired record");
        assert_eq!(
            s.dedup(&c, "a", "d1", "young", now.load(Ordering::SeqCst)).expect("get"),
            Some(young.clone())
        );
        assert!(raw("young").is_some());

        // Forever (0): nothing expires, whatever the clock says.
        drop(s);
        let s =
            Store::open(dir.path(), &StoreOptions { dedup_retention_ms: 0, ..opts.clone() }).expect("open");
        now.store(1_000 * DAY, Ordering::SeqCst);
        s.compact_all().expect("compact");
        assert_eq!(s.dedup(&c, "a", "d1", "young", now.load(Ordering::SeqCst)).expect("get"), Some(young));
    }
}
