//! Shared node state: what every worker and every service may read.
//!
//! Role: the configuration, the store handle, the feed-version clock, the
//! online directory, the relation/group counters and the sync-token key.
//! Nothing here does network I/O.
//!
//! Invariants: read-mostly; the only locks are the directory's and the
//! counters' sharded locks and the clock's short critical section. Which shard
//! owns a record is decided by [`owner`] alone.

pub(crate) mod clock;
pub(crate) mod counters;
pub(crate) mod directory;
pub(crate) mod hooks;
pub(crate) mod owner;
pub(crate) mod ratelimit;
pub(crate) mod stats;
pub(crate) mod token;

use std::sync::Arc;

use missive_storage::Store;

use crate::config::Config;

pub(crate) use owner::OwnerKey;

/// State shared by every worker and service of this node.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) config: Arc<Config>,
    pub(crate) store: Store,
    pub(crate) clock: clock::VersionClock,
    pub(crate) directory: directory::Directory,
    /// Friend, blacklist and joined-group counts behind the cross-shard limits.
    pub(crate) counters: counters::Counters,
    pub(crate) token_key: token::TokenKey,
    /// Webhook endpoints (live snapshot) and the after-event id generator.
    pub(crate) hooks: hooks::Registry,
    /// Number of owner shards (= workers).
    pub(crate) workers: usize,
    /// The sensitive-word lists in use (loaded by [`Node::load_moderation`]).
    pub(crate) words: crate::filter::Live,
    /// Global mutes (moderation).
    pub(crate) mutes: crate::filter::Mutes,
    /// Counters for `GET /v1/stats` (messages committed since start).
    pub(crate) stats: stats::NodeStats,
}

impl Node {
    pub(crate) fn new(config: Arc<Config>, store: Store, committed_version: u64, workers: usize) -> Self {
        let token_key = token::TokenKey::derive(&config.secret);
        Self {
            config,
            store,
            clock: clock::VersionClock::new(committed_version),
            directory: directory::Directory::new(),
            counters: counters::Counters::new(),
            token_key,
            hooks: hooks::Registry::default(),
            workers,
            words: crate::filter::Live::default(),
            mutes: crate::filter::Mutes::default(),
            stats: stats::NodeStats::default(),
        }
    }

    /// Loads the stored word lists and mutes (start-up).
    pub(crate) fn load_moderation(&self) -> Result<(), String> {
        let lists = self.words.load(&self.store)?;
        let mutes = self.mutes.load(&self.store, clock::now_ms())?;
        if lists + mutes > 0 {
            tracing::info!(lists, mutes, "moderation loaded");
        }
        Ok(())
    }

    /// The shard that owns `key`.
    pub(crate) fn owner(&self, key: OwnerKey<'_>) -> usize {
        key.shard(self.workers)
    }
}
