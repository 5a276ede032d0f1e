//! Broker errors (one enum for the layer). Client-visible failures are
//! expressed as protocol [`ErrorCode`]s; these are for start-up and internals.

use std::sync::atomic::{AtomicU64, Ordering};

use missive_protocol::ErrorCode;

/// At most one "storage full" log line per this many ms (a full disk refuses
/// every write turn of every worker).
const NO_SPACE_LOG_MS: u64 = 5_000;
/// When the last "storage full" line was logged (unix ms).
static NO_SPACE_LOGGED_MS: AtomicU64 = AtomicU64::new(0);
/// Writes refused for a full disk since that line.
static NO_SPACE_REFUSED: AtomicU64 = AtomicU64::new(0);

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
    /// For RATE_LIMITED: when to retry, ms from now (`Error.retry_after_ms`).
    pub(crate) retry_after_ms: Option<u64>,
}

impl Reject {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), retry_after_ms: None }
    }

    /// RATE_LIMITED, to be retried no sooner than `retry_after_ms` from now.
    pub(crate) fn rate_limited(retry_after_ms: u64, message: impl Into<String>) -> Self {
        Self { code: ErrorCode::RateLimited, message: message.into(), retry_after_ms: Some(retry_after_ms) }
    }
}

impl From<missive_storage::StorageError> for Reject {
    fn from(e: missive_storage::StorageError) -> Self {
        if e.is_no_space() {
            // RocksDB refuses writes until space returns, then resumes by itself.
            // Every refused turn lands here: log once per NO_SPACE_LOG_MS.
            let now = crate::node::clock::now_ms();
            let last = NO_SPACE_LOGGED_MS.load(Ordering::Relaxed);
            let refused = NO_SPACE_REFUSED.fetch_add(1, Ordering::Relaxed) + 1;
            if now.saturating_sub(last) >= NO_SPACE_LOG_MS
                && NO_SPACE_LOGGED_MS
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                NO_SPACE_REFUSED.store(0, Ordering::Relaxed);
                tracing::error!(error = %e, refused, "storage full: writes refused until space returns");
            }
            Reject::new(
                ErrorCode::Storage,
                "storage full (no space left on the data disk); nothing was changed; retry later",
            )
        } else {
            tracing::error!(error = %e, "storage error");
            Reject::new(ErrorCode::Storage, "storage failure; nothing was changed")
        }
    }
}
