//! A lossy network between two network namespaces, for the weak-network test.
//!
//! Role: [`NetLab::new`] creates two fresh namespaces (client and server),
//! starts the `netem-relay` binary (see its header: the kernel here has no
//! netem qdisc, so loss, delay and reordering are applied in user space on
//! IP packets between two TUN devices), and gives the client side
//! [`CLIENT_IP`] and the server side [`SERVER_IP`] (a /24 over the relay),
//! with loopback up in both. [`NetLab::command_in_server`] /
//! [`NetLab::command_in_client`] run a program inside a namespace (`ip netns
//! exec`), and [`NetLab::enter_client`] moves the calling thread (and the
//! threads it spawns afterwards) into the client namespace.
//!
//! Invariants: namespace names are unique per run (`msv-PID-N-c` / `-s`), so
//! leftovers of a crashed run never collide; [`NetLab::new`] first removes
//! leftovers whose test process is gone; dropping a [`NetLab`] kills the relay
//! and every process still inside its namespaces and deletes them. When
//! namespaces cannot be made (not root, no `/dev/net/tun`, no `ip`),
//! [`NetLab::new`] returns the reason, for the caller to print as a skip.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::broker_binary;

/// The client namespace's address.
pub const CLIENT_IP: &str = "10.77.0.1";
/// The server namespace's address.
pub const SERVER_IP: &str = "10.77.0.2";
const DEV: &str = "mtun0";
const PREFIX: &str = "msv-";

/// What the relay does to packets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Impairment {
    /// Drop probability client → server.
    pub loss_up: f64,
    /// Drop probability server → client.
    pub loss_down: f64,
    /// Fixed one-way delay, ms.
    pub delay_ms: u64,
    /// Extra uniform delay 0..=jitter, ms (reorders packets).
    pub jitter_ms: u64,
    /// RNG seed of the drop and jitter decisions.
    pub seed: u64,
}

/// Packet counters the relay reported (see `netem-relay --stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Client → server packets forwarded.
    pub up_forwarded: u64,
    /// Client → server packets dropped (loss or queue overflow).
    pub up_lost: u64,
    /// Server → client packets forwarded.
    pub down_forwarded: u64,
    /// Server → client packets dropped (loss or queue overflow).
    pub down_lost: u64,
}

/// Two namespaces joined by the lossy relay. See the module documentation.
#[derive(Debug)]
pub struct NetLab {
    /// Client namespace name.
    pub client_ns: String,
    /// Server namespace name.
    pub server_ns: String,
    relay: Option<Child>,
    stats: PathBuf,
    _tmp: tempfile::TempDir,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Kills every process inside namespace `ns` and deletes it (best effort).
fn remove_ns(ns: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Ok(pid) = pid.parse::<libc::pid_t>() {
                // SAFETY: kill(2) sends a signal; it touches no memory of this process.
                #[allow(unsafe_code)]
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
    let _ = ip(&["netns", "del", ns]);
}

/// Removes `msv-PID-*` namespaces whose test process `PID` no longer exists.
fn remove_stale() {
    let Ok(rd) = std::fs::read_dir("/run/netns") else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PREFIX) else { continue };
        let Some(pid) = rest.split('-').next() else { continue };
        if pid.parse::<u32>().is_ok() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            remove_ns(&name);
        }
    }
}

impl NetLab {
    /// Creates the namespaces and starts the relay with `imp`; `Err(reason)`
    /// when this machine cannot (the caller skips with that reason).
    pub fn new(imp: Impairment) -> Result<NetLab, String> {
        static N: AtomicUsize = AtomicUsize::new(0);
        if !std::path::Path::new("/dev/net/tun").exists() {
            return Err("/dev/net/tun does not exist".to_owned());
        }
        remove_stale();
        let n = N.fetch_add(1, Ordering::Relaxed);
        let base = format!("{PREFIX}{}-{n}", std::process::id());
        let (client_ns, server_ns) = (format!("{base}-c"), format!("{base}-s"));
        ip(&["netns", "add", &client_ns])?;
        let tmp = tempfile::Builder::new().prefix("missive-netlab-").tempdir().map_err(|e| e.to_string())?;
        let mut lab =
            NetLab { client_ns, server_ns, relay: None, stats: tmp.path().join("relay-stats"), _tmp: tmp };
        ip(&["netns", "add", &lab.server_ns])?;
        let relay = broker_binary().with_file_name(format!("netem-relay{}", std::env::consts::EXE_SUFFIX));
        if !relay.exists() {
            return Err(format!("{} not built (cargo build --release --workspace --bins)", relay.display()));
        }
        let mut child = Command::new("ip")
            .args(["netns", "exec", &lab.client_ns])
            .arg(&relay)
            .arg("--peer-ns")
            .arg(format!("/run/netns/{}", lab.server_ns))
            .args(["--dev", DEV])
            .args(["--loss-up", &imp.loss_up.to_string(), "--loss-down", &imp.loss_down.to_string()])
            .args(["--delay-ms", &imp.delay_ms.to_string(), "--jitter-ms", &imp.jitter_ms.to_string()])
            .args(["--seed", &imp.seed.to_string()])
            .arg("--stats")
            .arg(&lab.stats)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawn netem-relay: {e}"))?;
        let mut line = String::new();
        let stdout = child.stdout.take().ok_or("relay stdout")?;
        lab.relay = Some(child);
        // The relay prints one line once both TUN devices exist, or exits with an error.
        let _ = BufReader::new(stdout).read_line(&mut line);
        if line.trim() != "relay ready" {
            return Err(format!("netem-relay did not start (TUN devices unavailable?): {line:?}"));
        }
        for (ns, addr) in [(&lab.client_ns, CLIENT_IP), (&lab.server_ns, SERVER_IP)] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", DEV])?;
            ip(&["-n", ns, "link", "set", DEV, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(lab)
    }

    /// `ip netns exec SERVER program`: a command to run inside the server namespace.
    pub fn command_in_server(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.server_ns]).arg(program);
        c
    }

    /// `ip netns exec CLIENT program`: a command to run inside the client namespace.
    pub fn command_in_client(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.client_ns]).arg(program);
        c
    }

    /// Moves the calling thread into the client namespace; threads it spawns
    /// afterwards start there too. Use a dedicated thread.
    pub fn enter_client(&self) {
        let path = format!("/run/netns/{}", self.client_ns);
        let f = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: setns(2) on an fd we own; it changes only this thread's network namespace.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
    }

    /// The relay's latest packet counters (written about once a second).
    pub fn stats(&self) -> RelayStats {
        // The file is rewritten every second while packets flow; wait for a fresh one.
        std::thread::sleep(Duration::from_millis(2100));
        let text = std::fs::read_to_string(&self.stats).unwrap_or_default();
        let mut s = RelayStats::default();
        let mut overflow = (0, 0);
        for kv in text.split_whitespace() {
            let Some((k, v)) = kv.split_once('=') else { continue };
            let v: u64 = v.parse().unwrap_or(0);
            match k {
                "up_forwarded" => s.up_forwarded = v,
                "up_lost" => s.up_lost = v,
                "up_overflow" => overflow.0 = v,
                "down_forwarded" => s.down_forwarded = v,
                "down_lost" => s.down_lost = v,
                "down_overflow" => overflow.1 = v,
                _ => {}
            }
        }
        s.up_lost += overflow.0;
        s.down_lost += overflow.1;
        s
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        if let Some(mut r) = self.relay.take() {
            let _ = r.kill();
            let _ = r.wait();
        }
        remove_ns(&self.client_ns);
        remove_ns(&self.server_ns);
    }
}
