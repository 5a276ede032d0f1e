//! `life`: the message lifecycle (spec section 18). Every key starts with its
//! conversation, so one conversation's records are one prefix:
//!
//! | key | value |
//! |---|---|
//! | `conv 00 'u' update_seq:be64` | [`UpdateRecord`]: the update index ([UP-1]) |
//! | `conv 00 'x' seq:be64` | [`ExtrasRecord`]: reactions and extensions of a message |
//! | `conv 00 'r' seq:be64 key 00 user` | a reaction row: when `user` reacted with `key` (be64 ms) |
//! | `conv 00 'p' seq:be64 user` | [`UserReactionsRecord`]: `user`'s keys on the message |
//! | `conv 00 'd' user 00 seq:be64` | empty: the message is deleted for `user` ([DL-1]) |
//!
//! Invariants:
//! - The conversation's update seq is recovered from the index itself (its
//!   last key), like the max seq of the log: a restart never reuses one.
//! - A message has at most one index entry for everyone (the writer deletes
//!   the previous one when it moves), so `PullUpdates` reads each changed
//!   message once; per-user deletions have their own entries.
//! - Reaction keys and user ids contain no `00` (keys: no control
//!   characters), so `key 00 user` splits unambiguously.

use missive_protocol::{ConvId, Seq, UserId};
use rocksdb::Direction;

use crate::Result;
use crate::batch::Batch;
use crate::engine::Cf;
use crate::keys;
use crate::records::{ExtrasRecord, UpdateRecord, UserReactionsRecord};
use crate::store::{Store, decode};

const UPDATE: u8 = b'u';
const EXTRAS: u8 = b'x';
const REACTION: u8 = b'r';
const USER_REACTIONS: u8 = b'p';
const DELETED: u8 = b'd';

/// `conv 00 tag`.
fn head(out: &mut Vec<u8>, conv: &ConvId, tag: u8) {
    keys::record(out, conv.as_str().as_bytes(), tag);
}

fn seq_key(out: &mut Vec<u8>, conv: &ConvId, tag: u8, seq: u64) {
    head(out, conv, tag);
    out.extend_from_slice(&seq.to_be_bytes());
}

fn reaction_key(out: &mut Vec<u8>, conv: &ConvId, seq: u64, key: &str, user: &str) {
    seq_key(out, conv, REACTION, seq);
    keys::part(out, key.as_bytes());
    out.extend_from_slice(user.as_bytes());
}

fn user_reactions_key(out: &mut Vec<u8>, conv: &ConvId, seq: u64, user: &str) {
    seq_key(out, conv, USER_REACTIONS, seq);
    out.extend_from_slice(user.as_bytes());
}

fn deleted_key(out: &mut Vec<u8>, conv: &ConvId, user: &str, seq: u64) {
    head(out, conv, DELETED);
    keys::part(out, user.as_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
}

fn be64(rest: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(rest.get(..8)?.try_into().ok()?))
}

fn corrupt(detail: &str) -> crate::StorageError {
    crate::StorageError::Corrupt { cf: Cf::Life.name(), detail: detail.into() }
}

/// One row of a scan: (seq or update seq, decoded value).
pub type LifeRow<T> = (u64, T);

impl Store {
    /// The conversation's highest update seq (0 = never updated).
    pub fn update_seq(&self, conv: &ConvId) -> Result<u64> {
        let prefix = keys::owned(|k| head(k, conv, UPDATE));
        let last = keys::owned(|k| seq_key(k, conv, UPDATE, u64::MAX));
        let mut it = self.iter(Cf::Life, &last, Direction::Reverse, Some(prefix.clone()), None);
        match it.next() {
            None => Ok(0),
            Some(item) => {
                let (k, _) = item?;
                match k.strip_prefix(prefix.as_slice()) {
                    Some(rest) => be64(rest).ok_or_else(|| corrupt("bad update key")),
                    None => Ok(0),
                }
            }
        }
    }

    /// Index entries with update seq > `after`, ascending, at most `limit`.
    pub fn updates_after(
        &self,
        conv: &ConvId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<LifeRow<UpdateRecord>>> {
        let prefix = keys::owned(|k| head(k, conv, UPDATE));
        let start = keys::owned(|k| seq_key(k, conv, UPDATE, after.saturating_add(1)));
        let mut out = Vec::new();
        if after == u64::MAX || limit == 0 {
            return Ok(out);
        }
        for item in self.iter(Cf::Life, &start, Direction::Forward, None, Some(keys::prefix_end(&prefix))) {
            let (k, v) = item?;
            let Some(rest) = k.strip_prefix(prefix.as_slice()) else { break };
            let useq = be64(rest).ok_or_else(|| corrupt("bad update key"))?;
            out.push((useq, decode::<UpdateRecord>(Cf::Life, &v)?));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// The extras of one message.
    pub fn extras(&self, conv: &ConvId, seq: u64) -> Result<Option<ExtrasRecord>> {
        self.get_decoded(Cf::Life, &keys::owned(|k| seq_key(k, conv, EXTRAS, seq)))
    }

    /// The extras of the messages `from..=to`, ascending.
    pub fn extras_range(&self, conv: &ConvId, from: u64, to: u64) -> Result<Vec<LifeRow<ExtrasRecord>>> {
        self.seq_rows(conv, EXTRAS, from, to, |v| decode::<ExtrasRecord>(Cf::Life, v))
    }

    /// Seqs in `from..=to` deleted for `user`, ascending.
    pub fn deleted_for(&self, conv: &ConvId, user: &UserId, from: u64, to: u64) -> Result<Vec<u64>> {
        let prefix = keys::owned(|k| {
            head(k, conv, DELETED);
            keys::part(k, user.as_str().as_bytes());
        });
        let mut out = Vec::new();
        if from > to {
            return Ok(out);
        }
        let mut start = prefix.clone();
        start.extend_from_slice(&from.to_be_bytes());
        for item in self.iter(Cf::Life, &start, Direction::Forward, None, Some(keys::prefix_end(&prefix))) {
            let (k, _) = item?;
            let Some(rest) = k.strip_prefix(prefix.as_slice()) else { break };
            let seq = be64(rest).ok_or_else(|| corrupt("bad deletion key"))?;
            if seq > to {
                break;
            }
            out.push(seq);
        }
        Ok(out)
    }

    /// Whether `seq` is deleted for `user`.
    pub fn is_deleted_for(&self, conv: &ConvId, user: &UserId, seq: u64) -> Result<bool> {
        Ok(self.get(Cf::Life, &keys::owned(|k| deleted_key(k, conv, user.as_str(), seq)))?.is_some())
    }

    /// When `user` reacted to `seq` with `key` (unix ms), if they did.
    pub fn reaction(&self, conv: &ConvId, seq: u64, key: &str, user: &UserId) -> Result<Option<u64>> {
        match self.get(Cf::Life, &keys::owned(|k| reaction_key(k, conv, seq, key, user.as_str())))? {
            None => Ok(None),
            Some(v) => be64(&v).map(Some).ok_or_else(|| corrupt("bad reaction time")),
        }
    }

    /// The users who reacted to `seq` with `key`, ascending user id, after
    /// `after` (exclusive; "" = from the first), at most `limit`: (user, at_ms).
    pub fn reaction_users(
        &self,
        conv: &ConvId,
        seq: u64,
        key: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, u64)>> {
        let prefix = keys::owned(|k| {
            seq_key(k, conv, REACTION, seq);
            keys::part(k, key.as_bytes());
        });
        let rows = self.scan_suffixes(Cf::Life, &prefix, after, limit)?;
        rows.into_iter()
            .map(|(u, v)| be64(&v).map(|at| (u, at)).ok_or_else(|| corrupt("bad reaction time")))
            .collect()
    }

    /// The reaction keys `user` has on `seq`.
    pub fn user_reactions(&self, conv: &ConvId, seq: u64, user: &UserId) -> Result<UserReactionsRecord> {
        Ok(self
            .get_decoded(Cf::Life, &keys::owned(|k| user_reactions_key(k, conv, seq, user.as_str())))?
            .unwrap_or_default())
    }

    fn seq_rows<T>(
        &self,
        conv: &ConvId,
        tag: u8,
        from: u64,
        to: u64,
        dec: impl Fn(&[u8]) -> Result<T>,
    ) -> Result<Vec<LifeRow<T>>> {
        let mut out = Vec::new();
        if from > to {
            return Ok(out);
        }
        let prefix = keys::owned(|k| head(k, conv, tag));
        let start = keys::owned(|k| seq_key(k, conv, tag, from));
        let upper = match to.checked_add(1) {
            Some(n) => keys::owned(|k| seq_key(k, conv, tag, n)),
            None => keys::prefix_end(&prefix),
        };
        for item in self.iter(Cf::Life, &start, Direction::Forward, None, Some(upper)) {
            let (k, v) = item?;
            let Some(rest) = k.strip_prefix(prefix.as_slice()) else { break };
            let seq = be64(rest).ok_or_else(|| corrupt("bad seq key"))?;
            out.push((seq, dec(&v)?));
        }
        Ok(out)
    }
}

impl Batch {
    /// Replaces a stored message (recall, edit, delete for everyone): the
    /// same key as `put_message`, not counted as a new message.
    pub fn replace_message(&mut self, conv: &ConvId, seq: Seq, encoded: &[u8]) {
        self.put(Cf::Msg, |k| crate::spaces::msg::key(k, conv, seq), |v| v.extend_from_slice(encoded));
    }

    /// Writes update index entry `update_seq`.
    pub fn put_update(&mut self, conv: &ConvId, update_seq: u64, rec: &UpdateRecord) {
        self.put_record(Cf::Life, |k| seq_key(k, conv, UPDATE, update_seq), rec);
    }

    /// Deletes update index entry `update_seq` (the message moved on).
    pub fn delete_update(&mut self, conv: &ConvId, update_seq: u64) {
        self.delete(Cf::Life, |k| seq_key(k, conv, UPDATE, update_seq));
    }

    /// Writes (or, when empty, deletes) a message's extras.
    pub fn put_extras(&mut self, conv: &ConvId, seq: u64, rec: &ExtrasRecord) {
        self.put_record(Cf::Life, |k| seq_key(k, conv, EXTRAS, seq), rec);
    }

    /// Writes or deletes one reaction row.
    pub fn put_reaction(&mut self, conv: &ConvId, seq: u64, key: &str, user: &UserId, at_ms: Option<u64>) {
        match at_ms {
            Some(at) => self.put(
                Cf::Life,
                |k| reaction_key(k, conv, seq, key, user.as_str()),
                |v| v.extend_from_slice(&at.to_be_bytes()),
            ),
            None => self.delete(Cf::Life, |k| reaction_key(k, conv, seq, key, user.as_str())),
        }
    }

    /// Writes (or, when it holds no key, deletes) `user`'s keys on a message.
    pub fn put_user_reactions(&mut self, conv: &ConvId, seq: u64, user: &UserId, rec: &UserReactionsRecord) {
        if rec.keys.is_empty() {
            self.delete(Cf::Life, |k| user_reactions_key(k, conv, seq, user.as_str()));
        } else {
            self.put_record(Cf::Life, |k| user_reactions_key(k, conv, seq, user.as_str()), rec);
        }
    }

    /// Marks `seq` deleted for `user`.
    pub fn put_deleted_for(&mut self, conv: &ConvId, user: &UserId, seq: u64) {
        self.put_empty(Cf::Life, |k| deleted_key(k, conv, user.as_str(), seq));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Durability, StoreOptions};

    fn conv(s: &str) -> ConvId {
        ConvId::parse(s).expect("valid")
    }

    #[test]
    fn update_index_recovers_its_max_and_pages() {
        let dir = tempfile::tempdir().expect("tmp");
        let s =
            Store::open(dir.path(), &StoreOptions { durability: Durability::Buffered, ..Default::default() })
                .expect("open");
        let a = conv("g:a");
        let ab = conv("g:ab");
        assert_eq!(s.update_seq(&a).expect("read"), 0);
        let mut b = s.batch();
        for u in 1..=5u64 {
            b.put_update(&a, u, &UpdateRecord { seq: u * 10, user: String::new() });
        }
        b.put_update(&ab, 99, &UpdateRecord { seq: 1, user: String::new() });
        b.delete_update(&a, 5);
        s.write(b).expect("write");
        assert_eq!(s.update_seq(&a).expect("read"), 4);
        assert_eq!(s.update_seq(&ab).expect("read"), 99);
        let rows = s.updates_after(&a, 1, 2).expect("scan");
        assert_eq!(rows.iter().map(|r| (r.0, r.1.seq)).collect::<Vec<_>>(), vec![(2, 20), (3, 30)]);
        assert!(s.updates_after(&a, 4, 10).expect("scan").is_empty());
    }

    #[test]
    fn reactions_and_deletions_stay_in_their_message_and_user() {
        let dir = tempfile::tempdir().expect("tmp");
        let s =
            Store::open(dir.path(), &StoreOptions { durability: Durability::Buffered, ..Default::default() })
                .expect("open");
        let c = conv("p:a:b");
        let (ua, ub) = (UserId::new("a").expect("id"), UserId::new("ab").expect("id"));
        let mut b = s.batch();
        b.put_reaction(&c, 1, "👍", &ua, Some(7));
        b.put_reaction(&c, 1, "👍", &ub, Some(8));
        b.put_reaction(&c, 2, "👍", &ua, Some(9));
        b.put_deleted_for(&c, &ua, 3);
        b.put_deleted_for(&c, &ub, 4);
        s.write(b).expect("write");
        let users = s.reaction_users(&c, 1, "👍", "", 10).expect("scan");
        assert_eq!(users, vec![("a".to_owned(), 7), ("ab".to_owned(), 8)]);
        assert_eq!(s.reaction_users(&c, 1, "👍", "a", 10).expect("scan"), vec![("ab".to_owned(), 8)]);
        assert_eq!(s.reaction(&c, 2, "👍", &ub).expect("get"), None);
        assert_eq!(s.deleted_for(&c, &ua, 1, 10).expect("scan"), vec![3]);
        assert_eq!(s.deleted_for(&c, &ub, 1, 10).expect("scan"), vec![4]);
        assert!(s.is_deleted_for(&c, &ua, 3).expect("get"));
    }
}
