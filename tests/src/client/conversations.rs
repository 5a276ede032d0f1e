//! Per-user conversation state: read marks, pin / mute / hide, clear history,
//! global do-not-disturb.
//!
//! Invariants: each helper returns the server's result or its error, unchanged.

use missive_protocol::pb;

use super::RawClient;

impl RawClient {
    /// MarkRead.
    pub fn mark_read(&mut self, conv: &str, seq: u64) -> Result<pb::ConversationState, pb::Error> {
        self.call(pb::MarkRead { conv_id: conv.to_owned(), seq })
    }

    /// UpdateConversation (unset fields unchanged).
    pub fn update(
        &mut self,
        conv: &str,
        pinned: Option<bool>,
        muted: Option<bool>,
        hidden: Option<bool>,
    ) -> Result<pb::ConversationState, pb::Error> {
        self.call(pb::UpdateConversation { conv_id: conv.to_owned(), pinned, muted, hidden })
    }

    /// ClearHistory.
    pub fn clear(&mut self, conv: &str, up_to: u64) -> Result<pb::ConversationState, pb::Error> {
        self.call(pb::ClearHistory { conv_id: conv.to_owned(), up_to_seq: up_to })
    }

    /// SetGlobalDnd.
    pub fn set_global_dnd(&mut self, enabled: bool) -> Result<(), pb::Error> {
        self.call(pb::SetGlobalDnd { enabled })
    }
}
