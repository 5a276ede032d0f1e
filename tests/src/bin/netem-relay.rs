//! `netem-relay`: a user-space lossy link between two network namespaces, for
//! the weak-network black-box test (`robustness::weak_network`).
//!
//! Why not netem: the usual tool is the `netem` qdisc (`tc qdisc add dev X
//! root netem loss 30% delay 40ms 20ms`), but the test machine's kernel (a
//! Firecracker VM without modules) has no netem qdisc (`tc` answers
//! "Specified qdisc kind is unknown"), nor prio/gact qdiscs, iptables or
//! nftables. `/dev/net/tun` and network namespaces do exist, so the same
//! impairment is built in user space at the IP-packet level: one TUN device in
//! each namespace, and this process forwarding IP packets between them. TCP
//! and QUIC (UDP) see real loss, delay and reordering, exactly as through
//! netem; only the kernel is not the one dropping.
//!
//! Role: started inside the client namespace (`ip netns exec C netem-relay
//! --peer-ns /run/netns/S ...`), it creates TUN device `--dev` there (side A),
//! joins the server namespace with `setns(2)` and creates a TUN device of the
//! same name there (side B); an opened TUN fd stays bound to its namespace.
//! It prints `relay ready` on stdout once both exist (the caller then assigns
//! addresses and brings the links up), and forwards packets until killed.
//! Each packet read on one side is dropped with probability `--loss-up`
//! (A→B, client to server) or `--loss-down` (B→A), else written to the other
//! side after `--delay-ms` plus a uniform `0..=--jitter-ms` (a later packet
//! with less jitter overtakes an earlier one: reordering). At most `--limit`
//! packets wait (netem's `limit`); beyond that packets are dropped.
//!
//! Invariants: the RNG is seeded (`--seed`), so a run's drop pattern depends
//! only on its packet sequence; a packet is written at most once (the relay
//! never duplicates); counters of forwarded and dropped packets per direction
//! are written to `--stats FILE` about once a second, so the test reports the
//! loss it really got.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// `TUNSETIFF` = `_IOW('T', 202, int)`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

#[derive(Debug)]
struct Args {
    peer_ns: PathBuf,
    dev: String,
    loss_up: f64,
    loss_down: f64,
    delay: Duration,
    jitter_ms: u64,
    seed: u64,
    limit: usize,
    stats: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        peer_ns: PathBuf::new(),
        dev: "mtun0".to_owned(),
        loss_up: 0.0,
        loss_down: 0.0,
        delay: Duration::ZERO,
        jitter_ms: 0,
        seed: 1,
        limit: 1000,
        stats: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<f64>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--peer-ns" => a.peer_ns = PathBuf::from(v),
            "--dev" => a.dev = v,
            "--loss-up" => a.loss_up = num(&v)?,
            "--loss-down" => a.loss_down = num(&v)?,
            "--delay-ms" => a.delay = Duration::from_millis(num(&v)? as u64),
            "--jitter-ms" => a.jitter_ms = num(&v)? as u64,
            "--seed" => a.seed = num(&v)? as u64,
            "--limit" => a.limit = num(&v)? as usize,
            "--stats" => a.stats = Some(PathBuf::from(v)),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.peer_ns.as_os_str().is_empty() {
        return Err("--peer-ns PATH is required".to_owned());
    }
    if a.dev.is_empty() || a.dev.len() > 15 {
        return Err(format!("--dev {:?}: 1..=15 bytes", a.dev));
    }
    if !(0.0..=1.0).contains(&a.loss_up) || !(0.0..=1.0).contains(&a.loss_down) {
        return Err("loss is a fraction in 0..=1".to_owned());
    }
    Ok(a)
}

#[repr(C)]
struct IfReq {
    name: [u8; 16],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Creates (or attaches to) TUN device `name` in the calling thread's network namespace.
fn open_tun(name: &str) -> io::Result<File> {
    let f = OpenOptions::new().read(true).write(true).open("/dev/net/tun")?;
    let mut req =
        IfReq { name: [0; 16], flags: (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short, _pad: [0; 22] };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: TUNSETIFF reads and writes one `struct ifreq` (40 bytes, which
    // `IfReq` is, repr(C)) that lives for the whole call; the fd is ours.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), TUNSETIFF, &mut req as *mut IfReq) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(f)
}

/// Moves the calling thread into the network namespace at `path` (`/run/netns/NAME`).
fn enter_netns(path: &PathBuf) -> io::Result<()> {
    let f = File::open(path)?;
    // SAFETY: setns(2) on an fd we own; it changes only this thread's namespace.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// splitmix64: small, seeded, good enough for drop decisions and jitter.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A packet waiting for its time: (due, arrival order, direction 0 = A→B, packet).
type Delayed = (Instant, u64, u8, Vec<u8>);

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    forwarded: u64,
    lost: u64,
    overflow: u64,
}

fn run(a: Args) -> io::Result<()> {
    let mut side_a = open_tun(&a.dev)?;
    enter_netns(&a.peer_ns)?;
    let mut side_b = open_tun(&a.dev)?;
    {
        let mut out = io::stdout().lock();
        writeln!(out, "relay ready")?;
        out.flush()?;
    }
    let mut rng = Rng(a.seed);
    let mut queue: BinaryHeap<Reverse<Delayed>> = BinaryHeap::new();
    let mut counters = [Counters::default(); 2];
    let mut order = 0u64;
    let mut buf = vec![0u8; 65_536];
    let mut last_stats = Instant::now();
    loop {
        let now = Instant::now();
        let timeout_ms = match queue.peek() {
            Some(Reverse((due, ..))) => due.saturating_duration_since(now).as_millis().min(1000) as i32,
            None => 1000,
        };
        let mut fds = [
            libc::pollfd { fd: side_a.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: side_b.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: poll(2) on two pollfd structs owned by this frame, length 2.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for (dir, pfd) in fds.iter().enumerate() {
            if pfd.revents & libc::POLLIN == 0 {
                continue;
            }
            let src = if dir == 0 { &mut side_a } else { &mut side_b };
            let n = src.read(&mut buf)?;
            let loss = if dir == 0 { a.loss_up } else { a.loss_down };
            let c = &mut counters[dir];
            if rng.unit() < loss {
                c.lost += 1;
                continue;
            }
            if queue.len() >= a.limit {
                c.overflow += 1;
                continue;
            }
            let jitter = if a.jitter_ms == 0 { 0 } else { rng.next() % (a.jitter_ms + 1) };
            let due = Instant::now() + a.delay + Duration::from_millis(jitter);
            order += 1;
            queue.push(Reverse((due, order, dir as u8, buf[..n].to_vec())));
        }
        let now = Instant::now();
        while queue.peek().is_some_and(|Reverse((due, ..))| *due <= now) {
            let Some(Reverse((_, _, dir, pkt))) = queue.pop() else { break };
            let dst = if dir == 0 { &mut side_b } else { &mut side_a };
            // A TUN write takes the whole packet or fails; a failure (e.g. the link
            // is still down) is a lost packet, as on a wire.
            match dst.write_all(&pkt) {
                Ok(()) => counters[usize::from(dir)].forwarded += 1,
                Err(_) => counters[usize::from(dir)].lost += 1,
            }
        }
        if let Some(path) = &a.stats
            && last_stats.elapsed() >= Duration::from_secs(1)
        {
            last_stats = Instant::now();
            let [u, d] = counters;
            let line = format!(
                "up_forwarded={} up_lost={} up_overflow={} down_forwarded={} down_lost={} down_overflow={}\n",
                u.forwarded, u.lost, u.overflow, d.forwarded, d.lost, d.overflow
            );
            let tmp = path.with_extension("tmp");
            if std::fs::write(&tmp, line).is_ok() {
                let _ = std::fs::rename(&tmp, path);
            }
        }
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("netem-relay: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netem-relay: {e}");
            ExitCode::FAILURE
        }
    }
}
