//! The message lifecycle (spec section 18).

mod admin_rest;
mod changes;
mod delivery;
mod flags;
mod forward;
mod group_receipts;
mod reactions;
mod translation;
mod typing;
