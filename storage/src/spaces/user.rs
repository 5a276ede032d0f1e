//! `user`: per-user records and indexes. Keys start with the user id:
//!
//! | key | value |
//! |---|---|
//! | `user 00 's'` | [`SettingsRecord`] |
//! | `user 00 'd' 00 device` | [`DeviceRecord`] |
//! | `user 00 'a'` / `'p'` / `'t'` | [`AccountRecord`] / [`ProfileRecord`] / [`StatusRecord`] |
//! | `user 00 'S' 00 target` / `target 00 'R' 00 user` | presence subscription, both directions (empty) |
//! | `reader 00 'v' 00 subject` | [`VersionRecord`]: live `Profile(subject)` feed entry |
//! | `user 00 'G' 00 group` / `user 00 'A' 00 group` | joined groups / groups holding the user's application or invitation (empty) |
//!
//! Invariants:
//! - Every record of u, every `v` pointer naming u as subject and every
//!   subscription key naming u as subscriber is written only by u's owner
//!   shard; the `G` and `A` entries only by the group's owner shard, in the
//!   same batch as the group record they index (`spaces::group`).
//! - Record keys (`user 00 tag`) never fall under a set prefix
//!   (`user 00 tag 00`).

use missive_protocol::{GroupId, UserId};

use crate::batch::Batch;
use crate::engine::Cf;
use crate::keys;
use crate::records::{
    AccountRecord, DeviceRecord, ProfileRecord, SettingsRecord, StatusRecord, VersionRecord,
};
use crate::spaces::feed::FeedItem;
use crate::store::Store;
use crate::{Result, StorageError};

const SETTINGS: u8 = b's';
const DEVICE: u8 = b'd';
const ACCOUNT: u8 = b'a';
const PROFILE: u8 = b'p';
const STATUS: u8 = b't';
const SUBSCRIPTION: u8 = b'S';
const SUBSCRIBER: u8 = b'R';
const PROFILE_FEED: u8 = b'v';
const JOINED: u8 = b'G';
const APPLICATION: u8 = b'A';

/// Appends `user 00 tag`.
fn record(out: &mut Vec<u8>, user: &UserId, tag: u8) {
    keys::record(out, user.as_str().as_bytes(), tag);
}

/// Appends `user 00 tag 00 other`.
fn pair(out: &mut Vec<u8>, user: &UserId, tag: u8, other: &str) {
    keys::tagged(out, user.as_str().as_bytes(), tag);
    out.extend_from_slice(other.as_bytes());
}

fn set_prefix(user: &UserId, tag: u8) -> Vec<u8> {
    keys::owned(|k| keys::tagged(k, user.as_str().as_bytes(), tag))
}

impl Store {
    /// A user's settings (default if never set).
    pub fn settings(&self, user: &UserId) -> Result<SettingsRecord> {
        Ok(self.get_decoded(Cf::User, &keys::owned(|k| record(k, user, SETTINGS)))?.unwrap_or_default())
    }

    /// A device's record, if the device ever logged in.
    pub fn device(&self, user: &UserId, device: &str) -> Result<Option<DeviceRecord>> {
        self.get_decoded(Cf::User, &keys::owned(|k| pair(k, user, DEVICE, device)))
    }

    /// A user's account record (`None` if not registered).
    pub fn account(&self, user: &UserId) -> Result<Option<AccountRecord>> {
        self.get_decoded(Cf::User, &keys::owned(|k| record(k, user, ACCOUNT)))
    }

    /// A user's profile record (`None` if never set).
    pub fn profile(&self, user: &UserId) -> Result<Option<ProfileRecord>> {
        self.get_decoded(Cf::User, &keys::owned(|k| record(k, user, PROFILE)))
    }

    /// A user's presence status record (`None` if never set).
    pub fn status(&self, user: &UserId) -> Result<Option<StatusRecord>> {
        self.get_decoded(Cf::User, &keys::owned(|k| record(k, user, STATUS)))
    }

    /// Version of the live `Profile(subject)` entry in `reader`'s feed (0 = none).
    pub fn profile_feed_version(&self, reader: &UserId, subject: &UserId) -> Result<u64> {
        let key = keys::owned(|k| pair(k, reader, PROFILE_FEED, subject.as_str()));
        let rec: Option<VersionRecord> = self.get_decoded(Cf::User, &key)?;
        Ok(rec.map_or(0, |r| r.feed_version))
    }

    /// Users `user` subscribes to (presence), ascending.
    pub fn subscriptions(&self, user: &UserId, limit: usize) -> Result<Vec<String>> {
        self.user_set(user, SUBSCRIPTION, "", limit)
    }

    /// Users subscribed to `target`'s presence, ascending.
    pub fn subscribers(&self, target: &UserId, limit: usize) -> Result<Vec<String>> {
        self.user_set(target, SUBSCRIBER, "", limit)
    }

    /// Groups `user` belongs to after `after`, ascending, at most `limit`.
    pub fn joined_groups(&self, user: &UserId, after: &str, limit: usize) -> Result<Vec<GroupId>> {
        group_ids(self.user_set(user, JOINED, after, limit)?)
    }

    /// Number of groups `user` belongs to (a prefix count).
    pub fn joined_count(&self, user: &UserId) -> Result<usize> {
        self.count_prefix(Cf::User, &set_prefix(user, JOINED))
    }

    /// Groups `user` applied to or was invited to, after `after`, ascending.
    pub fn user_group_applications(&self, user: &UserId, after: &str, limit: usize) -> Result<Vec<GroupId>> {
        group_ids(self.user_set(user, APPLICATION, after, limit)?)
    }

    /// Devices of `user` that ever logged in, after device id `after`
    /// (exclusive; "" = from the start), ascending, at most `limit`.
    pub fn devices(&self, user: &UserId, after: &str, limit: usize) -> Result<Vec<(String, DeviceRecord)>> {
        let rows = self.scan_suffixes(Cf::User, &set_prefix(user, DEVICE), after, limit)?;
        Self::decode_rows(Cf::User, rows)
    }

    /// Number of registered users: a scan of the whole `user` family (every
    /// record of every user), O(records). Callers cache the answer.
    pub fn count_accounts(&self) -> Result<u64> {
        self.count_all(Cf::User, |k| keys::is_record(k, ACCOUNT))
    }

    /// Members of `user`'s `tag` set after `after`, ascending, at most `limit`.
    fn user_set(&self, user: &UserId, tag: u8, after: &str, limit: usize) -> Result<Vec<String>> {
        let rows = self.scan_suffixes(Cf::User, &set_prefix(user, tag), after, limit)?;
        Ok(rows.into_iter().map(|(k, _)| k).collect())
    }
}

/// Group index suffixes as ids: a stored key that is not a valid id is corrupt.
fn group_ids(rows: Vec<String>) -> Result<Vec<GroupId>> {
    rows.into_iter()
        .map(|g| {
            GroupId::new(g).map_err(|e| StorageError::Corrupt { cf: Cf::User.name(), detail: e.to_string() })
        })
        .collect()
}

impl Batch {
    /// Stores a user's settings and moves their feed entry.
    pub fn put_settings(&mut self, user: &UserId, old_version: u64, rec: &SettingsRecord) {
        self.move_feed(user, old_version, rec.feed_version, FeedItem::Settings);
        self.put_record(Cf::User, |k| record(k, user, SETTINGS), rec);
    }

    /// Stores a device record.
    pub fn put_device(&mut self, user: &UserId, device: &str, rec: &DeviceRecord) {
        self.put_record(Cf::User, |k| pair(k, user, DEVICE, device), rec);
    }

    /// Stores an account record.
    pub fn put_account(&mut self, user: &UserId, rec: &AccountRecord) {
        self.put_record(Cf::User, |k| record(k, user, ACCOUNT), rec);
    }

    /// Stores a profile and moves its entry in the owner's own feed.
    pub fn put_profile(&mut self, user: &UserId, old_version: u64, rec: &ProfileRecord) {
        self.move_feed(user, old_version, rec.feed_version, FeedItem::Profile(user));
        self.put_record(Cf::User, |k| record(k, user, PROFILE), rec);
    }

    /// Moves the `Profile(subject)` entry in `reader`'s feed (a friend's profile changed).
    pub fn move_profile_feed(&mut self, reader: &UserId, subject: &UserId, old: u64, new: u64) {
        self.move_feed(reader, old, new, FeedItem::Profile(subject));
        let rec = VersionRecord { feed_version: new };
        self.put_record(Cf::User, |k| pair(k, reader, PROFILE_FEED, subject.as_str()), &rec);
    }

    /// Stores a presence status record.
    pub fn put_status(&mut self, user: &UserId, rec: &StatusRecord) {
        self.put_record(Cf::User, |k| record(k, user, STATUS), rec);
    }

    /// Adds (`on`) or removes `subscriber`'s presence subscription to `target`
    /// (both directions of the index).
    pub fn put_subscription(&mut self, subscriber: &UserId, target: &UserId, on: bool) {
        self.put_flag(Cf::User, |k| pair(k, subscriber, SUBSCRIPTION, target.as_str()), on);
        self.put_flag(Cf::User, |k| pair(k, target, SUBSCRIBER, subscriber.as_str()), on);
    }

    /// Adds (`on`) or removes `group` in `user`'s joined-groups index.
    pub(crate) fn put_joined(&mut self, user: &UserId, group: &GroupId, on: bool) {
        self.put_flag(Cf::User, |k| pair(k, user, JOINED, group.as_str()), on);
    }

    /// Adds (`on`) or removes `group` in `user`'s index of pending applications.
    pub(crate) fn put_user_application(&mut self, user: &UserId, group: &GroupId, on: bool) {
        self.put_flag(Cf::User, |k| pair(k, user, APPLICATION, group.as_str()), on);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Durability, StoreOptions};

    fn u(s: &str) -> UserId {
        UserId::new(s).expect("valid")
    }

    #[test]
    fn key_layouts() {
        let a = u("alice");
        assert_eq!(keys::owned(|k| record(k, &a, SETTINGS)), b"alice\0s");
        assert_eq!(keys::owned(|k| pair(k, &a, DEVICE, "phone")), b"alice\0d\0phone");
        assert_eq!(keys::owned(|k| pair(k, &a, JOINED, "g1")), b"alice\0G\0g1");
        // Per-user records never collide with set keys or settings.
        assert_ne!(keys::owned(|k| record(k, &a, ACCOUNT)), keys::owned(|k| record(k, &a, SETTINGS)));
        assert!(!keys::owned(|k| record(k, &a, SUBSCRIPTION)).starts_with(&set_prefix(&a, SUBSCRIPTION)));
    }

    #[test]
    fn device_list_and_account_count() {
        let dir = tempfile::tempdir().expect("tmp");
        let s =
            Store::open(dir.path(), &StoreOptions { durability: Durability::Buffered, ..Default::default() })
                .expect("open");
        let (a, b) = (u("a"), u("b"));
        let mut w = s.batch();
        w.put_account(&a, &AccountRecord { created_ms: 1, ..Default::default() });
        // Device "a" of user b: its key ends in `00 'a'` like an account record.
        w.put_device(&b, "a", &DeviceRecord { sync_token: "7.mac".into(), ..Default::default() });
        w.put_device(&a, "d2", &DeviceRecord::default());
        w.put_device(&a, "d1", &DeviceRecord::default());
        w.put_profile(&b, 0, &ProfileRecord::default());
        s.write(w).expect("write");
        assert_eq!(s.count_accounts().expect("count"), 1);
        let ids = |after: &str, n| {
            s.devices(&a, after, n).expect("devices").into_iter().map(|(d, _)| d).collect::<Vec<_>>()
        };
        assert_eq!(ids("", 10), vec!["d1", "d2"]);
        assert_eq!(ids("d1", 10), vec!["d2"]);
        assert_eq!(ids("", 1), vec!["d1"]);
        assert_eq!(s.devices(&b, "", 10).expect("devices")[0].1.sync_token, "7.mac");
    }

    #[test]
    fn records_sets_and_feed_pointers() {
        let dir = tempfile::tempdir().expect("tmp");
        let s =
            Store::open(dir.path(), &StoreOptions { durability: Durability::Buffered, ..Default::default() })
                .expect("open");
        let (a, b, c) = (u("a"), u("b"), u("c"));
        assert!(!s.settings(&a).expect("get").global_dnd);
        let mut w = s.batch();
        w.put_settings(&a, 0, &SettingsRecord { global_dnd: true, feed_version: 4 });
        w.put_device(&a, "d1", &DeviceRecord { sync_token: "t".into(), ..Default::default() });
        w.put_account(&a, &AccountRecord { created_ms: 1, ..Default::default() });
        w.put_profile(&a, 0, &ProfileRecord { nickname: "A".into(), feed_version: 5, ..Default::default() });
        w.move_profile_feed(&b, &a, 0, 6);
        w.put_status(&a, &StatusRecord { text: "hi".into(), changed_ms: 2 });
        w.put_subscription(&b, &a, true);
        w.put_subscription(&c, &a, true);
        s.write(w).expect("write");
        assert!(s.settings(&a).expect("get").global_dnd);
        assert_eq!(s.device(&a, "d1").expect("get").map(|d| d.sync_token), Some("t".to_owned()));
        assert_eq!(s.device(&a, "d2").expect("get"), None);
        assert_eq!(s.account(&a).expect("get").map(|r| r.created_ms), Some(1));
        assert_eq!(s.profile(&a).expect("get").map(|p| p.nickname), Some("A".to_owned()));
        assert_eq!(s.status(&a).expect("get").map(|t| t.text), Some("hi".to_owned()));
        assert_eq!(s.profile_feed_version(&b, &a).expect("get"), 6);
        assert_eq!(s.profile_feed_version(&c, &a).expect("get"), 0);
        assert_eq!(s.subscribers(&a, 10).expect("scan"), vec!["b".to_owned(), "c".to_owned()]);
        assert_eq!(s.subscriptions(&b, 10).expect("scan"), vec!["a".to_owned()]);
        let feed = s.feed(&a, 0, u64::MAX, 10).expect("feed");
        assert_eq!(feed.len(), 2);
        assert_eq!((feed[0].0, feed[0].1.conv_id.as_str(), feed[0].1.profile_user.as_str()), (4, "", ""));
        assert_eq!((feed[1].0, feed[1].1.profile_user.as_str()), (5, "a"));
        assert_eq!(s.feed(&b, 0, u64::MAX, 10).expect("feed")[0].1.profile_user, "a");
        let mut w = s.batch();
        w.put_subscription(&b, &a, false);
        w.move_profile_feed(&b, &a, 6, 7);
        s.write(w).expect("write");
        assert_eq!(s.subscribers(&a, 10).expect("scan"), vec!["c".to_owned()]);
        assert!(s.subscriptions(&b, 10).expect("scan").is_empty());
        assert_eq!(s.feed(&b, 0, u64::MAX, 10).expect("feed").iter().map(|e| e.0).collect::<Vec<_>>(), [7]);
    }
}
