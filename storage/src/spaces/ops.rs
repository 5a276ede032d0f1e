//! `ops`: the server-integration records (issue #15), one sub-space each.
//!
//! Key `space 00 id`, where `space` is an [`OpsSpace`] name and `id` is the
//! record's id bytes (no `00` needed: the id is the key's last component, so
//! it may be a big-endian integer). Values are the broker's own encodings
//! (JSON documents for these records, which leave the node as JSON anyway).
//!
//! | space    | id                              | value | writer |
//! |----------|---------------------------------|-------|--------|
//! | `audit`  | `ms:be64 ‖ n:be32`               | one admin write (who, what, when) | the API edge |
//! | `outbox` | `endpoint 00 event_id:be64`      | an after-event awaiting delivery | the owner shard that staged the event (put), the webhook dispatcher (delete) |
//! | `dead`   | `endpoint 00 event_id:be64`      | an event that failed every attempt | the webhook dispatcher |
//! | `hook`   | `endpoint`                       | a webhook endpoint | the API edge |
//! | `words`  | `list`                           | a sensitive-word list | the API edge |
//! | `mute`   | `user`                           | a global mute (until, Unix ms) | the API edge |
//! | `tr`     | `conv 00 seq:be64 ‖ language`    | a cached translation (edit version, text) | the conversation's owner shard |
//!
//! Invariants: every key's first component is its space name, so a scan of
//! one space never leaves it (the family has a prefix filter); ids sort in
//! the order they are meant to be read (time, then counter); an outbox entry
//! is put in the same batch as the change it reports, so a committed change
//! always has its event.

use rocksdb::Direction;

use crate::Result;
use crate::batch::Batch;
use crate::engine::Cf;
use crate::keys;
use crate::store::Store;

/// The sub-spaces of the `ops` family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpsSpace {
    /// The admin audit log.
    Audit,
    /// After-events awaiting delivery, per webhook endpoint.
    Outbox,
    /// After-events that failed every attempt, per webhook endpoint.
    Dead,
    /// Webhook endpoints.
    Hook,
    /// Sensitive-word lists.
    Words,
    /// Global mutes (moderation), per user.
    Mute,
    /// Cached translations of messages (spec 18.10), per message and language.
    Translation,
}

impl OpsSpace {
    fn name(self) -> &'static [u8] {
        match self {
            Self::Audit => b"audit",
            Self::Outbox => b"outbox",
            Self::Dead => b"dead",
            Self::Hook => b"hook",
            Self::Words => b"words",
            Self::Mute => b"mute",
            Self::Translation => b"tr",
        }
    }
}

fn key(out: &mut Vec<u8>, space: OpsSpace, id: &[u8]) {
    keys::part(out, space.name());
    out.extend_from_slice(id);
}

impl Store {
    /// One record of `space`.
    pub fn ops_get(&self, space: OpsSpace, id: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get(Cf::Ops, &keys::owned(|k| key(k, space, id)))
    }

    /// The partition holding record `id` of `space` (0 when there is none):
    /// where a writer outside the shards updates, moves or deletes a record a
    /// shard created (a webhook outbox record, a dead letter), so the change
    /// lands on the record and a move stays one atomic batch.
    pub fn ops_partition(&self, space: OpsSpace, id: &[u8]) -> Result<usize> {
        Ok(self.partition_of(Cf::Ops, &keys::owned(|k| key(k, space, id)))?.unwrap_or(0))
    }

    /// Records of `space` whose id starts with `prefix`, after id `after`
    /// (exclusive; `None` = from the start), ascending, at most `limit`:
    /// (id, value).
    pub fn ops_scan(
        &self,
        space: OpsSpace,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let head = keys::owned(|k| key(k, space, b""));
        let lower = keys::owned(|k| key(k, space, prefix));
        let start = match after {
            Some(a) if a >= prefix => keys::owned(|k| key(k, space, a)),
            _ => lower.clone(),
        };
        for item in self.iter(Cf::Ops, &start, Direction::Forward, None, Some(keys::prefix_end(&lower))) {
            let (k, v) = item?;
            let Some(id) = k.strip_prefix(head.as_slice()) else { break };
            if after.is_some_and(|a| a == id) {
                continue;
            }
            out.push((id.to_vec(), v.to_vec()));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Records of `space`, newest id first, before id `before` (exclusive;
    /// `None` = from the end), at most `limit`: (id, value).
    pub fn ops_scan_rev(
        &self,
        space: OpsSpace,
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let head = keys::owned(|k| key(k, space, b""));
        let end = keys::prefix_end(&head);
        let upper = match before {
            Some(b) => keys::owned(|k| key(k, space, b)),
            None => end.clone(),
        };
        for item in self.iter(Cf::Ops, &upper, Direction::Reverse, Some(head.clone()), Some(upper.clone())) {
            let (k, v) = item?;
            let Some(id) = k.strip_prefix(head.as_slice()) else { break };
            out.push((id.to_vec(), v.to_vec()));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }
}

impl Batch {
    /// Puts one record of `space`.
    pub fn put_ops(&mut self, space: OpsSpace, id: &[u8], value: &[u8]) {
        self.put(Cf::Ops, |k| key(k, space, id), |v| v.extend_from_slice(value));
    }

    /// Deletes one record of `space`.
    pub fn delete_ops(&mut self, space: OpsSpace, id: &[u8]) {
        self.delete(Cf::Ops, |k| key(k, space, id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Durability, StoreOptions};

    #[test]
    fn spaces_scan_in_order_and_stay_apart() {
        let dir = tempfile::tempdir().expect("tmp");
        let s =
            Store::open(dir.path(), &StoreOptions { durability: Durability::Buffered, ..Default::default() })
                .expect("open");
        let mut b = s.batch();
        for n in [3u64, 1, 2] {
            b.put_ops(OpsSpace::Audit, &n.to_be_bytes(), format!("a{n}").as_bytes());
        }
        b.put_ops(OpsSpace::Outbox, b"h1\0\0\0\0\0\0\0\0\x01", b"o1");
        b.put_ops(OpsSpace::Outbox, b"h2\0\0\0\0\0\0\0\0\x01", b"o2");
        s.write(b).expect("write");
        let all = s.ops_scan(OpsSpace::Audit, b"", None, 10).expect("scan");
        assert_eq!(all.iter().map(|(_, v)| v.as_slice()).collect::<Vec<_>>(), [b"a1", b"a2", b"a3"]);
        let after = s.ops_scan(OpsSpace::Audit, b"", Some(&1u64.to_be_bytes()), 10).expect("scan");
        assert_eq!(after.len(), 2);
        let rev = s.ops_scan_rev(OpsSpace::Audit, None, 2).expect("rev");
        assert_eq!(rev.iter().map(|(_, v)| v.as_slice()).collect::<Vec<_>>(), [b"a3", b"a2"]);
        let rev = s.ops_scan_rev(OpsSpace::Audit, Some(&2u64.to_be_bytes()), 5).expect("rev");
        assert_eq!(rev.iter().map(|(_, v)| v.as_slice()).collect::<Vec<_>>(), [b"a1"]);
        let h2 = s.ops_scan(OpsSpace::Outbox, b"h2\0", None, 10).expect("scan");
        assert_eq!(h2.len(), 1);
        assert_eq!(h2[0].1, b"o2");
        let mut b = s.batch();
        b.delete_ops(OpsSpace::Outbox, b"h2\0\0\0\0\0\0\0\0\x01");
        s.write(b).expect("write");
        assert!(s.ops_get(OpsSpace::Outbox, b"h2\0\0\0\0\0\0\0\0\x01").expect("get").is_none());
        assert!(s.ops_scan(OpsSpace::Dead, b"", None, 10).expect("scan").is_empty());
    }

    /// A record a shard staged in its partition is changed where it lives by
    /// the writers outside the shards: an update replaces it (no second copy
    /// in partition 0), a move to the dead letters stays in that partition,
    /// and a delete removes it.
    #[test]
    fn records_are_changed_in_the_partition_that_holds_them() {
        let dir = tempfile::tempdir().expect("tmp");
        let opts = StoreOptions { durability: Durability::Buffered, partitions: 2, ..Default::default() };
        let s = Store::open(dir.path(), &opts).expect("open");
        let id = b"h1\0\0\0\0\0\0\0\0\x07";
        let mut b = s.batch_for(1);
        b.put_ops(OpsSpace::Outbox, id, b"attempt 0");
        s.write(b).expect("staged by shard 1");
        assert_eq!(s.ops_partition(OpsSpace::Outbox, id).expect("locate"), 1);
        assert_eq!(s.ops_partition(OpsSpace::Outbox, b"absent").expect("locate"), 0);

        let mut b = s.batch_in(s.ops_partition(OpsSpace::Outbox, id).expect("locate"));
        b.put_ops(OpsSpace::Outbox, id, b"attempt 1");
        s.write(b).expect("update");
        let rows = s.ops_scan(OpsSpace::Outbox, b"h1\0", None, 10).expect("scan");
        assert_eq!(rows, [(id.to_vec(), b"attempt 1".to_vec())], "one copy, updated");

        let mut b = s.batch_in(s.ops_partition(OpsSpace::Outbox, id).expect("locate"));
        b.delete_ops(OpsSpace::Outbox, id);
        b.put_ops(OpsSpace::Dead, id, b"dead");
        s.write(b).expect("move");
        assert!(s.ops_scan(OpsSpace::Outbox, b"", None, 10).expect("scan").is_empty());
        assert_eq!(
            s.ops_partition(OpsSpace::Dead, id).expect("locate"),
            1,
            "the letter stays with the record"
        );

        // Partition 0's batch would miss it: the delete must go where it is.
        let mut b = s.batch();
        b.delete_ops(OpsSpace::Dead, id);
        s.write(b).expect("a delete elsewhere");
        assert_eq!(s.ops_scan(OpsSpace::Dead, b"", None, 10).expect("scan").len(), 1);
        let mut b = s.batch_in(s.ops_partition(OpsSpace::Dead, id).expect("locate"));
        b.delete_ops(OpsSpace::Dead, id);
        s.write(b).expect("delete");
        assert!(s.ops_scan(OpsSpace::Dead, b"", None, 10).expect("scan").is_empty());
    }
}
