//! Command line of the broker binary: reads `missive.toml` and flags, starts
//! the broker, prints `missive listening tcp=ADDR [ws=ADDR] [quic=ADDR]` on stdout, and stops it
//! cleanly on SIGINT/SIGTERM. Shared by the `missive` binary and the tests'
//! broker-under-test binary.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::{Broker, Config, DurabilityMode};
use anyhow::Context;
use clap::Parser;

/// Missive instant-messaging broker.
#[derive(Debug, Parser)]
#[command(version, about)]
pub(crate) struct Args {
    /// Configuration file (TOML). Flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory (embedded RocksDB).
    #[arg(long)]
    data: Option<PathBuf>,
    /// TCP listen address, e.g. 127.0.0.1:7700 (port 0 picks a free port).
    #[arg(long)]
    tcp: Option<SocketAddr>,
    /// Token secret (at least 16 bytes). Also read from MISSIVE_SECRET.
    #[arg(long, env = "MISSIVE_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Worker threads (0 = cores).
    #[arg(long)]
    workers: Option<usize>,
    /// Durability: fsync or buffered.
    #[arg(long, value_parser = ["fsync", "buffered"])]
    durability: Option<String>,
    /// WebSocket/HTTP listen address, e.g. 127.0.0.1:7780 (port 0 picks a free port).
    #[arg(long)]
    ws: Option<SocketAddr>,
    /// QUIC (UDP) listen address for raw QUIC and WebTransport.
    #[arg(long)]
    quic: Option<SocketAddr>,
    /// Directory of the chat page served on the ws listener at `/`.
    #[arg(long)]
    static_dir: Option<PathBuf>,
    /// Development mode: the chat page may mint tokens. Never in production.
    #[arg(long)]
    dev: bool,
}

/// Runs the broker until a signal; returns when it stopped cleanly.
pub fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let mut config = match &args.config {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            Config::from_toml(&text)?
        }
        None => Config::default(),
    };
    if let Some(d) = args.data {
        config.data_dir = d;
    }
    if let Some(t) = args.tcp {
        config.tcp = t;
    }
    if let Some(s) = args.secret {
        config.secret = s;
    }
    if let Some(w) = args.workers {
        config.workers = w;
    }
    if let Some(d) = args.durability.as_deref() {
        config.durability = if d == "buffered" { DurabilityMode::Buffered } else { DurabilityMode::Fsync };
    }
    if args.ws.is_some() {
        config.ws = args.ws;
    }
    if args.quic.is_some() {
        config.quic = args.quic;
    }
    if args.static_dir.is_some() {
        config.web.static_dir = args.static_dir;
    }
    config.web.dev_mode |= args.dev;
    config.validate()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let broker = Broker::start(config)?;
    // Machine-readable line for scripts and tests (stdout; logs go to stderr).
    println!("{}", broker.listening_line());
    let mut signals =
        signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])?;
    if let Some(sig) = signals.forever().next() {
        tracing::info!(signal = sig, "shutting down");
    }
    broker.shutdown();
    broker.join()?;
    tracing::info!("stopped cleanly");
    Ok(())
}
