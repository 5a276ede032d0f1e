//! Failure and overload: crashes and clean shutdown (durability), a slow
//! consumer, the open-file limit, floods from hostile clients, disk faults (full disk,
//! corruption, backup).

mod crash;
mod disk;
mod fd_limit;
mod flood;
mod slow_consumer;
