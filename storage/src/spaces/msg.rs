//! `msg`: the conversation logs. Key `conv 00 seq:be64`, value the wire
//! `missive.v1.Message` bytes exactly as the broker gave them.
//!
//! Invariants:
//! - A conversation's history is one contiguous range of keys, ordered by seq
//!   (big-endian), and no other conversation's key falls inside it (the
//!   separator; ids never contain `00`).
//! - The max seq is recovered from the log itself (its last key), so a restart
//!   never reuses or skips a seq.
//! - Every scan seeks to a key of the conversation it reads (prefix filter).

use missive_protocol::{ConvId, Seq};
use rocksdb::Direction;

use crate::Result;
use crate::batch::Batch;
use crate::engine::Cf;
use crate::keys;
use crate::store::Store;

/// Appends the key `conv 00 seq`.
pub(crate) fn key(out: &mut Vec<u8>, conv: &ConvId, seq: Seq) {
    keys::part(out, conv.as_str().as_bytes());
    out.extend_from_slice(&seq.0.to_be_bytes());
}

fn owned_key(conv: &ConvId, seq: Seq) -> Vec<u8> {
    keys::owned(|k| key(k, conv, seq))
}

/// Prefix of every key of `conv`.
fn prefix(conv: &ConvId) -> Vec<u8> {
    keys::owned(|k| keys::part(k, conv.as_str().as_bytes()))
}

/// The seq of a key under `prefix` (`None` if it is not one).
fn seq_of(prefix: &[u8], key: &[u8]) -> Option<Seq> {
    let rest = key.strip_prefix(prefix)?;
    let arr: [u8; 8] = rest.try_into().ok()?;
    Some(Seq(u64::from_be_bytes(arr)))
}

impl Store {
    /// Highest seq stored for `conv` (`Seq(0)` if empty), read from the log.
    pub fn max_seq(&self, conv: &ConvId) -> Result<Seq> {
        let prefix = prefix(conv);
        // The largest possible key of the conversation: a reverse seek from
        // it lands on the last stored seq and stays inside the conversation
        // (a key of another conversation is not one of `prefix`: Seq(0)).
        let last = owned_key(conv, Seq(u64::MAX));
        let mut it = self.iter(Cf::Msg, &last, Direction::Reverse, None, None);
        match it.next() {
            None => Ok(Seq(0)),
            Some(item) => {
                let (k, _) = item?;
                Ok(seq_of(&prefix, &k).unwrap_or(Seq(0)))
            }
        }
    }

    /// The encoded message at (`conv`, `seq`).
    pub fn message(&self, conv: &ConvId, seq: Seq) -> Result<Option<Vec<u8>>> {
        self.get(Cf::Msg, &owned_key(conv, seq))
    }

    /// One page of `conv`'s messages with `from <= seq <= to`, ascending: at
    /// most `limit` rows and `max_bytes` of values (see [`MsgPage`]).
    pub fn messages(
        &self,
        conv: &ConvId,
        from: Seq,
        to: Seq,
        limit: usize,
        max_bytes: usize,
    ) -> Result<MsgPage> {
        if from > to || limit == 0 {
            return Ok(MsgPage::default());
        }
        let prefix = prefix(conv);
        let upper = match to.0.checked_add(1) {
            Some(next) => owned_key(conv, Seq(next)),
            None => keys::prefix_end(&prefix),
        };
        let start = owned_key(conv, from);
        let rows = self.iter(Cf::Msg, &start, Direction::Forward, None, Some(upper));
        MsgPage::fill(&prefix, rows, limit, max_bytes)
    }

    /// One page of `conv`'s messages with `min <= seq < before`, newest first:
    /// at most `limit` rows and `max_bytes` of values (see [`MsgPage`]).
    pub fn messages_before(
        &self,
        conv: &ConvId,
        before: Seq,
        min: Seq,
        limit: usize,
        max_bytes: usize,
    ) -> Result<MsgPage> {
        if before <= min || limit == 0 {
            return Ok(MsgPage::default());
        }
        let prefix = prefix(conv);
        let start = owned_key(conv, Seq(before.0 - 1));
        let rows = self.iter(Cf::Msg, &start, Direction::Reverse, Some(owned_key(conv, min)), None);
        MsgPage::fill(&prefix, rows, limit, max_bytes)
    }
}

/// One page of a conversation log, in scan order.
///
/// Invariant: a page reads at most one row it does not return (the peek that
/// decides `more`): the scan stops at `limit` rows, or before the first row
/// whose value would take the page over `max_bytes` (the first row is always
/// returned, so a page is never empty while rows remain).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MsgPage {
    /// (seq, encoded message).
    pub rows: Vec<(Seq, Vec<u8>)>,
    /// Sum of the rows' value lengths.
    pub bytes: usize,
    /// Rows of the range remain after this page.
    pub more: bool,
}

impl MsgPage {
    fn fill(
        prefix: &[u8],
        rows: crate::store::StoreIter<'_>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Self> {
        let mut page = MsgPage::default();
        for item in rows {
            let (k, v) = item?;
            let Some(seq) = seq_of(prefix, &k) else { break };
            if page.rows.len() >= limit || (!page.rows.is_empty() && page.bytes + v.len() > max_bytes) {
                page.more = true;
                break;
            }
            page.bytes += v.len();
            page.rows.push((seq, v.into_vec()));
        }
        Ok(page)
    }
}

impl Batch {
    /// Appends an encoded message to a conversation log.
    pub fn put_message(&mut self, conv: &ConvId, seq: Seq, encoded: &[u8]) {
        self.count_message();
        self.put(Cf::Msg, |k| key(k, conv, seq), |v| v.extend_from_slice(encoded));
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::{Durability, StoreOptions};

    fn conv(s: &str) -> ConvId {
        ConvId::parse(s).expect("valid")
    }

    #[test]
    fn keys_sort_by_seq_and_do_not_bleed() {
        let a = conv("g:a");
        let ab = conv("g:ab");
        assert!(owned_key(&a, Seq(1)) < owned_key(&a, Seq(2)));
        assert!(owned_key(&a, Seq(255)) < owned_key(&a, Seq(256)));
        assert!(owned_key(&a, Seq(u64::MAX)) < prefix(&ab));
        let p = prefix(&a);
        assert!(!owned_key(&ab, Seq(1)).starts_with(&p));
        assert_eq!(seq_of(&p, &owned_key(&a, Seq(42))), Some(Seq(42)));
        assert_eq!(seq_of(&p, &p), None);
        assert!(owned_key(&a, Seq(u64::MAX)) < keys::prefix_end(&p));
        // On-disk layout: conv, 00, seq big-endian.
        assert_eq!(owned_key(&a, Seq(258)), b"g:a\0\0\0\0\0\0\0\x01\x02");
    }

    fn seqs(page: &MsgPage) -> Vec<u64> {
        page.rows.iter().map(|(q, _)| q.0).collect()
    }

    /// Pages stop at the byte budget (the first row always fits), report
    /// `more` from one peek, and page through the log without gap or repeat.
    #[test]
    fn pages_stop_at_the_byte_budget() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = open(dir.path());
        let c = conv("p:a:b");
        let mut b = s.batch();
        for i in 1..=20u64 {
            b.put_message(&c, Seq(i), &[b'x'; 100]);
        }
        s.write(b).expect("write");
        let p = s.messages(&c, Seq(1), Seq(u64::MAX), 500, 350).expect("scan");
        assert_eq!(seqs(&p), vec![1, 2, 3]);
        assert_eq!(p.bytes, 300);
        assert!(p.more);
        let p = s.messages(&c, Seq(1), Seq(u64::MAX), 500, 10).expect("scan");
        assert_eq!(seqs(&p), vec![1], "the first row always fits");
        assert!(p.more);
        let p = s.messages_before(&c, Seq(21), Seq(1), 500, 250).expect("scan");
        assert_eq!(seqs(&p), vec![20, 19]);
        assert!(p.more);
        let p = s.messages(&c, Seq(19), Seq(20), 500, 200).expect("scan");
        assert_eq!(seqs(&p), vec![19, 20]);
        assert!(!p.more, "the range ends exactly at the budget");
        // Forward and backward paging cover the log exactly once.
        let (mut fwd, mut from) = (Vec::new(), 1);
        loop {
            let p = s.messages(&c, Seq(from), Seq(u64::MAX), 500, 450).expect("scan");
            fwd.extend(seqs(&p));
            from = fwd.last().copied().unwrap_or(0) + 1;
            if !p.more {
                break;
            }
        }
        assert_eq!(fwd, (1..=20).collect::<Vec<_>>());
        let (mut back, mut before) = (Vec::new(), 21);
        loop {
            let p = s.messages_before(&c, Seq(before), Seq(1), 3, usize::MAX).expect("scan");
            back.extend(seqs(&p));
            before = back.last().copied().unwrap_or(1);
            if !p.more {
                break;
            }
        }
        assert_eq!(back, (1..=20).rev().collect::<Vec<_>>());
    }

    fn open(dir: &Path) -> Store {
        Store::open(dir, &StoreOptions { durability: Durability::Buffered, ..Default::default() })
            .expect("open")
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
        let page = s.messages(&c, Seq(255), Seq(260), 100, usize::MAX).expect("scan");
        assert_eq!(seqs(&page), vec![255, 256, 257, 258, 259, 260]);
        assert_eq!(page.rows[0].1, b"m255");
        assert!(!page.more, "the whole range fits");
        let limited = s.messages(&c, Seq(1), Seq(u64::MAX), 3, usize::MAX).expect("scan");
        assert_eq!(seqs(&limited), vec![1, 2, 3]);
        assert!(limited.more, "cut at the limit");
        let back = s.messages_before(&c, Seq(301), Seq(295), 100, usize::MAX).expect("scan");
        assert_eq!(seqs(&back), vec![300, 299, 298, 297, 296, 295]);
        assert!(!back.more);
        assert!(s.messages_before(&c, Seq(1), Seq(0), 10, usize::MAX).expect("scan").rows.is_empty());
        assert_eq!(s.max_seq(&other).expect("read"), Seq(1));
    }

    /// Conversations whose ids are prefixes of each other, in SST files and in
    /// the memtable, never see each other's messages (prefix filter + seeks).
    #[test]
    fn scans_stay_inside_their_conversation_across_files() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = open(dir.path());
        let (a, ab, b) = (conv("g:a"), conv("g:ab"), conv("g:b"));
        let mut w = s.batch();
        w.put_message(&ab, Seq(7), b"ab7");
        w.put_message(&b, Seq(1), b"b1");
        s.write(w).expect("write");
        s.flush().expect("flush");
        let mut w = s.batch();
        w.put_message(&a, Seq(3), b"a3");
        s.write(w).expect("write");
        assert_eq!(s.max_seq(&a).expect("read"), Seq(3));
        assert_eq!(s.max_seq(&ab).expect("read"), Seq(7));
        assert_eq!(s.max_seq(&conv("g:aa")).expect("read"), Seq(0));
        assert_eq!(s.messages(&a, Seq(1), Seq(u64::MAX), 10, usize::MAX).expect("scan").rows.len(), 1);
        assert_eq!(s.messages_before(&b, Seq(u64::MAX), Seq(0), 10, usize::MAX).expect("scan").rows.len(), 1);
        assert_eq!(s.messages_before(&ab, Seq(7), Seq(0), 10, usize::MAX).expect("scan").rows.len(), 0);
        assert_eq!(s.message(&ab, Seq(7)).expect("get").as_deref(), Some(&b"ab7"[..]));
        assert_eq!(s.message(&a, Seq(7)).expect("get"), None);
    }
}
