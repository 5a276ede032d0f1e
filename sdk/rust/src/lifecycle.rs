//! Typed calls of the message lifecycle (spec section 18) on [`Client`]:
//! reactions, extensions and the update log. Pushed changes arrive as
//! [`crate::ClientEvent::MessageUpdate`]; changes made while the device was
//! away as [`crate::ClientEvent::MessageChanged`] (the client follows
//! `ConversationState.update_seq` with `PullUpdates` by itself, [UP-2]).
//!
//! Invariant: every call is one request through [`Client::call`] (retries
//! and reconnects included); nothing here keeps state.

use std::collections::BTreeMap;

use crate::{Client, SdkError, pb};

impl Client {
    /// Adds (`remove = false`) or removes the caller's reaction `key` on a message.
    pub fn react(&self, conv_id: &str, seq: u64, key: &str, remove: bool) -> Result<pb::Reactions, SdkError> {
        self.call(pb::React { conv_id: conv_id.to_owned(), seq, key: key.to_owned(), remove })
    }

    /// Reaction summaries of up to 100 messages (`me` set for the caller).
    pub fn get_reactions(&self, conv_id: &str, seqs: &[u64]) -> Result<pb::ReactionsList, SdkError> {
        self.call(pb::GetReactions { conv_id: conv_id.to_owned(), seqs: seqs.to_vec() })
    }

    /// One page of the users who reacted with `key` (`cursor` "" = first page).
    pub fn list_reaction_users(
        &self,
        conv_id: &str,
        seq: u64,
        key: &str,
        cursor: &str,
        limit: u32,
    ) -> Result<pb::ReactionUsers, SdkError> {
        self.call(pb::ListReactionUsers {
            conv_id: conv_id.to_owned(),
            seq,
            key: key.to_owned(),
            cursor: cursor.to_owned(),
            limit,
        })
    }

    /// Sets and removes keys of a message's extension map; with `if_version`
    /// only at exactly that extension version (else `4206 EXTENSION_CONFLICT`).
    pub fn set_extensions(
        &self,
        conv_id: &str,
        seq: u64,
        set: BTreeMap<String, String>,
        remove: Vec<String>,
        if_version: Option<u64>,
    ) -> Result<pb::Extensions, SdkError> {
        self.call(pb::SetExtensions { conv_id: conv_id.to_owned(), seq, set, remove, if_version })
    }

    /// One page of the conversation's changed messages after `after_update_seq`.
    pub fn pull_updates(
        &self,
        conv_id: &str,
        after_update_seq: u64,
        limit: u32,
    ) -> Result<pb::MessageUpdates, SdkError> {
        self.call(pb::PullUpdates { conv_id: conv_id.to_owned(), after_update_seq, limit })
    }
}
