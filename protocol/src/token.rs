//! Access tokens: JSON Web Tokens (RFC 7519) signed with HMAC-SHA256 (`HS256`)
//! and a secret shared between the application server and the broker, so an
//! app server can mint them offline with any JWT library.
//!
//! Claims: `sub` user id, `exp` expiry (unix seconds), `iat` issued-at (unix
//! seconds, an RFC 7519 NumericDate: a fraction carries milliseconds), `role` (`"user"` or `"admin"`), optional `dev` (device id) and `plat`
//! (platform name) restrictions.
//!
//! Invariants: only `alg = HS256` is accepted (never `none`); the signature is
//! compared in constant time; verification takes the current time as an
//! argument (no clock here).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::ErrorCode;
use crate::ids::{DeviceId, UserId};
use crate::pb::Platform;

/// Maximum accepted token length in bytes.
pub const MAX_TOKEN_LEN: usize = 4096;

/// The fixed JOSE header of every token: `{"alg":"HS256","typ":"JWT"}`.
const HEADER_JSON: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// What a token grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// An ordinary user.
    #[default]
    User,
    /// May additionally call admin-only requests.
    Admin,
}

/// Verified token contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The user the token authenticates.
    pub user: UserId,
    /// Expiry, unix seconds; the token is refused at or after this instant.
    pub expires_at: u64,
    /// Issue time, unix milliseconds (used by per-user token revocation,
    /// spec [A-5]); from an integer `iat` it is a whole second.
    pub issued_at_ms: u64,
    /// Granted role.
    pub role: Role,
    /// If set, the token is only valid for this device id.
    pub device: Option<DeviceId>,
    /// If set, the token is only valid on this platform.
    pub platform: Option<Platform>,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts, bad JSON, wrong algorithm, bad claims.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The signature does not match (forged or a different secret).
    #[error("bad token signature")]
    BadSignature,
    /// `exp` is in the past.
    #[error("token expired")]
    Expired,
}

impl TokenError {
    /// The protocol error code reported for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Malformed(_) | Self::BadSignature => ErrorCode::TokenInvalid,
            Self::Expired => ErrorCode::TokenExpired,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct WireClaims {
    sub: String,
    exp: u64,
    /// Seconds, integer or with a fraction (milliseconds kept); absent = 0.
    #[serde(default)]
    iat: Option<serde_json::Number>,
    #[serde(default)]
    role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dev: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    plat: Option<String>,
}

#[derive(Deserialize)]
struct WireHeader {
    alg: String,
}

/// The lowercase platform name used in tokens and configuration.
pub fn platform_name(p: Platform) -> &'static str {
    match p {
        Platform::Unspecified => "unspecified",
        Platform::Ios => "ios",
        Platform::Android => "android",
        Platform::Web => "web",
        Platform::Windows => "windows",
        Platform::Mac => "mac",
        Platform::Linux => "linux",
        Platform::Ipad => "ipad",
    }
}

/// Parses a lowercase platform name.
pub fn parse_platform(s: &str) -> Option<Platform> {
    Some(match s {
        "ios" => Platform::Ios,
        "android" => Platform::Android,
        "web" => Platform::Web,
        "windows" => Platform::Windows,
        "mac" => Platform::Mac,
        "linux" => Platform::Linux,
        "ipad" => Platform::Ipad,
        _ => return None,
    })
}

fn mac(secret: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this cannot fail.
    match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC-SHA256 accepts any key length"),
    }
}

/// `iat` for an issue time in ms: an integer when it is a whole second, else
/// seconds with a millisecond fraction (the f64 nearest to it, which
/// `iat_ms` maps back to the same millisecond).
fn iat_number(ms: u64) -> serde_json::Number {
    if ms.is_multiple_of(1000) {
        return serde_json::Number::from(ms / 1000);
    }
    serde_json::Number::from_f64(ms as f64 / 1000.0).unwrap_or_else(|| serde_json::Number::from(ms / 1000))
}

/// The issue time in ms of an `iat` claim; `None` if negative, not finite or
/// out of range.
fn iat_ms(iat: Option<&serde_json::Number>) -> Option<u64> {
    let Some(n) = iat else { return Some(0) };
    if let Some(secs) = n.as_u64() {
        return (secs < 18_000_000_000_000).then(|| secs * 1000);
    }
    let f = n.as_f64()?;
    // 1.8e13 s is about year 570 000: anything above is out of range.
    if !f.is_finite() || !(0.0..1.8e13).contains(&f) {
        return None;
    }
    Some((f * 1000.0).round() as u64)
}

/// Mints a signed token for `claims`.
pub fn mint(secret: &[u8], claims: &Claims) -> String {
    let wire = WireClaims {
        sub: claims.user.as_str().to_owned(),
        exp: claims.expires_at,
        iat: Some(iat_number(claims.issued_at_ms)),
        role: claims.role,
        dev: claims.device.as_ref().map(|d| d.as_str().to_owned()),
        plat: claims.platform.map(|p| platform_name(p).to_owned()),
    };
    let payload = serde_json::to_vec(&wire).unwrap_or_default();
    let signing_input = format!("{}.{}", B64.encode(HEADER_JSON), B64.encode(payload));
    let mut m = mac(secret);
    m.update(signing_input.as_bytes());
    let sig = m.finalize().into_bytes();
    format!("{signing_input}.{}", B64.encode(sig))
}

/// Verifies `token` against `secret` at time `now_secs` (unix seconds).
pub fn verify(secret: &[u8], token: &str, now_secs: u64) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed("too long"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::Malformed("expected three dot-separated parts"));
    };
    let header: WireHeader = B64
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(TokenError::Malformed("bad header"))?;
    if header.alg != "HS256" {
        return Err(TokenError::Malformed("alg must be HS256"));
    }
    let sig = B64.decode(s).map_err(|_| TokenError::Malformed("bad signature encoding"))?;
    let mut m = mac(secret);
    m.update(h.as_bytes());
    m.update(b".");
    m.update(p.as_bytes());
    m.verify_slice(&sig).map_err(|_| TokenError::BadSignature)?;
    let wire: WireClaims = B64
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(TokenError::Malformed("bad claims"))?;
    let user = UserId::new(wire.sub).map_err(|_| TokenError::Malformed("bad sub"))?;
    let device = match wire.dev {
        Some(d) => Some(DeviceId::new(d).map_err(|_| TokenError::Malformed("bad dev"))?),
        None => None,
    };
    let platform = match wire.plat {
        Some(p) => Some(parse_platform(&p).ok_or(TokenError::Malformed("bad plat"))?),
        None => None,
    };
    let issued_at_ms = iat_ms(wire.iat.as_ref()).ok_or(TokenError::Malformed("bad iat"))?;
    if now_secs >= wire.exp {
        return Err(TokenError::Expired);
    }
    Ok(Claims { user, expires_at: wire.exp, issued_at_ms, role: wire.role, device, platform })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            user: UserId::new("alice").expect("valid"),
            expires_at: 2_000,
            issued_at_ms: 1_000_000,
            role: Role::User,
            device: None,
            platform: None,
        }
    }

    #[test]
    fn mint_verify_round_trip() {
        let mut c = claims();
        c.role = Role::Admin;
        c.device = Some(DeviceId::new("d1").expect("valid"));
        c.platform = Some(Platform::Ios);
        let t = mint(b"secret", &c);
        assert_eq!(verify(b"secret", &t, 1_500), Ok(c));
    }

    #[test]
    fn rejects_forged_expired_and_garbage() {
        let t = mint(b"secret", &claims());
        assert_eq!(verify(b"other", &t, 1_500), Err(TokenError::BadSignature));
        assert_eq!(verify(b"secret", &t, 2_000), Err(TokenError::Expired));
        assert_eq!(verify(b"secret", &t, 2_000).map_err(|e| e.code()), Err(ErrorCode::TokenExpired));
        // Tampered payload: swap in a different user with the old signature.
        let parts: Vec<&str> = t.split('.').collect();
        let evil = B64.encode(br#"{"sub":"mallory","exp":9999999999,"role":"admin"}"#);
        let forged = format!("{}.{}.{}", parts[0], evil, parts[2]);
        assert_eq!(verify(b"secret", &forged, 1_500), Err(TokenError::BadSignature));
        for bad in ["", "a.b", "a.b.c.d", "!!.!!.!!"] {
            assert_eq!(verify(b"secret", bad, 0).map_err(|e| e.code()), Err(ErrorCode::TokenInvalid));
        }
    }

    /// `iat` keeps milliseconds when it has a fraction (RFC 7519 NumericDate).
    #[test]
    fn iat_milliseconds_round_trip() {
        for ms in [0, 1_000, 1_700_000_000_000, 1_700_000_000_001, 1_700_000_000_123, 1_799_999_999_999] {
            let c = Claims { issued_at_ms: ms, ..claims() };
            let t = mint(b"secret", &c);
            assert_eq!(verify(b"secret", &t, 1_500).map(|c| c.issued_at_ms), Ok(ms), "{ms}");
        }
        let signed = |payload: &str| {
            let signing = format!("{}.{}", B64.encode(HEADER_JSON), B64.encode(payload));
            let mut m = mac(b"secret");
            m.update(signing.as_bytes());
            format!("{signing}.{}", B64.encode(m.finalize().into_bytes()))
        };
        let ok = |p: &str| verify(b"secret", &signed(p), 0).map(|c| c.issued_at_ms);
        assert_eq!(ok(r#"{"sub":"a","exp":9,"iat":1700000000}"#), Ok(1_700_000_000_000));
        assert_eq!(ok(r#"{"sub":"a","exp":9,"iat":1700000000.5}"#), Ok(1_700_000_000_500));
        assert_eq!(ok(r#"{"sub":"a","exp":9}"#), Ok(0));
        for bad in [r#"{"sub":"a","exp":9,"iat":-1}"#, r#"{"sub":"a","exp":9,"iat":1e300}"#] {
            assert!(matches!(ok(bad), Err(TokenError::Malformed(_))), "{bad}");
        }
    }

    #[test]
    fn rejects_alg_none() {
        let h = B64.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let p = B64.encode(r#"{"sub":"alice","exp":9999999999}"#);
        assert!(matches!(verify(b"secret", &format!("{h}.{p}."), 0), Err(TokenError::Malformed(_))));
    }

    #[test]
    fn standard_jwt_layout() {
        let t = mint(b"k", &claims());
        let header = B64.decode(t.split('.').next().expect("part")).expect("b64");
        assert_eq!(header, HEADER_JSON.as_bytes());
    }
}
