//! Owner keys and the fixed owner hash.
//!
//! Role: every record has exactly one writer, the owner shard of its
//! [`OwnerKey`]: a conversation's log, its pair records and group records
//! belong to `Conv(conv_id)` (a pair a, b to the direct conversation
//! `p:a:b`, a group g to `g:g`); a user's own records (account, profile,
//! status, subscriptions, settings, device sync tokens, logins) to `User`.
//!
//! The hash is FIXED and documented (a cluster will map the same keys to
//! nodes, so it must not change with the toolchain, unlike `DefaultHasher`):
//! 64-bit FNV-1a (offset basis 0xcbf29ce484222325, prime 0x100000001b3) over
//! one tag byte (`c` conversation, `u` user) followed by the id's UTF-8
//! bytes, then MurmurHash3's 64-bit finalizer `fmix64` (shifts 33, multipliers
//! 0xff51afd7ed558ccd and 0xc4ceb9fe1a85ec53); shard = hash % workers.
//!
//! Why the finalizer: FNV-1a's low bits mix poorly. Its lowest bit is the
//! parity of the input bytes' lowest bits, so `p:u7:v7`-style ids, whose
//! digits appear twice, all had the same parity and landed on ONE of two
//! shards (measured: pairs throughput fell by a third). `fmix64` spreads every
//! input bit over every output bit.
//!
//! Invariant: `owner_shard(k, n)` depends only on `k` and `n`.

use missive_protocol::{ConvId, UserId};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The key that decides which shard owns (writes) a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OwnerKey<'a> {
    /// A conversation: its log, its pair or group records.
    Conv(&'a ConvId),
    /// A user's own records and logins.
    User(&'a UserId),
}

/// 64-bit FNV-1a of `tag` then `bytes`.
pub(crate) fn fnv1a(tag: u8, bytes: &[u8]) -> u64 {
    let mut h = FNV_OFFSET;
    for b in std::iter::once(&tag).chain(bytes) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// MurmurHash3's 64-bit finalizer.
pub(crate) fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

impl OwnerKey<'_> {
    /// The owner's 64-bit hash (stable across builds and machines).
    pub(crate) fn hash(&self) -> u64 {
        fmix64(match self {
            OwnerKey::Conv(c) => fnv1a(b'c', c.as_str().as_bytes()),
            OwnerKey::User(u) => fnv1a(b'u', u.as_str().as_bytes()),
        })
    }

    /// The owner shard among `workers` shards.
    pub(crate) fn shard(&self, workers: usize) -> usize {
        (self.hash() % workers.max(1) as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_published_vectors() {
        // FNV-1a 64 test vectors: "" -> offset basis, "a" -> 0xaf63dc4c8601ec8c.
        let plain = |s: &str| {
            let mut h = FNV_OFFSET;
            for b in s.as_bytes() {
                h ^= u64::from(*b);
                h = h.wrapping_mul(FNV_PRIME);
            }
            h
        };
        assert_eq!(plain(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(plain("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(plain("foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(fnv1a(b'a', b""), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn owner_hash_is_fixed() {
        // Pinned values: changing the hash moves every owner; a cluster depends on it.
        let conv = ConvId::parse("p:alice:bob").expect("valid");
        let user = UserId::new("alice").expect("valid");
        assert_eq!(OwnerKey::Conv(&conv).hash(), fmix64(fnv1a(b'c', b"p:alice:bob")));
        assert_eq!(OwnerKey::User(&user).hash(), fmix64(fnv1a(b'u', b"alice")));
        // fmix64 reference values (MurmurHash3): 0 stays 0, 1 maps to 0xb456bcfc34c2cb2c.
        assert_eq!(fmix64(0), 0);
        assert_eq!(fmix64(1), 0xb456_bcfc_34c2_cb2c);
        assert_ne!(OwnerKey::Conv(&conv).hash(), OwnerKey::User(&user).hash());
        for n in 1..9 {
            assert!(OwnerKey::User(&user).shard(n) < n);
        }
    }

    #[test]
    fn similar_ids_spread_over_the_shards() {
        // Pair-like ids repeat their digits; plain FNV-1a put all of them on one of 2 shards.
        for workers in [2usize, 3, 4, 8] {
            let mut counts = vec![0usize; workers];
            for i in 0..2000 {
                let conv = ConvId::parse(&format!("p:lg-a-{i}:lg-b-{i}")).expect("valid");
                counts[OwnerKey::Conv(&conv).shard(workers)] += 1;
            }
            let fair = 2000 / workers;
            for c in &counts {
                assert!(c * 10 > fair * 8 && c * 10 < fair * 12, "{workers} shards: {counts:?}");
            }
        }
    }
}
