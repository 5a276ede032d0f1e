//! Broker errors (one enum for the layer). Client-visible failures are
//! expressed as protocol [`ErrorCode`]s; these are for start-up and internals.

use missive_protocol::ErrorCode;

/// Errors of the broker layer.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// Invalid configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// Storage failure.
    #[error(transparent)]
    Storage(#[from] missive_storage::StorageError),
    /// Socket or thread failure.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// A failure reported to one request: a code and a message.
#[derive(Debug, Clone)]
pub(crate) struct Reject {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
}

impl Reject {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

impl From<missive_storage::StorageError> for Reject {
    fn from(e: missive_storage::StorageError) -> Self {
        tracing::error!(error = %e, "storage error");
        Reject::new(ErrorCode::Storage, "storage failure; nothing was changed")
    }
}
