//! Relations (spec 13): friend requests and responses, deletes, remarks,
//! paged lists, checks, search, admin import, and the blacklist.
//!
//! Invariants: paging helpers are bounded; each single-request helper returns
//! the server's result or its error, unchanged.

use std::collections::BTreeMap;

use missive_protocol::pb;

use super::{RawClient, strings};
use crate::must;

impl RawClient {
    /// AddFriend.
    pub fn add_friend(
        &mut self,
        user: &str,
        message: &str,
        remark: &str,
        ex: BTreeMap<String, String>,
    ) -> Result<pb::AddFriendResult, pb::Error> {
        self.call(pb::AddFriend {
            user_id: user.to_owned(),
            message: message.to_owned(),
            remark: remark.to_owned(),
            ex,
        })
    }

    /// AddFriend with only a request message.
    pub fn add_friend_msg(&mut self, user: &str, message: &str) -> Result<pb::AddFriendResult, pb::Error> {
        self.add_friend(user, message, "", BTreeMap::new())
    }

    /// RespondFriendRequest.
    pub fn respond_friend(
        &mut self,
        user: &str,
        accept: bool,
        remark: &str,
        ex: BTreeMap<String, String>,
    ) -> Result<pb::Relation, pb::Error> {
        self.call(pb::RespondFriendRequest {
            user_id: user.to_owned(),
            accept,
            remark: remark.to_owned(),
            ex,
        })
    }

    /// DeleteFriend.
    pub fn delete_friend(&mut self, user: &str, both_sides: bool) -> Result<pb::Relation, pb::Error> {
        self.call(pb::DeleteFriend { user_id: user.to_owned(), both_sides })
    }

    /// UpdateFriend.
    pub fn update_friend(
        &mut self,
        user: &str,
        remark: Option<&str>,
        ex: BTreeMap<String, String>,
    ) -> Result<pb::Relation, pb::Error> {
        self.call(pb::UpdateFriend { user_id: user.to_owned(), remark: remark.map(str::to_owned), ex })
    }

    /// ListFriends (one page).
    pub fn list_friends(
        &mut self,
        cursor: &str,
        limit: u32,
        with_profiles: bool,
    ) -> Result<pb::FriendList, pb::Error> {
        self.call(pb::ListFriends { cursor: cursor.to_owned(), limit, with_profiles })
    }

    /// Every friend's user id, following `next_cursor` (bounded number of pages).
    pub fn friend_ids(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let mut cursor = String::new();
        for _ in 0..1000 {
            let page = must(self.list_friends(&cursor, 0, false), "ListFriends");
            out.extend(page.friends.into_iter().map(|r| r.user_id));
            if page.next_cursor.is_empty() {
                return out;
            }
            cursor = page.next_cursor;
        }
        panic!("ListFriends paging did not end");
    }

    /// ListFriendRequests (one page).
    pub fn list_friend_requests(
        &mut self,
        outgoing: bool,
        cursor: &str,
        limit: u32,
    ) -> Result<pb::FriendRequestList, pb::Error> {
        self.call(pb::ListFriendRequests { outgoing, cursor: cursor.to_owned(), limit })
    }

    /// CheckRelations.
    pub fn check_relations(&mut self, users: &[&str]) -> Result<Vec<pb::Relation>, pb::Error> {
        self.call(pb::CheckRelations { user_ids: strings(users) }).map(|v| v.relations)
    }

    /// The caller's relation with one user (CheckRelations of one id).
    pub fn relation(&mut self, user: &str) -> pb::Relation {
        let mut all = must(self.check_relations(&[user]), "CheckRelations");
        assert_eq!(all.len(), 1, "CheckRelations of one id: {all:?}");
        all.remove(0)
    }

    /// SearchFriends.
    pub fn search_friends(&mut self, query: &str, limit: u32) -> Result<pb::FriendList, pb::Error> {
        self.call(pb::SearchFriends { query: query.to_owned(), limit })
    }

    /// ImportFriendship (admin).
    pub fn import_friendship(&mut self, a: &str, b: &str) -> Result<(), pb::Error> {
        self.call(pb::ImportFriendship { user_a: a.to_owned(), user_b: b.to_owned() })
    }

    /// AddToBlacklist.
    pub fn block(&mut self, user: &str) -> Result<pb::Relation, pb::Error> {
        self.call(pb::AddToBlacklist { user_id: user.to_owned() })
    }

    /// RemoveFromBlacklist.
    pub fn unblock(&mut self, user: &str) -> Result<pb::Relation, pb::Error> {
        self.call(pb::RemoveFromBlacklist { user_id: user.to_owned() })
    }

    /// ListBlacklist (one page).
    pub fn list_blacklist(&mut self, cursor: &str, limit: u32) -> Result<pb::Blacklist, pb::Error> {
        self.call(pb::ListBlacklist { cursor: cursor.to_owned(), limit })
    }
}
