//! The broker binary as the black-box tests run it (same CLI as `missive`);
//! built inside this package so tests can find it via `CARGO_BIN_EXE_*`.

fn main() -> std::process::ExitCode {
    missive_broker::cli::main()
}
