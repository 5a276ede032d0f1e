//! Accounts and profiles (spec 12.1, 12.2): admin import (one, or many
//! pipelined), disable, token revocation, existence checks, profile patches
//! and reads.
//!
//! Invariants: admin-only helpers must be called on an admin session
//! ([`crate::BrokerProc::admin`]); the server's refusal is returned, not hidden.

use missive_protocol::{Call, pb};

use super::{RawClient, strings};

impl RawClient {
    /// ImportUser (admin).
    pub fn import_user(
        &mut self,
        user: &str,
        profile: Option<pb::ProfilePatch>,
    ) -> Result<pb::Profile, pb::Error> {
        self.call(pb::ImportUser { user_id: user.to_owned(), profile })
    }

    /// SetAccountDisabled (admin).
    pub fn set_account_disabled(
        &mut self,
        user: &str,
        disabled: bool,
        reason: &str,
    ) -> Result<(), pb::Error> {
        self.call(pb::SetAccountDisabled { user_id: user.to_owned(), disabled, reason: reason.to_owned() })
    }

    /// RevokeTokens (admin).
    pub fn revoke_tokens(&mut self, user: &str) -> Result<(), pb::Error> {
        self.call(pb::RevokeTokens { user_id: user.to_owned() })
    }

    /// AccountsExist.
    pub fn accounts_exist(&mut self, users: &[&str]) -> Result<Vec<pb::AccountStatus>, pb::Error> {
        self.call(pb::AccountsExist { user_ids: strings(users) }).map(|v| v.accounts)
    }

    /// SetProfile.
    pub fn set_profile(&mut self, patch: pb::ProfilePatch) -> Result<pb::Profile, pb::Error> {
        self.call(pb::SetProfile { patch: Some(patch) })
    }

    /// GetProfiles.
    pub fn get_profiles(&mut self, users: &[&str]) -> Result<Vec<pb::Profile>, pb::Error> {
        self.call(pb::GetProfiles { user_ids: strings(users) }).map(|v| v.profiles)
    }

    /// Imports (registers) users as an admin, pipelined.
    pub fn import_users(&mut self, users: &[String]) {
        let ops =
            users.iter().map(|u| pb::ImportUser { user_id: u.clone(), profile: None }.into_op()).collect();
        self.call_all_ok(ops, 256);
    }
}
