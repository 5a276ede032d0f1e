//! Failure and overload: crashes and clean shutdown (durability), a slow
//! consumer, the open-file limit, floods from hostile clients, disk faults (full disk,
//! corruption, backup), weak networks (loss, delay, reordering).

mod crash;
mod disk;
mod fd_limit;
mod flood;
mod load;
mod rate_limits;
mod slow_consumer;
mod soak;
mod weak_network;
