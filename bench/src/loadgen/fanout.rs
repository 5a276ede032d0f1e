//! `fanout`: one group conversation with N online members; one member sends
//! (closed loop, at most `--window` unacknowledged), every other member's
//! connection must receive each message.
//!
//! Setup (not timed): N users log in (auto-registration makes them
//! accounts), the sender creates a WORK group `g:{prefix}g` with the first
//! 100 members and invites the rest 100 at a time (no consent needed, they
//! join at once). Tips of the setup are pushed too; only text messages count.
//!
//! Measurement: `deliveries_per_s` counts pushes of the sender's messages
//! received by the N - 1 receivers during the sending window; delivery
//! latency is send → push (stamp in the text, as in `pairs`). The
//! per-second series counts deliveries with the p99 delivery latency of each
//! second; `broker_cpu_us_per_delivery` is the broker's CPU from the first
//! send to the end of the drain divided by the (receiver, message) pairs
//! delivered (login and group setup excluded). `nats-fanout` ([`super::nats`])
//! measures NATS core the same way.
//!
//! Invariants: each receiver has its own [`Ledger`] conversation index and
//! every ack is recorded for each of them, so `lost` counts (receiver, message)
//! pairs that were acked but never pushed; the drain phase is bounded by
//! `--drain-secs`; a broker without groups makes the setup fail with its error
//! (exit 3), never a silent pass. Single-threaded: one event loop drives the
//! sender and every receiver.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use missive_protocol::pb::{self, frame};
use missive_protocol::{Call, request_frame};

use super::Ctx;
use super::broker::CpuWindow;
use super::cli::FanoutArgs;
use super::ledger::Ledger;
use super::net::{ConnId, Event, Net};
use super::proto::{self, now_ns};
use super::report::Report;
use super::session;
use super::stats::{Counters, Hist, Main, Progress, Series, Totals};
use super::wire::{self, RawPush};

/// Ids per `CreateGroup` / `InviteToGroup` (the protocol's batch limit).
const BATCH: usize = 100;
/// Bound on each setup request.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How often receivers acknowledge pushes and counters are published.
const HOUSEKEEPING: Duration = Duration::from_millis(100);

/// Sends `req` on `conn` as request `id` and waits for its typed reply;
/// every other event is dropped (setup pushes are not measured).
fn call<C: Call>(net: &mut Net, conn: ConnId, id: u64, req: C) -> anyhow::Result<C::Reply> {
    let what = C::NAME;
    net.send(conn, &request_frame(id, req));
    let deadline = Instant::now() + SETUP_TIMEOUT;
    let mut events = Vec::new();
    loop {
        let now = Instant::now();
        if now >= deadline {
            bail!("{what}: no response within {SETUP_TIMEOUT:?}");
        }
        net.poll(Some(deadline - now), &mut events)?;
        for ev in events.drain(..) {
            match ev {
                Event::Frame(c, pb::Frame { body: Some(frame::Body::Response(r)) })
                    if c == conn && r.id == id =>
                {
                    if let Some(e) = &r.error {
                        bail!("{what}: error {} {}", e.code, e.message);
                    }
                    return proto::reply::<C>(r).map_err(|e| anyhow!("{what}: {e}"));
                }
                Event::Closed(c, reason) => bail!("{what}: connection {c} closed: {reason}"),
                _ => {}
            }
        }
    }
}

/// What a fan-out run measured (Missive's `fanout` and `nats-fanout` alike).
#[derive(Debug)]
pub(crate) struct Run {
    ack: Hist,
    deliver: Hist,
    /// Delivery latencies since the last housekeeping (the progress line's p99).
    interval: Hist,
    pub(crate) sent: u64,
    acked_in_window: u64,
    delivered_in_window: u64,
    window: Duration,
    errors: BTreeMap<String, u64>,
    published: Totals,
}

impl Run {
    pub(crate) fn new(a: &FanoutArgs) -> Self {
        Self {
            ack: Hist::new(),
            deliver: Hist::new(),
            interval: Hist::new(),
            sent: 0,
            acked_in_window: 0,
            delivered_in_window: 0,
            window: Duration::from_secs_f64(a.secs),
            errors: BTreeMap::new(),
            published: Totals::default(),
        }
    }

    /// Counts `n` errors of one kind.
    pub(crate) fn errors(&mut self, kind: impl Into<String>, n: u64) {
        *self.errors.entry(kind.into()).or_default() += n;
    }

    /// Counts one error.
    pub(crate) fn error(&mut self, kind: impl Into<String>) {
        self.errors(kind, 1);
    }

    /// A send was acknowledged after `latency_ns`.
    pub(crate) fn acked(&mut self, latency_ns: u64, sending: bool) {
        self.ack.record_ns(latency_ns);
        self.acked_in_window += u64::from(sending);
    }

    /// A receiver got a message, sent `latency_ns` ago if known.
    pub(crate) fn delivered(&mut self, latency_ns: Option<u64>, sending: bool) {
        if let Some(ns) = latency_ns {
            self.deliver.record_ns(ns);
            self.interval.record_ns(ns);
        }
        self.delivered_in_window += u64::from(sending);
    }

    /// Hands the totals and the interval's latencies to the progress line.
    fn publish(&mut self, counters: &Counters) {
        let now = Totals {
            sent: self.sent,
            acked: self.acked_in_window,
            delivered: self.delivered_in_window,
            errors: self.errors.values().sum(),
        };
        counters.publish(now, &mut self.published, &mut self.interval);
    }
}

/// The closed loop's clock: the sending window, the bounded drain after it,
/// and the housekeeping ticks.
#[derive(Debug)]
pub(crate) struct Window {
    start: Instant,
    end: Instant,
    drain: Duration,
    /// While true, acks trigger new sends and deliveries count in the rates.
    pub(crate) sending: bool,
    drain_deadline: Option<Instant>,
    next_housekeeping: Instant,
}

impl Window {
    /// Starts the sending window now.
    pub(crate) fn start(a: &FanoutArgs) -> Self {
        let start = Instant::now();
        Self {
            start,
            end: start + Duration::from_secs_f64(a.secs),
            drain: Duration::from_secs_f64(a.drain_secs),
            sending: true,
            drain_deadline: None,
            next_housekeeping: start + HOUSEKEEPING,
        }
    }

    /// The next poll's timeout, or None when the run is over: the drain
    /// ended because everything is `settled` (no send unanswered, nothing
    /// outstanding) or its time ran out. Stops sending when the window's
    /// time is up and records its length in `out`.
    pub(crate) fn next(&mut self, out: &mut Run, settled: bool) -> Option<Duration> {
        let now = Instant::now();
        if self.sending && now >= self.end {
            self.sending = false;
            out.window = now - self.start;
            self.drain_deadline = Some(now + self.drain);
        }
        if self.drain_deadline.is_some_and(|d| settled || now >= d) {
            return None;
        }
        let timeout = self.next_housekeeping.saturating_duration_since(now);
        Some(if self.sending { timeout.min(self.end - now) } else { timeout })
    }

    /// Once per housekeeping period: publishes `out` to the progress line
    /// and returns true (the caller then does its own periodic work).
    pub(crate) fn housekeeping(&mut self, out: &mut Run, counters: &Counters) -> bool {
        if Instant::now() < self.next_housekeeping {
            return false;
        }
        self.next_housekeeping += HOUSEKEEPING;
        out.publish(counters);
        true
    }
}

/// The timed part of a fan-out run against the server `server` (its pid):
/// the progress line and the server's CPU around `drive`, then the report's
/// figures from what `drive` measured and from `ledger`.
pub(crate) fn measure(
    r: &mut Report,
    server: Option<u32>,
    ledger: &mut Ledger,
    drive: impl FnOnce(&mut Ledger, &Counters) -> anyhow::Result<Run>,
) -> anyhow::Result<()> {
    let counters = Arc::new(Counters::default());
    let cpu = CpuWindow::start(server);
    let progress = Progress::start(r.scenario(), Progress::rates(Arc::clone(&counters), Main::Delivered));
    let out = drive(ledger, &counters);
    let cpu_s = cpu.secs();
    r.series(Series { rate_of: "deliveries/s", latency_of: "deliver", samples: progress.finish() });
    let out = out?;
    let secs = out.window.as_secs_f64().max(1e-9);
    // Per receiver: `acked` and `delivered` count (receiver, message) pairs.
    let v = ledger.verdict();
    r.metric("deliveries_per_s", (out.delivered_in_window as f64 / secs).round())
        .metric("messages_per_s", (out.acked_in_window as f64 / secs).round())
        .quantile("deliver_p50_us", &out.deliver, 0.5)
        .quantile("deliver_p99_us", &out.deliver, 0.99)
        .quantile("ack_p99_us", &out.ack, 0.99)
        .metric("sent", out.sent)
        .metric("broker_load_cpu_s", cpu_s)
        .metric("broker_cpu_us_per_delivery", CpuWindow::per_unit_us(cpu_s, v.delivered));
    r.outcome(&v, &out.errors);
    Ok(())
}

pub(crate) fn run(ctx: &mut Ctx<'_>, a: &FanoutArgs) -> anyhow::Result<Report> {
    let mut r = Report::new("fanout");
    r.param("members", a.members).param("secs", a.secs).param("window", a.window).param("size", a.size);
    let sender = format!("{}o", ctx.prefix);
    let mut users = vec![(sender, "d1".to_owned())];
    users.extend((1..a.members).map(|i| (format!("{}m{i}", ctx.prefix), "d1".to_owned())));
    let setup_start = Instant::now();
    let mut net = Net::new()?;
    let mut early = Vec::new();
    let ids = session::login_all(&mut net, ctx.addr, &ctx.secret, &users, &mut early)?;
    let (s_conn, first_rx) = (ids[0], ids[1]);
    let group = format!("{}g", ctx.prefix);
    let conv = format!("g:{group}");
    let names: Vec<String> = users[1..].iter().map(|u| u.0.clone()).collect();
    let mut batches = names.chunks(BATCH);
    let mut req = 1u64;
    let create = pb::CreateGroup {
        group_id: group.clone(),
        r#type: pb::GroupType::Work as i32,
        member_ids: batches.next().map(<[String]>::to_vec).unwrap_or_default(),
        ..Default::default()
    };
    let members = u64::from(call(&mut net, s_conn, req, create)?.member_count);
    for b in batches {
        req += 1;
        let invite = pb::InviteToGroup { group_id: group.clone(), user_ids: b.to_vec() };
        call(&mut net, s_conn, req, invite)?;
    }
    r.metric("setup_ms", setup_start.elapsed().as_millis() as u64).metric("created_with", members);

    let receivers = names.len();
    net.raw_pushes(true);
    let mut ledger = Ledger::new(receivers);
    let (net, conv) = (&mut net, conv.as_str());
    measure(&mut r, ctx.broker.pid(), &mut ledger, |ledger, counters| {
        drive(net, s_conn, first_rx, receivers, conv, a, req + 1, ledger, counters)
    })?;
    Ok(r)
}

/// The timed part: closed-loop sends, pushes checked per receiver.
#[allow(clippy::too_many_arguments)]
fn drive(
    net: &mut Net,
    s_conn: ConnId,
    first_rx: ConnId,
    receivers: usize,
    conv: &str,
    a: &FanoutArgs,
    mut next_req: u64,
    ledger: &mut Ledger,
    counters: &Counters,
) -> anyhow::Result<Run> {
    let mut out = Run::new(a);
    let size = a.size as usize;
    let mut in_flight: VecDeque<(u64, u32, u64)> = VecDeque::new();
    let mut next_msg = 0u32;
    let mut send = |net: &mut Net, in_flight: &mut VecDeque<(u64, u32, u64)>, out: &mut Run| {
        let t = now_ns();
        net.send(s_conn, &proto::send_text(next_req, conv, next_msg.to_string(), proto::stamp_text(t, size)));
        in_flight.push_back((next_req, next_msg, t));
        next_req += 1;
        next_msg += 1;
        out.sent += 1;
    };
    for _ in 0..a.window {
        send(net, &mut in_flight, &mut out);
    }
    let mut last_seen = vec![0u64; receivers];
    let mut acked_seen = vec![0u64; receivers];
    let mut clock = Window::start(a);
    let mut events = Vec::new();
    while let Some(timeout) = clock.next(&mut out, in_flight.is_empty() && ledger.outstanding() == 0) {
        net.poll(Some(timeout), &mut events)?;
        let recv_ns = now_ns();
        for ev in events.drain(..) {
            let (id, f) = match ev {
                Event::Frame(id, f) => (id, f),
                Event::Readable(_) => continue,
                Event::Push(id, payload) => {
                    let Some(rx) = id.checked_sub(first_rx).filter(|&r| r < receivers) else { continue };
                    let m = match wire::read_push(&payload) {
                        Ok(RawPush::Message(m)) => m,
                        Ok(RawPush::Other) => continue,
                        Err(e) => {
                            out.error(e);
                            continue;
                        }
                    };
                    // Setup tips (group created, members invited) are not ours.
                    let Some(text) = m.text else { continue };
                    if m.conv_id != conv.as_bytes() {
                        out.error("push for another conversation");
                        continue;
                    }
                    ledger.deliver(rx, m.seq, m.msg_number());
                    last_seen[rx] = last_seen[rx].max(m.seq);
                    let latency = proto::parse_stamp(text).map(|sent| recv_ns.saturating_sub(sent));
                    out.delivered(latency, clock.sending);
                    continue;
                }
                Event::Closed(id, reason) => {
                    out.error(format!("connection {id} closed: {reason}"));
                    continue;
                }
            };
            match f.body {
                Some(frame::Body::Response(resp)) if id == s_conn => {
                    let Some(pos) = in_flight.iter().position(|e| e.0 == resp.id) else { continue };
                    let Some((_, msg, t)) = in_flight.remove(pos) else { continue };
                    match proto::reply::<pb::SendMessage>(resp) {
                        Ok(ack) => {
                            for rx in 0..receivers {
                                ledger.ack(rx, ack.seq, msg);
                            }
                            out.acked(recv_ns.saturating_sub(t), clock.sending);
                            if clock.sending {
                                send(net, &mut in_flight, &mut out);
                            }
                        }
                        Err(kind) => out.error(kind),
                    }
                }
                Some(frame::Body::Close(c)) => out.error(format!("Close {}", c.code)),
                _ => {}
            }
        }
        if clock.housekeeping(&mut out, counters) {
            for rx in 0..receivers {
                if last_seen[rx] > acked_seen[rx] {
                    acked_seen[rx] = last_seen[rx];
                    net.send(first_rx + rx, &proto::push_ack(conv, last_seen[rx]));
                }
            }
        }
    }
    if !in_flight.is_empty() {
        out.errors("sends unanswered after the drain", in_flight.len() as u64);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> FanoutArgs {
        FanoutArgs { members: 2, secs: 0.05, window: 1, size: 64, drain_secs: 0.05 }
    }

    #[test]
    fn the_window_sends_then_drains_then_ends() {
        let a = args();
        let mut out = Run::new(&a);
        let mut w = Window::start(&a);
        assert!(w.next(&mut out, true).is_some_and(|t| t <= HOUSEKEEPING));
        assert!(w.sending, "settled does not end the sending window");
        std::thread::sleep(Duration::from_millis(60));
        assert!(w.next(&mut out, false).is_some(), "draining while something is outstanding");
        assert!(!w.sending);
        assert!(out.window >= Duration::from_millis(50));
        assert!(w.next(&mut out, true).is_none(), "the drain ends once settled");
        let mut w = Window::start(&a);
        std::thread::sleep(Duration::from_millis(60));
        assert!(w.next(&mut out, false).is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert!(w.next(&mut out, false).is_none(), "the drain is bounded");
    }

    #[test]
    fn only_the_sending_window_counts_in_the_rates() {
        let mut out = Run::new(&args());
        out.acked(1_000, true);
        out.acked(1_000, false);
        out.delivered(Some(2_000), true);
        out.delivered(None, true);
        out.delivered(Some(2_000), false);
        assert_eq!((out.acked_in_window, out.delivered_in_window), (1, 2));
        assert_eq!((out.ack.count(), out.deliver.count()), (2, 2));
        let c = Counters::default();
        out.error("x");
        out.publish(&c);
        assert_eq!(Counters::get(&c.delivered), 2);
        assert_eq!(Counters::get(&c.errors), 1);
        assert!(c.take_p99_ms().is_some(), "the interval's latencies reach the progress line");
    }
}
