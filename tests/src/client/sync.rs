//! Sync: one page, or every page until `more` is false ([`SyncAll`],
//! [`SyncFull`] with relations and profiles).
//!
//! Invariants: paging is bounded (a server that never ends `more` fails the
//! test instead of hanging it).

use missive_protocol::pb;

use super::RawClient;

/// Everything a paged sync returned.
#[derive(Debug, Clone)]
pub struct SyncAll {
    /// Conversation states in the order returned (a conversation may repeat
    /// only if it changed again during paging).
    pub conversations: Vec<pb::ConversationState>,
    /// The last settings returned, if any.
    pub settings: Option<pb::UserSettings>,
    /// The final sync token.
    pub token: String,
    /// Number of pages fetched.
    pub pages: usize,
}

impl SyncAll {
    /// The state of `conv`, if returned.
    pub fn conv(&self, conv: &str) -> Option<&pb::ConversationState> {
        self.conversations.iter().rev().find(|c| c.conv_id == conv)
    }
}

/// Everything a paged sync returned, relations and profiles included.
#[derive(Debug, Clone, Default)]
pub struct SyncFull {
    /// Conversation states, in the order returned.
    pub conversations: Vec<pb::ConversationState>,
    /// Relations, in the order returned.
    pub relations: Vec<pb::Relation>,
    /// Profiles, in the order returned.
    pub profiles: Vec<pb::Profile>,
    /// The last settings returned, if any.
    pub settings: Option<pb::UserSettings>,
    /// The final sync token.
    pub token: String,
    /// Number of pages fetched.
    pub pages: usize,
}

impl SyncFull {
    /// The last relation returned for `user`.
    pub fn relation(&self, user: &str) -> Option<&pb::Relation> {
        self.relations.iter().rev().find(|r| r.user_id == user)
    }

    /// The last profile returned for `user`.
    pub fn profile(&self, user: &str) -> Option<&pb::Profile> {
        self.profiles.iter().rev().find(|p| p.user_id == user)
    }
}

impl RawClient {
    /// SyncRequest.
    pub fn sync(&mut self, token: &str, limit: u32) -> Result<pb::SyncResult, pb::Error> {
        self.call(pb::SyncRequest { sync_token: token.to_owned(), limit })
    }

    /// Syncs from `token` until `more` is false (bounded number of pages).
    /// Returns every conversation state in order, the last settings seen and the final token.
    pub fn sync_all(&mut self, token: &str) -> SyncAll {
        let f = self.sync_full(token);
        SyncAll { conversations: f.conversations, settings: f.settings, token: f.token, pages: f.pages }
    }

    /// Syncs from `token` until `more` is false, collecting relations and
    /// profiles too (bounded number of pages).
    pub fn sync_full(&mut self, token: &str) -> SyncFull {
        let mut out = SyncFull { token: token.to_owned(), ..SyncFull::default() };
        for _ in 0..10_000 {
            let page =
                self.sync(&out.token, 0).unwrap_or_else(|e| panic!("sync from {:?}: {e:?}", out.token));
            out.pages += 1;
            out.conversations.extend(page.conversations);
            out.relations.extend(page.relations);
            out.profiles.extend(page.profiles);
            if page.settings.is_some() {
                out.settings = page.settings;
            }
            out.token = page.sync_token;
            if !page.more {
                return out;
            }
        }
        panic!("sync did not finish within 10000 pages");
    }
}
