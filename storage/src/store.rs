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
use crate::records::{
    AccountRecord, DedupRecord, DeviceRecord, FeedRecord, GroupApplicationRecord, GroupDepartedRecord,
    GroupMemberRecord, GroupRecord, ProfileRecord, SettingsRecord, StatusRecord, UserConvRecord,
    VersionRecord,
};
use crate::{Result, StorageError};

const CF_MSG: &str = "msg";
const CF_DEDUP: &str = "dedup";
const CF_UCONV: &str = "uconv";
const CF_FEED: &str = "feed";
const CF_USER: &str = "user";
const CF_META: &str = "meta";
const CF_REL: &str = "rel";
const CF_GROUP: &str = "group";
const ALL_CFS: [&str; 8] = [CF_MSG, CF_DEDUP, CF_UCONV, CF_FEED, CF_USER, CF_META, CF_REL, CF_GROUP];

/// Record tags in the `user` keyspace.
const TAG_ACCOUNT: u8 = b'a';
const TAG_PROFILE: u8 = b'p';
const TAG_STATUS: u8 = b't';
const TAG_SUBSCRIPTION: u8 = b'S';
const TAG_SUBSCRIBER: u8 = b'R';
const TAG_PROFILE_FEED: u8 = b'v';
const TAG_JOINED: u8 = b'G';
const TAG_USER_APPLICATION: u8 = b'A';

/// Record tags in the `group` keyspace.
const GTAG_INFO: u8 = b'i';
const GTAG_VERSION: u8 = b'v';
const GTAG_MEMBER: u8 = b'm';
const GTAG_DEPARTED: u8 = b'x';
const GTAG_APPLICATION: u8 = b'a';

/// The kinds of pair records in the `rel` keyspace (the owner's side).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelKind {
    /// [`FriendRecord`](crate::FriendRecord): the owner lists the peer as a friend.
    Friend,
    /// [`BlockRecord`](crate::BlockRecord): the owner blacklisted the peer.
    Block,
    /// [`RequestRecord`](crate::RequestRecord): latest request from the peer.
    Incoming,
    /// [`RequestRecord`](crate::RequestRecord): latest request to the peer.
    Outgoing,
    /// [`VersionRecord`]: the live `Relation(peer)` entry in the owner's feed.
    FeedVersion,
    /// Empty value: the peer has the owner in the peer's friend list (the
    /// reverse index of `Friend`, for pushing the owner's profile changes).
    FriendOf,
}

impl RelKind {
    fn tag(self) -> u8 {
        match self {
            RelKind::Friend => b'F',
            RelKind::Block => b'B',
            RelKind::Incoming => b'I',
            RelKind::Outgoing => b'O',
            RelKind::FeedVersion => b'V',
            RelKind::FriendOf => b'H',
        }
    }
}

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

    fn get_decoded<T: prost::Message + Default>(&self, cf: &'static str, key: &[u8]) -> Result<Option<T>> {
        match self.db.get_pinned_cf(self.cf(cf), key)? {
            None => Ok(None),
            Some(v) => decode(cf, &v).map(Some),
        }
    }

    /// Keys under `prefix` after `prefix ++ after` (exclusive; "" = from the
    /// start), ascending, at most `limit`: (suffix, value).
    fn scan_suffixes(
        &self,
        cf: &'static str,
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
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(keys::prefix_end(prefix));
        let it = self.db.iterator_cf_opt(self.cf(cf), ro, IteratorMode::From(&start, Direction::Forward));
        for item in it {
            let (k, v) = item?;
            let Some(rest) = k.strip_prefix(prefix) else { break };
            if !after.is_empty() && rest == after.as_bytes() {
                continue;
            }
            let suffix = String::from_utf8(rest.to_vec())
                .map_err(|_| StorageError::Corrupt { cf, detail: "non-utf8 key suffix".into() })?;
            out.push((suffix, v.to_vec()));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// A user's account record (`None` if not registered).
    pub fn account(&self, user: &UserId) -> Result<Option<AccountRecord>> {
        self.get_decoded(CF_USER, &keys::user_record(user, TAG_ACCOUNT))
    }

    /// A user's profile record (`None` if never set).
    pub fn profile(&self, user: &UserId) -> Result<Option<ProfileRecord>> {
        self.get_decoded(CF_USER, &keys::user_record(user, TAG_PROFILE))
    }

    /// A user's presence status record (`None` if never set).
    pub fn status(&self, user: &UserId) -> Result<Option<StatusRecord>> {
        self.get_decoded(CF_USER, &keys::user_record(user, TAG_STATUS))
    }

    /// Version of the live `Profile(subject)` entry in `reader`'s feed (0 = none).
    pub fn profile_feed_version(&self, reader: &UserId, subject: &UserId) -> Result<u64> {
        let rec: Option<VersionRecord> =
            self.get_decoded(CF_USER, &keys::user_pair(reader, TAG_PROFILE_FEED, subject.as_str()))?;
        Ok(rec.map_or(0, |r| r.feed_version))
    }

    /// Users `user` subscribes to (presence), ascending.
    pub fn subscriptions(&self, user: &UserId, limit: usize) -> Result<Vec<String>> {
        let prefix = keys::user_pair_prefix(user, TAG_SUBSCRIPTION);
        Ok(self.scan_suffixes(CF_USER, &prefix, "", limit)?.into_iter().map(|(k, _)| k).collect())
    }

    /// Users subscribed to `target`'s presence, ascending.
    pub fn subscribers(&self, target: &UserId, limit: usize) -> Result<Vec<String>> {
        let prefix = keys::user_pair_prefix(target, TAG_SUBSCRIBER);
        Ok(self.scan_suffixes(CF_USER, &prefix, "", limit)?.into_iter().map(|(k, _)| k).collect())
    }

    /// The owner's pair record of `kind` with `peer`.
    pub fn rel<T: prost::Message + Default>(
        &self,
        owner: &UserId,
        kind: RelKind,
        peer: &UserId,
    ) -> Result<Option<T>> {
        self.get_decoded(CF_REL, &keys::rel(owner, kind.tag(), peer.as_str()))
    }

    /// One page of the owner's pair records of `kind`, in peer order after
    /// `after` ("" = from the start): (peer, encoded record).
    pub fn rel_page(
        &self,
        owner: &UserId,
        kind: RelKind,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        self.scan_suffixes(CF_REL, &keys::rel_prefix(owner, kind.tag()), after, limit)
    }

    /// Number of the owner's pair records of `kind` (a prefix scan).
    pub fn rel_count(&self, owner: &UserId, kind: RelKind) -> Result<usize> {
        self.count_prefix(CF_REL, &keys::rel_prefix(owner, kind.tag()))
    }

    fn count_prefix(&self, cf: &'static str, prefix: &[u8]) -> Result<usize> {
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(keys::prefix_end(prefix));
        let mut n = 0;
        for item in self.db.iterator_cf_opt(self.cf(cf), ro, IteratorMode::From(prefix, Direction::Forward)) {
            item?;
            n += 1;
        }
        Ok(n)
    }

    fn decode_rows<T: prost::Message + Default>(
        cf: &'static str,
        rows: Vec<(String, Vec<u8>)>,
    ) -> Result<Vec<(String, T)>> {
        rows.into_iter().map(|(k, v)| decode(cf, &v).map(|r| (k, r))).collect()
    }

    /// A group's info record (`None` if it never existed).
    pub fn group(&self, group: &str) -> Result<Option<GroupRecord>> {
        self.get_decoded(CF_GROUP, &keys::group_record(group, GTAG_INFO))
    }

    /// Version of the group's last change (message, tip or info; 0 = none).
    pub fn group_version(&self, group: &str) -> Result<u64> {
        let rec: Option<VersionRecord> =
            self.get_decoded(CF_GROUP, &keys::group_record(group, GTAG_VERSION))?;
        Ok(rec.map_or(0, |r| r.feed_version))
    }

    /// A current member's record.
    pub fn group_member(&self, group: &str, user: &str) -> Result<Option<GroupMemberRecord>> {
        self.get_decoded(CF_GROUP, &keys::group_user(group, GTAG_MEMBER, user))
    }

    /// Current members after `after` ("" = from the start), ascending, at most `limit`.
    pub fn group_members(
        &self,
        group: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, GroupMemberRecord)>> {
        let rows =
            self.scan_suffixes(CF_GROUP, &keys::group_user_prefix(group, GTAG_MEMBER), after, limit)?;
        Self::decode_rows(CF_GROUP, rows)
    }

    /// A former member's record (`None` if the user never left or rejoined since).
    pub fn group_departed(&self, group: &str, user: &str) -> Result<Option<GroupDepartedRecord>> {
        self.get_decoded(CF_GROUP, &keys::group_user(group, GTAG_DEPARTED, user))
    }

    /// The latest application (or invitation) of `user` to `group`.
    pub fn group_application(&self, group: &str, user: &str) -> Result<Option<GroupApplicationRecord>> {
        self.get_decoded(CF_GROUP, &keys::group_user(group, GTAG_APPLICATION, user))
    }

    /// Applications of `group` after `after`, ascending by user, at most `limit`.
    pub fn group_applications(
        &self,
        group: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, GroupApplicationRecord)>> {
        let prefix = keys::group_user_prefix(group, GTAG_APPLICATION);
        Self::decode_rows(CF_GROUP, self.scan_suffixes(CF_GROUP, &prefix, after, limit)?)
    }

    /// Groups `user` belongs to after `after`, ascending, at most `limit`.
    pub fn joined_groups(&self, user: &UserId, after: &str, limit: usize) -> Result<Vec<String>> {
        let prefix = keys::user_pair_prefix(user, TAG_JOINED);
        Ok(self.scan_suffixes(CF_USER, &prefix, after, limit)?.into_iter().map(|(k, _)| k).collect())
    }

    /// Number of groups `user` belongs to (a prefix count).
    pub fn joined_count(&self, user: &UserId) -> Result<usize> {
        self.count_prefix(CF_USER, &keys::user_pair_prefix(user, TAG_JOINED))
    }

    /// Groups `user` applied to or was invited to, after `after`, ascending.
    pub fn user_group_applications(&self, user: &UserId, after: &str, limit: usize) -> Result<Vec<String>> {
        let prefix = keys::user_pair_prefix(user, TAG_USER_APPLICATION);
        Ok(self.scan_suffixes(CF_USER, &prefix, after, limit)?.into_iter().map(|(k, _)| k).collect())
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
            let item = FeedRecord { conv_id: conv.as_str().to_owned(), ..Default::default() };
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
            let item = FeedRecord::default();
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

    /// Moves a live feed entry of `user` from `old` to `new` (0 = none).
    fn move_feed(&mut self, user: &UserId, old: u64, new: u64, item: &FeedRecord) {
        if old != 0 && old != new {
            self.inner.delete_cf(self.store.cf(CF_FEED), keys::feed(user, old));
        }
        if new != 0 {
            self.inner.put_cf(self.store.cf(CF_FEED), keys::feed(user, new), item.encode_to_vec());
        }
    }

    /// Stores an account record.
    pub fn put_account(&mut self, user: &UserId, rec: &AccountRecord) {
        self.inner.put_cf(self.store.cf(CF_USER), keys::user_record(user, TAG_ACCOUNT), rec.encode_to_vec());
    }

    /// Stores a profile and moves its entry in the owner's own feed.
    pub fn put_profile(&mut self, user: &UserId, old_version: u64, rec: &ProfileRecord) {
        let item = FeedRecord { profile_user: user.as_str().to_owned(), ..Default::default() };
        self.move_feed(user, old_version, rec.feed_version, &item);
        self.inner.put_cf(self.store.cf(CF_USER), keys::user_record(user, TAG_PROFILE), rec.encode_to_vec());
    }

    /// Moves the `Profile(subject)` entry in `reader`'s feed (a friend's profile changed).
    pub fn move_profile_feed(&mut self, reader: &UserId, subject: &UserId, old: u64, new: u64) {
        let item = FeedRecord { profile_user: subject.as_str().to_owned(), ..Default::default() };
        self.move_feed(reader, old, new, &item);
        let key = keys::user_pair(reader, TAG_PROFILE_FEED, subject.as_str());
        self.inner.put_cf(self.store.cf(CF_USER), key, VersionRecord { feed_version: new }.encode_to_vec());
    }

    /// Stores a presence status record.
    pub fn put_status(&mut self, user: &UserId, rec: &StatusRecord) {
        self.inner.put_cf(self.store.cf(CF_USER), keys::user_record(user, TAG_STATUS), rec.encode_to_vec());
    }

    /// Adds (`on`) or removes `subscriber`'s presence subscription to `target`
    /// (both directions of the index).
    pub fn put_subscription(&mut self, subscriber: &UserId, target: &UserId, on: bool) {
        let cf = self.store.cf(CF_USER);
        let fwd = keys::user_pair(subscriber, TAG_SUBSCRIPTION, target.as_str());
        let rev = keys::user_pair(target, TAG_SUBSCRIBER, subscriber.as_str());
        if on {
            self.inner.put_cf(cf, fwd, []);
            self.inner.put_cf(cf, rev, []);
        } else {
            self.inner.delete_cf(cf, fwd);
            self.inner.delete_cf(cf, rev);
        }
    }

    /// Records (`on`) or removes the reverse friend entry: `peer` lists `owner`.
    pub fn put_friend_of(&mut self, owner: &UserId, peer: &UserId, on: bool) {
        let key = keys::rel(owner, RelKind::FriendOf.tag(), peer.as_str());
        if on {
            self.inner.put_cf(self.store.cf(CF_REL), key, []);
        } else {
            self.inner.delete_cf(self.store.cf(CF_REL), key);
        }
    }

    /// Stores (`Some`) or deletes (`None`) the owner's pair record of `kind` with `peer`.
    pub fn put_rel<T: prost::Message>(
        &mut self,
        owner: &UserId,
        kind: RelKind,
        peer: &UserId,
        rec: Option<&T>,
    ) {
        let key = keys::rel(owner, kind.tag(), peer.as_str());
        match rec {
            Some(r) => self.inner.put_cf(self.store.cf(CF_REL), key, r.encode_to_vec()),
            None => self.inner.delete_cf(self.store.cf(CF_REL), key),
        }
    }

    /// Moves the `Relation(peer)` entry in `owner`'s feed from `old` to `new`.
    pub fn move_rel_feed(&mut self, owner: &UserId, peer: &UserId, old: u64, new: u64) {
        let item = FeedRecord { relation_peer: peer.as_str().to_owned(), ..Default::default() };
        self.move_feed(owner, old, new, &item);
        self.put_rel(owner, RelKind::FeedVersion, peer, Some(&VersionRecord { feed_version: new }));
    }

    /// Stores a group's info record.
    pub fn put_group(&mut self, group: &str, rec: &GroupRecord) {
        self.inner.put_cf(self.store.cf(CF_GROUP), keys::group_record(group, GTAG_INFO), rec.encode_to_vec());
    }

    /// Records the version of the group's last change.
    pub fn put_group_version(&mut self, group: &str, version: u64) {
        let v = VersionRecord { feed_version: version }.encode_to_vec();
        self.inner.put_cf(self.store.cf(CF_GROUP), keys::group_record(group, GTAG_VERSION), v);
    }

    fn put_group_user<T: prost::Message>(&mut self, group: &str, tag: u8, user: &str, rec: Option<&T>) {
        let key = keys::group_user(group, tag, user);
        match rec {
            Some(r) => self.inner.put_cf(self.store.cf(CF_GROUP), key, r.encode_to_vec()),
            None => self.inner.delete_cf(self.store.cf(CF_GROUP), key),
        }
    }

    /// Stores (`Some`) or deletes a member record, and the member's
    /// joined-groups index entry with it.
    pub fn put_group_member(&mut self, group: &str, user: &UserId, rec: Option<&GroupMemberRecord>) {
        self.put_group_user(group, GTAG_MEMBER, user.as_str(), rec);
        let key = keys::user_pair(user, TAG_JOINED, group);
        match rec {
            Some(_) => self.inner.put_cf(self.store.cf(CF_USER), key, []),
            None => self.inner.delete_cf(self.store.cf(CF_USER), key),
        }
    }

    /// Stores (`Some`) or deletes a departed-member record.
    pub fn put_group_departed(&mut self, group: &str, user: &UserId, rec: Option<&GroupDepartedRecord>) {
        self.put_group_user(group, GTAG_DEPARTED, user.as_str(), rec);
    }

    /// Stores (`Some`) or deletes an application, and the user's index entry.
    pub fn put_group_application(
        &mut self,
        group: &str,
        user: &UserId,
        rec: Option<&GroupApplicationRecord>,
    ) {
        self.put_group_user(group, GTAG_APPLICATION, user.as_str(), rec);
        let key = keys::user_pair(user, TAG_USER_APPLICATION, group);
        match rec {
            Some(_) => self.inner.put_cf(self.store.cf(CF_USER), key, []),
            None => self.inner.delete_cf(self.store.cf(CF_USER), key),
        }
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
    fn group_records_and_joined_index() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = open(dir.path());
        let (a, b) = (UserId::new("a").expect("valid"), UserId::new("b").expect("valid"));
        let mut batch = s.batch();
        batch.put_group("g1", &GroupRecord { owner: "a".into(), member_count: 2, ..Default::default() });
        batch.put_group_version("g1", 7);
        batch.put_group_member("g1", &a, Some(&GroupMemberRecord { role: 3, ..Default::default() }));
        batch.put_group_member("g1", &b, Some(&GroupMemberRecord { role: 1, ..Default::default() }));
        batch.put_group_member("g2", &a, Some(&GroupMemberRecord::default()));
        s.write(batch).expect("write");
        assert_eq!(s.group("g1").expect("get").map(|g| g.member_count), Some(2));
        assert_eq!(s.group_version("g1").expect("get"), 7);
        assert_eq!(s.group_members("g1", "", 10).expect("scan").len(), 2);
        assert_eq!(s.group_members("g1", "a", 10).expect("scan").len(), 1);
        assert_eq!(s.joined_groups(&a, "", 10).expect("scan"), vec!["g1".to_owned(), "g2".to_owned()]);
        assert_eq!(s.joined_count(&a).expect("count"), 2);
        let mut batch = s.batch();
        batch.put_group_member("g1", &b, None);
        batch.put_group_departed(
            "g1",
            &b,
            Some(&GroupDepartedRecord { join_seq: 1, leave_seq: 5, left_ms: 1 }),
        );
        s.write(batch).expect("write");
        assert_eq!(s.joined_count(&b).expect("count"), 0);
        assert_eq!(s.group_departed("g1", "b").expect("get").map(|d| d.leave_seq), Some(5));
        assert!(s.group_member("g1", "b").expect("get").is_none());
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
