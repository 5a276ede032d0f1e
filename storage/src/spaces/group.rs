//! `group`: group records. Keys start with the group id (the part after `g:`
//! of its conversation id):
//!
//! | key | value |
//! |---|---|
//! | `group 00 'i'` | [`GroupRecord`]: info, settings, owner, member count, @all seq |
//! | `group 00 'v'` | [`VersionRecord`]: feed version of the last change of the log or info |
//! | `group 00 'm' 00 user` | [`GroupMemberRecord`] |
//! | `group 00 'x' 00 user` | [`GroupDepartedRecord`] |
//! | `group 00 'a' 00 user` | [`GroupApplicationRecord`] |
//!
//! Listing every group ([`Store::groups_after`], admin API) steps from group
//! to group in the family's total order.
//!
//! Invariants:
//! - Every record of group g, and the members' `G` / `A` index entries in
//!   `user`, is written only by the owner shard of `g:{g}`; a member (or
//!   application) record and its index entry are staged together, so they
//!   commit or roll back together.
//! - Sync reads the `v` record of each joined group: it must move with every
//!   message and info change (the caller stages it in the same batch).

use missive_protocol::{GroupId, UserId};

use crate::Result;
use crate::batch::Batch;
use crate::engine::Cf;
use crate::keys;
use crate::records::{
    GroupApplicationRecord, GroupDepartedRecord, GroupMemberRecord, GroupRecord, VersionRecord,
};
use crate::store::Store;

const INFO: u8 = b'i';
const VERSION: u8 = b'v';
const MEMBER: u8 = b'm';
const DEPARTED: u8 = b'x';
const APPLICATION: u8 = b'a';

/// Appends `group 00 tag`.
fn record(out: &mut Vec<u8>, group: &GroupId, tag: u8) {
    keys::record(out, group.as_str().as_bytes(), tag);
}

/// Appends `group 00 tag 00 user`.
fn user_key(out: &mut Vec<u8>, group: &GroupId, tag: u8, user: &str) {
    keys::tagged(out, group.as_str().as_bytes(), tag);
    out.extend_from_slice(user.as_bytes());
}

fn set_prefix(group: &GroupId, tag: u8) -> Vec<u8> {
    keys::owned(|k| keys::tagged(k, group.as_str().as_bytes(), tag))
}

impl Store {
    /// Number of groups with an info record: a scan of the whole `group`
    /// family (members included), O(records). Callers cache the answer.
    pub fn count_groups(&self) -> Result<u64> {
        self.count_all(Cf::Group, |k| keys::is_record(k, INFO))
    }

    /// A group's info record (`None` if it never existed).
    pub fn group(&self, group: &GroupId) -> Result<Option<GroupRecord>> {
        self.get_decoded(Cf::Group, &keys::owned(|k| record(k, group, INFO)))
    }

    /// Version of the group's last change (message, tip or info; 0 = none).
    pub fn group_version(&self, group: &GroupId) -> Result<u64> {
        let rec: Option<VersionRecord> =
            self.get_decoded(Cf::Group, &keys::owned(|k| record(k, group, VERSION)))?;
        Ok(rec.map_or(0, |r| r.feed_version))
    }

    /// A current member's record.
    pub fn group_member(&self, group: &GroupId, user: &str) -> Result<Option<GroupMemberRecord>> {
        self.get_decoded(Cf::Group, &keys::owned(|k| user_key(k, group, MEMBER, user)))
    }

    /// Current members after `after` ("" = from the start), ascending, at most `limit`.
    pub fn group_members(
        &self,
        group: &GroupId,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, GroupMemberRecord)>> {
        let rows = self.scan_suffixes(Cf::Group, &set_prefix(group, MEMBER), after, limit)?;
        Self::decode_rows(Cf::Group, rows)
    }

    /// A former member's record (`None` if the user never left or rejoined since).
    pub fn group_departed(&self, group: &GroupId, user: &str) -> Result<Option<GroupDepartedRecord>> {
        self.get_decoded(Cf::Group, &keys::owned(|k| user_key(k, group, DEPARTED, user)))
    }

    /// The latest application (or invitation) of `user` to `group`.
    pub fn group_application(&self, group: &GroupId, user: &str) -> Result<Option<GroupApplicationRecord>> {
        self.get_decoded(Cf::Group, &keys::owned(|k| user_key(k, group, APPLICATION, user)))
    }

    /// Groups (with their info records, dismissed ones included) whose id
    /// is above `after` ("" = from the first), ascending by id, at most
    /// `limit`. Walks the family in total order with one seek to each
    /// group's first key and one read of its info record: its member and
    /// application records are skipped, never read.
    pub fn groups_after(&self, after: &str, limit: usize) -> Result<Vec<(GroupId, GroupRecord)>> {
        let mut out = Vec::new();
        // Just past every key of group `after` (`after 00 ...`).
        let mut seek = if after.is_empty() {
            Vec::new()
        } else {
            keys::prefix_end(&keys::owned(|k| keys::part(k, after.as_bytes())))
        };
        while out.len() < limit {
            let Some(key) = self.first_key_from(Cf::Group, &seek)? else { break };
            let owner = keys::first_component(&key);
            seek = keys::prefix_end(owner);
            let id = owner.strip_suffix(&[keys::SEP]).and_then(|b| std::str::from_utf8(b).ok());
            let Some(group) = id.and_then(|s| GroupId::new(s).ok()) else { continue };
            if let Some(rec) = self.group(&group)? {
                out.push((group, rec));
            }
        }
        Ok(out)
    }

    /// Applications of `group` after `after`, ascending by user, at most `limit`.
    pub fn group_applications(
        &self,
        group: &GroupId,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, GroupApplicationRecord)>> {
        let rows = self.scan_suffixes(Cf::Group, &set_prefix(group, APPLICATION), after, limit)?;
        Self::decode_rows(Cf::Group, rows)
    }
}

impl Batch {
    /// Stores a group's info record.
    pub fn put_group(&mut self, group: &GroupId, rec: &GroupRecord) {
        self.put_record(Cf::Group, |k| record(k, group, INFO), rec);
    }

    /// Records the version of the group's last change.
    pub fn put_group_version(&mut self, group: &GroupId, version: u64) {
        self.put_record(Cf::Group, |k| record(k, group, VERSION), &VersionRecord { feed_version: version });
    }

    /// Stores (`Some`) or deletes a member record, and the member's
    /// joined-groups index entry with it.
    pub fn put_group_member(&mut self, group: &GroupId, user: &UserId, rec: Option<&GroupMemberRecord>) {
        self.put_or_delete(Cf::Group, |k| user_key(k, group, MEMBER, user.as_str()), rec);
        self.put_joined(user, group, rec.is_some());
    }

    /// Stores (`Some`) or deletes a departed-member record.
    pub fn put_group_departed(&mut self, group: &GroupId, user: &UserId, rec: Option<&GroupDepartedRecord>) {
        self.put_or_delete(Cf::Group, |k| user_key(k, group, DEPARTED, user.as_str()), rec);
    }

    /// Stores (`Some`) or deletes an application, and the user's index entry.
    pub fn put_group_application(
        &mut self,
        group: &GroupId,
        user: &UserId,
        rec: Option<&GroupApplicationRecord>,
    ) {
        self.put_or_delete(Cf::Group, |k| user_key(k, group, APPLICATION, user.as_str()), rec);
        self.put_user_application(user, group, rec.is_some());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Durability, StoreOptions};

    fn g(s: &str) -> GroupId {
        GroupId::new(s).expect("valid")
    }

    #[test]
    fn keys_group_by_group_and_tag() {
        let (g1, g11, g0) = (g("g1"), g("g11"), g("g"));
        let k = |grp: &GroupId, tag, user| keys::owned(|k| user_key(k, grp, tag, user));
        let r = |grp: &GroupId, tag| keys::owned(|k| record(k, grp, tag));
        let p = set_prefix(&g1, MEMBER);
        assert_eq!(k(&g1, MEMBER, "alice"), b"g1\0m\0alice");
        assert_eq!(r(&g1, INFO), b"g1\0i");
        assert!(k(&g1, MEMBER, "alice").starts_with(&p));
        assert!(!k(&g1, DEPARTED, "alice").starts_with(&p));
        assert!(!k(&g11, MEMBER, "alice").starts_with(&p));
        assert!(k(&g1, MEMBER, "a") < k(&g1, MEMBER, "b"));
        assert!(k(&g1, MEMBER, "zzz") < keys::prefix_end(&p));
        // Per-group records never fall under a per-user prefix.
        assert!(!r(&g1, MEMBER).starts_with(&p));
        assert_ne!(r(&g1, INFO), r(&g1, VERSION));
        assert!(!r(&g1, INFO).starts_with(&set_prefix(&g0, INFO)));
    }

    #[test]
    fn groups_after_lists_every_group_once_in_id_order_across_files() {
        let dir = tempfile::tempdir().expect("tmp");
        let s =
            Store::open(dir.path(), &StoreOptions { durability: Durability::Buffered, ..Default::default() })
                .expect("open");
        let ids = ["a", "a-1", "ab", "b", "g", "g1"];
        for (i, id) in ids.iter().enumerate() {
            let mut batch = s.batch();
            let gid = g(id);
            batch.put_group(&gid, &GroupRecord { owner: format!("o{i}"), ..Default::default() });
            batch.put_group_version(&gid, 1);
            for u in ["m1", "m2", "m3"] {
                let u = UserId::new(u).expect("valid");
                batch.put_group_member(&gid, &u, Some(&GroupMemberRecord::default()));
                batch.put_group_application(&gid, &u, Some(&GroupApplicationRecord::default()));
            }
            s.write(batch).expect("write");
            if i % 2 == 0 {
                s.flush().expect("flush");
            }
        }
        let all = s.groups_after("", 100).expect("scan");
        let got: Vec<&str> = all.iter().map(|(g, _)| g.as_str()).collect();
        assert_eq!(got, ids.to_vec());
        assert_eq!(all[3].1.owner, "o3");
        let mut after = String::new();
        let mut paged = Vec::new();
        loop {
            let page = s.groups_after(&after, 4).expect("scan");
            if page.is_empty() {
                break;
            }
            after = page.last().map(|(g, _)| g.to_string()).unwrap_or_default();
            paged.extend(page.into_iter().map(|(g, _)| g.to_string()));
        }
        assert_eq!(paged, ids.to_vec());
        assert_eq!(s.groups_after("g1", 10).expect("scan").len(), 0);
        assert_eq!(
            s.groups_after("a-", 10).expect("scan").first().map(|(g, _)| g.to_string()),
            Some("a-1".into())
        );
    }

    #[test]
    fn records_and_joined_index() {
        let dir = tempfile::tempdir().expect("tmp");
        let s =
            Store::open(dir.path(), &StoreOptions { durability: Durability::Buffered, ..Default::default() })
                .expect("open");
        let (a, b) = (UserId::new("a").expect("valid"), UserId::new("b").expect("valid"));
        let (g1, g2) = (g("g1"), g("g2"));
        let mut batch = s.batch();
        batch.put_group(&g1, &GroupRecord { owner: "a".into(), member_count: 2, ..Default::default() });
        batch.put_group_version(&g1, 7);
        batch.put_group_member(&g1, &a, Some(&GroupMemberRecord { role: 3, ..Default::default() }));
        batch.put_group_member(&g1, &b, Some(&GroupMemberRecord { role: 1, ..Default::default() }));
        batch.put_group_member(&g2, &a, Some(&GroupMemberRecord::default()));
        s.write(batch).expect("write");
        assert_eq!(s.group(&g1).expect("get").map(|g| g.member_count), Some(2));
        assert_eq!(s.group_version(&g1).expect("get"), 7);
        assert_eq!(s.group_members(&g1, "", 10).expect("scan").len(), 2);
        assert_eq!(s.group_members(&g1, "a", 10).expect("scan").len(), 1);
        assert_eq!(s.joined_groups(&a, "", 10).expect("scan"), vec![g1.clone(), g2.clone()]);
        assert_eq!(s.joined_groups(&a, "g1", 10).expect("scan"), vec![g2.clone()]);
        assert_eq!(s.joined_count(&a).expect("count"), 2);
        let mut batch = s.batch();
        batch.put_group_member(&g1, &b, None);
        batch.put_group_departed(
            &g1,
            &b,
            Some(&GroupDepartedRecord { join_seq: 1, leave_seq: 5, left_ms: 1 }),
        );
        s.write(batch).expect("write");
        assert_eq!(s.joined_count(&b).expect("count"), 0);
        assert_eq!(s.group_departed(&g1, "b").expect("get").map(|d| d.leave_seq), Some(5));
        assert!(s.group_member(&g1, "b").expect("get").is_none());
    }

    #[test]
    fn applications_and_their_user_index() {
        let dir = tempfile::tempdir().expect("tmp");
        let s =
            Store::open(dir.path(), &StoreOptions { durability: Durability::Buffered, ..Default::default() })
                .expect("open");
        let (a, b) = (UserId::new("a").expect("valid"), UserId::new("b").expect("valid"));
        let (g1, g2) = (g("g1"), g("g2"));
        let app = GroupApplicationRecord { reason: "hi".into(), ..Default::default() };
        let mut batch = s.batch();
        batch.put_group_application(&g1, &a, Some(&app));
        batch.put_group_application(&g1, &b, Some(&app));
        batch.put_group_application(&g2, &a, Some(&app));
        s.write(batch).expect("write");
        assert_eq!(s.group_application(&g1, "a").expect("get").map(|r| r.reason), Some("hi".to_owned()));
        let rows = s.group_applications(&g1, "", 10).expect("scan");
        assert_eq!(rows.iter().map(|(u, _)| u.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(s.user_group_applications(&a, "", 10).expect("scan"), vec![g1.clone(), g2.clone()]);
        let mut batch = s.batch();
        batch.put_group_application(&g1, &a, None);
        s.write(batch).expect("write");
        assert_eq!(s.group_application(&g1, "a").expect("get"), None);
        assert_eq!(s.user_group_applications(&a, "", 10).expect("scan"), vec![g2]);
    }
}
