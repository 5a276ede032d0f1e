//! Messages, conversations and sync: delivery and ordering, offline catch-up
//! and paging, read receipts and per-user conversation state.

mod content_depth;
mod delivery;
mod first_attempt;
mod offline_sync;
mod paging_bytes;
mod receipts_conversations;
