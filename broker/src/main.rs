//! `missive` — the broker binary. See `missive_broker::cli` (exit status 0, 1, or 2 for a
//! user error reported in one line).
//!
//! The global allocator is mimalloc: the event loops allocate and free small
//! objects (decoded requests, ids, frames) per message, and glibc's malloc
//! and free took ~24 % of a worker's time in a pairs profile (issue #17).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    missive_broker::cli::main()
}
