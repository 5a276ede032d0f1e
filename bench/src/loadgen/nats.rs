//! `nats-fanout`: the `fanout` measurement against NATS core, the reference
//! the fan-out acceptance compares Missive with (same machine, same run).
//!
//! Setup (not timed): a `nats-server` is spawned on 127.0.0.1 on a port it
//! picks (`-p -1`, read back from its log), with a temporary log file and no
//! persistence. `--members N` opens N connections, as `fanout` does: N - 1
//! subscribers (`SUB` on the run's subject) and one publisher; each sends
//! `CONNECT` (verbose off, echo off) and a `PING`, and setup ends when every
//! connection got its `PONG` (so every subscription is registered).
//!
//! Measurement, mirroring [`super::fanout`]: the publisher keeps at most
//! `--window` messages unacknowledged. NATS core has no publish ack, so every
//! `PUB` is followed by a `PING`: the server handles a connection's protocol
//! in order, so its `PONG` means the message was routed to every
//! subscriber's outbound buffer (that is this comparator's "ack"; Missive's
//! `SendAck` means stored with fsync, so the two acks are not the same
//! promise, the deliveries are). Payload: `--size` bytes (default 64, as in
//! `fanout`) starting with `<send ns hex>.<message number hex>.`;
//! `deliveries_per_s` counts `MSG`s received by the N - 1 subscribers during
//! the sending window; delivery latency is send → `MSG` parsed. The report
//! uses `fanout`'s metric names; `broker_*` figures are nats-server's.
//!
//! Invariants: every subscriber has its own [`Ledger`] index and every
//! message acked (PONG) is recorded for each of them, so lost, duplicated
//! and reordered deliveries fail the run as in `fanout` (NATS core is at most
//! once: a loss here is reported, not excused); `MSG`s are parsed in place in
//! the connection's read buffer (no allocation per delivery); the server's
//! `PING`s are answered; an `-ERR` or a closed connection is an error; every
//! wait is bounded and the spawned server is stopped (SIGTERM, then SIGKILL)
//! before the report is printed, or killed on any early return.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Buf;

use super::broker::stop_child;
use super::cli::{FanoutArgs, NatsFanoutArgs, TargetArgs};
use super::fanout::{self, Run, Window};
use super::ledger::Ledger;
use super::net::{ConnId, Event, Net};
use super::proto::{self, now_ns};
use super::report::{Report, RunEnv};
use super::session::LOGIN_TIMEOUT;
use super::stats::Counters;
use super::{RunClock, output};

/// How long nats-server may take to print its listening line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long nats-server may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest protocol line accepted from the server (INFO is the longest).
const MAX_LINE: usize = 64 * 1024;
/// The log line that names the client port.
const LISTENING: &str = "Listening for client connections on ";

/// A spawned nats-server; killed if dropped without [`NatsServer::stop`].
#[derive(Debug)]
struct NatsServer {
    child: Child,
    addr: SocketAddr,
    version: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl NatsServer {
    fn spawn(bin: &Path) -> anyhow::Result<Self> {
        let version = Command::new(bin)
            .arg("--version")
            .output()
            .with_context(|| format!("running {} --version", bin.display()))?;
        let version = String::from_utf8_lossy(&version.stdout).trim().replace(": ", " ");
        let dir = tempfile::Builder::new().prefix("loadgen-nats-").tempdir().context("creating temp dir")?;
        let log = dir.path().join("nats.log");
        let child = Command::new(bin)
            .args(["-a", "127.0.0.1", "-p", "-1", "-l"])
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut server = Self { child, addr: SocketAddr::from(([127, 0, 0, 1], 0)), version, log, _dir: dir };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let text = std::fs::read_to_string(&server.log).unwrap_or_default();
            if let Some(addr) = text.lines().find_map(listening_addr) {
                server.addr = addr;
                return Ok(server);
            }
            if !matches!(server.child.try_wait(), Ok(None)) || Instant::now() >= deadline {
                bail!(
                    "nats-server did not report its client port within {STARTUP_TIMEOUT:?}; its log:\n{}",
                    text.lines()
                        .rev()
                        .take(20)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Log lines of the server that report a problem (`[ERR]`, slow consumers).
    fn problems(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter(|l| l.contains("[ERR]") || l.contains("Slow Consumer"))
            .take(3)
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The address in nats-server's `... Listening for client connections on HOST:PORT` line.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let at = line.find(LISTENING)? + LISTENING.len();
    line[at..].trim().parse().ok()
}

/// `--nats-server`, else `nats-server` on PATH, else Debian's /usr/sbin/nats-server.
fn nats_bin(arg: Option<&PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = arg {
        return Ok(p.clone());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/bin")])
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
        .context(
            "nats-server not found on PATH nor in /usr/sbin: install it (`apt-get install nats-server`; \
             `make bench` does it through scripts/bench-deps.sh) or pass --nats-server PATH",
        )
}

/// The `nats-fanout` scenario: spawns nats-server, measures, reports.
pub(crate) fn run(t: &TargetArgs, a: &NatsFanoutArgs) -> anyhow::Result<ExitCode> {
    if t.addr.is_some() || t.transport != "tcp" {
        bail!("nats-fanout spawns its own nats-server and speaks NATS over TCP: no --addr, no --transport");
    }
    let mut server = NatsServer::spawn(&nats_bin(a.nats_server.as_ref())?)?;
    eprintln!("loadgen: spawned {} pid {} on {}", server.version, server.pid(), server.addr);
    // NATS core keeps nothing: there is no durability to report.
    let env = RunEnv::capture("none".to_owned(), true);
    let clock = RunClock::start(Some(server.pid()));
    let mut report = measure(&server, &a.fanout)?;
    clock.record(&mut report);
    report.param("server", server.version.clone());
    if !server.alive() {
        report.problem("nats-server exited during the run");
    }
    for p in server.problems() {
        report.problem(format!("nats-server: {p}"));
    }
    // nats-server exits with status 1 on SIGTERM by design ("Server Exiting.."):
    // stopping in time is what counts.
    if stop_child(&mut server.child, STOP_TIMEOUT).is_none() {
        report.problem(format!("nats-server did not exit within {STOP_TIMEOUT:?} of SIGTERM"));
    }
    report.metric("transport", "tcp");
    output(&report, &env, t)
}

fn measure(server: &NatsServer, a: &FanoutArgs) -> anyhow::Result<Report> {
    let mut r = Report::new("nats-fanout");
    r.param("members", a.members).param("secs", a.secs).param("window", a.window).param("size", a.size);
    let subject = format!("{}.fanout", proto::run_prefix());
    let setup_start = Instant::now();
    let mut net = Net::new_raw()?;
    let receivers = a.members as usize - 1;
    let publisher = connect_all(&mut net, server.addr, &subject, receivers)?;
    let first_rx = publisher + 1;
    r.metric("setup_ms", setup_start.elapsed().as_millis() as u64);

    let mut ledger = Ledger::new(receivers);
    let (net, subject) = (&mut net, subject.as_str());
    fanout::measure(&mut r, Some(server.pid()), &mut ledger, |ledger, counters| {
        drive(net, publisher, first_rx, receivers, subject, a, ledger, counters)
    })?;
    Ok(r)
}

/// `CONNECT` as every connection of the run sends it.
const CONNECT: &[u8] =
    b"CONNECT {\"verbose\":false,\"pedantic\":false,\"name\":\"loadgen\",\"lang\":\"rust\",\
\"version\":\"0\",\"protocol\":1,\"echo\":false}\r\n";

/// Opens the publisher and `receivers` subscribers; returns the publisher's
/// id (the subscribers follow it). Returns once every one got its `PONG`.
fn connect_all(net: &mut Net, addr: SocketAddr, subject: &str, receivers: usize) -> anyhow::Result<ConnId> {
    let publisher = net.connect(addr, None)?;
    net.send_bytes(publisher, CONNECT);
    net.send_bytes(publisher, b"PING\r\n");
    let sub = format!("SUB {subject} 1\r\nPING\r\n");
    for _ in 0..receivers {
        let id = net.connect(addr, None)?;
        net.send_bytes(id, CONNECT);
        net.send_bytes(id, sub.as_bytes());
    }
    let mut ready = vec![false; receivers + 1];
    let mut pending = ready.len();
    let deadline = Instant::now() + LOGIN_TIMEOUT;
    let mut events = Vec::new();
    while pending > 0 {
        let now = Instant::now();
        if now >= deadline {
            bail!("{pending} of {} NATS connections got no PONG within {LOGIN_TIMEOUT:?}", ready.len());
        }
        net.poll(Some(deadline - now), &mut events)?;
        for ev in events.drain(..) {
            let id = ev.conn();
            let Some(i) = id.checked_sub(publisher).filter(|&i| i < ready.len()) else { continue };
            match ev {
                Event::Readable(_) => {
                    let mut pongs = 0;
                    let pings = read_ops(net, id, |op| {
                        match op {
                            Op::Pong => pongs += 1,
                            Op::Err(e) => return Err(format!("NATS connection {i}: {e}")),
                            Op::Msg(_) => {
                                return Err(format!("NATS connection {i}: a message before the run"));
                            }
                            Op::Info | Op::Ok | Op::Ping => {}
                        }
                        Ok(())
                    })?;
                    answer_pings(net, id, pings);
                    if pongs > 0 && !std::mem::replace(&mut ready[i], true) {
                        pending -= 1;
                    }
                }
                Event::Closed(_, reason) => bail!("NATS connection {i} closed during setup: {reason}"),
                Event::Frame(..) | Event::Push(..) => {}
            }
        }
    }
    Ok(publisher)
}

/// A protocol operation from the server.
#[derive(Debug, PartialEq, Eq)]
enum Op<'a> {
    Info,
    Ping,
    Pong,
    Ok,
    /// `-ERR` and its text.
    Err(String),
    /// A `MSG`'s payload.
    Msg(&'a [u8]),
}

/// The next whole operation at the start of `buf` and its length on the
/// wire; None until it is complete.
fn next_op(buf: &[u8]) -> Result<Option<(Op<'_>, usize)>, String> {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > MAX_LINE {
            return Err(format!("a protocol line longer than {MAX_LINE} bytes"));
        }
        return Ok(None);
    };
    let line = buf[..nl].strip_suffix(b"\r").unwrap_or(&buf[..nl]);
    let head = nl + 1;
    let is = |word: &[u8]| line.get(..word.len()).is_some_and(|w| w.eq_ignore_ascii_case(word));
    if is(b"MSG ") {
        // MSG <subject> <sid> [reply-to] <#bytes>
        let size = std::str::from_utf8(line)
            .ok()
            .and_then(|l| l.split_ascii_whitespace().last())
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| format!("bad MSG line: {}", String::from_utf8_lossy(line)))?;
        let end = head + size;
        if buf.len() < end + 2 {
            return Ok(None);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err("a MSG payload not followed by CRLF".to_owned());
        }
        return Ok(Some((Op::Msg(&buf[head..end]), end + 2)));
    }
    let op = if line.eq_ignore_ascii_case(b"PING") {
        Op::Ping
    } else if line.eq_ignore_ascii_case(b"PONG") {
        Op::Pong
    } else if line.eq_ignore_ascii_case(b"+OK") {
        Op::Ok
    } else if is(b"INFO") {
        Op::Info
    } else if is(b"-ERR") {
        Op::Err(String::from_utf8_lossy(line).into_owned())
    } else {
        return Err(format!("unexpected NATS line: {}", String::from_utf8_lossy(line)));
    };
    Ok(Some((op, head)))
}

/// Hands every whole operation buffered on `id` to `on` and consumes it;
/// returns how many `PING`s the server sent (to be answered). A parse error
/// or an error from `on` stops the run's parsing of this connection.
fn read_ops(
    net: &mut Net,
    id: ConnId,
    mut on: impl FnMut(Op<'_>) -> Result<(), String>,
) -> anyhow::Result<u32> {
    let Some(buf) = net.read_buf(id) else { return Ok(0) };
    let mut pos = 0;
    let mut pings = 0;
    let parsed = loop {
        match next_op(&buf[pos..]) {
            Ok(Some((op, n))) => {
                pos += n;
                if op == Op::Ping {
                    pings += 1;
                }
                if let Err(e) = on(op) {
                    break Err(e);
                }
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    buf.advance(pos);
    parsed.map_err(anyhow::Error::msg)?;
    Ok(pings)
}

/// After [`read_ops`]: answers the server's PINGs; a connection whose bytes
/// did not parse is closed (its error goes to `errs`): its stream cannot be
/// resumed.
fn settle(net: &mut Net, id: ConnId, read: anyhow::Result<u32>, errs: &mut Vec<String>) {
    match read {
        Ok(pings) => answer_pings(net, id, pings),
        Err(e) => {
            errs.push(format!("connection {id}: {e:#}"));
            net.close(id);
        }
    }
}

fn answer_pings(net: &mut Net, id: ConnId, pings: u32) {
    for _ in 0..pings {
        net.send_bytes(id, b"PONG\r\n");
    }
}

/// `<sent ns hex>.<message number hex>.` padded with `x` to `size` bytes.
fn payload(sent_ns: u64, msg: u32, size: usize) -> String {
    let mut s = format!("{sent_ns:x}.{msg:x}.");
    if s.len() < size {
        s.extend(std::iter::repeat_n('x', size - s.len()));
    }
    s
}

/// The send time and message number of a [`payload`].
fn parse_payload(p: &[u8]) -> Option<(u64, u32)> {
    let sent = proto::parse_stamp(p)?;
    let rest = &p[p.iter().position(|&b| b == b'.')? + 1..];
    let end = rest.iter().position(|&b| b == b'.')?;
    let msg = u32::from_str_radix(std::str::from_utf8(&rest[..end]).ok()?, 16).ok()?;
    Some((sent, msg))
}

/// The timed part: closed-loop publishes, deliveries checked per subscriber.
#[allow(clippy::too_many_arguments)]
fn drive(
    net: &mut Net,
    publisher: ConnId,
    first_rx: ConnId,
    receivers: usize,
    subject: &str,
    a: &FanoutArgs,
    ledger: &mut Ledger,
    counters: &Counters,
) -> anyhow::Result<Run> {
    let mut out = Run::new(a);
    let size = a.size as usize;
    // (message number, send time ns), in publish order: PONGs come in that order.
    let mut in_flight: VecDeque<(u32, u64)> = VecDeque::new();
    let mut next_msg = 0u32;
    let mut send = |net: &mut Net, in_flight: &mut VecDeque<(u32, u64)>, out: &mut Run| {
        let t = now_ns();
        let body = payload(t, next_msg, size);
        let frame = format!("PUB {subject} {}\r\n{body}\r\nPING\r\n", body.len());
        net.send_bytes(publisher, frame.as_bytes());
        in_flight.push_back((next_msg, t));
        next_msg += 1;
        out.sent += 1;
    };
    for _ in 0..a.window {
        send(net, &mut in_flight, &mut out);
    }
    let mut clock = Window::start(a);
    let mut events = Vec::new();
    let mut errs = Vec::new();
    while let Some(timeout) = clock.next(&mut out, in_flight.is_empty() && ledger.outstanding() == 0) {
        net.poll(Some(timeout), &mut events)?;
        let recv_ns = now_ns();
        let sending = clock.sending;
        for ev in events.drain(..) {
            let id = match ev {
                Event::Readable(id) => id,
                Event::Closed(id, reason) => {
                    out.error(format!("connection {id} closed: {reason}"));
                    continue;
                }
                Event::Frame(..) | Event::Push(..) => continue,
            };
            if id == publisher {
                let mut pongs = 0u32;
                let read = read_ops(net, id, |op| {
                    match op {
                        Op::Pong => pongs += 1,
                        Op::Err(e) => errs.push(e),
                        Op::Msg(_) => errs.push("publisher got a MSG".to_owned()),
                        Op::Info | Op::Ok | Op::Ping => {}
                    }
                    Ok(())
                });
                settle(net, id, read, &mut errs);
                for _ in 0..pongs {
                    let Some((msg, t)) = in_flight.pop_front() else {
                        out.error("a PONG with no message in flight");
                        continue;
                    };
                    for rx in 0..receivers {
                        ledger.ack(rx, u64::from(msg) + 1, msg);
                    }
                    out.acked(recv_ns.saturating_sub(t), sending);
                    if sending {
                        send(net, &mut in_flight, &mut out);
                    }
                }
            } else if let Some(rx) = id.checked_sub(first_rx).filter(|&r| r < receivers) {
                let read = read_ops(net, id, |op| {
                    match op {
                        Op::Msg(p) => match parse_payload(p) {
                            Some((sent, msg)) => {
                                ledger.deliver(rx, u64::from(msg) + 1, msg);
                                out.delivered(Some(recv_ns.saturating_sub(sent)), sending);
                            }
                            None => errs.push("a MSG whose payload is not ours".to_owned()),
                        },
                        Op::Err(e) => errs.push(e),
                        Op::Pong | Op::Info | Op::Ok | Op::Ping => {}
                    }
                    Ok(())
                });
                settle(net, id, read, &mut errs);
            }
            for e in errs.drain(..) {
                out.error(e);
            }
        }
        clock.housekeeping(&mut out, counters);
    }
    if !in_flight.is_empty() {
        out.errors("publishes unanswered (no PONG) after the drain", in_flight.len() as u64);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_whole_operations_only() {
        let buf =
            b"INFO {\"x\":1}\r\nPING\r\nMSG a.b 1 5\r\nhello\r\nMSG a.b 1 r.x 2\r\nhi\r\n+OK\r\nPONG\r\n";
        let mut pos = 0;
        let mut ops = Vec::new();
        while let Ok(Some((op, n))) = next_op(&buf[pos..]) {
            ops.push(format!("{op:?}"));
            pos += n;
        }
        assert_eq!(pos, buf.len());
        assert_eq!(ops, ["Info", "Ping", "Msg([104, 101, 108, 108, 111])", "Msg([104, 105])", "Ok", "Pong"]);
        // A MSG whose payload has not fully arrived waits.
        assert_eq!(next_op(b"MSG a 1 5\r\nhel"), Ok(None));
        assert_eq!(next_op(b"MSG a 1 5\r\nhello\r"), Ok(None));
        assert_eq!(next_op(b"PIN"), Ok(None));
        assert!(next_op(b"MSG a 1 5\r\nhelloXX").is_err());
        assert!(next_op(b"MSG a 1 x\r\n").is_err());
        assert!(next_op(b"WHAT\r\n").is_err());
        assert_eq!(
            next_op(b"-ERR 'Slow Consumer'\r\n"),
            Ok(Some((Op::Err("-ERR 'Slow Consumer'".into()), 22)))
        );
    }

    #[test]
    fn payload_round_trips() {
        let p = payload(0xabc, 77, 64);
        assert_eq!(p.len(), 64);
        assert_eq!(parse_payload(p.as_bytes()), Some((0xabc, 77)));
        assert_eq!(parse_payload(payload(u64::MAX, u32::MAX, 1).as_bytes()), Some((u64::MAX, u32::MAX)));
        assert_eq!(parse_payload(b"abc"), None);
        assert_eq!(parse_payload(b"12.zz."), None);
    }

    #[test]
    fn reads_the_listening_line() {
        let line =
            "[123] 2026/11/30 08:00:00.000000 [INF] Listening for client connections on 127.0.0.1:40123";
        assert_eq!(listening_addr(line), Some(SocketAddr::from(([127, 0, 0, 1], 40123))));
        assert_eq!(listening_addr("[INF] Server is ready"), None);
    }
}
