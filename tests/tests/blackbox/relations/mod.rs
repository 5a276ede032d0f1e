//! Relations (spec 12.2, 13): profiles and friends, the blacklist.

mod blacklist;
mod friends;
