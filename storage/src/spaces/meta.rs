//! `meta`: node-wide marks. Key `"ver" 00 shard:be32`, value the highest feed
//! version that shard committed (be64).
//!
//! Key `"bcast" 00 conv`, value the feed version of the broadcast
//! conversation's last message (be64): sync adds the conversation when it is
//! in (token, watermark], the read-diffusion twin of a group's version record.
//!
//! Invariants:
//! - Every batch that allocates feed versions also raises its shard's mark,
//!   so the version clock restarts above [`Store::max_version`] and never
//!   hands out a version twice. No counter lives only in memory.

use missive_protocol::ConvId;

use crate::batch::Batch;
use crate::engine::Cf;
use crate::keys;
use crate::store::Store;
use crate::{Result, StorageError};
use rocksdb::Direction;

/// Appends `"ver" 00 shard`.
fn version_key(out: &mut Vec<u8>, shard: u32) {
    keys::part(out, b"ver");
    out.extend_from_slice(&shard.to_be_bytes());
}

impl Store {
    /// The highest feed version any shard ever committed (0 for a new store).
    pub fn max_version(&self) -> Result<u64> {
        let prefix = keys::owned(|k| keys::part(k, b"ver"));
        let mut max = 0;
        for item in self.iter(Cf::Meta, &prefix, Direction::Forward, None, Some(keys::prefix_end(&prefix))) {
            let (_, v) = item?;
            let arr = <[u8; 8]>::try_from(&v[..]).map_err(|_| StorageError::Corrupt {
                cf: Cf::Meta.name(),
                detail: "bad version mark".into(),
            })?;
            max = max.max(u64::from_be_bytes(arr));
        }
        Ok(max)
    }
}

/// Appends `"bcast" 00 conv`.
fn broadcast_key(out: &mut Vec<u8>, conv: &ConvId) {
    keys::part(out, b"bcast");
    out.extend_from_slice(conv.as_str().as_bytes());
}

impl Store {
    /// Version of a broadcast conversation's last message (0 = none).
    pub fn broadcast_version(&self, conv: &ConvId) -> Result<u64> {
        match self.get(Cf::Meta, &keys::owned(|k| broadcast_key(k, conv)))? {
            None => Ok(0),
            Some(v) => {
                let arr = <[u8; 8]>::try_from(&v[..]).map_err(|_| StorageError::Corrupt {
                    cf: Cf::Meta.name(),
                    detail: "bad broadcast version".into(),
                })?;
                Ok(u64::from_be_bytes(arr))
            }
        }
    }
}

impl Batch {
    /// Records the version of a broadcast conversation's last message.
    pub fn put_broadcast_version(&mut self, conv: &ConvId, version: u64) {
        self.put(Cf::Meta, |k| broadcast_key(k, conv), |v| v.extend_from_slice(&version.to_be_bytes()));
    }

    /// Records the highest feed version this shard has written.
    pub fn put_version_mark(&mut self, shard: u32, version: u64) {
        self.put(Cf::Meta, |k| version_key(k, shard), |v| v.extend_from_slice(&version.to_be_bytes()));
    }
}

/// Appends `"unc" 00 conv`.
fn uncounted_key(out: &mut Vec<u8>, conv: &ConvId) {
    keys::part(out, b"unc");
    out.extend_from_slice(conv.as_str().as_bytes());
}

impl Store {
    /// A conversation's recent uncounted seqs, ascending (empty = none).
    pub fn uncounted(&self, conv: &ConvId) -> Result<Vec<u64>> {
        let Some(v) = self.get(Cf::Meta, &keys::owned(|k| uncounted_key(k, conv)))? else {
            return Ok(Vec::new());
        };
        if v.len() % 8 != 0 {
            return Err(StorageError::Corrupt { cf: Cf::Meta.name(), detail: "bad uncounted list".into() });
        }
        Ok(v.chunks_exact(8)
            .map(|c| u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect())
    }
}

impl Batch {
    /// Replaces a conversation's uncounted seqs (ascending).
    pub fn put_uncounted(&mut self, conv: &ConvId, seqs: &[u64]) {
        self.put(
            Cf::Meta,
            |k| uncounted_key(k, conv),
            |v| {
                for s in seqs {
                    v.extend_from_slice(&s.to_be_bytes());
                }
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Durability, StoreOptions};

    #[test]
    fn max_over_shards_and_key_layout() {
        assert_eq!(keys::owned(|k| version_key(k, 258)), b"ver\0\0\0\x01\x02");
        let dir = tempfile::tempdir().expect("tmp");
        let s =
            Store::open(dir.path(), &StoreOptions { durability: Durability::Buffered, ..Default::default() })
                .expect("open");
        assert_eq!(s.max_version().expect("read"), 0);
        let mut b = s.batch();
        b.put_version_mark(0, 10);
        b.put_version_mark(3, 12);
        b.put_version_mark(1, 11);
        s.write(b).expect("write");
        let mut b = s.batch();
        b.put_version_mark(3, 15);
        s.write(b).expect("write");
        assert_eq!(s.max_version().expect("read"), 15);
        let all = ConvId::parse("b:all").expect("conv");
        assert_eq!(s.broadcast_version(&all).expect("read"), 0);
        let mut b = s.batch();
        b.put_broadcast_version(&all, 16);
        s.write(b).expect("write");
        assert_eq!(s.broadcast_version(&all).expect("read"), 16);
        // A broadcast record is not a version mark.
        assert_eq!(s.max_version().expect("read"), 15);
        let p = ConvId::parse("p:a:b").expect("conv");
        assert!(s.uncounted(&p).expect("read").is_empty());
        let mut b = s.batch();
        b.put_uncounted(&p, &[3, 9, 1 << 40]);
        s.write(b).expect("write");
        assert_eq!(s.uncounted(&p).expect("read"), vec![3, 9, 1 << 40]);
        assert_eq!(s.max_version().expect("read"), 15);
    }
}
