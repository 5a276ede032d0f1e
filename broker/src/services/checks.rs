//! Stateless input checks shared by the services (ids, texts, pages, `ex`
//! maps, profile patches, addressable conversations).
//!
//! Every check returns `3000 INVALID_ARGUMENT` with a message naming the
//! field, so a client can tell exactly what it sent wrong. Bounds come from
//! the `[relations]` configuration (spec section 11).

use std::collections::BTreeMap;

use missive_protocol::pb;
use missive_protocol::{ConvId, ConvKind, ErrorCode, UserId};

use crate::config::Relations;
use crate::error::Reject;

/// Most ids in one batch request (GetProfiles, GetPresence, ...). Fixed by the spec.
pub(crate) const MAX_BATCH_IDS: usize = 100;
/// Longest key of a custom `ex` map, bytes.
const MAX_EX_KEY: usize = 64;
/// Longest friend search query, bytes.
pub(crate) const MAX_QUERY: usize = 64;

/// A conversation id the caller may address: `p:` with the caller as a
/// participant, or `g:` (membership is decided by the group's owner shard, at
/// the moment of the op), or the broadcast conversation `b:all`, which every
/// user reads (only the admin API appends to it).
pub(crate) fn conversation(user: &UserId, s: &str) -> Result<ConvId, Reject> {
    let conv = ConvId::parse(s).map_err(|e| Reject::new(ErrorCode::InvalidConvId, e.to_string()))?;
    match conv.kind() {
        ConvKind::Group => Ok(conv),
        ConvKind::Direct if conv.peer_of(user).is_some() => Ok(conv),
        ConvKind::Direct => {
            Err(Reject::new(ErrorCode::NotParticipant, "you are not a participant of this conversation"))
        }
        ConvKind::Broadcast if conv.as_str() == missive_protocol::BROADCAST_ALL => Ok(conv),
        ConvKind::Broadcast => {
            Err(Reject::new(ErrorCode::UnsupportedConversation, "the only broadcast conversation is b:all"))
        }
        ConvKind::Room | ConvKind::Channel => {
            Err(Reject::new(ErrorCode::UnsupportedConversation, "only p: and g: conversations are served"))
        }
    }
}

pub(crate) fn invalid(message: impl Into<String>) -> Reject {
    Reject::new(ErrorCode::InvalidArgument, message)
}

/// An `ex` map of a request, bounded (entries and total size); the merge
/// with stored entries is checked again by the owner.
pub(crate) fn ex_map(
    ex: BTreeMap<String, String>,
    r: &Relations,
) -> Result<BTreeMap<String, String>, Reject> {
    let mut probe = BTreeMap::new();
    merge_ex(&mut probe, &ex, r, "ex")?;
    Ok(ex)
}

/// One user id field.
pub(crate) fn user_id(s: String, field: &str) -> Result<UserId, Reject> {
    UserId::new(s).map_err(|e| invalid(format!("{field}: {e}")))
}

/// A batch of 1..=100 user ids, each valid (duplicates kept, order kept).
pub(crate) fn user_ids(ids: Vec<String>, field: &str) -> Result<Vec<UserId>, Reject> {
    if ids.is_empty() || ids.len() > MAX_BATCH_IDS {
        return Err(invalid(format!("{field}: 1..={MAX_BATCH_IDS} ids required, got {}", ids.len())));
    }
    ids.into_iter().map(|s| user_id(s, field)).collect()
}

/// A paging cursor: "" or a user id.
pub(crate) fn cursor(s: &str) -> Result<(), Reject> {
    if s.is_empty() {
        return Ok(());
    }
    UserId::new(s).map(|_| ()).map_err(|e| invalid(format!("cursor: {e}")))
}

/// The page size for `limit` (0 = default, capped at the maximum).
pub(crate) fn page(limit: u32, r: &Relations) -> usize {
    (if limit == 0 { r.page_default } else { limit.min(r.page_max) }) as usize
}

/// Cuts `limit + 1` rows fetched after a cursor to one page, and the next
/// cursor: the key of the page's last row, or "" when nothing follows ([RL-1]).
pub(crate) fn cut_page<T>(mut rows: Vec<T>, limit: usize, key: impl Fn(&T) -> &str) -> (Vec<T>, String) {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = match rows.last() {
        Some(last) if more => key(last).to_owned(),
        _ => String::new(),
    };
    (rows, next)
}

/// A text field of at most `max` bytes.
pub(crate) fn text(s: &str, max: usize, field: &str) -> Result<(), Reject> {
    if s.len() > max {
        return Err(invalid(format!("{field}: {} bytes, at most {max}", s.len())));
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(invalid(format!("{field}: control characters are not allowed")));
    }
    Ok(())
}

/// Whether `s` is a real date written `YYYY-MM-DD`.
fn valid_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else { return false };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d) && y >= 1
}

/// Entries of an `ex` patch: keys 1..=64 bytes, values within the map bound.
fn ex_entries(ex: &BTreeMap<String, String>, r: &Relations, field: &str) -> Result<(), Reject> {
    for (k, v) in ex {
        if k.is_empty() || k.len() > MAX_EX_KEY {
            return Err(invalid(format!("{field}: keys must be 1..={MAX_EX_KEY} bytes")));
        }
        text(v, r.max_ex_bytes, field)?;
    }
    Ok(())
}

/// Merges an `ex` patch into `map` (empty value = remove) and checks the result's size.
pub(crate) fn merge_ex(
    map: &mut BTreeMap<String, String>,
    patch: &BTreeMap<String, String>,
    r: &Relations,
    field: &str,
) -> Result<(), Reject> {
    ex_entries(patch, r, field)?;
    for (k, v) in patch {
        if v.is_empty() {
            map.remove(k);
        } else {
            map.insert(k.clone(), v.clone());
        }
    }
    let size: usize = map.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > r.max_ex_bytes {
        return Err(invalid(format!("{field}: {size} bytes after merging, at most {}", r.max_ex_bytes)));
    }
    Ok(())
}

/// Checks every field of a profile patch that can be checked without the stored profile.
pub(crate) fn profile_patch(p: &pb::ProfilePatch, r: &Relations) -> Result<(), Reject> {
    if let Some(n) = &p.nickname {
        text(n, r.max_name_bytes, "nickname")?;
    }
    if let Some(u) = &p.avatar_url {
        text(u, r.max_url_bytes, "avatar_url")?;
    }
    if let Some(s) = &p.signature {
        text(s, r.max_text_bytes, "signature")?;
    }
    if let Some(b) = &p.birthday
        && !b.is_empty()
        && !valid_date(b)
    {
        return Err(invalid("birthday: must be empty or a real date YYYY-MM-DD"));
    }
    if let Some(g) = p.gender
        && pb::Gender::try_from(g).is_err()
    {
        return Err(invalid(format!("gender: undefined value {g}")));
    }
    if let Some(v) = p.friend_verification
        && pb::FriendVerification::try_from(v).is_err()
    {
        return Err(invalid(format!("friend_verification: undefined value {v}")));
    }
    ex_entries(&p.ex, r, "ex")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert!(valid_date("2000-02-29"));
        assert!(!valid_date("1900-02-29"));
        assert!(valid_date("1999-12-31"));
        assert!(!valid_date("1999-13-01"));
        assert!(!valid_date("1999-1-01"));
        assert!(!valid_date("19a9-01-01"));
        assert!(!valid_date("2001-04-31"));
    }

    #[test]
    fn ex_merge_removes_and_bounds() {
        let r = Relations { max_ex_bytes: 10, ..Relations::default() };
        let mut m = BTreeMap::from([("a".to_owned(), "1".to_owned())]);
        merge_ex(
            &mut m,
            &BTreeMap::from([("a".to_owned(), String::new()), ("b".into(), "2".into())]),
            &r,
            "ex",
        )
        .expect("fits");
        assert_eq!(m, BTreeMap::from([("b".to_owned(), "2".to_owned())]));
        let big = BTreeMap::from([("c".to_owned(), "0123456789".to_owned())]);
        let err = merge_ex(&mut m, &big, &r, "ex").expect_err("too big");
        assert_eq!(err.code, ErrorCode::InvalidArgument);
        assert!(merge_ex(&mut m, &BTreeMap::from([(String::new(), "x".into())]), &r, "ex").is_err());
    }

    #[test]
    fn id_batches() {
        assert!(user_ids(vec![], "user_ids").is_err());
        assert!(user_ids(vec!["ok".into(), "bad id".into()], "user_ids").is_err());
        assert_eq!(user_ids(vec!["a".into(), "b".into()], "user_ids").map(|v| v.len()).ok(), Some(2));
        assert!(user_ids((0..101).map(|i| format!("u{i}")).collect(), "user_ids").is_err());
    }
}
