//! Measurement helpers: latency histograms, live counters shared with the
//! progress printer, the once-a-second progress line on stderr, and the
//! per-second time series of a run (one [`Sample`] per progress tick).
//!
//! Invariants: recording never allocates or fails (values are clamped into
//! the histogram's range); counters are relaxed atomics updated in batches by
//! the generator threads and only read by the printer; the last-second
//! latency goes through [`Counters::publish`]: each generator thread records
//! into a histogram of its own (no lock, no allocation on the hot path) and
//! folds it into the shared interval histogram at its housekeeping tick
//! (every 100 ms), which the printer reads and clears once a second (so a
//! sample's p99 covers the deliveries of that second, give or take one
//! housekeeping period); the printer thread stops when its [`Progress`] is
//! dropped or finished, within one tick.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

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

    /// Forgets every sample (no allocation).
    pub(crate) fn reset(&mut self) {
        if !self.0.is_empty() {
            self.0.reset();
        }
    }

    /// The `q` quantile (0..=1) in microseconds, `None` without samples.
    pub(crate) fn quantile_us(&self, q: f64) -> Option<u64> {
        (!self.0.is_empty()).then(|| self.0.value_at_quantile(q))
    }
}

/// Live totals the progress line shows, and the latency samples of the
/// current progress interval.
#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) sent: AtomicU64,
    pub(crate) acked: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) errors: AtomicU64,
    /// Latency samples folded in since the printer last read them.
    interval: Mutex<Hist>,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            interval: Mutex::new(Hist::new()),
        }
    }
}

/// A generator thread's running totals, as last published.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) sent: u64,
    pub(crate) acked: u64,
    pub(crate) delivered: u64,
    pub(crate) errors: u64,
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

    /// A generator thread's housekeeping: adds what its totals gained since
    /// `last` (then `last = now`), and moves its interval latency samples
    /// into the shared interval histogram (`interval` is left empty).
    pub(crate) fn publish(&self, now: Totals, last: &mut Totals, interval: &mut Hist) {
        Self::add(&self.sent, now.sent.saturating_sub(last.sent));
        Self::add(&self.acked, now.acked.saturating_sub(last.acked));
        Self::add(&self.delivered, now.delivered.saturating_sub(last.delivered));
        Self::add(&self.errors, now.errors.saturating_sub(last.errors));
        *last = now;
        if interval.count() > 0 {
            self.lock_interval().merge(interval);
            interval.reset();
        }
    }

    /// The p99 of the interval's samples in milliseconds (None without
    /// samples); starts a new interval.
    pub(crate) fn take_p99_ms(&self) -> Option<f64> {
        let mut h = self.lock_interval();
        let p99 = h.quantile_us(0.99).map(|us| us as f64 / 1000.0);
        h.reset();
        p99
    }

    fn lock_interval(&self) -> MutexGuard<'_, Hist> {
        // A panicking generator thread cannot leave the histogram half-updated
        // in a way that matters for a progress figure.
        self.interval.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Which counter a scenario's per-second rate is taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Main {
    Acked,
    Delivered,
}

/// One second of a run: what the progress line showed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Sample {
    /// Seconds since the progress started, at the end of the interval.
    pub(crate) t: f64,
    /// The scenario's main counter per second over the interval.
    pub(crate) rate: f64,
    /// p99 latency of the interval's samples, milliseconds (null: none).
    pub(crate) p99_ms: Option<f64>,
    /// Errors counted during the interval.
    pub(crate) errors: u64,
}

/// A run's time series: what `rate` counts, which latency `p99_ms` is, and
/// the samples.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Series {
    /// What `rate` counts, e.g. `acked/s`.
    pub(crate) rate_of: &'static str,
    /// Which latency `p99_ms` is, e.g. `deliver` (empty: none).
    pub(crate) latency_of: &'static str,
    pub(crate) samples: Vec<Sample>,
}

/// What a progress line function returns each tick.
#[derive(Debug, Clone)]
pub(crate) struct Tick {
    pub(crate) line: String,
    pub(crate) sample: Sample,
}

/// Prints a status line on stderr every second until dropped or finished,
/// and keeps each tick's [`Sample`].
#[derive(Debug)]
pub(crate) struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Sample>>>,
}

/// A final interval shorter than this is not kept as a sample (too noisy).
const MIN_LAST_INTERVAL: Duration = Duration::from_millis(500);

impl Progress {
    /// Starts printing `tick(elapsed).line` once per second, prefixed by
    /// `label`, and keeping every tick's sample.
    pub(crate) fn start(label: &str, mut tick: impl FnMut(Duration) -> Tick + Send + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let label = label.to_owned();
        let thread = std::thread::Builder::new()
            .name("loadgen-progress".to_owned())
            .spawn(move || {
                let t0 = Instant::now();
                let mut next = t0 + Duration::from_secs(1);
                let mut samples = Vec::new();
                while !flag.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    if now >= next {
                        let el = now - t0;
                        let t = tick(el);
                        eprintln!("[{label} {:>5.1}s] {}", el.as_secs_f64(), t.line);
                        samples.push(t.sample);
                        next += Duration::from_secs(1);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                // The last, partial interval (not printed).
                let now = Instant::now();
                if now >= next - Duration::from_secs(1) + MIN_LAST_INTERVAL {
                    samples.push(tick(now - t0).sample);
                }
                samples
            })
            .ok();
        Self { stop, thread }
    }

    /// Stops the printer and returns its samples.
    pub(crate) fn finish(mut self) -> Vec<Sample> {
        self.stop_thread()
    }

    fn stop_thread(&mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or_default()
    }

    /// A live counter line: totals, the rate since the last tick, the p99
    /// latency of the interval, errors; the sample's rate is `main`'s.
    pub(crate) fn rates(
        counters: Arc<Counters>,
        main: Main,
    ) -> impl FnMut(Duration) -> Tick + Send + 'static {
        let mut last = (Duration::ZERO, 0u64, 0u64, 0u64);
        move |el| {
            let acked = Counters::get(&counters.acked);
            let delivered = Counters::get(&counters.delivered);
            let errors = Counters::get(&counters.errors);
            let dt = (el - last.0).as_secs_f64().max(1e-3);
            let acked_rate = (acked - last.1) as f64 / dt;
            let delivered_rate = (delivered - last.2) as f64 / dt;
            let p99_ms = counters.take_p99_ms();
            let line = format!(
                "sent {} acked {acked} ({acked_rate:.0}/s) delivered {delivered} ({delivered_rate:.0}/s) \
                 p99 {} errors {errors}",
                Counters::get(&counters.sent),
                p99_ms.map_or_else(|| "-".to_owned(), |ms| format!("{ms:.2} ms")),
            );
            let rate = match main {
                Main::Acked => acked_rate,
                Main::Delivered => delivered_rate,
            };
            let sample =
                Sample { t: round2(el.as_secs_f64()), rate: rate.round(), p99_ms, errors: errors - last.3 };
            last = (el, acked, delivered, errors);
            Tick { line, sample }
        }
    }
}

/// `x` rounded to two decimals.
pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop_thread();
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
        a.reset();
        assert_eq!(a.count(), 0);
    }

    #[test]
    fn publish_moves_totals_and_the_interval() {
        let c = Counters::default();
        let mut last = Totals::default();
        let mut h = Hist::new();
        for ms in 1..=100u64 {
            h.record_ns(ms * 1_000_000);
        }
        c.publish(Totals { sent: 5, acked: 4, delivered: 3, errors: 1 }, &mut last, &mut h);
        c.publish(Totals { sent: 7, acked: 4, delivered: 6, errors: 1 }, &mut last, &mut h);
        assert_eq!(h.count(), 0, "the thread's interval is emptied");
        assert_eq!(Counters::get(&c.sent), 7);
        assert_eq!(Counters::get(&c.delivered), 6);
        assert_eq!(Counters::get(&c.errors), 1);
        assert!(c.take_p99_ms().is_some_and(|ms| (98.0..=100.5).contains(&ms)));
        assert_eq!(c.take_p99_ms(), None, "each interval starts empty");
    }

    #[test]
    fn rates_report_the_main_counter_and_the_interval() {
        let c = Arc::new(Counters::default());
        let mut tick = Progress::rates(Arc::clone(&c), Main::Delivered);
        let mut h = Hist::new();
        h.record_ns(2_000_000);
        c.publish(Totals { sent: 10, acked: 10, delivered: 20, errors: 2 }, &mut Totals::default(), &mut h);
        let t = tick(Duration::from_secs(1));
        assert_eq!(t.sample.rate, 20.0);
        assert_eq!(t.sample.errors, 2);
        assert!(t.sample.p99_ms.is_some_and(|ms| (1.99..=2.01).contains(&ms)));
        assert!(t.line.contains("p99 2.00 ms"), "{}", t.line);
        let t = tick(Duration::from_secs(2));
        assert_eq!((t.sample.rate, t.sample.errors, t.sample.p99_ms), (0.0, 0, None));
        assert!(t.line.contains("p99 -"), "{}", t.line);
    }
}
