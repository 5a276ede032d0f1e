//! Value encodings: small prost messages (derived, no .proto), so records can
//! gain fields later without a migration. Message values in `msg` are the
//! wire `missive.v1.Message` bytes, stored as given by the broker.

/// `dedup` value: the ack of the first send with this idempotency key.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DedupRecord {
    /// Seq the message got.
    #[prost(uint64, tag = "1")]
    pub seq: u64,
    /// Server message id it got.
    #[prost(uint64, tag = "2")]
    pub server_msg_id: u64,
    /// Server time it got (unix ms).
    #[prost(uint64, tag = "3")]
    pub server_time_ms: u64,
}

/// `uconv` value: one user's state in one conversation.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UserConvRecord {
    /// Everything <= read_seq is read.
    #[prost(uint64, tag = "1")]
    pub read_seq: u64,
    /// History <= cleared_seq is hidden for this user.
    #[prost(uint64, tag = "2")]
    pub cleared_seq: u64,
    /// Pinned to the top of the list.
    #[prost(bool, tag = "3")]
    pub pinned: bool,
    /// Do-not-disturb for this conversation.
    #[prost(bool, tag = "4")]
    pub muted: bool,
    /// Removed from the list until the next message.
    #[prost(bool, tag = "5")]
    pub hidden: bool,
    /// Version of this conversation's live entry in the user's feed (0 = none).
    #[prost(uint64, tag = "6")]
    pub feed_version: u64,
    /// When it was pinned (unix ms), for ordering.
    #[prost(uint64, tag = "7")]
    pub pin_time_ms: u64,
}

/// `feed` value: what changed at that version.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FeedRecord {
    /// The conversation that changed; empty for a settings change.
    #[prost(string, tag = "1")]
    pub conv_id: String,
}

/// `user` settings value.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SettingsRecord {
    /// Global do-not-disturb.
    #[prost(bool, tag = "1")]
    pub global_dnd: bool,
    /// Version of the settings' live entry in the user's feed (0 = none).
    #[prost(uint64, tag = "2")]
    pub feed_version: u64,
}

/// `user` per-device value.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeviceRecord {
    /// The last sync token the server issued to this device.
    #[prost(string, tag = "1")]
    pub sync_token: String,
    /// Platform (wire enum value) of the last login.
    #[prost(int32, tag = "2")]
    pub platform: i32,
    /// Last login time (unix ms).
    #[prost(uint64, tag = "3")]
    pub last_login_ms: u64,
}
