//! Command line of `loadgen`: the target broker (global flags, accepted
//! before or after the scenario name) and one subcommand per scenario.
//!
//! Invariants: every scenario is bounded in time and count by its flags (the
//! value parsers reject zero and unbounded sizes); defaults are the issue's
//! target sizes, `make bench` passes smaller ones.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Load generator for the Missive broker: real protocol over TCP, WebSocket or QUIC on loopback.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version, about, max_term_width = 100)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    #[command(subcommand)]
    pub(crate) scenario: Scenario,
}

/// Which broker to load, and how to report.
#[derive(Debug, Args)]
pub(crate) struct TargetArgs {
    /// Start a broker for this run (temp data dir, 127.0.0.1, port 0).
    #[arg(long, global = true)]
    pub(crate) spawn: bool,
    /// Load an already running broker at HOST:PORT instead of --spawn.
    #[arg(long, global = true)]
    pub(crate) addr: Option<SocketAddr>,
    /// Broker binary for --spawn (default: `missive` next to this executable).
    #[arg(long, global = true)]
    pub(crate) broker_bin: Option<PathBuf>,
    /// Pid of the --addr broker, for its memory (idle scenario).
    #[arg(long, global = true)]
    pub(crate) broker_pid: Option<u32>,
    /// Token secret of the broker (--spawn: random if unset).
    #[arg(long, global = true, env = "MISSIVE_SECRET", hide_env_values = true)]
    pub(crate) secret: Option<String>,
    /// Durability of the spawned broker (default fsync); with --addr, only a label.
    #[arg(long, global = true, value_parser = ["fsync", "buffered"])]
    pub(crate) durability: Option<String>,
    /// Worker threads of the spawned broker (default: the broker's, one per core).
    #[arg(long, global = true)]
    pub(crate) workers: Option<usize>,
    /// Keep the spawned broker's data directory (its path is printed).
    #[arg(long, global = true)]
    pub(crate) keep_data: bool,
    /// One JSON object per run on stdout instead of a table. It includes the
    /// per-second time series (`series`).
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Also write the run's time series (rate and p99 latency per second) as an
    /// SVG plot to PATH. Not written unless asked, with or without --json.
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) plot: Option<PathBuf>,
    /// Transport of every client connection: `tcp` (length-prefixed frames), `ws`
    /// (WebSocket `GET /ws`, one binary message per frame) or `quic` (raw QUIC, one
    /// stream per connection; not for idle). With --spawn the broker gets a WebSocket
    /// or QUIC listener; with --addr, pass the broker's `ws=` address as --addr, or
    /// its `quic=` and `cert_sha256=` as --quic-addr and --cert-sha256. QUIC goes
    /// through an in-process relay (loopback TCP -> QUIC, see --quic-threads) whose
    /// CPU counts in loadgen's, on the broker's machine; the broker bridges QUIC to
    /// its TCP listener over loopback too: QUIC rows measure both relays.
    #[arg(long, global = true, default_value = "tcp", value_parser = ["tcp", "ws", "quic"])]
    pub(crate) transport: String,
    /// --transport quic with --addr: the broker's QUIC (UDP) address, its `quic=`.
    /// --addr may then be omitted.
    #[arg(long, global = true)]
    pub(crate) quic_addr: Option<SocketAddr>,
    /// --transport quic with --addr: SHA-256 (hex) of the broker's certificate, its
    /// `cert_sha256=`; the relay pins it.
    #[arg(long, global = true, value_parser = sha256_hex)]
    pub(crate) cert_sha256: Option<String>,
    /// --transport quic: threads of the relay (each one tokio runtime and one QUIC
    /// endpoint).
    #[arg(long, global = true, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub(crate) quic_threads: u32,
}

fn sha256_hex(s: &str) -> Result<String, String> {
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err("expected 64 hexadecimal digits (the broker's cert_sha256=)".to_owned())
    }
}

/// The scenarios.
#[derive(Debug, Subcommand)]
pub(crate) enum Scenario {
    /// P sender→receiver pairs, each sender with at most W unacknowledged messages.
    Pairs(PairsArgs),
    /// `pairs` plus message lifecycle requests on acked messages (default:
    /// 10 % reactions, 2 % recalls, 2 % edits).
    Mixed(MixedArgs),
    /// A fixed send rate; delivery latency percentiles.
    Latency(LatencyArgs),
    /// One group with N online members: one sends, every other member must receive.
    Fanout(FanoutArgs),
    /// The `fanout` measurement against NATS core (a `nats-server` spawned on
    /// loopback): N connections, N - 1 subscribers and one publisher.
    NatsFanout(NatsFanoutArgs),
    /// N authenticated idle connections; broker memory per connection.
    Idle(IdleArgs),
    /// A user offline while C conversations get M messages; time for a fresh device to catch up.
    Sync(SyncArgs),
    /// Run pairs, fanout (and nats-fanout), sync and idle at growing sizes, each
    /// as `loadgen SCENARIO --spawn --durability fsync --json`; write the
    /// results (JSON) and one SVG curve per scenario.
    Curves(CurvesArgs),
    /// Internal: one idle-connection generator process (spawned by `idle`).
    #[command(hide = true)]
    IdleChild(IdleChildArgs),
}

fn secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 3600.0 => Ok(v),
        _ => Err("expected seconds in (0, 3600]".to_owned()),
    }
}

/// Load-loop knobs shared by pairs and latency.
#[derive(Debug, Clone, Args)]
pub(crate) struct LoadArgs {
    /// Seconds of sending.
    #[arg(long, default_value = "10", value_parser = secs)]
    pub(crate) secs: f64,
    /// Text size of each message, bytes (at least the ~17-byte time stamp).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=60_000))]
    pub(crate) size: u32,
    /// Generator threads (each drives its share of the pairs on one event loop).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub(crate) threads: u32,
    /// After sending stops, seconds to wait for outstanding acks and deliveries.
    #[arg(long, default_value = "10", value_parser = secs)]
    pub(crate) drain_secs: f64,
}

#[derive(Debug, Args)]
pub(crate) struct PairsArgs {
    /// Sender→receiver pairs (one direct conversation each).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=5000))]
    pub(crate) pairs: u32,
    /// Unacknowledged messages each sender keeps in flight (broker allows 1024).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub(crate) window: u32,
    #[command(flatten)]
    pub(crate) load: LoadArgs,
}

#[derive(Debug, Args)]
pub(crate) struct MixedArgs {
    #[command(flatten)]
    pub(crate) pairs: PairsArgs,
    /// Percent of acked messages the sender then reacts to.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub(crate) react_pct: u32,
    /// Percent of acked messages the sender then recalls.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub(crate) recall_pct: u32,
    /// Percent of acked messages the sender then edits (needs `messages.edit_direct`).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub(crate) edit_pct: u32,
}

#[derive(Debug, Args)]
pub(crate) struct LatencyArgs {
    /// Messages per second, in total, on a fixed schedule.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=2_000_000))]
    pub(crate) rate: u32,
    /// Sender→receiver pairs sharing the rate (round robin).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=5000))]
    pub(crate) pairs: u32,
    #[command(flatten)]
    pub(crate) load: LoadArgs,
}

#[derive(Debug, Args)]
pub(crate) struct FanoutArgs {
    /// Online members of the group, the sender included (the broker allows 10 000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(2..=10_000))]
    pub(crate) members: u32,
    /// Seconds of sending.
    #[arg(long, default_value = "10", value_parser = secs)]
    pub(crate) secs: f64,
    /// Unacknowledged messages the sender keeps in flight.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub(crate) window: u32,
    /// Text size of each message, bytes.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=60_000))]
    pub(crate) size: u32,
    /// After sending stops, seconds to wait for outstanding acks and deliveries.
    #[arg(long, default_value = "10", value_parser = secs)]
    pub(crate) drain_secs: f64,
}

#[derive(Debug, Args)]
pub(crate) struct NatsFanoutArgs {
    #[command(flatten)]
    pub(crate) fanout: FanoutArgs,
    /// The `nats-server` executable (default: `nats-server` on PATH, then
    /// /usr/sbin/nats-server, where Debian's package puts it).
    #[arg(long, value_name = "PATH")]
    pub(crate) nats_server: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct CurvesArgs {
    /// Directory of the outputs: curves.json and curve-{pairs,fanout,sync,idle}.svg.
    #[arg(long, default_value = "bench/results", value_name = "DIR")]
    pub(crate) out: PathBuf,
    /// Small sizes and 2-second runs, to check the driver (about a minute);
    /// also set by the environment variable CURVES=quick.
    #[arg(long)]
    pub(crate) quick: bool,
    /// Only these curves (comma-separated: pairs, fanout, sync, idle).
    #[arg(long, value_delimiter = ',', value_parser = ["pairs", "fanout", "sync", "idle"])]
    pub(crate) only: Vec<String>,
    /// Seconds of sending of each pairs and fanout point.
    #[arg(long, default_value = "5", value_parser = secs)]
    pub(crate) secs: f64,
    /// Leave NATS out of the fanout curve.
    #[arg(long)]
    pub(crate) no_nats: bool,
    /// Run nothing: redraw the SVGs from the curves.json already in --out.
    #[arg(long)]
    pub(crate) replot: bool,
}

#[derive(Debug, Args)]
pub(crate) struct IdleArgs {
    /// Idle connections to hold open.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=200_000))]
    pub(crate) conns: u32,
    /// Source addresses used, 127.0.0.2 upwards (round robin).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=250))]
    pub(crate) sources: u32,
    /// Connections per generator process (a process may open 20 000 files at most).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..=19_000))]
    pub(crate) per_process: u32,
    /// Seconds to hold the connections after all are up, before measuring memory.
    #[arg(long, default_value = "2", value_parser = secs)]
    pub(crate) settle_secs: f64,
    /// Seconds allowed for all connections to complete their handshake.
    #[arg(long, default_value = "120", value_parser = secs)]
    pub(crate) connect_secs: f64,
}

#[derive(Debug, Args)]
pub(crate) struct SyncArgs {
    /// Conversations (peers) that message the offline user.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=20_000))]
    pub(crate) convs: u32,
    /// Messages in total, spread evenly over the conversations.
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub(crate) msgs: u32,
    /// Unacknowledged sends per peer while filling.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub(crate) window: u32,
    /// Text size of each message, bytes.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=60_000))]
    pub(crate) size: u32,
    /// Pull requests the syncing device keeps in flight.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub(crate) pulls_in_flight: u32,
    /// Seconds allowed for filling, and again for the sync itself.
    #[arg(long, default_value = "300", value_parser = secs)]
    pub(crate) timeout_secs: f64,
}

/// One idle generator process: its share of the connections.
#[derive(Debug, Args)]
pub(crate) struct IdleChildArgs {
    /// Broker address.
    #[arg(long)]
    pub(crate) to: SocketAddr,
    /// User id prefix of the run.
    #[arg(long)]
    pub(crate) prefix: String,
    /// Index of this process's first connection.
    #[arg(long)]
    pub(crate) first: u32,
    /// Connections this process opens.
    #[arg(long)]
    pub(crate) count: u32,
    /// Source addresses (127.0.0.2 upwards).
    #[arg(long)]
    pub(crate) sources: u32,
    /// Seconds allowed for all handshakes.
    #[arg(long)]
    pub(crate) connect_secs: f64,
}
