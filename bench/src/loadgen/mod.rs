//! `loadgen`: whole-system load generation against a real broker over TCP.
//!
//! Role: parse the command line ([`cli`]), obtain a broker ([`broker`]: spawn
//! one or target `--addr`), run one scenario, print its [`report`] and exit
//! with its status. Scenarios: [`pairs`] (`pairs` and `latency`), [`fanout`],
//! [`idle`], [`sync`]. Transport: [`net`] (mio, many connections per thread);
//! verification: [`ledger`]; measurement: [`stats`]; allocation-free push
//! reading: [`wire`].
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
mod fanout;
mod idle;
mod ledger;
mod net;
mod pairs;
mod proto;
mod report;
mod session;
mod stats;
mod sync;
mod wire;

use std::io::Read;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Parser;

use broker::{Broker, SpawnOpts};
use cli::{Cli, Scenario};
use report::{Report, RunEnv};

/// What a scenario gets: where the broker is and how to authenticate.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
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
    let (mut broker, secret, durability) = match (t.spawn, t.addr) {
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
        if matches!(cli.scenario, Scenario::Idle(_)) {
            bail!("--transport ws is supported by pairs, latency, fanout and sync, not idle");
        }
        net::use_websocket();
    }
    let env = RunEnv::capture(durability, broker.spawned());
    let addr = broker.addr;
    let cpu = |pid: Option<u32>| pid.and_then(broker::cpu_secs);
    let (self_cpu0, broker_cpu0) = (cpu(Some(std::process::id())), cpu(broker.pid()));
    let started = std::time::Instant::now();
    let mut ctx = Ctx { addr, secret, prefix: proto::run_prefix(), broker: &mut broker };
    let mut report = match &cli.scenario {
        Scenario::Pairs(a) => pairs::run_pairs(&mut ctx, a)?,
        Scenario::Latency(a) => pairs::run_latency(&mut ctx, a)?,
        Scenario::Idle(a) => idle::run(&mut ctx, a)?,
        Scenario::Sync(a) => sync::run(&mut ctx, a)?,
        Scenario::Fanout(a) => fanout::run(&mut ctx, a)?,
        Scenario::IdleChild(_) => unreachable!("handled in main"),
    };
    // Who used the CPU (2 cores shared by generator and broker): seconds over the whole run.
    let used = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| ((b - a) * 100.0).round() / 100.0);
    report
        .metric("run_secs", (started.elapsed().as_secs_f64() * 100.0).round() / 100.0)
        .metric("loadgen_cpu_s", used(self_cpu0, cpu(Some(std::process::id()))))
        .metric("broker_cpu_s", used(broker_cpu0, cpu(broker.pid())));
    broker_health(&mut broker, &mut report);
    if broker.spawned() && !broker.stop() {
        report.problem("the spawned broker did not exit cleanly on SIGTERM");
    }
    report.metric("transport", t.transport.clone());
    report.print(&env, t.json);
    Ok(report.status().exit_code())
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
