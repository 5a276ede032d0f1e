//! The sends stored without a `first_attempt` promise, remembered so that a
//! send WITH the promise may skip the durable dedup lookup (spec [S-7]).
//!
//! Why it is sound: a client sets `first_attempt` only on the first
//! transmission of an id it generated. A retry of that id (sent later, on any
//! connection, without the promise) is read, and so stored, after the first
//! attempt was sent, which was after the first attempt's session began. So
//! if this set holds every key stored without the promise since before that
//! session began ([`Retries::covers`]), and does not hold the key, no retry
//! of it was stored, and the first attempt cannot be a duplicate: its durable
//! lookup is skipped. Otherwise (the key is here, a hash collision, or the
//! session is older than what the set covers) the send takes the ordinary
//! path (this turn's staged sends, then the durable `dedup` keyspace).
//!
//! Invariants: bounded ([`CAP`] keys, oldest dropped first); `covered_since`
//! only moves forward, to the insertion time of the last dropped key;
//! keys are 64-bit hashes: a collision only costs a lookup.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::time::Instant;

/// Keys remembered per shard. Retries are rare (reconnects), so this covers
/// hours of ordinary traffic; API sends and imports count too.
pub(crate) const CAP: usize = 1 << 16;

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Retries {
    /// Hash → number of copies in `order`.
    keys: HashMap<u64, u32>,
    /// Insertion order, with insertion time.
    order: VecDeque<(u64, Instant)>,
    /// Every key stored without the promise after this instant is in `keys`
    /// (`None`: since the shard started).
    covered_since: Option<Instant>,
    hasher: std::hash::RandomState,
}

impl Retries {
    pub(crate) fn new() -> Self {
        Self {
            keys: HashMap::new(),
            order: VecDeque::new(),
            covered_since: None,
            hasher: std::hash::RandomState::new(),
        }
    }

    /// The hash of a stored dedup key.
    pub(crate) fn hash(&self, key: &[u8]) -> u64 {
        let mut h = self.hasher.build_hasher();
        h.write(key);
        h.finish()
    }

    /// Remembers a key stored without the promise.
    pub(crate) fn insert(&mut self, hash: u64, now: Instant) {
        if self.order.len() >= CAP
            && let Some((old, at)) = self.order.pop_front()
        {
            if let Some(n) = self.keys.get_mut(&old) {
                *n -= 1;
                if *n == 0 {
                    self.keys.remove(&old);
                }
            }
            self.covered_since = Some(at);
        }
        *self.keys.entry(hash).or_insert(0) += 1;
        self.order.push_back((hash, now));
    }

    /// Whether a first attempt of a session begun at `session_since`, with
    /// key hash `hash`, may skip the durable lookup.
    pub(crate) fn covers(&self, hash: u64, session_since: Instant) -> bool {
        self.covered_since.is_none_or(|c| session_since > c) && !self.keys.contains_key(&hash)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_remembered_key_or_an_uncovered_session_takes_the_lookup() {
        let mut r = Retries::new();
        let t0 = Instant::now();
        let a = r.hash(b"a");
        assert!(r.covers(a, t0), "nothing stored yet: every session is covered");
        r.insert(a, t0);
        assert!(!r.covers(a, t0), "a retry of the key was stored");
        let b = r.hash(b"b");
        assert!(r.covers(b, t0));
        // Fill past the cap: the first key is dropped and coverage moves to its time.
        let later = t0 + Duration::from_millis(5);
        for i in 0..CAP {
            r.insert(r.hash(&i.to_le_bytes()), later);
        }
        assert!(r.keys.len() <= CAP);
        assert!(!r.covers(b, t0), "a session from before the dropped key's time is not covered");
        assert!(r.covers(b, t0 + Duration::from_millis(1)), "a later session is");
        assert!(!r.covers(r.hash(&0usize.to_le_bytes()), later + Duration::from_millis(1)));
    }
}
