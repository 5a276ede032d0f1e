//! Failure and overload: crashes and clean shutdown (durability), a slow
//! consumer, the open-file limit, floods from hostile clients.

mod crash;
mod fd_limit;
mod flood;
mod slow_consumer;
