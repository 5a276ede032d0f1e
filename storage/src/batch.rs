//! [`Batch`]: the mutations of one write, staged in memory, with save points.
//!
//! Role: keyspaces (`spaces/*`) append puts and deletes here; `Store::write`
//! turns the batch into one RocksDB `WriteBatch` and writes it atomically. A
//! caller stages each operation inside a [`SavePoint`] and rolls back to it when
//! the operation is refused, so a refused operation leaves nothing behind
//! (rust-rocksdb's `WriteBatch` has no save points, hence this own staging).
//!
//! Layout: all keys and values live back to back in one byte buffer; each
//! staged mutation is one small fixed-size [`Entry`] holding where its key and
//! value end. Staging a mutation allocates nothing once the two vectors have
//! grown (keys and prost values are encoded straight into the buffer).
//!
//! Invariants:
//! - `entries[i]` covers `buf[entries[i-1].end .. entries[i].end]` (from 0 for
//!   the first); its key is `..key_end`, its value `key_end..end`; so
//!   `buf.len()` is the last entry's `end` (0 when empty).
//! - A [`SavePoint`] is the number of entries at the time it was taken;
//!   rolling back truncates both vectors to that point and therefore keeps the
//!   previous invariant, whatever tokens are used.
//! - Entries are applied in staging order: a later put or delete of the same
//!   key wins, exactly as in a RocksDB `WriteBatch`.

use crate::engine::Cf;

/// One staged mutation. Its bytes start where the previous entry's end.
#[derive(Debug, Clone, Copy)]
struct Entry {
    cf: Cf,
    /// `false`: a delete (no value bytes).
    put: bool,
    /// End of the key in the buffer (start of the value).
    key_end: usize,
    /// End of the value in the buffer (= `key_end` for a delete).
    end: usize,
}

/// An atomic set of mutations, written by `Store::write`.
///
/// Built by `Store::batch`; the keyspace methods (`put_message`,
/// `put_user_conv`, ...) stage into it. Nothing is visible to reads before
/// the write.
#[derive(Default)]
pub struct Batch {
    /// Keys and values of every entry, back to back.
    buf: Vec<u8>,
    entries: Vec<Entry>,
    /// Messages staged ([`Batch::put_message`]), for the broker's counters.
    messages: usize,
    /// The store partition the batch is written to ([`crate::Store::batch_for`]).
    pub(crate) part: usize,
}

/// A point in a [`Batch`] to roll back to: everything staged after it can be
/// dropped with [`Batch::rollback_to`]. Cheap to copy; holds only lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SavePoint {
    entries: usize,
    bytes: usize,
    messages: usize,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch").field("ops", &self.entries.len()).field("bytes", &self.buf.len()).finish()
    }
}

impl Batch {
    /// An empty batch with room for `entries` mutations of `bytes` key and
    /// value bytes in total before it grows.
    pub(crate) fn with_capacity(entries: usize, bytes: usize) -> Self {
        Self { buf: Vec::with_capacity(bytes), entries: Vec::with_capacity(entries), messages: 0, part: 0 }
    }

    /// Number of mutations in the batch.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Messages staged in this batch (`msg` puts; rolled back with the batch).
    pub fn messages(&self) -> usize {
        self.messages
    }

    /// Whether the batch has no mutation.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The current end of the batch. Save points nest: a token taken later
    /// lies inside every earlier one, and rolling back to an earlier token
    /// also drops everything after the later ones.
    pub fn save_point(&self) -> SavePoint {
        SavePoint { entries: self.entries.len(), bytes: self.buf.len(), messages: self.messages }
    }

    /// Drops every mutation staged after `sp`; the batch is then exactly as it
    /// was when `sp` was taken, and staging can go on.
    ///
    /// A token at or beyond the current end (taken after a point already
    /// rolled back past) changes nothing.
    pub fn rollback_to(&mut self, sp: SavePoint) {
        if sp.entries >= self.entries.len() {
            return;
        }
        self.entries.truncate(sp.entries);
        self.messages = sp.messages.min(self.messages);
        let end = self.entries.last().map_or(0, |e| e.end);
        debug_assert_eq!(end, sp.bytes, "save point from another batch or a rolled-back state");
        self.buf.truncate(end);
    }

    /// Stages a put in `cf`: `key` and then `value` append their bytes.
    /// Counts one staged message ([`Batch::messages`]).
    pub(crate) fn count_message(&mut self) {
        self.messages += 1;
    }

    pub(crate) fn put(&mut self, cf: Cf, key: impl FnOnce(&mut Vec<u8>), value: impl FnOnce(&mut Vec<u8>)) {
        key(&mut self.buf);
        let key_end = self.buf.len();
        value(&mut self.buf);
        self.entries.push(Entry { cf, put: true, key_end, end: self.buf.len() });
    }

    /// Stages a put whose value is a prost record, encoded in place.
    pub(crate) fn put_record<M: prost::Message>(&mut self, cf: Cf, key: impl FnOnce(&mut Vec<u8>), rec: &M) {
        self.put(cf, key, |v| encode_into(rec, v));
    }

    /// Stages a put with an empty value (an index entry).
    pub(crate) fn put_empty(&mut self, cf: Cf, key: impl FnOnce(&mut Vec<u8>)) {
        self.put(cf, key, |_| {});
    }

    /// Stages a delete in `cf`.
    pub(crate) fn delete(&mut self, cf: Cf, key: impl FnOnce(&mut Vec<u8>)) {
        key(&mut self.buf);
        let end = self.buf.len();
        self.entries.push(Entry { cf, put: false, key_end: end, end });
    }

    /// Stages a put of `rec` (`Some`) or a delete (`None`) of one key.
    pub(crate) fn put_or_delete<M: prost::Message>(
        &mut self,
        cf: Cf,
        key: impl FnOnce(&mut Vec<u8>),
        rec: Option<&M>,
    ) {
        match rec {
            Some(r) => self.put_record(cf, key, r),
            None => self.delete(cf, key),
        }
    }

    /// Stages an index entry (`on`: put with an empty value) or its removal.
    pub(crate) fn put_flag(&mut self, cf: Cf, key: impl FnOnce(&mut Vec<u8>), on: bool) {
        if on { self.put_empty(cf, key) } else { self.delete(cf, key) }
    }

    /// Total key and value bytes staged.
    pub(crate) fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// Every staged mutation in order: (family, key, `Some(value)` or `None`
    /// for a delete).
    pub(crate) fn ops(&self) -> impl Iterator<Item = (Cf, &[u8], Option<&[u8]>)> + '_ {
        let mut start = 0;
        self.entries.iter().map(move |e| {
            let key = &self.buf[start..e.key_end];
            let value = e.put.then(|| &self.buf[e.key_end..e.end]);
            start = e.end;
            (e.cf, key, value)
        })
    }
}

/// Appends `rec`'s encoding to `out`. This is what `encode_to_vec` does
/// (reserve `encoded_len`, then encode): a `Vec` grows on demand, so prost's
/// only encode error, insufficient capacity, cannot happen.
pub(crate) fn encode_into<M: prost::Message>(rec: &M, out: &mut Vec<u8>) {
    out.reserve(rec.encoded_len());
    rec.encode_raw(out);
}

#[cfg(test)]
mod tests {
    //! In-memory behaviour of staging and save points. The tests that write a
    //! rolled-back batch and read the store back are in `store.rs`.
    use super::*;

    fn key(k: &'static [u8]) -> impl FnOnce(&mut Vec<u8>) {
        move |b| b.extend_from_slice(k)
    }

    fn dump(b: &Batch) -> Vec<(Cf, Vec<u8>, Option<Vec<u8>>)> {
        b.ops().map(|(cf, k, v)| (cf, k.to_vec(), v.map(<[u8]>::to_vec))).collect()
    }

    #[test]
    fn ops_come_back_in_order_with_their_bytes() {
        let mut b = Batch::default();
        b.put(Cf::Msg, key(b"k1"), |v| v.extend_from_slice(b"v1"));
        b.delete(Cf::Feed, key(b"k2"));
        b.put_empty(Cf::User, key(b"k3"));
        b.put(Cf::Msg, key(b""), |v| v.extend_from_slice(b"v4"));
        assert_eq!(b.len(), 4);
        assert_eq!(b.bytes(), 2 + 2 + 2 + 2 + 2);
        assert_eq!(
            dump(&b),
            vec![
                (Cf::Msg, b"k1".to_vec(), Some(b"v1".to_vec())),
                (Cf::Feed, b"k2".to_vec(), None),
                (Cf::User, b"k3".to_vec(), Some(Vec::new())),
                (Cf::Msg, Vec::new(), Some(b"v4".to_vec())),
            ]
        );
    }

    #[test]
    fn message_count_rolls_back_with_the_batch() {
        let c = missive_protocol::ConvId::parse("p:a:b").expect("valid");
        let mut b = Batch::default();
        b.put_message(&c, missive_protocol::Seq(1), b"x");
        let sp = b.save_point();
        b.put_message(&c, missive_protocol::Seq(2), b"y");
        assert_eq!(b.messages(), 2);
        b.rollback_to(sp);
        assert_eq!(b.messages(), 1);
    }

    #[test]
    fn nested_save_points_roll_back_in_any_order() {
        let mut b = Batch::default();
        let empty = b.save_point();
        b.put(Cf::Msg, key(b"a"), |v| v.push(1));
        let outer = b.save_point();
        b.delete(Cf::Msg, key(b"b"));
        let inner = b.save_point();
        b.put(Cf::Msg, key(b"c"), |v| v.push(3));
        b.rollback_to(inner);
        assert_eq!(b.len(), 2);
        assert_eq!(b.save_point(), inner);
        b.rollback_to(outer);
        assert_eq!(dump(&b), vec![(Cf::Msg, b"a".to_vec(), Some(vec![1]))]);
        // The inner token is past the end now: rolling back to it is a no-op.
        b.rollback_to(inner);
        assert_eq!(b.len(), 1);
        // Staging goes on after a rollback, and its bytes are laid after "a".
        b.put(Cf::Dedup, key(b"d"), |v| v.push(4));
        assert_eq!(
            dump(&b),
            vec![(Cf::Msg, b"a".to_vec(), Some(vec![1])), (Cf::Dedup, b"d".to_vec(), Some(vec![4]))]
        );
        b.rollback_to(empty);
        assert!(b.is_empty());
        assert_eq!(b.bytes(), 0);
        assert_eq!(dump(&b), vec![]);
    }

    #[test]
    fn records_encode_in_place_like_encode_to_vec() {
        use prost::Message as _;
        let rec = crate::DedupRecord { seq: 300, server_msg_id: 1 << 40, server_time_ms: 7, stored_ms: 0 };
        let mut b = Batch::default();
        b.put_record(Cf::Dedup, key(b"k"), &rec);
        b.put_or_delete::<crate::DedupRecord>(Cf::Dedup, key(b"x"), None);
        let ops = dump(&b);
        assert_eq!(ops[0].2.as_deref(), Some(rec.encode_to_vec().as_slice()));
        assert_eq!(ops[1].2, None);
    }
}
