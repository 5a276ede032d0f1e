//! The broker under load: either spawned by loadgen (`--spawn`: the `missive`
//! binary on a fresh temporary data directory, loopback, port 0) or an
//! already running one (`--addr`, with `--broker-pid` for memory figures).
//!
//! Invariants:
//! - a spawned broker's stderr goes to a file in its temp directory (never a
//!   pipe nobody reads, which would stall it); its stdout is read only for the
//!   `missive listening tcp=ADDR [ws=ADDR] [quic=ADDR cert_sha256=HEX]` line,
//!   bounded by [`STARTUP_TIMEOUT`];
//! - a spawned broker never outlives the [`Broker`]: `stop` sends SIGTERM and
//!   waits (bounded), then SIGKILL; `Drop` kills it if `stop` was not called;
//! - the temp directory (RocksDB data and log) is removed after the process is
//!   gone, unless `--keep-data` asked to keep it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long a spawned broker may take to print its listening line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a spawned broker may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// How to start a broker.
#[derive(Debug, Clone)]
pub(crate) struct SpawnOpts {
    /// The `missive` binary.
    pub(crate) bin: PathBuf,
    /// `--durability` (fsync or buffered).
    pub(crate) durability: String,
    /// `--workers` (None: the broker's default, one per core).
    pub(crate) workers: Option<usize>,
    /// Keep the data directory (its path is printed).
    pub(crate) keep_data: bool,
    /// Give the broker a WebSocket listener and load that (`--transport ws`).
    pub(crate) ws: bool,
    /// Give the broker a raw QUIC listener (`--transport quic`).
    pub(crate) quic: bool,
}

/// The broker's raw QUIC listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QuicTarget {
    /// UDP address (`quic=`).
    pub(crate) addr: SocketAddr,
    /// Hex SHA-256 of its certificate (`cert_sha256=`).
    pub(crate) cert_sha256: String,
}

#[derive(Debug)]
enum Kind {
    Spawned { child: Child, dir: Option<tempfile::TempDir>, log: PathBuf },
    External { pid: Option<u32> },
}

/// A broker to send load to.
#[derive(Debug)]
pub(crate) struct Broker {
    /// Where clients connect (TCP or WebSocket).
    pub(crate) addr: SocketAddr,
    /// The QUIC listener, if the broker was spawned with one.
    pub(crate) quic: Option<QuicTarget>,
    kind: Kind,
}

/// The `missive` binary next to this executable (cargo puts every binary of
/// a profile in the same directory).
pub(crate) fn default_broker_bin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the loadgen executable")?;
    let dir = exe.parent().context("loadgen executable has no directory")?;
    let bin = dir.join(format!("missive{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        bail!(
            "broker binary not found at {} — build it with `cargo build --release -p missive-broker --bin missive` \
             (same CARGO_TARGET_DIR) or pass --broker-bin",
            bin.display()
        );
    }
    Ok(bin)
}

impl Broker {
    /// Starts a broker on a fresh temporary directory with `secret`.
    pub(crate) fn spawn(opts: &SpawnOpts, secret: &str) -> anyhow::Result<Self> {
        let dir =
            tempfile::Builder::new().prefix("missive-loadgen-").tempdir().context("creating temp dir")?;
        let log = dir.path().join("broker.log");
        let log_file = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        // Load runs from one address at full speed: no per-device send or handshake rate.
        let config = dir.path().join("loadgen.toml");
        std::fs::write(&config, "[limits]\nmax_sends_per_sec = 1000000\nmax_requests_per_sec = 1000000\nmax_handshakes_per_ip_per_sec = 0\n\n[messages]\nedit_direct = true\n")
            .with_context(|| format!("writing {}", config.display()))?;
        let mut cmd = Command::new(&opts.bin);
        cmd.arg("--data")
            .arg(dir.path().join("data"))
            .args(["--tcp", "127.0.0.1:0", "--api", "127.0.0.1:0", "--durability", &opts.durability])
            .arg("--config")
            .arg(&config)
            .env("MISSIVE_SECRET", secret)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file));
        if let Some(w) = opts.workers {
            cmd.args(["--workers", &w.to_string()]);
        }
        if opts.ws {
            cmd.args(["--ws", "127.0.0.1:0"]);
        }
        if opts.quic {
            cmd.args(["--quic", "127.0.0.1:0"]);
        }
        let (want_ws, want_quic) = (opts.ws, opts.quic);
        let mut child = cmd.spawn().with_context(|| format!("starting {}", opts.bin.display()))?;
        let stdout = child.stdout.take().context("broker stdout not piped")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            // Read to EOF so the broker never blocks on a full stdout pipe.
            while matches!(r.read_line(&mut line), Ok(n) if n > 0) {
                if let Some(found) = parse_listening(&line, want_ws, want_quic) {
                    let _ = tx.send(found);
                }
                line.clear();
            }
        });
        let (addr, quic) = match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                bail!("broker did not print its listening line; its log:\n{}", last_lines(&tail, 20));
            }
        };
        let dir = if opts.keep_data {
            eprintln!("loadgen: broker data kept in {}", dir.path().display());
            let _ = dir.keep();
            None
        } else {
            Some(dir)
        };
        Ok(Self { addr, quic, kind: Kind::Spawned { child, dir, log } })
    }

    /// A broker that is already running at `addr`.
    pub(crate) fn external(addr: SocketAddr, pid: Option<u32>) -> Self {
        Self { addr, quic: None, kind: Kind::External { pid } }
    }

    /// Whether loadgen started this broker.
    pub(crate) fn spawned(&self) -> bool {
        matches!(self.kind, Kind::Spawned { .. })
    }

    /// The broker's process id, if known.
    pub(crate) fn pid(&self) -> Option<u32> {
        match &self.kind {
            Kind::Spawned { child, .. } => Some(child.id()),
            Kind::External { pid } => *pid,
        }
    }

    /// Resident memory of the broker process in KiB, if its pid is known.
    pub(crate) fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid()?)
    }

    /// Whether the spawned broker is still running (external: assumed yes).
    pub(crate) fn alive(&mut self) -> bool {
        match &mut self.kind {
            Kind::Spawned { child, .. } => matches!(child.try_wait(), Ok(None)),
            Kind::External { .. } => true,
        }
    }

    /// Lines of the spawned broker's log that contain `needle` (at most `max`).
    pub(crate) fn log_lines(&self, needle: &str, max: usize) -> Vec<String> {
        let Kind::Spawned { log, .. } = &self.kind else { return Vec::new() };
        let text = std::fs::read_to_string(log).unwrap_or_default();
        text.lines().filter(|l| l.contains(needle)).take(max).map(str::to_owned).collect()
    }

    /// Stops a spawned broker (SIGTERM, bounded wait, then SIGKILL). Returns
    /// whether it exited cleanly; an external broker is left alone.
    pub(crate) fn stop(mut self) -> bool {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> bool {
        let Kind::Spawned { child, .. } = &mut self.kind else { return true };
        stop_child(child, STOP_TIMEOUT).is_some_and(|s| s.success())
    }
}

/// Stops our child process: SIGTERM, up to `timeout` for it to exit, then
/// SIGKILL. Returns its exit status if it exited by itself (None: it had to
/// be killed, or could not be waited for).
pub(crate) fn stop_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    terminate(child.id());
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Kind::Spawned { child, dir, .. } = &mut self.kind {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
                let _ = child.wait();
            }
            // Remove the data only once the process is gone.
            drop(dir.take());
        }
    }
}

/// Sends SIGTERM to `pid` (our own child).
fn terminate(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return };
    // SAFETY: kill(2) only sends a signal to a process; it touches no memory
    // of this one. `pid` is our own child, not yet reaped, so it is not reused.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
}

/// `VmRSS` of process `pid` in KiB (from `/proc/PID/status`).
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status")).ok()?;
    parse_vmrss(&status)
}

/// CPU a process (the server under load) spends during one phase of a run.
///
/// [`CpuWindow::start`] reads every thread's `/proc/PID/task/TID/schedstat`
/// (nanoseconds on the CPU), so a phase of a few milliseconds is still
/// measured (the process-wide tick counters are the fallback); a thread
/// that exits during the phase takes its time with it, which is fine for
/// the broker (its workers, writers and RocksDB pools live as long as it).
/// [`CpuWindow::whole`] reads the process-wide tick counters ([`cpu_secs`],
/// 10 ms steps), which keep the time of exited threads: for whole runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuWindow {
    pid: Option<u32>,
    start: Option<f64>,
    precise: bool,
}

impl CpuWindow {
    /// Starts counting `pid`'s CPU during a phase (None: unknown, every
    /// figure is None).
    pub(crate) fn start(pid: Option<u32>) -> Self {
        Self { pid, start: pid.and_then(precise_cpu_secs), precise: true }
    }

    /// Starts counting `pid`'s CPU over a whole run, exited threads included.
    pub(crate) fn whole(pid: Option<u32>) -> Self {
        Self { pid, start: pid.and_then(cpu_secs), precise: false }
    }

    /// CPU seconds used since the start, three decimals (two for `whole`).
    pub(crate) fn secs(&self) -> Option<f64> {
        let pid = self.pid?;
        let (a, b, scale) = if self.precise {
            (self.start?, precise_cpu_secs(pid)?, 1000.0)
        } else {
            (self.start?, cpu_secs(pid)?, 100.0)
        };
        Some(((b - a).max(0.0) * scale).round() / scale)
    }

    /// `cpu_s` spread over `units` of work, in microseconds per unit (three
    /// decimals); None without a CPU figure or without work.
    pub(crate) fn per_unit_us(cpu_s: Option<f64>, units: u64) -> Option<f64> {
        let cpu = cpu_s?;
        (units > 0).then(|| (cpu * 1e6 / units as f64 * 1000.0).round() / 1000.0)
    }
}

/// User + system CPU seconds used so far by process `pid` (`/proc/PID/stat`;
/// Linux reports them in USER_HZ = 100 ticks per second).
pub(crate) fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")).ok()?;
    parse_cpu_ticks(&stat).map(|t| t as f64 / 100.0)
}

/// CPU seconds of `pid`'s live threads (sum of their schedstat run times),
/// else the process's tick counters.
fn precise_cpu_secs(pid: u32) -> Option<f64> {
    let dir = Path::new("/proc").join(pid.to_string()).join("task");
    // A thread that exits between the listing and its read is skipped.
    let ns: Option<u64> = std::fs::read_dir(dir).ok().map(|tasks| {
        tasks
            .filter_map(|t| {
                let stat = std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok()?;
                stat.split_whitespace().next()?.parse::<u64>().ok()
            })
            .sum()
    });
    match ns {
        Some(ns) if ns > 0 => Some(ns as f64 / 1e9),
        _ => cpu_secs(pid),
    }
}

fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // Fields after the command name (which may contain spaces, closed by the last ')').
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some(utime + stime)
}

fn parse_vmrss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// From `missive listening tcp=ADDR [ws=ADDR] [quic=ADDR cert_sha256=HEX]`:
/// the address clients use (`ws=` if `ws`, else `tcp=`) and, if `quic`, the
/// QUIC listener; `None` for any other line or a missing field.
fn parse_listening(line: &str, ws: bool, quic: bool) -> Option<(SocketAddr, Option<QuicTarget>)> {
    let rest = line.trim().strip_prefix("missive listening ")?;
    let field = |key: &str| rest.split_whitespace().find_map(|w| w.strip_prefix(key));
    let addr = field(if ws { "ws=" } else { "tcp=" })?.parse().ok()?;
    let quic = if quic {
        Some(QuicTarget {
            addr: field("quic=")?.parse().ok()?,
            cert_sha256: field("cert_sha256=")?.to_owned(),
        })
    } else {
        None
    };
    Some((addr, quic))
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vmrss() {
        assert_eq!(parse_vmrss("Name:\tx\nVmRSS:\t   12345 kB\nVmSwap: 0 kB\n"), Some(12345));
        assert_eq!(parse_vmrss("Name:\tx\n"), None);
        assert!(rss_kib(std::process::id()).is_some_and(|k| k > 0));
    }

    #[test]
    fn parses_the_listening_line() {
        let line = "missive listening tcp=127.0.0.1:5 ws=127.0.0.1:6 quic=127.0.0.1:7 cert_sha256=ab12\n";
        let at = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        assert_eq!(parse_listening(line, false, false), Some((at(5), None)));
        assert_eq!(parse_listening(line, true, false), Some((at(6), None)));
        let quic = QuicTarget { addr: at(7), cert_sha256: "ab12".to_owned() };
        assert_eq!(parse_listening(line, false, true), Some((at(5), Some(quic))));
        assert_eq!(parse_listening("missive listening tcp=127.0.0.1:5", false, true), None);
        assert_eq!(parse_listening("missive listening tcp=127.0.0.1:5", true, false), None);
        assert_eq!(parse_listening("something else", false, false), None);
    }

    #[test]
    fn parses_cpu_ticks() {
        let stat = "42 (a b) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        assert_eq!(parse_cpu_ticks("garbage"), None);
        assert!(cpu_secs(std::process::id()).is_some());
        assert_eq!(CpuWindow::per_unit_us(Some(2.0), 1_000_000), Some(2.0));
        assert_eq!(CpuWindow::per_unit_us(Some(2.0), 0), None);
        assert_eq!(CpuWindow::per_unit_us(None, 5), None);
        assert!(CpuWindow::start(Some(std::process::id())).secs().is_some());
        assert!(CpuWindow::whole(Some(std::process::id())).secs().is_some());
        assert_eq!(CpuWindow::start(None).secs(), None);
        assert!(precise_cpu_secs(std::process::id()).is_some_and(|s| s > 0.0));
    }
}
