//! Broker configuration: serde structs with defaults and validation.
//!
//! Only the binary reads files and flags; the library receives a validated
//! [`Config`]. Every key is documented in the sample `missive.toml` at the
//! repository root, with its memory or latency cost.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::BrokerError;

/// When an acknowledged message is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DurabilityMode {
    /// WAL fsynced before the ack (survives power loss). Default.
    #[default]
    Fsync,
    /// WAL written to the OS before the ack (survives a process crash).
    Buffered,
}

/// Top-level configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// RocksDB directory.
    pub data_dir: PathBuf,
    /// TCP listen address for native clients.
    pub tcp: SocketAddr,
    /// Shared HMAC secret for tokens (at least 16 bytes).
    pub secret: String,
    /// Worker threads (event loops and owner shards); 0 = number of CPU cores.
    pub workers: usize,
    /// Durability of acknowledged writes.
    pub durability: DurabilityMode,
    /// Protocol and resource limits.
    pub limits: Limits,
    /// History visibility.
    pub history: History,
    /// RocksDB memory.
    pub storage: StorageConfig,
    /// Accounts and multi-device login.
    pub accounts: Accounts,
    /// Profiles, friends, blacklist and presence limits.
    pub relations: Relations,
    /// Group limits.
    pub groups: Groups,
    /// WebSocket + HTTP listener (`GET /ws` upgrades, other `GET`s serve the
    /// chat page); unset = off.
    pub ws: Option<SocketAddr>,
    /// QUIC listener (UDP): raw QUIC and WebTransport; unset = off.
    pub quic: Option<SocketAddr>,
    /// Web and QUIC settings.
    pub web: WebConfig,
}

/// Group limits (spec "Groups").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Groups {
    /// Members per group (GROUP_FULL beyond); a group may set a lower limit.
    pub max_members: u32,
    /// Groups one user may belong to (JOINED_GROUP_LIMIT beyond).
    pub max_joined: usize,
    /// Largest group that keeps read receipts (RECEIPT_GROUP_TOO_LARGE beyond)
    /// and pushes every member's read receipts to the other members.
    pub receipt_max_members: u32,
    /// Groups whose member list is cached per worker (memory: ~100 bytes per member).
    pub cache_entries: usize,
}

impl Default for Groups {
    fn default() -> Self {
        Self { max_members: 10_000, max_joined: 5_000, receipt_max_members: 500, cache_entries: 1024 }
    }
}

/// Multi-device login policy (spec "Login policies").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LoginPolicy {
    /// One session in total: a new login kicks every other session.
    Single,
    /// One session per platform class (mobile: ios+android, pad: ipad,
    /// desktop: windows+mac+linux), web up to `web_max_sessions`.
    PerClass,
    /// Desktop and web kick each other (one session between them); ios,
    /// android and ipad kick each other; desktop/web and mobile coexist.
    PcWebExclusive,
    /// Every platform online at once (only `max_sessions_per_user` applies). Default.
    #[default]
    Multi,
}

/// Accounts and multi-device login.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Accounts {
    /// Register an account on its first successful login (else only admin import does).
    pub auto_register: bool,
    /// Which sessions a new login kicks.
    pub login_policy: LoginPolicy,
    /// `per_class`: web sessions one user may have at once (oldest kicked beyond).
    pub web_max_sessions: usize,
    /// Any policy: sessions one user may have at once (oldest kicked beyond).
    pub max_sessions_per_user: usize,
}

/// Profiles, friends, blacklist and presence limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Relations {
    /// Friends per user (FRIEND_LIMIT / PEER_FRIEND_LIMIT beyond).
    pub max_friends: usize,
    /// Blacklist entries per user (BLACKLIST_LIMIT beyond).
    pub max_blacklist: usize,
    /// Presence subscriptions per user (SUBSCRIPTION_LIMIT beyond).
    pub max_subscriptions: usize,
    /// Default and maximum page size of friend, request and blacklist lists.
    pub page_default: u32,
    /// Maximum page size of friend, request and blacklist lists.
    pub page_max: u32,
    /// Longest nickname and friend remark, bytes.
    pub max_name_bytes: usize,
    /// Longest avatar URL, bytes.
    pub max_url_bytes: usize,
    /// Longest signature, friend-request message, status text or disable reason, bytes.
    pub max_text_bytes: usize,
    /// Largest custom `ex` map (sum of key and value lengths), bytes.
    pub max_ex_bytes: usize,
}

/// Protocol and resource limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Maximum frame payload in bytes. Memory: one frame per connection may be buffered.
    pub max_frame_size: u32,
    /// Maximum encoded message content in bytes.
    pub max_content_bytes: usize,
    /// Requests a connection may have unanswered at once.
    pub max_in_flight: usize,
    /// Bytes queued for one connection before it is closed as a slow consumer.
    /// Memory: up to this much per connection.
    pub write_queue_bytes: usize,
    /// Seconds a new connection has to send Hello.
    pub handshake_timeout_secs: u64,
    /// Seconds without any frame before the server closes the connection.
    pub idle_timeout_secs: u64,
    /// Ping interval the server recommends to clients.
    pub ping_interval_secs: u64,
    /// Maximum concurrent connections (also bounded by the open-file limit).
    pub max_connections: usize,
    /// Default and maximum conversations per sync page.
    pub sync_page_default: u32,
    /// Maximum conversations per sync page.
    pub sync_page_max: u32,
    /// Default messages per pull/history page.
    pub pull_page_default: u32,
    /// Maximum messages per pull/history page.
    pub pull_page_max: u32,
    /// Conversation states cached per worker (memory: ~300 bytes each).
    pub conv_cache_entries: usize,
}

/// History visibility.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct History {
    /// Roaming depth in days: older messages are not served to any device. 0 = unlimited.
    pub roam_days: u64,
}

/// RocksDB memory settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Shared block cache, MiB.
    pub block_cache_mb: usize,
    /// Memtable size per column family, MiB.
    pub write_buffer_mb: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            tcp: SocketAddr::from(([127, 0, 0, 1], 7700)),
            secret: String::new(),
            workers: 0,
            durability: DurabilityMode::Fsync,
            limits: Limits::default(),
            history: History::default(),
            storage: StorageConfig::default(),
            accounts: Accounts::default(),
            relations: Relations::default(),
            groups: Groups::default(),
            ws: None,
            quic: None,
            web: WebConfig::default(),
        }
    }
}

impl Default for Accounts {
    fn default() -> Self {
        Self {
            auto_register: true,
            login_policy: LoginPolicy::Multi,
            web_max_sessions: 10,
            max_sessions_per_user: 32,
        }
    }
}

impl Default for Relations {
    fn default() -> Self {
        Self {
            max_friends: 3000,
            max_blacklist: 1000,
            max_subscriptions: 1000,
            page_default: 100,
            page_max: 500,
            max_name_bytes: 64,
            max_url_bytes: 1024,
            max_text_bytes: 256,
            max_ex_bytes: 4096,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_size: missive_protocol::DEFAULT_MAX_FRAME_SIZE,
            max_content_bytes: 64 * 1024,
            max_in_flight: 1024,
            write_queue_bytes: 8 * 1024 * 1024,
            handshake_timeout_secs: 10,
            idle_timeout_secs: 90,
            ping_interval_secs: 30,
            max_connections: 100_000,
            sync_page_default: 100,
            sync_page_max: 500,
            pull_page_default: 100,
            pull_page_max: 500,
            conv_cache_entries: 100_000,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self { block_cache_mb: 64, write_buffer_mb: 32 }
    }
}

impl Config {
    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Self, BrokerError> {
        toml::from_str(text).map_err(|e| BrokerError::Config(e.to_string()))
    }

    /// Number of workers after resolving 0 to the core count.
    pub fn worker_count(&self) -> usize {
        if self.workers == 0 {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        } else {
            self.workers
        }
    }

    /// Checks every value; the broker refuses to start on an error.
    pub fn validate(&self) -> Result<(), BrokerError> {
        let bad = |m: &str| Err(BrokerError::Config(m.to_owned()));
        let l = &self.limits;
        if self.secret.len() < 16 {
            return bad("secret must be at least 16 bytes (set `secret` or --secret)");
        }
        if self.workers > 256 {
            return bad("workers must be at most 256");
        }
        if !(1024..=64 * 1024 * 1024).contains(&l.max_frame_size) {
            return bad("limits.max_frame_size must be within 1 KiB..=64 MiB");
        }
        if l.max_content_bytes == 0 || l.max_content_bytes + 1024 > l.max_frame_size as usize {
            return bad(
                "limits.max_content_bytes must be > 0 and leave 1 KiB of headroom below max_frame_size",
            );
        }
        if l.write_queue_bytes < l.max_frame_size as usize {
            return bad("limits.write_queue_bytes must be at least max_frame_size");
        }
        if l.max_in_flight == 0 || l.max_connections == 0 || l.conv_cache_entries == 0 {
            return bad("limits.max_in_flight, max_connections and conv_cache_entries must be > 0");
        }
        if l.handshake_timeout_secs == 0 || l.idle_timeout_secs == 0 || l.ping_interval_secs == 0 {
            return bad("timeouts must be > 0");
        }
        if l.ping_interval_secs >= l.idle_timeout_secs {
            return bad("limits.ping_interval_secs must be below idle_timeout_secs");
        }
        if l.sync_page_default == 0 || l.sync_page_default > l.sync_page_max {
            return bad("limits.sync_page_default must be within 1..=sync_page_max");
        }
        if l.pull_page_default == 0 || l.pull_page_default > l.pull_page_max {
            return bad("limits.pull_page_default must be within 1..=pull_page_max");
        }
        let a = &self.accounts;
        if a.web_max_sessions == 0 || a.max_sessions_per_user == 0 || a.max_sessions_per_user > 1024 {
            return bad("accounts.web_max_sessions must be > 0 and max_sessions_per_user within 1..=1024");
        }
        let r = &self.relations;
        if r.max_friends == 0 || r.max_blacklist == 0 || r.max_subscriptions == 0 {
            return bad("relations.max_friends, max_blacklist and max_subscriptions must be > 0");
        }
        if r.page_default == 0 || r.page_default > r.page_max {
            return bad("relations.page_default must be within 1..=page_max");
        }
        if r.max_name_bytes == 0 || r.max_url_bytes == 0 || r.max_text_bytes == 0 || r.max_ex_bytes == 0 {
            return bad("relations size limits must be > 0");
        }
        let profile_bound = r.max_name_bytes + r.max_url_bytes + 2 * r.max_text_bytes + r.max_ex_bytes;
        if profile_bound + 1024 > l.max_frame_size as usize / 8 {
            return bad("relations size limits must keep a profile below max_frame_size / 8");
        }
        let g = &self.groups;
        if g.max_members < 2 || g.max_members > 100_000 || g.max_joined == 0 || g.cache_entries == 0 {
            return bad("groups.max_members must be within 2..=100000, max_joined and cache_entries > 0");
        }
        self.web.validate()?;
        if self.storage.block_cache_mb == 0 || self.storage.write_buffer_mb == 0 {
            return bad("storage sizes must be > 0");
        }
        Ok(())
    }
}

/// Web (WebSocket/HTTP) and QUIC settings.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Directory of the chat page, served at `/` (read into memory at start).
    pub static_dir: Option<PathBuf>,
    /// Development mode: the page may mint tokens (`/api/dev-token`). Never in production.
    pub dev_mode: bool,
    /// Serve the `/echo` WebSocket endpoint (conformance testing only).
    pub ws_echo: bool,
    /// TLS certificate chain (PEM) for QUIC; unset = generate a self-signed
    /// development certificate (valid 13 days) and print its SHA-256.
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) for QUIC; set together with `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Public WebTransport URL reported by `/api/info` (e.g. behind a load
    /// balancer); unset = `https://HOST:QUIC_PORT/wt` with the host of the
    /// listener, or of the page's request when the listener is a wildcard.
    pub webtransport_url: Option<String>,
}

impl WebConfig {
    fn validate(&self) -> Result<(), BrokerError> {
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(BrokerError::Config("web.tls_cert and web.tls_key must be set together".into()));
        }
        if let Some(u) = &self.webtransport_url
            && (!u.starts_with("https://") || u.len() > 2048 || u.chars().any(|c| c.is_control() || c == '"'))
        {
            return Err(BrokerError::Config("web.webtransport_url must be an https:// URL".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_file_parses_and_validates() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../missive.toml")).expect("sample");
        let mut c = Config::from_toml(&text).expect("parses");
        c.secret = "0123456789abcdef".into();
        c.validate().expect("valid");
    }

    #[test]
    fn rejects_bad_values() {
        let mut c = Config { secret: "0123456789abcdef".into(), ..Config::default() };
        c.validate().expect("defaults valid");
        c.limits.ping_interval_secs = 500;
        assert!(c.validate().is_err());
        assert!(Config::from_toml("nope = 1").is_err());
        let short = Config { secret: "x".into(), ..Config::default() };
        assert!(short.validate().is_err());
    }
}
