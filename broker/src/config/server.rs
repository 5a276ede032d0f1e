//! Configuration of the server-integration edge (issue #15): the admin REST
//! API (`[api]`), webhooks (`[webhooks]`) and the sensitive-word filter
//! (`[filter]`). Same rules as the rest of `config`: every key has a default,
//! is documented in `docs/CONFIG.md` and checked by [`super::Config::check`].

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// One API key of `[api] keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// Who the key belongs to: written to the audit log, 1..=64 bytes of `[A-Za-z0-9_.-]`.
    pub name: String,
    /// The secret sent as `Authorization: Bearer KEY` (at least 16 printable bytes).
    pub key: String,
}

/// The admin REST API (`/v1/...`, `GET /openapi.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Listen address (HTTP/1.1, JSON); unset = off. Keep it private: it is
    /// the app server's door, not a client's.
    pub listen: Option<SocketAddr>,
    /// API keys accepted besides an admin-role JWT.
    pub keys: Vec<ApiKey>,
    /// Requests per second per API key or admin token (token bucket, burst 2x); 429 beyond.
    pub max_requests_per_sec: u32,
    /// Sender of system notices and broadcasts (a user id; created on first use).
    pub system_user: String,
    /// Largest request body, bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Open API connections (authenticated or not); beyond, accepting waits.
    pub max_connections: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 7701))),
            keys: Vec::new(),
            max_requests_per_sec: 1000,
            system_user: "system".into(),
            max_body_bytes: 4 << 20,
            max_connections: 1024,
        }
    }
}

/// What `before.send` does when the endpoint times out or fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Store the message unchanged (default).
    #[default]
    Open,
    /// Refuse the message (`WEBHOOK_FAILED`, retryable).
    Closed,
}

/// Webhooks: delivery of events to app servers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// How long a send waits for a `before.send` decision, ms.
    pub before_send_timeout_ms: u64,
    /// On a `before.send` timeout or error: `open` (store as sent) or `closed` (refuse).
    pub before_send_on_failure: FailMode,
    /// Sends waiting for a `before.send` decision, node-wide (OVERLOADED beyond).
    pub before_send_max_pending: usize,
    /// Delivery attempts of an after-event before it becomes a dead letter.
    pub max_attempts: u32,
    /// First retry delay, ms (doubles each attempt, full jitter).
    pub backoff_base_ms: u64,
    /// Largest retry delay, ms.
    pub backoff_max_ms: u64,
    /// Requests in flight per endpoint.
    pub max_concurrency: usize,
    /// Timeout of one after-event delivery, ms.
    pub request_timeout_ms: u64,
    /// Signed timestamps older or newer than this are to be refused by receivers, s
    /// (sent in `Missive-Replay-Window`; documentation for receivers).
    pub replay_window_secs: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            before_send_timeout_ms: 2000,
            before_send_on_failure: FailMode::Open,
            before_send_max_pending: 10_000,
            max_attempts: 8,
            backoff_base_ms: 500,
            backoff_max_ms: 60_000,
            max_concurrency: 4,
            request_timeout_ms: 5000,
            replay_window_secs: 300,
        }
    }
}

/// The sensitive-word filter (lists are managed through the API and stored).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilterConfig {
    /// Words per list.
    pub max_words_per_list: usize,
    /// Lists.
    pub max_lists: usize,
    /// Longest word, bytes.
    pub max_word_bytes: usize,
}

impl Default for FilterConfig {
    fn default() -> Self {
        Self { max_words_per_list: 100_000, max_lists: 64, max_word_bytes: 64 }
    }
}

use super::{ConfigError, ensure};

impl ApiConfig {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        for k in &self.keys {
            ensure(
                (1..=64).contains(&k.name.len())
                    && k.name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')),
                "api.keys.name",
                "must be 1..=64 bytes of A-Z a-z 0-9 _ . -",
                "name each key after the app server that uses it",
            )?;
            ensure(
                k.key.len() >= super::MIN_ADMIN_TOKEN_BYTES && k.key.bytes().all(|b| b.is_ascii_graphic()),
                "api.keys.key",
                "must be at least 16 printable ASCII bytes without spaces",
                "set a long random key, e.g. `head -c 32 /dev/urandom | od -An -vtx1 | tr -d ' \\n'`",
            )?;
        }
        let mut names: Vec<&str> = self.keys.iter().map(|k| k.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        ensure(
            names.len() == self.keys.len(),
            "api.keys.name",
            "must be unique",
            "rename the duplicate key",
        )?;
        ensure(
            self.max_requests_per_sec > 0,
            "api.max_requests_per_sec",
            "must be > 0",
            "set a positive rate",
        )?;
        ensure(
            missive_protocol::UserId::new(self.system_user.clone()).is_ok(),
            "api.system_user",
            "must be a valid user id",
            "use 1..=64 chars of [A-Za-z0-9_.@-]",
        )?;
        ensure(
            (1..=65_536).contains(&self.max_connections),
            "api.max_connections",
            "must be within 1..=65536",
            "set a number of connections; the default is 1024",
        )?;
        ensure(
            (1024..=(64 << 20)).contains(&self.max_body_bytes),
            "api.max_body_bytes",
            "must be within 1024..=67108864",
            "set a size in that range; the default is 4194304",
        )
    }
}

impl WebhooksConfig {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        ensure(
            (10..=60_000).contains(&self.before_send_timeout_ms),
            "webhooks.before_send_timeout_ms",
            "must be within 10..=60000",
            "set a timeout in ms; the default is 2000",
        )?;
        ensure(
            self.before_send_max_pending > 0,
            "webhooks.before_send_max_pending",
            "must be > 0",
            "set a positive number",
        )?;
        ensure(
            (1..=100).contains(&self.max_attempts),
            "webhooks.max_attempts",
            "must be within 1..=100",
            "set a number of attempts; the default is 8",
        )?;
        ensure(
            self.backoff_base_ms > 0 && self.backoff_base_ms <= self.backoff_max_ms,
            "webhooks.backoff_base_ms",
            "must be > 0 and <= webhooks.backoff_max_ms",
            "set a base delay below the largest delay",
        )?;
        ensure(
            (1..=256).contains(&self.max_concurrency),
            "webhooks.max_concurrency",
            "must be within 1..=256",
            "set a number of requests in flight per endpoint",
        )?;
        ensure(
            (10..=600_000).contains(&self.request_timeout_ms),
            "webhooks.request_timeout_ms",
            "must be within 10..=600000",
            "set a timeout in ms; the default is 5000",
        )?;
        ensure(
            self.replay_window_secs > 0,
            "webhooks.replay_window_secs",
            "must be > 0",
            "set a window in seconds; the default is 300",
        )
    }
}

impl FilterConfig {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        ensure(
            (1..=1_000_000).contains(&self.max_words_per_list),
            "filter.max_words_per_list",
            "must be within 1..=1000000",
            "set a number of words",
        )?;
        ensure(
            (1..=1024).contains(&self.max_lists),
            "filter.max_lists",
            "must be within 1..=1024",
            "set a number",
        )?;
        ensure(
            (1..=1024).contains(&self.max_word_bytes),
            "filter.max_word_bytes",
            "must be within 1..=1024",
            "set a length in bytes",
        )
    }
}
