//! One file per keyspace: its key layout, its record reads (on `Store`) and
//! its staged writes (on `Batch`). Each file's header states its layout and
//! invariants; `lib.rs` has the table of all of them.
//!
//! A keyspace file may call another's `pub(crate)` staging helper when one
//! write spans two families in one batch (a `uconv` record moves its `feed`
//! entry; a group member writes the member's `user` index entry), but never
//! builds another keyspace's key.

pub(crate) mod dedup;
pub(crate) mod feed;
mod group;
mod life;
mod meta;
pub(crate) mod msg;
mod ops;
mod rel;
mod uconv;
mod user;

pub use life::LifeRow;
pub use msg::MsgPage;
pub use ops::OpsSpace;
pub use rel::RelKind;
