//! Command line of the broker binary: reads `missive.toml` and flags, starts
//! the broker, prints `missive listening tcp=ADDR [ws=ADDR] [tcp_tls=ADDR] [wss=ADDR]
//! [quic=ADDR] [cert_sha256=HEX]` on stdout, reloads the TLS certificate on SIGHUP (and then
//! prints `missive tls reloaded cert_sha256=HEX`), and stops it cleanly on SIGINT/SIGTERM. Shared by the `missive` binary and the tests'
//! broker-under-test binary.
//!
//! Maintenance subcommands work on a stopped broker's data directory:
//! `missive verify --data DIR` (read everything with checksums), `missive
//! repair --data DIR` (RocksDB RepairDB, last resort) and `missive restore
//! --from BACKUP --data DIR` (copy a checkpoint into a new data directory).
//!
//! Exit status: 0 after a clean stop (or a valid `--check-config`, or a
//! successful maintenance command); 2 for a user
//! error (a bad flag, an unreadable or invalid configuration), reported as ONE line
//! on stderr naming the key, the rule and the fix, never with a stack trace, even
//! under `RUST_BACKTRACE=1`; 1 when the broker fails at run time (one line, the
//! error chain). Panics are bugs and keep Rust's report (and backtrace).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::ConfigError;
use crate::{Broker, BrokerError, Config, DurabilityMode};
use clap::{Parser, Subcommand};
use missive_storage::{Store, StoreOptions};

/// Missive instant-messaging broker.
#[derive(Debug, Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
pub(crate) struct Args {
    /// Maintenance of a stopped broker's data directory (README "Operations").
    #[command(subcommand)]
    command: Option<Maintenance>,
    /// Configuration file (TOML; every key: docs/CONFIG.md). Flags override it.
    #[arg(long, conflicts_with = "check_config")]
    config: Option<PathBuf>,
    /// Validate this configuration file (with the other flags and MISSIVE_SECRET
    /// applied), print the effective configuration and exit: 0 if valid, 2 if not.
    #[arg(long, value_name = "FILE")]
    check_config: Option<PathBuf>,
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
    /// TLS listen address for native clients (ALPN missive/1).
    #[arg(long)]
    tcp_tls: Option<SocketAddr>,
    /// HTTPS / secure WebSocket listen address.
    #[arg(long)]
    wss: Option<SocketAddr>,
    /// Admin REST API listen address (`[api] listen`, default 127.0.0.1:7701; port 0 picks a free port).
    #[arg(long)]
    api: Option<SocketAddr>,
    /// Directory of the chat page served on the ws listener at `/`.
    #[arg(long)]
    static_dir: Option<PathBuf>,
    /// Development mode: the chat page may mint tokens. Never in production.
    #[arg(long)]
    dev: bool,
}

/// Commands on a data directory no broker has open.
#[derive(Debug, Subcommand)]
enum Maintenance {
    /// Read every entry of the store with checksums (read-only). Exit 0 if it is sound, 1 if damaged.
    Verify {
        /// Data directory.
        #[arg(long)]
        data: PathBuf,
    },
    /// Rebuild a damaged store from the files it still has (RocksDB RepairDB). Last resort:
    /// unreadable table files move to DATA/lost/ and their entries are gone; prefer `restore`.
    Repair {
        /// Data directory.
        #[arg(long)]
        data: PathBuf,
    },
    /// Copy a backup (a checkpoint from `missivectl backup`) into a new data directory and verify it.
    Restore {
        /// The backup directory (under `storage.backup_dir`).
        #[arg(long)]
        from: PathBuf,
        /// The new data directory: must not exist or be empty.
        #[arg(long)]
        data: PathBuf,
    },
}

/// Why the command line stopped before a clean end.
enum Failure {
    /// The user's input is wrong (flag, file, value): one line, exit 2.
    Usage(String),
    /// The broker failed while starting or running: one line, exit 1.
    Runtime(String),
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Failure::Usage(e.to_string())
    }
}

/// Runs the broker (or `--check-config`) and returns the process exit status.
pub fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(line)) => {
            eprintln!("missive: error: {line}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(line)) => {
            eprintln!("missive: failed: {line}");
            ExitCode::from(1)
        }
    }
}

/// Parses the flags; help and version print and end the process with 0.
fn parse_args() -> Result<Args, Failure> {
    match Args::try_parse() {
        Ok(a) => Ok(a),
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) =>
        {
            let _ = e.print();
            std::process::exit(0)
        }
        Err(e) => Err(Failure::Usage(clap_one_line(&e))),
    }
}

/// Clap's multi-line report as one line: the error and its tips, then the fix.
fn clap_one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let mut parts: Vec<&str> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with("Usage:") || line.starts_with("For more information") {
            continue;
        }
        parts.push(line.strip_prefix("error: ").unwrap_or(line));
    }
    format!("{}; fix: see `missive --help`", parts.join("; "))
}

/// Reads the file, applies flags and MISSIVE_SECRET, checks the result.
fn effective_config(args: Args) -> Result<Config, Failure> {
    let file = args.check_config.as_ref().or(args.config.as_ref());
    let mut config = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::new(
                    format!("--config {}", path.display()),
                    format!("cannot be read: {e}"),
                    "give the path of a readable TOML file",
                )
            })?;
            Config::parse_toml(&text).map_err(|mut e| {
                e.key = format!("{}: {}", path.display(), e.key);
                e
            })?
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
    if args.tcp_tls.is_some() {
        config.tcp_tls = args.tcp_tls;
    }
    if args.api.is_some() {
        config.api.listen = args.api;
    }
    if args.wss.is_some() {
        config.wss = args.wss;
    }
    if args.static_dir.is_some() {
        config.web.static_dir = args.static_dir;
    }
    config.web.dev_mode |= args.dev;
    config.check()?;
    Ok(config)
}

/// Runs the broker until a signal; returns when it stopped cleanly.
fn run() -> Result<(), Failure> {
    let args = parse_args()?;
    if let Some(cmd) = args.command {
        return maintenance(cmd);
    }
    if let Some(path) = args.check_config.clone() {
        let config = effective_config(args)?;
        println!("# missive --check-config {}: valid; effective configuration:", path.display());
        print!("{}", config.effective_toml());
        return Ok(());
    }
    let config = effective_config(args)?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        ConfigError::new(
            "data_dir",
            format!("{} cannot be created: {e}", config.data_dir.display()),
            "set --data or `data_dir` to a directory this user can write",
        )
    })?;
    let broker = Broker::start(config).map_err(|e| match e {
        // Settings that fail only when used (static_dir, TLS files) are user errors too.
        BrokerError::Config(m) if m.contains("; fix: ") => Failure::Usage(m),
        BrokerError::Config(m) => Failure::Usage(format!("{m}; fix: correct that setting (docs/CONFIG.md)")),
        e @ BrokerError::Corrupt { .. } => Failure::Runtime(e.to_string()),
        other => Failure::Runtime(format!("starting the broker: {other}")),
    })?;
    // Machine-readable line for scripts and tests (stdout; logs go to stderr).
    println!("{}", broker.listening_line());
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(|e| Failure::Runtime(format!("installing signal handlers: {e}")))?;
    for sig in signals.forever() {
        if sig != SIGHUP {
            tracing::info!(signal = sig, "shutting down");
            break;
        }
        match broker.reload_tls() {
            Ok(Some(sha)) => {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "missive tls reloaded cert_sha256={sha}");
                let _ = out.flush();
            }
            Ok(None) => tracing::info!("SIGHUP: no certificate files to reload (generated certificate)"),
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: certificate reload failed; the old certificate stays")
            }
        }
    }
    broker.shutdown();
    broker.join().map_err(|e| Failure::Runtime(format!("stopping the broker: {e}")))?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Runs a maintenance command; prints its result on stdout.
fn maintenance(cmd: Maintenance) -> Result<(), Failure> {
    let opts = StoreOptions::default();
    let must_exist = |dir: &PathBuf| {
        if dir.join("CURRENT").is_file() {
            Ok(())
        } else {
            Err(Failure::Usage(format!(
                "--data {}: not a data directory (no CURRENT file); fix: give the broker's data_dir",
                dir.display()
            )))
        }
    };
    match cmd {
        Maintenance::Verify { data } => {
            must_exist(&data)?;
            let report = Store::verify_dir(&data, &opts)
                .map_err(|e| Failure::Runtime(format!("verify {}: DAMAGED: {e}", data.display())))?;
            println!("verify {}: ok", data.display());
            for (family, n) in report.families {
                println!("  {family}: {n} entries");
            }
            Ok(())
        }
        Maintenance::Repair { data } => {
            must_exist(&data)?;
            Store::repair(&data).map_err(|e| Failure::Runtime(format!("repair {}: {e}", data.display())))?;
            let lost = data.join("lost");
            // Opening read-write recreates the families that had no table
            // file left (RepairDB only knows families it found in tables).
            let report = Store::open(&data, &opts).and_then(|s| s.verify()).map_err(|e| {
                Failure::Runtime(format!("repair {}: still damaged after repair: {e}", data.display()))
            })?;
            let entries: u64 = report.families.iter().map(|(_, n)| n).sum();
            println!("repair {}: ok, {entries} entries readable", data.display());
            if lost.is_dir() {
                println!(
                    "  files RocksDB could not use were moved to {}; their entries are gone",
                    lost.display()
                );
            }
            Ok(())
        }
        Maintenance::Restore { from, data } => {
            must_exist(&from).map_err(|_| {
                Failure::Usage(format!(
                    "--from {}: not a backup (no CURRENT file); fix: give a directory under storage.backup_dir",
                    from.display()
                ))
            })?;
            copy_checkpoint(&from, &data)?;
            let report = Store::verify_dir(&data, &opts).map_err(|e| {
                Failure::Runtime(format!("restore: the copy in {} is damaged: {e}", data.display()))
            })?;
            let entries: u64 = report.families.iter().map(|(_, n)| n).sum();
            println!(
                "restore {} -> {}: ok, {entries} entries; start the broker with --data {}",
                from.display(),
                data.display(),
                data.display()
            );
            Ok(())
        }
    }
}

/// Copies the files of checkpoint `from` (tables, MANIFEST, OPTIONS, WAL,
/// `PARTITIONS`, and each `part-k` partition directory the same way) into
/// `to`, which must not exist or be empty.
fn copy_checkpoint(from: &Path, to: &Path) -> Result<(), Failure> {
    let io = |what: &str, p: &Path, e: std::io::Error| {
        Failure::Runtime(format!("restore: {what} {}: {e}", p.display()))
    };
    if to.exists() {
        let mut entries = std::fs::read_dir(to).map_err(|e| io("cannot read", to, e))?;
        if entries.next().is_some() {
            return Err(Failure::Usage(format!(
                "--data {}: not empty; fix: restore into a new directory (never over a live one)",
                to.display()
            )));
        }
    }
    std::fs::create_dir_all(to).map_err(|e| io("cannot create", to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| io("cannot read", from, e))? {
        let entry = entry.map_err(|e| io("cannot read", from, e))?;
        let src = entry.path();
        let kind = entry.file_type().map_err(|e| io("cannot stat", &src, e))?;
        let dst = to.join(entry.file_name());
        if kind.is_file() {
            std::fs::copy(&src, &dst).map_err(|e| io("cannot copy", &src, e))?;
            std::fs::File::open(&dst).and_then(|f| f.sync_all()).map_err(|e| io("cannot sync", &dst, e))?;
        } else if kind.is_dir() && entry.file_name().to_string_lossy().starts_with("part-") {
            copy_checkpoint(&src, &dst)?;
        }
    }
    // The copies are durable before we report success.
    std::fs::File::open(to).and_then(|d| d.sync_all()).map_err(|e| io("cannot sync", to, e))?;
    Ok(())
}
