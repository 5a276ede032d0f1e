//! Broker configuration: serde structs with defaults and validation.
//!
//! Only the binary reads files and flags; the library receives a validated
//! [`Config`]. `docs/CONFIG.md` is the reference: every key with its section,
//! default, unit, memory or latency cost and cross-constraints (a test below
//! keeps it and these structs in step); the sample `missive.toml` at the
//! repository root shows every key with its default.
//!
//! Invariants: [`Config::check`] enforces every rule and cross-constraint
//! `docs/CONFIG.md` states; its error is one line naming the key, the rule and
//! the fix ([`ConfigError`]), never a stack trace.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::BrokerError;

mod messages;
mod server;
pub use messages::{CLIENT_KINDS, MessagesConfig, TranslateConfig};
pub use server::{ApiConfig, ApiKey, FailMode, FilterConfig, WebhooksConfig};

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
    /// TLS listener for native clients (ALPN `missive/1`, certificate
    /// `web.tls_cert`); unset = off. The plaintext `tcp` listener stays (keep
    /// it on loopback: QUIC sessions are bridged to it).
    pub tcp_tls: Option<SocketAddr>,
    /// HTTPS / WebSocket-over-TLS listener (the `ws` routes behind TLS,
    /// certificate `web.tls_cert`); unset = off.
    pub wss: Option<SocketAddr>,
    /// Web and QUIC settings.
    pub web: WebConfig,
    /// Admin HTTP API on the web listener (backups).
    pub admin: AdminConfig,
    /// The admin REST API listener.
    pub api: ApiConfig,
    /// Webhooks.
    pub webhooks: WebhooksConfig,
    /// The sensitive-word filter.
    pub filter: FilterConfig,
    /// The message lifecycle (spec section 18).
    pub messages: MessagesConfig,
    /// The translation provider (spec 18.10).
    pub translate: TranslateConfig,
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
        Self { max_members: 10_000, max_joined: 5_000, receipt_max_members: 1000, cache_entries: 1024 }
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
    /// Concurrent connections from one IPv4 address or IPv6 /64 (TCP, TLS,
    /// WebSocket, WSS and QUIC together); 0 = no per-address cap.
    pub max_connections_per_ip: usize,
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
    /// Maximum frame payload before the handshake completed (the `Hello`), bytes.
    /// Memory: what an unauthenticated connection may make the server buffer.
    pub max_hello_frame_size: u32,
    /// Frames that get no reply (`PushAck`, WebSocket Pong) a connection may send
    /// per second (burst: twice this); beyond it the connection is closed with
    /// `1012 FLOODING`.
    pub max_silent_frames_per_sec: u32,
    /// Threads serving read-only queries and sync off the I/O loops; 0 = one per worker.
    pub query_threads: usize,
    /// Shard turns in flight per worker in `fsync` mode: 1 = a turn is staged
    /// only after the previous batch is durable; 2 = one more turn of sends
    /// and receipts is staged while a batch is written (pipelined group
    /// commit). 1 measured faster on 2 cores (README "Performance").
    pub commit_pipeline: usize,
    /// Requests one connection may send per second (burst: twice this); beyond
    /// it a request is answered with `5003 RATE_LIMITED` and not executed.
    pub max_requests_per_sec: u32,
    /// Messages one device (connection) may send per second (burst: twice
    /// this); beyond it a send gets `5003 RATE_LIMITED` with `retry_after_ms`.
    pub max_sends_per_sec: u32,
    /// New connections (TCP, TLS, WebSocket, QUIC handshakes) one address may
    /// open per second (burst: twice this); 0 = no limit.
    pub max_handshakes_per_ip_per_sec: u32,
}

/// History visibility.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct History {
    /// Roaming depth in days: older messages are not served to any device. 0 = unlimited.
    pub roam_days: u64,
}

/// RocksDB memory, integrity checks, dedup retention and backups.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Shared block cache, MiB.
    pub block_cache_mb: usize,
    /// Memtable size per column family, MiB.
    pub write_buffer_mb: usize,
    /// Bound on the live write-ahead log, MiB (disk, and what a restart replays).
    pub max_wal_mb: u64,
    /// Partitions of a new data directory (RocksDB instances, one WAL each);
    /// 0 = one per worker. Fixed when the directory is created.
    pub partitions: usize,
    /// Read the whole store with checksums before serving (start-up cost:
    /// one sequential read of the data directory); off = RocksDB's own open
    /// checks only (MANIFEST, WAL, file sizes, table footers and indexes).
    pub verify_on_open: bool,
    /// Days a send's idempotency key is honoured (spec [I-2]); 0 = forever.
    pub dedup_retention_days: u64,
    /// Directory that `POST /admin/v1/backup` writes checkpoints under; unset = backups off.
    pub backup_dir: Option<PathBuf>,
}

/// The admin HTTP API on the `ws` listener (`/admin/v1/...`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Bearer token the admin endpoints require; unset = the admin API is off (404).
    pub token: Option<String>,
}

/// Largest accepted `storage.max_wal_mb` (1 TiB).
pub const MAX_WAL_MB: u64 = 1 << 20;

/// Shortest accepted `admin.token`, bytes.
pub const MIN_ADMIN_TOKEN_BYTES: usize = 16;
/// Longest accepted `storage.dedup_retention_days` (100 years).
pub const MAX_DEDUP_RETENTION_DAYS: u64 = 36_500;

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
            tcp_tls: None,
            wss: None,
            web: WebConfig::default(),
            admin: AdminConfig::default(),
            api: ApiConfig::default(),
            webhooks: WebhooksConfig::default(),
            filter: FilterConfig::default(),
            messages: MessagesConfig::default(),
            translate: TranslateConfig::default(),
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
            max_connections_per_ip: 0,
            sync_page_default: 100,
            sync_page_max: 500,
            pull_page_default: 100,
            pull_page_max: 500,
            conv_cache_entries: 100_000,
            max_hello_frame_size: 4096,
            max_silent_frames_per_sec: 1000,
            query_threads: 0,
            commit_pipeline: 1,
            max_requests_per_sec: 20_000,
            max_sends_per_sec: 5,
            max_handshakes_per_ip_per_sec: 100,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            block_cache_mb: 64,
            write_buffer_mb: 32,
            max_wal_mb: missive_storage::DEFAULT_MAX_WAL_BYTES >> 20,
            partitions: 0,
            verify_on_open: true,
            dedup_retention_days: 7,
            backup_dir: None,
        }
    }
}

impl Config {
    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Self, BrokerError> {
        Self::parse_toml(text).map_err(|e| BrokerError::Config(e.to_string()))
    }

    /// Parses TOML text; a failure names the key and its line (one line of text).
    pub fn parse_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::from_toml(text, &e))
    }

    /// Query threads after resolving 0 to the worker count.
    pub fn query_thread_count(&self) -> usize {
        if self.limits.query_threads == 0 { self.worker_count() } else { self.limits.query_threads }
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
        self.check().map_err(|e| BrokerError::Config(e.to_string()))
    }

    /// Checks every value and every cross-constraint of `docs/CONFIG.md`; the
    /// first violation names the key, the rule and the fix.
    pub fn check(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        let frame = l.max_frame_size as usize;
        if self.secret.len() < MIN_SECRET_BYTES {
            return Err(ConfigError::new(
                "secret",
                format!("must be at least {MIN_SECRET_BYTES} bytes (got {})", self.secret.len()),
                "pass --secret or MISSIVE_SECRET (or set `secret`) with 16 or more bytes, e.g. \
                 `head -c 32 /dev/urandom | od -An -vtx1 | tr -d ' \\n'`",
            ));
        }
        if self.workers > MAX_WORKERS {
            return Err(ConfigError::new(
                "workers",
                format!("must be at most {MAX_WORKERS} (got {})", self.workers),
                "set 0 (one per core) or a smaller number",
            ));
        }
        if !(MIN_FRAME_SIZE..=MAX_FRAME_SIZE).contains(&l.max_frame_size) {
            return Err(ConfigError::new(
                "limits.max_frame_size",
                format!(
                    "must be within {MIN_FRAME_SIZE}..={MAX_FRAME_SIZE} bytes (32 KiB..=64 MiB; a group tip \
                     naming 100 members takes ~14 KiB) (got {})",
                    l.max_frame_size
                ),
                "set a value in that range; the default is 1048576",
            ));
        }
        ensure(l.max_content_bytes > 0, "limits.max_content_bytes", "must be > 0", "set a positive size")?;
        if l.max_content_bytes + FRAME_HEADROOM > frame {
            return Err(ConfigError::new(
                "limits.max_content_bytes",
                format!(
                    "max_content_bytes + 1024 must be <= limits.max_frame_size (got {} + 1024 > {frame})",
                    l.max_content_bytes
                ),
                format!(
                    "lower limits.max_content_bytes to at most {} or raise limits.max_frame_size to at least {}",
                    frame - FRAME_HEADROOM,
                    l.max_content_bytes + FRAME_HEADROOM
                ),
            ));
        }
        if !(MIN_HELLO_FRAME_SIZE..=l.max_frame_size).contains(&l.max_hello_frame_size) {
            return Err(ConfigError::new(
                "limits.max_hello_frame_size",
                format!(
                    "must be within {MIN_HELLO_FRAME_SIZE}..=limits.max_frame_size bytes (got {})",
                    l.max_hello_frame_size
                ),
                "keep the default 4096 (a Hello with a token is a few hundred bytes)",
            ));
        }
        if l.query_threads > MAX_WORKERS {
            return Err(ConfigError::new(
                "limits.query_threads",
                format!("must be at most {MAX_WORKERS} (got {})", l.query_threads),
                "set 0 (one per worker) or a smaller number",
            ));
        }
        if !(1..=crate::shard::PIPELINE_DEPTH).contains(&l.commit_pipeline) {
            return Err(ConfigError::new(
                "limits.commit_pipeline",
                format!("must be 1 or {} (got {})", crate::shard::PIPELINE_DEPTH, l.commit_pipeline),
                "keep 1 unless a measurement on your machine says 2 is faster",
            ));
        }
        if l.write_queue_bytes < frame {
            return Err(ConfigError::new(
                "limits.write_queue_bytes",
                format!("must be >= limits.max_frame_size (got {} < {frame})", l.write_queue_bytes),
                format!("raise limits.write_queue_bytes to at least {frame} or lower limits.max_frame_size"),
            ));
        }
        for (key, v) in [
            ("limits.max_in_flight", l.max_in_flight),
            ("limits.max_connections", l.max_connections),
            ("limits.conv_cache_entries", l.conv_cache_entries),
            ("limits.max_silent_frames_per_sec", l.max_silent_frames_per_sec as usize),
            ("limits.max_requests_per_sec", l.max_requests_per_sec as usize),
            ("limits.max_sends_per_sec", l.max_sends_per_sec as usize),
        ] {
            ensure(v > 0, key, "must be > 0", "set a positive number")?;
        }
        for (key, v) in [
            ("limits.handshake_timeout_secs", l.handshake_timeout_secs),
            ("limits.idle_timeout_secs", l.idle_timeout_secs),
            ("limits.ping_interval_secs", l.ping_interval_secs),
        ] {
            ensure(v > 0, key, "must be > 0 seconds", "set a positive number of seconds")?;
        }
        if l.ping_interval_secs >= l.idle_timeout_secs {
            return Err(ConfigError::new(
                "limits.ping_interval_secs",
                format!(
                    "must be < limits.idle_timeout_secs (got {} >= {})",
                    l.ping_interval_secs, l.idle_timeout_secs
                ),
                "lower limits.ping_interval_secs (about a third of the idle timeout) or raise \
                 limits.idle_timeout_secs",
            ));
        }
        page_rule("limits.sync_page_default", l.sync_page_default, "limits.sync_page_max", l.sync_page_max)?;
        page_rule("limits.pull_page_default", l.pull_page_default, "limits.pull_page_max", l.pull_page_max)?;
        let a = &self.accounts;
        ensure(a.web_max_sessions > 0, "accounts.web_max_sessions", "must be > 0", "set a positive number")?;
        if !(1..=MAX_SESSIONS_PER_USER).contains(&a.max_sessions_per_user) {
            return Err(ConfigError::new(
                "accounts.max_sessions_per_user",
                format!("must be within 1..={MAX_SESSIONS_PER_USER} (got {})", a.max_sessions_per_user),
                "set a value in that range; the default is 32",
            ));
        }
        let r = &self.relations;
        for (key, v) in [
            ("relations.max_friends", r.max_friends),
            ("relations.max_blacklist", r.max_blacklist),
            ("relations.max_subscriptions", r.max_subscriptions),
            ("relations.max_name_bytes", r.max_name_bytes),
            ("relations.max_url_bytes", r.max_url_bytes),
            ("relations.max_text_bytes", r.max_text_bytes),
            ("relations.max_ex_bytes", r.max_ex_bytes),
        ] {
            ensure(v > 0, key, "must be > 0", "set a positive number")?;
        }
        page_rule("relations.page_default", r.page_default, "relations.page_max", r.page_max)?;
        let profile = r.max_name_bytes + r.max_url_bytes + 2 * r.max_text_bytes + r.max_ex_bytes;
        if profile + FRAME_HEADROOM > frame / 8 {
            return Err(ConfigError::new(
                "relations.max_ex_bytes",
                format!(
                    "the largest profile, max_name_bytes + max_url_bytes + 2 * max_text_bytes + max_ex_bytes \
                     + 1024, must be <= limits.max_frame_size / 8 (got {} > {})",
                    profile + FRAME_HEADROOM,
                    frame / 8
                ),
                format!(
                    "lower the relations.max_*_bytes limits by {} bytes in total or raise limits.max_frame_size \
                     to at least {}",
                    profile + FRAME_HEADROOM - frame / 8,
                    (profile + FRAME_HEADROOM) * 8
                ),
            ));
        }
        let g = &self.groups;
        if !(2..=MAX_GROUP_MEMBERS).contains(&g.max_members) {
            return Err(ConfigError::new(
                "groups.max_members",
                format!("must be within 2..={MAX_GROUP_MEMBERS} (got {})", g.max_members),
                "set a value in that range; the default is 10000",
            ));
        }
        ensure(g.max_joined > 0, "groups.max_joined", "must be > 0", "set a positive number")?;
        ensure(g.cache_entries > 0, "groups.cache_entries", "must be > 0", "set a positive number")?;
        self.web.check()?;
        ensure(
            self.storage.block_cache_mb > 0,
            "storage.block_cache_mb",
            "must be > 0 MiB",
            "set a positive size",
        )?;
        ensure(
            self.storage.write_buffer_mb > 0,
            "storage.write_buffer_mb",
            "must be > 0 MiB",
            "set a positive size",
        )?;
        ensure(
            self.storage.max_wal_mb >= self.storage.write_buffer_mb as u64
                && self.storage.max_wal_mb <= MAX_WAL_MB,
            "storage.max_wal_mb",
            "must be at least storage.write_buffer_mb and at most 1048576 (1 TiB)",
            "set it to a few times the write buffer (default 256); a smaller bound flushes the memtables before they fill",
        )?;
        ensure(
            self.storage.partitions <= missive_storage::layout::MAX_PARTITIONS,
            "storage.partitions",
            "must be at most 256",
            "set 0 (one per worker) or the number of workers",
        )?;
        if self.storage.dedup_retention_days > MAX_DEDUP_RETENTION_DAYS {
            return Err(ConfigError::new(
                "storage.dedup_retention_days",
                format!(
                    "must be at most {MAX_DEDUP_RETENTION_DAYS} (got {})",
                    self.storage.dedup_retention_days
                ),
                "set a number of days, or 0 to keep idempotency keys forever",
            ));
        }
        self.api.check()?;
        self.webhooks.check()?;
        self.filter.check()?;
        self.messages.check()?;
        self.translate.check()?;
        if let Some(t) = &self.admin.token
            && (t.len() < MIN_ADMIN_TOKEN_BYTES || !t.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(ConfigError::new(
                "admin.token",
                format!(
                    "must be at least {MIN_ADMIN_TOKEN_BYTES} printable ASCII bytes without spaces (got {} bytes)",
                    t.len()
                ),
                "set a long random token, e.g. `head -c 32 /dev/urandom | od -An -vtx1 | tr -d ' \\n'`, \
                 or remove admin.token to turn the admin API off",
            ));
        }
        Ok(())
    }

    /// The configuration as TOML, for `missive --check-config`: every key with
    /// its effective value, the secret replaced by its length, unset keys listed
    /// in a comment.
    pub fn effective_toml(&self) -> String {
        let mut shown = self.clone();
        shown.secret = format!("<redacted: {} bytes>", self.secret.len());
        if let Some(t) = &self.admin.token {
            shown.admin.token = Some(format!("<redacted: {} bytes>", t.len()));
        }
        if let Some(k) = &self.translate.api_key {
            shown.translate.api_key = Some(format!("<redacted: {} bytes>", k.len()));
        }
        for k in &mut shown.api.keys {
            k.key = format!("<redacted: {} bytes>", k.key.len());
        }
        let mut text = toml::to_string(&shown).unwrap_or_else(|e| format!("# cannot render: {e}\n"));
        let unset = self.unset_keys();
        if !unset.is_empty() {
            text.push_str(&format!("\n# unset (off): {}\n", unset.join(", ")));
        }
        text
    }

    /// Keys whose value is unset (`None`), dotted (`web.tls_cert`).
    fn unset_keys(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(v) = serde_json::to_value(self) {
            walk_keys(&v, "", &mut |key, value| {
                if value.is_null() {
                    out.push(key.to_owned());
                }
            });
        }
        out
    }
}

/// Calls `f(dotted_key, value)` for every leaf of a serialized configuration
/// (objects are sections, everything else is a key).
pub(crate) fn walk_keys(v: &serde_json::Value, prefix: &str, f: &mut impl FnMut(&str, &serde_json::Value)) {
    if let serde_json::Value::Object(map) = v {
        for (k, child) in map {
            let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
            if child.is_object() {
                walk_keys(child, &key, f);
            } else {
                f(&key, child);
            }
        }
    }
}

/// Shortest accepted secret, bytes (HMAC-SHA256 key).
pub const MIN_SECRET_BYTES: usize = 16;
/// Smallest accepted `limits.max_frame_size`: a group tip naming 100 members
/// (~14 KiB) and a profile must fit in one frame.
pub const MIN_FRAME_SIZE: u32 = 32 * 1024;
/// Smallest allowed `limits.max_hello_frame_size` (a Hello with a long token fits).
pub const MIN_HELLO_FRAME_SIZE: u32 = 512;
/// Largest accepted `limits.max_frame_size`.
pub const MAX_FRAME_SIZE: u32 = 64 * 1024 * 1024;
/// Room a frame keeps above the largest content (envelope, ids, seqs).
pub const FRAME_HEADROOM: usize = 1024;
const MAX_WORKERS: usize = 256;
const MAX_SESSIONS_PER_USER: usize = 1024;
const MAX_GROUP_MEMBERS: u32 = 100_000;

/// A configuration value that breaks a rule. Its `Display` is one line that
/// names the key, the rule and the fix (the broker prints it and exits 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The dotted key (`limits.max_frame_size`), a flag (`--tcp`) or a file.
    pub key: String,
    /// What the value must satisfy, with the value found when it is not secret.
    pub rule: String,
    /// How to fix it.
    pub fix: String,
}

impl ConfigError {
    /// A violation of `rule` by `key`, fixed by `fix`.
    pub fn new(key: impl Into<String>, rule: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { key: key.into(), rule: rule.into(), fix: fix.into() }
    }

    /// Turns a TOML parse error into one line: section.key, line and column,
    /// the parser's message.
    fn from_toml(text: &str, e: &toml::de::Error) -> Self {
        let message =
            e.message().lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
        let Some(span) = e.span() else {
            return Self::new("config file", message, "see docs/CONFIG.md for every key and its type");
        };
        let before = text.get(..span.start).unwrap_or(text);
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line = before.matches('\n').count() + 1;
        let column = before[line_start..].chars().count() + 1;
        // The key named is the key of the offending line (or the table header).
        let line_text = text[line_start..].lines().next().unwrap_or("");
        let line_key = line_text.split('=').next().unwrap_or("").trim();
        let section = before
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.starts_with('[') && l.ends_with(']'))
            .map(|l| l.trim_matches(['[', ']', ' ']).to_owned());
        let mut key = if line_text.trim_start().starts_with('[') || line_key.is_empty() {
            line_text.trim().to_owned()
        } else {
            line_key.to_owned()
        };
        if let Some(s) = section
            && !key.starts_with('[')
        {
            key = format!("{s}.{key}");
        }
        let fix = if message.contains("unknown field") {
            "remove the key or correct its spelling (docs/CONFIG.md lists every key by section)"
        } else {
            "give the key a value of the type docs/CONFIG.md names"
        };
        Self::new(format!("{key} (line {line}, column {column})"), message, fix)
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}; fix: {}", self.key, self.rule, self.fix)
    }
}

impl std::error::Error for ConfigError {}

/// `Err` naming `key` unless `ok`.
fn ensure(ok: bool, key: &str, rule: &str, fix: &str) -> Result<(), ConfigError> {
    if ok { Ok(()) } else { Err(ConfigError::new(key, rule, fix)) }
}

/// A page-size pair: `1 <= default <= max`.
fn page_rule(key: &str, default: u32, max_key: &str, max: u32) -> Result<(), ConfigError> {
    if default == 0 || default > max {
        return Err(ConfigError::new(
            key,
            format!("must be within 1..={max_key} (got {default}, {max_key} = {max})"),
            format!("set {key} between 1 and {max}, or raise {max_key}"),
        ));
    }
    Ok(())
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
    /// TLS certificate chain (PEM) for `tcp_tls`, `wss` and `quic`, re-read on
    /// SIGHUP; unset = generate a self-signed development certificate (valid
    /// 13 days) and print its SHA-256.
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); set together with `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Origins (`scheme://host[:port]`) whose pages may open WebSocket and
    /// WebTransport sessions; empty = any origin. Requests without `Origin`
    /// (not browsers) are always accepted.
    pub allowed_origins: Vec<String>,
    /// Public WebTransport URL reported by `/api/info` (e.g. behind a load
    /// balancer); unset = `https://HOST:QUIC_PORT/wt` with the host of the
    /// listener, or of the page's request when the listener is a wildcard.
    pub webtransport_url: Option<String>,
}

impl WebConfig {
    fn check(&self) -> Result<(), ConfigError> {
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            let missing = if self.tls_cert.is_some() { "web.tls_key" } else { "web.tls_cert" };
            return Err(ConfigError::new(
                missing,
                "web.tls_cert and web.tls_key must be set together",
                format!("set {missing} too, or unset both for a generated development certificate"),
            ));
        }
        for o in &self.allowed_origins {
            let rest = o.strip_prefix("https://").or_else(|| o.strip_prefix("http://"));
            let ok = rest.is_some_and(|r| {
                !r.is_empty()
                    && r.len() <= 255
                    && r.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
            });
            if !ok {
                return Err(ConfigError::new(
                    "web.allowed_origins",
                    format!(
                        "each entry must be an origin like https://chat.example.com[:port], without a path (got {o:?})"
                    ),
                    "write the scheme, host and optional port exactly as browsers send them in `Origin`",
                ));
            }
        }
        if let Some(u) = &self.webtransport_url
            && (!u.starts_with("https://") || u.len() > 2048 || u.chars().any(|c| c.is_control() || c == '"'))
        {
            return Err(ConfigError::new(
                "web.webtransport_url",
                "must be an https:// URL of at most 2048 bytes without control characters or quotes",
                "write it as https://HOST:PORT/wt, or unset it",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
