//! `loadgen`: whole-system load generation against a real broker over TCP,
//! WebSocket or raw QUIC.
//!
//! Role: parse the command line ([`cli`]), obtain a broker ([`broker`]: spawn
//! one or target `--addr`), run one scenario, print its [`report`] and exit
//! with its status. Scenarios: [`pairs`] (`pairs` and `latency`), [`fanout`],
//! [`idle`], [`sync`]; [`nats`] runs the fan-out measurement against NATS core
//! instead of Missive, and [`curves`] runs scenarios at growing sizes (as child
//! processes of this executable). Every run's per-second time series is in its
//! report ([`stats::Series`]) and, with `--plot PATH`, drawn as SVG ([`plot`]).
//! Transport: [`net`] (mio, many connections per thread;
//! TCP or WebSocket), and for `--transport quic` the [`relay`] (the scenarios'
//! TCP connections go to an in-process loopback relay that carries each over
//! its own QUIC connection, so QUIC figures include that relay's CPU, spent on
//! the broker's machine); verification: [`ledger`]; measurement: [`stats`];
//! allocation-free push reading: [`wire`].
//!
//! Invariants:
//! - traffic goes to loopback only when spawning (127.0.0.1, sources
//!   127.0.0.x); `--addr` is the operator's explicit choice;
//! - every run is bounded in time and count (see [`cli`]); a spawned broker is
//!   stopped before loadgen exits;
//! - exit code: 0 every check passed, 1 a check failed (loss, duplicates,
//!   order, errors, refused connections, broker died), 3 setup error (no
//!   broker, bad flags, a setup request refused).

mod broker;
mod cli;
mod curves;
mod fanout;
mod idle;
mod ledger;
mod nats;
mod net;
mod pairs;
mod plot;
mod proto;
mod relay;
mod report;
mod session;
mod stats;
mod sync;
mod wire;

use std::io::Read;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;

use broker::{Broker, CpuWindow, SpawnOpts};
use cli::{Cli, Scenario, TargetArgs};
use report::{Report, RunEnv};

/// What a scenario gets: where the broker is and how to authenticate.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    /// Where the scenario's connections go: the broker's TCP or WebSocket
    /// listener, or the QUIC [`relay`].
    pub(crate) addr: SocketAddr,
    pub(crate) secret: String,
    /// Unique prefix of this run's user ids.
    pub(crate) prefix: String,
    pub(crate) broker: &'a mut Broker,
}

/// Entry point of the `loadgen` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Touch the stamp epoch before any thread starts.
    let _ = proto::now_ns();
    let result = match &cli.scenario {
        Scenario::IdleChild(a) => idle::child_main(a, cli.target.secret.as_deref()),
        Scenario::NatsFanout(a) => nats::run(&cli.target, a),
        Scenario::Curves(a) => curves::run(&cli.target, a),
        _ => run(&cli),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loadgen: error: {e:#}");
            ExitCode::from(3)
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let t = &cli.target;
    let quic = t.transport == "quic";
    if !quic && (t.quic_addr.is_some() || t.cert_sha256.is_some()) {
        bail!("--quic-addr and --cert-sha256 go with --transport quic");
    }
    if t.spawn && (t.quic_addr.is_some() || t.cert_sha256.is_some()) {
        bail!("--quic-addr and --cert-sha256 are for --addr; --spawn reads them from the broker");
    }
    if t.transport != "tcp" && matches!(cli.scenario, Scenario::Idle(_)) {
        bail!("--transport {} is supported by pairs, latency, fanout and sync, not idle", t.transport);
    }
    // An external QUIC broker may be named by its QUIC address alone.
    let external = t.addr.or(t.quic_addr.filter(|_| quic));
    let (mut broker, secret, durability) = match (t.spawn, external) {
        (true, Some(_)) => bail!("--spawn and --addr exclude each other"),
        (false, None) => bail!("say which broker: --spawn, or --addr HOST:PORT"),
        (true, None) => {
            let secret = match &t.secret {
                Some(s) => s.clone(),
                None => random_secret()?,
            };
            let durability = t.durability.clone().unwrap_or_else(|| "fsync".to_owned());
            let bin = match &t.broker_bin {
                Some(b) => b.clone(),
                None => broker::default_broker_bin()?,
            };
            let opts = SpawnOpts {
                bin,
                durability: durability.clone(),
                workers: t.workers,
                keep_data: t.keep_data,
                ws: t.transport == "ws",
                quic,
            };
            let b = Broker::spawn(&opts, &secret)?;
            eprintln!("loadgen: spawned broker pid {} on {} ({durability})", b.pid().unwrap_or(0), b.addr);
            (b, secret, durability)
        }
        (false, Some(addr)) => {
            let secret =
                t.secret.clone().context("--addr needs the broker's --secret (or MISSIVE_SECRET)")?;
            let durability = t.durability.clone().unwrap_or_else(|| "unknown".to_owned());
            (Broker::external(addr, t.broker_pid), secret, durability)
        }
    };
    if t.transport == "ws" {
        net::use_websocket();
    }
    let relay = if quic { Some(start_relay(t, &broker)?) } else { None };
    let env = RunEnv::capture(durability, broker.spawned());
    let addr = relay.as_ref().map_or(broker.addr, relay::Relay::addr);
    let clock = RunClock::start(broker.pid());
    let mut ctx = Ctx { addr, secret, prefix: proto::run_prefix(), broker: &mut broker };
    let ran = match &cli.scenario {
        Scenario::Pairs(a) => pairs::run_pairs(&mut ctx, a),
        Scenario::Mixed(a) => pairs::run_mixed(&mut ctx, a),
        Scenario::Latency(a) => pairs::run_latency(&mut ctx, a),
        Scenario::Idle(a) => idle::run(&mut ctx, a),
        Scenario::Sync(a) => sync::run(&mut ctx, a),
        Scenario::Fanout(a) => fanout::run(&mut ctx, a),
        Scenario::IdleChild(_) | Scenario::NatsFanout(_) | Scenario::Curves(_) => {
            unreachable!("handled in main")
        }
    };
    let mut report = match ran {
        Ok(r) => r,
        Err(e) => {
            // Logins refused because the relay could not reach the broker: say why.
            let why = relay.and_then(|r| r.stop().problem());
            return Err(match why {
                Some(p) => e.context(p),
                None => e,
            });
        }
    };
    clock.record(&mut report);
    if let Some(relay) = relay {
        let out = relay.stop();
        report.metric("quic_relay_threads", t.quic_threads).metric("quic_sessions", out.opened);
        if let Some(p) = out.problem() {
            report.problem(p);
        }
    }
    broker_health(&mut broker, &mut report);
    if broker.spawned() && !broker.stop() {
        report.problem("the spawned broker did not exit cleanly on SIGTERM");
    }
    report.metric("transport", t.transport.clone());
    output(&report, &env, t)
}

/// The whole run's clock: wall time and the CPU of loadgen and of the
/// server under load (2 cores shared by both).
#[derive(Debug)]
pub(crate) struct RunClock {
    started: Instant,
    loadgen: CpuWindow,
    server: CpuWindow,
}

impl RunClock {
    /// Starts now; `server` is the pid of the server under load, if known.
    pub(crate) fn start(server: Option<u32>) -> Self {
        Self {
            started: Instant::now(),
            loadgen: CpuWindow::whole(Some(std::process::id())),
            server: CpuWindow::whole(server),
        }
    }

    /// Records `run_secs`, `loadgen_cpu_s` and `broker_cpu_s` (seconds over the whole run).
    pub(crate) fn record(&self, report: &mut Report) {
        report
            .metric("run_secs", stats::round2(self.started.elapsed().as_secs_f64()))
            .metric("loadgen_cpu_s", self.loadgen.secs())
            .metric("broker_cpu_s", self.server.secs());
    }
}

/// Prints the report and, with `--plot`, draws its time series; the exit
/// code follows the report (3 if the plot could not be written).
pub(crate) fn output(report: &Report, env: &RunEnv, t: &TargetArgs) -> anyhow::Result<ExitCode> {
    report.print(env, t.json);
    if let Some(path) = &t.plot {
        let empty = stats::Series { rate_of: "", latency_of: "", samples: Vec::new() };
        let series = report.time_series().unwrap_or(&empty);
        let title =
            format!("loadgen {} [{}]: {}", report.scenario(), report.params_line(), report.status_name());
        plot::series_svg(path, &title, series)?;
        eprintln!("loadgen: wrote {}", path.display());
    }
    Ok(report.status().exit_code())
}

/// The QUIC relay towards the spawned broker's listener, or `--quic-addr`.
fn start_relay(t: &TargetArgs, broker: &Broker) -> anyhow::Result<relay::Relay> {
    let (addr, hash) = match &broker.quic {
        Some(q) => (q.addr, q.cert_sha256.clone()),
        None => (
            t.quic_addr.context("--transport quic with --addr needs --quic-addr (the broker's quic=)")?,
            t.cert_sha256
                .clone()
                .context("--transport quic with --addr needs --cert-sha256 (the broker's cert_sha256=)")?,
        ),
    };
    let r = relay::Relay::start(addr, &hash, t.quic_threads as usize)?;
    eprintln!("loadgen: QUIC relay on {} -> {addr} ({} thread(s))", r.addr(), t.quic_threads);
    Ok(r)
}

/// Failures of the broker itself: it died, or it hit the open-file limit.
fn broker_health(broker: &mut Broker, report: &mut Report) {
    if !broker.alive() {
        report.problem("the broker exited during the run");
    }
    let fd = broker.log_lines("open-file limit", 3);
    if !fd.is_empty() {
        report.metric("broker_fd_limit_hit", true);
        report.problem(format!("broker hit its open-file limit: {}", fd[0].trim()));
    }
}

/// 32 hex characters from the OS random source.
fn random_secret() -> anyhow::Result<String> {
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("reading /dev/urandom")?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}
