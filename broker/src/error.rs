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
    /// The data directory failed its integrity check at open: the broker
    /// does not start on it.
    #[error(
        "data directory {dir} is damaged: {detail}; the broker did not start. Run `missive verify --data {dir}` \
         for a report, then restore a backup (`missive restore`) or, as a last resort, `missive repair --data \
         {dir}` (README \"Operations\")"
    )]
    Corrupt {
        /// The data directory.
        dir: String,
        /// RocksDB's report (file and offset).
        detail: String,
    },
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
        if e.is_no_space() {
            // RocksDB refuses writes until space returns, then resumes by itself.
            Reject::new(
                ErrorCode::Storage,
                "storage full (no space left on the data disk); nothing was changed; retry later",
            )
        } else {
            Reject::new(ErrorCode::Storage, "storage failure; nothing was changed")
        }
    }
}
