//! Messages, conversations and sync: delivery and ordering, offline catch-up
//! and paging, read receipts and per-user conversation state.

mod delivery;
mod offline_sync;
mod receipts_conversations;
