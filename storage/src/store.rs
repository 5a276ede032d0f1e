//! The RocksDB handle, reads, and atomic write batches.

use std::path::Path;
use std::sync::Arc;

use missive_protocol::{ConvId, Seq, UserId};
use prost::Message as _;
use rocksdb::{
    BlockBasedOptions, ColumnFamily, ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options,
    ReadOptions, WriteBatch, WriteOptions,
};

use crate::keys;
use crate::records::{DedupRecord, DeviceRecord, FeedRecord, SettingsRecord, UserConvRecord};
use crate::{Result, StorageError};

const CF_MSG: &str = "msg";
const CF_DEDUP: &str = "dedup";
const CF_UCONV: &str = "uconv";
const CF_FEED: &str = "feed";
const CF_USER: &str = "user";
const CF_META: &str = "meta";
const ALL_CFS: [&str; 6] = [CF_MSG, CF_DEDUP, CF_UCONV, CF_FEED, CF_USER, CF_META];

/// When a write counts as durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// WAL written and fsynced before [`Store::write`] returns. Survives power loss.
    #[default]
    Fsync,
    /// WAL written to the OS (no fsync). Survives a process crash, not power loss.
    Buffered,
}

/// Tuning knobs with their memory cost.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Durability of every write.
    pub durability: Durability,
    /// Shared block cache in bytes (memory cost: up to this much RSS).
    pub block_cache_bytes: usize,
    /// Memtable size per column family (memory cost: up to ~2x this per cf).
    pub write_buffer_bytes: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self { durability: Durability::Fsync, block_cache_bytes: 64 << 20, write_buffer_bytes: 32 << 20 }
    }
}

/// The open database. Cheap to clone; safe to share between threads.
#[derive(Clone)]
pub struct Store {
    db: Arc<DB>,
    durability: Durability,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.db.path()).field("durability", &self.durability).finish()
    }
}

fn decode<T: prost::Message + Default>(cf: &'static str, bytes: &[u8]) -> Result<T> {
    T::decode(bytes).map_err(|e| StorageError::Corrupt { cf, detail: e.to_string() })
}

impl Store {
    /// Opens (creating if needed) the database under `path`.
    pub fn open(path: &Path, opts: &StoreOptions) -> Result<Self> {
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        db_opts.set_max_background_jobs(2);
        db_opts.set_bytes_per_sync(1 << 20);
        let cache = rocksdb::Cache::new_lru_cache(opts.block_cache_bytes);
        let cfs = ALL_CFS.iter().map(|name| {
            let mut o = Options::default();
            o.set_compression_type(rocksdb::DBCompressionType::Lz4);
            o.set_write_buffer_size(opts.write_buffer_bytes);
            let mut bb = BlockBasedOptions::default();
            bb.set_block_cache(&cache);
            bb.set_bloom_filter(10.0, false);
            o.set_block_based_table_factory(&bb);
            ColumnFamilyDescriptor::new(*name, o)
        });
        let db = DB::open_cf_descriptors(&db_opts, path, cfs)?;
        Ok(Self { db: Arc::new(db), durability: opts.durability })
    }

    /// The configured durability.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    fn cf(&self, name: &'static str) -> &ColumnFamily {
        // Every cf in ALL_CFS is created at open, so the handle always exists.
        match self.db.cf_handle(name) {
            Some(cf) => cf,
            None => unreachable!("column family {name} is created at open"),
        }
    }

    /// Writes `batch` atomically, durably per the configured [`Durability`].
    pub fn write(&self, batch: Batch) -> Result<()> {
        let mut wo = WriteOptions::default();
        wo.set_sync(self.durability == Durability::Fsync);
        self.db.write_opt(batch.inner, &wo)?;
        Ok(())
    }

    /// A new empty batch.
    pub fn batch(&self) -> Batch {
        Batch { store: self.clone(), inner: WriteBatch::default() }
    }

    /// Highest seq stored for `conv` (`Seq(0)` if empty), read from the log.
    pub fn max_seq(&self, conv: &ConvId) -> Result<Seq> {
        let prefix = keys::msg_prefix(conv);
        let end = keys::prefix_end(&prefix);
        let mut it = self.db.iterator_cf(self.cf(CF_MSG), IteratorMode::From(&end, Direction::Reverse));
        match it.next() {
            None => Ok(Seq(0)),
            Some(item) => {
                let (k, _) = item?;
                Ok(keys::msg_seq(&prefix, &k).unwrap_or(Seq(0)))
            }
        }
    }

    /// The encoded message at (`conv`, `seq`).
    pub fn message(&self, conv: &ConvId, seq: Seq) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(CF_MSG), keys::msg(conv, seq))?)
    }

    /// Messages of `conv` with `from <= seq <= to`, ascending, at most `limit`.
    pub fn messages(&self, conv: &ConvId, from: Seq, to: Seq, limit: usize) -> Result<Vec<(Seq, Vec<u8>)>> {
        let mut out = Vec::new();
        if from > to || limit == 0 {
            return Ok(out);
        }
        let prefix = keys::msg_prefix(conv);
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(keys::msg(conv, Seq(to.0.saturating_add(1))));
        if to.0 == u64::MAX {
            ro.set_iterate_upper_bound(keys::prefix_end(&prefix));
        }
        let start = keys::msg(conv, from);
        let it = self.db.iterator_cf_opt(self.cf(CF_MSG), ro, IteratorMode::From(&start, Direction::Forward));
        for item in it {
            let (k, v) = item?;
            let Some(seq) = keys::msg_seq(&prefix, &k) else { break };
            out.push((seq, v.into_vec()));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Messages of `conv` with `min <= seq < before`, newest first, at most `limit`.
    pub fn messages_before(
        &self,
        conv: &ConvId,
        before: Seq,
        min: Seq,
        limit: usize,
    ) -> Result<Vec<(Seq, Vec<u8>)>> {
        let mut out = Vec::new();
        if before <= min || limit == 0 {
            return Ok(out);
        }
        let prefix = keys::msg_prefix(conv);
        let mut ro = ReadOptions::default();
        ro.set_iterate_lower_bound(keys::msg(conv, min));
        let start = keys::msg(conv, Seq(before.0 - 1));
        let it = self.db.iterator_cf_opt(self.cf(CF_MSG), ro, IteratorMode::From(&start, Direction::Reverse));
        for item in it {
            let (k, v) = item?;
            let Some(seq) = keys::msg_seq(&prefix, &k) else { break };
            out.push((seq, v.into_vec()));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// The ack recorded for an idempotency key, if that send was stored.
    pub fn dedup(
        &self,
        conv: &ConvId,
        sender: &str,
        device: &str,
        client_msg_id: &str,
    ) -> Result<Option<DedupRecord>> {
        match self.db.get_pinned_cf(self.cf(CF_DEDUP), keys::dedup(conv, sender, device, client_msg_id))? {
            None => Ok(None),
            Some(v) => decode(CF_DEDUP, &v).map(Some),
        }
    }

    /// A user's state in a conversation (`None` if never touched).
    pub fn user_conv(&self, user: &UserId, conv: &ConvId) -> Result<Option<UserConvRecord>> {
        match self.db.get_pinned_cf(self.cf(CF_UCONV), keys::user_conv(user, conv))? {
            None => Ok(None),
            Some(v) => decode(CF_UCONV, &v).map(Some),
        }
    }

    /// Feed entries of `user` with `after < version <= upto`, ascending, at most `limit`.
    pub fn feed(&self, user: &UserId, after: u64, upto: u64, limit: usize) -> Result<Vec<(u64, FeedRecord)>> {
        let mut out = Vec::new();
        if after >= upto || limit == 0 {
            return Ok(out);
        }
        let prefix = keys::feed_prefix(user);
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(keys::feed(user, upto.saturating_add(1)));
        if upto == u64::MAX {
            ro.set_iterate_upper_bound(keys::prefix_end(&prefix));
        }
        let start = keys::feed(user, after.saturating_add(1));
        let it =
            self.db.iterator_cf_opt(self.cf(CF_FEED), ro, IteratorMode::From(&start, Direction::Forward));
        for item in it {
            let (k, v) = item?;
            let Some(rest) = k.strip_prefix(prefix.as_slice()) else { break };
            let Ok(arr) = <[u8; 8]>::try_from(rest) else {
                return Err(StorageError::Corrupt { cf: CF_FEED, detail: "bad key".into() });
            };
            out.push((u64::from_be_bytes(arr), decode(CF_FEED, &v)?));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// A user's settings (default if never set).
    pub fn settings(&self, user: &UserId) -> Result<SettingsRecord> {
        match self.db.get_pinned_cf(self.cf(CF_USER), keys::user_settings(user))? {
            None => Ok(SettingsRecord::default()),
            Some(v) => decode(CF_USER, &v),
        }
    }

    /// A device's record, if the device ever logged in.
    pub fn device(&self, user: &UserId, device: &str) -> Result<Option<DeviceRecord>> {
        match self.db.get_pinned_cf(self.cf(CF_USER), keys::user_device(user, device))? {
            None => Ok(None),
            Some(v) => decode(CF_USER, &v).map(Some),
        }
    }

    /// The highest feed version any shard ever committed (0 for a new store).
    pub fn max_version(&self) -> Result<u64> {
        let prefix = keys::version_mark_prefix();
        let mut max = 0;
        let it = self.db.prefix_iterator_cf(self.cf(CF_META), &prefix);
        for item in it {
            let (k, v) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            let arr = <[u8; 8]>::try_from(&v[..])
                .map_err(|_| StorageError::Corrupt { cf: CF_META, detail: "bad version mark".into() })?;
            max = max.max(u64::from_be_bytes(arr));
        }
        Ok(max)
    }

    /// Flushes memtables (used at clean shutdown to shorten the next recovery).
    pub fn flush(&self) -> Result<()> {
        for name in ALL_CFS {
            self.db.flush_cf(self.cf(name))?;
        }
        Ok(())
    }
}

/// An atomic set of mutations, written by [`Store::write`].
pub struct Batch {
    store: Store,
    inner: WriteBatch,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch").field("ops", &self.inner.len()).finish()
    }
}

impl Batch {
    /// Number of mutations in the batch.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether the batch has no mutation.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Appends an encoded message to a conversation log.
    pub fn put_message(&mut self, conv: &ConvId, seq: Seq, encoded: &[u8]) {
        self.inner.put_cf(self.store.cf(CF_MSG), keys::msg(conv, seq), encoded);
    }

    /// Records the ack of an idempotency key.
    pub fn put_dedup(
        &mut self,
        conv: &ConvId,
        sender: &str,
        device: &str,
        client_msg_id: &str,
        rec: &DedupRecord,
    ) {
        self.inner.put_cf(
            self.store.cf(CF_DEDUP),
            keys::dedup(conv, sender, device, client_msg_id),
            rec.encode_to_vec(),
        );
    }

    /// Stores a user's conversation state and moves its feed entry from
    /// `rec.feed_version` (as previously stored, `old_version`) to the new one.
    pub fn put_user_conv(&mut self, user: &UserId, conv: &ConvId, old_version: u64, rec: &UserConvRecord) {
        if old_version != 0 && old_version != rec.feed_version {
            self.inner.delete_cf(self.store.cf(CF_FEED), keys::feed(user, old_version));
        }
        if rec.feed_version != 0 {
            let item = FeedRecord { conv_id: conv.as_str().to_owned() };
            self.inner.put_cf(
                self.store.cf(CF_FEED),
                keys::feed(user, rec.feed_version),
                item.encode_to_vec(),
            );
        }
        self.inner.put_cf(self.store.cf(CF_UCONV), keys::user_conv(user, conv), rec.encode_to_vec());
    }

    /// Stores a user's settings and moves their feed entry.
    pub fn put_settings(&mut self, user: &UserId, old_version: u64, rec: &SettingsRecord) {
        if old_version != 0 && old_version != rec.feed_version {
            self.inner.delete_cf(self.store.cf(CF_FEED), keys::feed(user, old_version));
        }
        if rec.feed_version != 0 {
            let item = FeedRecord { conv_id: String::new() };
            self.inner.put_cf(
                self.store.cf(CF_FEED),
                keys::feed(user, rec.feed_version),
                item.encode_to_vec(),
            );
        }
        self.inner.put_cf(self.store.cf(CF_USER), keys::user_settings(user), rec.encode_to_vec());
    }

    /// Stores a device record.
    pub fn put_device(&mut self, user: &UserId, device: &str, rec: &DeviceRecord) {
        self.inner.put_cf(self.store.cf(CF_USER), keys::user_device(user, device), rec.encode_to_vec());
    }

    /// Records the highest feed version this shard has written.
    pub fn put_version_mark(&mut self, shard: u32, version: u64) {
        self.inner.put_cf(self.store.cf(CF_META), keys::version_mark(shard), version.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path) -> Store {
        Store::open(dir, &StoreOptions { durability: Durability::Buffered, ..Default::default() })
            .expect("open")
    }

    fn conv(s: &str) -> ConvId {
        ConvId::parse(s).expect("valid")
    }

    #[test]
    fn log_append_scan_and_recover_max_seq() {
        let dir = tempfile::tempdir().expect("tmp");
        let c = conv("p:a:b");
        let other = conv("p:a:bb");
        {
            let s = open(dir.path());
            assert_eq!(s.max_seq(&c).expect("read"), Seq(0));
            let mut b = s.batch();
            for i in 1..=300u64 {
                b.put_message(&c, Seq(i), format!("m{i}").as_bytes());
            }
            b.put_message(&other, Seq(1), b"x");
            s.write(b).expect("write");
            assert_eq!(s.max_seq(&c).expect("read"), Seq(300));
        }
        let s = open(dir.path());
        assert_eq!(s.max_seq(&c).expect("read"), Seq(300));
        let page = s.messages(&c, Seq(255), Seq(260), 100).expect("scan");
        assert_eq!(page.iter().map(|(q, _)| q.0).collect::<Vec<_>>(), vec![255, 256, 257, 258, 259, 260]);
        assert_eq!(page[0].1, b"m255");
        let limited = s.messages(&c, Seq(1), Seq(u64::MAX), 3).expect("scan");
        assert_eq!(limited.len(), 3);
        let back = s.messages_before(&c, Seq(301), Seq(295), 100).expect("scan");
        assert_eq!(back.iter().map(|(q, _)| q.0).collect::<Vec<_>>(), vec![300, 299, 298, 297, 296, 295]);
        assert!(s.messages_before(&c, Seq(1), Seq(0), 10).expect("scan").is_empty());
        assert_eq!(s.max_seq(&other).expect("read"), Seq(1));
    }

    #[test]
    fn feed_moves_keep_one_entry_per_conversation() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = open(dir.path());
        let u = UserId::new("a").expect("valid");
        let c1 = conv("p:a:b");
        let c2 = conv("p:a:c");
        let mut rec = UserConvRecord { feed_version: 1, ..Default::default() };
        let mut b = s.batch();
        b.put_user_conv(&u, &c1, 0, &rec);
        b.put_user_conv(&u, &c2, 0, &UserConvRecord { feed_version: 2, ..Default::default() });
        b.put_version_mark(0, 2);
        s.write(b).expect("write");
        let old = rec.feed_version;
        rec.feed_version = 3;
        rec.read_seq = 9;
        let mut b = s.batch();
        b.put_user_conv(&u, &c1, old, &rec);
        b.put_version_mark(1, 3);
        s.write(b).expect("write");
        let all = s.feed(&u, 0, u64::MAX, 100).expect("feed");
        assert_eq!(
            all.iter().map(|(v, r)| (*v, r.conv_id.as_str())).collect::<Vec<_>>(),
            vec![(2, "p:a:c"), (3, "p:a:b")]
        );
        assert_eq!(s.feed(&u, 2, 2, 100).expect("feed").len(), 0);
        assert_eq!(s.feed(&u, 0, 2, 100).expect("feed").len(), 1);
        assert_eq!(s.user_conv(&u, &c1).expect("get"), Some(rec));
        assert_eq!(s.max_version().expect("max"), 3);
    }

    #[test]
    fn dedup_and_settings_round_trip() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = open(dir.path());
        let c = conv("p:a:b");
        let rec = DedupRecord { seq: 5, server_msg_id: 77, server_time_ms: 1 };
        let mut b = s.batch();
        b.put_dedup(&c, "a", "d1", "m-1", &rec);
        s.write(b).expect("write");
        assert_eq!(s.dedup(&c, "a", "d1", "m-1").expect("get"), Some(rec));
        assert_eq!(s.dedup(&c, "a", "d2", "m-1").expect("get"), None);
        let u = UserId::new("a").expect("valid");
        assert!(!s.settings(&u).expect("get").global_dnd);
    }
}
