//! Missive benchmarks.
//!
//! Role: criterion micro-benchmarks live in `bench/benches/` (storage append
//! and scan, token verification, cross-worker hand-off; the frame codec bench
//! is in `protocol/benches/`). They run once in test mode under `make test`
//! (`cargo bench -- --test`) so they keep compiling. Whole-system load
//! generation (`loadgen`) belongs to the Benchmarks issue and is not here yet.
//!
//! Invariant: benchmarks never assert timings; they measure.
