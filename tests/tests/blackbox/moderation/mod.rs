//! Moderation (spec section 16): the sensitive-word lists over every
//! transport and the REST API, and global mutes.

mod mutes;
mod words;
