//! The online directory: which connections (on which worker) each user has.
//!
//! Read on every delivery, written on login/logout, so it is sharded by user
//! hash behind `parking_lot` read-write locks; lookups copy out a small vector.

use std::collections::HashMap;
use std::hash::BuildHasher;

use missive_protocol::pb::Platform;
use missive_protocol::{DeviceId, UserId};
use parking_lot::RwLock;

const SHARDS: usize = 64;

/// Globally unique address of a connection: its worker and its id there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ConnRef {
    pub(crate) worker: usize,
    pub(crate) id: u64,
}

/// One online device session.
#[derive(Debug, Clone)]
pub(crate) struct Presence {
    pub(crate) conn: ConnRef,
    #[allow(dead_code)] // read by multi-device policies and presence queries
    pub(crate) device: DeviceId,
    #[allow(dead_code)] // read by multi-device policies and presence queries
    pub(crate) platform: Platform,
}

#[derive(Debug)]
pub(crate) struct Directory {
    shards: Vec<RwLock<HashMap<UserId, Vec<Presence>>>>,
    hasher: std::collections::hash_map::RandomState,
}

impl Directory {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    fn shard(&self, user: &UserId) -> &RwLock<HashMap<UserId, Vec<Presence>>> {
        &self.shards[(self.hasher.hash_one(user) as usize) % SHARDS]
    }

    pub(crate) fn add(&self, user: &UserId, p: Presence) {
        self.shard(user).write().entry(user.clone()).or_default().push(p);
    }

    pub(crate) fn remove(&self, user: &UserId, conn: ConnRef) {
        let mut g = self.shard(user).write();
        if let Some(v) = g.get_mut(user) {
            v.retain(|p| p.conn != conn);
            if v.is_empty() {
                g.remove(user);
            }
        }
    }

    /// Every online session of `user`.
    pub(crate) fn sessions(&self, user: &UserId) -> Vec<Presence> {
        self.shard(user).read().get(user).cloned().unwrap_or_default()
    }
}
