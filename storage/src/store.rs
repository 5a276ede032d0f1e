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
//!   to the batch's partition (`layout`), synced per the configured
//!   [`Durability`]. A batch never spans partitions.
//! - Every key lives in one partition (its owner shard's), so a point read
//!   takes the first partition that has the key and a scan merges the
//!   partitions' iterators in key order ([`StoreIter`]); with one partition
//!   both are RocksDB's own.
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

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{ColumnFamily, DB, DBIterator, Direction, IteratorMode, ReadOptions, WriteBatch, WriteOptions};

use crate::batch::Batch;
use crate::engine::{self, CF_COUNT, Cf, Clock, Durability, FAMILIES, StoreOptions};
use crate::keys;
use crate::layout;
use crate::{Result, StorageError};

/// The open database. Cheap to clone; safe to share between threads.
#[derive(Clone)]
pub struct Store {
    /// One RocksDB instance per partition, in partition order (`layout`).
    parts: Arc<Vec<DB>>,
    /// The data directory (partition 0).
    path: PathBuf,
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
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("partitions", &self.parts.len())
            .field("durability", &self.durability)
            .finish()
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
    /// Opens (creating if needed) the database under `path`: every partition
    /// (a new store gets `opts.partitions`, an existing one keeps its own).
    pub fn open(path: &Path, opts: &StoreOptions) -> Result<Self> {
        let n = layout::open(path, opts.partitions)?;
        let per = per_partition(opts, n);
        let cache = engine::block_cache(opts);
        // Last partition first: a new store's partition 0 (whose CURRENT
        // marks an existing store, `layout::open`) is created after the others.
        let mut parts = (0..n)
            .rev()
            .map(|k| engine::open(&layout::part_dir(path, k), &per, &cache))
            .collect::<Result<Vec<_>>>()?;
        parts.reverse();
        Ok(Self::wrap(parts, path, opts))
    }

    fn wrap(parts: Vec<DB>, path: &Path, opts: &StoreOptions) -> Self {
        Self {
            parts: Arc::new(parts),
            path: path.to_path_buf(),
            durability: opts.durability,
            dedup_retention_ms: opts.dedup_retention_ms,
            clock: opts.clock.clone(),
        }
    }

    /// Opens the database under `path` read-only and verifies it
    /// ([`Store::verify`]); the `missive verify` command.
    pub fn verify_dir(path: &Path, opts: &StoreOptions) -> Result<VerifyReport> {
        let n = layout::existing(path)?;
        let per = per_partition(opts, n);
        let cache = engine::block_cache(opts);
        let parts = (0..n)
            .map(|k| engine::open_read_only(&layout::part_dir(path, k), &per, &cache))
            .collect::<Result<_>>()?;
        Self::wrap(parts, path, opts).verify()
    }

    /// Number of partitions (RocksDB instances, each with its own WAL).
    pub fn partitions(&self) -> usize {
        self.parts.len()
    }

    /// Reads every live entry of every family with block checksums checked,
    /// bypassing the block cache: a flipped bit in any SST data block, index
    /// or the WAL becomes an error naming the file. Cost: one sequential read
    /// of the whole store.
    pub fn verify(&self) -> Result<VerifyReport> {
        let mut families = Vec::with_capacity(CF_COUNT);
        for f in &FAMILIES {
            let mut n = 0u64;
            for db in self.parts.iter() {
                let mut ro = ReadOptions::default();
                ro.set_verify_checksums(true);
                ro.fill_cache(false);
                ro.set_readahead_size(2 << 20);
                for item in db.iterator_cf_opt(handle(db, f.cf), ro, IteratorMode::Start) {
                    item?;
                    n += 1;
                }
            }
            families.push((f.name, n));
        }
        Ok(VerifyReport { families })
    }

    /// Rebuilds the database under `path` (closed) from the files it finds:
    /// RocksDB `RepairDB`. Tables it cannot read are moved to `lost/` under
    /// `path`, so data in them is gone: restore a backup when one exists.
    pub fn repair(path: &Path) -> Result<()> {
        for k in 0..layout::existing(path)? {
            engine::repair(&layout::part_dir(path, k))?;
        }
        Ok(())
    }

    /// Writes a consistent copy of the open store into `dir` (which must not
    /// exist): a RocksDB checkpoint, i.e. hard links of the immutable table
    /// files when `dir` is on the same filesystem (else copies) plus a copy of
    /// the MANIFEST and WAL tail. Opening `dir` as a data directory restores it.
    /// With several partitions each is checkpointed in turn (partition `k`
    /// into `part-k`, with the `PARTITIONS` record) under `dir.partial`,
    /// which is renamed to `dir` once complete, so `dir` never holds part of
    /// a store: every partition is consistent, and together they are what a
    /// crash at the moment of each partition's checkpoint would have left.
    pub fn checkpoint(&self, dir: &Path) -> Result<()> {
        if let [db] = self.parts.as_slice() {
            // RocksDB builds it under a temporary name and renames it itself.
            rocksdb::checkpoint::Checkpoint::new(db)?.create_checkpoint(dir)?;
            return Ok(());
        }
        let io =
            |what: &str, e: std::io::Error| StorageError::Layout(format!("{}: {what}: {e}", dir.display()));
        let partial = PathBuf::from(format!("{}.partial", dir.display()));
        if partial.exists() {
            return Err(StorageError::Layout(format!(
                "{} exists (an interrupted backup): remove it first",
                partial.display()
            )));
        }
        for (k, db) in self.parts.iter().enumerate() {
            rocksdb::checkpoint::Checkpoint::new(db)?.create_checkpoint(layout::part_dir(&partial, k))?;
            if k == 0 {
                layout::record(&partial, self.parts.len())?;
            }
        }
        std::fs::rename(&partial, dir).map_err(|e| io("cannot rename the finished backup", e))?;
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("cannot sync its parent", e))?;
        Ok(())
    }

    /// Compacts every family fully (runs the dedup expiry over every record).
    pub fn compact_all(&self) -> Result<()> {
        for db in self.parts.iter() {
            for f in &FAMILIES {
                db.compact_range_cf(handle(db, f.cf), None::<&[u8]>, None::<&[u8]>);
            }
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

    /// Writes `batch` atomically to its partition, durably per the configured
    /// [`Durability`].
    pub fn write(&self, batch: Batch) -> Result<()> {
        let db = &self.parts[batch.part % self.parts.len()];
        let handles: [&ColumnFamily; CF_COUNT] = std::array::from_fn(|i| handle(db, FAMILIES[i].cf));
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
        db.write_opt(wb, &wo)?;
        Ok(())
    }

    /// A new empty batch for partition 0: the writers outside the shards
    /// (the API edge, webhooks, the word filter), whose keys no shard writes.
    pub fn batch(&self) -> Batch {
        Batch::with_capacity(BATCH_ENTRIES, BATCH_BYTES)
    }

    /// A new empty batch for the partition of shard `shard`
    /// (`shard % partitions`): the shard's own keys live there.
    pub fn batch_for(&self, shard: usize) -> Batch {
        self.batch_in(shard % self.parts.len())
    }

    /// A new empty batch for partition `partition` (below
    /// [`Store::partitions`]; larger values wrap): for a writer outside the
    /// shards that changes a record where it lives (`Store::ops_partition`).
    pub fn batch_in(&self, partition: usize) -> Batch {
        let mut b = self.batch();
        b.part = partition % self.parts.len();
        b
    }

    /// One empty batch per partition, for a writer outside the shards whose
    /// changes land where each record lives; write them with
    /// [`Store::write_each`].
    pub fn batch_per_partition(&self) -> Vec<Batch> {
        (0..self.parts.len()).map(|k| self.batch_in(k)).collect()
    }

    /// Writes each non-empty batch of `batches` (one atomic write per
    /// partition, not across them).
    pub fn write_each(&self, batches: Vec<Batch>) -> Result<()> {
        batches.into_iter().filter(|b| !b.is_empty()).try_for_each(|b| self.write(b))
    }

    /// The partition holding `key` in `cf`, if any (with one partition, 0
    /// without a read).
    pub(crate) fn partition_of(&self, cf: Cf, key: &[u8]) -> Result<Option<usize>> {
        if self.parts.len() == 1 {
            return Ok(Some(0));
        }
        for (k, db) in self.parts.iter().enumerate() {
            if db.get_pinned_cf(handle(db, cf), key)?.is_some() {
                return Ok(Some(k));
            }
        }
        Ok(None)
    }

    /// Flushes memtables (used at clean shutdown to shorten the next recovery).
    pub fn flush(&self) -> Result<()> {
        for db in self.parts.iter() {
            for f in &FAMILIES {
                db.flush_cf(handle(db, f.cf))?;
            }
        }
        Ok(())
    }

    /// The raw value at `key` in `cf` (the first partition holding it).
    pub(crate) fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        for db in self.parts.iter() {
            if let Some(v) = db.get_cf(handle(db, cf), key)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// The record at `key` in `cf`, decoded.
    pub(crate) fn get_decoded<T: prost::Message + Default>(&self, cf: Cf, key: &[u8]) -> Result<Option<T>> {
        for db in self.parts.iter() {
            if let Some(v) = db.get_pinned_cf(handle(db, cf), key)? {
                return decode(cf, &v).map(Some);
            }
        }
        Ok(None)
    }

    /// The records at `keys` in `cf`, decoded, in the order of `keys`: one
    /// batched multi-get (sorted input lets RocksDB share block reads).
    pub(crate) fn multi_get_decoded<T: prost::Message + Default>(
        &self,
        cf: Cf,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<T>>> {
        let mut out: Vec<Option<T>> = Vec::with_capacity(keys.len());
        out.resize_with(keys.len(), || None);
        for db in self.parts.iter() {
            let values = db.batched_multi_get_cf(handle(db, cf), keys.iter(), false);
            for (slot, v) in out.iter_mut().zip(values) {
                if let (None, Some(v)) = (slot.as_ref(), v?) {
                    *slot = Some(decode(cf, &v)?);
                }
            }
        }
        Ok(out)
    }

    /// An iterator over `cf` from `seek` in `direction`, within `[lower, upper)`
    /// when given and within the first key component of `seek`.
    pub(crate) fn iter(
        &self,
        cf: Cf,
        seek: &[u8],
        direction: Direction,
        mut lower: Option<Vec<u8>>,
        mut upper: Option<Vec<u8>>,
    ) -> StoreIter<'_> {
        let last = self.parts.len() - 1;
        let its = self
            .parts
            .iter()
            .enumerate()
            .map(|(k, db)| {
                let mut ro = ReadOptions::default();
                ro.set_prefix_same_as_start(true);
                // The bounds are copied for every partition but the last, which takes them.
                let (l, u) =
                    if k == last { (lower.take(), upper.take()) } else { (lower.clone(), upper.clone()) };
                if let Some(l) = l {
                    ro.set_iterate_lower_bound(l);
                }
                if let Some(u) = u {
                    ro.set_iterate_upper_bound(u);
                }
                db.iterator_cf_opt(handle(db, cf), ro, IteratorMode::From(seek, direction))
            })
            .collect();
        StoreIter::new(its, matches!(direction, Direction::Forward))
    }

    /// The first key of `cf` at or after `seek` in the family's total order,
    /// across owners (the one iterator not bound to the first key component,
    /// for admin listings that walk owners: one seek per owner).
    pub(crate) fn first_key_from(&self, cf: Cf, seek: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut first: Option<Vec<u8>> = None;
        for db in self.parts.iter() {
            let mut ro = ReadOptions::default();
            ro.set_total_order_seek(true);
            let mut it = db.raw_iterator_cf_opt(handle(db, cf), ro);
            it.seek(seek);
            if it.valid() {
                if let Some(k) = it.key()
                    && first.as_deref().is_none_or(|f| k < f)
                {
                    first = Some(k.to_vec());
                }
            } else {
                it.status()?;
            }
        }
        Ok(first)
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
        let mut n = 0;
        for db in self.parts.iter() {
            let mut ro = ReadOptions::default();
            ro.set_total_order_seek(true);
            ro.fill_cache(false);
            for item in db.iterator_cf_opt(handle(db, cf), ro, IteratorMode::Start) {
                let (k, _) = item?;
                if keep(&k) {
                    n += 1;
                }
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

/// The handle of `cf` in `db`.
fn handle(db: &DB, cf: Cf) -> &ColumnFamily {
    let name = cf.name();
    // Every family in FAMILIES is created at open, so the handle always exists.
    match db.cf_handle(name) {
        Some(h) => h,
        None => unreachable!("column family {name} is created at open"),
    }
}

/// Each partition's share of the memory and WAL budgets of `opts` (totals).
fn per_partition(opts: &StoreOptions, n: usize) -> StoreOptions {
    const MIB: usize = 1 << 20;
    let n = n.max(1);
    let wb = opts.write_buffer_bytes;
    // At least 1 MiB per memtable unless the total itself is smaller.
    let write_buffer_bytes = (wb / n).max(wb.min(MIB));
    let max_wal_bytes = if opts.max_wal_bytes == 0 {
        0
    } else {
        (opts.max_wal_bytes / n as u64).max(write_buffer_bytes as u64)
    };
    StoreOptions { write_buffer_bytes, max_wal_bytes, ..opts.clone() }
}

/// One row of a scan: key and value.
type Row = std::result::Result<(Box<[u8]>, Box<[u8]>), rocksdb::Error>;

/// A scan over every partition in key order ([`Store::iter`]): RocksDB's own
/// iterator with one partition; with several, the smallest (forward) or
/// largest (reverse) head of the partitions' iterators next. An error is
/// returned as soon as any partition reports it.
pub(crate) struct StoreIter<'a> {
    its: Vec<DBIterator<'a>>,
    /// The next row of each iterator when merging (empty with one partition).
    heads: Vec<Option<Row>>,
    forward: bool,
}

impl<'a> StoreIter<'a> {
    fn new(mut its: Vec<DBIterator<'a>>, forward: bool) -> Self {
        let heads = if its.len() > 1 { its.iter_mut().map(Iterator::next).collect() } else { Vec::new() };
        Self { its, heads, forward }
    }
}

impl Iterator for StoreIter<'_> {
    type Item = Row;

    fn next(&mut self) -> Option<Row> {
        if self.its.len() == 1 {
            return self.its[0].next();
        }
        let mut best: Option<usize> = None;
        for (i, head) in self.heads.iter().enumerate() {
            match head {
                None => {}
                Some(Err(_)) => {
                    best = Some(i);
                    break;
                }
                Some(Ok((k, _))) => {
                    let better = match best.and_then(|b| self.heads[b].as_ref()) {
                        Some(Ok((bk, _))) => {
                            if self.forward {
                                k < bk
                            } else {
                                k > bk
                            }
                        }
                        _ => true,
                    };
                    if better {
                        best = Some(i);
                    }
                }
            }
        }
        let i = best?;
        let row = self.heads[i].take();
        if matches!(row, Some(Err(_))) {
            // A failed iterator stops: the caller sees the error once.
            self.its.clear();
            self.heads.clear();
            return row;
        }
        self.heads[i] = self.its[i].next();
        row
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

    /// Two partitions: each shard's batch lands in its own RocksDB instance
    /// (its own WAL), and reads see one store: point reads find a key in
    /// either, scans of one user merge both in key order both ways, and a
    /// checkpoint, `verify_dir` and a reopen keep the layout.
    #[test]
    fn two_partitions_read_as_one_store() {
        use crate::layout::{PARTITIONS_FILE, part_dir};
        let dir = tempfile::tempdir().expect("tmp");
        let data = dir.path().join("data");
        let opts = StoreOptions { durability: Durability::Buffered, partitions: 2, ..Default::default() };
        let s = Store::open(&data, &opts).expect("open");
        assert_eq!(s.partitions(), 2);
        let u = user("u");
        // Conversations owned by shard 0 and shard 1 (their uconv and feed
        // entries of u are written by the conversation's owner).
        let (c1, c2, c3) = (conv("p:a:u"), conv("p:b:u"), conv("p:c:u"));
        let mut b0 = s.batch_for(0);
        b0.put_user_conv(&u, &c1, 0, &UserConvRecord { feed_version: 5, read_seq: 1, ..Default::default() });
        b0.put_user_conv(&u, &c3, 0, &UserConvRecord { feed_version: 7, read_seq: 3, ..Default::default() });
        b0.put_message(&c1, Seq(1), b"one");
        s.write(b0).expect("write 0");
        let mut b1 = s.batch_for(3); // shard 3 of 4 workers: partition 1
        b1.put_user_conv(&u, &c2, 0, &UserConvRecord { feed_version: 3, read_seq: 2, ..Default::default() });
        b1.put_message(&c2, Seq(1), b"two");
        b1.put_message(&c2, Seq(2), b"three");
        s.write(b1).expect("write 1");
        assert!(part_dir(&data, 1).join("CURRENT").is_file());

        let check = |s: &Store| {
            assert_eq!(s.user_conv(&u, &c2).expect("read").map(|r| r.read_seq), Some(2));
            assert_eq!(s.user_conv(&u, &c3).expect("read").map(|r| r.read_seq), Some(3));
            let many = s.user_conv_many(&[u.clone(), user("nobody")], &c2).expect("read");
            assert_eq!(
                many.iter().map(|r| r.as_ref().map(|r| r.read_seq)).collect::<Vec<_>>(),
                [Some(2), None]
            );
            let feed = s.feed(&u, 0, u64::MAX, 10).expect("feed");
            assert_eq!(
                feed.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
                [3, 5, 7],
                "merged in version order"
            );
            assert_eq!(s.feed(&u, 3, u64::MAX, 1).expect("feed").len(), 1, "a limit stops the merge");
            assert_eq!(s.max_seq(&c2).expect("read"), Seq(2));
            let newest = s.messages_before(&c2, Seq(3), Seq(0), 10, usize::MAX).expect("scan");
            assert_eq!(newest.rows.iter().map(|(q, _)| q.0).collect::<Vec<_>>(), [2, 1]);
            let all = s.user_convs(&u, "", 10).expect("scan");
            assert_eq!(all.len(), 3);
        };
        check(&s);
        let backup = dir.path().join("backup");
        s.checkpoint(&backup).expect("checkpoint");
        assert_eq!(std::fs::read_to_string(backup.join(PARTITIONS_FILE)).expect("file"), "2\n");
        let report = Store::verify_dir(&backup, &opts).expect("verify");
        assert_eq!(report.families.iter().find(|(f, _)| *f == "msg").map(|(_, n)| *n), Some(3));
        drop(s);
        // A reopen asking for one partition keeps the recorded two.
        let again = Store::open(&data, &StoreOptions { partitions: 1, ..opts.clone() }).expect("reopen");
        assert_eq!(again.partitions(), 2);
        check(&again);
        let restored = Store::open(&backup, &opts).expect("open the backup");
        check(&restored);
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
            let legacy = Store::wrap(
                vec![db],
                dir.path(),
                &StoreOptions { durability: Durability::Buffered, ..Default::default() },
            );
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
