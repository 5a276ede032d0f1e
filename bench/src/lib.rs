//! Missive benchmarks.
//!
//! Role: criterion micro-benchmarks live in `bench/benches/` (storage append
//! and scan, token verification, cross-worker hand-off; the frame codec bench
//! is in `protocol/benches/`). They run once in test mode under `make test`
//! (`cargo bench -- --test`) so they keep compiling. Whole-system load
//! generation is [`loadgen`] (the `loadgen` binary): real broker, real
//! protocol over loopback TCP, results as JSON lines (`make bench`).
//!
//! Invariant: benchmarks never assert timings; they measure. Loadgen does
//! assert correctness (loss, duplicates, order) and fails a run that violates it.

pub mod loadgen;
