//! Key-building primitives shared by every keyspace (`spaces/*`).
//!
//! Role: the separator rule, appending components to a key buffer, the end of
//! a prefix range, and the "first component" prefix the engine's prefix
//! extractor uses. Each keyspace's own layout lives in its `spaces/` file.
//!
//! Invariants:
//! - Identifiers never contain `0x00` (see `missive_protocol::ids`), so `0x00`
//!   separates components and a prefix scan over `a 0x00` never matches an id
//!   that merely starts with `a`.
//! - Integers are big-endian so that byte order is numeric order.
//! - Every key of every column family contains at least one `0x00`: its first
//!   component is the prefix extractor's domain ([`first_component`]).
//! - Nothing here allocates except [`owned`] and [`prefix_end`]: batches write
//!   keys straight into their one buffer.

/// Separator between variable-length components.
pub(crate) const SEP: u8 = 0x00;

/// Appends `part` and a separator to `out`.
pub(crate) fn part(out: &mut Vec<u8>, part: &[u8]) {
    out.extend_from_slice(part);
    out.push(SEP);
}

/// Appends `owner 00 tag`: one record of an owner (user or group) in a
/// family that holds several kinds of record per owner.
pub(crate) fn record(out: &mut Vec<u8>, owner: &[u8], tag: u8) {
    part(out, owner);
    out.push(tag);
}

/// Whether `key` is exactly `owner 00 tag`: ids hold no 00, so the first 00
/// of such a key is its second-last byte (a set entry `owner 00 tag 00 m`
/// has its first 00 earlier, whatever `m` ends with).
pub(crate) fn is_record(key: &[u8], tag: u8) -> bool {
    key.len() >= 2 && key.last() == Some(&tag) && key.iter().position(|&b| b == SEP) == Some(key.len() - 2)
}

/// Appends `owner 00 tag 00`: the prefix of an owner's set of `tag` entries,
/// each key of which continues with the member's id.
pub(crate) fn tagged(out: &mut Vec<u8>, owner: &[u8], tag: u8) {
    part(out, owner);
    part(out, &[tag]);
}

/// Builds one owned key (reads; batches write into their own buffer instead).
pub(crate) fn owned(build: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut k = Vec::with_capacity(64);
    build(&mut k);
    k
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

/// The prefix extractor of the families that have one (see `engine`): a key's
/// first component and its separator, e.g. `conv 0x00` of `conv 0x00 seq`.
/// Keys without a separator are outside the domain and returned whole.
pub(crate) fn first_component(key: &[u8]) -> &[u8] {
    match key.iter().position(|&b| b == SEP) {
        Some(i) => &key[..=i],
        None => key,
    }
}

/// Whether `key` is in the domain of [`first_component`] (has a separator).
pub(crate) fn has_first_component(key: &[u8]) -> bool {
    key.contains(&SEP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_record_matches_only_the_record_key() {
        assert!(is_record(b"alice\0a", b'a'));
        assert!(!is_record(b"alice\0p", b'a'));
        // A set entry whose member ends in `00 a` is not the record.
        assert!(!is_record(b"alice\0d\0a", b'a'));
        assert!(!is_record(b"a", b'a'));
    }

    #[test]
    fn prefix_end_carries() {
        assert_eq!(prefix_end(&[1, 0xff]), vec![2]);
        assert_eq!(prefix_end(&[1, 2]), vec![1, 3]);
        assert_eq!(prefix_end(&[0xff]), vec![0xff, 0xff]);
    }

    #[test]
    fn first_component_stops_at_the_first_separator() {
        assert_eq!(first_component(b"conv\0\0\0\x01"), b"conv\0");
        assert_eq!(first_component(b"u\0G\0g1"), b"u\0");
        assert_eq!(first_component(b"nosep"), b"nosep");
        assert!(has_first_component(b"a\0"));
        assert!(!has_first_component(b"a"));
        // A scan prefix and every key under it share the first component, so
        // `prefix_same_as_start` iteration never leaves the range it scans.
        let prefix = owned(|k| {
            part(k, b"owner");
            part(k, b"F");
        });
        let key = owned(|k| {
            part(k, b"owner");
            part(k, b"F");
            k.extend_from_slice(b"peer");
        });
        assert_eq!(first_component(&prefix), first_component(&key));
        assert_eq!(first_component(&prefix_end(&prefix)), b"owner\0");
    }

    #[test]
    fn records_never_fall_under_a_set_prefix() {
        let set = owned(|k| tagged(k, b"u", b'S'));
        assert_eq!(set, b"u\0S\0");
        let rec = owned(|k| record(k, b"u", b'S'));
        assert_eq!(rec, b"u\0S");
        assert!(!rec.starts_with(&set));
        let member = owned(|k| {
            tagged(k, b"u", b'S');
            k.extend_from_slice(b"bob");
        });
        assert!(member.starts_with(&set) && member < prefix_end(&set));
        assert!(!member.starts_with(&owned(|k| tagged(k, b"uu", b'S'))));
    }
}
