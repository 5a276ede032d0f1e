//! Failure and overload: crashes and clean shutdown (durability), a slow
//! consumer, the open-file limit.

mod crash;
mod fd_limit;
mod slow_consumer;
