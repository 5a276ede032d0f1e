//! Configuration of the message lifecycle (spec section 18): `[messages]`
//! (recall, edit, reactions, extensions, typing, delivery receipts, send
//! flags, per-kind limits) and `[translate]` (the translation provider).
//! Same rules as the rest of `config`: every key has a default, is
//! documented in `docs/CONFIG.md` and checked by [`super::Config::check`].

use serde::{Deserialize, Serialize};

use super::{ConfigError, ensure};

/// The content kinds a client may send, by their `Content.body` field name.
pub const CLIENT_KINDS: [&str; 8] =
    ["text", "image", "voice", "video", "file", "location", "custom", "merged"];

/// `[messages]`: the message lifecycle.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MessagesConfig {
    /// How long a sender may recall its own message, seconds (0 = no limit).
    pub recall_window_secs: u64,
    /// How long a sender may edit its own message, seconds (0 = no limit).
    pub edit_window_secs: u64,
    /// Editing in one-to-one conversations.
    pub edit_direct: bool,
    /// Editing in group conversations.
    pub edit_group: bool,
    /// Distinct reaction keys on one message.
    pub max_reaction_keys: u32,
    /// Keys one user may have on one message.
    pub max_reactions_per_user: u32,
    /// Users listed in a reaction summary (the first who reacted).
    pub reaction_summary_users: u32,
    /// Keys in one message's extension map.
    pub max_extension_keys: u32,
    /// Longest extension key, bytes.
    pub max_extension_key_bytes: u32,
    /// Longest extension value, bytes.
    pub max_extension_value_bytes: u32,
    /// Largest group whose members get typing indicators.
    pub typing_max_members: u32,
    /// Typing requests per second per connection (burst 2x); beyond, dropped silently.
    pub typing_per_sec: u32,
    /// Delivery receipts in one-to-one conversations (from `PushAck`).
    pub delivery_receipts: bool,
    /// Largest encoded text content, bytes (also bounded by `limits.max_content_bytes`).
    pub max_text_bytes: u32,
    /// Largest encoded custom content, bytes.
    pub max_custom_bytes: u32,
    /// Largest encoded merged content, bytes.
    pub max_merged_bytes: u32,
    /// Content kinds clients may send in one-to-one conversations (empty = all).
    pub allowed_kinds_direct: Vec<String>,
    /// Content kinds clients may send in groups (empty = all).
    pub allowed_kinds_group: Vec<String>,
    /// Recent uncounted seqs (no_unread messages, recalled messages, recall
    /// tips) remembered per conversation for unread counts.
    pub uncounted_max: u32,
}

impl Default for MessagesConfig {
    fn default() -> Self {
        Self {
            recall_window_secs: 120,
            edit_window_secs: 86_400,
            edit_direct: false,
            edit_group: false,
            max_reaction_keys: 20,
            max_reactions_per_user: 10,
            reaction_summary_users: 10,
            max_extension_keys: 100,
            max_extension_key_bytes: 32,
            max_extension_value_bytes: 4096,
            typing_max_members: 100,
            typing_per_sec: 2,
            delivery_receipts: true,
            max_text_bytes: 16_384,
            max_custom_bytes: 65_536,
            max_merged_bytes: 65_536,
            allowed_kinds_direct: Vec::new(),
            allowed_kinds_group: Vec::new(),
            uncounted_max: 256,
        }
    }
}

impl MessagesConfig {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        ensure(
            (1..=256).contains(&self.max_reaction_keys),
            "messages.max_reaction_keys",
            "must be within 1..=256",
            "set how many distinct reaction keys one message may carry",
        )?;
        ensure(
            (1..=self.max_reaction_keys).contains(&self.max_reactions_per_user),
            "messages.max_reactions_per_user",
            "must be within 1..=messages.max_reaction_keys",
            "lower it, or raise messages.max_reaction_keys",
        )?;
        ensure(
            (1..=100).contains(&self.reaction_summary_users),
            "messages.reaction_summary_users",
            "must be within 1..=100",
            "set how many users a reaction summary lists",
        )?;
        ensure(
            (1..=1000).contains(&self.max_extension_keys),
            "messages.max_extension_keys",
            "must be within 1..=1000",
            "set how many keys one message's extension map may hold",
        )?;
        ensure(
            (1..=256).contains(&self.max_extension_key_bytes),
            "messages.max_extension_key_bytes",
            "must be within 1..=256",
            "set the longest extension key in bytes",
        )?;
        ensure(
            (1..=65_536).contains(&self.max_extension_value_bytes),
            "messages.max_extension_value_bytes",
            "must be within 1..=65536",
            "set the longest extension value in bytes",
        )?;
        ensure(
            (2..=10_000).contains(&self.typing_max_members),
            "messages.typing_max_members",
            "must be within 2..=10000",
            "set the largest group whose members see typing indicators",
        )?;
        ensure(
            (1..=100).contains(&self.typing_per_sec),
            "messages.typing_per_sec",
            "must be within 1..=100",
            "set typing requests per second per connection",
        )?;
        for (key, v) in [
            ("messages.max_text_bytes", self.max_text_bytes),
            ("messages.max_custom_bytes", self.max_custom_bytes),
            ("messages.max_merged_bytes", self.max_merged_bytes),
        ] {
            ensure(v >= 16, key, "must be at least 16 bytes", "raise it")?;
        }
        for (key, kinds) in [
            ("messages.allowed_kinds_direct", &self.allowed_kinds_direct),
            ("messages.allowed_kinds_group", &self.allowed_kinds_group),
        ] {
            ensure(
                kinds.iter().all(|k| CLIENT_KINDS.contains(&k.as_str())),
                key,
                "must list only text, image, voice, video, file, location, custom, merged",
                "remove the unknown kind (empty = every kind)",
            )?;
        }
        ensure(
            (1..=4096).contains(&self.uncounted_max),
            "messages.uncounted_max",
            "must be within 1..=4096",
            "set how many recent uncounted seqs a conversation remembers",
        )?;
        Ok(())
    }
}

/// `[translate]`: the translation provider (spec 18.10).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TranslateConfig {
    /// The provider's HTTP endpoint (`http://` or `https://`); unset = translation off.
    pub url: Option<String>,
    /// Sent as `Authorization: Bearer <api_key>` when set.
    pub api_key: Option<String>,
    /// One provider request, milliseconds.
    pub timeout_ms: u64,
    /// Provider requests in flight at once.
    pub max_concurrency: usize,
}

impl Default for TranslateConfig {
    fn default() -> Self {
        Self { url: None, api_key: None, timeout_ms: 5000, max_concurrency: 16 }
    }
}

impl TranslateConfig {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if let Some(u) = &self.url {
            ensure(
                (u.starts_with("http://") || u.starts_with("https://")) && u.len() <= 2048,
                "translate.url",
                "must be an http:// or https:// URL of at most 2048 bytes",
                "set the provider's endpoint, or remove the key to turn translation off",
            )?;
        }
        ensure(
            (10..=60_000).contains(&self.timeout_ms),
            "translate.timeout_ms",
            "must be within 10..=60000",
            "set the provider timeout in milliseconds",
        )?;
        ensure(
            (1..=1024).contains(&self.max_concurrency),
            "translate.max_concurrency",
            "must be within 1..=1024",
            "set how many provider requests may run at once",
        )?;
        Ok(())
    }
}
