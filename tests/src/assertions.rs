//! Assertions shared by the tests.
//!
//! Role: checks of error results (code and retryable flag), dense seq ranges,
//! the id-batch bounds common to batch requests, and unwrapping helpers that
//! name what failed.
//!
//! Invariants: every check panics with a message naming what was checked and
//! what was seen; none of them waits.

use missive_protocol::pb;

use crate::ErrorCode;

/// Asserts an error response has `code` (and the retryable flag of that code).
pub fn assert_error<T: std::fmt::Debug>(res: Result<T, pb::Error>, code: ErrorCode, what: &str) -> pb::Error {
    match res {
        Ok(v) => panic!("{what}: expected error {code}, got success {v:?}"),
        Err(e) => {
            assert_eq!(
                e.code,
                code.as_u32(),
                "{what}: expected error {code}, got {} ({:?}) {:?}",
                e.code,
                ErrorCode::from_u32(e.code),
                e.message
            );
            assert_eq!(e.retryable, code.retryable(), "{what}: retryable flag of {code}");
            e
        }
    }
}

/// Asserts `msgs` have seqs exactly `first..=last`, ascending, no gap or duplicate.
pub fn assert_dense(msgs: &[pb::Message], first: u64, last: u64, what: &str) {
    let seqs: Vec<u64> = msgs.iter().map(|m| m.seq).collect();
    let expected: Vec<u64> = (first..=last).collect();
    if seqs != expected {
        let shown: Vec<u64> = seqs.iter().copied().take(50).collect();
        panic!(
            "{what}: expected seqs {first}..={last} ({} messages), got {} messages: {shown:?}...",
            expected.len(),
            seqs.len()
        );
    }
}

/// Unwraps a typed result, panicking with `what` and the error.
pub fn must<T>(res: Result<T, pb::Error>, what: &str) -> T {
    res.unwrap_or_else(|e| {
        panic!("{what} failed: {} ({:?}) {:?}", e.code, ErrorCode::from_u32(e.code), e.message)
    })
}

/// `Presence` of `user` in `list`; panics if absent.
pub fn presence_of<'a>(list: &'a [pb::Presence], user: &str) -> &'a pb::Presence {
    list.iter().find(|p| p.user_id == user).unwrap_or_else(|| panic!("no presence of {user} in {list:?}"))
}

/// Checks the id-batch bounds shared by the batch requests (1..=100 valid
/// ids, else 3000): `call` sends the request for the ids and returns the
/// number of items in its result, which for 100 unregistered ids `u0..u99`
/// must be `items_for_100`.
pub fn assert_batch_bounds(
    what: &str,
    items_for_100: usize,
    mut call: impl FnMut(&[&str]) -> Result<usize, pb::Error>,
) {
    let ids: Vec<String> = (0..101).map(|i| format!("u{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_error(call(&[]), ErrorCode::InvalidArgument, &format!("{what}: no ids"));
    assert_error(call(&ids), ErrorCode::InvalidArgument, &format!("{what}: 101 ids"));
    assert_eq!(must(call(&ids[..100]), &format!("{what}: 100 ids")), items_for_100, "{what}: 100 ids");
    assert_error(call(&["ok", "not valid"]), ErrorCode::InvalidArgument, &format!("{what}: invalid id"));
}
