//! `rel`: pair relations, the owner's side. Key `owner 00 kind 00 peer`, kind
//! one of [`RelKind`] (`F` friend, `B` block, `I`/`O` requests, `V` feed
//! pointer, `H` "peer lists owner").
//!
//! Invariants:
//! - Every pair record of users a and b, both owners' sides, is written only
//!   by the owner shard of the direct conversation `p:a:b`.
//! - A `V` record holds the version of the live `Relation(peer)` entry in the
//!   owner's feed; [`Batch::move_rel_feed`] moves both in one batch.

use missive_protocol::UserId;

use crate::Result;
use crate::batch::Batch;
use crate::engine::Cf;
use crate::keys;
use crate::records::VersionRecord;
use crate::spaces::feed::FeedItem;
use crate::store::Store;

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

/// Appends `owner 00 kind 00 peer`.
fn key(out: &mut Vec<u8>, owner: &UserId, kind: RelKind, peer: &str) {
    keys::tagged(out, owner.as_str().as_bytes(), kind.tag());
    out.extend_from_slice(peer.as_bytes());
}

/// Prefix of every `kind` record of `owner`.
fn prefix(owner: &UserId, kind: RelKind) -> Vec<u8> {
    keys::owned(|k| keys::tagged(k, owner.as_str().as_bytes(), kind.tag()))
}

impl Store {
    /// The owner's pair record of `kind` with `peer`.
    pub fn rel<T: prost::Message + Default>(
        &self,
        owner: &UserId,
        kind: RelKind,
        peer: &UserId,
    ) -> Result<Option<T>> {
        self.get_decoded(Cf::Rel, &keys::owned(|k| key(k, owner, kind, peer.as_str())))
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
        self.scan_suffixes(Cf::Rel, &prefix(owner, kind), after, limit)
    }

    /// Number of the owner's pair records of `kind` (a prefix scan).
    pub fn rel_count(&self, owner: &UserId, kind: RelKind) -> Result<usize> {
        self.count_prefix(Cf::Rel, &prefix(owner, kind))
    }
}

impl Batch {
    /// Records (`on`) or removes the reverse friend entry: `peer` lists `owner`.
    pub fn put_friend_of(&mut self, owner: &UserId, peer: &UserId, on: bool) {
        self.put_flag(Cf::Rel, |k| key(k, owner, RelKind::FriendOf, peer.as_str()), on);
    }

    /// Stores (`Some`) or deletes (`None`) the owner's pair record of `kind` with `peer`.
    pub fn put_rel<T: prost::Message>(
        &mut self,
        owner: &UserId,
        kind: RelKind,
        peer: &UserId,
        rec: Option<&T>,
    ) {
        self.put_or_delete(Cf::Rel, |k| key(k, owner, kind, peer.as_str()), rec);
    }

    /// Moves the `Relation(peer)` entry in `owner`'s feed from `old` to `new`.
    pub fn move_rel_feed(&mut self, owner: &UserId, peer: &UserId, old: u64, new: u64) {
        self.move_feed(owner, old, new, FeedItem::Relation(peer));
        self.put_rel(owner, RelKind::FeedVersion, peer, Some(&VersionRecord { feed_version: new }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BlockRecord, Durability, FriendRecord, StoreOptions};

    fn u(s: &str) -> UserId {
        UserId::new(s).expect("valid")
    }

    #[test]
    fn keys_group_by_owner_and_kind() {
        let (a, aa) = (u("u"), u("uu"));
        let p = prefix(&a, RelKind::Friend);
        let k = |o: &UserId, kind, peer| keys::owned(|k| key(k, o, kind, peer));
        assert_eq!(k(&a, RelKind::Friend, "bob"), b"u\0F\0bob");
        assert!(k(&a, RelKind::Friend, "bob").starts_with(&p));
        assert!(!k(&a, RelKind::Block, "bob").starts_with(&p));
        assert!(!k(&aa, RelKind::Friend, "bob").starts_with(&p));
        assert!(k(&a, RelKind::Friend, "a") < k(&a, RelKind::Friend, "b"));
        assert!(k(&a, RelKind::Friend, "zzz") < keys::prefix_end(&p));
    }

    #[test]
    fn records_pages_counts_and_feed_pointer() {
        let dir = tempfile::tempdir().expect("tmp");
        let s =
            Store::open(dir.path(), &StoreOptions { durability: Durability::Buffered, ..Default::default() })
                .expect("open");
        let (a, b, c) = (u("a"), u("b"), u("c"));
        let mut w = s.batch();
        w.put_rel(&a, RelKind::Friend, &b, Some(&FriendRecord { since_ms: 1, ..Default::default() }));
        w.put_rel(&a, RelKind::Friend, &c, Some(&FriendRecord { since_ms: 2, ..Default::default() }));
        w.put_rel(&a, RelKind::Block, &c, Some(&BlockRecord { since_ms: 3 }));
        w.put_friend_of(&b, &a, true);
        w.move_rel_feed(&a, &b, 0, 8);
        s.write(w).expect("write");
        assert_eq!(s.rel::<FriendRecord>(&a, RelKind::Friend, &c).expect("get").map(|f| f.since_ms), Some(2));
        assert_eq!(s.rel::<BlockRecord>(&a, RelKind::Block, &b).expect("get"), None);
        assert_eq!(s.rel_count(&a, RelKind::Friend).expect("count"), 2);
        assert_eq!(s.rel_count(&a, RelKind::Block).expect("count"), 1);
        let page = s.rel_page(&a, RelKind::Friend, "b", 10).expect("page");
        assert_eq!(page.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(), ["c"]);
        assert_eq!(s.rel_page(&b, RelKind::FriendOf, "", 10).expect("page")[0].0, "a");
        let v: Option<VersionRecord> = s.rel(&a, RelKind::FeedVersion, &b).expect("get");
        assert_eq!(v.map(|v| v.feed_version), Some(8));
        assert_eq!(s.feed(&a, 0, u64::MAX, 10).expect("feed")[0].1.relation_peer, "b");
        let mut w = s.batch();
        w.put_rel::<FriendRecord>(&a, RelKind::Friend, &b, None);
        w.put_friend_of(&b, &a, false);
        s.write(w).expect("write");
        assert_eq!(s.rel_count(&a, RelKind::Friend).expect("count"), 1);
        assert_eq!(s.rel_count(&b, RelKind::FriendOf).expect("count"), 0);
    }
}
