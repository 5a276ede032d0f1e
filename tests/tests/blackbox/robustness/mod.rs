//! Failure and overload: crashes and clean shutdown (durability), a slow
//! consumer, the open-file limit, disk faults (full disk, corruption, backup).

mod crash;
mod disk;
mod fd_limit;
mod slow_consumer;
