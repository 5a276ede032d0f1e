//! The one error type of the SDK.
//!
//! Role: every fallible SDK call returns [`SdkError`]. Server-reported
//! failures keep their numeric protocol code (`Closed` for a `Close` frame or a
//! lost connection, `Server` for an error `Response`) so callers can decide by
//! code; [`SdkError::is_retryable`] applies the protocol's retry rules
//! (spec/PROTOCOL.md sections 4.4 and 10, [V-7]).
//!
//! Invariants: code 0 in `Closed` means "the TCP connection ended without a
//! `Close` frame" (or was shut down locally); it is not a protocol code.

use missive_protocol::{CodecError, ErrorCode, UnexpectedReply};

/// Errors of the Missive client SDK.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// Socket error (connect, read or write).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A frame could not be encoded (too large) or the server sent an undecodable one.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The connection is closed: by a server `Close{code, message}`, or (code 0)
    /// because the TCP connection ended or was shut down locally.
    #[error("connection closed: {}", describe(*.code, .message))]
    Closed {
        /// Protocol error code of the `Close` frame; 0 when there was none.
        code: u32,
        /// Human-readable reason.
        message: String,
    },
    /// The server answered the request with an error `Response`.
    #[error("server error: {}", describe(*.code, .message))]
    Server {
        /// Protocol error code.
        code: u32,
        /// Human-readable reason (for logs; never parse it).
        message: String,
        /// The server's `Error.retryable` flag: resending may succeed later.
        retryable: bool,
        /// `Error.retry_after_ms` (RATE_LIMITED): resend no sooner than this; 0 = unset.
        retry_after_ms: u64,
    },
    /// No answer within the configured timeout.
    #[error("timed out")]
    Timeout,
    /// The server broke the protocol (unexpected frame or response kind).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The caller passed an invalid argument; nothing was sent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl SdkError {
    /// The protocol error code carried by `Closed` (if non-zero) or `Server`.
    pub fn code(&self) -> Option<u32> {
        match self {
            Self::Closed { code, .. } if *code != 0 => Some(*code),
            Self::Server { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The known [`ErrorCode`] of [`SdkError::code`], if any.
    pub fn error_code(&self) -> Option<ErrorCode> {
        self.code().and_then(ErrorCode::from_u32)
    }

    /// How long the server asked to wait before a retry (`RATE_LIMITED`), if it did.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::Server { retry_after_ms, .. } if *retry_after_ms > 0 => {
                Some(std::time::Duration::from_millis(*retry_after_ms))
            }
            _ => None,
        }
    }

    /// Whether the same request (possibly on a new connection) may succeed
    /// later unchanged: timeouts, socket errors, lost connections, retryable
    /// `Close` codes and server errors flagged retryable.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Io(_) | Self::Timeout => true,
            Self::Closed { code, .. } => close_code_retryable(*code),
            Self::Server { retryable, .. } => *retryable,
            Self::Codec(_) | Self::Protocol(_) | Self::InvalidArgument(_) => false,
        }
    }
}

impl From<UnexpectedReply> for SdkError {
    /// A success response of the wrong result kind breaks the protocol.
    fn from(e: UnexpectedReply) -> Self {
        Self::Protocol(e.to_string())
    }
}

/// Whether a client should reconnect after a `Close` with `code` (0 = the
/// connection was lost without a `Close`). Unknown codes are judged by range
/// ([V-7]): only `5xxx` is retryable.
pub fn close_code_retryable(code: u32) -> bool {
    if code == 0 {
        return true;
    }
    match ErrorCode::from_u32(code) {
        Some(c) => c.retryable(),
        None => (5000..6000).contains(&code),
    }
}

/// `NAME (code)` for a protocol code, `UNKNOWN (code)` for codes this version
/// does not know.
pub fn code_name(code: u32) -> String {
    match ErrorCode::from_u32(code) {
        Some(c) => format!("{} ({code})", c.name()),
        None => format!("UNKNOWN ({code})"),
    }
}

fn describe(code: u32, message: &str) -> String {
    if code == 0 { message.to_owned() } else { format!("{}: {message}", code_name(code)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_retry_rules() {
        let e = SdkError::Closed { code: 2000, message: "bad token signature".into() };
        assert_eq!(e.to_string(), "connection closed: TOKEN_INVALID (2000): bad token signature");
        assert!(!e.is_retryable());
        assert_eq!(e.error_code(), Some(ErrorCode::TokenInvalid));
        let lost = SdkError::Closed { code: 0, message: "connection lost".into() };
        assert_eq!(lost.to_string(), "connection closed: connection lost");
        assert!(lost.is_retryable());
        assert_eq!(lost.code(), None);
        assert!(SdkError::Closed { code: 1008, message: String::new() }.is_retryable());
        assert!(close_code_retryable(5999));
        assert!(!close_code_retryable(4242));
        let s = SdkError::Server { code: 3002, message: "no".into(), retryable: false, retry_after_ms: 0 };
        assert_eq!(s.to_string(), "server error: NOT_PARTICIPANT (3002): no");
        assert_eq!(code_name(9), "UNKNOWN (9)");
        let wrong =
            SdkError::from(UnexpectedReply { request: "MarkRead", expected: "conversation", got: "ok" });
        assert_eq!(
            wrong.to_string(),
            "protocol violation: MarkRead was answered with a `ok` result, expected `conversation`"
        );
        assert!(!wrong.is_retryable());
    }
}
