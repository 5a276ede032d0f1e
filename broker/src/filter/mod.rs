//! The sensitive-word filter and the moderation mutes (issue #15, spec
//! section 16).
//!
//! Role: [`engine`] compiles named word lists (`block` / `replace` / `flag`)
//! into one Aho-Corasick automaton over folded text and checks texts;
//! [`live`] keeps the lists in use and the global mutes, loaded from the
//! `ops` family and swapped at once on an API change; `screen` applies both
//! at route time to every user-set text of a request.
//!
//! For other components (webhooks): [`Live::flagged`] (via
//! `node.words.flagged(text)`) returns the names of the `flag` lists a text
//! matches, empty at the cost of one atomic load when there is no list —
//! the source of `message.flagged` events.
//!
//! Invariants: see each module; the public part ([`engine`], [`Live`],
//! [`Mutes`]) has no dependency on the broker's internals, so benches can
//! use it directly.

pub mod engine;
pub mod live;
pub(crate) mod screen;

pub use engine::{Action, Compiled, DEFAULT_MASK, Verdict, WordList, fold};
pub use live::{Live, Mutes};

/// Whether `name` is a valid list name: 1..=64 of `[A-Za-z0-9_.-]`.
pub fn valid_list_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}
