//! Node-wide counters for `GET /v1/stats`.
//!
//! Role: the number of messages committed since the process started. Each
//! owner shard adds its turn's message count once the turn's batch is
//! durable (one relaxed atomic add per written turn), so a refused or failed
//! write is never counted. The rate is derived by the reader from samples
//! ([`RateWindow`]).
//!
//! Invariants: counters only grow; reads are relaxed (an approximate value is
//! fine for statistics).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

/// The node's counters.
#[derive(Debug, Default)]
pub(crate) struct NodeStats {
    messages: AtomicU64,
}

impl NodeStats {
    /// Records `n` messages of a written batch.
    pub(crate) fn messages_committed(&self, n: usize) {
        if n != 0 {
            self.messages.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// Messages committed since start.
    pub(crate) fn messages_total(&self) -> u64 {
        self.messages.load(Ordering::Relaxed)
    }
}

/// Samples `(ms, total)` over the last few seconds, giving a rate.
#[derive(Debug, Default)]
pub(crate) struct RateWindow {
    samples: VecDeque<(u64, u64)>,
}

/// The span the rate is computed over.
pub(crate) const RATE_WINDOW_MS: u64 = 5_000;

impl RateWindow {
    /// Adds a sample and returns the rate per second over the window (0 with
    /// a single sample). Samples older than the window are dropped, but the
    /// newest one before the window is kept as the base of the rate.
    pub(crate) fn sample(&mut self, now_ms: u64, total: u64) -> f64 {
        self.samples.push_back((now_ms, total));
        while self.samples.len() > 2 && self.samples.get(1).is_some_and(|s| now_ms - s.0 >= RATE_WINDOW_MS) {
            self.samples.pop_front();
        }
        // Bound memory under a flood of readers: keep at most 64 samples.
        while self.samples.len() > 64 {
            self.samples.pop_front();
        }
        match (self.samples.front(), self.samples.back()) {
            (Some(&(t0, n0)), Some(&(t1, n1))) if t1 > t0 => {
                (n1.saturating_sub(n0)) as f64 * 1000.0 / (t1 - t0) as f64
            }
            _ => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_over_the_window() {
        let mut w = RateWindow::default();
        assert_eq!(w.sample(1_000, 0), 0.0);
        assert_eq!(w.sample(2_000, 100), 100.0);
        assert_eq!(w.sample(3_000, 300), 150.0);
        // 10 s later: only the last sample before the window is the base.
        let r = w.sample(13_000, 1_300);
        assert_eq!(r, 100.0);
    }

    #[test]
    fn counter_adds() {
        let s = NodeStats::default();
        s.messages_committed(0);
        s.messages_committed(3);
        assert_eq!(s.messages_total(), 3);
    }
}
