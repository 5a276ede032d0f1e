//! Opening RocksDB: the column-family table, each family's tuning profile, and
//! the options the operator sets ([`StoreOptions`]).
//!
//! Role: the only place that names a column family or sets a RocksDB option.
//! Keyspaces (`spaces/*`) refer to families by [`Cf`]; the batch stores a
//! [`Cf`] per staged mutation and `Store::write` resolves it here.
//!
//! Invariants:
//! - [`FAMILIES`] lists every family once, in [`Cf`] order; names never change
//!   (they are the on-disk identity of a family).
//! - Tuning changes only how files are built and read (filters, block size,
//!   compaction triggers), never the comparator or a key: a data directory
//!   written with any earlier tuning opens and reads the same. A prefix
//!   extractor added to a family that had none is safe because RocksDB ignores
//!   the prefix filter of files built without it; every iterator over such a
//!   family stays inside one first component (see `Store::iter`).
//! - The block cache is shared by all families and every family gets the same
//!   write buffer: both are the operator's memory budget ([`StoreOptions`]).
//! - The live WAL is bounded ([`StoreOptions::max_wal_bytes`]): RocksDB
//!   flushes the families that pin its oldest file once the bound is passed.
//! - `dedup` is the only family with a compaction filter: it drops records
//!   past the retention window ([`crate::spaces::dedup`]), with "now" from the
//!   injectable [`Clock`], never from the OS directly.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DB, DBCompressionType, DataBlockIndexType, Options,
    SliceTransform,
};

use crate::Result;
use crate::keys;

/// When a write counts as durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// WAL written and fsynced before `Store::write` returns. Survives power loss.
    #[default]
    Fsync,
    /// WAL written to the OS (no fsync). Survives a process crash, not power loss.
    Buffered,
}

/// Where the store reads "now" (unix ms): dedup expiry at read time and in
/// the `dedup` compaction filter. The system clock by default; tests inject a
/// fake one so retention is tested without sleeping.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> u64 + Send + Sync>);

impl Clock {
    /// The wall clock.
    pub fn system() -> Self {
        Self(Arc::new(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0)
        }))
    }

    /// A clock that calls `f` (a test's fake clock).
    pub fn from_fn(f: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// Now, unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
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
    /// Bound on the live write-ahead log, bytes (disk cost: up to about this
    /// much in `*.log` files; restart cost: replaying it). Past it, RocksDB
    /// flushes the families whose memtables still need the oldest WAL file,
    /// so that file can go. 0 = RocksDB's own bound (4 x every memtable).
    pub max_wal_bytes: u64,
    /// How long a dedup record (idempotency key → ack) is honoured, ms after
    /// its message's server time; 0 = forever. Older records read as absent
    /// and are dropped by compaction (spec [I-2]).
    pub dedup_retention_ms: u64,
    /// Source of "now" for dedup expiry.
    pub clock: Clock,
    /// Partitions of a store created by this open (one RocksDB instance, and
    /// so one WAL, each); an existing store keeps the count it was created
    /// with (`Store::partitions`). The memory knobs above are totals: each
    /// partition gets its share.
    pub partitions: usize,
}

/// Default bound on the live WAL: 256 MiB. Without one, RocksDB keeps every
/// WAL file until 4 x (all memtables) = ~2.8 GiB with the default 32 MiB write
/// buffers, because a family written on every batch but rarely (`meta`, a few
/// keys) never fills its memtable and pins every WAL file since its last
/// flush. Measured (issue #17), a 30-s pairs run then kill -9 and restart:
/// without the bound 66 WAL files, 1.9 GB (data directory 2.1 GB), start 4.6 s
/// (1.5 s of it `verify_on_open`); with it 7 files, 190 MB (584 MB), start
/// 2.2 s (1.6 s verify). Alternating 10-s pairs runs were within the noise.
pub const DEFAULT_MAX_WAL_BYTES: u64 = 256 << 20;

/// Default dedup retention: 7 days.
pub const DEFAULT_DEDUP_RETENTION_MS: u64 = 7 * 86_400_000;

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Fsync,
            block_cache_bytes: 64 << 20,
            write_buffer_bytes: 32 << 20,
            max_wal_bytes: DEFAULT_MAX_WAL_BYTES,
            dedup_retention_ms: DEFAULT_DEDUP_RETENTION_MS,
            clock: Clock::system(),
            partitions: 1,
        }
    }
}

/// A column family, by its index in [`FAMILIES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cf {
    Msg = 0,
    Dedup,
    Uconv,
    Feed,
    User,
    Meta,
    Rel,
    Group,
    /// Server-integration records: audit log, webhook outbox and dead letters,
    /// webhook endpoints, sensitive-word lists (`spaces/ops.rs`).
    Ops,
    /// The message lifecycle: update index, message extras (reactions,
    /// extensions), reaction rows, deletions for one user (`spaces/life.rs`).
    Life,
}

/// Number of column families.
pub(crate) const CF_COUNT: usize = 10;

impl Cf {
    /// The family's RocksDB name (also used in `StorageError::Corrupt`).
    pub(crate) fn name(self) -> &'static str {
        FAMILIES[self as usize].name
    }
}

/// How a family's SST files are built: the knobs that differ between access
/// patterns. Everything not listed is RocksDB's default.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tuning {
    /// Data block size in bytes: larger blocks compress better and suit
    /// sequential scans; small blocks make a point lookup read less.
    block_size: usize,
    /// Bloom bits per key (0 = no filter).
    bloom_bits: f64,
    /// Filter on whole keys: point lookups (`get`) can skip files.
    whole_key_filter: bool,
    /// Prefix extractor on the first key component ([`keys::first_component`]),
    /// added to the filter: a scan of one conversation / user / group skips
    /// files that hold nothing of it.
    prefix_filter: bool,
    /// Hash index inside data blocks: point lookups avoid the binary search.
    hash_index: bool,
    compression: DBCompressionType,
    /// `(window, deletes)`: a file with at least `deletes` tombstones in any
    /// `window` consecutive entries is marked for compaction, so tombstones
    /// are dropped instead of being stepped over by every scan.
    tombstone_compaction: Option<(usize, usize)>,
}

/// One column family: its name on disk and its tuning.
#[derive(Debug)]
pub(crate) struct Family {
    pub(crate) cf: Cf,
    pub(crate) name: &'static str,
    pub(crate) tuning: Tuning,
}

/// `msg`: an append-mostly log read as one contiguous range per conversation
/// (history / pull pages, max-seq recovery by a reverse seek) plus a point
/// read of the last message when a conversation is loaded. 16 KiB blocks
/// compress ~120-byte messages well and make a 100-message page a handful of
/// block reads; the conversation prefix in the filter lets a seek skip every
/// file that holds nothing of the conversation; whole keys stay in it for the
/// point read. Cost: on the one-file `storage_scan/max_seq_recovery` bench
/// the prefix check adds ~0.3 µs (2.6 -> 2.9 µs), where no file can be
/// skipped; it pays off once a seek would otherwise probe several files.
const LOG: Tuning = Tuning {
    block_size: 16 << 10,
    bloom_bits: 10.0,
    whole_key_filter: true,
    prefix_filter: true,
    hash_index: false,
    compression: DBCompressionType::Lz4,
    tombstone_compaction: None,
};

/// `dedup`: pure point lookups, and most of them miss (every new
/// client_msg_id is looked up once before it is stored). A whole-key filter
/// answers a miss without a block read; small blocks with a hash index make a
/// hit one cheap block probe. No scans, so no prefix filter.
const POINT: Tuning = Tuning {
    block_size: 4 << 10,
    bloom_bits: 10.0,
    whole_key_filter: true,
    prefix_filter: false,
    hash_index: true,
    compression: DBCompressionType::Lz4,
    tombstone_compaction: None,
};

/// `feed`: every change deletes the entry's old version and writes a new one,
/// and the only read is a range scan of one user's versions above a sync
/// token. Only scans, so the filter holds the user prefix alone (no whole
/// keys). Tombstones: a flushed feed file is about half tombstones when each
/// entry moved once (the old version's put lives in an older file), and far
/// more for hot entries moved many times within one memtable (their puts are
/// dropped at flush, the tombstones stay until the bottom level). Files with
/// a run of >= 900 tombstones in 1 024 entries are marked for early
/// compaction, so a sync does not step over such runs; the ordinary
/// half-tombstone file is left to normal compaction (a lower trigger would
/// mark nearly every flush and rewrite the feed's base level each time).
/// Small values, default blocks. Not measured yet on a long-running feed.
const FEED: Tuning = Tuning {
    block_size: 4 << 10,
    bloom_bits: 10.0,
    whole_key_filter: false,
    prefix_filter: true,
    hash_index: false,
    compression: DBCompressionType::Lz4,
    tombstone_compaction: Some((1024, 900)),
};

/// `uconv`: point lookups of one (user, conversation) record on every send
/// and read mark; no scans today. Whole-key filter and a block hash index,
/// like `dedup`, but hits are the common case.
const RECORD: Tuning = POINT;

/// `user`, `rel`, `group`: point lookups of single records (account, pair
/// record, group info, member) plus small prefix scans of one owner's index
/// (subscriptions, friend pages, members, joined groups). Whole keys and the
/// owner prefix both go in the filter; the hash index serves the point
/// lookups and keeps the binary search for the scans.
const INDEX: Tuning = Tuning {
    block_size: 4 << 10,
    bloom_bits: 10.0,
    whole_key_filter: true,
    prefix_filter: true,
    hash_index: true,
    compression: DBCompressionType::Lz4,
    tombstone_compaction: None,
};

/// `meta`: a few keys (one version mark per shard), overwritten by every
/// batch and read once at open. Stays in the memtable and block cache; a
/// filter or compression would cost more than they save.
const TINY: Tuning = Tuning {
    block_size: 4 << 10,
    bloom_bits: 0.0,
    whole_key_filter: false,
    prefix_filter: false,
    hash_index: false,
    compression: DBCompressionType::None,
    tombstone_compaction: None,
};

/// Every column family, in [`Cf`] order.
pub(crate) const FAMILIES: [Family; CF_COUNT] = [
    Family { cf: Cf::Msg, name: "msg", tuning: LOG },
    Family { cf: Cf::Dedup, name: "dedup", tuning: POINT },
    Family { cf: Cf::Uconv, name: "uconv", tuning: RECORD },
    Family { cf: Cf::Feed, name: "feed", tuning: FEED },
    Family { cf: Cf::User, name: "user", tuning: INDEX },
    Family { cf: Cf::Meta, name: "meta", tuning: TINY },
    Family { cf: Cf::Rel, name: "rel", tuning: INDEX },
    Family { cf: Cf::Group, name: "group", tuning: INDEX },
    Family { cf: Cf::Ops, name: "ops", tuning: FEED },
    Family { cf: Cf::Life, name: "life", tuning: INDEX },
];

/// Name of the prefix extractor (recorded in every SST built with it).
const PREFIX_EXTRACTOR: &str = "missive.first_component.v1";

fn family_options(t: &Tuning, cache: &Cache, opts: &StoreOptions) -> Options {
    let mut o = Options::default();
    o.set_compression_type(t.compression);
    o.set_write_buffer_size(opts.write_buffer_bytes);
    // L0 -> L1 compaction after 8 flushed files, not RocksDB's 4: each
    // compaction then rewrites L1 once for twice the new data. Flush and
    // compaction were ~21 % of the broker's CPU under sustained sends; with
    // 8, pairs ran 239-277 k vs 211-264 k acked/s in five alternating runs
    // (issue #17). Reads probe at most 8 L0 files (their filters first).
    o.set_level_zero_file_num_compaction_trigger(8);
    let mut bb = BlockBasedOptions::default();
    bb.set_block_cache(cache);
    bb.set_block_size(t.block_size);
    if t.bloom_bits > 0.0 {
        bb.set_bloom_filter(t.bloom_bits, false);
    }
    bb.set_whole_key_filtering(t.whole_key_filter);
    if t.hash_index {
        bb.set_data_block_index_type(DataBlockIndexType::BinaryAndHash);
        bb.set_data_block_hash_ratio(0.75);
    }
    o.set_block_based_table_factory(&bb);
    if t.prefix_filter {
        o.set_prefix_extractor(SliceTransform::create(
            PREFIX_EXTRACTOR,
            keys::first_component,
            Some(keys::has_first_component),
        ));
    }
    if let Some((window, deletes)) = t.tombstone_compaction {
        o.add_compact_on_deletion_collector_factory(window, deletes, 0.0);
    }
    o
}

/// Every 24 h each `dedup` file is recompacted even if nothing else would
/// touch it, so expired records leave the bottom level too (cost: rewriting
/// the dedup family about once a day; it holds one small record per message
/// of the retention window).
const DEDUP_PERIODIC_COMPACTION_SECS: u64 = 86_400;

/// The block cache every family of every partition shares.
pub(crate) fn block_cache(opts: &StoreOptions) -> Cache {
    Cache::new_lru_cache(opts.block_cache_bytes)
}

/// The options of every family, in [`FAMILIES`] order, then RocksDB's `default`.
fn descriptors(opts: &StoreOptions, cache: &Cache) -> Vec<ColumnFamilyDescriptor> {
    FAMILIES
        .iter()
        .map(|f| {
            let mut o = family_options(&f.tuning, cache, opts);
            if f.cf == Cf::Dedup && opts.dedup_retention_ms > 0 {
                o.set_compaction_filter_factory(crate::spaces::dedup::ExpiryFilterFactory::new(
                    opts.dedup_retention_ms,
                    opts.clock.clone(),
                ));
                o.set_periodic_compaction_seconds(DEDUP_PERIODIC_COMPACTION_SECS);
            }
            ColumnFamilyDescriptor::new(f.name, o)
        })
        .chain(std::iter::once({
            // RocksDB's `default` family holds nothing of ours, but its
            // memtable size counts (see `db_options`): same as the others.
            let mut o = Options::default();
            o.set_write_buffer_size(opts.write_buffer_bytes);
            ColumnFamilyDescriptor::new(rocksdb::DEFAULT_COLUMN_FAMILY_NAME, o)
        }))
        .collect()
}

/// Database-wide options (and those of RocksDB's unused `default` family).
fn db_options(opts: &StoreOptions) -> Options {
    let mut db_opts = Options::default();
    // RocksDB resumes writes after a full disk (ENOSPC) once the largest
    // memtable of any family fits in the free space (its SstFileManager polls
    // every 5 s); the `default` family gets our size too (`descriptors`),
    // else RocksDB's 64 MiB would set that bar.
    db_opts.set_write_buffer_size(opts.write_buffer_bytes);
    db_opts.create_if_missing(true);
    db_opts.create_missing_column_families(true);
    db_opts.set_compression_type(DBCompressionType::Lz4);
    db_opts.set_max_background_jobs(2);
    db_opts.set_bytes_per_sync(1 << 20);
    // Stop at the first inconsistency RocksDB finds (MANIFEST, WAL, file
    // sizes, table footers) instead of opening a damaged store: the default,
    // stated because the corruption handling (`verify`, `repair`) relies on it.
    db_opts.set_paranoid_checks(true);
    // Bounded WAL (`StoreOptions::max_wal_bytes`): disk use and the replay at
    // the next start stay near the bound however rarely a family fills.
    db_opts.set_max_total_wal_size(opts.max_wal_bytes);
    db_opts
}

/// Opens (creating if needed) the database under `path` with every family.
pub(crate) fn open(path: &Path, opts: &StoreOptions, cache: &Cache) -> Result<DB> {
    Ok(DB::open_cf_descriptors(&db_options(opts), path, descriptors(opts, cache))?)
}

/// Opens the database under `path` read-only (for `verify`): nothing is
/// written, not even a WAL replay's flush.
pub(crate) fn open_read_only(path: &Path, opts: &StoreOptions, cache: &Cache) -> Result<DB> {
    let mut db_opts = db_options(opts);
    db_opts.create_if_missing(false);
    Ok(DB::open_cf_descriptors_read_only(&db_opts, path, descriptors(opts, cache), false)?)
}

/// Rebuilds the MANIFEST of the database under `path` from the files it
/// finds (RocksDB `RepairDB`); tables it cannot read are moved to `lost/`.
pub(crate) fn repair(path: &Path) -> Result<()> {
    let mut db_opts = db_options(&StoreOptions::default());
    db_opts.create_if_missing(false);
    Ok(DB::repair(&db_opts, path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_in_cf_order_with_unique_names() {
        for (i, f) in FAMILIES.iter().enumerate() {
            assert_eq!(f.cf as usize, i, "{}", f.name);
            assert_eq!(f.cf.name(), f.name);
        }
        let mut names: Vec<_> = FAMILIES.iter().map(|f| f.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CF_COUNT);
    }

    /// Total size of the live WAL files (`*.log`) under `dir`.
    fn wal_bytes(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .expect("read dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    }

    /// Every batch writes a message and the shard's version mark, as the
    /// broker's turns do. The `meta` memtable never fills, so without a bound
    /// it pins every WAL file (RocksDB's own bound here: 4 x 11 x 1 MiB x 2);
    /// with `max_wal_bytes` the live WAL stays near the bound.
    #[test]
    fn the_live_wal_stays_near_its_bound() {
        use crate::Store;
        use missive_protocol::{ConvId, Seq};
        const MIB: u64 = 1 << 20;
        let run = |max_wal_bytes: u64| {
            let dir = tempfile::tempdir().expect("tmp");
            let opts = StoreOptions {
                durability: Durability::Buffered,
                write_buffer_bytes: MIB as usize,
                max_wal_bytes,
                ..Default::default()
            };
            let store = Store::open(dir.path(), &opts).expect("open");
            let conv = ConvId::parse("p:a:b").expect("conv");
            let body = vec![7u8; 4096];
            for i in 0..6_000u64 {
                let mut b = store.batch();
                b.put_message(&conv, Seq(i + 1), &body);
                b.put_version_mark(0, i);
                store.write(b).expect("write");
            }
            // Flushes run in the background: give them a bounded time (only
            // the bounded store waits; the unbounded one has nothing to free).
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while max_wal_bytes > 0 && wal_bytes(dir.path()) > 8 * MIB && std::time::Instant::now() < deadline
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            wal_bytes(dir.path())
        };
        let bounded = run(4 * MIB);
        assert!(bounded <= 8 * MIB, "with a 4 MiB bound the WAL holds {bounded} bytes");
        let unbounded = run(0);
        assert!(
            unbounded > 20 * MIB,
            "the test must exercise a pinned WAL: {unbounded} bytes without a bound"
        );
    }

    /// The names the store has always used: renaming one would orphan data.
    #[test]
    fn names_are_the_on_disk_ones() {
        let names: Vec<_> = FAMILIES.iter().map(|f| f.name).collect();
        assert_eq!(names, ["msg", "dedup", "uconv", "feed", "user", "meta", "rel", "group", "ops", "life"]);
    }
}
