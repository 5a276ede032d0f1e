//! [`Store`]: the open database handle, the one atomic write, and the read
//! helpers every keyspace uses.
//!
//! Role: `Store` and [`Batch`] methods are implemented per keyspace in
//! `spaces/*` (one `impl` block per keyspace file, like one file per column
//! family); this file holds only what is shared: opening, writing, flushing,
//! point reads, bounded scans and record decoding.
//!
//! Invariants:
//! - [`Store::write`] is the only write path: one RocksDB write per batch,
//!   synced per the configured [`Durability`].
//! - Every iterator is made by [`Store::iter`]: it stays inside the first key
//!   component of its seek key (`prefix_same_as_start`), which is what lets a
//!   family use a prefix filter (see `engine`). A scan must therefore seek to
//!   a key of the conversation, user or group it reads. The one exception,
//!   [`Store::first_key_from`], seeks in total order (no prefix filter) and
//!   reads one key: listings across owners step from owner to owner with it.
//! - Undecodable stored bytes become [`StorageError::Corrupt`], never a panic.
//! - Maintenance ([`Store::verify`], [`Store::checkpoint`], [`Store::repair`])
//!   never changes what a reader sees: verify and checkpoint only read, and
//!   repair runs on a closed store.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamily, DB, DBIterator, Direction, IteratorMode, ReadOptions, WriteBatch, WriteOptions};

use crate::batch::Batch;
use crate::engine::{self, CF_COUNT, Cf, Clock, Durability, FAMILIES, StoreOptions};
use crate::keys;
use crate::{Result, StorageError};

/// The open database. Cheap to clone; safe to share between threads.
#[derive(Clone)]
pub struct Store {
    db: Arc<DB>,
    durability: Durability,
    /// Dedup retention (0 = forever), for reads that must agree with the
    /// compaction filter.
    dedup_retention_ms: u64,
    /// "Now" for dedup expiry.
    clock: Clock,
}

/// What [`Store::verify`] read: entries per family, all checksums good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// (family name, live entries read), in family order.
    pub families: Vec<(&'static str, u64)>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.db.path()).field("durability", &self.durability).finish()
    }
}

/// Decodes a stored record of `cf`.
pub(crate) fn decode<T: prost::Message + Default>(cf: Cf, bytes: &[u8]) -> Result<T> {
    T::decode(bytes).map_err(|e| StorageError::Corrupt { cf: cf.name(), detail: e.to_string() })
}

/// Mutations a batch from [`Store::batch`] holds before its vectors grow: one
/// message with its dedup, two `uconv` records and their feed moves is ~8.
const BATCH_ENTRIES: usize = 32;
/// Key and value bytes a new batch holds before it grows.
const BATCH_BYTES: usize = 4 << 10;

impl Store {
    /// Opens (creating if needed) the database under `path`.
    pub fn open(path: &Path, opts: &StoreOptions) -> Result<Self> {
        let db = engine::open(path, opts)?;
        Ok(Self::wrap(db, opts))
    }

    fn wrap(db: DB, opts: &StoreOptions) -> Self {
        Self {
            db: Arc::new(db),
            durability: opts.durability,
            dedup_retention_ms: opts.dedup_retention_ms,
            clock: opts.clock.clone(),
        }
    }

    /// Opens the database under `path` read-only and verifies it
    /// ([`Store::verify`]); the `missive verify` command.
    pub fn verify_dir(path: &Path, opts: &StoreOptions) -> Result<VerifyReport> {
        Self::wrap(engine::open_read_only(path, opts)?, opts).verify()
    }

    /// Reads every live entry of every family with block checksums checked,
    /// bypassing the block cache: a flipped bit in any SST data block, index
    /// or the WAL becomes an error naming the file. Cost: one sequential read
    /// of the whole store.
    pub fn verify(&self) -> Result<VerifyReport> {
        let mut families = Vec::with_capacity(CF_COUNT);
        for f in &FAMILIES {
            let mut ro = ReadOptions::default();
            ro.set_verify_checksums(true);
            ro.fill_cache(false);
            ro.set_readahead_size(2 << 20);
            let mut n = 0u64;
            for item in self.db.iterator_cf_opt(self.handle(f.cf), ro, IteratorMode::Start) {
                item?;
                n += 1;
            }
            families.push((f.name, n));
        }
        Ok(VerifyReport { families })
    }

    /// Rebuilds the database under `path` (closed) from the files it finds:
    /// RocksDB `RepairDB`. Tables it cannot read are moved to `lost/` under
    /// `path`, so data in them is gone: restore a backup when one exists.
    pub fn repair(path: &Path) -> Result<()> {
        engine::repair(path)
    }

    /// Writes a consistent copy of the open store into `dir` (which must not
    /// exist): a RocksDB checkpoint, i.e. hard links of the immutable table
    /// files when `dir` is on the same filesystem (else copies) plus a copy of
    /// the MANIFEST and WAL tail. Opening `dir` as a data directory restores it.
    pub fn checkpoint(&self, dir: &Path) -> Result<()> {
        rocksdb::checkpoint::Checkpoint::new(&self.db)?.create_checkpoint(dir)?;
        Ok(())
    }

    /// Compacts every family fully (runs the dedup expiry over every record).
    pub fn compact_all(&self) -> Result<()> {
        for f in &FAMILIES {
            self.db.compact_range_cf(self.handle(f.cf), None::<&[u8]>, None::<&[u8]>);
        }
        Ok(())
    }

    /// The configured dedup retention, ms (0 = forever).
    pub fn dedup_retention_ms(&self) -> u64 {
        self.dedup_retention_ms
    }

    /// The store's clock (what the dedup compaction filter calls "now").
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The configured durability.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// The handle of `cf`.
    pub(crate) fn handle(&self, cf: Cf) -> &ColumnFamily {
        let name = cf.name();
        // Every family in FAMILIES is created at open, so the handle always exists.
        match self.db.cf_handle(name) {
            Some(h) => h,
            None => unreachable!("column family {name} is created at open"),
        }
    }

    /// Writes `batch` atomically, durably per the configured [`Durability`].
    pub fn write(&self, batch: Batch) -> Result<()> {
        let handles: [&ColumnFamily; CF_COUNT] = std::array::from_fn(|i| self.handle(FAMILIES[i].cf));
        // RocksDB's record: a tag, a cf id and two length varints per entry.
        let mut wb = WriteBatch::with_capacity_bytes(12 + batch.bytes() + batch.len() * 16);
        for (cf, key, value) in batch.ops() {
            let h = handles[cf as usize];
            match value {
                Some(v) => wb.put_cf(h, key, v),
                None => wb.delete_cf(h, key),
            }
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(self.durability == Durability::Fsync);
        self.db.write_opt(wb, &wo)?;
        Ok(())
    }

    /// A new empty batch.
    pub fn batch(&self) -> Batch {
        Batch::with_capacity(BATCH_ENTRIES, BATCH_BYTES)
    }

    /// Flushes memtables (used at clean shutdown to shorten the next recovery).
    pub fn flush(&self) -> Result<()> {
        for f in &FAMILIES {
            self.db.flush_cf(self.handle(f.cf))?;
        }
        Ok(())
    }

    /// The raw value at `key` in `cf`.
    pub(crate) fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.handle(cf), key)?)
    }

    /// The record at `key` in `cf`, decoded.
    pub(crate) fn get_decoded<T: prost::Message + Default>(&self, cf: Cf, key: &[u8]) -> Result<Option<T>> {
        match self.db.get_pinned_cf(self.handle(cf), key)? {
            None => Ok(None),
            Some(v) => decode(cf, &v).map(Some),
        }
    }

    /// The records at `keys` in `cf`, decoded, in the order of `keys`: one
    /// batched multi-get (sorted input lets RocksDB share block reads).
    pub(crate) fn multi_get_decoded<T: prost::Message + Default>(
        &self,
        cf: Cf,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<T>>> {
        let h = self.handle(cf);
        let values = self.db.batched_multi_get_cf(h, keys.iter(), false);
        values
            .into_iter()
            .map(|v| match v? {
                None => Ok(None),
                Some(v) => decode(cf, &v).map(Some),
            })
            .collect()
    }

    /// An iterator over `cf` from `seek` in `direction`, within `[lower, upper)`
    /// when given and within the first key component of `seek`.
    pub(crate) fn iter(
        &self,
        cf: Cf,
        seek: &[u8],
        direction: Direction,
        lower: Option<Vec<u8>>,
        upper: Option<Vec<u8>>,
    ) -> DBIterator<'_> {
        let mut ro = ReadOptions::default();
        ro.set_prefix_same_as_start(true);
        if let Some(l) = lower {
            ro.set_iterate_lower_bound(l);
        }
        if let Some(u) = upper {
            ro.set_iterate_upper_bound(u);
        }
        self.db.iterator_cf_opt(self.handle(cf), ro, IteratorMode::From(seek, direction))
    }

    /// The first key of `cf` at or after `seek` in the family's total order,
    /// across owners (the one iterator not bound to the first key component,
    /// for admin listings that walk owners: one seek per owner).
    pub(crate) fn first_key_from(&self, cf: Cf, seek: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut ro = ReadOptions::default();
        ro.set_total_order_seek(true);
        let mut it = self.db.raw_iterator_cf_opt(self.handle(cf), ro);
        it.seek(seek);
        if it.valid() {
            return Ok(it.key().map(<[u8]>::to_vec));
        }
        it.status()?;
        Ok(None)
    }

    /// Keys under `prefix` after `prefix ++ after` (exclusive; "" = from the
    /// start), ascending, at most `limit`: (suffix, value).
    pub(crate) fn scan_suffixes(
        &self,
        cf: Cf,
        prefix: &[u8],
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let mut start = prefix.to_vec();
        start.extend_from_slice(after.as_bytes());
        for item in self.iter(cf, &start, Direction::Forward, None, Some(keys::prefix_end(prefix))) {
            let (k, v) = item?;
            let Some(rest) = k.strip_prefix(prefix) else { break };
            if !after.is_empty() && rest == after.as_bytes() {
                continue;
            }
            let suffix = String::from_utf8(rest.to_vec())
                .map_err(|_| StorageError::Corrupt { cf: cf.name(), detail: "non-utf8 key suffix".into() })?;
            out.push((suffix, v.to_vec()));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Number of keys under `prefix` (a prefix scan).
    pub(crate) fn count_prefix(&self, cf: Cf, prefix: &[u8]) -> Result<usize> {
        let mut n = 0;
        for item in self.iter(cf, prefix, Direction::Forward, None, Some(keys::prefix_end(prefix))) {
            item?;
            n += 1;
        }
        Ok(n)
    }

    /// Number of keys of the whole family `cf` whose key satisfies `keep`: a
    /// full scan in total order (cost O(keys in the family); callers cache it).
    pub(crate) fn count_all(&self, cf: Cf, keep: impl Fn(&[u8]) -> bool) -> Result<u64> {
        let mut ro = ReadOptions::default();
        ro.set_total_order_seek(true);
        ro.fill_cache(false);
        let mut n = 0;
        for item in self.db.iterator_cf_opt(self.handle(cf), ro, IteratorMode::Start) {
            let (k, _) = item?;
            if keep(&k) {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Decodes the values of [`Store::scan_suffixes`] rows.
    pub(crate) fn decode_rows<T: prost::Message + Default>(
        cf: Cf,
        rows: Vec<(String, Vec<u8>)>,
    ) -> Result<Vec<(String, T)>> {
        rows.into_iter().map(|(k, v)| decode(cf, &v).map(|r| (k, r))).collect()
    }
}

#[cfg(test)]
mod tests {
    //! Save points through a real write, and opening a data directory written
    //! with the earlier uniform per-family options.
    use missive_protocol::{ConvId, GroupId, Seq, UserId};

    use super::*;
    use crate::{DedupRecord, GroupMemberRecord, GroupRecord, UserConvRecord};

    fn open(dir: &Path) -> Store {
        Store::open(dir, &StoreOptions { durability: Durability::Buffered, ..Default::default() })
            .expect("open")
    }

    fn conv(s: &str) -> ConvId {
        ConvId::parse(s).expect("valid")
    }

    fn user(s: &str) -> UserId {
        UserId::new(s).expect("valid")
    }

    #[test]
    fn rollback_drops_only_what_was_staged_after_the_save_point() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = open(dir.path());
        let c = conv("p:a:b");
        let a = user("a");
        let mut b = s.batch();
        b.put_message(&c, Seq(1), b"kept");
        b.put_dedup(&c, "a", "d", "m1", &DedupRecord { seq: 1, ..Default::default() });
        let sp = b.save_point();
        b.put_message(&c, Seq(2), b"dropped");
        b.put_dedup(&c, "a", "d", "m2", &DedupRecord { seq: 2, ..Default::default() });
        b.put_user_conv(&a, &c, 0, &UserConvRecord { feed_version: 5, read_seq: 2, ..Default::default() });
        assert_eq!(b.len(), 6);
        b.rollback_to(sp);
        assert_eq!(b.len(), 2);
        s.write(b).expect("write");
        assert_eq!(s.max_seq(&c).expect("read"), Seq(1));
        assert_eq!(s.message(&c, Seq(1)).expect("read").as_deref(), Some(&b"kept"[..]));
        assert_eq!(s.message(&c, Seq(2)).expect("read"), None);
        assert_eq!(s.dedup(&c, "a", "d", "m1", 0).expect("read").map(|d| d.seq), Some(1));
        assert_eq!(s.dedup(&c, "a", "d", "m2", 0).expect("read"), None);
        assert_eq!(s.user_conv(&a, &c).expect("read"), None);
        assert!(s.feed(&a, 0, u64::MAX, 10).expect("read").is_empty());
    }

    #[test]
    fn nested_save_points_and_staging_after_a_rollback() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = open(dir.path());
        let c = conv("g:team");
        let g = GroupId::new("team").expect("valid");
        let (a, bob) = (user("a"), user("bob"));
        let mut b = s.batch();
        b.put_group(&g, &GroupRecord { member_count: 1, ..Default::default() });
        let op1 = b.save_point();
        b.put_group_member(&g, &a, Some(&GroupMemberRecord { role: 3, ..Default::default() }));
        let op2 = b.save_point();
        b.put_group_member(&g, &bob, Some(&GroupMemberRecord::default()));
        b.put_message(&c, Seq(1), b"tip");
        // The inner op is refused: its member and tip go, the outer op stays.
        b.rollback_to(op2);
        let op3 = b.save_point();
        b.put_group_version(&g, 9);
        b.put_message(&c, Seq(1), b"second try");
        // Then the whole outer op is refused: the later token op3 is inside op1.
        b.rollback_to(op1);
        assert_eq!(b.len(), 1);
        b.rollback_to(op3); // past the end now: no effect
        assert_eq!(b.len(), 1);
        // Staging again after the rollback lands normally.
        b.put_group_member(&g, &bob, Some(&GroupMemberRecord { role: 1, ..Default::default() }));
        s.write(b).expect("write");
        assert_eq!(s.group(&g).expect("read").map(|i| i.member_count), Some(1));
        assert_eq!(s.group_version(&g).expect("read"), 0);
        assert_eq!(s.max_seq(&c).expect("read"), Seq(0));
        assert!(s.group_member(&g, "a").expect("read").is_none());
        assert_eq!(s.group_member(&g, "bob").expect("read").map(|m| m.role), Some(1));
        assert!(s.joined_groups(&a, "", 10).expect("read").is_empty());
        assert_eq!(s.joined_groups(&bob, "", 10).expect("read"), vec![g]);
    }

    #[test]
    fn empty_and_fully_rolled_back_batches_write_nothing() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = open(dir.path());
        let c = conv("p:a:b");
        s.write(s.batch()).expect("empty write");
        let mut b = s.batch();
        let sp = b.save_point();
        b.put_message(&c, Seq(1), b"x");
        b.rollback_to(sp);
        assert!(b.is_empty());
        s.write(b).expect("write");
        assert_eq!(s.max_seq(&c).expect("read"), Seq(0));
    }

    /// A data directory written by the store before families had their own
    /// tuning (every family: lz4, 10-bit whole-key bloom, no prefix
    /// extractor), flushed to SST files, opens and reads the same.
    #[test]
    fn opens_a_directory_written_with_the_earlier_uniform_options() {
        let dir = tempfile::tempdir().expect("tmp");
        let c = conv("p:a:b");
        let other = conv("p:a:bb");
        let (a, bob) = (user("a"), user("bob"));
        let g = GroupId::new("g1").expect("valid");
        {
            let mut db_opts = rocksdb::Options::default();
            db_opts.create_if_missing(true);
            db_opts.create_missing_column_families(true);
            db_opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
            let cache = rocksdb::Cache::new_lru_cache(1 << 20);
            let cfs = FAMILIES.iter().map(|f| {
                let mut o = rocksdb::Options::default();
                o.set_compression_type(rocksdb::DBCompressionType::Lz4);
                let mut bb = rocksdb::BlockBasedOptions::default();
                bb.set_block_cache(&cache);
                bb.set_bloom_filter(10.0, false);
                o.set_block_based_table_factory(&bb);
                rocksdb::ColumnFamilyDescriptor::new(f.name, o)
            });
            let db = DB::open_cf_descriptors(&db_opts, dir.path(), cfs).expect("open legacy");
            let legacy =
                Store::wrap(db, &StoreOptions { durability: Durability::Buffered, ..Default::default() });
            let mut b = legacy.batch();
            for i in 1..=50u64 {
                b.put_message(&c, Seq(i), format!("m{i}").as_bytes());
            }
            b.put_message(&other, Seq(1), b"x");
            b.put_dedup(&c, "a", "d", "m1", &DedupRecord { seq: 1, ..Default::default() });
            b.put_user_conv(&a, &c, 0, &UserConvRecord { feed_version: 3, ..Default::default() });
            b.put_group_member(&g, &bob, Some(&GroupMemberRecord { role: 2, ..Default::default() }));
            b.put_version_mark(0, 3);
            legacy.write(b).expect("write");
            legacy.flush().expect("flush");
        }
        let s = open(dir.path());
        assert_eq!(s.max_seq(&c).expect("read"), Seq(50));
        assert_eq!(s.max_seq(&other).expect("read"), Seq(1));
        assert_eq!(s.max_seq(&conv("p:a:c")).expect("read"), Seq(0));
        let page = s.messages(&c, Seq(10), Seq(12), 10, usize::MAX).expect("scan");
        assert_eq!(page.rows.iter().map(|(q, _)| q.0).collect::<Vec<_>>(), vec![10, 11, 12]);
        assert_eq!(s.messages_before(&c, Seq(51), Seq(49), 10, usize::MAX).expect("scan").rows.len(), 2);
        assert_eq!(s.dedup(&c, "a", "d", "m1", 0).expect("read").map(|d| d.seq), Some(1));
        assert_eq!(s.feed(&a, 0, u64::MAX, 10).expect("feed").len(), 1);
        assert_eq!(s.group_member(&g, "bob").expect("read").map(|m| m.role), Some(2));
        assert_eq!(s.joined_groups(&bob, "", 10).expect("read"), vec![g.clone()]);
        assert_eq!(s.max_version().expect("read"), 3);
        // New writes next to the old files, flushed with the new tuning, read together.
        let mut b = s.batch();
        b.put_message(&c, Seq(51), b"m51");
        s.write(b).expect("write");
        s.flush().expect("flush");
        assert_eq!(s.max_seq(&c).expect("read"), Seq(51));
        assert_eq!(s.messages(&c, Seq(49), Seq(u64::MAX), 10, usize::MAX).expect("scan").rows.len(), 3);
    }
}
