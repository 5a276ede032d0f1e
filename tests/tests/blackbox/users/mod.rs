//! Users and devices (spec 12): accounts, multi-device login policies,
//! presence.

mod accounts;
mod login_policy;
mod presence;
