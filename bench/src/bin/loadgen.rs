//! `loadgen`: whole-system load generator for the Missive broker. All logic
//! lives in `missive_bench::loadgen` (scenarios, transport, verification);
//! this file only hands it the process.

fn main() -> std::process::ExitCode {
    missive_bench::loadgen::main()
}
