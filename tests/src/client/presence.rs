//! Presence (spec 12.4): reads, subscriptions and the custom status text.
//!
//! Invariants: each helper returns the server's result or its error, unchanged.

use missive_protocol::pb::{self, request};

use super::{RawClient, strings};

impl RawClient {
    /// GetPresence.
    pub fn get_presence(&mut self, users: &[&str]) -> Result<Vec<pb::Presence>, pb::Error> {
        self.presence_result(
            "GetPresence",
            request::Op::GetPresence(pb::GetPresence { user_ids: strings(users) }),
        )
    }

    /// SubscribePresence.
    pub fn subscribe_presence(&mut self, users: &[&str]) -> Result<Vec<pb::Presence>, pb::Error> {
        let op = request::Op::SubscribePresence(pb::SubscribePresence { user_ids: strings(users) });
        self.presence_result("SubscribePresence", op)
    }

    /// UnsubscribePresence.
    pub fn unsubscribe_presence(&mut self, users: &[&str]) -> Result<(), pb::Error> {
        let op = request::Op::UnsubscribePresence(pb::UnsubscribePresence { user_ids: strings(users) });
        self.ok_result("UnsubscribePresence", op)
    }

    /// ListPresenceSubscriptions.
    pub fn list_presence_subscriptions(&mut self) -> Result<Vec<pb::Presence>, pb::Error> {
        let op = request::Op::ListPresenceSubscriptions(pb::ListPresenceSubscriptions {});
        self.presence_result("ListPresenceSubscriptions", op)
    }

    /// SetPresenceStatus.
    pub fn set_presence_status(&mut self, text: &str) -> Result<(), pb::Error> {
        let op = request::Op::SetPresenceStatus(pb::SetPresenceStatus { text: text.to_owned() });
        self.ok_result("SetPresenceStatus", op)
    }
}
