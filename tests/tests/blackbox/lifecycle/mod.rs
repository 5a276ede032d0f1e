//! The message lifecycle (spec section 18).

mod reactions;
