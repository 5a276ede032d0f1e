//! `idle`: N authenticated, idle connections; broker memory per connection.
//!
//! A process may hold at most 20 000 open files here (a hard limit), so the
//! connections are opened by child processes (`loadgen idle-child`, this same
//! executable), `--per-process` each, from source addresses 127.0.0.2,
//! 127.0.0.3, … in turn (`--sources`). The parent measures the broker's RSS
//! before any connection and again once every child reported its connections
//! READY and `--settle-secs` passed: `bytes_per_conn = (after - before) / N`.
//! Then every connection must answer a `Ping` (`alive_after`).
//!
//! Child protocol (one JSON object per stdout line): `progress` (each
//! second: connections ready and failed so far), `up` (all handshakes done or timed out: counts of ready, refused,
//! closed by the server with which codes, timed out, local errors), `pongs`
//! (answer to a `ping` line on stdin). EOF or `quit` on stdin ends the child,
//! so children never outlive the parent.
//!
//! Series: one sample per second of the connect phase, `rate` = connections
//! that became READY per second, `errors` = connections that failed (no
//! latency).
//!
//! Invariants: at most [`HANDSHAKES_IN_FLIGHT`] connections of a child are in
//! their handshake at once (the broker's accept backlog is finite); a child
//! pings every ready connection each [`KEEPALIVE`] so the broker's idle
//! timeout never closes them while the run lasts; every wait is bounded.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use missive_protocol::pb::frame;
use serde_json::{Value, json};

use super::Ctx;
use super::cli::{IdleArgs, IdleChildArgs};
use super::net::{Event, Net};
use super::proto;
use super::report::Report;
use super::stats::{Progress, Sample, Series, Tick, round2};

/// Connections of one child in their TCP/Hello handshake at once.
const HANDSHAKES_IN_FLIGHT: usize = 256;
/// Keep-alive ping period (the broker recommends 30 s, closes after 90 s).
const KEEPALIVE: Duration = Duration::from_secs(25);
/// How long the ping round may take.
const PING_WAIT: Duration = Duration::from_secs(30);
/// Extra time a child has to report after its own connect deadline.
const REPORT_GRACE: Duration = Duration::from_secs(30);
/// Nonce of the measured ping round (keep-alives use 0).
const ROUND_NONCE: u64 = 1;

/// The source address of connection `i`: 127.0.0.2 upwards, round robin.
fn source(i: u32, sources: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % sources) as u8))
}

struct ChildProc {
    child: Child,
    stdin: Option<ChildStdin>,
}

/// The connect phase's progress line: ready and failed connections, and
/// connections ready per second.
fn connect_line(
    ready: &Arc<AtomicU64>,
    failed: &Arc<AtomicU64>,
    want: u32,
) -> impl FnMut(Duration) -> Tick + Send + 'static {
    let (ready, failed) = (Arc::clone(ready), Arc::clone(failed));
    let mut last = (Duration::ZERO, 0u64, 0u64);
    move |el| {
        let (n, f) = (ready.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
        let rate = n.saturating_sub(last.1) as f64 / (el - last.0).as_secs_f64().max(1e-3);
        let line = format!("ready {n}/{want} ({rate:.0}/s) p99 - errors {f}");
        let sample = Sample {
            t: round2(el.as_secs_f64()),
            rate: rate.round(),
            p99_ms: None,
            errors: f.saturating_sub(last.2),
        };
        last = (el, n, f);
        Tick { line, sample }
    }
}

/// The parent: spawns the children, measures, reports.
pub(crate) fn run(ctx: &mut Ctx<'_>, a: &IdleArgs) -> anyhow::Result<Report> {
    let mut r = Report::new("idle");
    let processes = a.conns.div_ceil(a.per_process);
    r.param("conns", a.conns).param("sources", a.sources.min(a.conns)).param("processes", processes);
    r.param("settle_secs", a.settle_secs);
    let rss_before = ctx.broker.rss_kib();
    let exe = std::env::current_exe().context("locating the loadgen executable")?;
    let (tx, rx) = mpsc::channel::<(usize, Value)>();
    let mut kids = Vec::new();
    for k in 0..processes {
        let first = k * a.per_process;
        let count = a.per_process.min(a.conns - first);
        let mut child = Command::new(&exe)
            .args(["idle-child", "--to", &ctx.addr.to_string(), "--prefix", &ctx.prefix])
            .args(["--first", &first.to_string(), "--count", &count.to_string()])
            .args(["--sources", &a.sources.to_string(), "--connect-secs", &a.connect_secs.to_string()])
            .env("MISSIVE_SECRET", &ctx.secret)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting an idle-child process")?;
        let out = child.stdout.take().context("child stdout not piped")?;
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send((k as usize, v));
                }
            }
        });
        let stdin = child.stdin.take();
        kids.push(ChildProc { child, stdin });
    }
    drop(tx);
    let result = measure(ctx, a, &mut kids, &rx, rss_before, &mut r);
    for k in &mut kids {
        drop(k.stdin.take()); // EOF: the child closes its connections and exits
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    for k in &mut kids {
        while matches!(k.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if matches!(k.child.try_wait(), Ok(None)) {
            let _ = k.child.kill();
        }
        let _ = k.child.wait();
    }
    result?;
    Ok(r)
}

fn measure(
    ctx: &mut Ctx<'_>,
    a: &IdleArgs,
    kids: &mut [ChildProc],
    rx: &mpsc::Receiver<(usize, Value)>,
    rss_before: Option<u64>,
    r: &mut Report,
) -> anyhow::Result<()> {
    let ready_total = Arc::new(AtomicU64::new(0));
    let failed_total = Arc::new(AtomicU64::new(0));
    let mut per_child = vec![(0u64, 0u64); kids.len()];
    let progress = Progress::start("idle", connect_line(&ready_total, &failed_total, a.conns));
    let mut ups: Vec<Option<Value>> = vec![None; kids.len()];
    let deadline = Instant::now() + Duration::from_secs_f64(a.connect_secs) + REPORT_GRACE;
    while ups.iter().any(Option::is_none) {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok((k, v)) = rx.recv_timeout(left) else {
            bail!(
                "idle children did not all report within {:?}",
                Duration::from_secs_f64(a.connect_secs) + REPORT_GRACE
            );
        };
        if let Some(n) = v["ready"].as_u64() {
            per_child[k] = (n, v["failed"].as_u64().unwrap_or(0));
            ready_total.store(per_child.iter().map(|c| c.0).sum(), Ordering::Relaxed);
            failed_total.store(per_child.iter().map(|c| c.1).sum(), Ordering::Relaxed);
        }
        if v["event"] == "up" {
            ups[k] = Some(v);
        }
    }
    r.series(Series { rate_of: "ready conns/s", latency_of: "", samples: progress.finish() });
    let sum = |key: &str| ups.iter().flatten().map(|v| v[key].as_u64().unwrap_or(0)).sum::<u64>();
    let ready = sum("ready");
    let mut close_codes: BTreeMap<String, u64> = BTreeMap::new();
    for v in ups.iter().flatten() {
        if let Some(m) = v["close_codes"].as_object() {
            for (code, n) in m {
                *close_codes.entry(code.clone()).or_default() += n.as_u64().unwrap_or(0);
            }
        }
    }
    let first_error = ups.iter().flatten().find_map(|v| v["first_error"].as_str().map(str::to_owned));
    std::thread::sleep(Duration::from_secs_f64(a.settle_secs));
    let rss_after = ctx.broker.rss_kib();
    // Every connection must still be there and answering.
    for k in kids.iter_mut() {
        if let Some(s) = k.stdin.as_mut() {
            let _ = s.write_all(b"ping\n").and_then(|()| s.flush());
        }
    }
    let mut pongs: Vec<Option<u64>> = vec![None; kids.len()];
    let ping_deadline = Instant::now() + PING_WAIT + Duration::from_secs(5);
    while pongs.iter().any(Option::is_none) {
        let left = ping_deadline.saturating_duration_since(Instant::now());
        let Ok((k, v)) = rx.recv_timeout(left) else { break };
        if v["event"] == "pongs" {
            pongs[k] = v["pongs"].as_u64();
        }
    }
    let alive: u64 = pongs.iter().flatten().sum();
    let refused = sum("refused");
    let timed_out = sum("timed_out");
    r.metric("conns", ready)
        .metric("rss_before_kib", rss_before)
        .metric("rss_after_kib", rss_after)
        .metric(
            "bytes_per_conn",
            match (rss_before, rss_after) {
                (Some(b), Some(af)) if ready > 0 => {
                    json!(((af as f64 - b as f64) * 1024.0 / ready as f64).round())
                }
                _ => Value::Null,
            },
        )
        .metric("alive_after", alive)
        .metric("refused", refused)
        .metric("closed_by_server", sum("closed"))
        .metric("close_codes", json!(close_codes))
        .metric("timed_out", timed_out)
        .metric("local_errors", sum("local_errors"))
        .metric("dropped_after_ready", sum("dropped"));
    if rss_before.is_none() || rss_after.is_none() {
        r.problem("broker RSS unknown: use --spawn, or --broker-pid with --addr");
    }
    if ready < u64::from(a.conns) {
        let why = first_error.unwrap_or_else(|| "no reason given".to_owned());
        r.problem(format!(
            "only {ready} of {} connections became READY (refused {refused}, closed by the server {}: {close_codes:?}, \
             timed out {timed_out}); first error: {why}",
            a.conns,
            sum("closed"),
        ));
    }
    if alive < ready {
        r.problem(format!("only {alive} of {ready} connections answered a ping after the measurement"));
    }
    Ok(())
}

/// The child: opens its share of connections and holds them.
pub(crate) fn child_main(a: &IdleChildArgs, secret: Option<&str>) -> anyhow::Result<ExitCode> {
    let secret = secret.context("idle-child needs MISSIVE_SECRET")?;
    if a.sources == 0 || a.sources > 250 {
        bail!("--sources must be in 1..=250");
    }
    let mut net = Net::new()?;
    // Per connection: 0 handshaking, 1 ready, 2 failed (indexed by ConnId).
    let mut state: Vec<u8> = Vec::with_capacity(a.count as usize);
    let mut c = ChildCounts::default();
    let deadline = Instant::now() + Duration::from_secs_f64(a.connect_secs);
    let mut next = 0u32;
    let mut handshaking = 0usize;
    let mut events = Vec::new();
    let mut last_progress = Instant::now();
    while next < a.count || handshaking > 0 {
        while next < a.count && handshaking < HANDSHAKES_IN_FLIGHT {
            let i = a.first + next;
            next += 1;
            let hello = proto::hello(proto::mint(secret, &format!("{}i{i}", a.prefix))?, "d1");
            match net.connect(a.to, Some(source(i, a.sources))) {
                Ok(id) => {
                    net.send(id, &hello);
                    if state.len() <= id {
                        state.resize(id + 1, 2);
                    }
                    state[id] = 0;
                    handshaking += 1;
                }
                Err(e) => c.local_error(format!("connect from {}: {e}", source(i, a.sources))),
            }
        }
        let now = Instant::now();
        if now >= deadline {
            // Give up on the stragglers: they are reported, never counted later.
            c.timed_out = handshaking as u64;
            c.first_error.get_or_insert(format!(
                "{handshaking} connections got no HelloOk within {}s (TCP connected: the broker never answered)",
                a.connect_secs
            ));
            for (id, s) in state.iter_mut().enumerate() {
                if *s == 0 {
                    net.close(id);
                    *s = 2;
                }
            }
            break;
        }
        net.poll(Some((deadline - now).min(Duration::from_millis(200))), &mut events)?;
        for ev in events.drain(..) {
            c.on_event(ev, &mut state, &mut handshaking, None);
        }
        if last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            emit(&json!({"event": "progress", "ready": c.ready, "failed": c.failed()}));
        }
    }
    emit(&json!({
        "event": "up", "ready": c.ready, "refused": c.refused, "closed": c.closed,
        "close_codes": c.close_codes, "timed_out": c.timed_out, "local_errors": c.local_errors,
        "first_error": c.first_error,
    }));
    hold(&mut net, &mut state, &mut c)
}

/// Holds the ready connections until stdin ends; answers `ping` rounds.
fn hold(net: &mut Net, state: &mut [u8], c: &mut ChildCounts) -> anyhow::Result<ExitCode> {
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut events = Vec::new();
    let mut next_keepalive = Instant::now() + KEEPALIVE;
    let mut round: Option<(u64, Instant)> = None;
    let mut handshaking = 0usize;
    loop {
        match rx.try_recv() {
            Ok(cmd) if cmd.trim() == "ping" => {
                ping_all(net, state, ROUND_NONCE);
                round = Some((0, Instant::now() + PING_WAIT));
            }
            Ok(cmd) if cmd.trim() == "quit" => return Ok(ExitCode::SUCCESS),
            Ok(_) | Err(mpsc::TryRecvError::Empty) => {}
            Err(mpsc::TryRecvError::Disconnected) => return Ok(ExitCode::SUCCESS),
        }
        if Instant::now() >= next_keepalive {
            next_keepalive += KEEPALIVE;
            ping_all(net, state, 0);
        }
        net.poll(Some(Duration::from_millis(100)), &mut events)?;
        for ev in events.drain(..) {
            c.on_event(ev, state, &mut handshaking, round.as_mut().map(|r| &mut r.0));
        }
        if let Some((n, until)) = round
            && (n >= c.ready || Instant::now() >= until)
        {
            emit(&json!({"event": "pongs", "pongs": n}));
            round = None;
        }
    }
}

fn ping_all(net: &mut Net, state: &[u8], nonce: u64) {
    let f = proto::ping(nonce);
    for (id, &s) in state.iter().enumerate() {
        if s == 1 {
            net.send(id, &f);
        }
    }
}

#[derive(Debug, Default)]
struct ChildCounts {
    ready: u64,
    refused: u64,
    closed: u64,
    close_codes: BTreeMap<u32, u64>,
    timed_out: u64,
    local_errors: u64,
    dropped: u64,
    first_error: Option<String>,
}

impl ChildCounts {
    /// Connections that failed so far (refused, closed, timed out, local error, dropped).
    fn failed(&self) -> u64 {
        self.refused + self.closed + self.timed_out + self.local_errors + self.dropped
    }

    fn local_error(&mut self, e: String) {
        self.local_errors += 1;
        self.first_error.get_or_insert(e);
    }

    fn on_event(&mut self, ev: Event, state: &mut [u8], handshaking: &mut usize, pongs: Option<&mut u64>) {
        match ev {
            Event::Push(..) | Event::Readable(_) => {}
            Event::Frame(id, f) => {
                let Some(s) = state.get_mut(id) else { return };
                match f.body {
                    Some(frame::Body::HelloOk(_)) if *s == 0 => {
                        *s = 1;
                        self.ready += 1;
                        *handshaking = handshaking.saturating_sub(1);
                    }
                    Some(frame::Body::Close(cl)) => {
                        *self.close_codes.entry(cl.code).or_default() += 1;
                        self.first_error.get_or_insert(format!("Close {}: {}", cl.code, cl.message));
                    }
                    Some(frame::Body::Pong(p)) if p.nonce == ROUND_NONCE => {
                        if let Some(n) = pongs {
                            *n += 1;
                        }
                    }
                    _ => {}
                }
            }
            Event::Closed(id, reason) => {
                let Some(s) = state.get_mut(id) else { return };
                match *s {
                    0 => {
                        *handshaking = handshaking.saturating_sub(1);
                        if reason.contains("refused") {
                            self.refused += 1;
                        } else {
                            self.closed += 1;
                        }
                        self.first_error.get_or_insert(reason);
                    }
                    1 => {
                        self.ready -= 1;
                        self.dropped += 1;
                        self.first_error.get_or_insert(format!("after READY: {reason}"));
                    }
                    _ => {}
                }
                *s = 2;
            }
        }
    }
}

fn emit(v: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}").and_then(|()| out.flush());
}
