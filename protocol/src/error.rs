//! Stable protocol error codes.
//!
//! Invariants: numbers never change meaning within a major version; every code
//! here appears in the table of `spec/PROTOCOL.md` (a test in the tests crate
//! checks that). Ranges: 1xxx connection/framing, 2xxx authentication and
//! permission, 3xxx request validation, 5xxx server side.

/// A stable numeric error code as carried in `Error.code` and `Close.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ErrorCode {
    /// Frame payload is not a valid protobuf `Frame`, or is empty. Closes.
    MalformedFrame = 1000,
    /// Length prefix above the maximum frame size. Closes.
    FrameTooLarge = 1001,
    /// No common protocol version. Closes.
    UnsupportedVersion = 1002,
    /// A frame other than `Hello` before the handshake completed. Closes.
    HandshakeRequired = 1003,
    /// No `Hello` within the handshake timeout. Closes.
    HandshakeTimeout = 1004,
    /// A frame the client must not send (second `Hello`, a server-only kind,
    /// a frame with no known body). Closes.
    UnexpectedFrame = 1005,
    /// A `Request` whose operation is unknown to this server. Connection stays.
    UnknownRequest = 1006,
    /// No frame received within the idle timeout. Closes.
    IdleTimeout = 1007,
    /// The client did not read its pushes fast enough; its queue overflowed.
    /// Closes; reconnect and sync, nothing is lost.
    SlowConsumer = 1008,
    /// The server is shutting down. Closes; reconnect later.
    ServerShutdown = 1009,
    /// The server cannot accept more connections (e.g. open-file limit). Closes.
    TooManyConnections = 1010,
    /// Too many requests in flight on this connection; wait for responses.
    TooManyInFlight = 1011,
    /// The client sent frames that get no reply (`PushAck`, WebSocket Pong)
    /// faster than `limits.max_silent_frames_per_sec`. Closes.
    Flooding = 1012,

    /// Token malformed, forged (bad signature) or using an unsupported algorithm.
    TokenInvalid = 2000,
    /// Token expired.
    TokenExpired = 2001,
    /// Token restricted to another device id or platform.
    TokenDeviceMismatch = 2002,
    /// The authenticated user may not perform this request.
    PermissionDenied = 2003,
    /// The account is disabled.
    AccountDisabled = 2004,
    /// Another login replaced this session (multi-device policy). Closes.
    Kicked = 2005,
    /// Login refused: the account is not registered (and auto-registration is off). Closes.
    AccountNotFound = 2006,
    /// The token was issued at or before the user's token revocation. Closes.
    TokenRevoked = 2007,
    /// The user is muted by a moderator (global mute); the message says until when.
    UserMuted = 2008,

    /// A request field is missing or out of range; the message names it.
    InvalidArgument = 3000,
    /// Malformed conversation id.
    InvalidConvId = 3001,
    /// The user is not a participant of the conversation.
    NotParticipant = 3002,
    /// Message content above the configured maximum size.
    ContentTooLarge = 3003,
    /// Message content has no body, or a kind this server does not accept.
    UnsupportedContent = 3004,
    /// The sync token was not issued by this server for this user.
    InvalidSyncToken = 3005,
    /// The conversation kind is not served by this server version.
    UnsupportedConversation = 3006,
    /// Merged content nested deeper than the protocol allows (spec [M-5]).
    ContentTooDeep = 3007,
    /// A text matched a sensitive-word list whose action is `block` (spec [SW-4]).
    ContentBlocked = 3008,
    /// The app server's `before.send` webhook rejected the message; the
    /// message is `"<app code>: <app message>"` (spec "Webhooks" [WH-6]).
    RejectedByApp = 3009,
    /// The conversation kind does not accept this content kind, or the
    /// content is above its kind's size limit (spec [MF-5], [MF-6]).
    ContentKindNotAllowed = 3010,

    /// The target user is not registered.
    UserNotFound = 4000,
    /// The account is already registered.
    AccountExists = 4001,
    /// The users are already friends both ways.
    AlreadyFriends = 4002,
    /// The target is not in the caller's friend list.
    NotFriends = 4003,
    /// The caller's friend list is full.
    FriendLimit = 4004,
    /// The other user's friend list is full.
    PeerFriendLimit = 4005,
    /// There is no pending friend request from that user.
    NoPendingRequest = 4006,
    /// The target refuses every friend request.
    FriendRequestsDenied = 4007,
    /// The target blacklisted the caller: messages and requests are refused.
    BlockedByUser = 4008,
    /// The caller blacklisted the target; remove them from the blacklist first.
    InYourBlacklist = 4009,
    /// The caller's blacklist is full.
    BlacklistLimit = 4010,
    /// The caller's presence subscription list is full.
    SubscriptionLimit = 4011,
    /// The request names the caller where another user is required.
    SelfTarget = 4012,

    /// The group does not exist (or was dismissed).
    GroupNotFound = 4100,
    /// A group with this id already exists.
    GroupExists = 4101,
    /// The caller (or the named user) is not a member of the group.
    NotGroupMember = 4102,
    /// The user is already a member of the group.
    AlreadyGroupMember = 4103,
    /// The caller's group role does not allow this operation.
    GroupPermissionDenied = 4104,
    /// The group has reached its member limit.
    GroupFull = 4105,
    /// A user would exceed the joined-group limit.
    JoinedGroupLimit = 4106,
    /// The group's join mode refuses this join or invitation.
    JoinDenied = 4107,
    /// There is no pending application from that user.
    NoPendingApplication = 4108,
    /// The owner must transfer the group (or dismiss it) before quitting.
    OwnerCannotQuit = 4109,
    /// The sender is muted in this group.
    MemberMuted = 4110,
    /// The whole group is muted: only the owner and admins may send.
    GroupMuted = 4111,
    /// Group read receipts are not kept for groups this large.
    ReceiptGroupTooLarge = 4112,

    /// No message at that seq that the caller may see (spec section 18).
    MessageNotFound = 4200,
    /// The recall or edit window of the message has passed.
    TimeLimitExceeded = 4201,
    /// The message was recalled or deleted for everyone.
    MessageRecalled = 4202,
    /// Editing is off for this conversation kind, or the content kind is not editable.
    EditNotAllowed = 4203,
    /// A reaction limit (keys per message, reactions per user) would be exceeded.
    ReactionLimit = 4204,
    /// An extension limit (keys, key or value size) would be exceeded.
    ExtensionLimit = 4205,
    /// `SetExtensions.if_version` is not the message's extension version.
    ExtensionConflict = 4206,
    /// Only the message's sender may do this.
    NotMessageSender = 4207,
    /// No translation provider is configured.
    TranslationDisabled = 4208,

    /// Unexpected server error.
    Internal = 5000,
    /// The storage engine failed; nothing was stored.
    Storage = 5001,
    /// The server is overloaded; retry with backoff.
    Overloaded = 5002,
    /// Rate limit exceeded; retry later.
    RateLimited = 5003,
    /// The app server's `before.send` webhook timed out or failed and the
    /// server is configured fail-closed; retry later.
    WebhookFailed = 5004,
    /// The translation provider failed or timed out.
    TranslationFailed = 5005,
}

impl ErrorCode {
    /// Every defined code, in numeric order.
    pub const ALL: &'static [ErrorCode] = &[
        Self::MalformedFrame,
        Self::FrameTooLarge,
        Self::UnsupportedVersion,
        Self::HandshakeRequired,
        Self::HandshakeTimeout,
        Self::UnexpectedFrame,
        Self::UnknownRequest,
        Self::IdleTimeout,
        Self::SlowConsumer,
        Self::ServerShutdown,
        Self::TooManyConnections,
        Self::TooManyInFlight,
        Self::Flooding,
        Self::TokenInvalid,
        Self::TokenExpired,
        Self::TokenDeviceMismatch,
        Self::PermissionDenied,
        Self::AccountDisabled,
        Self::Kicked,
        Self::AccountNotFound,
        Self::TokenRevoked,
        Self::UserMuted,
        Self::InvalidArgument,
        Self::InvalidConvId,
        Self::NotParticipant,
        Self::ContentTooLarge,
        Self::UnsupportedContent,
        Self::InvalidSyncToken,
        Self::UnsupportedConversation,
        Self::ContentTooDeep,
        Self::ContentBlocked,
        Self::RejectedByApp,
        Self::ContentKindNotAllowed,
        Self::UserNotFound,
        Self::AccountExists,
        Self::AlreadyFriends,
        Self::NotFriends,
        Self::FriendLimit,
        Self::PeerFriendLimit,
        Self::NoPendingRequest,
        Self::FriendRequestsDenied,
        Self::BlockedByUser,
        Self::InYourBlacklist,
        Self::BlacklistLimit,
        Self::SubscriptionLimit,
        Self::SelfTarget,
        Self::GroupNotFound,
        Self::GroupExists,
        Self::NotGroupMember,
        Self::AlreadyGroupMember,
        Self::GroupPermissionDenied,
        Self::GroupFull,
        Self::JoinedGroupLimit,
        Self::JoinDenied,
        Self::NoPendingApplication,
        Self::OwnerCannotQuit,
        Self::MemberMuted,
        Self::GroupMuted,
        Self::ReceiptGroupTooLarge,
        Self::MessageNotFound,
        Self::TimeLimitExceeded,
        Self::MessageRecalled,
        Self::EditNotAllowed,
        Self::ReactionLimit,
        Self::ExtensionLimit,
        Self::ExtensionConflict,
        Self::NotMessageSender,
        Self::TranslationDisabled,
        Self::Internal,
        Self::Storage,
        Self::Overloaded,
        Self::RateLimited,
        Self::WebhookFailed,
        Self::TranslationFailed,
    ];

    /// The numeric wire value.
    pub fn as_u32(self) -> u32 {
        self as u32
    }

    /// Parses a wire value; `None` for codes this version does not know.
    pub fn from_u32(code: u32) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_u32() == code)
    }

    /// Upper-snake name used in the spec table.
    pub fn name(self) -> &'static str {
        match self {
            Self::MalformedFrame => "MALFORMED_FRAME",
            Self::FrameTooLarge => "FRAME_TOO_LARGE",
            Self::UnsupportedVersion => "UNSUPPORTED_VERSION",
            Self::HandshakeRequired => "HANDSHAKE_REQUIRED",
            Self::HandshakeTimeout => "HANDSHAKE_TIMEOUT",
            Self::UnexpectedFrame => "UNEXPECTED_FRAME",
            Self::UnknownRequest => "UNKNOWN_REQUEST",
            Self::IdleTimeout => "IDLE_TIMEOUT",
            Self::SlowConsumer => "SLOW_CONSUMER",
            Self::ServerShutdown => "SERVER_SHUTDOWN",
            Self::TooManyConnections => "TOO_MANY_CONNECTIONS",
            Self::TooManyInFlight => "TOO_MANY_IN_FLIGHT",
            Self::Flooding => "FLOODING",
            Self::TokenInvalid => "TOKEN_INVALID",
            Self::TokenExpired => "TOKEN_EXPIRED",
            Self::TokenDeviceMismatch => "TOKEN_DEVICE_MISMATCH",
            Self::PermissionDenied => "PERMISSION_DENIED",
            Self::AccountDisabled => "ACCOUNT_DISABLED",
            Self::Kicked => "KICKED",
            Self::AccountNotFound => "ACCOUNT_NOT_FOUND",
            Self::TokenRevoked => "TOKEN_REVOKED",
            Self::UserMuted => "USER_MUTED",
            Self::InvalidArgument => "INVALID_ARGUMENT",
            Self::InvalidConvId => "INVALID_CONV_ID",
            Self::NotParticipant => "NOT_PARTICIPANT",
            Self::ContentTooLarge => "CONTENT_TOO_LARGE",
            Self::UnsupportedContent => "UNSUPPORTED_CONTENT",
            Self::InvalidSyncToken => "INVALID_SYNC_TOKEN",
            Self::UnsupportedConversation => "UNSUPPORTED_CONVERSATION",
            Self::ContentTooDeep => "CONTENT_TOO_DEEP",
            Self::ContentBlocked => "CONTENT_BLOCKED",
            Self::RejectedByApp => "REJECTED_BY_APP",
            Self::ContentKindNotAllowed => "CONTENT_KIND_NOT_ALLOWED",
            Self::UserNotFound => "USER_NOT_FOUND",
            Self::AccountExists => "ACCOUNT_EXISTS",
            Self::AlreadyFriends => "ALREADY_FRIENDS",
            Self::NotFriends => "NOT_FRIENDS",
            Self::FriendLimit => "FRIEND_LIMIT",
            Self::PeerFriendLimit => "PEER_FRIEND_LIMIT",
            Self::NoPendingRequest => "NO_PENDING_REQUEST",
            Self::FriendRequestsDenied => "FRIEND_REQUESTS_DENIED",
            Self::BlockedByUser => "BLOCKED_BY_USER",
            Self::InYourBlacklist => "IN_YOUR_BLACKLIST",
            Self::BlacklistLimit => "BLACKLIST_LIMIT",
            Self::SubscriptionLimit => "SUBSCRIPTION_LIMIT",
            Self::SelfTarget => "SELF_TARGET",
            Self::GroupNotFound => "GROUP_NOT_FOUND",
            Self::GroupExists => "GROUP_EXISTS",
            Self::NotGroupMember => "NOT_GROUP_MEMBER",
            Self::AlreadyGroupMember => "ALREADY_GROUP_MEMBER",
            Self::GroupPermissionDenied => "GROUP_PERMISSION_DENIED",
            Self::GroupFull => "GROUP_FULL",
            Self::JoinedGroupLimit => "JOINED_GROUP_LIMIT",
            Self::JoinDenied => "JOIN_DENIED",
            Self::NoPendingApplication => "NO_PENDING_APPLICATION",
            Self::OwnerCannotQuit => "OWNER_CANNOT_QUIT",
            Self::MemberMuted => "MEMBER_MUTED",
            Self::GroupMuted => "GROUP_MUTED",
            Self::ReceiptGroupTooLarge => "RECEIPT_GROUP_TOO_LARGE",
            Self::MessageNotFound => "MESSAGE_NOT_FOUND",
            Self::TimeLimitExceeded => "TIME_LIMIT_EXCEEDED",
            Self::MessageRecalled => "MESSAGE_RECALLED",
            Self::EditNotAllowed => "EDIT_NOT_ALLOWED",
            Self::ReactionLimit => "REACTION_LIMIT",
            Self::ExtensionLimit => "EXTENSION_LIMIT",
            Self::ExtensionConflict => "EXTENSION_CONFLICT",
            Self::NotMessageSender => "NOT_MESSAGE_SENDER",
            Self::TranslationDisabled => "TRANSLATION_DISABLED",
            Self::Internal => "INTERNAL",
            Self::Storage => "STORAGE",
            Self::Overloaded => "OVERLOADED",
            Self::RateLimited => "RATE_LIMITED",
            Self::WebhookFailed => "WEBHOOK_FAILED",
            Self::TranslationFailed => "TRANSLATION_FAILED",
        }
    }

    /// Whether the same request (or a reconnect) may succeed later unchanged.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            Self::HandshakeTimeout
                | Self::IdleTimeout
                | Self::SlowConsumer
                | Self::ServerShutdown
                | Self::TooManyConnections
                | Self::TooManyInFlight
                | Self::Internal
                | Self::Storage
                | Self::Overloaded
                | Self::RateLimited
                | Self::WebhookFailed
                | Self::TranslationFailed
        )
    }

    /// Whether the server closes the connection after reporting this code.
    pub fn closes_connection(self) -> bool {
        matches!(
            self,
            Self::MalformedFrame
                | Self::FrameTooLarge
                | Self::UnsupportedVersion
                | Self::HandshakeRequired
                | Self::HandshakeTimeout
                | Self::UnexpectedFrame
                | Self::IdleTimeout
                | Self::SlowConsumer
                | Self::ServerShutdown
                | Self::TooManyConnections
                | Self::Flooding
                | Self::TokenInvalid
                | Self::TokenExpired
                | Self::TokenDeviceMismatch
                | Self::AccountDisabled
                | Self::Kicked
                | Self::AccountNotFound
                | Self::TokenRevoked
        )
    }

    /// Builds the wire `Error` with the given human-readable message.
    pub fn with_message(self, message: impl Into<String>) -> crate::pb::Error {
        crate::pb::Error {
            code: self.as_u32(),
            message: message.into(),
            retryable: self.retryable(),
            retry_after_ms: 0,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name(), self.as_u32())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for &c in ErrorCode::ALL {
            assert!(seen.insert(c.as_u32()), "duplicate {c}");
            assert_eq!(ErrorCode::from_u32(c.as_u32()), Some(c));
        }
        assert_eq!(ErrorCode::from_u32(4242), None);
    }
}
