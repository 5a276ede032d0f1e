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
    /// When it was stored, if not `server_time_ms` (an admin import keeps
    /// the message's original time; retention counts from this; 0 = same).
    #[prost(uint64, tag = "4")]
    pub stored_ms: u64,
}

impl DedupRecord {
    /// The time retention counts from.
    pub fn stamped_ms(&self) -> u64 {
        if self.stored_ms > 0 { self.stored_ms } else { self.server_time_ms }
    }
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
    /// Groups: highest seq of a message mentioning this user (0 = none).
    #[prost(uint64, tag = "8")]
    pub mention_seq: u64,
    /// Groups: max seq when the conversation was hidden (a later message un-hides it).
    #[prost(uint64, tag = "9")]
    pub hidden_seq: u64,
}

/// `feed` value: what changed at that version.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FeedRecord {
    /// The conversation that changed. When empty: `relation_peer`, else
    /// `profile_user`, else (all empty) the user's settings.
    #[prost(string, tag = "1")]
    pub conv_id: String,
    /// The user's relation with this peer changed.
    #[prost(string, tag = "2")]
    pub relation_peer: String,
    /// This user's profile (the owner's own, or a friend's) changed.
    #[prost(string, tag = "3")]
    pub profile_user: String,
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

/// `user` account record: registration and access state.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AccountRecord {
    /// Registration time (unix ms).
    #[prost(uint64, tag = "1")]
    pub created_ms: u64,
    /// Logins and sessions refused.
    #[prost(bool, tag = "2")]
    pub disabled: bool,
    /// Reason given when it was disabled.
    #[prost(string, tag = "3")]
    pub disabled_reason: String,
    /// Tokens with `iat` <= this (unix seconds) are refused (0 = none).
    /// Superseded by `revoked_at_ms`; still written, and read when that is 0
    /// (records from before it existed).
    #[prost(uint64, tag = "4")]
    pub revoked_through_s: u64,
    /// Tokens issued at or before this instant (unix ms) are refused (0 = none).
    #[prost(uint64, tag = "5")]
    pub revoked_at_ms: u64,
}

impl AccountRecord {
    /// Whether a token issued at `issued_at_ms` (its `iat`, in ms) is revoked.
    pub fn revoked(&self, issued_at_ms: u64) -> bool {
        let cut = if self.revoked_at_ms != 0 {
            self.revoked_at_ms
        } else if self.revoked_through_s != 0 {
            self.revoked_through_s.saturating_mul(1000).saturating_add(999)
        } else {
            return false;
        };
        issued_at_ms <= cut
    }
}

/// `user` profile record (the wire `Profile` without the user id).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProfileRecord {
    #[prost(string, tag = "1")]
    pub nickname: String,
    #[prost(string, tag = "2")]
    pub avatar_url: String,
    /// Wire `Gender` value.
    #[prost(int32, tag = "3")]
    pub gender: i32,
    #[prost(string, tag = "4")]
    pub birthday: String,
    #[prost(string, tag = "5")]
    pub signature: String,
    #[prost(btree_map = "string, string", tag = "6")]
    pub ex: std::collections::BTreeMap<String, String>,
    /// Wire `FriendVerification` value.
    #[prost(int32, tag = "7")]
    pub friend_verification: i32,
    /// Last change (unix ms).
    #[prost(uint64, tag = "8")]
    pub updated_ms: u64,
    /// Version of the profile's live entry in the owner's own feed (0 = none).
    #[prost(uint64, tag = "9")]
    pub feed_version: u64,
}

/// `user` presence status record.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusRecord {
    /// Custom status text ("" = none).
    #[prost(string, tag = "1")]
    pub text: String,
    /// When it was set (unix ms).
    #[prost(uint64, tag = "2")]
    pub changed_ms: u64,
}

/// `rel` friend record: the owner lists the peer as a friend.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FriendRecord {
    #[prost(uint64, tag = "1")]
    pub since_ms: u64,
    /// The owner's alias for the peer.
    #[prost(string, tag = "2")]
    pub remark: String,
    #[prost(btree_map = "string, string", tag = "3")]
    pub ex: std::collections::BTreeMap<String, String>,
}

/// `rel` block record: the owner blacklisted the peer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BlockRecord {
    #[prost(uint64, tag = "1")]
    pub since_ms: u64,
}

/// `rel` friend request record (incoming from, or outgoing to, the peer).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RequestRecord {
    #[prost(string, tag = "1")]
    pub message: String,
    /// Wire `RequestState` value.
    #[prost(int32, tag = "2")]
    pub state: i32,
    #[prost(uint64, tag = "3")]
    pub created_ms: u64,
    #[prost(uint64, tag = "4")]
    pub handled_ms: u64,
    /// The requester's remark for the target, applied when the request is accepted.
    #[prost(string, tag = "5")]
    pub remark: String,
    /// The requester's custom fields for the target, applied when accepted.
    #[prost(btree_map = "string, string", tag = "6")]
    pub ex: std::collections::BTreeMap<String, String>,
}

/// Pointer to a live feed entry (relation or friend-profile entries).
#[derive(Clone, PartialEq, prost::Message)]
pub struct VersionRecord {
    #[prost(uint64, tag = "1")]
    pub feed_version: u64,
}

/// `group` info record: a group's info, settings and counters.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GroupRecord {
    /// Wire `GroupType` value.
    #[prost(int32, tag = "1")]
    pub group_type: i32,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub avatar_url: String,
    #[prost(string, tag = "4")]
    pub introduction: String,
    #[prost(string, tag = "5")]
    pub notice: String,
    #[prost(btree_map = "string, string", tag = "6")]
    pub ex: std::collections::BTreeMap<String, String>,
    /// Wire `JoinMode` value (never unspecified once stored).
    #[prost(int32, tag = "7")]
    pub join_mode: i32,
    /// Wire `InviteMode` value.
    #[prost(int32, tag = "8")]
    pub invite_mode: i32,
    #[prost(bool, tag = "9")]
    pub invitee_consent: bool,
    /// Wire `EditMode` value.
    #[prost(int32, tag = "10")]
    pub edit_mode: i32,
    /// Wire `HistoryVisibility` value.
    #[prost(int32, tag = "11")]
    pub history_visibility: i32,
    #[prost(string, tag = "12")]
    pub owner: String,
    #[prost(uint32, tag = "13")]
    pub max_members: u32,
    #[prost(bool, tag = "14")]
    pub mute_all: bool,
    #[prost(uint64, tag = "15")]
    pub created_ms: u64,
    #[prost(uint64, tag = "16")]
    pub updated_ms: u64,
    #[prost(bool, tag = "17")]
    pub dismissed: bool,
    /// Highest seq of an @all message (0 = none).
    #[prost(uint64, tag = "18")]
    pub all_mention_seq: u64,
    /// Current members.
    #[prost(uint32, tag = "19")]
    pub member_count: u32,
}

/// `group` member record: one current member.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GroupMemberRecord {
    /// Wire `GroupRole` value.
    #[prost(int32, tag = "1")]
    pub role: i32,
    #[prost(uint64, tag = "2")]
    pub join_ms: u64,
    /// Seq of the tip that recorded the join.
    #[prost(uint64, tag = "3")]
    pub join_seq: u64,
    #[prost(string, tag = "4")]
    pub nickname: String,
    #[prost(uint64, tag = "5")]
    pub mute_until_ms: u64,
    /// Wire `GroupNotify` value.
    #[prost(int32, tag = "6")]
    pub notify: i32,
}

/// `group` departed-member record: a former member's readable window.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GroupDepartedRecord {
    #[prost(uint64, tag = "1")]
    pub join_seq: u64,
    /// Seq of the tip that recorded the departure: the last readable seq.
    #[prost(uint64, tag = "2")]
    pub leave_seq: u64,
    #[prost(uint64, tag = "3")]
    pub left_ms: u64,
}

/// `group` application record (or invitation waiting for consent).
#[derive(Clone, PartialEq, prost::Message)]
pub struct GroupApplicationRecord {
    #[prost(string, tag = "1")]
    pub reason: String,
    /// "" for an application; the inviting member for an invitation.
    #[prost(string, tag = "2")]
    pub inviter: String,
    /// Wire `ApplicationState` value.
    #[prost(int32, tag = "3")]
    pub state: i32,
    #[prost(uint64, tag = "4")]
    pub created_ms: u64,
    #[prost(uint64, tag = "5")]
    pub handled_ms: u64,
    #[prost(string, tag = "6")]
    pub handled_by: String,
}

/// `life` `'u'` value: one entry of a conversation's update index ([UP-1]).
#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdateRecord {
    /// The message that changed.
    #[prost(uint64, tag = "1")]
    pub seq: u64,
    /// Set for a deletion visible only to this user ([UP-5]); empty = everyone.
    #[prost(string, tag = "2")]
    pub user: String,
}

/// `life` `'x'` value: what a message carries besides its log row —
/// reaction summaries and the extension map (spec 18.4, 18.5).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExtrasRecord {
    /// The message's latest update seq through this record (0 = none).
    #[prost(uint64, tag = "1")]
    pub update_seq: u64,
    /// Reaction summaries, ascending key; `me` is never stored.
    #[prost(message, repeated, tag = "2")]
    pub reactions: Vec<missive_protocol::pb::ReactionSummary>,
    /// The extension map.
    #[prost(btree_map = "string, message", tag = "3")]
    pub extensions: std::collections::BTreeMap<String, missive_protocol::pb::ExtensionValue>,
    /// Extension version: +1 per accepted `SetExtensions`.
    #[prost(uint64, tag = "4")]
    pub ext_version: u64,
}

/// `life` `'p'` value: the reaction keys one user has on one message, in
/// the order they were added.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UserReactionsRecord {
    /// Keys.
    #[prost(string, repeated, tag = "1")]
    pub keys: Vec<String>,
}
