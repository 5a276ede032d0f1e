//! Presence (spec 12.4): reads, subscriptions and the custom status text.
//!
//! Invariants: each helper returns the server's result or its error, unchanged.

use missive_protocol::pb;

use super::{RawClient, strings};

impl RawClient {
    /// GetPresence.
    pub fn get_presence(&mut self, users: &[&str]) -> Result<Vec<pb::Presence>, pb::Error> {
        self.call(pb::GetPresence { user_ids: strings(users) }).map(|v| v.presences)
    }

    /// SubscribePresence.
    pub fn subscribe_presence(&mut self, users: &[&str]) -> Result<Vec<pb::Presence>, pb::Error> {
        self.call(pb::SubscribePresence { user_ids: strings(users) }).map(|v| v.presences)
    }

    /// UnsubscribePresence.
    pub fn unsubscribe_presence(&mut self, users: &[&str]) -> Result<(), pb::Error> {
        self.call(pb::UnsubscribePresence { user_ids: strings(users) })
    }

    /// ListPresenceSubscriptions.
    pub fn list_presence_subscriptions(&mut self) -> Result<Vec<pb::Presence>, pb::Error> {
        self.call(pb::ListPresenceSubscriptions {}).map(|v| v.presences)
    }

    /// SetPresenceStatus.
    pub fn set_presence_status(&mut self, text: &str) -> Result<(), pb::Error> {
        self.call(pb::SetPresenceStatus { text: text.to_owned() })
    }
}
