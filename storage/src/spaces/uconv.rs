//! `uconv`: one user's state in one conversation. Key `user 00 conv`, value
//! [`UserConvRecord`] (read and cleared seq, flags, feed version; for groups
//! the mention and hidden seqs).
//!
//! Invariants:
//! - The record holds the version of the conversation's live entry in the
//!   user's feed; [`Batch::put_user_conv`] moves that entry in the same batch.
//! - Read by point lookups (send, read marks, sync), and by a scan of the
//!   user prefix (every key's first component) for the admin API's
//!   conversation list ([`Store::user_convs`]).

use missive_protocol::{ConvId, UserId};

use crate::Result;
use crate::batch::Batch;
use crate::engine::Cf;
use crate::keys;
use crate::records::UserConvRecord;
use crate::spaces::feed::FeedItem;
use crate::store::Store;

/// Appends the key `user 00 conv`.
fn key(out: &mut Vec<u8>, user: &UserId, conv: &ConvId) {
    keys::part(out, user.as_str().as_bytes());
    out.extend_from_slice(conv.as_str().as_bytes());
}

impl Store {
    /// A user's state in a conversation (`None` if never touched).
    pub fn user_conv(&self, user: &UserId, conv: &ConvId) -> Result<Option<UserConvRecord>> {
        self.get_decoded(Cf::Uconv, &keys::owned(|k| key(k, user, conv)))
    }

    /// The records of `users` in `conv`, in the order of `users` (`None`:
    /// never touched): one batched multi-get instead of a lookup per user.
    pub fn user_conv_many(&self, users: &[UserId], conv: &ConvId) -> Result<Vec<Option<UserConvRecord>>> {
        let keys: Vec<Vec<u8>> = users.iter().map(|u| keys::owned(|k| key(k, u, conv))).collect();
        self.multi_get_decoded(Cf::Uconv, &keys)
    }

    /// The user's conversation records after conversation id `after`
    /// (exclusive; "" = from the start), in id order, at most `limit`: a
    /// prefix scan of the user's keys.
    pub fn user_convs(
        &self,
        user: &UserId,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, UserConvRecord)>> {
        let prefix = keys::owned(|k| keys::part(k, user.as_str().as_bytes()));
        let rows = self.scan_suffixes(Cf::Uconv, &prefix, after, limit)?;
        Self::decode_rows(Cf::Uconv, rows)
    }
}

impl Batch {
    /// Stores a user's conversation state and moves its feed entry from
    /// `old_version` (the record's `feed_version` as previously stored) to
    /// `rec.feed_version`.
    pub fn put_user_conv(&mut self, user: &UserId, conv: &ConvId, old_version: u64, rec: &UserConvRecord) {
        self.move_feed(user, old_version, rec.feed_version, FeedItem::Conv(conv));
        self.put_record(Cf::Uconv, |k| key(k, user, conv), rec);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Durability, StoreOptions};

    #[test]
    fn key_layout() {
        let u = UserId::new("a").expect("valid");
        let c = ConvId::parse("p:a:b").expect("valid");
        assert_eq!(keys::owned(|k| key(k, &u, &c)), b"a\0p:a:b");
    }

    #[test]
    fn feed_moves_keep_one_entry_per_conversation() {
        let dir = tempfile::tempdir().expect("tmp");
        let s =
            Store::open(dir.path(), &StoreOptions { durability: Durability::Buffered, ..Default::default() })
                .expect("open");
        let u = UserId::new("a").expect("valid");
        let c1 = ConvId::parse("p:a:b").expect("valid");
        let c2 = ConvId::parse("p:a:c").expect("valid");
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
        // The list scan: in id order, after a cursor, bounded, only this user's.
        let ids = |after: &str, n| {
            s.user_convs(&u, after, n).expect("scan").into_iter().map(|(c, _)| c).collect::<Vec<_>>()
        };
        assert_eq!(ids("", 10), vec!["p:a:b", "p:a:c"]);
        assert_eq!(ids("", 1), vec!["p:a:b"]);
        assert_eq!(ids("p:a:b", 10), vec!["p:a:c"]);
        assert!(s.user_convs(&UserId::new("ab").expect("valid"), "", 10).expect("scan").is_empty());
    }
}
