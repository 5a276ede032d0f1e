//! The project's own clients against a real broker: the Rust SDK's `Client`
//! and the `missivectl` binary.

mod missivectl;
mod missivectl_admin;
mod missivectl_groups;
mod sdk_client;
