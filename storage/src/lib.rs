//! Missive storage: the RocksDB keyspaces behind the broker.
//!
//! Role: owns every column family and its tuning (`engine`), every key
//! encoding (`spaces/<keyspace>.rs`, on shared primitives in `keys`) and
//! record format ([`records`]), and the staged, atomic [`Batch`] with save
//! points (`batch`). Callers speak in domain types (`ConvId`, `Seq`,
//! `UserId`, `GroupId`); nobody else builds a key.
//!
//! # Layout
//!
//! | file | holds |
//! |---|---|
//! | `engine.rs` | the column-family table, each family's tuning profile, [`StoreOptions`] |
//! | `store.rs` | [`Store`]: open, [`Store::write`], flush, shared read helpers, verify / repair / checkpoint |
//! | `batch.rs` | [`Batch`] and [`SavePoint`]: staged puts and deletes |
//! | `spaces/*.rs` | one keyspace each: keys, `Store` reads, `Batch` puts |
//! | `keys.rs` | separator rule and key-building primitives |
//! | `records.rs` | value encodings (prost messages) |
//!
//! # Keyspaces (one column family each)
//!
//! | cf      | key                                          | value                         |
//! |---------|----------------------------------------------|-------------------------------|
//! | `msg`   | `conv 00 seq:be64`                           | wire `missive.v1.Message`     |
//! | `dedup` | `conv 00 sender 00 device 00 client_msg_id`  | [`DedupRecord`]               |
//! | `uconv` | `user 00 conv`                               | [`UserConvRecord`]            |
//! | `feed`  | `user 00 version:be64`                       | [`FeedRecord`]                |
//! | `user`  | `user 00 's'` / `user 00 'd' 00 device`      | [`SettingsRecord`] / [`DeviceRecord`] |
//! | `user`  | `user 00 'a'` / `'p'` / `'t'`                | [`AccountRecord`] / [`ProfileRecord`] / [`StatusRecord`] |
//! | `user`  | `user 00 'S' 00 target` / `user 00 'R' 00 subscriber` | presence subscription index (empty) |
//! | `user`  | `reader 00 'v' 00 subject`                   | [`VersionRecord`]: live friend-profile feed entry |
//! | `user`  | `user 00 'G' 00 group` / `user 00 'A' 00 group` | joined-groups index / the user's group applications (empty) |
//! | `group` | `group 00 'i'` / `group 00 'v'`              | [`GroupRecord`] / [`VersionRecord`]: last change of the group's log or info |
//! | `group` | `group 00 'm'/'x'/'a' 00 user`               | [`GroupMemberRecord`] / [`GroupDepartedRecord`] / [`GroupApplicationRecord`] |
//! | `rel`   | `owner 00 kind 00 peer` (kind F/B/I/O/V/H)   | [`FriendRecord`] / [`BlockRecord`] / [`RequestRecord`] ×2 / [`VersionRecord`] / empty (H: peer lists owner) |
//! | `meta`  | `"ver" 00 shard:be32`                        | highest feed version, be64    |
//! | `ops`   | `space 00 id` (audit, outbox, dead, hook, words, mute, tr) | the broker's JSON records (`spaces/ops.rs`) |
//! | `meta`  | `"bcast" 00 conv`                            | broadcast conversation's last version, be64 |
//! | `life`  | `conv 00 'u' update_seq:be64`                | [`UpdateRecord`]: the update index ([UP-1]) |
//! | `life`  | `conv 00 'x' seq:be64`                       | [`ExtrasRecord`]: a message's reactions and extensions |
//! | `life`  | `conv 00 'r' seq:be64 key 00 user` / `conv 00 'p' seq:be64 user` | reaction row (at_ms, be64) / [`UserReactionsRecord`] |
//! | `life`  | `conv 00 'd' user 00 seq:be64`               | deleted for `user` (empty) |
//! | `meta`  | `"unc" 00 conv`                              | recent uncounted seqs (spec [MF-3]), be64 each |
//!
//! Each family has a tuning profile fitted to how it is read (log scans,
//! point lookups, delete-heavy feed scans, record + index scans, tiny): see
//! the table in `engine.rs`.
//!
//! # Invariants
//! - A conversation's history is one contiguous range scan of `msg`; its max
//!   seq is recovered from the log itself (last key), so a restart never
//!   reuses or skips a seq.
//! - Each (user, conversation) has at most one live `feed` entry: a batch that
//!   moves it deletes the old key and writes the new one atomically, so sync
//!   cost grows with changed conversations, not with messages.
//! - Every pair record of users a and b (both owners' sides) is written only
//!   by the owner shard of the direct conversation `p:a:b`; every per-user
//!   record of u, every `v` pointer naming u as subject and every subscription
//!   key naming u as subscriber, only by u's owner shard.
//! - Every mutation goes through one [`Batch`] written atomically by
//!   [`Store::write`]; with [`Durability::Fsync`] the WAL is synced before it returns.
//!   A [`SavePoint`] rolls a batch back to an earlier state, so a refused
//!   operation leaves nothing in it.
//! - Every key's first component (up to the first `00`) is its conversation,
//!   user, group or `"ver"`: families with a prefix filter filter on it, and
//!   every scan stays inside one first component.
//! - This crate never panics on stored bytes it cannot decode: it reports
//!   [`StorageError::Corrupt`].

mod batch;
mod engine;
mod keys;
pub mod layout;
pub mod records;
mod spaces;
mod store;

pub use batch::{Batch, SavePoint};
pub use engine::{Clock, DEFAULT_DEDUP_RETENTION_MS, DEFAULT_MAX_WAL_BYTES, Durability, StoreOptions};

pub use records::{
    AccountRecord, BlockRecord, DedupRecord, DeviceRecord, FeedRecord, FriendRecord, GroupApplicationRecord,
    GroupDepartedRecord, GroupMemberRecord, GroupRecord, ProfileRecord, RequestRecord, SettingsRecord,
    StatusRecord, UserConvRecord, VersionRecord,
};
pub use records::{ExtrasRecord, UpdateRecord, UserReactionsRecord};
pub use spaces::dedup::dedup_key;
pub use spaces::{LifeRow, MsgPage, OpsSpace, RelKind};
pub use store::{Store, VerifyReport};

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// RocksDB reported an error (I/O, corruption detected by RocksDB, ...).
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// The data directory's partition layout is unreadable or incomplete
    /// (`PARTITIONS` file, a partition's directory).
    #[error("data directory layout: {0}")]
    Layout(String),
    /// A stored value could not be decoded.
    #[error("corrupt record in {cf}: {detail}")]
    Corrupt {
        /// Column family.
        cf: &'static str,
        /// What was wrong.
        detail: String,
    },
}

impl StorageError {
    /// The disk (or its quota) is full: the write was refused and nothing
    /// was stored. RocksDB stops writing until space returns (it then
    /// resumes by itself); reads keep working.
    pub fn is_no_space(&self) -> bool {
        match self {
            StorageError::Rocks(e) => e.as_ref().contains("No space left on device"),
            StorageError::Corrupt { .. } | StorageError::Layout(_) => false,
        }
    }

    /// Stored bytes failed a checksum or could not be decoded.
    pub fn is_corruption(&self) -> bool {
        match self {
            StorageError::Rocks(e) => e.kind() == rocksdb::ErrorKind::Corruption,
            StorageError::Corrupt { .. } => true,
            StorageError::Layout(_) => false,
        }
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, StorageError>;
