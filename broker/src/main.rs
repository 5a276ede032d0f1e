//! `missive` — the broker binary. See `missive_broker::cli` (exit status 0, 1, or 2 for a
//! user error reported in one line).

fn main() -> std::process::ExitCode {
    missive_broker::cli::main()
}
