//! The message lifecycle (spec section 18).

mod admin_rest;
mod changes;
mod flags;
mod forward;
mod reactions;
