//! Webhook request signing (spec/PROTOCOL.md "Webhooks", [WH-3]).
//!
//! `Missive-Signature: v1=hex(HMAC-SHA256(secret, timestamp "." body))` where
//! `timestamp` is the `Missive-Timestamp` header (unix seconds). Pure.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The `Missive-Signature` header value.
pub(crate) fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        // HMAC takes keys of any length; this arm is unreachable.
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        // HMAC-SHA256("key", "1.{}") computed independently (python hmac).
        let s = signature(b"key", 1, b"{}");
        assert_eq!(s, "v1=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224");
        assert_ne!(s, signature(b"key", 2, b"{}"));
        assert_ne!(s, signature(b"kez", 1, b"{}"));
    }
}
