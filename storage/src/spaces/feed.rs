//! `feed`: each user's change feed. Key `user 00 version:be64`, value
//! [`FeedRecord`] naming what changed (a conversation, the user's settings, a
//! relation or a profile).
//!
//! Invariants:
//! - Each (user, thing) has at most one live entry: whoever moves it deletes
//!   the old version's key and writes the new one in the same batch, so sync
//!   cost grows with changed things, not with messages. The live version is
//!   kept in the thing's own record (`uconv`, settings, `rel` V, `user` v).
//! - Only range scans of one user read it (delete-heavy: the engine compacts
//!   tombstone-dense files early).

use missive_protocol::{ConvId, UserId};
use rocksdb::Direction;

use crate::batch::Batch;
use crate::engine::Cf;
use crate::keys;
use crate::records::FeedRecord;
use crate::store::{Store, decode};
use crate::{Result, StorageError};

/// Appends the key `user 00 version`.
fn key(out: &mut Vec<u8>, user: &UserId, version: u64) {
    keys::part(out, user.as_str().as_bytes());
    out.extend_from_slice(&version.to_be_bytes());
}

fn owned_key(user: &UserId, version: u64) -> Vec<u8> {
    keys::owned(|k| key(k, user, version))
}

/// What a feed entry names: the one non-empty field of its [`FeedRecord`],
/// borrowed so that moving an entry allocates nothing.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FeedItem<'a> {
    /// `conv_id`: the user's state in this conversation changed.
    Conv(&'a ConvId),
    /// No field: the user's settings changed.
    Settings,
    /// `relation_peer`: the user's relation with this peer changed.
    Relation(&'a UserId),
    /// `profile_user`: this user's profile changed.
    Profile(&'a UserId),
}

impl FeedItem<'_> {
    /// Appends the item's [`FeedRecord`] encoding: the same bytes as prost's
    /// (one length-delimited string field, or nothing for settings).
    fn encode(self, out: &mut Vec<u8>) {
        let (tag, s) = match self {
            FeedItem::Conv(c) => (1u8, c.as_str()),
            FeedItem::Settings => return,
            FeedItem::Relation(p) => (2, p.as_str()),
            FeedItem::Profile(u) => (3, u.as_str()),
        };
        out.push(tag << 3 | 2); // field number, wire type LEN
        let mut len = s.len() as u64;
        while len >= 0x80 {
            out.push((len as u8) | 0x80);
            len >>= 7;
        }
        out.push(len as u8);
        out.extend_from_slice(s.as_bytes());
    }
}

impl Store {
    /// Feed entries of `user` with `after < version <= upto`, ascending, at most `limit`.
    pub fn feed(&self, user: &UserId, after: u64, upto: u64, limit: usize) -> Result<Vec<(u64, FeedRecord)>> {
        let mut out = Vec::new();
        if after >= upto || limit == 0 {
            return Ok(out);
        }
        let prefix = keys::owned(|k| keys::part(k, user.as_str().as_bytes()));
        let upper = match upto.checked_add(1) {
            Some(next) => owned_key(user, next),
            None => keys::prefix_end(&prefix),
        };
        let start = owned_key(user, after.saturating_add(1));
        for item in self.iter(Cf::Feed, &start, Direction::Forward, None, Some(upper)) {
            let (k, v) = item?;
            let Some(rest) = k.strip_prefix(prefix.as_slice()) else { break };
            let Ok(arr) = <[u8; 8]>::try_from(rest) else {
                return Err(StorageError::Corrupt { cf: Cf::Feed.name(), detail: "bad key".into() });
            };
            out.push((u64::from_be_bytes(arr), decode(Cf::Feed, &v)?));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }
}

impl Batch {
    /// Moves the live feed entry of `user` naming `item` from version `old` to
    /// `new` (0 = none): deletes the old key unless it is the new one, then
    /// writes the new one.
    pub(crate) fn move_feed(&mut self, user: &UserId, old: u64, new: u64, item: FeedItem<'_>) {
        if old != 0 && old != new {
            self.delete(Cf::Feed, |k| key(k, user, old));
        }
        if new != 0 {
            self.put(Cf::Feed, |k| key(k, user, new), |v| item.encode(v));
        }
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    fn u(s: &str) -> UserId {
        UserId::new(s).expect("valid")
    }

    #[test]
    fn keys_sort_by_version() {
        let (a, aa) = (u("u"), u("uu"));
        let prefix = keys::owned(|k| keys::part(k, b"u"));
        assert!(owned_key(&a, 9) < owned_key(&a, 10));
        assert!(owned_key(&a, u64::MAX) < keys::owned(|k| keys::part(k, b"uu")));
        assert!(owned_key(&a, 3).starts_with(&prefix));
        assert!(!owned_key(&aa, 3).starts_with(&prefix));
    }

    /// A hot entry moved thousands of times, across flushes (tombstone-dense
    /// files, marked for compaction), still reads as one live entry.
    #[test]
    fn a_hot_entry_moved_many_times_reads_once() {
        use crate::{Durability, StoreOptions, UserConvRecord};
        let dir = tempfile::tempdir().expect("tmp");
        let s =
            Store::open(dir.path(), &StoreOptions { durability: Durability::Buffered, ..Default::default() })
                .expect("open");
        let (a, b) = (u("a"), u("b"));
        let c = ConvId::direct(&a, &b).expect("conv");
        let mut version = 0;
        for round in 0..4 {
            let mut w = s.batch();
            for _ in 0..2_000 {
                let rec = UserConvRecord { feed_version: version + 1, ..Default::default() };
                w.put_user_conv(&a, &c, version, &rec);
                version += 1;
            }
            s.write(w).expect("write");
            if round % 2 == 0 {
                s.flush().expect("flush");
            }
        }
        let live = s.feed(&a, 0, u64::MAX, 100).expect("feed");
        assert_eq!(
            live.iter().map(|(v, r)| (*v, r.conv_id.as_str())).collect::<Vec<_>>(),
            [(8_000, c.as_str())]
        );
        assert!(s.feed(&a, 0, 7_999, 100).expect("feed").is_empty());
        assert!(s.feed(&b, 0, u64::MAX, 100).expect("feed").is_empty());
    }

    #[test]
    fn items_encode_like_prost() {
        let c = ConvId::parse("p:a:b").expect("valid");
        let long = u(&"x".repeat(64));
        let peer = u("peer");
        let cases: [(FeedItem<'_>, FeedRecord); 5] = [
            (FeedItem::Conv(&c), FeedRecord { conv_id: c.as_str().into(), ..Default::default() }),
            (FeedItem::Settings, FeedRecord::default()),
            (FeedItem::Relation(&peer), FeedRecord { relation_peer: "peer".into(), ..Default::default() }),
            (FeedItem::Profile(&peer), FeedRecord { profile_user: "peer".into(), ..Default::default() }),
            (FeedItem::Profile(&long), FeedRecord { profile_user: "x".repeat(64), ..Default::default() }),
        ];
        for (item, rec) in cases {
            let mut out = Vec::new();
            item.encode(&mut out);
            assert_eq!(out, rec.encode_to_vec(), "{item:?}");
        }
        // The longest direct conversation id (131 bytes) needs a two-byte length.
        let wide = ConvId::parse(&format!("p:{}:{}", "a".repeat(64), "b".repeat(64))).expect("valid");
        let mut out = Vec::new();
        FeedItem::Conv(&wide).encode(&mut out);
        assert_eq!(&out[..3], &[1 << 3 | 2, 0x83, 0x01]); // 131 = 3 + 1 << 7
        assert_eq!(out, FeedRecord { conv_id: wide.as_str().into(), ..Default::default() }.encode_to_vec());
    }
}
