//! Key encodings of every keyspace. Nobody outside this crate builds a key.
//!
//! Identifiers never contain `0x00` (see `missive_protocol::ids`), so `0x00`
//! separates components and a prefix scan over `a 0x00` never matches an id
//! that merely starts with `a`. Integers are big-endian so that byte order is
//! numeric order.

use missive_protocol::{ConvId, Seq, UserId};

/// Separator between variable-length components.
pub(crate) const SEP: u8 = 0x00;

fn with_parts(parts: &[&[u8]], extra: usize) -> Vec<u8> {
    let len = parts.iter().map(|p| p.len() + 1).sum::<usize>() + extra;
    let mut k = Vec::with_capacity(len);
    for p in parts {
        k.extend_from_slice(p);
        k.push(SEP);
    }
    k
}

/// `msg`: `conv 0x00 seq:be64`.
pub(crate) fn msg(conv: &ConvId, seq: Seq) -> Vec<u8> {
    let mut k = with_parts(&[conv.as_str().as_bytes()], 8);
    k.extend_from_slice(&seq.0.to_be_bytes());
    k
}

/// Prefix of every `msg` key of `conv`.
pub(crate) fn msg_prefix(conv: &ConvId) -> Vec<u8> {
    with_parts(&[conv.as_str().as_bytes()], 0)
}

/// Decodes the seq of a `msg` key under `prefix`.
pub(crate) fn msg_seq(prefix: &[u8], key: &[u8]) -> Option<Seq> {
    let rest = key.strip_prefix(prefix)?;
    let arr: [u8; 8] = rest.try_into().ok()?;
    Some(Seq(u64::from_be_bytes(arr)))
}

/// `dedup`: `conv 0x00 sender 0x00 device 0x00 client_msg_id`.
pub(crate) fn dedup(conv: &ConvId, sender: &str, device: &str, client_msg_id: &str) -> Vec<u8> {
    let mut k =
        with_parts(&[conv.as_str().as_bytes(), sender.as_bytes(), device.as_bytes()], client_msg_id.len());
    k.extend_from_slice(client_msg_id.as_bytes());
    k
}

/// `uconv`: `user 0x00 conv`.
pub(crate) fn user_conv(user: &UserId, conv: &ConvId) -> Vec<u8> {
    let mut k = with_parts(&[user.as_str().as_bytes()], conv.as_str().len());
    k.extend_from_slice(conv.as_str().as_bytes());
    k
}

/// `feed`: `user 0x00 version:be64`.
pub(crate) fn feed(user: &UserId, version: u64) -> Vec<u8> {
    let mut k = with_parts(&[user.as_str().as_bytes()], 8);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

/// Prefix of every `feed` key of `user`.
pub(crate) fn feed_prefix(user: &UserId) -> Vec<u8> {
    with_parts(&[user.as_str().as_bytes()], 0)
}

/// `user`: `user 0x00 's'` — per-user settings.
pub(crate) fn user_settings(user: &UserId) -> Vec<u8> {
    let mut k = with_parts(&[user.as_str().as_bytes()], 1);
    k.push(b's');
    k
}

/// `user`: `user 0x00 'd' 0x00 device` — per-device record.
pub(crate) fn user_device(user: &UserId, device: &str) -> Vec<u8> {
    let mut k = with_parts(&[user.as_str().as_bytes(), b"d"], device.len());
    k.extend_from_slice(device.as_bytes());
    k
}

/// `user`: `user 0x00 tag` — one per-user record (account, profile, status).
pub(crate) fn user_record(user: &UserId, tag: u8) -> Vec<u8> {
    let mut k = with_parts(&[user.as_str().as_bytes()], 1);
    k.push(tag);
    k
}

/// `user`: `user 0x00 tag 0x00 other` — a per-user set member (subscriptions,
/// subscribers, profile feed pointers).
pub(crate) fn user_pair(user: &UserId, tag: u8, other: &str) -> Vec<u8> {
    let mut k = with_parts(&[user.as_str().as_bytes(), &[tag]], other.len());
    k.extend_from_slice(other.as_bytes());
    k
}

/// Prefix of every [`user_pair`] key of `user` with `tag`.
pub(crate) fn user_pair_prefix(user: &UserId, tag: u8) -> Vec<u8> {
    with_parts(&[user.as_str().as_bytes(), &[tag]], 0)
}

/// `rel`: `owner 0x00 kind 0x00 peer` — the owner's side of a pair relation.
pub(crate) fn rel(owner: &UserId, kind: u8, peer: &str) -> Vec<u8> {
    user_pair(owner, kind, peer)
}

/// Prefix of every `rel` key of `owner` with `kind`.
pub(crate) fn rel_prefix(owner: &UserId, kind: u8) -> Vec<u8> {
    user_pair_prefix(owner, kind)
}

/// `group`: `group 0x00 tag` — one per-group record (info, version).
pub(crate) fn group_record(group: &str, tag: u8) -> Vec<u8> {
    let mut k = with_parts(&[group.as_bytes()], 1);
    k.push(tag);
    k
}

/// `group`: `group 0x00 tag 0x00 user` — one per-(group, user) record
/// (member, departed member, application).
pub(crate) fn group_user(group: &str, tag: u8, user: &str) -> Vec<u8> {
    let mut k = with_parts(&[group.as_bytes(), &[tag]], user.len());
    k.extend_from_slice(user.as_bytes());
    k
}

/// Prefix of every [`group_user`] key of `group` with `tag`.
pub(crate) fn group_user_prefix(group: &str, tag: u8) -> Vec<u8> {
    with_parts(&[group.as_bytes(), &[tag]], 0)
}

/// `meta`: `"ver" 0x00 shard:be32` — highest feed version a shard committed.
pub(crate) fn version_mark(shard: u32) -> Vec<u8> {
    let mut k = with_parts(&[b"ver"], 4);
    k.extend_from_slice(&shard.to_be_bytes());
    k
}

/// Prefix of every version mark.
pub(crate) fn version_mark_prefix() -> Vec<u8> {
    with_parts(&[b"ver"], 0)
}

/// The smallest key strictly greater than every key starting with `prefix`.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xff; prefix.len() + 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(s: &str) -> ConvId {
        ConvId::parse(s).expect("valid")
    }

    #[test]
    fn msg_keys_sort_by_seq_and_do_not_bleed() {
        let a = conv("g:a");
        let ab = conv("g:ab");
        assert!(msg(&a, Seq(1)) < msg(&a, Seq(2)));
        assert!(msg(&a, Seq(255)) < msg(&a, Seq(256)));
        assert!(msg(&a, Seq(u64::MAX)) < msg_prefix(&ab));
        let p = msg_prefix(&a);
        assert!(!msg(&ab, Seq(1)).starts_with(&p));
        assert_eq!(msg_seq(&p, &msg(&a, Seq(42))), Some(Seq(42)));
        assert_eq!(msg_seq(&p, &p), None);
        assert!(msg(&a, Seq(u64::MAX)) < prefix_end(&p));
    }

    #[test]
    fn feed_keys_sort_by_version() {
        let u = UserId::new("u").expect("valid");
        let uu = UserId::new("uu").expect("valid");
        assert!(feed(&u, 9) < feed(&u, 10));
        assert!(feed(&u, u64::MAX) < feed_prefix(&uu));
        assert!(feed(&u, 3).starts_with(&feed_prefix(&u)));
    }

    #[test]
    fn dedup_components_are_separated() {
        let c = conv("p:a:b");
        assert_ne!(dedup(&c, "a", "bc", "d"), dedup(&c, "ab", "c", "d"));
    }

    #[test]
    fn pair_keys_group_by_owner_and_kind() {
        let u = UserId::new("u").expect("valid");
        let uu = UserId::new("uu").expect("valid");
        let p = rel_prefix(&u, b'F');
        assert!(rel(&u, b'F', "bob").starts_with(&p));
        assert!(!rel(&u, b'B', "bob").starts_with(&p));
        assert!(!rel(&uu, b'F', "bob").starts_with(&p));
        assert!(rel(&u, b'F', "a") < rel(&u, b'F', "b"));
        assert!(rel(&u, b'F', "zzz") < prefix_end(&p));
        // Per-user records never collide with pair keys or settings.
        assert_ne!(user_record(&u, b'a'), user_settings(&u));
        assert!(!user_record(&u, b'S').starts_with(&user_pair_prefix(&u, b'S')));
    }

    #[test]
    fn group_keys_group_by_group_and_tag() {
        let p = group_user_prefix("g1", b'm');
        assert!(group_user("g1", b'm', "alice").starts_with(&p));
        assert!(!group_user("g1", b'x', "alice").starts_with(&p));
        assert!(!group_user("g11", b'm', "alice").starts_with(&p));
        assert!(group_user("g1", b'm', "a") < group_user("g1", b'm', "b"));
        assert!(group_user("g1", b'm', "zzz") < prefix_end(&p));
        // Per-group records never fall under a per-user prefix.
        assert!(!group_record("g1", b'm').starts_with(&p));
        assert_ne!(group_record("g1", b'i'), group_record("g1", b'v'));
        assert!(!group_record("g1", b'i').starts_with(&group_user_prefix("g", b'i')));
    }

    #[test]
    fn prefix_end_carries() {
        assert_eq!(prefix_end(&[1, 0xff]), vec![2]);
        assert_eq!(prefix_end(&[1, 2]), vec![1, 3]);
    }
}
