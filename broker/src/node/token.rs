//! The sync-token key: sync tokens are `{version}.{mac}` bound to the user.
//!
//! Role: shared node state (every worker makes and checks tokens). A token of
//! another user, or garbage, is refused with INVALID_SYNC_TOKEN.
//!
//! Invariant: the key is derived from the shared secret, so tokens stay valid
//! across restarts with the same secret.

use hmac::{Hmac, Mac};
use missive_protocol::{ErrorCode, UserId};
use sha2::Sha256;

use crate::error::Reject;

/// Key for sync-token MACs, derived from the shared secret.
#[derive(Clone)]
pub(crate) struct TokenKey([u8; 32]);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    pub(crate) fn derive(secret: &str) -> Self {
        let mut m = mac_with(secret.as_bytes());
        m.update(b"missive sync token key v1");
        let mut out = [0u8; 32];
        out.copy_from_slice(&m.finalize().into_bytes());
        Self(out)
    }

    fn tag(&self, user: &UserId, version: u64) -> String {
        let mut m = mac_with(&self.0);
        m.update(user.as_str().as_bytes());
        m.update(&version.to_be_bytes());
        hex::encode(&m.finalize().into_bytes()[..8])
    }

    /// Formats a token: `{version}.{tag}`.
    pub(crate) fn make(&self, user: &UserId, version: u64) -> String {
        format!("{version}.{}", self.tag(user, version))
    }

    /// Parses a token of `user`; "" is version 0.
    pub(crate) fn parse(&self, user: &UserId, token: &str) -> Result<u64, Reject> {
        if token.is_empty() {
            return Ok(0);
        }
        let bad = || {
            Reject::new(ErrorCode::InvalidSyncToken, "sync token not issued for this user; sync from \"\"")
        };
        let (v, tag) = token.split_once('.').ok_or_else(bad)?;
        let version: u64 = v.parse().map_err(|_| bad())?;
        if self.tag(user, version) != tag {
            return Err(bad());
        }
        Ok(version)
    }
}

fn mac_with(key: &[u8]) -> Hmac<Sha256> {
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts any key length"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_bind_user_and_version() {
        let k = TokenKey::derive("0123456789abcdef");
        let alice = UserId::new("alice").expect("valid");
        let bob = UserId::new("bob").expect("valid");
        let t = k.make(&alice, 42);
        assert_eq!(k.parse(&alice, &t).map_err(|r| r.code), Ok(42));
        assert_eq!(k.parse(&bob, &t).map_err(|r| r.code), Err(ErrorCode::InvalidSyncToken));
        assert_eq!(k.parse(&alice, "").map_err(|r| r.code), Ok(0));
        assert_eq!(k.parse(&alice, "43.deadbeef").map_err(|r| r.code), Err(ErrorCode::InvalidSyncToken));
        assert_eq!(k.parse(&alice, "junk").map_err(|r| r.code), Err(ErrorCode::InvalidSyncToken));
    }
}
