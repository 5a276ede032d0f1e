//! The message lifecycle (spec section 18).
mod delivery;
mod group_receipts;
mod translation;
mod typing;
