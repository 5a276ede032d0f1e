//! Groups (spec section 14): typed helpers for group requests. Tests send
//! the other group requests with [`RawClient::call`] and match the result.
//!
//! Invariants: each helper returns the server's result or its error, unchanged.

use missive_protocol::pb;

use super::RawClient;

impl RawClient {
    /// CreateGroup; returns the group's info.
    pub fn create_group(
        &mut self,
        group: &str,
        ty: pb::GroupType,
        members: &[&str],
        patch: Option<pb::GroupPatch>,
    ) -> Result<pb::GroupInfo, pb::Error> {
        self.call(pb::CreateGroup {
            group_id: group.to_owned(),
            r#type: ty as i32,
            info: patch,
            member_ids: members.iter().map(|s| (*s).to_owned()).collect(),
            max_members: 0,
        })
    }
}
