//! Token buckets per key (an address, an API credential), shared by threads.
//!
//! Role: [`KeyedBuckets::take`] takes one token of a key's bucket (`rate`
//! per second, at most `2 × rate` saved up) or says how long until the next
//! token. Used for new connections per address (`net::admit`) and requests
//! per REST credential (`api`).
//!
//! Invariants: the table holds at most `max_keys` keys, spread over
//! [`SHARDS`] mutexes; a full shard starts over (some keys get a fresh burst,
//! memory never grows); a refused take changes nothing but the refill.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::time::Instant;

use parking_lot::Mutex;

/// Mutexes the table is split over.
const SHARDS: usize = 16;

/// One bucket: tokens and the time of the last refill.
type Bucket = (f64, Instant);

/// Token buckets keyed by `K` (see the module docs).
#[derive(Debug)]
pub(crate) struct KeyedBuckets<K> {
    shards: [Mutex<HashMap<K, Bucket>>; SHARDS],
    hasher: std::collections::hash_map::RandomState,
    per_shard: usize,
}

impl<K: Hash + Eq + Clone> KeyedBuckets<K> {
    /// A table of at most `max_keys` keys.
    pub(crate) fn new(max_keys: usize) -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            hasher: Default::default(),
            per_shard: max_keys.div_ceil(SHARDS).max(1),
        }
    }

    /// Takes one token of `key`'s bucket at `rate` per second (0 = no limit);
    /// `Err(retry_after_ms)` (at least 1) when it is empty.
    pub(crate) fn take(&self, key: &K, rate: u32, now: Instant) -> Result<(), u64> {
        if rate == 0 {
            return Ok(());
        }
        let rate = f64::from(rate);
        let burst = rate * 2.0;
        let mut m = self.shards[self.hasher.hash_one(key) as usize % SHARDS].lock();
        if m.len() >= self.per_shard && !m.contains_key(key) {
            m.clear();
        }
        let (tokens, at) = m.entry(key.clone()).or_insert((burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * rate).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err((((1.0 - *tokens) / rate) * 1000.0).ceil().max(1.0) as u64)
        }
    }

    /// Keys held (for tests of the bound).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn refuses_with_retry_after_and_refills() {
        let b = KeyedBuckets::new(100);
        let t = Instant::now();
        for _ in 0..4 {
            assert!(b.take(&"k", 2, t).is_ok());
        }
        let retry = b.take(&"k", 2, t).expect_err("empty");
        assert!((1..=500).contains(&retry), "{retry}");
        assert!(b.take(&"k", 2, t + Duration::from_millis(600)).is_ok());
        assert!(b.take(&"other", 2, t).is_ok(), "another key has its own bucket");
        assert!(b.take(&"k", 0, t).is_ok(), "rate 0 = no limit");
    }

    #[test]
    fn the_table_stays_bounded() {
        let b = KeyedBuckets::new(64);
        let t = Instant::now();
        for k in 0..10_000u32 {
            let _ = b.take(&k, 1, t);
        }
        assert!(b.len() <= 64, "{}", b.len());
    }
}
