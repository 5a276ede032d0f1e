//! Accounts and profiles (spec 12.1, 12.2): admin import (one, or many
//! pipelined), disable, token revocation, existence checks, profile patches
//! and reads.
//!
//! Invariants: admin-only helpers must be called on an admin session
//! ([`crate::BrokerProc::admin`]); the server's refusal is returned, not hidden.

use missive_protocol::pb::{self, request, response};

use super::{RawClient, strings};

impl RawClient {
    /// ImportUser (admin).
    pub fn import_user(
        &mut self,
        user: &str,
        profile: Option<pb::ProfilePatch>,
    ) -> Result<pb::Profile, pb::Error> {
        self.profile_result(
            "ImportUser",
            request::Op::ImportUser(pb::ImportUser { user_id: user.to_owned(), profile }),
        )
    }

    /// SetAccountDisabled (admin).
    pub fn set_account_disabled(
        &mut self,
        user: &str,
        disabled: bool,
        reason: &str,
    ) -> Result<(), pb::Error> {
        self.ok_result(
            "SetAccountDisabled",
            request::Op::SetAccountDisabled(pb::SetAccountDisabled {
                user_id: user.to_owned(),
                disabled,
                reason: reason.to_owned(),
            }),
        )
    }

    /// RevokeTokens (admin).
    pub fn revoke_tokens(&mut self, user: &str) -> Result<(), pb::Error> {
        self.ok_result(
            "RevokeTokens",
            request::Op::RevokeTokens(pb::RevokeTokens { user_id: user.to_owned() }),
        )
    }

    /// AccountsExist.
    pub fn accounts_exist(&mut self, users: &[&str]) -> Result<Vec<pb::AccountStatus>, pb::Error> {
        let op = request::Op::AccountsExist(pb::AccountsExist { user_ids: strings(users) });
        self.typed("AccountsExist", op, pick!(Accounts)).map(|v| v.accounts)
    }

    /// SetProfile.
    pub fn set_profile(&mut self, patch: pb::ProfilePatch) -> Result<pb::Profile, pb::Error> {
        self.profile_result("SetProfile", request::Op::SetProfile(pb::SetProfile { patch: Some(patch) }))
    }

    /// GetProfiles.
    pub fn get_profiles(&mut self, users: &[&str]) -> Result<Vec<pb::Profile>, pb::Error> {
        let op = request::Op::GetProfiles(pb::GetProfiles { user_ids: strings(users) });
        self.typed("GetProfiles", op, pick!(Profiles)).map(|v| v.profiles)
    }

    /// Imports (registers) users as an admin, pipelined.
    pub fn import_users(&mut self, users: &[String]) {
        let ops = users
            .iter()
            .map(|u| request::Op::ImportUser(pb::ImportUser { user_id: u.clone(), profile: None }))
            .collect();
        self.call_all_ok(ops, 256);
    }
}
