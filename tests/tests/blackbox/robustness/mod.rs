//! Failure and overload: crashes and clean shutdown (durability), a slow
//! consumer, the open-file limit, weak networks (loss, delay, reordering).

mod crash;
mod fd_limit;
mod load;
mod slow_consumer;
mod soak;
mod weak_network;
