//! Measurement helpers: latency histograms, live counters shared with the
//! progress printer, and the once-a-second progress line on stderr.
//!
//! Invariants: recording never allocates or fails (values are clamped into
//! the histogram's range); counters are relaxed atomics updated in batches by
//! the generator threads and only read by the printer; the printer thread
//! stops when its [`Progress`] is dropped, within one tick.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Largest latency recorded, microseconds (larger values are clamped).
const MAX_US: u64 = 120_000_000;

/// A latency histogram in microseconds (3 significant digits).
#[derive(Debug, Clone)]
pub(crate) struct Hist(Histogram<u64>);

impl Hist {
    pub(crate) fn new() -> Self {
        // Bounds are constants within hdrhistogram's limits.
        match Histogram::new_with_bounds(1, MAX_US, 3) {
            Ok(h) => Self(h),
            Err(e) => unreachable!("constant histogram bounds rejected: {e}"),
        }
    }

    /// Records a duration given in nanoseconds.
    pub(crate) fn record_ns(&mut self, ns: u64) {
        self.0.saturating_record((ns / 1000).clamp(1, MAX_US));
    }

    /// Adds every sample of `other`.
    pub(crate) fn merge(&mut self, other: &Hist) {
        // Same bounds on both sides, so `add` cannot fail.
        let _ = self.0.add(&other.0);
    }

    pub(crate) fn count(&self) -> u64 {
        self.0.len()
    }

    /// The `q` quantile (0..=1) in microseconds, `None` without samples.
    pub(crate) fn quantile_us(&self, q: f64) -> Option<u64> {
        (!self.0.is_empty()).then(|| self.0.value_at_quantile(q))
    }
}

/// Live totals the progress line shows.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) sent: AtomicU64,
    pub(crate) acked: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) errors: AtomicU64,
}

impl Counters {
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        if n > 0 {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub(crate) fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// Prints a status line on stderr every second until dropped.
#[derive(Debug)]
pub(crate) struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts printing `line(elapsed)` once per second, prefixed by `label`.
    pub(crate) fn start(label: &str, line: impl Fn(Duration) -> String + Send + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let label = label.to_owned();
        let thread = std::thread::Builder::new()
            .name("loadgen-progress".to_owned())
            .spawn(move || {
                let t0 = Instant::now();
                let mut next = t0 + Duration::from_secs(1);
                while !flag.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    if now >= next {
                        let el = now - t0;
                        eprintln!("[{label} {:>5.1}s] {}", el.as_secs_f64(), line(el));
                        next += Duration::from_secs(1);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
            .ok();
        Self { stop, thread }
    }

    /// A live counter line: totals and the rate since the last call.
    pub(crate) fn rates(counters: Arc<Counters>) -> impl Fn(Duration) -> String + Send + 'static {
        let last = std::sync::Mutex::new((Duration::ZERO, 0u64, 0u64));
        move |el| {
            let acked = Counters::get(&counters.acked);
            let delivered = Counters::get(&counters.delivered);
            let mut g = match last.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            let dt = (el - g.0).as_secs_f64().max(1e-3);
            let line = format!(
                "sent {} acked {} ({:.0}/s) delivered {} ({:.0}/s) errors {}",
                Counters::get(&counters.sent),
                acked,
                (acked - g.1) as f64 / dt,
                delivered,
                (delivered - g.2) as f64 / dt,
                Counters::get(&counters.errors),
            );
            *g = (el, acked, delivered);
            line
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_and_merge() {
        let mut a = Hist::new();
        assert_eq!(a.quantile_us(0.5), None);
        for us in 1..=100u64 {
            a.record_ns(us * 1000);
        }
        let mut b = Hist::new();
        b.record_ns(u64::MAX); // clamped, not lost
        a.merge(&b);
        assert_eq!(a.count(), 101);
        assert_eq!(a.quantile_us(0.5), Some(51));
        assert!(a.quantile_us(1.0).is_some_and(|v| v >= MAX_US / 2));
    }
}
