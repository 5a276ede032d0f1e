//! Domain identifiers shared by the broker, storage, SDKs and tools.
//!
//! Invariants: a constructed id is always valid (validated once, at the
//! boundary); ids never contain `:` inside a component, control characters or
//! the NUL byte, so storage can use `0x00` as a key separator and `:` splits
//! conversation ids unambiguously.

use std::fmt;

/// Maximum length in bytes of a user, device, group or channel id.
pub const MAX_ID_LEN: usize = 64;
/// Maximum length in bytes of a client message id.
pub const MAX_CLIENT_MSG_ID_LEN: usize = 64;

/// Why an identifier was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Empty identifier.
    #[error("{what} is empty")]
    Empty {
        /// Which identifier.
        what: &'static str,
    },
    /// Longer than allowed.
    #[error("{what} is longer than {max} bytes")]
    TooLong {
        /// Which identifier.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// Contains a character outside the allowed set.
    #[error("{what} contains a character outside [A-Za-z0-9_.@-]")]
    BadChar {
        /// Which identifier.
        what: &'static str,
    },
    /// A conversation id that does not follow `p:`, `g:`, `r:`, `c:` or `b:` rules.
    #[error("malformed conversation id: {0}")]
    BadConv(&'static str),
}

fn check_name(what: &'static str, s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty { what });
    }
    if s.len() > MAX_ID_LEN {
        return Err(IdError::TooLong { what, max: MAX_ID_LEN });
    }
    if !s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'@' | b'-')) {
        return Err(IdError::BadChar { what });
    }
    Ok(())
}

macro_rules! name_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps `s`: 1..=64 bytes of `[A-Za-z0-9_.@-]`.
            pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                check_name($what, &s)?;
                Ok(Self(s))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

name_id!(
    /// A user id, chosen by the application.
    UserId,
    "user id"
);
name_id!(
    /// A device (installation) id, chosen by the client.
    DeviceId,
    "device id"
);
name_id!(
    /// A group id, chosen by the group's creator: the part after `g:` of the
    /// group's conversation id ([`GroupId::conv`], [`ConvId::group_id`]).
    GroupId,
    "group id"
);

impl GroupId {
    /// The group's conversation id, `g:{group}`.
    pub fn conv(&self) -> ConvId {
        // A valid group id is a valid `g:` conversation id: `ConvId::parse`
        // checks the part after `g:` with the same rule as `GroupId::new`.
        ConvId(format!("g:{}", self.0))
    }
}

/// A client-chosen message id: the idempotency key of a send.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientMsgId(String);

impl ClientMsgId {
    /// 1..=64 bytes of printable characters (no control characters, no NUL).
    pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
        let s = s.into();
        let what = "client_msg_id";
        if s.is_empty() {
            return Err(IdError::Empty { what });
        }
        if s.len() > MAX_CLIENT_MSG_ID_LEN {
            return Err(IdError::TooLong { what, max: MAX_CLIENT_MSG_ID_LEN });
        }
        if s.chars().any(char::is_control) {
            return Err(IdError::BadChar { what });
        }
        Ok(Self(s))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Per-conversation sequence number; the first message has seq 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Seq(pub u64);

impl Seq {
    /// The seq after this one.
    pub fn next(self) -> Seq {
        Seq(self.0 + 1)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The kind of a conversation, from its id prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConvKind {
    /// `p:{a}:{b}` — one-to-one between users a < b.
    Direct,
    /// `g:{group}` — a group.
    Group,
    /// `r:{room}` — a chat room.
    Room,
    /// `c:{group}:{channel}` — a channel of an ultra group.
    Channel,
    /// `b:{name}` — a system broadcast conversation every user reads (read
    /// diffusion: stored once; only the admin API appends). The broker serves
    /// one: [`BROADCAST_ALL`].
    Broadcast,
}

/// The broadcast conversation every user syncs (`POST /v1/messages/broadcast`).
pub const BROADCAST_ALL: &str = "b:all";

/// A validated conversation id (see `spec/PROTOCOL.md` "Conversation ids").
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConvId(String);

impl ConvId {
    /// Parses and validates a conversation id.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let (prefix, rest) = s.split_once(':').ok_or(IdError::BadConv("missing kind prefix"))?;
        match prefix {
            "p" => {
                let (a, b) = rest.split_once(':').ok_or(IdError::BadConv("p: needs two user ids"))?;
                check_name("user id", a)?;
                check_name("user id", b)?;
                if a >= b {
                    return Err(IdError::BadConv("p: user ids must be in ascending order"));
                }
            }
            "g" | "r" => check_name("group or room id", rest)?,
            "b" => check_name("broadcast name", rest)?,
            "c" => {
                let (g, c) = rest.split_once(':').ok_or(IdError::BadConv("c: needs group and channel"))?;
                check_name("group id", g)?;
                check_name("channel id", c)?;
            }
            _ => return Err(IdError::BadConv("unknown kind prefix")),
        }
        Ok(Self(s.to_owned()))
    }

    /// The one-to-one conversation between two distinct users (order does not matter).
    pub fn direct(a: &UserId, b: &UserId) -> Result<Self, IdError> {
        let (lo, hi) = if a.as_str() < b.as_str() { (a, b) } else { (b, a) };
        if lo == hi {
            return Err(IdError::BadConv("p: needs two distinct users"));
        }
        Ok(Self(format!("p:{lo}:{hi}")))
    }

    /// The conversation kind.
    pub fn kind(&self) -> ConvKind {
        match self.0.as_bytes().first() {
            Some(b'p') => ConvKind::Direct,
            Some(b'g') => ConvKind::Group,
            Some(b'r') => ConvKind::Room,
            Some(b'b') => ConvKind::Broadcast,
            _ => ConvKind::Channel,
        }
    }

    /// For a direct conversation, its two participants (ascending).
    pub fn direct_members(&self) -> Option<(&str, &str)> {
        self.0.strip_prefix("p:").and_then(|rest| rest.split_once(':'))
    }

    /// For a direct conversation, the participant who is not `me`
    /// (`None` if `me` is not a participant or this is not a direct conversation).
    pub fn peer_of(&self, me: &UserId) -> Option<UserId> {
        let (a, b) = self.direct_members()?;
        let peer = if a == me.as_str() {
            b
        } else if b == me.as_str() {
            a
        } else {
            return None;
        };
        Some(UserId(peer.to_owned()))
    }

    /// For a group conversation `g:{group}`, its group id (`None` for any
    /// other kind, including ultra-group channels `c:{group}:{channel}`).
    pub fn group_id(&self) -> Option<GroupId> {
        self.0.strip_prefix("g:").map(|g| GroupId(g.to_owned()))
    }

    /// The broadcast conversation every user syncs, [`BROADCAST_ALL`].
    pub fn broadcast_all() -> Self {
        ConvId(BROADCAST_ALL.to_owned())
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConvId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> UserId {
        UserId::new(s).expect("valid")
    }

    #[test]
    fn direct_is_order_independent() {
        let c1 = ConvId::direct(&u("bob"), &u("alice")).expect("ok");
        let c2 = ConvId::direct(&u("alice"), &u("bob")).expect("ok");
        assert_eq!(c1, c2);
        assert_eq!(c1.as_str(), "p:alice:bob");
        assert_eq!(c1.kind(), ConvKind::Direct);
        assert_eq!(c1.peer_of(&u("alice")), Some(u("bob")));
        assert_eq!(c1.peer_of(&u("carol")), None);
        assert!(ConvId::direct(&u("a"), &u("a")).is_err());
    }

    #[test]
    fn parse_validates() {
        for ok in ["p:a:b", "g:team-1", "r:lobby", "c:big:general", "b:all"] {
            assert_eq!(ConvId::parse(ok).expect(ok).as_str(), ok);
        }
        for bad in [
            "", "p:b:a", "p:a:a", "p:a", "x:y", "g:", "g:a:b", "g:a b", "c:g", "p:a:b:c", "g:\0", "b:",
            "b:a:b",
        ] {
            assert!(ConvId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn group_id_and_conv_round_trip() {
        let g = GroupId::new("team-1").expect("valid");
        let c = g.conv();
        assert_eq!(c.as_str(), "g:team-1");
        assert_eq!(c.kind(), ConvKind::Group);
        assert_eq!(ConvId::parse("g:team-1").expect("valid"), c);
        assert_eq!(c.group_id(), Some(g));
        for other in ["p:a:b", "r:team-1", "c:team-1:general"] {
            assert_eq!(ConvId::parse(other).expect(other).group_id(), None, "{other}");
        }
        for bad in ["", "a:b", "a b", "a\0b"] {
            assert!(GroupId::new(bad).is_err(), "{bad:?} accepted");
        }
        assert!(GroupId::new("g".repeat(MAX_ID_LEN)).is_ok());
        assert!(GroupId::new("g".repeat(MAX_ID_LEN + 1)).is_err());
        // Every valid group id makes a conversation id that parses back to it.
        for ok in ["a", "A.b_c-d@e", "0"] {
            let g = GroupId::new(ok).expect(ok);
            assert_eq!(ConvId::parse(g.conv().as_str()).expect("parses").group_id(), Some(g));
        }
    }

    #[test]
    fn name_ids_validate() {
        assert!(UserId::new("alice@example.com").is_ok());
        assert!(UserId::new("").is_err());
        assert!(UserId::new("a:b").is_err());
        assert!(UserId::new("x".repeat(65)).is_err());
        assert!(DeviceId::new("phone-1").is_ok());
        assert!(ClientMsgId::new("héllo 1").is_ok());
        assert!(ClientMsgId::new("a\nb").is_err());
    }
}
