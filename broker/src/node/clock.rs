//! Time, the node-wide feed version clock, and server message ids.
//!
//! Invariant of [`VersionClock`]: a sync never hands out a token above a
//! version that might still be uncommitted. Every batch registers its lowest
//! version while allocating (under one lock, so allocation and registration
//! are atomic) and releases it after its write returned, success or failure;
//! the watermark is one below the lowest registered version.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

/// Wall clock, unix milliseconds.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Oldest server time (unix ms) still inside a roaming window of `roam_days`
/// at `now_ms` (0 = unlimited → 0).
pub(crate) fn roam_floor_ms(now_ms: u64, roam_days: u64) -> u64 {
    if roam_days == 0 { 0 } else { now_ms.saturating_sub(roam_days.saturating_mul(86_400_000)) }
}

/// Allocates feed versions and tracks which may still be uncommitted.
#[derive(Debug)]
pub(crate) struct VersionClock {
    inner: Mutex<ClockInner>,
}

#[derive(Debug)]
struct ClockInner {
    /// Next version to hand out.
    next: u64,
    /// Lowest version of each batch not yet written → number of batches with it.
    in_flight: BTreeMap<u64, usize>,
}

/// The versions one batch allocated; release with [`VersionClock::release`].
#[derive(Debug, Default)]
pub(crate) struct BatchVersions {
    /// Lowest version allocated by the batch (0 = none yet).
    pub(crate) min: u64,
    /// Highest version allocated by the batch.
    pub(crate) max: u64,
}

impl VersionClock {
    /// A clock continuing after `committed_max`, the highest version in storage.
    pub(crate) fn new(committed_max: u64) -> Self {
        Self { inner: Mutex::new(ClockInner { next: committed_max + 1, in_flight: BTreeMap::new() }) }
    }

    /// Allocates one version for `batch`.
    pub(crate) fn alloc(&self, batch: &mut BatchVersions) -> u64 {
        let mut g = self.inner.lock();
        let v = g.next;
        g.next += 1;
        if batch.min == 0 {
            batch.min = v;
            *g.in_flight.entry(v).or_insert(0) += 1;
        }
        batch.max = v;
        v
    }

    /// Marks `batch` as written (or abandoned).
    pub(crate) fn release(&self, batch: &BatchVersions) {
        if batch.min == 0 {
            return;
        }
        let mut g = self.inner.lock();
        if let Some(n) = g.in_flight.get_mut(&batch.min) {
            *n -= 1;
            if *n == 0 {
                g.in_flight.remove(&batch.min);
            }
        }
    }

    /// Highest version below which everything allocated has been written.
    pub(crate) fn watermark(&self) -> u64 {
        let g = self.inner.lock();
        match g.in_flight.keys().next() {
            Some(min) => min - 1,
            None => g.next - 1,
        }
    }
}

/// Per-shard generator of unique, roughly time-ordered server message ids:
/// `ms:44 | counter:12 | shard:8`.
#[derive(Debug)]
pub(crate) struct MsgIdGen {
    shard: u64,
    last: u64,
}

impl MsgIdGen {
    pub(crate) fn new(shard: usize) -> Self {
        Self { shard: (shard as u64) & 0xff, last: 0 }
    }

    pub(crate) fn next(&mut self, now_ms: u64) -> u64 {
        let base = (now_ms & ((1 << 44) - 1)) << 12;
        let seq = if base > self.last { base } else { self.last + 1 };
        self.last = seq;
        (seq << 8) | self.shard
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_waits_for_lowest_in_flight_batch() {
        let c = VersionClock::new(10);
        assert_eq!(c.watermark(), 10);
        let mut a = BatchVersions::default();
        let mut b = BatchVersions::default();
        assert_eq!(c.alloc(&mut a), 11);
        assert_eq!(c.alloc(&mut b), 12);
        assert_eq!(c.alloc(&mut a), 13);
        c.release(&b);
        assert_eq!(c.watermark(), 10, "a (11) still in flight");
        c.release(&a);
        assert_eq!(c.watermark(), 13);
    }

    #[test]
    fn msg_ids_are_unique_and_increasing() {
        let mut g = MsgIdGen::new(3);
        let mut last = 0;
        for _ in 0..10_000 {
            let id = g.next(1_000);
            assert!(id > last);
            assert_eq!(id & 0xff, 3);
            last = id;
        }
    }
}
