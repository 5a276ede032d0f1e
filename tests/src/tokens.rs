//! Access tokens and clocks for the tests.
//!
//! Role: mints the JWT-style tokens the broker accepts (signed with
//! [`SECRET`], which every test broker is started with), with any role, `iat`,
//! expiry, device or platform restriction, so tests can play valid, expired,
//! revoked or forged credentials.
//!
//! Invariants: only `missive_protocol::token` builds tokens; nothing here talks
//! to a broker.

use std::time::{SystemTime, UNIX_EPOCH};

use missive_protocol::token::{self, Claims, Role};
use missive_protocol::{DeviceId, UserId};

use crate::Platform;

/// Token secret shared by the test broker and [`mint`].
pub const SECRET: &str = "missive-test-secret-0123456789abcdef";

/// Current unix time in seconds.
pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Current unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A user token valid for one hour, signed with [`SECRET`].
pub fn mint(user: &str) -> String {
    mint_with(SECRET, user, 3600, None, None)
}

/// A token signed with `secret`, expiring `ttl_secs` from now (negative: already
/// expired), optionally restricted to a device and a platform.
pub fn mint_with(
    secret: &str,
    user: &str,
    ttl_secs: i64,
    device: Option<&str>,
    platform: Option<Platform>,
) -> String {
    let now = now_secs();
    let expires_at = now.saturating_add_signed(ttl_secs);
    let claims = Claims {
        user: UserId::new(user).expect("valid user id"),
        expires_at,
        issued_at_ms: now.saturating_sub(120) * 1000,
        role: Role::User,
        device: device.map(|d| DeviceId::new(d).expect("valid device id")),
        platform,
    };
    token::mint(secret.as_bytes(), &claims)
}

/// A token for `user` with the given role and `iat`, expiring one hour from
/// now, optionally restricted to a device and a platform.
pub fn mint_claims(
    user: &str,
    role: Role,
    issued_at: u64,
    device: Option<&str>,
    platform: Option<Platform>,
) -> String {
    let claims = Claims {
        user: UserId::new(user).expect("valid user id"),
        expires_at: now_secs() + 3600,
        issued_at_ms: issued_at * 1000,
        role,
        device: device.map(|d| DeviceId::new(d).expect("valid device id")),
        platform,
    };
    token::mint(SECRET.as_bytes(), &claims)
}

/// An admin-role token for `user` (issued two minutes ago, like [`mint`]).
pub fn mint_admin(user: &str) -> String {
    mint_claims(user, Role::Admin, now_secs().saturating_sub(120), None, None)
}

/// A user-role token for `user` whose `iat` is exactly `issued_at`.
pub fn mint_issued_at(user: &str, issued_at: u64) -> String {
    mint_claims(user, Role::User, issued_at, None, None)
}
